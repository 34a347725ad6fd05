package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wechatconf/wechatconf/core"
)

// DefaultTable is the table a Store keeps its tokens in when it is built
// without WithTable.
const DefaultTable = "wechatconf_tokens"

// maxIdentifierLen is the longest identifier PostgreSQL keeps whole
// (NAMEDATALEN-1); a longer one would be truncated silently, so that two
// different names could end up naming the same table.
const maxIdentifierLen = 63

// Option configures New.
type Option func(*options)

type options struct {
	lease  time.Duration
	table  pgx.Identifier
	claims pgx.Identifier // nil: DefaultClaimsTable beside table
	create bool
}

// WithLease sets how long the refresh lock may be held (default
// core.DefaultLease). fetch runs with a context bounded by it, and the
// transaction holding the lock is given an idle_in_transaction_session_timeout
// of the lease, so that PostgreSQL itself ends a holder that is still inside
// fetch when it runs out: the lock passes to a waiter and the late holder's
// write is refused with core.ErrLockLost. A value <= 0 keeps the default;
// the lease is rounded up to a whole millisecond.
func WithLease(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lease = d
		}
	}
}

// WithTable sets the table the tokens are kept in (default DefaultTable,
// resolved through the connection's search_path), either a bare name,
// pgx.Identifier{"wechat_tokens"}, or a schema-qualified one,
// pgx.Identifier{"wechat", "tokens"}. Each part is taken literally (it is
// quoted with pgx.Identifier.Sanitize: case and any character are kept), so
// "Tokens" and "tokens" are different tables. New reports an error for an
// empty part, a part longer than 63 bytes or one containing NUL, or more
// than two parts. The schema must exist; New does not create schemas.
func WithTable(name pgx.Identifier) Option {
	return func(o *options) { o.table = append(pgx.Identifier(nil), name...) }
}

// WithCreateTable sets whether New creates the table when it is missing
// (default true). New looks for the table first and only issues CREATE
// TABLE when it is not there, so a role that may use an existing table but
// may not create in its schema (PostgreSQL 15's default for every role but
// the schema's owner) needs no option. With false, New never creates the
// table and only checks that it exists and has the expected columns, for
// teams that manage the schema with their own migrations: the DDL is in the
// package documentation. When the table is missing and creating it is
// refused, New's error says to create it that way and pass
// WithCreateTable(false).
func WithCreateTable(create bool) Option {
	return func(o *options) { o.create = create }
}

// Store is a core.TokenStore kept in a PostgreSQL table, with refreshes
// serialised by a transaction-scoped advisory lock per key. Every Store over
// the same table of the same database shares tokens and locks with the
// others, in this process or any other.
//
// A Store is safe for concurrent use. Build it with New; it has no Close
// method because it never owns the pool it is given.
type Store struct {
	pool     *pgxpool.Pool
	lease    time.Duration
	leaseMS  string // lease in whole milliseconds, for set_config
	table    string // the table, as a sanitized identifier
	getSQL   string
	setSQL   string
	lockSQL  string
	waitSQL  string
	checkSQL string
	listSQL  string

	claims claimState // the claims table, its statements and clean-up (claims.go)
}

// New returns a Store that keeps its tokens in a table of the database pool
// connects to, creating the table first if it is missing, unless
// WithCreateTable(false) is given. The Store uses pool but never closes it.
// ctx bounds only the work New does (looking for, creating and checking the
// table).
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pgstore: nil *pgxpool.Pool")
	}
	o := options{lease: core.DefaultLease, table: pgx.Identifier{DefaultTable}, create: true}
	for _, opt := range opts {
		opt(&o)
	}
	if err := validateTable(o.table); err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if err := o.claimsTable(); err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s := newStore(pool, o)
	if o.create {
		if err := s.ensureTable(ctx); err != nil {
			return nil, err
		}
	}
	if _, err := pool.Exec(ctx, s.checkSQL, s.table); err != nil {
		hint := ""
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42703" || pgErr.Code == "3F000") {
			hint = " (create it with the DDL in the pgstore package documentation, or leave WithCreateTable on)"
		}
		return nil, fmt.Errorf("pgstore: checking table %s%s: %w", s.table, hint, core.ContextError(ctx, err))
	}
	return s, nil
}

func validateTable(id pgx.Identifier) error {
	if len(id) == 0 || len(id) > 2 {
		return fmt.Errorf("table name %q: want a name or schema and name, got %d parts", []string(id), len(id))
	}
	for _, p := range id {
		switch {
		case p == "":
			return fmt.Errorf("table name %q: empty part", []string(id))
		case len(p) > maxIdentifierLen:
			return fmt.Errorf("table name %q: part of %d bytes is longer than PostgreSQL's %d", []string(id), len(p), maxIdentifierLen)
		}
		for i := 0; i < len(p); i++ {
			if p[i] == 0 {
				return fmt.Errorf("table name %q: part contains NUL", []string(id))
			}
		}
	}
	return nil
}

// newStore builds the statements of a Store over table o.table. The table
// identifier is the only thing ever spliced into SQL, and it is quoted by
// pgx.Identifier.Sanitize; keys and values always travel as parameters.
func newStore(pool *pgxpool.Pool, o options) *Store {
	t := o.table.Sanitize()
	ms := int64(math.Ceil(float64(o.lease) / float64(time.Millisecond)))
	ms = min(ms, math.MaxInt32) // the setting is an int of milliseconds
	// The lock of a key is the advisory lock (table's OID, hashtext(key)):
	// the two-int4 form, whose lock space is apart from the single-bigint
	// one most applications use; stores over the same table agree on it
	// whatever name or search_path they reach the table by.
	const lockKey = `$2::text::regclass::oid::int4, hashtext($1::text)`
	s := &Store{
		pool:    pool,
		lease:   o.lease,
		leaseMS: strconv.FormatInt(ms, 10),
		table:   t,
		getSQL:  `SELECT value, expires_at FROM ` + t + ` WHERE key = $1`,
		setSQL: `INSERT INTO ` + t + ` AS t (key, value, expires_at, updated_at) VALUES ($1, $2, $3, now())
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
		lockSQL: `SELECT set_config('idle_in_transaction_session_timeout', $3::text, true), pg_try_advisory_xact_lock(` + lockKey + `)`,
		waitSQL: `SELECT pg_advisory_xact_lock_shared(` + lockKey + `)`,
		// checkSQL fails unless the table exists with the columns the
		// store uses and its name resolves to the OID the locks use.
		checkSQL: `SELECT $1::text::regclass::oid::int4, EXISTS (SELECT key, value, expires_at, updated_at FROM ` + t + `)`,
		// listSQL is one page of ListKeys: the keys from $1 on (the
		// prefix) after $2 (the last key of the previous page), in
		// bytewise order whatever the column's collation.
		listSQL: `SELECT key FROM ` + t + ` WHERE key COLLATE "C" >= $1 AND key COLLATE "C" > $2 ORDER BY key COLLATE "C" LIMIT ` + strconv.Itoa(listPage),
	}
	s.claims.init(o.claims, o.create)
	return s
}

// ddl returns the CREATE TABLE statement for the sanitized table name t.
func ddl(t string) string {
	return `CREATE TABLE IF NOT EXISTS ` + t + ` (
	key        text COLLATE "C" PRIMARY KEY,
	value      text NOT NULL,
	expires_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
)`
}

// createLock serialises the CREATE TABLE IF NOT EXISTS of stores starting at
// once: run concurrently, that statement can fail on a unique violation in
// the catalogue. It is an advisory lock in the two-int4 space, ('wcnf', 1).
const createLock = `SELECT pg_advisory_xact_lock(2002939502, 1)`

// ensureTable creates the table if it does not exist yet. It looks first,
// because CREATE TABLE IF NOT EXISTS needs the CREATE privilege on the
// schema even when the table is there, which a role that only uses the
// table does not have.
func (s *Store) ensureTable(ctx context.Context) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1::text) IS NOT NULL`, s.table).Scan(&exists); err != nil {
		return fmt.Errorf("pgstore: looking for table %s: %w", s.table, core.ContextError(ctx, err))
	}
	if exists {
		return nil
	}
	err := s.createTable(ctx)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case ctx.Err() == nil && errors.As(err, &pgErr) && pgErr.Code == "42501": // insufficient_privilege
		// Another process may have created it since we looked.
		if s.pool.QueryRow(ctx, `SELECT to_regclass($1::text) IS NOT NULL`, s.table).Scan(&exists) == nil && exists {
			return nil
		}
		return fmt.Errorf("pgstore: table %s does not exist and this role may not create it: create it with the DDL in the pgstore package documentation as a role that may, grant this role SELECT, INSERT and UPDATE on it, and build the Store with WithCreateTable(false): %w", s.table, err)
	case ctx.Err() == nil && errors.As(err, &pgErr):
		return fmt.Errorf("pgstore: creating table %s (to manage it yourself, create it with the DDL in the pgstore package documentation and build the Store with WithCreateTable(false)): %w", s.table, err)
	}
	return fmt.Errorf("pgstore: creating table %s: %w", s.table, core.ContextError(ctx, err))
}

func (s *Store) createTable(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, createLock); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, ddl(s.table)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Get implements core.TokenStore. A row that cannot be a token (a NULL or
// empty value, a NULL or infinite expires_at: only possible with a table
// altered by hand) is an error that does not wrap core.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (core.Token, error) {
	if err := core.CheckCall(ctx, key); err != nil {
		return core.Token{}, fmt.Errorf("pgstore: get: %w", err)
	}
	tok, st, err := s.read(ctx, s.pool, key)
	switch {
	case err != nil && st == stateCorrupt:
		return core.Token{}, fmt.Errorf("pgstore: get %q: %w", key, err)
	case err != nil:
		return core.Token{}, fmt.Errorf("pgstore: get %q: %w", key, core.ContextError(ctx, err))
	case st == stateAbsent:
		return core.Token{}, fmt.Errorf("pgstore: get %q: %w", key, core.ErrNotFound)
	}
	return tok, nil
}

// Set implements core.TokenStore. It does not take the refresh lock. A
// token with an empty Value is refused with an error wrapping
// core.ErrEmptyToken (an empty value means "no token"), and nothing is
// written.
func (s *Store) Set(ctx context.Context, key string, t core.Token) error {
	if err := core.CheckSet(ctx, key, t); err != nil {
		return fmt.Errorf("pgstore: set %q: %w", key, err)
	}
	if _, err := s.pool.Exec(ctx, s.setSQL, key, t.Value, t.ExpiresAt); err != nil {
		return fmt.Errorf("pgstore: set %q: %w", key, core.ContextError(ctx, err))
	}
	return nil
}

// Refresh implements core.TokenStore: see its rules, and the package
// documentation for the lock, the lease and the fence.
func (s *Store) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if err := core.CheckCall(ctx, key); err != nil {
		return core.Token{}, fmt.Errorf("pgstore: refresh: %w", err)
	}
	if fetch == nil {
		return core.Token{}, fmt.Errorf("pgstore: refresh %q: nil fetch", key)
	}
	for {
		// Fast path, outside any transaction: a stored value other than
		// stale is what Refresh would return after taking the lock anyway.
		tok, st, err := s.read(ctx, s.pool, key)
		if err != nil && st != stateCorrupt {
			return core.Token{}, fmt.Errorf("pgstore: refresh %q: reading: %w", key, core.ContextError(ctx, err))
		}
		if st == stateFound && tok.Value != stale {
			return tok, nil
		}
		tok, locked, err := s.refreshLocked(ctx, key, stale, fetch)
		if err != nil {
			return core.Token{}, fmt.Errorf("pgstore: refresh %q: %w", key, err)
		}
		if locked {
			return tok, nil
		}
		if err := s.waitUnlocked(ctx, key); err != nil {
			return core.Token{}, fmt.Errorf("pgstore: refresh %q: waiting for the lock: %w", key, err)
		}
	}
}

// refreshLocked runs rules 2–4 under the key's lock if it can take it at
// once, in one READ COMMITTED transaction: the lock is the transaction's
// advisory lock, released by COMMIT, by ROLLBACK, or by PostgreSQL when the
// connection dies or the server ends the transaction at the lease. It
// reports locked=false, having done nothing, when another transaction holds
// the lock.
func (s *Store) refreshLocked(ctx context.Context, key, stale string, fetch core.FetchFunc) (tok core.Token, locked bool, err error) {
	// READ COMMITTED whatever the pool's default_transaction_isolation:
	// the read after the lock must see the token the previous holder
	// committed, so it needs a snapshot taken after the lock, not at the
	// start of the transaction.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return core.Token{}, false, fmt.Errorf("beginning the transaction: %w", core.ContextError(ctx, err))
	}
	// Rolls back unless committed; with ctx done pgx closes the connection
	// instead, which ends the transaction all the same.
	defer tx.Rollback(ctx)

	// One round trip: bound the transaction's idle time by the lease, try
	// the lock, and read the token in a statement of its own (so with a
	// snapshot taken after the lock; its result is ignored when the lock
	// was not taken).
	b := &pgx.Batch{}
	b.Queue(s.lockSQL, key, s.table, s.leaseMS)
	b.Queue(s.getSQL, key)
	br := tx.SendBatch(ctx, b)
	var setting string
	err = br.QueryRow().Scan(&setting, &locked)
	var st rowState
	if err == nil {
		tok, st, err = scanToken(br.QueryRow())
		if st == stateCorrupt {
			err = nil // corrupt counts as absent, and is repaired below
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return core.Token{}, false, fmt.Errorf("taking the lock: %w", core.ContextError(ctx, err))
	}
	if !locked {
		return core.Token{}, false, nil
	}
	if st == stateFound && tok.Value != stale {
		return tok, true, nil // rule 2; the deferred rollback releases the lock
	}

	t, err := core.FetchUntil(ctx, time.Now().Add(s.lease), fetch)
	if err != nil {
		return core.Token{}, true, err
	}

	// The fenced write: the INSERT runs in the transaction that holds the
	// lock, so it can only commit while the lock is held. If PostgreSQL
	// ended the transaction (lease over, backend terminated, connection
	// cut), the lock has been released and nothing is written.
	if _, err := tx.Exec(ctx, s.setSQL, key, t.Value, t.ExpiresAt); err != nil {
		switch {
		case ctx.Err() != nil:
			return core.Token{}, true, fmt.Errorf("writing the token: %w", core.ContextError(ctx, err))
		case txGone(tx, err):
			return core.Token{}, true, fmt.Errorf("write refused, the transaction holding the lock ended (lease %v over, backend terminated or connection lost): %w: %w", s.lease, core.ErrLockLost, err)
		}
		return core.Token{}, true, fmt.Errorf("writing the token: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		switch {
		case !pgconn.SafeToRetry(err):
			// COMMIT may have reached the server: whether the token
			// was written is unknown.
			return core.Token{}, true, fmt.Errorf("committing the token (it may or may not have been written): %w", core.ContextError(ctx, err))
		case ctx.Err() != nil:
			return core.Token{}, true, fmt.Errorf("committing the token: %w", core.ContextError(ctx, err))
		}
		return core.Token{}, true, fmt.Errorf("write refused, the transaction holding the lock ended before COMMIT: %w: %w", core.ErrLockLost, err)
	}
	return t, true, nil
}

// waitUnlocked blocks until the transaction holding key's lock ends, or
// ctx does. It takes the lock in shared mode in a transaction of one
// statement, which releases it at once: all the waiters of a key are
// granted their shared lock together the moment the holder's transaction
// ends, so a herd wakes at once, not one after another.
func (s *Store) waitUnlocked(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, s.waitSQL, key, s.table)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return core.ContextError(ctx, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "57014") {
		// lock_timeout or statement_timeout of the role or database ended
		// the wait before ctx did: look again.
		return nil
	}
	return err
}

// listPage is how many keys one query of ListKeys reads.
const listPage = 1000

// ListKeys implements core.KeyLister: the keys of the table's rows that
// begin with prefix ("" for all), sorted bytewise, each once. Every row is
// a token (locks are advisory locks, not rows), so every key is listed,
// even one whose row cannot be a token (but not a key no store method
// accepts, longer than core.MaxKeyLen, which only an edit can insert). It reads keyset pages of 1,000
// keys, each a statement of its own outside any transaction (so it holds
// no snapshot or lock across the walk): the keys from prefix on, after the
// last key of the previous page, in the "C" order, which the primary key
// of the documented table serves as an index range scan; the walk ends at
// the first key that does not begin with prefix. A key written after the
// walk passed its place is not listed. A prefix holding NUL, which no key
// holds, lists nothing without a query. ctx bounds the walk.
func (s *Store) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.listKeys(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list keys under %q: %w", prefix, core.ContextError(ctx, err))
	}
	return keys, nil
}

func (s *Store) listKeys(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// No key holds NUL (core.ValidateKey), and PostgreSQL text cannot:
	// sent as a parameter, it is an error. Nothing begins with such a
	// prefix.
	if strings.IndexByte(prefix, 0) >= 0 {
		return nil, nil
	}
	// PostgreSQL text is valid UTF-8: the range starts at the longest
	// valid beginning of prefix, and Go compares the rest.
	from := prefix
	for !utf8.ValidString(from) {
		from = from[:len(from)-1]
	}
	var keys []string
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rows, err := s.pool.Query(ctx, s.listSQL, from, after)
		if err != nil {
			return nil, err
		}
		page, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		for _, k := range page {
			if !strings.HasPrefix(k, from) {
				return keys, nil // past the keys that can begin with prefix
			}
			if strings.HasPrefix(k, prefix) && core.ValidateKey(k) == nil {
				keys = append(keys, k)
			}
		}
		if len(page) < listPage {
			return keys, nil
		}
		after = page[len(page)-1]
	}
}

// rowState is what a read found.
type rowState int

const (
	stateAbsent rowState = iota
	stateFound
	stateCorrupt // a row that cannot be a token
)

// read reads key's token through q.
func (s *Store) read(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, key string) (core.Token, rowState, error) {
	return scanToken(q.QueryRow(ctx, s.getSQL, key))
}

// scanToken scans a row of getSQL. For a corrupt row it returns
// stateCorrupt and an error saying what is wrong.
func scanToken(row pgx.Row) (core.Token, rowState, error) {
	var (
		value pgtype.Text
		exp   pgtype.Timestamptz
	)
	if err := row.Scan(&value, &exp); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return core.Token{}, stateAbsent, nil
		}
		return core.Token{}, stateAbsent, err
	}
	switch {
	case !value.Valid || value.String == "":
		return core.Token{}, stateCorrupt, fmt.Errorf("%w: the row's value is NULL or empty", core.ErrCorrupt)
	case !exp.Valid:
		return core.Token{}, stateCorrupt, fmt.Errorf("%w: the row's expires_at is NULL", core.ErrCorrupt)
	case exp.InfinityModifier != pgtype.Finite:
		return core.Token{}, stateCorrupt, fmt.Errorf("%w: the row's expires_at is infinite", core.ErrCorrupt)
	}
	return core.Token{Value: value.String, ExpiresAt: exp.Time}, stateFound, nil
}

// txGone reports whether err, from a statement of tx, means that the
// transaction no longer exists: the connection is closed (a network error,
// or a FATAL error such as idle_in_transaction_session_timeout or
// pg_terminate_backend, after which pgx closes it), or the server said so.
func txGone(tx pgx.Tx, err error) bool {
	if tx.Conn().IsClosed() {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code := pgErr.Code
		switch {
		case code == "25P03", // idle_in_transaction_session_timeout
			strings.HasPrefix(code, "08"),  // connection exception
			strings.HasPrefix(code, "57P"): // admin_shutdown, crash_shutdown, …
			return true
		}
	}
	return false
}
