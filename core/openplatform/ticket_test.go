package openplatform_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
)

const componentAppID = "wxcomponent0123456"

func newComponent(t *testing.T, store core.TokenStore, edit func(*openplatform.Config)) *openplatform.Component {
	t.Helper()
	cfg := openplatform.Config{AppID: componentAppID, AppSecret: core.NewSecret("c0mp0nent-s3cret-9f8e7d"), Store: store}
	if edit != nil {
		edit(&cfg)
	}
	c, err := openplatform.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A stale verify-ticket push that arrives after a newer one does not
// replace it; a newer one does.
func TestVerifyTicketNewestWins(t *testing.T) {
	now := time.Now()
	c := newComponent(t, nil, func(cfg *openplatform.Config) { cfg.Now = func() time.Time { return now } })
	ctx := t.Context()
	if _, err := c.VerifyTicket(ctx); !errors.Is(err, openplatform.ErrNoVerifyTicket) {
		t.Fatalf("VerifyTicket before any push = %v, want ErrNoVerifyTicket", err)
	}
	if ok, err := c.SetVerifyTicket(ctx, "ticket@@@newer", now.Add(-time.Minute)); !ok || err != nil {
		t.Fatalf("storing the first ticket: %v, %v", ok, err)
	}
	if ok, err := c.SetVerifyTicket(ctx, "ticket@@@older", now.Add(-11*time.Minute)); ok || err != nil {
		t.Fatalf("an older push: stored %v, %v; want not stored", ok, err)
	}
	if tok, err := c.VerifyTicket(ctx); err != nil || tok.Value != "ticket@@@newer" {
		t.Fatalf("VerifyTicket = %q, %v; want the newer ticket", tok.Value, err)
	}
	if ok, err := c.SetVerifyTicket(ctx, "ticket@@@newest", now); !ok || err != nil {
		t.Fatalf("a newer push: stored %v, %v", ok, err)
	}
	if tok, _ := c.VerifyTicket(ctx); tok.Value != "ticket@@@newest" {
		t.Fatalf("VerifyTicket = %q, want the newest", tok.Value)
	}
	now = now.Add(openplatform.VerifyTicketLifetime + time.Second)
	if _, err := c.VerifyTicket(ctx); !errors.Is(err, openplatform.ErrNoVerifyTicket) {
		t.Errorf("VerifyTicket 12 h later = %v, want ErrNoVerifyTicket", err)
	}
}

// Pushes of 50 tickets to 8 instances at once, in any order: the newest
// is what the store holds.
func TestVerifyTicketConcurrentPushes(t *testing.T) {
	store := core.NewMemoryStore()
	base := time.Now().Add(-time.Hour)
	var comps []*openplatform.Component
	for range 8 {
		comps = append(comps, newComponent(t, store, nil))
	}
	var wg sync.WaitGroup
	for i := range 50 {
		for _, c := range comps {
			wg.Go(func() {
				if _, err := c.SetVerifyTicket(t.Context(), "ticket-"+string(rune('A'+i)), base.Add(time.Duration(i)*time.Minute)); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	if tok, _ := comps[0].VerifyTicket(t.Context()); tok.Value != "ticket-"+string(rune('A'+49)) {
		t.Errorf("stored %q, want the newest ticket", tok.Value)
	}
}

// With no refresh token stored the authorizer's token is a typed
// *ReauthorizeError naming the AppID; so after Unauthorize.
func TestMissingRefreshTokenIsReauthorize(t *testing.T) {
	c := newComponent(t, nil, nil)
	ctx := t.Context()
	if _, err := c.SetVerifyTicket(ctx, "ticket", time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err := c.Authorizer("wxmerchant000001").AccessToken(ctx)
	var re *openplatform.ReauthorizeError
	if !errors.As(err, &re) || re.AuthorizerAppID != "wxmerchant000001" || !strings.Contains(err.Error(), "authorize the component again") {
		t.Fatalf("AccessToken without a refresh token = %v, want a *ReauthorizeError", err)
	}
	if err := c.ImportRefreshToken(ctx, "wxmerchant000001", "refreshtoken@@@x"); err != nil {
		t.Fatal(err)
	}
	if err := c.Unauthorize(ctx, "wxmerchant000001"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Authorizer("wxmerchant000001").AccessToken(ctx)
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "withdrew") {
		t.Fatalf("AccessToken after Unauthorize = %v, want a *ReauthorizeError (withdrawn)", err)
	}
	rtKey := c.AuthorizationKey("wxmerchant000001")
	if strings.Contains(err.Error(), "refreshtoken@@@x") || strings.Contains(rtKey, "refreshtoken") {
		t.Error("the refresh token shows in an error or key")
	}
}

// The registry is bounded: handles beyond MaxAuthorizers are dropped,
// least recently used first.
func TestAuthorizerRegistryIsBounded(t *testing.T) {
	c := newComponent(t, nil, func(cfg *openplatform.Config) { cfg.MaxAuthorizers = 100 })
	hot := c.Authorizer("wxhot")
	for i := range 1000 {
		c.Authorizer("wx" + string(rune('a'+i%26)) + time.Duration(i).String())
		if i%10 == 0 {
			c.Authorizer("wxhot")
		}
	}
	held, evicted := c.Stats()
	if held > 100 || evicted < 900 {
		t.Errorf("held %d, evicted %d; want at most 100 held", held, evicted)
	}
	if c.Authorizer("wxhot") != hot {
		t.Error("the handle asked for all along was dropped")
	}
}
