package containertest_test

// The fetch ledger across a fleet of OS processes on one Redis: an outside
// fetcher named once per fetch (TestLedgerOutsideFetcher), and a fleet's
// day with no one outside naming nobody (TestLedgerFleetDayNoFalseAlarm).
// Issue 25 §2.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/conformance/containers/childproc"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// The shape of a ledger fleet: ledgerProcs processes on one Redis, each
// with ledgerGoroutines callers making ledgerCalls calls of PathAPI per
// round; a round every ledgerStep of simulated time, which the parent owns
// (the simulator's clock) and sends with each round, so that every fetch
// is at a known instant and nothing waits on real time. A token lives 2h
// (12 rounds); RefreshAhead = ExpiryMargin = ledgerMargin, so that every
// fetch is made by a caller within its round (none in the background after
// the round's report). ledgerStep is more than wxtest's Overlap: a token
// superseded in one round is rejected in the next.
const (
	ledgerProcs      = 8
	ledgerGoroutines = 4
	ledgerCalls      = 3
	ledgerStep       = 10 * time.Minute
	ledgerMargin     = time.Minute
	ledgerLine       = "ledger: "
	ledgerChildEnv   = "WECHATCONF_REDIS_LEDGER_CHILD"
	ledgerAppID      = "wxledgerfleet"
	ledgerAppSecret  = "ledger-fleet-secret"
	// The store's lease outlasts any stall of a loaded machine: no holder
	// loses its lock, so that every fetch is one the fleet meant.
	ledgerLease = 10 * time.Minute
)

// ledgerStart is the simulated start: 08:00 in Beijing, so that a day of
// rounds crosses a Beijing midnight (the ledger's days).
var ledgerStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// ledgerChildConfig is what a child of a ledger fleet needs (JSON in
// ledgerChildEnv).
type ledgerChildConfig struct {
	URL, Addr, Prefix, Instance string
	Start                       int64 // Unix ns
}

// ledgerFleet is the parent's side of a ledger fleet.
type ledgerFleet struct {
	t        *testing.T
	wechat   *wxtest.Server
	clock    atomic.Int64
	children []*childproc.Child
	store    *redisstore.Store
	key      string // the fleet's access_token key
	round    int
	errs     int
	firstErr string
}

func ledgerInstance(i int) string { return fmt.Sprintf("web-%d/%d", i, 1000+i) }

// startLedgerFleet starts Redis, the simulator and ledgerProcs children
// running the test t, and waits until each has its Conf.
func startLedgerFleet(t *testing.T) *ledgerFleet {
	r := containers.StartRedis(t)
	f := &ledgerFleet{t: t}
	f.clock.Store(ledgerStart.UnixNano())
	f.wechat = wxtest.New(wxtest.Options{AppID: ledgerAppID, AppSecret: ledgerAppSecret,
		Now: func() time.Time { return time.Unix(0, f.clock.Load()).UTC() }})
	t.Cleanup(f.wechat.Close)
	prefix := fmt.Sprintf("ledgerfleet%08x", rand.Uint32())
	f.key = prefix + "/" + ledgerAppID + "/access_token"
	rdb := newClient(r.Addr)
	t.Cleanup(func() { rdb.Close() })
	f.store = mustNew(t, rdb, redisstore.WithLease(ledgerLease))
	f.children = childproc.Start(t, ledgerProcs, childproc.Options{
		Test:   t.Name(),
		Prefix: ledgerLine,
		EnvOf: func(i int) []string {
			cfg, _ := json.Marshal(ledgerChildConfig{URL: f.wechat.URL, Addr: r.Addr, Prefix: prefix, Instance: ledgerInstance(i), Start: ledgerStart.UnixNano()})
			return []string{ledgerChildEnv + "=" + string(cfg)}
		},
	})
	for _, c := range f.children {
		c.Expect("ready")
	}
	return f
}

func (f *ledgerFleet) now() time.Time { return time.Unix(0, f.clock.Load()).UTC() }

// runRound advances the clock to the next round's instant and runs it: every
// child calls the API and flushes its ledger before it reports. force
// names the child that forces a new token before its calls (-1: none).
func (f *ledgerFleet) runRound(force int) {
	f.t.Helper()
	at := ledgerStart.Add(time.Duration(f.round) * ledgerStep)
	f.clock.Store(at.UnixNano())
	for _, c := range f.children {
		c.Send("round %d %t", at.UnixNano(), c.Index == force)
	}
	for _, c := range f.children {
		fields := strings.SplitN(c.Next(), " ", 3)
		if len(fields) != 3 || fields[0] != "done" {
			f.t.Fatalf("child %d: malformed report %q", c.Index, strings.Join(fields, " "))
		}
		n, _ := strconv.Atoi(fields[1])
		f.errs += n
		if e, _ := strconv.Unquote(fields[2]); e != "" && f.firstErr == "" {
			f.firstErr = fmt.Sprintf("round %d, child %d: %s", f.round, c.Index, e)
		}
	}
	f.round++
}

// ledger reads the fleet's ledger from Redis.
func (f *ledgerFleet) ledger() core.Ledger {
	f.t.Helper()
	l, err := core.ReadLedger(f.t.Context(), f.store, f.key)
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// outsideFetch fetches a classic token from the simulator as a script
// outside the fleet does: the fleet's token dies after the Overlap.
func (f *ledgerFleet) outsideFetch() {
	f.t.Helper()
	q := url.Values{"grant_type": {"client_credential"}, "appid": {ledgerAppID}, "secret": {ledgerAppSecret}}
	resp, err := f.wechat.Client().Get(f.wechat.URL + wxtest.PathToken + "?" + q.Encode())
	if err != nil {
		f.t.Fatal(err)
	}
	var reply struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if err != nil || reply.AccessToken == "" {
		f.t.Fatalf("the outside fetch got no token (%v)", err)
	}
}

// stop ends the children and returns the events each logged, by name.
func (f *ledgerFleet) stop() (events []map[string]any) {
	f.t.Helper()
	for _, c := range f.children {
		if err := c.Wait(); err != nil {
			f.t.Errorf("child %d: %v; its output:\n%s", c.Index, err, c.Tail(16<<10))
		}
		sc := bufio.NewScanner(strings.NewReader(c.Output()))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "{") {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				f.t.Errorf("child %d: a log line that is not JSON: %s", c.Index, sc.Text())
				continue
			}
			m["child"] = c.Index
			events = append(events, m)
		}
	}
	return events
}

func named(events []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, e := range events {
		if e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// sumDays returns the ledger's fetches and outside fetches over its days.
func sumDays(l core.Ledger) (fetches, outside int) {
	for _, d := range l.Days {
		fetches += d.Fetches
		outside += d.Outside
	}
	return fetches, outside
}

// outsideFetches is how many times the parent fetches outside the fleet.
const outsideFetches = 5

// TestLedgerOutsideFetcher runs 8 processes, each a core.Conf (classic
// token, an Instance of its own) on one Redis, calling the API every round
// of 8 simulated hours, while the parent fetches a classic token from the
// simulator outside the fleet 5 times, each between two of the fleet's
// expiries. Each outside fetch kills the fleet's token after the Overlap;
// in the next round the fleet replaces it, and exactly one process (the
// one whose fetch replaced it) names the outside fetch, with the fleet's
// fetch of the token killed as evidence. The ledger holds the 5 in its
// records and day counts, and counts exactly the tokens the simulator
// issued to the fleet. No caller sees an error.
func TestLedgerOutsideFetcher(t *testing.T) {
	if raw, ok := os.LookupEnv(ledgerChildEnv); ok {
		ledgerChild(t, raw)
		return
	}
	if testing.Short() {
		t.Skip("runs 8 processes and a Redis container")
	}
	f := startLedgerFleet(t)
	const rounds = 48 // 8 simulated hours
	type evidence struct {
		fetch    core.FetchRecord // the fleet's fetch of the token killed
		rejectAt time.Time
	}
	var want []evidence
	var pending *evidence
	for f.round < rounds {
		f.runRound(-1)
		l := f.ledger()
		last, ok := l.Last()
		if !ok {
			t.Fatalf("round %d: the ledger holds no fetch", f.round-1)
		}
		if pending != nil {
			// The round after an outside fetch: the fleet replaced its
			// token, naming the outside fetch.
			o := last.Outside
			if o == nil || last.Reason != core.ReasonRejected || !last.At.Equal(pending.rejectAt) {
				t.Fatalf("round %d, after an outside fetch: the ledger's newest record is %+v; want the fleet's replacement, naming the outside fetch", f.round-1, last)
			}
			if o.Rejected != pending.fetch.Token || !o.FetchedAt.Equal(pending.fetch.At) || o.FetchedBy != pending.fetch.Instance ||
				o.Age != pending.rejectAt.Sub(pending.fetch.At) || o.Code != 40001 || o.Path != wxtest.PathAPI || o.Forced {
				t.Errorf("round %d: evidence %+v; want the fleet's fetch %+v, rejected %v later by %s with 40001",
					f.round-1, o, pending.fetch, pending.rejectAt.Sub(pending.fetch.At), wxtest.PathAPI)
			}
			stored, err := f.store.Get(t.Context(), f.key)
			if err != nil || core.Fingerprint(stored.Value) != last.Token || !f.wechat.TokenValid(stored.Value) {
				t.Fatalf("round %d: the store holds %s (%v), want the replacement %s, valid", f.round-1, core.Fingerprint(stored.Value), err, last.Token)
			}
			want = append(want, *pending)
			pending = nil
			continue
		}
		// Fetch outside when the fleet's token is 20 to 90 minutes old:
		// the next round rejects it well before its expiry round.
		age := f.now().Sub(last.At)
		if len(want) < outsideFetches && age >= 2*ledgerStep && age <= 9*ledgerStep && f.round < rounds-1 {
			f.outsideFetch()
			pending = &evidence{fetch: last, rejectAt: ledgerStart.Add(time.Duration(f.round) * ledgerStep)}
		}
	}
	l := f.ledger()
	events := f.stop()
	issued := f.wechat.TokensIssued()
	fleetIssued := issued - len(want)
	fetches, outside := sumDays(l)
	t.Logf("%d processes × %d callers, %d rounds %v apart: %d tokens issued, %d to the fleet, %d outside; the ledger counts %d fetches, %d outside; %d %s events; %d caller errors",
		ledgerProcs, ledgerGoroutines, rounds, ledgerStep, issued, fleetIssued, len(want), fetches, outside,
		len(named(events, core.EventOutsideFetch)), core.EventOutsideFetch, f.errs)
	if len(want) != outsideFetches {
		t.Fatalf("%d outside fetches made, want %d: the schedule found no room", len(want), outsideFetches)
	}
	if f.errs != 0 {
		t.Errorf("%d caller errors, want none (first: %s)", f.errs, f.firstErr)
	}
	if fetches != fleetIssued || outside != outsideFetches {
		t.Errorf("the ledger's days count %d fetches and %d outside; WeChat issued %d tokens to the fleet, %d outside", fetches, outside, fleetIssued, outsideFetches)
	}
	if n := len(named(events, core.EventFetched)); n != fleetIssued {
		t.Errorf("the fleet logged %d %s, WeChat issued it %d tokens", n, core.EventFetched, fleetIssued)
	}
	// The records the ledger still keeps (its newest) mark the outside
	// fetches among them.
	marked, inRange := 0, 0
	for _, e := range l.Entries {
		if e.Outside != nil {
			marked++
		}
	}
	for _, w := range want {
		if len(l.Entries) > 0 && !w.rejectAt.Before(l.Entries[0].At) {
			inRange++
		}
	}
	if marked != inRange || marked == 0 {
		t.Errorf("the ledger's %d records mark %d outside fetches, want %d", len(l.Entries), marked, inRange)
	}
	got := named(events, core.EventOutsideFetch)
	if len(got) != outsideFetches {
		t.Fatalf("%d %s events fleet-wide, want %d (one per outside fetch): %v", len(got), core.EventOutsideFetch, outsideFetches, got)
	}
	for _, w := range want {
		var match []map[string]any
		for _, e := range got {
			if e["rejected"] == w.fetch.Token {
				match = append(match, e)
			}
		}
		if len(match) != 1 {
			t.Errorf("the outside fetch that killed %s: %d events, want 1", w.fetch.Token, len(match))
			continue
		}
		e := match[0]
		if e["fetched_by"] != w.fetch.Instance || e["token_age"] != float64(w.rejectAt.Sub(w.fetch.At)) || e["errcode"] != float64(40001) ||
			e["fetched_at"] != w.fetch.At.Format(time.RFC3339Nano) || e["level"] != "WARN" {
			t.Errorf("event %v; want fetched_by %s at %s, token_age %v", e, w.fetch.Instance, w.fetch.At.Format(time.RFC3339Nano), w.rejectAt.Sub(w.fetch.At))
		}
	}
}

// TestLedgerFleetDayNoFalseAlarm runs a simulated day of the same fleet
// with no one outside it, and rejections the fleet causes itself: every
// 17th round (2h50m) one process forces a new token
// (ForceRefreshAccessToken), so that the others' calls with the token it
// superseded are rejected in the next round; in between tokens expire
// (after 2h), and all 8 processes contend for the store's lock at each
// refresh. No outside fetch may be named, and the ledger's
// count over the day (across a Beijing midnight) is what WeChat issued.
func TestLedgerFleetDayNoFalseAlarm(t *testing.T) {
	if raw, ok := os.LookupEnv(ledgerChildEnv); ok {
		ledgerChild(t, raw)
		return
	}
	if testing.Short() {
		t.Skip("runs 8 processes and a Redis container")
	}
	f := startLedgerFleet(t)
	const rounds = 144 // 24 simulated hours
	forced := 0
	for f.round < rounds {
		force := -1
		if f.round%17 == 5 {
			force = (f.round / 17) % ledgerProcs
			forced++
		}
		f.runRound(force)
	}
	l := f.ledger()
	events := f.stop()
	issued := f.wechat.TokensIssued()
	fetches, outside := sumDays(l)
	rejected := named(events, core.EventRejected)
	t.Logf("%d processes × %d callers, %d rounds %v apart, %d forced refreshes: %d tokens issued, %d rejections seen by the fleet; the ledger counts %d fetches over %d days, %d outside; %d caller errors",
		ledgerProcs, ledgerGoroutines, rounds, ledgerStep, forced, issued, len(rejected), fetches, len(l.Days), outside, f.errs)
	if ev := named(events, core.EventOutsideFetch); len(ev) != 0 || outside != 0 {
		t.Errorf("a fleet with no one outside named %d outside fetches (ledger: %d): %v", len(ev), outside, ev)
	}
	if fetches != issued {
		t.Errorf("the ledger counts %d fetches, WeChat issued %d tokens", fetches, issued)
	}
	if len(rejected) == 0 || len(l.Days) < 2 || issued <= forced+1 {
		t.Errorf("%d rejections, %d ledger days, %d tokens for %d forced refreshes: the day did not exercise the fleet's own rejections and expiries across a Beijing midnight",
			len(rejected), len(l.Days), issued, forced)
	}
	if f.errs != 0 {
		t.Errorf("%d caller errors, want none (first: %s)", f.errs, f.firstErr)
	}
}

// ledgerChild plays one process of a ledger fleet: a Conf over Redis with
// its Instance, logging JSON to stdout, running each round the parent
// sends ("round <ns> <force>") and reporting "done <errors> <first
// error>" once its ledger is flushed.
func ledgerChild(t *testing.T, raw string) {
	var cfg ledgerChildConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("ledger child: bad %s: %v", ledgerChildEnv, err)
	}
	var clock atomic.Int64
	clock.Store(cfg.Start)
	rdb := newClient(cfg.Addr)
	defer rdb.Close()
	conf, err := core.New(core.Config{
		AppID: ledgerAppID, AppSecret: core.NewSecret(ledgerAppSecret), TokenAPI: core.ClassicToken,
		Store: mustNew(t, rdb, redisstore.WithLease(ledgerLease)), KeyPrefix: cfg.Prefix, BaseURL: cfg.URL,
		Instance:     cfg.Instance,
		Logger:       slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Now:          func() time.Time { return time.Unix(0, clock.Load()).UTC() },
		RefreshAhead: ledgerMargin, ExpiryMargin: ledgerMargin,
		RetryBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(ledgerLine + "ready")
	ctx := context.Background()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var ns int64
		var force bool
		if _, err := fmt.Sscanf(sc.Text(), "round %d %t", &ns, &force); err != nil {
			t.Fatalf("ledger child: bad command %q: %v", sc.Text(), err)
		}
		clock.Store(ns)
		var errs atomic.Int64
		var first sync.Once
		firstErr := ""
		fail := func(err error) {
			errs.Add(1)
			first.Do(func() { firstErr = err.Error() })
		}
		if force {
			if _, err := conf.ForceRefreshAccessToken(ctx, ""); err != nil {
				fail(fmt.Errorf("ForceRefreshAccessToken: %w", err))
			}
		}
		var wg sync.WaitGroup
		for range ledgerGoroutines {
			wg.Go(func() {
				for range ledgerCalls {
					var reply struct {
						IPList []string `json:"ip_list"`
					}
					if err := conf.Do(ctx, "GET", wxtest.PathAPI, nil, nil, &reply); err != nil {
						fail(err)
					} else if len(reply.IPList) == 0 {
						fail(errors.New("no IP list"))
					}
				}
			})
		}
		wg.Wait()
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := conf.FlushLedger(fctx); err != nil {
			fail(fmt.Errorf("FlushLedger: %w", err))
		}
		cancel()
		fmt.Printf("%sdone %d %q\n", ledgerLine, errs.Load(), firstErr)
	}
}
