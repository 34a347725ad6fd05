// Package wecom keeps the credentials of WeCom (企业微信) self-built apps
// valid across a fleet and receives their callbacks, on the same engine and
// TokenStore contract as package core's Official Accounts.
//
// # Credentials
//
// An App is one app's secret: New(Config{CorpID, AgentID, Secret, Store}).
// It keeps three core.Credentials:
//
//	credential           WeCom call                                   store key
//	access_token         GET /cgi-bin/gettoken?corpid&corpsecret      <KeyPrefix>/wecom/<CorpID>/<App>/access_token
//	jsapi_ticket         GET /cgi-bin/get_jsapi_ticket (the corp's)   <KeyPrefix>/wecom/<CorpID>/jsapi_ticket
//	agent_config_ticket  GET /cgi-bin/ticket/get?type=agent_config    <KeyPrefix>/wecom/<CorpID>/<App>/agent_config_ticket
//
// <App> is the AgentID in decimal (or Config.App for a secret without an
// app, such as the contact sync one); keys never hold a secret. Several
// apps of one corp each have their own token and keys; the corp's
// jsapi_ticket is one per corp, whichever app fetches it. Every instance of
// the fleet sharing the Store makes one gettoken call per refresh.
//
// WeCom's errcodes are not the Official Account's (Codes): 40014 and 42001
// mean the token was rejected, and App.Do (and the Transport) then replace
// it by a compare-and-refresh — once per rejected token across the fleet —
// and retry once; 40001 is a wrong secret, a configuration error that
// backs off (Policy.ErrorBackoff) instead of retrying; 45009 is WeCom's
// frequency limit, also backed off; -1 and 45033 are retried.
//
// App.JSSDKConfig signs wx.config with the corp's ticket, App.AgentConfig
// wx.agentConfig with the app's; both use core.SignJSSDK.
//
// # Callbacks
//
// A Callback (NewCallback) answers the URL verification — whose echostr is
// encrypted and must be decrypted and written back — and decrypts pushes,
// with the CorpID as the receive id (回调配置, 加解密方案). The test data
// are WeCom's published samples (testdata/vectors.json names their source).
//
// The simulated WeCom API for tests is core/wxtest (Options.WeComApps,
// wxtest.PathWeComToken, …).
package wecom
