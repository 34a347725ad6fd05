package wxtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	corpID      = "ww0123456789abcdef"
	corpSecret  = "corp-secret-of-agent-1000002"
	corpSecret2 = "corp-secret-of-agent-1000003"
	agentID     = 1000002
	agentID2    = 1000003
)

// weComApps declares one corp with two applications.
var weComApps = []wxtest.WeComApp{
	{CorpID: corpID, AgentID: agentID, Secret: corpSecret},
	{CorpID: corpID, AgentID: agentID2, Secret: corpSecret2},
}

// weComReply is the union of the fields the simulated WeCom endpoints answer.
type weComReply struct {
	reply
	AgentID int64  `json:"agentid"`
	Name    string `json:"name"`
	MsgID   string `json:"msgid"`
}

// weComDo sends a request and decodes a JSON reply, failing the test on a
// transport error or a non-200 status.
func weComDo(t *testing.T, s *wxtest.Server, method, path string, q url.Values, body string) weComReply {
	t.Helper()
	r := must(t, s, method, path, q, body)
	var wr weComReply
	wr.reply = r
	if r.Errcode != -999 {
		if err := json.Unmarshal([]byte(r.Raw), &wr); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, r.Raw)
		}
	}
	return wr
}

func weComTokenReply(t *testing.T, s *wxtest.Server, corp, secret string) weComReply {
	t.Helper()
	q := url.Values{}
	if corp != "" {
		q.Set("corpid", corp)
	}
	if secret != "" {
		q.Set("corpsecret", secret)
	}
	return weComDo(t, s, http.MethodGet, wxtest.PathWeComToken, q, "")
}

// weComToken fetches a WeCom token and fails the test on an error reply.
func weComToken(t *testing.T, s *wxtest.Server, corp, secret string) string {
	t.Helper()
	r := weComTokenReply(t, s, corp, secret)
	if r.Errcode != 0 || r.Errmsg != "ok" || r.AccessToken == "" {
		t.Fatalf("gettoken: %s", r.Raw)
	}
	return r.AccessToken
}

// weComAPI calls PathWeComAPI and returns the reply.
func weComAPI(t *testing.T, s *wxtest.Server, token string, agent int64) weComReply {
	t.Helper()
	return weComDo(t, s, http.MethodGet, wxtest.PathWeComAPI,
		url.Values{"access_token": {token}, "agentid": {strconv.FormatInt(agent, 10)}}, "")
}

// wantWeComAPI checks that an agent/get call with token answers errcode want,
// and that TokenValid agrees.
func wantWeComAPI(t *testing.T, s *wxtest.Server, token string, agent int64, want int) {
	t.Helper()
	r := weComAPI(t, s, token, agent)
	if r.Errcode != want {
		t.Fatalf("agent/get with token %.8s…: %s, want errcode %d", token, r.Raw, want)
	}
	if want == 0 && (r.AgentID != agent || r.Errmsg != "ok") {
		t.Fatalf("agent/get: %s, want agentid %d", r.Raw, agent)
	}
	if want != 301002 {
		if got := s.TokenValid(token); got != (want == 0) {
			t.Fatalf("TokenValid(%.8s…) = %v, want %v", token, got, want == 0)
		}
	}
}

func weComTicket(t *testing.T, s *wxtest.Server, path, token, typ string) weComReply {
	t.Helper()
	q := url.Values{}
	if token != "" {
		q.Set("access_token", token)
	}
	if typ != "" {
		q.Set("type", typ)
	}
	return weComDo(t, s, http.MethodGet, path, q, "")
}

// wantWeComError checks an error reply: errcode code and WeCom's errmsg
// format (text, hint, caller IP, lookup link), and no credential.
func wantWeComError(t *testing.T, r weComReply, code int) {
	t.Helper()
	re := regexp.MustCompile(`^[^,]+.*, hint: \[[0-9]{25}\], from ip: 127\.0\.0\.1, more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=` +
		regexp.QuoteMeta(strconv.Itoa(code)) + `$`)
	if r.Errcode != code || !re.MatchString(r.Errmsg) {
		t.Fatalf("reply %s, want errcode %d with WeCom's errmsg format", r.Raw, code)
	}
	if r.AccessToken != "" || r.Ticket != "" {
		t.Fatalf("error reply carries a credential: %s", r.Raw)
	}
}

func TestWeComTokenReply(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	r := weComTokenReply(t, s, corpID, corpSecret)
	if r.Errcode != 0 || r.Errmsg != "ok" || r.ExpiresIn != 7200 {
		t.Fatalf("reply %s, want errcode 0, errmsg ok, expires_in 7200", r.Raw)
	}
	if n := len(r.AccessToken); n < 64 || n > 512 || !urlSafe.MatchString(r.AccessToken) {
		t.Fatalf("token %q: want 64..512 URL-safe characters", r.AccessToken)
	}
	if got := s.TokensIssued(); got != 1 {
		t.Fatalf("TokensIssued = %d, want 1", got)
	}
	if got := s.Calls(wxtest.PathWeComToken); got != 1 {
		t.Fatalf("Calls(PathWeComToken) = %d, want 1", got)
	}
	wantWeComAPI(t, s, r.AccessToken, 42, 0) // no apps declared: any agentid

	s2 := newServer(t, wxtest.Options{ExpiresIn: 10 * time.Minute})
	if r := weComTokenReply(t, s2, corpID, corpSecret); r.ExpiresIn != 600 {
		t.Fatalf("ExpiresIn 10m: expires_in %d, want 600", r.ExpiresIn)
	}
}

// WeCom's docs: within its validity a repeated gettoken returns the same
// result; after expiry it returns a new access_token.
func TestWeComTokenSameWithinValidity(t *testing.T) {
	s := newServer(t, wxtest.Options{WeComApps: weComApps})
	r1 := weComTokenReply(t, s, corpID, corpSecret)
	r2 := weComTokenReply(t, s, corpID, corpSecret)
	if r2.AccessToken != r1.AccessToken || r2.ExpiresIn != 7200 {
		t.Fatalf("second gettoken: same token %v, expires_in %d; want the same token, 7200",
			r2.AccessToken == r1.AccessToken, r2.ExpiresIn)
	}
	s.Advance(time.Hour + 500*time.Millisecond)
	r3 := weComTokenReply(t, s, corpID, corpSecret)
	if r3.AccessToken != r1.AccessToken || r3.ExpiresIn != 3599 {
		t.Fatalf("after 1h0.5s: same token %v, expires_in %d; want the same token, 3599 (remaining, rounded down)",
			r3.AccessToken == r1.AccessToken, r3.ExpiresIn)
	}
	s.Advance(time.Hour - 500*time.Millisecond - time.Nanosecond)
	wantWeComAPI(t, s, r1.AccessToken, agentID, 0)
	s.Advance(time.Nanosecond)
	wantWeComAPI(t, s, r1.AccessToken, agentID, 42001)

	t2 := weComToken(t, s, corpID, corpSecret)
	if t2 == r1.AccessToken {
		t.Fatal("gettoken after expiry returned the expired token")
	}
	wantWeComAPI(t, s, t2, agentID, 0)
	wantWeComAPI(t, s, r1.AccessToken, agentID, 42001)
	if got := s.TokensIssued(); got != 2 {
		t.Fatalf("TokensIssued = %d, want 2 (calls that returned the current token mint nothing)", got)
	}
}

func TestWeComTokenPerApp(t *testing.T) {
	s := newServer(t, wxtest.Options{WeComApps: weComApps})
	t1 := weComToken(t, s, corpID, corpSecret)
	t2 := weComToken(t, s, corpID, corpSecret2)
	if t1 == t2 {
		t.Fatal("two applications of a corp got the same token")
	}
	// Each token reads only its own application.
	wantWeComAPI(t, s, t1, agentID, 0)
	wantWeComAPI(t, s, t2, agentID2, 0)
	wantWeComAPI(t, s, t1, agentID2, 301002)
	wantWeComAPI(t, s, t2, agentID, 301002)
	// Fetching one application's token leaves the other's alone.
	if again := weComToken(t, s, corpID, corpSecret); again != t1 {
		t.Fatal("the first application's token changed")
	}

	// Undeclared: each (corpid, secret) pair is an application of its own.
	u := newServer(t, wxtest.Options{})
	a := weComToken(t, u, "wwA", "s1")
	b := weComToken(t, u, "wwA", "s2")
	c := weComToken(t, u, "wwB", "s1")
	if a == b || a == c || b == c {
		t.Fatal("distinct (corpid, secret) pairs shared a token")
	}
	if weComToken(t, u, "wwA", "s1") != a {
		t.Fatal("the same pair got a new token while the first was valid")
	}
}

func TestWeComCredentialErrors(t *testing.T) {
	s := newServer(t, wxtest.Options{WeComApps: weComApps})
	for _, tc := range []struct {
		name, corp, secret string
		want               int
	}{
		{"missing corpid", "", corpSecret, 41002},
		{"missing secret", corpID, "", 41004},
		{"wrong corpid", "wwffffffffffffffff", corpSecret, 40013},
		{"wrong secret", corpID, "wrong", 40001},
		{"secret of the corp, other corpid", "wwffffffffffffffff", corpSecret2, 40013},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantWeComError(t, weComTokenReply(t, s, tc.corp, tc.secret), tc.want)
		})
	}
	if got := s.TokensIssued(); got != 0 {
		t.Fatalf("TokensIssued = %d, want 0", got)
	}

	u := newServer(t, wxtest.Options{})
	wantWeComError(t, weComTokenReply(t, u, "", "x"), 41002)
	wantWeComError(t, weComTokenReply(t, u, "ww", ""), 41004)
}

func TestWeComMethods(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	tok := weComToken(t, s, corpID, corpSecret)
	q := url.Values{"corpid": {corpID}, "corpsecret": {corpSecret}}
	wantWeComError(t, weComDo(t, s, http.MethodPost, wxtest.PathWeComToken, q, "{}"), 43001)
	wantWeComError(t, weComDo(t, s, http.MethodGet, wxtest.PathWeComSend, url.Values{"access_token": {tok}}, ""), 43002)
	wantWeComError(t, weComDo(t, s, http.MethodPost, wxtest.PathWeComAPI, url.Values{"access_token": {tok}}, "{}"), 43001)
}

func TestWeComTickets(t *testing.T) {
	s := newServer(t, wxtest.Options{WeComApps: weComApps})
	tok := weComToken(t, s, corpID, corpSecret)

	corp := weComTicket(t, s, wxtest.PathWeComJSAPITicket, tok, "")
	agent := weComTicket(t, s, wxtest.PathWeComAgentTicket, tok, "agent_config")
	for _, r := range []weComReply{corp, agent} {
		if r.Errcode != 0 || r.Errmsg != "ok" || r.Ticket == "" || r.ExpiresIn != 7200 {
			t.Fatalf("ticket reply %s", r.Raw)
		}
		if !s.TicketValid(r.Ticket) {
			t.Fatalf("TicketValid(%q) = false", r.Ticket)
		}
	}
	if corp.Ticket == agent.Ticket {
		t.Fatal("the corp ticket and the agent ticket are the same")
	}
	if got := s.TicketsIssued(); got != 2 {
		t.Fatalf("TicketsIssued = %d, want 2", got)
	}

	wantWeComError(t, weComTicket(t, s, wxtest.PathWeComAgentTicket, tok, ""), 40058)
	wantWeComError(t, weComTicket(t, s, wxtest.PathWeComAgentTicket, tok, "jsapi"), 40058)

	s.Revoke(corp.Ticket)
	if s.TicketValid(corp.Ticket) || !s.TicketValid(agent.Ticket) {
		t.Fatal("Revoke of the corp ticket: want it invalid and the agent ticket valid")
	}
	s.Advance(wxtest.DefaultExpiresIn)
	if s.TicketValid(agent.Ticket) {
		t.Fatal("the agent ticket outlived ExpiresIn")
	}
}

func TestWeComTicketNeedsValidToken(t *testing.T) {
	for _, path := range []string{wxtest.PathWeComJSAPITicket, wxtest.PathWeComAgentTicket} {
		t.Run(path, func(t *testing.T) {
			s := newServer(t, wxtest.Options{})
			wantWeComError(t, weComTicket(t, s, path, "", "agent_config"), 41001)
			wantWeComError(t, weComTicket(t, s, path, "not-a-token", "agent_config"), 40014)
			wantWeComError(t, weComTicket(t, s, path, classicToken(t, s), "agent_config"), 40014)
			tok := weComToken(t, s, corpID, corpSecret)
			s.Advance(wxtest.DefaultExpiresIn)
			wantWeComError(t, weComTicket(t, s, path, tok, "agent_config"), 42001)
			if got := s.TicketsIssued(); got != 0 {
				t.Fatalf("TicketsIssued = %d, want 0", got)
			}
		})
	}
}

func TestWeComInvalidToken(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	wantWeComAPI(t, s, "not-a-token", agentID, 40014)
	r := weComDo(t, s, http.MethodGet, wxtest.PathWeComAPI, url.Values{"agentid": {"1"}}, "")
	wantWeComError(t, r, 41001)

	// The two APIs' tokens are not interchangeable.
	oa := classicToken(t, s)
	wc := weComToken(t, s, corpID, corpSecret)
	wantWeComError(t, weComAPI(t, s, oa, agentID), 40014)
	if got := api(t, s, wc); got != 40001 {
		t.Fatalf("getcallbackip with a WeCom token: errcode %d, want 40001", got)
	}
	if !s.TokenValid(oa) || !s.TokenValid(wc) {
		t.Fatal("TokenValid: want both tokens valid for their own API")
	}
}

func TestWeComAgentIDErrors(t *testing.T) {
	s := newServer(t, wxtest.Options{WeComApps: weComApps})
	tok := weComToken(t, s, corpID, corpSecret)
	for _, tc := range []struct {
		agentid string
		want    int
	}{
		{"", 41011},
		{"abc", 40056},
		{"0", 40056},
		{strconv.Itoa(agentID2), 301002},
		{strconv.Itoa(agentID), 0},
	} {
		q := url.Values{"access_token": {tok}}
		if tc.agentid != "" {
			q.Set("agentid", tc.agentid)
		}
		r := weComDo(t, s, http.MethodGet, wxtest.PathWeComAPI, q, "")
		if tc.want == 0 {
			if r.Errcode != 0 || r.AgentID != agentID || r.Name == "" {
				t.Fatalf("agentid %q: %s", tc.agentid, r.Raw)
			}
			continue
		}
		wantWeComError(t, r, tc.want)
	}
}

func TestWeComSend(t *testing.T) {
	s := newServer(t, wxtest.Options{WeComApps: weComApps})
	tok := weComToken(t, s, corpID, corpSecret)
	q := url.Values{"access_token": {tok}}
	body := `{"touser":"@all","msgtype":"text","agentid":1000002,"text":{"content":"hi"}}`
	r := weComDo(t, s, http.MethodPost, wxtest.PathWeComSend, q, body)
	if r.Errcode != 0 || r.Errmsg != "ok" || r.MsgID == "" {
		t.Fatalf("send: %s", r.Raw)
	}
	if got := string(s.LastBody(wxtest.PathWeComSend)); got != body {
		t.Fatalf("LastBody = %q, want %q", got, body)
	}
	if r := weComDo(t, s, http.MethodPost, wxtest.PathWeComSend, q, `{"agentid":"1000002"}`); r.Errcode != 0 {
		t.Fatalf("send with a quoted agentid: %s", r.Raw)
	}
	wantWeComError(t, weComDo(t, s, http.MethodPost, wxtest.PathWeComSend, q, `{"agentid":`), 40058)
	wantWeComError(t, weComDo(t, s, http.MethodPost, wxtest.PathWeComSend, q, `{"msgtype":"text"}`), 41011)
	wantWeComError(t, weComDo(t, s, http.MethodPost, wxtest.PathWeComSend, q, `{"agentid":1000003}`), 301002)
	wantWeComError(t, weComDo(t, s, http.MethodPost, wxtest.PathWeComSend,
		url.Values{"access_token": {"nope"}}, body), 40014)
	s.Advance(wxtest.DefaultExpiresIn)
	wantWeComError(t, weComDo(t, s, http.MethodPost, wxtest.PathWeComSend, q, body), 42001)
}

func TestWeComRevokeAndReject(t *testing.T) {
	s := newServer(t, wxtest.Options{WeComApps: weComApps})
	t1 := weComToken(t, s, corpID, corpSecret)
	s.Revoke(t1)
	wantWeComAPI(t, s, t1, agentID, 40014)
	t2 := weComToken(t, s, corpID, corpSecret)
	if t2 == t1 {
		t.Fatal("gettoken returned a revoked token")
	}
	wantWeComAPI(t, s, t2, agentID, 0)

	// A rejected token fails the APIs, yet gettoken keeps handing it back
	// until it expires.
	s.Reject(t2)
	wantWeComAPI(t, s, t2, agentID, 40014)
	if got := weComToken(t, s, corpID, corpSecret); got != t2 {
		t.Fatal("gettoken replaced a rejected token before it expired")
	}
	s.Advance(wxtest.DefaultExpiresIn)
	t3 := weComToken(t, s, corpID, corpSecret)
	if t3 == t2 {
		t.Fatal("gettoken returned an expired token")
	}
	wantWeComAPI(t, s, t3, agentID, 0)
	if got := s.TokensIssued(); got != 3 {
		t.Fatalf("TokensIssued = %d, want 3", got)
	}
}

func TestWeComDailyQuota(t *testing.T) {
	s := newServer(t, wxtest.Options{DailyQuota: 1})
	t1 := weComToken(t, s, corpID, corpSecret)
	// Returning the current token mints nothing, so it is not counted.
	if weComToken(t, s, corpID, corpSecret) != t1 {
		t.Fatal("gettoken minted a new token while the first was valid")
	}
	s.Revoke(t1)
	wantWeComError(t, weComTokenReply(t, s, corpID, corpSecret), 45009)
	// Another application has its own quota.
	weComToken(t, s, corpID, corpSecret2)
	s.ResetQuota()
	if weComToken(t, s, corpID, corpSecret) == t1 {
		t.Fatal("gettoken after ResetQuota returned the revoked token")
	}
}

func TestWeComFaults(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	s.InjectFault(wxtest.PathWeComToken, wxtest.Busy(), 1)
	s.InjectFault(wxtest.PathWeComToken, wxtest.HTTPStatus(502), 1)
	if r := weComTokenReply(t, s, corpID, corpSecret); r.Errcode != -1 {
		t.Fatalf("injected busy: %s", r.Raw)
	}
	r, err := do(t, s, context.Background(), http.MethodGet, wxtest.PathWeComToken,
		url.Values{"corpid": {corpID}, "corpsecret": {corpSecret}}, "")
	if err != nil || r.Status != http.StatusBadGateway {
		t.Fatalf("injected 502: %v, %d %q", err, r.Status, r.Raw)
	}
	tok := weComToken(t, s, corpID, corpSecret)
	if got := s.Calls(wxtest.PathWeComToken); got != 3 {
		t.Fatalf("Calls(PathWeComToken) = %d, want 3", got)
	}
	s.InjectFault(wxtest.PathWeComAPI, wxtest.Errcode(60020,
		"not allow to access from your ip, hint: [1], from ip: 203.0.113.7, more info at https://open.work.weixin.qq.com/devtool/query?e=60020"), 1)
	if r := weComAPI(t, s, tok, 1); r.Errcode != 60020 {
		t.Fatalf("injected 60020: %s", r.Raw)
	}
	wantWeComAPI(t, s, tok, 1, 0)
	// A fault on a WeCom path leaves the Official Account path alone.
	s.InjectFault(wxtest.PathWeComSend, wxtest.MalformedJSON(), 1)
	if got := api(t, s, classicToken(t, s)); got != 0 {
		t.Fatalf("getcallbackip: errcode %d", got)
	}
}

func TestWeComBlock(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	g := s.Block(wxtest.PathWeComToken)
	done := make(chan weComReply, 1)
	go func() {
		r, err := do(t, s, context.Background(), http.MethodGet, wxtest.PathWeComToken,
			url.Values{"corpid": {corpID}, "corpsecret": {corpSecret}}, "")
		if err != nil {
			r.Errcode = -998
		}
		var wr weComReply
		wr.reply = r
		done <- wr
	}()
	receive(t, g.Arrived(), "the held gettoken")
	if g.Held() != 1 || s.Calls(wxtest.PathWeComToken) != 1 || s.TokensIssued() != 0 {
		t.Fatalf("while held: Held %d, Calls %d, TokensIssued %d; want 1, 1, 0",
			g.Held(), s.Calls(wxtest.PathWeComToken), s.TokensIssued())
	}
	// Other paths are not held.
	weComTicket(t, s, wxtest.PathWeComJSAPITicket, "", "")
	g.Release()
	select {
	case r := <-done:
		if r.Errcode != 0 || r.AccessToken == "" {
			t.Fatalf("released gettoken: %s", r.Raw)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the released gettoken")
	}
}

func TestWeComLatency(t *testing.T) {
	const d = 30 * time.Millisecond
	s := newServer(t, wxtest.Options{Latency: d})
	start := time.Now()
	weComToken(t, s, corpID, corpSecret)
	if el := time.Since(start); el < d {
		t.Fatalf("gettoken took %v, want at least the %v latency", el, d)
	}
	s.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := do(t, s, ctx, http.MethodGet, wxtest.PathWeComAPI, url.Values{"access_token": {"x"}}, "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
}
