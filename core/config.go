package core

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// EncryptMode is the message encryption mode set in the Official Account
// admin console: Normal (明文), Compatible (兼容) or Safe (安全).
type EncryptMode string

// The three message encryption modes.
const (
	Normal     EncryptMode = "normal"     // plaintext messages only
	Compatible EncryptMode = "compatible" // plaintext and encrypted fields side by side
	Safe       EncryptMode = "safe"       // encrypted messages only
)

// TokenAPI selects how Conf obtains access tokens from WeChat.
type TokenAPI int

const (
	// StableToken uses POST /cgi-bin/stable_token, the default. It returns
	// the same token while that token is valid instead of invalidating the
	// one every other user of the AppID holds (another service, the admin
	// console, a script), its quota is far larger than the classic call's,
	// and the AppSecret travels in the request body, not in the URL.
	StableToken TokenAPI = iota
	// ClassicToken uses GET /cgi-bin/token. Every call issues a new token
	// and invalidates the previous one after a short overlap; the
	// TokenStore's lock is what keeps a fleet from breaking itself.
	ClassicToken
)

func (a TokenAPI) String() string {
	switch a {
	case StableToken:
		return "stable_token"
	case ClassicToken:
		return "token"
	}
	return fmt.Sprintf("TokenAPI(%d)", int(a))
}

// DefaultBaseURL is the WeChat API host Conf calls unless Config.BaseURL
// names another (a regional host such as https://api2.weixin.qq.com, or a
// wxtest server).
const DefaultBaseURL = "https://api.weixin.qq.com"

// Config is everything New needs. Every field is optional and its zero value
// means the documented default; a method that needs a missing field says
// which one (and Conf.Check tells at start-up). The secrets (AppSecret,
// Token, EncodingAESKey, PreviousEncodingAESKey) are Secret values: no
// rendering of a Config — String, GoString, LogValue, JSON, or fmt's
// reflection when a Config sits in an unexported field — shows them.
type Config struct {
	// Basic information from the admin console (the seed's token, appid,
	// appsecret, encrypt_mode, encoding_aes_key).
	// The secrets are Secret values (NewSecret(os.Getenv(…))), which no
	// rendering prints.
	Token          Secret      // the server-configuration Token used to sign pushed messages
	AppID          string      // required for access tokens and tickets
	AppSecret      Secret      // required to fetch access tokens (not in the worker form of FuncStore)
	EncryptMode    EncryptMode // "" means Safe when EncodingAESKey is set, Normal otherwise
	EncodingAESKey Secret      // 43 characters; requires Token and AppID

	// AppSecretSource, if set, is read for the AppSecret instead: at the
	// first access_token fetch, and again at the first fetch after WeChat
	// refused the value it gave (40001 on /cgi-bin/token, 40125 on
	// /cgi-bin/stable_token: the secret was reset in the admin console),
	// which Config.ErrorBackoff holds back — so at most once per
	// ErrorBackoff per process while the secret is refused, and the Conf
	// recovers without a restart once the new secret is in place (see
	// FileSecret, RotatingSecret). Setting both AppSecret and
	// AppSecretSource is an error. Mini Program logins (Code2Session) use
	// the same secret.
	AppSecretSource SecretSource

	// Platform says what kind of account AppID is — PlatformOfficialAccount
	// (the default) or PlatformMiniProgram — which the AppID alone does not
	// tell. It is the "platform" attribute of every event of the Conf's
	// credentials and of its API (contrib/otel's "wechatconf.platform"),
	// so that an operator's metrics tell an Official Account's
	// access_token from a Mini Program's or a WeCom app's; it changes
	// nothing else. NewWithAccessToken's default is the access_token
	// Credential's Platform (an Open Platform authorizer's tickets are
	// PlatformOpenPlatformAuthorizer). Another value than a Platform
	// constant is an error.
	Platform Platform

	// Receiving messages (see Conf.ReadMessage).

	// PreviousEncodingAESKey is the EncodingAESKey in use before the
	// current one. While it is set, a push that does not decrypt with
	// EncodingAESKey is tried with it, and the reply is encrypted with the
	// key that worked, as WeChat asks of servers during a key change. It is
	// validated like EncodingAESKey and requires it. Default none.
	PreviousEncodingAESKey Secret
	// MaxMessageBytes bounds the body of a pushed message; a larger body is
	// refused (msgcrypt.ErrTooLarge) without being read in full. Default
	// DefaultMaxMessageBytes (1 MiB); negative is invalid.
	MaxMessageBytes int64
	// TimestampWindow is how far a push's or URL verification's timestamp
	// may be from the Conf's clock, either way, before it is refused as a
	// replay (msgcrypt.ErrTimestamp). Default DefaultTimestampWindow
	// (5 minutes); a negative value disables the check.
	TimestampWindow time.Duration
	// Dedup, if set, makes HandleMessage and MessageHandler handle each
	// push once across the fleet: WeChat's retries of a push whose
	// handler finished, or is still running, start no second handler
	// (see Dedup and the package documentation, "Pushes, once"). Build it
	// with NewDedup over the fleet's store. nil handles every delivery.
	Dedup *Dedup

	// Initial values (the seed's way 1): written to the store when it holds
	// nothing newer, on first use. Read them back with AccessToken,
	// JSAPITicket and CardTicket to persist them yourself.
	AccessToken Token
	JSAPITicket Token
	CardTicket  Token

	// Store keeps the credentials and serialises their refresh; nil means
	// a new MemoryStore (one process).
	Store TokenStore
	// KeyPrefix starts every store key: "<KeyPrefix>/<AppID>/access_token",
	// ".../jsapi_ticket", ".../wx_card_ticket". Default "wechatconf". Give
	// each environment its own prefix when they share a store.
	KeyPrefix string

	// Instance names this process in the fleet's fetch ledger (see
	// Ledger): "" means DefaultInstance(), "hostname/pid". Give it a
	// stable name (a pod's name) to tell restarts apart by time only. At
	// most 64 bytes are kept.
	Instance string
	// NoLedger turns the fetch ledger off: fetches are then not recorded in
	// the store (no `wechatconf history`, no EventOutsideFetch, no
	// EventQuota). The ledger costs nothing on the hot path and two store
	// calls per fetch, after the token is written.
	NoLedger bool
	// Operator marks the Conf as an operator's tool (the wechatconf
	// command): its fetches are recorded with reason "operator".
	Operator bool

	// TokenAPI selects stable_token (default) or the classic token call.
	TokenAPI TokenAPI
	// BaseURL of the WeChat API, default DefaultBaseURL.
	BaseURL string
	// HTTPClient makes the calls; default a client with a 15 s timeout.
	HTTPClient *http.Client
	// Logger receives the Conf's events (see the package doc, "Events":
	// EventFetched, EventAdopted, …; never a credential). nil sends the
	// events of level Warn and above (failures) to slog.Default() and
	// drops the rest.
	Logger *slog.Logger

	// RefreshAhead is how long before ExpiresAt a background refresh starts
	// while callers keep being served the valid token. Default 5 minutes;
	// it must not be shorter than ExpiryMargin (New says so). With
	// StableToken the access_token's refresh starts no earlier than 4m30s
	// before expiry, inside WeChat's 5-minute hand-over: earlier, WeChat
	// returns the same token.
	RefreshAhead time.Duration
	// ExpiryMargin is how long before ExpiresAt a token stops being served
	// at all (clock skew, network time). Default 1 minute. With StableToken
	// it must be shorter than StableTokenHandover (5 minutes): before that
	// WeChat hands back the same token, which could then never be replaced
	// in time. A credential whose whole lifetime is not longer than
	// RefreshAhead is served until its real expiry instead (see the package
	// doc, "Time").
	ExpiryMargin time.Duration
	// RefreshTimeout bounds one refresh (store lock wait + fetch), which
	// runs detached from the caller so that one caller giving up does not
	// fail the others. It holds whatever the store does: a store call still
	// running then is left to finish in the background and the refresh
	// fails with context.DeadlineExceeded, and ErrStoreUnavailable when it
	// was the store that did not answer (with StableToken the access_token
	// is then fetched without the store: see the package doc, "When the
	// store is down"). Default 30 seconds.
	RefreshTimeout time.Duration

	// Limits on token calls (see the package doc, "Limits"). A *LimitError
	// is returned, without a request to WeChat, when one holds a call back.
	// Each is counted per credential in this Conf; across a fleet, the
	// store's compare-and-refresh makes one instance the caller per stale
	// token.

	// ForceRefreshInterval is the least time between two force_refresh
	// calls (stable_token with "force_refresh":true) of this Conf. Default
	// DefaultForceRefreshInterval (30 s, WeChat's own limit).
	ForceRefreshInterval time.Duration
	// ForceRefreshDailyLimit is how many force_refresh calls this Conf
	// makes per day (days end at midnight Beijing time, as WeChat's quotas
	// do). Default DefaultForceRefreshDailyLimit (20, WeChat's own limit);
	// a negative value never forces a refresh.
	ForceRefreshDailyLimit int
	// RejectedRefreshInterval is the least time between two token fetches
	// of a credential that rejections (40001, 40014, 42001) of the same
	// token value triggered, counted per process: inside it, a refresh for
	// a rejected token that a rejection-triggered fetch already replaced
	// (the fetch handed it back, or the store holds it again) returns a
	// *LimitError wrapping that rejection, so a loop on one rejected token
	// (stable_token handing it back, no force_refresh allowed) cannot burn
	// the daily quota. A rejection of any other value — the token that
	// fetch brought, rejected because someone else (a test environment on
	// the same AppID) fetched since — is never held back by it. What bounds
	// an API that rejects every token is the store's compare-and-refresh:
	// one fetch per new token per fleet. Default
	// DefaultRejectedRefreshInterval (30 s); negative disables it.
	RejectedRefreshInterval time.Duration
	// ErrorBackoff is how long a token call that WeChat refused with a
	// configuration error (40013, 40125, 40164, 41002, 41004, 89503) or a
	// quota error (45009), or answered with HTTP 200 and no usable token (a
	// *ReplyError: no token, an expires_in that is missing, 0 or negative,
	// JSON cut short or invalid), or whose secret WeChat refused
	// (ErrSecretRefused) or AppSecretSource could not give
	// (*SecretSourceError), is not made again: every refresh in that
	// window returns a *LimitError wrapping that error at once. It is
	// counted per process: each instance of a fleet makes at most one such
	// call per ErrorBackoff. A token another instance put in the store is
	// still served. Default DefaultErrorBackoff (1 minute); negative
	// disables it.
	ErrorBackoff time.Duration
	// StoreOutageInterval is the least time between two access_token
	// fetches made without the store while it is down (StableToken only;
	// see the package doc, "When the store is down"): inside it the token
	// held in memory is served while still valid, or an error wrapping
	// ErrStoreUnavailable is returned. Default DefaultStoreOutageInterval
	// (30 s).
	StoreOutageInterval time.Duration
	// MaxRetries is how many times a call answered with -1 (busy), 45011,
	// HTTP 5xx or a network error is retried, within the caller's context.
	// Default 3; a negative value disables retries.
	MaxRetries int
	// RetryBackoff is the first retry's delay, doubled for each further
	// retry up to 16 times it, with jitter. Default 200 ms.
	RetryBackoff time.Duration

	// ReadyHorizon is how long the access_token must stay valid for Ready
	// to report the Conf ready: a token valid for at least that long is
	// held, or can be had from the store or WeChat. Default
	// DefaultReadyHorizon (2 minutes); a negative value means 0 (ready
	// while a token can be served at all). It is clamped to RefreshAhead
	// as it applies (see Credential.Ready). Only Ready reads it.
	ReadyHorizon time.Duration

	// Now is the clock used to compute and judge expiry; nil means the
	// system clock (read on the hot path through the monotonic clock only,
	// which is about twice as fast as time.Now). Tests point it at a wxtest
	// server's clock.
	Now func() time.Time
}

// String returns a description of c with the AppSecret redacted.
func (c Config) String() string {
	return fmt.Sprintf("core.Config{AppID: %q, AppSecret: %s, Token: %s, EncryptMode: %q, EncodingAESKey: %s, KeyPrefix: %q, TokenAPI: %v, BaseURL: %q}",
		c.AppID, redactedIfSet(c.AppSecret), redactedIfSet(c.Token), c.EncryptMode, redactedIfSet(c.EncodingAESKey), c.KeyPrefix, c.TokenAPI, c.BaseURL)
}

// GoString is String, so that %#v redacts the AppSecret too.
func (c Config) GoString() string { return c.String() }

// LogValue lets log/slog print a Config without its secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("app_id", c.AppID),
		slog.String("app_secret", redactedIfSet(c.AppSecret)),
		slog.String("encrypt_mode", string(c.EncryptMode)),
		slog.String("token_api", c.TokenAPI.String()),
		slog.String("base_url", c.BaseURL),
	)
}

func redactedIfSet(s Secret) string {
	if s.IsZero() {
		return `""`
	}
	return redacted
}

// validate checks the basic information the way the seed's WechatConf does
// and fills in defaults.
func (c *Config) validate() error {
	switch c.EncryptMode {
	case "":
		c.EncryptMode = Normal
		if !c.EncodingAESKey.IsZero() {
			c.EncryptMode = Safe
		}
	case Normal, Compatible, Safe:
		// Set on purpose: this Conf receives messages, which needs Token
		// (every push is signed with it), and an EncodingAESKey in the
		// modes that encrypt.
		if c.Token.IsZero() {
			return fmt.Errorf("wechatconf: EncryptMode %q is set, so this Conf receives messages, which needs Config.Token (the server-configuration Token that signs every push)", c.EncryptMode)
		}
		if c.EncryptMode != Normal && c.EncodingAESKey.IsZero() {
			return fmt.Errorf("wechatconf: EncryptMode %q needs Config.EncodingAESKey (the 43-character key from the admin console) to decrypt pushes", c.EncryptMode)
		}
	default:
		return fmt.Errorf("wechatconf: unknown EncryptMode %q (want %q, %q or %q)", c.EncryptMode, Normal, Compatible, Safe)
	}
	if !c.EncodingAESKey.IsZero() {
		if c.Token.IsZero() || c.AppID == "" {
			return errors.New("wechatconf: an EncodingAESKey requires Token and AppID")
		}
		if err := checkAESKey("EncodingAESKey", c.EncodingAESKey.Reveal()); err != nil {
			return err
		}
	}
	if !c.PreviousEncodingAESKey.IsZero() {
		if c.EncodingAESKey.IsZero() {
			return errors.New("wechatconf: a PreviousEncodingAESKey requires an EncodingAESKey")
		}
		if err := checkAESKey("PreviousEncodingAESKey", c.PreviousEncodingAESKey.Reveal()); err != nil {
			return err
		}
	}
	switch {
	case c.MaxMessageBytes < 0:
		return fmt.Errorf("wechatconf: MaxMessageBytes must not be negative, got %d", c.MaxMessageBytes)
	case c.MaxMessageBytes == 0:
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.TimestampWindow == 0 {
		c.TimestampWindow = DefaultTimestampWindow
	}
	if err := checkPlatform(c.Platform); err != nil {
		return err
	}
	if c.AppSecretSource != nil && !c.AppSecret.IsZero() {
		return errors.New("wechatconf: set Config.AppSecret or Config.AppSecretSource, not both")
	}
	switch c.TokenAPI {
	case StableToken, ClassicToken:
	default:
		return fmt.Errorf("wechatconf: unknown TokenAPI %d", int(c.TokenAPI))
	}
	if c.Store == nil {
		c.Store = NewMemoryStore()
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = "wechatconf"
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	for len(c.BaseURL) > 0 && c.BaseURL[len(c.BaseURL)-1] == '/' {
		c.BaseURL = c.BaseURL[:len(c.BaseURL)-1]
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("wechatconf: BaseURL %q is not an http(s) URL of a host (like %s)", c.BaseURL, DefaultBaseURL)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = defaultLogger
	}
	setDefault(&c.RetryBackoff, 200*time.Millisecond)
	if c.MaxRetries == 0 {
		c.MaxRetries = 3
	}
	p := c.policy()
	if err := p.normalize(); err != nil {
		return err
	}
	c.RefreshAhead, c.ExpiryMargin, c.RefreshTimeout = p.RefreshAhead, p.ExpiryMargin, p.RefreshTimeout
	c.ForceRefreshInterval, c.ForceRefreshDailyLimit = p.ForceRefreshInterval, p.ForceRefreshDailyLimit
	c.RejectedRefreshInterval, c.ErrorBackoff = p.RejectedRefreshInterval, p.ErrorBackoff
	c.StoreOutageInterval = p.StoreOutageInterval
	return nil
}

// policy returns the Policy of c's access_token (the tickets' is the same
// without the Handover).
func (c *Config) policy() Policy {
	p := Policy{
		RefreshAhead: c.RefreshAhead, ExpiryMargin: c.ExpiryMargin, RefreshTimeout: c.RefreshTimeout,
		RejectedRefreshInterval: c.RejectedRefreshInterval, ErrorBackoff: c.ErrorBackoff,
		ForceRefreshInterval: c.ForceRefreshInterval, ForceRefreshDailyLimit: c.ForceRefreshDailyLimit,
		StoreOutageInterval: c.StoreOutageInterval,
	}
	if c.TokenAPI == StableToken {
		// A normal stable_token call invalidates nobody's token: with the
		// store down, fetching without its lock is safe.
		p.Handover, p.FetchWithoutStore = StableTokenHandover, true
	}
	return p
}

// checkAESKey says what is wrong with an EncodingAESKey in the named field.
func checkAESKey(field, key string) error {
	if len(key) != msgcrypt.EncodingAESKeyLen {
		return fmt.Errorf("wechatconf: %s must be %d characters, got %d", field, msgcrypt.EncodingAESKeyLen, len(key))
	}
	if _, err := msgcrypt.DecodeKey(key); err != nil {
		return fmt.Errorf("wechatconf: %s is not %d base64 characters decoding to 32 bytes", field, msgcrypt.EncodingAESKeyLen)
	}
	return nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// errMissing is the error of a method that needs a Config field left empty.
func errMissing(field, need string) error { return wrapErr(missingField(field, need), "") }

// missingField is errMissing without the package prefix, for the errors a
// fetch returns through a store (which wraps them in its own text).
func missingField(field, need string) error {
	return &missingFieldError{field: field, need: need}
}

// missingFieldError is the error of a call that needs an empty Config
// field; it matches ErrMissingConfig.
type missingFieldError struct{ field, need string }

func (e *missingFieldError) Error() string {
	return "Config." + e.field + " is required to " + e.need
}

func (e *missingFieldError) Is(target error) bool { return target == ErrMissingConfig }
