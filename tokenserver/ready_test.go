package tokenserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// errStoreDown is what a downStore returns while it fails.
var errStoreDown = errors.New("downstore: connection refused")

// downStore is a memory store whose every call fails while failing is set:
// a store that refuses connections.
type downStore struct {
	core.TokenStore
	failing atomic.Bool
}

func (s *downStore) Get(ctx context.Context, key string) (core.Token, error) {
	if s.failing.Load() {
		return core.Token{}, errStoreDown
	}
	return s.TokenStore.Get(ctx, key)
}

func (s *downStore) Set(ctx context.Context, key string, t core.Token) error {
	if s.failing.Load() {
		return errStoreDown
	}
	return s.TokenStore.Set(ctx, key, t)
}

func (s *downStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if s.failing.Load() {
		return core.Token{}, errStoreDown
	}
	return s.TokenStore.Refresh(ctx, key, stale, fetch)
}

// readyFixture is a token server over a Conf on a downStore, in front of a
// simulated WeChat API whose manual clock is the Conf's clock.
type readyFixture struct {
	*fixture
	store *downStore
}

func newReadyFixture(t *testing.T, edit func(*core.Config)) *readyFixture {
	t.Helper()
	f := &readyFixture{fixture: &fixture{logs: &syncBuffer{}, hits: map[string]int{}}, store: &downStore{TokenStore: core.NewMemoryStore()}}
	f.wechat = wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret})
	t.Cleanup(f.wechat.Close)
	cfg := core.Config{
		AppID: testAppID, AppSecret: core.NewSecret(testAppSecret), BaseURL: f.wechat.URL, HTTPClient: f.wechat.Client(),
		Store: f.store, Now: f.wechat.Now, RetryBackoff: time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	var err error
	if f.conf, err = core.New(cfg); err != nil {
		t.Fatal(err)
	}
	f.srv = newServer(f.conf, core.NewSecret(testSecret))
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	f.url = ts.URL
	return f
}

// readyz asks GET /readyz (with the bearer secret if auth) and checks the
// status and the reply's shape: want is "" for ready, else the reason.
func (f *readyFixture) readyz(t *testing.T, auth bool, want core.ReadyReason) readyOfCred {
	t.Helper()
	h := ""
	if auth {
		h = bearer
	}
	r := f.call(t, "GET", "/readyz", h, "")
	var rep readyReply
	if err := json.Unmarshal([]byte(r.body), &rep); err != nil || len(rep.Credentials) != 1 || rep.Credentials[0].Credential != "access_token" {
		t.Fatalf("GET /readyz: body %s, want one credential, access_token (%v)", r.body, err)
	}
	c := rep.Credentials[0]
	wantStatus, wantWord := http.StatusOK, "ready"
	if want != "" {
		wantStatus, wantWord = http.StatusServiceUnavailable, "not_ready"
	}
	if r.status != wantStatus || rep.Status != wantWord || c.Ready != (want == "") || c.Reason != want {
		t.Errorf("GET /readyz: %d %s, want %d with status %q, reason %q", r.status, r.body, wantStatus, wantWord, want)
	}
	if !auth && c.Error != "" {
		t.Errorf("GET /readyz without the secret: the error's text %q is shown", c.Error)
	}
	if auth && want != "" && c.Error == "" {
		t.Errorf("GET /readyz with the secret: no error text in %s", r.body)
	}
	if strings.Contains(r.body, testAppSecret) || strings.Contains(r.body, testSecret) {
		t.Errorf("GET /readyz: the reply holds a secret: %s", r.body)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("GET /readyz: Cache-Control %q, want no-store", got)
	}
	return c
}

// TestReadyzAfterFirstFetch tests that a fresh server is not ready while
// its first fetch has not answered (no_token), that the fetch goes on, and
// that it is ready once it has: one fetch in all, none for later probes,
// and /healthz unchanged.
func TestReadyzAfterFirstFetch(t *testing.T) {
	f := newReadyFixture(t, nil)
	f.srv.timeout = 100 * time.Millisecond
	gate := f.wechat.Block(wxtest.PathStableToken)
	t.Cleanup(gate.Release)
	f.readyz(t, true, core.ReasonNoToken)
	gate.Release()
	f.srv.timeout = DefaultTimeout
	c := f.readyz(t, false, "")
	if c.ExpiresInSeconds <= 0 {
		t.Errorf("ready: expires_in_seconds %d, want the held token's", c.ExpiresInSeconds)
	}
	f.readyz(t, true, "")
	if n := f.fetches(); n != 1 {
		t.Errorf("%d token fetches, want 1", n)
	}
	if r := f.call(t, "GET", "/healthz", "", ""); r.status != http.StatusOK || strings.TrimSpace(r.body) != `{"status":"ok"}` {
		t.Errorf("GET /healthz: %d %s", r.status, r.body)
	}
	if r := f.call(t, "POST", "/readyz", "", ""); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET" {
		t.Errorf("POST /readyz: %d, Allow %q; want 405, GET", r.status, r.header.Get("Allow"))
	}
}

// TestReadyzStoreDown tests a classic-token server whose store is down: ready
// while its token outlives the horizon, 503 store_unavailable with the time
// left once it ends within it — while GET /access_token still serves it
// and /healthz stays 200 — and ready again once the store answers.
func TestReadyzStoreDown(t *testing.T) {
	f := newReadyFixture(t, func(c *core.Config) { c.TokenAPI = core.ClassicToken })
	f.readyz(t, false, "")
	held := f.token(t, "GET", "/access_token", "")
	f.store.failing.Store(true)
	f.wechat.Advance(time.Unix(held.ExpiresAtUnix, 0).Sub(f.wechat.Now()) - 3*time.Minute)
	f.readyz(t, false, "")

	f.wechat.Advance(90 * time.Second)
	c := f.readyz(t, true, core.ReasonStoreUnavailable)
	if c.ExpiresInSeconds != 90 || c.HorizonSeconds != 120 || !strings.Contains(c.Error, errStoreDown.Error()) {
		t.Errorf("store down: %+v, want 90 s left, horizon 120 s, the store's error", c)
	}
	f.readyz(t, false, core.ReasonStoreUnavailable)
	if tok := f.token(t, "GET", "/access_token", ""); tok.Value != held.Value {
		t.Error("GET /access_token while not ready: not the held token")
	}
	if r := f.call(t, "GET", "/healthz", "", ""); r.status != http.StatusOK {
		t.Errorf("GET /healthz with the store down: %d, want 200 (liveness)", r.status)
	}
	if n := f.fetches(); n != 1 {
		t.Errorf("%d token fetches with the store down, want 1 (no classic call without the lock)", n)
	}

	f.store.failing.Store(false)
	f.wechat.Advance(20 * time.Second)
	f.readyz(t, false, "")
	if n := f.fetches(); n != 2 {
		t.Errorf("%d token fetches, want 2", n)
	}
}

// TestReadyzConfigurationError tests that a wrong AppSecret, on both token
// APIs, is 503 configuration, whose text (to a caller with the secret)
// names 40125 and holds no AppSecret.
func TestReadyzConfigurationError(t *testing.T) {
	const wrong = "wrong-app-secret-9876543210"
	for _, api := range []core.TokenAPI{core.StableToken, core.ClassicToken} {
		t.Run(api.String(), func(t *testing.T) {
			f := newReadyFixture(t, func(c *core.Config) { c.AppSecret, c.TokenAPI = core.NewSecret(wrong), api })
			c := f.readyz(t, true, core.ReasonConfiguration)
			if !strings.Contains(c.Error, "40125") || strings.Contains(c.Error, wrong) {
				t.Errorf("wrong AppSecret: error %q, want 40125 named and no AppSecret", c.Error)
			}
			f.readyz(t, false, core.ReasonConfiguration)
			if n := f.fetches(); n != 1 {
				t.Errorf("%d token fetches, want 1 (then ErrorBackoff)", n)
			}
		})
	}
}

// TestReadyzLimited tests that a quota error (45009) and the back-off it
// starts are 503 limited, with no fetch during the back-off, and ready
// once it ends.
func TestReadyzLimited(t *testing.T) {
	f := newReadyFixture(t, nil)
	f.wechat.InjectFault(wxtest.PathStableToken, wxtest.Errcode(45009, "reach max api daily quota limit"), 1)
	f.readyz(t, true, core.ReasonLimited)
	c := f.readyz(t, true, core.ReasonLimited)
	if !strings.Contains(c.Error, "ErrorBackoff") {
		t.Errorf("during the back-off: error %q, want it to name the ErrorBackoff limit", c.Error)
	}
	if n := f.fetches(); n != 1 {
		t.Errorf("%d token fetches, want 1", n)
	}
	f.wechat.Advance(core.DefaultErrorBackoff)
	f.readyz(t, false, "")
}
