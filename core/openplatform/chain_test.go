package openplatform_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	componentSecret = "c0mp0nent-s3cret-9f8e7d"
	pushToken       = "pushTokenQ7"
	pushKey         = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	merchant        = "wxmerchant000001"
)

// chain is a simulated Open Platform with a component on it.
type chain struct {
	s     *wxtest.Server
	store core.TokenStore
}

func newChain(t *testing.T) *chain {
	t.Helper()
	s := wxtest.New(wxtest.Options{Components: []wxtest.Component{{AppID: componentAppID, AppSecret: componentSecret}}})
	t.Cleanup(s.Close)
	return &chain{s: s, store: core.NewMemoryStore()}
}

// component returns a Component of the chain (another "process" each call).
func (ch *chain) component(t *testing.T) *openplatform.Component {
	t.Helper()
	return newComponent(t, ch.store, func(cfg *openplatform.Config) {
		cfg.AppSecret = core.NewSecret(componentSecret)
		cfg.Token, cfg.EncodingAESKey = core.NewSecret(pushToken), core.NewSecret(pushKey)
		cfg.BaseURL, cfg.Now, cfg.RetryBackoff = ch.s.URL, ch.s.Now, time.Millisecond
	})
}

// pushTicket delivers a verify-ticket push to c.
func (ch *chain) pushTicket(t *testing.T, c *openplatform.Component) {
	t.Helper()
	q, body, _, err := ch.s.VerifyTicketPush(componentAppID, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := c.HandleEvent(t.Context(), q, bytes.NewReader(body))
	if err != nil || ev.InfoType != openplatform.InfoVerifyTicket || ev.Applied != "stored" {
		t.Fatalf("verify ticket push: %+v, %v", ev, err)
	}
}

// authorize has the merchant authorize and delivers the authorized push.
func (ch *chain) authorize(t *testing.T, c *openplatform.Component, appid string) {
	t.Helper()
	code := ch.s.Authorize(componentAppID, appid)
	q, body, err := ch.s.AuthorizedPush(code, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := c.HandleEvent(t.Context(), q, bytes.NewReader(body))
	if err != nil || ev.Applied != "authorized" || ev.AuthorizerAppID != appid {
		t.Fatalf("authorized push: %+v, %v", ev, err)
	}
}

func callAPI(ctx context.Context, a *openplatform.Authorizer) error {
	var out struct {
		IPList []string `json:"ip_list"`
	}
	return a.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, &out)
}

// The whole chain: ticket push → component token → authorization event →
// the authorizer's Conf calls the API, refreshes with its refresh token
// once per expiry, and its ticket works.
func TestChain(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	ctx := t.Context()
	if _, err := c.ComponentAccessToken(ctx); !errors.Is(err, openplatform.ErrNoVerifyTicket) {
		t.Fatalf("component token before any ticket push = %v, want ErrNoVerifyTicket", err)
	}
	if n := ch.s.Calls(wxtest.PathComponentToken); n != 0 {
		t.Fatalf("%d component token calls without a ticket, want 0", n)
	}
	ch.pushTicket(t, c)
	ch.authorize(t, c, merchant)
	a := c.Authorizer(merchant)
	if err := callAPI(ctx, a); err != nil {
		t.Fatal(err)
	}
	if n := ch.s.AuthorizerTokensIssued(merchant); n != 1 {
		t.Fatalf("%d authorizer tokens issued after the authorization, want 1 (from the code exchange)", n)
	}
	if _, err := a.JSAPITicket(ctx); err != nil {
		t.Fatalf("the authorizer's jsapi_ticket: %v", err)
	}
	ch.s.Advance(2 * time.Hour)
	ch.pushTicket(t, c) // WeChat keeps pushing
	if err := callAPI(ctx, a); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if n := ch.s.AuthorizerTokensIssued(merchant); n != 2 {
		t.Errorf("%d authorizer tokens issued after one expiry, want 2", n)
	}
	// Another process sees the same token without a fetch.
	other := ch.component(t)
	if tok, err := other.Authorizer(merchant).AccessToken(ctx); err != nil || !ch.s.TokenValid(tok.Value) {
		t.Errorf("another process: %v", err)
	}
	if n := ch.s.AuthorizerTokensIssued(merchant); n != 2 {
		t.Errorf("%d authorizer tokens issued after another process asked, want 2", n)
	}
}

// A refresh-token rotation racing: every refresh rotates the refresh
// token; eight processes refreshing at once after a rejection make one
// fetch, and the stored refresh token is the newest, still valid.
func TestRefreshTokenRotationMovesForward(t *testing.T) {
	ch := newChain(t)
	first := ch.component(t)
	ch.pushTicket(t, first)
	ch.authorize(t, first, merchant)
	ch.s.RotateRefreshTokens(true)
	var procs []*openplatform.Component
	for range 8 {
		procs = append(procs, ch.component(t))
	}
	ctx := t.Context()
	for round := range 3 {
		ch.s.Advance(2 * time.Hour)
		ch.pushTicket(t, first)
		before := ch.s.AuthorizerTokensIssued(merchant)
		var wg sync.WaitGroup
		for _, p := range procs {
			for range 20 {
				wg.Go(func() {
					if err := callAPI(ctx, p.Authorizer(merchant)); err != nil {
						t.Errorf("round %d: %v", round, err)
					}
				})
			}
		}
		wg.Wait()
		if n := ch.s.AuthorizerTokensIssued(merchant) - before; n != 1 {
			t.Errorf("round %d: %d authorizer fetches, want 1", round, n)
		}
		rt, err := first.RefreshToken(ctx, merchant)
		if err != nil || !ch.s.RefreshTokenValid(componentAppID, merchant, rt.Value) {
			t.Fatalf("round %d: the stored refresh token is not the valid one (%v)", round, err)
		}
	}
}

// Re-authorization while a refresh is in flight: the refresh that used the
// old refresh token finishes first; the new authorization's tokens are
// what the store holds afterwards.
func TestReauthorizationDuringRefresh(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	ch.pushTicket(t, c)
	ch.authorize(t, c, merchant)
	ctx := t.Context()
	ch.s.Advance(2 * time.Hour)
	ch.pushTicket(t, c)
	if _, err := c.ComponentAccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	gate := ch.s.Block(wxtest.PathAuthorizerToken)
	done := make(chan error, 1)
	slow := ch.component(t) // the process whose refresh is in flight
	go func() { _, err := slow.Authorizer(merchant).AccessToken(ctx); done <- err }()
	select {
	case <-gate.Arrived():
	case <-time.After(30 * time.Second):
		t.Fatal("the refresh never reached WeChat")
	}
	reauth := make(chan error, 1)
	go func() {
		code := ch.s.Authorize(componentAppID, merchant)
		_, err := c.Authorize(ctx, code)
		reauth <- err
	}()
	gate.Release()
	if err := <-done; err != nil {
		t.Logf("the in-flight refresh: %v", err)
	}
	if err := <-reauth; err != nil {
		t.Fatalf("re-authorization: %v", err)
	}
	ref, _ := c.RefreshToken(ctx, merchant)
	tok, _ := ch.component(t).Authorizer(merchant).AccessToken(ctx) // adopted from the store
	if !ch.s.TokenValid(tok.Value) || !ch.s.RefreshTokenValid(componentAppID, merchant, ref.Value) {
		t.Errorf("after re-authorization during a refresh: stored access token valid %v, refresh token valid %v; want both from the new authorization",
			ch.s.TokenValid(tok.Value), ch.s.RefreshTokenValid(componentAppID, merchant, ref.Value))
	}
	if err := callAPI(ctx, ch.component(t).Authorizer(merchant)); err != nil {
		t.Errorf("a call after re-authorization: %v", err)
	}
}

// unauthorized during a refresh: the refresh in flight cannot bring the
// withdrawn refresh token back, and every process then gets a
// *ReauthorizeError.
func TestUnauthorizedDuringRefresh(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	ch.pushTicket(t, c)
	ch.authorize(t, c, merchant)
	ctx := t.Context()
	ch.s.RotateRefreshTokens(true) // a refresh in flight brings a new refresh token
	ch.s.Advance(2 * time.Hour)
	ch.pushTicket(t, c)
	if _, err := c.ComponentAccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	gate := ch.s.Block(wxtest.PathAuthorizerToken)
	slow := ch.component(t)
	done := make(chan error, 1)
	go func() { _, err := slow.Authorizer(merchant).AccessToken(ctx); done <- err }()
	select {
	case <-gate.Arrived():
	case <-time.After(30 * time.Second):
		t.Fatal("the refresh never reached WeChat")
	}
	applied := make(chan error, 1)
	go func() {
		q, body, err := ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey)
		if err == nil {
			_, err = c.HandleEvent(ctx, q, bytes.NewReader(body))
		}
		applied <- err
	}()
	gate.Release()
	<-done
	if err := <-applied; err != nil {
		t.Fatalf("the unauthorized push: %v", err)
	}
	ch.s.Advance(time.Second) // a withdrawal in the authorization's second would tie (see replacedBy)
	ch.s.Unauthorize(componentAppID, merchant)
	if _, err := c.RefreshToken(ctx, merchant); !errors.Is(err, core.ErrRevoked) {
		t.Errorf("the stored authorization after unauthorized during a refresh: %v, want the withdrawal", err)
	}
	var re *openplatform.ReauthorizeError
	if _, err := ch.component(t).Authorizer(merchant).AccessToken(ctx); !errors.As(err, &re) || re.AuthorizerAppID != merchant {
		t.Errorf("AccessToken after unauthorized = %v, want a *ReauthorizeError", err)
	}
}

// WeChat refusing the refresh token (61023) is a *ReauthorizeError, and
// the stored refresh token is not deleted by the failed fetch.
func TestRefusedRefreshTokenIsKept(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	ch.pushTicket(t, c)
	ch.authorize(t, c, merchant)
	ctx := t.Context()
	before, _ := c.RefreshToken(ctx, merchant)
	ch.s.InjectFault(wxtest.PathAuthorizerToken, wxtest.Errcode(61023, "refresh_token is invalid"), 1)
	ch.s.Advance(2 * time.Hour)
	ch.pushTicket(t, c)
	var re *openplatform.ReauthorizeError
	_, err := c.Authorizer(merchant).AccessToken(ctx)
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "61023") {
		t.Fatalf("AccessToken with a refused refresh token = %v, want a *ReauthorizeError with 61023", err)
	}
	if after, _ := c.RefreshToken(ctx, merchant); after.Value != before.Value {
		t.Error("a failed fetch changed the stored refresh token")
	}
	if strings.Contains(err.Error(), before.Value) {
		t.Error("the error shows the refresh token")
	}
}

// A verify-ticket push that fails its signature is refused and stores
// nothing.
func TestForgedPushIsRefused(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	q, body, _, err := ch.s.VerifyTicketPush(componentAppID, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	q.Set("msg_signature", strings.Repeat("0", 40))
	if _, err := c.HandleEvent(t.Context(), q, bytes.NewReader(body)); err == nil {
		t.Fatal("a push with a wrong signature was accepted")
	}
	if _, err := c.VerifyTicket(t.Context()); !errors.Is(err, openplatform.ErrNoVerifyTicket) {
		t.Errorf("a ticket was stored from a forged push: %v", err)
	}
}

// After a withdrawal, no process serves the dead token: a handle kept in
// the process that applied the push reports the *ReauthorizeError at once,
// and another process does after the one call that WeChat rejects.
func TestWithdrawnTokenIsNeverServed(t *testing.T) {
	ch := newChain(t)
	a, b := ch.component(t), ch.component(t)
	ch.pushTicket(t, a)
	ch.authorize(t, a, merchant)
	ctx := t.Context()
	kept := a.Authorizer(merchant)
	if err := callAPI(ctx, kept); err != nil {
		t.Fatal(err)
	}
	if err := callAPI(ctx, b.Authorizer(merchant)); err != nil {
		t.Fatal(err)
	}
	ch.s.Advance(time.Second) // a withdrawal in the authorization's second would tie (see replacedBy)
	ch.s.Unauthorize(componentAppID, merchant)
	q, body, err := ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.HandleEvent(ctx, q, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	var re *openplatform.ReauthorizeError
	if tok, err := kept.AccessToken(ctx); !errors.As(err, &re) || !errors.Is(err, core.ErrRevoked) {
		t.Errorf("the kept handle after the withdrawal: AccessToken = (valid %v), %v; want a *ReauthorizeError matching core.ErrRevoked", ch.s.TokenValid(tok.Value), err)
	}
	// Process B learns it from WeChat's rejection, once.
	if err := callAPI(ctx, b.Authorizer(merchant)); !errors.As(err, &re) {
		t.Fatalf("B's call after the withdrawal = %v, want a *ReauthorizeError", err)
	}
	calls := ch.s.Calls(wxtest.PathAPI)
	for i := range 3 {
		if err := callAPI(ctx, b.Authorizer(merchant)); !errors.As(err, &re) {
			t.Errorf("B's call #%d = %v, want a *ReauthorizeError", i+2, err)
		}
		if tok, err := b.Authorizer(merchant).AccessToken(ctx); err == nil {
			t.Errorf("B's AccessToken #%d served the withdrawn token (valid %v)", i+1, ch.s.TokenValid(tok.Value))
		}
	}
	if n := ch.s.Calls(wxtest.PathAPI) - calls; n != 0 {
		t.Errorf("%d more API calls were sent with the withdrawn token, want 0", n)
	}
}
