package openplatform_test

import (
	"errors"
	"testing"

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
