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
)

// faultClaims is a MemoryStore whose claim calls can be made to fail
// (nothing written), to land but report failure, or to hang until their
// ctx ends: the three faults of a store call. hook, when set, is asked
// before each call (op "claim" or "swap", the call's old and new value
// for a swap) which claimFault to apply.
type faultClaims struct {
	*core.MemoryStore
	mu    sync.Mutex
	hook  func(op, old, value string) claimFault
	calls map[string]int
}

type claimFault int

const (
	noClaimFault claimFault = iota
	failCall
	landThenFail
	hangCall
)

var errStoreInjected = errors.New("injected store failure")

func newFaultClaims() *faultClaims {
	return &faultClaims{MemoryStore: core.NewMemoryStore(), calls: map[string]int{}}
}

func (f *faultClaims) setHook(h func(op, old, value string) claimFault) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

func (f *faultClaims) faultFor(op, old, value string) claimFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if f.hook == nil {
		return noClaimFault
	}
	return f.hook(op, old, value)
}

func (f *faultClaims) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *faultClaims) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	switch f.faultFor("claim", "", value) {
	case failCall:
		return "", errStoreInjected
	case landThenFail:
		_, _ = f.MemoryStore.Claim(ctx, key, value, ttl)
		return "", errStoreInjected
	case hangCall:
		<-ctx.Done()
		return "", ctx.Err()
	}
	return f.MemoryStore.Claim(ctx, key, value, ttl)
}

func (f *faultClaims) CompareAndSwapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	switch f.faultFor("swap", old, value) {
	case failCall:
		return false, errStoreInjected
	case landThenFail:
		_, _ = f.MemoryStore.CompareAndSwapClaim(ctx, key, old, value, ttl)
		return false, errStoreInjected
	case hangCall:
		<-ctx.Done()
		return false, ctx.Err()
	}
	return f.MemoryStore.CompareAndSwapClaim(ctx, key, old, value, ttl)
}

// isDone, isRelease and isRenewal tell the swaps apart by their values.
func isDone(old, value string) bool    { return strings.HasPrefix(value, "d/") }
func isRelease(old, value string) bool { return value == "" }
func isRenewal(old, value string) bool { return old == value }

func newDedup(t *testing.T, s core.TokenStore, log *jsonLog, tweak func(*core.DedupConfig)) *core.Dedup {
	t.Helper()
	cfg := core.DedupConfig{Store: s, Lease: 300 * time.Millisecond, Remember: time.Minute, Wait: 10 * time.Second, CallTimeout: 200 * time.Millisecond}
	if log != nil {
		cfg.Logger = log.logger(slog.LevelDebug)
	}
	if tweak != nil {
		tweak(&cfg)
	}
	d, err := core.NewDedup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pushRun is one Do in a goroutine.
type pushRun struct {
	outcome core.PushOutcome
	err     error
	done    chan struct{}
}

func goDo(d *core.Dedup, key string, handle func(context.Context) error) *pushRun {
	r := &pushRun{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.outcome, r.err = d.Do(context.Background(), key, handle)
	}()
	return r
}

func (r *pushRun) wait(t *testing.T) (core.PushOutcome, error) {
	t.Helper()
	select {
	case <-r.done:
		return r.outcome, r.err
	case <-time.After(30 * time.Second):
		t.Fatal("Do did not return within 30s")
		return 0, nil
	}
}

// Deliveries of one push to many instances while its handler runs start
// no second handler, and all answer "duplicate" once it finished.
func TestDedupOneHandlerForConcurrentDeliveries(t *testing.T) {
	store := core.NewMemoryStore()
	started := make(chan struct{}, 100)
	release := make(chan struct{})
	var runs atomic.Int32
	handle := func(ctx context.Context) error {
		runs.Add(1)
		started <- struct{}{}
		<-release
		return nil
	}
	var instances []*core.Dedup
	for range 4 {
		instances = append(instances, newDedup(t, store, nil, nil))
	}
	first := goDo(instances[0], "acct/m/1", handle)
	<-started
	var retries []*pushRun
	for i := range 12 {
		retries = append(retries, goDo(instances[i%4], "acct/m/1", handle))
	}
	// The handler outlives several renewals (every Lease/3 = 100ms): the
	// retries keep waiting, none starts a handler. Ended by the handler
	// finishing, not by time.
	close(release)
	if o, err := first.wait(t); o != core.PushHandled || err != nil {
		t.Fatalf("first delivery: %v, %v; want handled", o, err)
	}
	for i, r := range retries {
		if o, err := r.wait(t); o != core.PushDuplicate || err != nil {
			t.Errorf("retry %d: %v, %v; want duplicate", i, o, err)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	// A later delivery is a duplicate at once.
	if o, _ := instances[3].Do(context.Background(), "acct/m/1", handle); o != core.PushDuplicate {
		t.Fatalf("late delivery: %v, want duplicate", o)
	}
}

// A handler that fails releases the push: the waiting retry handles it.
func TestDedupFailedHandlerReleasesToTheWaitingRetry(t *testing.T) {
	store := core.NewMemoryStore()
	a, b := newDedup(t, store, nil, nil), newDedup(t, store, nil, nil)
	started := make(chan struct{})
	fail := make(chan struct{})
	first := goDo(a, "acct/m/2", func(context.Context) error {
		close(started)
		<-fail
		return errors.New("handler failed")
	})
	<-started
	var second atomic.Int32
	retry := goDo(b, "acct/m/2", func(context.Context) error { second.Add(1); return nil })
	close(fail)
	if o, err := first.wait(t); o != core.PushFailed || err == nil || err.Error() != "handler failed" {
		t.Fatalf("first: %v, %v; want failed with the handler's error", o, err)
	}
	if o, err := retry.wait(t); o != core.PushHandled || err != nil {
		t.Fatalf("retry: %v, %v; want handled", o, err)
	}
	if second.Load() != 1 {
		t.Fatal("the retry's handler did not run")
	}
}

// A handler that panics releases the push too, and the panic goes on.
func TestDedupPanickingHandlerReleases(t *testing.T) {
	store := core.NewMemoryStore()
	d := newDedup(t, store, nil, nil)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not go on")
			}
		}()
		_, _ = d.Do(context.Background(), "acct/m/3", func(context.Context) error { panic("boom") })
	}()
	if o, err := d.Do(context.Background(), "acct/m/3", func(context.Context) error { return nil }); o != core.PushHandled || err != nil {
		t.Fatalf("after the panic: %v, %v; want handled", o, err)
	}
}

// A claim whose holder died (never renewed, never released) is taken over
// by a waiting delivery once its lease ran out.
func TestDedupDeadHolderIsTakenOver(t *testing.T) {
	store := core.NewMemoryStore()
	d := newDedup(t, store, nil, nil)
	// The dead process's claim, as Dedup writes it.
	if _, err := store.Claim(context.Background(), core.DefaultPushKeyPrefix+"/acct/m/4", "c/deadbeef/1", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int32
	o, err := d.Do(context.Background(), "acct/m/4", func(context.Context) error { ran.Add(1); return nil })
	if o != core.PushHandled || err != nil || ran.Load() != 1 {
		t.Fatalf("got %v, %v (ran %d); want handled once after the dead claim expired", o, err, ran.Load())
	}
}

// A delivery that waited all of Wait for a running handler answers
// in_progress, so that WeChat retries (a "success" would lose the push
// should that handler die).
func TestDedupInProgressAfterWait(t *testing.T) {
	store := core.NewMemoryStore()
	a := newDedup(t, store, nil, nil)
	log := &jsonLog{}
	b := newDedup(t, store, log, func(c *core.DedupConfig) { c.Wait = 50 * time.Millisecond })
	started, release := make(chan struct{}), make(chan struct{})
	first := goDo(a, "acct/m/5", func(context.Context) error { close(started); <-release; return nil })
	<-started
	o, err := b.Do(context.Background(), "acct/m/5", func(context.Context) error { t.Error("second handler ran"); return nil })
	if o != core.PushInProgress || !errors.Is(err, core.ErrPushInProgress) || o.HTTPStatus() != 503 {
		t.Fatalf("got %v, %v; want in_progress (503)", o, err)
	}
	if r := log.records(t, core.EventPushSkipped); len(r) != 1 || r[0]["outcome"] != "in_progress" {
		t.Fatalf("events: %v", r)
	}
	close(release)
	first.wait(t)
}

// The store failing on the claim: fail open handles the push without a
// claim; fail closed refuses it. A hung store costs at most two
// CallTimeouts.
func TestDedupStoreFailureOnClaim(t *testing.T) {
	for _, f := range []claimFault{failCall, hangCall} {
		for _, closed := range []bool{false, true} {
			t.Run(fmt.Sprintf("claimFault%d/closed=%t", f, closed), func(t *testing.T) {
				store := newFaultClaims()
				store.setHook(func(op, _, _ string) claimFault {
					if op == "claim" {
						return f
					}
					return noClaimFault
				})
				log := &jsonLog{}
				d := newDedup(t, store, log, func(c *core.DedupConfig) { c.FailClosed = closed })
				var ran atomic.Int32
				o, err := d.Do(context.Background(), "acct/m/6", func(context.Context) error { ran.Add(1); return nil })
				var de *core.DedupError
				switch {
				case closed && (o != core.PushRefused || !errors.As(err, &de) || ran.Load() != 0 || o.HTTPStatus() != 503):
					t.Fatalf("fail closed: %v, %v, ran %d; want refused with a *DedupError, not run", o, err, ran.Load())
				case !closed && (o != core.PushUnguarded || err != nil || ran.Load() != 1):
					t.Fatalf("fail open: %v, %v, ran %d; want unguarded, run once", o, err, ran.Load())
				}
				// A failed or hung claim is tried once more, within the
				// one CallTimeout both share.
				if n := store.count("claim"); n != 2 {
					t.Errorf("%d claim calls, want 2", n)
				}
				if r := log.records(t, core.EventPushUnguarded); len(r) != 1 || r[0]["fail_closed"] != closed {
					t.Fatalf("events: %v", r)
				}
			})
		}
	}
}

// A claim that landed but reported failure is recognised by the retry of
// the claim (it returns the caller's own value): handled normally.
func TestDedupClaimLandedButFailed(t *testing.T) {
	store := newFaultClaims()
	first := true
	store.setHook(func(op, _, _ string) claimFault {
		if op == "claim" && first {
			first = false
			return landThenFail
		}
		return noClaimFault
	})
	d := newDedup(t, store, nil, nil)
	o, err := d.Do(context.Background(), "acct/m/7", func(context.Context) error { return nil })
	if o != core.PushHandled || err != nil {
		t.Fatalf("got %v, %v; want handled", o, err)
	}
	if o, _ := d.Do(context.Background(), "acct/m/7", func(context.Context) error { return nil }); o != core.PushDuplicate {
		t.Fatalf("the push was not recorded: %v", o)
	}
}

// Recording the push as handled: a write that fails once, or lands but
// reports failure, is retried and recognised; no warning, and the push is
// a duplicate afterwards.
func TestDedupRecordingFaults(t *testing.T) {
	for _, f := range []claimFault{failCall, landThenFail, hangCall} {
		t.Run(fmt.Sprint("claimFault", f), func(t *testing.T) {
			store := newFaultClaims()
			n := 0
			store.setHook(func(op, old, value string) claimFault {
				if op == "swap" && isDone(old, value) {
					if n++; n == 1 {
						return f
					}
				}
				return noClaimFault
			})
			log := &jsonLog{}
			d := newDedup(t, store, log, nil)
			o, err := d.Do(context.Background(), "acct/m/8", func(context.Context) error { return nil })
			if o != core.PushHandled || err != nil {
				t.Fatalf("got %v, %v", o, err)
			}
			if o, _ := d.Do(context.Background(), "acct/m/8", func(context.Context) error { return nil }); o != core.PushDuplicate {
				t.Fatalf("not recorded as handled: %v", o)
			}
			if r := log.records(t, core.EventPushClaimLost); len(r) != 0 {
				t.Fatalf("warned: %v", r)
			}
		})
	}
}

// A store that never takes the record: the push is handled, a warning
// says it may be handled again, and it is — once the claim ran out (the
// documented duplicate, as when the process dies before recording).
func TestDedupRecordingNeverLands(t *testing.T) {
	store := newFaultClaims()
	store.setHook(func(op, old, value string) claimFault {
		if op == "swap" && isDone(old, value) {
			return failCall
		}
		return noClaimFault
	})
	log := &jsonLog{}
	d := newDedup(t, store, log, nil)
	var runs atomic.Int32
	handle := func(context.Context) error { runs.Add(1); return nil }
	if o, _ := d.Do(context.Background(), "acct/m/9", handle); o != core.PushHandled {
		t.Fatalf("got %v", o)
	}
	if r := log.records(t, core.EventPushClaimLost); len(r) != 1 || r[0]["stage"] != "recording" {
		t.Fatalf("events: %v", r)
	}
	if o, _ := d.Do(context.Background(), "acct/m/9", handle); o != core.PushHandled || runs.Load() != 2 {
		t.Fatalf("second delivery: %v, runs %d; want handled again", o, runs.Load())
	}
}

// Renewals that fail for a whole lease end the handler's context with
// ErrClaimLost; one failed renewal does not.
func TestDedupRenewalFaults(t *testing.T) {
	t.Run("one failure", func(t *testing.T) {
		store := newFaultClaims()
		var renewals atomic.Int32
		store.setHook(func(op, old, value string) claimFault {
			if op == "swap" && isRenewal(old, value) && renewals.Add(1) == 1 {
				return failCall
			}
			return noClaimFault
		})
		d := newDedup(t, store, nil, nil)
		o, err := d.Do(context.Background(), "acct/m/10", func(ctx context.Context) error {
			for renewals.Load() < 4 { // through the failed renewal and three more
				select {
				case <-ctx.Done():
					return context.Cause(ctx)
				case <-time.After(10 * time.Millisecond):
				}
			}
			return nil
		})
		if o != core.PushHandled || err != nil {
			t.Fatalf("got %v, %v", o, err)
		}
	})
	for _, f := range []claimFault{failCall, hangCall} {
		t.Run(fmt.Sprint("fail open goes on, fault", f), func(t *testing.T) {
			store := newFaultClaims()
			store.setHook(func(op, old, value string) claimFault {
				if op == "swap" && isRenewal(old, value) {
					return f
				}
				return noClaimFault
			})
			log := &jsonLog{}
			d := newDedup(t, store, log, nil)
			o, err := d.Do(context.Background(), "acct/m/11o", func(ctx context.Context) error {
				// Until the lapse is logged: the handler's ctx must still be live.
				for len(log.records(t, core.EventPushClaimLost)) == 0 {
					select {
					case <-ctx.Done():
						return context.Cause(ctx)
					case <-time.After(10 * time.Millisecond):
					}
				}
				return nil
			})
			if o != core.PushHandled || err != nil {
				t.Fatalf("got %v, %v; want handled, the handler's ctx live through the lapse", o, err)
			}
			if r := log.records(t, core.EventPushClaimLost); r[0]["stage"] != "handling" {
				t.Fatalf("events: %v", r)
			}
		})
		t.Run(fmt.Sprint("fail closed ends it, fault", f), func(t *testing.T) {
			store := newFaultClaims()
			store.setHook(func(op, old, value string) claimFault {
				if op == "swap" && isRenewal(old, value) {
					return f
				}
				return noClaimFault
			})
			log := &jsonLog{}
			d := newDedup(t, store, log, func(c *core.DedupConfig) { c.FailClosed = true })
			o, err := d.Do(context.Background(), "acct/m/11", func(ctx context.Context) error {
				<-ctx.Done()
				return context.Cause(ctx)
			})
			if o != core.PushFailed || !errors.Is(err, core.ErrClaimLost) {
				t.Fatalf("got %v, %v; want the handler's ctx ended with ErrClaimLost", o, err)
			}
		})
	}
	t.Run("taken by another", func(t *testing.T) {
		store := core.NewMemoryStore()
		log := &jsonLog{}
		d := newDedup(t, store, log, nil)
		key := core.DefaultPushKeyPrefix + "/acct/m/12"
		o, err := d.Do(context.Background(), "acct/m/12", func(ctx context.Context) error {
			// Another instance deletes and takes the claim, as after a
			// lease that ran out.
			for {
				if held, _ := store.Claim(ctx, key, "c/other/1", time.Minute); held == "c/other/1" {
					break
				}
				if _, err := store.CompareAndSwapClaim(ctx, key, mustHeld(t, store, key), "", 0); err != nil {
					return err
				}
			}
			<-ctx.Done()
			return nil // finished anyway
		})
		if o != core.PushHandled || err != nil {
			t.Fatalf("got %v, %v", o, err)
		}
		if r := log.records(t, core.EventPushClaimLost); len(r) != 1 || r[0]["stage"] != "handling" {
			t.Fatalf("events: %v", r)
		}
		if held := mustHeld(t, store, key); held != "c/other/1" {
			t.Fatalf("the other's claim was overwritten: %q", held)
		}
	})
}

// mustHeld returns the value a claim key holds, by a Claim that cannot
// win (a live claim is returned as it is).
func mustHeld(t *testing.T, s *core.MemoryStore, key string) string {
	t.Helper()
	probe := "probe"
	held, err := s.Claim(context.Background(), key, probe, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return held
}

// A failed handler whose release fails: the push is handled by a later
// delivery once the lease ran out.
func TestDedupReleaseFault(t *testing.T) {
	for _, f := range []claimFault{failCall, hangCall} {
		t.Run(fmt.Sprint("claimFault", f), func(t *testing.T) {
			store := newFaultClaims()
			store.setHook(func(op, old, value string) claimFault {
				if op == "swap" && isRelease(old, value) {
					return f
				}
				return noClaimFault
			})
			log := &jsonLog{}
			d := newDedup(t, store, log, nil)
			if o, _ := d.Do(context.Background(), "acct/m/13", func(context.Context) error { return errors.New("no") }); o != core.PushFailed {
				t.Fatalf("got %v", o)
			}
			if r := log.records(t, core.EventPushClaimLost); len(r) != 1 || r[0]["stage"] != "releasing" {
				t.Fatalf("events: %v", r)
			}
			if o, err := d.Do(context.Background(), "acct/m/13", func(context.Context) error { return nil }); o != core.PushHandled {
				t.Fatalf("later delivery: %v, %v; want handled after the lease", o, err)
			}
		})
	}
}

// A store without ClaimStore gets the emulation, and a warning once.
func TestDedupEmulatedClaims(t *testing.T) {
	store := tokenOnly{core.NewMemoryStore()}
	log := &jsonLog{}
	a, b := newDedup(t, store, log, nil), newDedup(t, store, log, nil)
	started, release := make(chan struct{}), make(chan struct{})
	var runs atomic.Int32
	first := goDo(a, "acct/m/14", func(context.Context) error { runs.Add(1); close(started); <-release; return nil })
	<-started
	retry := goDo(b, "acct/m/14", func(context.Context) error { runs.Add(1); return nil })
	close(release)
	if o, _ := first.wait(t); o != core.PushHandled {
		t.Fatalf("first: %v", o)
	}
	if o, _ := retry.wait(t); o != core.PushDuplicate {
		t.Fatalf("retry: %v", o)
	}
	if runs.Load() != 1 {
		t.Fatalf("ran %d times", runs.Load())
	}
	if r := log.records(t, core.EventPushUnguarded); len(r) != 2 || r[0]["op"] != "store" {
		t.Fatalf("want one warning per Dedup, got %v", r)
	}
}

// tokenOnly hides a store's ClaimStore methods.
type tokenOnly struct{ s *core.MemoryStore }

func (o tokenOnly) Get(ctx context.Context, k string) (core.Token, error) { return o.s.Get(ctx, k) }
func (o tokenOnly) Set(ctx context.Context, k string, t core.Token) error { return o.s.Set(ctx, k, t) }
func (o tokenOnly) Refresh(ctx context.Context, k, stale string, f core.FetchFunc) (core.Token, error) {
	return o.s.Refresh(ctx, k, stale, f)
}

func TestNewDedupChecks(t *testing.T) {
	for _, c := range []core.DedupConfig{
		{},
		{Store: core.NewMemoryStore(), Lease: time.Millisecond},
		{Store: core.NewMemoryStore(), Lease: time.Second, Remember: 500 * time.Millisecond},
		{Store: core.NewMemoryStore(), CallTimeout: -1},
	} {
		if _, err := core.NewDedup(c); err == nil {
			t.Errorf("NewDedup(%+v) did not fail", c)
		}
	}
}

// Keys: a message by its MsgId, an event by its sender, time, name and
// content; two events of one user in one second are two pushes.
func TestPushKey(t *testing.T) {
	if k := core.PushKey("gh_1", "123", "o1", 5, "", nil); k != "gh_1/m/123" {
		t.Fatal(k)
	}
	a := core.PushKey("gh_1", "", "o1", 5, "subscribe", []byte("<xml>a</xml>"))
	b := core.PushKey("gh_1", "", "o1", 5, "LOCATION", []byte("<xml>b</xml>"))
	c := core.PushKey("gh_1", "", "o1", 5, "LOCATION", []byte("<xml>c</xml>"))
	if a == b || b == c || !strings.HasPrefix(b, "gh_1/e/") || strings.Contains(a+b+c, "o1") {
		t.Fatal("want distinct keys, hashed (no OpenID in them):", a, b, c)
	}
	// The fields are delimited: moving a byte from one to the next is
	// another push.
	if core.PushKey("gh_1", "", "o1", 5, "x", nil) == core.PushKey("gh_1", "", "o", 15, "x", nil) {
		t.Fatal("fields run together")
	}
	// A key too long for a store is hashed, and still works.
	d := newDedup(t, core.NewMemoryStore(), nil, nil)
	long := strings.Repeat("x", 400)
	for i, want := range []core.PushOutcome{core.PushHandled, core.PushDuplicate} {
		if o, err := d.Do(context.Background(), long, func(context.Context) error { return nil }); o != want || err != nil {
			t.Fatalf("delivery %d: %v, %v", i, o, err)
		}
	}
}

// One claim that hangs, or fails, is survived: the retry in the rest of
// the CallTimeout claims the push, which is handled normally (no
// unguarded run, so no possible duplicate).
func TestDedupOneClaimFaultIsSurvived(t *testing.T) {
	for _, f := range []claimFault{failCall, hangCall} {
		t.Run(fmt.Sprint("fault", f), func(t *testing.T) {
			store := newFaultClaims()
			var n atomic.Int32
			store.setHook(func(op, _, _ string) claimFault {
				if op == "claim" && n.Add(1) == 1 {
					return f
				}
				return noClaimFault
			})
			log := &jsonLog{}
			d := newDedup(t, store, log, nil)
			if o, err := d.Do(context.Background(), "acct/m/survive", func(context.Context) error { return nil }); o != core.PushHandled || err != nil {
				t.Fatalf("got %v, %v; want handled under a claim", o, err)
			}
			if r := log.records(t, core.EventPushUnguarded); len(r) != 0 {
				t.Fatalf("ran unguarded: %v", r)
			}
		})
	}
}
