package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
	"github.com/wechatconf/wechatconf/cmd/internal/cli/clitest"
	"github.com/wechatconf/wechatconf/core"
)

// TestNotFoundHint tests that a command that finds nothing (exit 3) says
// where it looked — the store, the key prefix, the full key — and the keys
// of the same account under other key prefixes, with the --prefix to try,
// when the store lists its keys; and that it says it did not search when
// the store cannot list them or the listing fails.
func TestNotFoundHint(t *testing.T) {
	ctx := context.Background()
	st := newListing()
	tok := core.Token{Value: "token-value-0123456789abcdef", ExpiresAt: time.Now().Add(time.Hour)}
	for _, k := range []string{
		"fleet2/" + testAppID + "/access_token", "fleet2/" + testAppID + "/jsapi_ticket",
		"wechatconf/wxother000000000000/access_token", "fleet2/wecom/corp/1000002/access_token",
	} {
		if err := st.Set(ctx, k, tok); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	secrets := func() []string { return []string{tok.Value} }
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": "file://" + dir}, Secrets: secrets, Run: cli.RunWithStore(st)}
	key := "wechatconf/" + testAppID + "/access_token"

	for _, args := range [][]string{{"get", testAppID}, {"inspect", testAppID}, {"get", "--key", "fleet3/" + testAppID + "/access_token"}} {
		r := c.Exec(ctx, args...)
		c.Want(r, cli.ExitNotFound)
		for _, want := range []string{
			"looked in: store file://" + dir, `key prefix "wechatconf" (--prefix)`,
			"nearby: 2 key(s) of AppID " + testAppID + ":",
			"\n    fleet2/" + testAppID + "/access_token\n", "\n    fleet2/" + testAppID + "/jsapi_ticket",
			"try: --prefix fleet2",
		} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("wechatconf %q: stderr lacks %q:\n%s", args, want, r.Stderr)
			}
		}
		if strings.Contains(r.Stderr, "wxother") || strings.Contains(r.Stderr, "corp") {
			t.Errorf("wechatconf %q: the hint shows another account's keys:\n%s", args, r.Stderr)
		}
	}
	if r := c.Exec(ctx, "get", testAppID); !strings.Contains(r.Stderr, "key "+key+"\n") {
		t.Errorf("get: the hint does not name the full key %s:\n%s", key, r.Stderr)
	}
	r := c.Exec(ctx, "inspect", "--wecom", "corp/1000003")
	c.Want(r, cli.ExitNotFound)
	if !strings.Contains(r.Stderr, "nearby: 1 key(s) of WeCom corp corp:\n    fleet2/wecom/corp/1000002/access_token") || !strings.Contains(r.Stderr, "try: --prefix fleet2") {
		t.Errorf("inspect --wecom corp/1000003: stderr\n%s\nwant the corp's key under fleet2", r.Stderr)
	}

	r = c.Exec(ctx, "get", "wxnothing")
	c.Want(r, cli.ExitNotFound)
	if !strings.Contains(r.Stderr, "nearby: no key of AppID wxnothing under any key prefix (4 keys in the store)") || strings.Contains(r.Stderr, "try:") {
		t.Errorf("get of an AppID stored nowhere: stderr\n%s", r.Stderr)
	}

	for _, tc := range []struct {
		st   core.TokenStore
		want string
	}{
		{unlisted{st}, "nearby: not searched: this store cannot list its keys"},
		{failingLister{st}, "nearby: the store's keys could not be listed: " + errListing.Error()},
	} {
		c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": "file://" + dir}, Secrets: secrets, Run: cli.RunWithStore(tc.st)}
		r := c.Exec(ctx, "get", testAppID)
		c.Want(r, cli.ExitNotFound)
		if !strings.Contains(r.Stderr, "looked in: store") || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("get on a %T: stderr\n%s\nwant where it looked and %q", tc.st, r.Stderr, tc.want)
		}
	}
}
