// Package pgstore is a core.TokenStore on PostgreSQL: the fleet's tokens in
// one table, their refresh serialised by PostgreSQL's own transactional
// locks, so that every instance of the fleet can refresh and only one does.
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	store, err := pgstore.New(ctx, pool) // creates wechatconf_tokens if missing
//	conf, err := core.New(core.Config{AppID: appID, AppSecret: secret, Store: store})
//	tok, err := conf.AccessToken(ctx)
//
// The Store also keeps claims (core.ClaimStore, for de-duplicating WeChat's
// pushes across the fleet) in a second table: see Claims below.
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
// live credentials: grant it to the application's role only. Its rows are
// never deleted by the store; deleting one is harmless (the token is fetched
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
// # Claims
//
// Store implements core.ClaimStore natively, in a table of its own
// (DefaultClaimsTable, wechatconf_claims, in the token table's schema when
// WithTable names one; WithClaimsTable names another), so claims never
// mix with tokens and ListKeys never lists one. The table is created
// lazily: New does not touch it, and the first Claim or
// CompareAndSwapClaim that finds it missing creates it and its index (the
// DDL below, with the Store's table name) in one transaction, under the
// advisory lock that serialises New's CREATE TABLE, then runs again. A Store that never claims needs no claims table.
// With WithCreateTable(false), or for a role that may not create in the
// schema, the call fails instead with an error that points here (the
// *pgconn.PgError, 42P01 or 42501, reachable with errors.As). The DDL, with
// the default name:
//
//	CREATE TABLE IF NOT EXISTS wechatconf_claims (
//		key        text COLLATE "C" PRIMARY KEY,
//		value      text COLLATE "C" NOT NULL,
//		expires_at timestamptz NOT NULL
//	);
//	CREATE INDEX IF NOT EXISTS wechatconf_claims_expires_at_idx ON wechatconf_claims (expires_at);
//
// A claim value is UTF-8 without NUL (core.CheckClaim), which text holds
// whole; the "C" collation keeps comparisons bytewise. The index is what
// keeps the clean-up bounded (below): without it, each
// clean-up reads the whole table. The role needs SELECT, INSERT, UPDATE and
// DELETE on the table (DELETE for releases and the clean-up).
//
// Time is the server's: every statement reads clock_timestamp(), never the
// client's clock, and every statement compares expires_at, so a claim whose
// expires_at has passed is not live whether or not its row is still there.
// ttl travels as whole microseconds (timestamptz's resolution), rounded up.
// Each call is one statement outside any explicit transaction, one round
// trip (parameters: $1 key, $2 value, $3 ttl in microseconds, $4 old):
//
//	-- Claim: its RETURNING value is what the key holds after the call
//	INSERT INTO wechatconf_claims AS c (key, value, expires_at)
//	VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 microsecond')
//	ON CONFLICT (key) DO UPDATE SET (value, expires_at) = (
//		SELECT CASE WHEN c.expires_at <= clock.t THEN excluded.value ELSE c.value END,
//		       CASE WHEN c.expires_at <= clock.t THEN clock.t + $3::bigint * interval '1 microsecond' ELSE c.expires_at END
//		FROM (SELECT clock_timestamp() AS t) AS clock)
//	RETURNING value
//
//	-- CompareAndSwapClaim to a new value; swapped is "one row updated"
//	UPDATE wechatconf_claims SET value = $2, expires_at = clock_timestamp() + $3::bigint * interval '1 microsecond'
//	WHERE key = $1 AND value = $4 AND expires_at > clock_timestamp()
//
//	-- CompareAndSwapClaim to "" (release); swapped is "one row deleted"
//	DELETE FROM wechatconf_claims WHERE key = $1 AND value = $2 AND expires_at > clock_timestamp()
//
// What a claim costs (BenchmarkClaim in store/postgres/containertest,
// PostgreSQL 15 in Docker on the loopback, a busy 2-core machine): a
// winning Claim took 191 µs against 182 µs for pgx's own INSERT … ON
// CONFLICT DO NOTHING into a table of the same shape, measured in pairs in
// the same run, a ratio of ×1.04 to ×1.06 over five runs; 13 allocations
// against 7.
//
// Why exactly one of any number of concurrent claimers wins, in READ
// COMMITTED (each statement is a transaction of its own): the primary key
// arbitrates.
// On a key with no row, the first INSERT to reach the index inserts; every
// other one waits for that transaction to end, then finds the conflict and
// takes the DO UPDATE path. That path locks the row's latest committed
// version (waiting for any transaction writing it) and evaluates the SET
// on that version, so it sees the winner's live claim and writes it back
// unchanged. On a key whose claim expired, all of them take the DO UPDATE
// path, and the row lock orders them: the first replaces the claim, the
// others see its live claim. The server's clock is read once per row,
// after the lock, so the two columns follow the same judgement. The price
// of the single round trip is that a losing claimer rewrites the row with
// its own values (a HOT update, one dead row version); a loser is a
// retried push, rare next to the winners. A compare and swap waits in the
// same way for a concurrent writer of the row and re-evaluates its WHERE
// on the row that writer left, so a claim that expired or was replaced
// meanwhile is neither swapped nor released: a late holder cannot bring
// its claim back. Under a default_transaction_isolation of repeatable read
// or serializable, a claimer that meets a row changed since its snapshot
// gets a serialization failure instead of waiting; that, a deadlock, and a
// role's lock_timeout or statement_timeout ending a wait for the row all
// roll the statement back whole, and the Store runs it again (up to 1,000
// times, while ctx lasts), so these settings cost retries, never a second
// winner. Under serializable the retries grow with the square of the
// number of concurrent claimers of one key, since every claimer rewrites
// the row and so fails the others' snapshots (n claimers, up to about n²/2
// attempts); a push has a handful of claimers at most, and READ COMMITTED,
// PostgreSQL's default, costs no retry.
//
// Clean-up. A released claim's row is deleted by the release; an expired
// one stays until a clean-up deletes it, one batch at a time:
//
//	DELETE FROM wechatconf_claims WHERE ctid = ANY (ARRAY(
//		SELECT ctid FROM wechatconf_claims WHERE expires_at <= statement_timestamp()
//		ORDER BY expires_at LIMIT 500 FOR UPDATE SKIP LOCKED))
//	AND expires_at <= statement_timestamp()
//
// It reads at most ClaimCleanupBatch (500) rows from the cold end of the
// expires_at index and deletes them by ctid, skipping rows that a claimer
// or another Store's clean-up holds locked; it never waits and never runs
// unbounded. A Store runs it after a successful Claim (in a statement of
// its own, so one more round trip for that Claim; its error is dropped,
// the claim being made) when ClaimCleanupInterval (10 s) has passed since
// its previous clean-up, or at once when the previous one deleted a full
// batch, one at a time per Store. DeleteExpiredClaims runs one batch on
// demand, for an operator's job or a fleet that claims rarely.
//
// What the table holds at a steady rate of R claims per second living T
// each: about R·T live rows, and expired rows waiting for a clean-up,
// fewer than R × 10 s + 500 (every Store that claims deletes a batch at
// least every 10 s, and while more than a batch is waiting it deletes one
// after each of its Claims, 500 rows per claim, far faster than one row
// per claim expires). With core.Dedup's defaults (a push's claim becomes
// a "done" claim remembered 5 min) at 1,000 pushes per second: about
// 300,000 live rows and at most about 10,500 expired ones, each a key, a
// value and a timestamp (around 200 bytes with its index entries: some
// 60 MB). Deleted rows and the row versions of losing claimers are
// reclaimed by autovacuum, as for any table with steady inserts and
// deletes.
//
// Context and PgBouncer: a call honours ctx as every other method does; a
// statement waiting for a row lock (another claimer of the same key in
// flight) returns at once when ctx ends, since pgx closes the connection,
// but the server may still run it once the lock is released, as
// core.ClaimStore allows (an error means nothing is known; Claim again
// with the same value to find out). To have the server cancel such
// statements, configure pgx with a pgconn.CancelRequestContextWatcherHandler.
// The claims statements keep no session state, so they work through
// PgBouncer in transaction mode, as the rest of the Store does (tested).
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
//     are single statements outside a transaction, and so are the claims
//     statements (run again after a serialization failure).
//   - The lease is the longest a fetch may take, and the longest a hung
//     holder can keep others waiting. It must be longer than a WeChat call
//     (with its retries) takes; the default is 15s. It is rounded up to a
//     whole millisecond.
package pgstore
