package wxtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core/wxtest"
)

var urlSafe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func TestClassicTokenReply(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	r := classic(t, s)
	if r.Errcode != 0 || r.ExpiresIn != 7200 {
		t.Fatalf("reply %s, want expires_in 7200 and no errcode", r.Raw)
	}
	if n := len(r.AccessToken); n < 128 || n > 512 || !urlSafe.MatchString(r.AccessToken) {
		t.Fatalf("token %q: want 128..512 URL-safe characters", r.AccessToken)
	}
	if got := s.TokensIssued(); got != 1 {
		t.Fatalf("TokensIssued = %d, want 1", got)
	}
	if strings.HasSuffix(s.URL, "/") || !strings.HasPrefix(s.URL, "http://") {
		t.Fatalf("URL %q: want http://host:port without a trailing slash", s.URL)
	}

	s2 := newServer(t, wxtest.Options{ExpiresIn: 10 * time.Minute})
	if r := classic(t, s2); r.ExpiresIn != 600 {
		t.Fatalf("ExpiresIn 10m: expires_in %d, want 600", r.ExpiresIn)
	}
}

func TestClassicTokenSupersededAfterOverlap(t *testing.T) {
	for _, overlap := range []time.Duration{0, time.Minute} {
		want := overlap
		if want == 0 {
			want = wxtest.DefaultOverlap
		}
		t.Run(want.String(), func(t *testing.T) {
			s := newServer(t, wxtest.Options{Overlap: overlap})
			t1 := classicToken(t, s)
			wantAPI(t, s, t1, 0)
			t2 := classicToken(t, s)
			if t2 == t1 {
				t.Fatal("second classic fetch returned the same token")
			}
			wantAPI(t, s, t1, 0) // still within the overlap
			s.Advance(want - time.Second)
			wantAPI(t, s, t1, 0)
			s.Advance(time.Second)
			wantAPI(t, s, t1, 40001)
			wantAPI(t, s, t2, 0)
			if got := s.TokensIssued(); got != 2 {
				t.Fatalf("TokensIssued = %d, want 2", got)
			}
		})
	}
}

func TestClassicTokenNegativeOverlap(t *testing.T) {
	s := newServer(t, wxtest.Options{Overlap: -1})
	t1 := classicToken(t, s)
	t2 := classicToken(t, s)
	wantAPI(t, s, t1, 40001)
	wantAPI(t, s, t2, 0)
}

func TestClassicTokenChain(t *testing.T) {
	// Each fetch supersedes only the latest token; an older one keeps the
	// deadline it got when it was superseded.
	s := newServer(t, wxtest.Options{})
	t1 := classicToken(t, s)
	s.Advance(time.Minute)
	t2 := classicToken(t, s)
	s.Advance(time.Minute)
	t3 := classicToken(t, s)
	s.Advance(4 * time.Minute) // t1 superseded 5m ago, t2 4m ago
	wantAPI(t, s, t1, 40001)
	wantAPI(t, s, t2, 0)
	wantAPI(t, s, t3, 0)
	s.Advance(time.Minute)
	wantAPI(t, s, t2, 40001)
	wantAPI(t, s, t3, 0)
}

func TestTokenSeq(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	t1 := classicToken(t, s)
	t2 := classicToken(t, s)
	s.ResetCounters() // does not restart the issue order
	t3 := stableToken(t, s, false)
	for i, tok := range []string{t1, t2, t3} {
		if got := s.TokenSeq(tok); got != i+1 {
			t.Errorf("TokenSeq(token %d) = %d, want %d", i+1, got, i+1)
		}
	}
	if got := s.TokenSeq("not-a-token"); got != 0 {
		t.Errorf("TokenSeq(unknown) = %d, want 0", got)
	}
}

func TestTokenExpiry(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	c := classicToken(t, s)
	st := stableToken(t, s, false)
	s.Advance(wxtest.DefaultExpiresIn - time.Nanosecond)
	wantAPI(t, s, c, 0)
	wantAPI(t, s, st, 0)
	s.Advance(time.Nanosecond)
	wantAPI(t, s, c, 42001)
	wantAPI(t, s, st, 42001)
	if r := ticket(t, s, c, "jsapi"); r.Errcode != 42001 {
		t.Fatalf("ticket with an expired token: %s, want 42001", r.Raw)
	}
	r := must(t, s, http.MethodPost, wxtest.PathSend, url.Values{"access_token": {c}}, `{}`)
	if r.Errcode != 42001 {
		t.Fatalf("send with an expired token: %s, want 42001", r.Raw)
	}
}

func TestStableTokenSameToken(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	r1 := stable(t, s, false)
	if r1.Errcode != 0 || r1.AccessToken == "" || r1.ExpiresIn != 7200 {
		t.Fatalf("first stable_token: %s", r1.Raw)
	}
	r2 := stable(t, s, false)
	if r2.AccessToken != r1.AccessToken {
		t.Fatal("stable_token returned a new token while the current one had time left")
	}
	s.Advance(time.Hour + 500*time.Millisecond)
	r3 := stable(t, s, false)
	if r3.AccessToken != r1.AccessToken || r3.ExpiresIn != 3599 {
		t.Fatalf("after 1h0.5s: same token %v, expires_in %d; want same token, 3599 (remaining, rounded down)",
			r3.AccessToken == r1.AccessToken, r3.ExpiresIn)
	}
	if got := s.TokensIssued(); got != 1 {
		t.Fatalf("TokensIssued = %d, want 1", got)
	}
	wantAPI(t, s, r1.AccessToken, 0)
}

func TestStableTokenHandOver(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	t1 := stableToken(t, s, false)
	s.Advance(wxtest.DefaultExpiresIn - wxtest.DefaultOverlap - time.Second)
	if got := stableToken(t, s, false); got != t1 {
		t.Fatal("hand-over started before the last Overlap of the token's life")
	}
	s.Advance(time.Second) // exactly Overlap left: the hand-over window
	r := stable(t, s, false)
	t2 := r.AccessToken
	if t2 == t1 || r.ExpiresIn != 7200 {
		t.Fatalf("in the hand-over window: new token %v, expires_in %d; want a new token with 7200",
			t2 != t1, r.ExpiresIn)
	}
	if got := stableToken(t, s, false); got != t2 {
		t.Fatal("after the hand-over, stable_token did not keep returning the next token")
	}
	wantAPI(t, s, t1, 0) // both work during the hand-over
	wantAPI(t, s, t2, 0)
	s.Advance(wxtest.DefaultOverlap)
	wantAPI(t, s, t1, 42001) // the old one expires at its own expiry
	wantAPI(t, s, t2, 0)
	if got := s.TokensIssued(); got != 2 {
		t.Fatalf("TokensIssued = %d, want 2", got)
	}
}

func TestStableTokenAfterExpiry(t *testing.T) {
	s := newServer(t, wxtest.Options{Overlap: -1})
	t1 := stableToken(t, s, false)
	s.Advance(wxtest.DefaultExpiresIn - time.Second)
	if got := stableToken(t, s, false); got != t1 {
		t.Fatal("without overlap, stable_token handed over before expiry")
	}
	s.Advance(time.Second)
	if got := stableToken(t, s, false); got == t1 {
		t.Fatal("stable_token returned an expired token")
	}
}

func TestStableTokenForceRefresh(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	t1 := stableToken(t, s, false)
	s.Advance(wxtest.DefaultExpiresIn - wxtest.DefaultOverlap)
	t2 := stableToken(t, s, false) // hand-over: t1 and t2 both work
	wantAPI(t, s, t1, 0)
	t3 := stableToken(t, s, true)
	if t3 == t1 || t3 == t2 {
		t.Fatal("force_refresh did not mint a new token")
	}
	wantAPI(t, s, t1, 40001)
	wantAPI(t, s, t2, 40001)
	wantAPI(t, s, t3, 0)
	if got := stableToken(t, s, false); got != t3 {
		t.Fatal("a normal call after force_refresh did not return the forced token")
	}
	t4 := stableToken(t, s, true)
	if t4 == t3 {
		t.Fatal("second force_refresh returned the same token")
	}
	wantAPI(t, s, t3, 40001)
	if got := s.TokensIssued(); got != 4 {
		t.Fatalf("TokensIssued = %d, want 4", got)
	}
}

func TestForceRefreshLimits(t *testing.T) {
	s := newServer(t, wxtest.Options{
		ForceRefreshDailyLimit: 2,
		ForceRefreshInterval:   30 * time.Second,
		Start:                  time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
	})
	stableToken(t, s, true)
	if r := stable(t, s, true); r.Errcode != 45011 {
		t.Fatalf("force_refresh 0 s after the previous: %s, want 45011", r.Raw)
	}
	s.Advance(30 * time.Second)
	stableToken(t, s, true)
	s.Advance(30 * time.Second)
	if r := stable(t, s, true); r.Errcode != 45009 {
		t.Fatalf("third force_refresh of the day: %s, want 45009", r.Raw)
	}
	stableToken(t, s, false) // normal mode is not limited
	s.ResetQuota()
	stableToken(t, s, true)
	s.Advance(12 * time.Hour) // the next Beijing day: the daily limit starts again
	stableToken(t, s, true)
}

// tests that classic and stable tokens of one AppID never invalidate each
// other: classic fetches leave the stable token served and accepted, a
// force_refresh leaves the classic token accepted. WeChat's reference for
// getStableAccessToken says the stable token is "completely isolated from
// the invocation credentials obtained by getAccessToken" (与getAccessToken
// 获取的调用凭证完全隔离，互不影响):
// https://developers.weixin.qq.com/doc/service/en/api/base/api_getstableaccesstoken.html
// (silenceper/wechat quotes the same sentence on its StableAccessToken).
// docs/migrating.md relies on it: old instances on the classic token and
// new ones on stable_token can run side by side.
func TestClassicAndStableIndependent(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	st := stableToken(t, s, false)
	c1 := classicToken(t, s)
	c2 := classicToken(t, s)
	if got := stableToken(t, s, false); got != st {
		t.Fatal("classic fetches changed the stable token")
	}
	s.Advance(wxtest.DefaultOverlap)
	wantAPI(t, s, c1, 40001)
	wantAPI(t, s, st, 0)
	if stableToken(t, s, true) == st {
		t.Fatal("force_refresh returned the same token")
	}
	wantAPI(t, s, st, 40001)
	wantAPI(t, s, c2, 0)
	classicToken(t, s)
	s.Advance(wxtest.DefaultOverlap)
	wantAPI(t, s, c2, 40001)
}

func TestCredentialErrors(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	type creds struct{ grant, appid, secret string }
	cases := []struct {
		name string
		c    creds
		code int
		msg  string
	}{
		{"missing appid", creds{"client_credential", "", appSecret}, 41002, "appid missing"},
		{"missing secret", creds{"client_credential", appID, ""}, 41004, "appsecret missing"},
		{"wrong appid", creds{"client_credential", "wx_other", appSecret}, 40013, "invalid appid"},
		{"wrong secret", creds{"client_credential", appID, "nope"}, 40125, "invalid appsecret"},
		{"wrong grant_type", creds{"authorization_code", appID, appSecret}, 40002, "invalid grant_type"},
		{"missing grant_type", creds{"", appID, appSecret}, 40002, "invalid grant_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := classicQuery(tc.c.appid, tc.c.secret)
			if tc.c.grant == "" {
				q.Del("grant_type")
			} else {
				q.Set("grant_type", tc.c.grant)
			}
			body, _ := json.Marshal(map[string]any{"grant_type": tc.c.grant, "appid": tc.c.appid, "secret": tc.c.secret})
			for _, r := range []reply{
				must(t, s, http.MethodGet, wxtest.PathToken, q, ""),
				must(t, s, http.MethodPost, wxtest.PathStableToken, nil, string(body)),
			} {
				if r.Errcode != tc.code || r.AccessToken != "" {
					t.Errorf("reply %s, want errcode %d and no token", r.Raw, tc.code)
				}
				if !strings.HasPrefix(r.Errmsg, tc.msg+" rid: ") {
					t.Errorf("errmsg %q, want %q followed by a rid", r.Errmsg, tc.msg)
				}
			}
		})
	}
	if got := s.TokensIssued(); got != 0 {
		t.Fatalf("TokensIssued = %d after rejected fetches, want 0", got)
	}
}

func TestAnyCredentials(t *testing.T) {
	s := wxtest.New(wxtest.Options{})
	defer s.Close()
	a1 := must(t, s, http.MethodGet, wxtest.PathToken, classicQuery("wx_a", "x"), "")
	b1 := must(t, s, http.MethodGet, wxtest.PathToken, classicQuery("wx_b", "y"), "")
	if a1.AccessToken == "" || b1.AccessToken == "" {
		t.Fatalf("empty Options rejected credentials: %s %s", a1.Raw, b1.Raw)
	}
	// Each appid has its own tokens: wx_b's fetch does not supersede wx_a's.
	must(t, s, http.MethodGet, wxtest.PathToken, classicQuery("wx_b", "y"), "")
	s.Advance(wxtest.DefaultOverlap)
	wantAPI(t, s, a1.AccessToken, 0)
	wantAPI(t, s, b1.AccessToken, 40001)
	if r := must(t, s, http.MethodGet, wxtest.PathToken, classicQuery("", "x"), ""); r.Errcode != 41002 {
		t.Fatalf("empty appid: %s, want 41002", r.Raw)
	}
}

func TestMethodsAndFormat(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	tok := classicToken(t, s)
	at := url.Values{"access_token": {tok}}
	cases := []struct {
		name, method, path string
		q                  url.Values
		body               string
		code               int
	}{
		{"stable GET", http.MethodGet, wxtest.PathStableToken, nil, "", 43002},
		{"stable bad JSON", http.MethodPost, wxtest.PathStableToken, nil, `{"appid":`, 47001},
		{"stable empty body", http.MethodPost, wxtest.PathStableToken, nil, "", 47001},
		{"stable force_refresh not a bool", http.MethodPost, wxtest.PathStableToken, nil,
			`{"grant_type":"client_credential","appid":"` + appID + `","secret":"` + appSecret + `","force_refresh":"yes"}`, 47001},
		{"classic POST", http.MethodPost, wxtest.PathToken, classicQuery(appID, appSecret), "{}", 43001},
		{"send GET", http.MethodGet, wxtest.PathSend, at, "", 43002},
		{"send bad JSON", http.MethodPost, wxtest.PathSend, at, "not json", 47001},
		{"api POST", http.MethodPost, wxtest.PathAPI, at, "{}", 43001},
	}
	for _, tc := range cases {
		r := must(t, s, tc.method, tc.path, tc.q, tc.body)
		if r.Errcode != tc.code {
			t.Errorf("%s: %s, want errcode %d", tc.name, r.Raw, tc.code)
		}
	}
	if got := s.TokensIssued(); got != 1 {
		t.Fatalf("TokensIssued = %d, want 1", got)
	}
}

func TestTickets(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	tok := classicToken(t, s)
	seen := map[string]bool{}
	for _, typ := range []string{"jsapi", "wx_card", "jsapi"} {
		r := ticket(t, s, tok, typ)
		if r.Errcode != 0 || r.Errmsg != "ok" || r.ExpiresIn != 7200 || !urlSafe.MatchString(r.Ticket) {
			t.Fatalf("%s ticket: %s", typ, r.Raw)
		}
		if seen[r.Ticket] {
			t.Fatal("a ticket call returned an earlier ticket")
		}
		seen[r.Ticket] = true
		if !strings.Contains(r.Raw, `"errcode":0`) {
			t.Fatalf("ticket reply %s lacks errcode 0", r.Raw)
		}
	}
	if got := s.TicketsIssued(); got != 3 {
		t.Fatalf("TicketsIssued = %d, want 3", got)
	}
	for tk := range seen {
		if !s.TicketValid(tk) {
			t.Fatal("fresh ticket not valid")
		}
	}
	if s.TicketValid("unknown") {
		t.Fatal("TicketValid(unknown) = true")
	}
	s.Advance(wxtest.DefaultExpiresIn - time.Second)
	for tk := range seen {
		if !s.TicketValid(tk) {
			t.Fatal("ticket invalid before its expiry")
		}
	}
	s.Advance(time.Second)
	for tk := range seen {
		if s.TicketValid(tk) {
			t.Fatal("ticket valid after its expiry")
		}
	}
}

func TestTicketNeedsValidToken(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	superseded := classicToken(t, s)
	revoked := stableToken(t, s, false)
	good := classicToken(t, s)
	s.Advance(wxtest.DefaultOverlap)
	s.Revoke(revoked)
	cases := []struct {
		name, token, typ string
		code             int
	}{
		{"missing token", "", "jsapi", 41001},
		{"unknown token", "not-a-token", "jsapi", 40001},
		{"revoked token", revoked, "jsapi", 40001},
		{"superseded token", superseded, "wx_card", 40001},
		{"unknown type", good, "wx_pay", 40097},
		{"missing type", good, "", 40097},
	}
	for _, tc := range cases {
		r := ticket(t, s, tc.token, tc.typ)
		if r.Errcode != tc.code || r.Ticket != "" {
			t.Errorf("%s: %s, want errcode %d and no ticket", tc.name, r.Raw, tc.code)
		}
	}
	if got := s.TicketsIssued(); got != 0 {
		t.Fatalf("TicketsIssued = %d, want 0", got)
	}
	s.Advance(wxtest.DefaultExpiresIn)
	if r := ticket(t, s, good, "jsapi"); r.Errcode != 42001 {
		t.Fatalf("expired token: %s, want 42001", r.Raw)
	}
}

func TestAPIAndSend(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	tok := classicToken(t, s)
	wantAPI(t, s, tok, 0)
	wantAPI(t, s, "", 41001)
	wantAPI(t, s, "bogus", 40001)

	if s.LastBody(wxtest.PathSend) != nil {
		t.Fatal("LastBody before any request is not nil")
	}
	msg := `{"touser":"OPENID","msgtype":"text","text":{"content":"hello"}}`
	r := must(t, s, http.MethodPost, wxtest.PathSend, url.Values{"access_token": {tok}}, msg)
	if r.Raw != `{"errcode":0,"errmsg":"ok"}` {
		t.Fatalf("send reply %s", r.Raw)
	}
	if got := string(s.LastBody(wxtest.PathSend)); got != msg {
		t.Fatalf("LastBody = %q, want %q", got, msg)
	}
	b := s.LastBody(wxtest.PathSend)
	b[0] = 'X'
	if string(s.LastBody(wxtest.PathSend)) != msg {
		t.Fatal("LastBody returned the server's own slice")
	}
	for _, tc := range []struct {
		token string
		code  int
	}{{"", 41001}, {"bogus", 40001}} {
		q := url.Values{}
		if tc.token != "" {
			q.Set("access_token", tc.token)
		}
		if r := must(t, s, http.MethodPost, wxtest.PathSend, q, msg); r.Errcode != tc.code {
			t.Errorf("send with token %q: %s, want %d", tc.token, r.Raw, tc.code)
		}
	}
}

func TestRevoke(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	tok := classicToken(t, s)
	tk := ticket(t, s, tok, "jsapi").Ticket
	s.Revoke(tok)
	wantAPI(t, s, tok, 40001)
	if !s.TicketValid(tk) {
		t.Fatal("revoking a token revoked its ticket")
	}
	s.Revoke(tk)
	if s.TicketValid(tk) {
		t.Fatal("revoked ticket still valid")
	}
	s.Revoke("unknown") // no-op
	s.Advance(wxtest.DefaultExpiresIn)
	wantAPI(t, s, tok, 40001) // revoked stays 40001, not 42001
}

func TestDailyQuota(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := newServer(t, wxtest.Options{DailyQuota: 3, Start: start})
	classicToken(t, s)
	st := stableToken(t, s, false)
	classicToken(t, s)
	if got := stableToken(t, s, false); got != st {
		t.Fatal("stable token changed")
	}
	if r := classic(t, s); r.Errcode != 45009 || r.AccessToken != "" ||
		!strings.HasPrefix(r.Errmsg, "reach max api daily quota limit rid: ") {
		t.Fatalf("fourth mint: %s, want 45009", r.Raw)
	}
	if r := stable(t, s, true); r.Errcode != 45009 {
		t.Fatalf("force_refresh past quota: %s, want 45009", r.Raw)
	}
	wantAPI(t, s, st, 0) // the refused force_refresh did not invalidate it
	if got := s.TokensIssued(); got != 3 {
		t.Fatalf("TokensIssued = %d, want 3", got)
	}
	s.Advance(4*time.Hour - time.Second) // 15:59:59 UTC, 23:59:59 in Beijing
	if r := classic(t, s); r.Errcode != 45009 {
		t.Fatalf("same day: %s, want 45009", r.Raw)
	}
	s.Advance(time.Second) // the next day in Beijing, WeChat's
	classicToken(t, s)
	s.ResetQuota()
	for range 3 {
		classicToken(t, s)
	}
	if r := classic(t, s); r.Errcode != 45009 {
		t.Fatalf("after ResetQuota and 3 mints: %s, want 45009", r.Raw)
	}
}

func TestQuotaPerAppID(t *testing.T) {
	s := wxtest.New(wxtest.Options{DailyQuota: 1})
	defer s.Close()
	must(t, s, http.MethodGet, wxtest.PathToken, classicQuery("wx_a", "x"), "")
	if r := must(t, s, http.MethodGet, wxtest.PathToken, classicQuery("wx_b", "x"), ""); r.AccessToken == "" {
		t.Fatalf("another appid's quota was used: %s", r.Raw)
	}
	if r := must(t, s, http.MethodGet, wxtest.PathToken, classicQuery("wx_a", "x"), ""); r.Errcode != 45009 {
		t.Fatalf("%s, want 45009", r.Raw)
	}
}

func TestFaults(t *testing.T) {
	cases := []struct {
		name   string
		f      wxtest.Fault
		status int
		check  func(r reply) bool
	}{
		{"Busy", wxtest.Busy(), 200, func(r reply) bool {
			return r.Raw == `{"errcode":-1,"errmsg":"system error"}`
		}},
		{"Errcode", wxtest.Errcode(40164, "invalid ip 203.0.113.7, not in whitelist"), 200, func(r reply) bool {
			return r.Errcode == 40164 && r.Errmsg == "invalid ip 203.0.113.7, not in whitelist"
		}},
		{"MalformedJSON", wxtest.MalformedJSON(), 200, func(r reply) bool {
			return !isJSON(r.Raw) && r.Raw != ""
		}},
		{"EmptyReply", wxtest.EmptyReply(), 200, func(r reply) bool {
			return r.Raw == "{}"
		}},
		{"HTTPStatus", wxtest.HTTPStatus(502), 502, func(r reply) bool {
			return strings.Contains(r.Raw, "502 Bad Gateway") && !isJSON(r.Raw)
		}},
		{"raw Fault with status 0", wxtest.Fault{Body: `{"errcode":45011}`}, 200, func(r reply) bool {
			return r.Errcode == 45011
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, wxtest.Options{})
			s.InjectFault(wxtest.PathToken, tc.f, 1)
			r, err := do(t, s, context.Background(), http.MethodGet, wxtest.PathToken, classicQuery(appID, appSecret), "")
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tc.status || !tc.check(r) {
				t.Fatalf("HTTP %d %q: unexpected for %s", r.Status, r.Raw, tc.name)
			}
			if s.TokensIssued() != 0 || s.Calls(wxtest.PathToken) != 1 {
				t.Fatalf("TokensIssued %d, Calls %d; want 0, 1", s.TokensIssued(), s.Calls(wxtest.PathToken))
			}
			classicToken(t, s) // back to normal
		})
	}
}

func TestInjectFaultQueue(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	s.InjectFault(wxtest.PathStableToken, wxtest.Busy(), 2)
	s.InjectFault(wxtest.PathStableToken, wxtest.EmptyReply(), 1)
	s.InjectFault(wxtest.PathStableToken, wxtest.Busy(), 0) // no-op
	tok := classicToken(t, s)                               // other paths unaffected
	for i, want := range []string{"busy", "busy", "empty", "token", "token"} {
		r := stable(t, s, false)
		var got string
		switch {
		case r.Errcode == -1:
			got = "busy"
		case r.Raw == "{}":
			got = "empty"
		case r.AccessToken != "":
			got = "token"
		}
		if got != want {
			t.Fatalf("request %d: %s, want %s", i+1, r.Raw, want)
		}
	}
	if got := s.Calls(wxtest.PathStableToken); got != 5 {
		t.Fatalf("Calls = %d, want 5 (faulted requests count)", got)
	}
	s.InjectFault(wxtest.PathAPI, wxtest.Errcode(40001, "injected"), 1)
	if got := api(t, s, tok); got != 40001 {
		t.Fatalf("injected 40001 on PathAPI: got %d", got)
	}
	wantAPI(t, s, tok, 0)
}

func TestCountersAndReset(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	tok := classicToken(t, s)
	ticket(t, s, tok, "jsapi")
	api(t, s, "bogus")
	must(t, s, http.MethodGet, wxtest.PathToken, classicQuery(appID, "wrong"), "")
	if s.Calls(wxtest.PathToken) != 2 || s.Calls(wxtest.PathAPI) != 1 || s.Calls(wxtest.PathTicket) != 1 ||
		s.TokensIssued() != 1 || s.TicketsIssued() != 1 {
		t.Fatalf("counters: token %d api %d ticket %d issued %d/%d",
			s.Calls(wxtest.PathToken), s.Calls(wxtest.PathAPI), s.Calls(wxtest.PathTicket), s.TokensIssued(), s.TicketsIssued())
	}
	s.ResetCounters()
	if s.Calls(wxtest.PathToken) != 0 || s.Calls(wxtest.PathAPI) != 0 || s.TokensIssued() != 0 || s.TicketsIssued() != 0 {
		t.Fatal("ResetCounters left a counter")
	}
	wantAPI(t, s, tok, 0) // state is kept
}

func TestUnknownPath(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	for _, p := range []string{"/", "/cgi-bin/nope", wxtest.PathToken + "/"} {
		r, err := do(t, s, context.Background(), http.MethodGet, p, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusNotFound {
			t.Errorf("%s: HTTP %d, want 404", p, r.Status)
		}
	}
	if s.Calls("/cgi-bin/nope") != 1 {
		t.Fatal("requests to unknown paths are not counted")
	}
}

func TestBlock(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	g := s.Block(wxtest.PathToken)
	if s.Block(wxtest.PathToken) != g {
		t.Fatal("Block on a blocked path returned a new gate")
	}
	const n = 3
	results := make(chan reply, n)
	for range n {
		go func() {
			r, err := do(t, s, context.Background(), http.MethodGet, wxtest.PathToken, classicQuery(appID, appSecret), "")
			if err != nil {
				t.Error(err)
			}
			results <- r
		}()
	}
	for i := range n {
		receive(t, g.Arrived(), "held request "+string(rune('1'+i)))
	}
	if got := s.Calls(wxtest.PathToken); got != n {
		t.Fatalf("Calls = %d while %d requests are held, want %d", got, n, n)
	}
	if got := g.Held(); got != n {
		t.Fatalf("Held = %d, want %d", got, n)
	}
	if got := s.TokensIssued(); got != 0 {
		t.Fatalf("TokensIssued = %d while held, want 0", got)
	}
	select {
	case r := <-results:
		t.Fatalf("a held request completed: %s", r.Raw)
	default:
	}
	g.Release()
	g.Release() // idempotent
	for range n {
		select {
		case r := <-results:
			if r.AccessToken == "" {
				t.Fatalf("released request: %s", r.Raw)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("released requests did not complete")
		}
	}
	classicToken(t, s) // no longer blocked
	select {
	case <-g.Arrived():
		t.Fatal("a request after Release was reported as held")
	default:
	}
	if g2 := s.Block(wxtest.PathToken); g2 == g {
		t.Fatal("Block after Release returned the released gate")
	} else {
		g2.Release()
	}
}

func TestBlockThenFault(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	g := s.Block(wxtest.PathToken)
	s.InjectFault(wxtest.PathToken, wxtest.Busy(), 1)
	done := make(chan reply, 1)
	go func() { done <- classic(t, s) }()
	receive(t, g.Arrived(), "held request")
	g.Release()
	if r := <-done; r.Errcode != -1 {
		t.Fatalf("held request released into its fault: %s, want -1", r.Raw)
	}
}

func TestBlockContextEnds(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	g := s.Block(wxtest.PathAPI)
	defer g.Release()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := do(t, s, ctx, http.MethodGet, wxtest.PathAPI, nil, "")
		errc <- err
	}()
	receive(t, g.Arrived(), "held request")
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled request still held")
	}
}

func TestCloseReleasesHeldRequests(t *testing.T) {
	s := wxtest.New(wxtest.Options{})
	g := s.Block(wxtest.PathToken)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r, err := do(t, s, context.Background(), http.MethodGet, wxtest.PathToken, nil, "")
		if err == nil && r.Status != http.StatusServiceUnavailable {
			t.Errorf("held request at Close: HTTP %d %q, want an error or 503", r.Status, r.Raw)
		}
	}()
	receive(t, g.Arrived(), "held request")
	closed := make(chan struct{})
	go func() { s.Close(); s.Close(); close(closed) }()
	receive(t, closed, "Close")
	receive(t, done, "the held request")
}

func TestLatency(t *testing.T) {
	const d = 50 * time.Millisecond
	s := newServer(t, wxtest.Options{Latency: d})
	start := time.Now()
	classicToken(t, s)
	if el := time.Since(start); el < d {
		t.Fatalf("request took %v, want at least the %v latency", el, d)
	}

	s.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := do(t, s, ctx, http.MethodGet, wxtest.PathToken, classicQuery(appID, appSecret), "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("a cancelled request took %v", el)
	}
	s.SetLatency(0)
	start = time.Now()
	classicToken(t, s)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("SetLatency(0) did not remove the delay: %v", el)
	}
	if got := s.Calls(wxtest.PathToken); got != 3 {
		t.Fatalf("Calls = %d, want 3 (the abandoned request counts)", got)
	}
}

func TestManualClock(t *testing.T) {
	start := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	s := newServer(t, wxtest.Options{Start: start})
	if got := s.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want Start %v", got, start)
	}
	classicToken(t, s) // real time passes; the simulated clock does not
	if got := s.Now(); !got.Equal(start) {
		t.Fatalf("the manual clock moved by itself: %v", got)
	}
	s.Advance(90 * time.Minute)
	if got := s.Now(); !got.Equal(start.Add(90 * time.Minute)) {
		t.Fatalf("Now after Advance = %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Advance(-1) did not panic")
		}
	}()
	s.Advance(-1)
}

func TestDefaultStart(t *testing.T) {
	before := time.Now()
	s := newServer(t, wxtest.Options{})
	if now := s.Now(); now.Before(before) || now.After(time.Now()) {
		t.Fatalf("default Start %v is not the time of New", now)
	}
}

func TestCustomClock(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	s := newServer(t, wxtest.Options{Now: clock, Start: time.Unix(0, 0)})
	if got := s.Now(); !got.Equal(clock()) {
		t.Fatalf("Now = %v, want the custom clock's %v", got, clock())
	}
	tok := classicToken(t, s)
	advance(wxtest.DefaultExpiresIn)
	wantAPI(t, s, tok, 42001)

	defer func() {
		msg, _ := recover().(string)
		if !strings.Contains(msg, "Options.Now") {
			t.Fatalf("Advance with a custom clock: panic %q, want one that names Options.Now", msg)
		}
	}()
	s.Advance(time.Second)
}

func TestHandlerMounted(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	mux := http.NewServeMux()
	mux.Handle("/wx/", http.StripPrefix("/wx", s.Handler()))
	req := httptest.NewRequest(http.MethodGet, "/wx"+wxtest.PathToken+"?"+classicQuery(appID, appSecret).Encode(), nil)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	var r reply
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.AccessToken == "" {
		t.Fatalf("mounted handler: %q (%v)", rec.Body.String(), err)
	}
	if !s.TokenValid(r.AccessToken) || s.Calls(wxtest.PathToken) != 1 {
		t.Fatal("the mounted handler does not share the server's state")
	}
}

func TestConcurrent(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	const workers, rounds = 16, 10
	var (
		mu      sync.Mutex
		classic = map[string]bool{}
		stables = map[string]bool{}
		wg      sync.WaitGroup
	)
	g := s.Block(wxtest.PathSend) // exercise gates concurrently too
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w == 0 {
				defer g.Release() // even if this worker fails early
			}
			for i := range rounds {
				r, err := do(t, s, context.Background(), http.MethodGet, wxtest.PathToken, classicQuery(appID, appSecret), "")
				if err != nil || r.AccessToken == "" {
					t.Errorf("classic: %v %s", err, r.Raw)
					return
				}
				st, err := do(t, s, context.Background(), http.MethodPost, wxtest.PathStableToken, nil, stableBody(appID, appSecret, false))
				if err != nil || st.AccessToken == "" {
					t.Errorf("stable: %v %s", err, st.Raw)
					return
				}
				mu.Lock()
				classic[r.AccessToken] = true
				stables[st.AccessToken] = true
				mu.Unlock()
				q := url.Values{"access_token": {st.AccessToken}, "type": {"jsapi"}}
				if tr, err := do(t, s, context.Background(), http.MethodGet, wxtest.PathTicket, q, ""); err != nil || tr.Ticket == "" {
					t.Errorf("ticket: %v %s", err, tr.Raw)
				}
				if w == 0 && i == 0 {
					g.Release()
				}
				_, _ = do(t, s, context.Background(), http.MethodPost, wxtest.PathSend, url.Values{"access_token": {st.AccessToken}}, `{"n":1}`)
				s.TokenValid(r.AccessToken)
				s.Calls(wxtest.PathToken)
				s.Now()
				if i%5 == 0 {
					s.InjectFault(wxtest.PathAPI, wxtest.Busy(), 1)
					_, _ = do(t, s, context.Background(), http.MethodGet, wxtest.PathAPI, url.Values{"access_token": {r.AccessToken}}, "")
				}
			}
		}()
	}
	wg.Wait()
	if len(classic) != workers*rounds {
		t.Fatalf("%d distinct classic tokens, want %d", len(classic), workers*rounds)
	}
	if len(stables) != 1 {
		t.Fatalf("%d distinct stable tokens, want 1", len(stables))
	}
	if got, want := s.TokensIssued(), workers*rounds+1; got != want {
		t.Fatalf("TokensIssued = %d, want %d", got, want)
	}
	if got, want := s.Calls(wxtest.PathTicket), workers*rounds; got != want || s.TicketsIssued() != want {
		t.Fatalf("ticket calls %d, issued %d, want %d", got, s.TicketsIssued(), want)
	}
}
