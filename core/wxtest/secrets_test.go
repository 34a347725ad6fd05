package wxtest_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/wechatconf/wechatconf/core/wxtest"
)

// SetAppSecret: the retired secret gets 40001 from /cgi-bin/token and
// 40125 from /cgi-bin/stable_token at once, another wrong secret 40125
// from both, the new one a token; the token issued before keeps working.
func TestSetAppSecret(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	before := classicToken(t, s)
	const next = "the-secret-after-the-reset"
	s.SetAppSecret(appID, next)
	for _, tc := range []struct {
		name, secret  string
		classic, stab int
	}{
		{"retired", appSecret, 40001, 40125},
		{"never valid", "some-other-secret", 40125, 40125},
		{"new", next, 0, 0},
	} {
		c := must(t, s, http.MethodGet, wxtest.PathToken, classicQuery(appID, tc.secret), "")
		st := must(t, s, http.MethodPost, wxtest.PathStableToken, nil, stableBody(appID, tc.secret, false))
		if c.Errcode != tc.classic || st.Errcode != tc.stab {
			t.Errorf("%s secret: token errcode %d, stable_token errcode %d; want %d and %d", tc.name, c.Errcode, st.Errcode, tc.classic, tc.stab)
		}
	}
	if code := api(t, s, before); code != 0 {
		t.Errorf("the token issued before the reset: errcode %d, want it still valid", code)
	}
	s.SetAppSecret(appID, "a-third-secret")
	if c := must(t, s, http.MethodGet, wxtest.PathToken, classicQuery(appID, next), ""); c.Errcode != 40001 {
		t.Errorf("the second secret after a second reset: errcode %d, want 40001", c.Errcode)
	}
}

// SetWeComSecret: the old corpsecret gets 40001, the new one the
// application's token, the same one gettoken handed out before.
func TestSetWeComSecret(t *testing.T) {
	s := newServer(t, wxtest.Options{WeComApps: []wxtest.WeComApp{{CorpID: "ww1", AgentID: 1000002, Secret: "old-corpsecret"}}})
	get := func(secret string) reply {
		return must(t, s, http.MethodGet, wxtest.PathWeComToken, url.Values{"corpid": {"ww1"}, "corpsecret": {secret}}, "")
	}
	before := get("old-corpsecret")
	s.SetWeComSecret("ww1", 1000002, "new-corpsecret")
	if r := get("old-corpsecret"); r.Errcode != 40001 {
		t.Errorf("old corpsecret after the reset: errcode %d, want 40001", r.Errcode)
	}
	if r := get("new-corpsecret"); r.Errcode != 0 || r.AccessToken != before.AccessToken {
		t.Errorf("new corpsecret: %s; want the application's current token", r.Raw)
	}
}

// SetComponentSecret: the old component_appsecret gets 40125.
func TestSetComponentSecret(t *testing.T) {
	s := newServer(t, wxtest.Options{Components: []wxtest.Component{{AppID: "wxcomp", AppSecret: "old-component-secret"}}})
	ticket := s.VerifyTicket("wxcomp")
	body := func(secret string) string {
		return `{"component_appid":"wxcomp","component_appsecret":"` + secret + `","component_verify_ticket":"` + ticket + `"}`
	}
	s.SetComponentSecret("wxcomp", "new-component-secret")
	if r := must(t, s, http.MethodPost, wxtest.PathComponentToken, nil, body("old-component-secret")); r.Errcode != 40125 {
		t.Errorf("old secret: errcode %d, want 40125", r.Errcode)
	}
	if r := must(t, s, http.MethodPost, wxtest.PathComponentToken, nil, body("new-component-secret")); r.Errcode != 0 {
		t.Errorf("new secret: %s", r.Raw)
	}
}
