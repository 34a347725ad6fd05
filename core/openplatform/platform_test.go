package openplatform_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/storetest"
	"github.com/wechatconf/wechatconf/core/openplatform"
)

// platformLog records the "credential" and "platform" of every wechatconf
// event.
type platformLog struct {
	mu  sync.Mutex
	evs []platformEvent
}

type platformEvent struct{ msg, credential, platform string }

func (l *platformLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *platformLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *platformLog) WithGroup(string) slog.Handler            { return l }
func (l *platformLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "wechatconf.") {
		return nil
	}
	e := platformEvent{msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "credential":
			e.credential = a.Value.String()
		case "platform":
			e.platform = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, e)
	return nil
}

func (l *platformLog) events() []platformEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]platformEvent(nil), l.evs...)
}

// Every event of the Open Platform carries "platform": the component's
// credentials (its token, its verify ticket) open_platform_component, an
// authorizer's (its token, its record's durable writes, the tickets of its
// Conf) open_platform_authorizer.
func TestEventsCarryPlatform(t *testing.T) {
	ch := newChain(t)
	store := &storetest.Faulty{TokenStore: core.NewMemoryStore()}
	ch.store = store
	events := &platformLog{}
	c := newComponent(t, store, func(cfg *openplatform.Config) {
		cfg.AppSecret = core.NewSecret(componentSecret)
		cfg.Token, cfg.EncodingAESKey = core.NewSecret(pushToken), core.NewSecret(pushKey)
		cfg.BaseURL, cfg.Now, cfg.RetryBackoff = ch.s.URL, ch.s.Now, time.Millisecond
		cfg.Logger = slog.New(events)
	})
	ctx := t.Context()
	ch.pushTicket(t, c)
	// The first write of the authorizer's record fails (an
	// EventStoreError of a durable write, retried at once).
	failed := store.Arm(func(op, key string) bool {
		return op == "refresh" && strings.HasSuffix(key, "/authorizer_refresh_token")
	}, storetest.Fail)
	ch.authorize(t, c, merchant)
	<-failed
	a := c.Authorizer(merchant)
	if _, err := a.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.JSAPITicket(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ComponentAccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.AccessTokenCredential().Platform(); got != core.PlatformOpenPlatformAuthorizer {
		t.Errorf("authorizer credential's Platform() = %q, want %q", got, core.PlatformOpenPlatformAuthorizer)
	}

	want := map[string]core.Platform{
		"component_access_token":   core.PlatformOpenPlatformComponent,
		"component_verify_ticket":  core.PlatformOpenPlatformComponent,
		"authorizer_access_token":  core.PlatformOpenPlatformAuthorizer,
		"authorizer_refresh_token": core.PlatformOpenPlatformAuthorizer,
		"jsapi_ticket":             core.PlatformOpenPlatformAuthorizer,
	}
	seen := map[string]bool{}
	for _, e := range events.events() {
		if e.credential == "" {
			continue // EventRetry: none was made
		}
		seen[e.credential+" "+e.msg] = true
		if w, ok := want[e.credential]; !ok {
			t.Errorf("%s of unexpected credential %q", e.msg, e.credential)
		} else if e.platform != string(w) {
			t.Errorf("%s (credential %q): platform %q, want %q", e.msg, e.credential, e.platform, w)
		}
	}
	for _, k := range []string{
		"component_access_token " + core.EventFetched,
		"authorizer_refresh_token " + core.EventStoreError,
		"jsapi_ticket " + core.EventFetched,
	} {
		if !seen[k] {
			t.Errorf("no event %q among %v", k, seen)
		}
	}
}
