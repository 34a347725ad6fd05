// Package containertest holds the tests of store/postgres (pgstore) that need a real
// PostgreSQL server: conformance.Run (including the SIGKILLed holder in a child
// process, which re-executes this test binary), ProcessHerd, ProcessHerdOf
// through a WeCom app's access_token, OpenPlatformFleet (8 processes × 1000
// Open Platform authorizers), the WeCom vendor fleets (conformance.VendorFleet,
// 8 processes × 500 corps of a third-party suite and of a custom-developed
// one), fault
// injection (stopped, paused, restarted servers) and the store's own checks
// against the server. The servers are started in Docker by
// github.com/wechatconf/wechatconf/conformance/containers (testcontainers-go).
//
// TestPushFleet runs conformance.PushFleet on the real server: 8 processes
// serving an Official Account, a WeCom app and an Open Platform component
// with one core.Dedup receive 300 pushes as WeChat sends them (re-sent
// after 5 s without a 200, up to three times, to a random instance), some
// handlers slow or failing and 6 processes killed mid-handler; every push
// must be handled, and none twice but after a crash or a failure.
//
// TestSweepPostgres runs conformance.Sweep on the real server: one fault at every
// store call of each durable-state scenario, the invariants checked after.
//
// It is a module of its own, github.com/wechatconf/wechatconf/store/postgres/containertest,
// so that testcontainers-go and the Docker client stay out of the module graph
// of users of store/postgres (pgstore): the store module requires only core and its
// client library. It is not published and has no API; it is listed in go.work,
// so scripts/test runs it with every other module.
package containertest
