package core_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// A handler whose renewals hang (a store that stops answering) learns that
// its claim is lost — its context ends with ErrClaimLost — before its lease
// runs out and another instance takes the push over, not only when the hung
// renewal gives up after CallTimeout: ErrClaimLost is what lets a handler
// stop before a second one starts. Here CallTimeout (10 s) is longer than
// the Lease (3 s), which NewDedup accepts. This is FailClosed's promise;
// fail open lets the handler finish (TestDedupRenewalFaults).
func TestDedupHandlerContextEndsBeforeAnotherInstanceTakesOver(t *testing.T) {
	store := newFaultClaims()
	var hang atomic.Bool
	store.setHook(func(op, old, value string) claimFault {
		if op == "swap" && isRenewal(old, value) && hang.Load() {
			return hangCall
		}
		return noClaimFault
	})
	cfg := func(c *core.DedupConfig) {
		c.Lease = 3 * time.Second
		c.CallTimeout = 10 * time.Second
		c.Wait = 30 * time.Second
		c.FailClosed = true
	}
	a := newDedup(t, store, nil, cfg)
	b := newDedup(t, store.MemoryStore, nil, cfg) // another instance, whose calls are answered

	var actx atomic.Value
	started := make(chan struct{})
	first := goDo(a, "acct/m/lease", func(ctx context.Context) error {
		actx.Store(ctx)
		hang.Store(true)
		close(started)
		<-ctx.Done()
		return context.Cause(ctx)
	})
	<-started

	var overlapped atomic.Bool
	o, err := b.Do(context.Background(), "acct/m/lease", func(context.Context) error {
		// The first handler's claim is gone, or this one would not run.
		overlapped.Store(actx.Load().(context.Context).Err() == nil)
		return nil
	})
	if o != core.PushHandled || err != nil {
		t.Fatalf("second instance: %v, %v; want handled once the first's lease ran out", o, err)
	}
	if overlapped.Load() {
		t.Errorf("the second instance's handler started while the first handler's context was still live: ErrClaimLost came after the lease ran out")
	}
	if o, err := first.wait(t); o != core.PushFailed || !errors.Is(err, core.ErrClaimLost) {
		t.Errorf("first instance: %v, %v; want its handler's ctx ended with ErrClaimLost", o, err)
	}
}
