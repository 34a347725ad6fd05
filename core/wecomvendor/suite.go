package wecomvendor

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
	"github.com/wechatconf/wechatconf/core/wecom"
)

// Paths of the WeCom vendor calls a Suite and a Provider make (第三方应用开发 ›
// 应用授权, developer.work.weixin.qq.com/document/path/90600 ff.).
const (
	// PathSuiteToken issues the suite_access_token: POST {suite_id,
	// suite_secret, suite_ticket} → {suite_access_token, expires_in}
	// (path/90600; a reply without errcode is success).
	PathSuiteToken = "/cgi-bin/service/get_suite_token"
	// PathPermanentCode exchanges an auth code: POST
	// ?suite_access_token=ST {auth_code} → {permanent_code,
	// auth_corp_info: {corpid, corp_name}, …} (v2, path/100776: no
	// access_token; the first corp token is fetched with PathCorpToken).
	PathPermanentCode = "/cgi-bin/service/v2/get_permanent_code"
	// PathCorpToken issues an installed corp's access_token for a
	// third-party app: POST ?suite_access_token=ST {auth_corpid,
	// permanent_code} → {access_token, expires_in} (path/90605).
	PathCorpToken = "/cgi-bin/service/get_corp_token"
	// PathAuthInfo reads an installing corp's authorization: POST
	// ?suite_access_token=ST {auth_corpid, permanent_code} →
	// {auth_corp_info, auth_info: {agent: [{agentid, …}]}} (v2,
	// path/100779): Corp.AgentID.
	PathAuthInfo = "/cgi-bin/service/v2/get_auth_info"
	// PathProviderToken issues the provider_access_token: POST {corpid,
	// provider_secret} → {provider_access_token, expires_in} (path/91200).
	PathProviderToken = "/cgi-bin/service/get_provider_token"
)

// SuiteTicketLifetime is how long a suite_ticket is trusted after the
// TimeStamp of the push that brought it: WeCom pushes one every 10
// minutes and documents it as valid for 30 (path/90628).
const SuiteTicketLifetime = 30 * time.Minute

// DefaultMaxCorps is the default Config.MaxCorps.
const DefaultMaxCorps = 10000

// Codes is the errcode table of WeCom's vendor API (全局错误码,
// path/90455): WeCom's (wecom.Codes), plus
//
//	invalid credential  40082 不合法的suite_token, 42009 suite_access_token已过期
//	configuration       40080 不合法的suite_secret, 40083 不合法的suite_id,
//	                    40084 不合法的permanent_code, 40085 suite_ticket不存在或者已失效,
//	                    48003 suite_access_token不属于该suite, 48004 授权关系无效,
//	                    301007 企业不可用 (dissolved or banned)
//
// 40085 becomes ErrNoSuiteTicket; 40084, 48004 and 301007 on a corp's
// token a *ReauthorizeError.
var Codes = &core.Codes{
	Platform:          "wecom",
	InvalidCredential: append(core.CodeSet{40082, 42009}, wecom.Codes.InvalidCredential...),
	Config:            append(core.CodeSet{40080, 40083, 40084, 40085, 48003, 48004, 301007}, wecom.Codes.Config...),
	Quota:             wecom.Codes.Quota,
	Temporary:         wecom.Codes.Temporary,
	Hint: func(code int, msg string) string {
		switch code {
		case 40080:
			return "the suite_secret is not valid: check Config.SuiteSecret (服务商管理后台 › 应用详情)"
		case 40083, 48003:
			return "the suite_id is not valid, or the suite_access_token is another suite's: check Config.SuiteID"
		case 40084:
			return "the corp's permanent_code is not valid (the corp cancelled, re-installed, or the code was reset): the corp must install the app again"
		case 40085:
			return "the suite_ticket is missing or expired: it comes from WeCom's push to the command callback URL (指令回调URL) every 10 minutes"
		case 48004:
			return "the corp's authorization is no longer valid (cancelled): the corp must install the app again"
		case 301007:
			return "the corp is dissolved or banned"
		}
		return wecom.Codes.Hint(code, msg)
	},
}

// ErrNoSuiteTicket is returned (wrapped) when the suite_access_token
// cannot be fetched for want of a valid suite_ticket: none has been pushed
// yet (WeCom pushes one every 10 minutes to the command callback URL:
// pass each push to Suite.HandleEvent, or trigger one by hand in the
// vendor console), the last one is older than SuiteTicketLifetime, or
// WeCom refused it (40085).
var ErrNoSuiteTicket = errors.New("no valid suite_ticket: WeCom pushes one every 10 minutes to the command callback URL; pass each push to Suite.HandleEvent")

// ReauthorizeError says a corp's chain is broken and only the corp can
// mend it by installing the app again: its permanent_code is missing from
// the store, was withdrawn (the cancel_auth event), or WeCom refused it
// (40084; 48004 or 301007 after the corp cancelled or was dissolved; 40001
// from gettoken for a custom-developed app whose secret was reset — the
// reset_permanent_code push brings the new code). Reach it with
// errors.As.
type ReauthorizeError struct {
	CorpID string // the installing corp's id (auth_corpid)
	Reason string // what happened, without any credential
	Err    error  // WeCom's error, if it refused the code
	// Withdrawn: the corp cancelled the authorization (cancel_auth,
	// 48004), so the access token held is dead too: the error then
	// matches core.ErrRevoked, and the corp's handle stops serving it.
	Withdrawn bool
}

// Is reports whether target is core.ErrRevoked and the authorization was
// withdrawn.
func (e *ReauthorizeError) Is(target error) bool { return target == core.ErrRevoked && e.Withdrawn }

// Error says which corp, why, and that it must install the app again; it
// holds no credential.
func (e *ReauthorizeError) Error() string {
	s := "corp " + e.CorpID + ": " + e.Reason + ": the corp must install the app again"
	if e.Err != nil {
		s += ": " + strings.TrimPrefix(e.Err.Error(), "wechatconf: ")
	}
	return s
}

// Unwrap returns WeCom's error, if any.
func (e *ReauthorizeError) Unwrap() error { return e.Err }

func reauthorize(corpID, reason string, err error, withdrawn bool) error {
	return &ReauthorizeError{CorpID: corpID, Reason: reason, Err: err, Withdrawn: withdrawn}
}

func isReauthorize(err error) bool {
	var re *ReauthorizeError
	return errors.As(err, &re)
}

// Config is what New needs for one suite: a third-party app (第三方应用) or
// a custom-developed app template (代开发应用模版), its id and secret, and
// the Token and EncodingAESKey of its command callback URL (指令回调URL).
type Config struct {
	// SuiteID is the suite_id (third-party: ww…/wx…; a custom-developed
	// app template: dk…). Required.
	SuiteID string
	// SuiteSecret is the suite_secret: core.NewSecret(os.Getenv(…)).
	// Required to fetch the suite_access_token.
	SuiteSecret core.Secret
	// SuiteSecretSource, if set, is read for the suite_secret instead
	// (core.FileSecret), again after WeCom refused the value it gave
	// (40080), as core.Config.AppSecretSource. Setting both is an error.
	SuiteSecretSource core.SecretSource
	// CustomApp says the suite is a custom-developed app template
	// (代开发): a corp's access_token is fetched from gettoken with the
	// corp's permanent_code as its secret (path/97164), not from
	// get_corp_token. Default: a SuiteID starting with "dk".
	CustomApp *bool
	// Token and EncodingAESKey verify and decrypt the pushes to the
	// command callback URL (the suite id is their receive id);
	// PreviousEncodingAESKey during a key change. Required for
	// HandleEvent and EventHandler.
	Token, EncodingAESKey, PreviousEncodingAESKey core.Secret
	// ProviderCorpID is the vendor's own corp id: WeCom's URL
	// verification of the command callback URL may encrypt its echostr for
	// it rather than for the suite id (both are accepted).
	ProviderCorpID string

	// Store keeps the chain — the suite_ticket, the suite_access_token,
	// each corp's permanent_code record and tickets — and serialises
	// refreshes across the fleet; nil means a new core.MemoryStore (one
	// process, which loses the permanent codes when it stops: use a
	// shared store).
	Store core.TokenStore
	// DurableStore, if set, keeps the durable state — each corp's record
	// (its permanent_code with its access_token) and the suite_ticket —
	// while Store keeps the rest, as openplatform.Config.DurableStore.
	DurableStore core.TokenStore
	// KeyPrefix starts every store key (see "Store keys" in the package
	// doc). Default "wechatconf".
	KeyPrefix string
	// BaseURL (default wecom.DefaultBaseURL), HTTPClient, Logger,
	// MaxRetries, RetryBackoff and Now are as core.Config's.
	BaseURL      string
	HTTPClient   *http.Client
	Logger       *slog.Logger
	MaxRetries   int
	RetryBackoff time.Duration
	Now          func() time.Time
	// Instance and NoLedger are as core.Config's.
	Instance string
	NoLedger bool
	// Policy is the timing and limits of the suite_access_token and of
	// every corp's tokens. Zero fields take core's defaults, but
	// RefreshJitter defaults to 10 minutes (thousands of corp tokens
	// fetched together come due spread over that window).
	Policy core.Policy
	// ReadyHorizon is as core.Config.ReadyHorizon.
	ReadyHorizon time.Duration
	// MaxCorps bounds how many corp handles a Suite keeps in memory; beyond
	// it the least recently used are dropped (and rebuilt from the store
	// when asked for again). Durable state is never dropped. Zero or
	// negative means DefaultMaxCorps.
	MaxCorps int
}

// String describes c without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("wecomvendor.Config{SuiteID: %q, SuiteSecret: %v, Token: %v, EncodingAESKey: %v, KeyPrefix: %q, BaseURL: %q}",
		c.SuiteID, c.SuiteSecret, c.Token, c.EncodingAESKey, c.KeyPrefix, c.BaseURL)
}

// GoString is String.
func (c Config) GoString() string { return c.String() }

// Suite keeps a WeCom vendor suite's credential chain valid across a
// fleet: the suite_ticket WeCom pushes, the suite_access_token fetched
// with it, and for each corp that installed the app its permanent_code
// (durable) and access_token. Every token is a core.Credential on the
// Suite's store. A Suite is safe for concurrent use and holds no goroutine
// or timer per corp; build it with New.
type Suite struct {
	cfg    Config
	prefix string // "<KeyPrefix>/wecomvendor/<SuiteID>/"
	custom bool
	raw    *core.API // the vendor calls, no credential added
	api    *core.API // raw with the suite_access_token
	token  *core.Credential
	secret *core.RotatingSecret
	ledger *core.LedgerConfig

	command, provider *wecom.Callback // the command callback's keys, for the suite id and the provider's corp id

	t      *tenant.Platform[Corp]
	family *wecom.AppFamily // the corps' Apps: one Config, shared
}

// New checks cfg and returns its Suite. It does no I/O.
func New(cfg Config) (*Suite, error) {
	if cfg.SuiteID == "" {
		return nil, errors.New("wechatconf: wecomvendor: Config.SuiteID is required")
	}
	if cfg.Store == nil {
		cfg.Store = core.NewMemoryStore()
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "wechatconf"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = wecom.DefaultBaseURL
	}
	if cfg.MaxCorps <= 0 {
		cfg.MaxCorps = DefaultMaxCorps
	}
	if cfg.Policy.RefreshJitter == 0 {
		cfg.Policy.RefreshJitter = 10 * time.Minute
	}
	s := &Suite{cfg: cfg, prefix: cfg.KeyPrefix + "/wecomvendor/" + cfg.SuiteID + "/", custom: strings.HasPrefix(cfg.SuiteID, "dk")}
	if cfg.CustomApp != nil {
		s.custom = *cfg.CustomApp
	}
	s.ledger = core.NewLedgerConfig(cfg.Instance, cfg.NoLedger)
	var err error
	if s.secret, err = core.NewRotatingSecret(core.RotatingSecretConfig{
		Field: "SuiteSecret", SourceField: "SuiteSecretSource", Secret: cfg.SuiteSecret, Source: cfg.SuiteSecretSource,
		Refused: core.CodeSet{40080},
	}); err != nil {
		return nil, err
	}
	if s.raw, err = core.NewAPI(core.APIConfig{
		BaseURL: cfg.BaseURL, HTTPClient: cfg.HTTPClient, Codes: Codes, RotatingSecrets: []*core.RotatingSecret{s.secret},
		MaxRetries: cfg.MaxRetries, RetryBackoff: cfg.RetryBackoff, Logger: cfg.Logger, Now: cfg.Now,
		Platform: core.PlatformWeComSuite,
	}); err != nil {
		return nil, err
	}
	if s.token, err = core.NewCredential(core.CredentialConfig{
		Name: "suite_access_token", Platform: core.PlatformWeComSuite, Key: s.prefix + "suite_access_token", Store: cfg.Store,
		Prepare: s.readSuiteTicket, Fetch: s.fetchSuiteToken, Rejects: rejectsSuiteToken,
		Policy: cfg.Policy, Logger: cfg.Logger, Now: cfg.Now, Ledger: s.ledger,
	}); err != nil {
		return nil, err
	}
	s.api = s.raw.WithCredential(s.token, "suite_access_token")
	if !cfg.EncodingAESKey.IsZero() {
		cb := wecom.CallbackConfig{Token: cfg.Token, EncodingAESKey: cfg.EncodingAESKey, PreviousEncodingAESKey: cfg.PreviousEncodingAESKey, ReceiveID: cfg.SuiteID, Now: cfg.Now}
		if s.command, err = wecom.NewCallback(cb); err != nil {
			return nil, err
		}
		if cfg.ProviderCorpID != "" {
			cb.ReceiveID = cfg.ProviderCorpID
			if s.provider, err = wecom.NewCallback(cb); err != nil {
				return nil, err
			}
		}
	}
	access := core.CredentialConfig{
		Name: "access_token", Platform: core.PlatformWeComAuthCorp, Needs: s.token,
		Policy: cfg.Policy, Logger: cfg.Logger, Now: cfg.Now, Ledger: s.ledger,
	}
	fetchAccess := s.fetchCorpToken
	if s.custom {
		// A custom-developed app's corp token: gettoken with the permanent
		// code, which hands back the current token until it expires.
		access.Needs = nil
		if access.Policy.Handover == 0 {
			access.Policy.Handover = core.HandoverAtExpiry
		}
		fetchAccess = s.fetchCustomCorpToken
	}
	if s.t, err = tenant.New(tenant.Config[Corp]{
		Prefix: s.prefix, Store: cfg.Store, Durable: cfg.DurableStore,
		Timeout: cfg.Policy.RefreshTimeout, Logger: cfg.Logger, Now: cfg.Now,
		Ticket:     tenant.Ticket{Name: "suite_ticket", Lifetime: SuiteTicketLifetime, Missing: ErrNoSuiteTicket},
		Format:     recordFormat,
		RecordName: "permanent_code",
		PlatformOf: func(name string) core.Platform {
			if name == "suite_ticket" {
				return core.PlatformWeComSuite
			}
			return core.PlatformWeComAuthCorp
		},
		Exchange:     s.exchange,
		CodeRefused:  func(err error) bool { e := apiError(err); return e != nil && e.Code == 40078 },
		ExchangePath: PathPermanentCode,
		Reauthorize:  reauthorize,
		SecretRefused: func(err error) bool {
			var re *ReauthorizeError
			return errors.As(err, &re) && !re.Withdrawn && re.Err != nil // WeCom refused it (40084, or gettoken's 40001)
		},
		Access:        access,
		FetchAccess:   fetchAccess,
		IsReauthorize: isReauthorize,
		NewHandle:     s.newCorp,
		Invalidate:    func(c *Corp) { c.access.Invalidate() },
		MaxHandles:    cfg.MaxCorps,
	}); err != nil {
		return nil, err
	}
	if s.family, err = wecom.NewAppFamily(wecom.Config{
		App: cfg.SuiteID, Store: cfg.Store, KeyPrefix: cfg.KeyPrefix,
		BaseURL: cfg.BaseURL, HTTPClient: cfg.HTTPClient, Logger: cfg.Logger, Now: cfg.Now,
		MaxRetries: cfg.MaxRetries, RetryBackoff: cfg.RetryBackoff, Policy: cfg.Policy, ReadyHorizon: cfg.ReadyHorizon,
		Instance: cfg.Instance, NoLedger: cfg.NoLedger, Platform: core.PlatformWeComAuthCorp,
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// rejectsSuiteToken: a call made with the suite_access_token was refused
// for it (40082 invalid, 42009 expired).
func rejectsSuiteToken(err error) bool {
	e := apiError(err)
	return e != nil && (e.Code == 40082 || e.Code == 42009)
}

func apiError(err error) *core.APIError {
	var e *core.APIError
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// SuiteID returns Config.SuiteID.
func (s *Suite) SuiteID() string { return s.cfg.SuiteID }

// CustomApp reports whether the suite is a custom-developed app template
// (代开发): corp tokens from gettoken with the permanent_code.
func (s *Suite) CustomApp() bool { return s.custom }

// String describes s without its secrets.
func (s *Suite) String() string {
	return "wecomvendor.Suite" + s.cfg.String()[len("wecomvendor.Config"):]
}

// GoString is String.
func (s *Suite) GoString() string { return s.String() }

func (s *Suite) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// SuiteAccessToken returns a valid suite_access_token, from memory, the
// store, or WeCom (PathSuiteToken, with the stored suite_ticket). One fetch
// per refresh across the fleet; a missing or expired ticket is
// ErrNoSuiteTicket.
func (s *Suite) SuiteAccessToken(ctx context.Context) (core.Token, error) { return s.token.Get(ctx) }

// Do calls the vendor API at path (e.g. "/cgi-bin/service/v2/get_auth_info")
// with the suite_access_token added to query, as core.API.Do does: a
// rejected token (40082, 42009) is replaced by a compare-and-refresh and
// the call retried once.
func (s *Suite) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	return s.api.Do(ctx, method, path, query, body, out)
}

// readSuiteTicket is the suite token's Prepare: the stored ticket, read
// before the lock.
func (s *Suite) readSuiteTicket(ctx context.Context) (any, error) {
	t, err := s.t.Ticket(ctx)
	if err != nil {
		return nil, err
	}
	return t.Value, nil
}

// fetchSuiteToken makes one get_suite_token call.
func (s *Suite) fetchSuiteToken(ctx context.Context, r core.FetchRequest) (core.Token, error) {
	if s.secret.IsZero() {
		return core.Token{}, fmt.Errorf("%w: wecomvendor.Config.SuiteSecret (or SuiteSecretSource) is required to fetch the suite_access_token", core.ErrMissingConfig)
	}
	secret, err := s.secret.Get(ctx)
	if err != nil {
		return core.Token{}, err
	}
	tok, err := s.raw.Issue(ctx, http.MethodPost, PathSuiteToken, nil, map[string]string{
		"suite_id": s.cfg.SuiteID, "suite_secret": secret.Reveal(), "suite_ticket": r.Prepared.(string),
	}, "suite_access_token")
	err = s.secret.Check(secret, err)
	if e := apiError(err); e != nil && e.Code == 40085 {
		return core.Token{}, fmt.Errorf("%w: %w", ErrNoSuiteTicket, err)
	}
	return tok, err
}

// wrap returns "wechatconf: wecomvendor: <op>: <err>", one prefix per
// chain.
func wrap(op string, err error) error { return &opError{op: op, err: err} }

type opError struct {
	op  string
	err error
}

func (e *opError) Error() string {
	msg := e.err.Error()
	for _, p := range []string{"wechatconf: wecomvendor: ", "wechatconf: "} {
		if strings.HasPrefix(msg, p) {
			msg = msg[len(p):]
			break
		}
	}
	return "wechatconf: wecomvendor: " + e.op + ": " + msg
}

func (e *opError) Unwrap() error { return e.err }
