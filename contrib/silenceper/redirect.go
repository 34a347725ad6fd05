package silenceper

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/wechatconf/wechatconf/core"
)

// Redirect returns an http.RoundTripper that sends the requests to
// WeChat's API hosts — https://api.weixin.qq.com, where silenceper's URLs
// point, and WeChat's backup and regional hosts — to baseURL instead,
// through base, and every other request to base unchanged. baseURL is an
// http(s) URL of a host, with an optional path prefix and no user info
// (a proxy's credentials go in base): a core/wxtest Server.URL, a regional
// host, a proxy of one's own. base nil means http.DefaultTransport.
//
// silenceper has no setting for its host; this is how to point it
// elsewhere. Set the RoundTripper as the Transport of
// util.DefaultHTTPClient before OfficialAccount or Install, which keep it
// as the base their transport sends through:
//
//	rt, err := silenceper.Redirect(wechat.URL, nil) // wechat: a wxtest.Server
//	util.DefaultHTTPClient = &http.Client{Transport: rt}
//	conf, err := core.New(core.Config{..., BaseURL: wechat.URL})
//	oa := silenceper.OfficialAccount(conf, nil)
//
// The adapter sees the requests before they are redirected, so a token
// WeChat (or the simulator) rejects is replaced and the call retried,
// whatever the Conf's BaseURL. The RoundTripper is safe for concurrent
// use; it never modifies the caller's request.
func Redirect(baseURL string, base http.RoundTripper) (http.RoundTripper, error) {
	return redirectHosts("Redirect", weChatAPIs, baseURL, base)
}

// RedirectWeCom is Redirect for WeCom: it returns an http.RoundTripper
// that sends the requests to WeCom's API host, https://qyapi.weixin.qq.com,
// where silenceper's work package points, to baseURL instead, through
// base, and every other request to base unchanged. baseURL is as for
// Redirect. Chain the two to move both platforms (a core/wxtest Server
// answers both):
//
//	rt, err := silenceper.Redirect(wechat.URL, nil)
//	rt, err = silenceper.RedirectWeCom(wechat.URL, rt)
//	util.DefaultHTTPClient = &http.Client{Transport: rt}
//	app, err := wecom.New(wecom.Config{..., BaseURL: wechat.URL})
//	wk := silenceper.Work(app, nil)
func RedirectWeCom(baseURL string, base http.RoundTripper) (http.RoundTripper, error) {
	return redirectHosts("RedirectWeCom", weComAPIs, baseURL, base)
}

func redirectHosts(name string, hosts map[string]*core.API, baseURL string, base http.RoundTripper) (http.RoundTripper, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		// The parse error would repeat baseURL, which may hold a password.
		return nil, fmt.Errorf("silenceper: %s: baseURL is not a URL (like http://127.0.0.1:8080 or https://sh.api.weixin.qq.com)", name)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("silenceper: %s: baseURL %q is not an http(s) URL of a host without user info, query or fragment (like http://127.0.0.1:8080 or https://sh.api.weixin.qq.com)", name, u.Redacted())
	}
	if base == nil {
		base = http.DefaultTransport
	}
	return &redirect{target: u, base: base, hosts: hosts}, nil
}

// redirect is the RoundTripper of Redirect.
type redirect struct {
	target *url.URL
	base   http.RoundTripper
	hosts  map[string]*core.API // the hosts it moves: weChatAPIs or weComAPIs
}

func (r *redirect) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Scheme != "https" || r.hosts[strings.ToLower(req.URL.Host)] == nil {
		return r.base.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	u := *req.URL
	u.Scheme, u.Host = r.target.Scheme, r.target.Host
	if r.target.Path != "" {
		u.Path = r.target.Path + u.Path
		if u.RawPath != "" {
			u.RawPath = r.target.EscapedPath() + u.RawPath
		}
	}
	out.URL, out.Host = &u, ""
	return r.base.RoundTrip(out)
}
