package silenceper_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/silenceper/wechat/v2/util"

	"github.com/wechatconf/wechatconf/contrib/silenceper"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// TestRetryWhateverTheBaseURL tests that a call silenceper makes is
// retried with a new token after WeChat rejects the old one (40001),
// whatever host the Conf fetches its tokens from (core.Config.BaseURL: the
// simulator's URL, a regional host) and whichever WeChat host silenceper's
// request goes to (api.weixin.qq.com, hardcoded in silenceper, or another
// one through util.SetURIModifier). The test's network sends every WeChat
// host to one simulated API, as WeChat's hosts share one set of tokens.
func TestRetryWhateverTheBaseURL(t *testing.T) {
	replaceHost := func(to string) func(sim string) util.URIModifier {
		return func(sim string) util.URIModifier {
			if to == "" {
				to = sim
			}
			return func(uri string) string { return strings.Replace(uri, "https://"+weChatHost, to, 1) }
		}
	}
	for _, tc := range []struct {
		name     string
		baseURL  func(sim string) string           // the Conf's BaseURL
		modifier func(sim string) util.URIModifier // silenceper's, nil for none
	}{
		{name: "DefaultHost", baseURL: func(string) string { return "" }},
		{name: "ConfAtSimulator", baseURL: func(sim string) string { return sim }},
		{name: "ConfAtBackupHost", baseURL: func(string) string { return "https://api2.weixin.qq.com" }},
		{name: "ConfAtRegionalHost", baseURL: func(string) string { return "https://sh.api.weixin.qq.com" }},
		{name: "SilenceperAtRegionalHost", baseURL: func(string) string { return "" }, modifier: replaceHost("https://sz.api.weixin.qq.com")},
		{name: "BothAtSimulator", baseURL: func(sim string) string { return sim }, modifier: replaceHost("")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret})
			t.Cleanup(wechat.Close)
			client := &http.Client{Transport: newToServer(t, wechat.URL)}
			setSilenceperClient(t, client)
			if tc.modifier != nil {
				setURIModifier(t, tc.modifier(wechat.URL))
			}
			baseURL := tc.baseURL(wechat.URL)
			conf, err := core.New(core.Config{
				AppID:      testAppID,
				AppSecret:  core.NewSecret(testAppSecret),
				TokenAPI:   core.ClassicToken,
				BaseURL:    baseURL,
				HTTPClient: client,
				Now:        wechat.Now,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { silenceper.Uninstall() })
			oa := silenceper.OfficialAccount(conf, nil)
			if ips, err := oa.GetBasic().GetCallbackIP(); err != nil || len(ips) == 0 {
				t.Fatalf("BaseURL %q: GetCallbackIP = %v, %v; want the IPs", baseURL, ips, err)
			}
			tok, err := oa.GetAccessToken()
			if err != nil {
				t.Fatal(err)
			}
			wechat.Revoke(tok)
			if ips, err := oa.GetBasic().GetCallbackIP(); err != nil || len(ips) == 0 {
				t.Errorf("BaseURL %q: GetCallbackIP after a revoke = %v, %v; want the IPs after one refresh and a retry", baseURL, ips, err)
			}
			if n := wechat.TokensIssued(); n != 2 {
				t.Errorf("BaseURL %q: %d token fetches, want 2", baseURL, n)
			}
		})
	}
}

// answer40001 is the test's network for hosts other than WeChat's: every
// request gets a 40001 reply, as from an API of one's own that happens to
// answer WeChat's way.
type answer40001 struct{ wechat http.RoundTripper }

func (a answer40001) RoundTrip(req *http.Request) (*http.Response, error) {
	if isWeChatHost(req.URL.Host) {
		return a.wechat.RoundTrip(req)
	}
	body := `{"errcode":40001,"errmsg":"invalid credential"}`
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

// TestOtherHostsRejectionIsNotRefreshed tests that a 40001 from a host that
// is neither a WeChat API host nor the Conf's, for a token a Handle handed
// out, reaches the caller without a refresh: only WeChat says when the
// fleet's token is dead.
func TestOtherHostsRejectionIsNotRefreshed(t *testing.T) {
	wechat, conf := setup(t)
	setSilenceperClient(t, &http.Client{Transport: answer40001{newToServer(t, wechat.URL)}})
	h := silenceper.New(conf)
	silenceper.Install(h)
	t.Cleanup(func() { silenceper.Uninstall() })
	tok, err := h.GetAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	body, err := util.HTTPGet("https://example.com/cgi-bin/x?access_token=" + tok)
	if err != nil || !strings.Contains(string(body), "40001") {
		t.Errorf("GET example.com = %s, %v; want its 40001 reply", body, err)
	}
	if n := wechat.TokensIssued(); n != 1 {
		t.Errorf("GET example.com answered 40001: %d token fetches, want 1", n)
	}
}
