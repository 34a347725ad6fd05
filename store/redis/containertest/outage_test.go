package containertest_test

// The store-outage proof over real Redis containers: TestStoreOutage.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// The shape of an outage scenario.
const (
	outageProcs      = 8                // worker processes
	outageGoroutines = 4                // callers per process
	outageDuration   = 60 * time.Second // how long Redis is down
	// Token lifetime and the Conf's timing: the refresh falls due 25 s
	// after the fleet's first fetch, the token stops being served 35 s
	// after it and expires 45 s after it, all inside the outage, which
	// starts as soon as every process holds the token.
	outageExpiresIn      = 45 * time.Second
	outageRefreshAhead   = 20 * time.Second
	outageExpiryMargin   = 10 * time.Second
	outageRefreshTimeout = 3 * time.Second  // a paused Redis answers nothing: refreshes end here
	outageStoreInterval  = 10 * time.Second // StoreOutageInterval: one fetch without the store per 10 s per process
	// stable_token's hand-over window in wxtest: a refresh RefreshAhead
	// before expiry gets the next token.
	outageStableOverlap = 30 * time.Second
	// How long a superseded classic token keeps working: short, so that a
	// second classic fetch (one made without the lock) shows as callers
	// getting 40001, yet longer than a fleet takes to adopt a token another
	// process fetched.
	outageClassicOverlap = 5 * time.Second
	outageLatency        = 20 * time.Millisecond // WeChat's answer time
	// outageRecoveryBound is how soon after Redis is back every process's
	// callers must succeed again (generous: the figure is measured and
	// logged; it is RefreshTimeout at most in principle).
	outageRecoveryBound = 15 * time.Second
	// outageSettle is how long the callers keep going once each process
	// has succeeded again, to see that nothing fails after the recovery.
	outageSettle = 5 * time.Second
	// outageClockSlack allows for the Conf reading wall time through the
	// monotonic clock while the test reads time.Now.
	outageClockSlack = time.Second
	// outageEdgeSlack is how late, beyond RefreshTimeout after Redis is
	// back, a loaded machine may end a refresh that straddled the return.
	outageEdgeSlack = 5 * time.Second

	outageAppID     = "wxoutagetest"
	outageAppSecret = "outage-test-secret" // the simulated server's, not a real one
	outageChildEnv  = "WECHATCONF_TEST_OUTAGE_CHILD"
	outageLine      = "wechatconf/outage-child: "
)

// outageFault is how Redis goes down and comes back.
type outageFault struct {
	name       string
	down, back func(testing.TB, *containers.Redis)
}

var outageFaults = []outageFault{
	{"stopped", func(t testing.TB, r *containers.Redis) { containers.Stop(t, r.Container) },
		func(t testing.TB, r *containers.Redis) { containers.Start(t, r.Container) }},
	{"paused", func(t testing.TB, r *containers.Redis) { containers.Pause(t, r.Container) },
		func(t testing.TB, r *containers.Redis) { containers.Unpause(t, r.Container) }},
}

// outageChildConfig is what a child process is told (outageChildEnv, JSON).
type outageChildConfig struct {
	URL, Addr, Prefix string
	Classic           bool
	Goroutines        int
}

// outageSummary is what a child reports when told to stop. Times are Unix
// nanoseconds (0: never), durations nanoseconds.
type outageSummary struct {
	OK         int // calls that got a token the API accepted
	StoreErrs  int // calls that failed with an error wrapping core.ErrStoreUnavailable
	OtherErrs  int // calls that failed otherwise
	CheckFails int // calls that got a token the API rejected (or the check failed)

	FirstErr, LastErr int64
	// OKAfterLastErr is the first success after the last failed call.
	OKAfterLastErr int64
	// FirstOKAfterBack is the first success after the parent said Redis
	// was back.
	FirstOKAfterBack int64
	// FirstErrVsExpiry is the first failed call's return time minus the
	// ExpiresAt of the latest token the process had been served;
	// EarliestErrVsDeadline the least, over failed calls, of return time
	// minus (that ExpiresAt - ExpiryMargin), the moment the token stops
	// being served.
	FirstErrVsExpiry      int64
	EarliestErrVsDeadline int64
	NoTokenErrs           int // failed calls before any token was served
	// DeadlineErrs are the return times of the failed calls counted in
	// OtherErrs whose error wraps context.DeadlineExceeded: a refresh
	// that spent its RefreshTimeout waiting for the store, which came back
	// with too little of it left for the fetch (parent judges them).
	DeadlineErrs []int64
	FirstErrMsg  string

	Tokens  int            // distinct tokens served
	Events  map[string]int // the Conf's events by name ("… fetched" for outages with a fetch)
	Samples []string       // the first failures, described (no token values)
}

// outageResult is one scenario's line of the table.
type outageResult struct {
	name                                   string
	ok, failed, checkFails, edgeErrs       int
	firstErrVsExpiry                       time.Duration // 0 when no error
	hadErr                                 bool
	fetches, outageFetches, outageEvFetch  int
	recovery, storeBack, runTime, downTime time.Duration
}

func (r outageResult) String() string {
	firstErr := "none"
	if r.hadErr {
		firstErr = fmt.Sprintf("ExpiresAt%+.1fs (margin%+.1fs)", r.firstErrVsExpiry.Seconds(), (r.firstErrVsExpiry + outageExpiryMargin).Seconds())
	}
	return fmt.Sprintf("%-16s calls ok %6d  failed %5d (rejected tokens %d, RefreshTimeout at the return %d)  first error %-27s  token calls %d (%d during the %.0fs outage; outage fetches logged %d)  recovery %v  store valid again %v  run %v",
		r.name, r.ok, r.failed, r.checkFails, r.edgeErrs, firstErr, r.fetches, r.outageFetches, r.downTime.Seconds(), r.outageEvFetch,
		r.recovery.Round(time.Millisecond), r.storeBack.Round(time.Millisecond), r.runTime.Round(time.Second))
}

// report logs r as a row of the "Store outage" table of BENCHMARKS.md
// (conformance.ReportRow, collected by scripts/bench).
func (r outageResult) report(t testing.TB) {
	firstErr := "none"
	if r.hadErr {
		firstErr = fmt.Sprintf("ExpiresAt%+.1fs (serving deadline%+.1fs)", r.firstErrVsExpiry.Seconds(), (r.firstErrVsExpiry + outageExpiryMargin).Seconds())
	}
	conformance.ReportRow(t, "Store outage",
		conformance.Col{Name: "token API, fault", Value: r.name},
		conformance.Col{Name: "down", Value: fmt.Sprintf("%.0f s", r.downTime.Seconds())},
		conformance.Col{Name: "calls ok", Value: strconv.Itoa(r.ok)},
		conformance.Col{Name: "calls failed", Value: strconv.Itoa(r.failed)},
		conformance.Col{Name: "of which a fetch cut by RefreshTimeout as Redis came back", Value: strconv.Itoa(r.edgeErrs)},
		conformance.Col{Name: "expired or superseded tokens handed out", Value: strconv.Itoa(r.checkFails)},
		conformance.Col{Name: "first error", Value: firstErr},
		conformance.Col{Name: "token calls (while down)", Value: fmt.Sprintf("%d (%d)", r.fetches, r.outageFetches)},
		conformance.Col{Name: "recovery after restart", Value: r.recovery.Round(time.Millisecond).String()},
		conformance.Col{Name: "store holds a valid token again", Value: r.storeBack.Round(time.Millisecond).String()})
}

// TestStoreOutage is the container proof of the store-outage behaviour
// (issue 18, part 3): a fleet of 8 OS processes (this test binary started
// again, as conformance.ProcessHerd does), each with a core.Conf over
// redisstore and go-redis on one real Redis server and several goroutines
// calling AccessToken continuously and using every token they get on the
// simulated WeChat API (core/wxtest, in the parent process: a call made
// directly, without Conf's retry, so that an expired (42001) or superseded
// (40001) token is a failure). Redis is then stopped (and started again
// empty: no persistence) or paused, for 60 s, across the moment the
// fleet's token falls due for its refresh and past its expiry margin
// (tokens live 45 s here). It proves:
//
//   - stable_token (core.StableToken, Policy.FetchWithoutStore): no caller
//     of any process fails or gets a token WeChat rejects; the refresh due
//     in the outage is made without the store (EventStoreOutage, fetched),
//     and once Redis is back the store holds a valid token again (written
//     back).
//   - classic /cgi-bin/token (core.ClassicToken): no caller ever gets a
//     token WeChat rejects, no token call is made while Redis is down, the
//     only errors wrap core.ErrStoreUnavailable and come once the held
//     token is no longer served (its ExpiresAt - ExpiryMargin), and callers
//     succeed again within a few seconds of Redis being back (bound
//     outageRecoveryBound, measured and logged).
//
// The four scenarios ({stable, classic} × {stopped, paused}) run in
// parallel, each with its own Redis container and simulated WeChat server.
// The figures of each are logged in one table line (calls ok and failed,
// how the first error stands to the held token's expiry, token calls,
// recovery time). A Conf that fetched classic tokens without the store
// fails it: each process's fetch supersedes the others' tokens, and their
// callers get 40001.
//
// In a child process (outageChildEnv set) the same test plays one process
// of the fleet: outageChild.
func TestStoreOutage(t *testing.T) {
	if cfg := os.Getenv(outageChildEnv); cfg != "" {
		outageChild(t, cfg)
		return
	}
	if testing.Short() {
		t.Skip("stops and pauses Redis containers for a minute each")
	}
	var mu sync.Mutex
	var results []outageResult
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		slices.SortFunc(results, func(a, b outageResult) int { return strings.Compare(a.name, b.name) })
		var b strings.Builder
		fmt.Fprintf(&b, "store outage, %d processes × %d callers, tokens of %v, Redis down %v:", outageProcs, outageGoroutines, outageExpiresIn, outageDuration)
		for _, r := range results {
			b.WriteString("\n  " + r.String())
		}
		t.Log(b.String())
	})
	// The scenarios run together, each from a goroutine of its own rather
	// than with t.Parallel, which -test.parallel (GOMAXPROCS: 2 on CI)
	// would run two at a time: they spend their time waiting for the
	// outage, not computing.
	conformance.ReportNote(t, "Store outage", fmt.Sprintf("%d processes × %d callers on one Redis; each token a caller gets is used at once on the simulated API, "+
		"without retry, so an expired or superseded token would count. Tokens live %v (RefreshAhead %v, ExpiryMargin %v, RefreshTimeout %v, StoreOutageInterval %v): "+
		"the refresh falls due and the token expires while Redis is down. Classic: once the held token passes its serving deadline (ExpiresAt − ExpiryMargin) "+
		"every call fails with core.ErrStoreUnavailable until Redis answers, with no token call: by design, as one without the store's lock would invalidate every "+
		"other process's token. stable_token: each process fetches without the store at most once per StoreOutageInterval and writes the token back once Redis answers.",
		outageProcs, outageGoroutines, outageExpiresIn, outageRefreshAhead, outageExpiryMargin, outageRefreshTimeout, outageStoreInterval))
	var wg sync.WaitGroup
	for _, api := range []core.TokenAPI{core.StableToken, core.ClassicToken} {
		for _, fault := range outageFaults {
			name := "stable_token, Redis " + fault.name
			if api == core.ClassicToken {
				name = "classic /cgi-bin/token, Redis " + fault.name
			}
			wg.Go(func() {
				t.Run(api.String()+"_"+fault.name, func(t *testing.T) {
					if r, ok := runOutage(t, api, fault); ok {
						r.name = name
						t.Log(r.String())
						r.report(t)
						mu.Lock()
						results = append(results, r)
						mu.Unlock()
					}
				})
			})
		}
	}
	wg.Wait()
}

// outageProc is a child process of the fleet, as the parent sees it.
type outageProc struct {
	i      int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *lineWriter
	exited chan struct{} // closed once the process has exited, with err set
	err    error
	ready  chan struct{}
	warm   chan int64 // the ExpiresAt of the first token, Unix ns
	// serving is the ExpiresAt (Unix ns) of the token the process last
	// served; servingCh is poked at each change.
	serving   atomic.Int64
	servingCh chan struct{}
	recov     chan struct{}
	sumCh     chan outageSummary
}

func (p *outageProc) send(line string) { io.WriteString(p.stdin, line+"\n") }

// runOutage runs one scenario and returns its figures; ok is false when
// it could not be run to the end.
func runOutage(t *testing.T, api core.TokenAPI, fault outageFault) (res outageResult, ok bool) {
	begin := time.Now()
	var downAt, backAt time.Time
	classic := api == core.ClassicToken
	path := wxtest.PathStableToken
	overlap := outageStableOverlap
	if classic {
		path, overlap = wxtest.PathToken, outageClassicOverlap
	}
	r := containers.StartRedis(t)
	server := wxtest.New(wxtest.Options{
		AppID: outageAppID, AppSecret: outageAppSecret,
		ExpiresIn: outageExpiresIn, Overlap: overlap,
		Now: time.Now, Latency: outageLatency,
	})
	t.Cleanup(server.Close)
	prefix := fmt.Sprintf("outage%08x", rand.Uint32())
	cfg, err := json.Marshal(outageChildConfig{URL: server.URL, Addr: r.Addr, Prefix: prefix, Classic: classic, Goroutines: outageGoroutines})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	procs := make([]*outageProc, outageProcs)
	timeline := new(outageTimeline)
	defer func() {
		if t.Failed() {
			t.Logf("the fleet's events (Redis down at %s, back at %s):\n%s", downAt.Format(time.StampMilli), backAt.Format(time.StampMilli), timeline)
		}
	}()
	anyExit := make(chan struct{}) // closed once any process has exited
	var anyExitOnce sync.Once
	for i := range procs {
		p := &outageProc{i: i, exited: make(chan struct{}), ready: make(chan struct{}), warm: make(chan int64, 1), servingCh: make(chan struct{}, 1),
			recov: make(chan struct{}), sumCh: make(chan outageSummary, 1)}
		var once [2]sync.Once
		p.out = &lineWriter{onLine: func(line string) {
			rest, ok := strings.CutPrefix(line, outageLine)
			if !ok {
				return
			}
			verb, arg, _ := strings.Cut(rest, " ")
			switch verb {
			case "ready":
				once[0].Do(func() { close(p.ready) })
			case "warm":
				n, _ := strconv.ParseInt(arg, 10, 64)
				select {
				case p.warm <- n:
				default:
				}
			case "serving":
				n, _ := strconv.ParseInt(arg, 10, 64)
				p.serving.Store(n)
				select {
				case p.servingCh <- struct{}{}:
				default:
				}
			case "recovered":
				once[1].Do(func() { close(p.recov) })
			case "event":
				timeline.add(p.i, arg)
			case "summary":
				var s outageSummary
				if err := json.Unmarshal([]byte(arg), &s); err == nil {
					p.sumCh <- s
				}
			}
		}}
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestStoreOutage$")
		cmd.Env = append(os.Environ(), outageChildEnv+"="+string(cfg),
			// A -race child would otherwise sleep 1 s at exit.
			"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		cmd.Stdout, cmd.Stderr = p.out, p.out
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("outage child %d: starting %s: %v", i, os.Args[0], err)
		}
		p.cmd = cmd
		go func() {
			p.err = cmd.Wait()
			close(p.exited)
			anyExitOnce.Do(func() { close(anyExit) })
		}()
		procs[i] = p
		defer func() { p.stdin.Close(); cmd.Process.Kill() }()
	}
	// wait waits for ch of every process, failing on a process that exits
	// first or on the deadline.
	wait := func(what string, within time.Duration, ch func(*outageProc) <-chan struct{}) {
		t.Helper()
		deadline := time.After(within)
		for _, p := range procs {
			select {
			case <-ch(p):
			case <-p.exited:
				t.Fatalf("outage child %d exited (%v) before %s; its output:\n%s", p.i, p.err, what, p.out)
			case <-deadline:
				t.Fatalf("outage child %d: not %s within %v; its output:\n%s", p.i, what, within, p.out)
			}
		}
	}
	wait("ready", 2*time.Minute, func(p *outageProc) <-chan struct{} { return p.ready })
	for _, p := range procs {
		p.send("go")
	}
	// Every process holds the fleet's first token.
	var expiresAt time.Time
	warmed := make(chan struct{})
	go func() {
		defer close(warmed)
		for _, p := range procs {
			select {
			case n := <-p.warm:
				if e := time.Unix(0, n); expiresAt.IsZero() || e.Before(expiresAt) {
					expiresAt = e
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	wait("warm (a first token)", time.Minute, func(*outageProc) <-chan struct{} { return warmed })
	// The scenario's premise: the fleet holds one token, the store's. On a
	// loaded machine a warm-up flight may outlive RefreshTimeout, and a
	// process then serves the token its flight fetched until its write-back
	// confirms which token the store holds; if Redis went down first, that
	// process could serve a token the fleet superseded for the whole
	// outage (no store, no news), which says nothing about the outage
	// behaviour tested. So wait until every process serves the store's
	// token (its ExpiresAt identifies it), and log what the warm-up took.
	expiresAt = converge(t, r, prefix, procs, expiresAt, server.Calls(path))

	// Redis goes down, across the refresh due and the token's serving
	// deadline.
	downAt = time.Now()
	if due := expiresAt.Add(-outageRefreshAhead); !downAt.Before(due) || expiresAt.Add(-outageExpiryMargin).After(downAt.Add(outageDuration)) {
		t.Fatalf("the fleet's first token expires at %v: its refresh falls due at %v, before the outage begins (%v): the warm-up was too slow for the scenario",
			expiresAt.Format(time.StampMilli), due.Format(time.StampMilli), downAt.Format(time.StampMilli))
	}
	callsBefore := server.Calls(path)
	fault.down(t, r)
	isDown := true
	t.Cleanup(func() {
		if isDown {
			fault.back(t, r)
		}
	})
	timer := time.NewTimer(time.Until(downAt.Add(outageDuration)))
	exitCh := anyExit
	for waiting := true; waiting; {
		select {
		case <-timer.C:
			waiting = false
		case <-exitCh:
			for _, p := range procs {
				select {
				case <-p.exited:
					t.Fatalf("outage child %d exited (%v) while Redis was down; its output:\n%s", p.i, p.err, p.out)
				default:
				}
			}
			exitCh = nil
		}
	}
	upAt := time.Now()
	outageFetches := server.Calls(path) - callsBefore
	fault.back(t, r)
	isDown = false
	backAt = time.Now()
	for _, p := range procs {
		p.send("back " + strconv.FormatInt(backAt.UnixNano(), 10))
	}

	// Every process succeeds again, the store holds a valid token again
	// (for stable_token: written back by the next refresh), and the
	// callers keep going a little longer.
	wait("succeeding again after Redis came back", 2*outageRecoveryBound, func(p *outageProc) <-chan struct{} { return p.recov })
	recoveredAt := time.Now()
	rdb := newClient(r.Addr)
	t.Cleanup(func() { rdb.Close() })
	check := mustNew(t, rdb)
	key := prefix + "/" + outageAppID + "/access_token"
	var storeBack time.Duration
	for deadline := time.Now().Add(outageExpiresIn + outageSettle); ; {
		gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
		tok, err := check.Get(gctx, key)
		gcancel()
		if err == nil && server.TokenValid(tok.Value) {
			storeBack = time.Since(backAt)
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%v after Redis came back, the store holds no valid token under %q (last read: %v, valid %v)", time.Since(backAt).Round(time.Millisecond), key, err, server.TokenValid(tok.Value))
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the store, not synchronising
	}
	if left := time.Until(recoveredAt.Add(outageSettle)); left > 0 {
		time.Sleep(left) // the scenario's settle time: callers keep running
	}
	for _, p := range procs {
		p.send("stop")
	}
	sums := make([]outageSummary, len(procs))
	for _, p := range procs {
		select {
		case <-p.exited:
			if p.err != nil {
				t.Errorf("outage child %d: %v; its output:\n%s", p.i, p.err, p.out)
				continue
			}
		case <-time.After(time.Minute):
			t.Errorf("outage child %d: still running a minute after it was told to stop; its output:\n%s", p.i, p.out)
			continue
		}
		select {
		case sums[p.i] = <-p.sumCh:
		default:
			t.Errorf("outage child %d exited without its summary; its output:\n%s", p.i, p.out)
		}
	}
	if t.Failed() {
		return res, false
	}

	// The figures.
	res = outageResult{fetches: server.Calls(path), outageFetches: outageFetches, storeBack: storeBack, downTime: upAt.Sub(downAt)}
	var samples []string
	var firstMsg string
	var firstAt int64
	earliestVsDeadline := time.Duration(1<<63 - 1)
	for i, s := range sums {
		res.ok += s.OK
		res.failed += s.StoreErrs + s.OtherErrs + s.CheckFails
		res.checkFails += s.CheckFails
		res.outageEvFetch += s.Events[core.EventStoreOutage+" fetched"]
		for _, smp := range s.Samples {
			samples = append(samples, fmt.Sprintf("process %d: %s", i, smp))
		}
		if s.FirstErr != 0 {
			if firstAt == 0 || s.FirstErr < firstAt {
				firstAt, firstMsg = s.FirstErr, fmt.Sprintf("process %d, %v after Redis went down: %s", i, time.Unix(0, s.FirstErr).Sub(downAt).Round(time.Millisecond), s.FirstErrMsg)
			}
			if d := time.Duration(s.FirstErrVsExpiry); !res.hadErr || d < res.firstErrVsExpiry {
				res.firstErrVsExpiry = d
			}
			res.hadErr = true
			earliestVsDeadline = min(earliestVsDeadline, time.Duration(s.EarliestErrVsDeadline))
		}
		rec := time.Unix(0, s.FirstOKAfterBack)
		if s.LastErr != 0 {
			// recovered at the first success after the last failure
			if s.OKAfterLastErr == 0 {
				t.Errorf("process %d: no successful call after its last failure (%v after Redis came back)", i, time.Unix(0, s.LastErr).Sub(backAt))
			}
			rec = time.Unix(0, max(s.OKAfterLastErr, s.FirstOKAfterBack))
		}
		res.recovery = max(res.recovery, rec.Sub(backAt))
		if s.LastErr != 0 && time.Unix(0, s.LastErr).After(backAt.Add(outageRecoveryBound)) {
			t.Errorf("process %d: a call failed %v after Redis came back, want none after %v", i, time.Unix(0, s.LastErr).Sub(backAt).Round(time.Millisecond), outageRecoveryBound)
		}
		if s.FirstErr != 0 && time.Unix(0, s.FirstErr).Before(downAt) {
			t.Errorf("process %d: a call failed at %v, before Redis went down (%v)", i, time.Unix(0, s.FirstErr).Format(time.StampMilli), downAt.Format(time.StampMilli))
		}
	}
	res.runTime = time.Since(begin)
	t.Logf("%s over a %s Redis: %d processes × %d callers; first token expired %v after Redis went down; events of the fleet: %v",
		api, fault.name, outageProcs, outageGoroutines, expiresAt.Sub(downAt).Round(time.Millisecond), mergeEvents(sums))
	if firstMsg != "" {
		t.Logf("first failed call: %s", firstMsg)
	}
	if len(samples) > 0 {
		const most = 20
		if len(samples) > most {
			samples = append(samples[:most], fmt.Sprintf("… and %d more", len(samples)-most))
		}
		t.Logf("failures:\n  %s", strings.Join(samples, "\n  "))
	}

	if res.recovery > outageRecoveryBound {
		t.Errorf("callers succeeded again %v after Redis came back, want within %v", res.recovery.Round(time.Millisecond), outageRecoveryBound)
	}
	if res.checkFails > 0 {
		t.Errorf("%d calls got a token the API rejected (expired or superseded), want 0", res.checkFails)
	}
	if !classic {
		if res.failed != 0 {
			t.Errorf("stable_token: %d of %d calls failed while Redis was %s, want 0", res.failed, res.failed+res.ok, fault.name)
		}
		if res.outageEvFetch == 0 || res.outageFetches == 0 {
			t.Errorf("stable_token: %d token fetches without the store logged, %d token calls while Redis was down; want some: the refresh fell due during the outage",
				res.outageEvFetch, res.outageFetches)
		}
		// At most one fetch without the store per StoreOutageInterval per
		// process (each one's first is due at once).
		if most := outageProcs * (int(outageDuration/outageStoreInterval) + 2); res.outageEvFetch > most {
			t.Errorf("stable_token: %d fetches without the store, want at most %d (%d processes, one per %v each)", res.outageEvFetch, most, outageProcs, outageStoreInterval)
		}
		return res, true
	}
	if res.outageFetches != 0 {
		t.Errorf("classic: %d token calls while Redis was down, want 0: each invalidates the fleet's token", res.outageFetches)
	}
	// A refresh that started while Redis was down and spent its
	// RefreshTimeout waiting for it may end during the fetch that follows
	// once Redis is back, with an error wrapping context.DeadlineExceeded
	// but not ErrStoreUnavailable (the fetch ran): allowed within
	// RefreshTimeout of the return (and some slack for a loaded machine),
	// counted in the table; anywhere else it fails the test.
	var other int
	edgeFrom, edgeTo := upAt, backAt.Add(outageRefreshTimeout+outageEdgeSlack)
	for i, s := range sums {
		other += s.OtherErrs + s.NoTokenErrs - len(s.DeadlineErrs)
		for _, n := range s.DeadlineErrs {
			if at := time.Unix(0, n); at.Before(edgeFrom) || at.After(edgeTo) {
				other++
				t.Errorf("classic: process %d: a call failed with a RefreshTimeout (not ErrStoreUnavailable) %v after Redis came back; allowed only between %v before and %v after",
					i, at.Sub(backAt).Round(time.Millisecond), backAt.Sub(edgeFrom).Round(time.Millisecond), edgeTo.Sub(backAt))
			} else {
				res.edgeErrs++
			}
		}
	}
	if other != 0 {
		t.Errorf("classic: %d calls failed with an error other than ErrStoreUnavailable after a token was held, want 0", other)
	}
	if !res.hadErr {
		t.Errorf("classic: no call failed although the held token's serving deadline (%v) fell inside the outage", expiresAt.Add(-outageExpiryMargin).Format(time.StampMilli))
	} else if earliestVsDeadline < -outageClockSlack {
		t.Errorf("classic: a call failed %v before the held token stopped being served (ExpiresAt - ExpiryMargin), want none before", (-earliestVsDeadline).Round(time.Millisecond))
	}
	return res, true
}

// converge waits until every process of procs serves the token the store
// holds, and returns its ExpiresAt (the first token, the scenario's clock);
// it fails the test if that takes beyond the moment the token's refresh
// falls due. calls is how many token calls the warm-up made.
func converge(t *testing.T, r *containers.Redis, prefix string, procs []*outageProc, first time.Time, calls int) time.Time {
	t.Helper()
	rdb := newClient(r.Addr)
	defer rdb.Close()
	key := prefix + "/" + outageAppID + "/access_token"
	deadline := time.NewTimer(time.Until(first.Add(-outageRefreshAhead - time.Second)))
	defer deadline.Stop()
	start := time.Now()
	store := mustNew(t, rdb)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		tok, err := store.Get(ctx, key)
		cancel()
		if err != nil {
			t.Fatalf("reading the fleet's token after the warm-up: %v", err)
		}
		// Stores keep milliseconds; the fetcher serves what WeChat gave.
		want := tok.ExpiresAt.UnixMilli()
		var behind *outageProc
		for _, p := range procs {
			if time.Unix(0, p.serving.Load()).UnixMilli() != want {
				behind = p
				break
			}
		}
		if behind == nil {
			t.Logf("warm-up: %d token calls; every process serves the store's token (expires %v) %v after the first was warm",
				calls, tok.ExpiresAt.Format(time.StampMilli), time.Since(start).Round(time.Millisecond))
			return tok.ExpiresAt
		}
		select {
		case <-behind.servingCh:
		case <-behind.exited:
			t.Fatalf("outage child %d exited (%v) during the warm-up; its output:\n%s", behind.i, behind.err, behind.out)
		case <-deadline.C:
			t.Fatalf("warm-up: outage child %d still serves the token expiring %v, not the store's (expiring %v), when the refresh falls due: the machine was too slow for the scenario",
				behind.i, time.Unix(0, behind.serving.Load()).Format(time.StampMilli), tok.ExpiresAt.Format(time.StampMilli))
		}
	}
}

// outageTimeline is the fleet's events but store_error and store_outage,
// in the order of their times, logged when a scenario fails.
type outageTimeline struct {
	mu    sync.Mutex
	lines []string // "<unix ns> process <i>: <name> <attrs>"
}

func (tl *outageTimeline) add(proc int, arg string) {
	at, rest, _ := strings.Cut(arg, " ")
	n, _ := strconv.ParseInt(at, 10, 64)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.lines = append(tl.lines, fmt.Sprintf("%019d process %d: %s", n, proc, rest))
}

func (tl *outageTimeline) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	lines := slices.Clone(tl.lines)
	slices.Sort(lines)
	for i, l := range lines {
		n, rest, _ := strings.Cut(l, " ")
		ns, _ := strconv.ParseInt(n, 10, 64)
		lines[i] = time.Unix(0, ns).Format(time.StampMilli) + " " + rest
	}
	return "  " + strings.Join(lines, "\n  ")
}

func mergeEvents(sums []outageSummary) map[string]int {
	m := map[string]int{}
	for _, s := range sums {
		for k, v := range s.Events {
			m[k] += v
		}
	}
	return m
}

// lineWriter keeps all a child writes and calls onLine for each line.
type lineWriter struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	onLine  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		w.onLine(line)
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	const most = 64 << 10
	if w.all.Len() > most {
		return "…" + string(w.all.Bytes()[w.all.Len()-most:])
	}
	return w.all.String()
}

// eventCounter is a slog.Handler counting the Conf's events by name.
type eventCounter struct {
	mu     *sync.Mutex
	counts map[string]int
}

func (h eventCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h eventCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h eventCounter) WithGroup(string) slog.Handler            { return h }

func (h eventCounter) Handle(_ context.Context, r slog.Record) error {
	name := r.Message
	if name == core.EventStoreOutage {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "fetched" && a.Value.Kind() == slog.KindBool && a.Value.Bool() {
				name += " fetched"
			}
			return true
		})
	}
	h.mu.Lock()
	h.counts[name]++
	h.mu.Unlock()
	if name != core.EventStoreError && name != core.EventStoreOutage {
		// The timeline a failure is judged by (no event carries a secret).
		var b strings.Builder
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		fmt.Printf("%sevent %d %s%s\n", outageLine, r.Time.UnixNano(), name, b.String())
	}
	return nil
}

// outageChild plays one process of the fleet: a Conf over redisstore on
// the parent's Redis, goroutines calling AccessToken and using each token
// on the simulated API, until the parent says stop; it then prints its
// summary.
func outageChild(t *testing.T, raw string) {
	var cfg outageChildConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("outage child: bad %s: %v", outageChildEnv, err)
	}
	api := core.StableToken
	if cfg.Classic {
		api = core.ClassicToken
	}
	rdb := newClient(cfg.Addr)
	defer rdb.Close()
	events := eventCounter{mu: new(sync.Mutex), counts: map[string]int{}}
	conf, err := core.New(core.Config{
		AppID: outageAppID, AppSecret: core.NewSecret(outageAppSecret), TokenAPI: api,
		Store: mustNew(t, rdb), KeyPrefix: cfg.Prefix,
		BaseURL: cfg.URL, Logger: slog.New(events),
		RefreshAhead: outageRefreshAhead, ExpiryMargin: outageExpiryMargin,
		RefreshTimeout: outageRefreshTimeout, StoreOutageInterval: outageStoreInterval,
		RetryBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The client that uses the tokens: no retry, nothing of Conf's.
	api2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Goroutines}}

	var (
		mu       sync.Mutex
		s        = outageSummary{EarliestErrVsDeadline: 1<<63 - 1}
		heldExp  time.Time // ExpiresAt of the latest token served
		serving  time.Time // ExpiresAt of the token served last
		tokens   = map[string]bool{}
		warm     bool
		backAt   int64
		recBack  bool
		stopping = make(chan struct{})
		release  = make(chan struct{})
	)
	sample := func(format string, args ...any) {
		if len(s.Samples) < 5 {
			s.Samples = append(s.Samples, fmt.Sprintf(format, args...))
		}
	}
	go func() {
		defer close(stopping)
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			verb, arg, _ := strings.Cut(in.Text(), " ")
			switch verb {
			case "go":
				close(release)
			case "back":
				n, _ := strconv.ParseInt(arg, 10, 64)
				mu.Lock()
				backAt = n
				mu.Unlock()
			case "stop":
				return
			}
		}
	}()
	fmt.Println(outageLine + "ready")
	select {
	case <-release:
	case <-stopping:
		t.Fatal("outage child: stdin closed before the start")
	}

	var wg sync.WaitGroup
	for range cfg.Goroutines {
		wg.Go(func() {
			for {
				select {
				case <-stopping:
					return
				case <-time.After(time.Duration(20+rand.IntN(31)) * time.Millisecond): // pacing
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				tok, err := conf.AccessToken(ctx)
				cancel()
				var code int
				var cerr error
				if err == nil {
					code, cerr = useToken(api2, cfg.URL, tok.Value)
				}
				now := time.Now()
				mu.Lock()
				switch {
				case err != nil:
					if s.FirstErr == 0 {
						s.FirstErrMsg = err.Error()
						s.FirstErr = now.UnixNano()
						s.FirstErrVsExpiry = int64(now.Sub(heldExp))
					}
					s.LastErr, s.OKAfterLastErr = now.UnixNano(), 0
					switch {
					case heldExp.IsZero():
						s.NoTokenErrs++
						sample("failed before any token: %v", err)
					case errors.Is(err, core.ErrStoreUnavailable):
						s.StoreErrs++
						s.EarliestErrVsDeadline = min(s.EarliestErrVsDeadline, int64(now.Sub(heldExp.Add(-outageExpiryMargin))))
						if !cfg.Classic {
							sample("AccessToken: %v", err)
						}
					case cfg.Classic && errors.Is(err, context.DeadlineExceeded):
						s.OtherErrs++
						s.DeadlineErrs = append(s.DeadlineErrs, now.UnixNano())
					default:
						s.OtherErrs++
						sample("AccessToken (not ErrStoreUnavailable): %v", err)
					}
				case cerr != nil || code != 0:
					s.CheckFails++
					s.LastErr, s.OKAfterLastErr = now.UnixNano(), 0
					sample("token (expires %v, %v left) used on %s: errcode %d, %v", tok.ExpiresAt.Format(time.StampMilli), tok.ExpiresAt.Sub(now).Round(time.Millisecond), wxtest.PathAPI, code, cerr)
				default:
					s.OK++
					if tok.ExpiresAt.After(heldExp) {
						heldExp = tok.ExpiresAt
					}
					if !tok.ExpiresAt.Equal(serving) {
						serving = tok.ExpiresAt
						fmt.Println(outageLine + "serving " + strconv.FormatInt(serving.UnixNano(), 10))
					}
					tokens[tok.Value] = true
					if !warm {
						warm = true
						fmt.Println(outageLine + "warm " + strconv.FormatInt(tok.ExpiresAt.UnixNano(), 10))
					}
					if s.LastErr != 0 && s.OKAfterLastErr == 0 {
						s.OKAfterLastErr = now.UnixNano()
					}
					if backAt != 0 && now.UnixNano() >= backAt && !recBack {
						recBack = true
						s.FirstOKAfterBack = now.UnixNano()
						fmt.Println(outageLine + "recovered")
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	s.Tokens = len(tokens)
	events.mu.Lock()
	s.Events = events.counts
	b, err := json.Marshal(s)
	events.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(outageLine + "summary " + string(b))
}

// useToken calls the simulated API with token, once, and returns its
// errcode (0: accepted).
func useToken(c *http.Client, base, token string) (int, error) {
	resp, err := c.Get(base + wxtest.PathAPI + "?access_token=" + url.QueryEscape(token))
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return 0, fmt.Errorf("%s %s: %w", ue.Op, wxtest.PathAPI, ue.Err) // not the URL: it holds the token
	} else if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var reply struct {
		Errcode int `json:"errcode"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return 0, fmt.Errorf("HTTP %d: %v", resp.StatusCode, err)
	}
	return reply.Errcode, nil
}
