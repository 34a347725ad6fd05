package core_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	appID     = "wx0123456789abcdef"
	appSecret = "0123456789abcdef0123456789abcdef" // never to be seen in an error or a log
)

func newServer(t testing.TB) *wxtest.Server {
	t.Helper()
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret})
	t.Cleanup(s.Close)
	return s
}

// newConf builds a Conf against s; edit adjusts the Config.
func newConf(t testing.TB, s *wxtest.Server, edit func(*core.Config)) *core.Conf {
	t.Helper()
	cfg := core.Config{
		AppID: appID, AppSecret: core.NewSecret(appSecret),
		BaseURL: s.URL, HTTPClient: s.Client(), Now: s.Now,
		RetryBackoff: time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// same reports whether two tokens are the same credential with the same expiry.
func same(a, b core.Token) bool { return a.Value == b.Value && a.ExpiresAt.Equal(b.ExpiresAt) }

func classic(c *core.Config) { c.TokenAPI = core.ClassicToken }

// tokenCalls counts both token endpoints.
func tokenCalls(s *wxtest.Server) int {
	return s.Calls(wxtest.PathToken) + s.Calls(wxtest.PathStableToken)
}

func TestAccessTokenFetchesOnceThenServesFromMemory(t *testing.T) {
	for _, api := range []core.TokenAPI{core.StableToken, core.ClassicToken} {
		t.Run(api.String(), func(t *testing.T) {
			s := newServer(t)
			c := newConf(t, s, func(c *core.Config) { c.TokenAPI = api })
			ctx := t.Context()
			tok, err := c.AccessToken(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !s.TokenValid(tok.Value) {
				t.Errorf("AccessToken returned %q, which the server does not accept", tok.Value)
			}
			if want := s.Now().Add(7200 * time.Second); !tok.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v, want %v (fetch time + expires_in)", tok.ExpiresAt, want)
			}
			for range 10 {
				again, err := c.AccessToken(ctx)
				if err != nil || !same(again, tok) {
					t.Fatalf("second AccessToken = %v, %v; want the same token", again, err)
				}
			}
			if n := tokenCalls(s); n != 1 {
				t.Errorf("%d token fetches, want 1", n)
			}
		})
	}
}

func TestHerdOnColdConfFetchesOnce(t *testing.T) {
	s := newServer(t)
	s.SetLatency(50 * time.Millisecond)
	c := newConf(t, s, nil)
	tokens := herd(t, 1000, func(context.Context) (*core.Conf, error) { return c, nil })
	if n := tokenCalls(s); n != 1 {
		t.Fatalf("1000 goroutines on a cold Conf made %d token fetches, want 1", n)
	}
	if len(tokens) != 1 {
		t.Fatalf("callers got %d distinct tokens, want 1", len(tokens))
	}
}

func TestHerdOfConfsSharingAStoreFetchesOnce(t *testing.T) {
	for _, api := range []core.TokenAPI{core.StableToken, core.ClassicToken} {
		t.Run(api.String(), func(t *testing.T) {
			s := newServer(t)
			s.SetLatency(50 * time.Millisecond)
			store := core.NewMemoryStore()
			confs := make([]*core.Conf, 8) // 8 "processes" sharing one store
			for i := range confs {
				confs[i] = newConf(t, s, func(c *core.Config) { c.Store = store; c.TokenAPI = api })
			}
			var i int
			var mu sync.Mutex
			tokens := herd(t, 8*200, func(context.Context) (*core.Conf, error) {
				mu.Lock()
				defer mu.Unlock()
				i++
				return confs[i%len(confs)], nil
			})
			if n := tokenCalls(s); n != 1 {
				t.Fatalf("8 Confs × 200 goroutines made %d token fetches, want 1", n)
			}
			if len(tokens) != 1 {
				t.Fatalf("callers got %d distinct tokens, want 1", len(tokens))
			}
		})
	}
}

// herd runs n goroutines released together, each calling AccessToken on
// the Conf pick gives it, and returns the set of tokens they got.
func herd(t *testing.T, n int, pick func(context.Context) (*core.Conf, error)) map[string]bool {
	t.Helper()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	tokens := map[string]bool{}
	for range n {
		c, _ := pick(t.Context())
		wg.Go(func() {
			<-start
			tok, err := c.AccessToken(t.Context())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			tokens[tok.Value] = true
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return tokens
}

func TestInitialValues(t *testing.T) {
	ctx := t.Context()
	t.Run("written to an empty store and served without a fetch", func(t *testing.T) {
		s := newServer(t)
		store := core.NewMemoryStore()
		init := core.Token{Value: "persisted-token", ExpiresAt: s.Now().Add(time.Hour)}
		c := newConf(t, s, func(c *core.Config) { c.Store = store; c.AccessToken = init })
		tok, err := c.AccessToken(ctx)
		if err != nil || !same(tok, init) {
			t.Fatalf("AccessToken = %v, %v; want the initial value %v", tok, err, init)
		}
		if stored, err := store.Get(ctx, "wechatconf/"+appID+"/access_token"); err != nil || !same(stored, init) {
			t.Errorf("store holds %v, %v; want the initial value", stored, err)
		}
		if n := tokenCalls(s); n != 0 {
			t.Errorf("%d token fetches, want 0", n)
		}
	})
	t.Run("a newer stored token wins", func(t *testing.T) {
		s := newServer(t)
		store := core.NewMemoryStore()
		newer := core.Token{Value: "newer", ExpiresAt: s.Now().Add(2 * time.Hour)}
		if err := store.Set(ctx, "wechatconf/"+appID+"/access_token", newer); err != nil {
			t.Fatal(err)
		}
		c := newConf(t, s, func(c *core.Config) {
			c.Store = store
			c.AccessToken = core.Token{Value: "older", ExpiresAt: s.Now().Add(time.Hour)}
		})
		if tok, err := c.AccessToken(ctx); err != nil || !same(tok, newer) {
			t.Fatalf("AccessToken = %v, %v; want the newer stored token", tok, err)
		}
	})
	t.Run("an expired initial value is replaced", func(t *testing.T) {
		s := newServer(t)
		c := newConf(t, s, func(c *core.Config) {
			c.AccessToken = core.Token{Value: "expired", ExpiresAt: s.Now().Add(-time.Minute)}
		})
		tok, err := c.AccessToken(ctx)
		if err != nil || tok.Value == "expired" || !s.TokenValid(tok.Value) {
			t.Fatalf("AccessToken = %v, %v; want a fresh token", tok, err)
		}
	})
	t.Run("tickets too", func(t *testing.T) {
		s := newServer(t)
		ticket := core.Token{Value: "persisted-ticket", ExpiresAt: s.Now().Add(time.Hour)}
		c := newConf(t, s, func(c *core.Config) { c.JSAPITicket = ticket })
		if got, err := c.JSAPITicket(ctx); err != nil || !same(got, ticket) {
			t.Fatalf("JSAPITicket = %v, %v; want the initial value", got, err)
		}
		if n := s.Calls(wxtest.PathTicket); n != 0 {
			t.Errorf("%d ticket fetches, want 0", n)
		}
	})
}

func TestExpiredStoredTokenIsReplaced(t *testing.T) {
	s := newServer(t)
	store := core.NewMemoryStore()
	ctx := t.Context()
	key := "wechatconf/" + appID + "/access_token"
	// Within ExpiryMargin of its expiry: too old to serve.
	store.Set(ctx, key, core.Token{Value: "nearly-expired", ExpiresAt: s.Now().Add(30 * time.Second)})
	c := newConf(t, s, func(c *core.Config) { c.Store = store })
	tok, err := c.AccessToken(ctx)
	if err != nil || tok.Value == "nearly-expired" {
		t.Fatalf("AccessToken = %v, %v; want a fresh token", tok, err)
	}
	if stored, _ := store.Get(ctx, key); !same(stored, tok) {
		t.Errorf("store holds %v, want %v", stored, tok)
	}
}

func TestTokenExpiresAndIsRefetched(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, classic)
	ctx := t.Context()
	first, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(2 * time.Hour)
	second, err := c.AccessToken(ctx)
	if err != nil || second.Value == first.Value || !s.TokenValid(second.Value) {
		t.Fatalf("AccessToken after expiry = %v, %v; want a new valid token", second, err)
	}
	if n := tokenCalls(s); n != 2 {
		t.Errorf("%d token fetches, want 2", n)
	}
}

func TestRefreshAheadServesTheOldTokenMeanwhile(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, classic)
	ctx := t.Context()
	old, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gate := s.Block(wxtest.PathToken)
	s.Advance(7200*time.Second - 4*time.Minute) // inside the 5-minute refresh-ahead window
	for range 50 {
		tok, err := c.AccessToken(ctx)
		if err != nil || !same(tok, old) {
			t.Fatalf("AccessToken during the refresh = %v, %v; want the old token at once", tok, err)
		}
	}
	<-gate.Arrived() // the background refresh is at WeChat, held
	if tok, err := c.AccessToken(ctx); err != nil || !same(tok, old) {
		t.Fatalf("AccessToken while the fetch is held = %v, %v; want the old token", tok, err)
	}
	if n := s.Calls(wxtest.PathToken); n != 2 {
		t.Fatalf("%d token calls, want 2: one background refresh only", n)
	}
	gate.Release()
	// Joins the background flight (or finds its result): no further fetch.
	fresh, err := c.RefreshAccessToken(ctx, old.Value)
	if err != nil || fresh.Value == old.Value {
		t.Fatalf("RefreshAccessToken = %v, %v; want the new token", fresh, err)
	}
	if tok, _ := c.AccessToken(ctx); !same(tok, fresh) {
		t.Errorf("AccessToken = %v after the refresh, want %v", tok, fresh)
	}
	if n := s.Calls(wxtest.PathToken); n != 2 {
		t.Errorf("%d token calls, want 2", n)
	}
}

func TestRefreshAccessTokenComparesFirst(t *testing.T) {
	s := newServer(t)
	store := core.NewMemoryStore()
	a := newConf(t, s, func(c *core.Config) { c.Store = store; classic(c) })
	b := newConf(t, s, func(c *core.Config) { c.Store = store; classic(c) })
	ctx := t.Context()
	t1, err := a.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	t2, err := a.RefreshAccessToken(ctx, t1.Value)
	if err != nil || t2.Value == t1.Value {
		t.Fatalf("RefreshAccessToken(current) = %v, %v; want a new token", t2, err)
	}
	// b still holds t1 in memory and sees it rejected: the store already
	// holds t2, so no fetch.
	got, err := b.RefreshAccessToken(ctx, t1.Value)
	if err != nil || !same(got, t2) {
		t.Fatalf("b.RefreshAccessToken(t1) = %v, %v; want t2 without a fetch", got, err)
	}
	if n := s.Calls(wxtest.PathToken); n != 2 {
		t.Errorf("%d token fetches, want 2", n)
	}
}

func TestDoRefreshesASupersededTokenOnce(t *testing.T) {
	s := newServer(t)
	store := core.NewMemoryStore()
	c := newConf(t, s, func(c *core.Config) { c.Store = store; classic(c) })
	ctx := t.Context()
	t1, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Another tool fetches a classic token behind our back; after the
	// overlap our cached t1 answers 40001.
	other := newConf(t, s, classic)
	if _, err := other.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	s.Advance(6 * time.Minute)
	if s.TokenValid(t1.Value) {
		t.Fatal("precondition: t1 should be superseded")
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			var out struct {
				IPList []string `json:"ip_list"`
			}
			if err := c.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, &out); err != nil {
				t.Error(err)
			} else if len(out.IPList) == 0 {
				t.Error("Do decoded no ip_list")
			}
		})
	}
	wg.Wait()
	if n := s.Calls(wxtest.PathToken); n != 3 {
		t.Errorf("%d classic token fetches, want 3 (ours, the other tool's, one refresh)", n)
	}
	if tok, _ := c.AccessToken(ctx); !s.TokenValid(tok.Value) || same(tok, t1) {
		t.Errorf("after Do the Conf holds %v, want a valid new token", tok)
	}
}

func TestDoSendsJSONAndReturnsAPIErrors(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	ctx := t.Context()
	msg := map[string]any{"touser": "o1", "msgtype": "text", "text": map[string]string{"content": "你好 <b>&</b>"}}
	if err := c.Do(ctx, http.MethodPost, wxtest.PathSend, url.Values{"x": {"1"}}, msg, nil); err != nil {
		t.Fatal(err)
	}
	if body := string(s.LastBody(wxtest.PathSend)); !strings.Contains(body, `"content":"你好 <b>&</b>"`) {
		t.Errorf("sent body %s, want unescaped UTF-8 and HTML characters", body)
	}
	s.InjectFault(wxtest.PathSend, wxtest.Errcode(45015, "response out of time limit"), 1)
	err := c.Do(ctx, http.MethodPost, wxtest.PathSend, nil, []byte(`{}`), nil)
	var apiErr *core.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 45015 || apiErr.Path != wxtest.PathSend {
		t.Fatalf("Do = %v, want *APIError 45015 from %s", err, wxtest.PathSend)
	}
}

func TestTicketAfterTokenInvalidation(t *testing.T) {
	for _, kind := range []string{"jsapi", "wx_card"} {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t)
			c := newConf(t, s, nil)
			ctx := t.Context()
			get := c.JSAPITicket
			if kind == "wx_card" {
				get = c.CardTicket
			}
			t1, err := c.AccessToken(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s.Revoke(t1.Value)
			ticket, err := get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !s.TicketValid(ticket.Value) {
				t.Errorf("ticket %q not valid on the server", ticket.Value)
			}
			if want := s.Now().Add(7200 * time.Second); !ticket.ExpiresAt.Equal(want) {
				t.Errorf("ticket ExpiresAt = %v, want %v", ticket.ExpiresAt, want)
			}
			if n := s.Calls(wxtest.PathTicket); n != 2 {
				t.Errorf("%d ticket calls, want 2 (rejected, then retried)", n)
			}
			if n := tokenCalls(s); n != 2 {
				t.Errorf("%d token fetches, want 2", n)
			}
			if tok, _ := c.AccessToken(ctx); same(tok, t1) || !s.TokenValid(tok.Value) {
				t.Errorf("access token after the ticket refresh = %v, want a valid new one", tok)
			}
		})
	}
}

func TestWaiterContextCancelled(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	gate := s.Block(wxtest.PathStableToken)
	defer gate.Release()
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { _, err := c.AccessToken(ctx); first <- err }()
	<-gate.Arrived()
	second := make(chan core.Token, 1)
	go func() {
		tok, err := c.AccessToken(t.Context())
		if err != nil {
			t.Error(err)
		}
		second <- tok
	}()
	cancel()
	select {
	case err := <-first:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled caller did not return")
	}
	gate.Release()
	if tok := <-second; !s.TokenValid(tok.Value) {
		t.Fatalf("the other caller got %v; one caller giving up must not fail the refresh", tok)
	}
	if n := tokenCalls(s); n != 1 {
		t.Errorf("%d token fetches, want 1", n)
	}
}

func TestMalformedReplies(t *testing.T) {
	tests := []struct {
		name     string
		fault    wxtest.Fault
		times    int
		calls    int  // requests expected
		backsOff bool // a reply of HTTP 200: no call for ErrorBackoff
	}{
		{"not JSON", wxtest.MalformedJSON(), 1, 1, true},
		{"no token no errcode", wxtest.EmptyReply(), 1, 1, true},
		{"HTTP 500 past the retries", wxtest.HTTPStatus(500), 4, 4, false},
		{"HTTP 404", wxtest.HTTPStatus(404), 1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			c := newConf(t, s, nil)
			s.InjectFault(wxtest.PathStableToken, tt.fault, tt.times)
			tok, err := c.AccessToken(t.Context())
			var re *core.ReplyError
			if !errors.As(err, &re) {
				t.Fatalf("AccessToken = %v, %v; want a *core.ReplyError", tok, err)
			}
			if tok.Value != "" {
				t.Errorf("AccessToken returned the value %q along with the error", tok.Value)
			}
			if n := s.Calls(wxtest.PathStableToken); n != tt.calls {
				t.Errorf("%d calls, want %d", n, tt.calls)
			}
			// Nothing was stored: the next call fetches and succeeds, after
			// ErrorBackoff for a reply of HTTP 200 that is not a token.
			if tt.backsOff {
				var le *core.LimitError
				if _, err := c.AccessToken(t.Context()); !errors.As(err, &le) || !errors.As(err, &re) {
					t.Errorf("AccessToken inside ErrorBackoff = %v, want a *core.LimitError wrapping the *core.ReplyError", err)
				}
				if n := s.Calls(wxtest.PathStableToken); n != tt.calls {
					t.Errorf("%d calls inside ErrorBackoff, want still %d", n, tt.calls)
				}
				s.Advance(core.DefaultErrorBackoff)
			}
			if tok, err := c.AccessToken(t.Context()); err != nil || !s.TokenValid(tok.Value) {
				t.Errorf("AccessToken after the fault = %v, %v", tok, err)
			}
		})
	}
}

func TestRetriesAndConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		fault    wxtest.Fault
		times    int
		calls    int
		wantErr  func(error) bool
		wantText string
	}{
		{name: "busy is retried", fault: wxtest.Busy(), times: 2, calls: 3},
		{name: "minute quota is retried", fault: wxtest.Errcode(45011, "api minute-quota reach limit"), times: 1, calls: 2},
		{name: "HTTP 503 is retried", fault: wxtest.HTTPStatus(503), times: 1, calls: 2},
		{name: "busy past the retries", fault: wxtest.Busy(), times: 10, calls: 4, wantErr: core.IsTemporary},
		{name: "IP whitelist", fault: wxtest.Errcode(40164, "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist rid: 1"), times: 1, calls: 1,
			wantErr: core.IsConfigError, wantText: "IP 203.0.113.7 is not in the IP whitelist"},
		{name: "bad secret", fault: wxtest.Errcode(40125, "invalid appsecret rid: 1"), times: 1, calls: 1,
			wantErr: core.IsConfigError, wantText: "check Config.AppSecret"},
		{name: "bad appid", fault: wxtest.Errcode(40013, "invalid appid rid: 1"), times: 1, calls: 1,
			wantErr: core.IsConfigError, wantText: "check Config.AppID"},
		{name: "risky IP", fault: wxtest.Errcode(89503, "risky ip rid: 1"), times: 1, calls: 1, wantErr: core.IsConfigError, wantText: "administrator"},
		{name: "daily quota", fault: wxtest.Errcode(45009, "reach max api daily quota limit rid: 1"), times: 1, calls: 1,
			wantErr: core.IsQuotaExceeded, wantText: "not retried"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			c := newConf(t, s, nil)
			s.InjectFault(wxtest.PathStableToken, tt.fault, tt.times)
			tok, err := c.AccessToken(t.Context())
			if n := s.Calls(wxtest.PathStableToken); n != tt.calls {
				t.Errorf("%d calls, want %d", n, tt.calls)
			}
			if tt.wantErr == nil {
				if err != nil || !s.TokenValid(tok.Value) {
					t.Fatalf("AccessToken = %v, %v; want success after retries", tok, err)
				}
				return
			}
			if !tt.wantErr(err) {
				t.Fatalf("AccessToken error %v does not satisfy the predicate", err)
			}
			if !strings.Contains(fmtErr(err), tt.wantText) {
				t.Errorf("error %q does not say %q", err, tt.wantText)
			}
		})
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestRetryStopsAtContextDeadline(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, func(c *core.Config) { c.RetryBackoff = time.Hour; c.MaxRetries = 5 })
	s.InjectFault(wxtest.PathStableToken, wxtest.Busy(), 1)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.AccessToken(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AccessToken = %v, want DeadlineExceeded while backing off", err)
	}
}

func TestSecretNeverInErrorsOrLogs(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if strings.Contains(err.Error(), appSecret) {
			t.Errorf("%s: error text leaks the AppSecret: %v", what, err)
		}
		var ue *url.Error
		if errors.As(err, &ue) && strings.Contains(ue.URL, appSecret) {
			t.Errorf("%s: *url.Error.URL leaks the AppSecret: %s", what, ue.URL)
		}
	}

	// A refused connection: the classic call carries the secret in its URL.
	refused, err := core.New(core.Config{AppID: appID, AppSecret: core.NewSecret(appSecret), TokenAPI: core.ClassicToken,
		BaseURL: "http://127.0.0.1:1", RetryBackoff: time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	_, err = refused.AccessToken(t.Context())
	check("refused connection", err)
	var ue *url.Error
	if !errors.As(err, &ue) || !strings.Contains(ue.URL, "secret=REDACTED") {
		t.Errorf("refused connection: want a *url.Error with the secret redacted, got %v", err)
	}

	// An API error for a wrong secret, and a reply that echoes it.
	s := newServer(t)
	c := newConf(t, s, func(c *core.Config) { classic(c); c.AppSecret = core.NewSecret(appSecret + "x"); c.Logger = logger })
	_, err = c.AccessToken(t.Context())
	check("wrong secret", err)
	if !core.IsConfigError(err) {
		t.Errorf("wrong secret: %v is not a config error", err)
	}
	c = newConf(t, s, func(c *core.Config) { classic(c); c.Logger = logger })
	s.InjectFault(wxtest.PathToken, wxtest.Errcode(40125, "invalid appsecret "+appSecret), 1)
	_, err = c.AccessToken(t.Context())
	check("echoed secret", err)
	s.InjectFault(wxtest.PathToken, wxtest.Fault{Status: 502, Body: "bad gateway for secret=" + appSecret}, 10)
	_, err = c.AccessToken(t.Context())
	check("echoed secret in a body", err)

	mu.Lock()
	defer mu.Unlock()
	if logs.Len() == 0 {
		t.Error("nothing was logged; the log check is void")
	}
	if strings.Contains(logs.String(), appSecret) {
		t.Errorf("a log line leaks the AppSecret:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestCorruptStoreValueIsRepaired(t *testing.T) {
	s := newServer(t)
	mem := core.NewMemoryStore()
	corrupt := errors.New("corrupt value")
	broken := true
	var mu sync.Mutex
	store, err := core.NewFuncStore(core.StoreFuncs{
		Get: func(ctx context.Context, key string) (core.Token, error) {
			mu.Lock()
			defer mu.Unlock()
			if broken {
				return core.Token{}, corrupt
			}
			return mem.Get(ctx, key)
		},
		Refresh: func(ctx context.Context, key, stale string) (core.Token, error) {
			mu.Lock()
			broken = false // the store repairs the value on refresh
			mu.Unlock()
			return mem.Refresh(ctx, key, stale, func(ctx context.Context) (core.Token, error) {
				return core.Token{Value: "repaired", ExpiresAt: s.Now().Add(time.Hour)}, nil
			})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := newConf(t, s, func(c *core.Config) { c.Store = store })
	tok, err := c.AccessToken(t.Context())
	if err != nil || tok.Value != "repaired" {
		t.Fatalf("AccessToken over a corrupt value = %v, %v; want the repaired token", tok, err)
	}
}

func TestStoreKeys(t *testing.T) {
	s := newServer(t)
	store := core.NewMemoryStore()
	c := newConf(t, s, func(c *core.Config) { c.Store = store; c.KeyPrefix = "prod" })
	ctx := t.Context()
	for _, get := range []func(context.Context) (core.Token, error){c.AccessToken, c.JSAPITicket, c.CardTicket} {
		if _, err := get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"prod/" + appID + "/access_token", "prod/" + appID + "/jsapi_ticket", "prod/" + appID + "/wx_card_ticket"} {
		if _, err := store.Get(ctx, key); err != nil {
			t.Errorf("store.Get(%q): %v", key, err)
		}
	}
}
