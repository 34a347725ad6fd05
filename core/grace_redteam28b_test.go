package core_test

// Red-team tests (issue 27) of staleServeGrace: past its refresh point + 4
// minutes a caller no longer gets the held copy while the background
// refresh runs, but goes through a foreground refresh. A held token that
// is still valid at WeChat (nobody replaced it: the store holds it, or
// the store is down) must still be served by the outage rules and when
// the fetch fails.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/storetest"
)

// fakeClock is a settable clock for CredentialConfig.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// graceCredential is a classic (every fetch a new token) credential on
// store with clock, its tokens living 2 h, refreshed 10 minutes ahead (so
// that the 4-minute grace ends 5 minutes before the ExpiryMargin), whose
// fetches fail once failFetch is set.
func graceCredential(t *testing.T, store core.TokenStore, clock *fakeClock, failFetch *atomic.Bool, fetches *atomic.Int32) *core.Credential {
	t.Helper()
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "access_token", Key: "redteam28b/grace", Store: store, Now: clock.Now,
		Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			n := fetches.Add(1)
			if failFetch.Load() {
				return core.Token{}, &core.APIError{Code: -1, Message: "system error"}
			}
			return core.Token{Value: "tok-" + string(rune('A'-1+n)), ExpiresAt: clock.Now().Add(2 * time.Hour)}, nil
		},
		Policy: core.Policy{RefreshAhead: 10 * time.Minute, ExpiryMargin: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cr
}

// A classic token past its grace but before its ExpiryMargin, the store
// refusing connections: the package doc's outage rule ("the held token is
// served until its ExpiryMargin, then the ErrStoreUnavailable error") must
// hold; the foreground refresh the grace introduced fails the caller
// instead.
func TestGracePastStoreDownServesTheHeldToken(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	store := storetest.NewDown()
	var failFetch atomic.Bool
	var fetches atomic.Int32
	cr := graceCredential(t, store, clock, &failFetch, &fetches)
	ctx := t.Context()
	held, err := cr.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	store.Failing.Store(true)
	// 2 h - 10 min is the refresh point; + 4 min the grace; the margin
	// ends at 2 h - 1 min. Every minute from the refresh point to the
	// margin, a caller.
	for m := 110; m < 119; m++ {
		clock.Set(t0.Add(time.Duration(m) * time.Minute))
		got, err := cr.Get(ctx)
		if err != nil || got.Value != held.Value {
			t.Errorf("at %d min (expires at 120, margin 1 min), store down: Get = %q, %v; want the held %q (the outage rule)", m, got.Value, err, held.Value)
		}
	}
}

// The same with the store up and WeChat failing: the store still holds the
// held token (nobody replaced it), so it is valid at WeChat until its
// expiry; a failed fetch must not fail the caller before the margin.
func TestGracePastFetchFailingServesTheHeldToken(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	var failFetch atomic.Bool
	var fetches atomic.Int32
	cr := graceCredential(t, core.NewMemoryStore(), clock, &failFetch, &fetches)
	ctx := t.Context()
	held, err := cr.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failFetch.Store(true)
	for m := 110; m < 119; m++ {
		clock.Set(t0.Add(time.Duration(m) * time.Minute))
		got, err := cr.Get(ctx)
		if err != nil || got.Value != held.Value {
			t.Errorf("at %d min (expires at 120, margin 1 min), WeChat failing: Get = %q, %v; want the held %q, still valid", m, got.Value, err, held.Value)
		}
	}
	var api *core.APIError
	if _, err := cr.Refresh(ctx, held.Value); !errors.As(err, &api) && err == nil {
		t.Errorf("a rejection's Refresh with WeChat failing = %v, want the fetch's error", err)
	}
}

// After the grace, with WeChat failing fast, a herd of callers in one
// process at one instant: before the grace the background refresh was
// retried at most every 15 s (bgRetryInterval); after it each caller
// that finds no flight running starts a foreground one, each a fetch.
func TestGracePastFetchFailingHerdMakesOneFetch(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	var failFetch atomic.Bool
	var fetches atomic.Int32
	cr := graceCredential(t, core.NewMemoryStore(), clock, &failFetch, &fetches)
	ctx := t.Context()
	if _, err := cr.Get(ctx); err != nil {
		t.Fatal(err)
	}
	failFetch.Store(true)
	clock.Set(t0.Add(115 * time.Minute)) // past the grace (114), before the margin (119)
	before := fetches.Load()
	for range 50 {
		cr.Get(ctx)
	}
	if n := fetches.Load() - before; n > 1 {
		t.Errorf("50 callers at one instant past the grace, WeChat failing: %d fetches, want at most 1 (a failing WeChat is retried every 15 s)", n)
	}
}

// hungStore hangs every call while hung is set, until its ctx ends.
type hungStore struct {
	core.TokenStore
	hung atomic.Bool
}

func (s *hungStore) Get(ctx context.Context, key string) (core.Token, error) {
	if s.hung.Load() {
		<-ctx.Done()
		return core.Token{}, ctx.Err()
	}
	return s.TokenStore.Get(ctx, key)
}

func (s *hungStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if s.hung.Load() {
		<-ctx.Done()
		return core.Token{}, ctx.Err()
	}
	return s.TokenStore.Refresh(ctx, key, stale, fetch)
}

// A store that hangs, already known down (the background refresh waited
// it out), and a caller past the grace: it is served the held token at
// once (the outage rule, "nobody waits for a store known to be down"),
// not after a whole RefreshTimeout, and not an error.
func TestGracePastHungStoreKnownDownDoesNotWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &hungStore{TokenStore: core.NewMemoryStore()}
		var n atomic.Int32
		const timeout = 30 * time.Second
		cr, err := core.NewCredential(core.CredentialConfig{
			Name: "access_token", Key: "redteam28b/hung", Store: store,
			Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
				return core.Token{Value: "tok-" + string(rune('A'+n.Add(1))), ExpiresAt: time.Now().Add(2 * time.Hour)}, nil
			},
			Policy: core.Policy{RefreshAhead: 10 * time.Minute, ExpiryMargin: time.Minute, RefreshTimeout: timeout},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		held, err := cr.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		store.hung.Store(true)
		// Inside the grace: the background refresh starts and waits the
		// store out (RefreshTimeout), then the store is known down.
		time.Sleep(111 * time.Minute) // fake time
		if got, err := cr.Get(ctx); err != nil || got.Value != held.Value {
			t.Fatalf("inside the grace: %q, %v", got.Value, err)
		}
		time.Sleep(2 * timeout)     // the background refresh ends (fake time)
		time.Sleep(4 * time.Minute) // past the grace (114 min), before the margin (119)
		start := time.Now()
		got, err := cr.Get(ctx)
		if waited := time.Since(start); err != nil || got.Value != held.Value || waited >= timeout {
			t.Errorf("past the grace, store hung and known down: Get = %q, %v after %v; want the held %q at once", got.Value, err, waited, held.Value)
		}
		time.Sleep(2 * timeout) // the background probe of the store ends
		synctest.Wait()
	})
}
