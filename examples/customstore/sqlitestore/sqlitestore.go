package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver with database/sql

	"github.com/wechatconf/wechatconf/core"
)

// ─── Step 1: storage ────────────────────────────────────────────────────────
//
// The tables, the constructors and Get/Set. Nothing here is about locking:
// a store that could only Get and Set would already serve core.Conf on one
// machine, it would just fetch too often.

// The two tables. Keys are TEXT compared byte for byte (the default BINARY
// collation: case, trailing spaces and every other character count), and
// always travel as bound parameters, never spliced into SQL: that is how the
// contract's hostile keys ("../x", "a'b", "{tag}", "%") stay harmless.
// ExpiresAt and the lease deadline are Unix milliseconds, the precision the
// contract asks for.
const (
	createTokens = `CREATE TABLE IF NOT EXISTS wechatconf_tokens (
	key           TEXT    NOT NULL PRIMARY KEY,
	value         TEXT    NOT NULL,
	expires_at_ms INTEGER NOT NULL
)`
	createLocks = `CREATE TABLE IF NOT EXISTS wechatconf_locks (
	key         TEXT    NOT NULL PRIMARY KEY,
	owner       TEXT    NOT NULL, -- random id of the Refresh call holding the lock
	deadline_ms INTEGER NOT NULL  -- Unix ms at which its lease ends
)`

	getSQL = `SELECT value, expires_at_ms FROM wechatconf_tokens WHERE key = ?1`
	setSQL = `INSERT INTO wechatconf_tokens (key, value, expires_at_ms) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms`
)

// dsnPragmas are the connection settings Open puts in its DSN, in the
// syntax of modernc.org/sqlite (each _pragma runs as "PRAGMA …" on every new
// connection, in this order):
//
//   - busy_timeout(5000): a statement that finds the database write-locked
//     by another connection waits up to 5 s for it instead of failing at
//     once with SQLITE_BUSY. Every lock step is one short write, so waits
//     are a few milliseconds.
//   - journal_mode(WAL): readers never block the writer nor the writer
//     readers, so the waiters' polling reads do not slow the holder's write.
//   - synchronous(NORMAL): in WAL mode a commit is not fsynced until the
//     next checkpoint. A power cut may lose the last token written (the
//     next Refresh fetches again) but never corrupts the file.
//
// With github.com/mattn/go-sqlite3 the same settings are
// "file:path?_busy_timeout=5000&_journal_mode=WAL&_synchronous=NORMAL".
const dsnPragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"

// Option configures Open and New.
type Option func(*options)

type options struct {
	lease time.Duration
}

// WithLease sets how long a refresh lock may be held (default
// core.DefaultLease, 15 s): fetch runs with a context bounded by it, a
// holder that dies frees the lock when it runs out, and a holder still
// inside fetch then loses the lock and its write is refused with
// core.ErrLockLost. A value <= 0 keeps the default.
func WithLease(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lease = d
		}
	}
}

// Store is a core.TokenStore kept in an SQLite database file. Every Store
// over the same file, in this process or another one on the same machine,
// shares tokens and refresh locks with the others.
//
// A Store is safe for concurrent use. Build it with Open or New.
type Store struct {
	db    *sql.DB
	owned bool // Open made db, and Close closes it
	lease time.Duration
	gate  keyGate // this value's goroutines take turns per key (see lock.go)
}

// Open opens (creating it if needed) the SQLite database file at path with
// the settings Refresh relies on (busy_timeout, WAL; see the package
// documentation), creates the tables if they are missing and returns a
// Store that owns the connection pool: call Close when done.
//
// The file must be on a local file system: SQLite's locks, which this store
// builds on, are unreliable over NFS or SMB, and WAL mode needs shared
// memory between the processes.
func Open(path string, opts ...Option) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlitestore: empty path")
	}
	// A file: URI, so that a path holding '?', '#' or '%' stays a path.
	dsn := (&url.URL{Scheme: "file", Path: path}).String() + "?" + dsnPragmas
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %q: %w", path, err)
	}
	s, err := New(db, opts...)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// New returns a Store over a database the caller opened, creating the
// tables if they are missing. Open the database with busy_timeout set on
// every connection (with modernc.org/sqlite, a DSN such as
// "file:tokens.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"):
// without it, two processes writing at the same instant make one of them
// fail with "database is locked". The Store uses db but never closes it;
// its Close does nothing.
func New(db *sql.DB, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlitestore: nil *sql.DB")
	}
	o := options{lease: core.DefaultLease}
	for _, opt := range opts {
		opt(&o)
	}
	ctx := context.Background()
	var version string
	if err := db.QueryRowContext(ctx, `SELECT sqlite_version()`).Scan(&version); err != nil {
		return nil, fmt.Errorf("sqlitestore: is this an SQLite database? %w", err)
	}
	for _, ddl := range []string{createTokens, createLocks} {
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return nil, fmt.Errorf("sqlitestore: creating tables (SQLite %s): %w", version, err)
		}
	}
	return &Store{db: db, lease: o.lease}, nil
}

// Close closes the database if Open opened it; on a Store from New it does
// nothing.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	return s.db.Close()
}

// Get implements core.TokenStore. It returns an error wrapping
// core.ErrNotFound when nothing is stored under key, and a descriptive error
// (not ErrNotFound) when the row cannot be decoded.
func (s *Store) Get(ctx context.Context, key string) (core.Token, error) {
	if err := core.CheckCall(ctx, key); err != nil {
		return core.Token{}, fmt.Errorf("sqlitestore: get: %w", err)
	}
	t, err := s.read(ctx, key)
	if err != nil {
		return core.Token{}, fmt.Errorf("sqlitestore: get %q: %w", key, err)
	}
	return t, nil
}

// Set implements core.TokenStore: it replaces the token under key
// unconditionally and does not take the refresh lock. A token with an empty
// Value is refused with an error wrapping core.ErrEmptyToken, and nothing
// is written.
func (s *Store) Set(ctx context.Context, key string, t core.Token) error {
	if err := core.CheckSet(ctx, key, t); err != nil {
		return fmt.Errorf("sqlitestore: set %q: %w", key, err)
	}
	if _, err := s.db.ExecContext(ctx, setSQL, key, t.Value, t.ExpiresAt.UnixMilli()); err != nil {
		return fmt.Errorf("sqlitestore: set %q: %w", key, core.ContextError(ctx, err))
	}
	return nil
}

// read returns the token stored under key: an error wrapping
// core.ErrNotFound when there is none, a *CorruptError when its row cannot
// be decoded.
func (s *Store) read(ctx context.Context, key string) (core.Token, error) {
	// Scanned as any: a row written by hand or by another program may hold
	// any SQLite type in any column, and that must be a clear error, not a
	// conversion failure of database/sql.
	var value, ms any
	err := s.db.QueryRowContext(ctx, getSQL, key).Scan(&value, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return core.Token{}, core.ErrNotFound // translate the backend's "absent" into the sentinel
	}
	if err != nil {
		return core.Token{}, core.ContextError(ctx, err)
	}
	return decode(key, value, ms)
}

// decode checks the two columns of a token row.
func decode(key string, value, ms any) (core.Token, error) {
	var t core.Token
	switch v := value.(type) {
	case string:
		t.Value = v
	case []byte:
		t.Value = string(v)
	default:
		return core.Token{}, &CorruptError{Key: key, Reason: fmt.Sprintf("value is %s, want text", sqlType(value))}
	}
	if t.Value == "" {
		return core.Token{}, &CorruptError{Key: key, Reason: "value is empty"}
	}
	n, ok := ms.(int64)
	if !ok {
		return core.Token{}, &CorruptError{Key: key, Reason: fmt.Sprintf("expires_at_ms is %s, want an integer (Unix milliseconds)", sqlType(ms))}
	}
	t.ExpiresAt = time.UnixMilli(n)
	return t, nil
}

// CorruptError is returned (wrapped) by Get when the row stored under Key
// cannot be decoded, for example after it was edited by hand. Refresh
// treats such a row as absent and replaces it with a fetched token.
type CorruptError struct {
	Key    string
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt row in wechatconf_tokens for key %q: %s", e.Key, e.Reason)
}

// Unwrap makes errors.Is(err, core.ErrCorrupt) hold, as for every store.
func (e *CorruptError) Unwrap() error { return core.ErrCorrupt }

// sqlType names the SQLite type a column scanned into any arrived as.
func sqlType(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return fmt.Sprintf("the integer %d", v)
	case float64:
		return fmt.Sprintf("the real %g", v)
	case string:
		return fmt.Sprintf("the text %q", v)
	case []byte:
		return fmt.Sprintf("a blob of %d bytes", len(v))
	default:
		return fmt.Sprintf("%T", v)
	}
}
