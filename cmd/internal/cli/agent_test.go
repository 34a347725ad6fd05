package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
	"github.com/wechatconf/wechatconf/cmd/internal/cli/clitest"
	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/tokenfile"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// TestAgentIsAFleetMember tests that agent writes the access_token the
// fleet keeps in its store, with no token call of its own, and a
// jsapi_ticket from the stored access_token (one ticket call, no token
// call); that each file is 0600 and holds the documented fields and no
// AppSecret; that it ends with exit 0 when its context ends (SIGTERM),
// leaving the file; and that its log names each write and holds no secret.
func TestAgentIsAFleetMember(t *testing.T) {
	ctx := context.Background()
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now})
	t.Cleanup(wechat.Close)
	dir := t.TempDir()
	st, closeStore, err := storeurl.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeStore() })
	worker, err := core.New(core.Config{AppID: testAppID, AppSecret: core.NewSecret(testAppSecret), BaseURL: wechat.URL, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	// Its ledger record is written in the background into dir: flushed
	// before dir is removed (cleanups run last registered first).
	t.Cleanup(func() {
		if err := worker.FlushLedger(ctx); err != nil {
			t.Error(err)
		}
	})
	fleet, err := worker.AccessToken(ctx) // the fleet's token, in the store
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var secrets []string
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHAT_APPSECRET": testAppSecret, "WECHATCONF_STORE": "file://" + dir},
		Secrets: func() []string { return secrets }}

	for _, kind := range []string{"access_token", "jsapi_ticket"} {
		t.Run(kind, func(t *testing.T) {
			tokenCalls, ticketCalls := wechat.Calls(wxtest.PathStableToken)+wechat.Calls(wxtest.PathToken), wechat.Calls(wxtest.PathTicket)
			path := filepath.Join(out, kind+".json")
			writes := make(chan tokenfile.Record, 1)
			defer cli.SetAgentWritten(func(r tokenfile.Record) {
				select {
				case writes <- r:
				default:
				}
			})()
			actx, stop := context.WithCancel(ctx)
			defer stop()
			done := make(chan clitest.Result, 1)
			go func() {
				done <- c.Exec(actx, "--base-url", wechat.URL, "agent", testAppID, "--kind", kind, "--out", path, "--interval", "10ms")
			}()
			var rec tokenfile.Record
			select {
			case rec = <-writes:
			case r := <-done:
				t.Fatalf("agent ended before writing: exit %d\n%s", r.Code, r.Stderr)
			case <-time.After(time.Minute):
				t.Fatal("agent: no write within a minute")
			}
			secrets = append(secrets, rec.Value)
			stop()
			r := <-done
			c.Want(r, cli.ExitOK)

			if kind == "access_token" && rec.Value != fleet.Value {
				t.Errorf("agent wrote an access_token that is not the fleet's")
			}
			if n := wechat.Calls(wxtest.PathStableToken) + wechat.Calls(wxtest.PathToken) - tokenCalls; n != 0 {
				t.Errorf("agent made %d token calls, want 0: the fleet's token is in the store", n)
			}
			wantTicket := 0
			if kind == "jsapi_ticket" {
				wantTicket = 1
				if !wechat.TicketValid(rec.Value) {
					t.Errorf("agent wrote a jsapi_ticket WeChat does not know")
				}
			}
			if n := wechat.Calls(wxtest.PathTicket) - ticketCalls; n != wantTicket {
				t.Errorf("agent made %d ticket calls, want %d", n, wantTicket)
			}

			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("the file after agent ended: %v", err)
			}
			var fields map[string]any
			if err := json.Unmarshal(b, &fields); err != nil {
				t.Fatalf("the file is not JSON: %v", err)
			}
			for _, f := range []string{"version", "kind", "appid", "value", "expires_at", "expires_at_unix", "expires_in"} {
				if _, ok := fields[f]; !ok {
					t.Errorf("the file has no %q", f)
				}
			}
			if fields["kind"] != kind || fields["appid"] != testAppID || fields["value"] != rec.Value {
				t.Errorf("the file holds kind %v, appid %v: want %s of %s with the value written", fields["kind"], fields["appid"], kind, testAppID)
			}
			if strings.Contains(string(b), testAppSecret) {
				t.Errorf("the file holds the AppSecret")
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("the file's mode: %v, %v; want 0600", fi.Mode(), err)
			}
			if _, err := tokenfile.Read(path, tokenfile.DefaultMargin, time.Now()); err != nil {
				t.Errorf("Read: %v", err)
			}
			for _, s := range []string{"agent.start", "msg=tokenfile.wrote", "kind=" + kind, "agent.stop"} {
				if !strings.Contains(r.Stderr, s) {
					t.Errorf("agent's log has no %q:\n%s", s, r.Stderr)
				}
			}
		})
	}
	c.Recheck()
}

// TestAgentUsage tests agent's usage errors, each exit 2 before anything
// is opened or written: no --out, a directory that does not exist, an
// unknown --kind, an --interval out of range, no AppSecret, a key for an
// AppID.
func TestAgentUsage(t *testing.T) {
	ctx := context.Background()
	store := "file://" + t.TempDir()
	out := filepath.Join(t.TempDir(), "t.json")
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHAT_APPSECRET": testAppSecret, "WECHATCONF_STORE": store}}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", testAppID}, "give --out"},
		{[]string{"agent", testAppID, "--out", filepath.Join(t.TempDir(), "missing", "t.json")}, "does not exist"},
		{[]string{"agent", testAppID, "--out", out, "--kind", "ticket"}, "--kind"},
		{[]string{"agent", testAppID, "--out", out, "--interval", "2m"}, "--interval"},
		{[]string{"agent", testAppID, "--out", out, "--interval", "0s"}, "--interval"},
		{[]string{"agent", "wecom/corp/1", "--out", out}, "not an AppID"},
		{[]string{"agent", "--out", out}, "APPID"},
	} {
		r := c.Exec(ctx, tc.args...)
		if r.Code != cli.ExitError || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("wechatconf %q: exit %d, %q; want %d and %q", tc.args, r.Code, r.Stderr, cli.ExitError, tc.want)
		}
	}
	c.Setenv("WECHAT_APPSECRET_FILE", filepath.Join(t.TempDir(), "appsecret"))
	if r := c.Exec(ctx, "agent", testAppID, "--out", out); r.Code != cli.ExitError || !strings.Contains(r.Stderr, "not both") {
		t.Errorf("agent with WECHAT_APPSECRET and WECHAT_APPSECRET_FILE: exit %d, %q", r.Code, r.Stderr)
	}
	c.Setenv("WECHAT_APPSECRET_FILE", "")
	c.Setenv("WECHAT_APPSECRET", "")
	if r := c.Exec(ctx, "agent", testAppID, "--out", out); r.Code != cli.ExitError || !strings.Contains(r.Stderr, "WECHAT_APPSECRET") {
		t.Errorf("agent without WECHAT_APPSECRET: exit %d, %q", r.Code, r.Stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused agent wrote %s", out)
	}
}

// TestAgentFollowsTheFleet tests that the agent's file follows the store
// within a poll when another member replaced the token (it saw WeChat
// reject it; the file's readers cannot report that), with no token call of
// the agent's own — not at the agent's own refresh, hours later.
func TestAgentFollowsTheFleet(t *testing.T) {
	ctx := context.Background()
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now})
	t.Cleanup(wechat.Close)
	dir := t.TempDir()
	st, closeStore, err := storeurl.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeStore() })
	worker, err := core.New(core.Config{AppID: testAppID, AppSecret: core.NewSecret(testAppSecret), BaseURL: wechat.URL, Store: st, TokenAPI: core.ClassicToken, NoLedger: true})
	if err != nil {
		t.Fatal(err)
	}
	first, err := worker.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "access_token.json")
	writes := make(chan tokenfile.Record, 16)
	defer cli.SetAgentWritten(func(r tokenfile.Record) { writes <- r })()
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHAT_APPSECRET": testAppSecret, "WECHATCONF_STORE": "file://" + dir}}
	actx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan clitest.Result, 1)
	go func() {
		done <- c.Exec(actx, "--base-url", wechat.URL, "--classic", "agent", testAppID, "--out", path, "--interval", "10ms")
	}()
	next := func() tokenfile.Record {
		t.Helper()
		select {
		case r := <-writes:
			return r
		case r := <-done:
			t.Fatalf("agent ended: exit %d\n%s", r.Code, r.Stderr)
		case <-time.After(time.Minute): // a watchdog, not a pace
			t.Fatal("agent: no write within a minute")
		}
		return tokenfile.Record{}
	}
	if r := next(); r.Value != first.Value {
		t.Fatal("the agent's first write is not the fleet's token")
	}
	calls := wechat.Calls(wxtest.PathToken) + wechat.Calls(wxtest.PathStableToken)
	second, err := worker.RefreshAccessToken(ctx, first.Value) // WeChat rejected it, the worker says
	if err != nil || second.Value == first.Value {
		t.Fatalf("the worker's refresh: %v", err)
	}
	if r := next(); r.Value != second.Value {
		t.Fatal("the agent's next write is not the fleet's replacement")
	}
	if n := wechat.Calls(wxtest.PathToken) + wechat.Calls(wxtest.PathStableToken) - calls; n != 1 {
		t.Errorf("%d token calls, want 1 (the worker's): the agent made its own", n)
	}
	stop()
	c.Want(<-done, cli.ExitOK)
}
