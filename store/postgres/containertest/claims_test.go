package containertest_test

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wechatconf/wechatconf/core"
	pgstore "github.com/wechatconf/wechatconf/store/postgres"
)

// claimsTable returns the name of a claims table of t's own, dropped (as
// admin) when t ends, so that counting its rows counts t's claims only.
func claimsTable(t testing.TB, admin *pgxpool.Pool) pgx.Identifier {
	t.Helper()
	name := pgx.Identifier{fmt.Sprintf("claims_%08x", mrand.Uint32())}
	t.Cleanup(func() { mustExec(t, admin, `DROP TABLE IF EXISTS `+name.Sanitize()) })
	return name
}

// claimRows counts the rows of the claims table: all of them, and those
// expired on the server's clock.
func claimRows(t testing.TB, pool *pgxpool.Pool, table pgx.Identifier) (all, expired int) {
	t.Helper()
	err := pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE expires_at <= clock_timestamp()) FROM `+table.Sanitize()).Scan(&all, &expired)
	if err != nil {
		t.Fatalf("counting the rows of %s: %v", table.Sanitize(), err)
	}
	return all, expired
}

// claim calls s.Claim and fails t on an error.
func claim(t testing.TB, s *pgstore.Store, key, value string, ttl time.Duration) string {
	t.Helper()
	held, err := s.Claim(context.Background(), key, value, ttl)
	if err != nil {
		t.Fatalf("Claim(%q, %q, %v): %v", key, value, ttl, err)
	}
	return held
}

// TestClaimOneWinner tests that among 64 claimers of a key on 8 stores,
// each over a pool of its own (8 "processes" × 8 connections), started
// together, exactly one gets its own value back and every other gets the
// winner's: on a key that has no row, and on a key whose row holds a claim
// that expired (every claimer then takes the ON CONFLICT path and races on
// the row lock). It does so directly and through PgBouncer in transaction
// mode.
func TestClaimOneWinner(t *testing.T) {
	needServer(t)
	t.Run("Direct", func(t *testing.T) { testClaimOneWinner(t, testDSN, nil, 10) })
	// Session defaults the store must not rely on: under serializable a
	// claimer that loses the race on a row gets serialization failures,
	// and one queued on the row lock outlasts lock_timeout (statement_timeout
	// is long enough for New's statements on a loaded machine). Every
	// claimer of a key rewrites its row, so under serializable the 64
	// claimers of a round cost some 64²/2 attempts: 3 rounds.
	t.Run("SessionDefaults", func(t *testing.T) {
		testClaimOneWinner(t, testDSN, func(c *pgxpool.Config) {
			c.ConnConfig.RuntimeParams["default_transaction_isolation"] = "serializable"
			c.ConnConfig.RuntimeParams["lock_timeout"] = "5ms"
			c.ConnConfig.RuntimeParams["statement_timeout"] = "2s"
		}, 3)
	})
	t.Run("PgBouncer", func(t *testing.T) {
		dsn := startPgBouncer(t)
		testClaimOneWinner(t, dsn, simpleProtocol, 10)
	})
}

// testClaimOneWinner runs rounds races on fresh keys and as many on keys
// whose row holds an expired claim.
func testClaimOneWinner(t *testing.T, dsn string, cfg func(*pgxpool.Config), rounds int) {
	const stores, perStore = 8, 8
	admin := newPool(t, testDSN, nil)
	table := claimsTable(t, admin)
	ss := make([]*pgstore.Store, stores)
	for i := range ss {
		ss[i] = newStore(t, dsn, func(c *pgxpool.Config) {
			c.MaxConns = perStore
			if cfg != nil {
				cfg(c)
			}
		}, pgstore.WithClaimsTable(table))
	}
	claim(t, ss[0], uniqueKey(t), "creates-the-table", time.Hour)

	for _, expired := range []bool{false, true} {
		for r := range rounds {
			key := uniqueKey(t)
			if expired {
				mustExec(t, admin, `INSERT INTO `+table.Sanitize()+` VALUES ($1, 'expired-holder', clock_timestamp() - interval '1 millisecond')`, key)
			}
			var (
				start = make(chan struct{})
				wg    sync.WaitGroup
				held  = make([]string, stores*perStore)
				errs  = make([]error, stores*perStore)
			)
			for i := range held {
				wg.Go(func() {
					<-start
					held[i], errs[i] = ss[i%stores].Claim(context.Background(), key, fmt.Sprintf("claimer-%d", i), time.Hour)
				})
			}
			close(start)
			wg.Wait()
			winners := 0
			winner := ""
			for i, h := range held {
				switch {
				case errs[i] != nil:
					t.Errorf("round %d (expired row %v): Claim(%q) by claimer %d: %v", r, expired, key, i, errs[i])
				case h == fmt.Sprintf("claimer-%d", i):
					winners++
					winner = h
				}
			}
			if winners != 1 {
				t.Fatalf("round %d (expired row %v): %d of %d concurrent claimers of %q got their own value back, want exactly 1", r, expired, winners, len(held), key)
			}
			for i, h := range held {
				if errs[i] == nil && h != winner {
					t.Errorf("round %d (expired row %v): claimer %d got %q, want the winner's %q", r, expired, i, h, winner)
				}
			}
		}
	}
}

// TestClaimExpiresOnServerClock tests that a claim's life is judged on the
// server's clock: a claim made for an hour ends an hour after the server's
// clock_timestamp() at the write; while it is live others get its value and
// its holder can swap it; once the server's clock is past its expires_at
// (the row moved into the server's past, then a 1 ms claim left to expire)
// another claimer wins and the former holder's late CompareAndSwapClaim
// neither swaps nor releases nor brings it back.
func TestClaimExpiresOnServerClock(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	admin := newPool(t, testDSN, nil)
	table := claimsTable(t, admin)
	s := newStore(t, testDSN, nil, pgstore.WithClaimsTable(table))
	key := uniqueKey(t)

	if got := claim(t, s, key, "a", time.Hour); got != "a" {
		t.Fatalf("Claim(%q, a) on a fresh key = %q, want a", key, got)
	}
	var left time.Duration
	if err := admin.QueryRow(ctx, `SELECT (extract(epoch FROM expires_at - clock_timestamp()) * 1e6)::bigint * 1000 FROM `+table.Sanitize()+` WHERE key = $1`, key).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left <= 59*time.Minute || left > time.Hour {
		t.Errorf("claim for 1h: expires_at is %v after the server's clock, want within (59m, 1h]", left)
	}
	if got := claim(t, s, key, "b", time.Hour); got != "a" {
		t.Errorf("Claim(%q, b) while a's claim is live = %q, want a", key, got)
	}

	// Expired on the server's clock by 1 ms, with the row still there.
	mustExec(t, admin, `UPDATE `+table.Sanitize()+` SET expires_at = clock_timestamp() - interval '1 millisecond' WHERE key = $1`, key)
	if ok, err := s.CompareAndSwapClaim(ctx, key, "a", "a-again", time.Hour); err != nil || ok {
		t.Errorf("CompareAndSwapClaim(%q, a, a-again) after a's claim expired = %v, %v; want false, nil", key, ok, err)
	}
	if ok, err := s.CompareAndSwapClaim(ctx, key, "a", "", 0); err != nil || ok {
		t.Errorf("CompareAndSwapClaim(%q, a, \"\") after a's claim expired = %v, %v; want false, nil", key, ok, err)
	}
	if got := claim(t, s, key, "b", time.Hour); got != "b" {
		t.Errorf("Claim(%q, b) after a's claim expired = %q, want b", key, got)
	}
	if got := claim(t, s, key, "c", time.Hour); got != "b" {
		t.Errorf("Claim(%q, c) while b's claim is live = %q, want b", key, got)
	}

	// A claim for 1 ms, left to expire on the server's clock.
	short := uniqueKey(t)
	if got := claim(t, s, short, "x", time.Millisecond); got != "x" {
		t.Fatalf("Claim(%q, x, 1ms) = %q, want x", short, got)
	}
	eventually(t, 10*time.Second, "the 1 ms claim expired on the server's clock", func() (bool, error) {
		var done bool
		err := admin.QueryRow(ctx, `SELECT expires_at <= clock_timestamp() FROM `+table.Sanitize()+` WHERE key = $1`, short).Scan(&done)
		return done, err
	})
	if ok, err := s.CompareAndSwapClaim(ctx, short, "x", "x-again", time.Hour); err != nil || ok {
		t.Errorf("CompareAndSwapClaim(%q, x, x-again) after x's claim expired = %v, %v; want false, nil", short, ok, err)
	}
	if got := claim(t, s, short, "y", time.Hour); got != "y" {
		t.Errorf("Claim(%q, y) after x's 1 ms claim expired = %q, want y", short, got)
	}
}

// TestClaimSwapAndRelease tests CompareAndSwapClaim on a live claim: a
// wrong old value changes nothing; the right one replaces the value and
// gives it the new ttl from the server's clock; "" deletes the row, after
// which another claimer wins and the released value cannot be swapped.
func TestClaimSwapAndRelease(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	admin := newPool(t, testDSN, nil)
	table := claimsTable(t, admin)
	s := newStore(t, testDSN, nil, pgstore.WithClaimsTable(table))
	key := uniqueKey(t)

	claim(t, s, key, "a", time.Minute)
	if ok, err := s.CompareAndSwapClaim(ctx, key, "not-a", "b", time.Hour); err != nil || ok {
		t.Errorf("CompareAndSwapClaim(%q, not-a, b) = %v, %v; want false, nil", key, ok, err)
	}
	if ok, err := s.CompareAndSwapClaim(ctx, key, "a", "done", 2*time.Hour); err != nil || !ok {
		t.Fatalf("CompareAndSwapClaim(%q, a, done, 2h) = %v, %v; want true, nil", key, ok, err)
	}
	var left time.Duration
	if err := admin.QueryRow(ctx, `SELECT (extract(epoch FROM expires_at - clock_timestamp()) * 1e6)::bigint * 1000 FROM `+table.Sanitize()+` WHERE key = $1`, key).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left <= 119*time.Minute || left > 2*time.Hour {
		t.Errorf("after a swap with ttl 2h: expires_at is %v after the server's clock, want within (119m, 2h]", left)
	}
	if got := claim(t, s, key, "b", time.Hour); got != "done" {
		t.Errorf("Claim(%q, b) after the swap = %q, want done", key, got)
	}
	if ok, err := s.CompareAndSwapClaim(ctx, key, "done", "", 0); err != nil || !ok {
		t.Fatalf("CompareAndSwapClaim(%q, done, \"\") = %v, %v; want true, nil", key, ok, err)
	}
	if all, _ := claimRows(t, admin, table); all != 0 {
		t.Errorf("after the release: %d rows in the claims table, want 0 (released claims are deleted)", all)
	}
	if ok, err := s.CompareAndSwapClaim(ctx, key, "done", "done-again", time.Hour); err != nil || ok {
		t.Errorf("CompareAndSwapClaim(%q, done, done-again) after the release = %v, %v; want false, nil", key, ok, err)
	}
	if got := claim(t, s, key, "c", time.Hour); got != "c" {
		t.Errorf("Claim(%q, c) after the release = %q, want c", key, got)
	}
}

// TestClaimCleanupBounded tests that expired claims are deleted in batches
// of at most pgstore.ClaimCleanupBatch and live ones never: 5,000 expired
// rows among 300 live ones take DeleteExpiredClaims ten full batches and
// an empty one; and a new Store's Claims delete them as they go, a batch
// per Claim while a backlog remains, none touching more than a batch.
func TestClaimCleanupBounded(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	const expired, live = 5000, 300
	admin := newPool(t, testDSN, nil)
	table := claimsTable(t, admin)
	fill := func() {
		t.Helper()
		mustExec(t, admin, `INSERT INTO `+table.Sanitize()+` SELECT 'expired/' || g || '/' || $1::text, 'v', clock_timestamp() - g * interval '1 second' FROM generate_series(1, $2::int) g`,
			fmt.Sprint(mrand.Uint32()), expired)
	}
	s := newStore(t, testDSN, nil, pgstore.WithClaimsTable(table))
	if n, err := s.DeleteExpiredClaims(ctx); err != nil || n != 0 {
		t.Fatalf("DeleteExpiredClaims with no claims table yet = %d, %v; want 0, nil", n, err)
	}
	for i := range live {
		claim(t, s, fmt.Sprintf("live/%d", i), "v", time.Hour)
	}

	t.Run("DeleteExpiredClaims", func(t *testing.T) {
		fill()
		total, calls := 0, 0
		for {
			n, err := s.DeleteExpiredClaims(ctx)
			if err != nil {
				t.Fatalf("DeleteExpiredClaims: %v", err)
			}
			if n > pgstore.ClaimCleanupBatch {
				t.Errorf("DeleteExpiredClaims deleted %d rows in one call, want at most %d", n, pgstore.ClaimCleanupBatch)
			}
			total += n
			if calls++; n == 0 || calls > 2*expired/pgstore.ClaimCleanupBatch {
				break
			}
		}
		if want := expired/pgstore.ClaimCleanupBatch + 1; total != expired || calls != want {
			t.Errorf("DeleteExpiredClaims until 0: %d rows in %d calls, want %d in %d", total, calls, expired, want)
		}
		if all, exp := claimRows(t, admin, table); all != live || exp != 0 {
			t.Errorf("after the clean-up: %d rows, %d expired; want the %d live ones only", all, exp, live)
		}
	})

	t.Run("ByClaims", func(t *testing.T) {
		fill()
		s := newStore(t, testDSN, nil, pgstore.WithClaimsTable(table)) // its first Claim cleans up
		_, before := claimRows(t, admin, table)
		for i := 0; before > 0; i++ {
			if i > 2*expired/pgstore.ClaimCleanupBatch {
				t.Fatalf("after %d Claims, %d expired rows remain", i, before)
			}
			claim(t, s, uniqueKey(t), "v", time.Hour)
			_, after := claimRows(t, admin, table)
			if d := before - after; d > pgstore.ClaimCleanupBatch || d <= 0 {
				t.Errorf("Claim %d with %d expired rows left: deleted %d, want 1 to %d", i, before, d, pgstore.ClaimCleanupBatch)
			}
			before = after
		}
	})
}

// TestClaimValuesKeptWhole tests that claim values are kept and compared
// whole, bytewise: backslash sequences that an escape format would decode,
// quotes, control characters, and letters that a linguistic collation
// would order or compare otherwise; directly and with the simple protocol,
// where pgx writes the parameters into the SQL. A value that is not UTF-8
// is refused before any statement.
func TestClaimValuesKeptWhole(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	values := []string{`\x41\\`, `E'\n'`, "'; DROP TABLE x; --", "\x01\x7f\r\n", "令牌", "Straße", "e\u0301"}
	for _, mode := range []struct {
		name string
		cfg  func(*pgxpool.Config)
	}{{"Extended", nil}, {"Simple", simpleProtocol}} {
		t.Run(mode.name, func(t *testing.T) {
			s := newStore(t, testDSN, mode.cfg)
			if _, err := s.Claim(ctx, uniqueKey(t), "bad-utf8-\xff", time.Hour); err == nil {
				t.Errorf("Claim of a value that is not UTF-8: nil error, want it refused")
			}
			for _, v := range values {
				key := uniqueKey(t)
				if got := claim(t, s, key, v, time.Hour); got != v {
					t.Errorf("Claim(%q, %q) on a fresh key = %q, want it back whole", key, v, got)
				}
				if got := claim(t, s, key, "other", time.Hour); got != v {
					t.Errorf("Claim(%q, other) = %q, want the held %q", key, got, v)
				}
				shorter := strings.ToValidUTF8(v[:len(v)-1], "")
				if ok, err := s.CompareAndSwapClaim(ctx, key, shorter, "x", time.Hour); err != nil || ok {
					t.Errorf("CompareAndSwapClaim(%q, %q, x) with the held value %q = %v, %v; want false, nil", key, shorter, v, ok, err)
				}
				if ok, err := s.CompareAndSwapClaim(ctx, key, v, v+"2", time.Hour); err != nil || !ok {
					t.Errorf("CompareAndSwapClaim(%q, %q, %q) = %v, %v; want true, nil", key, v, v+"2", ok, err)
				}
				if ok, err := s.CompareAndSwapClaim(ctx, key, v+"2", "", 0); err != nil || !ok {
					t.Errorf("release of %q holding %q = %v, %v; want true, nil", key, v+"2", ok, err)
				}
			}
		})
	}
}

// TestClaimsNotListed tests that claims live apart from tokens: ListKeys
// does not list a claim, and a claim and a token under the same key do not
// see each other.
func TestClaimsNotListed(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	s := newStore(t, testDSN, nil)
	prefix := uniqueKey(t) + "/"
	claim(t, s, prefix+"claimed", "claim-value", time.Hour)
	claim(t, s, prefix+"both", "claim-value", time.Hour)
	if keys, err := s.ListKeys(ctx, prefix); err != nil || len(keys) != 0 {
		t.Errorf("ListKeys(%q) with two claims and no token = %q, %v; want none", prefix, keys, err)
	}
	if err := s.Set(ctx, prefix+"both", tok("token-value")); err != nil {
		t.Fatal(err)
	}
	if keys, err := s.ListKeys(ctx, prefix); err != nil || len(keys) != 1 || keys[0] != prefix+"both" {
		t.Errorf("ListKeys(%q) with a token = %q, %v; want the token's key only", prefix, keys, err)
	}
	if got, err := s.Get(ctx, prefix+"claimed"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("Get(%q) of a claim's key = %+v, %v; want core.ErrNotFound", prefix+"claimed", got, err)
	}
	if got := claim(t, s, prefix+"both", "other", time.Hour); got != "claim-value" {
		t.Errorf("Claim(%q) beside a token = %q, want the claim's claim-value", prefix+"both", got)
	}
	if got, err := s.Get(ctx, prefix+"both"); err != nil || got.Value != "token-value" {
		t.Errorf("Get(%q) beside a claim = %+v, %v; want the token", prefix+"both", got, err)
	}
}

// TestClaimsTableCreation tests the claims table's lazy creation: New does
// not create it; the first Claims of several stores at once create it
// once, with its index on expires_at, and all succeed; with
// WithCreateTable(false) a Claim on a missing table fails with an error
// that names the DDL and creates nothing; a role that may not create
// tables gets an error that says so, and claims once the owner has created
// the table and granted it.
func TestClaimsTableCreation(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	admin := newPool(t, testDSN, nil)
	exists := func(name pgx.Identifier) bool {
		t.Helper()
		var ok bool
		if err := admin.QueryRow(ctx, `SELECT to_regclass($1::text) IS NOT NULL`, name.Sanitize()).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}

	t.Run("Lazy", func(t *testing.T) {
		table := claimsTable(t, admin)
		ss := make([]*pgstore.Store, 4)
		for i := range ss {
			ss[i] = newStore(t, testDSN, nil, pgstore.WithClaimsTable(table))
		}
		if exists(table) {
			t.Fatalf("claims table %s exists after New, want it created by the first claim", table.Sanitize())
		}
		var wg sync.WaitGroup
		errs := make([]error, len(ss))
		for i, s := range ss {
			wg.Go(func() { _, errs[i] = s.Claim(ctx, uniqueKey(t), "v", time.Hour) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("first Claim of store %d on a missing table: %v", i, err)
			}
		}
		var indexed bool
		if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = $1::text::regclass AND a.attname = 'expires_at')`, table.Sanitize()).Scan(&indexed); err != nil || !indexed {
			t.Errorf("claims table %s: index on expires_at %v, %v; want one", table.Sanitize(), indexed, err)
		}
	})

	t.Run("NoCreate", func(t *testing.T) {
		table := claimsTable(t, admin)
		s := newStore(t, testDSN, nil, pgstore.WithClaimsTable(table), pgstore.WithCreateTable(false))
		_, err := s.Claim(ctx, uniqueKey(t), "v", time.Hour)
		var pgErr *pgconn.PgError
		if err == nil || !strings.Contains(err.Error(), "DDL") || !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
			t.Errorf("Claim with WithCreateTable(false) and no claims table: %v; want an error naming the DDL, with the 42P01 PgError reachable", err)
		}
		if exists(table) {
			t.Errorf("claims table %s created despite WithCreateTable(false)", table.Sanitize())
		}
	})

	t.Run("NoCreatePrivilege", func(t *testing.T) {
		role, pool := dmlRole(t, admin)
		table := claimsTable(t, admin)
		newStoreOn(t, admin) // the token table exists
		mustExec(t, admin, `GRANT SELECT, INSERT, UPDATE ON `+pgx.Identifier{pgstore.DefaultTable}.Sanitize()+` TO `+pgx.Identifier{role}.Sanitize())
		s := newStoreOn(t, pool, pgstore.WithClaimsTable(table))
		_, err := s.Claim(ctx, uniqueKey(t), "v", time.Hour)
		var pgErr *pgconn.PgError
		if err == nil || !strings.Contains(err.Error(), "DDL") || !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("Claim as role %s, which may not create the claims table: %v; want an error naming the DDL, with the 42501 PgError reachable", role, err)
		}
		claim(t, newStoreOn(t, admin, pgstore.WithClaimsTable(table)), uniqueKey(t), "v", time.Hour) // the owner creates it
		mustExec(t, admin, `GRANT SELECT, INSERT, UPDATE, DELETE ON `+table.Sanitize()+` TO `+pgx.Identifier{role}.Sanitize())
		key := uniqueKey(t)
		if got := claim(t, s, key, "by-role", time.Hour); got != "by-role" {
			t.Errorf("Claim as role %s once granted = %q, want by-role", role, got)
		}
		if ok, err := s.CompareAndSwapClaim(ctx, key, "by-role", "", 0); err != nil || !ok {
			t.Errorf("release as role %s = %v, %v; want true, nil", role, ok, err)
		}
	})
}

// TestClaimHonoursContext tests that a Claim or CompareAndSwapClaim waiting
// for a row another transaction holds locked returns when its ctx ends,
// with an error that wraps the context's; that what such a call leaves
// behind is one of the outcomes the contract allows (an error means
// nothing is known: the server may still run the statement once the lock
// frees); and that the checks run first.
func TestClaimHonoursContext(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	admin := newPool(t, testDSN, nil)
	table := claimsTable(t, admin)
	s := newStore(t, testDSN, nil, pgstore.WithClaimsTable(table))
	key := uniqueKey(t)
	claim(t, s, key, "a", time.Hour)

	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT FROM `+table.Sanitize()+` WHERE key = $1 FOR UPDATE`, key); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := s.Claim(short, key, "b", time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Claim(%q) blocked on a locked row until its ctx's deadline: %v; want context.DeadlineExceeded", key, err)
	}
	short, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := s.CompareAndSwapClaim(short, key, "a", "a2", time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CompareAndSwapClaim(%q) blocked on a locked row until its ctx's deadline: %v; want context.DeadlineExceeded", key, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// The abandoned statements may land now: the swap to a2 or not, the
	// claim of b never (a or a2 is live).
	if got := claim(t, s, key, "b", time.Hour); got != "a" && got != "a2" {
		t.Errorf("Claim(%q, b) after the lock = %q, want a, or a2 if the abandoned swap landed", key, got)
	}

	done, cancelDone := context.WithCancel(ctx)
	cancelDone()
	if _, err := s.Claim(done, key, "b", time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Claim with a cancelled ctx: %v; want context.Canceled", err)
	}
	for _, c := range []struct {
		value string
		ttl   time.Duration
	}{{"", time.Hour}, {"v", 0}, {"v", time.Microsecond}, {"nul\x00", time.Hour}, {strings.Repeat("v", core.MaxClaimValueLen+1), time.Hour}} {
		if _, err := s.Claim(ctx, key, c.value, c.ttl); err == nil {
			t.Errorf("Claim(%q, %q, %v): nil error, want the argument refused", key, c.value, c.ttl)
		}
	}
}
