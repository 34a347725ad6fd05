package openplatform

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"weak"

	"github.com/wechatconf/wechatconf/core"
)

// Authorizer is one merchant account (公众号 or 小程序) that authorized the
// component: a core.Conf whose access_token is the
// authorizer_access_token, fetched with the authorizer's stored
// authorizer_refresh_token and the component_access_token. Everything a
// single account's Conf gives — AccessToken, JSAPITicket, Do, Transport,
// JSSDKConfig — works the same, so a vendor's code for one merchant is a
// single account's code. Get one with Component.Authorizer.
type Authorizer struct {
	*core.Conf
	access *core.Credential // the Conf's access_token, one pointer closer
}

// AccessToken returns a valid authorizer_access_token and its expiry, as
// core.Conf.AccessToken does (from memory, the store, or
// PathAuthorizerToken with the stored refresh token); a broken chain is a
// *ReauthorizeError.
func (a *Authorizer) AccessToken(ctx context.Context) (core.Token, error) { return a.access.Get(ctx) }

// entry is the registry's slot of one authorizer: the handle, held
// strongly while it is among the Config.MaxAuthorizers kept, and weakly
// always, so that a handle a caller kept after its eviction is found again
// — by Authorizer, which hands out the same handle, and by changed, which
// must reach it (a withdrawal applied by this process must stop it serving
// its token). The entry is deleted once the handle is collected.
type entry struct {
	weak   weak.Pointer[Authorizer]
	strong atomic.Pointer[Authorizer] // nil once evicted
	used   atomic.Bool                // asked for since the last eviction sweep
}

// live returns the entry's handle if it still exists, nil if collected.
func (e *entry) live() *Authorizer {
	if a := e.strong.Load(); a != nil {
		return a
	}
	return e.weak.Value()
}

// Authorizer returns the handle of the authorizer with AppID appid,
// creating it on first use (no I/O: its tokens are read from the store,
// or fetched, when first asked for). Handles are kept up to
// Config.MaxAuthorizers; beyond, the least recently used are dropped from
// the registry and rebuilt when asked for again — unless a caller still
// holds one, which is then handed out again (one handle per authorizer per
// Component while any is referenced). Its lookup allocates nothing. A
// handle may be kept: a re-authorization or withdrawal applied by this
// Component reaches it whether or not it is still in the registry, and
// one applied by another process reaches it through the store when WeChat
// rejects its token; once withdrawn, its AccessToken and Do return a
// *ReauthorizeError and never the dead token.
func (c *Component) Authorizer(appid string) *Authorizer {
	if v, ok := c.handles.Load(appid); ok {
		e := v.(*entry)
		if a := e.strong.Load(); a != nil {
			if !e.used.Load() {
				e.used.Store(true)
			}
			return a
		}
		if a := e.weak.Value(); a != nil && c.pin(e, a) {
			return a
		}
	}
	return c.newAuthorizer(appid)
}

// pin puts a, found through e's weak pointer, back among the handles kept,
// and reports whether it did (false: another goroutine pinned another).
func (c *Component) pin(e *entry, a *Authorizer) bool {
	if !e.strong.CompareAndSwap(nil, a) {
		return e.strong.Load() == a
	}
	e.used.Store(true)
	if c.count.Add(1) > int64(c.cfg.MaxAuthorizers) {
		c.evict()
	}
	return true
}

func (c *Component) newAuthorizer(appid string) *Authorizer {
	p := c.cfg.Policy
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "authorizer_access_token", Platform: core.PlatformOpenPlatformAuthorizer, Key: c.recordKey(appid), Store: c.durable, Needs: c.token,
		Decode:  func(stored core.Token) (core.Token, error) { return decodeServed(appid, stored) },
		Prepare: func(ctx context.Context) (any, error) { return nil, c.checkAuthorized(ctx, appid) },
		Fetch: func(ctx context.Context, r core.FetchRequest) (core.Token, error) {
			return c.fetchAuthorizerToken(ctx, appid, r)
		},
		Policy: p, Logger: c.cfg.Logger, Now: c.cfg.Now, Ledger: c.ledger,
	})
	if err != nil {
		panic(err) // the policy was checked by New
	}
	conf, err := core.NewWithAccessToken(core.Config{
		AppID: appid, Store: c.cfg.Store, KeyPrefix: strings.TrimSuffix(c.prefix, "/"),
		BaseURL: c.cfg.BaseURL, HTTPClient: c.cfg.HTTPClient, Logger: c.cfg.Logger, Now: c.cfg.Now,
		MaxRetries: c.cfg.MaxRetries, RetryBackoff: c.cfg.RetryBackoff,
		RefreshAhead: p.RefreshAhead, ExpiryMargin: p.ExpiryMargin, RefreshTimeout: p.RefreshTimeout,
		RejectedRefreshInterval: p.RejectedRefreshInterval, ErrorBackoff: p.ErrorBackoff,
		TokenAPI: core.ClassicToken, Platform: core.PlatformOpenPlatformAuthorizer, ReadyHorizon: c.cfg.ReadyHorizon,
		Instance: c.cfg.Instance, NoLedger: c.cfg.NoLedger,
	}, cr)
	if err != nil {
		panic(err) // the same settings passed New
	}
	// A new handle starts unreferenced: the next sweep drops it unless it
	// is asked for again (CLOCK with second chance), so a burst of
	// one-off lookups does not push out the authorizers in steady use.
	a := &Authorizer{Conf: conf, access: cr}
	e := &entry{weak: weak.Make(a)}
	e.strong.Store(a)
	for {
		v, loaded := c.handles.LoadOrStore(appid, e)
		if !loaded {
			break
		}
		old := v.(*entry)
		if b := old.live(); b != nil {
			if old.strong.Load() == b || c.pin(old, b) {
				return b // another goroutine made it, or a caller kept it
			}
			continue
		}
		if c.handles.CompareAndSwap(appid, old, e) { // its handle was collected
			break
		}
	}
	// Once no caller and no registry slot holds the handle, its entry goes.
	runtime.AddCleanup(a, func(appid string) { c.handles.CompareAndDelete(appid, e) }, appid)
	if c.count.Add(1) > int64(c.cfg.MaxAuthorizers) {
		c.evict()
	}
	return a
}

// evict drops handles not asked for since the last sweep (a CLOCK sweep)
// until a tenth of MaxAuthorizers is free. Only the registry's hold is
// dropped: a handle a caller keeps stays reachable (see entry), and the
// tokens and refresh tokens stay in the store.
func (c *Component) evict() {
	if !c.evictMu.TryLock() {
		return // another sweep is running
	}
	defer c.evictMu.Unlock()
	target := int64(c.cfg.MaxAuthorizers) - int64(c.cfg.MaxAuthorizers)/10
	for pass := 0; pass < 2 && c.count.Load() > target; pass++ {
		c.handles.Range(func(_, v any) bool {
			e := v.(*entry)
			a := e.strong.Load()
			switch {
			case a == nil:
				return true
			case e.used.Load():
				e.used.Store(false)
				return true
			}
			if e.strong.CompareAndSwap(a, nil) {
				c.count.Add(-1)
				c.evictions.Add(1)
			}
			return c.count.Load() > target
		})
	}
}

// changed tells appid's handle, if this process holds one (in the
// registry or kept by a caller after its eviction), that its store state
// changed (a re-authorization, a withdrawal, an import): its in-process
// token is dropped and read again from the store. The handle stays valid:
// callers may keep it.
func (c *Component) changed(appid string) {
	if v, ok := c.handles.Load(appid); ok {
		if a := v.(*entry).live(); a != nil {
			a.access.Invalidate()
		}
	}
}

// recordKey is the store key of appid's record (see record): it keeps the
// name it had when it held the bare authorizer_refresh_token, so that what
// an earlier version stored there is read.
func (c *Component) recordKey(appid string) string {
	return c.prefix + appid + "/authorizer_refresh_token"
}

// decodeServed is an authorizer Credential's Decode: the access token the
// record holds; a withdrawal is a *ReauthorizeError that matches
// core.ErrRevoked (served without a fetch), a value that is not a record
// wraps core.ErrCorrupt.
func decodeServed(appid string, stored core.Token) (core.Token, error) {
	r, err := decodeRecord(stored)
	if err != nil {
		return core.Token{}, err
	}
	if r.State == stateWithdrawn {
		return core.Token{}, withdrawnError(appid, r)
	}
	return r.served(), nil
}

// checkAuthorized is an authorizer Credential's Prepare: before the
// component_access_token is got and the lock taken, a record that is
// missing or withdrawn fails the refresh at once with its
// *ReauthorizeError. It only saves those calls: Fetch decides on the record
// it finds under the lock.
func (c *Component) checkAuthorized(ctx context.Context, appid string) error {
	_, err := c.RefreshToken(ctx, appid)
	var re *ReauthorizeError
	if errors.As(err, &re) {
		return err
	}
	return nil // a store error or a corrupt value: the refresh decides
}

// withdrawnError is the *ReauthorizeError of a withdrawn authorizer.
func withdrawnError(appid string, r record) *ReauthorizeError {
	when := "at an unknown time"
	if r.Since > 0 {
		when = "at " + time.UnixMilli(r.Since).UTC().Format(time.RFC3339)
	}
	return &ReauthorizeError{AuthorizerAppID: appid, Reason: "the merchant withdrew the authorization " + when, Withdrawn: true}
}

// fetchAuthorizerToken is an authorizer Credential's Fetch, run under the
// record key's lock with the record the store holds (r.Stored): one
// api_authorizer_token call with the record's refresh token and the
// component_access_token (r.Needed). It returns the next record — the new
// access token together with the refresh token the reply carried, which
// the store writes in one fenced write.
func (c *Component) fetchAuthorizerToken(ctx context.Context, appid string, r core.FetchRequest) (core.Token, error) {
	if r.Stored.Value == "" {
		return core.Token{}, &ReauthorizeError{AuthorizerAppID: appid, Reason: "no authorizer_refresh_token is stored (never authorized through this store, or lost)"}
	}
	rec, err := decodeRecord(r.Stored)
	switch {
	case err != nil:
		return core.Token{}, &ReauthorizeError{AuthorizerAppID: appid, Reason: "its stored authorization cannot be read", Err: err}
	case rec.State == stateWithdrawn:
		return core.Token{}, withdrawnError(appid, rec)
	}
	var reply struct {
		RefreshToken string `json:"authorizer_refresh_token"`
	}
	tok, err := c.raw.IssueReply(ctx, http.MethodPost, PathAuthorizerToken, url.Values{"component_access_token": {r.Needed.Value}},
		map[string]string{"component_appid": c.cfg.AppID, "authorizer_appid": appid, "authorizer_refresh_token": rec.Refresh},
		"authorizer_access_token", &reply)
	if e := apiError(err); e != nil {
		switch e.Code {
		case 61023:
			return core.Token{}, &ReauthorizeError{AuthorizerAppID: appid, Reason: "WeChat refused its authorizer_refresh_token", Err: err}
		case 61003:
			// Not written to the record: only a withdrawal push does that.
			return core.Token{}, &ReauthorizeError{AuthorizerAppID: appid, Reason: "WeChat says this account has not authorized the component (61003: never authorized, or withdrawn)", Err: err, Withdrawn: true}
		}
	}
	if err != nil {
		return core.Token{}, err
	}
	rec.Access, rec.Expires = tok.Value, tok.ExpiresAt.UnixMilli()
	if reply.RefreshToken != "" {
		rec.Refresh = reply.RefreshToken
	}
	return rec.encode(), nil
}

// RefreshToken returns the authorizer_refresh_token the store holds for
// appid now, for a backup or an audit (its Value is the secret: keep it
// out of logs), or a *ReauthorizeError when none is stored or the
// merchant withdrew (Withdrawn, matching core.ErrRevoked). A store error
// is returned as it is; a stored value that cannot be read wraps
// core.ErrCorrupt.
func (c *Component) RefreshToken(ctx context.Context, appid string) (core.Token, error) {
	t, err := c.durable.Get(ctx, c.recordKey(appid))
	switch {
	case errors.Is(err, core.ErrNotFound):
		return core.Token{}, &ReauthorizeError{AuthorizerAppID: appid, Reason: "no authorizer_refresh_token is stored (never authorized through this store, or lost)"}
	case err != nil:
		return core.Token{}, wrap("RefreshToken", err)
	}
	r, err := decodeRecord(t)
	switch {
	case err != nil:
		return core.Token{}, wrap("RefreshToken", err)
	case r.State == stateWithdrawn:
		return core.Token{}, withdrawnError(appid, r)
	}
	return core.Token{Value: r.Refresh}, nil
}

// AuthorizationKey returns the store key of an authorizer's durable
// record — its authorizer_refresh_token together with its current
// authorizer_access_token and the time of the authorization event it
// follows (see the package doc: back it up). Its jsapi_ticket and
// wx_card ticket are kept beside it in Config.Store.
func (c *Component) AuthorizationKey(appid string) string { return c.recordKey(appid) }

// Stats reports the registry: handles held and handles dropped so far.
func (c *Component) Stats() (held, evicted int64) { return c.count.Load(), c.evictions.Load() }
