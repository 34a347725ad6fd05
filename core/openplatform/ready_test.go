package openplatform_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// TestReady tests Component.Ready and Authorizer.Ready along the chain: the
// component is not ready (ReasonNoToken, ErrNoVerifyTicket) until a verify
// ticket is pushed, then ready with one component token call; an
// authorizer is ready from its authorization with no further call, and
// ReasonRevoked once the merchant withdraws.
func TestReady(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	ctx := t.Context()
	err := c.Ready(ctx)
	var nr *core.NotReadyError
	if !errors.As(err, &nr) || nr.Reason != core.ReasonNoToken || !errors.Is(err, openplatform.ErrNoVerifyTicket) ||
		nr.Credential != "component_access_token" || nr.Platform != core.PlatformOpenPlatformComponent {
		t.Fatalf("Component.Ready before any ticket = %v, want ReasonNoToken wrapping ErrNoVerifyTicket", err)
	}
	ch.pushTicket(t, c)
	for range 2 {
		if err := c.Ready(ctx); err != nil {
			t.Fatalf("Component.Ready with a ticket: %v", err)
		}
	}
	if n := ch.s.Calls(wxtest.PathComponentToken); n != 1 {
		t.Errorf("%d component token calls, want 1", n)
	}

	ch.authorize(t, c, merchant)
	a := ch.component(t).Authorizer(merchant) // another process: from the store's record
	if err := a.Ready(ctx); err != nil {
		t.Fatalf("Authorizer.Ready after the authorization: %v", err)
	}
	if n := ch.s.Calls(wxtest.PathAuthorizerToken); n != 0 {
		t.Errorf("%d authorizer token calls, want 0 (the authorization brought the token)", n)
	}

	ch.s.Advance(time.Second) // a withdrawal in the authorization's second would tie
	q, body, err := ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.HandleEvent(ctx, q, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	err = c.Authorizer(merchant).Ready(ctx)
	var re *openplatform.ReauthorizeError
	if !errors.As(err, &nr) || nr.Reason != core.ReasonRevoked || !errors.As(err, &re) || nr.Remaining != 0 {
		t.Errorf("Authorizer.Ready after the withdrawal = %v, want ReasonRevoked reaching the *ReauthorizeError, nothing held", err)
	}
}
