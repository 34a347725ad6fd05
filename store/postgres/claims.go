package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wechatconf/wechatconf/core"
)

// Store keeps claims natively: see the package documentation, section
// Claims.
var _ core.ClaimStore = (*Store)(nil)

// DefaultClaimsTable is the table a Store keeps its claims in when it is
// built without WithClaimsTable: in the schema of the token table when
// WithTable names one, otherwise resolved through the connection's
// search_path, as the token table is.
const DefaultClaimsTable = "wechatconf_claims"

// ClaimCleanupBatch is the most expired claims one clean-up deletes: one
// statement of DeleteExpiredClaims, or the clean-up a Claim runs now and
// then (see the package documentation, section Claims).
const ClaimCleanupBatch = 500

// ClaimCleanupInterval is how often a Store that makes claims deletes a
// batch of expired ones, at the least: a Claim runs the clean-up after its
// own statement when this long has passed since the Store's previous
// clean-up, or at once when that one deleted a full batch (so that the
// clean-up keeps up with any rate of claims).
const ClaimCleanupInterval = 10 * time.Second

// WithClaimsTable sets the table the claims are kept in (default
// DefaultClaimsTable, in the token table's schema when WithTable names
// one). It takes a name as WithTable does, with the same rules; it must
// not be the token table. Like the token table, it is created when it is
// missing unless WithCreateTable(false) is given, but lazily: by the first
// Claim or CompareAndSwapClaim that finds it missing, so that a Store that
// never claims needs no claims table and no privilege on one.
func WithClaimsTable(name pgx.Identifier) Option {
	return func(o *options) { o.claims = append(pgx.Identifier(nil), name...) }
}

// claimsTable resolves and checks o.claims.
func (o *options) claimsTable() error {
	if o.claims == nil {
		o.claims = pgx.Identifier{DefaultClaimsTable}
		if len(o.table) == 2 {
			o.claims = pgx.Identifier{o.table[0], DefaultClaimsTable}
		}
	}
	if err := validateTable(o.claims); err != nil {
		return fmt.Errorf("claims %w", err)
	}
	if o.claims.Sanitize() == o.table.Sanitize() {
		return fmt.Errorf("claims table %q is the token table", []string(o.claims))
	}
	return nil
}

// claimState is a Store's claims table, its statements, and the schedule
// of its clean-up.
type claimState struct {
	table  string // sanitized identifier
	index  string // its index on expires_at, sanitized, without schema
	create bool   // create the table when a statement finds it missing

	claimSQL   string
	swapSQL    string
	releaseSQL string
	cleanSQL   string

	born time.Time    // the Store's creation, for a monotonic clock
	next atomic.Int64 // when the next clean-up is due, as time.Since(born)
	busy atomic.Bool  // a clean-up of this Store is running
}

// init builds the statements over the table id. Values are text in the
// "C" collation, so compared bytewise (core.CheckClaim lets only UTF-8
// without NUL through, which text holds whole). Times are the server's:
// clock_timestamp(), the time at which each expression is evaluated, never
// the client's clock and never the transaction's start. ttl travels as a
// bigint of microseconds (timestamptz's resolution).
func (c *claimState) init(id pgx.Identifier, create bool) {
	const ttl = `$3::bigint * interval '1 microsecond'`
	t := id.Sanitize()
	// PostgreSQL truncates a name longer than 63 bytes, the same way every
	// time, so IF NOT EXISTS still finds the index it made.
	c.table, c.index, c.create = t, pgx.Identifier{id[len(id)-1] + "_expires_at_idx"}.Sanitize(), create
	c.born = time.Now()
	// One statement, one round trip. A key with no row is inserted. A key
	// with a row takes the ON CONFLICT path, which locks the row (its
	// latest version: a concurrent claimer waits for the first one to
	// commit and then judges the row the first one wrote) and rewrites
	// it: with the new claim when the row has expired, with itself when
	// it is live. The server's clock is read once, after the lock, in the
	// sub-SELECT, so the two columns follow the same judgement (two
	// clock_timestamp() calls could see the claim live for value and
	// expired for expires_at). RETURNING gives what the key holds after
	// the statement.
	c.claimSQL = `INSERT INTO ` + t + ` AS c (key, value, expires_at) VALUES ($1, $2, clock_timestamp() + ` + ttl + `)
ON CONFLICT (key) DO UPDATE SET (value, expires_at) = (
	SELECT CASE WHEN c.expires_at <= clock.t THEN excluded.value ELSE c.value END,
	       CASE WHEN c.expires_at <= clock.t THEN clock.t + ` + ttl + ` ELSE c.expires_at END
	FROM (SELECT clock_timestamp() AS t) AS clock)
RETURNING value`
	// The compare and swap and the release are single statements whose
	// WHERE is the compare: a concurrent writer of the row makes them
	// wait, and READ COMMITTED re-evaluates the WHERE on the row it wrote.
	c.swapSQL = `UPDATE ` + t + ` SET value = $2, expires_at = clock_timestamp() + ` + ttl + `
WHERE key = $1 AND value = $4 AND expires_at > clock_timestamp()`
	c.releaseSQL = `DELETE FROM ` + t + ` WHERE key = $1 AND value = $2 AND expires_at > clock_timestamp()`
	// One batch of clean-up: the oldest expired rows, by the index on
	// expires_at (statement_timestamp() is stable, so the planner can use
	// it as an index bound, which clock_timestamp() is not), at most
	// ClaimCleanupBatch of them, skipping rows another transaction has
	// locked (a claimer, or another Store's clean-up), then deleted by
	// their ctid (a TID scan), checked once more.
	c.cleanSQL = `DELETE FROM ` + t + ` WHERE ctid = ANY (ARRAY(
	SELECT ctid FROM ` + t + ` WHERE expires_at <= statement_timestamp()
	ORDER BY expires_at LIMIT ` + strconv.Itoa(ClaimCleanupBatch) + ` FOR UPDATE SKIP LOCKED))
AND expires_at <= statement_timestamp()`
}

// ddl returns the statements that create the claims table and its index
// (in the table's schema) when they are missing.
func (c *claimState) ddl() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + c.table + ` (
	key        text COLLATE "C" PRIMARY KEY,
	value      text COLLATE "C" NOT NULL,
	expires_at timestamptz NOT NULL
)`,
		`CREATE INDEX IF NOT EXISTS ` + c.index + ` ON ` + c.table + ` (expires_at)`,
	}
}

// micros is d in whole microseconds, rounded up.
func micros(d time.Duration) int64 {
	us := int64(d / time.Microsecond)
	if d%time.Microsecond != 0 {
		us++
	}
	return us
}

// Claim implements core.ClaimStore in one statement, one round trip (see
// the package documentation, section Claims), judged on the PostgreSQL
// server's clock; ttl is rounded up to a whole microsecond. Now and then
// (at most once per ClaimCleanupInterval, more often while there is a
// backlog) it then deletes one batch of expired claims, in a statement of
// its own whose failure it ignores: the claim is made either way.
func (s *Store) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	if err := core.CheckClaim(ctx, key, value, ttl, false); err != nil {
		return "", fmt.Errorf("pgstore: claim: %w", err)
	}
	var held string
	err := s.onClaims(ctx, func() error {
		return s.pool.QueryRow(ctx, s.claims.claimSQL, key, value, micros(ttl)).Scan(&held)
	})
	if err != nil {
		return "", fmt.Errorf("pgstore: claim %q: %w", key, err)
	}
	s.maybeCleanClaims(ctx)
	return held, nil
}

// CompareAndSwapClaim implements core.ClaimStore in one statement: an
// UPDATE, or a DELETE when value is "", whose WHERE requires key to hold
// old and be live on the server's clock; swapped is whether it changed a
// row. ttl is rounded up to a whole microsecond.
func (s *Store) CompareAndSwapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	if err := core.CheckClaim(ctx, key, old, time.Millisecond, false); err != nil {
		return false, fmt.Errorf("pgstore: compare and swap claim: %w", err)
	}
	if err := core.CheckClaim(ctx, key, value, ttl, true); err != nil {
		return false, fmt.Errorf("pgstore: compare and swap claim: %w", err)
	}
	var tag pgconn.CommandTag
	err := s.onClaims(ctx, func() (err error) {
		if value == "" {
			tag, err = s.pool.Exec(ctx, s.claims.releaseSQL, key, old)
		} else {
			tag, err = s.pool.Exec(ctx, s.claims.swapSQL, key, value, micros(ttl), old)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("pgstore: compare and swap claim %q: %w", key, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DeleteExpiredClaims deletes at most ClaimCleanupBatch expired claims, the
// oldest first, in one statement, and returns how many it deleted: fewer
// than ClaimCleanupBatch means that none was left (apart from rows other
// transactions held locked). Claim calls it now and then, so an
// application need not; it is for an operator's job that wants the table
// emptier, or for a fleet that claims rarely. A missing claims table holds
// nothing: 0 and no error, and the table is not created.
func (s *Store) DeleteExpiredClaims(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("pgstore: delete expired claims: %w", core.ContextError(ctx, err))
	}
	tag, err := s.pool.Exec(ctx, s.claims.cleanSQL)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return int(tag.RowsAffected()), nil
	case ctx.Err() == nil && errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table
		return 0, nil
	}
	return 0, fmt.Errorf("pgstore: delete expired claims from %s: %w", s.claims.table, core.ContextError(ctx, err))
}

// maybeCleanClaims runs one DeleteExpiredClaims when one is due, unless one
// of this Store is running already: ClaimCleanupInterval after the previous
// one, or at once when the previous one deleted a full batch. Its error is
// dropped (a Claim it follows succeeded); the next is then due after the
// interval, so a clean-up that keeps failing costs one statement per
// interval.
func (s *Store) maybeCleanClaims(ctx context.Context) {
	c := &s.claims
	now := int64(time.Since(c.born))
	if now < c.next.Load() || !c.busy.CompareAndSwap(false, true) {
		return
	}
	defer c.busy.Store(false)
	n, err := s.DeleteExpiredClaims(ctx)
	next := now + int64(ClaimCleanupInterval)
	if err == nil && n >= ClaimCleanupBatch {
		next = now // a backlog: the next Claim deletes another batch
	}
	c.next.Store(next)
}

// claimAttempts bounds how many times onClaims runs a statement that the
// server ended for reasons of its own (see retryable), besides ctx.
const claimAttempts = 1000

// retryable reports whether code says that the server ended a statement,
// which was rolled back whole (every claims statement is a transaction of
// its own), for reasons that another attempt may not meet: a serialization
// failure (a session whose default_transaction_isolation is repeatable
// read or serializable, racing another claimer of the key), a deadlock, a
// role's or database's lock_timeout or statement_timeout while waiting for
// a row another claimer holds, or an operator's pg_cancel_backend.
func retryable(code string) bool {
	switch code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"55P03", // lock_not_available
		"57014": // query_canceled
		return true
	}
	return false
}

// onClaims runs the statement f on the claims table. When the table is
// missing it creates it (unless WithCreateTable(false) was given) and runs
// f again; when the server ended f for a reason that is not f's (see
// retryable), it runs f again, up to claimAttempts times in all, while ctx
// lasts. A statement that failed with such an error was rolled back, so
// running it again is what the caller asked for.
func (s *Store) onClaims(ctx context.Context, f func() error) error {
	created := false
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if ctx.Err() != nil || !errors.As(err, &pgErr) {
			return core.ContextError(ctx, err)
		}
		switch {
		case pgErr.Code == "42P01" && !created: // undefined_table
			if !s.claims.create {
				return fmt.Errorf("claims table %s does not exist (create it with the DDL in the pgstore package documentation, section Claims, or leave WithCreateTable on): %w", s.claims.table, err)
			}
			if err := s.ensureClaimsTable(ctx); err != nil {
				return err
			}
			created = true
		case retryable(pgErr.Code) && attempt < claimAttempts:
		default:
			return err
		}
	}
}

// ensureClaimsTable creates the claims table and its index if they do not
// exist, in one transaction under the lock that serialises the creation of
// tables.
func (s *Store) ensureClaimsTable(ctx context.Context) error {
	t := s.claims.table
	err := s.createClaimsTable(ctx)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case ctx.Err() == nil && errors.As(err, &pgErr) && pgErr.Code == "42501": // insufficient_privilege
		return fmt.Errorf("claims table %s does not exist and this role may not create it: create it with the DDL in the pgstore package documentation, section Claims, as a role that may, and grant this role SELECT, INSERT, UPDATE and DELETE on it: %w", t, err)
	case ctx.Err() == nil && errors.As(err, &pgErr):
		return fmt.Errorf("creating claims table %s (to manage it yourself, create it with the DDL in the pgstore package documentation, section Claims): %w", t, err)
	}
	return fmt.Errorf("creating claims table %s: %w", t, core.ContextError(ctx, err))
}

func (s *Store) createClaimsTable(ctx context.Context) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, createLock); err != nil {
		return err
	}
	// IF NOT EXISTS, not a look with to_regclass: this session's failed
	// statement may have left the name's absence in its catalogue cache,
	// which a lock-free look does not refresh, whereas CREATE locks the
	// schema first and so sees a table another Store created meanwhile.
	for _, stmt := range s.claims.ddl() {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}
