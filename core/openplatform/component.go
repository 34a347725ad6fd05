package openplatform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/tenant"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// Paths of the Open Platform calls a Component makes (第三方平台 › 授权相关接口).
const (
	// PathComponentToken issues the component_access_token: POST
	// {component_appid, component_appsecret, component_verify_ticket}.
	PathComponentToken = "/cgi-bin/component/api_component_token"
	// PathQueryAuth exchanges an authorization code: POST
	// ?component_access_token=CT {component_appid, authorization_code} →
	// {"authorization_info":{authorizer_appid, authorizer_access_token,
	// expires_in, authorizer_refresh_token, func_info}}.
	PathQueryAuth = "/cgi-bin/component/api_query_auth"
	// PathAuthorizerToken refreshes an authorizer's token: POST
	// ?component_access_token=CT {component_appid, authorizer_appid,
	// authorizer_refresh_token} → {authorizer_access_token, expires_in,
	// authorizer_refresh_token}.
	PathAuthorizerToken = "/cgi-bin/component/api_authorizer_token"
)

// VerifyTicketLifetime is how long a component_verify_ticket is trusted
// after the CreateTime of the push that brought it: WeChat pushes a ticket
// every 10 minutes and documents it as valid for 12 hours.
const VerifyTicketLifetime = 12 * time.Hour

// DefaultMaxAuthorizers is the default Config.MaxAuthorizers.
const DefaultMaxAuthorizers = 10000

// DefaultRefreshJitter is the default Config.Policy.RefreshJitter (see
// "Scale" in the package doc).
const DefaultRefreshJitter = 10 * time.Minute

// Codes is the errcode table of the Open Platform's component API on
// api.weixin.qq.com: the Official Account's, plus as configuration errors
// (never retried; a token call refused with one is not made again for
// Policy.ErrorBackoff) 61004 (the server's IP is not in the component's
// whitelist) and 61003 (the account has not authorized the component:
// never, or withdrawn — only the merchant can mend it, so asking again at
// every call would only load WeChat). 61005/61006 (verify ticket expired
// or invalid) become ErrNoVerifyTicket, 61023/61003 (refresh token
// invalid, authorization withdrawn) a *ReauthorizeError.
var Codes = &core.Codes{
	Platform:          "wechat",
	InvalidCredential: core.OfficialAccountCodes.InvalidCredential,
	Config:            append(core.CodeSet{61004, 61003}, core.OfficialAccountCodes.Config...),
	Quota:             core.OfficialAccountCodes.Quota,
	Temporary:         core.OfficialAccountCodes.Temporary,
	Hint: func(code int, msg string) string {
		switch code {
		case 61004:
			return "this server's IP is not in the component's IP whitelist (第三方平台 › 开发资料 › 白名单IP)"
		case 61005, 61006:
			return "the component_verify_ticket is expired or invalid: it comes from WeChat's push to the authorization event URL"
		case 61023:
			return "the authorizer_refresh_token is invalid: the merchant must authorize again"
		case 61003:
			return "the account has not authorized the component (never, or withdrawn): the merchant must authorize it"
		}
		return core.OfficialAccountCodes.Hint(code, msg)
	},
}

// ErrNoVerifyTicket is returned (wrapped) when the component_access_token
// cannot be fetched for want of a valid component_verify_ticket: none has
// been pushed yet (WeChat pushes one about every 10 minutes to the
// authorization event URL, 授权事件接收URL: pass each push to
// Component.HandleEvent), the last one is older than VerifyTicketLifetime,
// or WeChat refused it (61005, 61006).
var ErrNoVerifyTicket = errors.New("no valid component_verify_ticket: WeChat pushes one about every 10 minutes to the authorization event URL; pass each push to Component.HandleEvent")

// ReauthorizeError says an authorizer's chain is broken and only the
// merchant can mend it by authorizing again: its authorizer_refresh_token
// is missing from the store, was withdrawn (the unauthorized event), or
// WeChat refused it (61023; 61003 after the merchant withdrew). Reach it
// with errors.As.
type ReauthorizeError struct {
	AuthorizerAppID string // the merchant account's AppID
	Reason          string // what happened, without any credential
	Err             error  // WeChat's error, if it refused the token
	// Withdrawn: the merchant withdrew the authorization (the unauthorized
	// event, 61003), so the access token held is dead too: the error then
	// matches core.ErrRevoked, and the authorizer stops serving it.
	Withdrawn bool
}

// Is reports whether target is core.ErrRevoked and the authorization was
// withdrawn.
func (e *ReauthorizeError) Is(target error) bool { return target == core.ErrRevoked && e.Withdrawn }

// Error says which authorizer, why, and that the merchant must authorize
// again; it holds no credential.
func (e *ReauthorizeError) Error() string {
	s := "authorizer " + e.AuthorizerAppID + ": " + e.Reason + ": the merchant must authorize the component again"
	if e.Err != nil {
		s += ": " + strings.TrimPrefix(e.Err.Error(), "wechatconf: ")
	}
	return s
}

// Unwrap returns WeChat's error, if any.
func (e *ReauthorizeError) Unwrap() error { return e.Err }

// Config is what New needs for one third-party platform (第三方平台): its
// component_appid and component_appsecret, and the Token and
// EncodingAESKey of its authorization event URL.
type Config struct {
	// AppID is the component_appid. Required.
	AppID string
	// AppSecret is the component_appsecret: core.NewSecret(os.Getenv(…)).
	// Required to fetch the component_access_token.
	AppSecret core.Secret
	// AppSecretSource, if set, is read for the component_appsecret instead
	// (core.FileSecret for a mounted secret file): at the first
	// component_access_token fetch, and again at the first fetch after
	// api_component_token refused the value it gave (40125 invalid
	// appsecret, or 40001: the secret was reset in the Open Platform
	// console), which Policy.ErrorBackoff holds back — at most once per
	// back-off per process, and the platform recovers without a restart
	// once the new secret is in place (core.RotatingSecret). Setting both
	// AppSecret and AppSecretSource is an error.
	AppSecretSource core.SecretSource
	// Token and EncodingAESKey verify and decrypt the pushes to the
	// authorization event URL (and the authorizers' messages to the message
	// URL): the component's 消息校验Token and 消息加解密Key. Required for
	// HandleEvent and ReadMessage. PreviousEncodingAESKey, during a key
	// change, as core.Config's.
	Token, EncodingAESKey, PreviousEncodingAESKey core.Secret

	// Store keeps the chain — the verify ticket, the component token, each
	// authorizer's token and refresh token — and serialises refreshes
	// across the fleet; nil means a new core.MemoryStore (one process,
	// which loses the refresh tokens when it stops: use a shared store).
	Store core.TokenStore
	// DurableStore, if set, keeps the chain's durable state — each
	// authorizer's record (its authorizer_refresh_token, with its
	// authorizer_access_token: see AuthorizationKey) and the
	// component_verify_ticket — while Store keeps the rest (the
	// component_access_token, the authorizers' jsapi_ticket and wx_card
	// ticket). Use it to keep what cannot be fetched again on a store that
	// persists everything (PostgreSQL, etcd) when Store is one that may
	// forget (a Redis that evicts keys or does not persist). nil means
	// Store.
	DurableStore core.TokenStore
	// KeyPrefix starts every store key (see "Store keys" in the package
	// doc).
	// Default "wechatconf".
	KeyPrefix string
	// BaseURL, HTTPClient, Logger, MaxRetries, RetryBackoff and Now are as
	// core.Config's.
	BaseURL      string
	HTTPClient   *http.Client
	Logger       *slog.Logger
	MaxRetries   int
	RetryBackoff time.Duration
	Now          func() time.Time
	// Instance and NoLedger are as core.Config's: the name this process
	// records in each credential's fetch ledger (core.Ledger: the
	// component_access_token's, each authorizer's under its record's key),
	// and turning the ledger off.
	Instance string
	NoLedger bool
	// Policy is the timing and limits of the component_access_token and
	// of every authorizer's tokens. Zero fields take core's defaults, but
	// RefreshJitter defaults to 10 minutes: thousands of authorizer tokens
	// fetched together come due spread over that window.
	Policy core.Policy
	// ReadyHorizon is how long the component_access_token (Component.Ready)
	// and an authorizer's access token (Authorizer.Ready) must stay valid
	// for Ready to report them ready; see core.Config.ReadyHorizon
	// (default core.DefaultReadyHorizon, 2 minutes; negative means 0).
	ReadyHorizon time.Duration
	// MaxAuthorizers bounds how many authorizer handles (their in-memory
	// copies) a Component keeps; beyond it the least recently used are
	// dropped (and rebuilt from the store when asked for again). Durable
	// state is never dropped. Zero or negative means DefaultMaxAuthorizers.
	MaxAuthorizers int
	// Dedup, if set, makes HandleMessage and MessageHandler handle each
	// authorizer's push once across the fleet (core.Dedup; build it with
	// core.NewDedup over the fleet's store). nil handles every delivery.
	// The authorization event URL's pushes (HandleEvent) need none: they
	// are applied in CreateTime order, and applying one twice changes
	// nothing.
	Dedup *core.Dedup
}

// String describes c without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("openplatform.Config{AppID: %q, AppSecret: %v, Token: %v, EncodingAESKey: %v, KeyPrefix: %q, BaseURL: %q}",
		c.AppID, c.AppSecret, c.Token, c.EncodingAESKey, c.KeyPrefix, c.BaseURL)
}

// GoString is String.
func (c Config) GoString() string { return c.String() }

// Component keeps a third-party platform's credential chain valid across a
// fleet: the component_verify_ticket WeChat pushes, the component_access_
// token fetched with it, and for each authorizer (merchant account) its
// authorizer_access_token, fetched with its authorizer_refresh_token.
// Every token is a core.Credential on the Component's store. A Component
// is safe for concurrent use and holds no goroutine or timer per
// authorizer; build it with New.
type Component struct {
	cfg     Config
	prefix  string // "<KeyPrefix>/open/<AppID>/"
	raw     *core.API
	api     *core.API // raw with the component_access_token
	token   *core.Credential
	secret  *core.RotatingSecret // AppSecret, or AppSecretSource
	keyring msgcrypt.Keyring
	msgs    *core.Conf       // reads the authorizers' messages: the component's keys and AppID
	family  *core.ConfFamily // the authorizers' Confs: one Config, shared

	ledger *core.LedgerConfig // the authorizers' fetch ledger, shared; nil when off

	// t is the vendor-platform mechanism this package is a harness over:
	// the verify ticket, the authorizers' records and their ordered
	// transitions, the durable writes held, the registry of handles.
	t *tenant.Platform[Authorizer]
}

// New checks cfg and returns its Component. It does no I/O.
func New(cfg Config) (*Component, error) {
	if cfg.AppID == "" {
		return nil, errors.New("wechatconf: openplatform: Config.AppID (the component_appid) is required")
	}
	if cfg.Store == nil {
		cfg.Store = core.NewMemoryStore()
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "wechatconf"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = core.DefaultBaseURL
	}
	if cfg.MaxAuthorizers <= 0 {
		cfg.MaxAuthorizers = DefaultMaxAuthorizers
	}
	if cfg.Policy.RefreshJitter == 0 {
		cfg.Policy.RefreshJitter = DefaultRefreshJitter
	}
	c := &Component{cfg: cfg, prefix: cfg.KeyPrefix + "/open/" + cfg.AppID + "/"}
	c.ledger = core.NewLedgerConfig(cfg.Instance, cfg.NoLedger)
	var err error
	if c.secret, err = core.NewRotatingSecret(core.RotatingSecretConfig{
		Field: "AppSecret", SourceField: "AppSecretSource", Secret: cfg.AppSecret, Source: cfg.AppSecretSource,
		Refused: core.AppSecretRefused,
	}); err != nil {
		return nil, err // "wechatconf: set Config.… or …, not both"
	}
	if c.raw, err = core.NewAPI(core.APIConfig{
		BaseURL: cfg.BaseURL, HTTPClient: cfg.HTTPClient, Codes: Codes, RotatingSecrets: []*core.RotatingSecret{c.secret},
		MaxRetries: cfg.MaxRetries, RetryBackoff: cfg.RetryBackoff, Logger: cfg.Logger, Now: cfg.Now,
		Platform: core.PlatformOpenPlatformComponent,
	}); err != nil {
		return nil, err
	}
	if c.token, err = core.NewCredential(core.CredentialConfig{
		Name: "component_access_token", Platform: core.PlatformOpenPlatformComponent, Key: c.prefix + "component_access_token", Store: cfg.Store,
		Prepare: c.readVerifyTicket, Fetch: c.fetchComponentToken,
		Policy: cfg.Policy, Logger: cfg.Logger, Now: cfg.Now, Ledger: c.ledger,
	}); err != nil {
		return nil, err
	}
	if c.t, err = tenant.New(tenant.Config[Authorizer]{
		Prefix: c.prefix, Store: cfg.Store, Durable: cfg.DurableStore,
		Timeout: cfg.Policy.RefreshTimeout, Logger: cfg.Logger, Now: cfg.Now,
		Ticket:     tenant.Ticket{Name: "component_verify_ticket", Lifetime: VerifyTicketLifetime, Missing: ErrNoVerifyTicket},
		Format:     recordFormat,
		RecordName: "authorizer_refresh_token",
		PlatformOf: platformOf,
		Exchange:   c.exchange,
		CodeRefused: func(err error) bool {
			e := apiError(err)
			return e != nil && (e.Code == 61009 || e.Code == 61010)
		},
		ExchangePath: PathQueryAuth,
		Reauthorize:  reauthorize,
		SecretRefused: func(err error) bool {
			var re *ReauthorizeError
			return errors.As(err, &re) && !re.Withdrawn && re.Err != nil // WeChat refused it (61023)
		},
		Access: core.CredentialConfig{
			Name: "authorizer_access_token", Platform: core.PlatformOpenPlatformAuthorizer, Needs: c.token,
			Policy: cfg.Policy, Logger: cfg.Logger, Now: cfg.Now, Ledger: c.ledger,
		},
		FetchAccess:   c.fetchAuthorizerToken,
		IsReauthorize: isReauthorize,
		NewHandle:     c.newAuthorizer,
		Invalidate:    func(a *Authorizer) { a.access.Invalidate() },
		MaxHandles:    cfg.MaxAuthorizers,
	}); err != nil {
		return nil, err
	}
	if c.family, err = core.NewConfFamily(core.Config{
		Store: cfg.Store, KeyPrefix: strings.TrimSuffix(c.prefix, "/"),
		BaseURL: cfg.BaseURL, HTTPClient: cfg.HTTPClient, Logger: cfg.Logger, Now: cfg.Now,
		MaxRetries: cfg.MaxRetries, RetryBackoff: cfg.RetryBackoff,
		RefreshAhead: cfg.Policy.RefreshAhead, ExpiryMargin: cfg.Policy.ExpiryMargin, RefreshTimeout: cfg.Policy.RefreshTimeout,
		RejectedRefreshInterval: cfg.Policy.RejectedRefreshInterval, ErrorBackoff: cfg.Policy.ErrorBackoff,
		TokenAPI: core.ClassicToken, Platform: core.PlatformOpenPlatformAuthorizer, ReadyHorizon: cfg.ReadyHorizon,
		Instance: cfg.Instance, NoLedger: cfg.NoLedger,
	}); err != nil {
		return nil, err
	}
	c.api = c.raw.WithCredential(c.token, "component_access_token")
	if !cfg.EncodingAESKey.IsZero() {
		if c.msgs, err = core.New(core.Config{
			AppID: cfg.AppID, Token: cfg.Token, EncodingAESKey: cfg.EncodingAESKey, PreviousEncodingAESKey: cfg.PreviousEncodingAESKey,
			Store: cfg.Store, KeyPrefix: cfg.KeyPrefix + "/open", BaseURL: cfg.BaseURL, Now: cfg.Now, Logger: cfg.Logger,
			Platform: core.PlatformOpenPlatformComponent, Dedup: cfg.Dedup,
		}); err != nil {
			return nil, err
		}
		cur, err := msgcrypt.New(cfg.Token.Reveal(), cfg.EncodingAESKey.Reveal(), cfg.AppID)
		if err != nil {
			return nil, err
		}
		c.keyring = msgcrypt.Keyring{Current: cur, Now: cfg.Now}
		if !cfg.PreviousEncodingAESKey.IsZero() {
			if c.keyring.Previous, err = msgcrypt.New(cfg.Token.Reveal(), cfg.PreviousEncodingAESKey.Reveal(), cfg.AppID); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// AppID returns the component_appid.
func (c *Component) AppID() string { return c.cfg.AppID }

// String describes c without its secrets.
func (c *Component) String() string {
	return "openplatform.Component" + c.cfg.String()[len("openplatform.Config"):]
}

// GoString is String.
func (c *Component) GoString() string { return c.String() }

func (c *Component) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

// ComponentAccessToken returns a valid component_access_token, from
// memory, the store, or WeChat (PathComponentToken, with the stored
// component_verify_ticket). One fetch per refresh across the fleet; a
// missing or expired ticket is ErrNoVerifyTicket.
func (c *Component) ComponentAccessToken(ctx context.Context) (core.Token, error) {
	return c.token.Get(ctx)
}

// Do calls the component API at path (e.g. "/cgi-bin/component/api_get_authorizer_info")
// with the component_access_token added to query, as core.API.Do does:
// a rejected token is replaced by a compare-and-refresh and the call
// retried once.
func (c *Component) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	return c.api.Do(ctx, method, path, query, body, out)
}

// readVerifyTicket is the component token's Prepare: the stored ticket,
// read before the lock.
func (c *Component) readVerifyTicket(ctx context.Context) (any, error) {
	t, err := c.t.Ticket(ctx)
	if err != nil {
		return nil, err
	}
	return t.Value, nil
}

// fetchComponentToken makes one api_component_token call.
func (c *Component) fetchComponentToken(ctx context.Context, r core.FetchRequest) (core.Token, error) {
	if c.secret.IsZero() {
		return core.Token{}, fmt.Errorf("%w: openplatform.Config.AppSecret (or AppSecretSource) is required to fetch the component_access_token", core.ErrMissingConfig)
	}
	secret, err := c.secret.Get(ctx)
	if err != nil {
		return core.Token{}, err
	}
	tok, err := c.raw.Issue(ctx, http.MethodPost, PathComponentToken, nil, map[string]string{
		"component_appid": c.cfg.AppID, "component_appsecret": secret.Reveal(), "component_verify_ticket": r.Prepared.(string),
	}, "component_access_token")
	err = c.secret.Check(secret, err)
	if e := apiError(err); e != nil && (e.Code == 61005 || e.Code == 61006) {
		return core.Token{}, fmt.Errorf("%w: %w", ErrNoVerifyTicket, err)
	}
	return tok, err
}

func apiError(err error) *core.APIError {
	var e *core.APIError
	if errors.As(err, &e) {
		return e
	}
	return nil
}
