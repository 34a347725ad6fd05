// Package containertest holds the tests of contrib/silenceper that need a
// real Redis server: TestFleet, 8 processes running silenceper's Official
// Account API over one Redis store against a simulated classic-token
// WeChat, with the adapter and without; and TestMixedFleet, a fleet half
// way through a rolling migration (old instances on silenceper alone with
// its Redis cache, new ones through the adapter, on stable_token or pinned
// to the classic token), whose figures docs/migrating.md quotes. The
// server is started in Docker by
// github.com/wechatconf/wechatconf/conformance/containers
// (testcontainers-go).
//
// It is a module of its own,
// github.com/wechatconf/wechatconf/contrib/silenceper/containertest, so that
// testcontainers-go, the Docker client and the Redis store stay out of the
// module graph of users of contrib/silenceper, which requires only core and
// silenceper/wechat. It is not published and has no API; it is listed in
// go.work, so scripts/test runs it with every other module.
package containertest
