package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
	"github.com/wechatconf/wechatconf/cmd/internal/cli/clitest"
	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// TestRefreshUnderAnotherPrefix tests that refresh without --yes makes no
// token call when the AppID's access_token is absent (or expired) under
// the key prefix it was given but valid under another one of the same
// store: the fleet's (the mistake the not-found hint is there for). A
// classic /cgi-bin/token call would stop the fleet's token working ~5
// minutes later; a stable_token one would store a token the fleet never
// reads. It exits 3 with the hint (the --prefix to try); with --yes it
// fetches under the prefix given, as asked.
func TestRefreshUnderAnotherPrefix(t *testing.T) {
	for _, classic := range []bool{false, true} {
		name := "stable_token"
		if classic {
			name = "classic"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now})
			t.Cleanup(wechat.Close)
			calls := func() int { return wechat.Calls(wxtest.PathStableToken) + wechat.Calls(wxtest.PathToken) }
			dir := t.TempDir()
			st, closeStore, err := storeurl.Open(ctx, "file://"+dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { closeStore() })
			fleetKey := "fleet/" + testAppID + "/access_token"
			fleetToken := core.Token{Value: "the-fleets-valid-token-0123456789", ExpiresAt: time.Now().Add(time.Hour)}
			if err := st.Set(ctx, fleetKey, fleetToken); err != nil {
				t.Fatal(err)
			}
			c := &clitest.CLI{T: t, Environ: map[string]string{"WECHAT_APPSECRET": testAppSecret, "WECHATCONF_STORE": "file://" + dir},
				Secrets: func() []string { return []string{fleetToken.Value} }}
			args := []string{"--base-url", wechat.URL}
			if classic {
				args = append(args, "--classic")
			}
			refresh := func(more ...string) clitest.Result {
				t.Helper()
				return c.Exec(ctx, append(append(append([]string{}, args...), "refresh", testAppID), more...)...)
			}

			// Absent under the default prefix "wechatconf".
			r := refresh()
			if n := calls(); n != 0 {
				t.Errorf("refresh without --yes of an access_token absent under --prefix wechatconf but valid under fleet: %d token calls, want 0", n)
			}
			c.Want(r, cli.ExitNotFound)
			if !strings.Contains(r.Stderr, "--prefix fleet") || !strings.Contains(r.Stderr, "--yes") {
				t.Errorf("stderr %q: want the --prefix to try and what --yes does", r.Stderr)
			}

			// Expired under the default prefix: the same.
			if err := st.Set(ctx, "wechatconf/"+testAppID+"/access_token", core.Token{Value: "old-expired-token-0123456789", ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
				t.Fatal(err)
			}
			c.Want(refresh(), cli.ExitNotFound)
			if n := calls(); n != 0 {
				t.Errorf("refresh without --yes of an access_token expired under --prefix wechatconf but valid under fleet: %d token calls, want 0", n)
			}

			// With --yes: fetched under the prefix given, by a normal call.
			c.Want(refresh("--yes"), cli.ExitOK)
			if n, f := calls(), wechat.ForceRefreshes(); n != 1 || f != 0 {
				t.Errorf("refresh --yes: %d token calls, %d forced; want 1 and 0", n, f)
			}
			if got, err := st.Get(ctx, fleetKey); err != nil || got.Value != fleetToken.Value {
				t.Errorf("the fleet's token: %v, %v; want it untouched", got.Value == fleetToken.Value, err)
			}
			c.Recheck()
		})
	}
}
