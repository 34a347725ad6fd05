package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// The checks of core.ClaimStore, the claims with an expiry that make "every
// push handled once" a property of the fleet. They run on every store: on
// the store's own ClaimStore when it implements one, and otherwise on
// core.ClaimsOver(store), the emulation over the store's Refresh lock that
// core.ClaimStoreFor gives such a store; each check logs which. So a custom
// store's author gets them whether or not the store keeps claims natively,
// and the emulation is proved on every store that lacks them.
//
// Time. A claim is live from the moment it is written until its ttl has
// passed on the store's clock, rounded up but never down. The checks hold
// a store to the lower bound only where it is certain: a caller that
// returned before ttl had passed since the claim's writer was called must
// still see the claim (less claimClockSlack, the precision a store keeps a
// claim's end to). The upper bound, that an expired claim is gone, is
// given a generous allowance: ttl + claimSlack (the lease checks'
// leaseSlack and a second more) + costMargin times what the claim cost on
// this machine at that moment; a probe Claim begun after that bound that
// still lost fails the check.

// Claim check sizes and times.
const (
	// claimStores × claimPerStore callers contend in ClaimOneWinner, on
	// each of claimKeys keys.
	claimStores   = 4
	claimPerStore = 10
	claimKeys     = 5
	// claimLongTTL is a ttl no check outlives: a claim made with it is
	// live throughout the check (a lower bound every store guarantees).
	claimLongTTL = time.Minute
	// claimPoll is how often a probe Claim asks whether a claim is gone.
	claimPoll = 20 * time.Millisecond
	// claimClockSlack is how much earlier than ttl after its writer was
	// called a claim may end: a store keeps the end to the millisecond and
	// reads its clock once.
	claimClockSlack = 10 * time.Millisecond
)

// claimSlack is how long after its ttl a claim may still be live: the lease
// checks' leaseSlack (a second, plus half the lease: etcd rounds leases up
// to whole seconds and expires them on a 500ms tick), and a second more,
// since a store may also round a claim's ttl up to its own granularity
// (etcd's claims share leases a whole second longer than their ttl).
func claimSlack(lease time.Duration) time.Duration { return leaseSlack(lease) + time.Second }

// claimTTL is the short ttl of the expiry checks: the harness lease, and
// at least a second, since etcd's leases are whole seconds.
func (f *fixture) claimTTL() time.Duration { return max(f.h.Lease, time.Second) }

// claimStores returns n ClaimStores over n store values from the harness:
// each store value itself when it implements core.ClaimStore, else
// core.ClaimsOver of it. It logs which once per check, and returns whether
// they are native.
func (f *fixture) claimStores(n int) ([]core.ClaimStore, bool) {
	f.t.Helper()
	cs := make([]core.ClaimStore, n)
	native := false
	for i := range cs {
		s := f.store()
		cs[i], native = core.ClaimStoreFor(s)
		if i == 0 && !f.claimsLogged {
			f.claimsLogged = true
			f.t.Log(claimsKind(s, native))
		}
	}
	return cs, native
}

// claimStore returns one ClaimStore, as claimStores does.
func (f *fixture) claimStore() core.ClaimStore {
	f.t.Helper()
	cs, _ := f.claimStores(1)
	return cs[0]
}

// claimsKind says which ClaimStore the claim checks run on for s.
func claimsKind(s core.TokenStore, native bool) string {
	if native {
		return fmt.Sprintf("claims: the store's own core.ClaimStore (%T)", s)
	}
	return fmt.Sprintf("claims: core.ClaimsOver(%T), the emulation over Refresh, since the store does not implement core.ClaimStore", s)
}

// claim calls Claim and reports an error unless it returns want; it
// returns what Claim returned and when the call began and ended.
func (f *fixture) claim(c core.ClaimStore, key, value string, ttl time.Duration, want, rule string) (held string, began, ended time.Time) {
	f.t.Helper()
	began = time.Now()
	held, err := c.Claim(f.ctx, key, value, ttl)
	ended = time.Now()
	switch {
	case err != nil:
		f.t.Errorf("Claim(%q, %q, %v): %v, want %q (%s)", key, value, ttl, err, want, rule)
	case held != want:
		f.t.Errorf("Claim(%q, %q, %v) = %q, want %q (%s)", key, value, ttl, held, want, rule)
	}
	return held, began, ended
}

// mustClaim makes a claim on a key nobody claimed and stops the check if
// it cannot; it returns when the call began and ended.
func (f *fixture) mustClaim(c core.ClaimStore, key, value string, ttl time.Duration) (began, ended time.Time) {
	f.t.Helper()
	began = time.Now()
	held, err := c.Claim(f.ctx, key, value, ttl)
	ended = time.Now()
	if err != nil || held != value {
		f.t.Fatalf("Claim(%q, %q, %v) of a key nobody claimed = %q, %v; want %q", key, value, ttl, held, err, value)
	}
	return began, ended
}

// cas calls CompareAndSwapClaim and reports an error unless it returns
// want with a nil error.
func (f *fixture) cas(c core.ClaimStore, key, old, value string, ttl time.Duration, want bool, rule string) {
	f.t.Helper()
	got, err := c.CompareAndSwapClaim(f.ctx, key, old, value, ttl)
	switch {
	case err != nil:
		f.t.Errorf("CompareAndSwapClaim(%q, old=%q, %q, %v): %v, want %v (%s)", key, old, value, ttl, err, want, rule)
	case got != want:
		f.t.Errorf("CompareAndSwapClaim(%q, old=%q, %q, %v) = %v, want %v (%s)", key, old, value, ttl, got, want, rule)
	}
}

// wantClaimGone polls key with a probe Claim of value probe until the
// probe wins, and reports an error if it wins too early or not in time.
// holder is the value key holds until then, claimed by a call begun at
// claimedFrom with the given ttl: a probe that returns before claimedFrom
// + ttl − claimClockSlack must lose. A probe begun after deadline must
// win. It reports whether the probe won, which holds it for
// claimLongTTL.
func (f *fixture) wantClaimGone(c core.ClaimStore, key, holder, probe string, claimedFrom time.Time, ttl time.Duration, deadline time.Time, rule string) bool {
	f.t.Helper()
	for polls := 1; ; polls++ {
		began := time.Now()
		held, err := c.Claim(f.ctx, key, probe, claimLongTTL)
		ended := time.Now()
		switch {
		case err != nil:
			f.t.Errorf("Claim(%q, %q, %v) probing for the end of %q's claim: %v (%s)", key, probe, claimLongTTL, holder, err, rule)
			return false
		case held == probe && ended.Before(claimedFrom.Add(ttl-claimClockSlack)):
			f.t.Errorf("Claim(%q, %q, %v) won %v after %q's claim with a ttl of %v was made: the claim ended before its ttl (%s)",
				key, probe, claimLongTTL, ended.Sub(claimedFrom).Round(time.Millisecond), holder, ttl, rule)
			return true
		case held == probe:
			f.t.Logf("Claim(%q, %q) won after %d polls, %v after %q's claim with a ttl of %v was made (bound %v)",
				key, probe, polls, ended.Sub(claimedFrom).Round(time.Millisecond), holder, ttl, deadline.Sub(claimedFrom).Round(time.Millisecond))
			return true
		case held != holder:
			f.t.Errorf("Claim(%q, %q, %v) = %q while %q held the claim: want %q until the claim is gone, then %q (%s)", key, probe, claimLongTTL, held, holder, holder, probe, rule)
			return false
		case began.After(deadline):
			f.t.Errorf("Claim(%q, %q, %v) = %q begun %v after %q's claim with a ttl of %v was made: the claim is still live past its ttl + %v, over the bound of %v (%s)",
				key, probe, claimLongTTL, held, began.Sub(claimedFrom).Round(time.Millisecond), holder, ttl, claimSlack(f.h.Lease), deadline.Sub(claimedFrom).Round(time.Millisecond), rule)
			return false
		}
		select {
		case <-time.After(claimPoll):
		case <-f.ctx.Done():
			f.t.Fatalf("Claim(%q, %q): the claim of %q still live when the watchdog fired", key, probe, holder)
		}
	}
}

// wantClaimHeldUntil polls key with a Claim of value other until a poll
// begun after until, and reports an error unless each returns holder.
func (f *fixture) wantClaimHeldUntil(c core.ClaimStore, key, holder, other string, until time.Time, rule string) {
	f.t.Helper()
	for {
		began := time.Now()
		if held, _, _ := f.claim(c, key, other, claimLongTTL, holder, rule); held != holder || began.After(until) {
			return
		}
		select {
		case <-time.After(claimPoll):
		case <-f.ctx.Done():
			f.t.Fatalf("Claim(%q, %q): still polling when the watchdog fired", key, other)
		}
	}
}

// expiryDeadline returns the time by which a claim made with ttl by a call
// that began at began and ended at ended must be gone: ttl + claimSlack
// after it ended, plus costMargin times what the call cost.
func (f *fixture) expiryDeadline(began, ended time.Time, ttl time.Duration) time.Time {
	return ended.Add(ttl + claimSlack(f.h.Lease) + costMargin*ended.Sub(began))
}

// claimResult is what one caller of a contended Claim got.
type claimResult struct {
	value, held string
	err         error
}

// judgeClaims reports an error unless exactly one of the callers of
// Claim(key) got its own value back and every other got the winner's.
// where describes the callers.
func judgeClaims(t *testing.T, key string, results []claimResult, where string) {
	t.Helper()
	var winners, errs []string
	heldBy := map[string]int{}
	for _, r := range results {
		switch {
		case r.err != nil:
			errs = append(errs, fmt.Sprintf("%q: %v", r.value, r.err))
		case r.held == r.value:
			winners = append(winners, r.value)
			heldBy[r.held]++
		default:
			heldBy[r.held]++
		}
	}
	if len(errs) > 0 {
		t.Errorf("Claim(%q) by %s: %d of %d callers failed, the first with %s", key, where, len(errs), len(results), errs[0])
	}
	switch {
	case len(winners) != 1:
		desc := fmt.Sprint(winners)
		if len(winners) > 6 {
			desc = fmt.Sprintf("%q and %d more", winners[:6], len(winners)-6)
		}
		t.Errorf("Claim(%q) by %s: %d callers got their own value back (%s), want exactly 1", key, where, len(winners), desc)
	case len(heldBy) != 1:
		t.Errorf("Claim(%q) by %s: callers got %v (value: callers), want all %q, the winner's", key, where, heldBy, winners[0])
	}
}

// testClaimOneWinner tests that among concurrent callers of Claim on one
// key, on several store values (claimStores × claimPerStore goroutines,
// released together, each with a value of its own), exactly one gets its
// own value back and every other gets the winner's; on claimKeys keys in
// turn, each then still held by its winner.
func testClaimOneWinner(t *testing.T, f *fixture) {
	cs, _ := f.claimStores(claimStores)
	where := fmt.Sprintf("%d callers on %d store values", claimStores*claimPerStore, claimStores)
	for k := range claimKeys {
		key := f.key(fmt.Sprintf("k%d", k))
		results := make([]claimResult, len(cs)*claimPerStore)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, c := range cs {
			for g := range claimPerStore {
				r := &results[i*claimPerStore+g]
				r.value = fmt.Sprintf("s%d-g%d", i, g)
				wg.Go(func() {
					<-start
					r.held, r.err = c.Claim(f.ctx, key, r.value, claimLongTTL)
				})
			}
		}
		close(start)
		wg.Wait()
		judgeClaims(t, key, results, where)
		if t.Failed() {
			return
		}
		winner := results[0].held
		f.claim(cs[len(cs)-1], key, "after-the-herd", claimLongTTL, winner, "the winner's claim is live")
	}
}

// testClaimReclaimIsIdempotent tests that Claim with the value a key
// already holds returns that value, through the store value that made the
// claim and through another (how a caller whose Claim failed with an
// ambiguous error learns that the claim is its own), and that another
// value still loses.
func testClaimReclaimIsIdempotent(t *testing.T, f *fixture) {
	cs, _ := f.claimStores(2)
	key := f.key("k")
	f.mustClaim(cs[0], key, "mine", claimLongTTL)
	f.claim(cs[0], key, "mine", claimLongTTL, "mine", "Claim with the held value returns it")
	f.claim(cs[1], key, "mine", claimLongTTL, "mine", "Claim with the held value returns it, through another store value")
	f.claim(cs[1], key, "mine", f.claimTTL(), "mine", "Claim with the held value and another ttl returns it")
	f.claim(cs[1], key, "theirs", claimLongTTL, "mine", "the claim is still held")
}

// claimValues are values a claim keeps whole: the shortest, the longest,
// and bytes that quote, escape, separate or decorate in some backend.
var claimValues = []string{
	"x",
	pattern("long-", core.MaxClaimValueLen),
	strings.Repeat("令", core.MaxClaimValueLen/3) + strings.Repeat("w", core.MaxClaimValueLen%3),
	"host-1/pid 42:3",
	`"quoted" 'single' back` + "`tick`",
	"semi;colon -- '); DROP TABLE claims;--",
	"100% %s %d",
	"{tag}:lock",
	"../../etc/passwd",
	"line\nbreak\ttab\r\x01\x7f",
	" ",
	"令牌/🔑",
	"\x01released", // core.ClaimsOver's mark of a released claim, once
}

// testClaimValuesKeptWhole tests that claim values of 1 byte and of
// core.MaxClaimValueLen bytes (ASCII and 3-byte runes), and values holding
// quotes, "%", "/", ":", "{}", control characters and unicode, are stored
// and returned whole, and compared whole: a value one byte shorter or
// longer than the held one is another value.
func testClaimValuesKeptWhole(t *testing.T, f *fixture) {
	c := f.claimStore()
	for i, v := range claimValues {
		key := f.key(fmt.Sprintf("v%d", i))
		f.mustClaim(c, key, v, claimLongTTL)
		f.claim(c, key, "another", claimLongTTL, v, "the held value comes back whole")
		f.claim(c, key, v, claimLongTTL, v, "the held value is compared whole")
		if len(v) > 1 {
			shorter := strings.ToValidUTF8(v[:len(v)-1], "")
			f.claim(c, key, shorter, claimLongTTL, v, "a value shorter than the held one is another value")
			f.cas(c, key, shorter, "swapped", claimLongTTL, false, "a value shorter than the held one is another value")
		}
		if len(v) < core.MaxClaimValueLen {
			f.claim(c, key, v+"x", claimLongTTL, v, "a value longer than the held one is another value")
			f.cas(c, key, v+"x", "swapped", claimLongTTL, false, "a value longer than the held one is another value")
		}
		f.claim(c, key, "another", claimLongTTL, v, "a failed compare and swap changes nothing")
	}
}

// testClaimExpires tests that a claim lives for its ttl and then goes: a
// claim made with claimTTL (the lease, at least a second) is held right
// after it was made (another value's Claim returns it), is still held by
// any Claim that returned before its ttl had passed, and is gone — a probe
// Claim polling every claimPoll wins — within ttl + claimSlack (plus
// costMargin times what the claim cost); a claim made with a ttl of a
// minute at the same time is still held then.
func testClaimExpires(t *testing.T, f *fixture) {
	c := f.claimStore()
	ttl := f.claimTTL()
	long := f.key("long")
	f.mustClaim(c, long, "holder", claimLongTTL)
	for round := 1; round <= timingRounds; round++ {
		key := f.key(fmt.Sprintf("short%d", round))
		began, ended := f.mustClaim(c, key, "holder", ttl)
		held, err := c.Claim(f.ctx, key, "other", claimLongTTL)
		returned := time.Now()
		switch {
		case err != nil:
			t.Fatalf("Claim(%q, %q) right after %q claimed it with a ttl of %v: %v", key, "other", "holder", ttl, err)
		case held == "other" && returned.Before(began.Add(ttl-claimClockSlack)):
			t.Fatalf("Claim(%q, %q) %v after %q claimed it with a ttl of %v = %q: the claim was not live (want %q)", key, "other", returned.Sub(began).Round(time.Millisecond), "holder", ttl, held, "holder")
		case held == "other":
			t.Logf("round %d: Claim(%q, %q) returned %v after the claim was made, past its %v ttl on this busy machine: running the round again", round, key, "other", returned.Sub(began).Round(time.Millisecond), ttl)
			continue
		case held != "holder":
			t.Fatalf("Claim(%q, %q) right after %q claimed it = %q, want %q", key, "other", "holder", held, "holder")
		}
		if f.wantClaimGone(c, key, "holder", "probe", began, ttl, f.expiryDeadline(began, ended, ttl), "a claim is gone once its ttl has passed") {
			f.claim(c, long, "other", claimLongTTL, "holder", "a claim with a ttl of a minute is live after a shorter one expired")
		}
		return
	}
	t.Errorf("Claim right after a claim with a ttl of %v returned past that ttl in each of %d rounds: the store is too slow for the check to tell", ttl, timingRounds)
}

// testClaimNotResurrected tests that a claim that expired stays gone: once
// a probe's Claim has won the key (as in ClaimExpires), the former
// holder's CompareAndSwapClaim from its value — to a new value, to the
// same value (an extension) or to "" (a release) — returns false and a nil
// error and changes nothing (the probe still holds the key); once the
// probe released it, the former holder's late CompareAndSwapClaim still
// finds nothing, and a new Claim wins. The same holds on a key nobody
// claimed again: a holder that stalls until its claim must be gone (ttl +
// claimSlack, plus costMargin times what the claim cost, as ClaimExpires
// allows) and then calls CompareAndSwapClaim gets false, and a new Claim
// wins.
func testClaimNotResurrected(t *testing.T, f *fixture) {
	c := f.claimStore()
	ttl := f.claimTTL()
	key, stalled := f.key("k"), f.key("stalled")
	began, ended := f.mustClaim(c, key, "former", ttl)
	_, stalledEnded := f.mustClaim(c, stalled, "former", ttl)
	if !f.wantClaimGone(c, key, "former", "probe", began, ttl, f.expiryDeadline(began, ended, ttl), "a claim is gone once its ttl has passed") {
		return
	}
	const rule = "an expired claim is never brought back by its former holder"
	f.cas(c, key, "former", "late", claimLongTTL, false, rule)
	f.cas(c, key, "former", "former", claimLongTTL, false, rule)
	f.cas(c, key, "former", "", 0, false, rule)
	f.claim(c, key, "other", claimLongTTL, "probe", rule+": the probe still holds the key")

	f.cas(c, key, "probe", "", 0, true, "the holder releases its claim")
	f.cas(c, key, "former", "late", claimLongTTL, false, rule)
	f.claim(c, key, "next", claimLongTTL, "next", rule+": a released key is free")

	// The stalled holder comes back once its claim must be gone: the
	// bound ClaimExpires holds every store to, with the cost of the claim
	// on this machine (the claim made first, so the larger).
	gone := f.expiryDeadline(began, stalledEnded, ttl)
	select {
	case <-time.After(time.Until(gone)):
	case <-f.ctx.Done():
		t.Fatalf("the watchdog fired while the holder of %q stalled", stalled)
	}
	f.cas(c, stalled, "former", "late", claimLongTTL, false, rule+" (its claim ended while it stalled)")
	f.cas(c, stalled, "former", "former", claimLongTTL, false, rule+" (its claim ended while it stalled)")
	f.cas(c, stalled, "former", "", 0, false, rule+" (its claim ended while it stalled)")
	f.claim(c, stalled, "next", claimLongTTL, "next", rule+": a claim that ended is gone")
}

// testClaimCompareAndSwap tests CompareAndSwapClaim: with an old value
// other than the held one (another, a prefix, an extension) it returns
// false and changes nothing, also on a key nobody claimed (which stays
// free); from the held value it replaces the claim (Claim then returns the
// new value, and the old one no longer swaps); from the held value to the
// same value with a longer ttl it extends the claim past its first ttl,
// while a claim made with the same ttl beside it expires; to "" (ttl 0,
// ignored) it deletes the claim, so that a new Claim wins at once and a
// second delete returns false.
func testClaimCompareAndSwap(t *testing.T, f *fixture) {
	c := f.claimStore()
	key := f.key("swap")
	f.mustClaim(c, key, "first", claimLongTTL)
	for _, wrong := range []string{"wrong", "firs", "first ", "First"} {
		f.cas(c, key, wrong, "second", claimLongTTL, false, "old differs from the held value")
	}
	f.claim(c, key, "other", claimLongTTL, "first", "a compare and swap that returned false changes nothing")
	f.cas(c, key, "first", "second", claimLongTTL, true, "old is the held value")
	f.claim(c, key, "other", claimLongTTL, "second", "the swapped-in value is held")
	f.cas(c, key, "first", "third", claimLongTTL, false, "old is no longer held")
	f.claim(c, key, "other", claimLongTTL, "second", "a compare and swap that returned false changes nothing")

	absent := f.key("absent")
	f.cas(c, absent, "first", "second", claimLongTTL, false, "nothing is claimed")
	f.cas(c, absent, "first", "", 0, false, "nothing is claimed")
	f.claim(c, absent, "new", claimLongTTL, "new", "a compare and swap on an unclaimed key writes nothing")

	del := f.key("delete")
	f.mustClaim(c, del, "holder", claimLongTTL)
	f.cas(c, del, "holder", "", 0, true, "old is the held value: the claim is deleted")
	f.claim(c, del, "next", claimLongTTL, "next", "a deleted claim's key is free at once")
	f.cas(c, del, "holder", "", 0, false, "a second delete finds nothing")
	f.cas(c, del, "next", "", claimLongTTL, true, "a delete ignores ttl")
	f.cas(c, del, "next", "", 0, false, "a second delete finds nothing")
	if t.Failed() {
		return
	}

	// Extension: a claim made with ttl and extended at once to a minute
	// outlives ttl + claimSlack, while one made with ttl beside it ends.
	ttl := f.claimTTL()
	for round := 1; round <= timingRounds; round++ {
		ext, ctl := f.key(fmt.Sprintf("extended%d", round)), f.key(fmt.Sprintf("control%d", round))
		began, ended := f.mustClaim(c, ext, "holder", ttl)
		ctlBegan, ctlEnded := f.mustClaim(c, ctl, "holder", ttl)
		swapped, err := c.CompareAndSwapClaim(f.ctx, ext, "holder", "holder", claimLongTTL)
		returned := time.Now()
		switch {
		case err != nil:
			t.Fatalf("CompareAndSwapClaim(%q, old=%q, %q, %v) right after the claim: %v", ext, "holder", "holder", claimLongTTL, err)
		case !swapped && returned.Before(began.Add(ttl-claimClockSlack)):
			t.Fatalf("CompareAndSwapClaim(%q, old=%q, %q, %v) %v after the claim with a ttl of %v = false, want true (old is the held value)", ext, "holder", "holder", claimLongTTL, returned.Sub(began).Round(time.Millisecond), ttl)
		case !swapped:
			t.Logf("round %d: CompareAndSwapClaim(%q) returned %v after the claim was made, past its %v ttl on this busy machine: running the round again", round, ext, returned.Sub(began).Round(time.Millisecond), ttl)
			continue
		}
		if !f.wantClaimGone(c, ctl, "holder", "probe", ctlBegan, ttl, f.expiryDeadline(ctlBegan, ctlEnded, ttl), "a claim is gone once its ttl has passed") {
			return
		}
		f.wantClaimHeldUntil(c, ext, "holder", "other", f.expiryDeadline(began, ended, ttl), "a compare and swap to the held value with a longer ttl extends the claim")
		return
	}
	t.Errorf("CompareAndSwapClaim right after a claim with a ttl of %v returned past that ttl in each of %d rounds: the store is too slow for the check to tell", ttl, timingRounds)
}

// testClaimsApartFromTokens tests that claims live apart from tokens, for
// a store with a ClaimStore of its own (core.ClaimsOver keeps each claim as
// a token under its key, so there they are one entry, by design): a token
// stored under a key is no claim (Claim wins), Claim and
// CompareAndSwapClaim leave the token alone, Set, Get and Refresh neither
// see nor change the claim (Get of a key holding only a claim is
// ErrNotFound, Refresh with the claim's value as stale fetches), the
// refresh lock of a key does not block its Claim, and a store implementing
// core.KeyLister never lists a key that holds only a claim.
func testClaimsApartFromTokens(t *testing.T, f *fixture) {
	s := f.store()
	c, native := core.ClaimStoreFor(s)
	if !native {
		t.Skipf("%s: it keeps each claim as a token under its key, so claims and tokens are not apart", claimsKind(s, native))
	}
	t.Log(claimsKind(s, native))
	const rule = "a claim and a token under one key share nothing"

	both := f.key("both")
	tok := token("token")
	f.set(s, both, tok)
	f.claim(c, both, "claim", claimLongTTL, "claim", "a token is no claim")
	f.wantStored(s, both, tok, rule)
	var fc fetchCounter
	fresh := token("fresh")
	if got, err := s.Refresh(f.ctx, both, tok.Value, fc.returning(fresh)); err != nil || fc.n() != 1 || !sameToken(got, fresh) {
		t.Errorf("Refresh(%q, stale=%q) of a key holding a claim too = %s, %v, fetch ran %d times; want the fetched %s (%s)", both, tok.Value, fmtToken(got), err, fc.n(), fmtToken(fresh), rule)
	}
	f.claim(c, both, "other", claimLongTTL, "claim", rule)
	f.set(s, both, tok)
	f.claim(c, both, "other", claimLongTTL, "claim", rule)
	f.cas(c, both, "claim", "", 0, true, "the claim is deleted")
	f.wantStored(s, both, tok, rule+": deleting the claim leaves the token")
	f.claim(c, both, "again", claimLongTTL, "again", "a deleted claim's key is free")

	only := f.key("claim-only")
	f.claim(c, only, "claim", claimLongTTL, "claim", "a fresh key is free")
	f.wantNotFound(s, only, rule+": a claim is no token")

	stale := f.key("claim-as-stale")
	f.claim(c, stale, "claim", claimLongTTL, "claim", "a fresh key is free")
	fc = fetchCounter{}
	if got, err := s.Refresh(f.ctx, stale, "claim", fc.returning(fresh)); err != nil || fc.n() != 1 || !sameToken(got, fresh) {
		t.Errorf("Refresh(%q, stale=%q) of a key holding only a claim = %s, %v, fetch ran %d times; want the fetched %s (%s)", stale, "claim", fmtToken(got), err, fc.n(), fmtToken(fresh), rule)
	}
	f.claim(c, stale, "other", claimLongTTL, "claim", rule+": a token written by Refresh leaves the claim")

	// The refresh lock of a key does not block Claim and
	// CompareAndSwapClaim: they return before a lock taken now could run
	// out of its lease.
	locked := f.key("locked")
	lockedAfter := time.Now()
	held := f.startHolder(s, locked, "")
	ctx, cancel := context.WithDeadline(f.ctx, lockedAfter.Add(f.h.Lease))
	got, err := c.Claim(ctx, locked, "claim", claimLongTTL)
	if err != nil || got != "claim" {
		t.Errorf("Claim(%q, %q) while a Refresh of the key holds its lock = %q, %v; want %q before the lock's %v lease could run out (%s)", locked, "claim", got, err, "claim", f.h.Lease, rule)
	}
	swapped, err := c.CompareAndSwapClaim(ctx, locked, "claim", "swapped", claimLongTTL)
	if err != nil || !swapped {
		t.Errorf("CompareAndSwapClaim(%q, old=%q, %q) while a Refresh of the key holds its lock = %v, %v; want true before the lock's %v lease could run out (%s)", locked, "claim", "swapped", swapped, err, f.h.Lease, rule)
	}
	cancel()
	tokens := []string{both, stale}
	switch r := held.finish(token("holder")); {
	case r.err == nil:
		tokens = append(tokens, locked)
	case errors.Is(r.err, core.ErrLockLost) && r.at.Sub(lockedAfter) >= f.h.Lease:
		// The claims took so long on this machine that the holder's lease
		// ran out: it wrote nothing, which is not what is checked here.
		t.Logf("Refresh(%q, stale=%q) of the holder: %v, returning %v after its lock was taken (lease %v)", locked, "", r.err, r.at.Sub(lockedAfter).Round(time.Millisecond), f.h.Lease)
	default:
		t.Errorf("Refresh(%q, stale=%q) of the holder: %v", locked, "", r.err)
	}
	f.claim(c, locked, "other", claimLongTTL, "swapped", rule+": a token written by Refresh leaves the claim")

	l, ok := s.(core.KeyLister)
	if !ok {
		t.Logf("the store (%T) does not implement core.KeyLister: not checking that claims are not listed", s)
		return
	}
	prefix := f.key("")
	keys, err := l.ListKeys(f.ctx, prefix)
	if err != nil {
		t.Fatalf("ListKeys(%q): %v", prefix, err)
	}
	wantListed(t, prefix, keys, tokens, "ListKeys lists tokens, never a claim")
}

// testClaimArguments tests that Claim and CompareAndSwapClaim refuse what
// core.CheckClaim refuses, with an error, writing nothing: a key
// core.ValidateKey refuses (empty, NUL, invalid UTF-8, longer than
// core.MaxKeyLen); a value (Claim's, and CompareAndSwapClaim's old and
// new) that is empty (except the new value, where "" deletes), holds NUL,
// is not valid UTF-8 or is longer than core.MaxClaimValueLen; a ttl under a millisecond
// (except for a delete); and that both, called with a cancelled ctx, fail
// with an error wrapping context.Canceled and write nothing.
func testClaimArguments(t *testing.T, f *fixture) {
	c := f.claimStore()
	free, held := f.key("free"), f.key("held")
	f.mustClaim(c, held, "holder", claimLongTTL)

	badKeys := []string{"", f.key("nul\x00key"), f.key("bad-utf8-\xff"), f.key("") + strings.Repeat("k", core.MaxKeyLen)}
	for _, k := range badKeys {
		if got, err := c.Claim(f.ctx, k, "v", claimLongTTL); err == nil {
			t.Errorf("Claim(%q, %q) = %q, nil; want an error (core.ValidateKey refuses the key)", k, "v", got)
		}
		if got, err := c.CompareAndSwapClaim(f.ctx, k, "v", "w", claimLongTTL); err == nil {
			t.Errorf("CompareAndSwapClaim(%q, old=%q, %q) = %v, nil; want an error (core.ValidateKey refuses the key)", k, "v", "w", got)
		}
	}

	tooLong := strings.Repeat("v", core.MaxClaimValueLen+1)
	type claimArgs struct {
		value string
		ttl   time.Duration
		why   string
	}
	badClaims := []claimArgs{
		{"", claimLongTTL, "an empty value"},
		{"nul\x00value", claimLongTTL, "a value holding NUL"},
		{"bad-utf8-\xff", claimLongTTL, "a value that is not valid UTF-8"},
		{tooLong, claimLongTTL, fmt.Sprintf("a value longer than %d bytes", core.MaxClaimValueLen)},
		{"v", 0, "a zero ttl"},
		{"v", time.Millisecond - 1, "a ttl under a millisecond"},
		{"v", -time.Minute, "a negative ttl"},
	}
	for _, a := range badClaims {
		for _, key := range []string{free, held} {
			if got, err := c.Claim(f.ctx, key, a.value, a.ttl); err == nil {
				t.Errorf("Claim(%q, %q, %v) = %q, nil; want an error (%s)", key, a.value, a.ttl, got, a.why)
			}
		}
	}
	type swapArgs struct {
		old, value string
		ttl        time.Duration
		why        string
	}
	badSwaps := []swapArgs{
		{"", "new", claimLongTTL, "an empty old value"},
		{"nul\x00", "new", claimLongTTL, "an old value holding NUL"},
		{tooLong, "new", claimLongTTL, fmt.Sprintf("an old value longer than %d bytes", core.MaxClaimValueLen)},
		{"holder", "nul\x00", claimLongTTL, "a new value holding NUL"},
		{"holder", "bad-utf8-\xff", claimLongTTL, "a new value that is not valid UTF-8"},
		{"holder", tooLong, claimLongTTL, fmt.Sprintf("a new value longer than %d bytes", core.MaxClaimValueLen)},
		{"holder", "new", 0, "a zero ttl"},
		{"holder", "new", time.Millisecond - 1, "a ttl under a millisecond"},
		{"holder", "holder", -time.Minute, "a negative ttl"},
	}
	for _, a := range badSwaps {
		for _, key := range []string{free, held} {
			if got, err := c.CompareAndSwapClaim(f.ctx, key, a.old, a.value, a.ttl); err == nil {
				t.Errorf("CompareAndSwapClaim(%q, old=%q, %q, %v) = %v, nil; want an error (%s)", key, a.old, a.value, a.ttl, got, a.why)
			}
		}
	}

	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	if got, err := c.Claim(ctx, free, "cancelled", claimLongTTL); !errors.Is(err, context.Canceled) {
		t.Errorf("Claim(%q, %q) with a cancelled ctx = %q, %v; want an error wrapping context.Canceled", free, "cancelled", got, err)
	}
	for _, value := range []string{"cancelled", ""} {
		if got, err := c.CompareAndSwapClaim(ctx, held, "holder", value, claimLongTTL); !errors.Is(err, context.Canceled) {
			t.Errorf("CompareAndSwapClaim(%q, old=%q, %q) with a cancelled ctx = %v, %v; want an error wrapping context.Canceled", held, "holder", value, got, err)
		}
	}

	f.claim(c, held, "other", claimLongTTL, "holder", "a refused call writes nothing")
	f.claim(c, free, "good", claimLongTTL, "good", "a refused call writes nothing")
}
