package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wecomvendor"
)

// View is what get, inspect, watch, refresh and force print about one key,
// as text or as one JSON object (--json).
//
// An authorizer's record (a key ending in RecordSuffix) is shown by what
// it says rather than as one opaque value: Status is the authorization
// state (authorized, withdrawn) or corrupt, Since when that state was set,
// Value (--reveal), Fingerprint and Length are the refresh token's alone —
// the whole record changes at every access-token refresh, the refresh
// token only with a new authorization, so its fingerprint is what a backup
// is compared with — and ExpiresAt, ExpiresIn and Age are the held access
// token's.
//
// A WeCom vendor corp's record (a key of PlatformWeComAuthCorp, ending in
// /permanent_code: wecomvendor's Suite.AuthorizationKey) is shown the same
// way, its state StatusInstalled or StatusCancelled, Fingerprint and
// Length the permanent_code's and the expiry the corp's access token's;
// but Value stays empty even with --reveal: the permanent_code is never
// printed (a backup reads it with Suite.PermanentCode, and compares
// fingerprints).
type View struct {
	// Key is the store key.
	Key string `json:"key"`
	// Status is StatusValid, StatusExpired, StatusAbsent or StatusError;
	// for a record StatusAuthorized, StatusWithdrawn (a corp's record:
	// StatusInstalled, StatusCancelled) or StatusCorrupt.
	Status string `json:"status"`
	// Since is when a record's state was set, if known.
	Since *time.Time `json:"since,omitempty"`
	// Value is the value itself, with --reveal only.
	Value string `json:"value,omitempty"`
	// Fingerprint names the value without revealing it (see Fingerprint).
	Fingerprint string `json:"fingerprint,omitempty"`
	// Length is the value's length in bytes.
	Length int `json:"length,omitempty"`
	// ExpiresAt is the value's expiry, UTC.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// ExpiresIn is the time left, in seconds (negative once expired).
	ExpiresIn *float64 `json:"expires_in_seconds,omitempty"`
	// Age is the age in seconds, estimated from WeChat's 2-hour lifetime.
	Age *float64 `json:"age_seconds,omitempty"`
	// Previous is refresh's and force's: the fingerprint of the value
	// replaced (or kept).
	Previous string `json:"previous_fingerprint,omitempty"`
	// Replaced is refresh's and force's: whether the value changed.
	Replaced *bool `json:"replaced,omitempty"`
	// Lock is inspect's, on a store that can tell it (Redis).
	Lock *LockView `json:"lock,omitempty"`
	// Ledger is inspect's: the last fetch and today's count from the
	// credential's fetch ledger, when it has one (see history).
	Ledger *LedgerSummary `json:"ledger,omitempty"`
	// Error says why Status is StatusError or StatusCorrupt.
	Error string `json:"error,omitempty"`
	// Time is watch's: when the change was seen, UTC.
	Time *time.Time `json:"time,omitempty"`
}

// LockView is a key's refresh lock, as far as the store tells it.
type LockView struct {
	// Held says whether a refresh holds the lock now.
	Held bool `json:"held"`
	// Lease is the lease left on a held lock, in seconds.
	Lease *float64 `json:"lease_seconds,omitempty"`
}

// LedgerSummary is what inspect shows of a credential's fetch ledger
// (core.Ledger; history prints it whole).
type LedgerSummary struct {
	// LastFetch is the newest fetch recorded: when (UTC), by which
	// instance, why (core.FetchRecord's Reason).
	LastFetch  *time.Time `json:"last_fetch,omitempty"`
	LastBy     string     `json:"last_by,omitempty"`
	LastReason string     `json:"last_reason,omitempty"`
	// Day is today in Beijing time ("2006-01-02"), the day WeChat's quotas
	// count; Fetches and Forced the fleet's fetches and forced fetches
	// recorded that day.
	Day     string `json:"day"`
	Fetches int    `json:"fetches_today"`
	Forced  int    `json:"forced_today,omitempty"`
	// Error says why the ledger could not be read (a corrupt ledger, a
	// store failure); the other fields are then empty.
	Error string `json:"error,omitempty"`
}

// readLedgerSummary reads the ledger of the credential under key; nil when
// it has none.
func readLedgerSummary(ctx context.Context, st core.TokenStore, key string, now time.Time) *LedgerSummary {
	l, err := core.ReadLedger(ctx, st, key)
	switch {
	case errors.Is(err, core.ErrNotFound):
		return nil
	case err != nil:
		return &LedgerSummary{Error: errText(err)}
	}
	today := l.Today(now)
	s := &LedgerSummary{Day: today.Day, Fetches: today.Fetches, Forced: today.Forced}
	if r, ok := l.Last(); ok {
		at := r.At.UTC()
		s.LastFetch, s.LastBy, s.LastReason = &at, r.Instance, r.Reason
	}
	return s
}

// String is the summary as text, for inspect's line.
func (s *LedgerSummary) String() string {
	if s.Error != "" {
		return "ledger error=" + s.Error
	}
	var b strings.Builder
	if s.LastFetch != nil {
		fmt.Fprintf(&b, "last_fetch=%s by=%s reason=%s ", s.LastFetch.Format(time.RFC3339), cell(s.LastBy), cell(s.LastReason))
	}
	fmt.Fprintf(&b, "today=%d", s.Fetches)
	if s.Forced > 0 {
		fmt.Fprintf(&b, " forced_today=%d", s.Forced)
	}
	return b.String()
}

// The statuses of a View.
const (
	StatusValid   = "valid"
	StatusExpired = "expired"
	StatusAbsent  = "absent"
	StatusError   = "error"
	// An authorizer's record: its state, or a value that does not parse.
	StatusAuthorized = "authorized"
	StatusWithdrawn  = "withdrawn"
	StatusCorrupt    = "corrupt"
	// A WeCom vendor corp's record: the app installed (create_auth, the
	// redirect, an import) or the install cancelled (cancel_auth).
	StatusInstalled = "installed"
	StatusCancelled = "cancelled"
	// StatusLedger is ls's for a credential's fetch ledger (a key ending
	// in core.LedgerKeySuffix): no token, no expiry (see history).
	StatusLedger = "ledger"
)

// RecordSuffix ends the key of an Open Platform authorizer's durable
// record (openplatform's Component.AuthorizationKey): one value holding the
// authorization state, the refresh token and the current access token.
const RecordSuffix = "/authorizer_refresh_token"

// Fingerprint names a value without revealing it: "sha256:" and the first
// 8 hex digits of its SHA-256, "" for "". Enough to tell two values apart
// and to compare what two hosts see, nothing an attacker can use.
func Fingerprint(v string) string {
	if v == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(v))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// isCorpRecord reports whether key is a WeCom vendor corp's record
// (PlatformWeComAuthCorp; not its fetch ledger).
func isCorpRecord(key string) bool {
	return parseCredentialKey(key).Platform == PlatformWeComAuthCorp
}

// viewOf describes token t stored under key.
func viewOf(key string, t core.Token, reveal bool, now time.Time) View {
	switch {
	case strings.HasSuffix(key, RecordSuffix):
		return recordViewOf(key, t, reveal, now)
	case isCorpRecord(key):
		return corpRecordViewOf(key, t, now)
	}
	v := View{Key: key, Status: StatusValid, Fingerprint: Fingerprint(t.Value), Length: len(t.Value)}
	if reveal {
		v.Value = t.Value
	}
	lifetime := wechatLifetime
	if k := parseCredentialKey(key); k.Platform == PlatformWeComSuite && k.Kind == "suite_ticket" {
		lifetime = wecomvendor.SuiteTicketLifetime // its ExpiresAt is the push's TimeStamp + 30 min
	}
	v.setExpiry(t.ExpiresAt, now, lifetime)
	return v
}

// setExpiry sets v's expiry fields from exp, if not zero, and marks v
// expired once exp has passed; the age is estimated from lifetime, the
// value's lifetime when it was issued.
func (v *View) setExpiry(exp time.Time, now time.Time, lifetime time.Duration) {
	if exp.IsZero() {
		return
	}
	at := exp.UTC()
	left := exp.Sub(now).Round(time.Second)
	in := left.Seconds()
	v.ExpiresAt, v.ExpiresIn = &at, &in
	if left <= 0 {
		v.Status = StatusExpired
	}
	if left <= lifetime {
		age := (lifetime - left).Seconds()
		v.Age = &age
	}
}

// recordViewOf describes an authorizer's record t stored under key: its
// state, the refresh token (revealed with reveal, never the record
// itself) and the access token's expiry. A value that does not parse is
// status corrupt, with no value, fingerprint or length.
func recordViewOf(key string, t core.Token, reveal bool, now time.Time) View {
	rec, err := openplatform.ParseAuthorizationRecord(t)
	if err != nil {
		return View{Key: key, Status: StatusCorrupt, Error: err.Error()}
	}
	v := View{Key: key, Status: StatusAuthorized}
	if rec.Withdrawn {
		v.Status = StatusWithdrawn
	}
	if !rec.Since.IsZero() {
		since := rec.Since.UTC()
		v.Since = &since
	}
	if refresh := rec.RefreshToken.Reveal(); refresh != "" {
		v.Fingerprint, v.Length = Fingerprint(refresh), len(refresh)
		if reveal {
			v.Value = refresh
		}
	}
	if !rec.AccessToken.IsZero() {
		v.setExpiry(rec.ExpiresAt, now, wechatLifetime)
		v.Status = StatusAuthorized // an expired access token is fetched again: the record is not expired
	}
	return v
}

// corpRecordViewOf describes a WeCom vendor corp's record t stored under
// key: its state (installed, cancelled), since, the fingerprint and length
// of the permanent_code — never the code itself, with --reveal neither —
// and the corp's access token's expiry. A value that does not parse is
// status corrupt, with no value, fingerprint or length.
func corpRecordViewOf(key string, t core.Token, now time.Time) View {
	rec, err := wecomvendor.ParseAuthorizationRecord(t)
	if err != nil {
		return View{Key: key, Status: StatusCorrupt, Error: err.Error()}
	}
	v := View{Key: key, Status: StatusInstalled}
	if rec.Withdrawn {
		v.Status = StatusCancelled
	}
	if !rec.Since.IsZero() {
		since := rec.Since.UTC()
		v.Since = &since
	}
	if code := rec.PermanentCode.Reveal(); code != "" {
		v.Fingerprint, v.Length = Fingerprint(code), len(code)
	}
	if !rec.AccessToken.IsZero() {
		v.setExpiry(rec.ExpiresAt, now, wechatLifetime)
		v.Status = StatusInstalled // an expired access token is fetched again: the record is not expired
	}
	return v
}

// read gets key from st and describes it; a missing key is status absent.
func read(ctx context.Context, st core.TokenStore, key string, reveal bool) (View, error) {
	t, err := st.Get(ctx, key)
	switch {
	case errors.Is(err, core.ErrNotFound):
		return View{Key: key, Status: StatusAbsent}, nil
	case err != nil:
		return View{Key: key, Status: StatusError, Error: err.Error()}, err
	}
	return viewOf(key, t, reveal, time.Now()), nil
}

// print writes v as text or JSON.
func (e *env) print(v View) {
	if e.g.json {
		e.printJSON(v)
		return
	}
	var b strings.Builder
	if v.Time != nil {
		fmt.Fprintf(&b, "%s  ", v.Time.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "%s  %s", v.Key, v.Status)
	if v.Since != nil {
		fmt.Fprintf(&b, " since=%s", v.Since.Format(time.RFC3339))
	}
	record, corp := strings.HasSuffix(v.Key, RecordSuffix), isCorpRecord(v.Key)
	switch {
	case v.Status == StatusAbsent || v.Status == StatusError || v.Status == StatusCorrupt:
		if v.Error != "" {
			fmt.Fprintf(&b, "  error=%s", v.Error)
		}
	case record && v.Status == StatusWithdrawn, corp && v.Status == StatusCancelled:
		// No token: nothing more to show.
	default:
		switch {
		case record:
			b.WriteString("  refresh_token:") // the value, fingerprint and length are the refresh token's
		case corp:
			b.WriteString("  permanent_code: held") // its fingerprint and length; never its value
		}
		if v.Value != "" {
			fmt.Fprintf(&b, "  value=%s", v.Value)
		}
		fmt.Fprintf(&b, "  fingerprint=%s length=%d", v.Fingerprint, v.Length)
		if v.Previous != "" {
			fmt.Fprintf(&b, " previous=%s", v.Previous)
		}
		if v.Replaced != nil {
			fmt.Fprintf(&b, " replaced=%t", *v.Replaced)
		}
		if (record || corp) && v.ExpiresAt != nil {
			b.WriteString("  access_token:")
		}
		if v.ExpiresAt != nil {
			fmt.Fprintf(&b, "  expires_at=%s left=%s", v.ExpiresAt.Format(time.RFC3339), seconds(*v.ExpiresIn))
		}
		if v.Age != nil {
			fmt.Fprintf(&b, " age≈%s", seconds(*v.Age))
		}
	}
	if v.Lock != nil {
		fmt.Fprintf(&b, "  lock=%s", v.Lock)
	}
	if v.Ledger != nil {
		fmt.Fprintf(&b, "  %s", v.Ledger)
	}
	fmt.Fprintln(e.stdout, b.String())
}

// String is the lock as text: "held lease=1.5s" or "free".
func (l *LockView) String() string {
	if l == nil {
		return "-"
	}
	if l.Held {
		return "held lease=" + seconds(*l.Lease).Round(time.Millisecond).String()
	}
	return "free"
}

// seconds converts a JSON field in seconds back to a duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// printJSON writes v as one line of JSON.
func (e *env) printJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil { // only plain fields: cannot happen
		panic(err)
	}
	fmt.Fprintf(e.stdout, "%s\n", b)
}

// withdrawnError says that the record v shows withdrawn (a corp's:
// cancelled) holds nothing usable: exit code 3, as for a key that is
// absent.
func withdrawnError(v View) error {
	since := ""
	if v.Since != nil {
		since = " on " + v.Since.Format(time.RFC3339)
	}
	if v.Status == StatusCancelled {
		return fmt.Errorf("%s: the corp cancelled the install%s: no permanent_code, nothing usable until it installs the app again", v.Key, since)
	}
	return fmt.Errorf("%s: the merchant withdrew the authorization%s: no refresh token, nothing usable until it authorizes again", v.Key, since)
}
