// Package pgstore is a core.TokenStore on PostgreSQL: the fleet's tokens in
// one table, their refresh serialised by PostgreSQL's own transactional
// locks, so that every instance of the fleet can refresh and only one does.
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	store, err := pgstore.New(ctx, pool) // creates wechatconf_tokens if missing
//	conf, err := core.New(core.Config{AppID: appID, AppSecret: secret, Store: store})
//	tok, err := conf.AccessToken(ctx)
//
// It is built on github.com/jackc/pgx/v5 and needs PostgreSQL 11 or later
// (it is tested on 15). The Store uses the pool the caller passes in and
// never closes it.
//
// # The table
//
// New creates the table when it is missing (turn that off with
// WithCreateTable(false)); WithTable names another table, schema-qualified
// if you like. It looks for the table before creating anything, so a role
// that may use an existing table but may not create in its schema
// (PostgreSQL 15's default for every role but the schema's owner) needs
// nothing more than SELECT, INSERT and UPDATE on the table. For teams that
// manage the schema with migrations, the DDL, with the default name:
//
//	CREATE TABLE IF NOT EXISTS wechatconf_tokens (
//		key        text COLLATE "C" PRIMARY KEY,
//		value      text NOT NULL,
//		expires_at timestamptz NOT NULL,
//		updated_at timestamptz NOT NULL DEFAULT now()
//	);
//
// A key is stored as is (any non-NUL UTF-8 text; the "C" collation keeps
// comparisons bytewise whatever the database's default collation); value
// and expires_at are the token (expires_at keeps microseconds); updated_at
// is the server's time of the last write, for operators. The table holds
// live credentials: grant it to the application's role only. Rows are never
// deleted by the store; deleting one is harmless (the token is fetched
// again). A row that cannot be a token (an empty value, an infinite expiry:
// only possible by editing the table) makes Get fail with a descriptive
// error, and Refresh fetches and overwrites it. The only SQL built from
// strings is the table identifier, quoted with pgx.Identifier.Sanitize;
// keys and values are always parameters.
//
// Store.ListKeys (core.KeyLister, for the wechatconf command's ls) lists
// the table's keys in keyset pages of 1,000 (an index range scan of the
// primary key from the prefix on), never one unbounded SELECT, and needs
// only SELECT on the table.
//
// # The refresh lock: a transaction-scoped advisory lock
//
// Refresh first reads the key outside any transaction: a stored value other
// than stale is returned at once. Otherwise it opens a READ COMMITTED
// transaction and tries pg_try_advisory_xact_lock on the pair (the table's
// OID, hashtext(key)). Holding it, it reads the token again (in a statement
// of its own, so with a snapshot taken after the lock), returns it if it
// differs from stale, and otherwise calls fetch and writes the result with
// an INSERT … ON CONFLICT in the same transaction before COMMIT, which
// releases the lock.
//
// Why an advisory lock and not SELECT … FOR UPDATE on the token's row: it
// locks a key that has no row yet without inserting a placeholder row; it
// writes nothing (a row lock writes the tuple header and WAL every time); it
// can be tried without waiting and without aborting the transaction; and it
// has a shared mode, which gives the waiters their wake-up (below). The
// lock's identity is the table's OID, not its name, so stores that reach the
// same table through different names or search_paths share their locks,
// and the two-int4 form keeps the locks apart from the single-bigint
// advisory locks most applications use. Two keys whose 32-bit hashtext
// collide share a lock: they refresh one after the other, nothing worse,
// since the read, the compare and the write are all per key. The locks are
// visible to operators:
//
//	SELECT * FROM pg_locks WHERE locktype = 'advisory' AND classid = 'wechatconf_tokens'::regclass::oid;
//
// # The lease and the fence
//
// The lock lives exactly as long as the transaction that holds it, so it is
// released whatever happens to the holder: COMMIT or ROLLBACK; a process
// that dies or a connection that is cut (the server sees the socket close
// and aborts the transaction at once, so waiters take over without waiting
// for the lease); and a holder that hangs. For that last case the
// transaction sets SET LOCAL idle_in_transaction_session_timeout to the
// lease (WithLease, default core.DefaultLease): fetch runs while the
// transaction is open and idle, and if it is still running when the lease
// runs out, PostgreSQL itself ends the holder's session, which releases the
// lock, on the server's clock, even if the holder's machine is partitioned
// away. fetch's context also ends with the lease.
//
// The write is fenced by construction: it is a statement of the transaction
// that holds the lock, so it can only commit while the lock is held. A
// holder whose transaction is gone (lease over, pg_terminate_backend,
// connection lost, server restart) gets an error wrapping core.ErrLockLost
// and has written nothing; the *pgconn.PgError that said so (25P03 for the
// lease, 57P01 for a termination) stays reachable with errors.As. The one
// ambiguous case is a connection lost while COMMIT itself is in flight: the
// error then says that the token may or may not have been written, and does
// not wrap ErrLockLost.
//
// # Waiting and waking
//
// A caller that does not get the lock waits for it with
// pg_advisory_xact_lock_shared in a transaction of its own single statement:
// the shared request queues behind the holder's exclusive lock, and when
// the holder's transaction ends PostgreSQL grants every queued shared
// request at once and the statements end at once, releasing them. The
// waiters then read the token the holder committed, with no polling and no
// LISTEN/NOTIFY. A waiter whose ctx ends returns at once: pgx's default
// context handling closes the connection (the pool replaces it); the
// server-side session goes on waiting in shared mode until the holder is
// done and then ends, which delays nobody. A role's or database's
// lock_timeout or statement_timeout that ends a wait early makes the waiter
// wait again; only ctx bounds its wait.
//
// # Waiting: what it costs
//
// A waiter holds one connection of the pool (one server session) for as
// long as it waits, blocked in pg_advisory_xact_lock_shared; nothing else
// (no goroutine of the store, no LISTEN). What a process spends on waiting
// is therefore bounded by the pool's MaxConns, not by the number of keys:
// measured (TestWaitersBounded in store/postgres/containertest), 40 keys
// locked with one waiter on each through a pool of MaxConns 10 used 10
// sessions, the 30 other callers queueing in pgxpool's Acquire. The cost
// of that bound is head-of-line blocking: a caller queued in the pool
// starts its wait, or its fetch, only when a connection frees, so a pool
// that waiters fill delays refreshes of other keys, up to the lease of the
// keys they wait on. Size MaxConns for the refreshes a burst may run at
// once (hundreds of credentials refreshing together need as many
// connections, or PgBouncer in front).
//
// # Operational notes
//
//   - Connections: every Refresh that is waiting or fetching holds one
//     connection of the pool for that time. A process's Conf coalesces its
//     own callers, so a fleet needs about one connection per process and
//     key at refresh time; size MaxConns accordingly.
//   - PgBouncer: only transaction pooling or session pooling will do (not
//     statement pooling: the lock needs a transaction). The store keeps no
//     session state: the timeout is SET LOCAL, the locks are
//     transaction-scoped, and it uses no LISTEN, no session advisory locks
//     and no named prepared statements of its own. With PgBouncer older
//     than 1.21 in transaction mode, configure pgx without cached prepared
//     statements (default_query_exec_mode=exec or simple_protocol in the
//     connection string, or pgx.QueryExecModeExec/QueryExecModeSimpleProtocol),
//     as for any pgx application; the store is tested with the simple
//     protocol.
//   - Failover: advisory locks are not replicated. A promotion ends the old
//     primary's transactions, so a holder gets ErrLockLost (or a connection
//     error) and its waiters get connection errors; the next Refresh, on
//     the new primary, fetches if the token is stale there. With asynchronous
//     replication, a token committed just before the failover may be lost,
//     which costs one more fetch. Point the pool at the primary: a hot
//     standby cannot take these locks or write.
//   - Transaction isolation: Refresh always uses READ COMMITTED, whatever
//     default_transaction_isolation is; Get and the first read of Refresh
//     are single statements outside a transaction.
//   - The lease is the longest a fetch may take, and the longest a hung
//     holder can keep others waiting. It must be longer than a WeChat call
//     (with its retries) takes; the default is 15s. It is rounded up to a
//     whole millisecond.
package pgstore
