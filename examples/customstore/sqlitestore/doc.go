// Package sqlitestore is a core.TokenStore kept in an SQLite database file,
// and a tutorial: how to write a wechatconf backend for a store that is not
// one of ours, step by step.
//
//	store, err := sqlitestore.Open("/var/lib/myapp/wechat-tokens.db")
//	if err != nil { … }
//	defer store.Close()
//	conf, err := core.New(core.Config{AppID: appID, AppSecret: secret, Store: store})
//
// Every process on the machine that opens the same file shares the tokens
// and the refresh locks: one of them fetches, the others read its token. It
// uses modernc.org/sqlite, a pure-Go SQLite (no cgo), at v1.59.0, the last
// release whose go.mod allows Go 1.25.
//
// What to know when running it:
//
//   - The file must be on a local file system shared by the processes
//     (SQLite's locks are unreliable over NFS or SMB; WAL mode needs shared
//     memory). Beside it SQLite keeps tokens.db-wal and tokens.db-shm. For a
//     fleet of machines use the Redis, PostgreSQL or etcd store.
//   - A holder that dies (killed, crashed) keeps the lock until its lease
//     ends (WithLease, default core.DefaultLease, 15 s); then a waiter takes
//     over. A holder still inside fetch when its lease ends loses the lock
//     and its write is refused with core.ErrLockLost.
//   - SQLite has no notification: a waiter polls the file every 1–20 ms
//     (backoff with jitter), so it returns at most ~20 ms after the holder's
//     token is written. Only one goroutine per Store and key polls.
//   - Commits are not fsynced one by one (synchronous=NORMAL in WAL mode): a
//     power cut may lose the last token written, which the next Refresh
//     fetches again; the file stays consistent.
//   - A row edited into something undecodable makes Get fail with a
//     *CorruptError; Refresh treats it as absent and replaces it.
//
// # Writing a backend, step by step
//
// A backend is a type with the three methods of core.TokenStore. Get and
// Set are plain storage; Refresh is the hard one, with six rules that hold
// across every process sharing the store (read them in core's TokenStore
// documentation first; the comments in this package cite them by number).
// The files of this package are the steps, in order.
//
// Step 1, storage (sqlitestore.go). Choose how a key, a value and ExpiresAt
// are kept: here a table with the key as primary key, the value as text and
// ExpiresAt as Unix milliseconds (the contract asks for millisecond
// precision). Keys are arbitrary strings of up to 256 bytes ("../x",
// "a'b", "{tag}", "%"): pass them as bound parameters, never in the SQL
// text, and compare them byte for byte. Start every method with
// core.CheckCall (ctx, then core.ValidateKey), and Set with core.CheckSet,
// which also refuses a token with an empty Value (core.ErrEmptyToken: an
// empty value is never stored, and one that reads back empty is corrupt).
// Pass errors through core.ContextError so that a cancelled call matches
// ctx.Err(). Translate the backend's "absent" (sql.ErrNoRows) into
// core.ErrNotFound; make an undecodable row a clear error that wraps
// core.ErrCorrupt. (A backend that keeps a token as one blob can use
// core.EncodeToken/DecodeToken.) Write the constructors: New over a client
// the user already has (never close it), Open when the store opens its own
// (then it has Close).
//
// Step 2, the lock with a lease (lock.go). The lock of a key is a row:
// owner (random, one per Refresh call) and deadline (now + lease). Taking
// it is one statement that inserts the row, or overwrites it if its
// deadline has passed, and reports whether it changed a row; releasing it
// deletes the row only if the owner is still ours. Because a writing
// statement is a transaction of its own that takes SQLite's write lock
// before it reads (as BEGIN IMMEDIATE does), "check, then write" cannot be
// split by another process. A dead holder's row simply expires (rule 5).
// A waiter that finds the lock held backs off with jitter and looks again
// (rule 6): SQLite cannot notify. In your backend, use its notification if
// it has one (Redis pub/sub, PostgreSQL's lock queue, an etcd watch).
//
// Step 3, Refresh (refresh.go): lock (rule 1) → read and compare with stale
// (rule 2) → fetch with a context that ends with the lease (rule 3:
// core.FetchUntil does this part, and reports a fetch cut by the lease as
// core.ErrLockLost) → fenced write → release. The fenced write is one statement that stores the
// token only if the lock row still names our owner with a deadline in the
// future, the atomic compare in the backend that rule 3 asks for; no row
// changed means core.ErrLockLost and nothing written. A failed fetch
// writes nothing and releases the lock (rule 4). While waiting, the waiter
// also reads the token: a value that differs from stale is returned at
// once, which is what rule 2 would return right after taking the lock, so
// a herd of callers never queues for the lock just to read.
//
// Step 4, the conformance suite (conformance_test.go): a Harness whose
// NewStore opens a new *sql.DB on the same file every time (each value acts
// as a separate process), a short lease, and ChildEnv carrying the file's
// path to the child processes of the crash check and of ProcessHerd. It
// runs one subtest per rule; store_test.go adds what is particular to this
// store (rows edited by hand, a lock stolen from outside).
//
// Step 5, use it (example_test.go): core.New(core.Config{Store: store, …}).
//
// # Schema
//
// New creates the tables if they are missing:
//
//	CREATE TABLE IF NOT EXISTS wechatconf_tokens (
//		key           TEXT    NOT NULL PRIMARY KEY,
//		value         TEXT    NOT NULL,
//		expires_at_ms INTEGER NOT NULL
//	);
//	CREATE TABLE IF NOT EXISTS wechatconf_locks (
//		key         TEXT    NOT NULL PRIMARY KEY,
//		owner       TEXT    NOT NULL,
//		deadline_ms INTEGER NOT NULL
//	);
//
// The lease deadlines are the clock of the process that took the lock,
// which is the clock of the one machine all processes share.
package sqlitestore
