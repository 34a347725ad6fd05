package openplatform

import (
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/tenant"
)

// recordFormat is how an authorizer's record (tenant.Record: its
// authorizer_refresh_token with its authorizer_access_token, the state of
// the authorization and the time of the event that set it) is stored under
// its authorizer_refresh_token key. Legacy: a value written there by an
// earlier version — a bare refresh token, an "unauthorized@" marker — is
// read as a record of unknown time and replaced by the first refresh.
var recordFormat = tenant.Format{
	Prefix: "wechatconf.authorizer/1", Tenant: "authorizer", Secret: "authorizer_refresh_token", Owner: "merchant", Legacy: true,
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
	r, err := recordFormat.Decode(stored)
	if err != nil {
		return AuthorizationRecord{}, err
	}
	out := AuthorizationRecord{Withdrawn: r.State == tenant.StateWithdrawn, RefreshToken: core.NewSecret(r.Secret), AccessToken: core.NewSecret(r.Access)}
	if r.Since > 0 {
		out.Since = time.UnixMilli(r.Since)
	}
	if r.Expires > 0 {
		out.ExpiresAt = time.UnixMilli(r.Expires)
	}
	return out, nil
}
