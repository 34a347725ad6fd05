package containertest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// TestFaults stops and restarts a Redis server of its own under waiting
// callers, so that the other tests are not disturbed.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and restarts a container")
	}
	r := containers.StartRedis(t)
	t.Run("ServerStopsUnderWaiter", func(t *testing.T) { testServerStopsUnderWaiter(t, r) })
	t.Run("HerdAcrossRestart", func(t *testing.T) { testHerdAcrossRestart(t, r) })
}

// testServerStopsUnderWaiter tests that a caller waiting for a lock when
// the server stops returns an error well within its ctx, without a panic,
// and that no goroutine of the store or of go-redis is left once the
// clients are closed.
func testServerStopsUnderWaiter(t *testing.T, r *containers.Redis) {
	defer containers.Start(t, r.Container) // for the next subtest
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ca, cb := newClient(r.Addr), newClient(r.Addr)
	defer ca.Close()
	defer cb.Close()
	a, b := mustNew(t, ca, redisstore.WithLease(testLease)), mustNew(t, cb, redisstore.WithLease(testLease))
	key := uniqueKey(t, "k")

	h := startHolder(ctx, a, key, "")
	<-h.entered
	waiter := make(chan error, 1)
	var fetched atomic.Int32
	go func() {
		_, err := b.Refresh(ctx, key, "", func(context.Context) (core.Token, error) { fetched.Add(1); return tok("waiter"), nil })
		waiter <- err
	}()
	waitFor(t, 10*time.Second, "the waiter to subscribe", func() bool { return subs(t, ca, b, key) == 1 })

	stopped := time.Now()
	containers.Stop(t, r.Container)
	var err error
	select {
	case err = <-waiter:
	case <-ctx.Done():
		t.Fatalf("Refresh(%q) waiting while the server stopped: still waiting when its ctx ended", key)
	}
	t.Logf("waiter returned %v after the stop began: %v", time.Since(stopped).Round(time.Millisecond), err)
	switch {
	case err == nil:
		t.Errorf("Refresh(%q) waiting while the server stopped: nil error (fetched %d times), want an error", key, fetched.Load())
	case errors.Is(err, context.DeadlineExceeded):
		t.Errorf("Refresh(%q) waiting while the server stopped: %v; want the server's error, not the end of ctx", key, err)
	case !strings.HasPrefix(err.Error(), "redisstore: refresh "):
		t.Errorf("Refresh(%q) waiting while the server stopped: %q, want it wrapped with the operation", key, err)
	}

	h.release <- tok("holder")
	if err := <-h.done; err == nil {
		t.Errorf("Refresh(%q) of the holder whose server stopped during fetch: nil error, want the failed write", key)
	} else {
		t.Logf("holder: %v", err)
	}
	ca.Close()
	cb.Close()
	waitNoGoroutines(t, true)
}

// testHerdAcrossRestart tests a herd through a restart of the server:
// callers waiting when it stops return errors within their ctx (none
// fetches: nobody can take the lock); once it is back (empty: no
// persistence), a new herd on the same clients succeeds with exactly one
// fetch; and no goroutine is left.
func testHerdAcrossRestart(t *testing.T, r *containers.Redis) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const nStores, perStore = 4, 5
	clients := make([]*redis.Client, nStores)
	stores := make([]*redisstore.Store, nStores)
	for i := range clients {
		clients[i] = newClient(r.Addr)
		defer clients[i].Close()
		stores[i] = mustNew(t, clients[i], redisstore.WithLease(testLease))
	}
	key := uniqueKey(t, "k")
	h := startHolder(ctx, stores[0], key, "")
	<-h.entered

	var fetches atomic.Int32
	fetch := func(v string) core.FetchFunc {
		return func(context.Context) (core.Token, error) { fetches.Add(1); return tok(v), nil }
	}
	herd := func(v string) []error {
		var (
			mu   sync.Mutex
			errs []error
			wg   sync.WaitGroup
			vals = map[string]int{}
		)
		for _, s := range stores {
			for range perStore {
				wg.Go(func() {
					got, err := s.Refresh(ctx, key, "", fetch(v))
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err)
					} else {
						vals[got.Value]++
					}
				})
			}
		}
		if v == "during" {
			waitFor(t, 10*time.Second, "the herd to subscribe", func() bool {
				// One subscription per waiting store.
				return subs(t, clients[0], stores[0], key) == nStores

			})
			containers.Stop(t, r.Container)
		}
		wg.Wait()
		if len(vals) > 1 {
			t.Errorf("herd %q: callers got %d different tokens %v, want one", v, len(vals), vals)
		}
		return errs
	}

	errs := herd("during")
	t.Logf("herd while the server stopped: %d of %d callers failed, the first with: %v", len(errs), nStores*perStore, first(errs))
	if ctx.Err() != nil {
		t.Fatalf("herd while the server stopped: still waiting when the test's ctx ended")
	}
	if n := fetches.Load(); n != 0 {
		t.Errorf("herd while the server stopped: %d fetches, want 0 (the holder kept the lock until the stop)", n)
	}
	if len(errs) == 0 {
		t.Errorf("herd while the server stopped: every caller succeeded, want errors")
	}
	h.release <- tok("holder")
	if err := <-h.done; err == nil {
		t.Errorf("holder whose server stopped during fetch: nil error, want the failed write")
	}

	containers.Start(t, r.Container)
	// Every client must answer, not just one: a go-redis pool whose dials
	// failed while the server was down keeps returning the last dial error
	// until its background probe (once a second) reaches the server again.
	for i, c := range clients {
		waitFor(t, 30*time.Second, fmt.Sprintf("the restarted server to answer client %d", i), func() bool {
			return c.Ping(ctx).Err() == nil
		})
	}
	errs = herd("after")
	if len(errs) > 0 {
		t.Errorf("herd after the restart: %d of %d callers failed, the first with: %v", len(errs), nStores*perStore, errs[0])
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("herd after the restart: %d fetches, want exactly 1", n)
	}
	for _, c := range clients {
		c.Close()
	}
	waitNoGoroutines(t, true)
}

func first(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// goroutineSettle bounds waitNoGoroutines: generous, since it only ends a
// wait for goroutines that are on their way out (a go-redis pool's dial
// probe sleeps a second between tries), and a leaked goroutine never goes.
const goroutineSettle = 30 * time.Second

// waitNoGoroutines waits (a bounded settle loop) until no goroutine runs
// code of this package's Store, and, if clientsClosed, none runs go-redis
// code either; it fails the test with their stacks if some remain.
func waitNoGoroutines(t testing.TB, clientsClosed bool) {
	t.Helper()
	markers := []string{"wechatconf/store/redis.(*subscription)", "wechatconf/store/redis.(*redisstore.Store)"}
	if clientsClosed {
		markers = append(markers, "github.com/redis/go-redis/")
	}
	var left []string
	deadline := time.Now().Add(goroutineSettle)
	for {
		left = left[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			for _, m := range markers {
				if strings.Contains(g, m) {
					left = append(left, g)
					break
				}
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("%d goroutine(s) of the store or go-redis left:\n%s", len(left), strings.Join(left, "\n\n"))
}
