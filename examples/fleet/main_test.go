package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// TestMain makes the test binary a fleet worker when the parent (run, in a
// test) re-executes it as one.
func TestMain(m *testing.M) {
	if spec, ok := os.LookupEnv(workerEnv); ok {
		os.Exit(workerMain(spec))
	}
	os.Exit(m.Run())
}

// smokeArgs is a short run: 4 processes, 8 simulated hours in 4 s.
var smokeArgs = []string{"-procs", "4", "-sim", "8h", "-duration", "4s", "-json"}

// runFleet runs the program with args and returns its JSON summary.
func runFleet(t *testing.T, env map[string]string, args ...string) Summary {
	t.Helper()
	var stdout, stderr syncBuffer
	err := run(t.Context(), append(append([]string(nil), smokeArgs...), args...),
		func(k string) string { return env[k] }, &stdout, &stderr)
	t.Logf("fleet %s: stderr:\n%s", strings.Join(args, " "), stderr.String())
	if err != nil {
		t.Fatalf("run: %v\nstdout: %s", err, stdout.String())
	}
	var s Summary
	dec := json.NewDecoder(strings.NewReader(stdout.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout.String())
	}
	t.Logf("summary: %+v", s)
	if s.Calls == 0 || s.AccessTokenP50NS <= 0 || s.AccessTokenP99NS < s.AccessTokenP50NS {
		t.Errorf("no calls or no latencies measured: %+v", s)
	}
	return s
}

// checkShared asserts what a shared store gives a fleet: no caller sees a
// 40001, the fleet fetches about as often as one process would
// (expected: sim / (2h − 5m) + 1), and its fetch ledger counts every
// fetch and names no outside fetch (there is none).
func checkShared(t *testing.T, s Summary, expected int) {
	t.Helper()
	if s.ExpectedFetches != expected {
		t.Errorf("expected_fetches = %d, want %d", s.ExpectedFetches, expected)
	}
	checkLedger(t, s)
	if s.Errors40001 != 0 {
		t.Errorf("callers saw %d 40001 errors through a shared store, want 0", s.Errors40001)
	}
	if d := s.Fetches - s.ExpectedFetches; d < -1 || d > 1 {
		t.Errorf("%d token fetches, want %d ± 1", s.Fetches, s.ExpectedFetches)
	}
}

// checkLedger asserts that a fleet on a shared store, with no one fetching
// outside it, names no outside fetch, and that its fetch ledger counts
// the fetches WeChat answered.
func checkLedger(t *testing.T, s Summary) {
	t.Helper()
	switch {
	case s.LedgerFetches == nil || s.OutsideFetches == nil:
		t.Errorf("no ledger figures in the summary of a shared store: %+v", s)
	case *s.OutsideFetches != 0:
		t.Errorf("the fleet's ledger named %d outside fetches in a run without one", *s.OutsideFetches)
	case *s.LedgerFetches != s.Fetches:
		t.Errorf("the fleet's ledger counts %d fetches, the simulator answered %d", *s.LedgerFetches, s.Fetches)
	}
}

func TestSharedFileStoreVersusNaive(t *testing.T) {
	shared := runFleet(t, nil, "-store=file")
	if shared.Store != "file" || shared.Naive || shared.Procs != 4 || shared.SimHours != 8 {
		t.Errorf("summary does not describe the run: %+v", shared)
	}
	checkShared(t, shared, 5) // 8h / (2h − 5m) + 1

	naive := runFleet(t, nil, "-naive")
	if naive.Store != "memory" || !naive.Naive || naive.LedgerFetches != nil || naive.OutsideFetches != nil {
		t.Errorf("summary does not describe the naive run: %+v", naive)
	}
	t.Logf("shared file store: %d fetches, %d 40001s of %d calls; naive: %d fetches, %d 40001s of %d calls",
		shared.Fetches, shared.Errors40001, shared.Calls, naive.Fetches, naive.Errors40001, naive.Calls)
	if naive.Fetches <= shared.Fetches && naive.Errors40001 <= shared.Errors40001 {
		t.Errorf("the naive fleet did no worse than the shared store: naive %+v, shared %+v", naive, shared)
	}
}

// TestStableAPI runs both modes with -api stable: the shared store still
// makes one fetch per refresh; the naive fleet sees no 40001 (stable tokens
// do not invalidate each other) but fetches once per process per refresh.
func TestStableAPI(t *testing.T) {
	shared := runFleet(t, nil, "-api", "stable")
	if shared.API != apiStable || shared.Store != "file" || shared.Naive {
		t.Errorf("summary does not describe the run: %+v", shared)
	}
	// Not checkShared's ±1: a refresh ahead of expiry (5 min) that reaches
	// the simulator a moment before its 5-minute hand-over gets the same
	// token back and is tried again, so a stable fleet makes a few more.
	if shared.Errors40001 != 0 {
		t.Errorf("callers saw %d 40001 errors through a shared store, want 0", shared.Errors40001)
	}
	if shared.Fetches < shared.ExpectedFetches-1 {
		t.Errorf("%d token fetches, want at least %d", shared.Fetches, shared.ExpectedFetches-1)
	}
	checkLedger(t, shared)

	naive := runFleet(t, nil, "-api", "stable", "-naive")
	if naive.API != apiStable || !naive.Naive {
		t.Errorf("summary does not describe the naive run: %+v", naive)
	}
	// Stable tokens do not invalidate each other: no cascade (-naive with
	// classic tokens loses over 80% of its calls). A loaded machine at this
	// speed (a simulated minute is 8 ms) can still see a few calls reach
	// the simulator just after their token expired (42001, counted here).
	if naive.Errors40001*100 > naive.Calls {
		t.Errorf("naive stable fleet: %d of %d calls rejected, want under 1%% (stable tokens do not invalidate each other)", naive.Errors40001, naive.Calls)
	}
	// 4 processes, each fetching for itself: about 4 × 5; at least twice
	// what the shared store needs, whatever the machine's load.
	if naive.Fetches < 2*shared.Fetches {
		t.Errorf("naive stable fleet: %d fetches, want at least 2 × %d (one per process per refresh)", naive.Fetches, shared.Fetches)
	}
	t.Logf("stable: shared %d fetches, naive %d fetches; 40001s %d and %d", shared.Fetches, naive.Fetches, shared.Errors40001, naive.Errors40001)
}

// TestWeCom runs both modes with -api wecom: a WeCom app's gettoken hands
// back the current token while it is valid, and the simulator revokes it
// early at 07:00 of the 8 simulated hours, an hour before it would expire. The shared store makes one
// gettoken call per expiry or revocation for the whole fleet and no caller
// sees a 40014; the naive fleet fetches once per process per event, and
// its callers see the revoked token.
func TestWeCom(t *testing.T) {
	shared := runFleet(t, nil, "-api", "wecom")
	if shared.API != apiWeCom || shared.Store != "file" || shared.Naive {
		t.Errorf("summary does not describe the run: %+v", shared)
	}
	if shared.Revocations != 1 || shared.ExpectedFetches != 5 { // 00:00, 02:00, 04:00, 06:00, 07:00 (revoked)
		t.Errorf("revocations %d, expected_fetches %d, want 1 and 5", shared.Revocations, shared.ExpectedFetches)
	}
	if shared.Errors40001 != 0 {
		t.Errorf("callers saw %d 40014 errors through a shared store, want 0", shared.Errors40001)
	}
	// WeCom mints one token per expiry or revocation, whoever asks: the
	// parent's probes mint none (each revocation falls inside a token's
	// life) and the fleet's calls that got the current token back are not
	// counted.
	checkNewTokens(t, "shared", shared)
	// One per event, plus at most one more per event: on the fast simulated
	// clock a fetch at a token's end can reach WeCom a few simulated seconds
	// before it and get the same token back for those seconds.
	if shared.Fetches > 2*shared.ExpectedFetches {
		t.Errorf("%d gettoken calls, want at most 2 × %d (one per expiry or revocation for the fleet)", shared.Fetches, shared.ExpectedFetches)
	}

	naive := runFleet(t, nil, "-api", "wecom", "-naive")
	if naive.API != apiWeCom || !naive.Naive || naive.Revocations != 1 {
		t.Errorf("summary does not describe the naive run: %+v", naive)
	}
	// 4 processes, each fetching for itself at the start and at the
	// revocation at least, and each with a caller that met the revoked token.
	if naive.Fetches < 4*(1+naive.Revocations) || naive.Fetches <= shared.Fetches {
		t.Errorf("naive WeCom fleet: %d gettoken calls, want at least %d (one per process per event) and more than the shared store's %d", naive.Fetches, 4*(1+naive.Revocations), shared.Fetches)
	}
	checkNewTokens(t, "naive", naive)
	if naive.Errors40001 < 4 {
		t.Errorf("naive WeCom fleet: %d 40014 errors, want at least one per process (4) after the revocation", naive.Errors40001)
	}
	t.Logf("wecom: shared %d gettoken calls (expected %d), naive %d; 40014s %d and %d", shared.Fetches, shared.ExpectedFetches, naive.Fetches, shared.Errors40001, naive.Errors40001)
}

// checkNewTokens asserts that an -api wecom run reports the tokens WeCom
// minted and its 42001s, and minted one token per expiry or revocation
// (± 1: a loaded machine can move an expiry across the run's end).
func checkNewTokens(t *testing.T, mode string, s Summary) {
	t.Helper()
	if s.NewTokens == nil || s.Errors42001 == nil {
		t.Errorf("%s: new_tokens or errors_42001 missing from an -api wecom summary: %+v", mode, s)
		return
	}
	if d := *s.NewTokens - s.ExpectedFetches; d < -1 || d > 1 {
		t.Errorf("%s: WeCom minted %d tokens, want %d ± 1 (one per expiry or revocation)", mode, *s.NewTokens, s.ExpectedFetches)
	}
	if *s.Errors42001 < 0 || *s.Errors42001 > s.Errors40001 {
		t.Errorf("%s: %d 42001s among %d rejected calls", mode, *s.Errors42001, s.Errors40001)
	}
}

// TestSharedRedisStore runs the demo's day on Redis: 8 processes, 24
// simulated hours (in 12 s), no one fetching outside the fleet. Besides
// checkShared's figures, the fleet's fetch ledger must name no outside
// fetch across the fleet's own refreshes and lock contention, and count
// what the simulator answered.
func TestSharedRedisStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis container")
	}
	rdb := containers.StartRedis(t)
	s := runFleet(t, map[string]string{"WECHATCONF_REDIS_ADDR": rdb.Addr}, "-store=redis", "-procs", "8", "-sim", "24h", "-duration", "12s")
	if s.Store != "redis" || s.Procs != 8 || s.SimHours != 24 {
		t.Errorf("summary does not describe the run: %+v", s)
	}
	checkShared(t, s, 13) // 24h / (2h − 5m) + 1
}

func TestTextSummary(t *testing.T) {
	var stdout, stderr syncBuffer
	err := run(t.Context(), []string{"-procs", "2", "-callers", "2", "-sim", "4h", "-duration", "1s", "-warmup", "500ms"},
		func(string) string { return "" }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"token fetches", "expected 3", "outside fetches      0", "40001 errors", "calls", "AccessToken    p50"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "sim 04:00 / 04:00") {
		t.Errorf("no final progress line on stderr:\n%s", stderr.String())
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-store=redis"}, "-redis"},
		{[]string{"-store=postgres"}, "-postgres"},
		{[]string{"-store=etcd"}, "-etcd"},
		{[]string{"-store=mongo"}, "unknown -store"},
		{[]string{"-api=v2"}, "unknown -api"},
		{[]string{"-api=work"}, "want classic, stable or wecom"},
		{[]string{"-procs", "0"}, "-procs"},
		{[]string{"-duration", "0s"}, "-duration"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var stdout, stderr syncBuffer
		err := run(t.Context(), tc.args, func(string) string { return "" }, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %q: error %v, want one naming %q", tc.args, err, tc.want)
		}
	}
	var stdout, stderr syncBuffer
	if err := run(t.Context(), []string{"-h"}, func(string) string { return "" }, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestUnreachableStoreIsOneClearError(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	err := run(ctx, []string{"-store=redis", "-redis=127.0.0.1:1"}, func(string) string { return "" }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "cannot reach Redis at 127.0.0.1:1") {
		t.Errorf("error %v, want one saying Redis cannot be reached", err)
	}
}

func TestInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var stdout syncBuffer
	// Interrupt once a progress line reports served calls: the run is under way.
	stderr := &signalBuffer{match: regexp.MustCompile(`calls [1-9]`), seen: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-procs", "2", "-sim", "24h", "-duration", "60s", "-warmup", "200ms", "-json"},
			func(string) string { return "" }, &stdout, stderr)
	}()
	select {
	case <-stderr.seen:
	case err := <-errc:
		t.Fatalf("the run ended before serving calls: %v\nstderr: %s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("no progress line with served calls within 30s; stderr: %s", stderr.String())
	}
	cancel()
	err := awaitStop(t, errc, stderr)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("error %v, want an interruption", err)
	}
	var s Summary
	if jerr := json.Unmarshal([]byte(stdout.String()), &s); jerr != nil || s.Calls == 0 {
		t.Errorf("no partial summary after the interruption (%v): %s\nstderr: %s", jerr, stdout.String(), stderr.String())
	}
}

// awaitStop returns run's error once it returns after an interruption, and
// fails the test if the workers had to be killed (they must stop when told:
// the parent kills those still running stopTimeout later, and says so).
// The wait itself has a generous limit beyond that.
func awaitStop(t *testing.T, errc <-chan error, stderr *signalBuffer) error {
	t.Helper()
	begin := time.Now()
	var err error
	select {
	case err = <-errc:
	case <-time.After(stopTimeout + time.Minute):
		t.Fatalf("run still running %v after its ctx was cancelled; stderr: %s", stopTimeout+time.Minute, stderr.String())
	}
	t.Logf("stopping took %v", time.Since(begin).Round(time.Millisecond))
	if strings.Contains(stderr.String(), "did not stop within") {
		t.Errorf("workers had to be killed after the interruption, want them to stop when told; stderr: %s", stderr.String())
	}
	return err
}

// TestInterruptBeforeTheClockStarts tests ctrl-C while the parent waits for
// its workers (a -warmup far longer than the test): every worker stops and
// reports, the summary covers no simulated time and no call.
func TestInterruptBeforeTheClockStarts(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout syncBuffer
	stderr := &signalBuffer{match: regexp.MustCompile(`fleet: 2 processes`), seen: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-procs", "2", "-sim", "8h", "-duration", "4s", "-warmup", "1h", "-json"},
			func(string) string { return "" }, &stdout, stderr)
	}()
	select {
	case <-stderr.seen:
	case err := <-errc:
		t.Fatalf("the run ended before launching its workers: %v\nstderr: %s", err, stderr.String())
	case <-time.After(time.Minute):
		t.Fatalf("no workers launched within a minute; stderr: %s", stderr.String())
	}
	cancel()
	err := awaitStop(t, errc, stderr)
	if err == nil || !strings.Contains(err.Error(), "interrupted at simulated 00:00") {
		t.Errorf("error %v, want an interruption at simulated 00:00", err)
	}
	var s Summary
	if jerr := json.Unmarshal([]byte(stdout.String()), &s); jerr != nil || s.SimHours != 0 || s.Calls != 0 || s.Fetches != 0 {
		t.Errorf("summary after an interruption before the clock started (%v): %s, want no simulated time, calls or fetches\nstderr: %s", jerr, stdout.String(), stderr.String())
	}
}

func TestHistogram(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want int64
	}{{0.5, 500_000}, {0.99, 990_000}, {1, 1_000_000}} {
		got := h.quantile(tc.q)
		if diff := float64(got-tc.want) / float64(tc.want); diff < -0.04 || diff > 0.04 {
			t.Errorf("quantile(%v) = %d, want %d ± 4%%", tc.q, got, tc.want)
		}
	}
	var back hist
	back.addSparse(h.sparse())
	if back != h {
		t.Error("histogram does not survive sparse encoding")
	}
	for v := int64(0); v < 1<<20; v += 7 {
		if lo := bucketValue(bucket(v)); float64(lo-v) > 0.04*float64(v)+1 || float64(v-lo) > 0.04*float64(v)+1 {
			t.Fatalf("bucketValue(bucket(%d)) = %d", v, lo)
		}
	}
	if b := bucket(1<<63 - 1); b >= histBuckets {
		t.Errorf("bucket(MaxInt64) = %d, out of range", b)
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	real0 := time.Now().Add(-time.Second)
	c := newClock(start.UnixNano(), real0.UnixNano(), 3600)
	if d := c.now().Sub(start); d < time.Hour || d > 2*time.Hour {
		t.Errorf("one real second at ×3600 gave %v of simulated time", d)
	}
	if got := c.realAt(2 * time.Hour); got.Sub(real0).Round(time.Millisecond) != 2*time.Second {
		t.Errorf("realAt(2h) = real0 + %v, want 2s", got.Sub(real0))
	}
	future := newClock(start.UnixNano(), time.Now().Add(time.Hour).UnixNano(), 3600)
	if !future.now().Equal(start) {
		t.Errorf("before startReal the clock reads %v, want %v", future.now(), start)
	}
}

func TestExpectedWeComFetches(t *testing.T) {
	// Tokens live 2h; revocations at 07:00, 14:00 and 21:00: 4 tokens
	// before each (00:00, 02:00, 04:00, 06:00; 07:00, 09:00, 11:00, 13:00;
	// ...) and 2 after the last (21:00, 23:00).
	for sim, want := range map[time.Duration]int{
		24 * time.Hour: 14, 8 * time.Hour: 5, time.Hour: 1, 0: 1,
		7 * time.Hour: 4, 14 * time.Hour: 8, 15 * time.Hour: 9,
	} {
		if got := expectedWeComFetches(sim); got != want {
			t.Errorf("expectedWeComFetches(%v) = %d, want %d", sim, got, want)
		}
	}
}

// TestRevocationsFallInsideATokensLife checks that -api wecom's early
// revocations are early: on the timeline of a fleet that fetches a token at
// the start, at each expiry (2h later) and at each revocation, every
// revocation ends a token at least a quarter of its life after it was
// minted and a quarter of its life before it would expire. A schedule on
// the 2h grid (every 6h) revokes a token at the instant it expires.
func TestRevocationsFallInsideATokensLife(t *testing.T) {
	life := wxtest.DefaultExpiresIn
	if life != 2*time.Hour {
		t.Fatalf("wxtest.DefaultExpiresIn = %v; this test and revokeEvery's doc assume 2h", life)
	}
	revs := revocationTimes(24 * time.Hour)
	if len(revs) != 3 {
		t.Errorf("%d revocations in a simulated day (%v), want 3", len(revs), revs)
	}
	minted := time.Duration(0) // the current token's birth
	for _, r := range revs {
		for minted+life <= r {
			minted += life // it expired; the fleet fetched the next one
		}
		age, left := r-minted, minted+life-r
		t.Logf("revocation at %s: the token is %v old, %v left", hhmm(r), age, left)
		if age < life/4 || left < life/4 {
			t.Errorf("revocation at %s ends a token %v after it was minted, %v before it expires: want at least %v from both, off the expiry grid",
				hhmm(r), age, left, life/4)
		}
		minted = r // revoked: the fleet fetches a new token at once
	}
}

func TestExpectedFetches(t *testing.T) {
	for sim, want := range map[time.Duration]int{24 * time.Hour: 13, 8 * time.Hour: 5, time.Hour: 1, 115 * time.Minute: 2} {
		if got := expectedFetches(sim); got != want {
			t.Errorf("expectedFetches(%v) = %d, want %d", sim, got, want)
		}
	}
}

// syncBuffer is a strings.Builder safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// signalBuffer is a syncBuffer that closes seen once its content matches.
type signalBuffer struct {
	syncBuffer
	match *regexp.Regexp
	seen  chan struct{}
	once  sync.Once
}

func (b *signalBuffer) Write(p []byte) (int, error) {
	n, err := b.syncBuffer.Write(p)
	if b.match.MatchString(b.String()) {
		b.once.Do(func() { close(b.seen) })
	}
	return n, err
}
