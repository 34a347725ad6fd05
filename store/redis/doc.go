// Package redisstore is a core.TokenStore on Redis — standalone, Sentinel or
// Cluster — that lets every instance of a fleet refresh a WeChat token with
// one fetch among all of them.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "redis:6379", ContextTimeoutEnabled: true})
//	store, err := redisstore.New(rdb) // never closes rdb
//	conf, err := core.New(core.Config{AppID: appID, AppSecret: secret, Store: store})
//	tok, err := conf.AccessToken(ctx)
//
// Every instance is a worker; whichever takes a key's lock first is the
// master (中控) for that one refresh. No token server is needed.
//
// # Keys
//
// A user key becomes up to four Redis names sharing one hash tag, the hex
// of the first 128 bits of the key's SHA-256:
//
//	PREFIX{3f0c…}:token   a hash: v (format version "1"), k (the user key),
//	                      t (the token), e (ExpiresAt in Unix ms, "" if zero)
//	PREFIX{3f0c…}:lock    the refresh lock: the holder's random owner token, PX lease
//	PREFIX{3f0c…}:wake    the key's wake name: the message announcing its releases on
//	                      the Store's wake channel PREFIX + "wake"
//	PREFIX{3f0c…}:claim   the key's claim (see "Claims"), a string: the claim's
//	                      value, PX its time to live
//
// PREFIX is DefaultPrefix unless WithPrefix says otherwise. Whatever the key
// holds ("{", "}", ":", "/", unicode, 256 bytes), its names are short,
// safe and on one Cluster slot, so the scripts below always run on one node.
// The token hash keeps the full user key and every read
// checks it, so a collision, or foreign data, would be detected, not
// served. The hash expires (PEXPIREAT) one minute (WithExpiryGrace) after
// the token's ExpiresAt, so keys that are no longer used leave nothing
// behind; a token written already expired is kept for the grace from the
// write, and one with a zero ExpiresAt until it is overwritten. Store.RedisKeys
// names the keys of a user key for operators.
// Since the names are hashed, redis-cli --scan cannot find a user key:
// Store.ListKeys (core.KeyLister, behind the wechatconf command's ls) lists
// them, SCANning (never KEYS) the token hashes under the prefix on every
// master of a Cluster or shard of a Ring and reading their field k.
//
// A stored value that cannot be decoded (not a hash, a format version this
// package does not know, the token of another key) makes Get fail with an
// error naming the Redis key (not core.ErrNotFound); Refresh treats it as
// absent and replaces it.
//
// # The refresh lock, the lease and the fence
//
// Refresh runs a first script (lua/acquire.lua) that, atomically, returns
// the stored token if it differs from stale — somebody already refreshed,
// no lock is taken — and otherwise takes the lock (inside the script, the
// equivalent of SET lock owner NX PX lease, with a random owner token per
// call; an attempt that go-redis sends again after a lost reply recognises
// its own token), or reports the lock's PTTL. The holder fetches with a
// context that ends with its lease (measured from before the script was
// sent, so it ends before the server's), then runs lua/write.lua: only if
// the lock still holds its owner token does it replace the token, delete
// the lock and publish on the wake channel. A holder whose lease ran out,
// or whose lock was deleted or overwritten, writes nothing and gets an
// error wrapping core.ErrLockLost. A holder whose fetch fails runs
// lua/release.lua, which deletes the lock only if it still holds the
// holder's token. A fetched token is written even if the caller's ctx ends
// after the fetch: in WeChat's classic mode the previous token is already
// invalid, so losing the new one would cost another fetch. The scripts are embedded and run with EVALSHA, falling
// back to EVAL after a restart or failover empties the script cache.
//
// A holder that dies frees the lock when its lease (WithLease, default
// core.DefaultLease) runs out: the lease is the longest a fetch may take
// and the longest a dead holder blocks a key.
//
// # Waking the waiters
//
// A caller that finds the lock held makes sure its Store is subscribed
// (SUBSCRIBE) to the Store's wake channel, PREFIX + "wake", on which every
// release of every key under the prefix is announced with the key's wake
// name (PREFIX{3f0c…}:wake) as the message; it waits for the server's
// confirmation, and only then tries again, so a release between its first
// attempt and its subscription cannot be missed; then it sleeps until a
// message naming its key arrives. Messages can be lost (a connection cut,
// a Cluster node down), so a waiter also retries on a timer: just after the
// holder's remaining lease (the PTTL the script returned) — which is how a
// dead holder's lock is taken over promptly — or after WithWaitBackoff
// (200 ms, at most a quarter of the lease) with jitter, whichever is
// sooner. A woken waiter usually finds the new token and returns without
// taking the lock. Releases are also published, with the message
// "released", on the key's own wake name, for the waiters of earlier
// versions of this package during a rolling upgrade.
//
// # Waiting: what it costs
//
// All the callers of one Store that wait, on however many keys, share one
// Pub/Sub connection subscribed to one channel, read by one goroutine,
// which wakes the callers of the key a message names (a map lookup). It is
// opened when the first caller starts waiting and closed when the last one
// stops (a return, or its ctx ending); go-redis reconnects it and
// subscribes again after a connection failure. A waiter itself costs its
// own goroutine, a timer, and one pooled connection for each attempt (an
// EVALSHA), none in between. Measured (TestWaitersBounded in
// store/redis/containertest, 500 keys locked, one waiter on each, one
// Store): 1 Pub/Sub connection, 1 subscribed channel and 1 goroutine of the
// Store, where the earlier design held 500 of each. A Store nobody waits on
// holds no Pub/Sub connection and no goroutine. The price of the shared
// channel is that a waiting Store receives every release under its prefix
// while it waits — one small message per refresh of the fleet, a few per
// second for 10,000 credentials.
//
// Plain PUBLISH/SUBSCRIBE is used, not the sharded SPUBLISH/SSUBSCRIBE of
// Redis 7: it works on every Redis version this package supports (4.0 and
// later, as the scripts use multi-field HSET; tested on 7), on Sentinel
// setups and in Cluster
// mode, where the server forwards the message to every node. Releases are
// rare — one per refresh, a few per hour — so the broadcast costs nothing
// that matters.
//
// # Durable state on a server that forgets
//
// A token with a zero ExpiresAt is durable state (an Open Platform
// authorizer's refresh token): its hash has no TTL, and losing it cannot be
// repaired by a fetch — the merchant must authorize again. A Redis server
// loses such a key when its maxmemory-policy is allkeys-lru, allkeys-lfu or
// allkeys-random (eviction picks among all keys once memory is full;
// volatile-* policies and noeviction never touch a key without a TTL), or
// when it persists nothing (save "" and appendonly no: a restart empties
// it). So after the first durable write of a Store (a Set, or a Refresh
// whose fetch returned a zero ExpiresAt) succeeds, the Store asks the
// server, once, with CONFIG GET maxmemory-policy, save and appendonly (three
// commands in one round trip, bounded by a second and the caller's ctx),
// and if either risk holds logs EventDurabilityRisk at Warn, naming the
// setting and the fix: maxmemory-policy noeviction or volatile-*, AOF or
// RDB snapshots, or durable state kept on another store. Only that first
// durable write pays the round trip; other writes, and every write with an
// ExpiresAt, never ask. The check never fails a write: the write is done
// when it runs.
//
// The event goes to the Store's own logger, the one given with WithLogger
// (by default slog.Default(), Warn and above) — not to the Logger of the
// core.Config or openplatform.Config the Store serves, which the Store
// does not know: give the Store the same logger (redisstore.New(rdb,
// redisstore.WithLogger(logger))) to see it where the rest goes.
//
// To ask at start-up, or in a health check, rather than wait for the first
// durable write, call Store.CheckDurability: it asks the same questions at
// every call and returns the same sentence as the event's "risk" attribute
// ("" when durable state is safe), or an error — wrapping
// ErrDurabilityUnknown when the server refuses CONFIG. It logs nothing
// and does not change the once-per-Store event.
//
// A volatile-* policy (volatile-lru, volatile-lfu, volatile-random,
// volatile-ttl) spares durable state but may still evict keys that have a
// TTL, which every token with an ExpiresAt has. Those are fetched again,
// once, by the next refresh — except openplatform's
// component_verify_ticket (stored with its 12-hour lifetime), which only
// WeChat's next push brings back: losing it costs at most the 10 minutes
// until that push, during which a component_access_token that comes due
// cannot be fetched (openplatform.ErrNoVerifyTicket). noeviction avoids
// that too, at the price of write errors once memory is full.
//
// The check asks where the server lets it. A server that refuses CONFIG
// (renamed or disabled, an ACL user without config|get, most managed
// services) is not asked again and nothing is logged at Warn
// (EventDurabilityUnchecked at Debug). A check that gets no answer (a
// connection error, a timeout) is tried again at the next durable write,
// one at a time. On a Cluster every master is asked (ForEachMaster), on a
// Ring every live shard, and the event names the first node at risk by
// address ("addr"); a Sentinel-backed client (redis.NewFailoverClient)
// asks the current master. A maxmemory-policy that evicts is reported
// even while maxmemory is 0 (no limit): it applies as soon as one is set.
//
// # Claims
//
// Store implements core.ClaimStore natively, for core's de-duplication of
// WeChat's pushes across a fleet. A claim lives under its own Redis name,
// PREFIX{3f0c…}:claim (Store.RedisClaimKey): a plain string holding the
// claim's value, with the claim's time to live as its PX. It shares the
// hash tag of the key's token and lock, so it sits on their Cluster slot,
// but nothing else: a claim never reads or writes the token hash, the
// lock or the wake channel, Get and Refresh never see a claim, and
// ListKeys, which matches ":token" names only, never lists one.
//
// What it costs:
//
//   - Claim is one command, one round trip: SET PREFIX{…}:claim value NX PX
//     ttl GET. A nil reply means the caller made the claim; otherwise the
//     reply is the live claim's value. Redis accepts NX together with GET
//     from 7.0 (the tests run on 7.0). An older server answers "ERR syntax
//     error" and writes nothing; the Store then runs lua/claim.lua, the
//     same step as a script (one round trip too, an EVALSHA), for every
//     later Claim. BenchmarkClaim in store/redis/containertest measures a
//     Claim against the client's raw SET NX PX on the same server in the
//     same run, interleaved: ×0.82 to ×1.09 over 8 runs (×0.97 and ×0.98
//     over all of them) on a 2-core machine at a load average of 10 to 28
//     (Redis 7.0 in Docker on the loopback). What a Claim adds is the key hashing and go-redis's
//     handling of the nil reply that means "won" (32 allocations a call,
//     against 9 for the raw SET NX PX; 30 for the same SET … GET sent
//     raw), a few microseconds against a round trip.
//   - CompareAndSwapClaim is one script, one round trip
//     (lua/swapclaim.lua): if the claim holds old, SET value PX ttl, or DEL
//     when value is "".
//   - Expiry is the server's: ttl is rounded up to a whole millisecond and
//     Redis drops the key when it has passed on its own clock (a GET never
//     sees an expired key, so a late swap finds nothing and brings nothing
//     back). The clocks of the fleet's machines play no part. A released
//     claim is deleted at once; nothing is left behind either way.
//   - Memory: one key per live claim, about 200 bytes with the default
//     prefix and a short value (measured on Redis 7.0: 100,000 claims of a
//     27-byte value took 19.7 MB of used_memory), plus the value's length
//     beyond that. A fleet that makes N claims a second of ttl T holds
//     about N×T of them.
//
// Claims are no more durable than the server: a failover that loses the
// last writes, or a restart without persistence, forgets the claims made
// just before it, and the next Claim of such a key wins again (for
// de-duplication: a push handled twice, never one lost). A claim key
// evicted under an allkeys-* or volatile-* maxmemory-policy is the same.
//
// A Claim that go-redis sends again after a lost reply (its MaxRetries)
// finds its own value and returns it, so the caller learns it won. A swap
// is not idempotent that way: one that landed and is sent again finds the
// new value, not old, and reports false; Claim with the new value tells
// (it returns that value when the swap landed).
//
// # Caveats
//
//   - Failover: Redis replicates asynchronously. If the master fails after
//     granting a lock and before a replica received it, the promoted
//     replica has no lock and a second caller may take it while the first
//     is still fetching: two fetches can happen (in WeChat's classic mode
//     the second invalidates the first token, which core handles by
//     refreshing on the rejection). The fence still holds on the new
//     master: the first holder's write finds no lock of its own and is
//     refused with core.ErrLockLost. Writes that reach a replica fail with
//     a READONLY error that says so; use redis.NewFailoverClient or a
//     Cluster client so that go-redis follows the master.
//   - A restart without persistence loses tokens and locks: the next
//     Refresh fetches, once. Durable state cannot be fetched again: see
//     "Durable state on a server that forgets".
//   - Context deadlines: go-redis bounds a command by its ReadTimeout and
//     WriteTimeout unless the client is built with ContextTimeoutEnabled,
//     in which case ctx deadlines apply too. Every method checks ctx first,
//     and a waiter returns as soon as its ctx ends.
//   - Errors from Redis (connection refused, timeouts, READONLY, MOVED after
//     go-redis ran out of redirects) are returned wrapped with the
//     operation and the key; Refresh does not retry them, since a caller
//     (core.Conf) has its own retry policy.
//   - Expiry uses the clock of the process that writes (PEXPIREAT is an
//     absolute time); only garbage collection depends on it, never a
//     decision about a token.
package redisstore
