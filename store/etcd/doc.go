// Package etcdstore is a core.TokenStore on etcd v3, for fleets that
// already run etcd: linearizable reads, a refresh lock held on an etcd
// lease, and writes fenced by the lock's revision.
//
//	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
//	defer cli.Close() // yours: the store never closes it
//	store, err := etcdstore.New(cli, etcdstore.WithPrefix("myapp/wechat/"))
//	conf, err := core.New(core.Config{AppID: appID, AppSecret: secret, Store: store})
//	tok, err := conf.AccessToken(ctx)
//
// Every instance builds the same Store (same prefix) over its own client;
// whichever instance needs a new token first refreshes it for all of them,
// with one fetch from WeChat per refresh across the fleet.
//
// # Keys
//
// Under the prefix P (WithPrefix, default "wechatconf/"), a key K is
// stored as P+"token/"+b64(K), where b64 is unpadded base64url: any key —
// "/", "..", "{tag}", unicode, 256 bytes — maps to one etcd key of its own.
// The token is small versioned JSON ({"v":1,"key":…,"value":…,
// "expires_at":RFC 3339}), overwritten in place by Set and Refresh: one
// etcd key per token, whatever the number of refreshes. K's refresh lock is
// the concurrency.Mutex on P+"lock/"+b64(K); its queue keys
// (P+"lock/"+b64(K)+"/"+lease ID) live on leases and vanish with them.
// Since b64 never produces "/", no key's lock prefix is a prefix of
// another key's.
//
// Store.ListKeys (core.KeyLister, for the wechatconf command's ls) lists
// the keys by decoding the names under P+"token/": keys-only range reads
// of 1,000 keys, never a value, never the lock range.
//
// Get is a linearizable read (clientv3's default; never serializable), so
// it sees every write acknowledged before it, through any member. A stored
// value that cannot be decoded is an error for Get (not core.ErrNotFound);
// Refresh treats it as absent and overwrites it.
//
// # The refresh lock, the lease and the fence
//
// Each Refresh that needs the lock grants a lease of its own (WithLease,
// rounded up to whole seconds) and queues on the key's
// concurrency.Mutex through a concurrency.Session on that lease. While the
// caller waits in the queue, the session keeps the lease alive, so a waiter
// that dies leaves the queue within the lease. The moment the lock is taken
// the keepalive is stopped and the lease renewed once: from then on the
// lease runs out TTL seconds later whatever the holder does. A plain
// Session would renew it for as long as the process lives, and a hung
// holder would keep the lock forever.
//
// fetch runs with a context that ends when the lease does, measured on the
// holder's own clock from before the renewal (so it ends no later than the
// server's lease, even if etcd cannot be reached). The fetched token is
// written by a Txn whose only condition is the mutex's IsOwner compare
// (the create revision of the holder's queue key): once the lease has run
// out, etcd has deleted that key, and the write is refused; Refresh then
// returns an error wrapping core.ErrLockLost and the token of whoever took
// over survives. The server decides, not the holder's clock: a write that
// reaches etcd while the lease still lives is the lock holder's write. A
// fetch that ends with its context's deadline is reported as ErrLockLost
// too (wrapping the context error), and nothing is written.
//
// The lock is released by revoking the lease, which deletes the holder's
// queue key. A holder that dies (killed, partitioned, its machine gone)
// frees the lock when its lease runs out: TTL seconds after it took the
// lock, plus up to half a second for the leader's expiry check.
//
// # Waking waiters
//
// No polling. A waiter waits on two etcd watches at once: the mutex's
// (the deletion of the queue key ahead of it), and one on the token's key
// from the revision it last read. When the holder writes the new token,
// every waiter, in every process, sees the write on its watch and returns
// that token at once, instead of being woken one after the other down the
// mutex queue; it leaves the queue in the background (its queue key and
// lease are removed). If the holder fails or dies, the mutex hands the lock
// to the next waiter in line.
//
// # Waiting: what it costs
//
// A waiter queues on the key's mutex: it grants a lease of its own (kept
// alive on the client's one keepalive stream), puts its queue key, and
// holds two watches (the mutex's, on the queue key ahead of it, and one on
// the token key), all multiplexed on the client's one gRPC connection and
// watch stream. So connections and streams are bounded (one of each per
// client), but leases, watchers on the server and goroutines grow with the
// number of keys waited on at once. Measured (TestWaitersCost in
// store/etcd/containertest, 100 keys locked, one waiter on each, one
// client): +200 watchers and 1 watch stream on the server, +100 leases
// granted, about 5 goroutines per waiter besides its own. None is held for
// a key nobody waits on; each waiter gives them back when it returns.
//
// # Claims
//
// Store implements core.ClaimStore. K's claim is the etcd key
// P+"claim/"+b64(K), apart from the token and lock ranges (ListKeys never
// reads it), holding the claim's value and put on a lease: when the lease
// runs out etcd deletes the key, so the claim's life is judged by the
// cluster's leader, not by any process's clock, and a former holder's late
// CompareAndSwapClaim compares against nothing and writes nothing.
//
// Claim is one Txn: if the key's create revision is 0 (no key), put the
// value on the lease, else read the key; it returns the value the key then
// holds. CompareAndSwapClaim is one Txn that compares the key's value with
// old and puts the new value on a lease, or deletes the key.
//
// Leases are whole seconds, so a claim of ttl d goes on a lease of
// ceil(d + 250ms) seconds, never less than d. Rather than one lease per
// claim, a Store keeps its latest lease for each such TTL and puts every
// claim on it as long as the lease will still outlive the claim's ttl by
// 100ms when its Txn is sent (measured on this process's monotonic clock
// from before the grant was sent); past that, the next claim grants a new
// lease, one grant for all the callers that need it at once. So:
//
//   - Lifetime: a claim's key is deleted no earlier than d after Claim is
//     called (unless its Txn takes more than 100ms to reach the leader,
//     which comes out of the claim's life) and no later than about
//     d + 1.25s after its Txn, plus the leader's expiry check (up to half a
//     second). The server raises a TTL below its minimum (2s with the
//     default election timeout) to that minimum, and a leader change
//     extends every lease by an election timeout.
//   - Cost: a claim is one round trip, the Txn (a Raft write). A lease is
//     reusable for between 150ms and 1.15s after its grant, depending on
//     how d's fraction of a second rounds, so the grant (a second round
//     trip, also a Raft write) is paid by one claim in many under load,
//     and by every claim that arrives alone. BenchmarkClaim in
//     store/etcd/containertest compares a claim with the client's own
//     Grant plus create-if-absent Txn on the same server: 0.46 to 0.77 of
//     its time on the CI's 2-core machine (one Raft write instead of two;
//     about 2.4ms against 3 to 5ms there), and the same as that Txn alone.
//   - Leases: the server holds at most one lease per claim TTL per Store
//     granted within the last TTL seconds (not one per claim); a lease that
//     is replaced before any claim was written on it (every claim on it
//     lost) is revoked in the background, for at most its TTL.
//   - Clean-up: none to do. Expired and deleted claims leave no key behind;
//     each claim adds a revision to etcd's history until compaction, as a
//     token write does.
//
// A lease that ended early (revoked from outside, or this process paused
// past it) makes the Txn fail with nothing written; Claim then tries once
// more on a new lease. Any other error of the Txn means the claim may or may
// not have been made, as core.ClaimStore says.
//
// # Operational notes
//
//   - Lease rounding: etcd leases are whole seconds, so WithLease(500ms)
//     asks for 1s and WithLease(1500ms) for 2s. The server raises a TTL
//     below its minimum, 1.5 × its election timeout rounded up (2s with
//     the default 1s election timeout), to that minimum, and the store
//     follows the TTL the server granted. The default is
//     core.DefaultLease (15s).
//   - Leader changes: a new leader extends every lease by its election
//     timeout, so after a failover a holder may keep the lock up to one
//     election timeout past its TTL, and a dead holder's lock is freed that
//     much later. Fencing is unaffected: the write is allowed exactly while
//     the server says the lease lives.
//   - Unavailable members: clientv3 retries reads by itself. The store
//     retries the fenced write and the lease revocation (both idempotent)
//     and a failed lock acquisition on "unavailable" errors (a member down,
//     no leader, a leader change), with a short backoff, for at most one
//     lease and never past ctx. Other errors — auth, permission, the
//     context's end — come back at once, wrapped as
//     "etcdstore: refresh "key": …" and matchable with errors.Is (the
//     client's rpctypes errors, context.DeadlineExceeded).
//   - Cost: a Refresh that finds a newer token is one linearizable read. One
//     that refreshes is about seven round trips (read, lease grant, queue
//     Txn, renewal, read under the lock, fenced Txn, revoke; the keepalive
//     and the watch are streams), four of them Raft writes; core.Conf calls
//     it once per credential per process per expiry.
//   - History: every Set and refresh adds a revision of the token key.
//     Tokens change every couple of hours, so this is tiny, but etcd keeps
//     history until compacted: run etcd with --auto-compaction-retention as
//     usual. A waiter whose watch start revision was compacted falls back
//     to the mutex queue.
//   - Credentials: tokens are stored in clear text; protect the prefix with
//     etcd's auth and roles (read/write on the prefix range) and TLS on the
//     client, both configured on the clientv3.Client you pass in.
//
// A Store holds no resources of its own: it has no Close, and it never
// closes the client it was given.
package etcdstore
