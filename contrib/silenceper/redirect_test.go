package silenceper_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/contrib/silenceper"
)

// TestRedirectSendsWeChatHostsToBaseURL tests that Redirect sends requests
// to each of WeChat's API hosts to its baseURL (path prefix included) and
// leaves every other request, and the caller's request, as it was.
func TestRedirectSendsWeChatHostsToBaseURL(t *testing.T) {
	for _, tc := range []struct{ baseURL, in, want string }{
		{"http://127.0.0.1:8080", "https://api.weixin.qq.com/cgi-bin/getcallbackip?access_token=t", "http://127.0.0.1:8080/cgi-bin/getcallbackip?access_token=t"},
		{"http://127.0.0.1:8080/", "https://API.weixin.qq.com/cgi-bin/x", "http://127.0.0.1:8080/cgi-bin/x"},
		{"https://proxy.example/wechat", "https://hk.api.weixin.qq.com/cgi-bin/a%2Fb?x=1", "https://proxy.example/wechat/cgi-bin/a%2Fb?x=1"},
		{"https://sh.api.weixin.qq.com", "https://api2.weixin.qq.com/cgi-bin/x", "https://sh.api.weixin.qq.com/cgi-bin/x"},
		{"http://127.0.0.1:8080", "https://example.com/cgi-bin/x", "https://example.com/cgi-bin/x"},
		{"http://127.0.0.1:8080", "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=t", "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=t"},
		{"http://127.0.0.1:8080", "http://api.weixin.qq.com/cgi-bin/x", "http://api.weixin.qq.com/cgi-bin/x"},
		{"http://127.0.0.1:8080", "https://api.weixin.qq.com:443/cgi-bin/x", "https://api.weixin.qq.com:443/cgi-bin/x"},
	} {
		rec := &recorder{}
		rt, err := silenceper.Redirect(tc.baseURL, rec)
		if err != nil {
			t.Errorf("Redirect(%q): %v", tc.baseURL, err)
			continue
		}
		req, err := http.NewRequest(http.MethodGet, tc.in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rt.RoundTrip(req); err != nil {
			t.Errorf("Redirect(%q).RoundTrip(%s): %v", tc.baseURL, tc.in, err)
			continue
		}
		if len(rec.urls) != 1 || rec.urls[0] != tc.want {
			t.Errorf("Redirect(%q): %s was sent as %q, want %s", tc.baseURL, tc.in, rec.urls, tc.want)
		}
		if req.URL.String() != tc.in {
			t.Errorf("Redirect(%q): the caller's request became %s, want it unchanged (%s)", tc.baseURL, req.URL, tc.in)
		}
	}
}

// TestRedirectRefusesWhatIsNotABaseURL tests that Redirect refuses a
// baseURL that is not an http(s) URL of a host, without showing a password
// it holds.
func TestRedirectRefusesWhatIsNotABaseURL(t *testing.T) {
	for _, baseURL := range []string{"", "127.0.0.1:8080", "ftp://h", "http://", "https://h?x=1", "https://h#f",
		"https://user:hunter2@h", "https://user:hunter2@h\x7f"} {
		rt, err := silenceper.Redirect(baseURL, nil)
		if err == nil {
			t.Errorf("Redirect(%q) = %v, nil; want an error", baseURL, rt)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Redirect(%q) error shows the password: %v", baseURL, err)
		}
	}
}

// TestRedirectWeComSendsOnlyWeComsHost tests that RedirectWeCom sends
// requests to WeCom's API host to its baseURL and leaves WeChat's hosts
// (and every other) to the next transport, and that Redirect leaves
// WeCom's host alone: a regional WeChat host does not serve WeCom.
func TestRedirectWeComSendsOnlyWeComsHost(t *testing.T) {
	for _, tc := range []struct {
		wecom    bool // RedirectWeCom, else Redirect
		in, want string
	}{
		{true, "https://qyapi.weixin.qq.com/cgi-bin/message/send?access_token=t", "http://127.0.0.1:8080/cgi-bin/message/send?access_token=t"},
		{true, "https://QYAPI.weixin.qq.com/cgi-bin/gettoken", "http://127.0.0.1:8080/cgi-bin/gettoken"},
		{true, "https://api.weixin.qq.com/cgi-bin/getcallbackip", "https://api.weixin.qq.com/cgi-bin/getcallbackip"},
		{true, "http://qyapi.weixin.qq.com/cgi-bin/x", "http://qyapi.weixin.qq.com/cgi-bin/x"},
		{false, "https://qyapi.weixin.qq.com/cgi-bin/message/send", "https://qyapi.weixin.qq.com/cgi-bin/message/send"},
	} {
		rec := &recorder{}
		redirect := silenceper.Redirect
		if tc.wecom {
			redirect = silenceper.RedirectWeCom
		}
		rt, err := redirect("http://127.0.0.1:8080", rec)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodGet, tc.in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rt.RoundTrip(req); err != nil {
			t.Errorf("RoundTrip(%s): %v", tc.in, err)
			continue
		}
		if len(rec.urls) != 1 || rec.urls[0] != tc.want {
			t.Errorf("RedirectWeCom %v: %s was sent as %q, want %s", tc.wecom, tc.in, rec.urls, tc.want)
		}
	}
	if _, err := silenceper.RedirectWeCom("https://user:hunter2@h", nil); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("RedirectWeCom with user info = %v; want an error without the password", err)
	}
}
