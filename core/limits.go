package core

import (
	"fmt"
	"sync"
	"time"
)

// Why a credential is being refreshed; it decides which limits apply and
// whether a fetch may escalate to stable_token's force_refresh.
type reason int

const (
	// reasonExpiry: nothing usable is held (absent, expiring or expired).
	reasonExpiry reason = iota
	// reasonRejected: WeChat rejected the stale value (40001, 40014,
	// 42001). Rate-limited by Config.RejectedRefreshInterval; escalates to
	// force_refresh when a normal fetch hands the rejected value back.
	reasonRejected
	// reasonForced: the caller asked for a brand-new token
	// (Conf.ForceRefreshAccessToken). Limited by the force_refresh limits.
	reasonForced
)

// StableTokenHandover is how long before a stable token expires WeChat's
// /cgi-bin/stable_token starts handing out the next one: before that, a
// normal-mode call returns the same token. Config.ExpiryMargin must be
// shorter with StableToken, or a token would stop being served while WeChat
// still returns it.
const StableTokenHandover = 5 * time.Minute

// Defaults of the limits in Config.
const (
	// DefaultForceRefreshInterval is the least time between two
	// force_refresh calls of one AppID that WeChat allows (about 30 s).
	DefaultForceRefreshInterval = 30 * time.Second
	// DefaultForceRefreshDailyLimit is how many force_refresh calls WeChat
	// allows an AppID per day (about 20).
	DefaultForceRefreshDailyLimit = 20
	// DefaultRejectedRefreshInterval is the least time between two token
	// fetches of one credential that rejections triggered.
	DefaultRejectedRefreshInterval = 30 * time.Second
	// DefaultErrorBackoff is how long a token call refused with a
	// configuration or quota error is not made again.
	DefaultErrorBackoff = time.Minute
)

// maxTrustedLifetime caps how long a fetched credential is trusted,
// whatever expires_in says: WeChat's live 7200 s, and an absurd expires_in
// (billions of seconds) must neither overflow nor keep a dead token for
// years. A rejection still replaces the token at once.
const maxTrustedLifetime = 24 * time.Hour

// beijing is the zone WeChat's daily quotas reset in (midnight, UTC+8).
var beijing = time.FixedZone("CST", 8*60*60)

// LimitError is returned instead of a token call that a limit held back:
// a rejection-triggered refresh inside Config.RejectedRefreshInterval of the
// last one, any token call inside Config.ErrorBackoff of a configuration or
// quota error, or a force_refresh beyond Config.ForceRefreshInterval or
// Config.ForceRefreshDailyLimit. No request was sent to WeChat. It wraps
// the error that started the limit, when there is one, so IsConfigError,
// IsQuotaExceeded and IsInvalidCredential still see it; reach it with
// errors.As.
type LimitError struct {
	Credential string    // the credential's kind (CredentialConfig.Name), e.g. "access_token"
	Limit      string    // the Config (and Policy) field that holds the call back, e.g. "ErrorBackoff"
	Until      time.Time // when the call may be made again
	Err        error     // the error that started the limit; nil for the force_refresh limits
}

func (e *LimitError) Error() string {
	s := fmt.Sprintf("%s: no token call until %s (the %s limit: Config.%s, or Policy.%s of a Credential)", e.Credential, e.Until.Format(time.RFC3339), e.Limit, e.Limit, e.Limit)
	if e.Err != nil {
		s += ": last error: " + e.Err.Error()
	}
	return s
}

// Unwrap returns the error that started the limit.
func (e *LimitError) Unwrap() error { return e.Err }

// limits is the per-credential state of the limits above. Its methods are
// called from a FetchFunc, under the store's lock; times are the
// Credential's clock.
type limits struct {
	mu sync.Mutex

	rejectedAt  time.Time // the last rejection-triggered fetch
	rejectedErr error     // the rejection that triggered it

	failUntil time.Time // no token call before this: back-off
	failErr   error     // the configuration or quota error behind it

	forceDay  string // Beijing date forceUsed counts for
	forceUsed int
	lastForce time.Time
}

// admit returns a *LimitError if a fetch for why may not be made at now,
// and otherwise records a rejection-triggered one (cause is the rejection).
func (l *limits) admit(p *Policy, name string, why reason, cause error, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.failUntil) {
		return &LimitError{Credential: name, Limit: "ErrorBackoff", Until: l.failUntil, Err: l.failErr}
	}
	if why == reasonRejected && p.RejectedRefreshInterval > 0 {
		if until := l.rejectedAt.Add(p.RejectedRefreshInterval); !l.rejectedAt.IsZero() && now.Before(until) {
			return &LimitError{Credential: name, Limit: "RejectedRefreshInterval", Until: until, Err: l.rejectedErr}
		}
		l.rejectedAt, l.rejectedErr = now, cause
	}
	return nil
}

// takeForce counts one force_refresh at now, or returns a *LimitError when
// the interval or the daily limit holds it back.
func (l *limits) takeForce(p *Policy, name string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	bj := now.In(beijing)
	if day := bj.Format(time.DateOnly); l.forceDay != day {
		l.forceDay, l.forceUsed = day, 0
	}
	if p.ForceRefreshDailyLimit < 0 || l.forceUsed >= p.ForceRefreshDailyLimit {
		y, m, d := bj.Date()
		return &LimitError{Credential: name, Limit: "ForceRefreshDailyLimit", Until: time.Date(y, m, d+1, 0, 0, 0, 0, beijing)}
	}
	if until := l.lastForce.Add(p.ForceRefreshInterval); !l.lastForce.IsZero() && now.Before(until) {
		return &LimitError{Credential: name, Limit: "ForceRefreshInterval", Until: until}
	}
	l.forceUsed++
	l.lastForce = now
	return nil
}

// result records the outcome of a token call made at now: a configuration
// or quota error starts the back-off (a force_refresh's own quota error
// does not: normal calls still work), a success ends it.
func (l *limits) result(p *Policy, err error, forced bool, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		l.failUntil, l.failErr = time.Time{}, nil
	case forced:
	case p.ErrorBackoff > 0 && (IsConfigError(err) || IsQuotaExceeded(err)):
		l.failUntil, l.failErr = now.Add(p.ErrorBackoff), err
	}
}
