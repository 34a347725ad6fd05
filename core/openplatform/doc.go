// Package openplatform keeps the credential chain of a WeChat Open
// Platform third-party platform (第三方平台) valid across a fleet, for
// thousands of authorizers, on the same engine and TokenStore as package
// core:
//
//  1. WeChat pushes a component_verify_ticket about every 10 minutes to
//     the authorization event URL: HandleEvent stores it, newest wins.
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
//	<KeyPrefix>/open/<component_appid>/component_verify_ticket       the ticket, ExpiresAt = CreateTime + 12 h
//	<KeyPrefix>/open/<component_appid>/component_access_token
//	<KeyPrefix>/open/<component_appid>/<authorizer_appid>/access_token
//	<KeyPrefix>/open/<component_appid>/<authorizer_appid>/authorizer_refresh_token   durable (no ExpiresAt)
//	<KeyPrefix>/open/<component_appid>/<authorizer_appid>/jsapi_ticket, …/wx_card_ticket
//
// # The refresh token is durable state
//
// It is written only forward: by Authorize (replacing an earlier
// authorization's, through the key's lock, after any refresh in flight),
// and, when a refresh reply carries a different one, by a compare-and-set
// from the one that refresh used (Credential's Commit, after the access
// token's fenced write) — so an older value never replaces a newer one. A
// failed fetch never touches it; an expiry never drops it (it is stored
// with a zero ExpiresAt, which no store expires). Only the unauthorized
// event removes it, by a durable marker. Its absence, the marker, or
// WeChat refusing it (61023) is a *ReauthorizeError naming the AppID.
//
// Back it up with the store: in Redis the hashes under the keys above
// (zero ExpiresAt: no TTL), in PostgreSQL the rows of wechatconf_tokens
// whose key ends in /authorizer_refresh_token, in etcd and the file store
// the keys above; restore (or migrate from another SDK) with
// Component.ImportRefreshToken.
//
// # Scale
//
// A Component holds no goroutine, timer or subscription per authorizer:
// an authorizer's handle is made on first use (a few hundred bytes of
// memory, no I/O), kept in a bounded registry (Config.MaxAuthorizers,
// least recently used dropped; durable state is never dropped), and its
// token is fetched only when asked for. Refreshes ahead are spread with
// Policy.RefreshJitter (10 minutes by default) so that tokens fetched
// together do not come due together.
//
// The simulated Open Platform for tests is core/wxtest.
package openplatform
