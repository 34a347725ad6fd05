package openplatform

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// What HandleEvent did with a push (Event.Applied), besides "stored" and
// "older ticket ignored" for verify tickets.
const (
	// AppliedAuthorized: the authorization code was exchanged and the
	// authorizer's record written.
	AppliedAuthorized = "authorized"
	// AppliedUnauthorized: the withdrawal was written.
	AppliedUnauthorized = "unauthorized"
	// AppliedAlready: this very authorization (the same code) or
	// withdrawal (the same CreateTime) is what the store holds: a second
	// delivery (the redirect and the push, a re-sent push) changes nothing.
	AppliedAlready = "already applied"
	// AppliedOlderIgnored: the store holds a newer authorization or
	// withdrawal of the authorizer than this event's CreateTime: the
	// event, delayed or re-sent, is acknowledged and ignored.
	AppliedOlderIgnored = "older event ignored"
)

// codeIndexLifetime is how long the code index entry of an authorization
// (see authorize) is kept when the code's own expiry is not known: WeChat's
// authorization codes live at most an hour.
const codeIndexLifetime = time.Hour

// Authorize exchanges an authorization code from the redirect after the
// merchant's authorization page (auth_code) for the authorizer's first
// tokens (PathQueryAuth), writes the authorizer's record — its
// authorizer_access_token and authorizer_refresh_token in one durable
// value, replacing an earlier authorization's — and returns its handle.
// The authorization is dated by this process's clock (the redirect
// carries no time of WeChat's) until the authorized push of the same code
// arrives (HandleEvent): that push finds it applied, exchanges nothing,
// and only gives it WeChat's CreateTime, whichever comes first. Until
// then, ordering it against a withdrawal push relies on this clock being
// within the time between the withdrawal and the new authorization of
// WeChat's.
//
// Errors: wrapped *core.APIError of the exchange (61009 for an unknown
// code, 61010 for an expired one — unless the store shows this code's
// authorization applied, which is success), *core.ReplyError for a reply
// without the tokens, and the store's error when the record could not be
// written within Policy.RefreshTimeout: the write is then held in memory
// and retried in the background (Component.Held), and the merchant's
// authorization is not lost while this process runs.
func (c *Component) Authorize(ctx context.Context, code string) (*Authorizer, error) {
	a, _, err := c.authorize(ctx, code, "", c.now(), time.Time{})
	return a, err
}

// authorize applies one delivery of an authorization: code, for appid
// ("" when the delivery does not say: the redirect), made at `at` (the
// push's CreateTime, or now), the code valid until codeExpires (zero: not
// known). It returns the handle and what it did (Applied*).
func (c *Component) authorize(ctx context.Context, code, appid string, at, codeExpires time.Time) (*Authorizer, string, error) {
	fromPush := appid != "" // dated by WeChat's CreateTime, not this process's clock
	if code == "" {
		return nil, "", wrap("Authorize", errors.New("the authorization code is empty"))
	}
	id, since := codeID(code), at.UnixMilli()
	if codeExpires.IsZero() {
		codeExpires = c.now().Add(codeIndexLifetime)
	}
	if appid == "" {
		appid = c.codeIndex(ctx, id)
	} else {
		c.indexCode(ctx, id, appid, codeExpires)
	}
	// base is what the store held before the exchange, when known: the
	// exchange is newer than it, whatever the clocks say.
	var base core.Token
	baseKnown := false
	if appid != "" {
		applied, cur, err := c.alreadyApplied(ctx, appid, id, since, false)
		base, baseKnown = cur, err == nil
		if err != nil {
			// Not knowing what the store holds, do not spend the code:
			// WeChat delivers the push again.
			return nil, "", wrap("Authorize: reading the authorizer's record", err)
		}
		if applied != "" {
			if applied == AppliedAlready && fromPush {
				c.redate(ctx, appid, id, since)
			}
			return c.Authorizer(appid), applied, nil
		}
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
		if e := apiError(err); e != nil && (e.Code == 61009 || e.Code == 61010) {
			// Refused as used, superseded or expired: a delivery of this
			// code applied before (by another instance, or before a
			// crash), or a newer authorization or withdrawal in the
			// store, is success.
			if appid == "" {
				appid = c.codeIndex(ctx, id)
			}
			if appid != "" {
				if applied, _, _ := c.alreadyApplied(ctx, appid, id, since, true); applied != "" {
					return c.Authorizer(appid), applied, nil
				}
			}
		}
		return nil, "", wrap("Authorize", err)
	}
	info := reply.Info
	if info.AppID == "" || info.AccessToken == "" || info.RefreshToken == "" || info.ExpiresIn <= 0 {
		return nil, "", wrap("Authorize", &core.ReplyError{Path: PathQueryAuth, StatusCode: http.StatusOK,
			Reason: "authorization_info lacks authorizer_appid, authorizer_access_token, authorizer_refresh_token or a positive expires_in"})
	}
	if appid != "" && appid != info.AppID {
		return nil, "", wrap("Authorize", &core.ReplyError{Path: PathQueryAuth, StatusCode: http.StatusOK,
			Reason: "authorization_info names authorizer " + info.AppID + ", the push " + appid})
	}
	appid = info.AppID
	if !baseKnown {
		base, baseKnown = c.baseOf(ctx, appid)
	}
	life := time.Duration(min(info.ExpiresIn, 86400)) * time.Second // trusted up to 24 h, as core's calls
	applied := AppliedAlready
	_, err := c.writeDurable(ctx, "authorizer_refresh_token", appid, c.recordKey(appid), func(cur core.Token) (core.Token, bool) {
		next := record{State: stateAuthorized, Since: since, Code: id, Refresh: info.RefreshToken,
			Access: info.AccessToken, Expires: start.Add(life).UnixMilli()}
		r, err := decodeRecord(cur)
		switch {
		case err == nil && r.Code == id:
			applied = AppliedAlready
			return core.Token{}, false
		case baseKnown && cur.Value == base.Value:
			// Nothing was written since the exchange was decided: the
			// exchange made is the authorization WeChat honours now (it
			// voided the refresh token before it), so it replaces what
			// the store holds and is dated after it, whatever the clocks
			// say.
			if err == nil {
				next.Since = max(next.Since, r.Since+1)
			}
		case err == nil && !r.replacedBy(stateAuthorized, since):
			// An event newer than this one was written meanwhile (a write
			// held in the background may land long after its exchange).
			applied = AppliedOlderIgnored
			return core.Token{}, false
		}
		applied = AppliedAuthorized
		return next.encode(), true
	})
	if err != nil {
		return nil, "", wrap("Authorize: storing the authorization", err)
	}
	c.indexCode(ctx, id, appid, codeExpires)
	c.changed(appid)
	return c.Authorizer(appid), applied, nil
}

// redate gives appid's record, applied from code id by the redirect and so
// dated by this process's clock, the time WeChat gave the authorization —
// since, the CreateTime of the code's push — so that the order of later
// events does not depend on this clock being right. Best effort: a store
// error or a record that moved on leaves it as it is.
func (c *Component) redate(ctx context.Context, appid, id string, since int64) {
	_, _ = writeForward(ctx, c.durable, c.recordKey(appid), func(cur core.Token) (core.Token, bool) {
		r, err := decodeRecord(cur)
		if err != nil || r.Code != id || r.Since == since {
			return core.Token{}, false
		}
		r.Since = since
		return r.encode(), true
	})
}

// alreadyApplied reads appid's record and says whether an authorization
// with code id made at since (Unix ms) is already applied
// (AppliedAlready) or older than what the store holds
// (AppliedOlderIgnored: a newer authorization or withdrawal), with the
// value it read; "" when its code is to be exchanged (WeChat then decides: it refuses a code a
// withdrawal or a newer authorization voided). A store error other than
// ErrNotFound is returned. voided says WeChat refused the code: then a
// record of the same time is taken as newer too (the event that voided it).
func (c *Component) alreadyApplied(ctx context.Context, appid, id string, since int64, voided bool) (string, core.Token, error) {
	t, err := c.durable.Get(ctx, c.recordKey(appid))
	switch {
	case errors.Is(err, core.ErrNotFound), errors.Is(err, core.ErrCorrupt):
		return "", t, nil
	case err != nil:
		return "", t, err
	}
	r, err := decodeRecord(t)
	switch {
	case err != nil:
		return "", t, nil
	case r.Code == id:
		return AppliedAlready, t, nil
	case r.Since > since, voided && r.Since == since:
		return AppliedOlderIgnored, t, nil
	}
	return "", t, nil
}

// The code index maps an authorization code (its codeID) to the
// authorizer it named, for the code's life: the redirect carries only the
// code, so a redirect applied after the code's push (whose exchange WeChat
// may refuse as used) finds the authorizer's record through it. It is an
// aid, not durable state, kept in Config.Store (with the code's expiry, so
// a store that expires keys drops it): a write or read that fails is
// ignored (the exchange then decides).
func (c *Component) codeIndexKey(id string) string { return c.prefix + "authorization_code/" + id }

func (c *Component) indexCode(ctx context.Context, id, appid string, expires time.Time) {
	if err := c.cfg.Store.Set(ctx, c.codeIndexKey(id), core.Token{Value: appid, ExpiresAt: expires}); err != nil {
		c.logStoreError("authorization_code", c.codeIndexKey(id), "set", err)
	}
}

func (c *Component) codeIndex(ctx context.Context, id string) string {
	t, err := c.cfg.Store.Get(ctx, c.codeIndexKey(id))
	if err != nil {
		return ""
	}
	return t.Value
}

// Unauthorize applies the merchant's withdrawal now, as the unauthorized
// push does (HandleEvent, dated by the push's CreateTime): the
// authorizer's record becomes a withdrawal — its refresh token and access
// token gone, durably, so that a refresh in flight cannot bring them back
// — unless the store holds an authorization made after now. From then on
// the authorizer's tokens are a *ReauthorizeError matching
// core.ErrRevoked, also on a handle this process keeps. Errors are the
// store's (the write is then held and retried, as for Authorize).
func (c *Component) Unauthorize(ctx context.Context, appid string) error {
	_, err := c.withdraw(ctx, appid, c.now(), true)
	return err
}

// withdraw writes appid's withdrawal made at `at` forward, and reports what
// it did (Applied*). An explicit one (Unauthorize: the operator says so
// now) replaces any authorization and is dated after it; a push's is
// ordered by its CreateTime.
func (c *Component) withdraw(ctx context.Context, appid string, at time.Time, explicit bool) (string, error) {
	if appid == "" {
		return "", wrap("Unauthorize", errors.New("the authorizer's AppID is empty"))
	}
	since := at.UnixMilli()
	var base core.Token
	baseKnown := false
	if explicit {
		base, baseKnown = c.baseOf(ctx, appid)
	}
	applied := AppliedAlready
	_, err := c.writeDurable(ctx, "authorizer_refresh_token", appid, c.recordKey(appid), func(cur core.Token) (core.Token, bool) {
		r, err := decodeRecord(cur)
		next := record{State: stateWithdrawn, Since: since}
		switch {
		case err != nil:
		case r.State == stateWithdrawn && (r.Since == since || explicit):
			applied = AppliedAlready
			return core.Token{}, false
		case baseKnown && cur.Value == base.Value:
			// Unauthorize: the operator's "now" is after what the store
			// held when it was called (and only that: a write held and
			// landing late orders by its time).
			next.Since = max(since, r.Since+1)
		case !r.replacedBy(stateWithdrawn, since):
			applied = AppliedOlderIgnored
			return core.Token{}, false
		}
		applied = AppliedUnauthorized
		return next.encode(), true
	})
	if err != nil {
		return "", wrap("Unauthorize", err)
	}
	c.changed(appid)
	return applied, nil
}

// baseOf reads appid's record: the value a write decided now replaces,
// and is dated after (an exchange just made, an operator's call). ok is
// false when the store did not answer: the write then orders by its time.
func (c *Component) baseOf(ctx context.Context, appid string) (base core.Token, ok bool) {
	t, err := c.durable.Get(ctx, c.recordKey(appid))
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		return core.Token{}, false
	}
	return t, true
}

// ImportRefreshToken stores an authorizer's authorizer_refresh_token
// obtained elsewhere — another SDK's storage, a backup — as a new
// authorization dated now, replacing whatever the store holds when it is
// called (a withdrawal included: the operator says the merchant is
// authorized), and dated after it; if the store does not take it at once
// and it is held, it lands later only over what is older than its time.
// Use it to migrate or restore; in normal operation the authorization
// events and the refreshes keep it. Errors are the store's (the write is
// then held and retried, as for Authorize).
func (c *Component) ImportRefreshToken(ctx context.Context, appid, refreshToken string) error {
	if appid == "" || refreshToken == "" {
		return wrap("ImportRefreshToken", errors.New("the AppID and the refresh token are required"))
	}
	now := c.now().UnixMilli()
	base, baseKnown := c.baseOf(ctx, appid)
	if _, err := c.writeDurable(ctx, "authorizer_refresh_token", appid, c.recordKey(appid), func(cur core.Token) (core.Token, bool) {
		next := record{State: stateAuthorized, Since: now, Refresh: refreshToken}
		r, err := decodeRecord(cur)
		switch {
		case err != nil:
		case baseKnown && cur.Value == base.Value:
			next.Since = max(now, r.Since+1) // after what the store held when it was called
		case !r.replacedBy(stateAuthorized, now):
			return core.Token{}, false // a newer event was written meanwhile (this write was held)
		}
		return next.encode(), true
	}); err != nil {
		return wrap("ImportRefreshToken", err)
	}
	c.changed(appid)
	return nil
}
