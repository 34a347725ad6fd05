package openplatform_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core/openplatform"
)

// Authorizer("") — an AppID read from a request, empty when the request
// lacks it — returned a handle whose calls fail with a *ReauthorizeError
// before the authorizers shared a ConfFamily; ConfFamily.New refuses an
// empty AppID and newAuthorizer turned that into a panic that takes the
// serving process down.
func TestAuthorizerEmptyAppIDDoesNotPanic(t *testing.T) {
	c := newComponent(t, nil, nil)
	var a *openplatform.Authorizer
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Authorizer(\"\") panicked: %v", r)
			}
		}()
		a = c.Authorizer("")
	}()
	_, err := a.AccessToken(t.Context())
	var re *openplatform.ReauthorizeError
	if !errors.As(err, &re) {
		t.Errorf("AccessToken of the empty AppID's handle = %v, want a *ReauthorizeError", err)
	}
}

// Two authorizers of one component share their access-token kind and
// ConfFamily: the withdrawal of one (and its *ReauthorizeError) leaves the
// other serving, refreshing at expiry with its own refresh token, its
// jsapi_ticket under its own AppID.
func TestAuthorizersOfOneKindAreIsolated(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	ctx := t.Context()
	ch.pushTicket(t, c)
	const other = "wxmerchant000002"
	ch.authorize(t, c, merchant)
	ch.authorize(t, c, other)
	a, b := c.Authorizer(merchant), c.Authorizer(other)
	if err := callAPI(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := callAPI(ctx, b); err != nil {
		t.Fatal(err)
	}
	ch.s.Advance(time.Second) // a withdrawal in the authorization's second would tie (see replacedBy)
	ch.s.Unauthorize(componentAppID, merchant)
	q, body, err := ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.HandleEvent(ctx, q, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	var re *openplatform.ReauthorizeError
	if _, err := a.AccessToken(ctx); !errors.As(err, &re) {
		t.Fatalf("the withdrawn authorizer: %v, want a *ReauthorizeError", err)
	}
	ch.s.Advance(2 * time.Hour)
	ch.pushTicket(t, c)
	if err := callAPI(ctx, b); err != nil {
		t.Fatalf("the other authorizer after the withdrawal and an expiry: %v", err)
	}
	if n := ch.s.AuthorizerTokensIssued(other); n != 2 {
		t.Errorf("%d tokens issued to the other authorizer, want 2", n)
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("the other authorizer is not Ready: %v", err)
	}
	if _, err := b.JSAPITicket(ctx); err != nil {
		t.Fatal(err)
	}
	if key := b.Credential("jsapi_ticket").Key(); !strings.Contains(key, "/"+other+"/") {
		t.Errorf("the other authorizer's jsapi_ticket key %q", key)
	}
	if b.AppID() != other || !strings.Contains(b.String(), other) {
		t.Errorf("the other authorizer: AppID %q, String %s", b.AppID(), b)
	}
}
