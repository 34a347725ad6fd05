package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/wechatconf/wechatconf/core/internal/lazy"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// Conf keeps an Official Account's (or a Mini Program's) credentials valid
// — the access_token, the jsapi_ticket and the wx_card api_ticket — through
// a TokenStore, and calls the WeChat API with them. It is the Go successor
// of the seed's WechatConf. A Conf is safe for concurrent use; build it
// with New.
//
// Each credential is a Credential (see its doc for how one is served: hot
// path, refresh ahead, one fetch per refresh across the fleet,
// compare-and-refresh on rejection, limits); Conf composes three of them
// with an API that calls api.weixin.qq.com:
//
//   - access_token: /cgi-bin/stable_token (Forcible: force_refresh) or
//     /cgi-bin/token, key "<KeyPrefix>/<AppID>/access_token".
//   - jsapi_ticket and wx_card_ticket: /cgi-bin/ticket/getticket, which
//     Needs the access_token.
//
// Rejected token: RefreshAccessToken(ctx, rejected) is a compare-and-refresh,
// so a thousand workers that see the same token rejected cause one fetch.
// Do calls it by itself on 40001/40014/42001.
type Conf struct {
	*confShared // the configuration: this Conf's own, or its ConfFamily's

	appID       string
	access      *Credential
	jsapi, card lazy.Value[Credential] // tickets, made on first use: a Conf of an Open Platform authorizer may never need them
	api         *API                   // raw with the access_token
}

// confShared is a Conf's configuration and what is built from it once: a
// Conf made by New has its own, the Confs of a ConfFamily share one.
// Never written after it is made.
type confShared struct {
	cfg Config // cfg.AppID is the Conf's (New), or unused (ConfFamily: each Conf's appID)

	// crypt and prevCrypt encrypt and decrypt pushed messages with
	// EncodingAESKey and PreviousEncodingAESKey; nil when not configured
	// (always for a ConfFamily).
	crypt, prevCrypt *msgcrypt.Crypter

	raw    *API            // token and ticket calls: no credential added
	secret *RotatingSecret // the AppSecret, fixed or from AppSecretSource; nil for none
}

// New validates cfg the way the seed's WechatConf does and returns a Conf.
// It does no I/O: initial values are written to the store on first use.
func New(cfg Config) (*Conf, error) { return newConf(cfg, nil) }

// NewWithAccessToken returns a Conf whose access_token is kept by access
// instead of fetched with Config.AppSecret: an Open Platform authorizer's
// (package openplatform), or a kind of your own. Everything else — the
// tickets (fetched with access's token, kept under
// "<KeyPrefix>/<AppID>/jsapi_ticket" …), Do, Transport, JSSDKConfig,
// messages — is as with New; Config.AppSecret, TokenAPI, AccessToken and
// the access_token's timing fields are unused. A rejection Do sees is
// handed to access's compare-and-refresh. For many such accounts, see
// ConfFamily.
func NewWithAccessToken(cfg Config, access *Credential) (*Conf, error) {
	if access == nil {
		return nil, errors.New("wechatconf: NewWithAccessToken: the access_token Credential is nil")
	}
	return newConf(cfg, access)
}

func newConf(cfg Config, access *Credential) (*Conf, error) {
	switch {
	case cfg.Platform != "":
	case access != nil:
		cfg.Platform = access.Platform()
	default:
		cfg.Platform = PlatformOfficialAccount
	}
	sh, err := newConfShared(cfg)
	if err != nil {
		return nil, err
	}
	c := &Conf{confShared: sh, appID: sh.cfg.AppID, access: access}
	if c.access == nil {
		c.access = c.newKind("access_token", c.fetchAccessToken, sh.cfg.TokenAPI == StableToken, sh.cfg.AccessToken)
	}
	c.api = c.raw.WithCredential(c.access, "access_token")
	return c, nil
}

// newConfShared validates cfg and builds what its Confs share.
func newConfShared(cfg Config) (*confShared, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &confShared{cfg: cfg}
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
	var rotating []*RotatingSecret
	if !cfg.AppSecret.IsZero() || cfg.AppSecretSource != nil {
		// None for a Conf without an AppSecret (an Open Platform
		// authorizer's): nil is a RotatingSecret that IsZero.
		if c.secret, err = NewRotatingSecret(RotatingSecretConfig{
			Field: "AppSecret", SourceField: "AppSecretSource", Secret: cfg.AppSecret, Source: cfg.AppSecretSource,
			Refused: AppSecretRefused,
		}); err != nil {
			return nil, err
		}
		rotating = []*RotatingSecret{c.secret}
	}
	if c.raw, err = NewAPI(APIConfig{
		BaseURL: cfg.BaseURL, HTTPClient: cfg.HTTPClient, RotatingSecrets: rotating,
		MaxRetries: cfg.MaxRetries, RetryBackoff: cfg.RetryBackoff, Logger: cfg.Logger, Now: cfg.Now, Platform: cfg.Platform,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// ConfFamily makes the Confs of many accounts that share one Config but
// for their AppID and their access_token, which each Conf's own Credential
// keeps (as NewWithAccessToken): an Open Platform component's authorizers
// (package openplatform), or accounts of your own. The configuration, its
// checks and the API client are made once for the family, so a Conf of it
// costs about 100 bytes beside its credentials (a vendor serves 100,000
// accounts from one process). A ConfFamily is safe for concurrent use.
type ConfFamily struct{ sh *confShared }

// NewConfFamily validates cfg as New does and returns its family. What
// belongs to one account must be left empty, or NewConfFamily returns an
// error: AppID (each Conf's is given to ConfFamily.New), AppSecret,
// AppSecretSource, AccessToken, JSAPITicket, CardTicket, EncodingAESKey
// and PreviousEncodingAESKey. Platform defaults to PlatformCustom. It does
// no I/O.
func NewConfFamily(cfg Config) (*ConfFamily, error) {
	switch {
	case cfg.AppID != "" || !cfg.AppSecret.IsZero() || cfg.AppSecretSource != nil || cfg.AccessToken != (Token{}) ||
		cfg.JSAPITicket != (Token{}) || cfg.CardTicket != (Token{}) || !cfg.EncodingAESKey.IsZero() || !cfg.PreviousEncodingAESKey.IsZero():
		return nil, errors.New("wechatconf: NewConfFamily: AppID, AppSecret, AppSecretSource, AccessToken, JSAPITicket, CardTicket, EncodingAESKey and PreviousEncodingAESKey are one account's: leave them empty")
	case cfg.Platform == "":
		cfg.Platform = PlatformCustom
	}
	sh, err := newConfShared(cfg)
	if err != nil {
		return nil, err
	}
	return &ConfFamily{sh: sh}, nil
}

// New returns the Conf of the account appid, whose access_token access
// (required) keeps: NewWithAccessToken's Conf, with the family's Config.
// An empty appid is accepted as NewWithAccessToken accepts an empty
// Config.AppID (the calls that need it — Check, JSSDKConfig, ClearQuota —
// return an error naming it): an Open Platform Component.Authorizer("") of
// an AppID a request lacked gets a handle whose calls fail, not a panic.
// It does no I/O.
func (f *ConfFamily) New(appid string, access *Credential) (*Conf, error) {
	if access == nil {
		return nil, errors.New("wechatconf: ConfFamily.New: the access_token Credential is nil")
	}
	return &Conf{confShared: f.sh, appID: appid, access: access, api: f.sh.raw.WithCredential(access, "access_token")}, nil
}

// newKind returns one of c's credentials, keyed "<KeyPrefix>/<AppID>/name".
func (c *Conf) newKind(name string, fetch func(context.Context, FetchRequest) (Token, error), forcible bool, initial Token) *Credential {
	p := c.cfg.policy()
	var needs *Credential
	if !forcible {
		p.Handover, p.FetchWithoutStore = 0, false // tickets: each fetch invalidates the last
	}
	if name != "access_token" {
		needs = c.access
	}
	var ledger *LedgerConfig
	if !c.cfg.NoLedger {
		ledger = &LedgerConfig{Instance: c.cfg.Instance, Operator: c.cfg.Operator}
		switch {
		case name != "access_token":
		case forcible:
			ledger.ForcedDailyLimit = DefaultForceRefreshDailyLimit // WeChat's 20 force_refresh calls a day
		default:
			ledger.DailyLimit = ClassicTokenDailyLimit
		}
	}
	cr, err := NewCredential(CredentialConfig{
		Name: name, Platform: c.cfg.Platform, Key: c.cfg.KeyPrefix + "/" + c.appID + "/" + name, Store: c.cfg.Store, Fetch: fetch,
		Forcible: forcible, Needs: needs, Initial: initial, Policy: p, Logger: c.cfg.Logger, Now: c.cfg.Now, Ledger: ledger,
	})
	if err != nil {
		panic(err) // cfg.validate checked the policy
	}
	return cr
}

func (c *Conf) jsapiTicket() *Credential {
	return c.jsapi.Get(func() *Credential {
		return c.newKind("jsapi_ticket", c.ticketFetcher("jsapi"), false, c.cfg.JSAPITicket)
	})
}

func (c *Conf) cardTicket() *Credential {
	return c.card.Get(func() *Credential {
		return c.newKind("wx_card_ticket", c.ticketFetcher("wx_card"), false, c.cfg.CardTicket)
	})
}

// fetchAccessToken makes one access_token call: classic /cgi-bin/token or
// /cgi-bin/stable_token, with "force_refresh":true when r.Force is set.
func (c *Conf) fetchAccessToken(ctx context.Context, r FetchRequest) (Token, error) {
	switch {
	case c.appID == "":
		return Token{}, missingField("AppID", "keep the access_token")
	case c.secret.IsZero():
		return Token{}, missingField("AppSecret", "fetch an access_token")
	}
	secret, err := c.secret.Get(ctx)
	if err != nil {
		return Token{}, err
	}
	var tok Token
	if c.cfg.TokenAPI == ClassicToken {
		tok, err = c.raw.Issue(ctx, http.MethodGet, pathToken, url.Values{
			"grant_type": {"client_credential"}, "appid": {c.appID}, "secret": {secret.Reveal()},
		}, nil, "access_token")
	} else {
		tok, err = c.raw.Issue(ctx, http.MethodPost, pathStableToken, nil, map[string]any{
			"grant_type": "client_credential", "appid": c.appID, "secret": secret.Reveal(), "force_refresh": r.Force,
		}, "access_token")
	}
	return tok, c.secret.Check(secret, err)
}

// AppSecretRefused are the errcodes with which the Official Account's (and
// Mini Program's) token calls refuse the AppSecret: 40001 on
// /cgi-bin/token ("AppSecret错误或者AppSecret不属于这个公众号", its
// documentation's entry) and 40125 "invalid appsecret" (what
// /cgi-bin/stable_token, and /cgi-bin/token in practice, answer). No
// access_token is sent on these calls, so a 40001 there can only be the
// secret. Open Platform's api_component_token refuses a
// component_appsecret with the same codes.
var AppSecretRefused = CodeSet{40001, 40125}

// ticketFetcher returns the fetch of a ticket of type typ ("jsapi" or
// "wx_card"), made with the access_token the credential engine got before
// taking the ticket's lock (a rejection of it is returned, and the engine
// refreshes the token outside the lock and tries once more).
func (c *Conf) ticketFetcher(typ string) func(context.Context, FetchRequest) (Token, error) {
	return func(ctx context.Context, r FetchRequest) (Token, error) {
		return c.raw.Issue(ctx, http.MethodGet, pathTicket, url.Values{"type": {typ}, "access_token": {r.Needed.Value}}, nil, "ticket")
	}
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
	if c.appID == "" {
		return errMissing("AppID", "keep an access_token")
	}
	_, err := c.AccessToken(ctx)
	return err
}

// String describes c without its secrets.
func (c *Conf) String() string {
	cfg := c.cfg
	cfg.AppID = c.appID
	return "core.Conf" + cfg.String()[len("core.Config"):]
}

// GoString is String, so that %#v redacts the AppSecret too.
func (c *Conf) GoString() string { return c.String() }

// now reads the clock.
func (c *Conf) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

// AppID returns the configured AppID.
func (c *Conf) AppID() string { return c.appID }

// EncryptMode returns the message encryption mode (after defaulting).
func (c *Conf) EncryptMode() EncryptMode { return c.cfg.EncryptMode }

// AccessToken returns a valid access_token and its expiry (the seed's
// get_access_token()), fetching or reading it from the store as needed.
func (c *Conf) AccessToken(ctx context.Context) (Token, error) { return c.access.Get(ctx) }

// JSAPITicket returns a valid jsapi_ticket (for JS-SDK signatures) and its
// expiry (the seed's get_jsapi_ticket()).
func (c *Conf) JSAPITicket(ctx context.Context) (Token, error) { return c.jsapiTicket().Get(ctx) }

// CardTicket returns a valid wx_card api_ticket and its expiry.
func (c *Conf) CardTicket(ctx context.Context) (Token, error) { return c.cardTicket().Get(ctx) }

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
	return c.access.Refresh(ctx, rejected)
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
	return c.access.ForceRefresh(ctx, stale)
}

// Do calls the WeChat API at path (e.g. "/cgi-bin/user/info") with the
// Conf's access_token added to query, and decodes the reply into out: see
// API.Do for the kinds of body and out, retries and errors. A nil out
// means the body is not needed: it is discarded (a file as much as JSON),
// but a JSON errcode still fails the call. When WeChat
// rejects the Conf's token (40001, 40014, 42001), Do calls
// RefreshAccessToken with the token it used and retries once.
//
// If query already carries an access_token (a user's OAuth token for
// /sns/userinfo, another account's token), Do sends it unchanged and does
// not refresh it on a rejection: it is not a token this Conf keeps.
func (c *Conf) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	return c.api.Do(ctx, method, path, query, body, out)
}

// API returns the API Conf calls WeChat through, with its access_token:
// for code that wants an *API (Do, Issue, Transport) rather than a Conf.
func (c *Conf) API() *API { return c.api }

// Ledger reads the fleet's fetch ledger of the access_token from the store
// (see Ledger and ReadLedger): the last fetches, who made them and why, and
// the day's counts. An error wrapping ErrNotFound when none is recorded
// (no fetch yet, or Config.NoLedger).
func (c *Conf) Ledger(ctx context.Context) (Ledger, error) { return c.access.Ledger(ctx) }

// FlushLedger waits until the fetch records of c's credentials (its
// access_token and the tickets it has used) are in the store, or ctx ends
// (its error). Call it before a process exits to keep its last records;
// tests call it before reading the ledger.
func (c *Conf) FlushLedger(ctx context.Context) error {
	for _, cr := range []*Credential{c.access, c.jsapi.Load(), c.card.Load()} {
		if cr == nil {
			continue
		}
		if err := cr.FlushLedger(ctx); err != nil {
			return err
		}
	}
	return nil
}

// AccessTokenCredential returns the Credential that keeps the
// access_token, for code built on Credentials (a ticket kind of your own
// that Needs it, the conformance herd).
func (c *Conf) AccessTokenCredential() *Credential { return c.access }
