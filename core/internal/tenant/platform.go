package tenant

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
)

// What applying an authorization event did (Platform.Authorize,
// Platform.Withdraw).
const (
	// AppliedAuthorized: the authorization code was exchanged and the
	// tenant's record written.
	AppliedAuthorized = "authorized"
	// AppliedUnauthorized: the withdrawal was written.
	AppliedUnauthorized = "unauthorized"
	// AppliedAlready: this very authorization (the same code) or
	// withdrawal (the same time) is what the store holds: a second
	// delivery (the redirect and the push, a re-sent push) changes nothing.
	AppliedAlready = "already applied"
	// AppliedOlderIgnored: the store holds a newer authorization or
	// withdrawal of the tenant than this event's time: the event, delayed
	// or re-sent, is acknowledged and ignored.
	AppliedOlderIgnored = "older event ignored"
	// AppliedCodeSpent: WeChat refused the code of a push that names no
	// tenant (WeCom's create_auth, reset_permanent_code) as used, voided
	// or expired, and the code index no longer says whose it was (its
	// write failed, or the store dropped it). Nothing can be applied: the
	// exchange that used the code wrote its record (or holds it, see
	// Writer), or a crash lost it and no re-delivery brings it back. The
	// push is acknowledged, so that WeChat stops re-sending it.
	AppliedCodeSpent = "code already spent"
)

// codeIndexLifetime is how long the code index entry of an authorization
// (see Authorize) is kept when the code's own expiry is not known:
// WeChat's authorization codes live at most an hour.
const codeIndexLifetime = time.Hour

// SpendTimeout bounds the WeChat call that spends a single-use code once
// it is sent (Spend): the caller's giving up does not cut it short, as
// its reply holds the only copy of the tenant's secret.
const SpendTimeout = 30 * time.Second

// Spend makes the WeChat call that spends a single-use authorization code
// (api_query_auth, get_permanent_code), for a harness's Exchange: the
// platform token (token, sent as the tokenParam query parameter) is got
// within ctx; the call is then made with raw and its reply read whatever
// ctx does — a push's request given up on after WeChat's 5 s, a deadline
// spent by a slow store: the secret WeChat gives once would be lost with
// it — within SpendTimeout. A platform token WeChat refuses (rejects) is
// replaced and the call made again within ctx, through api (raw with the
// token's credential). Errors are the calls'.
func Spend(ctx context.Context, token *core.Credential, tokenParam string, raw, api *core.API, rejects func(error) bool, path string, body, out any) error {
	t, err := token.Get(ctx)
	if err != nil {
		return err
	}
	xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), SpendTimeout)
	defer cancel()
	err = raw.Do(xctx, http.MethodPost, path, url.Values{tokenParam: {t.Value}}, body, out)
	if rejects(err) {
		err = api.Do(ctx, http.MethodPost, path, nil, body, out)
	}
	return err
}

// Grant is what exchanging an authorization code gave: the tenant, its
// durable secret and its first access token.
type Grant struct {
	// Tenant is the tenant's id (authorizer_appid, auth_corpid).
	Tenant string
	// Secret is its durable secret (authorizer_refresh_token,
	// permanent_code).
	Secret string
	// AccessToken and ExpiresIn are its first access token and lifetime
	// (trusted up to 24 h); "" when the exchange gives none (WeCom's v2
	// get_permanent_code): the first refresh fetches it.
	AccessToken string
	ExpiresIn   time.Duration
}

// Ticket is a platform's pushed ticket (component_verify_ticket,
// suite_ticket): stored durably, newest by the push's time wins.
type Ticket struct {
	// Name is its name, and the last element of its key
	// ("component_verify_ticket").
	Name string
	// Lifetime is how long a ticket is trusted after its push's time.
	Lifetime time.Duration
	// Missing is the error (wrapped) when no ticket is stored, or the
	// stored one has outlived Lifetime.
	Missing error
}

// Config is a vendor platform's part in the mechanism: its keys, its
// stores, its ticket, its record format and the WeChat calls and errors
// only it knows.
type Config[T any] struct {
	// Prefix starts every key of the platform, and ends in "/"
	// ("<KeyPrefix>/open/<component_appid>/").
	Prefix string
	// Store keeps the rest of the chain and the code index; Durable the
	// records and the ticket (Store when nil).
	Store, Durable core.TokenStore
	// Timeout bounds a durable write's foreground attempts
	// (Policy.RefreshTimeout).
	Timeout time.Duration
	Logger  *slog.Logger
	Now     func() time.Time

	// Ticket is the pushed ticket.
	Ticket Ticket
	// Format is how records are stored; RecordName the last element of a
	// record's key (<Prefix><tenant>/<RecordName>) and the "credential" of
	// its events ("authorizer_refresh_token").
	Format     Format
	RecordName string
	// PlatformOf is the "platform" attribute of the events of a durable
	// write of name (the ticket, or a tenant's record).
	PlatformOf func(name string) core.Platform

	// Exchange makes the one WeChat call that exchanges an authorization
	// code (api_query_auth, get_permanent_code), and returns what it
	// gave, or its error. Once the call is sent, its reply should be read
	// whatever ctx does (the code is spent: a reply given up on is a
	// secret lost); ctx bounds what comes before (the platform token). CodeRefused reports whether an error of Exchange
	// is WeChat refusing the code as used, voided or expired; ExchangePath
	// names the call in a *core.ReplyError.
	Exchange     func(ctx context.Context, code string) (Grant, error)
	CodeRefused  func(err error) bool
	ExchangePath string
	// SecretRefused reports whether an error of a tenant's token fetch
	// (FetchAccess) is WeChat refusing the secret it was given (a retired
	// permanent_code, an invalid refresh token): the record's Alt secret
	// is then tried.
	SecretRefused func(err error) bool
	// Reauthorize builds the platform's error for a tenant whose chain
	// only its owner can mend by authorizing again (the secret missing,
	// withdrawn, or refused by WeChat: err).
	Reauthorize func(tenant, reason string, err error, withdrawn bool) error

	// Access is the kind of the tenants' access tokens (see
	// core.NewCredentialKind: Name, Platform, Needs — the platform token —,
	// Policy, Logger, Now, Ledger; its Store is set to the Durable store,
	// where a tenant's token lives in its record). FetchAccess makes one
	// WeChat call for tenant's access token with its secret (see
	// fetch); IsReauthorize reports whether an error is one
	// Reauthorize built.
	Access        core.CredentialConfig
	FetchAccess   func(ctx context.Context, tenant, secret string, r core.FetchRequest) (access core.Token, rotated string, err error)
	IsReauthorize func(error) bool

	// NewHandle makes a tenant's handle (no I/O); Invalidate tells one that
	// its stored state changed (its token is dropped and read again).
	NewHandle  func(tenant string) *T
	Invalidate func(*T)
	// MaxHandles bounds the handles kept (Registry.Max).
	MaxHandles int
}

// Platform is the mechanism a vendor platform's package is a harness
// over: see the package doc. Build it with New; it is safe for concurrent
// use.
type Platform[T any] struct {
	cfg     Config[T]
	durable core.TokenStore
	writer  *Writer
	reg     Registry[T]
	access  *core.CredentialKind // Config.Access
}

// New returns the Platform of cfg; its error is Config.Access's. It does
// no I/O.
func New[T any](cfg Config[T]) (*Platform[T], error) {
	p := &Platform[T]{cfg: cfg, durable: cfg.Durable}
	if p.durable == nil {
		p.durable = cfg.Store
	}
	p.writer = &Writer{Store: p.durable, Timeout: cfg.Timeout, Logger: cfg.Logger, Platform: cfg.PlatformOf, Landed: p.Changed}
	p.reg = Registry[T]{New: cfg.NewHandle, Max: cfg.MaxHandles}
	kind := cfg.Access
	kind.Store = p.durable
	var err error
	if p.access, err = core.NewCredentialKind(kind); err != nil {
		return nil, err
	}
	return p, nil
}

// AccessCredential returns a new Credential of tenant's access token, of
// the platform's kind (Config.Access): kept in tenant's record
// (RecordKey), served by Decode, its refresh checked by CheckAuthorized
// and made by Fetch with Config.FetchAccess. It costs its struct and one
// small binding: everything else is the kind's.
func (p *Platform[T]) AccessCredential(tenant string) *core.Credential {
	b := &binding[T]{p: p, tenant: tenant}
	cr, err := p.access.New(core.CredentialConfig{Key: p.RecordKey(tenant), Fetch: b.fetch, Prepare: b.prepare, Decode: b.decode})
	if err != nil {
		panic(err) // Key and Fetch are set
	}
	return cr
}

// binding binds one tenant to the platform's functions: its methods are
// the tenant's access-token Credential's Fetch, Prepare and Decode.
type binding[T any] struct {
	p      *Platform[T]
	tenant string
}

func (b *binding[T]) decode(stored core.Token) (core.Token, error) {
	return b.p.Decode(b.tenant, stored)
}

func (b *binding[T]) prepare(ctx context.Context) (any, error) {
	return nil, b.p.CheckAuthorized(ctx, b.tenant)
}

func (b *binding[T]) fetch(ctx context.Context, r core.FetchRequest) (core.Token, error) {
	return b.p.fetch(ctx, b.tenant, r)
}

func (p *Platform[T]) now() time.Time {
	if p.cfg.Now != nil {
		return p.cfg.Now()
	}
	return time.Now()
}

// Durable returns the store of the records and the ticket.
func (p *Platform[T]) Durable() core.TokenStore { return p.durable }

// Writer returns the platform's durable writer (Held, Drain).
func (p *Platform[T]) Writer() *Writer { return p.writer }

// Handle returns tenant's handle, making it on first use (Registry.Get).
func (p *Platform[T]) Handle(tenant string) *T { return p.reg.Get(tenant) }

// Handles returns the registry of handles (Each, Stats).
func (p *Platform[T]) Handles() *Registry[T] { return &p.reg }

// Changed tells tenant's handle, if this process holds one (in the
// registry or kept by a caller after its eviction), that its stored state
// changed (an authorization, a withdrawal, an import): its in-process
// token is dropped and read again from the store.
func (p *Platform[T]) Changed(tenant string) {
	if h := p.reg.Lookup(tenant); h != nil && p.cfg.Invalidate != nil {
		p.cfg.Invalidate(h)
	}
}

// RecordKey returns the store key of tenant's record.
func (p *Platform[T]) RecordKey(tenant string) string {
	return p.cfg.Prefix + tenant + "/" + p.cfg.RecordName
}

// TicketKey returns the store key of the pushed ticket.
func (p *Platform[T]) TicketKey() string { return p.cfg.Prefix + p.cfg.Ticket.Name }

// SetTicket stores a ticket that WeChat pushed at createTime (the push's
// time), valid for Ticket.Lifetime from then: the newest wins. A ticket
// older than the stored one (a push delayed or replayed) is not stored,
// and stored reports false. The write is a compare-and-set through the
// key's lock in the durable store, so concurrent pushes to several
// instances leave the newest; a store error is retried within Timeout,
// then the ticket is held and written in the background (Writer) and the
// error returned.
func (p *Platform[T]) SetTicket(ctx context.Context, ticket string, createTime time.Time) (stored bool, err error) {
	if ticket == "" {
		return false, fmt.Errorf("the %s is empty", p.cfg.Ticket.Name)
	}
	next := core.Token{Value: ticket, ExpiresAt: createTime.Add(p.cfg.Ticket.Lifetime)}
	return p.writer.Write(ctx, p.cfg.Ticket.Name, "", p.TicketKey(), func(cur core.Token) (core.Token, bool) {
		return next, cur.Value == "" || cur.Value == next.Value || cur.ExpiresAt.Before(next.ExpiresAt) // else the stored one is as new or newer
	})
}

// Ticket returns the stored ticket and its expiry (the push's time +
// Lifetime); an error wrapping Ticket.Missing when there is none or it
// has expired, the store's error otherwise.
func (p *Platform[T]) Ticket(ctx context.Context) (core.Token, error) {
	t, err := p.durable.Get(ctx, p.TicketKey())
	switch {
	case errors.Is(err, core.ErrNotFound):
		return core.Token{}, p.cfg.Ticket.Missing
	case err != nil:
		return core.Token{}, err
	case !p.now().Before(t.ExpiresAt):
		return core.Token{}, fmt.Errorf("%w (the last one came at %s)", p.cfg.Ticket.Missing, t.ExpiresAt.Add(-p.cfg.Ticket.Lifetime).Format(time.RFC3339))
	}
	return t, nil
}

// Delivery is one delivery of an authorization: a pushed event or a
// redirect, with its code.
type Delivery struct {
	// Code is the authorization code (auth_code, AuthorizationCode,
	// AuthCode).
	Code string
	// Tenant is the tenant the delivery names, "" when it names none (a
	// redirect; WeCom's create_auth and reset_permanent_code pushes).
	Tenant string
	// At is when the authorization was made: the push's time, or now for
	// a redirect. FromWeChat says At is WeChat's clock (a push's
	// CreateTime or TimeStamp), not this process's.
	At         time.Time
	FromWeChat bool
	// CodeExpires is when the code expires (zero: not known).
	CodeExpires time.Time
}

// Authorize applies one delivery of an authorization and returns the
// tenant's handle and what it did (Applied*).
//
// A code already applied (the store's record came from it) is not
// exchanged again; one older than the record is ignored; otherwise it is
// exchanged (Exchange) and its record written forward — replacing
// whatever the store held when the exchange was decided (WeChat honours
// the newest exchange), dated after it. A delivery dated by this
// process's clock and applied first is re-dated by the one WeChat dated.
// A code WeChat refuses (CodeRefused) is success when the store shows it
// applied or superseded; one of a push that names no tenant, whose tenant
// the code index does not know either, is acknowledged with a nil handle
// (AppliedCodeSpent).
//
// What the exchange gave is written ahead, before anything else: the
// first store call after the exchange is a blind write of the code index
// with the grant in it (the record's own write reads it first, and a
// crash between that read and its write would lose a secret WeChat gives
// once), and dropped from it once the record holds it. A delivery of the
// code again whose exchange WeChat refuses, and whose record does not hold
// it, writes the record from there.
//
// Errors: Exchange's, a *core.ReplyError naming ExchangePath when the
// reply names another tenant than the delivery, the store's (reading the
// record first: nothing is exchanged; writing it: the write is held, see
// Writer).
func (p *Platform[T]) Authorize(ctx context.Context, d Delivery) (*T, string, error) {
	code, tenant, at, codeExpires := d.Code, d.Tenant, d.At, d.CodeExpires
	if code == "" {
		return nil, "", errors.New("the authorization code is empty")
	}
	id, since := CodeID(code), at.UnixMilli()
	if codeExpires.IsZero() {
		codeExpires = p.now().Add(codeIndexLifetime)
	}
	// dated: since is WeChat's time (a push's), or no later than it (the
	// time of the code's push, from the code index), not only this
	// process's clock (a redirect's).
	dated := d.FromWeChat
	useIndexed := func(at int64) {
		if at > 0 {
			since, dated = min(since, at), true
		}
	}
	if tenant == "" {
		// A redirect, or a push without a tenant: the code index knows
		// the tenant, and when the code's push came, if an earlier
		// delivery exchanged it — the authorization is no newer than that.
		var at int64
		tenant, _, at = p.codeIndex(ctx, id)
		useIndexed(at)
	}
	// base is what the store held before the exchange, when known: the
	// exchange is newer than it, whatever the clocks say.
	var base core.Token
	baseKnown := false
	if tenant != "" {
		applied, cur, err := p.alreadyApplied(ctx, tenant, id, since, false)
		base, baseKnown = cur, err == nil
		if err != nil {
			// Not knowing what the store holds, do not spend the code:
			// WeChat delivers the push again.
			return nil, "", fmt.Errorf("reading the %s's record: %w", p.cfg.Format.Tenant, err)
		}
		if applied != "" {
			if applied == AppliedAlready && d.FromWeChat {
				p.redate(ctx, tenant, id, since)
			}
			return p.Handle(tenant), applied, nil
		}
	}
	start := p.now()
	recovered := false
	// Exchange makes sure that once its WeChat call is sent, its reply is
	// read whatever the caller's ctx does (see Config.Exchange).
	g, err := p.cfg.Exchange(ctx, code)
	if err != nil {
		if p.cfg.CodeRefused != nil && p.cfg.CodeRefused(err) {
			// Refused as used, superseded or expired: a delivery of this
			// code applied before (by another instance, or before a
			// crash), or a newer authorization or withdrawal in the
			// store, is success.
			indexed, secret, at := p.codeIndex(ctx, id)
			if tenant == "" {
				tenant = indexed
			}
			if indexed == tenant {
				useIndexed(at)
			}
			switch {
			case tenant == "" && d.FromWeChat:
				return nil, AppliedCodeSpent, nil
			case tenant == "":
				return nil, "", err
			}
			if applied, _, _ := p.alreadyApplied(ctx, tenant, id, since, true); applied != "" {
				return p.Handle(tenant), applied, nil
			}
			if indexed != tenant || secret == "" {
				return nil, "", err
			}
			// This process, or another before a crash, exchanged the code
			// and wrote the grant ahead, but not its record: write it now.
			// It is ordered by its time against what the store holds.
			g, err, recovered, baseKnown = Grant{Tenant: tenant, Secret: secret}, nil, true, false
		} else {
			return nil, "", err
		}
	}
	if tenant != "" && tenant != g.Tenant {
		return nil, "", &core.ReplyError{Path: p.cfg.ExchangePath, StatusCode: http.StatusOK,
			Reason: "the reply names " + p.cfg.Format.Tenant + " " + g.Tenant + ", the push " + tenant}
	}
	tenant = g.Tenant
	indexSince := int64(0) // the index keeps WeChat's time only
	if dated {
		indexSince = since
	}
	if !recovered {
		// Write ahead what the exchange gave (see above).
		p.indexCode(ctx, id, tenant, g.Secret, codeExpires)
		p.indexTime(ctx, id, indexSince, codeExpires)
	}
	// certain: the record was read before the exchange, so a record the
	// store still holds unchanged is older than the exchange at WeChat.
	// Otherwise (no tenant known before the exchange: WeCom's create_auth
	// and reset_permanent_code; or another write came between) two
	// exchanges of one tenant may have crossed, and the store cannot say
	// which WeChat made last — the one it honours: both secrets are kept
	// (Record.Alt) and the next token fetch keeps the one WeChat takes.
	certainBase := baseKnown
	if !baseKnown && !recovered {
		base, baseKnown = p.baseOf(ctx, tenant)
	}
	rival := func(r Record) bool {
		return r.State == StateAuthorized && r.Code != "" && r.Code != id && r.Secret != g.Secret
	}
	life := min(g.ExpiresIn, 24*time.Hour) // trusted up to 24 h, as core's calls
	applied := AppliedAlready
	_, err = p.writer.Write(ctx, p.cfg.RecordName, tenant, p.RecordKey(tenant), func(cur core.Token) (core.Token, bool) {
		next := Record{State: StateAuthorized, Since: since, Code: id, Secret: g.Secret}
		if g.AccessToken != "" {
			next.Access, next.Expires = g.AccessToken, firstExpiry(start, life).UnixMilli()
		}
		r, err := p.cfg.Format.Decode(cur)
		switch {
		case err == nil && r.Code == id:
			// The code is single-use and this call exchanged it: a record
			// from it is this call's write, which landed although the
			// store reported a failure (the write was retried).
			applied = AppliedAuthorized
			return core.Token{}, false
		case baseKnown && cur.Value == base.Value:
			// Nothing was written since the exchange was decided: the
			// exchange made is the authorization WeChat honours now (it
			// voided the secret before it), so it replaces what the store
			// holds and is dated after it, whatever the clocks say.
			if err == nil {
				next.Since = max(next.Since, r.Since+1)
				if !certainBase && rival(r) {
					next.Alt = r.Secret
				}
			}
		case err == nil && !r.ReplacedBy(StateAuthorized, since):
			// An event newer than this one was written meanwhile (a write
			// held in the background may land long after its exchange).
			applied = AppliedOlderIgnored
			if rival(r) && r.Alt != g.Secret {
				// Its exchange may still be the later one at WeChat:
				// keep this secret beside it.
				r.Alt = g.Secret
				return p.cfg.Format.Encode(r), true
			}
			return core.Token{}, false
		case err == nil && rival(r):
			next.Alt = r.Secret
		}
		applied = AppliedAuthorized
		return p.cfg.Format.Encode(next), true
	})
	if err != nil {
		if !recovered {
			// Indexed again in case the write ahead failed: the record's
			// write is held, and a delivery of the code again (WeCom's
			// retry, the redirect) finds the tenant, or writes it, when
			// WeChat refuses the used code.
			p.indexCode(ctx, id, tenant, g.Secret, codeExpires)
		}
		return nil, "", fmt.Errorf("storing the authorization: %w", err)
	}
	if !recovered {
		// The grant is in the record now: the index keeps only the tenant
		// (a value of its own: "<tenant>\n").
		p.indexCode(ctx, id, tenant, "", codeExpires)
	}
	p.Changed(tenant)
	return p.Handle(tenant), applied, nil
}

// redate gives tenant's record, applied from code id by the redirect and
// so dated by this process's clock, the time WeChat gave the
// authorization — since, the time of the code's push — so that the order
// of later events does not depend on this clock being right. Best effort:
// a store error or a record that moved on leaves it as it is.
func (p *Platform[T]) redate(ctx context.Context, tenant, id string, since int64) {
	_, _ = WriteForward(ctx, p.durable, p.RecordKey(tenant), func(cur core.Token) (core.Token, bool) {
		r, err := p.cfg.Format.Decode(cur)
		if err != nil || r.Code != id || r.Since == since {
			return core.Token{}, false
		}
		r.Since = since
		return p.cfg.Format.Encode(r), true
	})
}

// alreadyApplied reads tenant's record and says whether an authorization
// with code id made at since (Unix ms) is already applied
// (AppliedAlready) or older than what the store holds
// (AppliedOlderIgnored: a newer authorization or withdrawal), with the
// value it read; "" when its code is to be exchanged (WeChat then
// decides: it refuses a code a withdrawal or a newer authorization
// voided). A store error other than ErrNotFound is returned. voided says
// WeChat refused the code: then a record of the same time is taken as
// newer too (the event that voided it).
func (p *Platform[T]) alreadyApplied(ctx context.Context, tenant, id string, since int64, voided bool) (string, core.Token, error) {
	t, err := p.durable.Get(ctx, p.RecordKey(tenant))
	switch {
	case errors.Is(err, core.ErrNotFound), errors.Is(err, core.ErrCorrupt):
		return "", t, nil
	case err != nil:
		return "", t, err
	}
	r, err := p.cfg.Format.Decode(t)
	switch {
	case err != nil:
		return "", t, nil
	case r.Code == id:
		return AppliedAlready, t, nil
	case r.Since > since, voided && r.Since == since:
		return AppliedOlderIgnored, t, nil
	}
	return "", t, nil
}

// The code index maps an authorization code (its CodeID) to the tenant it
// named, for the code's life: a redirect carries only the code, so a
// redirect applied after the code's push (whose exchange WeChat may refuse
// as used) finds the tenant's record through it. It is an aid, not durable
// state, kept in Config.Store (with the code's expiry, so a store that
// expires keys drops it): a write or read that fails is ignored (the
// exchange then decides).
func (p *Platform[T]) codeIndexKey(id string) string {
	return p.cfg.Prefix + "authorization_code/" + id
}

// Its value is "<tenant>\n<secret>": right after the exchange it holds
// the grant — the tenant's new secret — until the record holding it is
// written (see Authorize), the write ahead of the record's; then
// "<tenant>\n". (A bare "<tenant>" is read too.)
func (p *Platform[T]) indexCode(ctx context.Context, id, tenant, secret string, expires time.Time) {
	v := tenant + "\n" + secret
	if err := p.cfg.Store.Set(ctx, p.codeIndexKey(id), core.Token{Value: v, ExpiresAt: expires}); err != nil {
		p.writer.logStoreError("authorization_code", p.codeIndexKey(id), "set", err)
	}
}

// indexTime keeps, beside the code index's entry (its key and "/at"),
// the time WeChat gave the code's push (Unix ms; nothing when since is
// 0, unknown), which dates a later delivery of the same code (a redirect)
// — under a key of its own, so that a process of an earlier version
// reads the entry as it wrote it. Written once, after the write ahead.
func (p *Platform[T]) indexTime(ctx context.Context, id string, since int64, expires time.Time) {
	if since <= 0 {
		return
	}
	key := p.codeIndexKey(id) + "/at"
	if err := p.cfg.Store.Set(ctx, key, core.Token{Value: strconv.FormatInt(since, 10), ExpiresAt: expires}); err != nil {
		p.writer.logStoreError("authorization_code", key, "set", err)
	}
}

// codeIndex returns the tenant the code index names for code id, the
// secret its exchange gave if the entry still holds it, and the time of
// the code's push (Unix ms, 0 if unknown: indexTime); "" when there is no
// entry or the store did not answer.
func (p *Platform[T]) codeIndex(ctx context.Context, id string) (tenant, secret string, since int64) {
	t, err := p.cfg.Store.Get(ctx, p.codeIndexKey(id))
	if err != nil {
		return "", "", 0
	}
	tenant, secret, _ = strings.Cut(t.Value, "\n")
	if at, err := p.cfg.Store.Get(ctx, p.codeIndexKey(id)+"/at"); err == nil {
		if n, err := strconv.ParseInt(at.Value, 10, 64); err == nil && n > 0 {
			since = n
		}
	}
	return tenant, secret, since
}

// Withdraw writes tenant's withdrawal made at `at` forward, and reports
// what it did (Applied*): its record becomes a withdrawal — its secret and
// access token gone, durably, so that a refresh in flight cannot bring
// them back. An explicit one (an operator's call: now) replaces any
// authorization the store holds when it is called and is dated after it;
// a push's is ordered by its time. Errors are the store's (the write is
// then held, see Writer).
func (p *Platform[T]) Withdraw(ctx context.Context, tenant string, at time.Time, explicit bool) (string, error) {
	if tenant == "" {
		return "", fmt.Errorf("the %s's id is empty", p.cfg.Format.Tenant)
	}
	since := at.UnixMilli()
	var base core.Token
	baseKnown := false
	if explicit {
		base, baseKnown = p.baseOf(ctx, tenant)
	}
	applied := AppliedAlready
	_, err := p.writer.Write(ctx, p.cfg.RecordName, tenant, p.RecordKey(tenant), func(cur core.Token) (core.Token, bool) {
		r, err := p.cfg.Format.Decode(cur)
		next := Record{State: StateWithdrawn, Since: since}
		switch {
		case err != nil:
		case r.State == StateWithdrawn && (r.Since == since || explicit):
			applied = AppliedAlready
			return core.Token{}, false
		case baseKnown && cur.Value == base.Value:
			// The operator's "now" is after what the store held when it
			// was called (and only that: a write held and landing late
			// orders by its time).
			next.Since = max(since, r.Since+1)
		case !r.ReplacedBy(StateWithdrawn, since):
			applied = AppliedOlderIgnored
			return core.Token{}, false
		}
		applied = AppliedUnauthorized
		return p.cfg.Format.Encode(next), true
	})
	if err != nil {
		return "", err
	}
	p.Changed(tenant)
	return applied, nil
}

// baseOf reads tenant's record: the value a write decided now replaces,
// and is dated after (an exchange just made, an operator's call). ok is
// false when the store did not answer: the write then orders by its time.
func (p *Platform[T]) baseOf(ctx context.Context, tenant string) (base core.Token, ok bool) {
	t, err := p.durable.Get(ctx, p.RecordKey(tenant))
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		return core.Token{}, false
	}
	return t, true
}

// Import stores tenant's secret obtained elsewhere — another SDK's
// storage, a backup — as a new authorization dated now, replacing
// whatever the store holds when it is called (a withdrawal included: the
// operator says the tenant is authorized), and dated after it; if the
// store does not take it at once and it is held, it lands later only over
// what is older than its time. Errors are the store's (the write is then
// held, see Writer).
func (p *Platform[T]) Import(ctx context.Context, tenant, secret string) error {
	if tenant == "" || secret == "" {
		return fmt.Errorf("the %s's id and its %s are required", p.cfg.Format.Tenant, p.cfg.Format.Secret)
	}
	now := p.now().UnixMilli()
	base, baseKnown := p.baseOf(ctx, tenant)
	if _, err := p.writer.Write(ctx, p.cfg.RecordName, tenant, p.RecordKey(tenant), func(cur core.Token) (core.Token, bool) {
		next := Record{State: StateAuthorized, Since: now, Secret: secret}
		r, err := p.cfg.Format.Decode(cur)
		switch {
		case err != nil:
		case baseKnown && cur.Value == base.Value:
			next.Since = max(now, r.Since+1) // after what the store held when it was called
		case !r.ReplacedBy(StateAuthorized, now):
			return core.Token{}, false // a newer event was written meanwhile (this write was held)
		}
		return p.cfg.Format.Encode(next), true
	}); err != nil {
		return err
	}
	p.Changed(tenant)
	return nil
}

// Secret returns the secret the store holds for tenant now (its Value is
// the secret: keep it out of logs), or the Reauthorize error when none is
// stored or the tenant withdrew. A store error is returned as it is; a
// stored value that cannot be read wraps core.ErrCorrupt.
func (p *Platform[T]) Secret(ctx context.Context, tenant string) (core.Token, error) {
	t, err := p.durable.Get(ctx, p.RecordKey(tenant))
	switch {
	case errors.Is(err, core.ErrNotFound):
		return core.Token{}, p.missing(tenant)
	case err != nil:
		return core.Token{}, err
	}
	r, err := p.cfg.Format.Decode(t)
	switch {
	case err != nil:
		return core.Token{}, err
	case r.State == StateWithdrawn:
		return core.Token{}, p.withdrawn(tenant, r)
	}
	return core.Token{Value: r.Secret}, nil
}

func (p *Platform[T]) missing(tenant string) error {
	return p.cfg.Reauthorize(tenant, "no "+p.cfg.Format.Secret+" is stored (never authorized through this store, or lost)", nil, false)
}

// withdrawn is the Reauthorize error of a withdrawn tenant.
func (p *Platform[T]) withdrawn(tenant string, r Record) error {
	when := "at an unknown time"
	if r.Since > 0 {
		when = "at " + time.UnixMilli(r.Since).UTC().Format(time.RFC3339)
	}
	return p.cfg.Reauthorize(tenant, "the "+p.cfg.Format.Owner+" withdrew the authorization "+when, nil, true)
}

// Decode is a tenant Credential's Decode (core.CredentialConfig.Decode):
// the access token the record holds; a withdrawal is the Reauthorize error
// (withdrawn: served without a fetch), a value that is not a record wraps
// core.ErrCorrupt.
func (p *Platform[T]) Decode(tenant string, stored core.Token) (core.Token, error) {
	r, err := p.cfg.Format.Decode(stored)
	if err != nil {
		return core.Token{}, err
	}
	if r.State == StateWithdrawn {
		return core.Token{}, p.withdrawn(tenant, r)
	}
	return r.Served(), nil
}

// CheckAuthorized is a tenant Credential's Prepare: before the platform
// token is got and the lock taken, a record that is missing or withdrawn
// fails the refresh at once with its Reauthorize error. It only saves
// those calls: Fetch decides on the record it finds under the lock.
func (p *Platform[T]) CheckAuthorized(ctx context.Context, tenant string) error {
	_, err := p.Secret(ctx, tenant)
	if err != nil && p.cfg.IsReauthorize(err) {
		return err
	}
	return nil // a store error or a corrupt value: the refresh decides
}

// fetch is a tenant Credential's Fetch, run under the record key's lock
// with the record the store holds (r.Stored): Config.FetchAccess with the
// record's secret, then the next record — the new access token together with the
// secret the reply carried, which the store writes in one fenced write.
// A missing, unreadable or withdrawn record is the Reauthorize error.
func (p *Platform[T]) fetch(ctx context.Context, tenant string, r core.FetchRequest) (core.Token, error) {
	if r.Stored.Value == "" {
		return core.Token{}, p.missing(tenant)
	}
	rec, err := p.cfg.Format.Decode(r.Stored)
	switch {
	case err != nil:
		return core.Token{}, p.cfg.Reauthorize(tenant, "its stored authorization cannot be read", err, false)
	case rec.State == StateWithdrawn:
		return core.Token{}, p.withdrawn(tenant, rec)
	}
	tok, rotated, err := p.cfg.FetchAccess(ctx, tenant, rec.Secret, r)
	if err != nil && rec.Alt != "" && p.cfg.SecretRefused != nil && p.cfg.SecretRefused(err) {
		// Two exchanges crossed (see Authorize): WeChat honours the
		// other one.
		var aerr error
		if tok, rotated, aerr = p.cfg.FetchAccess(ctx, tenant, rec.Alt, r); aerr == nil {
			rec.Secret, err = rec.Alt, nil
		}
	}
	if err != nil {
		return core.Token{}, err
	}
	expires := tok.ExpiresAt
	if rec.Access == "" {
		// The tenant's first token: see firstExpiry.
		expires = firstExpiry(p.now(), tok.ExpiresAt.Sub(p.now()))
	}
	rec.Access, rec.Expires, rec.Alt = tok.Value, expires.UnixMilli(), ""
	if rotated != "" {
		rec.Secret = rotated
	}
	return p.cfg.Format.Encode(rec), nil
}
