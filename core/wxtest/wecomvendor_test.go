package wxtest_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	suiteID       = "ww4asffe99e54c0f0001" // a third-party app's suite
	suiteSecret   = "suite-secret-0000000000000000001"
	dkSuiteID     = "dk4asffe99e54c0f0002" // a 代开发 template
	dkSuiteSecret = "template-secret-00000000000000002"
	authCorp      = "wwauthcorp0000000001"
	authCorp2     = "wwauthcorp0000000002"
	providerCorp  = "wwprovider0000000001"
	providerSec   = "provider-secret-0000000000000001"
)

// newVendor returns a server with the third-party suite, the 代开发
// template and the provider declared.
func newVendor(t *testing.T, opts wxtest.Options) *wxtest.Server {
	t.Helper()
	s := newServer(t, opts)
	s.SetSuiteSecret(suiteID, suiteSecret)
	s.SetSuiteSecret(dkSuiteID, dkSuiteSecret)
	s.SetProviderSecret(providerCorp, providerSec)
	return s
}

// vpost posts body as JSON to a vendor path and returns the decoded reply
// and its errcode (0 when absent). An error reply must have WeCom's errmsg
// format and carry no credential.
func vpost(t *testing.T, s *wxtest.Server, path string, q url.Values, body any) (map[string]any, int) {
	t.Helper()
	m, code := post(t, s, path, q, body)
	if code != 0 {
		re := regexp.MustCompile(`, hint: \[[0-9]{25}\], from ip: 127\.0\.0\.1, more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=` + strconv.Itoa(code) + `$`)
		if msg, _ := m["errmsg"].(string); !re.MatchString(msg) {
			t.Errorf("%s: errmsg %q is not WeCom's format for %d", path, msg, code)
		}
		for _, k := range []string{"suite_access_token", "access_token", "permanent_code", "provider_access_token"} {
			if _, ok := m[k]; ok {
				t.Errorf("%s: error reply %v carries %s", path, m, k)
			}
		}
	}
	return m, code
}

func stq(st string) url.Values { return url.Values{"suite_access_token": {st}} }

func suiteTokenCall(t *testing.T, s *wxtest.Server, id, secret, ticket string) (string, int) {
	t.Helper()
	m, code := vpost(t, s, wxtest.PathSuiteToken, nil, map[string]string{
		"suite_id": id, "suite_secret": secret, "suite_ticket": ticket})
	if code != 0 {
		return "", code
	}
	if m["expires_in"] != float64(7200) || m["errmsg"] != "ok" {
		t.Fatalf("get_suite_token: %v", m)
	}
	return m["suite_access_token"].(string), 0
}

func mustSuiteToken(t *testing.T, s *wxtest.Server, id string) string {
	t.Helper()
	secret := suiteSecret
	if id == dkSuiteID {
		secret = dkSuiteSecret
	}
	st, code := suiteTokenCall(t, s, id, secret, s.SuiteTicket(id))
	if code != 0 {
		t.Fatalf("get_suite_token(%s): errcode %d", id, code)
	}
	return st
}

// exchange calls get_permanent_code (v2, or v1) and returns the reply.
func exchange(t *testing.T, s *wxtest.Server, path, st, authCode string) (map[string]any, int) {
	t.Helper()
	return vpost(t, s, path, stq(st), map[string]string{"auth_code": authCode})
}

// install installs the suite in corp and returns its permanent code.
func install(t *testing.T, s *wxtest.Server, st, suite, corp string) string {
	t.Helper()
	m, code := exchange(t, s, wxtest.PathPermanentCode, st, s.Install(suite, corp))
	if code != 0 {
		t.Fatalf("get_permanent_code: errcode %d", code)
	}
	return m["permanent_code"].(string)
}

func corpTokenCall(t *testing.T, s *wxtest.Server, st, corp, permanent string) (string, int) {
	t.Helper()
	m, code := vpost(t, s, wxtest.PathCorpToken, stq(st), map[string]string{"auth_corpid": corp, "permanent_code": permanent})
	if code != 0 {
		return "", code
	}
	if m["expires_in"] != float64(7200) || m["errmsg"] != "ok" {
		t.Fatalf("get_corp_token: %v", m)
	}
	return m["access_token"].(string), 0
}

func mustCorpToken(t *testing.T, s *wxtest.Server, st, corp, permanent string) string {
	t.Helper()
	ct, code := corpTokenCall(t, s, st, corp, permanent)
	if code != 0 {
		t.Fatalf("get_corp_token: errcode %d", code)
	}
	return ct
}

// vendorEvent is the plaintext of a command-callback push.
type vendorEvent struct {
	SuiteID     string `xml:"SuiteId"`
	InfoType    string `xml:"InfoType"`
	TimeStamp   int64  `xml:"TimeStamp"`
	SuiteTicket string `xml:"SuiteTicket"`
	AuthCode    string `xml:"AuthCode"`
	AuthCorpID  string `xml:"AuthCorpId"`
	Raw         string `xml:"-"`
}

// openVendorPush checks the envelope and query of a push of suite and
// decrypts it with the suite id as receive id.
func openVendorPush(t *testing.T, suite string, q url.Values, body []byte) vendorEvent {
	t.Helper()
	var env struct {
		ToUserName string  `xml:"ToUserName"`
		Encrypt    string  `xml:"Encrypt"`
		AgentID    *string `xml:"AgentID"`
	}
	if err := xml.Unmarshal(body, &env); err != nil {
		t.Fatalf("envelope: %v: %s", err, body)
	}
	if env.ToUserName != suite || env.AgentID == nil || *env.AgentID != "" {
		t.Fatalf("envelope %s: want ToUserName %s and an empty AgentID", body, suite)
	}
	if len(q) != 3 || q.Get("msg_signature") == "" || q.Get("nonce") == "" || q.Get("timestamp") == "" {
		t.Fatalf("query %v: want msg_signature, timestamp and nonce", q)
	}
	other, err := msgcrypt.New(pushToken, pushAESKey, providerCorp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.DecryptMessage(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body); err == nil {
		t.Fatal("the push decrypts with the provider corpid as receive id; want only the suite id")
	}
	c, err := msgcrypt.New(pushToken, pushAESKey, suite)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := c.DecryptMessage(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
	if err != nil {
		t.Fatalf("decrypt with the suite id: %v", err)
	}
	var ev vendorEvent
	if err := xml.Unmarshal(plain, &ev); err != nil {
		t.Fatalf("plaintext: %v: %s", err, plain)
	}
	ev.Raw = string(plain)
	if ev.SuiteID != suite || strconv.FormatInt(ev.TimeStamp, 10) != q.Get("timestamp") {
		t.Fatalf("plaintext %s: want SuiteId %s and TimeStamp %s", plain, suite, q.Get("timestamp"))
	}
	return ev
}

// TestVendorThirdPartyChain tests a third-party suite from its first ticket
// to the corp's cancellation.
func TestVendorThirdPartyChain(t *testing.T) {
	s := newVendor(t, wxtest.Options{})
	q, body, ticket, err := s.SuiteTicketPush(suiteID, pushToken, pushAESKey)
	if err != nil {
		t.Fatal(err)
	}
	ev := openVendorPush(t, suiteID, q, body)
	if ev.InfoType != "suite_ticket" || ev.SuiteTicket != ticket || ev.TimeStamp != s.Now().Unix() {
		t.Fatalf("ticket push %s: want suite_ticket %s at %d", ev.Raw, ticket, s.Now().Unix())
	}
	st, code := suiteTokenCall(t, s, suiteID, suiteSecret, ticket)
	if code != 0 || !s.SuiteTokenValid(st) || s.SuiteTokensIssued(suiteID) != 1 {
		t.Fatalf("get_suite_token: errcode %d, valid %v, issued %d", code, s.SuiteTokenValid(st), s.SuiteTokensIssued(suiteID))
	}

	authCode := s.Install(suiteID, authCorp)
	q, body, err = s.CreateAuthPush(suiteID, authCode, pushToken, pushAESKey)
	if err != nil {
		t.Fatal(err)
	}
	ev = openVendorPush(t, suiteID, q, body)
	if ev.InfoType != "create_auth" || ev.AuthCode != authCode || strings.Contains(ev.Raw, "AuthCorpId") || !strings.Contains(ev.Raw, "<State>") {
		t.Fatalf("create_auth push %s: want AuthCode, State and no AuthCorpId", ev.Raw)
	}
	m, code := exchange(t, s, wxtest.PathPermanentCode, st, authCode)
	if code != 0 {
		t.Fatalf("get_permanent_code: errcode %d", code)
	}
	permanent, _ := m["permanent_code"].(string)
	info, _ := m["auth_corp_info"].(map[string]any)
	if permanent == "" || info["corpid"] != authCorp || m["errmsg"] != "ok" || m["state"] != "" {
		t.Fatalf("get_permanent_code: %v", m)
	}
	for _, k := range []string{"access_token", "expires_in", "auth_info"} {
		if _, ok := m[k]; ok {
			t.Errorf("v2 get_permanent_code answers %s: %v", k, m)
		}
	}
	if !s.PermanentCodeValid(suiteID, authCorp, permanent) {
		t.Fatal("PermanentCodeValid = false after the exchange")
	}

	ct := mustCorpToken(t, s, st, authCorp, permanent)
	agent := s.AgentID(suiteID, authCorp)
	if agent == 0 {
		t.Fatal("AgentID = 0 after install")
	}
	wantWeComAPI(t, s, ct, agent, 0)
	if r := weComTicket(t, s, wxtest.PathWeComJSAPITicket, ct, ""); r.Errcode != 0 || r.Ticket == "" {
		t.Fatalf("get_jsapi_ticket with a corp token: %s", r.Raw)
	}
	if r := weComTicket(t, s, wxtest.PathWeComAgentTicket, ct, "agent_config"); r.Errcode != 0 || r.Ticket == "" {
		t.Fatalf("ticket/get with a corp token: %s", r.Raw)
	}
	if s.CorpTokensIssued(authCorp) != 1 || s.TokensIssued() != 1 {
		t.Fatalf("CorpTokensIssued = %d, TokensIssued = %d, want 1, 1", s.CorpTokensIssued(authCorp), s.TokensIssued())
	}
	m, code = vpost(t, s, wxtest.PathAuthInfo, stq(st), map[string]string{"auth_corpid": authCorp, "permanent_code": permanent})
	agents := m["auth_info"].(map[string]any)["agent"].([]any)
	if code != 0 || agents[0].(map[string]any)["agentid"] != float64(agent) || agents[0].(map[string]any)["is_customized_app"] != false {
		t.Fatalf("get_auth_info: %v", m)
	}

	q, body, err = s.CancelAuthPush(suiteID, authCorp, pushToken, pushAESKey)
	if err != nil {
		t.Fatal(err)
	}
	if ev = openVendorPush(t, suiteID, q, body); ev.InfoType != "cancel_auth" || ev.AuthCorpID != authCorp {
		t.Fatalf("cancel_auth push %s", ev.Raw)
	}
	s.Uninstall(suiteID, authCorp)
	if _, code := corpTokenCall(t, s, st, authCorp, permanent); code != 40084 {
		t.Errorf("get_corp_token after Uninstall: errcode %d, want 40084", code)
	}
	if _, code := vpost(t, s, wxtest.PathAuthInfoV1, stq(st), map[string]string{"auth_corpid": authCorp, "permanent_code": permanent}); code != 40084 {
		t.Errorf("get_auth_info after Uninstall: errcode %d, want 40084", code)
	}
	wantWeComAPI(t, s, ct, agent, 40014)
	if s.PermanentCodeValid(suiteID, authCorp, permanent) {
		t.Error("PermanentCodeValid = true after Uninstall")
	}

	// A new install works afresh; the old permanent code stays void.
	permanent2 := install(t, s, st, suiteID, authCorp)
	wantWeComAPI(t, s, mustCorpToken(t, s, st, authCorp, permanent2), agent, 0)
	if _, code := corpTokenCall(t, s, st, authCorp, permanent); code != 40084 {
		t.Errorf("get_corp_token with the code before the re-install: errcode %d, want 40084", code)
	}
}

// TestVendorCustomizedApp tests a 代开发 template: gettoken with the
// permanent code, the secret reset, and the cancellation.
func TestVendorCustomizedApp(t *testing.T) {
	s := newVendor(t, wxtest.Options{})
	st := mustSuiteToken(t, s, dkSuiteID)
	code1 := install(t, s, st, dkSuiteID, authCorp)
	agent := s.AgentID(dkSuiteID, authCorp)

	r := weComTokenReply(t, s, authCorp, code1)
	if r.Errcode != 0 || r.AccessToken == "" || r.ExpiresIn != 7200 {
		t.Fatalf("gettoken with the permanent code: %s", r.Raw)
	}
	tok := r.AccessToken
	wantWeComAPI(t, s, tok, agent, 0)
	s.Advance(time.Minute)
	if r := weComTokenReply(t, s, authCorp, code1); r.AccessToken != tok || r.ExpiresIn != 7140 {
		t.Fatalf("gettoken again within validity: %s, want the same token with expires_in 7140", r.Raw)
	}
	if s.CorpTokensIssued(authCorp) != 1 {
		t.Fatalf("CorpTokensIssued = %d, want 1", s.CorpTokensIssued(authCorp))
	}
	// 代开发 apps get their token from gettoken, not get_corp_token.
	if _, code := corpTokenCall(t, s, st, authCorp, code1); code != 40084 {
		t.Errorf("get_corp_token for a 代开发 app: errcode %d, want 40084", code)
	}
	m, code := vpost(t, s, wxtest.PathAuthInfo, stq(st), map[string]string{"auth_corpid": authCorp, "permanent_code": code1})
	if code != 0 || m["auth_info"].(map[string]any)["agent"].([]any)[0].(map[string]any)["is_customized_app"] != true {
		t.Fatalf("get_auth_info for a 代开发 app: %v", m)
	}

	// Reset: the old code works until the exchange, then 40001.
	authCode := s.ResetPermanentCode(dkSuiteID, authCorp)
	q, body, err := s.ResetPermanentCodePush(dkSuiteID, authCode, pushToken, pushAESKey)
	if err != nil {
		t.Fatal(err)
	}
	ev := openVendorPush(t, dkSuiteID, q, body)
	if ev.InfoType != "reset_permanent_code" || ev.AuthCode != authCode || strings.Contains(ev.Raw, "AuthCorpId") {
		t.Fatalf("reset_permanent_code push %s", ev.Raw)
	}
	if r := weComTokenReply(t, s, authCorp, code1); r.Errcode != 0 {
		t.Fatalf("gettoken with the old code before the exchange: %s", r.Raw)
	}
	m, code = exchange(t, s, wxtest.PathPermanentCodeV1, st, authCode)
	if code != 0 {
		t.Fatalf("get_permanent_code (v1) of the reset: errcode %d", code)
	}
	for _, k := range []string{"access_token", "expires_in"} {
		if _, ok := m[k]; ok {
			t.Errorf("v1 get_permanent_code of a 代开发 app answers %s (代开发自建应用安装时不返回): %v", k, m)
		}
	}
	code2 := m["permanent_code"].(string)
	if code2 == code1 || !s.PermanentCodeValid(dkSuiteID, authCorp, code2) || s.PermanentCodeValid(dkSuiteID, authCorp, code1) {
		t.Fatal("the reset's exchange did not replace the permanent code")
	}
	wantWeComError(t, weComTokenReply(t, s, authCorp, code1), 40001)
	if r := weComTokenReply(t, s, authCorp, code2); r.Errcode != 0 || r.AccessToken != tok {
		t.Fatalf("gettoken with the new code: %s, want the application's current token", r.Raw)
	}
	wantWeComAPI(t, s, tok, agent, 0)

	// Expiry: gettoken mints the next token.
	s.Advance(2 * time.Hour)
	wantWeComAPI(t, s, tok, agent, 42001)
	tok2 := weComToken(t, s, authCorp, code2)
	if tok2 == tok || s.CorpTokensIssued(authCorp) != 2 {
		t.Fatalf("gettoken after expiry: same token %v, CorpTokensIssued %d", tok2 == tok, s.CorpTokensIssued(authCorp))
	}

	s.Uninstall(dkSuiteID, authCorp)
	wantWeComAPI(t, s, tok2, agent, 40014)
	wantWeComError(t, weComTokenReply(t, s, authCorp, code2), 40001)
}

// TestVendorGettokenSelfBuiltUnchanged tests that gettoken keeps its rules
// for a self-built app of a corp that also installed a 代开发 app.
func TestVendorGettokenSelfBuiltUnchanged(t *testing.T) {
	s := newVendor(t, wxtest.Options{})
	install(t, s, mustSuiteToken(t, s, dkSuiteID), dkSuiteID, authCorp)
	self := weComToken(t, s, authCorp, "self-built-secret")
	wantWeComAPI(t, s, self, 1000002, 0)
	if s.CorpTokensIssued(authCorp) != 0 {
		t.Fatalf("CorpTokensIssued = %d for a self-built app's token, want 0", s.CorpTokensIssued(authCorp))
	}

	d := newVendor(t, wxtest.Options{WeComApps: weComApps})
	install(t, d, mustSuiteToken(t, d, dkSuiteID), dkSuiteID, authCorp)
	wantWeComError(t, weComTokenReply(t, d, authCorp, "not-a-code"), 40013)
	wantWeComError(t, weComTokenReply(t, d, corpID, "wrong"), 40001)
	weComToken(t, d, corpID, corpSecret)
}

// TestVendorSuiteTokenErrors tests get_suite_token's errcodes.
func TestVendorSuiteTokenErrors(t *testing.T) {
	s := newVendor(t, wxtest.Options{})
	ticket := s.SuiteTicket(suiteID)
	dkTicket := s.SuiteTicket(dkSuiteID)
	for _, c := range []struct {
		name, id, secret, ticket string
		want                     int
	}{
		{"MissingSuiteID", "", suiteSecret, ticket, 41021},
		{"UnknownSuite", "wwunknown", suiteSecret, ticket, 40083},
		{"MissingSecret", suiteID, "", ticket, 41024},
		{"WrongSecret", suiteID, dkSuiteSecret, ticket, 40080},
		{"MissingTicket", suiteID, suiteSecret, "", 40085},
		{"UnknownTicket", suiteID, suiteSecret, "ticket", 40085},
		{"OtherSuitesTicket", suiteID, suiteSecret, dkTicket, 40085},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, code := suiteTokenCall(t, s, c.id, c.secret, c.ticket); code != c.want {
				t.Errorf("get_suite_token: errcode %d, want %d", code, c.want)
			}
		})
	}
	if s.SuiteTokensIssued(suiteID) != 0 {
		t.Fatalf("SuiteTokensIssued = %d after errors only", s.SuiteTokensIssued(suiteID))
	}
	if r := weComDo(t, s, http.MethodGet, wxtest.PathSuiteToken, nil, ""); r.Errcode != 43002 {
		t.Errorf("GET get_suite_token: %s, want 43002", r.Raw)
	}
	if r := weComDo(t, s, http.MethodPost, wxtest.PathSuiteToken, nil, "suite_id="+suiteID); r.Errcode != 47001 {
		t.Errorf("get_suite_token with a form body: %s, want 47001", r.Raw)
	}
	// A new secret: the old one is refused at once.
	s.SetSuiteSecret(suiteID, "new-secret")
	if _, code := suiteTokenCall(t, s, suiteID, suiteSecret, ticket); code != 40080 {
		t.Errorf("get_suite_token with the replaced secret: errcode %d, want 40080", code)
	}
	if _, code := suiteTokenCall(t, s, suiteID, "new-secret", ticket); code != 0 {
		t.Errorf("get_suite_token with the new secret: errcode %d", code)
	}
}

// TestVendorSuiteTickets tests which tickets get_suite_token accepts: the
// newest and the previous one, each for 30 minutes from its push.
func TestVendorSuiteTickets(t *testing.T) {
	s := newVendor(t, wxtest.Options{})
	_, _, t0, err := s.SuiteTicketPush(suiteID, pushToken, pushAESKey)
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(wxtest.SuiteTicketInterval)
	_, _, t1, _ := s.SuiteTicketPush(suiteID, pushToken, pushAESKey)
	if got := s.SuiteTicket(suiteID); got != t1 {
		t.Fatal("SuiteTicket is not the newest pushed ticket")
	}
	for _, tk := range []string{t0, t1} {
		if _, code := suiteTokenCall(t, s, suiteID, suiteSecret, tk); code != 0 {
			t.Errorf("get_suite_token with one of the latest two tickets: errcode %d", code)
		}
	}
	s.Advance(wxtest.SuiteTicketInterval)
	_, _, t2, _ := s.SuiteTicketPush(suiteID, pushToken, pushAESKey)
	if _, code := suiteTokenCall(t, s, suiteID, suiteSecret, t0); code != 40085 {
		t.Errorf("get_suite_token with the third newest ticket (20 min old): errcode %d, want 40085", code)
	}
	// t1 expires 30 minutes after its push, t2 is still valid then.
	s.Advance(wxtest.SuiteTicketLifetime - wxtest.SuiteTicketInterval - time.Second)
	if _, code := suiteTokenCall(t, s, suiteID, suiteSecret, t1); code != 0 {
		t.Errorf("get_suite_token with a ticket 1 s before its expiry: errcode %d", code)
	}
	s.Advance(time.Second)
	if _, code := suiteTokenCall(t, s, suiteID, suiteSecret, t1); code != 40085 {
		t.Errorf("get_suite_token with a ticket 30 min old: errcode %d, want 40085", code)
	}
	if _, code := suiteTokenCall(t, s, suiteID, suiteSecret, t2); code != 0 {
		t.Errorf("get_suite_token with the newest ticket: errcode %d", code)
	}
	s.Advance(wxtest.SuiteTicketInterval)
	if _, code := suiteTokenCall(t, s, suiteID, suiteSecret, t2); code != 40085 {
		t.Errorf("get_suite_token with the newest ticket 30 min old: errcode %d, want 40085", code)
	}
	if got := s.SuiteTicket(suiteID); got == t2 {
		t.Error("SuiteTicket returned an expired ticket")
	}
}

// TestVendorSuiteTicketSchedule tests lost pushes: WeCom's schedule makes
// the vendor's ticket an older one.
func TestVendorSuiteTicketSchedule(t *testing.T) {
	s := newVendor(t, wxtest.Options{})
	held := s.SuiteTicket(suiteID)
	s.Advance(wxtest.SuiteTicketInterval - time.Second)
	s.SuiteTicketSchedule(suiteID)
	if s.SuiteTicket(suiteID) != held {
		t.Fatal("SuiteTicketSchedule issued a ticket before the interval")
	}
	s.Advance(time.Second)
	s.SuiteTicketSchedule(suiteID) // one push lost: held is the previous ticket
	if s.SuiteTicket(suiteID) == held {
		t.Fatal("SuiteTicketSchedule issued no ticket after the interval")
	}
	if _, code := suiteTokenCall(t, s, suiteID, suiteSecret, held); code != 0 {
		t.Errorf("get_suite_token with the previous ticket: errcode %d", code)
	}
	s.Advance(wxtest.SuiteTicketInterval)
	s.SuiteTicketSchedule(suiteID) // a second push lost
	if _, code := suiteTokenCall(t, s, suiteID, suiteSecret, held); code != 40085 {
		t.Errorf("get_suite_token with the third newest ticket: errcode %d, want 40085", code)
	}
	if _, code := suiteTokenCall(t, s, suiteID, suiteSecret, s.SuiteTicket(suiteID)); code != 0 {
		t.Errorf("get_suite_token with the newest ticket: errcode %d", code)
	}
}

// TestVendorSuiteTokenOverlap tests that every get_suite_token mints a
// token and the previous one works for Options.Overlap, and the suite-token
// errcodes of the endpoints that take one.
func TestVendorSuiteTokenOverlap(t *testing.T) {
	s := newVendor(t, wxtest.Options{Overlap: 5 * time.Minute})
	st1 := mustSuiteToken(t, s, suiteID)
	st2 := mustSuiteToken(t, s, suiteID)
	if st1 == st2 || s.SuiteTokensIssued(suiteID) != 2 {
		t.Fatalf("two get_suite_token calls: same %v, issued %d", st1 == st2, s.SuiteTokensIssued(suiteID))
	}
	permanent := install(t, s, st1, suiteID, authCorp)
	s.Advance(5*time.Minute - time.Second)
	if _, code := corpTokenCall(t, s, st1, authCorp, permanent); code != 0 {
		t.Errorf("superseded suite token within its overlap: errcode %d", code)
	}
	s.Advance(time.Second)
	if _, code := corpTokenCall(t, s, st1, authCorp, permanent); code != 40082 || s.SuiteTokenValid(st1) {
		t.Errorf("superseded suite token past its overlap: errcode %d (valid %v), want 40082", code, s.SuiteTokenValid(st1))
	}
	if _, code := corpTokenCall(t, s, st2, authCorp, permanent); code != 0 {
		t.Errorf("current suite token: errcode %d", code)
	}
	ct := mustCorpToken(t, s, st2, authCorp, permanent)
	for _, c := range []struct {
		name, st string
		want     int
	}{
		{"Missing", "", 41022},
		{"Unknown", "nope", 40082},
		{"CorpToken", ct, 40082},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := stq(c.st)
			if c.st == "" {
				q = nil
			}
			for _, p := range []string{wxtest.PathPermanentCode, wxtest.PathPermanentCodeV1, wxtest.PathCorpToken, wxtest.PathAuthInfo} {
				if _, code := vpost(t, s, p, q, map[string]string{"auth_corpid": authCorp, "permanent_code": permanent}); code != c.want {
					t.Errorf("%s: errcode %d, want %d", p, code, c.want)
				}
			}
		})
	}
	// A suite token works on no WeCom API.
	if r := weComAPI(t, s, st2, s.AgentID(suiteID, authCorp)); r.Errcode != 40014 {
		t.Errorf("agent/get with a suite token: %s, want 40014", r.Raw)
	}
	s.Revoke(st2)
	if _, code := corpTokenCall(t, s, st2, authCorp, permanent); code != 40082 {
		t.Errorf("revoked suite token: errcode %d, want 40082", code)
	}
	st3 := mustSuiteToken(t, s, suiteID)
	s.Advance(2*time.Hour - time.Second)
	if !s.SuiteTokenValid(st3) {
		t.Fatal("suite token invalid 1 s before its expiry")
	}
	s.Advance(time.Second)
	if _, code := corpTokenCall(t, s, st3, authCorp, permanent); code != 42009 {
		t.Errorf("expired suite token: errcode %d, want 42009", code)
	}
}

// TestVendorAuthCodes tests that auth codes are single-use, expire after 10
// minutes and belong to their suite and installation.
func TestVendorAuthCodes(t *testing.T) {
	s := newVendor(t, wxtest.Options{})
	st := mustSuiteToken(t, s, suiteID)
	dkst := mustSuiteToken(t, s, dkSuiteID)

	code := s.Install(suiteID, authCorp)
	if _, c := exchange(t, s, wxtest.PathPermanentCode, dkst, code); c != 40078 {
		t.Errorf("another suite's auth code: errcode %d, want 40078", c)
	}
	m, c := exchange(t, s, wxtest.PathPermanentCode, st, code)
	if c != 0 {
		t.Fatalf("first exchange: errcode %d", c)
	}
	first := m["permanent_code"].(string)
	if _, c := exchange(t, s, wxtest.PathPermanentCode, st, code); c != 40078 {
		t.Errorf("second exchange: errcode %d, want 40078", c)
	}
	if _, c := exchange(t, s, wxtest.PathPermanentCode, st, ""); c != 40078 {
		t.Errorf("missing auth code: errcode %d, want 40078", c)
	}

	late := s.Install(suiteID, authCorp)
	onTime := s.Install(suiteID, authCorp2)
	s.Advance(wxtest.AuthCodeLifetime - time.Second)
	m, c = exchange(t, s, wxtest.PathPermanentCodeV1, st, onTime)
	if c != 0 {
		t.Fatalf("exchange 1 s before expiry: errcode %d", c)
	}
	// v1 answers a corp token and the agent.
	ct, _ := m["access_token"].(string)
	agent := m["auth_info"].(map[string]any)["agent"].([]any)[0].(map[string]any)
	if ct == "" || m["expires_in"] != float64(7200) || agent["agentid"] != float64(s.AgentID(suiteID, authCorp2)) || agent["name"] != "app" {
		t.Fatalf("v1 get_permanent_code: %v", m)
	}
	if s.CorpTokensIssued(authCorp2) != 1 {
		t.Errorf("CorpTokensIssued after v1 = %d, want 1", s.CorpTokensIssued(authCorp2))
	}
	wantWeComAPI(t, s, ct, s.AgentID(suiteID, authCorp2), 0)
	s.Advance(time.Second)
	if _, c := exchange(t, s, wxtest.PathPermanentCode, st, late); c != 40078 {
		t.Errorf("exchange 10 min after issue: errcode %d, want 40078", c)
	}
	if !s.PermanentCodeValid(suiteID, authCorp, first) {
		t.Error("an expired code's failed exchange voided the permanent code")
	}

	// A re-install's exchange replaces the permanent code.
	second := install(t, s, st, suiteID, authCorp)
	if _, c := corpTokenCall(t, s, st, authCorp, first); c != 40084 {
		t.Errorf("get_corp_token with the code before the re-install: errcode %d, want 40084", c)
	}
	mustCorpToken(t, s, st, authCorp, second)

	// A code issued before an uninstall is void.
	stale := s.Install(suiteID, authCorp)
	s.Uninstall(suiteID, authCorp)
	if _, c := exchange(t, s, wxtest.PathPermanentCode, st, stale); c != 40078 {
		t.Errorf("a code issued before Uninstall: errcode %d, want 40078", c)
	}
}

// TestVendorCorpTokens tests get_corp_token: a token per call, the
// previous one overlapping for Options.Overlap, expiry, and the errcodes.
func TestVendorCorpTokens(t *testing.T) {
	s := newVendor(t, wxtest.Options{Overlap: time.Minute})
	st := mustSuiteToken(t, s, suiteID)
	permanent := install(t, s, st, suiteID, authCorp)
	agent := s.AgentID(suiteID, authCorp)
	c1 := mustCorpToken(t, s, st, authCorp, permanent)
	c2 := mustCorpToken(t, s, st, authCorp, permanent)
	if c1 == c2 || s.CorpTokensIssued(authCorp) != 2 {
		t.Fatalf("two get_corp_token calls: same %v, issued %d", c1 == c2, s.CorpTokensIssued(authCorp))
	}
	s.Advance(time.Minute - time.Second)
	wantWeComAPI(t, s, c1, agent, 0)
	s.Advance(time.Second)
	wantWeComAPI(t, s, c1, agent, 40014)
	if r := weComTicket(t, s, wxtest.PathWeComJSAPITicket, c1, ""); r.Errcode != 40014 {
		t.Errorf("get_jsapi_ticket with a superseded corp token: %s", r.Raw)
	}
	wantWeComAPI(t, s, c2, agent, 0)
	wantWeComAPI(t, s, c2, agent+1, 301002)
	s.Advance(2 * time.Hour)
	wantWeComAPI(t, s, c2, agent, 42001)

	for _, c := range []struct {
		name, corp, code string
		want             int
	}{
		{"MissingCorp", "", permanent, 41002},
		{"MissingCode", authCorp, "", 41025},
		{"WrongCode", authCorp, "nope", 40084},
		{"OtherCorp", authCorp2, permanent, 40084},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, code := corpTokenCall(t, s, mustSuiteToken(t, s, suiteID), c.corp, c.code); code != c.want {
				t.Errorf("get_corp_token: errcode %d, want %d", code, c.want)
			}
		})
	}
}

// TestVendorProviderToken tests get_provider_token: the same token while
// valid, a new one after expiry or revocation, and the errcodes.
func TestVendorProviderToken(t *testing.T) {
	s := newVendor(t, wxtest.Options{})
	call := func(corp, secret string) (map[string]any, int) {
		t.Helper()
		return vpost(t, s, wxtest.PathProviderToken, nil, map[string]string{"corpid": corp, "provider_secret": secret})
	}
	for _, c := range []struct {
		name, corp, secret string
		want               int
	}{
		{"MissingCorp", "", providerSec, 41002},
		{"MissingSecret", providerCorp, "", 41004},
		{"UnknownCorp", authCorp, providerSec, 40013},
		{"WrongSecret", providerCorp, "wrong", 40001},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, code := call(c.corp, c.secret); code != c.want {
				t.Errorf("get_provider_token: errcode %d, want %d", code, c.want)
			}
		})
	}
	m, code := call(providerCorp, providerSec)
	p1, _ := m["provider_access_token"].(string)
	if code != 0 || p1 == "" || m["expires_in"] != float64(7200) || !s.ProviderTokenValid(p1) {
		t.Fatalf("get_provider_token: %v", m)
	}
	s.Advance(time.Hour)
	if m, _ := call(providerCorp, providerSec); m["provider_access_token"] != p1 || m["expires_in"] != float64(3600) {
		t.Fatalf("get_provider_token within validity: %v, want the same token with expires_in 3600", m)
	}
	if s.ProviderTokensIssued(providerCorp) != 1 {
		t.Fatalf("ProviderTokensIssued = %d, want 1", s.ProviderTokensIssued(providerCorp))
	}
	s.Revoke(p1)
	m, _ = call(providerCorp, providerSec)
	p2, _ := m["provider_access_token"].(string)
	if p2 == p1 || s.ProviderTokenValid(p1) || s.ProviderTokensIssued(providerCorp) != 2 {
		t.Fatalf("after Revoke: new %v, old valid %v, issued %d", p2 != p1, s.ProviderTokenValid(p1), s.ProviderTokensIssued(providerCorp))
	}
	s.Advance(2 * time.Hour)
	if s.ProviderTokenValid(p2) {
		t.Fatal("provider token valid after expiry")
	}
	if m, _ := call(providerCorp, providerSec); m["provider_access_token"] == p2 {
		t.Fatal("get_provider_token after expiry returned the expired token")
	}
}

// TestVendorOmitErrcode tests that the three token endpoints leave errcode
// out of success replies when asked, and keep it in errors.
func TestVendorOmitErrcode(t *testing.T) {
	s := newVendor(t, wxtest.Options{OmitVendorErrcode: true})
	st := mustSuiteTokenRaw(t, s)
	permanent := install(t, s, st, suiteID, authCorp)
	for _, c := range []struct {
		path string
		q    url.Values
		body map[string]string
		key  string
	}{
		{wxtest.PathCorpToken, stq(st), map[string]string{"auth_corpid": authCorp, "permanent_code": permanent}, "access_token"},
		{wxtest.PathProviderToken, nil, map[string]string{"corpid": providerCorp, "provider_secret": providerSec}, "provider_access_token"},
	} {
		m, _ := vpost(t, s, c.path, c.q, c.body)
		_, hasCode := m["errcode"]
		_, hasMsg := m["errmsg"]
		if hasCode || hasMsg || m[c.key] == nil {
			t.Errorf("%s with OmitVendorErrcode: %v", c.path, m)
		}
	}
	if _, code := vpost(t, s, wxtest.PathCorpToken, stq(st), map[string]string{"auth_corpid": authCorp, "permanent_code": "x"}); code != 40084 {
		t.Errorf("an error with OmitVendorErrcode: errcode %d, want 40084", code)
	}
	s.OmitVendorErrcode(false)
	if m, _ := vpost(t, s, wxtest.PathProviderToken, nil, map[string]string{"corpid": providerCorp, "provider_secret": providerSec}); m["errcode"] != float64(0) || m["errmsg"] != "ok" {
		t.Errorf("get_provider_token after OmitVendorErrcode(false): %v", m)
	}
}

func mustSuiteTokenRaw(t *testing.T, s *wxtest.Server) string {
	t.Helper()
	m, _ := vpost(t, s, wxtest.PathSuiteToken, nil, map[string]string{
		"suite_id": suiteID, "suite_secret": suiteSecret, "suite_ticket": s.SuiteTicket(suiteID)})
	_, hasCode := m["errcode"]
	st, _ := m["suite_access_token"].(string)
	if hasCode || st == "" || m["expires_in"] != float64(7200) {
		t.Fatalf("get_suite_token with OmitVendorErrcode: %v", m)
	}
	return st
}

// TestVendorPushes tests change_auth and VendorPushAt.
func TestVendorPushes(t *testing.T) {
	s := newVendor(t, wxtest.Options{})
	q, body, err := s.ChangeAuthPush(suiteID, authCorp, pushToken, pushAESKey)
	if err != nil {
		t.Fatal(err)
	}
	if ev := openVendorPush(t, suiteID, q, body); ev.InfoType != "change_auth" || ev.AuthCorpID != authCorp || ev.TimeStamp != s.Now().Unix() {
		t.Fatalf("change_auth push %s", ev.Raw)
	}
	at := s.Now().Add(-time.Hour)
	q, body, err = s.VendorPushAt(at, suiteID, map[string]string{
		"InfoType": "suite_ticket", "SuiteTicket": "old]]>ticket", "TimeStamp": "1", "SuiteId": "other"}, pushToken, pushAESKey)
	if err != nil {
		t.Fatal(err)
	}
	ev := openVendorPush(t, suiteID, q, body)
	want := fmt.Sprintf("<xml><SuiteId><![CDATA[%s]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType><TimeStamp>%d</TimeStamp><SuiteTicket>", suiteID, at.Unix())
	if ev.SuiteTicket != "old]]>ticket" || ev.TimeStamp != at.Unix() || !strings.HasPrefix(ev.Raw, want) {
		t.Fatalf("VendorPushAt: %s", ev.Raw)
	}
	if _, _, err := s.VendorPushAt(at, suiteID, map[string]string{"InfoType": "x"}, pushToken, "short"); err == nil {
		t.Fatal("VendorPushAt with a malformed key: no error")
	}
}

// TestVendorPanics tests the test-facing methods' guards.
func TestVendorPanics(t *testing.T) {
	s := newVendor(t, wxtest.Options{})
	for name, f := range map[string]func(){
		"ResetThirdParty":  func() { s.Install(suiteID, authCorp); s.ResetPermanentCode(suiteID, authCorp) },
		"ResetNotInstall":  func() { s.ResetPermanentCode(dkSuiteID, authCorp2) },
		"UndeclaredTicket": func() { s.SuiteTicket("wwundeclared") },
		"UndeclaredPush":   func() { _, _, _, _ = s.SuiteTicketPush("wwundeclared", pushToken, pushAESKey) },
		"UnknownCode":      func() { _, _, _ = s.CreateAuthPush(suiteID, "nope", pushToken, pushAESKey) },
		"EmptySecret":      func() { s.SetSuiteSecret(suiteID, "") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

// TestVendorConcurrent tests concurrent get_corp_token and 代开发 gettoken
// calls under -race: every get_corp_token call mints, gettoken mints once.
func TestVendorConcurrent(t *testing.T) {
	s := newVendor(t, wxtest.Options{})
	st := mustSuiteToken(t, s, suiteID)
	permanent := install(t, s, st, suiteID, authCorp)
	dk := install(t, s, mustSuiteToken(t, s, dkSuiteID), dkSuiteID, authCorp2)
	const n = 8
	var wg sync.WaitGroup
	tokens := make(chan string, n)
	errs := make(chan string, 2*n)
	for range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]string{"auth_corpid": authCorp, "permanent_code": permanent})
			var r struct {
				AccessToken string `json:"access_token"`
			}
			if err := serveJSON(s, wxtest.PathCorpToken+"?"+stq(st).Encode(), body, &r); err != nil || r.AccessToken == "" {
				errs <- fmt.Sprintf("get_corp_token: %v %+v", err, r)
			}
		}()
		go func() {
			defer wg.Done()
			resp, err := s.Client().Get(s.URL + wxtest.PathWeComToken + "?" + url.Values{"corpid": {authCorp2}, "corpsecret": {dk}}.Encode())
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			var r struct {
				AccessToken string `json:"access_token"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.AccessToken == "" {
				errs <- fmt.Sprintf("gettoken: %v %+v", err, r)
			}
			tokens <- r.AccessToken
		}()
	}
	wg.Wait()
	close(errs)
	close(tokens)
	for e := range errs {
		t.Error(e)
	}
	first := ""
	for tok := range tokens {
		if first == "" {
			first = tok
		} else if tok != first {
			t.Error("concurrent 代开发 gettoken calls got different tokens")
		}
	}
	if got := s.CorpTokensIssued(authCorp); got != n {
		t.Errorf("CorpTokensIssued(third-party) = %d, want %d", got, n)
	}
	if got := s.CorpTokensIssued(authCorp2); got != 1 {
		t.Errorf("CorpTokensIssued(代开发) = %d, want 1", got)
	}
	s.ResetCounters()
	if s.CorpTokensIssued(authCorp) != 0 || s.SuiteTokensIssued(suiteID) != 0 {
		t.Error("ResetCounters left vendor counters")
	}
}

// TestVendorFaults tests that InjectFault and Calls apply to the vendor
// paths.
func TestVendorFaults(t *testing.T) {
	s := newVendor(t, wxtest.Options{})
	s.InjectFault(wxtest.PathSuiteToken, wxtest.Busy(), 1)
	if _, code := post(t, s, wxtest.PathSuiteToken, nil, map[string]string{
		"suite_id": suiteID, "suite_secret": suiteSecret, "suite_ticket": s.SuiteTicket(suiteID)}); code != -1 {
		t.Fatalf("faulted get_suite_token: errcode %d, want -1", code)
	}
	mustSuiteToken(t, s, suiteID)
	if s.Calls(wxtest.PathSuiteToken) != 2 || s.SuiteTokensIssued(suiteID) != 1 {
		t.Fatalf("Calls = %d, SuiteTokensIssued = %d, want 2, 1", s.Calls(wxtest.PathSuiteToken), s.SuiteTokensIssued(suiteID))
	}
	if !bytes.Contains(s.LastBody(wxtest.PathSuiteToken), []byte(suiteID)) {
		t.Fatal("LastBody does not hold the request")
	}
}

// ExampleServer_SuiteTicketPush shows WeCom pushing a suite_ticket to a
// vendor, which decrypts it with its suite id as receive id and gets a
// suite_access_token with it.
func ExampleServer_SuiteTicketPush() {
	s := wxtest.New(wxtest.Options{})
	defer s.Close()
	const suite, secret = "ww4asffe99e54c0fxxxx", "suite-secret"
	const token, aesKey = "callback-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	s.SetSuiteSecret(suite, secret)

	query, body, _, err := s.SuiteTicketPush(suite, token, aesKey)
	if err != nil {
		panic(err)
	}
	// The vendor's command callback URL handler:
	c, _ := msgcrypt.New(token, aesKey, suite)
	plain, err := c.DecryptMessage(query.Get("msg_signature"), query.Get("timestamp"), query.Get("nonce"), body)
	if err != nil {
		panic(err)
	}
	var ev struct {
		InfoType    string `xml:"InfoType"`
		SuiteTicket string `xml:"SuiteTicket"`
	}
	_ = xml.Unmarshal(plain, &ev)
	fmt.Println(ev.InfoType)

	req, _ := json.Marshal(map[string]string{"suite_id": suite, "suite_secret": secret, "suite_ticket": ev.SuiteTicket})
	resp, err := s.Client().Post(s.URL+wxtest.PathSuiteToken, "application/json", bytes.NewReader(req))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var reply struct {
		Errcode          int    `json:"errcode"`
		SuiteAccessToken string `json:"suite_access_token"`
		ExpiresIn        int    `json:"expires_in"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&reply)
	fmt.Println(reply.Errcode, reply.SuiteAccessToken != "", reply.ExpiresIn)
	// Output:
	// suite_ticket
	// 0 true 7200
}
