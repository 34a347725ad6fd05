// Package silenceper gives github.com/silenceper/wechat/v2 clients the
// fleet-safe credentials of wechatconf, one call each:
//
//	conf, err := core.New(core.Config{AppID: id, AppSecret: core.NewSecret(secret), Store: store})
//	oa := silenceper.OfficialAccount(conf, &config.Config{AppID: id})
//	ips, err := oa.GetBasic().GetCallbackIP()
//
//	mp := silenceper.MiniProgram(mpConf, nil) // a Mini Program's core.Conf
//	wk := silenceper.Work(app, nil)           // a WeCom app: a *wecom.App (core/wecom)
//	merchant := silenceper.AuthorizerOfficialAccount(op, component.Authorizer(appid))
//
// [OfficialAccount], [MiniProgram] and [AuthorizerOfficialAccount] (an Open
// Platform authorizer's Official Account, through silenceper's Open
// Platform client op and a core/openplatform Component) serve a *core.Conf;
// [Work] serves a *wecom.App. What each does:
//
//   - It sets a [Handle] over the Conf or app as the client's access-token
//     handle (credential.AccessTokenContextHandle: GetAccessToken and
//     GetAccessTokenContext return conf.AccessToken, app.AccessToken, or
//     the authorizer_access_token the Component refreshes with the stored
//     authorizer_refresh_token) and, for the Official Accounts, as their
//     JS-SDK ticket handle (credential.JsTicketContextHandle: GetTicket and
//     GetTicketContext return conf.JSAPITicket; the access token
//     silenceper passes is not needed, the Conf gets its own). Every
//     instance of a fleet then makes one token fetch per refresh through
//     the store, instead of each process fetching (and, with the classic
//     token API or an authorizer refresh, invalidating everyone else's
//     token) alone.
//   - It installs the Conf's or app's transport (core.Conf.Transport,
//     wecom.App.Transport) on silenceper's HTTP client, the package
//     variable util.DefaultHTTPClient that every silenceper API call goes
//     through. A call whose token is rejected — WeChat's 40001, 40014 or
//     42001; WeCom's 40014 or 42001 (in WeCom 40001 is a wrong secret,
//     which no refresh mends) — is then not handed to the caller: the token
//     is replaced by a compare-and-refresh (once fleet-wide) and the call
//     is sent once more, which silenceper does not do on its own. This
//     holds for the calls silenceper makes to its platform's API hosts
//     whatever the Conf's core.Config.BaseURL (the simulator core/wxtest, a
//     regional host; see "Other hosts").
//
// What stays silenceper's: the Mini Program login (Code2Session takes the
// AppSecret of silenceper's config, no token); WeCom's JS-SDK tickets
// (Work's JsSdk() keeps silenceper's own ticket cache, fetched with the
// app's token: sign with wecom.App.JSSDKConfig and AgentConfig for tickets
// shared by the fleet) and the clients of GetKF and GetMsgAudit, which
// silenceper builds with tokens of their own from other secrets; the Open
// Platform's component_access_token, its PlatformJs() tickets (sign with
// the Authorizer's JSSDKConfig) and its Mini Program authorizers
// (op.GetMiniProgram(appid) has no entry point here: its embedded Mini
// Program APIs take NewAuthorizer's Handle through
// m.MiniProgram.SetAccessTokenContextHandle and Install, but its own
// GetBasic, GetURLLink and GetComponent read silenceper's cache).
//
// Errors: when the network fails, Go's http.Client returns a *url.Error
// whose URL is the request's, and silenceper has put the access_token in
// that URL's query. No transport can change that text: do not log the
// errors silenceper returns whole in production (log err's type or
// errors.Unwrap(err) of a *url.Error), or go through core's Do and
// Transport, whose errors are redacted.
//
// # How the transport finds the token
//
// silenceper writes the token it got from the handle into the URL
// (?access_token=...) before the request reaches the client. A token
// handed out by a Handle may have been replaced by the time the request is
// sent (another goroutine saw it rejected), and core's transport refreshes
// only its own current token. So the installed transport recognises the
// tokens its Handles handed out (the last few of each), takes the token
// out of the URL and puts in the Conf's (or app's) current one, replacing
// it when the platform rejects it, for a request to the Conf's own host
// (the scheme and host of its BaseURL) or to one of its platform's API
// hosts over https: for a Conf, WeChat's (api.weixin.qq.com, which
// silenceper calls, and the backup and regional hosts api2, sh.api, sz.api
// and hk.api.weixin.qq.com, which serve the same tokens); for a WeCom app,
// WeCom's (qyapi.weixin.qq.com). A request to any other host gets its own token back
// unchanged, and a rejection from it refreshes nothing: only WeChat says
// when the fleet's token is dead. Requests that carry no token, or a token
// no Handle handed out (a user's OAuth token for /sns/userinfo, say), go to
// the previous transport untouched. Several Conf (several AppIDs) can be
// installed in one process: the token says which Conf a request belongs
// to.
//
// # Other hosts
//
// silenceper's URLs name https://api.weixin.qq.com and it has no setting
// for its host. To send its calls elsewhere — the simulator in tests, a
// regional host, a proxy — set util.DefaultHTTPClient to a client whose
// Transport is Redirect(baseURL, base) before OfficialAccount or Install,
// and give the Conf the same host as its BaseURL: its tokens must be valid
// where silenceper's calls go (any two of WeChat's hosts will do, they
// share tokens; a Conf at the simulator and silenceper at WeChat will not):
//
//	wechat := wxtest.New(wxtest.Options{})
//	rt, err := silenceper.Redirect(wechat.URL, nil)
//	util.DefaultHTTPClient = &http.Client{Transport: rt}
//	conf, err := core.New(core.Config{AppID: id, AppSecret: s, BaseURL: wechat.URL})
//	oa := silenceper.OfficialAccount(conf, nil) // a revoked token is replaced, the call retried
//
// The installed transport sees silenceper's requests before Redirect
// rewrites them, at WeChat's host, and replaces a rejected token whatever
// the Conf's BaseURL. util.SetURIModifier also moves silenceper's calls,
// but not all of them (silenceper's PostJSONWithRespContentType ignores
// it), and the adapter then sees the modified host: it replaces a rejected
// token if that host is one of WeChat's or the Conf's BaseURL, not
// otherwise. Prefer Redirect.
//
// silenceper's work package calls https://qyapi.weixin.qq.com, which
// Redirect leaves alone (WeChat's hosts do not serve WeCom): chain
// RedirectWeCom for it, and give the wecom.App the same BaseURL:
//
//	rt, err := silenceper.Redirect(wechat.URL, nil)
//	rt, err = silenceper.RedirectWeCom(wechat.URL, rt)
//	util.DefaultHTTPClient = &http.Client{Transport: rt}
//	app, err := wecom.New(wecom.Config{CorpID: corp, AgentID: agent, Secret: s, BaseURL: wechat.URL})
//	wk := silenceper.Work(app, nil)
//
// util.DefaultHTTPClient is one variable for the whole process, read by
// every silenceper call without a lock: call OfficialAccount, MiniProgram,
// Work, AuthorizerOfficialAccount (or Install) while setting up, before
// API calls start. The client that was there is
// kept as the base: its Transport sends the requests, its Timeout, Jar and
// CheckRedirect stay. Setting util.DefaultHTTPClient (or
// Wechat.SetHTTPClient) afterwards removes the transport until the next
// Install.
//
// silenceper's OfficialAccount creates its API objects (GetBasic, GetUser,
// ...) lazily and without a lock: call each accessor once before sharing
// the object between goroutines (OfficialAccount already calls GetJs). Its
// MiniProgram and Work make a new API object on each accessor call.
//
// Tokens and tickets are fetched by the Conf (or app, or Component) with
// its own HTTPClient and BaseURL, not by silenceper; the silenceper
// config's AppSecret (CorpSecret) and Cache are not used for them.
//
// # Measured
//
// The fleet tests in contrib/silenceper/containertest run each client in
// several processes over one Redis against core/wxtest, with the adapter
// and with silenceper's own per-process token cache, the token revoked
// once: with the adapter one token fetch per refresh cycle and no failed
// call on every platform; silenceper alone, 79 % (Official Account, 8
// processes) and 70 % (Mini Program, 4) of the calls rejected with
// classic tokens, 17 % on WeCom (a revoked token kept until its cache
// expires, and a gettoken call before every API call in each token's last
// 25 minutes: silenceper caches WeCom's remaining lifetime minus 1500 s),
// and 78 % to 95 % (over 7 runs) failed for an Open Platform authorizer
// (each process's refresh, and its component-token fetch, invalidating
// the others').
package silenceper
