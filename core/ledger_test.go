package core_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// flush waits for the ledgers of confs.
func flush(t *testing.T, confs ...*core.Conf) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), watchdog)
	defer cancel()
	for _, c := range confs {
		if err := c.FlushLedger(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// Every fetch of a fleet of two, in the store they share: who, why, which
// token replaced which (by fingerprint, never the value), and the day's
// count.
func TestLedgerRecordsEveryFleetFetch(t *testing.T) {
	s := newServer(t)
	store := core.NewMemoryStore()
	a := newConf(t, s, func(c *core.Config) { classic(c); c.Store = store; c.Instance = "web-a/1" })
	b := newConf(t, s, func(c *core.Config) { classic(c); c.Store = store; c.Instance = "web-b/2" })
	ctx := t.Context()
	t1, err := a.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AccessToken(ctx); err != nil { // adopted: not a fetch
		t.Fatal(err)
	}
	s.Advance(2 * time.Hour)
	t2, err := b.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, a, b)
	l, err := a.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 2 {
		t.Fatalf("%d records, want 2: %+v", len(l.Entries), l.Entries)
	}
	e0, e1 := l.Entries[0], l.Entries[1]
	if e0.Instance != "web-a/1" || e0.Reason != core.ReasonExpiry || e0.Token != core.Fingerprint(t1.Value) || e0.Replaced != "" {
		t.Errorf("first record %+v", e0)
	}
	if e1.Instance != "web-b/2" || e1.Reason != core.ReasonExpiry || e1.Token != core.Fingerprint(t2.Value) || e1.Replaced != e0.Token {
		t.Errorf("second record %+v", e1)
	}
	if !e1.At.After(e0.At) || e0.Latency < 0 {
		t.Errorf("times: %v then %v, latency %v", e0.At, e1.At, e0.Latency)
	}
	if got, want := l.Today(s.Now()).Fetches, 2; got != want || s.TokensIssued() != want {
		t.Errorf("today %d fetches in the ledger, %d issued by WeChat, want %d", got, s.TokensIssued(), want)
	}
	raw, err := store.Get(ctx, core.LedgerKey(appKey("access_token")))
	if err != nil {
		t.Fatal(err)
	}
	// Not durable state (a zero ExpiresAt): a store that keeps keys while
	// they may be read (Redis's TTL) drops it 8 days after the last fetch.
	if min := time.Now().Add(core.LedgerDays*24*time.Hour - time.Hour); raw.ExpiresAt.Before(min) {
		t.Errorf("the ledger is stored to expire at %v, want %d days on", raw.ExpiresAt, core.LedgerDays)
	}
	for _, secret := range []string{t1.Value, t2.Value, appSecret} {
		if strings.Contains(raw.Value, secret) || strings.Contains(fmt.Sprintf("%+v %#v", l, l), secret) {
			t.Fatalf("the ledger holds a secret: %s", raw.Value)
		}
	}
}

func appKey(kind string) string { return "wechatconf/" + appID + "/" + kind }

// A script outside the fleet fetches a classic token: the fleet's token
// dies after WeChat's overlap, and the instance that replaces it names the
// outside fetch — once — with the evidence, in its log and in the ledger.
func TestLedgerNamesTheOutsideFetcher(t *testing.T) {
	s := newServer(t)
	store := core.NewMemoryStore()
	var la, lb jsonLog
	a := newConf(t, s, func(c *core.Config) {
		classic(c)
		c.Store, c.Instance, c.Logger = store, "web-a/1", la.logger(slog.LevelDebug)
	})
	b := newConf(t, s, func(c *core.Config) {
		classic(c)
		c.Store, c.Instance, c.Logger = store, "web-b/2", lb.logger(slog.LevelDebug)
	})
	ctx := t.Context()
	t1, err := a.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	s.Advance(10 * time.Minute)
	outsideFetch(t, s)
	s.Advance(wxtest.DefaultOverlap + time.Second)
	// Both instances hit the rejection: one replaces the token, the other
	// finds the replacement.
	for _, c := range []*core.Conf{a, b} {
		if err := callAPI(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, a, b)
	l, err := a.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last, _ := l.Last()
	o := last.Outside
	if len(l.Entries) != 2 || last.Reason != core.ReasonRejected || o == nil {
		t.Fatalf("ledger %+v: want a rejected fetch naming an outside fetch", l.Entries)
	}
	if o.Rejected != core.Fingerprint(t1.Value) || o.FetchedBy != "web-a/1" || o.Age != 10*time.Minute+wxtest.DefaultOverlap+time.Second || o.Code != 40001 || o.Path != wxtest.PathAPI || o.Forced {
		t.Errorf("evidence %+v", o)
	}
	if l.Today(s.Now()).Outside != 1 {
		t.Errorf("today's outside count %d, want 1", l.Today(s.Now()).Outside)
	}
	events := append(la.records(t, core.EventOutsideFetch), lb.records(t, core.EventOutsideFetch)...)
	if len(events) != 1 {
		t.Fatalf("%d %s events, want 1", len(events), core.EventOutsideFetch)
	}
	ev := events[0]
	if ev["fetched_by"] != "web-a/1" || ev["rejected"] != o.Rejected || !strings.Contains(ev["advice"].(string), "stable_token") {
		t.Errorf("event %v", ev)
	}
	la.mu.Lock()
	lb.mu.Lock()
	logs := la.buf.String() + lb.buf.String()
	la.mu.Unlock()
	lb.mu.Unlock()
	if strings.Contains(logs, t1.Value) || strings.Contains(logs, appSecret) {
		t.Error("a log line holds a secret")
	}
}

// On stable_token only a forced refresh rotates the token: one made
// outside the fleet is named as such.
func TestLedgerNamesAForcedRefreshElsewhere(t *testing.T) {
	s := newServer(t)
	var lg jsonLog
	a := newConf(t, s, func(c *core.Config) { c.Instance = "web-a/1"; c.Logger = lg.logger(slog.LevelInfo) })
	ctx := t.Context()
	t1, err := a.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Minute)
	body := strings.NewReader(fmt.Sprintf(`{"grant_type":"client_credential","appid":%q,"secret":%q,"force_refresh":true}`, appID, appSecret))
	resp, err := s.Client().Post(s.URL+wxtest.PathStableToken, "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s.TokenValid(t1.Value) {
		t.Fatal("the forced refresh did not kill the token")
	}
	if err := callAPI(ctx, a); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	l, err := a.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last, _ := l.Last()
	if last.Outside == nil || !last.Outside.Forced || last.Outside.FetchedBy != "web-a/1" {
		t.Fatalf("ledger %+v: want the forced refresh elsewhere named", l.Entries)
	}
	if ev := lg.records(t, core.EventOutsideFetch); len(ev) != 1 || ev[0]["forced_elsewhere"] != true || !strings.Contains(ev[0]["advice"].(string), "force_refresh") {
		t.Errorf("events %v", ev)
	}
}

// A day of a fleet with no one outside: tokens expire, are rejected after
// the fleet replaced them, are refreshed by whichever instance comes
// first — and no outside fetch is ever named. The ledger's count is
// WeChat's.
func TestLedgerNoFalseAlarmInAFleetDay(t *testing.T) {
	for _, api := range []core.TokenAPI{core.ClassicToken, core.StableToken} {
		t.Run(api.String(), func(t *testing.T) {
			s := newServer(t)
			store := core.NewMemoryStore()
			var logs [4]jsonLog
			var fleet []*core.Conf
			for i := range logs {
				fleet = append(fleet, newConf(t, s, func(c *core.Config) {
					c.TokenAPI, c.Store, c.Instance, c.Logger = api, store, fmt.Sprintf("web-%d/1", i), logs[i].logger(slog.LevelInfo)
				}))
			}
			ctx := t.Context()
			start := s.Now()
			for step := 0; s.Now().Sub(start) < 24*time.Hour; step++ {
				var wg sync.WaitGroup
				for _, c := range fleet {
					wg.Go(func() {
						if err := callAPI(ctx, c); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
				s.Advance(7 * time.Minute)
			}
			flush(t, fleet...)
			for i := range logs {
				if ev := logs[i].records(t, core.EventOutsideFetch); len(ev) != 0 {
					t.Fatalf("instance %d named an outside fetch in a fleet without one: %v", i, ev)
				}
			}
			l, err := fleet[0].Ledger(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sum := 0
			for _, d := range l.Days {
				sum += d.Fetches
			}
			if sum != s.TokensIssued() || sum < 12 {
				t.Errorf("the ledger counts %d fetches, WeChat issued %d", sum, s.TokensIssued())
			}
		})
	}
}

// ledgerFaults is a MemoryStore whose ledger calls fail as a test says.
type ledgerFaults struct {
	*core.MemoryStore
	mu sync.Mutex
	// getFail and refreshFail fail that many ledger Get / Refresh calls;
	// landFail lets that many ledger Refresh calls land and report failure;
	// hang makes that many ledger Refresh calls wait for their ctx.
	getFail, refreshFail, landFail, hang int
	// before runs once before the next ledger Refresh (another process
	// writing in between).
	before func()
	// block, if set, holds every ledger call until it is closed.
	block chan struct{}
	// failed, if set, gets a value (when it has room) at each failed
	// ledger Refresh.
	failed chan struct{}
	calls  atomic.Int64
}

var errInjected = errors.New("injected store failure")

func isLedger(key string) bool { return strings.HasSuffix(key, core.LedgerKeySuffix) }

func (s *ledgerFaults) take(n *int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *n > 0 {
		*n--
		return true
	}
	return false
}

func (s *ledgerFaults) wait(ctx context.Context) error {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *ledgerFaults) Get(ctx context.Context, key string) (core.Token, error) {
	if isLedger(key) {
		s.calls.Add(1)
		if err := s.wait(ctx); err != nil {
			return core.Token{}, err
		}
		if s.take(&s.getFail) {
			return core.Token{}, errInjected
		}
	}
	return s.MemoryStore.Get(ctx, key)
}

func (s *ledgerFaults) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if !isLedger(key) {
		return s.MemoryStore.Refresh(ctx, key, stale, fetch)
	}
	s.calls.Add(1)
	if err := s.wait(ctx); err != nil {
		return core.Token{}, err
	}
	s.mu.Lock()
	before := s.before
	s.before = nil
	s.mu.Unlock()
	if before != nil {
		before()
	}
	switch {
	case s.take(&s.refreshFail):
		if s.failed != nil {
			s.failed <- struct{}{}
		}
		return core.Token{}, errInjected
	case s.take(&s.hang):
		<-ctx.Done()
		return core.Token{}, ctx.Err()
	case s.take(&s.landFail):
		if _, err := s.MemoryStore.Refresh(ctx, key, stale, fetch); err != nil {
			return core.Token{}, err
		}
		return core.Token{}, errInjected
	}
	return s.MemoryStore.Refresh(ctx, key, stale, fetch)
}

// Each fault point of the ledger write — a Get or Refresh that fails, one
// that lands but reports failure, one that hangs, another process writing
// between the Get and the Refresh, a corrupt stored ledger — leaves every
// fetch counted once, the token served, and the store's token untouched.
func TestLedgerWriteFaultPoints(t *testing.T) {
	cases := []struct {
		name  string
		setup func(*ledgerFaults, *core.MemoryStore)
		want  int // records in the ledger
	}{
		{"get fails", func(f *ledgerFaults, _ *core.MemoryStore) { f.getFail = 2 }, 1},
		{"refresh fails", func(f *ledgerFaults, _ *core.MemoryStore) { f.refreshFail = 2 }, 1},
		{"refresh lands but reports failure", func(f *ledgerFaults, _ *core.MemoryStore) { f.landFail = 1 }, 1},
		{"refresh hangs", func(f *ledgerFaults, _ *core.MemoryStore) { f.hang = 1 }, 1},
		{"another process writes in between", func(f *ledgerFaults, m *core.MemoryStore) {
			f.before = func() {
				other := core.Ledger{Entries: []core.FetchRecord{{At: time.Unix(1, 0).UTC(), Instance: "elsewhere/9", Seq: 1, Reason: core.ReasonExpiry, Token: "0123456789ab"}}}
				if err := m.Set(context.Background(), core.LedgerKey(appKey("access_token")), core.Token{Value: encodeForTest(other)}); err != nil {
					panic(err)
				}
			}
		}, 2},
		{"corrupt stored ledger", func(_ *ledgerFaults, m *core.MemoryStore) {
			if err := m.Set(context.Background(), core.LedgerKey(appKey("access_token")), core.Token{Value: "{not a ledger"}); err != nil {
				panic(err)
			}
		}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			mem := core.NewMemoryStore()
			store := &ledgerFaults{MemoryStore: mem}
			tc.setup(store, mem)
			var lg jsonLog
			c := newConf(t, s, func(c *core.Config) {
				classic(c)
				c.Store, c.Instance, c.Logger, c.RefreshTimeout = store, "web-a/1", lg.logger(slog.LevelInfo), time.Second
			})
			core.SetLedgerBackoff(c.AccessTokenCredential(), time.Millisecond, 10*time.Millisecond)
			ctx := t.Context()
			tok, err := c.AccessToken(ctx)
			if err != nil {
				t.Fatal(err)
			}
			flush(t, c)
			l, err := c.Ledger(ctx)
			if err != nil {
				t.Fatal(err)
			}
			mine := 0
			for _, e := range l.Entries {
				if e.Instance == "web-a/1" {
					mine++
					if e.Token != core.Fingerprint(tok.Value) {
						t.Errorf("record %+v is not the fetch's", e)
					}
				}
			}
			if mine != 1 || len(l.Entries) != tc.want {
				t.Fatalf("ledger %+v: want this fetch once among %d records", l.Entries, tc.want)
			}
			if got := l.Today(s.Now()).Fetches; got != 1 {
				t.Errorf("today's count %d, want 1 (this process's fetch, counted once)", got)
			}
			if stored, err := mem.Get(ctx, appKey("access_token")); err != nil || stored.Value != tok.Value {
				t.Errorf("the stored token is %v, %v; want the one fetched", stored, err)
			}
			if s.TokensIssued() != 1 {
				t.Errorf("%d token calls, want 1", s.TokensIssued())
			}
		})
	}
}

// encodeForTest encodes a ledger as the writer stores it.
func encodeForTest(l core.Ledger) string { return core.EncodeLedgerForTest(l) }

// A process killed between the token's write and the ledger's loses that
// record, and nothing else: the token is in the store, the next fetches
// are recorded, and a rejection of the unrecorded token is never called an
// outside fetch (the ledger cannot vouch that the fleet fetched it).
func TestLedgerProcessKilledBetweenTheWrites(t *testing.T) {
	s := newServer(t)
	mem := core.NewMemoryStore()
	dying := &ledgerFaults{MemoryStore: mem, block: make(chan struct{})}
	var lg jsonLog
	a := newConf(t, s, func(c *core.Config) { classic(c); c.Store, c.Instance = dying, "dies/1" })
	b := newConf(t, s, func(c *core.Config) {
		classic(c)
		c.Store, c.Instance, c.Logger = mem, "web-b/2", lg.logger(slog.LevelInfo)
	})
	ctx := t.Context()
	t1, err := a.AccessToken(ctx) // written; its record never leaves the process
	if err != nil {
		t.Fatal(err)
	}
	if stored, err := mem.Get(ctx, appKey("access_token")); err != nil || stored.Value != t1.Value {
		t.Fatalf("the token was not written: %v", err)
	}
	// a is "killed": its ledger writer never gets through.
	s.Advance(10 * time.Minute)
	outsideFetch(t, s)
	s.Advance(wxtest.DefaultOverlap + time.Second)
	if err := callAPI(ctx, b); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	l, err := b.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 1 || l.Entries[0].Instance != "web-b/2" || l.Entries[0].Outside != nil {
		t.Fatalf("ledger %+v: want b's fetch only, naming nobody", l.Entries)
	}
	if ev := lg.records(t, core.EventOutsideFetch); len(ev) != 0 {
		t.Errorf("an outside fetch was named on no evidence: %v", ev)
	}
	close(dying.block) // let a's goroutine end with the test
}

// A store that never takes the ledger costs the callers nothing: tokens are
// served, and each failure is an EventStoreError "ledger".
func TestLedgerStoreDownDoesNotReachCallers(t *testing.T) {
	s := newServer(t)
	store := &ledgerFaults{MemoryStore: core.NewMemoryStore(), refreshFail: 1 << 30, failed: make(chan struct{}, 1)}
	var lg jsonLog
	c := newConf(t, s, func(c *core.Config) { classic(c); c.Store, c.Logger = store, lg.logger(slog.LevelWarn) })
	core.SetLedgerBackoff(c.AccessTokenCredential(), time.Millisecond, time.Millisecond)
	ctx := t.Context()
	for range 3 {
		if err := callAPI(ctx, c); err != nil {
			t.Fatal(err)
		}
		s.Advance(2 * time.Hour)
	}
	// The writer logs each failure before it tries again: after the third
	// failed attempt, two are logged.
	for range 3 {
		select {
		case <-store.failed:
		case <-time.After(watchdog):
			t.Fatal("the ledger writer did not try again")
		}
	}
	if n := len(storeErrors(t, &lg, "ledger")); n < 2 {
		t.Errorf("%d EventStoreError \"ledger\" records, want at least 2", n)
	}
}

func storeErrors(t *testing.T, lg *jsonLog, op string) []map[string]any {
	var out []map[string]any
	for _, r := range lg.records(t, core.EventStoreError) {
		if r["op"] == op {
			out = append(out, r)
		}
	}
	return out
}

// The quota thresholds: crossing 50 % and 80 % of the daily limit is one
// EventQuota each, fleet-wide, counted from the ledger — two processes'
// fetches add up — and a new Beijing day starts from zero.
func TestLedgerQuotaEventsCountTheFleet(t *testing.T) {
	clock := newClock(time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)) // 23:00 in Beijing
	store := core.NewMemoryStore()
	var lg jsonLog
	seq := 0
	var mu sync.Mutex
	newCred := func(instance string) *core.Credential {
		cr, err := core.NewCredential(core.CredentialConfig{
			Name: "access_token", Key: "k/access_token", Store: store, Now: clock.now, Logger: lg.logger(slog.LevelDebug),
			Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
				mu.Lock()
				defer mu.Unlock()
				seq++
				return core.Token{Value: fmt.Sprintf("token-%d", seq), ExpiresAt: clock.now().Add(2 * time.Hour)}, nil
			},
			Ledger: &core.LedgerConfig{Instance: instance, DailyLimit: 4},
		})
		if err != nil {
			t.Fatal(err)
		}
		return cr
	}
	a, b := newCred("a/1"), newCred("b/1")
	ctx := t.Context()
	// fetchTo makes cr refresh until the fleet has made n fetches in all.
	fetchTo := func(cr *core.Credential, n int) {
		t.Helper()
		for {
			mu.Lock()
			done := seq >= n
			mu.Unlock()
			if done {
				break
			}
			tok, err := cr.Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cr.ForceRefresh(ctx, tok.Value); err != nil {
				t.Fatal(err)
			}
		}
		fctx, cancel := context.WithTimeout(ctx, watchdog)
		defer cancel()
		if err := cr.FlushLedger(fctx); err != nil {
			t.Fatal(err)
		}
	}
	fetchTo(a, 2) // 50 %
	fetchTo(b, 3)
	fetchTo(a, 4) // 80 % (3.2 rounds up to 4)
	got := lg.records(t, core.EventQuota)
	if len(got) != 2 || got[0]["percent"] != float64(50) || got[0]["used"] != float64(2) || got[1]["percent"] != float64(80) || got[1]["used"] != float64(4) || got[1]["day"] != "2026-12-06" {
		t.Fatalf("quota events %v, want 50 %% at 2 and 80 %% at 4", got)
	}
	clock.advance(2 * time.Hour) // past midnight in Beijing
	fetchTo(a, 6)
	if got := lg.records(t, core.EventQuota); len(got) != 3 || got[2]["day"] != "2026-12-07" || got[2]["used"] != float64(2) {
		t.Fatalf("quota events %v: want one more, for the new day", got)
	}
	l, err := a.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Days) != 2 || l.Days[0].Day != "2026-12-07" || l.Days[0].Fetches != 2 || l.Days[1].Fetches != 4 {
		t.Errorf("days %+v", l.Days)
	}
	rec := lg.records(t, core.EventRecorded)
	if len(rec) == 0 || rec[len(rec)-1]["fetches"] != float64(2) || rec[len(rec)-1]["daily_limit"] != float64(4) {
		t.Errorf("%s events %v", core.EventRecorded, rec)
	}
}

// The ledger is bounded: its newest LedgerEntries records, within
// MaxLedgerBytes, even with long instance names.
func TestLedgerIsBounded(t *testing.T) {
	var l core.Ledger
	for i := range 40 {
		l.Entries = append(l.Entries, core.FetchRecord{
			At: time.Unix(int64(i), 0).UTC(), Instance: strings.Repeat("x", 64), Seq: uint64(i), Reason: core.ReasonRejected,
			Token: "0123456789ab", Replaced: "0123456789ab", Outside: &core.OutsideFetch{Rejected: "0123456789ab", FetchedBy: strings.Repeat("y", 64), Path: "/cgi-bin/" + strings.Repeat("p", 100)},
		})
	}
	merged := core.MergeLedgerForTest(core.Ledger{}, l.Entries)
	enc := encodeForTest(merged)
	if len(enc) > core.MaxLedgerBytes {
		t.Fatalf("encoded ledger of %d bytes", len(enc))
	}
	back, err := core.DecodeLedgerForTest(enc)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(back.Entries); n == 0 || n > core.LedgerEntries || back.Entries[n-1].Seq != 39 {
		t.Errorf("%d records kept, the newest %+v", n, back.Entries[n-1])
	}
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// partitioned is a MemoryStore a process reaches only to read and to run
// its fetch: until healed, its token writes (the fetch runs, the write
// does not land) and every ledger call fail, as for a process cut off from
// the store just after it took the lock.
type partitioned struct {
	*core.MemoryStore
	healed atomic.Bool
}

func (p *partitioned) Get(ctx context.Context, key string) (core.Token, error) {
	if isLedger(key) && !p.healed.Load() {
		return core.Token{}, errInjected
	}
	return p.MemoryStore.Get(ctx, key)
}

func (p *partitioned) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	switch {
	case p.healed.Load():
		return p.MemoryStore.Refresh(ctx, key, stale, fetch)
	case isLedger(key):
		return core.Token{}, errInjected
	}
	if cur, err := p.MemoryStore.Get(ctx, key); err == nil && cur.Value == stale {
		if _, err := fetch(ctx); err != nil {
			return core.Token{}, err
		}
	}
	return core.Token{}, errInjected
}

// One outside fetch, two fleet members replacing the token it killed: one
// cut off from the store (its token write and its record held back), the
// other replacing it again through the store. The second record to land
// must not name the same outside fetch again: one event, counted once.
func TestLedgerNamesAnOutsideFetchOnceWhenARecordLandsLate(t *testing.T) {
	s := newServer(t)
	mem := core.NewMemoryStore()
	cut := &partitioned{MemoryStore: mem}
	var logs [3]jsonLog
	c0 := newConf(t, s, func(c *core.Config) {
		classic(c)
		c.Store, c.Instance, c.Logger = mem, "web-0/1", logs[0].logger(slog.LevelInfo)
	})
	a := newConf(t, s, func(c *core.Config) {
		classic(c)
		c.Store, c.Instance, c.Logger = cut, "web-a/1", logs[1].logger(slog.LevelInfo)
	})
	b := newConf(t, s, func(c *core.Config) {
		classic(c)
		c.Store, c.Instance, c.Logger = mem, "web-b/2", logs[2].logger(slog.LevelInfo)
	})
	core.SetLedgerBackoff(a.AccessTokenCredential(), time.Millisecond, 10*time.Millisecond)
	ctx := t.Context()
	t0, err := c0.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, c0)
	for _, c := range []*core.Conf{a, b} {
		if tok, err := c.AccessToken(ctx); err != nil || tok.Value != t0.Value {
			t.Fatalf("adopting the fleet's token: %v", err)
		}
	}
	s.Advance(10 * time.Minute)
	outsideFetch(t, s)
	s.Advance(wxtest.DefaultOverlap + time.Second)
	if err := callAPI(ctx, a); err != nil { // replaced; written nowhere yet
		t.Fatal(err)
	}
	s.Advance(time.Minute)
	if err := callAPI(ctx, b); err != nil { // the store still holds t0: replaced again
		t.Fatal(err)
	}
	flush(t, b)
	cut.healed.Store(true)
	flush(t, a)
	l, err := b.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 3 {
		t.Fatalf("ledger %+v: want the three fetches", l.Entries)
	}
	var events []map[string]any
	for i := range logs {
		events = append(events, logs[i].records(t, core.EventOutsideFetch)...)
	}
	if len(events) != 1 || l.Today(s.Now()).Outside != 1 {
		t.Errorf("%d %s events, %d outside fetches counted today; want the one outside fetch named once: %v",
			len(events), core.EventOutsideFetch, l.Today(s.Now()).Outside, events)
	}
	if len(events) > 0 && events[0]["rejected"] != core.Fingerprint(t0.Value) {
		t.Errorf("event %v: want the rejection of the fleet's first token", events[0])
	}
}
