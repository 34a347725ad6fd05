// Package conformance checks that a core.TokenStore keeps the TokenStore
// contract: the same suite runs on every store of this project and on any
// store a user writes.
//
// # What it checks
//
// Run runs one subtest per rule, each on fresh keys, each with a watchdog:
//
//   - storage: Set/Get round trip, ErrNotFound for a missing key, overwrite,
//     ExpiresAt kept to the millisecond, values of 1 byte to 4 KiB kept whole;
//   - keys: hostile keys ("a/b", "../../etc/passwd", "{tag}", "a:b", quotes,
//     "%", spaces, unicode, 256 bytes) and keys that are prefixes of one
//     another each get their own storage and their own lock;
//   - Refresh rules 1–4: no fetch when the stored value differs from stale, a
//     fetch when it equals stale or nothing is stored, a failed fetch writes
//     nothing and its error still matches with errors.Is and errors.As;
//   - several store values: a token written through one is seen through
//     another; a herd of callers on several store values fetches exactly once;
//     waiters wake promptly when the holder finishes (rule 6);
//   - ctx: a waiter whose ctx ends returns at once without leaking the lock,
//     and every method refuses an already cancelled ctx;
//   - the lease: fetch's context ends with the lease, and a holder that
//     outlives its lease loses the lock and its write (fencing, ErrLockLost);
//   - a crash (rule 5): a holder in another OS process is killed with SIGKILL
//     and the lock is free again within the lease.
//   - listing, for a store that implements core.KeyLister: ListKeys lists
//     the keys stored by Set and Refresh, sorted and each once, selects
//     them by prefix byte for byte, never lists a lock or other name of the
//     store, honours ctx, and lists every key exactly once while other
//     store values write. A store that does not list has these checks
//     skipped, with that reason.
//   - claims (core.ClaimStore), on every store: on the store's own
//     ClaimStore when it implements one, else on core.ClaimsOver(store),
//     the emulation over Refresh that core.ClaimStoreFor gives it (each
//     check logs which, so the emulation is proved on every store without
//     one). Exactly one of many concurrent claimers wins, on several store
//     values and across OS processes (child processes, as for the crash
//     check); a claim with the held value returns it; values are kept and
//     compared whole; CompareAndSwapClaim replaces, extends and deletes
//     only from the held value; a claim lives for its ttl and is gone
//     within ttl + 2s + half the lease (a probe Claim polls until it
//     wins), also when its holder was killed; an expired claim is never
//     brought back by its former holder; claims and tokens under one key share nothing
//     and ListKeys never lists a claim (native ClaimStores only: the
//     emulation keeps claims as tokens); bad arguments and a cancelled ctx
//     are errors that write nothing.
//
// Benchmark measures Get, Set and Refresh on its fast path, its fetch path
// and under contention, a Claim that wins and one that loses (with the store
// calls a claim makes), and ListKeys over 10,000 keys.
//
// ProcessHerd is the fleet check, run from a test of its own: several OS
// processes (the test binary started again, like the crash check's child)
// each build a core.Conf over the store and call AccessToken from many
// goroutines at once against one simulated WeChat API in classic mode;
// exactly one token fetch may reach it.
//
// ProcessHerdOf runs the same herd through any core.Credential, described
// by a HerdKind: its Name (for the log line), the wxtest.Options of the
// simulated server, the wxtest path whose calls are the fetches, and New,
// which builds the credential over a store in each child. The package
// provides two kinds:
//
//   - OfficialAccountClassic: an Official Account's access_token in classic
//     mode (core.Conf.AccessTokenCredential; /cgi-bin/token), where each fetch
//     invalidates the last token. ProcessHerd is ProcessHerdOf with it.
//   - WeComApp: a WeCom app's access_token (core/wecom,
//     wecom.App.AccessTokenCredential; /cgi-bin/gettoken). gettoken returns the
//     same token while it is valid, so only the count of gettoken calls, which
//     must be 1, tells a herd that fetched once from one that fetched per
//     process.
//
// Each herd logs one line per round, e.g.
//
//	ProcessHerd wecom access_token: 8 processes × 50 goroutines: 1 token fetch(es), herd done 250ms after release (WeChat latency 50ms)
//
// The child process runs the calling test again, so the kind need not be
// passed to it; give each kind a test of its own:
//
//	func TestProcessHerd(t *testing.T)      { conformance.ProcessHerd(t, harness(t), 8, 50) }
//	func TestProcessHerdWeCom(t *testing.T) { conformance.ProcessHerdOf(t, harness(t), conformance.WeComApp, 8, 50) }
//
// VendorFleet is the fleet check of a vendor platform, one implementation
// for the three platforms: VendorOpenPlatform (core/openplatform: a
// component and its authorizers), VendorWeComThirdParty (core/wecomvendor:
// a third-party app's suite and the corps that installed it, corp tokens
// from get_corp_token with the suite_access_token) and VendorWeComCustom (a
// custom-developed app template, 代开发, corp tokens from gettoken with the
// permanent_code). Run from a test of its own per platform: the parent
// starts the simulated platform (core/wxtest) with one vendor, delivers a
// ticket push and each tenant's authorization push (create_auth for WeCom:
// the permanent codes go through the real exchange) to a vendor of its own
// (HandleEvent), then several OS processes each build the vendor over the
// store and call the API as every tenant (Authorizer(appid).Do,
// Corp(corpid).Do) from FleetWorkers goroutines, in cycles. The simulated
// clock is the parent's, sent to the children at each cycle: on the cold
// start the vendor's own token is adopted, and each tenant's token too
// where the authorization stored it (Open Platform) or fetched once in the
// whole fleet where it did not (WeCom); after each move of the clock past
// every token's expiry, exactly one fetch per tenant and one of the
// vendor's own token (component_access_token, suite_access_token) in the
// whole fleet, counted both as tokens minted and as calls of the fetch path
// (WeCom's gettoken hands a valid token back, so only the calls show a
// second fetch); in every cycle no caller may get an error; after the run
// each tenant's stored durable secret (refresh token, permanent code) must
// still be the one the platform accepts. Each cycle logs one line, e.g.
//
//	VendorFleet wecom third-party: 8 processes × 500 corps, cycle 1: corp fetches 500 (want 500, max per corp 1, calls of /cgi-bin/service/get_corp_token 500), suite fetches 1 (want 1), caller errors 0 (cycle done 7.3s after release, WeChat latency 5ms)
//
//	func TestOpenPlatformFleet(t *testing.T) { conformance.OpenPlatformFleet(t, harness(t), 8, 1000) }
//	func TestWeComVendorFleet(t *testing.T) {
//		conformance.VendorFleet(t, harness(t), conformance.VendorWeComThirdParty, 8, 500)
//	}
//
// OpenPlatformFleet(t, h, procs, n) is VendorFleet(t, h, VendorOpenPlatform,
// procs, n). Extra fetches (and refreshes that lost their lock with no
// newer token stored) that a holder outliving its lease may explain are
// ProcessHerd's case: the round is run again, and the last round must be
// exact.
//
// PushFleet is the fleet check of "every push handled once" (core.Dedup),
// run from a test of its own: the parent plays WeChat and Procs child
// processes (default 8) each serve an Official Account in safe mode
// (core.Conf.MessageHandler), a WeCom app (wecom.Callback.Handler) and an
// Open Platform component's message URL (openplatform.Component.MessageHandler)
// on one core.Dedup over the store. WeChat sends encrypted pushes (300
// over 30 s by default: text messages, events, and pairs of different
// events from one user in the same second), each to a random live
// process, again 5 s after a delivery without a 200 answer, up to three
// times. Each push carries its handler's behaviour, drawn from a logged
// seed: 20% take 5–9 s, 5% fail on their first delivery, and a few block
// until the parent kills their process with SIGKILL — only when every push
// the victim holds keeps a delivery waiting after the victim's claims run
// out, else the kill is postponed, or the handler released ("spared"); a
// new process replaces the killed one. The children print their history
// (handler starts and finishes, each delivery's answer, Dedup's claim-lost
// and unguarded events), and a checker requires (a) every push handled and
// (b) no push started again unless every earlier start failed, crashed,
// lost its claim or ran unguarded (the last two are Dedup's documented
// limits, shown by its events). One line sums it up, e.g.
//
//	PushFleet: seed 0x87eb…, 8 processes, 300 pushes (160 messages, 140 events, 22 same-second event pairs), 392 deliveries (92 retries; answers: 56 duplicate, 7 failed, 300 handled, 5 in_progress), 7 reached their last delivery, 1 got no 200 from the fleet; 6 kills (0 postponed, 0 spared), 326 handlers started, 300 pushes handled; handled again: 19 after crashes, 7 after failures, 0 after lost claims, 0 unguarded, 0 other; took 42s
//
//	func TestPushFleet(t *testing.T) { conformance.PushFleet(t, harness(t), conformance.PushFleetConfig{}) }
//
// PushFleetConfig sizes the run (processes, pushes, spread, kills, seed).
// BenchmarkPushFleet measures the same fleet's throughput with handlers
// that return at once: pushes/s and duplicates (which must be 0).
//
// # Results tables
//
// ReportRow logs one row of a results table (a table name and named string
// cells) as a "wechatconf-row: {…}" line, which scripts/bench collects from
// the go test -v output of its table sections and tools/benchreport
// renders into BENCHMARKS.md, one "## <table>" section per table name.
//
// # Testing your own store
//
// In a _test.go file of the store's package:
//
//	func TestConformance(t *testing.T) {
//		addr := os.Getenv("MYSTORE_ADDR") // set in the crash check's child
//		if addr == "" {
//			addr = startServer(t)
//		}
//		conformance.Run(t, conformance.Harness{
//			NewStore: func(t testing.TB) core.TokenStore {
//				s := mystore.New(mystore.Dial(addr), mystore.WithLease(time.Second))
//				t.Cleanup(func() { s.Close() })
//				return s
//			},
//			Lease:    time.Second,
//			ChildEnv: []string{"MYSTORE_ADDR=" + addr},
//		})
//	}
//
// NewStore must build the stores with the Lease given in the Harness. Each
// value it returns stands for a separate process: over a shared backend,
// return a new client (or connection) each time. A store whose lock lives in
// its own memory (core.MemoryStore, core.FuncStore) must return the same value
// every time, since two such values share nothing, and sets
// Harness.SingleProcess.
//
// # The crash check
//
// RefreshSurvivesCrashedHolder starts the test binary again (os.Args[0],
// -test.run selecting the test that called Run) with Harness.ChildEnv added
// to the environment and an internal variable that makes Run in the child
// play the holder only: it builds a store with NewStore, enters Refresh with a
// fetch that reports on stdout and never returns, and is killed by the parent
// with SIGKILL. The child therefore runs the same test function, and TestMain
// if there is one: both must reach the parent's backend through ChildEnv
// instead of starting one of their own. A store without a backend another
// process can reach declares it with Harness.SingleProcess; the check is then
// skipped with that reason. It is also skipped on Windows and Plan 9.
//
// ClaimOneWinnerAcrossProcesses and ClaimCrashedHolder start the test binary
// the same way, with variables of their own: three children that claim
// keys together with the parent and report what they got on stdout, and a
// child that claims a key and is killed with SIGKILL. They need the same
// ChildEnv, and are skipped under Harness.SingleProcess.
//
// # Reading failures
//
// Subtest names are stable and name the rule
// (TestMyStore/RefreshHerdFetchesOnce); Run's documentation lists them with
// their rules. Messages name the operation, the key and the rule, for
// example
//
//	Refresh("cf1a2b3c4d/RefreshHerdFetchesOnce/k", stale="old"): fetch ran 3 times, want 1 (rules 1–2: 100 callers on 4 store values)
//
// A rule number refers to the TokenStore documentation in core.
//
// Timing checks log what they measured (the wake latency, how long the
// takeover of a killed holder's lock took) and the bound they held it to;
// run with -v to see it. No bound is a constant tuned on an idle machine: a
// bound that is the point of a check is the rule's allowance plus a margin
// scaled from what the same store values cost at that moment, measured in
// the same check, and a lock is proved free by a fetch before the lease of
// any lock that could have leaked would run out. So a busy machine (the race
// detector, a loaded CI runner) does not fail a correct store, while a store
// that polls on a coarse tick, or whose lock outlives its lease, still fails.
//
// A check still running 30s + 4×Lease after it started fails with a
// "watchdog:" message naming it, and its context is cancelled so that a
// store that honours ctx lets the run go on. A store method that ignores ctx
// even then makes Run panic with the check's name rather than hang until go
// test's -timeout.
package conformance
