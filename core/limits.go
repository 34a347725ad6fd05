package core

import (
	"errors"
	"fmt"
	"net/http"
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
	// 42001). Limited per rejected value by Config.RejectedRefreshInterval;
	// escalates to force_refresh when a normal fetch hands the rejected
	// value back.
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
	// fetches of one credential that rejections of the same token value
	// triggered (a rejection of another value is never held back).
	DefaultRejectedRefreshInterval = 30 * time.Second
	// DefaultErrorBackoff is how long a token call refused with a
	// configuration or quota error, or answered with a reply that is not a
	// token (a *ReplyError of HTTP 200), is not made again.
	DefaultErrorBackoff = time.Minute
	// ClassicTokenDailyLimit is how many classic /cgi-bin/token calls
	// WeChat allows an AppID per Beijing day (2,000; 45009 beyond): the
	// fetch ledger's EventQuota thresholds for it.
	ClassicTokenDailyLimit = 2000
)

// maxTrustedLifetime caps how long a fetched credential is trusted,
// whatever expires_in says: WeChat's live 7200 s, and an absurd expires_in
// (billions of seconds) must neither overflow nor keep a dead token for
// years. A rejection still replaces the token at once.
const maxTrustedLifetime = 24 * time.Hour

// beijing is the zone WeChat's daily quotas reset in (midnight, UTC+8).
var beijing = time.FixedZone("CST", 8*60*60)

// LimitError is returned instead of a token call that a limit held back;
// no request was sent to WeChat. The limits, each counted per credential in
// one process (a Conf, a Credential):
//
//   - RejectedRefreshInterval: a rejection-triggered fetch for a token value
//     that a rejection-triggered fetch already replaced within the interval
//     (the fetch handed the rejected value back, or the store holds it
//     again). It stops a loop on one rejected token; a rejection of any
//     other value — the token that fetch brought, a token someone else
//     issued — is never held back by it. What bounds an API that rejects
//     every token is the store's compare-and-refresh: one fetch per new
//     token per fleet.
//   - ErrorBackoff: any token call inside Config.ErrorBackoff of a token
//     call refused with a configuration or quota error (an *APIError),
//     answered with a reply that is not a token (a *ReplyError of HTTP 200:
//     no token, an expires_in that is missing, 0 or negative, JSON that is
//     cut short or invalid), whose Fetch returned an empty value
//     (ErrEmptyToken), whose secret WeChat refused (ErrSecretRefused), or
//     whose SecretSource failed (*SecretSourceError). Each process makes
//     at most one such call per ErrorBackoff: 8 processes sharing a store
//     make at most 8 in all.
//   - ForceRefreshInterval, ForceRefreshDailyLimit: a force_refresh beyond
//     them.
//
// It wraps the error that started the limit, when there is one, so
// IsConfigError, IsQuotaExceeded and IsInvalidCredential still see it, and
// errors.As still reaches an *APIError or *ReplyError; reach the
// LimitError itself with errors.As. Its text holds no token or secret.
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

	// The last rejection-triggered fetch: the rejected value it replaced,
	// when it was made, and the rejection that triggered it. Only the last
	// one is kept: a value a fetch replaced is never served again unless
	// a fetch hands it back, which makes it the last one.
	rejectedValue string
	rejectedAt    time.Time
	rejectedErr   error

	failUntil time.Time // no token call before this: back-off
	failErr   error     // the error behind it (see backsOff)
	// failInput is the input of the call that started the back-off
	// (inputOf): only a call from the same input is held back.
	failInput string

	forceDay  string // Beijing date forceUsed counts for
	forceUsed int
	lastForce time.Time
}

// admit returns a *LimitError if a fetch for why may not be made at now,
// and otherwise records a rejection-triggered one. rejected is the value
// the fetch replaces (the flight's stale value; for a rejection, the token
// WeChat rejected) and cause the rejection: a rejection-triggered fetch is
// held back only when one for the same value was made within
// Policy.RejectedRefreshInterval.
//
// The back-off holds only a call from the same input as the one that
// started it (input, see inputOf): WeChat's answer to another stored value
// (a re-authorization written meanwhile) or another prepared input (a new
// ticket pushed) is not known yet.
func (l *limits) admit(p *Policy, name string, why reason, rejected string, cause error, now time.Time, input string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.failUntil) && input == l.failInput {
		return &LimitError{Credential: name, Limit: "ErrorBackoff", Until: l.failUntil, Err: l.failErr}
	}
	if why == reasonRejected && p.RejectedRefreshInterval > 0 {
		if until := l.rejectedAt.Add(p.RejectedRefreshInterval); !l.rejectedAt.IsZero() && rejected == l.rejectedValue && now.Before(until) {
			return &LimitError{Credential: name, Limit: "RejectedRefreshInterval", Until: until, Err: l.rejectedErr}
		}
		l.rejectedValue, l.rejectedAt, l.rejectedErr = rejected, now, cause
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

// result records the outcome of a token call made at now: an error that
// backsOff starts the back-off (a force_refresh's own error does not:
// normal calls still work), a success ends it.
func (l *limits) result(p *Policy, err error, forced bool, now time.Time, input string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		// A fetch that failed replaced nothing: it cannot be a loop on the
		// rejected token, and the next rejection of it must get its fetch.
		l.rejectedValue, l.rejectedAt, l.rejectedErr = "", time.Time{}, nil
	}
	switch {
	case err == nil:
		l.failUntil, l.failErr = time.Time{}, nil
	case forced:
	case p.ErrorBackoff > 0 && backsOff(err):
		l.failUntil, l.failErr, l.failInput = now.Add(p.ErrorBackoff), err, input
	}
}

// backsOff reports whether a token call that failed with err must not be
// made again for Policy.ErrorBackoff: the issuer answered, and answering
// again at once would not change its answer. That is a configuration or
// quota error, a reply of HTTP 200 that is not a token (a *ReplyError: no
// token, a missing, zero or negative expires_in, JSON cut short or
// invalid), a Fetch that returned an empty value (ErrEmptyToken), a
// secret WeChat refused (ErrSecretRefused, whatever the code) or a
// SecretSource that failed (*SecretSourceError): reading the source again
// at once would not change its answer either, and the back-off is what
// bounds the source's reads.
// Busy replies, HTTP 5xx and network errors are retried inside the call
// and do not back off; nor does another HTTP status, which a kind's
// Rejects may read as a rejection of the token it Needs.
func backsOff(err error) bool {
	if IsConfigError(err) || IsQuotaExceeded(err) || errors.Is(err, ErrEmptyToken) || errors.Is(err, ErrSecretRefused) {
		return true
	}
	if se := (*SecretSourceError)(nil); errors.As(err, &se) {
		return true
	}
	var re *ReplyError
	return errors.As(err, &re) && re.StatusCode == http.StatusOK
}

// inputOf is what a token call is made from, for the back-off: the stored
// value it starts from and its prepared input when that is a string (a
// pushed ticket). The needed credential is not in it: a token refused
// with the same secret or ticket is refused again whatever it was fetched
// with.
func inputOf(in FetchRequest) string {
	s := in.Stored.Value
	if p, ok := in.Prepared.(string); ok {
		s += "\x00" + p
	}
	return s
}
