package wecom_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecom"
)

const newSecret1 = "wecom-secret-after-the-reset-abc"

// An app's Secret reset in the admin console: a fleet of apps reading it
// from Config.SecretSource gets one 40001 each (ErrSecretRefused), then
// *LimitErrors with no gettoken call and no source read inside
// ErrorBackoff, and recovers after it with one read, no restart; the token
// the first one fetched is served to the others from the store.
func TestSecretSourceRotation(t *testing.T) {
	s := newWeCom(t)
	store := core.NewMemoryStore()
	ctx := t.Context()
	var mu sync.Mutex
	current := secret1
	reads := make([]atomic.Int32, 3)
	fleet := make([]*wecom.App, 3)
	for i := range fleet {
		fleet[i] = newApp(t, s, store, agent1, "", func(c *wecom.Config) {
			c.Secret = core.Secret{}
			c.SecretSource = func(context.Context) (core.Secret, error) {
				reads[i].Add(1)
				mu.Lock()
				defer mu.Unlock()
				return core.NewSecret(current), nil
			}
		})
	}
	for i, a := range fleet {
		if _, err := a.AccessToken(ctx); err != nil {
			t.Fatalf("app %d: %v", i+1, err)
		}
	}
	s.SetWeComSecret(corpID, agent1, newSecret1)
	s.Advance(2 * 7200 * time.Second)
	calls := s.Calls(wecom.PathToken)
	for i, a := range fleet {
		_, err := a.AccessToken(ctx)
		var ae *core.APIError
		if !errors.Is(err, core.ErrSecretRefused) || !errors.As(err, &ae) || ae.Code != 40001 {
			t.Fatalf("app %d after the reset: %v; want ErrSecretRefused wrapping errcode 40001", i+1, err)
		}
		if strings.Contains(err.Error(), secret1) {
			t.Errorf("app %d: the error holds the secret", i+1)
		}
	}
	mu.Lock()
	current = newSecret1
	mu.Unlock()
	for i, a := range fleet {
		var le *core.LimitError
		if _, err := a.AccessToken(ctx); !errors.As(err, &le) || le.Limit != "ErrorBackoff" {
			t.Fatalf("app %d inside ErrorBackoff: %v; want a *LimitError", i+1, err)
		}
	}
	if n := s.Calls(wecom.PathToken) - calls; n != len(fleet) {
		t.Errorf("%d gettoken calls with the refused secret, want %d (one per app)", n, len(fleet))
	}
	s.Advance(core.DefaultErrorBackoff)
	tok, err := fleet[0].AccessToken(ctx)
	if err != nil {
		t.Fatalf("app 1 after ErrorBackoff: %v; want a token", err)
	}
	if err := callAgent(ctx, fleet[0]); err != nil {
		t.Fatalf("the token fetched with the new secret does not work: %v", err)
	}
	for i, a := range fleet[1:] {
		if got, err := a.AccessToken(ctx); err != nil || got.Value != tok.Value {
			t.Errorf("app %d: %v; want the stored token", i+2, err)
		}
	}
	for i := range reads {
		want := int32(1)
		if i == 0 {
			want = 2
		}
		if n := reads[i].Load(); n != want {
			t.Errorf("app %d: source read %d times, want %d", i+1, n, want)
		}
	}
	if _, err := wecom.New(wecom.Config{CorpID: corpID, AgentID: agent1, Secret: core.NewSecret(secret1), SecretSource: core.StaticSecret(core.NewSecret(secret1))}); err == nil {
		t.Error("New with both Secret and SecretSource succeeded")
	}
}
