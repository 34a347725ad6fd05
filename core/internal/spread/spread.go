// Package spread measures how a vendor platform's tenant token refreshes
// spread over time across a fleet (issue 27's "refresh spreading"): n
// tenants authorized within the first simulated hour, called by a fleet
// of processes (real Components or Suites, each its own registry of
// handles, on one shared store) over a simulated day, with WeChat
// simulated in memory (core/wxtest's handler, reached through Transport)
// on an injected clock (Clock). The fleet's fetch schedule is what the
// engine makes of it — the refresh ahead, Policy.RefreshJitter drawn by
// each process when it adopts a token, the compare-and-refresh at the
// store — so the platform packages' tests drive the real engine through
// a Fleet and this package counts, per simulated minute, WeChat's token
// fetches (by path, in Transport) and the store's operations (Store).
//
// Time is simulated and the result does not depend on the machine's
// speed or load: the clock moves one Step at a time, and before it moves
// Run waits until every goroutine the step started (background refreshes,
// their flights, ledger writes) has ended — the Components and Suites
// hold none at rest, so the goroutine count returning to what it was
// before the run is exactly "the fleet is idle". What is random (the
// harness's choices, seeded; the engine's jitter draws, not) varies the
// figures by the noise of the counts only.
//
// It is test support (it imports package testing through benchrow): only
// tests and benchmarks use it.
package spread

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// Clock is the simulated clock every part of a run reads (Config.Now of
// the Components, wxtest.Options.Now): it moves only when Run advances it.
// Safe for concurrent use.
type Clock struct {
	start time.Time
	ns    atomic.Int64
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{start: start} }

// Now returns the simulated time.
func (c *Clock) Now() time.Time { return c.start.Add(time.Duration(c.ns.Load())) }

// Elapsed returns the simulated time since the start.
func (c *Clock) Elapsed() time.Duration { return time.Duration(c.ns.Load()) }

func (c *Clock) set(d time.Duration) { c.ns.Store(int64(d)) }

// Start is the simulated clock's start in the runs of the platform
// packages: a Monday, midnight in Beijing (WeChat's days).
var Start = time.Date(2025, 1, 6, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))

// Store is a core.TokenStore over another (a *core.MemoryStore in the
// runs) that counts its operations for the step in progress.
type Store struct {
	Inner core.TokenStore
	ops   [numOps]atomic.Int64
}

// The operations Store counts.
const (
	OpGet     = iota // Get
	OpSet            // Set
	OpRefresh        // Refresh (compare-and-refresh under the key's lock)
	OpLedger         // Get and Refresh of fetch ledgers (keys ending in core.LedgerKeySuffix), not in the above
	numOps
)

func (s *Store) count(op int, key string) {
	if strings.HasSuffix(key, core.LedgerKeySuffix) {
		op = OpLedger
	}
	s.ops[op].Add(1)
}

// Get implements core.TokenStore.
func (s *Store) Get(ctx context.Context, key string) (core.Token, error) {
	s.count(OpGet, key)
	return s.Inner.Get(ctx, key)
}

// Set implements core.TokenStore.
func (s *Store) Set(ctx context.Context, key string, t core.Token) error {
	s.count(OpSet, key)
	return s.Inner.Set(ctx, key, t)
}

// Refresh implements core.TokenStore.
func (s *Store) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	s.count(OpRefresh, key)
	return s.Inner.Refresh(ctx, key, stale, fetch)
}

// take returns the operations counted since the last take, and zeroes them.
func (s *Store) take() (n [numOps]int64) {
	for i := range n {
		n[i] = s.ops[i].Swap(0)
	}
	return n
}

// Transport is an http.RoundTripper that serves each request with Handler
// (core/wxtest's) in this goroutine — no socket, no goroutine — and counts
// the requests by path for the step in progress.
type Transport struct {
	Handler http.Handler
	// RefreshPath is the path of a tenant's token refresh
	// (api_authorizer_token, get_corp_token), ExchangePath that of an
	// authorization's code exchange (api_query_auth, get_permanent_code).
	RefreshPath, ExchangePath string
	refreshes, exchanges      atomic.Int64
	others                    atomic.Int64
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Path {
	case t.RefreshPath:
		t.refreshes.Add(1)
	case t.ExchangePath:
		t.exchanges.Add(1)
	default:
		t.others.Add(1)
	}
	if req.Body != nil {
		// The handler reads it; the client closes it.
		defer req.Body.Close()
	}
	rec := httptest.NewRecorder()
	t.Handler.ServeHTTP(rec, req)
	res := rec.Result()
	res.Request = req
	if res.Body == nil {
		res.Body = io.NopCloser(strings.NewReader(""))
	}
	return res, nil
}

// Fleet is a vendor platform's fleet as a run drives it: Processes
// processes (Components, Suites) on one store, reaching WeChat through a
// Transport, reading a Clock.
type Fleet interface {
	// Authorize has tenant authorize the platform now (WeChat's side:
	// wxtest) and process proc apply it (the redirect or the push: its
	// code exchanged, its record written with its first token).
	Authorize(ctx context.Context, proc int, tenant string) error
	// Call is one use of tenant's access token on process proc: the
	// registry lookup and the handle's AccessToken (from memory, or the
	// refresh ahead started in the background, or the store), then its use
	// at WeChat, which may reject it (a token another process's refresh
	// superseded, its overlap over): the call then replaces it as an API
	// call does (a compare-and-refresh: the store's newer token, or one
	// fetch for the fleet) and reports rejected.
	Call(ctx context.Context, proc int, tenant string) (rejected bool, err error)
	// Push delivers WeChat's periodic push (the component_verify_ticket,
	// the suite_ticket: every 10 minutes) to process proc.
	Push(ctx context.Context, proc int) error
}

// Config is one run.
type Config struct {
	// Tenants authorize at uniformly random times within AuthorizeWithin
	// (one hour in issue 27) from the start; Processes serve them.
	Tenants, Processes int
	AuthorizeWithin    time.Duration
	// Day is the simulated time the run covers (24 h); Step the clock's
	// step (each step's calls are made at its start, then the fleet is
	// waited for); Bin the width of the bins the rate is counted in
	// (a minute; a multiple of Step).
	Day, Step, Bin time.Duration
	// CallEvery is how often each tenant is called on average, from its
	// authorization on: the intervals are exponential (a Poisson stream of
	// calls), each call made by a process drawn at random.
	CallEvery time.Duration
	// PushEvery is how often WeChat's push (Fleet.Push) reaches a process
	// drawn at random.
	PushEvery time.Duration
	// Seed seeds the run's own choices (authorization times, calls,
	// processes). The engine's jitter draws are its own.
	Seed uint64
}

// Result is what a run counted, per bin of Config.Bin from the start.
type Result struct {
	Config Config
	// Refreshes and Exchanges are the requests to Transport's RefreshPath
	// and ExchangePath per bin; Others the rest (the platform token,
	// tickets).
	Refreshes, Exchanges, Others []int64
	// Ops is the store's operations per bin, by kind (OpGet …).
	Ops [][numOps]int64
	// Calls is how many calls were made, Rejected how many of them had
	// their token rejected at WeChat; Errors how many calls or pushes
	// failed, and FirstError the first failure.
	Calls, Rejected, Errors int64
	FirstError              error
}

// Run runs cfg on fleet, whose processes use store and transport and read
// clock. It fails only for a bad cfg; the fleet's errors are counted in
// the result.
func Run(ctx context.Context, cfg Config, fleet Fleet, clock *Clock, store *Store, transport *Transport) (*Result, error) {
	if cfg.Tenants <= 0 || cfg.Processes <= 0 || cfg.Step <= 0 || cfg.Bin < cfg.Step || cfg.Bin%cfg.Step != 0 ||
		cfg.Day < cfg.AuthorizeWithin || cfg.AuthorizeWithin < cfg.Step || cfg.CallEvery < cfg.Step || cfg.PushEvery < cfg.Step {
		return nil, fmt.Errorf("spread: bad config %+v", cfg)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	steps := int(cfg.Day / cfg.Step)
	bins := int(cfg.Day / cfg.Bin)
	perBin := int(cfg.Bin / cfg.Step)
	r := &Result{Config: cfg, Refreshes: make([]int64, bins), Exchanges: make([]int64, bins), Others: make([]int64, bins), Ops: make([][numOps]int64, bins)}

	// The calendar: the tenants due at each step, in a ring of buckets
	// long enough for the longest interval drawn (capped at 20 means).
	ids := make([]string, cfg.Tenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("wx%014d", i)
	}
	authAt := make([][]int32, int(cfg.AuthorizeWithin/cfg.Step))
	for i := range ids {
		s := rng.IntN(len(authAt))
		authAt[s] = append(authAt[s], int32(i))
	}
	maxGap := 20 * int(cfg.CallEvery/cfg.Step)
	ring := make([][]int32, maxGap+1)
	next := func(step int, tenant int32) {
		gap := 1 + int(rng.ExpFloat64()*float64(cfg.CallEvery/cfg.Step))
		gap = min(gap, maxGap)
		b := &ring[(step+gap)%len(ring)]
		*b = append(*b, tenant)
	}
	pushSteps := int(cfg.PushEvery / cfg.Step)

	base := runtime.NumGoroutine()
	store.take()
	transport.refreshes.Swap(0)
	transport.exchanges.Swap(0)
	transport.others.Swap(0)
	fail := func(err error) {
		if err != nil {
			if r.Errors++; r.FirstError == nil {
				r.FirstError = err
			}
		}
	}
	for step := range steps {
		clock.set(time.Duration(step) * cfg.Step)
		if step%pushSteps == 0 {
			fail(fleet.Push(ctx, rng.IntN(cfg.Processes)))
		}
		if step < len(authAt) {
			for _, i := range authAt[step] {
				fail(fleet.Authorize(ctx, rng.IntN(cfg.Processes), ids[i]))
				next(step, i)
			}
			authAt[step] = nil
		}
		due := ring[step%len(ring)]
		ring[step%len(ring)] = nil
		for _, i := range due {
			r.Calls++
			rejected, err := fleet.Call(ctx, rng.IntN(cfg.Processes), ids[i])
			if rejected {
				r.Rejected++
			}
			fail(err)
			next(step, i)
		}
		if err := settle(base); err != nil {
			return r, err
		}
		b := step / perBin
		ops := store.take()
		for k := range ops {
			r.Ops[b][k] += ops[k]
		}
		r.Refreshes[b] += transport.refreshes.Swap(0)
		r.Exchanges[b] += transport.exchanges.Swap(0)
		r.Others[b] += transport.others.Swap(0)
		if err := ctx.Err(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// settleLimit bounds one wait of settle in real time: far beyond any
// step's work, it turns a goroutine that never ends into an error rather
// than a hung run.
const settleLimit = 5 * time.Minute

// settle waits until the goroutines are back to base: every background
// refresh, flight and ledger write the step started has ended. It polls
// that condition (what it waits for is the fleet's work, whatever its
// speed); it does not time anything.
func settle(base int) error {
	var start time.Time
	for i := 0; runtime.NumGoroutine() > base; i++ {
		switch {
		case i < 64:
			runtime.Gosched()
			continue
		case i == 64:
			start = time.Now()
		case time.Since(start) > settleLimit:
			return fmt.Errorf("spread: %d goroutines still running after %v (%d before the run)", runtime.NumGoroutine(), settleLimit, base)
		}
		time.Sleep(50 * time.Microsecond)
	}
	return nil
}
