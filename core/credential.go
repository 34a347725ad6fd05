package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Credential keeps one credential valid through a TokenStore: an
// access_token, a ticket, a WeCom app's token, or a kind of your own. It
// is the engine every credential of this module runs on — Conf is three of
// them (access_token, jsapi_ticket, wx_card ticket), wecom.App three more —
// so every kind gets the same guarantees across a fleet:
//
//   - Hot path: a valid in-process copy is returned with no I/O, no lock
//     and no allocation (one atomic load and a clock read).
//   - Refresh ahead: once the copy is within Policy.RefreshAhead (and its
//     RefreshJitter, the same point in every process) of its expiry, one
//     background refresh starts and callers keep getting the still-valid
//     copy (stale-while-revalidate) for up to 4 minutes; a call after that
//     waits for the store's newer token, or the refresh (another process
//     has most likely replaced it, and WeChat honours a superseded classic
//     token for 5 minutes only); if that refresh fails (the store down,
//     WeChat failing) the copy is served while usable, and retried in the
//     background every 15 s, as before the grace ended.
//   - Cold path: with no valid copy, the store is read; if it holds a valid
//     token that one is adopted, otherwise TokenStore.Refresh is called
//     with the stale value, under the store's lock, fenced. One refresh is
//     in flight per Credential at a time; every other caller waits for it
//     with its own ctx. Across a fleet, one fetch per refresh, as long as
//     the lock holder's fetch ends within the store's lease and the refresh
//     within Policy.RefreshTimeout: a holder stalled past its lease loses
//     the lock and the next one may fetch again (its write is fenced, its
//     token written back), and a refresh that waits out RefreshTimeout
//     counts the store as down (see Policy.FetchWithoutStore).
//   - Rejection: Refresh(ctx, rejected) is a compare-and-refresh, so a
//     fleet that sees the same token rejected makes one fetch; if a normal
//     fetch hands the rejected token back and the kind is Forcible, it
//     escalates once to a forced fetch, under the lock.
//   - Limits: rejection-triggered fetches, forced fetches and fetches after
//     a configuration or quota error are limited (Policy); a limit returns a
//     *LimitError without calling WeChat.
//   - Events: every fetch, adoption, rejection and failure is logged
//     (Event* constants) with "credential" (Name), "platform" (Platform)
//     and "key" (Key).
//   - Write-back: a token a fetch returned whose write the store did not
//     confirm (the lock lost, the write failed or not answered within
//     RefreshTimeout) is served to the callers all the same and written
//     back by a compare-and-refresh from the value it replaced, unless the
//     store holds a newer one (EventWrittenBack).
//
// Build one with NewCredential. A Credential is safe for concurrent use
// and holds no goroutine or timer while idle (a background refresh runs
// only while one is due, a background write-back only while a fetched
// token is not yet in the store).
type Credential struct {
	*credKind // the configuration, shared by the Credentials of one CredentialKind

	key     string
	fetch   func(context.Context, FetchRequest) (Token, error)
	prepare func(context.Context) (any, error)
	decode  func(Token) (Token, error) // nil: the stored value is the token served
	initial *Token                     // nil for none
	ledger  *LedgerConfig              // the fetch ledger's settings; nil when off

	ledgerW atomic.Pointer[ledgerWriter] // the ledger's queue and writer, from the first record

	cur         atomic.Pointer[held] // the in-process copy, nil until first load
	invalidated atomic.Uint64        // Invalidate calls: a flight that saw one begin does not keep its token
	seeded      atomic.Bool          // initial value handled
	bgRunning   atomic.Bool          // a background refresh is in flight
	shortLived  atomic.Bool          // the last fetch brought a token living no longer than RefreshAhead
	bgNotTill   atomic.Int64         // elapsed() before which no background refresh starts

	lim atomic.Pointer[limits] // made by the first fetch (limiter): most credentials are never limited

	mu     sync.Mutex
	flight *flight    // the refresh in flight, nil if none
	cold   *coldState // the store outage and write-back state, guarded by mu; nil until first needed (coldNow)
}

// credKind is what the Credentials of one CredentialKind share: set by
// NewCredentialKind, never written after.
type credKind struct {
	name         string
	platform     Platform
	store        TokenStore
	forcible     bool
	needs        *Credential
	rejects      func(error) bool
	policy       Policy
	logger       *slog.Logger
	now          func() time.Time // nil: the system clock
	base         time.Time        // the clock's reading at NewCredentialKind; hot-path deadlines are offsets from it
	ledger       *LedgerConfig    // nil: no ledger
	wbMin, wbMax time.Duration    // bounds of the background write-back's back-off
}

// coldState is a Credential's state of the rare paths — a store outage, a
// token held for the write-back — made the first time one is taken, so
// that the thousands of credentials of a vendor platform that never see
// one do not carry it. Guarded by the Credential's mu.
type coldState struct {
	// storeDown is the error of the last flight whose store failed (it
	// wraps ErrStoreUnavailable), nil once a flight's store answered:
	// while it is set, callers do not wait for the store (see refresh).
	storeDown     error
	outageFetched bool  // a fetch without the store was made (Policy.FetchWithoutStore)
	outageAt      int64 // elapsed() of the last one
	// The write-back (see holdPending): pending is a token a fetch
	// returned that the store has not been seen to hold, nil if none;
	// wbRunning says a background write-back goroutine runs, and wbDone is
	// closed when it ends. wbKick (buffered, never closed, made with the
	// first loop) wakes it.
	pending   *pendingWrite
	wbRunning bool
	wbDone    chan struct{}
	wbKick    chan struct{}
}

// coldNow returns cr's cold state, making it on first use. cr.mu is held.
func (cr *Credential) coldNow() *coldState {
	if cr.cold == nil {
		cr.cold = &coldState{}
	}
	return cr.cold
}

// limiter returns cr's limits, making them on first use.
func (cr *Credential) limiter() *limits {
	if l := cr.lim.Load(); l != nil {
		return l
	}
	cr.lim.CompareAndSwap(nil, new(limits))
	return cr.lim.Load()
}

// pendingWrite is a token a fetch returned — WeChat issued it, so it may
// already have invalidated the fleet's previous token (the classic token,
// tickets) or carry a rotated refresh token (a Decode stored form) — whose
// fenced write has not been seen to land. It is served all the same and
// written back by a compare-and-refresh from replaced until it lands, is
// superseded by another value in the store, or expires.
type pendingWrite struct {
	raw      Token       // what Fetch returned: the value to write (a stored form with Decode)
	served   Token       // the token served from raw
	replaced string      // the stored value the fetch replaced ("" for none): the write-back's stale
	resolved atomic.Bool // landed or superseded: nothing more to do
}

// Bounds of the background write-back's back-off (see holdPending).
const (
	writeBackMinBackoff = time.Second
	writeBackMaxBackoff = time.Minute
)

// CredentialConfig describes one credential for NewCredential. A new kind
// is its Key, its Fetch and, if its API says "rejected" with other codes
// than the Official Account's, its Rejects.
type CredentialConfig struct {
	// Name is the credential's kind in errors, events ("credential") and
	// LimitError.Credential, in WeChat's terms: "access_token",
	// "jsapi_ticket", "agent_config_ticket". Required.
	Name string
	// Platform is the kind of account the credential belongs to, the
	// "platform" attribute of its events (see Platform): keep it to a few
	// values, as metrics are split by it. Default PlatformCustom.
	Platform Platform
	// Key is the store key, unique per credential: it should hold the
	// platform, the account's id and the kind, never a secret, e.g.
	// "wechatconf/wx1234/access_token". Required.
	Key string
	// Store keeps the credential and serialises its refresh across the
	// fleet; nil means a new MemoryStore (one process).
	Store TokenStore
	// Fetch makes one call to WeChat that issues the credential. It runs
	// under the store's lock, within the lock's lease (its ctx ends with
	// it) and Policy.RefreshTimeout. It must return a non-empty Value and
	// the ExpiresAt WeChat announced (counted from before the request), or
	// an error; an *APIError (see Codes) lets the limits and the rejection
	// handling tell errors apart. Required.
	Fetch func(ctx context.Context, r FetchRequest) (Token, error)
	// Forcible says Fetch with r.Force issues a brand-new credential and
	// invalidates the current one at once (stable_token's force_refresh),
	// while a normal Fetch may hand back the current one. Only then does a
	// rejected credential escalate to a forced fetch, and ForceRefresh
	// differ from Refresh.
	Forcible bool
	// Needs is the credential Fetch calls WeChat with (a ticket needs an
	// access_token), or nil. Its valid token is got before this one's store
	// lock is taken — no store lock is held while waiting for another — and
	// passed in FetchRequest.Needed; if Fetch fails with an error Needs
	// rejects, Needs is refreshed (compare-and-refresh) and Fetch is tried
	// once more.
	Needs *Credential
	// Prepare, if set, runs before the store lock is taken, with no lock
	// held, whenever a fetch may be needed: it reads from the store what
	// Fetch needs besides Needs (a component_verify_ticket, an
	// authorizer_refresh_token), so that no store call is made while the
	// lock is held (one pooled connection per lock holder, never two). Fetch
	// gets its result in FetchRequest.Prepared. Its error fails the refresh
	// without a fetch.
	Prepare func(ctx context.Context) (any, error)
	// Decode, if set, says the value stored under Key is a stored form that
	// holds more than the token served (an Open Platform authorizer's record:
	// its authorizer_access_token together with its durable
	// authorizer_refresh_token, in one fenced value). Fetch then returns the
	// stored form (with a zero ExpiresAt: durable, never expired by a store),
	// the store compares and fences it whole, and Decode gives the token served
	// (Value, ExpiresAt) from it. Decode must be a pure function of its
	// argument (it may be called more than once on one value, on any
	// goroutine, and never makes a store call).
	//
	// Everything the engine judges by — whether a token is usable, its
	// ExpiresAt in events and deadlines, whether a fetch handed back the
	// token being replaced, and the rejected or stale value passed to
	// Refresh and ForceRefresh — is the token served (what callers saw);
	// the stale value a Store.Refresh compares is always the stored form.
	// Decode's result:
	//   - a token with a Value: served while usable;
	//   - an empty Value and a nil error: nothing to serve (a placeholder):
	//     the credential is refreshed;
	//   - an error wrapping ErrCorrupt: the stored form counts as absent and
	//     is replaced by a fetch (EventStoreError, op "decode"), which gets
	//     it in FetchRequest.Stored all the same;
	//   - any other error (one matching ErrRevoked: the grant was
	//     withdrawn): the refresh fails with it, wrapped, without a fetch;
	//     with ErrRevoked the in-process copy is dropped too.
	//
	// A stored form that Fetch returns must decode to a token with a Value
	// (else the fetch fails and nothing is written). Not allowed with
	// Initial or Policy.FetchWithoutStore: a stored form is only ever written
	// through the store's lock from the one it replaces.
	Decode func(stored Token) (Token, error)
	// Rejects reports whether an error of a call made with this
	// credential's token says WeChat rejected the token. nil means
	// IsInvalidCredential, which follows the Codes of the *APIError. For an
	// API that says "rejected" otherwise, the error it is asked about is a
	// *ReplyError with the StatusCode (e.g. HTTP 401 with no errcode).
	Rejects func(error) bool
	// Initial is a value to start from (the seed's way 1): written to the
	// store on first use unless the store holds something newer.
	Initial Token
	// Policy is the credential's timing and limits; its zero fields take
	// their defaults.
	Policy Policy
	// Logger receives the credential's events; nil sends those of level
	// Warn and above to slog.Default() and drops the rest.
	Logger *slog.Logger
	// Now is the clock expiry is computed and judged by; nil means the
	// system clock (read on the hot path through the monotonic clock only).
	Now func() time.Time
	// Ledger, if set, records every fetch in the fleet's fetch ledger
	// under LedgerKey(Key) (see Ledger and ReadLedger): written after the
	// token, off the callers' path. nil: no ledger.
	Ledger *LedgerConfig
}

// FetchRequest is what a Credential asks of its Fetch.
type FetchRequest struct {
	// Force asks for a brand-new credential that invalidates the current
	// one (only for a CredentialConfig.Forcible kind).
	Force bool
	// Needed is a valid token of CredentialConfig.Needs, or the zero Token
	// if there is none.
	Needed Token
	// Prepared is what CredentialConfig.Prepare returned, nil without one.
	// Durable state a fetch moves forward (a rotated refresh token) is not
	// written from here: it belongs in the stored form Fetch returns (see
	// CredentialConfig.Decode), in the same fenced write as the token.
	Prepared any
	// Stored is the stored value the Refresh call replaces — what the store
	// holds under Key while Fetch runs under its lock — as the store keeps
	// it (with CredentialConfig.Decode, the stored form, not the token
	// served): the zero Token when nothing is stored; possibly a value that
	// Decode refused with ErrCorrupt, for Fetch to decide what to do with.
	// One exception: while this process holds a value an earlier fetch
	// returned whose write has not landed yet (the write-back, see the
	// package doc), Stored is that value — it is the newer one (a rotated
	// refresh token is the one WeChat honours) — and what Fetch returns
	// replaces both.
	Stored Token
}

// Policy is a credential's timing and limits: the Config fields of the
// same names, with the same defaults and rules (see Config and the package
// doc, "Time" and "Limits"). The zero Policy is the defaults. Limits are
// counted per Credential (per process); across a fleet the store's
// compare-and-refresh makes one instance the caller per stale token.
type Policy struct {
	// RefreshAhead: a background refresh starts this long before
	// ExpiresAt. Default 5 minutes; at least ExpiryMargin.
	RefreshAhead time.Duration
	// ExpiryMargin: a token is not served this long before ExpiresAt.
	// Default 1 minute; shorter than Handover when Handover is set.
	ExpiryMargin time.Duration
	// RefreshTimeout bounds one refresh (lock wait and fetch). Default 30 s.
	RefreshTimeout time.Duration
	// Handover is how long before expiry the issuer starts handing out the
	// next token; before that, a normal fetch returns the same one.
	//   - 0: every fetch issues a new token (classic /cgi-bin/token,
	//     tickets), or it is not known.
	//   - StableTokenHandover for stable_token: the refresh ahead starts no
	//     earlier than 30 s inside it, and ExpiryMargin must be shorter.
	//   - HandoverAtExpiry (negative) for an issuer that hands back the
	//     current token until it has expired (WeCom's gettoken): refreshing
	//     ahead would only bring the same token back, so the token is served
	//     to its ExpiresAt — no refresh ahead, no expiry margin — and
	//     fetched once then; a caller that uses it in its last instant gets
	//     a rejection, which Do and the Transport replace once per fleet.
	Handover time.Duration
	// RefreshJitter spreads refreshes ahead: each token's starts up to this
	// much earlier than RefreshAhead (a point already past when the token
	// is adopted — a short-lived token — is moved to half its remaining
	// life), at a point drawn from the credential's Key and the token's
	// value — the same in every process that holds the token, whenever it
	// adopted it, so the fleet refreshes
	// it once, when each process would — so that many credentials fetched
	// together (thousands of Open Platform authorizers) do not all come due
	// in the same second. Default 0.
	RefreshJitter time.Duration
	// RejectedRefreshInterval: least time between two rejection-triggered
	// fetches for the same rejected token value (a loop on one token, e.g.
	// a fetch that hands it back). The rejection of another, newer token is
	// never held back; an API that rejects every token is bounded by the
	// store's compare-and-refresh (one fetch per new token per fleet).
	// Default DefaultRejectedRefreshInterval; negative disables.
	RejectedRefreshInterval time.Duration
	// ErrorBackoff: no fetch from the same input (the stored value a
	// refresh starts from, and a ticket Prepare read: a fetch from a
	// re-authorization written meanwhile, or from a newly pushed ticket,
	// is not held back) this long after a configuration or quota
	// error, or a 200 reply that is not a token (a *ReplyError: expires_in
	// 0, negative or missing, no token, invalid JSON). Counted per
	// Credential. Default DefaultErrorBackoff; negative disables.
	ErrorBackoff time.Duration
	// ForceRefreshInterval: least time between two forced fetches. Default
	// DefaultForceRefreshInterval.
	ForceRefreshInterval time.Duration
	// ForceRefreshDailyLimit: forced fetches per Beijing day. Default
	// DefaultForceRefreshDailyLimit; negative never forces.
	ForceRefreshDailyLimit int
	// FetchWithoutStore says the issuer's normal fetch does not invalidate
	// other holders' tokens (stable_token's normal mode; WeCom's gettoken):
	// when the store fails (a refresh ends in an error wrapping
	// ErrStoreUnavailable), this process fetches without the lock — a
	// normal fetch, never a forced one — at most once per
	// StoreOutageInterval, keeps the token in memory, logs
	// EventStoreOutage, and holds it for the write-back: a
	// compare-and-refresh from the value it replaced, retried in the
	// background and at each refresh until the store answers
	// (EventWrittenBack); any other value the store holds by then wins.
	// Without it (classic /cgi-bin/token, tickets: every fetch invalidates
	// the fleet's token) a store outage fetches nothing: the held token is
	// served until its ExpiryMargin, then the ErrStoreUnavailable error is
	// returned. Not allowed with CredentialConfig.Decode.
	FetchWithoutStore bool
	// StoreOutageInterval: least time between two fetches without the
	// store (FetchWithoutStore); inside it a held, still-usable token is
	// served, or the ErrStoreUnavailable error returned. Default
	// DefaultStoreOutageInterval.
	StoreOutageInterval time.Duration
}

// DefaultStoreOutageInterval is the default Policy.StoreOutageInterval.
const DefaultStoreOutageInterval = 30 * time.Second

// ErrStoreUnavailable is wrapped, together with the store's own error, by
// the error of a refresh that failed because the TokenStore failed (its Get
// and Refresh returned an error other than ErrNotFound, ErrCorrupt or
// ErrLockLost before any fetch, or did not answer within RefreshTimeout).
// Test for it with errors.Is. See Policy.FetchWithoutStore for what a
// credential does while its store is down.
var ErrStoreUnavailable = errors.New("the token store is unavailable")

// unavailableError is an error wrapping ErrStoreUnavailable and the error
// of the store operation op ("get" or "refresh").
type unavailableError struct {
	op  string
	err error
}

func (e *unavailableError) Error() string {
	return ErrStoreUnavailable.Error() + ": " + e.err.Error()
}

func (e *unavailableError) Unwrap() []error { return []error{ErrStoreUnavailable, e.err} }

// HandoverAtExpiry is the Policy.Handover of an issuer that hands back the
// current token until it has expired (WeCom's /cgi-bin/gettoken: 有效期内重复
// 获取返回相同结果，过期后获取会返回新的access_token).
const HandoverAtExpiry time.Duration = -1

// normalize fills in p's defaults and checks its rules.
func (p *Policy) normalize() error {
	setDefault(&p.RefreshAhead, 5*time.Minute)
	setDefault(&p.ExpiryMargin, time.Minute)
	setDefault(&p.RefreshTimeout, 30*time.Second)
	setDefault(&p.ForceRefreshInterval, DefaultForceRefreshInterval)
	setDefault(&p.StoreOutageInterval, DefaultStoreOutageInterval)
	if p.ForceRefreshDailyLimit == 0 {
		p.ForceRefreshDailyLimit = DefaultForceRefreshDailyLimit
	}
	if p.RejectedRefreshInterval == 0 {
		p.RejectedRefreshInterval = DefaultRejectedRefreshInterval
	}
	if p.ErrorBackoff == 0 {
		p.ErrorBackoff = DefaultErrorBackoff
	}
	switch {
	case p.RefreshAhead < p.ExpiryMargin:
		return fmt.Errorf("wechatconf: RefreshAhead (%v) is shorter than ExpiryMargin (%v): a token would be served inside the margin before any refresh starts; make RefreshAhead at least ExpiryMargin", p.RefreshAhead, p.ExpiryMargin)
	case p.Handover > 0 && p.ExpiryMargin >= p.Handover:
		return fmt.Errorf("wechatconf: ExpiryMargin (%v) is not shorter than stable_token's %v hand-over: WeChat returns the same token until its last %v, so a token would stop being served before a new one can be had; use an ExpiryMargin under %v or ClassicToken", p.ExpiryMargin, p.Handover, p.Handover, p.Handover)
	}
	return nil
}

// NewCredential checks cfg and returns its Credential. It does no I/O.
func NewCredential(cfg CredentialConfig) (*Credential, error) {
	one := CredentialConfig{Key: cfg.Key, Fetch: cfg.Fetch, Prepare: cfg.Prepare, Decode: cfg.Decode, Initial: cfg.Initial}
	cfg.Key, cfg.Fetch, cfg.Prepare, cfg.Decode, cfg.Initial = "", nil, nil, nil, Token{}
	k, err := NewCredentialKind(cfg)
	if err != nil {
		return nil, err
	}
	return k.New(one)
}

// CredentialKind is a configuration that many Credentials share: every
// field of CredentialConfig but the five that are each credential's own —
// Key, Fetch, Prepare, Decode and Initial. A platform with thousands of
// tenants (an Open Platform component's authorizers, a WeCom vendor's
// corps: packages openplatform and wecomvendor) makes one kind per
// credential name and one Credential per tenant with New, which then
// costs about 150 bytes beside its token instead of a copy of the whole
// configuration. A CredentialKind is immutable and safe for concurrent
// use.
type CredentialKind struct{ k *credKind }

// NewCredentialKind checks cfg and returns its kind: Name is required;
// Key, Fetch, Prepare, Decode and Initial must be left empty (they are
// given to New); the defaults are NewCredential's. It does no I/O.
func NewCredentialKind(cfg CredentialConfig) (*CredentialKind, error) {
	switch {
	case cfg.Name == "":
		return nil, errors.New("wechatconf: CredentialConfig.Name is required")
	case cfg.Key != "" || cfg.Fetch != nil || cfg.Prepare != nil || cfg.Decode != nil || cfg.Initial != (Token{}):
		return nil, fmt.Errorf("wechatconf: %s: NewCredentialKind: Key, Fetch, Prepare, Decode and Initial are each credential's: give them to CredentialKind.New", cfg.Name)
	}
	if err := cfg.Policy.normalize(); err != nil {
		return nil, err
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	if cfg.Logger == nil {
		cfg.Logger = defaultLogger
	}
	if cfg.Rejects == nil {
		cfg.Rejects = IsInvalidCredential
	}
	if cfg.Platform == "" {
		cfg.Platform = PlatformCustom
	}
	k := &credKind{
		name: cfg.Name, platform: cfg.Platform, store: cfg.Store, forcible: cfg.Forcible,
		needs: cfg.Needs, rejects: cfg.Rejects, policy: cfg.Policy, logger: cfg.Logger, now: cfg.Now,
		ledger: ledgerInstance(cfg.Ledger), wbMin: writeBackMinBackoff, wbMax: writeBackMaxBackoff,
	}
	k.base = k.clock()
	return &CredentialKind{k: k}, nil
}

// Name returns the kind's credential name, CredentialConfig.Name.
func (k *CredentialKind) Name() string { return k.k.name }

// New returns a Credential of kind k: cfg gives its Key and Fetch
// (required) and, if the credential needs them, Prepare, Decode and
// Initial, with the meanings CredentialConfig gives them; every other
// field of cfg must be left zero (it is the kind's). It does no I/O.
func (k *CredentialKind) New(cfg CredentialConfig) (*Credential, error) {
	name := k.k.name
	switch {
	case cfg.Key == "":
		return nil, fmt.Errorf("wechatconf: %s: CredentialConfig.Key is required", name)
	case cfg.Fetch == nil:
		return nil, fmt.Errorf("wechatconf: %s: CredentialConfig.Fetch is required", name)
	case cfg.Name != "" || cfg.Platform != "" || cfg.Store != nil || cfg.Forcible || cfg.Needs != nil || cfg.Rejects != nil ||
		cfg.Policy != (Policy{}) || cfg.Logger != nil || cfg.Now != nil || cfg.Ledger != nil:
		return nil, fmt.Errorf("wechatconf: %s: CredentialKind.New takes Key, Fetch, Prepare, Decode and Initial only: the other fields are the kind's", name)
	case cfg.Decode != nil && k.k.policy.FetchWithoutStore:
		return nil, fmt.Errorf("wechatconf: %s: Policy.FetchWithoutStore cannot be set with a Decode: a stored form must be fetched under the store's lock from the one it replaces", name)
	case cfg.Decode != nil && cfg.Initial.Value != "":
		return nil, fmt.Errorf("wechatconf: %s: CredentialConfig.Initial cannot be set with a Decode: a stored form is only written through the store's lock", name)
	}
	cr := &Credential{credKind: k.k, key: cfg.Key, fetch: cfg.Fetch, prepare: cfg.Prepare, decode: cfg.Decode, ledger: ledgerFor(k.k.ledger, cfg.Key)}
	if cfg.Initial.Value != "" {
		init := cfg.Initial
		cr.initial = &init
	}
	return cr, nil
}

// ErrRevoked is wrapped (or matched with errors.Is) by a Fetch or Prepare
// error that says the grant behind the credential was withdrawn — an Open
// Platform merchant withdrew its authorization — so that the token held
// is dead too: the Credential then stops serving its in-process copy, and
// every Get reports the error (from the store and Prepare, without a
// fetch) until the grant is restored.
var ErrRevoked = errors.New("the grant behind the credential was withdrawn")

// Invalidate drops the in-process copy: the next Get reads the store (and
// refreshes if the store holds nothing usable). Call it when the store was
// changed behind the Credential's back (a re-authorization, a restored
// backup); other processes notice by the store's compare-and-refresh when
// WeChat rejects their copy.
//
// A refresh in flight when Invalidate is called still answers the callers
// waiting for it (they asked before), but its token is not kept: the next
// Get reads the store.
func (cr *Credential) Invalidate() {
	cr.invalidated.Add(1)
	cr.cur.Store(nil)
}

// Expiry returns the ExpiresAt of the token held in memory, and false when
// none is held: what an observer needs to report a token's remaining life
// (contrib/otel's gauge) without the token itself.
func (cr *Credential) Expiry() (time.Time, bool) {
	if h := cr.cur.Load(); h != nil {
		return h.ExpiresAt, true
	}
	return time.Time{}, false
}

// Name returns the credential's kind, CredentialConfig.Name.
func (cr *Credential) Name() string { return cr.name }

// Platform returns the kind of account the credential belongs to,
// CredentialConfig.Platform (PlatformCustom if it was left empty).
func (cr *Credential) Platform() Platform { return cr.platform }

// Key returns the credential's store key, CredentialConfig.Key.
func (cr *Credential) Key() string { return cr.key }

// String describes cr by its name, platform and key, never a token: a
// Credential holds tokens (its Initial, the flight's stale and fetched
// ones), which fmt would otherwise print through its pointer fields (%s
// dereferences them).
func (cr *Credential) String() string {
	return fmt.Sprintf("core.Credential{Name: %q, Platform: %q, Key: %q}", cr.name, cr.platform, cr.key)
}

// GoString is String, so that %#v shows no token either.
func (cr *Credential) GoString() string { return cr.String() }

// Get returns a valid token and its expiry, from memory (the hot path),
// the store, or a fetch, as the type's doc says. Errors are typed: a
// *LimitError, an *APIError or *ReplyError of the fetch, a store error, or
// ctx's error, each prefixed with the credential's name.
//
// The hot path is this function alone: a fresh copy is returned at once,
// anything else goes to getSlow.
func (cr *Credential) Get(ctx context.Context) (Token, error) {
	if h := cr.cur.Load(); h != nil && cr.elapsed() < h.refreshAt {
		return h.Token, nil
	}
	return cr.getSlow(ctx)
}

// Refresh replaces a token that WeChat rejected, but only if the store
// still holds rejected: if another goroutine, process or machine already
// replaced it, the newer token is returned and WeChat is not called. A
// Forcible kind whose normal fetch hands the rejected token back escalates
// once to a forced fetch. Refreshes that rejections trigger are limited
// (Policy.RejectedRefreshInterval).
func (cr *Credential) Refresh(ctx context.Context, rejected string) (Token, error) {
	return cr.refresh(ctx, rejected, reasonRejected, nil)
}

// ForceRefresh replaces the token with a brand-new one (a forced fetch for
// a Forcible kind, a normal fetch otherwise), to rotate a leaked token.
// stale is the token to replace ("" means the one held now); if the store
// already holds another, that one is returned and WeChat is not called.
// Forced fetches are limited (Policy.ForceRefreshInterval,
// ForceRefreshDailyLimit).
func (cr *Credential) ForceRefresh(ctx context.Context, stale string) (Token, error) {
	if stale == "" {
		cur, err := cr.Get(ctx)
		if err != nil {
			return Token{}, err
		}
		stale = cur.Value
	}
	return cr.refresh(ctx, stale, reasonForced, nil)
}

// clock reads the kind's clock (a Credential's, by promotion).
func (k *credKind) clock() time.Time {
	if k.now != nil {
		return k.now()
	}
	return time.Now()
}

// elapsed returns the clock's reading as an offset from cr.base, the unit
// of the hot path's deadlines. On the system clock it reads only the
// monotonic clock (time.Since), which costs half of time.Now.
func (cr *Credential) elapsed() int64 {
	if cr.now != nil {
		return int64(cr.now().Sub(cr.base))
	}
	return int64(time.Since(cr.base))
}

// current returns the in-process copy's value, "" if none.
func (cr *Credential) current() string {
	if h := cr.cur.Load(); h != nil {
		return h.Value
	}
	return ""
}

// held is the in-process copy of a token with its two deadlines
// precomputed as elapsed() offsets.
type held struct {
	Token
	refreshAt int64 // ExpiresAt - RefreshAhead: background refresh from here
	expireAt  int64 // ExpiresAt - ExpiryMargin: not served from here
}

// flight is one refresh of a credential, shared by every caller that asks
// while it runs.
type flight struct {
	stale string // the value to replace
	why   reason
	cause error // the rejection behind a reasonRejected flight, if known
	// toExpiry: tok was handed back inside its margin, to be served until
	// its ExpiresAt (set by the load, read once done is closed).
	toExpiry bool
	// inStore is the store call the load is waiting for (storeGet,
	// storeRefresh before its fetch runs), or 0: a RefreshTimeout that
	// expires during one is a store outage.
	inStore atomic.Int32
	// issued is the token the flight's fetch returned while the store has
	// not yet answered for its write: whoever takes it (Swap) — the load
	// when Store.Refresh returns, or run when RefreshTimeout ends the
	// flight first — sees that it is served and, unless the store
	// confirms it, written back.
	issued atomic.Pointer[pendingWrite]
	done   chan struct{} // closed when tok and err are set
	tok    Token
	err    error
}

// bgRetryInterval is how long the hot path waits before starting another
// background refresh after one failed or brought no newer token.
const bgRetryInterval = 15 * time.Second

// getSlow serves a copy inside its refresh-ahead window (starting the
// background refresh) and refreshes a missing or expired one.
func (cr *Credential) getSlow(ctx context.Context) (Token, error) {
	h := cr.cur.Load()
	if h == nil {
		return cr.refresh(ctx, "", reasonExpiry, nil)
	}
	now := cr.elapsed()
	switch {
	case now < h.refreshAt:
		return h.Token, nil
	case now < h.expireAt && (now < h.refreshAt+int64(staleServeGrace) || now < cr.bgNotTill.Load() || cr.storeKnownDown()):
		// Inside the grace; or past it, but a refresh failed or brought
		// no newer token less than bgRetryInterval ago, or the store is
		// known down (nobody waits for it, the outage rule): the held
		// copy, still usable, while the background refresh retries.
		cr.refreshAhead(h, now)
		return h.Token, nil
	}
	// Expired, or long past its refresh point: another process has most
	// likely replaced it, and WeChat may have retired it (see
	// staleServeGrace). The refresh reads the store first: the newer
	// token, if any, is adopted with no fetch.
	tok, err := cr.refresh(ctx, h.Value, reasonExpiry, nil)
	if err == nil && tok.Value == h.Value {
		// Nothing newer (a stable token before its hand-over, a store
		// that kept it): as for a background refresh that brought none,
		// the next is in bgRetryInterval, not at every call.
		cr.bgNotTill.Store(cr.elapsed() + int64(bgRetryInterval))
	}
	if err != nil && now < h.expireAt && ctx.Err() == nil && cr.cur.Load() == h {
		// The store or WeChat failed (not a withdrawal, which drops h, nor
		// an Invalidate): nothing newer was seen, and the held copy is
		// still usable — served under the outage rules and the fetch's
		// failure alike, as inside the grace; the next refresh is in
		// bgRetryInterval, in the background.
		if el := cr.elapsed(); el < h.expireAt {
			cr.bgNotTill.Store(el + int64(bgRetryInterval))
			return h.Token, nil
		}
	}
	return tok, err
}

// storeKnownDown reports whether the last flight's store failed and no
// fetch without the store is due: a caller is then served the held copy
// rather than wait for a store known to be down (see refresh).
func (cr *Credential) storeKnownDown() bool {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.storeDownErr() != nil && !cr.outageFetchDue()
}

// staleServeGrace is how long after its refresh-ahead point a token is
// still served while a background refresh replaces it. Every process
// holding a token has the same refresh point (jitterOf), and the fleet's
// first refresh of it is at or after that point; WeChat honours a
// superseded classic token (an authorizer's, a ticket) for 5 minutes
// after the fetch that replaced it. So a copy served within this grace,
// a minute short of those 5, is valid at WeChat; after it, a caller waits
// for the store's newer token (or for the refresh) instead of being
// served one WeChat may reject.
const staleServeGrace = 4 * time.Minute

// refreshAhead starts one background refresh of h unless one is running or
// the last one was too recent.
func (cr *Credential) refreshAhead(h *held, now int64) {
	if now < cr.bgNotTill.Load() || !cr.bgRunning.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer cr.bgRunning.Store(false)
		t, err := cr.refresh(context.Background(), h.Value, reasonExpiry, nil)
		switch {
		case err != nil:
			cr.logEvent(slog.LevelWarn, EventBackgroundRefreshFailed, slog.Time("expires_at", h.ExpiresAt), slog.String("error", err.Error()))
		case t.Value == h.Value:
			cr.logEvent(slog.LevelDebug, EventNoNewer, slog.Time("expires_at", t.ExpiresAt))
		default:
			return
		}
		cr.bgNotTill.Store(cr.elapsed() + int64(bgRetryInterval))
	}()
}

// rejected logs that a call to path rejected token (err is the
// rejection) and replaces the token by a compare-and-refresh; the callers
// that saw a rejection (API.Do, the transport, a dependent's load) share it.
func (cr *Credential) rejected(ctx context.Context, path, token string, err error) (Token, error) {
	attrs := []slog.Attr{slog.String("path", path)}
	if e := asAPIError(err); e != nil {
		attrs = append(attrs, slog.Int("errcode", e.Code))
	}
	cr.logEvent(slog.LevelInfo, EventRejected, attrs...)
	return cr.refresh(ctx, token, reasonRejected, err)
}

// refresh returns a valid token other than stale, joining the refresh in
// flight or starting one. The refresh runs detached from ctx (bounded by
// Policy.RefreshTimeout) so that a caller that gives up does not fail the
// others; ctx only bounds this caller's wait. why and cause say what
// started it (see reason).
func (cr *Credential) refresh(ctx context.Context, stale string, why reason, cause error) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, wrapErr(err, cr.name)
	}
	for joined := false; ; joined = true {
		cr.mu.Lock()
		if h := cr.cur.Load(); h != nil && h.Value != stale && cr.elapsed() < h.expireAt {
			cr.mu.Unlock()
			return h.Token, nil // replaced while we were on our way here
		}
		f := cr.flight
		if f == nil {
			f = &flight{stale: stale, why: why, cause: cause, done: make(chan struct{})}
			cr.flight = f
			go cr.run(context.WithoutCancel(ctx), f)
		} else if down := cr.storeDownErr(); down != nil && !cr.outageFetchDue() {
			// The store failed the last flight, and the one running
			// probes it again: its starter waits for the answer, but
			// nobody else waits for a store known to be down (a hung
			// store would hold every caller for RefreshTimeout). What
			// the flight would serve is served now: the held token while
			// it is usable (not for a rejection of it), else the store's
			// error. A probe the store answers ends it.
			cr.mu.Unlock()
			if tok, ok := cr.heldInOutage(stale, why, cr.elapsed()); ok {
				return tok, nil
			}
			return Token{}, down
		}
		cr.mu.Unlock()

		select {
		case <-f.done:
		case <-ctx.Done():
			return Token{}, wrapErr(ctx.Err(), cr.name)
		}
		// A flight started for another stale value, or for a weaker reason
		// (an expiry refresh cannot force), can bring back the very token
		// this caller saw rejected: then start one of our own, once.
		if f.err == nil && stale != "" && f.tok.Value == stale && (f.stale != stale || f.why < why) && !joined {
			continue
		}
		return f.tok, f.err
	}
}

// run performs flight f and publishes its result. The flight ends at
// Policy.RefreshTimeout whatever the store does: a load still running then
// is left to finish in the background (its ctx is cancelled; what it writes
// to the store is read by the next refresh). If its fetch had returned a
// token whose write the store had not yet confirmed, that token is served
// and held for the write-back (holdPending): a token WeChat issued is never
// wasted.
func (cr *Credential) run(parent context.Context, f *flight) {
	gen := cr.invalidated.Load()
	ctx, cancel := context.WithTimeout(parent, cr.policy.RefreshTimeout)
	defer cancel()
	type result struct {
		tok Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := cr.load(ctx, f)
		done <- result{tok, err}
	}()
	var r result
	toExpiry := false
	select {
	case r = <-done:
		toExpiry = f.toExpiry
	case <-ctx.Done():
		r.err = cr.noAnswer(ctx.Err())
		if p := f.issued.Swap(nil); p != nil {
			// The fetch returned a token and the store has not answered
			// for its write: WeChat issued it (maybe invalidating the
			// fleet's previous one), so the callers get it, and it is
			// written back — the write goes on in the background, and
			// the write-back's compare sees whether it landed.
			cr.storeError("refresh", r.err)
			cr.holdPending(p, true)
			if r.tok, toExpiry, r.err = cr.serveIssued(p); r.err != nil {
				r.err = wrapErr(r.err, "refresh %s", cr.name)
			}
			break
		}
		if op := f.inStore.Load(); op != 0 {
			r.err = &unavailableError{op: storeOps[op], err: r.err}
			cr.storeError(storeOps[op], r.err) // no answer is the store's failure too
		} else {
			// Not in a store call: in the fetch, in Prepare or Needs, or
			// not yet started (a starved machine). Not the store's fault.
			r.err = fmt.Errorf("the refresh did not finish within RefreshTimeout (%v): %w", cr.policy.RefreshTimeout, ctx.Err())
		}
		r.err = wrapErr(r.err, "refresh %s", cr.name)
	}
	var ue *unavailableError
	var down error // the store failed this flight
	if r.err != nil && errors.As(r.err, &ue) {
		down = r.err
		r.tok, toExpiry, r.err = cr.outage(parent, f, ue.op, r.err)
	}
	cr.mu.Lock()
	if down != nil || cr.cold != nil {
		cr.coldNow().storeDown = down
	}
	switch {
	case r.err == nil && cr.invalidated.Load() == gen:
		cr.adopt(r.tok, toExpiry)
	case r.err == nil:
		// Invalidated while in flight (a withdrawal applied meanwhile):
		// served to this flight's callers, not kept.
	case errors.Is(r.err, ErrRevoked):
		cr.cur.Store(nil) // the held token is dead too
	}
	f.tok, f.err = r.tok, r.err
	cr.flight = nil
	cr.mu.Unlock()
	close(f.done)
}

// noAnswer is the error of a store call that RefreshTimeout ended, err
// being what it returned (or ctx's error, when it did not return).
func (cr *Credential) noAnswer(err error) error {
	return fmt.Errorf("the store did not answer within RefreshTimeout (%v): %w", cr.policy.RefreshTimeout, err)
}

// margins returns RefreshAhead and ExpiryMargin as they apply now: both
// zero while the credential is short-lived (its tokens live no longer than
// RefreshAhead), which is then served until its real expiry instead of
// being fetched in a loop. With a Handover (stable_token), refreshing
// ahead starts no earlier than 30 s inside it: before, it would only bring
// the same token back.
func (cr *Credential) margins() (ahead, margin time.Duration) {
	if cr.shortLived.Load() {
		return 0, 0
	}
	ahead, margin = cr.policy.RefreshAhead, cr.policy.ExpiryMargin
	switch h := cr.policy.Handover; {
	case h < 0:
		return 0, 0
	case h > 0:
		ahead = max(min(ahead, h-handoverSlack), margin)
	}
	return ahead, margin
}

// handoverSlack is how far inside Policy.Handover the refresh ahead
// starts, for the request's latency and clock skew: ExpiresAt is counted
// from when the request started, a little before WeChat counts it.
const handoverSlack = 30 * time.Second

// maxHeld bounds the time to expiry that the hot path's deadlines are
// computed from, so that an ExpiresAt centuries ahead cannot overflow them.
const maxHeld = 100 * 365 * 24 * time.Hour

// adopt makes tok the in-process copy; toExpiry serves it until its
// ExpiresAt, with no margin.
func (cr *Credential) adopt(tok Token, toExpiry bool) {
	now := cr.clock()
	at := int64(now.Sub(cr.base))
	left := int64(max(min(tok.ExpiresAt.Sub(now), maxHeld), -maxHeld)) // wall-clock time to expiry
	ahead, margin := cr.margins()
	if toExpiry {
		ahead, margin = 0, 0
	}
	j := int64(cr.policy.RefreshJitter)
	if h := cr.policy.Handover; h > 0 {
		// Not before the hand-over (see margins): a normal fetch there
		// hands the same token back.
		j = min(j, int64(h-handoverSlack)-int64(ahead))
	}
	if room := left - int64(ahead); j > 0 && ahead > 0 && room > 0 {
		// The point is drawn from [0, RefreshJitter] whatever the token's
		// remaining life, so that a process adopting it late has the
		// fleet's point; only a point already past (a short-lived token,
		// or the fleet did not refresh it) is moved to half the time left.
		u := jitterOf(cr.key, tok.Value, j+1)
		if u > room {
			u = room / 2
		}
		ahead += time.Duration(u)
	}
	cr.cur.Store(&held{
		Token:     tok,
		refreshAt: at + left - int64(ahead),
		expireAt:  at + left - int64(margin),
	})
}

// jitterOf returns a point in [0, n) fixed by a credential's key and a
// token's value (FNV-1a): spread over the tokens, the same in every
// process that holds one token, so that the fleet's first refresh ahead of
// a token is when every process's is, and no process serves it for long
// after another replaced it (a superseded classic token is valid 5 more
// minutes at WeChat; with a draw per process, the fleet refreshed at the
// earliest of its draws and the others served the old token up to the
// jitter after it).
func jitterOf(key, value string, n int64) int64 {
	h := uint64(14695981039346656037)
	for _, s := range [...]string{key, "\x00", value} {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
	}
	return int64(h % uint64(n))
}

// usable reports whether t may be served at now.
func (cr *Credential) usable(t Token, now time.Time) bool {
	_, margin := cr.margins()
	return t.Value != "" && now.Before(t.ExpiresAt.Add(-margin))
}

// load reads the store and, if it holds nothing usable other than f.stale,
// refreshes through it. A credential that Needs another gets a valid token
// of it before it takes its own lock, so that no store lock is held while
// waiting for another; if the fetch rejects that token, the lock is left,
// the token is refreshed and the refresh is tried once more.
func (cr *Credential) load(ctx context.Context, f *flight) (Token, error) {
	f.inStore.Store(storeGet)
	stored, err := cr.store.Get(ctx, cr.key)
	if err == nil || ctx.Err() == nil {
		// A Get that RefreshTimeout ended stays the store's failure for
		// run, which may see the deadline before this returns.
		f.inStore.Store(0)
	}
	switch {
	case err == nil:
		stored = cr.writeBack(ctx, f, stored)
	case errors.Is(err, ErrNotFound):
		stored = cr.writeBack(ctx, f, Token{})
	case ctx.Err() != nil:
		// ctx is the flight's: it ends only at RefreshTimeout, so the
		// store did not answer in time (a client that honours ctx
		// returns its error at the deadline).
		cr.storeError("get", err)
		return Token{}, wrapErr(&unavailableError{op: "get", err: cr.noAnswer(err)}, "refresh %s", cr.name)
	default:
		// A corrupt value or a passing fault: Refresh decides, and repairs
		// a corrupt value.
		cr.storeError("get", err)
		stored = Token{}
	}
	stored = cr.seed(ctx, stored)
	cur, err := cr.decodeStored(stored)
	if err != nil {
		return Token{}, wrapErr(err, "refresh %s", cr.name)
	}
	if cur.Value != f.stale && cr.usable(cur, cr.clock()) {
		cr.logEvent(slog.LevelInfo, EventAdopted, slog.Time("expires_at", cur.ExpiresAt))
		return cur, nil
	}
	var in FetchRequest
	for retried := false; ; retried = true {
		if cr.prepare != nil {
			if in.Prepared, err = cr.prepare(ctx); err != nil {
				return Token{}, wrapErr(err, "refresh %s", cr.name)
			}
		}
		if cr.needs != nil {
			if in.Needed, err = cr.needs.Get(ctx); err != nil {
				return Token{}, wrapErr(err, "refresh %s", cr.name)
			}
		}
		tok, err := cr.refreshStore(ctx, f, stored, cur, in)
		if err == nil || retried || cr.needs == nil || !cr.needs.rejects(err) {
			if err != nil {
				return Token{}, wrapErr(err, "refresh %s", cr.name)
			}
			return tok, nil
		}
		path := ""
		if e := asAPIError(err); e != nil {
			path = e.Path
		}
		if _, rerr := cr.needs.rejected(ctx, path, in.Needed.Value, err); rerr != nil {
			return Token{}, wrapErr(rerr, "refresh %s: refreshing the %s it was rejected with", cr.name, cr.needs.name)
		}
	}
}

// refreshStore is Store.Refresh with the credential's time and lease
// policy, starting from raw, the value the store was seen holding (the
// zero Token for nothing, or when Get failed), and cur, the token served
// from it:
//
//   - a token the store returns that is too old to serve (someone else
//     wrote it, or WeChat handed it back with a moment left that is gone by
//     now), or that is the very token being replaced, is replaced, up to
//     refreshAttempts Refresh calls in all;
//   - a token a fetch handed back unchanged with less than the margin left
//     is served to its end: nothing newer can be had before it expires;
//   - a token the fetch returned whose write the store did not confirm (a
//     lock lost to another holder: the fetch outlived its lease; a failed
//     write; a write that landed but reported failure) is never wasted: a
//     compare-and-refresh from the value the fetch replaced writes it back
//     (waiting out a new holder's lock). If the store holds another value
//     by then, that one wins (served if usable); if the store does not
//     answer, the token is served and held for the write-back
//     (holdPending);
//   - a lock lost before the fetch returned a token is not the caller's
//     problem either: the store is read again (waiting out the new
//     holder's lock) and its newer token returned; only when there is
//     none is the error returned.
//
// The stale value of each Refresh call is the raw value the store holds
// (a stored form with Decode), or f.stale when none was seen; every
// judgement is made on the token served from it. It returns the token
// served.
func (cr *Credential) refreshStore(ctx context.Context, f *flight, raw, cur Token, in FetchRequest) (Token, error) {
	for attempt := 1; ; attempt++ {
		// replaced is the value the Refresh call replaces, prev the token
		// served from it.
		replaced, prev := f.stale, f.stale
		if raw.Value != "" {
			replaced, prev = raw.Value, cur.Value
		}
		in.Stored = raw
		if p := cr.pendingNow(); p != nil {
			// A token fetched earlier and not yet written back: the store
			// was not seen to hold another value since (that would have
			// superseded it), so it is the newer one (with Decode, its
			// refresh token is the one WeChat honours). The fetch starts
			// from it, and its result supersedes it.
			in.Stored = p.raw
		}
		var called bool // the fetch ran: its outcome is logged by the fetch
		var got Token   // the token served from what the fetch returned
		var tok Token
		var err error
		start := time.Now()
		f.inStore.Store(storeRefresh)
		rec := cr.newRecord(f.why, false, prev, cr.suspect(f, cur))
		tok, err = cr.store.Refresh(ctx, cr.key, replaced, cr.fetcher(f, replaced, prev, in, rec, &called, &got, start))
		if err == nil || ctx.Err() == nil || called {
			f.inStore.Store(0) // else it stays the store's failure for run (see load)
		}
		// The token the fetch returned, unless run took it at
		// RefreshTimeout (then run serves it and holds it for the
		// write-back).
		issued := f.issued.Load()
		landed := called && err == nil
		switch {
		case err == nil:
			f.issued.CompareAndSwap(issued, nil)
			cr.observe(tok.Value)
		case issued != nil:
			// WeChat issued it: it may already have invalidated the
			// fleet's previous token. Write it back from replaced; a
			// newer value in the store wins. It stays in f.issued while
			// the write-back waits, so that run serves it if
			// RefreshTimeout ends the flight first.
			if errors.Is(err, ErrLockLost) {
				cr.logEvent(slog.LevelInfo, EventLockLost, slog.String("error", err.Error()))
			} else {
				cr.storeError("refresh", err)
			}
			held, werr := cr.writeBackNow(ctx, issued)
			if !f.issued.CompareAndSwap(issued, nil) {
				// run took it: the flight's result is already out.
				return Token{}, context.Cause(ctx)
			}
			switch {
			case werr != nil:
				// Served all the same, and written back later.
				cr.holdPending(issued, false)
				tok, called = issued.raw, true
			case held.Value == issued.raw.Value:
				tok, called, landed = held, true, true
			default:
				tok, called = held, false
			}
			err, got = nil, issued.served
		case errors.Is(err, ErrLockLost):
			// The lease ran out before the fetch returned a token: read
			// the store again, waiting out the new holder's lock.
			lost := err
			cr.logEvent(slog.LevelInfo, EventLockLost, slog.String("error", err.Error()))
			called = false
			tok, err = cr.store.Refresh(ctx, cr.key, replaced, func(context.Context) (Token, error) { called = true; return Token{}, lost })
			if err == nil {
				cr.observe(tok.Value)
			}
		}
		switch {
		case err != nil && !called:
			cr.storeError("refresh", err)
			switch {
			case ctx.Err() != nil:
				// No answer within RefreshTimeout (ctx is the flight's),
				// whatever error a client that honours ctx returned.
				err = &unavailableError{op: "refresh", err: cr.noAnswer(err)}
			case !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrLockLost):
				err = &unavailableError{op: "refresh", err: err}
			}
			return Token{}, err
		case err != nil:
			return Token{}, err
		case called:
			cur = got
		default:
			if cur, err = cr.decodeStored(tok); err != nil {
				return Token{}, err
			}
			if cur.Value != "" {
				cr.logEvent(slog.LevelInfo, EventAdopted, slog.Time("expires_at", cur.ExpiresAt), slog.Duration("lock_wait", time.Since(start)))
			}
		}
		now := cr.clock()
		switch {
		case cr.usable(cur, now) && (called || cur.Value != f.stale):
			return cur, nil
		case called && cur.Value == prev && now.Before(cur.ExpiresAt):
			f.toExpiry = true
			return cur, nil
		case attempt == refreshAttempts && cur.Value == "":
			return Token{}, errors.New("the store holds a value with no token to serve")
		case attempt == refreshAttempts || (called && !landed):
			return Token{}, fmt.Errorf("the store returned a token that expires at %v, too soon to serve", cur.ExpiresAt)
		}
		raw = tok
	}
}

// decodeStored returns the token served from raw, a value the store holds
// (read by Get, or returned by Store.Refresh without a fetch): raw itself
// without a Decode. A stored form that Decode finds corrupt counts as
// absent (the zero Token; EventStoreError, op "decode"), and so does one
// with nothing to serve; any other Decode error (the stored form says the
// grant was withdrawn) is returned as it is: it is what the form says, not
// a failure to read it.
func (cr *Credential) decodeStored(raw Token) (Token, error) {
	if cr.decode == nil || raw.Value == "" {
		return raw, nil
	}
	t, err := cr.decode(raw)
	switch {
	case err == nil && t.Value != "":
		return t, nil
	case err == nil:
		return Token{}, nil
	case errors.Is(err, ErrCorrupt):
		cr.storeError("decode", err)
		return Token{}, nil
	}
	return Token{}, err
}

// decodeFetched returns the token served from raw, a value Fetch returned:
// raw itself without a Decode. A stored form that Decode refuses, or that
// has nothing to serve, is an error (an empty one wraps ErrEmptyToken): it
// is never written.
func (cr *Credential) decodeFetched(raw Token) (Token, error) {
	if cr.decode == nil {
		return raw, nil
	}
	t, err := cr.decode(raw)
	switch {
	case err != nil:
		return Token{}, fmt.Errorf("the fetch returned a stored form that Decode refused: %w", err)
	case t.Value == "":
		return Token{}, fmt.Errorf("%w: the fetch returned a stored form with no token to serve", ErrEmptyToken)
	}
	return t, nil
}

// refreshAttempts bounds the Refresh calls of one refreshStore.
const refreshAttempts = 3

// fetcher returns the FetchFunc Store.Refresh calls for flight f, under the
// store's lock: it applies the limits, makes the fetch and, for a rejected
// token that a normal fetch hands back unchanged, escalates once to a
// forced one. Because it runs under the lock and only while the store
// still holds the stale value, a fleet escalates once per rejected token.
// replaced is the Refresh call's stale (the value the store holds) and
// prev the token served from it; *called is set when the FetchFunc runs,
// and *got to the token served from what it returns, which is also
// recorded as f.issued until the store answers for its write.
func (cr *Credential) fetcher(f *flight, replaced, prev string, in FetchRequest, rec *FetchRecord, called *bool, got *Token, refreshStart time.Time) FetchFunc {
	p := &cr.policy
	return func(ctx context.Context) (Token, error) {
		*called = true
		f.inStore.Store(0)
		wait := time.Since(refreshStart) // waiting for the store's lock
		now := cr.clock()
		if err := cr.limiter().admit(p, cr.name, f.why, f.stale, f.cause, now, inputOf(in)); err != nil {
			return Token{}, cr.limited(err)
		}
		force := f.why == reasonForced && cr.forcible
		if force {
			if err := cr.limiter().takeForce(p, cr.name, now); err != nil {
				return Token{}, cr.limited(err)
			}
			cr.logEvent(slog.LevelWarn, EventForced, slog.String("why", "requested"))
		}
		raw, tok, err := cr.call(ctx, f.why, in, force, now, wait, rec)
		if err == nil && !force && f.why != reasonExpiry && f.stale != "" && tok.Value == f.stale && cr.forcible {
			if err := cr.limiter().takeForce(p, cr.name, now); err != nil {
				return Token{}, cr.limited(err)
			}
			cr.logEvent(slog.LevelWarn, EventForced, slog.String("why", "rejected token handed back"))
			if rec != nil {
				// The normal call handed the rejected token back: WeChat
				// holds it current, so no one outside forced a new one
				// (that would be current instead). The rejection is
				// WeChat's own (a leaked or revoked token), and the
				// forced fetch that follows is the fleet's.
				rec.suspect = nil
			}
			raw, tok, err = cr.call(ctx, f.why, in, true, now, wait, rec)
		}
		if err == nil && tok.Value != prev {
			// A newly issued token: its time to expiry is its lifetime
			// (stable_token hands back a current token with what it has
			// left, which says nothing about the lifetime).
			cr.shortLived.Store(tok.ExpiresAt.Sub(now) <= p.RefreshAhead)
		}
		*got = tok
		if err == nil {
			f.issued.Store(&pendingWrite{raw: raw, served: tok, replaced: replaced})
		}
		return raw, err
	}
}

// call makes one fetch, records its outcome for the limits and logs it
// (EventFetched or EventFetchFailed). It returns what Fetch returned (raw,
// a stored form with Decode) and the token served from it. A fetch that
// returns an empty value without an error is refused: an empty credential
// is never stored.
func (cr *Credential) call(ctx context.Context, why reason, in FetchRequest, force bool, now time.Time, wait time.Duration, rec *FetchRecord) (raw, tok Token, err error) {
	start := time.Now()
	in.Force = force
	raw, err = cr.fetch(ctx, in)
	switch {
	case err == nil && raw.Value == "":
		err = fmt.Errorf("%w: the fetch returned no value", ErrEmptyToken)
	case err == nil:
		tok, err = cr.decodeFetched(raw)
	}
	latency := time.Since(start)
	cr.limiter().result(&cr.policy, err, force, now, inputOf(in))
	if err != nil {
		cr.logEvent(slog.LevelWarn, EventFetchFailed, append(fetchAttrs(why, force, latency, wait), errAttrs(err)...)...)
		return Token{}, Token{}, err
	}
	cr.logEvent(slog.LevelInfo, EventFetched, append(fetchAttrs(why, force, latency, wait), slog.Time("expires_at", tok.ExpiresAt))...)
	cr.record(rec, tok, force, cr.clock(), latency, wait)
	return raw, tok, nil
}

// limited logs EventLimited for a *LimitError and returns it.
func (cr *Credential) limited(err error) error {
	var le *LimitError
	if errors.As(err, &le) {
		cr.logEvent(slog.LevelWarn, EventLimited, slog.String("limit", le.Limit), slog.Time("until", le.Until), slog.String("error", err.Error()))
	}
	return err
}

// storeError logs EventStoreError for a failed store operation op.
func (cr *Credential) storeError(op string, err error) {
	cr.logEvent(slog.LevelWarn, EventStoreError, append([]slog.Attr{slog.String("op", op)}, errAttrs(err)...)...)
}

// seed handles the initial value (the seed's way 1) the first time the
// store is read: it is written to the store unless the store holds
// something newer, and is returned in place of stored when written.
func (cr *Credential) seed(ctx context.Context, stored Token) Token {
	if cr.initial == nil || cr.seeded.Load() || !cr.seeded.CompareAndSwap(false, true) {
		return stored
	}
	init := *cr.initial
	if !cr.usable(init, cr.clock()) || (stored.Value != "" && !stored.ExpiresAt.Before(init.ExpiresAt)) {
		return stored
	}
	if err := cr.store.Set(ctx, cr.key, init); err != nil {
		// Served from memory all the same.
		cr.storeError("set", err)
	}
	return init
}

// The store calls a load can be waiting for (flight.inStore).
const (
	storeGet int32 = 1 + iota
	storeRefresh
)

var storeOps = [...]string{storeGet: "get", storeRefresh: "refresh"}

// outage handles a refresh of flight f that failed because the store
// failed in op (err wraps ErrStoreUnavailable). Without
// Policy.FetchWithoutStore it returns err. With it, it fetches without the
// store (a normal fetch, at most once per Policy.StoreOutageInterval, with
// its own RefreshTimeout from parent), remembers the token for the write
// back, and logs EventStoreOutage; inside the interval it serves the held
// token if it is still usable (and not the one f replaces for a
// rejection), or returns err. toExpiry is the token's to be served to its
// ExpiresAt.
func (cr *Credential) outage(parent context.Context, f *flight, op string, err error) (tok Token, toExpiry bool, _ error) {
	now, el := cr.clock(), cr.elapsed()
	cr.mu.Lock()
	due := cr.outageFetchDue()
	if due {
		c := cr.coldNow()
		c.outageFetched, c.outageAt = true, el
	}
	cr.mu.Unlock()
	cr.logEvent(slog.LevelWarn, EventStoreOutage, slog.String("op", op), slog.String("error", err.Error()), slog.Bool("fetched", due))
	if !cr.policy.FetchWithoutStore {
		return Token{}, false, err
	}
	if !due {
		if tok, ok := cr.heldInOutage(f.stale, f.why, el); ok {
			return tok, false, nil
		}
		return Token{}, false, err
	}
	ctx, cancel := context.WithTimeout(parent, cr.policy.RefreshTimeout)
	defer cancel()
	tok, toExpiry, ferr := cr.fetchWithoutStore(ctx, f, now)
	if ferr != nil {
		return Token{}, false, fmt.Errorf("%w; fetching without the store: %w", err, ferr)
	}
	cr.holdPending(&pendingWrite{raw: tok, served: tok, replaced: f.stale}, false)
	return tok, toExpiry, nil
}

// heldInOutage returns the held token if a refresh of stale for why may
// serve it while the store is down: still usable at el (an elapsed()
// reading), and not the token being replaced for a rejection.
func (cr *Credential) heldInOutage(stale string, why reason, el int64) (Token, bool) {
	if h := cr.cur.Load(); h != nil && (why == reasonExpiry || h.Value != stale) && el < h.expireAt {
		return h.Token, true
	}
	return Token{}, false
}

// outageFetchDue reports whether a fetch without the store may be made now
// (Policy.FetchWithoutStore, once per StoreOutageInterval). cr.mu is held.
func (cr *Credential) outageFetchDue() bool {
	c := cr.cold
	return cr.policy.FetchWithoutStore &&
		(c == nil || !c.outageFetched || cr.elapsed() >= c.outageAt+int64(cr.policy.StoreOutageInterval))
}

// storeDownErr returns the error of the last flight whose store failed,
// nil if the last flight's store answered (coldState.storeDown). cr.mu is
// held.
func (cr *Credential) storeDownErr() error {
	if cr.cold == nil {
		return nil
	}
	return cr.cold.storeDown
}

// fetchWithoutStore makes one normal fetch for f with no store call and no
// lock, within the limits (Policy.FetchWithoutStore).
func (cr *Credential) fetchWithoutStore(ctx context.Context, f *flight, now time.Time) (Token, bool, error) {
	var in FetchRequest
	var err error
	if cr.prepare != nil {
		if in.Prepared, err = cr.prepare(ctx); err != nil {
			return Token{}, false, err
		}
	}
	if cr.needs != nil {
		if in.Needed, err = cr.needs.Get(ctx); err != nil {
			return Token{}, false, err
		}
	}
	if err := cr.limiter().admit(&cr.policy, cr.name, f.why, f.stale, f.cause, now, inputOf(in)); err != nil {
		return Token{}, false, cr.limited(err)
	}
	_, tok, err := cr.call(ctx, f.why, in, false, now, 0, cr.newRecord(f.why, true, f.stale, nil)) // no Decode: the token is its stored form
	switch {
	case err != nil:
		return Token{}, false, err
	case f.why != reasonExpiry && f.stale != "" && tok.Value == f.stale:
		return Token{}, false, errors.New("the normal fetch handed back the token being replaced, and a forced fetch needs the store's lock")
	case tok.Value != f.stale:
		cr.shortLived.Store(tok.ExpiresAt.Sub(now) <= cr.policy.RefreshAhead)
	}
	switch after := cr.clock(); {
	case cr.usable(tok, after):
		return tok, false, nil
	case after.Before(tok.ExpiresAt):
		return tok, true, nil
	}
	return Token{}, false, fmt.Errorf("the fetch returned a token that expires at %v, too soon to serve", tok.ExpiresAt)
}

// The write-back: a token a fetch returned — WeChat issued it — is never
// wasted. A fetch whose fenced write is not seen to land (the lock lost,
// the write failed or was not answered within RefreshTimeout), and a fetch
// without the store (Policy.FetchWithoutStore), leave a pendingWrite:
// served to the callers, and written back by a compare-and-refresh from
// the value the fetch replaced — in a background goroutine with a capped
// back-off (holdPending), and at every load (writeBack) — until it lands
// (EventWrittenBack), another value in the store supersedes it, or it
// expires (a stored form with a zero ExpiresAt never does). Every failure
// is an EventStoreError, op "write_back". Write-backs may run at once:
// each is a compare-and-refresh, so only one can land, and the others see
// it.

// pendingNow returns the token held for the write-back, nil if none.
func (cr *Credential) pendingNow() *pendingWrite {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.cold == nil {
		return nil
	}
	return cr.cold.pending
}

// holdPending makes p the token to write back (the newest replaces an
// older one: it was fetched later, from the same or a newer value) and
// makes sure a background write-back runs: one attempt at once if now,
// else after the back-off (the store just failed).
func (cr *Credential) holdPending(p *pendingWrite, now bool) {
	if p.resolved.Load() {
		return
	}
	cr.mu.Lock()
	c := cr.coldNow()
	c.pending = p
	start := !c.wbRunning
	if start {
		c.wbRunning, c.wbDone = true, make(chan struct{})
		if c.wbKick == nil {
			c.wbKick = make(chan struct{}, 1) // made once, before the first loop starts
		}
	}
	cr.mu.Unlock()
	switch {
	case start:
		go cr.writeBackLoop(c, now)
	case now:
		cr.kick()
	}
}

// kick wakes the background write-back, if it waits (none has run while
// wbKick is nil: a send on nil is never ready).
func (cr *Credential) kick() {
	var k chan struct{}
	cr.mu.Lock()
	if cr.cold != nil {
		k = cr.cold.wbKick
	}
	cr.mu.Unlock()
	select {
	case k <- struct{}{}:
	default:
	}
}

// writeBackLoop is the background write-back: it tries the pending token
// (at once if now, else after the back-off, doubling from wbMin to wbMax)
// until none is pending; a kick cuts a wait short.
func (cr *Credential) writeBackLoop(c *coldState, now bool) {
	delay := cr.wbMin
	for {
		if !now {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-c.wbKick: // set before the loop started, never changed
				t.Stop()
			}
			delay = min(2*delay, cr.wbMax)
		}
		cr.mu.Lock()
		p := c.pending
		if p == nil {
			c.wbRunning = false
			close(c.wbDone)
			cr.mu.Unlock()
			return
		}
		cr.mu.Unlock()
		now = false
		if cr.pendingExpired(p) {
			cr.resolve(p, false)
			now = true
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), cr.policy.RefreshTimeout)
		held, err := cr.writeBackNow(ctx, p)
		cancel()
		if err == nil {
			if held.Value != p.raw.Value {
				cr.adoptNewer(p, held)
			}
			now = true // settled: see whether another is pending
		}
	}
}

// pendingExpired reports whether p is too old to write back: its ExpiresAt
// has passed. A zero ExpiresAt (a durable stored form) never expires.
func (cr *Credential) pendingExpired(p *pendingWrite) bool {
	return !p.raw.ExpiresAt.IsZero() && !cr.clock().Before(p.raw.ExpiresAt)
}

// writeBackNow writes p back by a compare-and-refresh from p.replaced and
// returns what the store holds then: p itself (it landed now, or had
// landed), or another value, which wins (p is dropped). A store error is
// logged (EventStoreError, op "write_back") and returned; p stays pending
// if it was.
func (cr *Credential) writeBackNow(ctx context.Context, p *pendingWrite) (Token, error) {
	held, err := cr.store.Refresh(ctx, cr.key, p.replaced, func(context.Context) (Token, error) { return p.raw, nil })
	if err != nil {
		cr.storeError("write_back", err)
		return Token{}, err
	}
	cr.resolve(p, held.Value == p.raw.Value)
	return held, nil
}

// writeBack tries the pending token, if any, at flight f's load, whose Get
// found stored (zero for nothing): it landed if the store holds it, is
// superseded if the store holds another value than the one it replaced,
// and is written back otherwise. It returns what the store holds (stored,
// when the write-back failed: it stays pending).
func (cr *Credential) writeBack(ctx context.Context, f *flight, stored Token) Token {
	cr.observe(stored.Value)
	p := cr.pendingNow()
	switch {
	case p == nil:
		return stored
	case cr.pendingExpired(p):
		cr.resolve(p, false)
		return stored
	}
	f.inStore.Store(storeRefresh)
	held, err := cr.writeBackNow(ctx, p)
	if err == nil || ctx.Err() == nil {
		f.inStore.Store(0) // else it stays the store's failure for run (see load)
	}
	if err == nil {
		return held
	}
	return stored
}

// observe notes that the store holds raw (a non-empty value): the pending
// token, if it is raw, landed; if raw is another value than the one it
// replaced, it is superseded.
func (cr *Credential) observe(raw string) {
	p := cr.pendingNow()
	switch {
	case p == nil || raw == "":
	case raw == p.raw.Value:
		cr.resolve(p, true)
	case raw != p.replaced:
		cr.resolve(p, false)
	}
}

// resolve ends p's write-back, once: it is no longer pending, the
// background write-back is woken to see it, and if it landed
// EventWrittenBack is logged.
func (cr *Credential) resolve(p *pendingWrite, landed bool) {
	if !p.resolved.CompareAndSwap(false, true) {
		return
	}
	cr.mu.Lock()
	if c := cr.cold; c != nil && c.pending == p {
		c.pending = nil
	}
	cr.mu.Unlock()
	cr.kick()
	if landed {
		cr.logEvent(slog.LevelInfo, EventWrittenBack, slog.Time("expires_at", p.served.ExpiresAt))
	}
}

// adoptNewer serves held, the value that superseded p in the store, in
// place of p's token if that is still the one held: the issuer of held may
// have invalidated p's (the classic token). A withdrawn grant (ErrRevoked)
// drops p's token.
func (cr *Credential) adoptNewer(p *pendingWrite, held Token) {
	tok, err := cr.decodeStored(held)
	adopted := false
	cr.mu.Lock()
	if h := cr.cur.Load(); h != nil && h.Value == p.served.Value {
		switch {
		case errors.Is(err, ErrRevoked):
			cr.cur.Store(nil)
		case err == nil && cr.usable(tok, cr.clock()):
			cr.adopt(tok, false)
			adopted = true
		}
	}
	cr.mu.Unlock()
	if adopted {
		cr.logEvent(slog.LevelInfo, EventAdopted, slog.Time("expires_at", tok.ExpiresAt))
	}
}

// serveIssued returns p's token as a flight's result: usable, or handed
// back with less than the margin left (to be served to its ExpiresAt).
func (cr *Credential) serveIssued(p *pendingWrite) (Token, bool, error) {
	switch now := cr.clock(); {
	case cr.usable(p.served, now):
		return p.served, false, nil
	case now.Before(p.served.ExpiresAt):
		return p.served, true, nil
	}
	return Token{}, false, fmt.Errorf("the fetch returned a token that expires at %v, too soon to serve", p.served.ExpiresAt)
}
