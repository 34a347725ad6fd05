package core

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// tokenStoreOnly hides a MemoryStore's own ClaimStore, so that claims go
// through the emulation.
type tokenStoreOnly struct{ m *MemoryStore }

func (o tokenStoreOnly) Get(ctx context.Context, k string) (Token, error) { return o.m.Get(ctx, k) }
func (o tokenStoreOnly) Set(ctx context.Context, k string, t Token) error { return o.m.Set(ctx, k, t) }
func (o tokenStoreOnly) Refresh(ctx context.Context, k, stale string, f FetchFunc) (Token, error) {
	return o.m.Refresh(ctx, k, stale, f)
}

// TestClaimsOverTombstoneValueIsAValue tests that the emulation's claims may
// hold any value CheckClaim accepts, the tombstone's included: a claim of
// claimTombstone is live like any other, so a second caller loses to it.
// Before, liveness looked at the value, and both callers won.
func TestClaimsOverTombstoneValueIsAValue(t *testing.T) {
	ctx := context.Background()
	c := ClaimsOver(tokenStoreOnly{NewMemoryStore()})
	if held, err := c.Claim(ctx, "k", claimTombstone, time.Minute); err != nil || held != claimTombstone {
		t.Fatalf("Claim(k, %q) = %q, %v; want it won", claimTombstone, held, err)
	}
	if held, err := c.Claim(ctx, "k", "other", time.Minute); err != nil || held != claimTombstone {
		t.Fatalf("Claim(k, other) = %q, %v; want %q, the live claim", held, err, claimTombstone)
	}
	if ok, err := c.CompareAndSwapClaim(ctx, "k", claimTombstone, "", 0); err != nil || !ok {
		t.Fatalf("release: %v, %v", ok, err)
	}
	if held, err := c.Claim(ctx, "k", "other", time.Minute); err != nil || held != "other" {
		t.Fatalf("Claim(k, other) after the release = %q, %v; want it won", held, err)
	}
}

// TestClaimsOverSwapCountsTTLFromTheWrite tests that CompareAndSwapClaim's
// ttl runs from the fenced write, under the lock, not from the call: a swap
// that waited for the lock while the clock moved on still gets its whole
// ttl. Before, it lost the wait.
func TestClaimsOverSwapCountsTTLFromTheWrite(t *testing.T) {
	ctx := context.Background()
	var (
		mu  sync.Mutex
		now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m := NewMemoryStore()
	refreshing := make(chan struct{}, 1)
	store := refreshSignal{tokenStoreOnly{m}, refreshing}
	c := tokenClaims{s: store, now: clock}
	if held, err := c.Claim(ctx, "k", "mine", time.Minute); err != nil || held != "mine" {
		t.Fatalf("Claim = %q, %v", held, err)
	}
	<-refreshing // the Claim's own Refresh

	// A holder of k's refresh lock, whose fetch fails: it writes nothing.
	entered, release := make(chan struct{}), make(chan struct{})
	errHeld := errors.New("held")
	holder := make(chan error, 1)
	go func() {
		_, err := m.Refresh(ctx, "k", "mine", func(context.Context) (Token, error) {
			close(entered)
			<-release
			return Token{}, errHeld
		})
		holder <- err
	}()
	<-entered

	swapped := make(chan error, 1)
	go func() {
		ok, err := c.CompareAndSwapClaim(ctx, "k", "mine", "mine", time.Minute)
		if err == nil && !ok {
			err = errors.New("not swapped")
		}
		swapped <- err
	}()
	<-refreshing // the swap calls Refresh, which waits for the holder
	mu.Lock()
	now = now.Add(30 * time.Second)
	moved := now
	mu.Unlock()
	close(release)
	if err := <-holder; !errors.Is(err, errHeld) {
		t.Fatalf("holder: %v", err)
	}
	if err := <-swapped; err != nil {
		t.Fatalf("CompareAndSwapClaim: %v", err)
	}
	tok, err := m.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if want := moved.Add(time.Minute); tok.ExpiresAt.Before(want) {
		t.Fatalf("the extended claim ends at %v, want %v: a minute from the write", tok.ExpiresAt, want)
	}
}

// refreshSignal sends on ch as each Refresh begins.
type refreshSignal struct {
	TokenStore
	ch chan struct{}
}

func (s refreshSignal) Refresh(ctx context.Context, k, stale string, f FetchFunc) (Token, error) {
	s.ch <- struct{}{}
	return s.TokenStore.Refresh(ctx, k, stale, f)
}
