package openplatform_test

// Red-team tests of issue 23's durable-state change (openplatform side).
// Each test states the invariant it attacks; a failing one is a finding.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/storetest"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// rtComponent is ch.component with a durable store of its own, a short
// RefreshTimeout and an optional logger.
func (ch *chain) rtComponent(t *testing.T, durable core.TokenStore, logger *slog.Logger) *openplatform.Component {
	t.Helper()
	return newComponent(t, ch.store, func(cfg *openplatform.Config) {
		cfg.AppSecret = core.NewSecret(componentSecret)
		cfg.Token, cfg.EncodingAESKey = core.NewSecret(pushToken), core.NewSecret(pushKey)
		cfg.BaseURL, cfg.Now, cfg.RetryBackoff = ch.s.URL, ch.s.Now, time.Millisecond
		cfg.DurableStore = durable
		cfg.Policy.RefreshTimeout = 200 * time.Millisecond
		cfg.Logger = logger
	})
}

// waitHeld waits until c holds no durable write.
func waitHeld(t *testing.T, c *openplatform.Component) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // a failure bound, not a pace
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// storedRefreshHonoured reports whether the durable store's refresh token
// for merchant is the one WeChat honours, and why not.
func storedRefreshHonoured(ch *chain, c *openplatform.Component) (bool, string) {
	rt, err := c.RefreshToken(context.Background(), merchant)
	if err != nil {
		return false, err.Error()
	}
	return ch.s.RefreshTokenValid(componentAppID, merchant, rt.Value), "stored refresh token refused by WeChat"
}

// Attack 2 (a store outage) × attack 1 (a late push): an authorization
// held in memory while the durable store is down must not be dropped by
// an OLDER event delivered during the same outage. Heldwrites keeps one
// write per key, the last one asked for, not the newest.
//
// Sequence: authorized (T0) applied; the merchant withdraws (push W at
// T0+10, delayed) and authorizes again (push A2 at T0+20). The store goes
// down; A2 arrives (its code exchanged, the record held); WeChat re-sends
// W, which arrives during the outage too (held, replacing A2's write). The
// store comes back; the held writes drain.
func TestRedteamHeldAuthorizationNotReplacedByOlderHeldWithdrawal(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("single-use=%v", strict), func(t *testing.T) {
			ch := newChain(t)
			ch.s.SingleUseAuthorizationCodes(strict)
			// The durable store takes reads but no writes during the outage:
			// A2's code is exchanged and its record held (a store it cannot
			// read at all makes A2 fail before the exchange: WeChat re-sends
			// it, see below).
			durable := storetest.NewFaulty()
			c := ch.rtComponent(t, durable, nil)
			ch.pushTicket(t, c)
			ch.authorize(t, c, merchant)
			mp := mustPush(t)

			ch.s.Advance(10 * time.Second)
			ch.s.Unauthorize(componentAppID, merchant)
			w := mp(ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey)) // T0+10
			ch.s.Advance(10 * time.Second)
			code2 := ch.s.Authorize(componentAppID, merchant)
			a2 := mp(ch.s.AuthorizedPush(code2, pushToken, pushKey)) // T0+20

			release := make(chan struct{})
			durable.ArmEvery(func(op, key string) bool {
				select {
				case <-release:
					return false
				default:
					return op == "refresh" && strings.HasSuffix(key, "/authorizer_refresh_token")
				}
			}, storetest.Fail)
			if _, err := deliver(t, c, a2.q, a2.body); err == nil {
				t.Fatal("A2 was acknowledged while the durable store is down")
			}
			if _, err := deliver(t, c, w.q, w.body); err == nil {
				t.Fatal("W was acknowledged while the durable store is down")
			}
			close(release)
			waitHeld(t, c)

			if ok, why := storedRefreshHonoured(ch, c); !ok {
				t.Errorf("after the outage the merchant (authorized at WeChat since T0+20) is not authorized in the store: %s", why)
				// WeChat re-sends A2: does it mend it?
				ev, err := deliver(t, ch.rtComponent(t, durable, nil), a2.q, a2.body)
				applied := ""
				if ev != nil {
					applied = ev.Applied
				}
				if ok, why := storedRefreshHonoured(ch, c); !ok {
					t.Errorf("…and A2 re-sent does not mend it: Applied %q, err %v; store: %s", applied, err, why)
				}
			}
		})
	}
}

// hookStore calls hook (once) after the first Get of a key for which
// match holds, before returning that Get's result.
type hookStore struct {
	core.TokenStore
	match func(op, key string) bool
	once  sync.Once
	hook  func()
	armed atomic.Bool
}

func (s *hookStore) fire(op, key string) {
	if s.armed.Load() && s.match(op, key) {
		s.once.Do(func() { s.armed.Store(false); s.hook() })
	}
}

func (s *hookStore) Get(ctx context.Context, key string) (core.Token, error) {
	t, err := s.TokenStore.Get(ctx, key)
	s.fire("get", key)
	return t, err
}

func (s *hookStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	t, err := s.TokenStore.Refresh(ctx, key, stale, fetch)
	if err == nil {
		s.fire("refresh", key)
	}
	return t, err
}

// Attack 1/2: a late authorized push (code1, T0) whose ordering check
// cannot see the newer authorization (code2, T0+30) — the check's store
// read failed, or another instance applied code2 just after this one read
// — still exchanges code1. At WeChat that exchange is a re-authorization
// (the simulator: an unused code's first exchange replaces the refresh
// token), but its write is "older event ignored": the store keeps code2's
// refresh token, which WeChat no longer honours.
func TestRedteamLateAuthorizationExchangedWhenOrderUnknown(t *testing.T) {
	for _, how := range []string{"get-fails", "race"} {
		t.Run(how, func(t *testing.T) {
			ch := newChain(t)
			faulty := storetest.NewFaulty()
			hs := &hookStore{TokenStore: faulty}
			ch.store = hs
			c := ch.component(t)
			other := ch.component(t)
			ch.pushTicket(t, c)
			mp := mustPush(t)
			code1 := ch.s.Authorize(componentAppID, merchant)
			a1 := mp(ch.s.AuthorizedPush(code1, pushToken, pushKey)) // T0, delayed
			ch.s.Advance(30 * time.Second)
			code2 := ch.s.Authorize(componentAppID, merchant)
			a2 := mp(ch.s.AuthorizedPush(code2, pushToken, pushKey)) // T0+30
			isRecord := func(op, key string) bool {
				return op == "get" && strings.HasSuffix(key, merchant+"/authorizer_refresh_token")
			}
			switch how {
			case "get-fails":
				if ev, err := deliver(t, c, a2.q, a2.body); err != nil || ev.Applied != openplatform.AppliedAuthorized {
					t.Fatalf("A2: %+v, %v", ev, err)
				}
				faulty.Arm(isRecord, storetest.Fail) // A1's ordering read fails
			case "race":
				// A1's instance reads the record (nothing yet), then
				// another instance applies A2 before A1 exchanges.
				hs.match, hs.hook = isRecord, func() {
					if ev, err := deliver(t, other, a2.q, a2.body); err != nil || ev.Applied != openplatform.AppliedAuthorized {
						t.Errorf("A2 on the other instance: %+v, %v", ev, err)
					}
				}
				hs.armed.Store(true)
			}
			ev, err := deliver(t, c, a1.q, a1.body)
			t.Logf("late A1: %+v, %v", ev, err)
			if ok, why := storedRefreshHonoured(ch, c); !ok {
				t.Errorf("after the late A1 (Applied %q) the store's refresh token is not the one WeChat honours: %s", ev.Applied, why)
			}
		})
	}
}

// Attack 1 (kept handles): a withdrawal this Component applies while the
// handle's own refresh is between its store write and its adoption must
// still stop the handle serving: "once withdrawn, its AccessToken and Do
// return a *ReauthorizeError and never the dead token".
func TestRedteamWithdrawalDuringRefreshAdoptionIsServed(t *testing.T) {
	ch := newChain(t)
	hs := &hookStore{TokenStore: core.NewMemoryStore()}
	ch.store = hs
	c := ch.component(t)
	ch.pushTicket(t, c)
	ch.authorize(t, c, merchant)
	ch.s.Advance(2 * time.Hour) // the authorizer token expired
	ch.pushTicket(t, c)
	a := c.Authorizer(merchant)
	hs.match = func(op, key string) bool {
		return op == "refresh" && strings.HasSuffix(key, merchant+"/authorizer_refresh_token")
	}
	hs.hook = func() {
		// The refresh's fenced write landed; now the merchant withdraws
		// and this Component applies the push, before the refresh's
		// caller adopts what it fetched.
		ch.s.Unauthorize(componentAppID, merchant)
		q, body, err := ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey)
		if err != nil {
			t.Error(err)
			return
		}
		if ev, err := deliver(t, c, q, body); err != nil || ev.Applied != openplatform.AppliedUnauthorized {
			t.Errorf("the withdrawal: %+v, %v", ev, err)
		}
	}
	hs.armed.Store(true)
	_, _ = a.AccessToken(t.Context()) // the refresh the withdrawal overtakes
	if _, err := c.RefreshToken(t.Context(), merchant); !errors.Is(err, core.ErrRevoked) {
		t.Fatalf("the store does not hold the withdrawal: %v", err)
	}
	for i := range 2 {
		if tok, err := a.AccessToken(t.Context()); !errors.Is(err, core.ErrRevoked) {
			t.Errorf("AccessToken #%d after the withdrawal was applied by this Component = (token served: %v, WeChat takes it: %v), %v; want ErrRevoked",
				i+1, tok.Value != "", ch.s.TokenValid(tok.Value), err)
		}
	}
}

// Attack 1 (same-second tie): the merchant withdraws and authorizes again
// within one second of WeChat's clock. The withdrawal always wins a tie,
// although WeChat voids every code issued before a withdrawal, so a code
// that still exchanges proves the authorization came after it.
func TestRedteamSameSecondReauthorizationAfterWithdrawal(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	ch.pushTicket(t, c)
	ch.authorize(t, c, merchant)
	ch.s.Advance(time.Minute)
	mp := mustPush(t)
	ch.s.Unauthorize(componentAppID, merchant)
	w := mp(ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey))
	code := ch.s.Authorize(componentAppID, merchant) // the same second
	a := mp(ch.s.AuthorizedPush(code, pushToken, pushKey))
	for _, p := range []push{w, a} {
		if _, err := deliver(t, c, p.q, p.body); err != nil {
			t.Fatal(err)
		}
	}
	// Pushes only (the merchant closed the browser before the redirect):
	// WeChat re-sends nothing, both pushes were answered "success".
	if ok, why := storedRefreshHonoured(ch, c); !ok {
		t.Errorf("merchant authorized at WeChat after its withdrawal (same second), both pushes applied: store says %s", why)
	}
	// The redirect of the same code mends it only because it is dated by
	// the local clock's milliseconds, past the push's whole second.
	if _, err := c.Authorize(t.Context(), code); err != nil {
		t.Logf("redirect: %v", err)
	}
	if ok, why := storedRefreshHonoured(ch, c); !ok {
		t.Errorf("…and after the redirect too: %s", why)
	}
}

// A refresh token WeChat refuses (61023) or an authorization it says was
// withdrawn (61003) is a final answer: asking again at once cannot change
// it. Attack 4-ish: is every caller's AccessToken a WeChat call? (The
// unauthorized push was lost: WeChat re-sends it 3 times only.)
func TestRedteamRefusedRefreshTokenIsNotAskedAtEveryCall(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	ch.pushTicket(t, c)
	ch.authorize(t, c, merchant)
	ch.s.Advance(2 * time.Hour)
	ch.pushTicket(t, c)
	ch.s.Unauthorize(componentAppID, merchant) // its push never arrives
	a := c.Authorizer(merchant)
	before := ch.s.Calls(wxtest.PathAuthorizerToken)
	for range 20 {
		if _, err := a.AccessToken(t.Context()); err == nil {
			t.Fatal("a token was served")
		}
	}
	if n := ch.s.Calls(wxtest.PathAuthorizerToken) - before; n > 1 {
		t.Errorf("20 AccessToken calls for a withdrawn merchant made %d api_authorizer_token calls within the same instant, want ≤ 1 (no back-off on 61003)", n)
	}
}

// leaseLostStore simulates, once, a holder whose lease ends mid-fetch: the
// armed Refresh of a key runs the fetch as the holder (the store still
// holding stale), calls during() — the lock is free now, another process
// may take it — and returns core.ErrLockLost without writing.
type leaseLostStore struct {
	core.TokenStore
	key    func(string) bool
	armed  atomic.Bool
	during func()
}

func (s *leaseLostStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if !s.key(key) || !s.armed.CompareAndSwap(true, false) {
		return s.TokenStore.Refresh(ctx, key, stale, fetch)
	}
	cur, err := s.TokenStore.Get(ctx, key)
	if err == nil && cur.Value != stale {
		return cur, nil
	}
	if _, err := fetch(ctx); err != nil {
		return core.Token{}, err
	}
	s.during()
	return core.Token{}, fmt.Errorf("leaselost: refresh %q: %w", key, core.ErrLockLost)
}

// recordAll is a slog.Handler keeping every record's text.
type recordAll struct {
	mu    sync.Mutex
	lines []string
	attrs []slog.Attr
}

func (h *recordAll) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordAll) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordAllChild{h, as}
}
func (h *recordAll) WithGroup(string) slog.Handler { return h }
func (h *recordAll) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value.Resolve()); return true })
	h.mu.Lock()
	h.lines = append(h.lines, b.String())
	h.mu.Unlock()
	return nil
}

type recordAllChild struct {
	*recordAll
	as []slog.Attr
}

func (h *recordAllChild) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(h.as...)
	return h.recordAll.Handle(ctx, r)
}

// secretRuns reports every run of 6+ characters of a secret's random part
// found in text.
func secretRuns(text string, secrets map[string]string) []string {
	var found []string
	for what, v := range secrets {
		if i := strings.LastIndex(v, "@@@"); i >= 0 {
			v = v[i+3:]
		}
		for i := 0; i+6 <= len(v); i++ {
			if strings.Contains(text, v[i:i+6]) {
				found = append(found, fmt.Sprintf("%s (run %q)", what, v[i:i+6]))
				break
			}
		}
	}
	return found
}

// Attack 5: no AppSecret, access token, refresh token, authorization code
// or record JSON in any error, log record or rendering, across the
// durable paths and their faults.
func TestRedteamNoSecretInErrorsLogsOrRenderings(t *testing.T) {
	ch := newChain(t)
	ch.s.RotateRefreshTokens(true)
	ch.s.SingleUseAuthorizationCodes(true)
	log := &recordAll{}
	faulty := storetest.NewFaulty()
	ch.store = faulty
	c := ch.rtComponent(t, faulty, slog.New(log))
	ctx := t.Context()
	secrets := map[string]string{"AppSecret": componentSecret}
	var texts []string
	note := func(what string, err error) {
		if err != nil {
			texts = append(texts, what+": "+err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
	}
	q, body, ticket, err := ch.s.VerifyTicketPush(componentAppID, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	secrets["verify ticket"] = ticket
	ev, err := deliver(t, c, q, body)
	note("ticket", err)
	texts = append(texts, fmt.Sprintf("%v %+v %#v", ev, ev, ev))
	ct, err := c.ComponentAccessToken(ctx)
	note("component token", err)
	secrets["component token"] = ct.Value

	code := ch.s.Authorize(componentAppID, merchant)
	secrets["code"] = code
	p := mustPush(t)(ch.s.AuthorizedPush(code, pushToken, pushKey))
	faulty.Arm(func(op, key string) bool { return op == "refresh" && strings.Contains(key, merchant) }, storetest.Lands)
	ev, err = deliver(t, c, p.q, p.body)
	note("authorized push, write lands but fails", err)
	texts = append(texts, fmt.Sprintf("%v %+v %#v", ev, ev, ev))
	waitHeld(t, c)
	_, err = c.Authorize(ctx, code) // the redirect, strict: 61009 then found applied
	note("redirect", err)
	_, err = c.Authorize(ctx, "queryauthcode@@@notacodeZZ9") // unknown code
	note("unknown code", err)
	secrets["bogus code"] = "queryauthcode@@@notacodeZZ9"

	rt, _ := c.RefreshToken(ctx, merchant)
	secrets["refresh token 1"] = rt.Value
	a := c.Authorizer(merchant)
	tok, err := a.AccessToken(ctx)
	note("access token", err)
	secrets["access token 1"] = tok.Value
	texts = append(texts, fmt.Sprintf("%v %+v %#v %v %+v %#v", a, a, a, c, c, c))

	// A refresh with rotation whose write fails, then one WeChat refuses.
	ch.s.Advance(2 * time.Hour)
	ch.pushTicket(t, c)
	faulty.Arm(func(op, key string) bool { return op == "refresh" && strings.Contains(key, merchant) }, storetest.Fail)
	tok, err = a.AccessToken(ctx)
	note("rotation, write fails", err)
	secrets["access token 2"] = tok.Value
	time.Sleep(1500 * time.Millisecond) // the write-back
	rt, _ = c.RefreshToken(ctx, merchant)
	secrets["refresh token 2"] = rt.Value
	ch.s.InjectFault(wxtest.PathAuthorizerToken, wxtest.Errcode(61023, "refresh_token is invalid"), 1)
	ch.s.Advance(2 * time.Hour)
	ch.pushTicket(t, c)
	_, err = a.AccessToken(ctx)
	note("61023", err)
	// A corrupt record whose JSON holds the refresh token.
	_ = faulty.TokenStore.Set(ctx, c.AuthorizationKey(merchant), core.Token{Value: "wechatconf.authorizer/1{\"state\":\"" + rt.Value + "\",\"refresh_token\":\"" + rt.Value + "\"}"})
	_, err = c.RefreshToken(ctx, merchant)
	note("corrupt record", err)
	_, err = ch.component(t).Authorizer(merchant).AccessToken(ctx)
	note("corrupt record, fresh process", err)
	ch.s.Unauthorize(componentAppID, merchant)
	w := mustPush(t)(ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey))
	ev, err = deliver(t, c, w.q, w.body)
	note("unauthorized", err)
	texts = append(texts, fmt.Sprintf("%v %+v %#v", ev, ev, ev))
	_, err = a.AccessToken(ctx)
	note("withdrawn", err)

	log.mu.Lock()
	texts = append(texts, log.lines...)
	log.mu.Unlock()
	for _, s := range texts {
		if f := secretRuns(s, secrets); len(f) > 0 {
			t.Errorf("%v in: %.300s", f, s)
		}
		if strings.Contains(s, "wechatconf.authorizer/1{") {
			t.Errorf("record JSON in: %.300s", s)
		}
	}
}
