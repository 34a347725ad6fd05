package openplatform

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

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
	used   atomic.Bool      // asked for since the last eviction sweep
}

// AccessToken returns a valid authorizer_access_token and its expiry, as
// core.Conf.AccessToken does (from memory, the store, or
// PathAuthorizerToken with the stored refresh token); a broken chain is a
// *ReauthorizeError.
func (a *Authorizer) AccessToken(ctx context.Context) (core.Token, error) { return a.access.Get(ctx) }

// withdrawnPrefix starts the value that replaces an authorizer's refresh
// token when the merchant withdraws the authorization: a durable marker,
// so that a refresh in flight cannot bring the old token back.
const withdrawnPrefix = "unauthorized@"

// Authorizer returns the handle of the authorizer with AppID appid,
// creating it on first use (no I/O: its tokens are read from the store,
// or fetched, when first asked for). Handles are kept up to
// Config.MaxAuthorizers; beyond, the least recently used are dropped from
// the registry and rebuilt when asked for again. Its lookup allocates
// nothing. A handle may be kept: a re-authorization or withdrawal applied
// by this process updates it, and one applied by another process reaches
// it through the store when WeChat rejects its token; once withdrawn, its
// AccessToken and Do return a *ReauthorizeError and never the dead token.
func (c *Component) Authorizer(appid string) *Authorizer {
	if v, ok := c.handles.Load(appid); ok {
		a := v.(*Authorizer)
		if !a.used.Load() {
			a.used.Store(true)
		}
		return a
	}
	return c.newAuthorizer(appid)
}

func (c *Component) newAuthorizer(appid string) *Authorizer {
	key := c.prefix + appid + "/"
	p := c.cfg.Policy
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "authorizer_access_token", Key: key + "access_token", Store: c.cfg.Store, Needs: c.token,
		Prepare: func(ctx context.Context) (any, error) { return c.readRefreshToken(ctx, appid) },
		Fetch: func(ctx context.Context, r core.FetchRequest) (core.Token, error) {
			return c.fetchAuthorizerToken(ctx, appid, r)
		},
		Commit: func(ctx context.Context, prepared any) error {
			return c.commitRefreshToken(ctx, appid, prepared.(*refreshState))
		},
		Policy: p, Logger: c.cfg.Logger, Now: c.cfg.Now,
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
		TokenAPI: core.ClassicToken,
	}, cr)
	if err != nil {
		panic(err) // the same settings passed New
	}
	// A new handle starts unreferenced: the next sweep drops it unless it
	// is asked for again (CLOCK with second chance), so a burst of
	// one-off lookups does not push out the authorizers in steady use.
	a := &Authorizer{Conf: conf, access: cr}
	if v, loaded := c.handles.LoadOrStore(appid, a); loaded {
		return v.(*Authorizer)
	}
	if c.count.Add(1) > int64(c.cfg.MaxAuthorizers) {
		c.evict()
	}
	return a
}

// evict drops handles not asked for since the last sweep (a CLOCK sweep)
// until a tenth of MaxAuthorizers is free. Only memory is dropped: the
// tokens and refresh tokens stay in the store.
func (c *Component) evict() {
	if !c.evictMu.TryLock() {
		return // another sweep is running
	}
	defer c.evictMu.Unlock()
	target := int64(c.cfg.MaxAuthorizers) - int64(c.cfg.MaxAuthorizers)/10
	for pass := 0; pass < 2 && c.count.Load() > target; pass++ {
		c.handles.Range(func(k, v any) bool {
			a := v.(*Authorizer)
			if a.used.Load() {
				a.used.Store(false)
				return true
			}
			if c.handles.CompareAndDelete(k, v) {
				c.count.Add(-1)
				c.evictions.Add(1)
			}
			return c.count.Load() > target
		})
	}
}

// changed tells appid's handle, if this process holds one, that its store
// state changed (a re-authorization, a withdrawal, an import): its
// in-process token is dropped and read again from the store. The handle
// stays valid: callers may keep it.
func (c *Component) changed(appid string) {
	if v, ok := c.handles.Load(appid); ok {
		v.(*Authorizer).access.Invalidate()
	}
}

// refreshState is what an authorizer fetch is prepared with: the refresh
// token read before the lock, and the one WeChat's reply carried.
type refreshState struct {
	used core.Token
	next string
}

func (c *Component) refreshTokenKey(appid string) string {
	return c.prefix + appid + "/authorizer_refresh_token"
}

func (c *Component) accessTokenKey(appid string) string { return c.prefix + appid + "/access_token" }

// readRefreshToken is an authorizer token's Prepare.
func (c *Component) readRefreshToken(ctx context.Context, appid string) (any, error) {
	t, err := c.cfg.Store.Get(ctx, c.refreshTokenKey(appid))
	switch {
	case errors.Is(err, core.ErrNotFound):
		return nil, &ReauthorizeError{AuthorizerAppID: appid, Reason: "no authorizer_refresh_token is stored (never authorized through this store, or lost)"}
	case err != nil:
		return nil, err
	case strings.HasPrefix(t.Value, withdrawnPrefix):
		return nil, &ReauthorizeError{AuthorizerAppID: appid, Reason: "the merchant withdrew the authorization (" + strings.TrimPrefix(t.Value, withdrawnPrefix) + ")", Withdrawn: true}
	}
	return &refreshState{used: t}, nil
}

// fetchAuthorizerToken makes one api_authorizer_token call with the refresh
// token read before the lock and the component_access_token (Needed).
func (c *Component) fetchAuthorizerToken(ctx context.Context, appid string, r core.FetchRequest) (core.Token, error) {
	st := r.Prepared.(*refreshState)
	var reply struct {
		RefreshToken string `json:"authorizer_refresh_token"`
	}
	tok, err := c.raw.IssueReply(ctx, http.MethodPost, PathAuthorizerToken, url.Values{"component_access_token": {r.Needed.Value}},
		map[string]string{"component_appid": c.cfg.AppID, "authorizer_appid": appid, "authorizer_refresh_token": st.used.Value},
		"authorizer_access_token", &reply)
	if e := apiError(err); e != nil {
		switch e.Code {
		case 61023:
			return core.Token{}, &ReauthorizeError{AuthorizerAppID: appid, Reason: "WeChat refused its authorizer_refresh_token", Err: err}
		case 61003:
			return core.Token{}, &ReauthorizeError{AuthorizerAppID: appid, Reason: "the authorization was withdrawn", Err: err, Withdrawn: true}
		}
	}
	if err != nil {
		return core.Token{}, err
	}
	st.next = reply.RefreshToken
	return tok, nil
}

// commitRefreshToken moves the stored refresh token forward to the one the
// fetch brought, if it differs, by a compare-and-set from the one the
// fetch used: a newer authorization or a withdrawal written meanwhile
// wins.
func (c *Component) commitRefreshToken(ctx context.Context, appid string, st *refreshState) error {
	if st.next == "" || st.next == st.used.Value {
		return nil
	}
	_, err := compareAndSet(ctx, c.cfg.Store, c.refreshTokenKey(appid), st.used, core.Token{Value: st.next})
	return err
}

// Authorize exchanges an authorization code (from the authorized or
// updateauthorized event, or the redirect after the merchant's
// authorization page) for the authorizer's first tokens
// (PathQueryAuth), stores its authorizer_access_token and
// authorizer_refresh_token — replacing an earlier authorization's, after
// any refresh in flight — and returns its handle. The code is single-use.
func (c *Component) Authorize(ctx context.Context, code string) (*Authorizer, error) {
	if code == "" {
		return nil, wrap("Authorize", errors.New("the authorization code is empty"))
	}
	start := c.now()
	var reply struct {
		Info struct {
			AppID        string `json:"authorizer_appid"`
			AccessToken  string `json:"authorizer_access_token"`
			ExpiresIn    int64  `json:"expires_in"`
			RefreshToken string `json:"authorizer_refresh_token"`
		} `json:"authorization_info"`
	}
	if err := c.api.Do(ctx, http.MethodPost, PathQueryAuth, nil, map[string]string{"component_appid": c.cfg.AppID, "authorization_code": code}, &reply); err != nil {
		return nil, wrap("Authorize", err)
	}
	info := reply.Info
	if info.AppID == "" || info.AccessToken == "" || info.RefreshToken == "" || info.ExpiresIn <= 0 {
		return nil, wrap("Authorize", &core.ReplyError{Path: PathQueryAuth, StatusCode: http.StatusOK,
			Reason: "authorization_info lacks authorizer_appid, authorizer_access_token, authorizer_refresh_token or a positive expires_in"})
	}
	life := time.Duration(min(info.ExpiresIn, 86400)) * time.Second // trusted up to 24 h, as core's calls
	// The access token first, then the refresh token: a refresh in flight
	// with the old refresh token finishes (its write lands) before either.
	if err := overwrite(ctx, c.cfg.Store, c.accessTokenKey(info.AppID), core.Token{Value: info.AccessToken, ExpiresAt: start.Add(life)}); err != nil {
		return nil, wrap("Authorize: storing the authorizer_access_token", err)
	}
	if err := overwrite(ctx, c.cfg.Store, c.refreshTokenKey(info.AppID), core.Token{Value: info.RefreshToken}); err != nil {
		return nil, wrap("Authorize: storing the authorizer_refresh_token", err)
	}
	c.changed(info.AppID)
	return c.Authorizer(info.AppID), nil
}

// Unauthorize applies the merchant's withdrawal (the unauthorized event):
// the stored refresh token is replaced by a durable marker (so a refresh
// in flight cannot bring the old one back) and the stored access token by
// an expired one, after any refresh in flight; from then on the
// authorizer's tokens are a *ReauthorizeError. Nothing else removes a
// refresh token.
func (c *Component) Unauthorize(ctx context.Context, appid string) error {
	now := c.now()
	if err := overwrite(ctx, c.cfg.Store, c.refreshTokenKey(appid), core.Token{Value: withdrawnPrefix + now.UTC().Format(time.RFC3339)}); err != nil {
		return wrap("Unauthorize", err)
	}
	if err := overwrite(ctx, c.cfg.Store, c.accessTokenKey(appid), core.Token{Value: withdrawnPrefix + "access_token", ExpiresAt: now}); err != nil {
		return wrap("Unauthorize", err)
	}
	c.changed(appid)
	return nil
}

// ImportRefreshToken stores an authorizer's authorizer_refresh_token
// obtained elsewhere — another SDK's storage, a backup — replacing what
// the store holds (after any refresh in flight). Use it to migrate or
// restore; in normal operation Authorize and the refreshes keep it.
func (c *Component) ImportRefreshToken(ctx context.Context, appid, refreshToken string) error {
	if appid == "" || refreshToken == "" {
		return wrap("ImportRefreshToken", errors.New("the AppID and the refresh token are required"))
	}
	if err := overwrite(ctx, c.cfg.Store, c.refreshTokenKey(appid), core.Token{Value: refreshToken}); err != nil {
		return wrap("ImportRefreshToken", err)
	}
	c.changed(appid)
	return nil
}

// Keys returns the store keys of an authorizer: its access token and its
// refresh token (durable: back it up; see the package doc).
func (c *Component) Keys(appid string) (accessToken, refreshToken string) {
	return c.accessTokenKey(appid), c.refreshTokenKey(appid)
}

// Stats reports the registry: handles held and handles dropped so far.
func (c *Component) Stats() (held, evicted int64) { return c.count.Load(), c.evictions.Load() }
