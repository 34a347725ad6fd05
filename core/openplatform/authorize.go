package openplatform

import (
	"context"
	"net/http"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/tenant"
)

// What HandleEvent did with a push (Event.Applied), besides "stored" and
// "older ticket ignored" for verify tickets: the tenant mechanism's.
const (
	// AppliedAuthorized: the authorization code was exchanged and the
	// authorizer's record written.
	AppliedAuthorized = tenant.AppliedAuthorized
	// AppliedUnauthorized: the withdrawal was written.
	AppliedUnauthorized = tenant.AppliedUnauthorized
	// AppliedAlready: this very authorization (the same code) or
	// withdrawal (the same CreateTime) is what the store holds: a second
	// delivery (the redirect and the push, a re-sent push) changes nothing.
	AppliedAlready = tenant.AppliedAlready
	// AppliedOlderIgnored: the store holds a newer authorization or
	// withdrawal of the authorizer than this event's CreateTime: the
	// event, delayed or re-sent, is acknowledged and ignored.
	AppliedOlderIgnored = tenant.AppliedOlderIgnored
)

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
	a, _, err := c.t.Authorize(ctx, tenant.Delivery{Code: code, At: c.now()})
	if err != nil {
		return nil, wrap("Authorize", err)
	}
	return a, nil
}

// exchange is the tenant mechanism's Exchange: one api_query_auth call
// with the component_access_token.
func (c *Component) exchange(ctx context.Context, code string) (tenant.Grant, error) {
	var reply struct {
		Info struct {
			AppID        string `json:"authorizer_appid"`
			AccessToken  string `json:"authorizer_access_token"`
			ExpiresIn    int64  `json:"expires_in"`
			RefreshToken string `json:"authorizer_refresh_token"`
		} `json:"authorization_info"`
	}
	// Once sent, its reply is read whatever ctx does (tenant.Spend): the
	// refresh token WeChat gives once would be lost with it.
	if err := tenant.Spend(ctx, c.token, "component_access_token", c.raw, c.api, core.IsInvalidCredential, PathQueryAuth,
		map[string]string{"component_appid": c.cfg.AppID, "authorization_code": code}, &reply); err != nil {
		return tenant.Grant{}, err
	}
	info := reply.Info
	if info.AppID == "" || info.AccessToken == "" || info.RefreshToken == "" || info.ExpiresIn <= 0 {
		return tenant.Grant{}, &core.ReplyError{Path: PathQueryAuth, StatusCode: http.StatusOK,
			Reason: "authorization_info lacks authorizer_appid, authorizer_access_token, authorizer_refresh_token or a positive expires_in"}
	}
	return tenant.Grant{Tenant: info.AppID, Secret: info.RefreshToken, AccessToken: info.AccessToken,
		ExpiresIn: time.Duration(min(info.ExpiresIn, 86400)) * time.Second}, nil
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
	if _, err := c.t.Withdraw(ctx, appid, c.now(), true); err != nil {
		return wrap("Unauthorize", err)
	}
	return nil
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
	if err := c.t.Import(ctx, appid, refreshToken); err != nil {
		return wrap("ImportRefreshToken", err)
	}
	return nil
}
