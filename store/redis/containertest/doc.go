// Package containertest holds the tests of store/redis (redisstore) that need a real
// Redis server: conformance.Run (including the SIGKILLed holder in a child
// process, which re-executes this test binary), ProcessHerd, ProcessHerdOf
// through a WeCom app's access_token, OpenPlatformFleet (8 processes × 1000
// Open Platform authorizers), the WeCom vendor fleets (conformance.VendorFleet,
// 8 processes × 500 corps of a third-party suite and of a custom-developed
// one), fault
// injection (stopped, paused, restarted servers), the store-outage proof
// (TestStoreOutage: 8 processes calling through a minute without Redis,
// stable_token and classic), the secret-rotation proof (TestSecretRotation:
// the AppSecret reset under 8 processes reading it from a mounted file,
// recovered with no restart), a Sentinel failover under a fleet of 8
// processes (TestSentinelFailover: the master is killed while a token
// refresh is in flight), the durability check (TestDurabilityRisk: servers
// that evict keys without a TTL, persist nothing, refuse CONFIG, or keep
// durable state safe; once per Store; every master of a Cluster) and the
// store's own checks against the server. The servers are started in Docker by
// github.com/wechatconf/wechatconf/conformance/containers (testcontainers-go).
//
// Claims (core.ClaimStore, claims_test.go) are checked through a plain
// server and a Cluster (TestStandalone/Claims, TestCluster/Claims) and
// through Sentinel on the promoted master after TestSentinelFailover's
// failover; BenchmarkClaim compares a Claim with the client's raw SET NX
// PX in the same run (its "ratio" metric).
//
// TestPushFleet runs conformance.PushFleet on the real server: 8 processes
// serving an Official Account, a WeCom app and an Open Platform component
// with one core.Dedup receive 300 pushes as WeChat sends them (re-sent
// after 5 s without a 200, up to three times, to a random instance), some
// handlers slow or failing and 6 processes killed mid-handler; every push
// must be handled, and none twice but after a crash or a failure.
//
// TestSweepRedis runs conformance.Sweep on the real server: one fault at every
// store call of each durable-state scenario, the invariants checked after.
//
// The fetch ledger across a fleet (outsidefetch_test.go): 8 processes on one
// Redis, each a core.Conf with its Instance, driven round by round on a
// simulated clock the parent owns (conformance/containers/childproc).
// TestLedgerOutsideFetcher: the parent fetches a classic token outside the
// fleet 5 times; each is named once fleet-wide (EventOutsideFetch, with the
// fleet's fetch of the killed token as evidence) and the ledger counts what
// WeChat issued to the fleet. TestLedgerFleetDayNoFalseAlarm: a simulated
// day with forced refreshes, expiries and lock contention and no one
// outside: nothing is named.
//
// It is a module of its own, github.com/wechatconf/wechatconf/store/redis/containertest,
// so that testcontainers-go and the Docker client stay out of the module graph
// of users of store/redis (redisstore): the store module requires only core and its
// client library. It is not published and has no API; it is listed in go.work,
// so scripts/test runs it with every other module.
package containertest
