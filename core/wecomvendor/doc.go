// Package wecomvendor keeps the credential chain of a WeCom vendor
// (企业微信服务商) valid across a fleet, for thousands of corps, on the
// same engine and TokenStore as package core — third-party apps (第三方应用)
// and custom-developed apps (代开发应用) alike:
//
//  1. WeCom pushes a suite_ticket every 10 minutes (valid 30) to the
//     command callback URL (指令回调URL): Suite.HandleEvent (or
//     EventHandler) stores it, newest by the push's TimeStamp wins.
//  2. The suite_access_token (one per suite) is fetched with it
//     (get_suite_token).
//  3. A corp installs the app: the auth code — pushed (create_auth) or
//     redirected (Suite.Authorize) — is exchanged at get_permanent_code
//     for the corp's permanent_code, which is durable state: lose it and
//     the corp must install again. cancel_auth withdraws it;
//     reset_permanent_code (custom-developed apps) replaces it.
//  4. Each corp's access_token: get_corp_token with the permanent_code and
//     the suite_access_token (third-party), or gettoken with the
//     permanent_code as the app's secret (custom-developed, a suite id
//     starting "dk"; Config.CustomApp).
//  5. Suite.Corp(corpid) is a wecom.App for the corp: AccessToken, the
//     corp's jsapi_ticket and the app's agent_config ticket, Do,
//     Transport, JSSDKConfig, AgentConfig, as for a self-built app.
//  6. The provider_access_token (get_provider_token) for the vendor's own
//     calls: Provider.
//
// # Store keys
//
//	key (under <KeyPrefix>/wecomvendor/<suite_id>/)   store          what
//	suite_ticket                                       DurableStore   the ticket, ExpiresAt = TimeStamp + 30 min
//	<corpid>/permanent_code                            DurableStore   the corp's record (below), durable: zero ExpiresAt
//	suite_access_token                                 Store          the suite token
//	authorization_code/<hash>                          Store          which corp a code named, until it expires
//	<KeyPrefix>/wecom/<corpid>/jsapi_ticket            Store          the corp's JS-SDK ticket (shared with the corp's own apps)
//	<KeyPrefix>/wecom/<corpid>/<suite_id>/agent_config_ticket  Store  the app's ticket
//	<KeyPrefix>/wecomvendor/provider/<corpid>/provider_access_token  Store  Provider's token
//
// # Durable state is one record per corp, ordered by WeCom's TimeStamp
//
// A corp's permanent_code is kept with its current access_token, the
// state of the install (installed or cancelled) and the TimeStamp of the
// event that set it, in ONE value under AuthorizationKey, which every
// transition replaces whole by a fenced compare-and-set through the key's
// lock — the mechanism package openplatform runs on too
// (core/internal/tenant), with the same rules:
//
//   - a token refresh writes the next record in one fenced write;
//   - an install (create_auth, reset_permanent_code, the redirect) and a
//     cancellation (cancel_auth, Cancel) are written forward, ordered by
//     the push's TimeStamp: an older event — delayed, re-sent, delivered to
//     two instances at once — is acknowledged and ignored
//     (AppliedOlderIgnored), a second delivery of one install changes
//     nothing (AppliedAlready), and a code WeCom exchanged is the newest
//     install (it voided the permanent_code before it), dated after what
//     it replaces. In the same second an install wins over a cancellation.
//   - a write the store does not take is retried within
//     Policy.RefreshTimeout, then held in memory and written in the
//     background until it lands (Suite.Held, Flush); the push is answered
//     with an error.
//
// create_auth and reset_permanent_code carry no corp id: the corp is known
// once the code is exchanged, so a re-sent push whose code WeCom refuses
// as used (40078) finds its install through the code index, when it is
// still there (Config.Store, for the code's 10 minutes); when it is not,
// the push is acknowledged (AppliedCodeSpent). The permanent_code an
// exchange gives is written ahead into that index entry before anything
// else, so that a process that dies before the corp's record is written
// loses nothing: the re-sent push writes the record from there. And the
// corp's record can only be read after the exchange: when two exchanges
// cross (the vendor clicks "reset secret" twice, the pushes reach two
// instances), the store cannot tell which one WeCom made last — the one it
// honours — so the record keeps both permanent codes, and the corp's next
// token fetch keeps the one WeCom takes.
//
// Back the records up with the store, as Open Platform's refresh tokens
// (see package openplatform): the keys ending in /permanent_code. Read one
// with Suite.PermanentCode; import one from your own database (no other
// SDK keeps permanent codes: EasyWeChat, WxJava, PowerWeChat and wechatpy
// take them as arguments) with Suite.ImportPermanentCode.
//
// # Scale
//
// Corps run on the same mechanism as Open Platform's authorizers
// (core/internal/tenant): no goroutine or timer per corp, handles in a
// bounded registry, refreshes ahead spread by Policy.RefreshJitter (10
// minutes by default), and a corp's first token (the first get_corp_token,
// or gettoken for a custom-developed app, after an install: the record
// holds none) trusted for a random quarter-to-all of its life, so that corps
// installing together do not come due together at every cycle (see
// "Scale" in package openplatform, where the simulated day is measured).
//
// # Callbacks
//
// The command callback (指令回调URL) is encrypted for the suite id;
// its URL verification is accepted for the suite id or
// Config.ProviderCorpID. The data callback (数据回调URL: the corps' users'
// messages and events) is encrypted for the corp's id: Suite.DataCallback
// returns its wecom.Callback.
//
// The simulated WeCom vendor platform for tests is core/wxtest.
package wecomvendor
