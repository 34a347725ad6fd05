package openplatform_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const newComponentSecret = "c0mp0nent-s3cret-after-reset"

// The component_appsecret reset in the Open Platform console: components
// reading it from Config.AppSecretSource get one 40125 each
// (ErrSecretRefused), then *LimitErrors with no api_component_token call
// and no source read inside ErrorBackoff, and recover after it with one
// read, no restart.
func TestAppSecretSourceRotation(t *testing.T) {
	ch := newChain(t)
	ctx := t.Context()
	var mu sync.Mutex
	current := componentSecret
	reads := make([]atomic.Int32, 2)
	fleet := make([]*openplatform.Component, 2)
	for i := range fleet {
		fleet[i] = newComponent(t, ch.store, func(cfg *openplatform.Config) {
			cfg.AppSecret = core.Secret{}
			cfg.AppSecretSource = func(context.Context) (core.Secret, error) {
				reads[i].Add(1)
				mu.Lock()
				defer mu.Unlock()
				return core.NewSecret(current), nil
			}
			cfg.Token, cfg.EncodingAESKey = core.NewSecret(pushToken), core.NewSecret(pushKey)
			cfg.BaseURL, cfg.Now, cfg.RetryBackoff = ch.s.URL, ch.s.Now, time.Millisecond
		})
	}
	ch.pushTicket(t, fleet[0])
	if _, err := fleet[0].ComponentAccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	ch.s.SetComponentSecret(componentAppID, newComponentSecret)
	ch.s.Advance(2 * 7200 * time.Second)
	ch.pushTicket(t, fleet[0]) // a fresh ticket: only the secret is wrong
	calls := ch.s.Calls(wxtest.PathComponentToken)
	for i, c := range fleet {
		_, err := c.ComponentAccessToken(ctx)
		var ae *core.APIError
		if !errors.Is(err, core.ErrSecretRefused) || !errors.As(err, &ae) || ae.Code != 40125 {
			t.Fatalf("component %d after the reset: %v; want ErrSecretRefused wrapping errcode 40125", i+1, err)
		}
		if strings.Contains(err.Error(), componentSecret) {
			t.Errorf("component %d: the error holds the secret", i+1)
		}
	}
	mu.Lock()
	current = newComponentSecret
	mu.Unlock()
	for i, c := range fleet {
		var le *core.LimitError
		if _, err := c.ComponentAccessToken(ctx); !errors.As(err, &le) || le.Limit != "ErrorBackoff" {
			t.Fatalf("component %d inside ErrorBackoff: %v; want a *LimitError", i+1, err)
		}
	}
	if n := ch.s.Calls(wxtest.PathComponentToken) - calls; n != len(fleet) {
		t.Errorf("%d api_component_token calls with the refused secret, want %d", n, len(fleet))
	}
	ch.s.Advance(core.DefaultErrorBackoff)
	ch.pushTicket(t, fleet[0])
	tok, err := fleet[0].ComponentAccessToken(ctx)
	if err != nil {
		t.Fatalf("component 1 after ErrorBackoff: %v", err)
	}
	if got, err := fleet[1].ComponentAccessToken(ctx); err != nil || got.Value != tok.Value {
		t.Errorf("component 2: %v; want the stored token", err)
	}
	if a, b := reads[0].Load(), reads[1].Load(); a != 2 || b != 1 {
		t.Errorf("sources read %d and %d times, want 2 and 1", a, b)
	}
	if _, err := openplatform.New(openplatform.Config{AppID: componentAppID, AppSecret: core.NewSecret(componentSecret), AppSecretSource: core.StaticSecret(core.NewSecret(componentSecret))}); err == nil {
		t.Error("New with both AppSecret and AppSecretSource succeeded")
	}
}
