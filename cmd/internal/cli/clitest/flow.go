package clitest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Flow runs get, ls, refresh, force, inspect, history and watch against
// the store storeURL names (given in --store, or in WECHATCONF_STORE when
// viaEnv: a URL with a password), under a key prefix of the test's own,
// and a simulated WeChat. It tests the exit codes, that no value is
// printed without --reveal, that a refresh of a valid token makes no token
// call without --yes and one forced call with it, that a not-found says
// where it looked, and that the command's fetches reach the fleet's fetch
// ledger as an operator's (history, inspect). ls is tested in full when
// the store implements core.KeyLister, and for its error otherwise.
func Flow(t *testing.T, storeURL string, viaEnv bool) {
	ctx := context.Background()
	wechat := wxtest.New(wxtest.Options{AppID: AppID, AppSecret: AppSecret, Now: time.Now})
	t.Cleanup(wechat.Close)
	fetches := func() int { return wechat.Calls(wxtest.PathStableToken) + wechat.Calls(wxtest.PathToken) }

	st, closeStore, err := storeurl.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeStore() })
	_, lists := st.(core.KeyLister)
	redis := strings.HasPrefix(storeURL, "redis")
	prefix := "cli" + strings.ReplaceAll(t.Name(), "/", "_")
	key := prefix + "/" + AppID + "/access_token"

	var seen sync.Map // every token value the test has seen in the store
	stored := func() core.Token {
		tok, err := st.Get(ctx, key)
		if err != nil {
			t.Fatalf("reading %s from the store: %v", key, err)
		}
		seen.Store(tok.Value, true)
		return tok
	}
	c := &CLI{T: t, Environ: map[string]string{"WECHAT_APPSECRET": AppSecret}, Secrets: func() []string {
		var vs []string
		seen.Range(func(k, _ any) bool { vs = append(vs, k.(string)); return true })
		return vs
	}}
	global := []string{"--prefix", prefix, "--base-url", wechat.URL}
	if viaEnv {
		c.Setenv("WECHATCONF_STORE", storeURL)
	} else {
		global = append(global, "--store", storeURL)
	}
	cmd := func(args ...string) Result {
		t.Helper()
		return c.Exec(ctx, append(append([]string{}, global...), args...)...)
	}

	// Nothing stored yet: 3, saying where it looked.
	r := cmd("get", AppID)
	c.Want(r, cli.ExitNotFound)
	if !strings.Contains(r.Stderr, "looked in: store ") || !strings.Contains(r.Stderr, "key "+key) || !strings.Contains(r.Stderr, `key prefix "`+prefix+`"`) {
		t.Errorf("get of nothing: stderr %q, want where it looked (the store, the key prefix %q, the key %s)", r.Stderr, prefix, key)
	}
	r = cmd("--json", "inspect", AppID)
	c.Want(r, cli.ExitNotFound)
	if vs := r.Views(t); len(vs) != 3 || vs[0].Status != cli.StatusAbsent {
		t.Fatalf("inspect of nothing: %+v", vs)
	}
	r = cmd("ls")
	if lists {
		c.Want(r, cli.ExitNotFound)
		if !strings.Contains(r.Stderr, `no credential under key prefix "`+prefix+`"`) {
			t.Errorf("ls of nothing: stderr %q", r.Stderr)
		}
	} else {
		c.Want(r, cli.ExitError)
		if !strings.Contains(r.Stderr, "cannot list its keys") {
			t.Errorf("ls on a store that cannot list: stderr %q, want it said", r.Stderr)
		}
	}

	// refresh with no AppSecret: a usage error, no WeChat call.
	c.Setenv("WECHAT_APPSECRET", "")
	c.Want(cmd("refresh", AppID), cli.ExitError)
	c.Setenv("WECHAT_APPSECRET", AppSecret)
	if fetches() != 0 {
		t.Fatalf("%d fetches without an AppSecret", fetches())
	}

	// refresh of nothing: one fetch, no --yes needed, stored, printed masked.
	r = cmd("refresh", AppID, "--json")
	c.Want(r, cli.ExitOK)
	first := stored()
	c.Recheck()
	vs := r.Views(t)
	if len(vs) != 1 || vs[0].Key != key || vs[0].Fingerprint != cli.Fingerprint(first.Value) || vs[0].Value != "" ||
		vs[0].Length != len(first.Value) || vs[0].Replaced == nil || !*vs[0].Replaced || fetches() != 1 || wechat.ForceRefreshes() != 0 {
		t.Fatalf("refresh: %+v (stored %v, %d fetches, %d forced)", vs, first, fetches(), wechat.ForceRefreshes())
	}

	// get: found and valid, masked; --reveal shows it.
	r = cmd("get", AppID, "--json")
	c.Want(r, cli.ExitOK)
	v := r.Views(t)[0]
	if v.Status != cli.StatusValid || v.Fingerprint != cli.Fingerprint(first.Value) || v.ExpiresAt == nil || !v.ExpiresAt.Equal(first.ExpiresAt) ||
		*v.ExpiresIn < 7000 || v.Age == nil || *v.Age > 200 {
		t.Fatalf("get --json: %+v", v)
	}
	r = cmd("get", AppID)
	c.Want(r, cli.ExitOK)
	if !strings.Contains(r.Stdout, key) || !strings.Contains(r.Stdout, cli.Fingerprint(first.Value)) || !strings.Contains(r.Stdout, "expires_at=") {
		t.Fatalf("get: %s", r.Stdout)
	}
	r = cmd("get", "--key", key, "--reveal", "--json")
	c.Want(r, cli.ExitOK)
	if r.Views(t)[0].Value != first.Value {
		t.Fatalf("get --reveal: %s", r.Stdout)
	}

	// refresh of a valid token: nothing done, no token call, said so.
	r = cmd("refresh", AppID, "--json")
	c.Want(r, cli.ExitOK)
	if n := fetches(); n != 1 || wechat.ForceRefreshes() != 0 || stored().Value != first.Value {
		t.Errorf("refresh of a valid token without --yes: %d token calls (want 1, the first refresh's), %d forced (want 0), token replaced %t",
			n, wechat.ForceRefreshes(), stored().Value != first.Value)
	}
	if v := r.Views(t)[0]; v.Replaced == nil || *v.Replaced || v.Fingerprint != cli.Fingerprint(first.Value) ||
		!strings.Contains(r.Stderr, "nothing done") || !strings.Contains(r.Stderr, "--yes") || !strings.Contains(r.Stderr, "forced refreshes") {
		t.Errorf("refresh of a valid token: %+v\nstderr: %s\nwant replaced=false, and stderr saying nothing was done and what --yes would cost", v, r.Stderr)
	}

	// refresh --yes: the stored value is the rejected one; stable_token
	// hands it back and core escalates to force_refresh: a new token.
	r = cmd("refresh", AppID, "--yes", "--json")
	c.Want(r, cli.ExitOK)
	second := stored()
	if v := r.Views(t)[0]; second.Value == first.Value || v.Previous != cli.Fingerprint(first.Value) || v.Fingerprint != cli.Fingerprint(second.Value) || wechat.ForceRefreshes() != 1 {
		t.Fatalf("refresh --yes: %+v, %d forced calls (want 1)", v, wechat.ForceRefreshes())
	}

	// force: refused without --yes, saying what it costs; with it, a
	// forced call and a new token.
	before := wechat.ForceRefreshes()
	r = cmd("force", AppID)
	c.Want(r, cli.ExitError)
	if !strings.Contains(r.Stderr, "--yes") || !strings.Contains(r.Stderr, "forced refreshes") || wechat.ForceRefreshes() != before {
		t.Fatalf("force without --yes: %s", r.Stderr)
	}
	r = cmd("force", AppID, "--yes")
	c.Want(r, cli.ExitOK)
	third := stored()
	if third.Value == second.Value || wechat.ForceRefreshes() != before+1 || !strings.Contains(r.Stderr, "stops working") ||
		!strings.Contains(r.Stdout, cli.Fingerprint(third.Value)) || !strings.Contains(r.Stdout, "previous="+cli.Fingerprint(second.Value)) {
		t.Fatalf("force: forced %d→%d\nstdout: %s\nstderr: %s", before, wechat.ForceRefreshes(), r.Stdout, r.Stderr)
	}

	// An expired ticket: 1.
	ticketKey := prefix + "/" + AppID + "/jsapi_ticket"
	expired := core.Token{Value: "expired-ticket-value-0123456789", ExpiresAt: time.Now().Add(-time.Minute)}
	seen.Store(expired.Value, true)
	if err := st.Set(ctx, ticketKey, expired); err != nil {
		t.Fatal(err)
	}
	r = cmd("get", AppID, "jsapi_ticket", "--json")
	c.Want(r, cli.ExitExpired)
	if v := r.Views(t)[0]; v.Status != cli.StatusExpired || *v.ExpiresIn > -59 {
		t.Fatalf("expired get: %+v", v)
	}

	// inspect: two keys present, one absent.
	r = cmd("inspect", AppID, "--json")
	c.Want(r, cli.ExitOK)
	vs = r.Views(t)
	if len(vs) != 3 || vs[0].Status != cli.StatusValid || vs[1].Status != cli.StatusExpired || vs[2].Status != cli.StatusAbsent {
		t.Fatalf("inspect: %s", r.Stdout)
	}
	if redis {
		if vs[0].Lock == nil || vs[0].Lock.Held {
			t.Fatalf("inspect on Redis shows no free lock: %s", r.Stdout)
		}
	} else if vs[0].Lock != nil {
		t.Fatalf("inspect shows a lock the store cannot tell: %s", r.Stdout)
	}

	// The fetch ledger: every token call the command made, recorded (before
	// the command exited) as an operator's by the command's instance.
	// inspect shows the last fetch of the access_token; the ticket, set
	// directly, has no ledger.
	l, err := core.ReadLedger(ctx, st, key)
	if err != nil {
		t.Fatalf("ReadLedger after refresh and force: %v", err)
	}
	total := 0
	for _, d := range l.Days {
		total += d.Fetches
	}
	if total != fetches() || len(l.Entries) != fetches() {
		t.Errorf("the ledger counts %d fetches in %d records, want the %d token calls made: %+v", total, len(l.Entries), fetches(), l)
	}
	for _, e := range l.Entries {
		if e.Reason != core.ReasonOperator || !strings.HasPrefix(e.Instance, "wechatconf-cli@") {
			t.Errorf("the command's fetch recorded as %q by %q, want reason %q by wechatconf-cli@HOST/PID", e.Reason, e.Instance, core.ReasonOperator)
		}
	}
	last, _ := l.Last()
	if s := vs[0].Ledger; s == nil || s.LastFetch == nil || !s.LastFetch.Equal(last.At) || s.LastBy != last.Instance || s.LastReason != core.ReasonOperator ||
		s.Fetches < 1 || s.Fetches > total || vs[1].Ledger != nil {
		t.Errorf("inspect's ledger summary: %s\nwant the access_token's last fetch (%v by %s) and no ledger for the ticket", r.Stdout, last.At, last.Instance)
	}
	r = cmd("history", AppID)
	c.Want(r, cli.ExitOK)
	if !strings.Contains(r.Stdout, core.LedgerKey(key)) || strings.Count(r.Stdout, " operator ") != fetches() ||
		!strings.Contains(r.Stdout, "stored now: token "+core.Fingerprint(third.Value)) || !strings.Contains(r.Stdout, "of 20") {
		t.Errorf("history: %s\nwant the ledger's key, %d operator fetches, the stored token's fingerprint and the forced limit", r.Stdout, fetches())
	}
	r = cmd("history", AppID, "--json")
	c.Want(r, cli.ExitOK)
	if hs := decode[cli.History](t, r.Stdout); len(hs) != 1 || hs[0].Key != key || len(hs[0].Entries) != len(l.Entries) ||
		hs[0].Entries[len(l.Entries)-1].Token != core.Fingerprint(third.Value) || hs[0].ForcedDailyLimit != core.DefaultForceRefreshDailyLimit {
		t.Errorf("history --json: %s", r.Stdout)
	}
	r = cmd("history", AppID, "jsapi_ticket")
	c.Want(r, cli.ExitNotFound)
	if !strings.Contains(r.Stderr, core.LedgerKey(ticketKey)+": no fetch ledger") || !strings.Contains(r.Stderr, "looked in: store ") {
		t.Errorf("history of a ticket with no ledger: stderr %q, want the ledger's key and where it looked", r.Stderr)
	}

	// ls: the two credentials, by AppID and kind, with no value, and the
	// access_token's fetch ledger beside it, of the same account, status
	// ledger, no expiry.
	if lists {
		r = cmd("ls", "--json")
		c.Want(r, cli.ExitOK)
		es := r.Entries(t)
		if len(es) != 3 || es[0].Key != key || es[0].Kind != "access_token" || es[0].AppID != AppID || es[0].Platform != cli.PlatformOfficialAccount ||
			es[0].Prefix != prefix || es[0].Status != cli.StatusValid || es[0].ExpiresAt == nil || !es[0].ExpiresAt.Equal(third.ExpiresAt) ||
			es[1].Key != core.LedgerKey(key) || es[1].Kind != "access_token/fetch_ledger" || es[1].AppID != AppID ||
			es[1].Platform != cli.PlatformOfficialAccount || es[1].Status != cli.StatusLedger || es[1].ExpiresAt != nil ||
			es[2].Kind != "jsapi_ticket" || es[2].Status != cli.StatusExpired {
			t.Errorf("ls --json: %s", r.Stdout)
		}
		if redis != (len(es) > 0 && es[0].Lock != nil && es[0].RedisKey != "") {
			t.Errorf("ls --json on %s: lock and Redis key shown %t, want %t: %s", storeURL, !redis, redis, r.Stdout)
		}
		r = cmd("ls", AppID)
		c.Want(r, cli.ExitOK)
		if lines := strings.Split(strings.TrimSpace(r.Stdout), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[0], "PLATFORM") ||
			!strings.Contains(lines[1], "official_account") || !strings.Contains(lines[1], AppID) || !strings.Contains(lines[1], "access_token") ||
			!strings.Contains(lines[2], "access_token/fetch_ledger") || !strings.Contains(lines[2], " ledger ") {
			t.Errorf("ls %s: %s", AppID, r.Stdout)
		}
	}

	// watch: the starting state, then the change a refresh elsewhere makes.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out, errOut SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(wctx, append(append([]string{}, global...), "watch", AppID, "--interval", "20ms", "--count", "1", "--json"),
			c.Getenv, &out, &errOut)
	}()
	for !strings.Contains(out.String(), "\n") {
		time.Sleep(10 * time.Millisecond)
		if wctx.Err() != nil {
			t.Fatalf("watch printed nothing: %s", errOut.String())
		}
	}
	c.Want(cmd("force", AppID, "--yes"), cli.ExitOK)
	fourth := stored()
	select {
	case code := <-done:
		w := Result{code, out.String(), errOut.String()}
		c.Want(w, cli.ExitOK)
		vs := w.Views(t)
		if len(vs) != 2 || vs[0].Fingerprint != cli.Fingerprint(third.Value) || vs[1].Fingerprint != cli.Fingerprint(fourth.Value) || vs[1].Time == nil {
			t.Fatalf("watch: %s", w.Stdout)
		}
		for _, s := range []string{third.Value, fourth.Value, AppSecret} {
			if strings.Contains(w.Stdout+w.Stderr, s) {
				t.Fatalf("watch printed a secret: %s", w.Stdout)
			}
		}
	case <-wctx.Done():
		t.Fatalf("watch did not stop after one change: %s", out.String())
	}

	// A wrong AppSecret: 2, and the error shows neither secret.
	c.Recheck()
	c.Setenv("WECHAT_APPSECRET", "wrong-secret-0123456789abcdef")
	r = cmd("refresh", AppID, "--yes")
	c.Want(r, cli.ExitError)
	if strings.Contains(r.Stderr, "wrong-secret-0123456789abcdef") || r.Stdout != "" {
		t.Fatalf("refresh with a wrong secret:\nstdout: %s\nstderr: %s", r.Stdout, r.Stderr)
	}
}

// HeldLock tests, on a Redis store (the one store whose lock inspect
// reads), that while a refresh holds the access_token's lock (its WeChat
// call blocked), inspect shows the lock held with its lease, and ls too
// when the store lists its keys.
func HeldLock(t *testing.T, storeURL string) {
	ctx := context.Background()
	// An AppID of its own: Flow stores AppID's token under another key
	// prefix of the same store, and refresh would then refuse to fetch.
	const appID = "wxheldlock00000001"
	wechat := wxtest.New(wxtest.Options{AppID: appID, AppSecret: AppSecret, Now: time.Now})
	t.Cleanup(wechat.Close)
	gate := wechat.Block(wxtest.PathStableToken)
	c := &CLI{T: t, Environ: map[string]string{"WECHAT_APPSECRET": AppSecret, "WECHATCONF_STORE": storeURL}}
	global := []string{"--prefix", "heldlock", "--base-url", wechat.URL}
	done := make(chan Result, 1)
	go func() {
		var out, errOut SyncBuffer
		code := cli.Run(ctx, append(append([]string{}, global...), "refresh", appID), c.Getenv, &out, &errOut)
		done <- Result{code, out.String(), errOut.String()}
	}()
	select {
	case <-gate.Arrived():
	case <-time.After(20 * time.Second):
		t.Fatal("refresh made no WeChat call")
	}
	r := c.Exec(ctx, append(append([]string{}, global...), "inspect", appID, "--json")...)
	gate.Release()
	c.Want(r, cli.ExitNotFound) // nothing stored yet
	vs := r.Views(t)
	if len(vs) != 3 || vs[0].Lock == nil || !vs[0].Lock.Held || vs[0].Lock.Lease == nil || *vs[0].Lock.Lease <= 0 ||
		vs[1].Lock == nil || vs[1].Lock.Held {
		t.Fatalf("inspect during a refresh: %s", r.Stdout)
	}
	if r := <-done; r.Code != cli.ExitOK {
		t.Fatalf("refresh: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
}
