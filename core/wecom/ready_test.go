package wecom_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// TestReady tests App.Ready: a fresh app is ready after one gettoken call
// (and a second app of the fleet from the store, with none); gettoken's
// token is served to its end, so the app stays ready in its last seconds
// (the horizon is clamped to 0) and makes no call before expiry; a wrong
// Secret (WeCom's 40001) and an empty one are configuration errors whose
// text holds no secret.
func TestReady(t *testing.T) {
	s := newWeCom(t)
	store := core.NewMemoryStore()
	a := newApp(t, s, store, agent1, secret1, nil)
	ctx := t.Context()
	if err := a.Ready(ctx); err != nil {
		t.Fatalf("Ready of a fresh app: %v", err)
	}
	if err := newApp(t, s, store, agent1, secret1, nil).Ready(ctx); err != nil {
		t.Fatalf("Ready of a second app on the store: %v", err)
	}
	if n := s.Calls(wxtest.PathWeComToken); n != 1 {
		t.Errorf("%d gettoken calls, want 1", n)
	}
	tok, _ := a.AccessToken(ctx)
	s.Advance(tok.ExpiresAt.Sub(s.Now()) - 10*time.Second)
	if err := a.Ready(ctx); err != nil {
		t.Errorf("Ready 10 s before expiry: %v, want ready (served to its end)", err)
	}
	if n := s.Calls(wxtest.PathWeComToken); n != 1 {
		t.Errorf("%d gettoken calls before expiry, want 1: no refresh ahead", n)
	}

	const wrong = "wecom-wrong-secret-0123456789"
	err := newApp(t, s, nil, agent2, wrong, nil).Ready(ctx)
	var nr *core.NotReadyError
	if !errors.As(err, &nr) || nr.Reason != core.ReasonConfiguration || !core.IsConfigError(err) || nr.Platform != core.PlatformWeCom {
		t.Errorf("Ready with a wrong Secret = %v, want ReasonConfiguration wrapping the config error", err)
	}
	if err != nil && strings.Contains(err.Error(), wrong) {
		t.Errorf("the error holds the Secret: %v", err)
	}
	calls := s.Calls(wxtest.PathWeComToken)
	err = newApp(t, s, nil, agent2, "", nil).Ready(ctx)
	if !errors.As(err, &nr) || nr.Reason != core.ReasonConfiguration || !errors.Is(err, core.ErrMissingConfig) {
		t.Errorf("Ready without a Secret = %v, want ReasonConfiguration, ErrMissingConfig", err)
	}
	if n := s.Calls(wxtest.PathWeComToken); n != calls {
		t.Errorf("%d gettoken calls without a Secret, want 0", n-calls)
	}
}
