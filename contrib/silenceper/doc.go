// Package silenceper gives a github.com/silenceper/wechat/v2 Official
// Account client the fleet-safe credentials of a wechatconf core.Conf, in
// one call:
//
//	conf, err := core.New(core.Config{AppID: id, AppSecret: core.NewSecret(secret), Store: store})
//	oa := silenceper.OfficialAccount(conf, &config.Config{AppID: id})
//	ips, err := oa.GetBasic().GetCallbackIP()
//
// What OfficialAccount does:
//
//   - It sets a [Handle] over conf as the account's access-token handle
//     (credential.AccessTokenContextHandle: GetAccessToken and
//     GetAccessTokenContext return conf.AccessToken) and as its JS-SDK
//     ticket handle (credential.JsTicketContextHandle: GetTicket and
//     GetTicketContext return conf.JSAPITicket; the access token silenceper
//     passes is not needed, the Conf gets its own). Every instance of a
//     fleet then makes one token fetch per refresh through the Conf's store,
//     instead of each process fetching (and, with the classic token API,
//     invalidating everyone else's token) alone.
//   - It installs conf's transport (core.Conf.Transport) on silenceper's HTTP
//     client, the package variable util.DefaultHTTPClient that every
//     silenceper API call goes through. A call WeChat answers with 40001,
//     40014 or 42001 is then not handed to the caller: the token is replaced
//     by a compare-and-refresh (once fleet-wide) and the call is sent once
//     more, which silenceper does not do on its own. This holds for the
//     calls silenceper makes to WeChat's API hosts whatever the Conf's
//     core.Config.BaseURL (the simulator core/wxtest, a regional host; see
//     "Other hosts").
//
// # How the transport finds the token
//
// silenceper writes the token it got from the handle into the URL
// (?access_token=...) before the request reaches the client. A token
// handed out by a Handle may have been replaced by the time the request is
// sent (another goroutine saw it rejected), and core's transport refreshes
// only its own current token. So the installed transport recognises the
// tokens its Handles handed out (the last few of each), takes the token
// out of the URL and puts in the Conf's current one, replacing it when
// WeChat rejects it, for a request to the Conf's own host (the scheme and
// host of its BaseURL) or to one of WeChat's API hosts over https
// (api.weixin.qq.com, which silenceper calls, and the backup and regional
// hosts api2, sh.api, sz.api and hk.api.weixin.qq.com, which serve the
// same tokens). A request to any other host gets its own token back
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
// util.DefaultHTTPClient is one variable for the whole process, read by
// every silenceper call without a lock: call OfficialAccount (or Install)
// while setting up, before API calls start. The client that was there is
// kept as the base: its Transport sends the requests, its Timeout, Jar and
// CheckRedirect stay. Setting util.DefaultHTTPClient (or
// Wechat.SetHTTPClient) afterwards removes the transport until the next
// Install.
//
// silenceper's OfficialAccount creates its API objects (GetBasic, GetUser,
// ...) lazily and without a lock: call each accessor once before sharing
// the object between goroutines (OfficialAccount already calls GetJs).
//
// Tokens and tickets are fetched by the Conf with its own
// core.Config.HTTPClient and core.Config.BaseURL, not by silenceper; the
// silenceper config's AppSecret and Cache are not used for them.
package silenceper
