// Package filestore is a core.TokenStore on a local directory, shared by the
// processes of one machine — a web server, a cron job, a CLI — with one token
// fetch per refresh among all of them.
//
//	store, err := filestore.New("/var/lib/myapp/wechat") // created 0700 if missing
//	conf, err := core.New(core.Config{AppID: appID, AppSecret: secret, Store: store})
//	tok, err := conf.AccessToken(ctx)
//
// It is the seed's single-machine way of working (方式 1/2 - 单机环境) without
// writing the get/set functions: point every process at the same directory.
//
// # Files
//
// A key becomes a file name that cannot leave the directory: up to 40
// readable bytes of the key (letters, digits, "_" and "-"; anything else
// becomes "_") followed by the SHA-256 of the whole key in hex, so "../x",
// "/", unicode and 256-byte keys are all safe and short enough for Linux,
// macOS and Windows. Each key has four files:
//
//   - NAME.token holds the token as small versioned JSON,
//     {"v":1,"key":…,"value":…,"expires_at":RFC 3339}. The full key is kept in
//     it and checked on every read. It is replaced atomically and durably
//     (temporary file in the directory, fsync, rename, fsync of the
//     directory) and is readable by nobody but its owner (0600).
//   - NAME.lock is flocked for a few microseconds around every look at or
//     change of the lease record, and around the fenced write.
//   - NAME.lease is the lease record of the refresh lock: the holder's id,
//     the wall-clock instant its lease ends, and whether it holds NAME.held.
//   - NAME.held is flocked by the live holder for as long as it holds the
//     refresh lock.
//
// Do not delete the .lock, .lease or .held files while processes use the
// directory. Deleting the .token file of a token is fine: it is fetched
// again (an Open Platform component_verify_ticket comes back with WeChat's
// next push, within 10 minutes). NEVER delete the .token file of durable
// state: an Open Platform authorizer's record (a key ending in
// /authorizer_refresh_token) or any token written with a zero ExpiresAt
// (its file says "expires_at":"0001-01-01T00:00:00Z"). It cannot be
// fetched again: deleting it loses the merchant, who must authorize again.
// The file name keeps only the key's first 40 readable bytes, so it may
// not show the suffix: read the "key" inside the file.
//
// Store.ListKeys (core.KeyLister, for the wechatconf command's ls) lists
// the keys of the .token files, read from inside each file since the name
// shows only part of the key; it costs one small read per token file.
//
// The store never removes a key's token files, expired or not (claims are
// another matter: see Claims below): an expired token
// stays until it is overwritten, and a key no longer used leaves its four
// files behind. Clean them up yourself if they accumulate (never the
// durable ones above, nor the files of a key a process may still use).
//
// # The refresh lock, the lease and the fence
//
// The refresh lock of a key is the lease record, not a flock held across the
// fetch: a flock cannot be taken away from a live process that hangs, and
// the TokenStore contract requires that a holder outliving its lease lose
// the lock. Refresh takes the lock by writing its own record (a random
// owner id and now+lease) under the flock of NAME.lock when the record is
// free, expired, or names a holder that died. The fetch runs with a context
// that ends with the lease. The fetched token is written only if, under the
// same flock, the record still names this holder and its lease (measured on
// its monotonic clock) has not run out: the check and the rename are one
// critical section, so a late holder can never overwrite the token of the
// holder that took over; it gets an error wrapping core.ErrLockLost.
//
// A dead holder is noticed at once, not after its lease: while it holds the
// lock, a holder also keeps NAME.held flocked, and the operating system
// drops that flock the moment the process dies (SIGKILL included). A waiter
// that finds the record held but NAME.held free takes over immediately. A
// live holder that hangs past its lease keeps its flock of NAME.held, so
// the waiter that takes over from it records that it holds no flock, and
// its own crash, should it happen, is noticed when its lease runs out.
//
// Waiters look at the record again after a short backoff with jitter
// (1 ms doubling up to WithWaitBackoff, 5 ms by default); waiters in the
// same Store value wake the moment a Refresh of that value releases the
// lock, and only one of them polls the files at a time.
//
// # Claims
//
// Store implements core.ClaimStore, for de-duplicating pushes among the
// processes of the machine. Claims live apart from tokens, in the
// subdirectory "claims" (created 0700 on the first claim): the claim of
// key K is claims/NAME.claim, NAME being K's file name as above (so any key
// stays inside the directory), holding the line
// "wechatconf-claim 1 UNTIL KEYLEN VALUELEN" and then the key and the
// value byte for byte. UNTIL is the end of the claim's life on the local
// wall clock (Unix nanoseconds): now + ttl when it was written, to the
// nanosecond, no rounding. ListKeys never looks into claims/.
//
// A claim file is read, replaced or removed only under the flock of its
// stripe, claims/locks/XX.lock, XX being the first byte of K's SHA-256 in
// hex: 256 lock files in all, never removed, each held for the few
// microseconds of one claim. Claim reads the file and, if there is none,
// it cannot be decoded, or its claim has expired, writes a temporary file
// and renames it over the claim file (an atomic replacement); otherwise it
// returns the value in it. CompareAndSwapClaim, under the same flock,
// replaces the file or removes it if it holds a live claim of old. An
// expired claim is therefore dead for every process at once, and its
// former holder's late swap finds it expired and writes nothing.
//
//   - Cost: a claim is a flock, a small read, and when it wins a
//     temporary file, a small write and a rename, all local and without
//     fsync: about ten system calls (BenchmarkClaim: 0.4 to 0.8 ms on the
//     CI's virtual machine, where opening a file costs most of it).
//     Claim files are not synced: a machine crash may forget claims, but
//     it also ends every process that held them, and the at-least-once
//     guarantee is kept (a push's retry is then handled again).
//   - Clock: claims are judged on the local wall clock, shared by every
//     process of the machine. A step of the clock forward ends live claims
//     early (a retry may then be handled twice); a step back lengthens
//     them.
//   - Clean-up: expired claim files are removed lazily and in bounded
//     steps: every 16th Claim call of a Store value reads the next 64
//     entries of claims/ and removes (under their stripe's flock, after
//     looking again) the claim files that have expired or cannot be
//     decoded, and temporary files older than ten minutes; nothing else
//     walks the directory. Each Store value keeps claims/ open between two
//     steps to resume where it stopped, and starts over at its end, so
//     every expired file is removed within one pass of some Store value
//     that keeps claiming. Until then an expired file costs only its inode.
//     A released claim (swapped to "") is removed at once.
//
// # Caveats
//
//   - The directory must be on a local filesystem. flock semantics on
//     network filesystems (NFS, SMB, some FUSE and container volume drivers)
//     are unreliable: locks may be emulated per host, silently ignored, or
//     lost when a server restarts. Processes on different machines sharing a
//     directory get no exclusion; use the Redis, PostgreSQL or etcd store.
//   - Leases are judged on the wall clock when another process looks at
//     them: a step of the system clock forward can end a live holder's lease
//     early (its write is then refused, safely, with ErrLockLost), a step
//     back can lengthen a hung holder's lease. A holder judges its own lease
//     on the monotonic clock.
//   - New creates the directory with mode 0700 when it is missing and leaves
//     the mode of an existing directory as it is: keep it private, the files
//     hold credentials.
//   - On Windows, files are locked with LockFileEx, the directory is not
//     fsynced (Windows cannot), and a rename that collides with a reader is
//     retried for a short while.
//
// A Store needs no Close. It holds no open files between calls, except,
// once it has made claims, the claims directory its clean-up reads in
// steps (closed at the end of each pass over it, and by the garbage
// collector with the Store).
package filestore
