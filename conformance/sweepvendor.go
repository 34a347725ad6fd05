package conformance

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// The simulated accounts of the sweep: one third-party platform with up to
// two authorizers, and one Official Account.
const (
	sweepComponent       = "wxsweepcomponent"
	sweepComponentSecret = "sweep-component-secret"
	sweepPushToken       = "sweepPushToken"
	sweepPushKey         = "sweepEncodingAESKey0123456789abcdefghijklmn" // 43 characters
	sweepAuth1           = "wxsweepauthorizer1"
	sweepAuth2           = "wxsweepauthorizer2"
	sweepOA              = "wxsweepofficialaccount"
	sweepOASecret        = "sweep-official-account-secret"
)

// push is one push WeChat makes to the vendor's authorization event URL
// (command callback URL).
type push struct {
	name  string // for messages: "unauthorized(wxsweepauthorizer1)@+0s"
	query url.Values
	body  []byte
	// What it says: its kind, the tenant (which a WeCom create_auth or
	// reset_permanent_code does not carry: the run knows it) and the
	// event's time.
	kind  pushKind
	appid string
	at    time.Time
}

// pushKind is what a push does to the vendor's durable state.
type pushKind int

const (
	pushTicket   pushKind = iota // a ticket (component_verify_ticket, suite_ticket)
	pushGrant                    // a grant with a code (authorized, create_auth, reset_permanent_code)
	pushWithdraw                 // a withdrawal (unauthorized, cancel_auth)
	pushNoted                    // acknowledged, nothing stored (change_auth)
)

// vendorConfig is what every process of a run builds its objects with.
type vendorConfig struct {
	// Platform is the vendor platform of the scenario.
	Platform       platform      `json:"platform"`
	URL            string        `json:"url"`
	Prefix         string        `json:"prefix"`
	RefreshTimeout time.Duration `json:"refresh_timeout"`
	// Push is the core.DedupConfig of every process's Dedup (the Pushes
	// scenario), but its Store and Logger.
	Push pushConfig `json:"push"`
}

// pushConfig is the part of a core.DedupConfig a run chooses.
type pushConfig struct {
	KeyPrefix   string        `json:"key_prefix"`
	Lease       time.Duration `json:"lease"`
	Remember    time.Duration `json:"remember"`
	Wait        time.Duration `json:"wait"`
	CallTimeout time.Duration `json:"call_timeout"`
}

// vendor is one process of the vendor's fleet: the scenario's platform
// (an openplatform.Component or a wecomvendor.Suite: tenants) and a
// core.Conf (the Official Account), and in the Pushes scenario a
// core.Dedup, over one view of the store. Its tenant is an authorizer's
// appid or a corp id. It is
// played in this process (localVendor) or in a child (childVendor).
type vendor interface {
	name() string
	handle(ctx context.Context, p push) (applied string, err error)
	authorize(ctx context.Context, code string) (tenant string, err error)
	accessToken(ctx context.Context, tenant string) (core.Token, error)
	// do calls the API as tenant (agentID: see platform.agentID).
	do(ctx context.Context, tenant string, agentID int64) error
	platformToken(ctx context.Context) (core.Token, error)
	// flush waits for the durable writes the process holds to land.
	flush(ctx context.Context) error
	// oaToken is the Official Account's AccessToken; with lose, the first
	// refresh that would fetch loses its lease (leaseStore), and next is
	// called after the process's next store call.
	oaToken(ctx context.Context, lose bool, next func()) (core.Token, error)
	oaDo(ctx context.Context) error
	// pushDo delivers the push key (core.PushKey) to the process's
	// core.Dedup, whose handler records its run in the history and fails
	// when fail is set.
	pushDo(ctx context.Context, key string, fail bool) (core.PushOutcome, error)
	// gate holds the process's next Refresh until open is closed.
	gate(open <-chan struct{})
	close()
}

// localVendor is a vendor process played in this process.
type localVendor struct {
	proc  string
	ten   tenants
	oa    *core.Conf
	lease *leaseStore
	gates *gateStore
	fs    *faultStore
	plan  *faultPlan
	dedup *core.Dedup
	pcfg  pushConfig
	web   *atomic.Int64
	tr    *http.Transport
}

// countingTransport counts the WeChat calls of a process.
type countingTransport struct {
	base http.RoundTripper
	n    *atomic.Int64
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.base.RoundTrip(r)
}

// noLedger: the sweep's processes keep no fetch ledger. The sweep checks
// the token and durable records, whose writes it enumerates; the ledger is
// written by a goroutine of its own after them, which an in-process "kill"
// would leave writing into the store after the run (core's ledger tests
// enumerate its fault points).

// newLocalVendor builds process proc over store: the fault wrapper of plan
// over the gate, over the lease player, over store; its claims, when store
// implements core.ClaimStore, go through the fault wrapper to store (see
// faultClaimStore).
func newLocalVendor(proc string, cfg vendorConfig, store core.TokenStore, plan *faultPlan, now func() time.Time) (*localVendor, error) {
	v := &localVendor{proc: proc, plan: plan, pcfg: cfg.Push, web: new(atomic.Int64), tr: &http.Transport{}}
	v.lease = &leaseStore{inner: store}
	v.gates = &gateStore{inner: v.lease}
	v.fs = &faultStore{inner: v.gates, plan: plan, proc: proc, web: v.web}
	claims, _ := store.(core.ClaimStore)
	fs := wrapFaults(v.fs, claims)
	client := &http.Client{Transport: countingTransport{base: v.tr, n: v.web}}
	logger := slog.New(slog.DiscardHandler)
	var err error
	v.ten, err = newTenants(tenantsConfig{platform: cfg.Platform, store: fs, prefix: cfg.Prefix, url: cfg.URL,
		client: client, now: now, refreshTimeout: cfg.RefreshTimeout})
	if err != nil {
		return nil, err
	}
	v.oa, err = core.New(core.Config{
		AppID: sweepOA, AppSecret: core.NewSecret(sweepOASecret), TokenAPI: core.ClassicToken,
		Store: fs, KeyPrefix: cfg.Prefix, BaseURL: cfg.URL, HTTPClient: client, Logger: logger, Now: now,
		RetryBackoff: 5 * time.Millisecond, RefreshTimeout: cfg.RefreshTimeout,
		NoLedger: true, // see noLedger
	})
	if err != nil {
		return nil, err
	}
	if cfg.Push.KeyPrefix != "" {
		v.dedup, err = core.NewDedup(core.DedupConfig{
			Store: fs, KeyPrefix: cfg.Push.KeyPrefix, Lease: cfg.Push.Lease, Remember: cfg.Push.Remember,
			Wait: cfg.Push.Wait, CallTimeout: cfg.Push.CallTimeout, Logger: logger,
		})
		if err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (v *localVendor) name() string { return v.proc }

func (v *localVendor) handle(ctx context.Context, p push) (string, error) {
	return v.ten.handle(ctx, p.query, p.body)
}

func (v *localVendor) authorize(ctx context.Context, code string) (string, error) {
	return v.ten.authorize(ctx, code)
}

func (v *localVendor) accessToken(ctx context.Context, tenant string) (core.Token, error) {
	return v.ten.accessToken(ctx, tenant)
}

func (v *localVendor) do(ctx context.Context, tenant string, agentID int64) error {
	return v.ten.do(ctx, tenant, agentID)
}

func (v *localVendor) platformToken(ctx context.Context) (core.Token, error) {
	return v.ten.platformToken(ctx)
}

func (v *localVendor) flush(ctx context.Context) error { return v.ten.flush(ctx) }

func (v *localVendor) oaToken(ctx context.Context, lose bool, next func()) (core.Token, error) {
	if lose {
		v.lease.arm(next)
	}
	return v.oa.AccessToken(ctx)
}

func (v *localVendor) oaDo(ctx context.Context) error { return callAPI(ctx, v.oa.Do) }

// errHandlerFailed is the error of a push handler told to fail.
var errHandlerFailed = errors.New("conformance: sweep: the push handler failed (as the scenario asks)")

// pushDo delivers the push key to v's Dedup. The delivery and the handler
// are the process's doings outside the store, as its WeChat calls are
// (web): a kill after the store call that follows one is another crash
// than a kill after the call before it.
func (v *localVendor) pushDo(ctx context.Context, key string, fail bool) (core.PushOutcome, error) {
	if v.dedup == nil {
		return 0, errors.New("conformance: sweep: the process has no Dedup (vendorConfig.Push)")
	}
	v.web.Add(1)
	full := v.pcfg.KeyPrefix + "/" + key
	return v.dedup.Do(ctx, key, func(context.Context) error {
		v.web.Add(1)
		v.plan.ran(v.proc, full, "start")
		kind, err := "finish", error(nil)
		if fail {
			kind, err = "fail", errHandlerFailed
		}
		v.plan.ran(v.proc, full, kind)
		v.plan.handlerReturned(v.fs, full)
		return err
	})
}

func (v *localVendor) gate(open <-chan struct{}) { v.gates.arm(open) }

func (v *localVendor) close() { v.tr.CloseIdleConnections() }

// callAPI calls wxtest.PathAPI through do (a Conf's Do) and checks the
// reply.
func callAPI(ctx context.Context, do func(ctx context.Context, method, path string, query url.Values, body, out any) error) error {
	var out struct {
		IPList []string `json:"ip_list"`
	}
	if err := do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, &out); err != nil {
		return err
	}
	if len(out.IPList) == 0 {
		return errors.New("no ip_list in the reply of " + wxtest.PathAPI)
	}
	return nil
}

// isRevoked reports whether err says the merchant withdrew: a
// *openplatform.ReauthorizeError matching core.ErrRevoked.
func isRevoked(err error) bool {
	var re *openplatform.ReauthorizeError
	return errors.As(err, &re) && errors.Is(err, core.ErrRevoked)
}
