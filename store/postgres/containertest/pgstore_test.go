package containertest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/core"
	pgstore "github.com/wechatconf/wechatconf/store/postgres"
)

// testLease is the lease of the stores under test: short, so that the
// lease and crash checks are quick, and 2 s rather than 1 s because through
// PgBouncer on a loaded machine the per-key check's five concurrent
// Refreshes must fit well inside one lease.
const testLease = 2 * time.Second

// newPool returns a pool over dsn, configured by cfg (if not nil), closed
// when t ends.
func newPool(t testing.TB, dsn string, cfg func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	c, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("pgxpool.ParseConfig: %v", err)
	}
	if cfg != nil {
		cfg(c)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), c)
	if err != nil {
		t.Fatalf("pgxpool.NewWithConfig: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// newStore returns a Store over a pool of its own (a "process" of its own),
// with the test lease unless opts say otherwise.
func newStore(t testing.TB, dsn string, cfg func(*pgxpool.Config), opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	return newStoreOn(t, newPool(t, dsn, cfg), opts...)
}

func newStoreOn(t testing.TB, pool *pgxpool.Pool, opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := pgstore.New(ctx, pool, append([]pgstore.Option{pgstore.WithLease(testLease)}, opts...)...)
	if err != nil {
		t.Fatalf("pgstore.New: %v", err)
	}
	return s
}

// harness returns the conformance harness over the shared server, with pools
// configured by cfg.
func harness(prefix string, cfg func(*pgxpool.Config)) conformance.Harness {
	return conformance.Harness{
		NewStore:  func(t testing.TB) core.TokenStore { return newStore(t, testDSN, cfg) },
		Lease:     testLease,
		KeyPrefix: prefix,
		ChildEnv:  []string{dsnEnv + "=" + testDSN},
	}
}

// simpleProtocol configures a pool the way PgBouncer in transaction mode
// needs it: no prepared statements (the simple protocol, parameters
// interpolated by pgx), so nothing lives in the server session between
// transactions.
func simpleProtocol(c *pgxpool.Config) {
	c.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
}

func TestConformance(t *testing.T) {
	needServer(t)
	conformance.Run(t, harness("pg/", nil))
}

// TestConformanceSimpleProtocol runs the suite over pools configured for
// PgBouncer's transaction mode: simple protocol, no prepared statements,
// no session state.
func TestConformanceSimpleProtocol(t *testing.T) {
	needServer(t)
	conformance.Run(t, harness("pgsimple/", simpleProtocol))
}

func TestProcessHerd(t *testing.T) {
	needServer(t)
	conformance.ProcessHerd(t, harness("pgherd/", nil), 8, 50)
}

// TestProcessHerdWeCom runs the herd through a WeCom app's access_token.
func TestProcessHerdWeCom(t *testing.T) {
	needServer(t)
	conformance.ProcessHerdOf(t, harness("pgherdwecom/", nil), conformance.WeComApp, 8, 50)
}

// TestOpenPlatformFleet runs the Open Platform fleet: 8 processes × 1000
// authorizers over one server.
func TestOpenPlatformFleet(t *testing.T) {
	needServer(t)
	conformance.OpenPlatformFleet(t, harness("pgopfleet/", nil), 8, 1000)
}

// TestWeComVendorFleet runs the WeCom vendor fleet, a third-party app's
// suite and a custom-developed app template (代开发): 8 processes × 500
// corps each over one server.
func TestWeComVendorFleet(t *testing.T) {
	needServer(t)
	h := harness("pgwcfleet/", nil)
	t.Run("ThirdParty", func(t *testing.T) { conformance.VendorFleet(t, h, conformance.VendorWeComThirdParty, 8, 500) })
	t.Run("Custom", func(t *testing.T) { conformance.VendorFleet(t, h, conformance.VendorWeComCustom, 8, 500) })
}

// uniqueKey returns a key no other test uses.
func uniqueKey(t testing.TB) string {
	return fmt.Sprintf("pgtest/%s/%08x", t.Name(), rand.Uint32())
}

// tok returns a token with value v expiring in an hour.
func tok(v string) core.Token {
	return core.Token{Value: v, ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
}

// mustExec runs sql on pool and stops the test if it fails.
func mustExec(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestNewRejectsBadArguments tests that New refuses a nil pool and table
// names that cannot be a table.
func TestNewRejectsBadArguments(t *testing.T) {
	ctx := context.Background()
	if _, err := pgstore.New(ctx, nil); err == nil {
		t.Error("New(nil pool): nil error, want one")
	}
	// The name checks come before any I/O: a pool that never connects will do.
	pool, err := pgxpool.New(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, name := range []pgx.Identifier{
		{}, {""}, {"a", ""}, {"a", "b", "c"}, {strings.Repeat("x", 64)}, {"a\x00b"},
	} {
		if _, err := pgstore.New(ctx, pool, pgstore.WithTable(name)); err == nil || !strings.Contains(err.Error(), "table name") {
			t.Errorf("New(WithTable(%q)): %v, want an error about the table name", []string(name), err)
		}
	}
}

// TestNewWithoutCreateTable tests that New with WithCreateTable(false)
// reports a missing table clearly, with the PostgreSQL error reachable, and
// accepts a table created by hand with the documented DDL.
func TestNewWithoutCreateTable(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	pool := newPool(t, testDSN, nil)
	name := pgx.Identifier{fmt.Sprintf("missing_%08x", rand.Uint32())}
	_, err := pgstore.New(ctx, pool, pgstore.WithTable(name), pgstore.WithCreateTable(false))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" || !strings.Contains(err.Error(), "DDL") {
		t.Fatalf("New(WithTable(%q), WithCreateTable(false)) with no such table: %v; want an error pointing at the DDL and wrapping a *pgconn.PgError 42P01", name, err)
	}

	mustExec(t, pool, `CREATE TABLE `+name.Sanitize()+` (
	key        text COLLATE "C" PRIMARY KEY,
	value      text NOT NULL,
	expires_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
)`)
	t.Cleanup(func() { mustExec(t, pool, `DROP TABLE `+name.Sanitize()) })
	s, err := pgstore.New(ctx, pool, pgstore.WithTable(name), pgstore.WithCreateTable(false))
	if err != nil {
		t.Fatalf("New(WithTable(%q), WithCreateTable(false)) over the documented DDL: %v", name, err)
	}
	key, want := uniqueKey(t), tok("by-hand")
	if err := s.Set(ctx, key, want); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
	if got, err := s.Get(ctx, key); err != nil || got.Value != want.Value {
		t.Errorf("Get(%q) = %+v, %v; want %+v", key, got, err, want)
	}
}

// TestHostileTableName tests that a schema-qualified table whose schema and
// table names contain quotes, semicolons and SQL is created and used
// without injection, and that stores reaching the same table by a
// qualified name and through search_path share its locks.
func TestHostileTableName(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	admin := newPool(t, testDSN, nil)
	schema := fmt.Sprintf(`we"ird; DROP TABLE x; -- %08x`, rand.Uint32())
	table := `Tok"ens'); DELETE FROM t; --`
	mustExec(t, admin, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
	t.Cleanup(func() { mustExec(t, admin, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`) })

	// The holder below must keep the lock however long the machine takes:
	// a lease that cannot run out during the test.
	qualified := newStore(t, testDSN, nil, pgstore.WithTable(pgx.Identifier{schema, table}), pgstore.WithLease(faultLease))
	pathApp := fmt.Sprintf("pgstore-path-%08x", rand.Uint32())
	viaPath := newStore(t, testDSN, func(c *pgxpool.Config) {
		c.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
		withAppName(pathApp)(c)
	}, pgstore.WithTable(pgx.Identifier{table}))

	var n int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = $2`, schema, table).Scan(&n); err != nil || n != 1 {
		t.Fatalf("table %q.%q: count %d, %v; want it created under its literal name", schema, table, n, err)
	}

	// A token written through one name is read through the other.
	key := uniqueKey(t)
	if err := qualified.Set(ctx, key, tok("shared")); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
	if got, err := viaPath.Get(ctx, key); err != nil || got.Value != "shared" {
		t.Errorf("Get(%q) through search_path = %+v, %v; want the token Set through the qualified name", key, got, err)
	}

	// The lock is shared too: while the qualified store holds it, the other
	// waits for it (the server shows its session queued on the advisory
	// lock) until its ctx ends, then returns the holder's token without
	// fetching.
	h := startHolder(t, qualified, key, "shared")
	waitCtx, cancel := context.WithCancel(ctx)
	waited := make(chan error, 1)
	go func() { _, err := viaPath.Refresh(waitCtx, key, "shared", failFetch(t)); waited <- err }()
	eventually(t, 30*time.Second, "the store reaching the table through search_path waits for the lock the qualified store holds", func() (bool, error) {
		select {
		case err := <-waited:
			t.Fatalf("Refresh(%q) through search_path while the qualified store holds the lock returned %v, want it to wait", key, err)
		default:
		}
		n, err := waitingSessions(ctx, admin, pathApp)
		return n == 1, err
	})
	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Errorf("Refresh(%q) through search_path while the qualified store holds the lock: %v, want it to wait until its ctx ends", key, err)
	}
	if r := h.finish(tok("fresh")); r.err != nil {
		t.Fatalf("holder Refresh(%q): %v", key, r.err)
	}
	if got, err := viaPath.Refresh(ctx, key, "shared", failFetch(t)); err != nil || got.Value != "fresh" {
		t.Errorf("Refresh(%q) through search_path after the holder = %+v, %v; want the holder's token", key, got, err)
	}
}

// failFetch returns a fetch that fails the test if it is called.
func failFetch(t testing.TB) core.FetchFunc {
	return func(context.Context) (core.Token, error) {
		t.Errorf("fetch called, want no fetch")
		return core.Token{}, errors.New("unexpected fetch")
	}
}

// holder is a Refresh running in the background whose fetch blocks until
// finish.
type holder struct {
	entered chan struct{}
	release chan core.Token
	done    chan result
	once    sync.Once
	res     result
}

type result struct {
	tok core.Token
	err error
}

// startHolder starts s.Refresh(key, stale) with a fetch that ignores its
// ctx and returns what finish sends, and waits until fetch runs.
func startHolder(t testing.TB, s core.TokenStore, key, stale string) *holder {
	t.Helper()
	h := &holder{entered: make(chan struct{}), release: make(chan core.Token, 1), done: make(chan result, 1)}
	go func() {
		got, err := s.Refresh(context.Background(), key, stale, func(context.Context) (core.Token, error) {
			close(h.entered)
			return <-h.release, nil
		})
		h.done <- result{got, err}
	}()
	select {
	case <-h.entered:
	case r := <-h.done:
		t.Fatalf("holder Refresh(%q, stale=%q) = %+v, %v without fetching", key, stale, r.tok, r.err)
	case <-time.After(30 * time.Second):
		t.Fatalf("holder Refresh(%q, stale=%q): no fetch within 30s", key, stale)
	}
	t.Cleanup(func() { h.finish(tok("cleanup")) })
	return h
}

// finish lets the holder's fetch return tk and returns Refresh's result.
func (h *holder) finish(tk core.Token) result {
	h.once.Do(func() {
		h.release <- tk
		h.res = <-h.done
	})
	return h.res
}

// TestCorruptRowIsRepaired tests that a row no token can come from (an
// empty value, an infinite expiry: only possible by hand) makes Get fail
// with a clear error that is not ErrNotFound, and that Refresh treats it as
// absent: it fetches and overwrites it.
func TestCorruptRowIsRepaired(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	s := newStore(t, testDSN, nil)
	pool := newPool(t, testDSN, nil)
	for _, c := range []struct{ name, value, expires, want string }{
		{"empty-value", "", "now()", "value is NULL or empty"},
		{"infinite-expiry", "v", "'infinity'", "expires_at is infinite"},
	} {
		key := uniqueKey(t) + c.name
		mustExec(t, pool, `INSERT INTO wechatconf_tokens (key, value, expires_at) VALUES ($1, $2, `+c.expires+`)`, key, c.value)
		_, err := s.Get(ctx, key)
		if err == nil || errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Get(%q) of a row with %s: %v, want an error saying %q that is not ErrNotFound", key, c.name, err, c.want)
		}
		got, err := s.Refresh(ctx, key, "something-else", func(context.Context) (core.Token, error) { return tok("repaired"), nil })
		if err != nil || got.Value != "repaired" {
			t.Errorf("Refresh(%q) over a row with %s = %+v, %v; want the fetched token", key, c.name, got, err)
		}
		if got, err := s.Get(ctx, key); err != nil || got.Value != "repaired" {
			t.Errorf("Get(%q) after the repair = %+v, %v; want the fetched token", key, got, err)
		}
	}
}

// TestSetRefusesEmptyValue tests that Set refuses a token with no value
// (which means "no token") and writes nothing.
func TestSetRefusesEmptyValue(t *testing.T) {
	needServer(t)
	s := newStore(t, testDSN, nil)
	key := uniqueKey(t)
	if err := s.Set(context.Background(), key, core.Token{ExpiresAt: time.Now()}); err == nil {
		t.Errorf("Set(%q) of an empty token: nil error, want one", key)
	}
	if _, err := s.Get(context.Background(), key); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("Get(%q) after a refused Set: %v, want ErrNotFound", key, err)
	}
}

// TestPgErrorReachable tests that a PostgreSQL error on a write, here a
// CHECK constraint the team added to the table, is returned with the
// *pgconn.PgError reachable through errors.As, and that a write the
// server refuses in Refresh is not mistaken for a lost lock.
func TestPgErrorReachable(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	pool := newPool(t, testDSN, nil)
	name := pgx.Identifier{fmt.Sprintf("checked_%08x", rand.Uint32())}
	s := newStoreOn(t, pool, pgstore.WithTable(name))
	mustExec(t, pool, `ALTER TABLE `+name.Sanitize()+` ADD CONSTRAINT no_forbidden CHECK (value <> 'forbidden')`)
	t.Cleanup(func() { mustExec(t, pool, `DROP TABLE `+name.Sanitize()) })

	key := uniqueKey(t)
	err := s.Set(ctx, key, tok("forbidden"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
		t.Errorf("Set(%q) violating a CHECK: %v, want an error wrapping *pgconn.PgError 23514", key, err)
	}
	_, err = s.Refresh(ctx, key, "", func(context.Context) (core.Token, error) { return tok("forbidden"), nil })
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" || errors.Is(err, core.ErrLockLost) {
		t.Errorf("Refresh(%q) whose write violates a CHECK: %v, want an error wrapping *pgconn.PgError 23514 and not ErrLockLost", key, err)
	}
	// The lock was released with the failed transaction.
	got, err := s.Refresh(ctx, key, "", func(context.Context) (core.Token, error) { return tok("allowed"), nil })
	if err != nil || got.Value != "allowed" {
		t.Errorf("Refresh(%q) after a refused write = %+v, %v; want the fetched token", key, got, err)
	}
}

// TestSessionDefaultsDoNotBreakTheLock tests that the store does not rely on
// the session's defaults: with default_transaction_isolation=serializable
// and a short lock_timeout and statement_timeout (a waiter must keep
// waiting past them), a waiter returns the holder's token without fetching
// once the holder commits.
func TestSessionDefaultsDoNotBreakTheLock(t *testing.T) {
	needServer(t)
	cfg := func(c *pgxpool.Config) {
		c.ConnConfig.RuntimeParams["default_transaction_isolation"] = "serializable"
		c.ConnConfig.RuntimeParams["lock_timeout"] = "50ms"
		c.ConnConfig.RuntimeParams["statement_timeout"] = "100ms"
	}
	waiterApp := fmt.Sprintf("pgstore-defaults-%08x", rand.Uint32())
	// The holder's lease cannot run out during the test, however slow the
	// machine: the test is about the waiter.
	a := newStore(t, testDSN, cfg, pgstore.WithLease(faultLease))
	b := newStore(t, testDSN, func(c *pgxpool.Config) { cfg(c); withAppName(waiterApp)(c) })
	admin := newPool(t, testDSN, nil)
	ctx := context.Background()
	key := uniqueKey(t)
	if err := a.Set(ctx, key, tok("old")); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
	h := startHolder(t, a, key, "old")
	waiter := make(chan result, 1)
	go func() {
		got, err := b.Refresh(ctx, key, "old", failFetch(t))
		waiter <- result{got, err}
	}()
	// The waiter must outlast both timeouts a few times over, waiting, before
	// the holder commits: the server shows it queued on the lock, then it is
	// still waiting (and still queued) 3 statement_timeouts later.
	const outlast = 300 * time.Millisecond
	waiterReturned := func() {
		select {
		case r := <-waiter:
			t.Fatalf("waiter Refresh(%q) returned %+v, %v while the holder held the lock", key, r.tok, r.err)
		default:
		}
	}
	queued := func() (bool, error) {
		waiterReturned()
		n, err := waitingSessions(ctx, admin, waiterApp)
		return n == 1, err
	}
	eventually(t, 30*time.Second, "the waiter queues on the lock", queued)
	select {
	case r := <-waiter:
		t.Fatalf("waiter Refresh(%q) returned %+v, %v while the holder held the lock", key, r.tok, r.err)
	case <-time.After(outlast): // how long the waiter must keep waiting, not a synchronisation
	}
	eventually(t, 30*time.Second, "the waiter is still queued on the lock after "+outlast.String(), queued)
	if r := h.finish(tok("fresh")); r.err != nil {
		t.Fatalf("holder Refresh(%q): %v", key, r.err)
	}
	select {
	case r := <-waiter:
		if r.err != nil || r.tok.Value != "fresh" {
			t.Errorf("waiter Refresh(%q) = %+v, %v; want the holder's token", key, r.tok, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("waiter Refresh(%q) still waiting 10s after the holder committed", key)
	}
}
