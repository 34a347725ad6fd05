package containertest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	pgstore "github.com/wechatconf/wechatconf/store/postgres"
)

// faultLease is the lease of the stores in the fault tests: long, so that
// what ends a holder there is the fault, never its lease.
const faultLease = 30 * time.Second

// withAppName returns a pool configuration naming the pool's sessions, so
// that pg_stat_activity and pg_locks tell them apart.
func withAppName(name string) func(*pgxpool.Config) {
	return func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["application_name"] = name }
}

// eventually calls cond every few milliseconds until it reports true, and
// fails the test if it does not within d. It waits for a state of the
// server to be reached, it does not stand in for synchronisation.
func eventually(t testing.TB, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v (last error: %v)", what, d, lastErr)
		}
		<-tick.C
	}
}

// waitingSessions counts the sessions of application app waiting for an
// advisory lock.
func waitingSessions(ctx context.Context, pool *pgxpool.Pool, app string) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = $1`, app).Scan(&n)
	return n, err
}

// TestHolderTerminated tests that a holder whose backend is terminated with
// pg_terminate_backend while it is inside fetch loses the lock at once: a
// waiter takes over and refreshes long before the lease, and the holder's
// Refresh, when its fetch returns, fails with an error wrapping
// core.ErrLockLost and writes nothing. Neither pool keeps a connection
// acquired.
func TestHolderTerminated(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	admin := newPool(t, testDSN, nil)
	id := fmt.Sprintf("%08x", rand.Uint32())
	holderApp, waiterApp := "pgstore-holder-"+id, "pgstore-waiter-"+id
	holderPool := newPool(t, testDSN, withAppName(holderApp))
	waiterPool := newPool(t, testDSN, withAppName(waiterApp))
	holderStore := newStoreOn(t, holderPool, pgstore.WithLease(faultLease))
	waiterStore := newStoreOn(t, waiterPool, pgstore.WithLease(faultLease))

	key := uniqueKey(t)
	if err := holderStore.Set(ctx, key, tok("old")); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
	h := startHolder(t, holderStore, key, "old")

	var fetches atomic.Int32
	waiter := make(chan result, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, faultLease/2)
		defer cancel()
		got, err := waiterStore.Refresh(wctx, key, "old", func(context.Context) (core.Token, error) {
			fetches.Add(1)
			return tok("waiter-token"), nil
		})
		waiter <- result{got, err}
	}()
	eventually(t, 10*time.Second, "the waiter waits for the lock", func() (bool, error) {
		n, err := waitingSessions(ctx, admin, waiterApp)
		return n == 1, err
	})

	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = $1 AND state = 'idle in transaction'`, holderApp).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("pg_terminate_backend of the holder's session: %d terminated, %v; want 1", killed, err)
	}
	terminated := time.Now()

	select {
	case r := <-waiter:
		if r.err != nil || r.tok.Value != "waiter-token" || fetches.Load() != 1 {
			t.Errorf("waiter Refresh(%q) after the holder was terminated = %+v, %v with %d fetches; want its own fetched token, 1 fetch", key, r.tok, r.err, fetches.Load())
		}
		t.Logf("waiter took over %v after pg_terminate_backend (lease %v)", time.Since(terminated).Round(time.Millisecond), faultLease)
	case <-time.After(10 * time.Second):
		t.Fatalf("waiter Refresh(%q) still waiting 10s after the holder was terminated (lease %v)", key, faultLease)
	}

	r := h.finish(tok("late-holder-token"))
	if !errors.Is(r.err, core.ErrLockLost) {
		t.Errorf("holder Refresh(%q) after its backend was terminated = %+v, %v; want an error wrapping core.ErrLockLost", key, r.tok, r.err)
	}
	t.Logf("holder's error: %v", r.err)
	if got, err := waiterStore.Get(ctx, key); err != nil || got.Value != "waiter-token" {
		t.Errorf("Get(%q) = %+v, %v; want the waiter's token (the terminated holder writes nothing)", key, got, err)
	}
	waitReleased(t, "after the holder was terminated", map[string]*pgxpool.Pool{"holder pool": holderPool, "waiter pool": waiterPool})
}

// waitReleased waits until no pool holds an acquired connection, and
// reports the pools that still do after a generous deadline. A connection
// that broke is released asynchronously: pgxpool hands it to a goroutine
// that closes it and only then removes it from the pool, so the count is
// awaited rather than read once just after the Refresh returned. A
// connection the store really leaked stays acquired forever.
func waitReleased(t testing.TB, when string, pools map[string]*pgxpool.Pool) {
	t.Helper()
	begin := time.Now()
	deadline := begin.Add(releaseDeadline)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for polls := 0; ; polls++ {
		var held []string
		for name, p := range pools {
			if n := p.Stat().AcquiredConns(); n != 0 {
				held = append(held, fmt.Sprintf("%s: %d connections still acquired %s, want 0", name, n, when))
			}
		}
		if len(held) == 0 {
			if polls > 0 {
				t.Logf("connections released %v after the first look %s", time.Since(begin).Round(time.Millisecond), when)
			}
			return
		}
		if time.Now().After(deadline) {
			slices.Sort(held)
			t.Errorf("%s (after waiting %v for broken connections to be closed)", strings.Join(held, "; "), releaseDeadline)
			return
		}
		<-tick.C
	}
}

// releaseDeadline bounds waitReleased. pgxpool gives the close of a broken
// connection 15 seconds; this is well beyond it.
const releaseDeadline = 30 * time.Second

// TestLeaseEndsHungHolderOnServer tests the server side of the lease: a
// holder whose fetch ignores its context and hangs past the lease has its
// session ended by PostgreSQL (idle_in_transaction_session_timeout), which
// frees the lock with no help from the client; the holder's write is then
// refused with an error wrapping core.ErrLockLost in which the server's
// *pgconn.PgError (25P03) is reachable.
func TestLeaseEndsHungHolderOnServer(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	admin := newPool(t, testDSN, nil)
	app := fmt.Sprintf("pgstore-hung-%08x", rand.Uint32())
	s := newStore(t, testDSN, withAppName(app)) // testLease
	key := uniqueKey(t)
	h := startHolder(t, s, key, "")
	began := time.Now()
	eventually(t, testLease+10*time.Second, "the server ends the hung holder's session", func() (bool, error) {
		var n int
		err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle in transaction'`, app).Scan(&n)
		return err == nil && n == 0, err
	})
	t.Logf("session ended by the server %v after the lock was taken (lease %v)", time.Since(began).Round(time.Millisecond), testLease)
	if took := time.Since(began); took < testLease*9/10 {
		t.Errorf("the holder's session ended %v after it took the lock, before its %v lease", took, testLease)
	}

	r := h.finish(tok("hung"))
	var pgErr *pgconn.PgError
	if !errors.Is(r.err, core.ErrLockLost) || !errors.As(r.err, &pgErr) || pgErr.Code != "25P03" {
		t.Errorf("Refresh(%q) of a holder hung past its lease = %+v, %v; want an error wrapping core.ErrLockLost and a *pgconn.PgError 25P03", key, r.tok, r.err)
	}
	if _, err := s.Get(ctx, key); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("Get(%q) after the hung holder: %v, want ErrNotFound (its write is refused)", key, err)
	}
}

// TestServerStopped tests that callers waiting for a lock when the server
// stops (on a container of its own) return an error well within their
// context, that the holder's late write is refused with ErrLockLost, that a
// Refresh while the server is down fails within its context, that no
// connection stays acquired and no goroutine leaks, and that the store
// works again once the server is back.
func TestServerStopped(t *testing.T) {
	needServer(t)
	pg := containers.StartPostgres(t)
	ctx := context.Background()
	const (
		waiterStores = 3
		perStore     = 2
		callerCtx    = 20 * time.Second
	)
	id := fmt.Sprintf("%08x", rand.Uint32())
	waiterApp := "pgstore-stop-waiter-" + id

	var pools []*pgxpool.Pool
	var stores []*pgstore.Store
	func() {
		// These pools are closed by hand below, before the goroutine check.
		for i := range waiterStores + 1 {
			app := waiterApp
			if i == 0 {
				app = "pgstore-stop-holder-" + id
			}
			c, err := pgxpool.ParseConfig(pg.DSN)
			if err != nil {
				t.Fatal(err)
			}
			withAppName(app)(c)
			p, err := pgxpool.NewWithConfig(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close) // in case of an early failure; Close is idempotent
			pools = append(pools, p)
			stores = append(stores, newStoreOn(t, p, pgstore.WithLease(faultLease)))
		}
	}()
	holderStore, waiters := stores[0], stores[1:]
	key := uniqueKey(t)
	if err := holderStore.Set(ctx, key, tok("old")); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
	h := startHolder(t, holderStore, key, "old")

	type waitResult struct {
		result
		took time.Duration
	}
	results := make(chan waitResult, waiterStores*perStore)
	var wg sync.WaitGroup
	for _, s := range waiters {
		for range perStore {
			wg.Go(func() {
				wctx, cancel := context.WithTimeout(ctx, callerCtx)
				defer cancel()
				start := time.Now()
				got, err := s.Refresh(wctx, key, "old", func(context.Context) (core.Token, error) {
					return tok("waiter-token"), nil
				})
				results <- waitResult{result{got, err}, time.Since(start)}
			})
		}
	}
	admin := pools[0]
	eventually(t, 10*time.Second, "every waiter waits for the lock", func() (bool, error) {
		n, err := waitingSessions(ctx, admin, waiterApp)
		return n == waiterStores*perStore, err
	})

	stopped := time.Now()
	containers.Stop(t, pg.Container)
	t.Logf("server stopped in %v", time.Since(stopped).Round(time.Millisecond))
	wg.Wait()
	close(results)
	for r := range results {
		switch {
		case r.err == nil:
			t.Errorf("waiter Refresh(%q) across the server's stop = %+v, nil; want an error", key, r.tok)
		case errors.Is(r.err, context.DeadlineExceeded) || r.took >= callerCtx:
			t.Errorf("waiter Refresh(%q) across the server's stop returned after %v with %v; want an error well within its %v ctx", key, r.took, r.err, callerCtx)
		default:
			t.Logf("waiter: after %v: %v", r.took.Round(time.Millisecond), r.err)
		}
	}
	if r := h.finish(tok("late")); !errors.Is(r.err, core.ErrLockLost) {
		t.Errorf("holder Refresh(%q) whose server stopped during fetch = %+v, %v; want an error wrapping core.ErrLockLost", key, r.tok, r.err)
	} else {
		t.Logf("holder: %v", r.err)
	}

	// While the server is down, calls fail within their ctx: one that
	// ignored it would wait for the server, which stays down until the
	// Start below, so a generous limit tells the two apart.
	const downCtx = 3 * time.Second
	dctx, cancel := context.WithTimeout(ctx, downCtx)
	start := time.Now()
	down := make(chan error, 1)
	go func() { _, err := waiters[0].Refresh(dctx, key, "old", failFetch(t)); down <- err }()
	select {
	case err := <-down:
		if took := time.Since(start); err == nil {
			t.Errorf("Refresh(%q) with the server down: nil error after %v, want an error", key, took)
		} else {
			t.Logf("Refresh with the server down: after %v: %v", took.Round(time.Millisecond), err)
		}
	case <-time.After(downCtx + callerCtx):
		t.Fatalf("Refresh(%q) with the server down: still running %v after it began, want an error within its %v ctx", key, downCtx+callerCtx, downCtx)
	}
	cancel()
	byName := map[string]*pgxpool.Pool{}
	for i, p := range pools {
		byName[fmt.Sprintf("pool %d", i)] = p
	}
	waitReleased(t, "after the server stopped", byName)

	// Back up on the same address: the same pool and store work again.
	containers.Start(t, pg.Container)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	got, err := waiters[0].Refresh(rctx, key, "old", func(context.Context) (core.Token, error) { return tok("after-restart"), nil })
	if err != nil || got.Value != "after-restart" {
		t.Errorf("Refresh(%q) after the server came back = %+v, %v; want the fetched token (the holder's late write was refused, so %q is still stored)", key, got, err, "old")
	}

	for _, p := range pools {
		p.Close()
	}
	if n, stacks := leakedGoroutines(5 * time.Second); n > 0 {
		t.Errorf("%d goroutines of pgx or pgstore still running after the pools were closed:\n%s", n, stacks)
	}
}

// leakedGoroutines waits up to d for every goroutine running pgx or pgstore
// code (other than the caller) to end, and returns how many are left and
// their stacks.
func leakedGoroutines(d time.Duration) (int, []byte) {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var n int
		var leaked [][]byte
		for i, g := range bytes.Split(buf, []byte("\n\n")) {
			if i == 0 || bytes.Contains(g, []byte("\nmain.main()")) || bytes.Contains(g, []byte("\ntesting.tRunner(")) {
				continue // the caller, the test binary's main and the running tests
			}
			if bytes.Contains(g, []byte("github.com/jackc/")) || bytes.Contains(g, []byte("wechatconf/store/postgres")) {
				n++
				leaked = append(leaked, g)
			}
		}
		if n == 0 || time.Now().After(deadline) {
			return n, bytes.Join(leaked, []byte("\n\n"))
		}
		<-tick.C
	}
}
