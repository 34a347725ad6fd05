package wecomvendor

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/tenant"
	"github.com/wechatconf/wechatconf/core/wecom"
)

// Corp is one corp that installed the suite's app: a wecom.App whose
// access_token is the corp's, fetched with its stored permanent_code
// (third-party apps: PathCorpToken with the suite_access_token;
// custom-developed apps: gettoken with the permanent_code as the secret).
// Everything a self-built WeCom app's App gives — AccessToken,
// JSAPITicket, AgentTicket, Do, Transport, JSSDKConfig — works the same,
// so a vendor's code for one corp is a self-built app's code. Get one with
// Suite.Corp.
type Corp struct {
	*wecom.App
	access *core.Credential // the App's access_token, one pointer closer
	suite  *Suite
	agent  atomic.Int64 // the app's agentid in the corp, once read (AgentID)
}

// AgentID returns the agentid of the suite's app in the corp (for
// wx.agentConfig, message/send): read once from get_auth_info
// (PathAuthInfo, with the corp's permanent_code and the
// suite_access_token) and kept by the handle. It shadows wecom.App's
// AgentID, which is 0 for a vendor's corp. Errors: the call's, or a
// *core.ReplyError when the reply names no agent; a missing or withdrawn
// permanent_code is a *ReauthorizeError.
func (c *Corp) AgentID(ctx context.Context) (int64, error) {
	if id := c.agent.Load(); id != 0 {
		return id, nil
	}
	code, err := c.suite.PermanentCode(ctx, c.CorpID())
	if err != nil {
		return 0, err
	}
	var reply struct {
		Info struct {
			Agent []struct {
				AgentID int64 `json:"agentid"`
			} `json:"agent"`
		} `json:"auth_info"`
	}
	if err := c.suite.Do(ctx, http.MethodPost, PathAuthInfo, nil, map[string]string{"auth_corpid": c.CorpID(), "permanent_code": code.Value}, &reply); err != nil {
		return 0, wrap("AgentID", refused(c.CorpID(), err))
	}
	if len(reply.Info.Agent) == 0 || reply.Info.Agent[0].AgentID <= 0 {
		return 0, wrap("AgentID", &core.ReplyError{Path: PathAuthInfo, StatusCode: http.StatusOK, Reason: "auth_info names no agent"})
	}
	c.agent.Store(reply.Info.Agent[0].AgentID)
	return reply.Info.Agent[0].AgentID, nil
}

// AgentConfig returns the wx.agentConfig parameters for the page at
// pageURL, as wecom.App.AgentConfig does, with the app's agentid in the
// corp (AgentID) and its agent_config ticket.
func (c *Corp) AgentConfig(ctx context.Context, pageURL string) (wecom.AgentConfig, error) {
	id, err := c.AgentID(ctx)
	if err != nil {
		return wecom.AgentConfig{}, err
	}
	return c.App.AgentConfigFor(ctx, pageURL, id)
}

// AccessToken returns a valid access_token of the corp and its expiry,
// from memory, the store, or WeCom with the stored permanent_code; a
// broken chain is a *ReauthorizeError.
func (c *Corp) AccessToken(ctx context.Context) (core.Token, error) { return c.access.Get(ctx) }

// Corp returns the handle of the corp with id corpID (auth_corpid),
// creating it on first use (no I/O). Handles are kept up to
// Config.MaxCorps, the least recently used dropped beyond (a handle a
// caller still holds is handed out again: one per corp per Suite while
// any is referenced). A cancellation or re-install applied by this Suite
// reaches a kept handle; once withdrawn its AccessToken and Do return a
// *ReauthorizeError and never the dead token. corpID is WeCom's (from an
// Event, a redirect's Authorize, your own list): an empty one panics, as
// a programming error.
func (s *Suite) Corp(corpID string) *Corp { return s.t.Handle(corpID) }

// newCorp is the registry's New.
func (s *Suite) newCorp(corpID string) *Corp {
	cr := s.t.AccessCredential(corpID)
	app, err := s.family.New(corpID, cr)
	if err != nil {
		panic(err) // corpID and cr are set
	}
	return &Corp{App: app, access: cr, suite: s}
}

// refused maps WeCom's refusal of a corp's permanent_code to a
// *ReauthorizeError: 40084 (invalid permanent_code), 48004 (the
// authorization is no longer valid: withdrawn), 301007 (the corp is
// dissolved or banned: withdrawn).
func refused(corpID string, err error) error {
	e := apiError(err)
	if e == nil {
		return err
	}
	switch e.Code {
	case 40084:
		return &ReauthorizeError{CorpID: corpID, Reason: "WeCom refused its permanent_code", Err: err}
	case 48004, 301007:
		return &ReauthorizeError{CorpID: corpID, Reason: fmt.Sprintf("WeCom says the corp's authorization is no longer valid (%d)", e.Code), Err: err, Withdrawn: true}
	}
	return err
}

// fetchCorpToken makes one get_corp_token call with corpID's stored
// permanent_code and the suite_access_token (r.Needed), run by
// the tenant mechanism (Config.FetchAccess) under the record key's lock.
func (s *Suite) fetchCorpToken(ctx context.Context, corpID, code string, r core.FetchRequest) (core.Token, string, error) {
	tok, err := s.raw.Issue(ctx, http.MethodPost, PathCorpToken, url.Values{"suite_access_token": {r.Needed.Value}},
		map[string]string{"auth_corpid": corpID, "permanent_code": code}, "access_token")
	if err != nil {
		return core.Token{}, "", refused(corpID, err)
	}
	return tok, "", nil
}

// fetchCustomCorpToken makes one gettoken call for a custom-developed
// app: corpid the installing corp, corpsecret its permanent_code
// (path/97164). 40001 (不合法的secret参数) means the code was reset: the
// reset_permanent_code push brings the new one.
func (s *Suite) fetchCustomCorpToken(ctx context.Context, corpID, code string, _ core.FetchRequest) (core.Token, string, error) {
	tok, err := s.raw.Issue(ctx, http.MethodGet, wecom.PathToken, url.Values{"corpid": {corpID}, "corpsecret": {code}}, nil, "access_token")
	if e := apiError(err); e != nil && (e.Code == 40001 || e.Code == 40091) {
		return core.Token{}, "", &ReauthorizeError{CorpID: corpID, Reason: "WeCom refused its permanent_code as the app's secret (reset: the reset_permanent_code push brings the new one)", Err: err}
	}
	if err != nil {
		return core.Token{}, "", refused(corpID, err)
	}
	return tok, "", nil
}

// exchange is the tenant mechanism's Exchange: one v2 get_permanent_code
// call with the suite_access_token, through tenant.Spend: once sent, its
// reply is read whatever ctx does (the permanent_code WeCom gives once
// would be lost with it).
func (s *Suite) exchange(ctx context.Context, code string) (tenant.Grant, error) {
	var reply struct {
		PermanentCode string `json:"permanent_code"`
		Corp          struct {
			CorpID string `json:"corpid"`
		} `json:"auth_corp_info"`
	}
	err := tenant.Spend(ctx, s.token, "suite_access_token", s.raw, s.api, rejectsSuiteToken, PathPermanentCode, map[string]string{"auth_code": code}, &reply)
	if err != nil {
		return tenant.Grant{}, err
	}
	if reply.PermanentCode == "" || reply.Corp.CorpID == "" {
		return tenant.Grant{}, &core.ReplyError{Path: PathPermanentCode, StatusCode: http.StatusOK,
			Reason: "the reply lacks permanent_code or auth_corp_info.corpid"}
	}
	return tenant.Grant{Tenant: reply.Corp.CorpID, Secret: reply.PermanentCode}, nil
}

// Authorize applies an install whose auth code came by the redirect after
// the install page (auth_code in the redirect URL, for installs started on
// the vendor's site, which get no create_auth push): the code is
// exchanged for the corp's permanent_code (PathPermanentCode), written in
// one durable record — replacing an earlier install's — and the corp's
// handle returned. It is dated by this process's clock. A code already
// applied (a second delivery) changes nothing; one WeCom refuses as used
// (40078) is success when the store shows it applied. Errors: the
// exchange's *core.APIError, a *core.ReplyError for a reply without the
// code, or the store's when the record could not be written within
// Policy.RefreshTimeout (the write is then held and retried in the
// background: Suite.Held).
func (s *Suite) Authorize(ctx context.Context, authCode string) (*Corp, error) {
	c, _, err := s.t.Authorize(ctx, tenant.Delivery{Code: authCode, At: s.now()})
	if err != nil {
		return nil, wrap("Authorize", err)
	}
	return c, nil
}

// Cancel applies the corp's cancellation now, as the cancel_auth push does
// (HandleEvent, dated by the push's TimeStamp): the corp's record becomes a
// withdrawal — its permanent_code and access token gone, durably — unless
// the store holds an install made after now. From then on its tokens are a
// *ReauthorizeError matching core.ErrRevoked. Errors are the store's (the
// write is then held, see Held).
func (s *Suite) Cancel(ctx context.Context, corpID string) error {
	if _, err := s.t.Withdraw(ctx, corpID, s.now(), true); err != nil {
		return wrap("Cancel", err)
	}
	return nil
}

// PermanentCode returns the permanent_code the store holds for corpID now,
// for a backup or an audit (its Value is the secret: keep it out of logs),
// or a *ReauthorizeError when none is stored or the corp cancelled
// (Withdrawn, matching core.ErrRevoked). A store error is returned as it
// is; a stored value that cannot be read wraps core.ErrCorrupt.
func (s *Suite) PermanentCode(ctx context.Context, corpID string) (core.Token, error) {
	t, err := s.t.Secret(ctx, corpID)
	if err != nil && !isReauthorize(err) {
		return core.Token{}, wrap("PermanentCode", err)
	}
	return t, err
}

// ImportPermanentCode stores a corp's permanent_code obtained elsewhere —
// another SDK's storage (none of EasyWeChat, WxJava, PowerWeChat or
// wechatpy keeps it: it is in your own database), a backup — as a new
// install dated now, replacing whatever the store holds when it is called
// (a cancellation included), dated after it. Errors are the store's (the
// write is then held, see Held).
func (s *Suite) ImportPermanentCode(ctx context.Context, corpID, permanentCode string) error {
	if err := s.t.Import(ctx, corpID, permanentCode); err != nil {
		return wrap("ImportPermanentCode", err)
	}
	return nil
}

// AuthorizationKey returns the store key of a corp's durable record — its
// permanent_code with its current access_token and the time of the event
// it follows (see the package doc: back it up).
func (s *Suite) AuthorizationKey(corpID string) string { return s.t.RecordKey(corpID) }

// Stats reports the registry: corp handles held and handles dropped so
// far.
func (s *Suite) Stats() (held, evicted int64) { return s.t.Handles().Stats() }

// Held reports how many durable writes the store has not taken yet: they
// are retried in the background until they land (core.EventStoreError with
// op "write_back" while they fail, core.EventWrittenBack when they land).
func (s *Suite) Held() int { return s.t.Writer().Held() }

// Flush waits until every durable write held has landed or been
// superseded, and the fetch records of the suite_access_token and of every
// corp handle alive are in their fetch ledgers, or ctx ends (then it
// returns ctx's error). Call it before a process stops.
func (s *Suite) Flush(ctx context.Context) error {
	if err := s.t.Writer().Drain(ctx); err != nil {
		return wrap("Flush", err)
	}
	err := s.token.FlushLedger(ctx)
	s.t.Handles().Each(func(_ string, c *Corp) bool {
		if err == nil {
			err = c.access.FlushLedger(ctx)
		}
		return err == nil
	})
	if err != nil {
		return wrap("Flush", fmt.Errorf("fetch records not yet in the ledger: %w", err))
	}
	return nil
}

// recordFormat is how a corp's record (tenant.Record: its permanent_code
// with its access_token, the state of the install and the time of the
// event that set it) is stored under its permanent_code key.
var recordFormat = tenant.Format{Prefix: "wechatconf.wecomcorp/1", Tenant: "corp", Secret: "permanent_code", Owner: "corp"}

// AuthorizationRecord is what a corp's stored record says — the value
// under Suite.AuthorizationKey — for operators' tools and audits. Its
// secrets are core.Secret values, which no rendering shows.
type AuthorizationRecord struct {
	// Withdrawn: the corp cancelled; the secrets are empty.
	Withdrawn bool
	// Since is when the state was set: the TimeStamp of the push that set
	// it, or the clock of the process that applied a redirect, a Cancel or
	// an ImportPermanentCode.
	Since time.Time
	// PermanentCode is the corp's permanent_code.
	PermanentCode core.Secret
	// AccessToken is the corp's access_token held with it, and ExpiresAt
	// its expiry; zero before the first one is fetched.
	AccessToken core.Secret
	ExpiresAt   time.Time
}

// ParseAuthorizationRecord reads a value stored under a corp's
// AuthorizationKey; a value that is not a record is an error wrapping
// core.ErrCorrupt.
func ParseAuthorizationRecord(stored core.Token) (AuthorizationRecord, error) {
	r, err := recordFormat.Decode(stored)
	if err != nil {
		return AuthorizationRecord{}, err
	}
	out := AuthorizationRecord{Withdrawn: r.State == tenant.StateWithdrawn, PermanentCode: core.NewSecret(r.Secret), AccessToken: core.NewSecret(r.Access)}
	if r.Since > 0 {
		out.Since = time.UnixMilli(r.Since)
	}
	if r.Expires > 0 {
		out.ExpiresAt = time.UnixMilli(r.Expires)
	}
	return out, nil
}
