package tokenserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	testAppID     = "wx0123456789abcdef"
	testAppSecret = "app-secret-0123456789abcdef"
	testSecret    = "bearer-secret-0123456789"
	bearer        = "Bearer " + testSecret
)

// fixture is a token server over a Conf on the memory store, in front of a
// simulated WeChat API.
type fixture struct {
	wechat *wxtest.Server
	conf   *core.Conf
	srv    *server
	url    string
	logs   *syncBuffer // the server's and the Conf's log

	mu   sync.Mutex
	hits map[string]int // requests that reached the token server, by "METHOD /path"
}

// newFixture starts the fixture; edit, if not nil, changes the master's
// Config before core.New.
func newFixture(t *testing.T, edit func(*core.Config)) *fixture {
	t.Helper()
	f := &fixture{logs: &syncBuffer{}, hits: map[string]int{}}
	f.wechat = wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now})
	t.Cleanup(f.wechat.Close)
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := core.Config{AppID: testAppID, AppSecret: core.NewSecret(testAppSecret), BaseURL: f.wechat.URL, Logger: logger}
	if edit != nil {
		edit(&cfg)
	}
	var err error
	if f.conf, err = core.New(cfg); err != nil {
		t.Fatal(err)
	}
	f.srv = newServer(f.conf, core.NewSecret(testSecret))
	f.srv.log = logger
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits[r.Method+" "+r.URL.Path]++
		f.mu.Unlock()
		f.srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	f.url = ts.URL
	return f
}

// hit returns how many "METHOD /path" requests reached the server.
func (f *fixture) hit(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[key]
}

// fetches returns how many access_token fetches reached WeChat.
func (f *fixture) fetches() int {
	return f.wechat.Calls(wxtest.PathStableToken) + f.wechat.Calls(wxtest.PathToken)
}

// reply is one response of the token server.
type reply struct {
	status int
	header http.Header
	body   string
}

// call makes one request with the given Authorization header ("" for
// none) and body ("" for none).
func (f *fixture) call(t *testing.T, method, path, auth, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, string(data)}
}

// token makes a request that must succeed and returns the token.
func (f *fixture) token(t *testing.T, method, path, body string) tokenReply {
	t.Helper()
	r := f.call(t, method, path, bearer, body)
	if r.status != http.StatusOK {
		t.Fatalf("%s %s %s: status %d, want 200: %s", method, path, body, r.status, r.body)
	}
	var tr tokenReply
	if err := json.Unmarshal([]byte(r.body), &tr); err != nil || tr.Value == "" {
		t.Fatalf("%s %s: body %s is not a token (%v)", method, path, r.body, err)
	}
	return tr
}

// workers returns n worker Confs, each on its own NewWorkerStore (as n
// processes would be), with no AppSecret.
func (f *fixture) workers(t *testing.T, n int) []*core.Conf {
	t.Helper()
	confs := make([]*core.Conf, n)
	for i := range confs {
		store, err := NewWorkerStore(f.url, core.NewSecret(testSecret), nil)
		if err != nil {
			t.Fatal(err)
		}
		if confs[i], err = core.New(core.Config{AppID: testAppID, Store: store, BaseURL: f.wechat.URL}); err != nil {
			t.Fatal(err)
		}
	}
	return confs
}

func stale(v string) string {
	b, _ := json.Marshal(refreshRequest{Stale: &v})
	return string(b)
}

// endpoints are every credential endpoint with a valid request body.
var endpoints = []struct{ method, path, body string }{
	{"GET", "/access_token", ""},
	{"POST", "/access_token/refresh", `{"stale":""}`},
	{"GET", "/jsapi_ticket", ""},
	{"POST", "/jsapi_ticket/refresh", `{"stale":""}`},
	{"GET", "/wx_card_ticket", ""},
	{"POST", "/wx_card_ticket/refresh", `{"stale":""}`},
}

// TestAuthRefused tests that every credential endpoint answers 401 with
// WWW-Authenticate: Bearer and no credential to a request without the
// secret or with a wrong one, and makes no WeChat call for it.
func TestAuthRefused(t *testing.T) {
	f := newFixture(t, nil)
	var values []string
	for _, path := range []string{"/access_token", "/jsapi_ticket", "/wx_card_ticket"} {
		values = append(values, f.token(t, "GET", path, "").Value)
	}
	fetches, tickets := f.fetches(), f.wechat.Calls(wxtest.PathTicket)

	bad := map[string]string{
		"no header":         "",
		"wrong secret":      "Bearer wrong-secret-0123456789",
		"secret plus a bit": bearer + "x",
		"secret prefix":     bearer[:len(bearer)-1],
		"no scheme":         testSecret,
		"basic scheme":      "Basic " + testSecret,
		"empty bearer":      "Bearer ",
	}
	for name, auth := range bad {
		for _, e := range append(endpoints, struct{ method, path, body string }{"GET", "/nope", ""}) {
			r := f.call(t, e.method, e.path, auth, e.body)
			if r.status != http.StatusUnauthorized {
				t.Errorf("%s: %s %s: status %d, want 401", name, e.method, e.path, r.status)
			}
			if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("%s: %s %s: WWW-Authenticate %q, want Bearer …", name, e.method, e.path, got)
			}
			var er errorReply
			if json.Unmarshal([]byte(r.body), &er) != nil || er.Error == "" {
				t.Errorf("%s: %s %s: body %q is not {\"error\":…}", name, e.method, e.path, r.body)
			}
			for _, v := range values {
				if strings.Contains(r.body, v) {
					t.Errorf("%s: %s %s: the 401 body holds a credential", name, e.method, e.path)
				}
			}
		}
	}
	if got := f.fetches(); got != fetches {
		t.Errorf("refused requests made %d token fetches", got-fetches)
	}
	if got := f.wechat.Calls(wxtest.PathTicket); got != tickets {
		t.Errorf("refused requests made %d ticket fetches", got-tickets)
	}

	// The scheme is case-insensitive (RFC 7235).
	if r := f.call(t, "GET", "/access_token", "bearer "+testSecret, ""); r.status != http.StatusOK {
		t.Errorf(`GET /access_token with "bearer <secret>": status %d, want 200`, r.status)
	}
	// /healthz needs no secret and gives nothing away.
	if r := f.call(t, "GET", "/healthz", "", ""); r.status != http.StatusOK || strings.TrimSpace(r.body) != `{"status":"ok"}` {
		t.Errorf("GET /healthz: %d %s, want 200 {\"status\":\"ok\"}", r.status, r.body)
	}
}

// TestEmptySecretRefusesEverything tests that a server built with an empty
// secret does not let an empty bearer token in.
func TestEmptySecretRefusesEverything(t *testing.T) {
	f := newFixture(t, nil)
	f.srv = newServer(f.conf, core.Secret{})
	for _, auth := range []string{"", "Bearer ", "Bearer  ", "Bearer"} {
		if r := f.call(t, "GET", "/access_token", auth, ""); r.status != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d, want 401", auth, r.status)
		}
	}
	if n := f.fetches(); n != 0 {
		t.Errorf("%d token fetches, want 0", n)
	}
}

// TestGetCredentials tests the reply of the three GET endpoints: 200, JSON
// {"value","expires_at","expires_at_unix"} with agreeing times about 2 h
// ahead, Cache-Control: no-store, and a second GET served without a fetch.
func TestGetCredentials(t *testing.T) {
	f := newFixture(t, nil)
	for _, path := range []string{"/access_token", "/jsapi_ticket", "/wx_card_ticket"} {
		r := f.call(t, "GET", path, bearer, "")
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s", path, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", path, cc)
		}
		var tr tokenReply
		if err := json.Unmarshal([]byte(r.body), &tr); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		at, err := time.Parse(time.RFC3339, tr.ExpiresAt)
		switch {
		case err != nil:
			t.Errorf("GET %s: expires_at %q: %v", path, tr.ExpiresAt, err)
		case at.Unix() != tr.ExpiresAtUnix:
			t.Errorf("GET %s: expires_at %s and expires_at_unix %d disagree", path, tr.ExpiresAt, tr.ExpiresAtUnix)
		case time.Until(at) < 119*time.Minute || time.Until(at) > 121*time.Minute:
			t.Errorf("GET %s: expires in %v, want about 2h", path, time.Until(at))
		}
		if again := f.token(t, "GET", path, ""); again.Value != tr.Value {
			t.Errorf("GET %s twice: two values", path)
		}
	}
	if n := f.fetches(); n != 1 {
		t.Errorf("%d token fetches, want 1", n)
	}
	if n := f.wechat.Calls(wxtest.PathTicket); n != 2 {
		t.Errorf("%d ticket fetches, want 2 (one jsapi, one wx_card)", n)
	}
}

// TestRefreshAccessTokenCompareAndRefresh tests POST /access_token/refresh:
// with the current value (rejected by WeChat) it fetches a new token; with
// an older or unknown value, or "", it returns the current one without a
// fetch.
func TestRefreshAccessTokenCompareAndRefresh(t *testing.T) {
	f := newFixture(t, nil)
	tok1 := f.token(t, "GET", "/access_token", "").Value

	if got := f.token(t, "POST", "/access_token/refresh", stale("some-older-token")).Value; got != tok1 {
		t.Errorf("refresh(stale=older): got another token, want the current one")
	}
	if n := f.fetches(); n != 1 {
		t.Errorf("refresh(stale=older): %d fetches, want 1 (no new fetch)", n)
	}

	f.wechat.Revoke(tok1) // WeChat now answers 40001 for it
	tok2 := f.token(t, "POST", "/access_token/refresh", stale(tok1)).Value
	if tok2 == tok1 {
		t.Errorf("refresh(stale=current): got the stale token back")
	}
	if !f.wechat.TokenValid(tok2) {
		t.Errorf("refresh(stale=current): the new token is not valid at WeChat")
	}
	if n := f.fetches(); n != 2 {
		t.Errorf("refresh(stale=current): %d fetches, want 2", n)
	}

	for _, s := range []string{tok1, "", "some-older-token"} {
		if got := f.token(t, "POST", "/access_token/refresh", stale(s)).Value; got != tok2 {
			t.Errorf("refresh(stale=%.8q) after the refresh: not the new token", s)
		}
	}
	if got := f.token(t, "GET", "/access_token", "").Value; got != tok2 {
		t.Errorf("GET after the refresh: not the new token")
	}
	if n := f.fetches(); n != 2 {
		t.Errorf("after the refresh: %d fetches, want still 2", n)
	}
}

// TestTicketRefreshReturnsCurrent tests the documented ticket decision:
// POST /<ticket>/refresh answers with the current valid ticket whatever
// stale is, without a new ticket fetch.
func TestTicketRefreshReturnsCurrent(t *testing.T) {
	f := newFixture(t, nil)
	for i, name := range []string{"jsapi_ticket", "wx_card_ticket"} {
		cur := f.token(t, "GET", "/"+name, "").Value
		for _, s := range []string{cur, "", "some-older-ticket"} {
			if got := f.token(t, "POST", "/"+name+"/refresh", stale(s)).Value; got != cur {
				t.Errorf("POST /%s/refresh (stale=%.8q): not the current ticket", name, s)
			}
		}
		if n := f.wechat.Calls(wxtest.PathTicket); n != i+1 {
			t.Errorf("after /%s: %d ticket fetches, want %d", name, n, i+1)
		}
	}
}

// TestHerdOfWorkersOneFetch tests that 8 worker Confs × 50 goroutines asking
// a cold token server at once, with WeChat answering in 50 ms, cause one
// token fetch, and that every caller gets the same token.
func TestHerdOfWorkersOneFetch(t *testing.T) {
	const nWorkers, callers = 8, 50
	f := newFixture(t, nil)
	f.wechat.SetLatency(50 * time.Millisecond)
	confs := f.workers(t, nWorkers)

	values := make([]string, nWorkers*callers)
	errs := make([]error, len(values))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range values {
		wg.Go(func() {
			<-start
			tok, err := confs[i%nWorkers].AccessToken(t.Context())
			values[i], errs[i] = tok.Value, err
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)

	if err := errors.Join(errs...); err != nil {
		t.Fatalf("AccessToken: %v", err)
	}
	master := f.token(t, "GET", "/access_token", "").Value
	for i, v := range values {
		if v != master {
			t.Fatalf("caller %d (worker %d) got another token than the server's", i, i%nWorkers)
		}
	}
	if n := f.fetches(); n != 1 {
		t.Errorf("%d callers in %d workers: %d token fetches, want 1", len(values), nWorkers, n)
	}
	gets, posts := f.hit("GET /access_token")-1, f.hit("POST /access_token/refresh")
	if gets > nWorkers || posts != 0 {
		t.Errorf("token server saw %d GETs and %d refresh POSTs, want at most %d GETs (one per worker) and no POST", gets, posts, nWorkers)
	}
	t.Logf("%d callers in %d workers: %d token fetch, %d GETs, %d refresh POSTs, %v", len(values), nWorkers, f.fetches(), gets, posts, elapsed.Round(time.Millisecond))
}

// TestRevokedTokenOneFetchForManyWorkers tests that when WeChat rejects the
// token every worker holds, 8 workers × 50 goroutines calling the API
// through Conf.Do (which compare-and-refreshes on 40001 through the server)
// all succeed, with exactly one new fetch.
func TestRevokedTokenOneFetchForManyWorkers(t *testing.T) {
	const nWorkers, callers = 8, 50
	f := newFixture(t, nil)
	confs := f.workers(t, nWorkers)
	var old string
	for _, c := range confs {
		tok, err := c.AccessToken(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		old = tok.Value
	}
	f.wechat.Revoke(old)
	f.wechat.SetLatency(50 * time.Millisecond)

	errs := make([]error, nWorkers*callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			<-start
			var out struct {
				IPList []string `json:"ip_list"`
			}
			errs[i] = confs[i%nWorkers].Do(t.Context(), http.MethodGet, wxtest.PathAPI, nil, nil, &out)
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)

	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Do after the revocation: %v", err)
	}
	if n := f.fetches(); n != 2 {
		t.Errorf("%d callers in %d workers saw one token rejected: %d token fetches in all, want 2 (the first and one refresh)", len(errs), nWorkers, n)
	}
	master := f.token(t, "GET", "/access_token", "").Value
	if master == old {
		t.Fatal("the server still holds the revoked token")
	}
	for i, c := range confs {
		if tok, err := c.AccessToken(t.Context()); err != nil || tok.Value != master {
			t.Errorf("worker %d: AccessToken = %.8q, %v; want the server's new token", i, tok.Value, err)
		}
	}
	posts := f.hit("POST /access_token/refresh")
	if posts < 1 || posts > nWorkers {
		t.Errorf("%d refresh POSTs, want 1 to %d (at most one per worker)", posts, nWorkers)
	}
	t.Logf("revoked under %d callers in %d workers: %d token fetches in all, %d refresh POSTs, %v", len(errs), nWorkers, f.fetches(), posts, elapsed.Round(time.Millisecond))
}

// TestWorkerTickets tests that a worker with no AppSecret gets the server's
// tickets, and that a worker store maps only the three credential keys.
func TestWorkerTickets(t *testing.T) {
	f := newFixture(t, nil)
	w := f.workers(t, 1)[0]
	for _, c := range []struct {
		path string
		get  func(context.Context) (core.Token, error)
	}{{"/jsapi_ticket", w.JSAPITicket}, {"/wx_card_ticket", w.CardTicket}} {
		tok, err := c.get(t.Context())
		if err != nil {
			t.Fatalf("worker %s: %v", c.path, err)
		}
		if want := f.token(t, "GET", c.path, "").Value; tok.Value != want {
			t.Errorf("worker %s: not the server's ticket", c.path)
		}
	}
	if n := f.wechat.Calls(wxtest.PathTicket); n != 2 {
		t.Errorf("%d ticket fetches, want 2", n)
	}

	store, err := NewWorkerStore(f.url, core.NewSecret(testSecret), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(t.Context(), "wechatconf/"+testAppID+"/something_else"); err == nil {
		t.Error("Get of an unknown key: no error")
	}
}

// TestWorkerStoreErrors tests NewWorkerStore's argument checks, and that a
// worker with a wrong secret fails with the 401 and without the secret.
func TestWorkerStoreErrors(t *testing.T) {
	for _, c := range []struct{ url, secret string }{
		{"", testSecret}, {"ftp://host", testSecret}, {"http://", testSecret}, {"http://host", ""}, {"::", testSecret},
	} {
		if _, err := NewWorkerStore(c.url, core.NewSecret(c.secret), nil); err == nil {
			t.Errorf("NewWorkerStore(%q, %q): no error", c.url, c.secret)
		}
	}

	f := newFixture(t, nil)
	const wrong = "wrong-secret-0123456789"
	store, err := NewWorkerStore(f.url+"/", core.NewSecret(wrong), nil)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := core.New(core.Config{AppID: testAppID, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	_, err = conf.AccessToken(t.Context())
	switch {
	case err == nil:
		t.Fatal("AccessToken with a wrong secret: no error")
	case !strings.Contains(err.Error(), "401"):
		t.Errorf("AccessToken with a wrong secret: %v, want it to name the 401", err)
	case strings.Contains(err.Error(), wrong):
		t.Errorf("the error holds the bearer secret: %v", err)
	}
	if n := f.fetches(); n != 0 {
		t.Errorf("%d token fetches, want 0", n)
	}
}

// TestMethodAndBodyErrors tests the 4xx answers: 405 with Allow for a wrong
// method, 400 for a body that is not one {"stale":"…"} object, 413 for a
// body over 4 KiB, 404 for an unknown path; each a JSON {"error"} and none
// reaching WeChat.
func TestMethodAndBodyErrors(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct {
		method, path, body string
		status             int
		allow              string
	}{
		{"POST", "/access_token", `{"stale":""}`, 405, "GET"},
		{"PUT", "/jsapi_ticket", "", 405, "GET"},
		{"DELETE", "/wx_card_ticket", "", 405, "GET"},
		{"GET", "/access_token/refresh", "", 405, "POST"},
		{"GET", "/jsapi_ticket/refresh", "", 405, "POST"},
		{"PATCH", "/wx_card_ticket/refresh", `{"stale":""}`, 405, "POST"},
		{"POST", "/healthz", "", 405, "GET"},
		{"POST", "/access_token/refresh", "", 400, ""},
		{"POST", "/access_token/refresh", "stale=abc", 400, ""},
		{"POST", "/access_token/refresh", `{}`, 400, ""},
		{"POST", "/access_token/refresh", `{"stale":null}`, 400, ""},
		{"POST", "/access_token/refresh", `{"stale":42}`, 400, ""},
		{"POST", "/access_token/refresh", `["abc"]`, 400, ""},
		{"POST", "/access_token/refresh", `{"stale":"abc","force":true}`, 400, ""},
		{"POST", "/access_token/refresh", `{"stale":"abc"}{"stale":"def"}`, 400, ""},
		{"POST", "/access_token/refresh", `{"stale":"abc"`, 400, ""},
		{"POST", "/jsapi_ticket/refresh", `{"stal":"abc"}`, 400, ""},
		{"POST", "/access_token/refresh", `{"stale":"` + strings.Repeat("a", maxBody) + `"}`, 413, ""},
		{"GET", "/", "", 404, ""},
		{"GET", "/access_token/", "", 404, ""},
		{"GET", "/cgi-bin/token", "", 404, ""},
		{"POST", "/refresh", `{"stale":""}`, 404, ""},
	} {
		r := f.call(t, c.method, c.path, bearer, c.body)
		name := c.method + " " + c.path + " " + c.body
		if len(name) > 80 {
			name = name[:80] + "…"
		}
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d (%s)", name, r.status, c.status, r.body)
		}
		if got := r.header.Get("Allow"); got != c.allow {
			t.Errorf("%s: Allow %q, want %q", name, got, c.allow)
		}
		var er errorReply
		if json.Unmarshal([]byte(r.body), &er) != nil || er.Error == "" {
			t.Errorf("%s: body %q is not {\"error\":…}", name, r.body)
		}
	}
	if n := f.fetches() + f.wechat.Calls(wxtest.PathTicket); n != 0 {
		t.Errorf("%d WeChat fetches for refused requests, want 0", n)
	}
}

// TestWeChatErrors tests that a WeChat refusal (a wrong AppSecret, on both
// token APIs) is a 502 whose message says why and holds no secret, and that
// a WeChat that does not answer within the server's timeout is a 504 while
// the refresh goes on for the next request.
func TestWeChatErrors(t *testing.T) {
	const wrongAppSecret = "wrong-app-secret-9876543210"
	for _, api := range []core.TokenAPI{core.StableToken, core.ClassicToken} {
		t.Run(api.String(), func(t *testing.T) {
			f := newFixture(t, func(c *core.Config) { c.AppSecret, c.TokenAPI = core.NewSecret(wrongAppSecret), api })
			for _, e := range endpoints {
				r := f.call(t, e.method, e.path, bearer, e.body)
				if r.status != http.StatusBadGateway {
					t.Errorf("%s %s: status %d, want 502", e.method, e.path, r.status)
				}
				var er errorReply
				if json.Unmarshal([]byte(r.body), &er) != nil || !strings.Contains(er.Error, "40125") {
					t.Errorf("%s %s: body %s, want an error naming errcode 40125", e.method, e.path, r.body)
				}
				if strings.Contains(r.body, wrongAppSecret) {
					t.Errorf("%s %s: the reply holds the AppSecret: %s", e.method, e.path, r.body)
				}
			}
			if strings.Contains(f.logs.String(), wrongAppSecret) {
				t.Errorf("the log holds the AppSecret:\n%s", f.logs)
			}
		})
	}

	t.Run("timeout", func(t *testing.T) {
		f := newFixture(t, nil)
		f.srv.timeout = 100 * time.Millisecond
		gate := f.wechat.Block(wxtest.PathStableToken)
		t.Cleanup(gate.Release)
		r := f.call(t, "GET", "/access_token", bearer, "")
		if r.status != http.StatusGatewayTimeout {
			t.Errorf("GET /access_token with WeChat silent: status %d, want 504 (%s)", r.status, r.body)
		}
		gate.Release()
		f.token(t, "GET", "/access_token", "")
		if n := f.fetches(); n != 1 {
			t.Errorf("%d token fetches, want 1 (the request after the 504 joins the refresh)", n)
		}
	})
}

// TestSecretsNeverInRepliesOrLogs tests that neither the bearer secret nor
// the AppSecret appears in any reply (body or header), good or bad, and
// that the log holds no credential at all.
func TestSecretsNeverInRepliesOrLogs(t *testing.T) {
	f := newFixture(t, nil)
	var values []string
	var seen strings.Builder
	record := func(r reply) {
		seen.WriteString(r.body)
		for k, vs := range r.header {
			seen.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
	}
	for _, e := range endpoints {
		r := f.call(t, e.method, e.path, bearer, e.body)
		record(r)
		var tr tokenReply
		if json.Unmarshal([]byte(r.body), &tr) == nil && tr.Value != "" {
			values = append(values, tr.Value)
		}
		for _, auth := range []string{"", "Bearer nope-nope-nope-nope", testSecret} {
			record(f.call(t, e.method, e.path, auth, e.body))
		}
		record(f.call(t, "PUT", e.path, bearer, e.body))
		record(f.call(t, "POST", e.path+"/refresh", bearer, `{"stale":`))
	}
	f.wechat.Revoke(values[0])
	r := f.call(t, "POST", "/access_token/refresh", bearer, stale(values[0]))
	record(r)
	var tr tokenReply
	if json.Unmarshal([]byte(r.body), &tr) == nil && tr.Value != "" {
		values = append(values, tr.Value)
	}
	if len(values) != 7 {
		t.Fatalf("got %d credentials, want 7", len(values))
	}

	for name, s := range map[string]string{"bearer secret": testSecret, "AppSecret": testAppSecret} {
		if strings.Contains(seen.String(), s) {
			t.Errorf("a reply holds the %s", name)
		}
		if strings.Contains(f.logs.String(), s) {
			t.Errorf("the log holds the %s", name)
		}
	}
	for _, v := range values {
		if strings.Contains(f.logs.String(), v) {
			t.Errorf("the log holds a credential (%.8s…)", v)
		}
	}
	if !strings.Contains(f.logs.String(), "path=/access_token/refresh") {
		t.Errorf("the log has no request lines:\n%s", f.logs)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use, for logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
