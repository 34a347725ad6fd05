package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	if !cfg.EncodingAESKey.IsZero() {
		if c.crypt, err = msgcrypt.New(cfg.Token.Reveal(), cfg.EncodingAESKey.Reveal(), cfg.AppID); err != nil {
			return nil, fmt.Errorf("wechatconf: EncodingAESKey: %w", err)
		}
	}
	if !cfg.PreviousEncodingAESKey.IsZero() {
		if c.prevCrypt, err = msgcrypt.New(cfg.Token.Reveal(), cfg.PreviousEncodingAESKey.Reveal(), cfg.AppID); err != nil {
			return nil, fmt.Errorf("wechatconf: PreviousEncodingAESKey: %w", err)
		}
	}
	c.base = c.now()
	base := cfg.KeyPrefix + "/" + cfg.AppID + "/"
	c.access = &credential{conf: c, name: "access_token", key: base + "access_token", initial: cfg.AccessToken,
		fetch: c.fetchAccessToken, canForce: cfg.TokenAPI == StableToken}
	c.jsapi = &credential{conf: c, name: "jsapi_ticket", key: base + "jsapi_ticket", initial: cfg.JSAPITicket,
		fetch: c.ticketFetcher("jsapi"), dep: c.access}
	c.card = &credential{conf: c, name: "wx_card_ticket", key: base + "wx_card_ticket", initial: cfg.CardTicket,
		fetch: c.ticketFetcher("wx_card"), dep: c.access}
	return c, nil
}

// Check verifies that c can do its job, for a service's start-up or health
// check: New accepts a Config with fields left empty (the seed made every
// field optional), so a missing AppID or a wrong AppSecret would otherwise
// show only on the first request. Check reports a missing AppID, then gets
// one access_token (from memory, the store, or WeChat) and returns what
// stops it, typed: an *APIError (IsConfigError for a wrong AppID or
// AppSecret, an IP outside the whitelist), a *LimitError, a store error,
// ctx's error. nil means the Conf holds a valid access_token.
func (c *Conf) Check(ctx context.Context) error {
	if c.cfg.AppID == "" {
		return errMissing("AppID", "keep an access_token")
	}
	_, err := c.AccessToken(ctx)
	return err
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
//
// If WeChat's normal token call hands the rejected token back (a stable
// token that was revoked, leaked, or force-refreshed elsewhere), the same
// refresh escalates once to force_refresh, under the store's lock, so a
// fleet that sees the same rejected token makes one forced call. Refreshes
// that rejections trigger are rate-limited (Config.RejectedRefreshInterval),
// forced ones too (Config.ForceRefreshInterval, ForceRefreshDailyLimit):
// a limit returns a *LimitError without calling WeChat.
func (c *Conf) RefreshAccessToken(ctx context.Context, rejected string) (Token, error) {
	return c.access.refresh(ctx, rejected, reasonRejected, nil)
}

// ForceRefreshAccessToken replaces the access_token with a brand-new one
// that invalidates the old one at WeChat at once: stable_token with
// "force_refresh":true (with ClassicToken, a classic call, which always
// issues a new token). Use it to rotate a leaked token. stale is the token
// to replace ("" means the one held now); if the store already holds
// another, that one is returned and WeChat is not called, so a fleet asking
// together rotates once. WeChat allows about 20 forced calls a day, 30 s
// apart: Config.ForceRefreshDailyLimit and ForceRefreshInterval keep this
// Conf inside them, returning a *LimitError when they are used up.
func (c *Conf) ForceRefreshAccessToken(ctx context.Context, stale string) (Token, error) {
	if stale == "" {
		cur, err := c.access.get(ctx)
		if err != nil {
			return Token{}, err
		}
		stale = cur.Value
	}
	return c.access.refresh(ctx, stale, reasonForced, nil)
}

// credential is one credential a Conf keeps valid.
type credential struct {
	conf    *Conf
	name    string // for errors and logs
	key     string // the store key
	initial Token  // Config's initial value, checked against the store once
	// fetch makes one token call to WeChat: with force, one that issues a
	// brand-new token (stable_token's force_refresh). dep is a valid token
	// of the dep credential, fetched before the store lock was taken.
	fetch    func(ctx context.Context, dep Token, force bool) (Token, error)
	canForce bool        // fetch(force) differs from a normal fetch
	dep      *credential // the credential fetch needs (a ticket's access_token); nil if none

	cur        atomic.Pointer[held] // the in-process copy, nil until first load
	seeded     atomic.Bool          // initial value handled
	bgRunning  atomic.Bool          // a background refresh is in flight
	bgNotTill  atomic.Int64         // elapsed() before which no background refresh starts
	shortLived atomic.Bool          // the last fetch brought a token living no longer than RefreshAhead

	lim limits

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
	stale string // the value to replace
	why   reason
	cause error         // the rejection behind a reasonRejected flight, if known
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
		return cr.refresh(ctx, "", reasonExpiry, nil)
	}
	now := cr.conf.elapsed()
	if now < h.expireAt {
		if now >= h.refreshAt {
			cr.refreshAhead(h, now)
		}
		return h.Token, nil
	}
	return cr.refresh(ctx, h.Value, reasonExpiry, nil)
}

// refreshAhead starts one background refresh of h unless one is running or
// the last one was too recent.
func (cr *credential) refreshAhead(h *held, now int64) {
	if now < cr.bgNotTill.Load() || !cr.bgRunning.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer cr.bgRunning.Store(false)
		t, err := cr.refresh(context.Background(), h.Value, reasonExpiry, nil)
		switch {
		case err != nil:
			cr.logEvent(slog.LevelWarn, EventBackgroundRefreshFailed, slog.Time("expires_at", h.ExpiresAt), slog.String("error", err.Error()))
		case t.Value == h.Value:
			cr.logEvent(slog.LevelDebug, EventNoNewer, slog.Time("expires_at", t.ExpiresAt))
		default:
			return
		}
		cr.bgNotTill.Store(cr.conf.elapsed() + int64(bgRetryInterval))
	}()
}

// refresh returns a valid token other than stale, joining the refresh in
// flight or starting one. The refresh runs detached from ctx (bounded by
// Config.RefreshTimeout) so that a caller that gives up does not fail the
// others; ctx only bounds this caller's wait. why and cause say what
// started it (see reason).
func (cr *credential) refresh(ctx context.Context, stale string, why reason, cause error) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, wrapErr(err, cr.name)
	}
	for joined := false; ; joined = true {
		cr.mu.Lock()
		if h := cr.cur.Load(); h != nil && h.Value != stale && cr.conf.elapsed() < h.expireAt {
			cr.mu.Unlock()
			return h.Token, nil // replaced while we were on our way here
		}
		f := cr.flight
		if f == nil {
			f = &flight{stale: stale, why: why, cause: cause, done: make(chan struct{})}
			cr.flight = f
			go cr.run(context.WithoutCancel(ctx), f)
		}
		cr.mu.Unlock()

		select {
		case <-f.done:
		case <-ctx.Done():
			return Token{}, wrapErr(ctx.Err(), cr.name)
		}
		// A flight started for another stale value, or for a weaker reason
		// (an expiry refresh cannot force), can bring back the very token
		// this caller saw rejected: then start one of our own, once.
		if f.err == nil && stale != "" && f.tok.Value == stale && (f.stale != stale || f.why < why) && !joined {
			continue
		}
		return f.tok, f.err
	}
}

// run performs flight f and publishes its result. The flight ends at
// Config.RefreshTimeout whatever the store does: a load still running then
// is left to finish in the background (its ctx is cancelled; what it writes
// to the store is read by the next refresh).
func (cr *credential) run(ctx context.Context, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, cr.conf.cfg.RefreshTimeout)
	defer cancel()
	type result struct {
		tok Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := cr.load(ctx, f)
		done <- result{tok, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		r.err = wrapErr(ctx.Err(), "refresh %s: the store did not answer within RefreshTimeout (%v)", cr.name, cr.conf.cfg.RefreshTimeout)
	}
	cr.mu.Lock()
	if r.err == nil {
		cr.adopt(r.tok)
	}
	f.tok, f.err = r.tok, r.err
	cr.flight = nil
	cr.mu.Unlock()
	close(f.done)
}

// margins returns RefreshAhead and ExpiryMargin as they apply now: both
// zero while the credential is short-lived (its tokens live no longer than
// RefreshAhead), which is then served until its real expiry instead of
// being fetched in a loop. For a stable access_token, refreshing ahead
// starts no earlier than stableAhead before expiry: before WeChat's
// hand-over it would only bring the same token back.
func (cr *credential) margins() (ahead, margin time.Duration) {
	if cr.shortLived.Load() {
		return 0, 0
	}
	ahead, margin = cr.conf.cfg.RefreshAhead, cr.conf.cfg.ExpiryMargin
	if cr.canForce {
		ahead = max(min(ahead, stableAhead), margin)
	}
	return ahead, margin
}

// stableAhead is the latest a stable access_token is refreshed ahead of
// its expiry: inside WeChat's hand-over (StableTokenHandover), with room
// for the request's latency and clock skew, since ExpiresAt is counted from
// when the request started, a little before WeChat counts it.
const stableAhead = StableTokenHandover - 30*time.Second

// maxHeld bounds the time to expiry that the hot path's deadlines are
// computed from, so that an ExpiresAt centuries ahead cannot overflow them.
const maxHeld = 100 * 365 * 24 * time.Hour

// adopt makes tok the in-process copy.
func (cr *credential) adopt(tok Token) {
	c := cr.conf
	now := c.now()
	at := int64(now.Sub(c.base))
	left := int64(max(min(tok.ExpiresAt.Sub(now), maxHeld), -maxHeld)) // wall-clock time to expiry
	ahead, margin := cr.margins()
	cr.cur.Store(&held{
		Token:     tok,
		refreshAt: at + left - int64(ahead),
		expireAt:  at + left - int64(margin),
	})
}

// usable reports whether t may be served at now.
func (cr *credential) usable(t Token, now time.Time) bool {
	_, margin := cr.margins()
	return t.Value != "" && now.Before(t.ExpiresAt.Add(-margin))
}

// load reads the store and, if it holds nothing usable other than f.stale,
// refreshes through it. A credential with a dep (a ticket) gets a valid dep
// token before it takes its own lock, so that no store lock is held while
// waiting for another; if the ticket call rejects that token, the lock is
// left, the token is refreshed and the refresh is tried once more.
func (cr *credential) load(ctx context.Context, f *flight) (Token, error) {
	cfg := &cr.conf.cfg
	if cfg.AppID == "" {
		return Token{}, errMissing("AppID", "keep the "+cr.name)
	}
	store := cfg.Store
	stored, err := store.Get(ctx, cr.key)
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		stored = Token{}
	case ctx.Err() != nil:
		return Token{}, wrapErr(err, "%s: reading the store", cr.name)
	default:
		// A corrupt value or a passing fault: Refresh decides, and repairs
		// a corrupt value.
		cr.logEvent(slog.LevelWarn, EventStoreError, append([]slog.Attr{slog.String("op", "get")}, errAttrs(err)...)...)
		stored = Token{}
	}
	if stored = cr.seed(ctx, stored); stored.Value != f.stale && cr.usable(stored, cr.conf.now()) {
		cr.logEvent(slog.LevelInfo, EventAdopted, slog.Time("expires_at", stored.ExpiresAt))
		return stored, nil
	}
	stale := f.stale
	if stored.Value != "" {
		stale = stored.Value // the value the store holds is the one to replace
	}
	var dep Token
	for retried := false; ; retried = true {
		if cr.dep != nil {
			if dep, err = cr.dep.get(ctx); err != nil {
				return Token{}, wrapErr(err, "refresh %s", cr.name)
			}
		}
		var tok Token
		tok, err = cr.refreshStore(ctx, f, stale, dep)
		if err == nil || retried || cr.dep == nil || !IsInvalidCredential(err) {
			if err != nil {
				return Token{}, wrapErr(err, "refresh %s", cr.name)
			}
			return tok, nil
		}
		code := asAPIError(err).Code
		cr.dep.logEvent(slog.LevelInfo, EventRejected, slog.String("path", asAPIError(err).Path), slog.Int("errcode", code))
		if _, rerr := cr.dep.refresh(ctx, dep.Value, reasonRejected, err); rerr != nil {
			return Token{}, wrapErr(rerr, "refresh %s: refreshing the %s after errcode %d", cr.name, cr.dep.name, code)
		}
	}
}

// refreshStore is Store.Refresh with the credential's time and lease
// policy: a token someone else wrote that is too old to serve is replaced
// once, and a lock lost to another holder is not the caller's problem — the
// store is read again (waiting out the new holder's lock) and its newer
// token returned; only when there is none is the error returned.
func (cr *credential) refreshStore(ctx context.Context, f *flight, stale string, dep Token) (Token, error) {
	store := cr.conf.cfg.Store
	var called bool // the fetch ran: its outcome is logged by the fetch
	tok, err := store.Refresh(ctx, cr.key, stale, cr.fetcher(f, stale, dep, &called))
	if err == nil && !cr.usable(tok, cr.conf.now()) && tok.Value != stale {
		// The store returned a token someone else wrote, but it is too old
		// to serve: replace that one.
		tok, err = store.Refresh(ctx, cr.key, tok.Value, cr.fetcher(f, tok.Value, dep, &called))
	}
	if errors.Is(err, ErrLockLost) {
		lost := err
		cr.logEvent(slog.LevelInfo, EventLockLost, slog.String("error", err.Error()))
		called = false
		tok, err = store.Refresh(ctx, cr.key, stale, func(context.Context) (Token, error) { called = true; return Token{}, lost })
	}
	switch {
	case err != nil && !called:
		cr.logEvent(slog.LevelWarn, EventStoreError, append([]slog.Attr{slog.String("op", "refresh")}, errAttrs(err)...)...)
		return Token{}, err
	case err != nil:
		return Token{}, err
	case !called:
		cr.logEvent(slog.LevelInfo, EventAdopted, slog.Time("expires_at", tok.ExpiresAt))
	}
	if !cr.usable(tok, cr.conf.now()) {
		return Token{}, fmt.Errorf("the store returned a token that expires at %v, too soon to serve", tok.ExpiresAt)
	}
	return tok, nil
}

// fetcher returns the FetchFunc Store.Refresh calls for flight f, under the
// store's lock: it applies the limits, makes the token call and, for a
// rejected token that WeChat hands back unchanged, escalates once to a
// forced call. Because it runs under the lock and only while the store
// still holds the stale value, a fleet escalates once per rejected token.
// stored is the value the store holds (the Refresh call's stale); *called
// is set when the FetchFunc runs.
func (cr *credential) fetcher(f *flight, stored string, dep Token, called *bool) FetchFunc {
	cfg := &cr.conf.cfg
	return func(ctx context.Context) (Token, error) {
		*called = true
		now := cr.conf.now()
		if err := cr.lim.admit(cfg, cr.name, f.why, f.cause, now); err != nil {
			return Token{}, cr.limited(err)
		}
		force := f.why == reasonForced && cr.canForce
		if force {
			if err := cr.lim.takeForce(cfg, cr.name, now); err != nil {
				return Token{}, cr.limited(err)
			}
			cr.logEvent(slog.LevelWarn, EventForced, slog.String("why", "requested"))
		}
		tok, err := cr.call(ctx, f.why, dep, force, now)
		if err == nil && !force && f.why != reasonExpiry && f.stale != "" && tok.Value == f.stale && cr.canForce {
			if err := cr.lim.takeForce(cfg, cr.name, now); err != nil {
				return Token{}, cr.limited(err)
			}
			cr.logEvent(slog.LevelWarn, EventForced, slog.String("why", "rejected token handed back"))
			tok, err = cr.call(ctx, f.why, dep, true, now)
		}
		if err == nil && tok.Value != stored {
			// A newly issued token: its time to expiry is its lifetime
			// (stable_token hands back a current token with what it has
			// left, which says nothing about the lifetime).
			cr.shortLived.Store(tok.ExpiresAt.Sub(now) <= cfg.RefreshAhead)
		}
		return tok, err
	}
}

// call makes one token call, records its outcome for the limits and logs
// it (EventFetched or EventFetchFailed).
func (cr *credential) call(ctx context.Context, why reason, dep Token, force bool, now time.Time) (Token, error) {
	start := time.Now()
	tok, err := cr.fetch(ctx, dep, force)
	latency := time.Since(start)
	cr.lim.result(&cr.conf.cfg, err, force, now)
	if err != nil {
		cr.logEvent(slog.LevelWarn, EventFetchFailed, append(fetchAttrs(why, force, latency), errAttrs(err)...)...)
		return Token{}, err
	}
	cr.logEvent(slog.LevelInfo, EventFetched, append(fetchAttrs(why, force, latency), slog.Time("expires_at", tok.ExpiresAt))...)
	return tok, nil
}

// limited logs EventLimited for a *LimitError and returns it.
func (cr *credential) limited(err error) error {
	var le *LimitError
	if errors.As(err, &le) {
		cr.logEvent(slog.LevelWarn, EventLimited, slog.String("limit", le.Limit), slog.Time("until", le.Until), slog.String("error", err.Error()))
	}
	return err
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
		// Served from memory all the same.
		cr.logEvent(slog.LevelWarn, EventStoreError, append([]slog.Attr{slog.String("op", "set")}, errAttrs(err)...)...)
	}
	return init
}
