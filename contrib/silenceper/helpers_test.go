package silenceper_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/silenceper/wechat/v2/util"
)

// weChatHost is the host silenceper calls, hardcoded in its URLs.
const weChatHost = "api.weixin.qq.com"

// weChatHosts are WeChat's API access points: the host silenceper calls
// and the ones a Conf's BaseURL (or a util.SetURIModifier) may name.
var weChatHosts = []string{weChatHost, "api2.weixin.qq.com", "sh.api.weixin.qq.com", "sz.api.weixin.qq.com", "hk.api.weixin.qq.com"}

// toServer is the test's network: requests to WeChat's API hosts
// (weChatHosts: silenceper's, and the Conf's with core.Config.BaseURL at
// its default or a regional host) go to the simulated API at target
// instead; others go out unchanged.
type toServer struct {
	target *url.URL
	base   http.RoundTripper
}

func newToServer(t testing.TB, serverURL string) *toServer {
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	return &toServer{target: u, base: http.DefaultTransport}
}

func (r *toServer) RoundTrip(req *http.Request) (*http.Response, error) {
	if !isWeChatHost(req.URL.Host) {
		return r.base.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	u := *req.URL
	u.Scheme, u.Host = r.target.Scheme, r.target.Host
	out.URL, out.Host = &u, ""
	return r.base.RoundTrip(out)
}

func isWeChatHost(host string) bool {
	for _, h := range weChatHosts {
		if host == h {
			return true
		}
	}
	return false
}

// setSilenceperClient sets silenceper's process-wide HTTP client to c for
// the test and puts the previous one back after it.
func setSilenceperClient(t testing.TB, c *http.Client) {
	prev := util.DefaultHTTPClient
	util.DefaultHTTPClient = c
	t.Cleanup(func() { util.DefaultHTTPClient = prev })
}

// setURIModifier sets silenceper's process-wide URI modifier to fn for the
// test and removes it after.
func setURIModifier(t testing.TB, fn util.URIModifier) {
	util.SetURIModifier(fn)
	t.Cleanup(func() { util.SetURIModifier(nil) })
}
