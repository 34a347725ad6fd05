package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// formatVersion is the version of the token hash this package writes, its
// field v. A later format bumps it; this package refuses a version it does
// not know rather than misread it.
const formatVersion = "1"

// The fields of a token hash, format version 1.
const (
	fieldVersion   = "v" // formatVersion
	fieldKey       = "k" // the user key, checked on every read
	fieldValue     = "t" // the token value
	fieldExpiresAt = "e" // ExpiresAt in Unix milliseconds, "" for the zero time
)

// errNotStored is what decode returns when no field is stored: the key is
// absent.
var errNotStored = errors.New("not stored")

// names are the Redis names of one user key.
type names struct {
	token string // the token hash
	lock  string // the refresh lock
	wake  string // the Pub/Sub channel on which releases are announced
	claim string // the claim string (core.ClaimStore), apart from the token
}

// tagLen is how many bytes of the key's SHA-256 make its hash tag (128 bits,
// 32 hex digits). The full key is kept in the hash and checked on every read,
// so even a collision would be detected rather than served.
const tagLen = 16

// names returns the Redis names of key: prefix, then a hash tag made of the
// hex SHA-256 of the key, then the role. The hash tag is the first "{…}"
// after the prefix, so the four names share a Cluster slot whatever the
// key and the prefix contain ("{", "}" included), and any key maps to
// exactly one slot.
func (s *Store) names(key string) names {
	sum := sha256.Sum256([]byte(key))
	var b strings.Builder
	b.Grow(len(s.prefix) + 2 + 2*tagLen)
	b.WriteString(s.prefix)
	b.WriteByte('{')
	b.WriteString(hex.EncodeToString(sum[:tagLen]))
	b.WriteByte('}')
	base := b.String()
	return names{token: base + ":token", lock: base + ":lock", wake: base + ":wake", claim: base + ":claim"}
}

// claimName returns names(key).claim, built with one allocation: Claim
// needs no other name.
func (s *Store) claimName(key string) string {
	const role = ":claim"
	sum := sha256.Sum256([]byte(key))
	var tag [2 * tagLen]byte
	hex.Encode(tag[:], sum[:tagLen])
	var b strings.Builder
	b.Grow(len(s.prefix) + 2 + len(tag) + len(role))
	b.WriteString(s.prefix)
	b.WriteByte('{')
	b.Write(tag[:])
	b.WriteByte('}')
	b.WriteString(role)
	return b.String()
}

// encodeExpiresAt returns field e of t's ExpiresAt.
func encodeExpiresAt(at time.Time) string {
	if at.IsZero() {
		return ""
	}
	return strconv.FormatInt(at.UnixMilli(), 10)
}

// expireAt returns the PEXPIREAT argument for a token expiring at at: grace
// after at, or after now if at is already past; "" (no expiry) for the zero
// time.
func expireAt(at time.Time, grace time.Duration) string {
	if at.IsZero() {
		return ""
	}
	if now := time.Now(); at.Before(now) {
		at = now
	}
	return strconv.FormatInt(at.Add(grace).UnixMilli(), 10)
}

// decode returns the token of key from the fields v, k, t and e of its hash,
// as go-redis returns them (string or nil). It returns errNotStored when no
// field is set, and an error wrapping core.ErrCorrupt when the fields do not
// make a token of key.
func decode(key string, v, k, t, e any) (core.Token, error) {
	if v == nil && k == nil && t == nil && e == nil {
		return core.Token{}, errNotStored
	}
	corrupt := func(format string, args ...any) (core.Token, error) {
		return core.Token{}, fmt.Errorf("%w: %s", core.ErrCorrupt, fmt.Sprintf(format, args...))
	}
	vs, ok := v.(string)
	switch {
	case !ok:
		return corrupt("no format version (field %s)", fieldVersion)
	case vs != formatVersion:
		if n, err := strconv.Atoi(vs); err == nil && n > 1 {
			return corrupt("format version %d is newer than this redisstore reads (%s): upgrade it", n, formatVersion)
		}
		return corrupt("unknown format version %q", vs)
	}
	if ks, ok := k.(string); !ok || ks != key {
		return corrupt("it holds the token of another key (%v), not of %q", k, key)
	}
	ts, ok := t.(string)
	if !ok || ts == "" {
		return corrupt("no token value (field %s)", fieldValue)
	}
	es, ok := e.(string)
	if !ok {
		return corrupt("no expiry (field %s)", fieldExpiresAt)
	}
	var at time.Time
	if es != "" {
		ms, err := strconv.ParseInt(es, 10, 64)
		if err != nil {
			return corrupt("bad expiry %q (field %s)", es, fieldExpiresAt)
		}
		at = time.UnixMilli(ms)
	}
	return core.Token{Value: ts, ExpiresAt: at}, nil
}
