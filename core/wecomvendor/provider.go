package wecomvendor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecom"
)

// ProviderConfig is what NewProvider needs: the vendor's own corp id and
// its provider_secret (服务商管理后台 › 标准应用服务 › 通用开发参数).
type ProviderConfig struct {
	// CorpID is the vendor's corp id. Required.
	CorpID string
	// ProviderSecret is the provider_secret: core.NewSecret(os.Getenv(…)).
	// Required to fetch the token.
	ProviderSecret core.Secret
	// ProviderSecretSource, if set, is read instead, again after WeCom
	// refused the value it gave (40001), as core.Config.AppSecretSource.
	ProviderSecretSource core.SecretSource
	// Store, KeyPrefix, BaseURL, HTTPClient, Logger, MaxRetries,
	// RetryBackoff, Now, Instance, NoLedger and Policy are as Config's.
	Store        core.TokenStore
	KeyPrefix    string
	BaseURL      string
	HTTPClient   *http.Client
	Logger       *slog.Logger
	MaxRetries   int
	RetryBackoff time.Duration
	Now          func() time.Time
	Instance     string
	NoLedger     bool
	Policy       core.Policy
}

// String describes c without its secret.
func (c ProviderConfig) String() string {
	return fmt.Sprintf("wecomvendor.ProviderConfig{CorpID: %q, ProviderSecret: %v, KeyPrefix: %q, BaseURL: %q}", c.CorpID, c.ProviderSecret, c.KeyPrefix, c.BaseURL)
}

// GoString is String.
func (c ProviderConfig) GoString() string { return c.String() }

// Provider keeps the vendor's provider_access_token valid across a fleet
// (one fetch per refresh, under "<KeyPrefix>/wecomvendor/provider/<CorpID>/provider_access_token"),
// for the vendor's own management calls (get_login_info,
// get_register_code, corpid_to_opencorpid …). WeCom hands back the same
// token while it is valid (path/91200), so it is served to its expiry.
// Build it with NewProvider; it is safe for concurrent use.
type Provider struct {
	cfg    ProviderConfig
	raw    *core.API
	api    *core.API
	token  *core.Credential
	secret *core.RotatingSecret
}

// NewProvider checks cfg and returns its Provider. It does no I/O.
func NewProvider(cfg ProviderConfig) (*Provider, error) {
	if cfg.CorpID == "" {
		return nil, errors.New("wechatconf: wecomvendor: ProviderConfig.CorpID is required")
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
	p := &Provider{cfg: cfg}
	var err error
	if p.secret, err = core.NewRotatingSecret(core.RotatingSecretConfig{
		Field: "ProviderSecret", SourceField: "ProviderSecretSource", Secret: cfg.ProviderSecret, Source: cfg.ProviderSecretSource,
		Refused: core.CodeSet{40001},
	}); err != nil {
		return nil, err
	}
	if p.raw, err = core.NewAPI(core.APIConfig{
		BaseURL: cfg.BaseURL, HTTPClient: cfg.HTTPClient, Codes: Codes, RotatingSecrets: []*core.RotatingSecret{p.secret},
		MaxRetries: cfg.MaxRetries, RetryBackoff: cfg.RetryBackoff, Logger: cfg.Logger, Now: cfg.Now,
		Platform: core.PlatformWeComProvider,
	}); err != nil {
		return nil, err
	}
	policy := cfg.Policy
	if policy.Handover == 0 {
		policy.Handover = core.HandoverAtExpiry // the same token until it expires
	}
	if p.token, err = core.NewCredential(core.CredentialConfig{
		Name: "provider_access_token", Platform: core.PlatformWeComProvider,
		Key: cfg.KeyPrefix + "/wecomvendor/provider/" + cfg.CorpID + "/provider_access_token", Store: cfg.Store,
		Fetch: p.fetch, Policy: policy, Logger: cfg.Logger, Now: cfg.Now, Ledger: core.NewLedgerConfig(cfg.Instance, cfg.NoLedger),
	}); err != nil {
		return nil, err
	}
	p.api = p.raw.WithCredential(p.token, "provider_access_token")
	return p, nil
}

// String describes p without its secret.
func (p *Provider) String() string {
	return "wecomvendor.Provider" + p.cfg.String()[len("wecomvendor.ProviderConfig"):]
}

// GoString is String.
func (p *Provider) GoString() string { return p.String() }

// ProviderAccessToken returns a valid provider_access_token, from memory,
// the store, or WeCom (PathProviderToken).
func (p *Provider) ProviderAccessToken(ctx context.Context) (core.Token, error) {
	return p.token.Get(ctx)
}

// Key returns the store key of the provider_access_token.
func (p *Provider) Key() string { return p.token.Key() }

// Do calls the vendor API at path with the provider_access_token added to
// query, as core.API.Do does (a rejected token, 40014 or 42001, is
// replaced by a compare-and-refresh and the call retried once).
func (p *Provider) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	return p.api.Do(ctx, method, path, query, body, out)
}

func (p *Provider) fetch(ctx context.Context, _ core.FetchRequest) (core.Token, error) {
	if p.secret.IsZero() {
		return core.Token{}, fmt.Errorf("%w: wecomvendor.ProviderConfig.ProviderSecret (or ProviderSecretSource) is required to fetch the provider_access_token", core.ErrMissingConfig)
	}
	secret, err := p.secret.Get(ctx)
	if err != nil {
		return core.Token{}, err
	}
	tok, err := p.raw.Issue(ctx, http.MethodPost, PathProviderToken, nil, map[string]string{"corpid": p.cfg.CorpID, "provider_secret": secret.Reveal()}, "provider_access_token")
	return tok, p.secret.Check(secret, err)
}
