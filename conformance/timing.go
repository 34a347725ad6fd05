package conformance

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// Timing on a loaded machine.
//
// A few checks bound a duration: waiters wake promptly after the holder's
// fetch (rule 6), a waiter whose ctx ends returns promptly (rule 1), a lock
// comes free within its lease (rules 3 and 5). On a busy machine every store
// operation takes longer than on an idle one, so none of these bounds is a
// constant tuned on an idle machine:
//
//   - A bound that is the point of a check is the rule's own allowance
//     (wakeBound, the lease plus leaseSlack) plus a margin scaled from what
//     the same store values cost at that moment, measured in the same check
//     (measureCost). A store that wakes on a coarse poll, or whose lock
//     outlives its lease, misses it by far more than that margin.
//   - "The lock is free" is told from "the lock leaked" by the lease itself:
//     a leaked lock taken at t cannot be free before t + Lease, so the
//     Refresh that proves the lock free must fetch before then
//     (wantLockFree), however long the Refresh takes on its own.
//   - A wait for an event the check does not time (a Refresh to return, a
//     ctx to end) is bounded only by the watchdog.

// costMargin is how many times the measured cost of the store operations a
// timed event includes is added to the rule's allowance.
const costMargin = 2

// measureCost returns what the work that follows a release costs on the
// store values ss right now: an uncontended Refresh of a fresh key that
// fetches and writes (what a holder does after its fetch, at most), plus,
// when perStore > 0, perStore callers on every value of ss reading that key
// together with Get (what woken waiters do: read the token the holder
// wrote). Nothing measured waits for a lock, so a store whose waiters poll
// cannot raise its own bound. name tells the keys of the calls apart.
func (f *fixture) measureCost(name string, ss []core.TokenStore, perStore int) time.Duration {
	f.t.Helper()
	key := f.key("cost-" + name)
	tok := token("cost-" + name)
	begin := time.Now()
	if _, err := ss[0].Refresh(f.ctx, key, "", func(context.Context) (core.Token, error) { return tok, nil }); err != nil {
		f.t.Fatalf("Refresh(%q, stale=%q), measuring what a Refresh costs on this machine now: %v", key, "", err)
	}
	if perStore == 0 {
		return time.Since(begin)
	}
	errs := make(chan error, len(ss)*perStore)
	var wg sync.WaitGroup
	for _, s := range ss {
		for range perStore {
			wg.Go(func() {
				got, err := s.Get(f.ctx, key)
				if err == nil && !sameToken(got, tok) {
					err = fmt.Errorf("got %s, want %s", fmtToken(got), fmtToken(tok))
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			f.t.Fatalf("Get(%q), measuring what waiters cost on this machine now: %v", key, err)
		}
	}
	return time.Since(begin)
}

// wantLockFree reports an error unless Refresh(key, stale) on s fetches once
// before a lock taken at takenAfter or later could have run out of its
// lease: that tells a lock that was released from one that leaked (held
// until its lease ends), whatever the Refresh itself costs. rule says what
// freed the lock.
func (f *fixture) wantLockFree(s core.TokenStore, key, stale string, takenAfter time.Time, rule string) {
	f.t.Helper()
	deadline := takenAfter.Add(f.h.Lease)
	ctx, cancel := context.WithDeadline(f.ctx, deadline)
	defer cancel()
	var c fetchCounter
	_, err := s.Refresh(ctx, key, stale, c.returning(token("lock-free")))
	if err != nil || c.n() != 1 {
		f.t.Errorf("Refresh(%q, stale=%q): fetch ran %d times, err %v; want 1 fetch before a lock taken %v ago could have run out of its %v lease (%s)",
			key, stale, c.n(), err, time.Since(takenAfter).Round(time.Millisecond), f.h.Lease, rule)
	}
}

// fmtCost formats a measured cost and the bound it led to, for a log line.
func fmtCost(allowance, cost, bound time.Duration) string {
	return fmt.Sprintf("bound %v = %v + %d × %v measured cost of the store operations now", bound.Round(time.Millisecond), allowance, costMargin, cost.Round(time.Microsecond))
}

// timingRounds is how many rounds withinBound runs at most.
const timingRounds = 3

// withinBound runs round (1, 2, …) until the duration it measures keeps to
// its bound, at most timingRounds times, and fails the check if none did.
// round reports failures other than the duration itself on its own; it
// returns whether the duration kept to its bound and what it measured. A
// stall of a busy machine (the scheduler, the collector, another process)
// lands in one round; a store that is slow by design misses the bound in
// every one. The rounds stop early once the check has failed otherwise.
// rule names what the bound stands for.
func (f *fixture) withinBound(rule string, round func(n int) (bool, string)) {
	f.t.Helper()
	var misses []string
	for n := 1; n <= timingRounds; n++ {
		ok, measured := round(n)
		switch {
		case ok:
			f.t.Logf("%s (round %d)", measured, n)
			return
		case f.t.Failed():
			return
		}
		f.t.Logf("round %d: over the bound: %s", n, measured)
		misses = append(misses, measured)
	}
	f.t.Errorf("over the bound in each of %d rounds (%s):\n\t%s", timingRounds, rule, strings.Join(misses, "\n\t"))
}
