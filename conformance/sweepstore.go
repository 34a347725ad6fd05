package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// faultMode is what the one fault of a sweep run does to the store call it
// hits (see Sweep).
type faultMode int

const (
	faultNone  faultMode = iota
	faultFail            // the call fails without effect
	faultLands           // the call takes effect, then reports failure
	faultHang            // the call blocks until its ctx ends, without effect
	faultLost            // Refresh only: the fetch runs, then the write fails (WeChat's reply is lost)
	faultKill            // the process is killed (SIGKILL) right after the call returns
)

var faultNames = [...]string{"baseline", "fail", "lands", "hang", "lost", "kill"}

func (m faultMode) String() string { return faultNames[m] }

// errInjected is wrapped by every error an injected fault returns.
var errInjected = errors.New("conformance: injected store fault")

// storeCall is one store call a sweep run counted.
type storeCall struct {
	Seq  int    `json:"seq"`  // 1-based among the counted calls
	Proc string `json:"proc"` // the process ("A", "B", …) that made it
	Op   string `json:"op"`   // Get, Set, Refresh, Claim, CompareAndSwapClaim, or Handler (see opHandler)
	Key  string `json:"key"`
	// Quiet: the process made no WeChat call between the return of its
	// previous store call and the return of this one. A kill right after
	// a quiet Get is the same crash as a kill right after the call
	// before it.
	Quiet bool `json:"quiet"`
}

func (c storeCall) String() string {
	if c.Op == opHandler {
		return fmt.Sprintf("%s's handler of %q returned", c.Proc, c.Key)
	}
	return fmt.Sprintf("%s %s(%q)", c.Proc, c.Op, c.Key)
}

// opHandler is the Op of a point that is no store call: a push handler's
// return (the Pushes scenario), between the Claim before it and the call
// that records or releases the push after it. It is counted among the
// calls so that the kill mode kills a process right there — the crash the
// Dedup documents as a possible duplicate — and is no fault point of the
// other modes.
const opHandler = "Handler"

// histEvent is one event of a run's history, in the order the parent
// learnt of them: a store call returned (call), a call left a value
// (write), a push handler started, finished or failed (start, finish,
// fail), the driver delivered a push (deliver) and got its outcome
// (outcome). The Pushes scenario's invariants are checked on it.
type histEvent struct {
	Kind  string `json:"kind"`
	Proc  string `json:"proc"`
	Op    string `json:"op,omitempty"`    // call: its Op
	Key   string `json:"key,omitempty"`   // the store key (a push's claim key)
	Value string `json:"value,omitempty"` // write: the value; outcome: the PushOutcome's name
	Seq   int    `json:"seq,omitempty"`   // call: its number in the plan that counted it
	Child bool   `json:"child,omitempty"` // call: counted by a kill-mode child
}

// storeWrite is one value a store call left in the store.
type storeWrite struct {
	Proc    string `json:"proc"`
	Key     string `json:"key"`
	Value   string `json:"value"`
	Expires int64  `json:"expires"` // Unix milliseconds, 0 for a zero ExpiresAt
}

// faultPlan counts the store calls of one sweep run, injects the run's one
// fault at the k-th, and keeps the history of what every call wrote.
type faultPlan struct {
	mode faultMode
	k    int    // the call to hit, 1-based; 0: none
	only string // count only this process's calls ("" every process)
	// emit, in a kill-mode child, reports each call and write to the
	// parent as it happens; kill kills the process.
	emit func(kind string, v any)
	kill func()

	mu    sync.Mutex
	armed bool
	// late counts the calls no fault hit whose ctx ended while they ran,
	// lockLost the Refresh calls that lost their lock to the lease: on a
	// busy machine a timeout or a lease can run out without a fault, which
	// is then a second fault in the run (see sweeper.run).
	late, lockLost int
	n              int
	calls          []storeCall
	childCalls     []storeCall // a kill-mode child's, as it reported them
	writes         []storeWrite
	hit            *storeCall
	lastWeb        map[string]int64
	hist           []histEvent
}

func newFaultPlan(mode faultMode, k int) *faultPlan {
	return &faultPlan{mode: mode, k: k, lastWeb: map[string]int64{}}
}

func (p *faultPlan) arm(on bool) {
	p.mu.Lock()
	p.armed = on
	p.mu.Unlock()
}

// enter counts a call of proc and says which fault, if any, it takes.
func (p *faultPlan) enter(proc, op, key string) (seq int, m faultMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.armed || (p.only != "" && proc != p.only) {
		return 0, faultNone
	}
	p.n++
	c := storeCall{Seq: p.n, Proc: proc, Op: op, Key: key}
	p.calls = append(p.calls, c)
	if p.n == p.k {
		m = p.mode
		if (m == faultLost && op != "Refresh") || (m != faultKill && op == opHandler) {
			m = faultNone
		}
		if m != faultNone {
			p.hit = &c
		}
	}
	return p.n, m
}

// timing records what a call that returned err with ctx says of the
// machine's speed: begun with ctx live, it ran until ctx ended, or its
// Refresh lost its lock to the lease.
func (p *faultPlan) timing(ctx context.Context, live bool, m faultMode, err error) {
	late := m == faultNone && live && ctx.Err() != nil
	lost := errors.Is(err, core.ErrLockLost) && !errors.Is(err, errLeasePlayed)
	if late || lost {
		p.mu.Lock()
		if late {
			p.late++
		}
		if lost {
			p.lockLost++
		}
		p.mu.Unlock()
	}
}

// exit records that call seq of s returned; web is s's count of WeChat
// calls. A kill-mode fault kills the process here.
func (p *faultPlan) exit(s *faultStore, seq int, m faultMode) {
	if seq == 0 {
		return
	}
	web := s.web.Load()
	p.mu.Lock()
	c := &p.calls[seq-1]
	c.Quiet = web == p.lastWeb[s.proc]
	p.lastWeb[s.proc] = web
	call := *c
	p.hist = append(p.hist, histEvent{Kind: "call", Proc: call.Proc, Op: call.Op, Key: call.Key, Seq: call.Seq})
	p.mu.Unlock()
	if p.emit != nil {
		p.emit("call", call)
	}
	if m == faultKill && p.kill != nil {
		p.kill()
	}
}

// wrote records that proc's call left tok under key.
func (p *faultPlan) wrote(proc, key string, tok core.Token) {
	w := storeWrite{Proc: proc, Key: key, Value: tok.Value}
	if !tok.ExpiresAt.IsZero() {
		w.Expires = tok.ExpiresAt.UnixMilli()
	}
	p.absorbWrite(w)
	if p.emit != nil {
		p.emit("wrote", w)
	}
}

func (p *faultPlan) absorbWrite(w storeWrite) {
	p.mu.Lock()
	p.writes = append(p.writes, w)
	p.hist = append(p.hist, histEvent{Kind: "write", Proc: w.Proc, Key: w.Key, Value: w.Value})
	p.mu.Unlock()
}

// absorbChildCall records a call a kill-mode child reported.
func (p *faultPlan) absorbChildCall(c storeCall) {
	p.mu.Lock()
	p.childCalls = append(p.childCalls, c)
	p.hist = append(p.hist, histEvent{Kind: "call", Proc: c.Proc, Op: c.Op, Key: c.Key, Seq: c.Seq, Child: true})
	p.mu.Unlock()
}

// ran records that proc's handler of the push whose claim key is key
// started, finished or failed (kind); a kill-mode child reports it to its
// parent.
func (p *faultPlan) ran(proc, key, kind string) {
	e := histEvent{Kind: kind, Proc: proc, Key: key}
	p.record(e)
	if p.emit != nil {
		p.emit("ran", e)
	}
}

// record appends e to the history.
func (p *faultPlan) record(e histEvent) {
	p.mu.Lock()
	p.hist = append(p.hist, e)
	p.mu.Unlock()
}

// handlerReturned counts the return of s's process's push handler of key
// as a point of the kill mode (opHandler): the process is killed right
// there when it is the one.
func (p *faultPlan) handlerReturned(s *faultStore, key string) {
	seq, m := p.enter(s.proc, opHandler, key)
	p.exit(s, seq, m)
}

// history returns the run's history so far.
func (p *faultPlan) history() []histEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]histEvent(nil), p.hist...)
}

func (p *faultPlan) snapshot() (calls []storeCall, writes []storeWrite, hit *storeCall) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]storeCall(nil), p.calls...), append([]storeWrite(nil), p.writes...), p.hit
}

// faultStore is the sweep's store wrapper: it passes every call through to
// inner, except the one its plan hits, and records what each call wrote.
// One faultStore is one process's view of the store (proc names it); web
// counts that process's WeChat calls.
type faultStore struct {
	inner core.TokenStore
	plan  *faultPlan
	proc  string
	web   *atomic.Int64
}

func injected(op, key string, m faultMode) error {
	return fmt.Errorf("conformance: sweep: %s(%q): %w (%s)", op, key, errInjected, m)
}

// hang blocks until ctx ends and returns its error, as a store that does
// not answer and honours ctx.
func hang(ctx context.Context, op, key string) error {
	<-ctx.Done()
	return fmt.Errorf("conformance: sweep: %s(%q): injected hang: %w", op, key, ctx.Err())
}

func (s *faultStore) Get(ctx context.Context, key string) (tok core.Token, err error) {
	seq, m := s.plan.enter(s.proc, "Get", key)
	defer s.plan.exit(s, seq, m)
	switch m {
	case faultFail:
		return core.Token{}, injected("Get", key, m)
	case faultHang:
		return core.Token{}, hang(ctx, "Get", key)
	}
	live := ctx.Err() == nil
	tok, err = s.inner.Get(ctx, key)
	s.plan.timing(ctx, live, m, err)
	if m == faultLands && err == nil {
		return core.Token{}, injected("Get", key, m)
	}
	return tok, err
}

func (s *faultStore) Set(ctx context.Context, key string, tok core.Token) (err error) {
	seq, m := s.plan.enter(s.proc, "Set", key)
	defer s.plan.exit(s, seq, m)
	switch m {
	case faultFail:
		return injected("Set", key, m)
	case faultHang:
		return hang(ctx, "Set", key)
	}
	live := ctx.Err() == nil
	err = s.inner.Set(ctx, key, tok)
	s.plan.timing(ctx, live, m, err)
	if err == nil {
		s.plan.wrote(s.proc, key, tok)
		if m == faultLands {
			return injected("Set", key, m)
		}
	}
	return err
}

func (s *faultStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (tok core.Token, err error) {
	seq, m := s.plan.enter(s.proc, "Refresh", key)
	defer s.plan.exit(s, seq, m)
	switch m {
	case faultFail:
		return core.Token{}, injected("Refresh", key, m)
	case faultHang:
		return core.Token{}, hang(ctx, "Refresh", key)
	}
	var (
		mu      sync.Mutex
		fetched core.Token
	)
	live := ctx.Err() == nil
	defer func() { s.plan.timing(ctx, live, m, err) }()
	tok, err = s.inner.Refresh(ctx, key, stale, func(fctx context.Context) (core.Token, error) {
		t, err := fetch(fctx)
		if err != nil {
			return t, err
		}
		if m == faultLost {
			return core.Token{}, injected("Refresh", key, m)
		}
		mu.Lock()
		fetched = t
		mu.Unlock()
		return t, nil
	})
	mu.Lock()
	f := fetched
	mu.Unlock()
	if err == nil && f.Value != "" && tok.Value == f.Value {
		s.plan.wrote(s.proc, key, tok)
	}
	if m == faultLands {
		return core.Token{}, injected("Refresh", key, m)
	}
	return tok, err
}

// faultClaimStore is a faultStore over a store that implements
// core.ClaimStore: its Claim and CompareAndSwapClaim are fault points of
// every mode but lost (fail: no effect and an error; lands: the effect,
// then an error; hang: blocks until ctx ends; kill: SIGKILL right after
// the call returns). A store that lacks ClaimStore is wrapped in a bare
// faultStore, so that a core.Dedup over it emulates its claims
// (core.ClaimsOver) and the faults hit the Get and Refresh calls of the
// emulation instead.
type faultClaimStore struct {
	*faultStore
	claims core.ClaimStore
}

// wrapFaults returns s wrapped for the sweep: a *faultClaimStore when
// claims is not nil, s itself otherwise.
func wrapFaults(s *faultStore, claims core.ClaimStore) core.TokenStore {
	if claims == nil {
		return s
	}
	return &faultClaimStore{faultStore: s, claims: claims}
}

func (s *faultClaimStore) Claim(ctx context.Context, key, value string, ttl time.Duration) (held string, err error) {
	seq, m := s.plan.enter(s.proc, "Claim", key)
	defer s.plan.exit(s.faultStore, seq, m)
	switch m {
	case faultFail:
		return "", injected("Claim", key, m)
	case faultHang:
		return "", hang(ctx, "Claim", key)
	}
	live := ctx.Err() == nil
	held, err = s.claims.Claim(ctx, key, value, ttl)
	s.plan.timing(ctx, live, m, err)
	if err == nil && held == value {
		s.plan.wrote(s.proc, key, core.Token{Value: value, ExpiresAt: time.Now().Add(ttl)})
	}
	if m == faultLands && err == nil {
		return "", injected("Claim", key, m)
	}
	return held, err
}

func (s *faultClaimStore) CompareAndSwapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (swapped bool, err error) {
	seq, m := s.plan.enter(s.proc, "CompareAndSwapClaim", key)
	defer s.plan.exit(s.faultStore, seq, m)
	switch m {
	case faultFail:
		return false, injected("CompareAndSwapClaim", key, m)
	case faultHang:
		return false, hang(ctx, "CompareAndSwapClaim", key)
	}
	live := ctx.Err() == nil
	swapped, err = s.claims.CompareAndSwapClaim(ctx, key, old, value, ttl)
	s.plan.timing(ctx, live, m, err)
	if err == nil && swapped && value != "" {
		s.plan.wrote(s.proc, key, core.Token{Value: value, ExpiresAt: time.Now().Add(ttl)})
	}
	if m == faultLands && err == nil {
		return false, injected("CompareAndSwapClaim", key, m)
	}
	return swapped, err
}

// errLeasePlayed is wrapped by the core.ErrLockLost error of the lease
// leaseStore plays out.
var errLeasePlayed = errors.New("the lease ran out during the fetch (played by the lost-lease scenario)")

// leaseStore plays, in the lost-lease scenario, a lock that runs out under
// its holder: once armed, the first Refresh that would fetch runs the fetch
// without the lock (as a holder whose fetch outlived its lease, another
// holder being free to take the lock) and then fails with an error wrapping
// core.ErrLockLost, writing nothing. next is called once the process's
// next store call after that one has called its fetch or returned: by then
// it has taken the lock if it was going to.
type leaseStore struct {
	inner core.TokenStore

	mu    sync.Mutex
	armed bool
	lost  bool   // the lease was lost; next not yet called
	next  func() // nil once called
}

func (s *leaseStore) arm(next func()) {
	s.mu.Lock()
	s.armed, s.lost, s.next = true, false, next
	s.mu.Unlock()
}

// after returns the func to call once a call made now has fetched or
// returned (once), or a no-op.
func (s *leaseStore) after() func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lost || s.next == nil {
		return func() {}
	}
	next := s.next
	s.next = nil
	s.lost = false
	var once sync.Once
	return func() { once.Do(next) }
}

func (s *leaseStore) Get(ctx context.Context, key string) (core.Token, error) {
	done := s.after()
	defer done()
	return s.inner.Get(ctx, key)
}

func (s *leaseStore) Set(ctx context.Context, key string, tok core.Token) error {
	done := s.after()
	defer done()
	return s.inner.Set(ctx, key, tok)
}

func (s *leaseStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	s.mu.Lock()
	lose := s.armed
	s.mu.Unlock()
	if lose {
		cur, err := s.inner.Get(ctx, key)
		switch {
		case err != nil && !errors.Is(err, core.ErrNotFound) && !errors.Is(err, core.ErrCorrupt):
			return core.Token{}, err
		case err == nil && cur.Value != stale:
			return cur, nil // rule 2: somebody else refreshed; the lease plays no part
		}
		s.mu.Lock()
		s.armed, s.lost = false, true
		s.mu.Unlock()
		if _, err := fetch(ctx); err != nil {
			return core.Token{}, err
		}
		return core.Token{}, fmt.Errorf("conformance: sweep: Refresh(%q): %w: %w", key, errLeasePlayed, core.ErrLockLost)
	}
	done := s.after()
	defer done()
	return s.inner.Refresh(ctx, key, stale, func(fctx context.Context) (core.Token, error) {
		done()
		return fetch(fctx)
	})
}

// gateStore holds, once armed, the process's first Refresh until open is
// closed (or its ctx ends): the lost-lease scenario's second process takes
// the lock only after the first one's next store call after the lost lease.
type gateStore struct {
	inner core.TokenStore

	mu   sync.Mutex
	open <-chan struct{} // nil: not armed
}

func (s *gateStore) arm(open <-chan struct{}) {
	s.mu.Lock()
	s.open = open
	s.mu.Unlock()
}

func (s *gateStore) Get(ctx context.Context, key string) (core.Token, error) {
	return s.inner.Get(ctx, key)
}

func (s *gateStore) Set(ctx context.Context, key string, tok core.Token) error {
	return s.inner.Set(ctx, key, tok)
}

func (s *gateStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	s.mu.Lock()
	open := s.open
	s.open = nil
	s.mu.Unlock()
	if open != nil {
		select {
		case <-open:
		case <-ctx.Done():
			return core.Token{}, fmt.Errorf("conformance: sweep: Refresh(%q) held for the lost-lease step: %w", key, ctx.Err())
		}
	}
	return s.inner.Refresh(ctx, key, stale, fetch)
}

// killSelf kills this process with SIGKILL (TerminateProcess on Windows),
// which no deferred call or finalizer survives, and blocks until it is gone.
func killSelf() {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		p.Kill()
	}
	select {}
}
