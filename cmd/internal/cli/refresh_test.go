package cli_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
	"github.com/wechatconf/wechatconf/cmd/internal/cli/clitest"
	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// TestRefreshOfAValidToken tests, with stable_token and with the classic
// /cgi-bin/token, that refresh fetches an absent or expired access_token
// without --yes (one normal call, no forced one), that a refresh of a
// valid token makes no token call at all and says so, naming what --yes
// would cost, and that with --yes it replaces the token (stable_token: one
// forced call; classic: one more classic call).
func TestRefreshOfAValidToken(t *testing.T) {
	for _, classic := range []bool{false, true} {
		name := "stable_token"
		if classic {
			name = "classic"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var ahead atomic.Int64 // how far WeChat's clock runs ahead of ours
			wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret,
				Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
			t.Cleanup(wechat.Close)
			calls := func() int { return wechat.Calls(wxtest.PathStableToken) + wechat.Calls(wxtest.PathToken) }
			dir := t.TempDir()
			st, _, err := storeurl.Open(ctx, "file://"+dir)
			if err != nil {
				t.Fatal(err)
			}
			key := "wechatconf/" + testAppID + "/access_token"
			var secrets []string
			stored := func() core.Token {
				t.Helper()
				tok, err := st.Get(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				secrets = append(secrets, tok.Value)
				return tok
			}
			c := &clitest.CLI{T: t, Environ: map[string]string{"WECHAT_APPSECRET": testAppSecret, "WECHATCONF_STORE": "file://" + dir},
				Secrets: func() []string { return secrets }}
			args := []string{"--base-url", wechat.URL}
			cost := "forced refreshes"
			if classic {
				args = append(args, "--classic")
				cost = "/cgi-bin/token"
			}
			refresh := func(more ...string) clitest.Result {
				t.Helper()
				return c.Exec(ctx, append(append(append([]string{}, args...), "refresh", testAppID), more...)...)
			}

			c.Want(refresh(), cli.ExitOK) // nothing stored: one normal call
			first := stored()
			if n, f := calls(), wechat.ForceRefreshes(); n != 1 || f != 0 {
				t.Fatalf("refresh of an absent token: %d token calls, %d forced; want 1 and 0", n, f)
			}

			r := refresh()
			c.Want(r, cli.ExitOK)
			if n := calls(); n != 1 {
				t.Errorf("refresh of a valid token without --yes: %d token calls in all, want 1 (the first refresh's): it made %d", n, n-1)
			}
			if tok := stored(); tok.Value != first.Value {
				t.Errorf("refresh of a valid token without --yes replaced it")
			}
			if !strings.Contains(r.Stderr, "is valid") || !strings.Contains(r.Stderr, "nothing done, no call to WeChat") ||
				!strings.Contains(r.Stderr, "--yes") || !strings.Contains(r.Stderr, cost) || !strings.Contains(r.Stdout, "replaced=false") {
				t.Errorf("refresh of a valid token:\nstdout: %s\nstderr: %s\nwant replaced=false, and stderr saying nothing was done and what --yes costs (%s)", r.Stdout, r.Stderr, cost)
			}

			r = refresh("--yes")
			c.Want(r, cli.ExitOK)
			second := stored()
			wantForced := 1
			if classic {
				wantForced = 0
			}
			if second.Value == first.Value || calls() < 2 || wechat.ForceRefreshes() != wantForced || !strings.Contains(r.Stdout, "replaced=true") {
				t.Errorf("refresh --yes of a valid token: replaced %t, %d token calls, %d forced (want %d)\nstdout: %s",
					second.Value != first.Value, calls(), wechat.ForceRefreshes(), wantForced, r.Stdout)
			}

			// A token the store shows expired while WeChat still holds it
			// (hosts' clocks apart): fetched without --yes, and never by a
			// forced call (stable_token hands it back; core's compare-and-
			// refresh would escalate).
			if err := st.Set(ctx, key, core.Token{Value: second.Value, ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
				t.Fatal(err)
			}
			forced := wechat.ForceRefreshes()
			c.Want(refresh(), cli.ExitOK)
			if f := wechat.ForceRefreshes(); f != forced {
				t.Errorf("refresh without --yes of a token expired in the store but not at WeChat: %d forced calls, want 0", f-forced)
			}
			second = stored()

			// An expired token is fetched without --yes, by a normal call
			// (WeChat's token has expired too).
			ahead.Store(int64(2*time.Hour + time.Minute))
			if err := st.Set(ctx, key, core.Token{Value: second.Value, ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
				t.Fatal(err)
			}
			before, forced := calls(), wechat.ForceRefreshes()
			c.Want(refresh(), cli.ExitOK)
			if third := stored(); third.Value == second.Value || calls() != before+1 || wechat.ForceRefreshes() != forced {
				t.Errorf("refresh of an expired token: replaced %t, %d token calls, %d forced; want a new token by one normal call",
					third.Value != second.Value, calls()-before, wechat.ForceRefreshes()-forced)
			}
			c.Recheck()
		})
	}
}
