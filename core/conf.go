package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// Conf keeps an Official Account's credentials valid — the access_token,
// the jsapi_ticket and the wx_card api_ticket — through a TokenStore, and
// calls the WeChat API with them. It is the Go successor of the seed's
// WechatConf. A Conf is safe for concurrent use; build it with New.
//
// How a credential is served:
//
//   - Hot path: a valid in-process copy is returned with no I/O and no lock
//     (one atomic load and a clock read).
//   - Refresh ahead: once the copy is within Config.RefreshAhead of its
//     expiry, one background refresh starts and callers keep getting the
//     still-valid copy.
//   - Cold path: with no valid copy, the store is read; if it holds a valid
//     token that one is used, otherwise Store.Refresh is called with the
//     stale value. One refresh per credential is in flight per Conf at a
//     time; every other caller waits for it with its own ctx.
//   - Rejected token: RefreshAccessToken(ctx, rejected) is a
//     compare-and-refresh, so a thousand workers that see the same token
//     rejected cause one fetch. Do calls it by itself on 40001/40014/42001.
type Conf struct {
	cfg  Config
	base time.Time // the clock's reading at New; deadlines are kept as offsets from it

	// crypt and prevCrypt encrypt and decrypt pushed messages with
	// EncodingAESKey and PreviousEncodingAESKey; nil when not configured.
	crypt, prevCrypt *msgcrypt.Crypter

	access, jsapi, card *credential
}

// New validates cfg the way the seed's WechatConf does and returns a Conf.
// It does no I/O: initial values are written to the store on first use.
func New(cfg Config) (*Conf, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Conf{cfg: cfg}
	var err error
	if cfg.EncodingAESKey != "" {
		if c.crypt, err = msgcrypt.New(cfg.Token, cfg.EncodingAESKey, cfg.AppID); err != nil {
			return nil, fmt.Errorf("wechatconf: EncodingAESKey: %w", err)
		}
	}
	if cfg.PreviousEncodingAESKey != "" {
		if c.prevCrypt, err = msgcrypt.New(cfg.Token, cfg.PreviousEncodingAESKey, cfg.AppID); err != nil {
			return nil, fmt.Errorf("wechatconf: PreviousEncodingAESKey: %w", err)
		}
	}
	c.base = c.now()
	base := cfg.KeyPrefix + "/" + cfg.AppID + "/"
	c.access = &credential{conf: c, name: "access_token", key: base + "access_token", initial: cfg.AccessToken, fetch: c.fetchAccessToken}
	c.jsapi = &credential{conf: c, name: "jsapi_ticket", key: base + "jsapi_ticket", initial: cfg.JSAPITicket, fetch: c.ticketFetcher("jsapi")}
	c.card = &credential{conf: c, name: "wx_card_ticket", key: base + "wx_card_ticket", initial: cfg.CardTicket, fetch: c.ticketFetcher("wx_card")}
	return c, nil
}

// String describes c without its secrets.
func (c *Conf) String() string { return "core.Conf" + c.cfg.String()[len("core.Config"):] }

// GoString is String, so that %#v redacts the AppSecret too.
func (c *Conf) GoString() string { return c.String() }

// now reads the clock.
func (c *Conf) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

// elapsed returns the clock's reading as an offset from c.base, the unit of
// the hot path's deadlines. On the system clock it reads only the monotonic
// clock (time.Since), which costs half of time.Now.
func (c *Conf) elapsed() int64 {
	if c.cfg.Now != nil {
		return int64(c.cfg.Now().Sub(c.base))
	}
	return int64(time.Since(c.base))
}

// AppID returns the configured AppID.
func (c *Conf) AppID() string { return c.cfg.AppID }

// EncryptMode returns the message encryption mode (after defaulting).
func (c *Conf) EncryptMode() EncryptMode { return c.cfg.EncryptMode }

// AccessToken returns a valid access_token and its expiry (the seed's
// get_access_token()), fetching or reading it from the store as needed.
func (c *Conf) AccessToken(ctx context.Context) (Token, error) { return c.access.get(ctx) }

// JSAPITicket returns a valid jsapi_ticket (for JS-SDK signatures) and its
// expiry (the seed's get_jsapi_ticket()).
func (c *Conf) JSAPITicket(ctx context.Context) (Token, error) { return c.jsapi.get(ctx) }

// CardTicket returns a valid wx_card api_ticket and its expiry.
func (c *Conf) CardTicket(ctx context.Context) (Token, error) { return c.card.get(ctx) }

// RefreshAccessToken replaces an access_token that WeChat rejected
// (40001, 40014, 42001), but only if the store still holds rejected: if
// another goroutine, process or machine already replaced it, the newer token
// is returned and WeChat is not called. Call it when you use the token
// yourself and WeChat rejects it; Do calls it for you.
func (c *Conf) RefreshAccessToken(ctx context.Context, rejected string) (Token, error) {
	return c.access.refresh(ctx, rejected)
}

// credential is one credential a Conf keeps valid.
type credential struct {
	conf    *Conf
	name    string // for errors and logs
	key     string // the store key
	initial Token  // Config's initial value, checked against the store once
	fetch   FetchFunc

	cur       atomic.Pointer[held] // the in-process copy, nil until first load
	seeded    atomic.Bool          // initial value handled
	bgRunning atomic.Bool          // a background refresh is in flight
	bgNotTill atomic.Int64         // elapsed() before which no background refresh starts

	mu     sync.Mutex
	flight *flight // the refresh in flight, nil if none
}

// held is the in-process copy of a token with its two deadlines
// precomputed as Conf.elapsed() offsets.
type held struct {
	Token
	refreshAt int64 // ExpiresAt - RefreshAhead: background refresh from here
	expireAt  int64 // ExpiresAt - ExpiryMargin: not served from here
}

// flight is one refresh of a credential, shared by every caller that asks
// while it runs.
type flight struct {
	stale string
	done  chan struct{} // closed when tok and err are set
	tok   Token
	err   error
}

// bgRetryInterval is how long the hot path waits before starting another
// background refresh after one failed or brought no newer token.
const bgRetryInterval = 15 * time.Second

// get is the hot path, kept small enough to be inlined: a fresh copy is
// returned at once, anything else goes to getSlow.
func (cr *credential) get(ctx context.Context) (Token, error) {
	if h := cr.cur.Load(); h != nil && cr.conf.elapsed() < h.refreshAt {
		return h.Token, nil
	}
	return cr.getSlow(ctx)
}

// getSlow serves a copy inside its refresh-ahead window (starting the
// background refresh) and refreshes a missing or expired one.
func (cr *credential) getSlow(ctx context.Context) (Token, error) {
	h := cr.cur.Load()
	if h == nil {
		return cr.refresh(ctx, "")
	}
	now := cr.conf.elapsed()
	if now < h.expireAt {
		if now >= h.refreshAt {
			cr.refreshAhead(h, now)
		}
		return h.Token, nil
	}
	return cr.refresh(ctx, h.Value)
}

// refreshAhead starts one background refresh of h unless one is running or
// the last one was too recent.
func (cr *credential) refreshAhead(h *held, now int64) {
	if now < cr.bgNotTill.Load() || !cr.bgRunning.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer cr.bgRunning.Store(false)
		t, err := cr.refresh(context.Background(), h.Value)
		switch {
		case err != nil:
			cr.conf.cfg.Logger.Warn("wechatconf: background refresh failed; serving the current token", "credential", cr.name, "expires_at", h.ExpiresAt, "error", err)
		case !cr.conf.now().Before(t.ExpiresAt.Add(-cr.conf.cfg.RefreshAhead)):
			cr.conf.cfg.Logger.Info("wechatconf: background refresh brought no newer token", "credential", cr.name, "expires_at", t.ExpiresAt)
		default:
			return
		}
		cr.bgNotTill.Store(cr.conf.elapsed() + int64(bgRetryInterval))
	}()
}

// refresh returns a valid token other than stale, joining the refresh in
// flight or starting one. The refresh runs detached from ctx (bounded by
// Config.RefreshTimeout) so that a caller that gives up does not fail the
// others; ctx only bounds this caller's wait.
func (cr *credential) refresh(ctx context.Context, stale string) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, fmt.Errorf("wechatconf: %s: %w", cr.name, err)
	}
	for joined := false; ; joined = true {
		cr.mu.Lock()
		if h := cr.cur.Load(); h != nil && h.Value != stale && cr.conf.elapsed() < h.expireAt {
			cr.mu.Unlock()
			return h.Token, nil // replaced while we were on our way here
		}
		f := cr.flight
		if f == nil {
			f = &flight{stale: stale, done: make(chan struct{})}
			cr.flight = f
			go cr.run(context.WithoutCancel(ctx), f)
		}
		cr.mu.Unlock()

		select {
		case <-f.done:
		case <-ctx.Done():
			return Token{}, fmt.Errorf("wechatconf: %s: %w", cr.name, ctx.Err())
		}
		// A flight started for another stale value can bring back the very
		// token this caller saw rejected: then start one of our own, once.
		if f.err == nil && stale != "" && f.tok.Value == stale && f.stale != stale && !joined {
			continue
		}
		return f.tok, f.err
	}
}

// run performs flight f and publishes its result.
func (cr *credential) run(ctx context.Context, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, cr.conf.cfg.RefreshTimeout)
	defer cancel()
	tok, err := cr.load(ctx, f.stale)
	cr.mu.Lock()
	if err == nil {
		cr.adopt(tok)
	}
	f.tok, f.err = tok, err
	cr.flight = nil
	cr.mu.Unlock()
	close(f.done)
}

// adopt makes tok the in-process copy.
func (cr *credential) adopt(tok Token) {
	c := cr.conf
	now := c.now()
	at := int64(now.Sub(c.base))
	left := int64(tok.ExpiresAt.Sub(now)) // wall-clock time to expiry
	cr.cur.Store(&held{
		Token:     tok,
		refreshAt: at + left - int64(c.cfg.RefreshAhead),
		expireAt:  at + left - int64(c.cfg.ExpiryMargin),
	})
}

// usable reports whether t may be served at now.
func (cr *credential) usable(t Token, now time.Time) bool {
	return t.Value != "" && now.Before(t.ExpiresAt.Add(-cr.conf.cfg.ExpiryMargin))
}

// load reads the store and, if it holds nothing usable other than stale,
// refreshes through it.
func (cr *credential) load(ctx context.Context, stale string) (Token, error) {
	cfg := &cr.conf.cfg
	if cfg.AppID == "" {
		return Token{}, errMissing("AppID", "keep a "+cr.name)
	}
	store := cfg.Store
	stored, err := store.Get(ctx, cr.key)
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		stored = Token{}
	case ctx.Err() != nil:
		return Token{}, fmt.Errorf("wechatconf: %s: reading the store: %w", cr.name, err)
	default:
		// A corrupt value or a passing fault: Refresh decides, and repairs
		// a corrupt value.
		cfg.Logger.Warn("wechatconf: reading the store failed; refreshing through it", "credential", cr.name, "key", cr.key, "error", err)
		stored = Token{}
	}
	if stored = cr.seed(ctx, stored); stored.Value != stale && cr.usable(stored, cr.conf.now()) {
		return stored, nil
	}
	if stored.Value != "" {
		stale = stored.Value // the value the store holds is the one to replace
	}
	tok, err := store.Refresh(ctx, cr.key, stale, cr.fetch)
	if err == nil && !cr.usable(tok, cr.conf.now()) && tok.Value != stale {
		// The store returned a token someone else wrote, but it is too old
		// to serve: replace that one.
		tok, err = store.Refresh(ctx, cr.key, tok.Value, cr.fetch)
	}
	if err != nil {
		return Token{}, fmt.Errorf("wechatconf: refresh %s: %w", cr.name, err)
	}
	if !cr.usable(tok, cr.conf.now()) {
		return Token{}, fmt.Errorf("wechatconf: refresh %s: the store returned a token that expires at %v, too soon to serve", cr.name, tok.ExpiresAt)
	}
	cfg.Logger.Info("wechatconf: refreshed", "credential", cr.name, "expires_at", tok.ExpiresAt)
	return tok, nil
}

// seed handles the initial value of Config (the seed's way 1) the first
// time the store is read: it is written to the store unless the store holds
// something newer, and is returned in place of stored when written.
func (cr *credential) seed(ctx context.Context, stored Token) Token {
	init := cr.initial
	if init.Value == "" || cr.seeded.Load() || !cr.seeded.CompareAndSwap(false, true) {
		return stored
	}
	if !cr.usable(init, cr.conf.now()) || (stored.Value != "" && !stored.ExpiresAt.Before(init.ExpiresAt)) {
		return stored
	}
	if err := cr.conf.cfg.Store.Set(ctx, cr.key, init); err != nil {
		cr.conf.cfg.Logger.Warn("wechatconf: could not write the initial value to the store; serving it from memory", "credential", cr.name, "error", err)
	}
	return init
}
