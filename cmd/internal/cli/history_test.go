package cli_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
	"github.com/wechatconf/wechatconf/cmd/internal/cli/clitest"
	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// TestHistoryNamesTheOutsideFetch tests history over the ledger a fleet
// wrote: a fleet instance fetches a classic token, a script outside the
// fleet fetches another (the fleet's dies at once: no overlap), the fleet
// meets the rejection and fetches again — and history shows the three
// fetches oldest first, the OUTSIDE FETCH line under the rejected one with
// the evidence (the rejected token's fingerprint, who fetched it, the API
// and errcode) and the advice, the operator's force (this command's, reason
// operator, by wechatconf-cli@HOST/PID), the day's counts against the
// limits; --json is the ledger itself. No token is printed.
func TestHistoryNamesTheOutsideFetch(t *testing.T) {
	ctx := context.Background()
	// The fleet runs on the simulator's clock, an hour behind, so that its
	// fetches come before the command's (on the system clock).
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Start: time.Now().Add(-time.Hour)})
	t.Cleanup(wechat.Close)
	dir := t.TempDir()
	st, closeStore, err := storeurl.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeStore() })
	fleet, err := core.New(core.Config{AppID: testAppID, AppSecret: core.NewSecret(testAppSecret), Store: st, TokenAPI: core.ClassicToken,
		BaseURL: wechat.URL, HTTPClient: wechat.Client(), Now: wechat.Now, Instance: "web-7f9c/4242", RetryBackoff: time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var tokens []string // every token value seen, none of which may be printed
	seen := func(v string) {
		mu.Lock()
		defer mu.Unlock()
		tokens = append(tokens, v)
	}
	first, err := fleet.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen(first.Value)

	// The script outside the fleet, 42 minutes later: a classic call with
	// the same AppID. The fleet's token dies after WeChat's overlap.
	wechat.Advance(42 * time.Minute)
	q := url.Values{"grant_type": {"client_credential"}, "appid": {testAppID}, "secret": {testAppSecret}}
	resp, err := wechat.Client().Get(wechat.URL + wxtest.PathToken + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var outside struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&outside); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	seen(outside.AccessToken)
	wechat.Advance(wxtest.DefaultOverlap + time.Second)
	var ips struct {
		IPList []string `json:"ip_list"`
	}
	if err := fleet.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, &ips); err != nil { // rejected (40001), fetched again, retried
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := fleet.FlushLedger(fctx); err != nil {
		t.Fatal(err)
	}
	second, err := fleet.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen(second.Value)

	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": "file://" + dir, "WECHAT_APPSECRET": testAppSecret},
		Secrets: func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), tokens...) }}
	r := c.Exec(ctx, "--base-url", wechat.URL, "--classic", "force", testAppID, "--yes") // on the system clock, after the fleet's fetches
	c.Want(r, cli.ExitOK)
	third, err := st.Get(ctx, "wechatconf/"+testAppID+"/access_token")
	if err != nil {
		t.Fatal(err)
	}
	seen(third.Value)
	c.Recheck()

	r = c.Exec(ctx, "history", testAppID)
	c.Want(r, cli.ExitOK)
	t.Logf("wechatconf history %s:\n%s", testAppID, r.Stdout)
	lines := strings.Split(r.Stdout, "\n")
	row := func(prefix string) int { // the index of the first line holding prefix
		for i, l := range lines {
			if strings.Contains(l, prefix) {
				return i
			}
		}
		return -1
	}
	fp := core.Fingerprint
	expiry, rejected, operator, outsideLine := row(" expiry "), row(" rejected "), row(" operator "), row("OUTSIDE FETCH")
	if expiry < 0 || rejected < 0 || operator < 0 || outsideLine < 0 || !(expiry < rejected && rejected < outsideLine && outsideLine < operator) {
		t.Fatalf("history: want the expiry, rejected and operator fetches in that order, the OUTSIDE FETCH line under the rejected one:\n%s", r.Stdout)
	}
	for _, want := range []struct {
		line int
		s    []string
	}{
		{expiry, []string{"web-7f9c/4242", fp(first.Value)}},
		{rejected, []string{"web-7f9c/4242", fp(second.Value), fp(first.Value)}},
		{outsideLine, []string{"token " + fp(first.Value), "fetched by web-7f9c/4242", "rejected 47m1s later", wxtest.PathAPI, "errcode 40001"}},
		{outsideLine + 1, []string{"Use stable_token", "token server"}},
		{operator, []string{"wechatconf-cli@", fp(third.Value), fp(second.Value)}},
	} {
		for _, s := range want.s {
			if !strings.Contains(lines[want.line], s) {
				t.Errorf("history line %q does not hold %q", lines[want.line], s)
			}
		}
	}
	if !strings.Contains(r.Stdout, "stored now: token "+fp(third.Value)) || !strings.Contains(r.Stdout, "of 2000") || !strings.Contains(r.Stdout, "of 20 ") {
		t.Errorf("history: want the stored token's fingerprint and the day's counts against 2000 and 20:\n%s", r.Stdout)
	}

	r = c.Exec(ctx, "history", testAppID, "--json")
	c.Want(r, cli.ExitOK)
	var h cli.History
	if err := json.Unmarshal([]byte(r.Stdout), &h); err != nil {
		t.Fatalf("history --json: %v: %s", err, r.Stdout)
	}
	stored, err := core.ReadLedger(ctx, st, "wechatconf/"+testAppID+"/access_token")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Entries) != 3 || len(stored.Entries) != 3 || h.Entries[1].Outside == nil || h.Entries[1].Outside.Rejected != fp(first.Value) ||
		h.Entries[1].Outside.Code != 40001 || h.Entries[1].Outside.Age != 42*time.Minute+wxtest.DefaultOverlap+time.Second || h.Entries[2].Reason != core.ReasonOperator || h.DailyLimit != core.ClassicTokenDailyLimit {
		t.Errorf("history --json: %s\nwant the stored ledger %+v", r.Stdout, stored)
	}
	var asLedger core.Ledger // the same object decodes as core's Ledger
	outsides := 0
	if err := json.Unmarshal([]byte(r.Stdout), &asLedger); err == nil {
		for _, d := range asLedger.Days {
			outsides += d.Outside
		}
	}
	if len(asLedger.Entries) != 3 || outsides != 1 {
		t.Errorf("history --json as a core.Ledger: %+v, want 3 records and 1 outside fetch counted", asLedger)
	}

	// --key takes the credential's key or its ledger's.
	for _, k := range []string{"wechatconf/" + testAppID + "/access_token", core.LedgerKey("wechatconf/" + testAppID + "/access_token")} {
		if r := c.Exec(ctx, "history", "--key", k, "--json"); r.Code != cli.ExitOK || !strings.Contains(r.Stdout, `"outside"`) {
			t.Errorf("history --key %s: exit %d, stdout %s, stderr %s", k, r.Code, r.Stdout, r.Stderr)
		}
	}
}

// TestHistoryNotFound tests history of a credential with no ledger: exit
// 3, with the not-found hint (where it looked, the keys nearby); and its
// usage errors.
func TestHistoryNotFound(t *testing.T) {
	ctx := context.Background()
	st := newListing()
	if err := st.Set(ctx, "fleet2/"+testAppID+"/access_token", core.Token{Value: "v-0123456789abcdef", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := st.Set(ctx, core.LedgerKey("fleet2/"+testAppID+"/access_token"), core.Token{Value: `{"v":1,"entries":[],"days":[]}`}); err != nil {
		t.Fatal(err)
	}
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": "file://" + t.TempDir()}, Run: cli.RunWithStore(st)}
	r := c.Exec(ctx, "history", testAppID)
	c.Want(r, cli.ExitNotFound)
	for _, want := range []string{"wechatconf/" + testAppID + "/access_token/fetch_ledger: no fetch ledger", "looked in: store ",
		"fleet2/" + testAppID + "/access_token/fetch_ledger", "try: --prefix fleet2"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("history of nothing: stderr %q, want %q", r.Stderr, want)
		}
	}
	c.Want(c.Exec(ctx, "--prefix", "fleet2", "history", testAppID), cli.ExitOK)

	if err := st.Set(ctx, core.LedgerKey("wechatconf/"+testAppID+"/jsapi_ticket"), core.Token{Value: "not a ledger"}); err != nil {
		t.Fatal(err)
	}
	if r := c.Exec(ctx, "history", testAppID, "jsapi_ticket"); r.Code != cli.ExitError || !strings.Contains(r.Stderr, "corrupt fetch ledger") {
		t.Errorf("history of a corrupt ledger: exit %d, stderr %q; want %d saying corrupt", r.Code, r.Stderr, cli.ExitError)
	}
	r = c.Exec(ctx, "ls", testAppID, "--json")
	c.Want(r, cli.ExitOK)
	if es := r.Entries(t); len(es) != 1 || es[0].Kind != "jsapi_ticket/fetch_ledger" || es[0].Status != cli.StatusCorrupt || !strings.Contains(es[0].Error, "corrupt fetch ledger") {
		t.Errorf("ls of a corrupt ledger: %s, want status corrupt with the error", r.Stdout)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"history"}, "APPID"},
		{[]string{"history", testAppID, "bogus"}, "unknown kind"},
		{[]string{"history", "--key", "k", testAppID}, "--key"},
	} {
		if r := c.Exec(ctx, tc.args...); r.Code != cli.ExitError || !strings.Contains(r.Stderr, tc.msg) {
			t.Errorf("wechatconf %q: exit %d, stderr %q; want %d and %q", tc.args, r.Code, r.Stderr, cli.ExitError, tc.msg)
		}
	}
}
