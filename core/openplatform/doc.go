// Package openplatform keeps the credential chain of a WeChat Open
// Platform third-party platform (第三方平台) valid across a fleet, for
// thousands of authorizers, on the same engine and TokenStore as package
// core:
//
//  1. WeChat pushes a component_verify_ticket about every 10 minutes to
//     the authorization event URL: HandleEvent stores it, newest (by the
//     push's CreateTime) wins.
//  2. The component_access_token (one per platform) is fetched with it.
//  3. A merchant authorizes: the authorization code is exchanged for the
//     authorizer's access token and its authorizer_refresh_token.
//  4. Each authorizer_access_token is fetched with the component token and
//     that refresh token, which is durable state: lose it and the merchant
//     must authorize again.
//  5. Component.Authorizer(appid) is a core.Conf for the merchant: Do,
//     tickets, Transport, JSSDKConfig, as for a single account.
//
// # Store keys
//
//	key (under <KeyPrefix>/open/<component_appid>/)     store          what
//	component_verify_ticket                              DurableStore   the ticket, ExpiresAt = CreateTime + 12 h
//	<authorizer_appid>/authorizer_refresh_token          DurableStore   the authorizer's record (below), durable: zero ExpiresAt
//	component_access_token                               Store          the component token
//	<authorizer_appid>/jsapi_ticket, …/wx_card_ticket    Store          the authorizer's tickets
//	authorization_code/<hash>                            Store          which authorizer a code named, until the code expires
//
// Config.DurableStore is Config.Store when it is nil. The CLI's inspect
// takes one store: with a DurableStore, inspect each.
//
// # Durable state is one record per authorizer
//
// An authorizer's authorizer_refresh_token cannot be fetched again: lose
// it and the merchant must authorize again. It is kept, together with the
// authorizer's current authorizer_access_token, the state of the
// authorization (authorized or withdrawn) and the time of the event that
// set it, in ONE value under the authorizer's key (AuthorizationKey), which
// every transition replaces whole by a fenced compare-and-set through the
// key's lock:
//
//   - a token refresh runs under that lock with the record the store holds
//     and writes the next record in one fenced write: a refresh token
//     WeChat rotates lands together with the access token it came with —
//     there is no second write for a store error or a crash to fall between;
//     a fenced write that does not land (a lost lease, a store error, a
//     store that does not answer) leaves the record WeChat's reply made
//     with the engine, which serves it and writes it back (see core's
//     Credential);
//   - an authorization (the authorized and updateauthorized pushes, the
//     redirect: Authorize) and a withdrawal (the unauthorized push:
//     Unauthorize) are written forward, ordered by the push's CreateTime:
//     an event older than the state the store holds — delayed, re-sent,
//     delivered to two instances at once — is acknowledged and ignored
//     (Event.Applied AppliedOlderIgnored), and the second delivery of one
//     authorization (the redirect and the push carry the same code)
//     changes nothing (AppliedAlready), whether or not WeChat exchanges a
//     code twice. A code WeChat exchanges is the newest authorization (an
//     exchange voids the refresh token before it, and a withdrawal voids
//     the codes before it), so its record replaces any other and is dated
//     after it. In the same second of CreateTime an authorization wins
//     over a withdrawal: a withdrawal wrongly kept would lose the
//     merchant, an authorization wrongly kept is refused by WeChat (61003,
//     backed off) until the merchant authorizes again. The redirect is
//     dated by this process's clock until its push brings WeChat's time;
//     a process stopping should call Component.Flush;
//   - a write the store does not take is retried within
//     Policy.RefreshTimeout, then held in memory and written in the
//     background until it lands (Component.Held); the caller gets the
//     store's error, so that a push is not answered "success" and WeChat
//     delivers it again.
//
// A failed fetch never touches the record; an expiry never drops it (no
// store expires a zero ExpiresAt). Only a withdrawal (a durable state, not
// a deletion, so a slow holder cannot bring the old token back) or a newer
// authorization replaces the refresh token. Its absence, a withdrawal, or
// WeChat refusing it (61023) is a *ReauthorizeError naming the AppID. A
// value written by an earlier version under the key (a bare refresh token,
// an "unauthorized@" marker) is read as a record of unknown time and
// replaced by the first refresh.
//
// Back it up with the store: in Redis the hashes named by
// redisstore's Store.RedisKeys(key) for the keys above (or a SCAN of
// <prefix>:*:token keeping those whose field k ends in
// /authorizer_refresh_token; zero ExpiresAt: no TTL), in PostgreSQL the
// rows of wechatconf_tokens whose key ends in /authorizer_refresh_token,
// in etcd and the file store the keys above (a file store's
// authorizer_refresh_token files are not a cache: never delete them). A
// Component does not list its authorizers: keep the AppIDs (the
// authorized pushes name them). Read one refresh token with
// Component.RefreshToken, restore (or migrate from another SDK) with
// Component.ImportRefreshToken — and restore the component_verify_ticket
// too, or wait up to 10 minutes for WeChat's next push before the first
// token can be fetched. A Redis
// that evicts keys or persists nothing forgets them: keep them on another
// store with Config.DurableStore (redisstore logs an event when it finds
// its server so configured).
//
// # What the ordering cannot see
//
// Measured by conformance.Sweep and two red-team passes; what is left,
// each needing two faults or a clock wrong by more than the time between
// two of the merchant's own actions:
//
//   - A redirect is dated by this process's clock (after what the store
//     held) until its push brings WeChat's CreateTime: a withdrawal made
//     within the clock's error after it is ignored, and WeChat's 61003
//     (backed off) then refuses the merchant's tokens until it authorizes
//     again.
//   - A withdrawal made and written by another instance in the moment
//     between a redirect's code exchange and its write is overwritten by
//     the authorization (61003 again).
//   - With rotating refresh tokens, a refresh whose write fails in the
//     seconds between a redirect and its push loses its rotated refresh
//     token to the push's re-dating (the store holds another value, so the
//     write-back gives way): 61023 at the next refresh.
//   - With rotating refresh tokens, a process killed inside a refresh —
//     after WeChat's reply, before the fenced write — loses the rotated
//     refresh token (61023 at the next refresh): nothing but WeChat's reply
//     held it. Only a crash in that window of milliseconds does.
//   - A process killed between a code's exchange and its record's write
//     loses the reply: WeChat's re-sent push brings it again only where a
//     code may be exchanged twice (see wxtest's PathQueryAuth); under a
//     strictly single-use reading nothing can.
//
// # Scale
//
// A Component holds no goroutine, timer or subscription per authorizer:
// an authorizer's handle is made on first use (no I/O; about 700 bytes of
// heap per authorizer holding its token — BenchmarkTenants, at 1,000 to
// 100,000 authorizers; 1 KB with the memory store's copy of its record,
// BenchmarkAuthorizersAtRest — since every authorizer's access-token
// Credential is of one core.CredentialKind and its Conf of one
// core.ConfFamily, which hold what they share), kept in a bounded registry
// (Config.MaxAuthorizers, least recently used dropped; a handle a caller
// still holds is found again, never duplicated; durable state is never
// dropped), and its token is fetched only when asked for. Refreshes ahead
// are spread with Policy.RefreshJitter (DefaultRefreshJitter) so that
// tokens fetched together do not come due in the same second — but that
// moves a token by minutes, and each process draws its own, the fleet
// refreshing at the earliest draw: authorizers authorized together (a
// launch, 100,000 within an hour) would come due together again at every
// 2-hour cycle of the day. So an authorizer's first token (the code
// exchange's, or the first one fetched for a record that holds none) is
// trusted for a random part of its life, between a quarter and all of it
// (core/internal/tenant's firstExpiry): the first refreshes, and so the
// later ones, are spread over a whole cycle, for three eighths of a fetch
// per authorization on average. Measured by BenchmarkRefreshSpreading
// (100,000 authorizers, 8 processes, a simulated day: BENCHMARKS.md,
// "Refresh spreading") and, scaled down, TestRefreshSpreading.
//
// # Layout
//
// The mechanism under all of this — the ticket, the records and their
// ordered transitions, the writes held, the registry — is
// core/internal/tenant, shared with the WeCom vendor package; this package
// is its harness for Open Platform: the paths, JSON fields and error codes
// of api_component_token, api_query_auth and api_authorizer_token, the
// authorization events' XML, and the Authorizer handle (a core.Conf).
//
// The simulated Open Platform for tests is core/wxtest.
package openplatform
