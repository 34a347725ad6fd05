package conformance_test

import (
	"context"
	"sync"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// Stores with a native core.ClaimStore that get it wrong, each caught by
// the claim check named beside it; "correct-claims" must pass the suite.
// A store without a native ClaimStore ("correct", "correct-cross-process")
// proves core.ClaimsOver, the emulation.
func init() {
	brokenStores = append(brokenStores,
		brokenCase{"correct-claims", inProcess(newClaimingStore(claimsCorrect)), nil},
		brokenCase{"ClaimsRacy", inProcess(newClaimingStore(claimsRacy)), []string{"ClaimOneWinner"}},
		brokenCase{"ClaimsNeverExpire", inProcess(newClaimingStore(claimsNeverExpire)), []string{"ClaimExpires", "ClaimNotResurrected"}},
		brokenCase{"ClaimsResurrect", inProcess(newClaimingStore(claimsResurrect)), []string{"ClaimNotResurrected"}},
		brokenCase{"ClaimsUnchecked", inProcess(newClaimingStore(claimsUnchecked)), []string{"ClaimArguments"}},
		brokenCase{"ClaimsAsTokens", inProcess(claimsAsTokens{newTestStore(lockedFenced)}), []string{"ClaimsApartFromTokens"}},
	)
}

type claimMode int

const (
	claimsCorrect     claimMode = iota
	claimsRacy                  // Claim reads, then writes, with nothing in between
	claimsNeverExpire           // ttl is ignored
	claimsResurrect             // CompareAndSwapClaim matches an expired claim
	claimsUnchecked             // no core.CheckClaim: bad arguments and a done ctx are accepted
)

// claimingStore is a testStore with claims of its own, in a map apart from
// its tokens, that can be broken in the ways a real store gets them wrong.
type claimingStore struct {
	*testStore
	mode claimMode

	mu     sync.Mutex
	claims map[string]testClaim
}

type testClaim struct {
	value string
	until time.Time
}

func newClaimingStore(mode claimMode) *claimingStore {
	return &claimingStore{testStore: newTestStore(lockedFenced), mode: mode, claims: map[string]testClaim{}}
}

func (s *claimingStore) live(c testClaim, now time.Time) bool {
	return s.mode == claimsNeverExpire || now.Before(c.until)
}

func (s *claimingStore) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	if s.mode != claimsUnchecked {
		if err := core.CheckClaim(ctx, key, value, ttl, false); err != nil {
			return "", err
		}
	}
	s.mu.Lock()
	cur, ok := s.claims[key]
	if ok && s.live(cur, time.Now()) {
		s.mu.Unlock()
		return cur.value, nil
	}
	if s.mode == claimsRacy {
		// Another caller may read the key free meanwhile, as a store that
		// reads and then writes without a compare in the backend lets it.
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	s.claims[key] = testClaim{value: value, until: time.Now().Add(ttl)}
	return value, nil
}

func (s *claimingStore) CompareAndSwapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	if s.mode != claimsUnchecked {
		if err := core.CheckClaim(ctx, key, old, time.Millisecond, false); err != nil {
			return false, err
		}
		if err := core.CheckClaim(ctx, key, value, ttl, true); err != nil {
			return false, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.claims[key]
	if !ok || cur.value != old || (s.mode != claimsResurrect && !s.live(cur, time.Now())) {
		return false, nil
	}
	if value == "" {
		delete(s.claims, key)
	} else {
		s.claims[key] = testClaim{value: value, until: time.Now().Add(ttl)}
	}
	return true, nil
}

// claimsAsTokens declares as its own ClaimStore core.ClaimsOver of itself,
// which keeps each claim as a token under its key: claims and tokens are
// not apart, as a native ClaimStore's must be.
type claimsAsTokens struct{ *testStore }

func (s claimsAsTokens) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	return core.ClaimsOver(s.testStore).Claim(ctx, key, value, ttl)
}

func (s claimsAsTokens) CompareAndSwapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	return core.ClaimsOver(s.testStore).CompareAndSwapClaim(ctx, key, old, value, ttl)
}
