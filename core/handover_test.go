package core_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// sameUntilExpiry is an issuer that hands back its current token until it
// has expired (WeCom's gettoken), on a manual clock.
type sameUntilExpiry struct {
	mu      sync.Mutex
	now     time.Time
	life    time.Duration
	cur     core.Token
	fetches int
}

func (s *sameUntilExpiry) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func (s *sameUntilExpiry) advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = s.now.Add(d)
}

func (s *sameUntilExpiry) fetch(context.Context, core.FetchRequest) (core.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetches++
	if s.cur.Value == "" || !s.now.Before(s.cur.ExpiresAt) {
		s.cur = core.Token{Value: "token-" + s.now.Format("150405"), ExpiresAt: s.now.Add(s.life)}
	}
	return s.cur, nil
}

func (s *sameUntilExpiry) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// With Policy.Handover = HandoverAtExpiry a token is served to its end and
// fetched once per lifetime: no refresh ahead that brings it back.
func TestHandoverAtExpiryFetchesOncePerLifetime(t *testing.T) {
	iss := &sameUntilExpiry{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), life: 2 * time.Hour}
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "access_token", Key: "k", Fetch: iss.fetch, Now: iss.clock,
		Policy: core.Policy{Handover: core.HandoverAtExpiry},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	first, err := cr.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []time.Duration{time.Hour, 55 * time.Minute, 4*time.Minute + 59*time.Second} {
		iss.advance(step)
		if tok, err := cr.Get(ctx); err != nil || tok.Value != first.Value {
			t.Fatalf("before expiry: %v, same token %v", err, tok.Value == first.Value)
		}
	}
	if n := iss.count(); n != 1 {
		t.Fatalf("%d fetches before expiry, want 1", n)
	}
	iss.advance(time.Second) // at ExpiresAt
	next, err := cr.Get(ctx)
	if err != nil || next.Value == first.Value {
		t.Fatalf("at expiry: %v, new token %v", err, next.Value != first.Value)
	}
	if n := iss.count(); n != 2 {
		t.Errorf("%d fetches after one lifetime, want 2", n)
	}
}

// An issuer that hands the same token back with less than ExpiryMargin
// left (its hand-over not known to the Policy): the token is served to its
// end rather than refused as too soon to serve, and not fetched again
// until then.
func TestHandedBackInsideTheMarginIsServedToItsEnd(t *testing.T) {
	iss := &sameUntilExpiry{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), life: 2 * time.Hour}
	cr, err := core.NewCredential(core.CredentialConfig{Name: "access_token", Key: "k", Fetch: iss.fetch, Now: iss.clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	first, err := cr.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	iss.advance(2*time.Hour - 30*time.Second) // inside the 1-minute margin
	for i := range 3 {
		tok, err := cr.Get(ctx)
		if err != nil || tok.Value != first.Value {
			t.Fatalf("Get #%d inside the margin: %v (same token %v), want the handed-back token", i+1, err, tok.Value == first.Value)
		}
	}
	if n := iss.count(); n != 2 {
		t.Errorf("%d fetches, want 2 (the first, one that brought the same token back)", n)
	}
	iss.advance(30 * time.Second)
	if tok, err := cr.Get(ctx); err != nil || tok.Value == first.Value {
		t.Errorf("after expiry: %v, new token %v", err, tok.Value != first.Value)
	}
}
