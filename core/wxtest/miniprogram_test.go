package wxtest_test

import (
	"bytes"
	"encoding/json"
	"image/jpeg"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

type sessionReply struct {
	Errcode    int    `json:"errcode"`
	Errmsg     string `json:"errmsg"`
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
}

func code2Session(t *testing.T, s *wxtest.Server, q url.Values) sessionReply {
	t.Helper()
	r := must(t, s, http.MethodGet, wxtest.PathCode2Session, q, "")
	var out sessionReply
	if err := json.Unmarshal([]byte(r.Raw), &out); err != nil {
		t.Fatalf("jscode2session: %v: %s", err, r.Raw)
	}
	return out
}

func loginQuery(code string) url.Values {
	return url.Values{"appid": {appID}, "secret": {appSecret}, "js_code": {code}, "grant_type": {"authorization_code"}}
}

func TestCode2Session(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	code := s.IssueLoginCode("oUser1")
	r := code2Session(t, s, loginQuery(code))
	if r.Errcode != 0 || r.OpenID != "oUser1" || len(r.SessionKey) != 24 {
		t.Fatalf("reply %+v: want openid oUser1 and a 24-character session_key", r)
	}
	// Single use.
	if r := code2Session(t, s, loginQuery(code)); r.Errcode != 40163 || !strings.HasPrefix(r.Errmsg, "code been used rid: ") {
		t.Fatalf("second use: %+v, want 40163 code been used", r)
	}
	// Unknown code.
	if r := code2Session(t, s, loginQuery("nope")); r.Errcode != 40029 {
		t.Fatalf("unknown code: %+v, want 40029", r)
	}
	// Expiry after LoginCodeTTL of simulated time.
	fresh := s.IssueLoginCode("oUser2")
	late := s.IssueLoginCode("oUser3")
	s.Advance(wxtest.LoginCodeTTL - 1)
	if r := code2Session(t, s, loginQuery(fresh)); r.Errcode != 0 || r.OpenID != "oUser2" {
		t.Fatalf("code just before expiry: %+v", r)
	}
	s.Advance(1)
	if r := code2Session(t, s, loginQuery(late)); r.Errcode != 40029 {
		t.Fatalf("expired code: %+v, want 40029", r)
	}
	// High-risk user.
	if r := code2Session(t, s, loginQuery(s.IssueBlockedLoginCode("oRisky"))); r.Errcode != 40226 {
		t.Fatalf("blocked code: %+v, want 40226", r)
	}
}

func TestCode2SessionBadRequests(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	code := s.IssueLoginCode("oUser")
	for _, tc := range []struct {
		name string
		edit func(url.Values)
		want int
	}{
		{"grant_type", func(q url.Values) { q.Set("grant_type", "client_credential") }, 40002},
		{"no appid", func(q url.Values) { q.Del("appid") }, 41002},
		{"no secret", func(q url.Values) { q.Del("secret") }, 41004},
		{"wrong appid", func(q url.Values) { q.Set("appid", "wxother") }, 40013},
		{"wrong secret", func(q url.Values) { q.Set("secret", "nope") }, 40125},
		{"no js_code", func(q url.Values) { q.Del("js_code") }, 41008},
	} {
		q := loginQuery(code)
		tc.edit(q)
		if r := code2Session(t, s, q); r.Errcode != tc.want {
			t.Errorf("%s: %+v, want errcode %d", tc.name, r, tc.want)
		}
	}
	if r := must(t, s, http.MethodPost, wxtest.PathCode2Session, loginQuery(code), "{}"); r.Errcode != 43001 {
		t.Errorf("POST: %s, want 43001", r.Raw)
	}
	// The rejected requests did not use the code up.
	if r := code2Session(t, s, loginQuery(code)); r.Errcode != 0 || r.OpenID != "oUser" {
		t.Fatalf("code after rejected requests: %+v", r)
	}
}

// wxaCode posts body to PathWXACodeUnlimit and returns the reply's
// Content-Type and body.
func wxaCode(t *testing.T, s *wxtest.Server, token, body string) (string, []byte) {
	t.Helper()
	resp, err := s.Client().Post(s.URL+wxtest.PathWXACodeUnlimit+"?access_token="+url.QueryEscape(token), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	return resp.Header.Get("Content-Type"), b
}

func errcodeOf(t *testing.T, ct string, b []byte) int {
	t.Helper()
	if !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want JSON: %.40q", ct, b)
	}
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r.Errcode
}

func TestWXACodeUnlimit(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	token := classicToken(t, s)

	ct, img := wxaCode(t, s, token, `{"scene":"a=1","page":"pages/index/index"}`)
	if ct != "image/jpeg" {
		t.Fatalf("Content-Type %q, want image/jpeg", ct)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(img))
	if err != nil || cfg.Width != 430 || cfg.Height != 430 {
		t.Fatalf("image: %+v, %v: want a 430×430 JPEG", cfg, err)
	}
	if _, again := wxaCode(t, s, token, `{"scene":"a=1","page":"pages/index/index"}`); !bytes.Equal(again, img) {
		t.Fatal("the same request gave another image")
	}
	if _, other := wxaCode(t, s, token, `{"scene":"a=2","page":"pages/index/index"}`); bytes.Equal(other, img) {
		t.Fatal("another scene gave the same image")
	}
	_, wide := wxaCode(t, s, token, `{"scene":"a=1","width":2000}`)
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(wide)); err != nil || cfg.Width != 1280 {
		t.Fatalf("width 2000: %+v, %v: want 1280", cfg, err)
	}
	if ct, _ := wxaCode(t, s, token, `{"scene":"`+strings.Repeat("x", 32)+`"}`); ct != "image/jpeg" {
		t.Fatalf("32-character scene: Content-Type %q", ct)
	}

	for _, tc := range []struct {
		name, token, body string
		want              int
	}{
		{"no token", "", `{"scene":"a=1"}`, 41001},
		{"bad token", "nope", `{"scene":"a=1"}`, 40001},
		{"long scene", token, `{"scene":"` + strings.Repeat("x", 33) + `"}`, 40169},
		{"empty scene", token, `{"page":"pages/index/index"}`, 40169},
		{"not JSON", token, `scene=a`, 40169},
		{"bad character", token, `{"scene":"a b"}`, 40129},
		{"Chinese", token, `{"scene":"中文"}`, 40129},
		{"page with /", token, `{"scene":"a=1","page":"/pages/index/index"}`, 41030},
		{"page with query", token, `{"scene":"a=1","page":"pages/index/index?a=1"}`, 41030},
	} {
		ct, b := wxaCode(t, s, tc.token, tc.body)
		if got := errcodeOf(t, ct, b); got != tc.want {
			t.Errorf("%s: errcode %d, want %d (%s)", tc.name, got, tc.want, b)
		}
	}
	if r := must(t, s, http.MethodGet, wxtest.PathWXACodeUnlimit, url.Values{"access_token": {token}}, ""); r.Errcode != 43002 {
		t.Errorf("GET: %s, want 43002", r.Raw)
	}
	s.Advance(wxtest.DefaultExpiresIn)
	if ct, b := wxaCode(t, s, token, `{"scene":"a=1"}`); errcodeOf(t, ct, b) != 42001 {
		t.Errorf("expired token: %s, want 42001", b)
	}
}

func TestEncryptJSONPush(t *testing.T) {
	const (
		token = "spamtest"
		key   = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	)
	plain := []byte(`{"ToUserName":"gh_abc","FromUserName":"oUser","CreateTime":1700000000,"MsgType":"event","Event":"wxa_media_check"}`)
	q, body, err := wxtest.EncryptJSONPush(token, key, appID, plain, 1700000000, "123456")
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("encrypt_type") != "aes" || q.Get("timestamp") != "1700000000" || q.Get("nonce") != "123456" {
		t.Fatalf("query %v", q)
	}
	if !msgcrypt.VerifySignature(token, "1700000000", "123456", q.Get("signature")) {
		t.Fatal("bad signature")
	}
	var env map[string]string
	if err := json.Unmarshal(body, &env); err != nil || env["ToUserName"] != "gh_abc" || env["Encrypt"] == "" || len(env) != 2 {
		t.Fatalf("body %s: %v", body, err)
	}
	c, err := msgcrypt.New(token, key, appID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.DecryptJSONMessage(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("DecryptJSONMessage = %s, %v", got, err)
	}
	if _, _, err := wxtest.EncryptJSONPush(token, "short", appID, plain, 1, "1"); err == nil {
		t.Fatal("a bad key was accepted")
	}
}
