package core

import (
	"context"
	"log/slog"
	"time"
)

// The events a Credential (and so a Conf, a wecom.App) logs: each is the
// message of one slog record, with the attributes listed. They are an interface: names and attributes change
// only with a new major version. No attribute ever holds a credential
// (token, ticket, AppSecret); "error" values are redacted at the source.
//
// Every event of a credential carries "credential" (its kind,
// CredentialConfig.Name: "access_token", "jsapi_ticket", "wx_card_ticket",
// "agent_config_ticket", …), "platform" (the kind of account, a Platform:
// "official_account", "mini_program", "wecom", "open_platform_component",
// "open_platform_authorizer" or "custom"; it tells an Official Account's
// access_token from a WeCom app's) and "key" (its store key). EventRetry,
// logged by an API rather than a credential, carries "platform" when its
// APIConfig.Platform is set (a Conf's, a wecom.App's and an Open Platform
// component's are).
const (
	// EventFetched (Info): this Conf got a new credential from WeChat.
	// Across a fleet, counting these counts token calls. Attributes:
	// "reason" ("expiry", "rejected" or "forced"), "forced" (bool:
	// stable_token with force_refresh), "latency" (duration of the call,
	// retries included), "lock_wait" (duration from Store.Refresh until
	// the fetch started: the wait for the store's lock), "expires_at"
	// (time).
	EventFetched = "wechatconf.fetched"
	// EventFetchFailed (Warn): a token call failed. Attributes: "reason",
	// "forced", "latency", "lock_wait", "error", and "errcode" (int) for an
	// *APIError.
	EventFetchFailed = "wechatconf.fetch_failed"
	// EventAdopted (Info): this Conf took a credential another instance
	// (or an earlier run) wrote to the store, without a token call.
	// Attributes: "expires_at", and "lock_wait" (duration) when it came
	// back from Store.Refresh, having waited out another holder's lock.
	EventAdopted = "wechatconf.adopted"
	// EventForced (Warn): a forced refresh is about to be made. Attribute
	// "why": "requested" (ForceRefreshAccessToken) or "rejected token
	// handed back" (stable_token returned the token WeChat rejected).
	EventForced = "wechatconf.forced"
	// EventRejected (Info): WeChat rejected a credential (40001, 40014,
	// 42001); a compare-and-refresh follows. Attributes: "path" (the API
	// that rejected it), "errcode".
	EventRejected = "wechatconf.rejected"
	// EventLimited (Warn): a token call was held back by a limit (see
	// LimitError). Attributes: "limit" (the Config field), "until" (time),
	// "error".
	EventLimited = "wechatconf.limited"
	// EventStoreError (Warn): the TokenStore failed. Attributes: "op"
	// ("get", "set", "refresh", "ledger" for a fetch ledger write — tried
	// again with a back-off —, "write_back" for a write-back of a fetched
	// token that failed — it is tried again, see EventWrittenBack — or
	// "decode": a stored value CredentialConfig.Decode found corrupt,
	// replaced by a fetch), "error".
	EventStoreError = "wechatconf.store_error"
	// EventStoreOutage (Warn): a refresh failed because the TokenStore
	// failed or did not answer (ErrStoreUnavailable). With
	// Policy.FetchWithoutStore (stable_token, WeCom's gettoken) the
	// credential then fetches without the store, at most once per
	// Policy.StoreOutageInterval; the token is served from memory and
	// written back once the store answers. Without it (the classic token,
	// tickets, Open Platform) nothing is fetched: the held token is served
	// while usable, else the error returned. Until a refresh reaches the
	// store again, callers do not wait for it: one refresh at a time
	// probes it, the others are answered at once. Attributes: "op" (the
	// store call: "get" or "refresh"), "error", "fetched" (bool: a fetch
	// without the store is made — a limit may still hold it back,
	// EventLimited; false without FetchWithoutStore, and inside
	// StoreOutageInterval, when the held token or the error is returned).
	EventStoreOutage = "wechatconf.store_outage"
	// EventLockLost (Info): this Conf's refresh lost the store's lock to
	// another holder (ErrLockLost); the store is read again, and a token
	// its fetch returned is written back unless the store holds a newer
	// one. Attribute "error".
	EventLockLost = "wechatconf.lock_lost"
	// EventWrittenBack (Info): a token this Conf fetched, whose write the
	// store had not confirmed (the lock was lost, the write failed or was
	// not answered within RefreshTimeout, or it was fetched without the
	// store, Policy.FetchWithoutStore), is now in the store: written back
	// by a compare-and-refresh from the value it replaced, or found there.
	// Until then it was served from memory and retried in the background
	// (each failure an EventStoreError, op "write_back"). Attribute
	// "expires_at" (of the token served).
	EventWrittenBack = "wechatconf.written_back"
	// EventBackgroundRefreshFailed (Warn): a refresh ahead of expiry failed;
	// the current credential is still served until ExpiryMargin.
	// Attributes: "expires_at" (of the current one), "error".
	EventBackgroundRefreshFailed = "wechatconf.background_refresh_failed"
	// EventNoNewer (Debug): a refresh ahead of expiry brought the same
	// credential back (stable_token before its hand-over); retried in 15 s.
	// Attribute "expires_at".
	EventNoNewer = "wechatconf.no_newer"
	// EventOutsideFetch (Warn): WeChat rejected (40001, 40014) a token the
	// fleet fetched, before its expiry, and the fetch ledger holds no later
	// fetch by the fleet: someone outside the fleet fetched a token for the
	// same AppID (another environment, an old deployment, a script) — or,
	// on stable_token, forced a new one. Logged by the instance whose
	// ledger write records the replacing fetch, once per rejected token
	// fleet-wide. Attributes: "rejected" (the token's Fingerprint),
	// "fetched_at" and "fetched_by" (the fleet's fetch of it),
	// "token_age" (duration: its age when rejected), "path" and "errcode"
	// (the rejection; "" and 0 when the caller did not say),
	// "forced_elsewhere" (bool: stable_token), "advice" (what to do).
	EventOutsideFetch = "wechatconf.outside_fetch"
	// EventQuota (Warn): the fleet's fetches of the credential today
	// (Beijing time, counted in the fetch ledger) reached 50 % or 80 % of
	// WeChat's daily limit (LedgerConfig.DailyLimit: 2,000 for the classic
	// access_token; ForcedDailyLimit: stable_token's 20 forced refreshes).
	// Logged once per threshold and day fleet-wide, by the instance whose
	// record crossed it. Attributes: "limit" ("fetches" or "forced"),
	// "used", "daily_limit", "percent" (50 or 80), "day" ("2006-01-02").
	EventQuota = "wechatconf.quota"
	// EventRecorded (Debug): this instance's fetch records landed in the
	// fetch ledger; the attributes are the fleet's counts for the day of
	// the newest: "day", "fetches", "forced", "outside", "daily_limit",
	// "forced_daily_limit" (0: none known). contrib/otel's quota gauges
	// read them.
	EventRecorded = "wechatconf.recorded"
	// EventRetry (Debug): a WeChat call is retried after a busy reply, a
	// 5xx or a network error. Attributes: "path", "attempt" (1 for the
	// first retry), "delay", "error", and "platform" when the API has one
	// (APIConfig.Platform).
	EventRetry = "wechatconf.retry"

	// The events of a Dedup (pushes handled once across the fleet). Each
	// carries "key", the push's claim key (no credential, and no personal
	// data: the account, and the MsgId or a hash of the event).

	// EventPushFailed (Warn): a push's handler returned an error; its
	// claim is released, and the delivery is answered 500 so that WeChat
	// retries. Attribute "error" (the handler's own).
	EventPushFailed = "wechatconf.push_failed"
	// EventPushSkipped (Debug): a delivery of a push started no handler.
	// Attribute "outcome": "duplicate" (handled already) or "in_progress"
	// (another handler still held it at the end of DedupConfig.Wait).
	EventPushSkipped = "wechatconf.push_skipped"
	// EventPushUnguarded (Warn): the store failed on a claim. Attributes
	// "op", "error", "fail_closed" (bool): false, the push was handled
	// without a claim (it may be handled twice); true, it was refused
	// (WeChat retries). Logged once, with op "store", when the store does
	// not implement ClaimStore and claims are emulated (ClaimsOver).
	EventPushUnguarded = "wechatconf.push_unguarded"
	// EventPushClaimLost (Warn): a handler's claim was lost, so the push
	// may be handled twice. Attribute "stage": "handling" (the claim ran
	// out or was taken while the handler ran: its context ended with
	// ErrClaimLost), "recording" (the push could not be recorded as
	// handled), "releasing" (a failed handler's claim could not be
	// released: the lease frees it); "error" when a store call failed.
	EventPushClaimLost = "wechatconf.push_claim_lost"
)

// reasonName is the "reason" attribute of why.
func (why reason) String() string {
	switch why {
	case reasonRejected:
		return "rejected"
	case reasonForced:
		return "forced"
	}
	return "expiry"
}

// logEvent logs event for cr at level with attrs after the credential's.
func (cr *Credential) logEvent(level slog.Level, event string, attrs ...slog.Attr) {
	l := cr.logger
	ctx := context.Background()
	if !l.Enabled(ctx, level) {
		return
	}
	all := make([]slog.Attr, 0, len(attrs)+3)
	all = append(all, slog.String("credential", cr.name), slog.String("platform", string(cr.platform)), slog.String("key", cr.key))
	l.LogAttrs(ctx, level, event, append(all, attrs...)...)
}

// errAttrs returns "error" and, for an *APIError, "errcode".
func errAttrs(err error) []slog.Attr {
	attrs := []slog.Attr{slog.String("error", err.Error())}
	if e := asAPIError(err); e != nil {
		attrs = append(attrs, slog.Int("errcode", e.Code))
	}
	return attrs
}

// fetchAttrs are the attributes of EventFetched and EventFetchFailed.
func fetchAttrs(why reason, forced bool, latency, lockWait time.Duration) []slog.Attr {
	return []slog.Attr{slog.String("reason", why.String()), slog.Bool("forced", forced), slog.Duration("latency", latency), slog.Duration("lock_wait", lockWait)}
}

// DefaultLogger returns the logger a nil Config.Logger (or
// CredentialConfig.Logger) stands for: records of level Warn and above go
// to slog.Default() (read at each record, so a later slog.SetDefault is
// followed), the rest are dropped — failures are visible by default, the
// chatter is not. Stores and packages built on core use it for the same
// default (redisstore's WithLogger, openplatform's Config.Logger).
func DefaultLogger() *slog.Logger { return defaultLogger }

// defaultLogger is DefaultLogger's, one for the process: a handle per
// credential would cost every one of a vendor's tenants an allocation.
var defaultLogger = slog.New(defaultWarnHandler{})

// defaultWarnHandler is the handler of a Conf built without a Logger: the
// records of level Warn and above go to slog.Default() (read at each
// record, so a later slog.SetDefault is followed); the rest are dropped.
// Failures are thus visible by default, and the chatter is not.
type defaultWarnHandler struct{}

func (defaultWarnHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && slog.Default().Handler().Enabled(ctx, l)
}

func (defaultWarnHandler) Handle(ctx context.Context, r slog.Record) error {
	return slog.Default().Handler().Handle(ctx, r)
}

func (defaultWarnHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevelHandler{slog.Default().Handler().WithAttrs(attrs)}
}

func (defaultWarnHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{slog.Default().Handler().WithGroup(name)}
}

// minLevelHandler passes records of level Warn and above to h.
type minLevelHandler struct{ h slog.Handler }

func (m minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && m.h.Enabled(ctx, l)
}
func (m minLevelHandler) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevelHandler{m.h.WithAttrs(attrs)}
}
func (m minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{m.h.WithGroup(name)}
}
