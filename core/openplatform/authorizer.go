package openplatform

import (
	"context"
	"errors"
	"net/http"
	"net/url"

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

// Authorizer returns the handle of the authorizer with AppID appid,
// creating it on first use (no I/O: its tokens are read from the store,
// or fetched, when first asked for). Handles are kept up to
// Config.MaxAuthorizers; beyond, the least recently used are dropped from
// the registry and rebuilt when asked for again — unless a caller still
// holds one, which is then handed out again (one handle per authorizer per
// Component while any is referenced: tenant.Registry). Its lookup
// allocates nothing. A handle may be kept: a re-authorization or
// withdrawal applied by this Component reaches it whether or not it is
// still in the registry, and one applied by another process reaches it
// through the store when WeChat rejects its token; once withdrawn, its
// AccessToken and Do return a *ReauthorizeError and never the dead token.
func (c *Component) Authorizer(appid string) *Authorizer { return c.t.Handle(appid) }

// newAuthorizer is the registry's New: appid's handle, a core.Conf of the
// component's ConfFamily whose access_token is the tenant mechanism's
// Credential on appid's record (tenant.Platform.AccessCredential).
func (c *Component) newAuthorizer(appid string) *Authorizer {
	cr := c.t.AccessCredential(appid)
	conf, err := c.family.New(appid, cr)
	if err != nil {
		panic(err) // cr is set
	}
	return &Authorizer{Conf: conf, access: cr}
}

// reauthorize is the tenant mechanism's Reauthorize: a *ReauthorizeError.
func reauthorize(appid, reason string, err error, withdrawn bool) error {
	return &ReauthorizeError{AuthorizerAppID: appid, Reason: reason, Err: err, Withdrawn: withdrawn}
}

func isReauthorize(err error) bool {
	var re *ReauthorizeError
	return errors.As(err, &re)
}

// fetchAuthorizerToken makes one api_authorizer_token call with appid's
// stored refresh token and the component_access_token (r.Needed), run by
// the tenant mechanism (Config.FetchAccess) under the record key's lock;
// it returns the access token and the refresh token the reply carried (""
// if none).
func (c *Component) fetchAuthorizerToken(ctx context.Context, appid, refresh string, r core.FetchRequest) (core.Token, string, error) {
	var reply struct {
		RefreshToken string `json:"authorizer_refresh_token"`
	}
	tok, err := c.raw.IssueReply(ctx, http.MethodPost, PathAuthorizerToken, url.Values{"component_access_token": {r.Needed.Value}},
		map[string]string{"component_appid": c.cfg.AppID, "authorizer_appid": appid, "authorizer_refresh_token": refresh},
		"authorizer_access_token", &reply)
	if e := apiError(err); e != nil {
		switch e.Code {
		case 61023:
			return core.Token{}, "", &ReauthorizeError{AuthorizerAppID: appid, Reason: "WeChat refused its authorizer_refresh_token", Err: err}
		case 61003:
			// Not written to the record: only a withdrawal push does that.
			return core.Token{}, "", &ReauthorizeError{AuthorizerAppID: appid, Reason: "WeChat says this account has not authorized the component (61003: never authorized, or withdrawn)", Err: err, Withdrawn: true}
		}
	}
	if err != nil {
		return core.Token{}, "", err
	}
	return tok, reply.RefreshToken, nil
}

// RefreshToken returns the authorizer_refresh_token the store holds for
// appid now, for a backup or an audit (its Value is the secret: keep it
// out of logs), or a *ReauthorizeError when none is stored or the
// merchant withdrew (Withdrawn, matching core.ErrRevoked). A store error
// is returned as it is; a stored value that cannot be read wraps
// core.ErrCorrupt.
func (c *Component) RefreshToken(ctx context.Context, appid string) (core.Token, error) {
	t, err := c.t.Secret(ctx, appid)
	if err != nil && !isReauthorize(err) {
		return core.Token{}, wrap("RefreshToken", err)
	}
	return t, err
}

// AuthorizationKey returns the store key of an authorizer's durable
// record — its authorizer_refresh_token together with its current
// authorizer_access_token and the time of the authorization event it
// follows (see the package doc: back it up). Its jsapi_ticket and
// wx_card ticket are kept beside it in Config.Store.
func (c *Component) AuthorizationKey(appid string) string { return c.t.RecordKey(appid) }

// Stats reports the registry: handles held and handles dropped so far.
func (c *Component) Stats() (held, evicted int64) { return c.t.Handles().Stats() }
