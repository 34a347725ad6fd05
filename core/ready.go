package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Readiness: is a credential able to serve a token for a while yet? The
// logic lives once, on Credential.Ready; Conf.Ready, wecom.App.Ready and the
// Open Platform's Component.Ready and Authorizer.Ready are thin calls of it
// with their Config's ReadyHorizon.
//
// Ready never makes a call a caller would not make. It goes through the
// same path as Get:
//
//   - a token held in memory that is valid for at least the horizon: ready,
//     with no I/O at all (not even a background refresh);
//   - a held token inside its refresh-ahead window and within the horizon:
//     the refresh ahead that Get would start in the background is made (or
//     joined) and waited for, but only when Get would start it (not within
//     15 s of a failed one); otherwise the state says why it was not
//     replaced;
//   - nothing usable held (a fresh process, an expired token): Get, so a new
//     instance becomes ready by reading the store, or by fetching through
//     the store's lock, exactly as its first caller would.
//
// So there is never a forced refresh; the limits (ErrorBackoff,
// RejectedRefreshInterval) and the store-outage rules (Policy.
// FetchWithoutStore, StoreOutageInterval; a store known to be down is not
// waited for) hold as for any caller. The horizon is clamped to the
// credential's refresh-ahead time (see Credential.Ready), so that a token the
// engine would not yet replace never reads as not ready.

// DefaultReadyHorizon is the default Config.ReadyHorizon (and that of
// wecom.Config and openplatform.Config): 2 minutes. With the default
// ExpiryMargin (1 minute), a process whose store is down and whose classic
// token cannot be replaced turns not ready a minute before it would stop
// serving the token: time for a Kubernetes readiness probe (every 10 s,
// failureThreshold 3) to take it out of the load balancer before its callers
// see an error.
const DefaultReadyHorizon = 2 * time.Minute

// ReadyHorizon returns the horizon a Config's ReadyHorizon field d stands
// for: d itself when positive, DefaultReadyHorizon when 0, and 0 (ready
// while a token can be served at all) when negative. The packages that
// build on Credential use it for their own Config's ReadyHorizon.
func ReadyHorizon(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultReadyHorizon
	case d < 0:
		return 0
	}
	return d
}

// ReadyReason says why a credential is not ready (NotReadyError.Reason). Its
// values are short snake_case words, stable, safe to put in a metric label or
// a probe's reply.
type ReadyReason string

// The reasons a credential is not ready, in the order Ready decides them
// (the first that matches the error wins).
const (
	// ReasonRevoked: the grant behind the credential was withdrawn (the
	// error matches ErrRevoked: an Open Platform merchant withdrew its
	// authorization). Only a person can mend it.
	ReasonRevoked ReadyReason = "revoked"
	// ReasonConfiguration: WeChat refused the configuration (IsConfigError:
	// 40013 wrong AppID, 40125 wrong AppSecret, 40164 IP not whitelisted,
	// WeCom's 40001 wrong Secret, …), or a required Config field is empty
	// (ErrMissingConfig). During ErrorBackoff the error is a *LimitError
	// wrapping that refusal: errors.As reaches both, and the LimitError's
	// Until says when the next call will be made.
	ReasonConfiguration ReadyReason = "configuration"
	// ReasonStoreUnavailable: the token store failed (the error wraps
	// ErrStoreUnavailable and the store's own error), and no token valid for
	// the horizon is held: NotReadyError.Remaining says how long the held
	// one still lives (0 if none).
	ReasonStoreUnavailable ReadyReason = "store_unavailable"
	// ReasonLimited: a limit holds the token call back (the error is, or
	// wraps, a *LimitError whose Until says when it may be made), or the
	// quota is used up (IsQuotaExceeded: 45009).
	ReasonLimited ReadyReason = "limited"
	// ReasonExpiring: a token is held but it ends within the horizon and no
	// newer one could be had yet: its refresh failed for another reason
	// (the error, if known: WeChat unreachable, busy, ctx's deadline), or
	// it failed less than 15 s ago and is not retried before then (Err is
	// nil), or WeChat handed the same token back.
	ReasonExpiring ReadyReason = "expiring"
	// ReasonNoToken: no usable token is held and none could be had: never
	// fetched yet (the first fetch failed or is still running when ctx
	// ends), or the held one expired and its refresh failed. Err says why.
	ReasonNoToken ReadyReason = "no_token"
)

// ErrMissingConfig is matched (errors.Is) by the error of a token call that
// cannot be made because a required configuration field is empty
// (Config.AppID, Config.AppSecret; wecom.Config.Secret;
// openplatform.Config.AppSecret). Only a person can fix it; Ready reports it
// as ReasonConfiguration.
var ErrMissingConfig = errors.New("missing configuration")

// NotReadyError is the error of Ready: why a credential cannot serve a
// token valid for the horizon. Reach it with errors.As; it wraps the cause
// (Err), so errors.Is(err, ErrStoreUnavailable), IsConfigError(err) and
// errors.As(err, &limitErr) see through it. Its text holds no token or
// secret: the credential's name and key, the reason, durations and the
// cause's text, which this module keeps free of credentials.
type NotReadyError struct {
	Credential string      // the credential's kind (Credential.Name), e.g. "access_token"
	Platform   Platform    // whose credential it is (Credential.Platform)
	Key        string      // its store key (Credential.Key): names the account, holds no secret
	Reason     ReadyReason // why it is not ready
	// Remaining is how long the token held in memory lives yet (its
	// ExpiresAt less the credential's clock), 0 when none is held or it
	// has expired; a token within its ExpiryMargin is no longer served.
	Remaining time.Duration
	// Horizon is the horizon the token was judged by, after clamping (see
	// Credential.Ready).
	Horizon time.Duration
	// Err is the cause: the error of the refresh, of the store outage, or
	// of the limit; nil when none is known (ReasonExpiring only).
	Err error
}

// Error reads "wechatconf: <credential> (<key>) not ready: <reason>: <what
// is held>: <cause>".
func (e *NotReadyError) Error() string {
	s := fmt.Sprintf("%s%s (%s) not ready: %s: ", prefix, e.Credential, e.Key, e.Reason)
	if e.Remaining > 0 {
		s += fmt.Sprintf("the held token ends in %v (horizon %v)", e.Remaining.Round(time.Second), e.Horizon)
	} else {
		s += "no valid token is held"
	}
	switch {
	case e.Err != nil:
		s += ": " + trimPrefix(e.Err.Error())
	case e.Reason == ReasonExpiring:
		s += ", and no newer one could be had yet (its last refresh failed or brought the same token: see the log)"
	}
	return s
}

// Unwrap returns the cause.
func (e *NotReadyError) Unwrap() error { return e.Err }

func trimPrefix(s string) string {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):]
	}
	return s
}

// Ready reports whether the credential holds, or can have, a token valid for
// at least horizon: nil if so, else a *NotReadyError saying why. It is the
// logic of a readiness probe (/readyz); liveness is another matter (a
// process whose store is down is alive, and serves what it holds).
//
// horizon is clamped to [0, RefreshAhead] (RefreshAhead as it applies:
// 4m30s for stable_token, 0 for an issuer served to expiry such as WeCom's
// gettoken, and for a credential whose tokens live no longer than
// RefreshAhead): a token is not replaced before then, so a longer horizon
// would read a healthy credential as not ready. A negative horizon is 0:
// ready while a token can be served.
//
// Ready makes no call that a caller would not make (see the notes at the
// top of ready.go, repeated in the package doc, "Ready or not"): a held
// token valid for the horizon costs no I/O; a held token in its
// refresh-ahead window and within the horizon is refreshed as Get would in
// the background, the refresh being waited for; with nothing usable held it
// is Get. No forced refresh, the limits and the store-outage rules apply.
// ctx bounds the wait only: a refresh it starts goes on (bounded by
// Policy.RefreshTimeout), and the next Ready sees its result.
//
// The reasons (NotReadyError.Reason), from the error of the refresh or, when
// no refresh was due, from the credential's state: ReasonRevoked,
// ReasonConfiguration, ReasonStoreUnavailable (with the held token's
// Remaining), ReasonLimited, ReasonExpiring, ReasonNoToken.
func (cr *Credential) Ready(ctx context.Context, horizon time.Duration) error {
	ahead, _ := cr.margins()
	horizon = max(0, min(horizon, ahead))
	h := cr.cur.Load()
	if h != nil {
		el := cr.elapsed()
		left := h.ExpiresAt.Sub(cr.clock())
		switch {
		case el >= h.expireAt:
			// No longer served: a caller's Get refreshes, below.
		case left >= horizon:
			return nil
		case el >= h.refreshAt && el >= cr.bgNotTill.Load():
			// The refresh ahead a caller's Get would start now: made (or
			// joined) and waited for.
			tok, err := cr.refresh(ctx, h.Value, reasonExpiry, nil)
			if err != nil || tok.Value == h.Value {
				cr.bgNotTill.Store(cr.elapsed() + int64(bgRetryInterval))
			}
			if err != nil {
				return cr.notReady(err, horizon)
			}
			if tok.ExpiresAt.Sub(cr.clock()) >= horizon {
				return nil
			}
			return cr.notReady(cr.stateErr(), horizon)
		default:
			// Inside the window but no refresh is due: a refresh ahead
			// failed (or brought the same token) within bgRetryInterval,
			// or the token was handed back to be served to its expiry.
			return cr.notReady(cr.stateErr(), horizon)
		}
	}
	tok, err := cr.Get(ctx)
	if err != nil {
		return cr.notReady(err, horizon)
	}
	if tok.ExpiresAt.Sub(cr.clock()) >= horizon {
		return nil
	}
	// Handed back inside its margin, to be served to its expiry: nothing
	// newer can be had before then.
	return cr.notReady(cr.stateErr(), horizon)
}

// stateErr is what the credential's state says stops a refresh, when Ready
// made none: the store known to be down, else the ErrorBackoff limit in
// force, else nil.
func (cr *Credential) stateErr() error {
	cr.mu.Lock()
	down := cr.storeDownErr()
	cr.mu.Unlock()
	if down != nil {
		return down
	}
	if l := cr.lim.Load(); l != nil {
		if le := l.backoff(cr.name, cr.clock()); le != nil {
			return le
		}
	}
	return nil
}

// backoff returns the *LimitError of the ErrorBackoff in force at now, nil
// if none.
func (l *limits) backoff(name string, now time.Time) *LimitError {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.failUntil) {
		return &LimitError{Credential: name, Limit: "ErrorBackoff", Until: l.failUntil, Err: l.failErr}
	}
	return nil
}

// notReady returns the *NotReadyError of cause (nil when none is known),
// with the held token's remaining life.
func (cr *Credential) notReady(cause error, horizon time.Duration) *NotReadyError {
	e := &NotReadyError{Credential: cr.name, Platform: cr.platform, Key: cr.key, Horizon: horizon, Err: cause}
	if at, ok := cr.Expiry(); ok {
		e.Remaining = max(0, at.Sub(cr.clock()))
	}
	var le *LimitError
	switch {
	case cause == nil:
		e.Reason = ReasonExpiring
	case errors.Is(cause, ErrRevoked):
		e.Reason = ReasonRevoked
	case IsConfigError(cause) || errors.Is(cause, ErrMissingConfig):
		e.Reason = ReasonConfiguration
	case errors.Is(cause, ErrStoreUnavailable):
		e.Reason = ReasonStoreUnavailable
	case errors.As(cause, &le) || IsQuotaExceeded(cause):
		e.Reason = ReasonLimited
	case e.Remaining > 0:
		e.Reason = ReasonExpiring
	default:
		e.Reason = ReasonNoToken
	}
	return e
}

// Ready reports whether the Conf can serve its access_token for at least
// Config.ReadyHorizon (default DefaultReadyHorizon, 2 minutes): nil if it
// holds one valid that long or can have one from the store or WeChat, else
// a *NotReadyError (errors.As) whose Reason says why — ReasonConfiguration
// (a wrong AppSecret, 40125; an empty AppSecret, ErrMissingConfig),
// ReasonStoreUnavailable with the held token's Remaining, ReasonLimited,
// ReasonExpiring, ReasonNoToken, ReasonRevoked — and which wraps the cause.
// It is Credential.Ready of the access_token: see it for what it may call
// (never more than a caller would: a fresh Conf becomes ready by reading
// the store or fetching through its lock, as its first caller would).
//
// The tickets (jsapi_ticket, wx_card ticket) do not count: they are made on
// first use (a Mini Program has none; a service that never signs a page
// never fetches one), each is fetched with the access_token whenever that
// one is ready, and Ready must not fetch one that no caller asked for. A
// failing ticket shows in the errors of JSAPITicket and CardTicket.
func (c *Conf) Ready(ctx context.Context) error {
	return c.access.Ready(ctx, ReadyHorizon(c.cfg.ReadyHorizon))
}
