package wxtest_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	compID     = "wxcomponent0000001"
	compSecret = "componentsecret0000000000000000"
	authzID    = "wxauthorizer000001"
	pushToken  = "pushtoken"
	pushAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

func newOpen(t *testing.T) *wxtest.Server {
	t.Helper()
	return newServer(t, wxtest.Options{Components: []wxtest.Component{{AppID: compID, AppSecret: compSecret}}})
}

// post sends a JSON body to path with the query and returns the raw JSON
// decoded into a map, and the errcode.
func post(t *testing.T, s *wxtest.Server, path string, q url.Values, body any) (map[string]any, int) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	r := must(t, s, http.MethodPost, path, q, string(b))
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Raw), &m); err != nil {
		t.Fatalf("%s: not JSON: %q", path, r.Raw)
	}
	code := 0
	if c, ok := m["errcode"].(float64); ok {
		code = int(c)
	}
	return m, code
}

func componentToken(t *testing.T, s *wxtest.Server, secret, ticket string) (string, int) {
	t.Helper()
	m, code := post(t, s, wxtest.PathComponentToken, nil, map[string]string{
		"component_appid": compID, "component_appsecret": secret, "component_verify_ticket": ticket})
	if code != 0 {
		return "", code
	}
	if m["expires_in"].(float64) != 7200 {
		t.Fatalf("expires_in: %v", m)
	}
	return m["component_access_token"].(string), 0
}

func mustComponentToken(t *testing.T, s *wxtest.Server) string {
	t.Helper()
	ct, code := componentToken(t, s, compSecret, s.VerifyTicket(compID))
	if code != 0 {
		t.Fatalf("api_component_token: errcode %d", code)
	}
	return ct
}

func ctq(ct string) url.Values { return url.Values{"component_access_token": {ct}} }

type authTokens struct{ access, refresh string }

func queryAuth(t *testing.T, s *wxtest.Server, ct, code string) (authTokens, int) {
	t.Helper()
	m, errcode := post(t, s, wxtest.PathQueryAuth, ctq(ct), map[string]string{"component_appid": compID, "authorization_code": code})
	if errcode != 0 {
		return authTokens{}, errcode
	}
	info := m["authorization_info"].(map[string]any)
	if info["authorizer_appid"] == "" || info["expires_in"].(float64) != 7200 || len(info["func_info"].([]any)) == 0 {
		t.Fatalf("api_query_auth: %v", m)
	}
	return authTokens{info["authorizer_access_token"].(string), info["authorizer_refresh_token"].(string)}, 0
}

func authorizerToken(t *testing.T, s *wxtest.Server, ct, authorizer, refresh string) (authTokens, int) {
	t.Helper()
	m, code := post(t, s, wxtest.PathAuthorizerToken, ctq(ct), map[string]string{
		"component_appid": compID, "authorizer_appid": authorizer, "authorizer_refresh_token": refresh})
	if code != 0 {
		return authTokens{}, code
	}
	if m["expires_in"].(float64) != 7200 {
		t.Fatalf("api_authorizer_token: %v", m)
	}
	return authTokens{m["authorizer_access_token"].(string), m["authorizer_refresh_token"].(string)}, 0
}

// authorize runs the whole flow for authorizer and returns its tokens.
func authorize(t *testing.T, s *wxtest.Server, ct, authorizer string) authTokens {
	t.Helper()
	a, code := queryAuth(t, s, ct, s.Authorize(compID, authorizer))
	if code != 0 {
		t.Fatalf("api_query_auth: errcode %d", code)
	}
	return a
}

type pushPlain struct {
	AppID                        string `xml:"AppId"`
	CreateTime                   int64  `xml:"CreateTime"`
	InfoType                     string `xml:"InfoType"`
	ComponentVerifyTicket        string `xml:"ComponentVerifyTicket"`
	AuthorizerAppid              string `xml:"AuthorizerAppid"`
	AuthorizationCode            string `xml:"AuthorizationCode"`
	AuthorizationCodeExpiredTime int64  `xml:"AuthorizationCodeExpiredTime"`
	PreAuthCode                  string `xml:"PreAuthCode"`
}

// openPush checks a push's envelope and signatures and decrypts it.
func openPush(t *testing.T, q url.Values, body []byte) pushPlain {
	t.Helper()
	var env struct {
		AppID   string `xml:"AppId"`
		Encrypt string `xml:"Encrypt"`
	}
	if err := xml.Unmarshal(body, &env); err != nil || env.AppID != compID || env.Encrypt == "" {
		t.Fatalf("envelope %q: %v", body, err)
	}
	if q.Get("encrypt_type") != "aes" || !msgcrypt.VerifySignature(pushToken, q.Get("timestamp"), q.Get("nonce"), q.Get("signature")) {
		t.Fatalf("query %v", q)
	}
	c, err := msgcrypt.New(pushToken, pushAESKey, compID)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := c.DecryptMessage(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	var p pushPlain
	if err := xml.Unmarshal(plain, &p); err != nil {
		t.Fatalf("plaintext %q: %v", plain, err)
	}
	if p.AppID != compID || strconv.FormatInt(p.CreateTime, 10) != q.Get("timestamp") {
		t.Fatalf("plaintext %q, query %v", plain, q)
	}
	return p
}

func TestVerifyTicketPush(t *testing.T) {
	s := newOpen(t)
	q, body, ticket, err := s.VerifyTicketPush(compID, pushToken, pushAESKey)
	if err != nil {
		t.Fatal(err)
	}
	p := openPush(t, q, body)
	if p.InfoType != "component_verify_ticket" || p.ComponentVerifyTicket != ticket || p.CreateTime != s.Now().Unix() {
		t.Fatalf("push %+v", p)
	}
	if _, code := componentToken(t, s, compSecret, ticket); code != 0 {
		t.Fatalf("pushed ticket: errcode %d", code)
	}

	// An older push, built after a newer one, carries its own time and ticket.
	old := s.Now().Add(-10 * time.Minute)
	q, body, err = wxtest.VerifyTicketPushAt(compID, pushToken, pushAESKey, "old-ticket", old)
	if err != nil {
		t.Fatal(err)
	}
	if p := openPush(t, q, body); p.ComponentVerifyTicket != "old-ticket" || p.CreateTime != old.Unix() {
		t.Fatalf("push %+v", p)
	}
	if _, _, err := wxtest.VerifyTicketPushAt(compID, pushToken, "short", "x", old); err == nil {
		t.Fatal("bad EncodingAESKey accepted")
	}
}

func TestVerifyTicketLifetime(t *testing.T) {
	s := newOpen(t)
	t1 := s.VerifyTicket(compID)
	s.Advance(wxtest.VerifyTicketInterval)
	t2 := s.VerifyTicket(compID)
	if t1 == t2 {
		t.Fatal("same ticket twice")
	}
	// The older ticket keeps working after a newer one was issued.
	for _, tk := range []string{t1, t2} {
		if _, code := componentToken(t, s, compSecret, tk); code != 0 {
			t.Fatalf("ticket: errcode %d", code)
		}
	}
	s.Advance(wxtest.VerifyTicketLifetime - wxtest.VerifyTicketInterval)
	if _, code := componentToken(t, s, compSecret, t1); code != 61005 {
		t.Fatalf("expired ticket: errcode %d, want 61005", code)
	}
	if _, code := componentToken(t, s, compSecret, t2); code != 0 {
		t.Fatalf("ticket with 10 min left: errcode %d", code)
	}
	if _, code := componentToken(t, s, compSecret, "never-issued"); code != 61006 {
		t.Fatalf("unknown ticket: errcode %d, want 61006", code)
	}
	if _, code := componentToken(t, s, compSecret, ""); code != 61006 {
		t.Fatalf("no ticket: errcode %d, want 61006", code)
	}
}

func TestComponentTokenErrors(t *testing.T) {
	s := newOpen(t)
	tk := s.VerifyTicket(compID)
	for _, c := range []struct {
		body any
		want int
	}{
		{map[string]string{"component_appsecret": compSecret, "component_verify_ticket": tk}, 41002},
		{map[string]string{"component_appid": compID, "component_verify_ticket": tk}, 41004},
		{map[string]string{"component_appid": "wxother", "component_appsecret": compSecret, "component_verify_ticket": tk}, 40013},
		{map[string]string{"component_appid": compID, "component_appsecret": "wrong", "component_verify_ticket": tk}, 40125},
	} {
		if _, code := post(t, s, wxtest.PathComponentToken, nil, c.body); code != c.want {
			t.Errorf("%v: errcode %d, want %d", c.body, code, c.want)
		}
	}
	if r := must(t, s, http.MethodGet, wxtest.PathComponentToken, nil, ""); r.Errcode != 43002 {
		t.Errorf("GET: %s", r.Raw)
	}
	if r := must(t, s, http.MethodPost, wxtest.PathComponentToken, nil, "{"); r.Errcode != 47001 {
		t.Errorf("bad JSON: %s", r.Raw)
	}
	if s.ComponentTokensIssued() != 0 || s.Calls(wxtest.PathComponentToken) != 6 {
		t.Fatalf("issued %d, calls %d", s.ComponentTokensIssued(), s.Calls(wxtest.PathComponentToken))
	}
}

func TestComponentTokenOverlap(t *testing.T) {
	s := newOpen(t)
	ct1 := mustComponentToken(t, s)
	ct2 := mustComponentToken(t, s)
	if ct1 == ct2 || s.ComponentTokensIssued() != 2 {
		t.Fatal("a call did not mint a new component token")
	}
	if !s.ComponentTokenValid(ct1) || !s.ComponentTokenValid(ct2) {
		t.Fatal("superseded token stopped inside its overlap")
	}
	s.Advance(wxtest.DefaultOverlap)
	if s.ComponentTokenValid(ct1) || !s.ComponentTokenValid(ct2) {
		t.Fatal("overlap not applied")
	}
	code := s.Authorize(compID, authzID)
	if _, errcode := queryAuth(t, s, ct1, code); errcode != 40001 {
		t.Fatalf("superseded component token: errcode %d, want 40001", errcode)
	}
	s.Advance(wxtest.DefaultExpiresIn)
	if _, errcode := queryAuth(t, s, ct2, code); errcode != 42001 {
		t.Fatalf("expired component token: errcode %d, want 42001", errcode)
	}
}

func TestQueryAuth(t *testing.T) {
	s := newOpen(t)
	ct := mustComponentToken(t, s)
	code := s.Authorize(compID, authzID)
	a, errcode := queryAuth(t, s, ct, code)
	if errcode != 0 {
		t.Fatalf("errcode %d", errcode)
	}
	wantAPI(t, s, a.access, 0)
	if !s.RefreshTokenValid(compID, authzID, a.refresh) {
		t.Fatal("refresh token not valid")
	}
	if s.AuthorizerTokensIssued(authzID) != 1 {
		t.Fatalf("AuthorizerTokensIssued = %d", s.AuthorizerTokensIssued(authzID))
	}
	// The same code again, within its life: the same authorization, nothing
	// invalidated, no token minted.
	again, errcode := queryAuth(t, s, ct, code)
	if errcode != 0 || again.refresh != a.refresh || again.access != a.access {
		t.Fatalf("code exchanged again: errcode %d, same refresh token %v, same access token %v; want 0, true, true", errcode, again.refresh == a.refresh, again.access == a.access)
	}
	wantAPI(t, s, a.access, 0)
	if !s.RefreshTokenValid(compID, authzID, a.refresh) || s.AuthorizerTokensIssued(authzID) != 1 {
		t.Fatalf("after a second exchange: refresh token valid %v, tokens issued %d; want true, 1", s.RefreshTokenValid(compID, authzID, a.refresh), s.AuthorizerTokensIssued(authzID))
	}
	// Strictly single use when asked.
	s.SingleUseAuthorizationCodes(true)
	if _, errcode := queryAuth(t, s, ct, code); errcode != 61009 {
		t.Fatalf("used code, single-use codes: errcode %d, want 61009", errcode)
	}
	s.SingleUseAuthorizationCodes(false)
	// A code superseded by a later authorization is void.
	later := s.Authorize(compID, authzID)
	b, errcode := queryAuth(t, s, ct, later)
	if errcode != 0 || b.refresh == a.refresh {
		t.Fatalf("re-authorization: errcode %d, new refresh token %v", errcode, b.refresh != a.refresh)
	}
	if _, errcode := queryAuth(t, s, ct, code); errcode != 61009 {
		t.Fatalf("superseded code: errcode %d, want 61009", errcode)
	}
	if !s.RefreshTokenValid(compID, authzID, b.refresh) {
		t.Fatal("the superseded code's second exchange broke the newer authorization")
	}
	if _, errcode := queryAuth(t, s, ct, "nonsense"); errcode != 61009 {
		t.Fatalf("unknown code: errcode %d, want 61009", errcode)
	}
	code = s.Authorize(compID, authzID)
	s.Advance(wxtest.AuthorizationCodeLifetime)
	if _, errcode := queryAuth(t, s, ct, code); errcode != 61010 {
		t.Fatalf("expired code: errcode %d, want 61010", errcode)
	}
	// Wrong component_appid, token missing, wrong kind of token.
	if _, errcode := post(t, s, wxtest.PathQueryAuth, ctq(ct), map[string]string{"component_appid": "wxother", "authorization_code": code}); errcode != 61011 {
		t.Fatalf("other component_appid: errcode %d, want 61011", errcode)
	}
	if _, errcode := post(t, s, wxtest.PathQueryAuth, nil, map[string]string{"component_appid": compID, "authorization_code": code}); errcode != 41001 {
		t.Fatalf("no token: errcode %d, want 41001", errcode)
	}
	if _, errcode := post(t, s, wxtest.PathQueryAuth, url.Values{"access_token": {a.access}}, map[string]string{"component_appid": compID, "authorization_code": code}); errcode != 61014 {
		t.Fatalf("authorizer token on a component API: errcode %d, want 61014", errcode)
	}
}

func TestAuthorizerTokenOverlapAndEcho(t *testing.T) {
	s := newOpen(t)
	ct := mustComponentToken(t, s)
	a := authorize(t, s, ct, authzID)
	b, code := authorizerToken(t, s, ct, authzID, a.refresh)
	if code != 0 {
		t.Fatalf("errcode %d", code)
	}
	if b.access == a.access || b.refresh != a.refresh {
		t.Fatalf("refresh: got %+v after %+v", b, a)
	}
	// access_token in the query works as component_access_token does.
	if _, code := post(t, s, wxtest.PathAuthorizerToken, url.Values{"access_token": {ct}}, map[string]string{
		"component_appid": compID, "authorizer_appid": authzID, "authorizer_refresh_token": a.refresh}); code != 0 {
		t.Fatalf("access_token parameter: errcode %d", code)
	}
	if s.AuthorizerTokensIssued(authzID) != 3 {
		t.Fatalf("AuthorizerTokensIssued = %d, want 3", s.AuthorizerTokensIssued(authzID))
	}
	wantAPI(t, s, a.access, 0)
	s.Advance(wxtest.DefaultOverlap)
	wantAPI(t, s, a.access, 40001)
	s.ResetCounters()
	if s.AuthorizerTokensIssued(authzID) != 0 || s.ComponentTokensIssued() != 0 {
		t.Fatal("ResetCounters")
	}
}

func TestAuthorizerTokenErrors(t *testing.T) {
	s := newOpen(t)
	ct := mustComponentToken(t, s)
	a := authorize(t, s, ct, authzID)
	for _, c := range []struct {
		authorizer, refresh string
		want                int
	}{
		{"", a.refresh, 41002},
		{"wxnever", a.refresh, 61003},
		{authzID, "wrong", 61023},
		{authzID, "", 61023},
	} {
		if _, code := authorizerToken(t, s, ct, c.authorizer, c.refresh); code != c.want {
			t.Errorf("%+v: errcode %d, want %d", c, code, c.want)
		}
	}
	if _, code := post(t, s, wxtest.PathAuthorizerToken, ctq(a.access), map[string]string{
		"component_appid": compID, "authorizer_appid": authzID, "authorizer_refresh_token": a.refresh}); code != 61014 {
		t.Fatalf("authorizer token as component token: errcode %d, want 61014", code)
	}
	s.Revoke(ct)
	if _, code := authorizerToken(t, s, ct, authzID, a.refresh); code != 40001 || s.ComponentTokenValid(ct) {
		t.Fatalf("revoked component token: errcode %d, want 40001", code)
	}
}

func TestRotateRefreshTokens(t *testing.T) {
	s := newOpen(t)
	ct := mustComponentToken(t, s)
	a := authorize(t, s, ct, authzID)
	s.RotateRefreshTokens(true)
	b, code := authorizerToken(t, s, ct, authzID, a.refresh)
	if code != 0 || b.refresh == a.refresh {
		t.Fatalf("rotation: %+v, errcode %d", b, code)
	}
	// The loser of a race presents the old refresh token.
	if _, code := authorizerToken(t, s, ct, authzID, a.refresh); code != 61023 {
		t.Fatalf("rotated-out refresh token: errcode %d, want 61023", code)
	}
	if s.RefreshTokenValid(compID, authzID, a.refresh) || !s.RefreshTokenValid(compID, authzID, b.refresh) {
		t.Fatal("RefreshTokenValid")
	}
	s.RotateRefreshTokens(false)
	c, code := authorizerToken(t, s, ct, authzID, b.refresh)
	if code != 0 || c.refresh != b.refresh {
		t.Fatalf("echo after rotation off: %+v, errcode %d", c, code)
	}
}

func TestReauthorization(t *testing.T) {
	s := newOpen(t)
	ct := mustComponentToken(t, s)
	a := authorize(t, s, ct, authzID)
	code := s.Authorize(compID, authzID)
	// Until the new code is exchanged, the old grant still works.
	if _, errcode := authorizerToken(t, s, ct, authzID, a.refresh); errcode != 0 {
		t.Fatalf("before exchange: errcode %d", errcode)
	}
	b, errcode := queryAuth(t, s, ct, code)
	if errcode != 0 || b.refresh == a.refresh {
		t.Fatalf("re-authorization: %+v, errcode %d", b, errcode)
	}
	wantAPI(t, s, a.access, 40001)
	wantAPI(t, s, b.access, 0)
	if _, errcode := authorizerToken(t, s, ct, authzID, a.refresh); errcode != 61023 {
		t.Fatalf("old refresh token: errcode %d, want 61023", errcode)
	}
	if _, errcode := authorizerToken(t, s, ct, authzID, b.refresh); errcode != 0 {
		t.Fatalf("new refresh token: errcode %d", errcode)
	}
}

func TestUnauthorize(t *testing.T) {
	s := newOpen(t)
	ct := mustComponentToken(t, s)
	a := authorize(t, s, ct, authzID)
	pending := s.Authorize(compID, authzID)
	s.Unauthorize(compID, authzID)
	s.Unauthorize(compID, "wxnever") // ignored
	s.Unauthorize("wxnone", authzID) // ignored
	wantAPI(t, s, a.access, 40001)
	if _, code := authorizerToken(t, s, ct, authzID, a.refresh); code != 61003 {
		t.Fatalf("unauthorized: errcode %d, want 61003", code)
	}
	if _, code := queryAuth(t, s, ct, pending); code != 61009 {
		t.Fatalf("code from before the revocation: errcode %d, want 61009", code)
	}
	b := authorize(t, s, ct, authzID) // authorizes afresh
	wantAPI(t, s, b.access, 0)
}

func TestAuthorizationPushes(t *testing.T) {
	s := newOpen(t)
	code := s.Authorize(compID, authzID)
	q, body, err := s.AuthorizedPush(code, pushToken, pushAESKey)
	if err != nil {
		t.Fatal(err)
	}
	p := openPush(t, q, body)
	now := s.Now().Unix()
	if p.InfoType != "authorized" || p.AuthorizerAppid != authzID || p.AuthorizationCode != code ||
		p.AuthorizationCodeExpiredTime != now+600 || p.PreAuthCode == "" || p.CreateTime != now {
		t.Fatalf("authorized push %+v", p)
	}
	code2 := s.Authorize(compID, authzID)
	ct := mustComponentToken(t, s)
	if _, errcode := queryAuth(t, s, ct, code2); errcode != 0 { // a push may be built after the exchange
		t.Fatal(errcode)
	}
	q, body, err = s.UpdateAuthorizedPush(code2, pushToken, pushAESKey)
	if err != nil {
		t.Fatal(err)
	}
	if p := openPush(t, q, body); p.InfoType != "updateauthorized" || p.AuthorizationCode != code2 {
		t.Fatalf("updateauthorized push %+v", p)
	}
	q, body, err = s.UnauthorizedPush(compID, authzID, pushToken, pushAESKey)
	if err != nil {
		t.Fatal(err)
	}
	if p := openPush(t, q, body); p.InfoType != "unauthorized" || p.AuthorizerAppid != authzID || p.AuthorizationCode != "" {
		t.Fatalf("unauthorized push %+v", p)
	}
}

func TestAuthorizerTokenOnOfficialAccountAPIs(t *testing.T) {
	s := newOpen(t)
	ct := mustComponentToken(t, s)
	a := authorize(t, s, ct, authzID)
	if r := ticket(t, s, a.access, "jsapi"); r.Errcode != 0 || r.Ticket == "" {
		t.Fatalf("ticket with authorizer token: %s", r.Raw)
	}
	if r := must(t, s, http.MethodPost, wxtest.PathSend, url.Values{"access_token": {a.access}}, `{"touser":"o"}`); r.Errcode != 0 {
		t.Fatalf("send: %s", r.Raw)
	}
	// A component token is not an Official Account token.
	wantAPI(t, s, ct, 40001)
	if r := ticket(t, s, ct, "jsapi"); r.Errcode != 40001 {
		t.Fatalf("ticket with component token: %s", r.Raw)
	}
	s.Reject(a.access)
	wantAPI(t, s, a.access, 40001)
	b, code := authorizerToken(t, s, ct, authzID, a.refresh)
	if code != 0 {
		t.Fatal(code)
	}
	s.Revoke(b.access)
	wantAPI(t, s, b.access, 40001)
	c, _ := authorizerToken(t, s, ct, authzID, a.refresh)
	s.Advance(wxtest.DefaultExpiresIn)
	wantAPI(t, s, c.access, 42001)
}

func TestOpenPlatformFaultBlockLatency(t *testing.T) {
	s := newOpen(t)
	tk := s.VerifyTicket(compID)
	s.InjectFault(wxtest.PathComponentToken, wxtest.Busy(), 1)
	if _, code := componentToken(t, s, compSecret, tk); code != -1 {
		t.Fatalf("fault: errcode %d", code)
	}
	g := s.Block(wxtest.PathAuthorizerToken)
	ct, _ := componentToken(t, s, compSecret, tk)
	a := authorize(t, s, ct, authzID)
	done := make(chan int)
	go func() {
		b, _ := json.Marshal(map[string]string{"component_appid": compID, "authorizer_appid": authzID, "authorizer_refresh_token": a.refresh})
		r, err := s.Client().Post(s.URL+wxtest.PathAuthorizerToken+"?component_access_token="+ct, "application/json", bytesReader(b))
		if err != nil {
			done <- -2
			return
		}
		r.Body.Close()
		done <- r.StatusCode
	}()
	receive(t, g.Arrived(), "blocked request")
	g.Release()
	if st := <-done; st != http.StatusOK {
		t.Fatalf("released request: %d", st)
	}
	if s.Calls(wxtest.PathAuthorizerToken) != 1 || s.Calls(wxtest.PathComponentToken) != 2 || s.Calls(wxtest.PathQueryAuth) != 1 {
		t.Fatal("Calls")
	}
}

func TestUndeclaredComponents(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	tk := s.VerifyTicket("wxanycomponent")
	post1 := func(secret string) int {
		_, code := post(t, s, wxtest.PathComponentToken, nil, map[string]string{
			"component_appid": "wxanycomponent", "component_appsecret": secret, "component_verify_ticket": tk})
		return code
	}
	if post1("s1") != 0 || post1("s1") != 0 || post1("s2") != 40125 {
		t.Fatal("undeclared component: the first secret is its secret")
	}
	s2 := newOpen(t)
	defer func() {
		if recover() == nil {
			t.Fatal("VerifyTicket of an undeclared component did not panic")
		}
	}()
	s2.VerifyTicket("wxundeclared")
}

// TestFleetOfAuthorizers: 10,000 authorizers, each authorized and refreshed
// concurrently; counts are per authorizer. It calls the Handler directly,
// without a network round trip, to stay fast under the race detector.
func TestFleetOfAuthorizers(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	s := newOpen(t)
	ct := mustComponentToken(t, s)
	ids := make([]string, n)
	codes := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("wxauthz%08d", i)
		codes[i] = s.Authorize(compID, ids[i])
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	errs := make(chan string, n)
	for i := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			b, _ := json.Marshal(map[string]string{"component_appid": compID, "authorization_code": codes[i]})
			var out struct {
				Info struct {
					Refresh string `json:"authorizer_refresh_token"`
				} `json:"authorization_info"`
			}
			if err := serveJSON(s, wxtest.PathQueryAuth+"?component_access_token="+ct, b, &out); err != nil || out.Info.Refresh == "" {
				errs <- fmt.Sprint("query_auth ", ids[i], err)
				return
			}
			b, _ = json.Marshal(map[string]string{"component_appid": compID, "authorizer_appid": ids[i], "authorizer_refresh_token": out.Info.Refresh})
			var tok struct {
				Access string `json:"authorizer_access_token"`
			}
			if err := serveJSON(s, wxtest.PathAuthorizerToken+"?component_access_token="+ct, b, &tok); err != nil || tok.Access == "" {
				errs <- fmt.Sprint("authorizer_token ", ids[i], err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	for _, id := range ids {
		if got := s.AuthorizerTokensIssued(id); got != 2 {
			t.Fatalf("AuthorizerTokensIssued(%s) = %d, want 2", id, got)
		}
	}
	if s.TokensIssued() != 2*n {
		t.Fatalf("TokensIssued = %d", s.TokensIssued())
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// serveJSON posts body through s.Handler, without a connection, and
// decodes a successful reply into out; an errcode reply is an error.
func serveJSON(s *wxtest.Server, pathQuery string, body []byte, out any) error {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, pathQuery, bytes.NewReader(body)))
	b := rec.Body.Bytes()
	var e struct {
		Errcode int `json:"errcode"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Errcode != 0 {
		return fmt.Errorf("reply %q", b)
	}
	return json.Unmarshal(b, out)
}
