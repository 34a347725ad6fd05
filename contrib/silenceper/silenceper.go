package silenceper

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/credential"
	"github.com/silenceper/wechat/v2/officialaccount"
	"github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wechatconf/wechatconf/core"
	coreopen "github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wecom"
)

// The handle interfaces of silenceper a *Handle implements.
var (
	_ credential.AccessTokenContextHandle = (*Handle)(nil)
	_ credential.JsTicketContextHandle    = (*Handle)(nil)
)

// recent is how many of the tokens it handed out a Handle recognises in a
// request's URL. Tokens change every two hours or on a rejection; a request
// built with a token older than this many generations is long expired.
const recent = 8

// source is what a Handle serves the credentials of: a *core.Conf (an
// Official Account, a Mini Program, an Open Platform authorizer) or a
// *wecom.App. Both implement it.
type source interface {
	AccessToken(ctx context.Context) (core.Token, error)
	JSAPITicket(ctx context.Context) (core.Token, error)
	Transport(base http.RoundTripper) http.RoundTripper
	AccessTokenCredential() *core.Credential
}

// Handle is silenceper's access-token and JS-SDK ticket handle over the
// credentials of a *core.Conf (New, NewAuthorizer) or of a *wecom.App
// (NewWeCom). It is safe for concurrent use.
type Handle struct {
	src   source
	conf  *core.Conf           // src, when it is a Conf
	app   *wecom.App           // src, when it is a WeCom app
	hosts map[string]*core.API // the platform's API hosts: weChatAPIs or weComAPIs
	keep  any                  // what src belongs to, kept reachable (an *openplatform.Authorizer)

	mu     sync.Mutex
	issued [recent]string // the last tokens handed out, newest at next-1
	next   int
}

// New returns the Handle of conf: an Official Account's or a Mini
// Program's Conf (core.New), or an Open Platform authorizer's (prefer
// NewAuthorizer for those). conf must not be nil.
func New(conf *core.Conf) *Handle {
	if conf == nil {
		panic("silenceper: New with a nil *core.Conf")
	}
	return &Handle{src: conf, conf: conf, hosts: weChatAPIs}
}

// NewWeCom returns the Handle of a WeCom app: its access token is
// app.AccessToken, its ticket the corp's jsapi_ticket (app.JSAPITicket),
// and the installed transport replaces a token WeCom rejects (40014,
// 42001: WeCom's codes, wecom.Codes) on requests to WeCom's host,
// https://qyapi.weixin.qq.com, and to the app's own BaseURL. app must
// not be nil.
func NewWeCom(app *wecom.App) *Handle {
	if app == nil {
		panic("silenceper: NewWeCom with a nil *wecom.App")
	}
	return &Handle{src: app, app: app, hosts: weComAPIs}
}

// NewAuthorizer returns the Handle of an Open Platform authorizer (a
// merchant's Official Account or Mini Program): its access token is the
// authorizer_access_token a.AccessToken keeps. The Handle keeps a
// reachable, so that a withdrawal this process applies reaches the handle
// it serves (see openplatform.Component.Authorizer). a must not be nil.
func NewAuthorizer(a *coreopen.Authorizer) *Handle {
	if a == nil || a.Conf == nil {
		panic("silenceper: NewAuthorizer with a nil *openplatform.Authorizer")
	}
	h := New(a.Conf)
	h.keep = a
	return h
}

// Conf returns the Conf the Handle serves, nil for a WeCom app's Handle
// (NewWeCom).
func (h *Handle) Conf() *core.Conf { return h.conf }

// WeComApp returns the WeCom app the Handle serves, nil for a Conf's
// Handle (New, NewAuthorizer).
func (h *Handle) WeComApp() *wecom.App { return h.app }

// GetAccessToken returns the access_token of the Handle's Conf or WeCom
// app (core.Conf.AccessToken, wecom.App.AccessToken). It waits for a
// refresh at most the Conf's or app's Policy.RefreshTimeout; use
// GetAccessTokenContext to bound it otherwise.
func (h *Handle) GetAccessToken() (string, error) {
	return h.GetAccessTokenContext(context.Background())
}

// GetAccessTokenContext returns the access_token of the Handle's Conf or
// WeCom app, waiting for a refresh no longer than ctx allows.
func (h *Handle) GetAccessTokenContext(ctx context.Context) (string, error) {
	tok, err := h.src.AccessToken(ctx)
	if err != nil {
		return "", err
	}
	h.remember(tok.Value)
	return tok.Value, nil
}

// GetTicket returns the jsapi_ticket of the Handle's Conf
// (core.Conf.JSAPITicket) or, for a WeCom app, the corp's
// (wecom.App.JSAPITicket). The access token silenceper passes is not
// used: the Conf or app gets a valid one itself.
func (h *Handle) GetTicket(accessToken string) (string, error) {
	return h.GetTicketContext(context.Background(), accessToken)
}

// GetTicketContext is GetTicket within ctx.
func (h *Handle) GetTicketContext(ctx context.Context, _ string) (string, error) {
	tok, err := h.src.JSAPITicket(ctx)
	if err != nil {
		return "", err
	}
	return tok.Value, nil
}

// remember records tok as handed out, unless it is the newest already.
func (h *Handle) remember(tok string) {
	h.mu.Lock()
	if h.issued[(h.next+recent-1)%recent] != tok {
		h.issued[h.next] = tok
		h.next = (h.next + 1) % recent
	}
	h.mu.Unlock()
}

// handedOut reports whether tok is one of the last tokens h handed out.
func (h *Handle) handedOut(tok string) bool {
	if tok == "" {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range h.issued {
		if v == tok {
			return true
		}
	}
	return false
}

// OfficialAccount returns silenceper's Official Account client for cfg with
// the credentials of conf: its access-token handle and its JS-SDK ticket
// handle are New(conf), and conf's transport is installed on silenceper's
// HTTP client (Install). cfg may be nil; an empty cfg.AppID is
// conf.AppID(), a nil cfg.Cache an in-memory one (silenceper requires one;
// the credentials do not use it). Call it while setting up, before API
// calls start (see the package documentation).
func OfficialAccount(conf *core.Conf, cfg *config.Config) *officialaccount.OfficialAccount {
	h := New(conf)
	var c config.Config
	if cfg != nil {
		c = *cfg
	}
	if c.AppID == "" {
		c.AppID = conf.AppID()
	}
	if c.Cache == nil {
		c.Cache = cache.NewMemory()
	}
	oa := officialaccount.NewOfficialAccount(&c)
	oa.SetAccessTokenHandle(h)
	oa.GetJs().SetJsTicketHandle(h)
	Install(h)
	return oa
}

// ErrNotInstalled is what Uninstall returns when silenceper's HTTP client
// is not one Install set.
var ErrNotInstalled = errors.New("silenceper: util.DefaultHTTPClient was not set by Install")

// installed is the client Install last set, nil for none.
var (
	installMu sync.Mutex
	installed *http.Client
)

// Install puts the transports of the Conf (or WeCom app) of each h on
// silenceper's HTTP client, util.DefaultHTTPClient, so that requests
// carrying a token one of them handed out, to one of its platform's API
// hosts (WeChat's for a Conf, WeCom's for an app) or to its BaseURL, get
// compare-and-refresh and one retry when the token is rejected (40001,
// 40014 and 42001 from WeChat; 40014 and 42001 from WeCom; see the
// package documentation). Handles installed before stay installed. If
// util.DefaultHTTPClient is not the client Install last set (first call,
// or the variable was set since), that client becomes the base. Call it
// while setting up, before API calls start.
func Install(hs ...*Handle) {
	installMu.Lock()
	defer installMu.Unlock()
	prev := util.DefaultHTTPClient
	var r *router
	if prev != nil && prev == installed {
		r = prev.Transport.(*router)
	} else {
		base := http.DefaultTransport
		c := &http.Client{}
		if prev != nil {
			*c = *prev // Timeout, Jar, CheckRedirect
			if prev.Transport != nil {
				base = prev.Transport
			}
		}
		r = &router{base: base}
		r.routes.Store(&[]route{})
		c.Transport = r
		installed = c
	}
	routes := append([]route(nil), *r.routes.Load()...)
	for _, h := range hs {
		if h == nil {
			continue
		}
		dup := false
		for _, rt := range routes {
			dup = dup || rt.h == h
		}
		if !dup {
			routes = append(routes, route{h: h, rt: h.src.Transport(restorer{base: r.base, hosts: hostTransports(h, r.base)})})
		}
	}
	r.routes.Store(&routes)
	util.DefaultHTTPClient = installed
}

// Uninstall puts back the HTTP client that Install found, if
// util.DefaultHTTPClient is still the one Install set.
func Uninstall() error {
	installMu.Lock()
	defer installMu.Unlock()
	if installed == nil || util.DefaultHTTPClient != installed {
		return ErrNotInstalled
	}
	r := installed.Transport.(*router)
	c := *installed
	c.Transport = r.base
	if r.base == http.DefaultTransport && c.Timeout == 0 && c.Jar == nil && c.CheckRedirect == nil {
		util.DefaultHTTPClient = http.DefaultClient
	} else {
		util.DefaultHTTPClient = &c
	}
	installed = nil
	return nil
}

// router is the transport Install sets: it sends a request carrying a token
// a Handle handed out through the transport of that Handle's Conf (or
// WeCom app), whose base, a restorer, serves the platform's other hosts.
type router struct {
	base   http.RoundTripper
	routes atomic.Pointer[[]route]
}

type route struct {
	h  *Handle
	rt http.RoundTripper // h.src.Transport(restorer{base, ...})
}

// weChatHosts are WeChat's API access points, all over https and all
// serving the same tokens: silenceper's Official Account, Mini Program and
// Open Platform calls go to the first, hardcoded in its URLs; the others
// are WeChat's backup and regional hosts (Shanghai, Shenzhen, Hong Kong),
// which a util.SetURIModifier or a Conf's BaseURL may name.
var weChatHosts = [...]string{"api.weixin.qq.com", "api2.weixin.qq.com", "sh.api.weixin.qq.com", "sz.api.weixin.qq.com", "hk.api.weixin.qq.com"}

// weComHost is WeCom's API host, which silenceper's work package calls,
// hardcoded in its URLs (wecom.DefaultBaseURL).
const weComHost = "qyapi.weixin.qq.com"

// weChatAPIs holds a core.API without credential for each of weChatHosts,
// with the Official Account's errcodes; hostTransports gives each a
// Conf's credential.
var weChatAPIs = apisOf(nil, weChatHosts[:]...)

// weComAPIs holds the core.API of WeCom's host, with WeCom's errcodes
// (40014 and 42001 are a rejected token, 40001 a wrong secret).
var weComAPIs = apisOf(wecom.Codes, weComHost)

func apisOf(codes *core.Codes, hosts ...string) map[string]*core.API {
	apis := make(map[string]*core.API, len(hosts))
	for _, host := range hosts {
		api, err := core.NewAPI(core.APIConfig{BaseURL: "https://" + host, Codes: codes})
		if err != nil {
			panic("silenceper: " + err.Error()) // the hosts above are valid
		}
		apis[host] = api
	}
	return apis
}

// hostTransports returns, for each of the API hosts of h's platform
// (h.hosts), a transport over base that adds the access_token of h's Conf
// or WeCom app and replaces it when the platform rejects it, as the Conf's
// or app's Transport does for its own BaseURL: the requests silenceper
// makes go to the platform's hosts whatever host the Conf fetches its
// tokens from.
func hostTransports(h *Handle, base http.RoundTripper) map[string]http.RoundTripper {
	cred := h.src.AccessTokenCredential()
	m := make(map[string]http.RoundTripper, len(h.hosts))
	for host, api := range h.hosts {
		m[host] = api.WithCredential(cred, "access_token").Transport(base)
	}
	return m
}

// origTokenKey is the context key under which router leaves the token it
// took out of a request's URL, for restorer.
type origTokenKey struct{}

func (r *router) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.RawQuery == "" {
		return r.base.RoundTrip(req)
	}
	q := req.URL.Query()
	tok := q.Get("access_token")
	if tok == "" {
		return r.base.RoundTrip(req)
	}
	for _, rt := range *r.routes.Load() {
		if !rt.h.handedOut(tok) {
			continue
		}
		// Let the Conf's (or app's) transport put its current token in: the one
		// handed out may have been replaced since.
		out := req.Clone(context.WithValue(req.Context(), origTokenKey{}, tok))
		u := *req.URL
		q.Del("access_token")
		u.RawQuery = q.Encode()
		out.URL = &u
		return rt.rt.RoundTrip(out)
	}
	return r.base.RoundTrip(req)
}

// restorer is the base of a routed Conf (or WeCom app) transport. A
// request that reaches it with no access_token did not go to the Conf's
// own host (its BaseURL): if it goes to one of its platform's API hosts,
// the transport of that host adds the Conf's token and replaces it on a
// rejection; any other gets back the token router took out.
type restorer struct {
	base  http.RoundTripper
	hosts map[string]http.RoundTripper // by host, from hostTransports
}

func (r restorer) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, _ := req.Context().Value(origTokenKey{}).(string)
	if tok == "" || req.URL.Query().Get("access_token") != "" {
		return r.base.RoundTrip(req)
	}
	if req.URL.Scheme == "https" {
		// The key is the host as core's transport compares it, without a
		// port: "api.weixin.qq.com:443" gets its token back below.
		if rt := r.hosts[strings.ToLower(req.URL.Host)]; rt != nil {
			return rt.RoundTrip(req)
		}
	}
	out := req.Clone(req.Context())
	u := *req.URL
	q := u.Query()
	q.Set("access_token", tok)
	u.RawQuery = q.Encode()
	out.URL = &u
	return r.base.RoundTrip(out)
}
