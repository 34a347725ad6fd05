// Package tenant is the mechanism every vendor platform of wechatconf
// runs on — a platform on which a vendor serves many tenants, each of
// whom authorizes it: WeChat Open Platform (第三方平台: authorizers,
// package openplatform) and WeCom vendors (企业微信服务商: corps, package
// wecomvendor). Such a platform has one shape:
//
//  1. WeChat pushes a ticket to the vendor's event URL about every 10
//     minutes (component_verify_ticket, suite_ticket): Platform.SetTicket
//     stores it durably, newest by the push's time wins; Platform.Ticket
//     reads it for the platform token's fetch.
//  2. A platform token (component_access_token, suite_access_token) is a
//     core.Credential whose Prepare reads the ticket: the harness builds it.
//  3. A tenant authorizes the vendor: a code, pushed and/or redirected, is
//     exchanged (Config.Exchange) for the tenant's durable secret
//     (authorizer_refresh_token, permanent_code) and a first access token;
//     later events withdraw the authorization or replace the secret.
//     Platform.Authorize, Withdraw and Import write each transition
//     forward into ONE Record per tenant, ordered by WeChat's event times,
//     idempotent for a second delivery (Applied*).
//  4. Each tenant's access token is a core.Credential on its record's key,
//     of the platform's one core.CredentialKind (Platform.AccessCredential:
//     Decode, CheckAuthorized, and a fetch with Config.FetchAccess): a
//     refresh writes the next record — access token and a rotated secret —
//     in one fenced write.
//  5. Handles (a core.Conf of a core.ConfFamily, a wecom.App of a
//     wecom.AppFamily) live in a bounded Registry that holds no goroutine
//     or timer per tenant: about 700 bytes per tenant holding its token.
//
// Durable writes a store does not take are held in memory and written in
// the background (Writer); the caller gets the store's error so that
// WeChat re-sends the push. What is platform-specific — paths, JSON
// fields, error codes, event XML, which errors mean "authorize again" —
// is the harness's: Config's functions. A new platform is a harness that
// fills a Config; conformance.Sweep's vendor scenarios prove the
// mechanism at every store fault point through each harness.
//
// It is internal: its API changes with its harnesses.
package tenant
