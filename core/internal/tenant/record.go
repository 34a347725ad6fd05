package tenant

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// Record is a tenant's whole durable state, stored as ONE value under its
// record key with a zero ExpiresAt (durable: no store expires it). Every
// transition of a tenant is one fenced write of this value through the
// key's lock:
//
//   - a token refresh (the tenant Credential's Fetch runs under the lock
//     with the record as FetchRequest.Stored, and returns the next record:
//     the new access token together with the secret WeChat's reply carried
//     — a rotated secret lands in the same write as the access token it
//     came with, never after it);
//   - an authorization (a pushed or redirected code, exchanged) and a
//     withdrawal, each written forward by a compare-and-set and ordered by
//     the event's time (Since): an event not newer than the state it would
//     replace is ignored.
//
// So there is no second write for a crash or a store error to fall between.
type Record struct {
	// State is StateAuthorized or StateWithdrawn.
	State string `json:"state"`
	// Since is when the authorization state was set, in Unix milliseconds:
	// the time of the push that set it (WeChat's clock: CreateTime,
	// TimeStamp), or the local clock for a redirect, an operator's
	// withdrawal and an import. 0 for a value an earlier version wrote.
	Since int64 `json:"since"`
	// Code identifies the authorization code the state came from (CodeID:
	// a truncated SHA-256, not the code), so that the second delivery of
	// one authorization (the redirect and the push, each re-sent push) is
	// recognised and changes nothing.
	Code string `json:"code,omitempty"`
	// Secret is the tenant's durable secret — the authorizer_refresh_token
	// of an Open Platform authorizer, the permanent_code of a WeCom corp —
	// ("" once withdrawn). Its JSON name is the one Open Platform records
	// were first stored with.
	Secret string `json:"refresh_token,omitempty"`
	// Alt is another secret kept beside Secret when two exchanges of the
	// tenant crossed and the store cannot tell which one WeChat made last
	// (see Platform.Authorize): the next token fetch tries Secret, then
	// Alt, and keeps the one WeChat takes. "" almost always.
	Alt string `json:"alt,omitempty"`
	// Access is the tenant's access token and Expires its ExpiresAt in
	// Unix milliseconds ("" and 0 until one is fetched).
	Access  string `json:"access_token,omitempty"`
	Expires int64  `json:"expires_at,omitempty"`
}

// The states of a Record.
const (
	StateAuthorized = "authorized"
	StateWithdrawn  = "withdrawn"
)

// Format is how one platform's records are stored: the prefix that starts
// each, and what an earlier version stored under the key, still read.
type Format struct {
	// Prefix starts every encoded record ("wechatconf.authorizer/1").
	Prefix string
	// Tenant and Secret name the tenant and its secret in errors
	// ("authorizer", "authorizer_refresh_token"); Owner who authorizes and
	// withdraws ("merchant").
	Tenant, Secret, Owner string
	// Legacy: a value without Prefix is a bare secret, or a withdrawal
	// marker ("unauthorized@" + RFC 3339 time), as Open Platform stored
	// them before records existed. Without it such a value is corrupt.
	Legacy bool
}

// withdrawnPrefix starts the withdrawal marker an earlier version wrote in
// place of the refresh token; it is still read (Format.Legacy).
const withdrawnPrefix = "unauthorized@"

// Encode returns r as the stored token: durable (zero ExpiresAt).
func (f Format) Encode(r Record) core.Token {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // strings and integers only
	}
	return core.Token{Value: f.Prefix + string(b)}
}

// Decode reads a stored value: a record, or (Legacy) what an earlier
// version stored under the key. A value that is none of them wraps
// core.ErrCorrupt; the error never quotes the value.
func (f Format) Decode(t core.Token) (Record, error) {
	v := t.Value
	switch {
	case strings.HasPrefix(v, f.Prefix):
		var r Record
		if err := json.Unmarshal([]byte(v[len(f.Prefix):]), &r); err != nil {
			return Record{}, fmt.Errorf("%w: the %s's record does not parse", core.ErrCorrupt, f.Tenant)
		}
		switch {
		case r.State == StateAuthorized && r.Secret != "":
		case r.State == StateWithdrawn:
		default:
			// r.State is not quoted: a damaged value may hold anything.
			return Record{}, fmt.Errorf("%w: the %s's record has %s state and holds %s %s", core.ErrCorrupt, f.Tenant,
				map[bool]string{true: "an authorized", false: "an unknown"}[r.State == StateAuthorized], map[bool]string{true: "its", false: "no"}[r.Secret != ""], f.Secret)
		}
		return r, nil
	case !f.Legacy:
		return Record{}, fmt.Errorf("%w: the stored value is not a %s record", core.ErrCorrupt, f.Tenant)
	case strings.HasPrefix(v, withdrawnPrefix):
		r := Record{State: StateWithdrawn}
		if at, err := time.Parse(time.RFC3339, v[len(withdrawnPrefix):]); err == nil {
			r.Since = at.UnixMilli()
		}
		return r, nil
	case v == "" || strings.ContainsAny(v, "\x00\n\r\t {}\""):
		return Record{}, fmt.Errorf("%w: the stored %s is not one", core.ErrCorrupt, f.Secret)
	}
	return Record{State: StateAuthorized, Secret: v}, nil // a bare secret
}

// Served is the access token the record holds, the zero Token if none.
func (r Record) Served() core.Token {
	if r.State != StateAuthorized || r.Access == "" {
		return core.Token{}
	}
	return core.Token{Value: r.Access, ExpiresAt: time.UnixMilli(r.Expires)}
}

// ReplacedBy reports whether an authorization event that sets state at
// since (Unix ms) moves r forward. A newer event does; an older one does
// not. At the same time (WeChat's event times have whole seconds) an
// authorization wins over a withdrawal, whichever is applied first, so
// that the state that results does not depend on the order of delivery: a
// withdrawal wrongly kept would lose the tenant for good, while an
// authorization wrongly kept is refused by WeChat (a reauthorization
// error, backed off) until the tenant authorizes again. A record written
// before records existed (Since 0) is older than any event.
func (r Record) ReplacedBy(state string, since int64) bool {
	if r.Since != since {
		return r.Since < since
	}
	return state == StateAuthorized
}

// CodeID identifies an authorization code in a record without holding it:
// the first 12 bytes of its SHA-256, in hex.
func CodeID(code string) string {
	sum := sha256.Sum256([]byte("wechatconf authorization code\x00" + code))
	return hex.EncodeToString(sum[:12])
}
