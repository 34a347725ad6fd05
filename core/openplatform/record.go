package openplatform

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// record is an authorizer's whole durable state, stored as ONE value under
// its authorizer_refresh_token key with a zero ExpiresAt (durable: no store
// expires it). Every transition of an authorizer is one fenced write of
// this value through the key's lock:
//
//   - a token refresh (the authorizer Credential's Fetch runs under the
//     lock with the record as FetchRequest.Stored, and returns the next
//     record: the new authorizer_access_token together with the refresh
//     token WeChat's reply carried — a rotated refresh token lands in the
//     same write as the access token it came with, never after it);
//   - an authorization (authorized, updateauthorized, the redirect) and a
//     withdrawal (unauthorized), each written forward by a compare-and-set
//     and ordered by the event's time (Since): an event not newer than the
//     state it would replace is ignored.
//
// So there is no second write for a crash or a store error to fall between.
type record struct {
	// State is stateAuthorized or stateWithdrawn.
	State string `json:"state"`
	// Since is when the authorization state was set, in Unix milliseconds:
	// the CreateTime of the push that set it (WeChat's clock), or the local
	// clock for Authorize (the redirect), Unauthorize and
	// ImportRefreshToken. 0 for a value written before records existed.
	Since int64 `json:"since"`
	// Code identifies the authorization code the state came from
	// (codeID: a truncated SHA-256, not the code), so that the second
	// delivery of one authorization (the redirect and the authorized push,
	// and each re-sent push) is recognised and changes nothing.
	Code string `json:"code,omitempty"`
	// Refresh is the authorizer_refresh_token ("" once withdrawn).
	Refresh string `json:"refresh_token,omitempty"`
	// Access is the authorizer_access_token and Expires its ExpiresAt in
	// Unix milliseconds ("" and 0 until one is fetched).
	Access  string `json:"access_token,omitempty"`
	Expires int64  `json:"expires_at,omitempty"`
}

const (
	stateAuthorized = "authorized"
	stateWithdrawn  = "withdrawn"
)

// recordPrefix starts every encoded record; a value without it is a bare
// refresh token or a withdrawal marker written by an earlier version.
const recordPrefix = "wechatconf.authorizer/1"

// withdrawnPrefix starts the withdrawal marker an earlier version wrote in
// place of the refresh token ("unauthorized@" + RFC 3339 time); it is still
// read.
const withdrawnPrefix = "unauthorized@"

// encode returns r as the stored token: durable (zero ExpiresAt).
func (r record) encode() core.Token {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // strings and integers only
	}
	return core.Token{Value: recordPrefix + string(b)}
}

// decodeRecord reads a stored value: a record, or what an earlier version
// stored under the key (a bare refresh token, a withdrawal marker). A
// value that is none of them wraps core.ErrCorrupt.
func decodeRecord(t core.Token) (record, error) {
	v := t.Value
	switch {
	case strings.HasPrefix(v, recordPrefix):
		var r record
		if err := json.Unmarshal([]byte(v[len(recordPrefix):]), &r); err != nil {
			return record{}, fmt.Errorf("%w: the authorizer's record does not parse", core.ErrCorrupt)
		}
		switch {
		case r.State == stateAuthorized && r.Refresh != "":
		case r.State == stateWithdrawn:
		default:
			// r.State is not quoted: a damaged value may hold anything.
			return record{}, fmt.Errorf("%w: the authorizer's record has %s state and %s refresh token", core.ErrCorrupt,
				map[bool]string{true: "an authorized", false: "an unknown"}[r.State == stateAuthorized], map[bool]string{true: "a", false: "no"}[r.Refresh != ""])
		}
		return r, nil
	case strings.HasPrefix(v, withdrawnPrefix):
		r := record{State: stateWithdrawn}
		if at, err := time.Parse(time.RFC3339, v[len(withdrawnPrefix):]); err == nil {
			r.Since = at.UnixMilli()
		}
		return r, nil
	case v == "" || strings.ContainsAny(v, "\x00\n\r\t {}\""):
		return record{}, fmt.Errorf("%w: the stored authorizer_refresh_token is not one", core.ErrCorrupt)
	}
	return record{State: stateAuthorized, Refresh: v}, nil // a bare refresh token
}

// served is the authorizer_access_token the record holds, the zero Token
// if none.
func (r record) served() core.Token {
	if r.State != stateAuthorized || r.Access == "" {
		return core.Token{}
	}
	return core.Token{Value: r.Access, ExpiresAt: time.UnixMilli(r.Expires)}
}

// replacedBy reports whether an authorization event that sets state at
// since (Unix ms) moves r forward. A newer event does; an older one does
// not. At the same time (CreateTime has whole seconds) an authorization
// wins over a withdrawal, whichever is applied first, so that the state
// that results does not depend on the order of delivery: a withdrawal
// wrongly kept would lose the merchant for good, while an authorization
// wrongly kept is refused by WeChat (61003: a *ReauthorizeError, backed
// off) until the merchant authorizes again. A record written before
// records existed (Since 0) is older than any event.
func (r record) replacedBy(state string, since int64) bool {
	if r.Since != since {
		return r.Since < since
	}
	return state == stateAuthorized
}

// codeID identifies an authorization code in a record without holding
// it: the first 12 bytes of its SHA-256, in hex.
func codeID(code string) string {
	sum := sha256.Sum256([]byte("wechatconf authorization code\x00" + code))
	return hex.EncodeToString(sum[:12])
}

// AuthorizationRecord is what an authorizer's stored record says — the
// value under Component.AuthorizationKey — for operators' tools (the
// wechatconf command's inspect) and audits. Its tokens are core.Secret
// values, which no rendering shows.
type AuthorizationRecord struct {
	// Withdrawn: the merchant withdrew the authorization; the tokens are
	// empty.
	Withdrawn bool
	// Since is when the state was set: the CreateTime of the push that set
	// it, or the clock of the process that applied a redirect, an
	// Unauthorize or an ImportRefreshToken; zero when not known (a value an
	// earlier version wrote).
	Since time.Time
	// RefreshToken is the authorizer_refresh_token.
	RefreshToken core.Secret
	// AccessToken is the authorizer_access_token held with it, and
	// ExpiresAt its expiry; zero before the first one is fetched.
	AccessToken core.Secret
	ExpiresAt   time.Time
}

// ParseAuthorizationRecord reads a value stored under an authorizer's
// AuthorizationKey: a record, or what an earlier version stored there (a
// bare refresh token, a withdrawal marker). A value that is none of them
// is an error wrapping core.ErrCorrupt.
func ParseAuthorizationRecord(stored core.Token) (AuthorizationRecord, error) {
	r, err := decodeRecord(stored)
	if err != nil {
		return AuthorizationRecord{}, err
	}
	out := AuthorizationRecord{Withdrawn: r.State == stateWithdrawn, RefreshToken: core.NewSecret(r.Refresh), AccessToken: core.NewSecret(r.Access)}
	if r.Since > 0 {
		out.Since = time.UnixMilli(r.Since)
	}
	if r.Expires > 0 {
		out.ExpiresAt = time.UnixMilli(r.Expires)
	}
	return out, nil
}
