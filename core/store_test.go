package core

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// storeKinds builds the stores of this package that keep their own data: a
// MemoryStore and a FuncStore in its Set form over a map.
func storeKinds(lease time.Duration) map[string]func(t *testing.T) TokenStore {
	return map[string]func(t *testing.T) TokenStore{
		"memory": func(t *testing.T) TokenStore { return NewMemoryStore(WithLease(lease)) },
		"func": func(t *testing.T) TokenStore {
			var mu sync.Mutex
			m := map[string]Token{}
			s, err := NewFuncStore(StoreFuncs{
				Get: func(_ context.Context, key string) (Token, error) {
					mu.Lock()
					defer mu.Unlock()
					return m[key], nil // zero Token: not found
				},
				Set: func(_ context.Context, key string, tok Token) error {
					mu.Lock()
					defer mu.Unlock()
					m[key] = tok
					return nil
				},
			}, WithLease(lease))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

func countingFetch(n *atomic.Int32, value string) FetchFunc {
	return func(context.Context) (Token, error) {
		n.Add(1)
		return Token{Value: value, ExpiresAt: time.Now().Add(time.Hour)}, nil
	}
}

func TestStoreRules(t *testing.T) {
	for name, mk := range storeKinds(time.Second) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			s := mk(t)
			if _, err := s.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
			}
			var n atomic.Int32
			// Nothing stored: fetch.
			got, err := s.Refresh(ctx, "k", "", countingFetch(&n, "v1"))
			if err != nil || got.Value != "v1" || n.Load() != 1 {
				t.Fatalf("Refresh(k, stale=\"\") = %v, %v with %d fetches; want v1 after 1", got, err, n.Load())
			}
			// Stored differs from stale: no fetch.
			got, err = s.Refresh(ctx, "k", "v0", countingFetch(&n, "v2"))
			if err != nil || got.Value != "v1" || n.Load() != 1 {
				t.Fatalf("Refresh(k, stale=v0) = %v, %v with %d fetches; want v1 and no fetch", got, err, n.Load())
			}
			// Stored equals stale: fetch.
			got, err = s.Refresh(ctx, "k", "v1", countingFetch(&n, "v2"))
			if err != nil || got.Value != "v2" || n.Load() != 2 {
				t.Fatalf("Refresh(k, stale=v1) = %v, %v with %d fetches; want v2 after 2", got, err, n.Load())
			}
			// Fetch error: nothing written, error returned.
			boom := errors.New("boom")
			_, err = s.Refresh(ctx, "k", "v2", func(context.Context) (Token, error) { return Token{}, boom })
			if !errors.Is(err, boom) {
				t.Fatalf("Refresh with a failing fetch: %v, want it to wrap boom", err)
			}
			if got, _ := s.Get(ctx, "k"); got.Value != "v2" {
				t.Fatalf("after a failed fetch the store holds %q, want v2", got.Value)
			}
			// An empty token from fetch is refused.
			_, err = s.Refresh(ctx, "k", "v2", func(context.Context) (Token, error) { return Token{}, nil })
			if err == nil {
				t.Fatal("Refresh accepted an empty token from fetch")
			}
			// Bad keys are refused everywhere.
			for _, key := range []string{"", strings.Repeat("x", MaxKeyLen+1), "a\x00b", "\xff"} {
				if err := s.Set(ctx, key, Token{Value: "v"}); err == nil {
					t.Errorf("Set(%q) accepted a bad key", key)
				}
			}
			// A cancelled context is honoured by every method.
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := s.Get(cctx, "k"); !errors.Is(err, context.Canceled) {
				t.Errorf("Get with a cancelled ctx: %v", err)
			}
			if err := s.Set(cctx, "k", Token{Value: "x"}); !errors.Is(err, context.Canceled) {
				t.Errorf("Set with a cancelled ctx: %v", err)
			}
			if _, err := s.Refresh(cctx, "k", "v2", countingFetch(&n, "x")); !errors.Is(err, context.Canceled) {
				t.Errorf("Refresh with a cancelled ctx: %v", err)
			}
		})
	}
}

func TestStoreHerdFetchesOnce(t *testing.T) {
	for name, mk := range storeKinds(5 * time.Second) {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			var n atomic.Int32
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			fetch := func(context.Context) (Token, error) {
				n.Add(1)
				once.Do(func() { close(entered) })
				<-release
				return Token{Value: "new", ExpiresAt: time.Now().Add(time.Hour)}, nil
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make(chan error, 200)
			for range 200 {
				wg.Go(func() {
					<-start
					tok, err := s.Refresh(t.Context(), "herd", "", fetch)
					if err == nil && tok.Value != "new" {
						err = errors.New("got " + tok.Value)
					}
					if err != nil {
						errs <- err
					}
				})
			}
			close(start)
			// Let the holder finish only once it is inside fetch.
			<-entered
			close(release)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if got := n.Load(); got != 1 {
				t.Fatalf("200 concurrent Refresh calls fetched %d times, want 1", got)
			}
		})
	}
}

func TestStoreLeaseFencesTheLateHolder(t *testing.T) {
	// Long enough that the takeover's own instant fetch and write fit in it
	// on a loaded machine; the late holder waits for letGo, not a clock.
	const lease = time.Second
	for name, mk := range storeKinds(lease) {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			ctx := t.Context()
			inFetch, letGo := make(chan struct{}), make(chan struct{})
			lateErr := make(chan error, 1)
			go func() {
				_, err := s.Refresh(ctx, "k", "", func(context.Context) (Token, error) {
					close(inFetch)
					<-letGo // ignores its ctx: outlives the lease
					return Token{Value: "late", ExpiresAt: time.Now().Add(time.Hour)}, nil
				})
				lateErr <- err
			}()
			<-inFetch
			// This waits for the lease to run out, then takes over.
			tok, err := s.Refresh(ctx, "k", "", func(context.Context) (Token, error) {
				return Token{Value: "newer", ExpiresAt: time.Now().Add(time.Hour)}, nil
			})
			if err != nil || tok.Value != "newer" {
				t.Fatalf("takeover Refresh = %v, %v; want newer", tok, err)
			}
			close(letGo)
			if err := <-lateErr; !errors.Is(err, ErrLockLost) {
				t.Fatalf("late holder's Refresh error = %v, want ErrLockLost", err)
			}
			if got, _ := s.Get(ctx, "k"); got.Value != "newer" {
				t.Fatalf("store holds %q after the late write, want newer", got.Value)
			}
		})
	}
}

func TestStoreFetchCutByLeaseIsLockLost(t *testing.T) {
	s := NewMemoryStore(WithLease(20 * time.Millisecond))
	_, err := s.Refresh(t.Context(), "k", "", func(ctx context.Context) (Token, error) {
		<-ctx.Done() // a well-behaved fetch gives up when the lease ends
		return Token{}, ctx.Err()
	})
	if !errors.Is(err, ErrLockLost) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Refresh whose fetch ran past the lease: %v, want ErrLockLost and DeadlineExceeded", err)
	}
}

func TestStoreWaiterHonoursContext(t *testing.T) {
	const lease = 5 * time.Second
	for name, mk := range storeKinds(lease) {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			inFetch, letGo := make(chan struct{}), make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.Refresh(t.Context(), "k", "", func(context.Context) (Token, error) {
					close(inFetch)
					<-letGo
					return Token{Value: "v1", ExpiresAt: time.Now().Add(time.Hour)}, nil
				})
			}()
			<-inFetch
			ctx, cancel := context.WithCancel(t.Context())
			waiterErr := make(chan error, 1)
			go func() {
				_, err := s.Refresh(ctx, "k", "", func(context.Context) (Token, error) { return Token{}, errors.New("must not fetch") })
				waiterErr <- err
			}()
			cancel()
			if err := <-waiterErr; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled waiter returned %v, want context.Canceled", err)
			}
			released := time.Now()
			close(letGo)
			<-done
			// The lock was not leaked: a new refresh fetches before a lock
			// the waiter could have taken after released would run out.
			var n atomic.Int32
			tctx, tcancel := context.WithDeadline(t.Context(), released.Add(lease-time.Millisecond))
			defer tcancel()
			if tok, err := s.Refresh(tctx, "k", "v1", countingFetch(&n, "v2")); err != nil || tok.Value != "v2" {
				t.Fatalf("Refresh after the cancelled waiter = %v, %v", tok, err)
			}
		})
	}
}

func TestNewFuncStoreNeedsSetOrRefresh(t *testing.T) {
	get := func(context.Context, string) (Token, error) { return Token{}, nil }
	if _, err := NewFuncStore(StoreFuncs{Get: get}); err == nil || !strings.Contains(err.Error(), "needs Set") {
		t.Errorf("NewFuncStore without Set and Refresh: %v", err)
	}
	if _, err := NewFuncStore(StoreFuncs{Set: func(context.Context, string, Token) error { return nil }}); err == nil || !strings.Contains(err.Error(), "Get is required") {
		t.Errorf("NewFuncStore without Get: %v", err)
	}
}

func TestFuncStoreWorkerDelegatesToTheMaster(t *testing.T) {
	master := NewMemoryStore()
	var fetches atomic.Int32
	var sawStale []string
	var mu sync.Mutex
	worker, err := NewFuncStore(StoreFuncs{
		Get: master.Get,
		Refresh: func(ctx context.Context, key, stale string) (Token, error) {
			mu.Lock()
			sawStale = append(sawStale, stale)
			mu.Unlock()
			return master.Refresh(ctx, key, stale, countingFetch(&fetches, "from-master"))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tok, err := worker.Refresh(ctx, "k", "old", func(context.Context) (Token, error) {
		t.Error("the worker called its own fetch")
		return Token{}, nil
	})
	if err != nil || tok.Value != "from-master" {
		t.Fatalf("worker Refresh = %v, %v", tok, err)
	}
	if len(sawStale) != 1 || sawStale[0] != "old" {
		t.Errorf("master saw stale values %q, want [old]", sawStale)
	}
	if err := worker.Set(ctx, "k", Token{Value: "x"}); err == nil {
		t.Error("Set on a worker-form store succeeded; the master owns the tokens")
	}
	if got, err := worker.Get(ctx, "k"); err != nil || got.Value != "from-master" {
		t.Errorf("worker Get = %v, %v", got, err)
	}
}

func TestFuncStoreGetErrorAbortsRefresh(t *testing.T) {
	down := errors.New("store down")
	s, err := NewFuncStore(StoreFuncs{
		Get: func(context.Context, string) (Token, error) { return Token{}, down },
		Set: func(context.Context, string, Token) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	if _, err := s.Refresh(t.Context(), "k", "", countingFetch(&n, "v")); !errors.Is(err, down) || n.Load() != 0 {
		t.Fatalf("Refresh over a failing Get: %v with %d fetches; want the Get error and no fetch", err, n.Load())
	}
}
