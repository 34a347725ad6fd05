package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wecomvendor"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// The simulated WeCom vendor of the sweep: a third-party suite and a
// custom-developed ("dk") one, with up to two corps.
const (
	sweepSuite       = "wwsweepsuite0001"
	sweepCustomSuite = "dksweepcustom001"
	sweepSuiteSecret = "sweep-suite-secret"
	sweepCorp1       = "wwsweepcorp00001"
	sweepCorp2       = "wwsweepcorp00002"
)

// platform is the vendor platform a scenario's processes run on: the
// tenant mechanism (core/internal/tenant) through one of its harnesses.
// Every step of a run and every invariant goes through it; what differs
// between platforms — WeChat's pushes and calls, the package's API, the
// typed "authorize again" error — is here and only here.
type platform int

const (
	// openPlatform: an openplatform.Component, its authorizers.
	openPlatform platform = iota
	// wecomSuite: a wecomvendor.Suite of a third-party app (第三方应用),
	// its corps' tokens from get_corp_token.
	wecomSuite
	// wecomCustom: a wecomvendor.Suite of a custom-developed app template
	// (代开发, a suite id starting "dk"), its corps' tokens from gettoken
	// with the permanent_code, which reset_permanent_code replaces.
	wecomCustom
)

func (p platform) String() string {
	return [...]string{"Open Platform component", "WeCom third-party suite", "WeCom custom-developed suite"}[p]
}

func (p platform) wecom() bool { return p != openPlatform }

// id is the component's appid or the suite id.
func (p platform) id() string {
	return [...]string{sweepComponent, sweepSuite, sweepCustomSuite}[p]
}

// Names in messages.
func (p platform) platformToken() string {
	return map[bool]string{false: "component_access_token", true: "suite_access_token"}[p.wecom()]
}

func (p platform) tenantToken() string {
	return map[bool]string{false: "authorizer_access_token", true: "corp access_token"}[p.wecom()]
}

func (p platform) ticketName() string {
	return map[bool]string{false: "component_verify_ticket", true: "suite_ticket"}[p.wecom()]
}

func (p platform) secretName() string {
	return map[bool]string{false: "refresh token", true: "permanent_code"}[p.wecom()]
}

// revokedWant says what a withdrawn tenant's calls must return.
func (p platform) revokedWant() string {
	return map[bool]string{false: "a *openplatform.ReauthorizeError", true: "a *wecomvendor.ReauthorizeError"}[p.wecom()] + " matching core.ErrRevoked"
}

// ticketLifetime is how long a pushed ticket is trusted.
func (p platform) ticketLifetime() time.Duration {
	if p.wecom() {
		return wecomvendor.SuiteTicketLifetime
	}
	return openplatform.VerifyTicketLifetime
}

// isRevoked reports whether err says the tenant withdrew: the platform's
// *ReauthorizeError matching core.ErrRevoked.
func (p platform) isRevoked(err error) bool {
	if p.wecom() {
		var re *wecomvendor.ReauthorizeError
		return errors.As(err, &re) && errors.Is(err, core.ErrRevoked)
	}
	return isRevoked(err)
}

// ---- WeChat's side: the simulated platform ----

// declare makes the platform known to w.
func (p platform) declare(w *wxtest.Server) {
	if p.wecom() {
		w.SetSuiteSecret(p.id(), sweepSuiteSecret)
	}
}

// ticketPush has WeChat issue a ticket now and returns its push.
func (p platform) ticketPush(w *wxtest.Server) (url.Values, []byte, error) {
	if p.wecom() {
		q, body, _, err := w.SuiteTicketPush(p.id(), sweepPushToken, sweepPushKey)
		return q, body, err
	}
	q, body, _, err := w.VerifyTicketPush(p.id(), sweepPushToken, sweepPushKey)
	return q, body, err
}

// grant has tenant authorize (install) now; it returns the code.
func (p platform) grant(w *wxtest.Server, tenant string) string {
	if p.wecom() {
		return w.Install(p.id(), tenant)
	}
	return w.Authorize(p.id(), tenant)
}

// grantPush is the push of a grant's code (authorized, create_auth).
func (p platform) grantPush(w *wxtest.Server, code string) (url.Values, []byte, error) {
	if p.wecom() {
		return w.CreateAuthPush(p.id(), code, sweepPushToken, sweepPushKey)
	}
	return w.AuthorizedPush(code, sweepPushToken, sweepPushKey)
}

// withdraw has tenant withdraw (cancel) now; it returns the push.
func (p platform) withdraw(w *wxtest.Server, tenant string) (url.Values, []byte, error) {
	if p.wecom() {
		w.Uninstall(p.id(), tenant)
		return w.CancelAuthPush(p.id(), tenant, sweepPushToken, sweepPushKey)
	}
	w.Unauthorize(p.id(), tenant)
	return w.UnauthorizedPush(p.id(), tenant, sweepPushToken, sweepPushKey)
}

// secretValid reports whether secret is the tenant's secret WeChat
// honours.
func (p platform) secretValid(w *wxtest.Server, tenant, secret string) bool {
	if p.wecom() {
		return w.PermanentCodeValid(p.id(), tenant, secret)
	}
	return w.RefreshTokenValid(p.id(), tenant, secret)
}

func (p platform) platformTokensIssued(w *wxtest.Server) int {
	if p.wecom() {
		return w.SuiteTokensIssued(p.id())
	}
	return w.ComponentTokensIssued()
}

func (p platform) tenantTokensIssued(w *wxtest.Server, tenant string) int {
	if p.wecom() {
		return w.CorpTokensIssued(tenant)
	}
	return w.AuthorizerTokensIssued(tenant)
}

// agentID is what a call as tenant needs besides its token: the app's
// agentid in the corp (0 on Open Platform).
func (p platform) agentID(w *wxtest.Server, tenant string) int64 {
	if p.wecom() {
		return w.AgentID(p.id(), tenant)
	}
	return 0
}

// ---- the vendor's side: the platform's package in one process ----

// tenants is the platform's package as a process uses it: an
// openplatform.Component or a wecomvendor.Suite.
type tenants interface {
	// handle applies a push to the event URL (command callback URL).
	handle(ctx context.Context, q url.Values, body []byte) (applied string, err error)
	// authorize applies the redirect of code, and returns its tenant.
	authorize(ctx context.Context, code string) (tenant string, err error)
	accessToken(ctx context.Context, tenant string) (core.Token, error)
	// do calls the API as tenant (agentID: see platform.agentID).
	do(ctx context.Context, tenant string, agentID int64) error
	platformToken(ctx context.Context) (core.Token, error)
	// secret and ticket read what the store holds: the tenant's refresh
	// token or permanent_code, the pushed ticket.
	secret(ctx context.Context, tenant string) (core.Token, error)
	ticket(ctx context.Context) (core.Token, error)
	// flush waits until the durable writes the process holds (the store
	// did not take them at once) have landed (Flush).
	flush(ctx context.Context) error
}

// tenantsConfig is what newTenants builds a process's package with.
type tenantsConfig struct {
	platform       platform
	store          core.TokenStore
	prefix, url    string
	client         *http.Client
	now            func() time.Time
	refreshTimeout time.Duration
}

func newTenants(c tenantsConfig) (tenants, error) {
	logger := slog.New(slog.DiscardHandler)
	if c.platform.wecom() {
		s, err := wecomvendor.New(wecomvendor.Config{
			SuiteID: c.platform.id(), SuiteSecret: core.NewSecret(sweepSuiteSecret),
			Token: core.NewSecret(sweepPushToken), EncodingAESKey: core.NewSecret(sweepPushKey),
			Store: c.store, KeyPrefix: c.prefix, BaseURL: c.url, HTTPClient: c.client, Logger: logger, Now: c.now,
			RetryBackoff: 5 * time.Millisecond,
			Policy:       core.Policy{RefreshTimeout: c.refreshTimeout},
			NoLedger:     true, // see noLedger
		})
		return wecomTenants{s}, err
	}
	comp, err := openplatform.New(openplatform.Config{
		AppID: sweepComponent, AppSecret: core.NewSecret(sweepComponentSecret),
		Token: core.NewSecret(sweepPushToken), EncodingAESKey: core.NewSecret(sweepPushKey),
		Store: c.store, KeyPrefix: c.prefix, BaseURL: c.url, HTTPClient: c.client, Logger: logger, Now: c.now,
		RetryBackoff: 5 * time.Millisecond,
		Policy:       core.Policy{RefreshTimeout: c.refreshTimeout},
		NoLedger:     true, // see noLedger
	})
	return openTenants{comp}, err
}

type openTenants struct{ c *openplatform.Component }

func (o openTenants) handle(ctx context.Context, q url.Values, body []byte) (string, error) {
	ev, err := o.c.HandleEvent(ctx, q, bytes.NewReader(body))
	if ev == nil {
		return "", err
	}
	return ev.Applied, err
}

func (o openTenants) authorize(ctx context.Context, code string) (string, error) {
	a, err := o.c.Authorize(ctx, code)
	if err != nil {
		return "", err
	}
	return a.AppID(), nil
}

func (o openTenants) accessToken(ctx context.Context, appid string) (core.Token, error) {
	return o.c.Authorizer(appid).AccessToken(ctx)
}

func (o openTenants) do(ctx context.Context, appid string, _ int64) error {
	return callAPI(ctx, o.c.Authorizer(appid).Do)
}

func (o openTenants) platformToken(ctx context.Context) (core.Token, error) {
	return o.c.ComponentAccessToken(ctx)
}

func (o openTenants) secret(ctx context.Context, appid string) (core.Token, error) {
	return o.c.RefreshToken(ctx, appid)
}

func (o openTenants) ticket(ctx context.Context) (core.Token, error) { return o.c.VerifyTicket(ctx) }

func (o openTenants) flush(ctx context.Context) error { return o.c.Flush(ctx) }

type wecomTenants struct{ s *wecomvendor.Suite }

func (w wecomTenants) handle(ctx context.Context, q url.Values, body []byte) (string, error) {
	ev, err := w.s.HandleEvent(ctx, q, bytes.NewReader(body))
	if ev == nil {
		return "", err
	}
	return ev.Applied, err
}

func (w wecomTenants) authorize(ctx context.Context, code string) (string, error) {
	c, err := w.s.Authorize(ctx, code)
	if err != nil {
		return "", err
	}
	return c.CorpID(), nil
}

func (w wecomTenants) accessToken(ctx context.Context, corp string) (core.Token, error) {
	return w.s.Corp(corp).AccessToken(ctx)
}

// do calls wxtest.PathWeComAPI (agent/get of the suite's app in the corp)
// as the corp, and checks the reply names the app.
func (w wecomTenants) do(ctx context.Context, corp string, agentID int64) error {
	var out struct {
		AgentID int64 `json:"agentid"`
	}
	q := url.Values{"agentid": {fmt.Sprint(agentID)}}
	if err := w.s.Corp(corp).Do(ctx, http.MethodGet, wxtest.PathWeComAPI, q, nil, &out); err != nil {
		return err
	}
	if out.AgentID != agentID {
		return fmt.Errorf("the reply of %s names agentid %d, want %d", wxtest.PathWeComAPI, out.AgentID, agentID)
	}
	return nil
}

func (w wecomTenants) platformToken(ctx context.Context) (core.Token, error) {
	return w.s.SuiteAccessToken(ctx)
}

func (w wecomTenants) secret(ctx context.Context, corp string) (core.Token, error) {
	return w.s.PermanentCode(ctx, corp)
}

func (w wecomTenants) ticket(ctx context.Context) (core.Token, error) { return w.s.SuiteTicket(ctx) }

func (w wecomTenants) flush(ctx context.Context) error { return w.s.Flush(ctx) }

// reauthorizeOf reports whether err is a platform's *ReauthorizeError, and
// whether it says the tenant withdrew.
func reauthorizeOf(err error) (reauth, withdrawn bool) {
	var re *openplatform.ReauthorizeError
	if errors.As(err, &re) {
		return true, re.Withdrawn
	}
	var we *wecomvendor.ReauthorizeError
	if errors.As(err, &we) {
		return true, we.Withdrawn
	}
	return false, false
}
