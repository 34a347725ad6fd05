// Package containertest holds the test of contrib/silenceper that needs a
// real Redis server: TestFleet, 8 processes running silenceper's Official
// Account API over one Redis store against a simulated classic-token
// WeChat, with the adapter and without. The server is started in Docker by
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
