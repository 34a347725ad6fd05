package wecom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecom"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	corpID  = "ww0123456789abcdef"
	secret1 = "wecom-secret-of-the-first-app-xyz"
	secret2 = "wecom-secret-of-the-second-app-xyz"
	agent1  = 1000002
	agent2  = 1000003
)

func newWeCom(t *testing.T) *wxtest.Server {
	t.Helper()
	s := wxtest.New(wxtest.Options{WeComApps: []wxtest.WeComApp{
		{CorpID: corpID, AgentID: agent1, Secret: secret1},
		{CorpID: corpID, AgentID: agent2, Secret: secret2},
	}})
	t.Cleanup(s.Close)
	return s
}

func newApp(t *testing.T, s *wxtest.Server, store core.TokenStore, agent int64, secret string, edit func(*wecom.Config)) *wecom.App {
	t.Helper()
	cfg := wecom.Config{
		CorpID: corpID, AgentID: agent, Secret: core.NewSecret(secret), Store: store,
		BaseURL: s.URL, Now: s.Now, RetryBackoff: time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	a, err := wecom.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// callAgent calls the simulated /cgi-bin/agent/get for the app's agent.
func callAgent(ctx context.Context, a *wecom.App) error {
	var out struct {
		AgentID int64 `json:"agentid"`
	}
	return a.Do(ctx, http.MethodGet, wxtest.PathWeComAPI, url.Values{"agentid": {fmt.Sprint(a.AgentID())}}, nil, &out)
}

func TestAppsOfOneCorpKeepTheirOwnTokens(t *testing.T) {
	s := newWeCom(t)
	store := core.NewMemoryStore()
	a1 := newApp(t, s, store, agent1, secret1, nil)
	a2 := newApp(t, s, store, agent2, secret2, nil)
	ctx := t.Context()
	t1, err := a1.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := a2.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if t1.Value == t2.Value {
		t.Fatal("two apps got the same token")
	}
	k1, j1, g1 := a1.Keys()
	k2, j2, g2 := a2.Keys()
	if want := "wechatconf/wecom/" + corpID + "/1000002/access_token"; k1 != want {
		t.Errorf("key %q, want %q", k1, want)
	}
	if k1 == k2 || g1 == g2 || j1 != j2 {
		t.Errorf("keys: tokens %q %q, agent tickets %q %q (want distinct), corp tickets %q %q (want shared)", k1, k2, g1, g2, j1, j2)
	}
	for _, k := range []string{k1, k2, j1, g1} {
		if strings.Contains(k, secret1) || strings.Contains(k, secret2) {
			t.Errorf("key %q holds a secret", k)
		}
	}
	for _, a := range []*wecom.App{a1, a2} {
		if err := callAgent(ctx, a); err != nil {
			t.Errorf("agent/get of %d: %v", a.AgentID(), err)
		}
	}
	if n := s.Calls(wxtest.PathWeComToken); n != 2 {
		t.Errorf("%d gettoken calls, want 2 (one per app)", n)
	}
	// A second App of the same app on the same store adopts the token.
	again := newApp(t, s, store, agent1, secret1, nil)
	if tok, err := again.AccessToken(ctx); err != nil || tok.Value != t1.Value {
		t.Errorf("second App of the same app: %v (same token %v)", err, tok.Value == t1.Value)
	}
	if n := s.Calls(wxtest.PathWeComToken); n != 2 {
		t.Errorf("%d gettoken calls after a second App, want 2", n)
	}
}

// noStall is a store lease, RefreshTimeout and HTTP timeout no run of a
// test can reach. The fleet's one gettoken holds while the lock holder's
// fetch ends within the store's lease: with the defaults (15 s each) a
// holder that a loaded machine stalls past its lease loses the lock and
// the next App fetches again (WeCom hands back the same token, so no
// caller fails), and a refresh that waits for the lock past RefreshTimeout
// counts the store as down and fetches without it. That is what the lease
// and the outage handling are for (tested on their own), not what this
// test is about.
const noStall = time.Hour

// WeCom ends a token early: the next call gets 40014, the app refreshes
// once and the call succeeds; a fleet of Apps on one store refreshes once.
func TestRevokedTokenIsRefreshedOncePerFleet(t *testing.T) {
	s := newWeCom(t)
	store := core.NewMemoryStore(core.WithLease(noStall))
	var apps []*wecom.App
	for range 8 {
		apps = append(apps, newApp(t, s, store, agent1, secret1, func(c *wecom.Config) {
			c.Policy.RefreshTimeout = noStall
			c.HTTPClient = s.Client()
		}))
	}
	ctx := t.Context()
	old, err := apps[0].AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		if err := callAgent(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	before := s.Calls(wxtest.PathWeComToken)
	s.Revoke(old.Value)
	var wg sync.WaitGroup
	errs := make(chan error, 8*50)
	for _, a := range apps {
		for range 50 {
			wg.Go(func() { errs <- callAgent(ctx, a) })
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Do after revocation: %v", err)
			break
		}
	}
	if n := s.Calls(wxtest.PathWeComToken) - before; n != 1 {
		t.Errorf("%d gettoken calls after the revocation, want 1 for the fleet", n)
	}
}

// WeCom's 40001 is a wrong secret, not a rejected token: a configuration
// error, typed, backed off, and never a refresh loop.
func TestWrongSecretIsAConfigError(t *testing.T) {
	s := newWeCom(t)
	a := newApp(t, s, nil, agent1, "not-the-secret-of-agent-1000002", nil)
	ctx := t.Context()
	_, err := a.AccessToken(ctx)
	var apiErr *core.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 40001 || !core.IsConfigError(err) || core.IsInvalidCredential(err) {
		t.Fatalf("AccessToken with a wrong secret = %v; want a WeCom 40001 configuration error", err)
	}
	if !strings.HasPrefix(err.Error(), "wechatconf: ") || !strings.Contains(err.Error(), "wecom /cgi-bin/gettoken: errcode 40001") || strings.Contains(err.Error(), "not-the-secret") {
		t.Errorf("error text %q", err)
	}
	for range 5 {
		if err := callAgent(ctx, a); !core.IsConfigError(err) {
			t.Fatalf("Do = %v, want the configuration error", err)
		}
	}
	var le *core.LimitError
	if _, err := a.AccessToken(ctx); !errors.As(err, &le) || le.Limit != "ErrorBackoff" {
		t.Errorf("AccessToken inside the back-off = %v, want a *LimitError (ErrorBackoff)", err)
	}
	if n := s.Calls(wxtest.PathWeComToken); n != 1 {
		t.Errorf("%d gettoken calls, want 1 (the back-off holds the others)", n)
	}
	if err := a.Check(ctx); !core.IsConfigError(err) {
		t.Errorf("Check = %v, want the configuration error", err)
	}
}

// The same errcodes mean different things on the two platforms.
func TestCodesArePerPlatform(t *testing.T) {
	oa := &core.APIError{Code: 40001, Path: "/cgi-bin/getcallbackip"}
	wc := &core.APIError{Code: 40001, Path: "/cgi-bin/agent/get", Codes: wecom.Codes}
	if !oa.InvalidCredential() || oa.ConfigError() {
		t.Error("Official Account 40001 is a rejected token")
	}
	if wc.InvalidCredential() || !wc.ConfigError() {
		t.Error("WeCom 40001 is a configuration error")
	}
	for code, want := range map[int]string{40014: "invalid", 42001: "invalid", 60020: "config", 45009: "quota", 45033: "temporary", -1: "temporary"} {
		e := &core.APIError{Code: code, Codes: wecom.Codes}
		got := map[bool]string{true: "invalid"}[e.InvalidCredential()] + map[bool]string{true: "config"}[e.ConfigError()] +
			map[bool]string{true: "quota"}[e.QuotaExceeded()] + map[bool]string{true: "temporary"}[e.Temporary()]
		if got != want {
			t.Errorf("WeCom %d is %q, want %q", code, got, want)
		}
	}
	if s := wc.Error(); !strings.HasPrefix(s, "wecom /cgi-bin/agent/get: errcode 40001") || !strings.Contains(s, "Config.Secret") {
		t.Errorf("WeCom error text %q", s)
	}
}

func TestTicketsAndSignatures(t *testing.T) {
	s := newWeCom(t)
	a := newApp(t, s, nil, agent1, secret1, nil)
	ctx := t.Context()
	corp, err := a.JSAPITicket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := a.AgentTicket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if corp.Value == agent.Value || !s.TicketValid(corp.Value) || !s.TicketValid(agent.Value) {
		t.Fatalf("corp and agent tickets: distinct %v, valid %v %v", corp.Value != agent.Value, s.TicketValid(corp.Value), s.TicketValid(agent.Value))
	}
	page := "https://example.com/app?x=1#frag"
	cfg, err := a.JSSDKConfig(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AppID != corpID || cfg.Signature != core.JSSDKSignature(corp.Value, cfg.NonceStr, cfg.Timestamp, page) {
		t.Errorf("wx.config %+v not signed with the corp ticket", cfg)
	}
	ac, err := a.AgentConfig(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	if ac.CorpID != corpID || ac.AgentID != "1000002" || ac.Signature != core.JSSDKSignature(agent.Value, ac.NonceStr, ac.Timestamp, page) {
		t.Errorf("wx.agentConfig %+v not signed with the agent ticket", ac)
	}
	b, _ := json.Marshal(ac)
	for _, f := range []string{`"corpid"`, `"agentid"`, `"timestamp"`, `"nonceStr"`, `"signature"`} {
		if !bytes.Contains(b, []byte(f)) {
			t.Errorf("wx.agentConfig JSON %s lacks %s", b, f)
		}
	}
	if _, err := a.AgentConfig(ctx, "/relative"); err == nil {
		t.Error("AgentConfig signed a relative URL")
	}
	if n := s.Calls(wxtest.PathWeComToken); n != 1 {
		t.Errorf("%d gettoken calls for two tickets, want 1", n)
	}
}

// A ticket call that WeCom answers 40014 (the token was ended early): the
// token is refreshed outside the ticket's lock and the ticket call made
// once more.
func TestTicketAfterRevokedToken(t *testing.T) {
	s := newWeCom(t)
	a := newApp(t, s, nil, agent1, secret1, nil)
	ctx := t.Context()
	old, err := a.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Revoke(old.Value)
	if _, err := a.AgentTicket(ctx); err != nil {
		t.Fatalf("AgentTicket after the token was revoked: %v", err)
	}
	if tok, _ := a.AccessToken(ctx); tok.Value == old.Value {
		t.Error("the revoked token is still held")
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	for name, cfg := range map[string]wecom.Config{
		"no corp":  {AgentID: 1, Secret: core.NewSecret("x")},
		"no agent": {CorpID: corpID, Secret: core.NewSecret("x")},
		"bad url":  {CorpID: corpID, AgentID: 1, BaseURL: "ftp://x"},
		"policy":   {CorpID: corpID, AgentID: 1, Policy: core.Policy{RefreshAhead: time.Second, ExpiryMargin: time.Minute}},
	} {
		if _, err := wecom.New(cfg); err == nil || !strings.HasPrefix(err.Error(), "wechatconf: ") {
			t.Errorf("%s: New = %v, want an error", name, err)
		}
	}
	if a, err := wecom.New(wecom.Config{CorpID: corpID, App: "contacts", Secret: core.NewSecret("x")}); err != nil {
		t.Errorf("a secret without an agent (App set): %v", err)
	} else if k, _, _ := a.Keys(); !strings.Contains(k, "/contacts/") {
		t.Errorf("key %q does not name the app", k)
	}
}

func TestSecretNeverShown(t *testing.T) {
	s := newWeCom(t)
	var logs bytes.Buffer
	a := newApp(t, s, nil, agent1, secret1, func(c *wecom.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	s.InjectFault(wxtest.PathWeComToken, wxtest.Fault{Status: http.StatusBadGateway, Body: "upstream said corpsecret=" + secret1}, 10)
	_, err := a.AccessToken(t.Context())
	if err == nil {
		t.Fatal("no error from a 502")
	}
	cfg := wecom.Config{CorpID: corpID, AgentID: agent1, Secret: core.NewSecret(secret1)}
	texts := []string{err.Error(), logs.String(), fmt.Sprintf("%v %+v %#v %s", a, a, cfg, cfg)}
	for _, text := range texts {
		for i := 0; i+6 <= len(secret1); i++ {
			if strings.Contains(text, secret1[i:i+6]) {
				t.Fatalf("%q shows part of the secret (%q)", text, secret1[i:i+6])
			}
		}
	}
}

// The Transport puts the app's token under any HTTP client and replaces
// one WeCom ended early (40014), once.
func TestTransport(t *testing.T) {
	s := newWeCom(t)
	a := newApp(t, s, nil, agent1, secret1, nil)
	client := a.Client(nil)
	get := func() (int, string) {
		resp, err := client.Get(s.URL + wxtest.PathWeComAPI + "?agentid=1000002")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Errcode int   `json:"errcode"`
			AgentID int64 `json:"agentid"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out.Errcode, fmt.Sprint(out.AgentID)
	}
	if code, agent := get(); code != 0 || agent != "1000002" {
		t.Fatalf("through the Transport: errcode %d, agent %s", code, agent)
	}
	tok, _ := a.AccessToken(t.Context())
	s.Revoke(tok.Value)
	if code, _ := get(); code != 0 {
		t.Fatalf("after the token was revoked: errcode %d, want the call retried with a new token", code)
	}
	if n := s.Calls(wxtest.PathWeComToken); n != 2 {
		t.Errorf("%d gettoken calls, want 2", n)
	}
}

// gettoken hands the current token back until it expires, so the App
// serves it to its end with no refresh ahead, and fetches once then.
func TestTokenServedToItsEnd(t *testing.T) {
	s := newWeCom(t)
	a := newApp(t, s, nil, agent1, secret1, nil)
	ctx := t.Context()
	first, err := a.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []time.Duration{time.Hour, 58 * time.Minute, 119 * time.Second} {
		s.Advance(step)
		if tok, err := a.AccessToken(ctx); err != nil || tok.Value != first.Value {
			t.Fatalf("before expiry: %v (same token %v)", err, tok.Value == first.Value)
		}
	}
	if n := s.Calls(wxtest.PathWeComToken); n != 1 {
		t.Fatalf("%d gettoken calls before expiry, want 1: no refresh ahead", n)
	}
	s.Advance(time.Second)
	if tok, err := a.AccessToken(ctx); err != nil || tok.Value == first.Value || !s.TokenValid(tok.Value) {
		t.Fatalf("at expiry: %v (new valid token %v)", err, tok.Value != first.Value)
	}
	if n := s.Calls(wxtest.PathWeComToken); n != 2 {
		t.Errorf("%d gettoken calls over one lifetime, want 2", n)
	}
}
