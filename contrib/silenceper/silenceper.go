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

// Handle is silenceper's access-token and JS-SDK ticket handle over a
// *core.Conf. Create it with New; it is safe for concurrent use.
type Handle struct {
	conf *core.Conf

	mu     sync.Mutex
	issued [recent]string // the last tokens handed out, newest at next-1
	next   int
}

// New returns the Handle of conf. conf must not be nil.
func New(conf *core.Conf) *Handle {
	if conf == nil {
		panic("silenceper: New with a nil *core.Conf")
	}
	return &Handle{conf: conf}
}

// Conf returns the Conf the Handle serves.
func (h *Handle) Conf() *core.Conf { return h.conf }

// GetAccessToken returns the Conf's access_token (core.Conf.AccessToken).
// It waits for a refresh at most core.Config.RefreshTimeout; use
// GetAccessTokenContext to bound it otherwise.
func (h *Handle) GetAccessToken() (string, error) {
	return h.GetAccessTokenContext(context.Background())
}

// GetAccessTokenContext returns the Conf's access_token
// (core.Conf.AccessToken), waiting for a refresh no longer than ctx allows.
func (h *Handle) GetAccessTokenContext(ctx context.Context) (string, error) {
	tok, err := h.conf.AccessToken(ctx)
	if err != nil {
		return "", err
	}
	h.remember(tok.Value)
	return tok.Value, nil
}

// GetTicket returns the Conf's jsapi_ticket (core.Conf.JSAPITicket). The
// access token silenceper passes is not used: the Conf gets a valid one
// itself.
func (h *Handle) GetTicket(accessToken string) (string, error) {
	return h.GetTicketContext(context.Background(), accessToken)
}

// GetTicketContext is GetTicket within ctx.
func (h *Handle) GetTicketContext(ctx context.Context, _ string) (string, error) {
	tok, err := h.conf.JSAPITicket(ctx)
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

// Install puts the transports of the Conf of each h on silenceper's HTTP
// client, util.DefaultHTTPClient, so that requests carrying a token one of
// them handed out, to one of WeChat's API hosts or to the Conf's BaseURL,
// get compare-and-refresh and one retry on 40001, 40014 and 42001 (see the
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
			routes = append(routes, route{h: h, rt: h.conf.Transport(restorer{base: r.base, wechat: weChatTransports(h.conf, r.base)})})
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
// a Handle handed out through that Handle's Conf's transport, whose base,
// a restorer, serves WeChat's other hosts.
type router struct {
	base   http.RoundTripper
	routes atomic.Pointer[[]route]
}

type route struct {
	h  *Handle
	rt http.RoundTripper // h.conf.Transport(restorer{base, ...})
}

// weChatHosts are WeChat's API access points, all over https and all
// serving the same tokens: silenceper's Official Account calls go to the
// first, hardcoded in its URLs; the others are WeChat's backup and regional
// hosts (Shanghai, Shenzhen, Hong Kong), which a util.SetURIModifier or a
// Conf's BaseURL may name.
var weChatHosts = [...]string{"api.weixin.qq.com", "api2.weixin.qq.com", "sh.api.weixin.qq.com", "sz.api.weixin.qq.com", "hk.api.weixin.qq.com"}

// weChatAPIs holds a core.API without credential for each of weChatHosts;
// weChatTransports gives each a Conf's.
var weChatAPIs = func() map[string]*core.API {
	apis := make(map[string]*core.API, len(weChatHosts))
	for _, host := range weChatHosts {
		api, err := core.NewAPI(core.APIConfig{BaseURL: "https://" + host})
		if err != nil {
			panic("silenceper: " + err.Error()) // the hosts above are valid
		}
		apis[host] = api
	}
	return apis
}()

// weChatTransports returns, for each of WeChat's API hosts, a transport
// over base that adds conf's access_token and replaces it when WeChat
// rejects it, as conf.Transport does for conf's own BaseURL: the requests
// silenceper makes go to WeChat's hosts whatever host conf fetches its
// tokens from.
func weChatTransports(conf *core.Conf, base http.RoundTripper) map[string]http.RoundTripper {
	cred := conf.AccessTokenCredential()
	m := make(map[string]http.RoundTripper, len(weChatAPIs))
	for host, api := range weChatAPIs {
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
		// Let the Conf's transport put its current token in: the one
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

// restorer is the base of a routed Conf transport. A request that reaches
// it with no access_token did not go to the Conf's own host (its
// BaseURL): if it goes to one of WeChat's API hosts, the transport of that
// host adds the Conf's token and replaces it on a rejection; any other
// gets back the token router took out.
type restorer struct {
	base   http.RoundTripper
	wechat map[string]http.RoundTripper // by host, from weChatTransports
}

func (r restorer) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, _ := req.Context().Value(origTokenKey{}).(string)
	if tok == "" || req.URL.Query().Get("access_token") != "" {
		return r.base.RoundTrip(req)
	}
	if req.URL.Scheme == "https" {
		// The key is the host as core's transport compares it, without a
		// port: "api.weixin.qq.com:443" gets its token back below.
		if rt := r.wechat[strings.ToLower(req.URL.Host)]; rt != nil {
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
