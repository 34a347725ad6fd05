// Package containertest holds the tests of contrib/silenceper that need a
// real Redis server, each running silenceper's API in several OS processes
// over one Redis store against the simulated WeChat (core/wxtest), with the
// adapter and without (silenceper's own per-process token cache):
//
//   - TestFleet: 8 processes, the Official Account (GetCallbackIP), 8
//     simulated hours of classic tokens;
//   - TestFleetPlatforms, one subtest each, 4 processes: a Mini Program
//     (customer messages, classic tokens), a WeCom app (application
//     messages) and an Open Platform authorizer's Official Account (the
//     verify ticket pushed every 10 minutes);
//   - TestMixedFleet: a fleet half way through a rolling migration (old
//     instances on silenceper alone with its Redis cache, new ones through
//     the adapter, on stable_token or pinned to the classic token), whose
//     figures docs/migrating.md quotes.
//
// The server is started in Docker by
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
