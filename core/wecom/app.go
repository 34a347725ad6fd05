package wecom

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/lazy"
)

// DefaultBaseURL is WeCom's API host, which App calls unless Config.BaseURL
// names another (a wxtest server).
const DefaultBaseURL = "https://qyapi.weixin.qq.com"

// Paths of the WeCom API calls App makes itself (服务端API: 获取access_token,
// 获取企业的jsapi_ticket, 获取应用的jsapi_ticket).
const (
	PathToken       = "/cgi-bin/gettoken"         // GET ?corpid=ID&corpsecret=SECRET
	PathJSAPITicket = "/cgi-bin/get_jsapi_ticket" // GET ?access_token=T: the corp's ticket, for wx.config
	PathAgentTicket = "/cgi-bin/ticket/get"       // GET ?access_token=T&type=agent_config: the app's, for wx.agentConfig
)

// Codes is WeCom's errcode table (全局错误码,
// https://developer.work.weixin.qq.com/document/path/90313). It is not the
// Official Account's: in WeCom 40001 is a wrong secret (不合法的secret参数),
// a configuration error, and a rejected access_token is 40014 (不合法的
// access_token) or 42001 (access_token已过期); WeCom has been seen to answer
// 40014 for an expired token, so both mean "fetch a new one". Every
// *core.APIError an App returns carries it, so core.IsInvalidCredential,
// IsConfigError, IsQuotaExceeded and IsTemporary answer for WeCom.
//
//	invalid credential  40014 不合法的access_token, 42001 access_token已过期
//	configuration       40001 不合法的secret参数, 40013 不合法的CorpID, 40056 不合法的agentid,
//	                    40091 secret不合法, 41002 缺少corpid参数, 41004 缺少secret参数,
//	                    48002 API接口无权限调用, 50003 应用已禁用, 60020 不安全的访问IP,
//	                    301002 无权操作指定的应用
//	quota (rate limit)  45009 接口调用超过限制 (gettoken called too often: frequency interception)
//	temporary           -1 系统繁忙, 45033 接口并发调用超过限制
var Codes = &core.Codes{
	Platform:          "wecom",
	InvalidCredential: core.CodeSet{40014, 42001},
	Config:            core.CodeSet{40001, 40013, 40056, 40091, 41002, 41004, 48002, 50003, 60020, 301002},
	Quota:             core.CodeSet{45009},
	Temporary:         core.CodeSet{-1, 45033},
	Hint:              hint,
}

// hint says what to do about the WeCom errors a person must act on.
func hint(code int, _ string) string {
	switch code {
	case -1, 45033:
		return "WeCom is busy; retry later"
	case 40001, 40091:
		return "the app's Secret is not valid (wrong, reset, or another corp's): check Config.Secret"
	case 40013:
		return "the CorpID is not valid: check Config.CorpID"
	case 40056:
		return "the agentid is not valid: check Config.AgentID"
	case 41002:
		return "the corpid parameter is missing: set Config.CorpID"
	case 41004:
		return "the corpsecret parameter is missing: set Config.Secret"
	case 45009:
		return "WeCom's call frequency limit for this API is reached; not retried, calls back off (Policy.ErrorBackoff)"
	case 48002:
		return "the app has no permission for this API: grant it in the admin console"
	case 50003:
		return "the app is disabled in the admin console"
	case 60020:
		return "this server's IP is not among the app's trusted IPs (企业可信IP): add it in the admin console"
	}
	return ""
}

// Config is what New needs for one WeCom self-built app (自建应用) — or any
// secret of a corp that fetches an access_token: 通讯录同步, 客户联系 — from
// the admin console.
type Config struct {
	// CorpID is the corp's id (我的企业 → 企业信息 → 企业ID). Required.
	CorpID string
	// AgentID is the app's AgentId (e.g. 1000002): the id of the app in
	// store keys and in wx.agentConfig. Required unless App is set.
	AgentID int64
	// App names the app in store keys when it has no AgentID (the contact
	// sync or customer contact secret: "contacts", "externalcontact").
	// Default the AgentID in decimal. Never the secret.
	App string
	// Secret is the app's Secret: core.NewSecret(os.Getenv(…)). Required
	// to fetch tokens; no rendering of a Config shows it.
	Secret core.Secret
	// SecretSource, if set, is read for the Secret instead (core.FileSecret
	// for a mounted secret file): at the first access_token fetch, and
	// again at the first fetch after gettoken refused the value it gave
	// (40001 不合法的secret参数, 40091 secret不合法: the Secret was reset in
	// the admin console), which Policy.ErrorBackoff holds back — at most
	// once per back-off per process, and the app recovers without a restart
	// once the new Secret is in place (core.RotatingSecret). Setting both
	// Secret and SecretSource is an error.
	SecretSource core.SecretSource

	// Store keeps the credentials and serialises their refresh across the
	// fleet; nil means a new core.MemoryStore (one process).
	Store core.TokenStore
	// KeyPrefix starts every store key (see Keys). Default "wechatconf".
	KeyPrefix string
	// BaseURL is WeCom's API host, default DefaultBaseURL.
	BaseURL string
	// HTTPClient makes the calls; nil means a client with a 15 s timeout.
	HTTPClient *http.Client
	// Logger receives the credentials' events (core's Event* constants);
	// nil sends those of level Warn and above to slog.Default().
	Logger *slog.Logger
	// Instance and NoLedger are as core.Config's: the name this process
	// records in each credential's fetch ledger (core.Ledger), and turning
	// the ledger off.
	Instance string
	NoLedger bool
	// Policy is the credentials' timing and limits (RefreshAhead,
	// ExpiryMargin, RejectedRefreshInterval, ErrorBackoff, …); its zero
	// fields take core's defaults, except the access_token's Handover,
	// core.HandoverAtExpiry: gettoken hands back the current token until
	// it expires (有效期内重复获取返回相同结果), so the token is served to its
	// end and fetched once then, with no refresh ahead that would only
	// bring the same token back; and its FetchWithoutStore, always set:
	// gettoken invalidates nobody's token, so while the store is down the
	// app fetches without its lock (core.ErrStoreUnavailable, "When the
	// store is down" in core's package doc). The tickets never do.
	Policy core.Policy
	// MaxRetries and RetryBackoff: as core.Config's (default 3, 200 ms).
	MaxRetries   int
	RetryBackoff time.Duration
	// ReadyHorizon is how long the access_token must stay valid for Ready
	// to report the app ready; see core.Config.ReadyHorizon (default
	// core.DefaultReadyHorizon; negative means 0). gettoken's token is
	// served to its expiry with no refresh ahead, so the horizon is
	// clamped to 0: the app is ready whenever it can serve a token.
	ReadyHorizon time.Duration
	// Now is the clock expiry is judged by; nil means the system clock.
	Now func() time.Time
	// Platform is the "platform" attribute of the app's events
	// (core.Platform); default core.PlatformWeCom. Package wecomvendor sets
	// core.PlatformWeComAuthCorp for a vendor's corps.
	Platform core.Platform
}

// String describes c without its Secret.
func (c Config) String() string {
	return fmt.Sprintf("wecom.Config{CorpID: %q, AgentID: %d, App: %q, Secret: %v, KeyPrefix: %q, BaseURL: %q}",
		c.CorpID, c.AgentID, c.App, c.Secret, c.KeyPrefix, c.BaseURL)
}

// GoString is String, so that %#v redacts the Secret too.
func (c Config) GoString() string { return c.String() }

// LogValue lets log/slog print a Config without its Secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("corp_id", c.CorpID), slog.Int64("agent_id", c.AgentID), slog.String("app", c.App))
}

// App keeps a WeCom app's credentials valid through a TokenStore — its
// access_token, the corp's jsapi_ticket and the app's agent_config ticket —
// and calls the WeCom API with them, with the same guarantees as core.Conf
// (each credential is a core.Credential: one fetch per refresh across the
// fleet, compare-and-refresh on 40014/42001, limits, stale-while-
// revalidate). Several apps of one corp each have their own App, token and
// keys. An App is safe for concurrent use; build it with New.
type App struct {
	*appShared // the configuration: this App's own, or its AppFamily's

	corpID string
	access *core.Credential
	// The tickets, made on first use: a vendor's corp that never signs a
	// JS-SDK page never pays for them (see wecomvendor's scale).
	jsapi, agent lazy.Value[core.Credential]
	api          *core.API // raw with the access_token
}

// appShared is an App's configuration and what is built from it once: an
// App made by New has its own, the Apps of an AppFamily share one. Never
// written after it is made.
type appShared struct {
	cfg          Config // cfg.CorpID is the App's (New), or unused (AppFamily: each App's corpID)
	ticketPolicy core.Policy
	raw          *core.API
	secret       *core.RotatingSecret // Secret, or SecretSource; nil for none
}

// secretRefused are the errcodes with which gettoken refuses the
// corpsecret: 40001 不合法的secret参数 and 40091 secret不合法.
var secretRefused = core.CodeSet{40001, 40091}

// Keys returns the store keys of the app's credentials: its access_token
// and agent_config ticket, "<KeyPrefix>/wecom/<CorpID>/<App>/access_token"
// and ".../agent_config_ticket", and the corp's jsapi_ticket,
// "<KeyPrefix>/wecom/<CorpID>/jsapi_ticket", which every app of the corp
// shares (it is the corp's, whichever app's token fetched it).
func (a *App) Keys() (accessToken, jsapiTicket, agentTicket string) {
	return a.access.Key(), a.jsapiKey(), a.agentKey()
}

func (a *App) jsapiKey() string { return a.corpKey() + "jsapi_ticket" }
func (a *App) agentKey() string {
	return a.corpKey() + a.cfg.App + "/agent_config_ticket"
}

// ticket makes the ticket credential name under key, fetched at path with
// query and the access_token.
func (a *App) ticket(name, key, path string, query url.Values) *core.Credential {
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: name, Platform: a.cfg.Platform, Key: key, Store: a.cfg.Store, Fetch: a.ticketFetcher(path, query), Needs: a.access,
		Policy: a.ticketPolicy, Logger: a.cfg.Logger, Now: a.cfg.Now, Ledger: core.NewLedgerConfig(a.cfg.Instance, a.cfg.NoLedger),
	})
	if err != nil {
		panic(err) // newAppShared checked the ticket Policy
	}
	return cr
}

func (a *App) jsapiTicket() *core.Credential {
	return a.jsapi.Get(func() *core.Credential { return a.ticket("jsapi_ticket", a.jsapiKey(), PathJSAPITicket, nil) })
}

func (a *App) agentTicket() *core.Credential {
	return a.agent.Get(func() *core.Credential {
		return a.ticket("agent_config_ticket", a.agentKey(), PathAgentTicket, url.Values{"type": {"agent_config"}})
	})
}

// New checks cfg and returns its App. It does no I/O.
func New(cfg Config) (*App, error) { return newApp(cfg, nil) }

// NewWithAccessToken returns an App whose access_token is kept by access
// instead of fetched from gettoken with Config.Secret: a WeCom vendor's
// corp token (package wecomvendor: get_corp_token with the corp's
// permanent_code, or gettoken with a custom-developed app's), or a kind
// of your own. Everything else — the corp's jsapi_ticket and the app's
// agent_config ticket (fetched with access's token, kept under the keys
// Keys names), Do, Transport, JSSDKConfig, AgentConfig — is as with New;
// Config.Secret, SecretSource and the access_token's Policy fields are
// unused. A rejection Do sees is handed to access's compare-and-refresh.
// Errors are New's, and access nil.
func NewWithAccessToken(cfg Config, access *core.Credential) (*App, error) {
	if access == nil {
		return nil, errors.New("wechatconf: wecom: NewWithAccessToken: the access_token credential is nil")
	}
	return newApp(cfg, access)
}

func newApp(cfg Config, access *core.Credential) (*App, error) {
	if cfg.CorpID == "" {
		return nil, errors.New("wechatconf: wecom: Config.CorpID is required")
	}
	sh, err := newAppShared(cfg)
	if err != nil {
		return nil, err
	}
	a := &App{appShared: sh, corpID: sh.cfg.CorpID, access: access}
	if a.access == nil {
		accessPolicy := sh.cfg.Policy
		if accessPolicy.Handover == 0 {
			// gettoken hands back the current token until it expires.
			accessPolicy.Handover = core.HandoverAtExpiry
		}
		// gettoken invalidates nobody's token: with the store down, the app
		// fetches without its lock (core.Policy.FetchWithoutStore).
		accessPolicy.FetchWithoutStore = true
		if a.access, err = core.NewCredential(core.CredentialConfig{
			Name: "access_token", Platform: sh.cfg.Platform, Key: a.corpKey() + sh.cfg.App + "/access_token", Store: sh.cfg.Store, Fetch: a.fetchAccessToken,
			Policy: accessPolicy, Logger: sh.cfg.Logger, Now: sh.cfg.Now, Ledger: core.NewLedgerConfig(sh.cfg.Instance, sh.cfg.NoLedger),
		}); err != nil {
			return nil, err
		}
	}
	a.api = sh.raw.WithCredential(a.access, "access_token")
	return a, nil
}

// newAppShared checks cfg (but its CorpID), fills in its defaults and
// builds what its Apps share.
func newAppShared(cfg Config) (*appShared, error) {
	switch {
	case cfg.App == "" && cfg.AgentID == 0:
		return nil, errors.New("wechatconf: wecom: Config.AgentID (or, for a secret without an app, Config.App) is required: it names the app in store keys")
	case cfg.App == "":
		cfg.App = strconv.FormatInt(cfg.AgentID, 10)
	}
	if cfg.Store == nil {
		cfg.Store = core.NewMemoryStore()
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "wechatconf"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Platform == "" {
		cfg.Platform = core.PlatformWeCom
	}
	sh := &appShared{cfg: cfg, ticketPolicy: cfg.Policy}
	sh.ticketPolicy.FetchWithoutStore = false
	// The tickets are made on first use, with this Policy: check it now
	// (an AppFamily, or NewWithAccessToken, makes no credential of its own
	// that would), so that a ticket never fails to be made.
	if _, err := core.NewCredentialKind(core.CredentialConfig{Name: "jsapi_ticket", Policy: sh.ticketPolicy}); err != nil {
		return nil, err
	}
	var rotating []*core.RotatingSecret
	if !cfg.Secret.IsZero() || cfg.SecretSource != nil {
		var err error
		if sh.secret, err = core.NewRotatingSecret(core.RotatingSecretConfig{
			Field: "Secret", SourceField: "SecretSource", Secret: cfg.Secret, Source: cfg.SecretSource, Refused: secretRefused,
		}); err != nil {
			return nil, err // "wechatconf: set Config.… or …, not both"
		}
		rotating = []*core.RotatingSecret{sh.secret}
	}
	var err error
	if sh.raw, err = core.NewAPI(core.APIConfig{
		BaseURL: cfg.BaseURL, HTTPClient: cfg.HTTPClient, Codes: Codes, RotatingSecrets: rotating,
		MaxRetries: cfg.MaxRetries, RetryBackoff: cfg.RetryBackoff, Logger: cfg.Logger, Now: cfg.Now,
		Platform: cfg.Platform,
	}); err != nil {
		return nil, err
	}
	return sh, nil
}

// corpKey is the prefix of the corp's keys: "<KeyPrefix>/wecom/<CorpID>/".
func (a *App) corpKey() string { return a.cfg.KeyPrefix + "/wecom/" + a.corpID + "/" }

// AppFamily makes the Apps of many corps that share one Config but for
// their CorpID and their access_token, which each App's own Credential
// keeps (as NewWithAccessToken): a WeCom vendor's corps (package
// wecomvendor), or corps of your own. The configuration, its checks and
// the API client are made once for the family, so an App of it costs
// about 100 bytes beside its credentials. An AppFamily is safe for
// concurrent use.
type AppFamily struct{ sh *appShared }

// NewAppFamily checks cfg as New does and returns its family. CorpID,
// Secret and SecretSource are one corp's and must be left empty (an error
// otherwise); App (or AgentID) is required. It does no I/O.
func NewAppFamily(cfg Config) (*AppFamily, error) {
	if cfg.CorpID != "" || !cfg.Secret.IsZero() || cfg.SecretSource != nil {
		return nil, errors.New("wechatconf: wecom: NewAppFamily: CorpID, Secret and SecretSource are one corp's: leave them empty")
	}
	sh, err := newAppShared(cfg)
	if err != nil {
		return nil, err
	}
	return &AppFamily{sh: sh}, nil
}

// New returns the App of corpID (required), whose access_token access
// (required) keeps: NewWithAccessToken's App, with the family's Config.
// It does no I/O.
func (f *AppFamily) New(corpID string, access *core.Credential) (*App, error) {
	switch {
	case corpID == "":
		return nil, errors.New("wechatconf: wecom: AppFamily.New: the CorpID is empty")
	case access == nil:
		return nil, errors.New("wechatconf: wecom: AppFamily.New: the access_token credential is nil")
	}
	return &App{appShared: f.sh, corpID: corpID, access: access, api: f.sh.raw.WithCredential(access, "access_token")}, nil
}

// fetchAccessToken makes one gettoken call. WeCom has no forced variant:
// within its validity gettoken returns the current token.
func (a *App) fetchAccessToken(ctx context.Context, _ core.FetchRequest) (core.Token, error) {
	if a.secret.IsZero() {
		return core.Token{}, fmt.Errorf("%w: wecom.Config.Secret (or SecretSource) is required to fetch an access_token", core.ErrMissingConfig)
	}
	secret, err := a.secret.Get(ctx)
	if err != nil {
		return core.Token{}, err
	}
	tok, err := a.raw.Issue(ctx, http.MethodGet, PathToken, url.Values{"corpid": {a.corpID}, "corpsecret": {secret.Reveal()}}, nil, "access_token")
	return tok, a.secret.Check(secret, err)
}

// ticketFetcher returns the fetch of the ticket at path, made with the
// access_token the engine got before taking the ticket's lock.
func (a *App) ticketFetcher(path string, query url.Values) func(context.Context, core.FetchRequest) (core.Token, error) {
	return func(ctx context.Context, r core.FetchRequest) (core.Token, error) {
		q := url.Values{"access_token": {r.Needed.Value}}
		for k, v := range query {
			q[k] = v
		}
		return a.raw.Issue(ctx, http.MethodGet, path, q, nil, "ticket")
	}
}

// CorpID returns Config.CorpID.
func (a *App) CorpID() string { return a.corpID }

// AgentID returns Config.AgentID.
func (a *App) AgentID() int64 { return a.cfg.AgentID }

// String describes a without its Secret.
func (a *App) String() string {
	cfg := a.cfg
	cfg.CorpID = a.corpID
	return "wecom.App" + cfg.String()[len("wecom.Config"):]
}

// GoString is String.
func (a *App) GoString() string { return a.String() }

// AccessToken returns a valid access_token of the app and its expiry
// (GET /cgi-bin/gettoken), from memory, the store, or WeCom.
func (a *App) AccessToken(ctx context.Context) (core.Token, error) { return a.access.Get(ctx) }

// JSAPITicket returns a valid jsapi_ticket of the corp (GET
// /cgi-bin/get_jsapi_ticket), which signs wx.config.
func (a *App) JSAPITicket(ctx context.Context) (core.Token, error) { return a.jsapiTicket().Get(ctx) }

// AgentTicket returns a valid jsapi_ticket of the app (GET
// /cgi-bin/ticket/get?type=agent_config), which signs wx.agentConfig.
func (a *App) AgentTicket(ctx context.Context) (core.Token, error) { return a.agentTicket().Get(ctx) }

// RefreshAccessToken replaces an access_token WeCom rejected (40014,
// 42001), but only if the store still holds rejected: if another instance
// already replaced it, the newer token is returned and WeCom is not called.
// Do calls it by itself.
func (a *App) RefreshAccessToken(ctx context.Context, rejected string) (core.Token, error) {
	return a.access.Refresh(ctx, rejected)
}

// Do calls the WeCom API at path (e.g. "/cgi-bin/message/send") with the
// app's access_token added to query and decodes the reply into out, as
// core.API.Do does: a rejected token (40014, 42001) is replaced by a
// compare-and-refresh and the call retried once; -1 and 45033 are retried
// with backoff; errors are *core.APIError with Codes.
func (a *App) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	return a.api.Do(ctx, method, path, query, body, out)
}

// API returns the core.API the app calls WeCom through, with its token.
func (a *App) API() *core.API { return a.api }

// Transport returns an http.RoundTripper that adds the app's access_token
// to requests to WeCom's host and replaces a rejected one, as
// core.Conf.Transport does for an Official Account; base nil means
// http.DefaultTransport.
func (a *App) Transport(base http.RoundTripper) http.RoundTripper { return a.api.Transport(base) }

// Client returns an *http.Client whose Transport is a.Transport(base).
func (a *App) Client(base http.RoundTripper) *http.Client { return a.api.Client(base) }

// AccessTokenCredential returns the core.Credential that keeps the app's
// access_token, for code built on Credentials (the conformance herd, a
// ticket kind of your own).
func (a *App) AccessTokenCredential() *core.Credential { return a.access }

// Check gets one access_token and returns what stops it, typed (an
// *core.APIError with Codes: IsConfigError for a wrong CorpID or Secret or
// an untrusted IP; a *core.LimitError; a store error; ctx's error), for a
// service's start-up or health check.
func (a *App) Check(ctx context.Context) error {
	_, err := a.AccessToken(ctx)
	return err
}

// JSSDKConfig returns the wx.config parameters for the page at pageURL:
// appId is the CorpID, signed with the corp's jsapi_ticket (JSAPITicket),
// as WeCom's JS-SDK documentation (JS-SDK使用权限签名算法) describes.
func (a *App) JSSDKConfig(ctx context.Context, pageURL string) (core.JSSDKConfig, error) {
	t, err := a.JSAPITicket(ctx)
	if err != nil {
		return core.JSSDKConfig{}, wrap("JSSDKConfig", err)
	}
	return core.SignJSSDK(a.corpID, t.Value, pageURL, a.now())
}

// AgentConfig is what a page passes to wx.agentConfig (with jsApiList
// added): it marshals to JSON with the field names wx.agentConfig takes.
type AgentConfig struct {
	CorpID    string `json:"corpid"`    // Config.CorpID
	AgentID   string `json:"agentid"`   // Config.AgentID, in decimal
	Timestamp int64  `json:"timestamp"` // Unix seconds
	NonceStr  string `json:"nonceStr"`  // 16 random characters
	Signature string `json:"signature"` // core.JSSDKSignature with the agent ticket
}

// AgentConfig returns the wx.agentConfig parameters for the page at
// pageURL, signed with the app's agent_config ticket (AgentTicket) by the
// same algorithm as wx.config. pageURL is as for core.SignJSSDK.
func (a *App) AgentConfig(ctx context.Context, pageURL string) (AgentConfig, error) {
	if a.cfg.AgentID == 0 {
		return AgentConfig{}, errors.New("wechatconf: wecom: AgentConfig: Config.AgentID is required for wx.agentConfig")
	}
	return a.AgentConfigFor(ctx, pageURL, a.cfg.AgentID)
}

// AgentConfigFor is AgentConfig for the app whose agentid is agentID: a
// WeCom vendor's app in an installing corp, whose agentid comes from
// get_auth_info (wecomvendor.Corp.AgentConfig), not from Config.
func (a *App) AgentConfigFor(ctx context.Context, pageURL string, agentID int64) (AgentConfig, error) {
	if agentID <= 0 {
		return AgentConfig{}, errors.New("wechatconf: wecom: AgentConfig: an agentid is required for wx.agentConfig")
	}
	t, err := a.AgentTicket(ctx)
	if err != nil {
		return AgentConfig{}, wrap("AgentConfig", err)
	}
	s, err := core.SignJSSDK(a.corpID, t.Value, pageURL, a.now())
	if err != nil {
		return AgentConfig{}, err
	}
	return AgentConfig{CorpID: s.AppID, AgentID: strconv.FormatInt(agentID, 10), Timestamp: s.Timestamp, NonceStr: s.NonceStr, Signature: s.Signature}, nil
}

func (a *App) now() time.Time {
	if a.cfg.Now != nil {
		return a.cfg.Now()
	}
	return time.Now()
}

// wrap returns "wechatconf: wecom: <op>: <err>" wrapping err, with err's own
// "wechatconf: " prefix dropped from the text: one prefix per chain.
func wrap(op string, err error) error { return &opError{op: op, err: err} }

type opError struct {
	op  string
	err error
}

func (e *opError) Error() string {
	return "wechatconf: wecom: " + e.op + ": " + strings.TrimPrefix(e.err.Error(), "wechatconf: ")
}

func (e *opError) Unwrap() error { return e.err }
