package openplatform_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/storetest"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// deliver hands a push to c and returns what it applied.
func deliver(t *testing.T, c *openplatform.Component, q url.Values, body []byte) (*openplatform.Event, error) {
	t.Helper()
	return c.HandleEvent(t.Context(), q, bytes.NewReader(body))
}

// mustPush returns a push built by a wxtest method.
func mustPush(t *testing.T) func(url.Values, []byte, error) push {
	return func(q url.Values, body []byte, err error) push {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return push{q, body}
	}
}

type push struct {
	q    url.Values
	body []byte
}

// wantServes checks that a fresh process serves merchant a token WeChat
// takes, and that the refresh token the store holds is the one WeChat
// honours.
func (ch *chain) wantServes(t *testing.T, c *openplatform.Component) {
	t.Helper()
	ctx := t.Context()
	if err := callAPI(ctx, ch.component(t).Authorizer(merchant)); err != nil {
		t.Errorf("a call for the merchant: %v", err)
	}
	rt, err := c.RefreshToken(ctx, merchant)
	if err != nil || !ch.s.RefreshTokenValid(componentAppID, merchant, rt.Value) {
		t.Errorf("the stored refresh token is not the one WeChat honours (%v)", err)
	}
}

// Issue 23 §1.1: a late unauthorized push must not destroy a newer
// authorization. The merchant withdraws (push created at T0), authorizes
// again at T0+20 s (applied), and the T0 push arrives again at T0+30 s:
// it is acknowledged and ignored, and replaying any push changes nothing.
func TestLateUnauthorizedPushIsIgnored(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	ch.pushTicket(t, c)
	ch.authorize(t, c, merchant)
	mp := mustPush(t)

	ch.s.Advance(time.Second) // a withdrawal in the authorization's second would tie (see replacedBy)
	ch.s.Unauthorize(componentAppID, merchant)
	withdrawal := mp(ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey)) // CreateTime T0
	if ev, err := deliver(t, c, withdrawal.q, withdrawal.body); err != nil || ev.Applied != openplatform.AppliedUnauthorized {
		t.Fatalf("the withdrawal: %+v, %v", ev, err)
	}
	if ev, err := deliver(t, ch.component(t), withdrawal.q, withdrawal.body); err != nil || ev.Applied != openplatform.AppliedAlready {
		t.Fatalf("the withdrawal delivered again: Applied %q, %v; want %q", ev.Applied, err, openplatform.AppliedAlready)
	}
	ch.s.Advance(20 * time.Second)
	code := ch.s.Authorize(componentAppID, merchant)
	auth := mp(ch.s.AuthorizedPush(code, pushToken, pushKey)) // CreateTime T0+20s
	if ev, err := deliver(t, c, auth.q, auth.body); err != nil || ev.Applied != openplatform.AppliedAuthorized {
		t.Fatalf("the re-authorization: %+v, %v", ev, err)
	}
	ch.s.Advance(10 * time.Second)
	// WeChat re-sends the T0 push, to another instance.
	if ev, err := deliver(t, ch.component(t), withdrawal.q, withdrawal.body); err != nil || ev.Applied != openplatform.AppliedOlderIgnored {
		t.Fatalf("the late withdrawal: Applied %q, %v; want %q", ev.Applied, err, openplatform.AppliedOlderIgnored)
	}
	if ev, err := deliver(t, c, auth.q, auth.body); err != nil || ev.Applied != openplatform.AppliedAlready {
		t.Fatalf("the authorization delivered again: Applied %q, %v; want %q", ev.Applied, err, openplatform.AppliedAlready)
	}
	if _, err := c.Authorizer(merchant).AccessToken(t.Context()); err != nil {
		t.Fatalf("AccessToken after the late withdrawal: %v", err)
	}
	ch.wantServes(t, c)
}

// An authorization older than the withdrawal the store holds (its push
// delayed) is ignored without exchanging its code.
func TestLateAuthorizedPushIsIgnored(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	ch.pushTicket(t, c)
	mp := mustPush(t)
	code := ch.s.Authorize(componentAppID, merchant)
	auth := mp(ch.s.AuthorizedPush(code, pushToken, pushKey)) // T0
	ch.s.Advance(time.Minute)
	ch.s.Unauthorize(componentAppID, merchant)
	withdrawal := mp(ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey)) // T0+1m
	if ev, err := deliver(t, c, withdrawal.q, withdrawal.body); err != nil || ev.Applied != openplatform.AppliedUnauthorized {
		t.Fatalf("the withdrawal: %+v, %v", ev, err)
	}
	calls := ch.s.Calls(wxtest.PathQueryAuth)
	if ev, err := deliver(t, c, auth.q, auth.body); err != nil || ev.Applied != openplatform.AppliedOlderIgnored {
		t.Fatalf("the late authorization: Applied %q, %v; want %q", ev.Applied, err, openplatform.AppliedOlderIgnored)
	}
	if n := ch.s.Calls(wxtest.PathQueryAuth) - calls; n != 0 {
		t.Errorf("the late authorization made %d code exchanges, want 0", n)
	}
	if _, err := c.Authorizer(merchant).AccessToken(t.Context()); !errors.Is(err, core.ErrRevoked) {
		t.Errorf("AccessToken after a late authorization of a withdrawn merchant = %v, want ErrRevoked", err)
	}
}

// Issue 23 §1.3: one authorization, two deliveries — the redirect's code
// and the authorized push — in either order, with WeChat answering a
// second exchange of the code (the default) or refusing it (61009): the
// second delivery changes nothing and does not fail.
func TestOneAuthorizationTwoDeliveries(t *testing.T) {
	for _, strict := range []bool{false, true} {
		for _, pushFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("single-use=%v/push-first=%v", strict, pushFirst), func(t *testing.T) {
				ch := newChain(t)
				ch.s.SingleUseAuthorizationCodes(strict)
				c := ch.component(t)
				ch.pushTicket(t, c)
				code := ch.s.Authorize(componentAppID, merchant)
				p := mustPush(t)(ch.s.AuthorizedPush(code, pushToken, pushKey))
				redirect := func(c *openplatform.Component) error {
					a, err := c.Authorize(t.Context(), code)
					if err == nil && a.AppID() != merchant {
						err = fmt.Errorf("handle of %s", a.AppID())
					}
					return err
				}
				viaPush := func(c *openplatform.Component) error {
					ev, err := deliver(t, c, p.q, p.body)
					if err == nil && ev.Applied != openplatform.AppliedAuthorized && ev.Applied != openplatform.AppliedAlready {
						err = fmt.Errorf("Applied %q", ev.Applied)
					}
					return err
				}
				first, second := redirect, viaPush
				if pushFirst {
					first, second = viaPush, redirect
				}
				if err := first(c); err != nil {
					t.Fatalf("first delivery: %v", err)
				}
				rt, _ := c.RefreshToken(t.Context(), merchant)
				for i := range 3 { // the second delivery, and WeChat's re-sends, on other instances
					if err := second(ch.component(t)); err != nil {
						t.Fatalf("delivery %d: %v", i+2, err)
					}
				}
				if again, _ := c.RefreshToken(t.Context(), merchant); again.Value != rt.Value {
					t.Error("a second delivery replaced the stored refresh token")
				}
				ch.wantServes(t, c)
			})
		}
	}
}

// Issue 23 §1.2 (Authorize): the authorization code is single-use at
// WeChat's end, so a store error after the exchange must not lose the
// authorization. One fault at the record's write, failing or landing but
// reported failed: the write is held and written when the store answers,
// or (a process that died holding it) the re-sent push brings it again.
func TestAuthorizationSurvivesAStoreError(t *testing.T) {
	for _, fault := range []storetest.Fault{storetest.Fail, storetest.Lands} {
		for _, crash := range []bool{false, true} {
			t.Run(fmt.Sprintf("fault=%d/crash=%v", fault, crash), func(t *testing.T) {
				ch := newChain(t)
				// The strict reading (a spent code is 61009) while this
				// process lives; a process that died holding the write
				// needs WeChat to answer the re-sent push's code again
				// (the default): under the strict reading nothing can
				// save an authorization whose reply died with its process.
				ch.s.SingleUseAuthorizationCodes(!crash)
				store := &storetest.Faulty{TokenStore: core.NewMemoryStore()}
				ch.store = store
				events := &eventLog{}
				c := newComponent(t, store, func(cfg *openplatform.Config) {
					cfg.AppSecret = core.NewSecret(componentSecret)
					cfg.Token, cfg.EncodingAESKey = core.NewSecret(pushToken), core.NewSecret(pushKey)
					cfg.BaseURL, cfg.Now, cfg.RetryBackoff = ch.s.URL, ch.s.Now, time.Millisecond
					cfg.Policy.RefreshTimeout = 200 * time.Millisecond // the foreground retries end quickly
					cfg.Logger = slog.New(events)
				})
				ch.pushTicket(t, c)
				code := ch.s.Authorize(componentAppID, merchant)
				p := mustPush(t)(ch.s.AuthorizedPush(code, pushToken, pushKey))
				// Every write of the record fails until released.
				release := make(chan struct{})
				store.ArmEvery(func(op, key string) bool {
					if op != "refresh" || !strings.HasSuffix(key, "/authorizer_refresh_token") {
						return false
					}
					select {
					case <-release:
						return false
					default:
						return true
					}
				}, fault)
				_, err := deliver(t, c, p.q, p.body)
				if fault == storetest.Fail && err == nil {
					t.Fatal("the push was acknowledged while its authorization is not in the store")
				}
				if err != nil && strings.Contains(err.Error(), "refreshtoken@@@") {
					t.Errorf("the error shows a refresh token: %v", err)
				}
				if crash {
					// The process died holding the write (its store stays
					// broken to it until the test ends): WeChat re-sends the
					// push (it was not answered "success"), to another
					// instance.
					t.Cleanup(func() { close(release) })
					ch.store = store.TokenStore
					if ev, err := deliver(t, ch.component(t), p.q, p.body); err != nil {
						t.Fatalf("the re-sent push: %v", err)
					} else if ev.Applied != openplatform.AppliedAuthorized && ev.Applied != openplatform.AppliedAlready {
						t.Fatalf("the re-sent push: Applied %q", ev.Applied)
					}
				} else {
					close(release)
					if err != nil {
						events.await(t, core.EventWrittenBack)
					}
				}
				ch.wantServes(t, c)
			})
		}
	}
}

// Issue 23 §1.4: a handle a caller kept, dropped from the registry by
// other lookups, must see a withdrawal this process applies.
func TestKeptHandleEvictedSeesWithdrawal(t *testing.T) {
	ch := newChain(t)
	c := newComponent(t, ch.store, func(cfg *openplatform.Config) {
		cfg.AppSecret = core.NewSecret(componentSecret)
		cfg.Token, cfg.EncodingAESKey = core.NewSecret(pushToken), core.NewSecret(pushKey)
		cfg.BaseURL, cfg.Now, cfg.RetryBackoff = ch.s.URL, ch.s.Now, time.Millisecond
		cfg.MaxAuthorizers = 10
	})
	ch.pushTicket(t, c)
	ch.authorize(t, c, merchant)
	kept := c.Authorizer(merchant)
	if _, err := kept.AccessToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range 4000 {
		c.Authorizer(fmt.Sprintf("wxother%05d", i))
	}
	if _, evicted := c.Stats(); evicted == 0 {
		t.Fatal("no handle was evicted")
	}
	if c.Authorizer(merchant) != kept {
		t.Error("a kept handle was not handed out again")
	}
	ch.s.Advance(time.Second) // a withdrawal in the authorization's second would tie (see replacedBy)
	ch.s.Unauthorize(componentAppID, merchant)
	p := mustPush(t)(ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey))
	if _, err := deliver(t, c, p.q, p.body); err != nil {
		t.Fatal(err)
	}
	if tok, err := kept.AccessToken(t.Context()); !errors.Is(err, core.ErrRevoked) {
		t.Fatalf("the kept handle after the withdrawal: token served %v, error %v; want ErrRevoked", tok.Value != "", err)
	}
}

// eventLog is a slog.Handler that records event names and lets a test
// wait for one.
type eventLog struct {
	mu     sync.Mutex
	seen   map[string]int
	notify chan struct{}
}

func (l *eventLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *eventLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *eventLog) WithGroup(string) slog.Handler            { return l }
func (l *eventLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]int{}
	}
	l.seen[r.Message]++
	if l.notify != nil {
		close(l.notify)
		l.notify = nil
	}
	return nil
}

// await waits until an event named name was logged (30 s bound a
// failure, not a pace).
func (l *eventLog) await(t *testing.T, name string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		if l.seen[name] > 0 {
			l.mu.Unlock()
			return
		}
		ch := make(chan struct{})
		l.notify = ch
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no %s event", name)
		}
	}
}

// A redirect applied by a process whose clock is behind WeChat's is dated
// too early; the authorized push of the same code gives it WeChat's time,
// so that the withdrawal before it, delivered late, does not undo it
// (found by a new user's trial: the merchant was withdrawn for good).
func TestRedirectWithASlowClockIsRedatedByItsPush(t *testing.T) {
	ch := newChain(t)
	slow := func() time.Time { return ch.s.Now().Add(-time.Minute) }
	c := newComponent(t, ch.store, func(cfg *openplatform.Config) {
		cfg.AppSecret = core.NewSecret(componentSecret)
		cfg.Token, cfg.EncodingAESKey = core.NewSecret(pushToken), core.NewSecret(pushKey)
		cfg.BaseURL, cfg.Now, cfg.RetryBackoff = ch.s.URL, slow, time.Millisecond
	})
	mp := mustPush(t)
	ch.pushTicket(t, c)
	ch.authorize(t, c, merchant)
	ch.s.Advance(time.Second)
	ch.s.Unauthorize(componentAppID, merchant)
	withdrawal := mp(ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey)) // T
	ch.s.Advance(30 * time.Second)
	code := ch.s.Authorize(componentAppID, merchant)
	if _, err := c.Authorize(t.Context(), code); err != nil { // dated T+30s-1m by the slow clock
		t.Fatal(err)
	}
	p := mp(ch.s.AuthorizedPush(code, pushToken, pushKey)) // T+30s
	if ev, err := deliver(t, c, p.q, p.body); err != nil || ev.Applied != openplatform.AppliedAlready {
		t.Fatalf("the authorized push after the redirect: %+v, %v", ev, err)
	}
	for range 2 {
		if ev, err := deliver(t, c, withdrawal.q, withdrawal.body); err != nil || ev.Applied != openplatform.AppliedOlderIgnored {
			t.Fatalf("the late withdrawal: Applied %q, %v; want %q", ev.Applied, err, openplatform.AppliedOlderIgnored)
		}
	}
	ch.wantServes(t, c)
}

// ParseAuthorizationRecord reads what the store holds for an authorizer,
// through every state, and never shows a token when printed.
func TestParseAuthorizationRecord(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	ch.pushTicket(t, c)
	ch.authorize(t, c, merchant)
	ctx := t.Context()
	stored, err := ch.store.Get(ctx, c.AuthorizationKey(merchant))
	if err != nil {
		t.Fatal(err)
	}
	r, err := openplatform.ParseAuthorizationRecord(stored)
	rt, _ := c.RefreshToken(ctx, merchant)
	switch {
	case err != nil:
		t.Fatal(err)
	case r.Withdrawn || r.RefreshToken.Reveal() != rt.Value || !ch.s.TokenValid(r.AccessToken.Reveal()) || !r.ExpiresAt.After(ch.s.Now()) || r.Since.IsZero():
		t.Errorf("authorized record: withdrawn %v, refresh token right %v, access token valid %v, expires %v, since %v",
			r.Withdrawn, r.RefreshToken.Reveal() == rt.Value, ch.s.TokenValid(r.AccessToken.Reveal()), r.ExpiresAt, r.Since)
	}
	if s := fmt.Sprintf("%v %+v %#v", r, r, r); strings.Contains(s, rt.Value) || strings.Contains(s, r.AccessToken.Reveal()) {
		t.Error("a printed record shows a token")
	}
	if err := c.Unauthorize(ctx, merchant); err != nil {
		t.Fatal(err)
	}
	stored, _ = ch.store.Get(ctx, c.AuthorizationKey(merchant))
	if r, err := openplatform.ParseAuthorizationRecord(stored); err != nil || !r.Withdrawn || !r.RefreshToken.IsZero() {
		t.Errorf("withdrawn record: %+v, %v", r, err)
	}
	if r, err := openplatform.ParseAuthorizationRecord(core.Token{Value: "refreshtoken@@@legacy"}); err != nil || r.Withdrawn || r.RefreshToken.Reveal() != "refreshtoken@@@legacy" || !r.Since.IsZero() {
		t.Errorf("an earlier version's bare refresh token: %+v, %v", r, err)
	}
	for _, bad := range []string{"wechatconf.authorizer/1{", "wechatconf.authorizer/1{\"state\":\"authorized\"}", "has space"} {
		if _, err := openplatform.ParseAuthorizationRecord(core.Token{Value: bad}); !errors.Is(err, core.ErrCorrupt) {
			t.Errorf("ParseAuthorizationRecord(%q) = %v, want ErrCorrupt", bad, err)
		}
	}
}
