package core_test

// Tests of Ready (issue 25 §4): a credential is ready when it holds, or can
// have, a token valid for the horizon; otherwise a *NotReadyError says why,
// and Ready never makes a call that a caller would not make. The clock is
// the wxtest server's manual clock (Config.Now = s.Now).

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/storetest"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// notReady returns err's *NotReadyError, failing the test if there is none
// or if its reason is not want; the error's text must hold no secret.
func notReady(t *testing.T, err error, want core.ReadyReason) *core.NotReadyError {
	t.Helper()
	var nr *core.NotReadyError
	if !errors.As(err, &nr) {
		t.Fatalf("Ready = %v, want a *NotReadyError with reason %s", err, want)
	}
	if nr.Reason != want {
		t.Errorf("Ready: reason %s, want %s (%v)", nr.Reason, want, err)
	}
	if strings.Contains(err.Error(), appSecret) {
		t.Errorf("Ready's error holds the AppSecret: %v", err)
	}
	return nr
}

// TestReadyFetchesOnceThroughTheStore tests that a fresh Conf becomes ready
// by the fetch its first caller would make, once, and that another Conf on
// the same store becomes ready from the store with no fetch; a ready Conf
// makes no call at all.
func TestReadyFetchesOnceThroughTheStore(t *testing.T) {
	s := newServer(t)
	store := core.NewMemoryStore()
	a := newConf(t, s, func(c *core.Config) { c.Store = store })
	b := newConf(t, s, func(c *core.Config) { c.Store = store })
	ctx := t.Context()
	for i := range 3 {
		if err := a.Ready(ctx); err != nil {
			t.Fatalf("Ready #%d of a fresh Conf: %v", i+1, err)
		}
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready of a second Conf on the same store: %v", err)
	}
	if n := tokenCalls(s); n != 1 {
		t.Errorf("%d token calls for 4 Ready calls of two Confs on one store, want 1", n)
	}
	tok, err := b.AccessToken(ctx)
	if err != nil || !s.TokenValid(tok.Value) {
		t.Errorf("AccessToken after Ready = %v, %v; want the valid token", tok.Value != "", err)
	}
	// Inside the refresh-ahead window but beyond the horizon: still ready,
	// and Ready starts nothing.
	s.Advance(tok.ExpiresAt.Sub(s.Now()) - 4*time.Minute)
	if err := a.Ready(ctx); err != nil {
		t.Errorf("Ready with 4 min left (horizon 2 min): %v", err)
	}
	if n := tokenCalls(s); n != 1 {
		t.Errorf("%d token calls after a Ready with a token valid beyond the horizon, want 1", n)
	}
	if n := s.ForceRefreshes(); n != 0 {
		t.Errorf("%d force_refresh calls, want 0", n)
	}
}

// TestReadyRefreshesAheadWithinTheHorizon tests that a held token within
// the horizon is replaced by the refresh ahead a caller would start, which
// Ready waits for, and then reads as ready.
func TestReadyRefreshesAheadWithinTheHorizon(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, classic)
	ctx := t.Context()
	first, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(first.ExpiresAt.Sub(s.Now()) - 90*time.Second)
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("Ready with 90 s left and WeChat answering: %v", err)
	}
	tok, err := c.AccessToken(ctx)
	if err != nil || tok.Value == first.Value {
		t.Errorf("AccessToken after Ready = same token %v, %v; want the token the refresh ahead brought", tok.Value == first.Value, err)
	}
	if n := tokenCalls(s); n != 2 {
		t.Errorf("%d token calls, want 2 (the first fetch and one refresh ahead)", n)
	}
}

// TestReadyConfigurationError tests that a wrong AppSecret reads as
// ReasonConfiguration with WeChat's 40125 reachable, then, during
// ErrorBackoff, with the *LimitError reachable too and no call to WeChat;
// and that an empty AppSecret is ReasonConfiguration (ErrMissingConfig)
// without any call.
func TestReadyConfigurationError(t *testing.T) {
	for _, api := range []core.TokenAPI{core.StableToken, core.ClassicToken} {
		t.Run(api.String(), func(t *testing.T) {
			s := newServer(t)
			const wrong = "wrong-app-secret-0123456789abcdef"
			c := newConf(t, s, func(c *core.Config) { c.AppSecret, c.TokenAPI = core.NewSecret(wrong), api })
			err := c.Ready(t.Context())
			nr := notReady(t, err, core.ReasonConfiguration)
			var ae *core.APIError
			if !errors.As(err, &ae) || ae.Code != 40125 || !core.IsConfigError(err) {
				t.Errorf("Ready = %v, want it to wrap the APIError 40125", err)
			}
			if nr.Remaining != 0 || nr.Credential != "access_token" || nr.Key != "wechatconf/"+appID+"/access_token" {
				t.Errorf("NotReadyError %+v, want access_token, its key, Remaining 0", nr)
			}
			if strings.Contains(err.Error(), wrong) {
				t.Errorf("Ready's error holds the AppSecret: %v", err)
			}
			calls := tokenCalls(s)
			err = c.Ready(t.Context())
			notReady(t, err, core.ReasonConfiguration)
			var le *core.LimitError
			if !errors.As(err, &le) || le.Limit != "ErrorBackoff" || !le.Until.After(s.Now()) {
				t.Errorf("second Ready = %v, want a LimitError of ErrorBackoff in the chain", err)
			}
			if n := tokenCalls(s); n != calls {
				t.Errorf("%d token calls by a Ready during ErrorBackoff, want 0", n-calls)
			}
		})
	}
	t.Run("MissingSecret", func(t *testing.T) {
		s := newServer(t)
		c := newConf(t, s, func(c *core.Config) { c.AppSecret = core.Secret{} })
		err := c.Ready(t.Context())
		notReady(t, err, core.ReasonConfiguration)
		if !errors.Is(err, core.ErrMissingConfig) || !strings.Contains(err.Error(), "Config.AppSecret is required") {
			t.Errorf("Ready without an AppSecret = %v, want ErrMissingConfig naming Config.AppSecret", err)
		}
		if n := tokenCalls(s); n != 0 {
			t.Errorf("%d token calls without an AppSecret, want 0", n)
		}
	})
}

// TestReadyStoreDown tests a classic token while the store is down: ready
// while the held token outlives the horizon (no call at all), then
// ReasonStoreUnavailable with the held token's remaining time once it ends
// within the horizon (the token is still served, and WeChat is not called
// without the lock), and ready again once the store answers.
func TestReadyStoreDown(t *testing.T) {
	s := newServer(t)
	store := storetest.NewDown()
	c := newConf(t, s, func(c *core.Config) { c.Store, c.TokenAPI = store, core.ClassicToken })
	ctx := t.Context()
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	held, _ := c.AccessToken(ctx)
	store.Failing.Store(true)

	s.Advance(held.ExpiresAt.Sub(s.Now()) - 3*time.Minute)
	if err := c.Ready(ctx); err != nil {
		t.Errorf("Ready with the store down and 3 min left (horizon 2 min): %v", err)
	}

	s.Advance(90 * time.Second) // 90 s left
	for i := range 2 {          // the refresh ahead, then the state it left
		err := c.Ready(ctx)
		nr := notReady(t, err, core.ReasonStoreUnavailable)
		if !errors.Is(err, core.ErrStoreUnavailable) || !errors.Is(err, storetest.ErrDown) {
			t.Errorf("Ready #%d = %v, want it to wrap ErrStoreUnavailable and the store's error", i+1, err)
		}
		if nr.Remaining != 90*time.Second || nr.Horizon != core.DefaultReadyHorizon {
			t.Errorf("Ready #%d: Remaining %v, Horizon %v; want 1m30s, 2m0s", i+1, nr.Remaining, nr.Horizon)
		}
		if !strings.Contains(err.Error(), "store_unavailable: the held token ends in 1m30s") {
			t.Errorf("Ready #%d: text %q, want it to say the reason and the time left", i+1, err)
		}
	}
	if tok, err := c.AccessToken(ctx); err != nil || tok.Value != held.Value {
		t.Errorf("AccessToken while not ready = %v, %v; want the held token still served", tok.Value == held.Value, err)
	}
	if n := tokenCalls(s); n != 1 {
		t.Errorf("%d token calls, want 1: no classic call without the store's lock", n)
	}

	store.Failing.Store(false)
	s.Advance(20 * time.Second) // past the 15 s before another refresh ahead
	if err := c.Ready(ctx); err != nil {
		t.Errorf("Ready with the store back: %v", err)
	}
	if n := tokenCalls(s); n != 2 {
		t.Errorf("%d token calls, want 2 (the refresh once the store answered)", n)
	}
}

// TestReadyStableTokenStoreDown tests that a stable_token Conf whose store
// is down from the start is ready all the same: it fetches without the
// store, as its first caller would (Policy.FetchWithoutStore), once.
func TestReadyStableTokenStoreDown(t *testing.T) {
	s := newServer(t)
	store := storetest.NewDown()
	store.Failing.Store(true)
	c := newConf(t, s, func(c *core.Config) { c.Store = store })
	for range 2 {
		if err := c.Ready(t.Context()); err != nil {
			t.Errorf("Ready of a stable_token Conf with the store down: %v", err)
		}
	}
	if n := tokenCalls(s); n != 1 {
		t.Errorf("%d token calls, want 1", n)
	}
}

// TestReadyLimited tests that a quota error (45009) reads as ReasonLimited,
// and so does the ErrorBackoff it starts (a *LimitError with its Until),
// with no further call until it ends; then Ready fetches again.
func TestReadyLimited(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	s.InjectFault(wxtest.PathStableToken, wxtest.Errcode(45009, "reach max api daily quota limit"), 1)
	err := c.Ready(t.Context())
	notReady(t, err, core.ReasonLimited)
	if !core.IsQuotaExceeded(err) {
		t.Errorf("Ready = %v, want it to wrap the 45009", err)
	}
	err = c.Ready(t.Context())
	notReady(t, err, core.ReasonLimited)
	var le *core.LimitError
	if !errors.As(err, &le) || !le.Until.Equal(s.Now().Add(core.DefaultErrorBackoff)) {
		t.Errorf("Ready during the back-off = %v, want a *LimitError until now+%v", err, core.DefaultErrorBackoff)
	}
	if n := tokenCalls(s); n != 1 {
		t.Errorf("%d token calls, want 1 (none during the back-off)", n)
	}
	s.Advance(core.DefaultErrorBackoff)
	if err := c.Ready(t.Context()); err != nil {
		t.Errorf("Ready after the back-off: %v", err)
	}
}

// TestReadyNoToken tests that a first fetch that has not answered when ctx
// ends reads as ReasonNoToken wrapping ctx's error, that the fetch goes on,
// and that the next Ready is ready with that one fetch.
func TestReadyNoToken(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	gate := s.Block(wxtest.PathStableToken)
	t.Cleanup(gate.Release)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-gate.Arrived(); cancel() }()
	err := c.Ready(ctx)
	notReady(t, err, core.ReasonNoToken)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Ready = %v, want it to wrap context.Canceled", err)
	}
	gate.Release()
	if err := c.Ready(t.Context()); err != nil {
		t.Errorf("Ready once WeChat answered: %v", err)
	}
	if n := tokenCalls(s); n != 1 {
		t.Errorf("%d token calls, want 1", n)
	}
}

// TestReadyHorizon tests the horizon's rules: a negative ReadyHorizon is 0
// (ready while the token is served), a horizon beyond RefreshAhead is
// clamped to it, and an explicit one is honoured.
func TestReadyHorizon(t *testing.T) {
	for _, c := range []struct {
		name    string
		horizon time.Duration
		left    time.Duration // the held token's time left when Ready is asked
		ready   bool
	}{
		{"Default/3m", 0, 3 * time.Minute, true},
		{"Explicit4m/3m", 4 * time.Minute, 3 * time.Minute, false},
		{"Negative/61s", -1, 61 * time.Second, true},
		{"BeyondRefreshAhead/5m1s", time.Hour, 5*time.Minute + time.Second, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newServer(t)
			store := storetest.NewDown()
			conf := newConf(t, s, func(cfg *core.Config) {
				cfg.Store, cfg.TokenAPI, cfg.ReadyHorizon = store, core.ClassicToken, c.horizon
			})
			tok, err := conf.AccessToken(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			store.Failing.Store(true) // nothing can replace it
			s.Advance(tok.ExpiresAt.Sub(s.Now()) - c.left)
			err = conf.Ready(t.Context())
			if got := err == nil; got != c.ready {
				t.Errorf("ReadyHorizon %v, %v left: Ready = %v, want ready %v", c.horizon, c.left, err, c.ready)
			}
		})
	}
}
