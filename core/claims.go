package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ClaimStore is implemented by a TokenStore that keeps claims natively: a
// short string created under a key only when the key holds no live claim,
// which the store itself forgets once its time to live has passed. It is
// the one extension of the TokenStore contract that Dedup needs to make
// "every push handled once" a property of the whole fleet, and it is
// optional: a store that lacks it gets ClaimsOver's emulation on top of
// its Refresh lock (see ClaimStoreFor), which is correct but leaves one key
// behind per claim.
//
// # Keys, values and time
//
// Claim keys obey ValidateKey, as token keys do, and live apart from them:
// a claim and a token under the same key share nothing, and ListKeys never
// lists a claim. Values are non-empty UTF-8 strings of at most
// MaxClaimValueLen bytes without NUL, compared whole. ttl is at least a millisecond; a store
// may round it up to its own granularity (etcd leases are whole seconds)
// but never down. A claim is live from the moment it is written until ttl
// has passed on the store's own clock (the Redis or PostgreSQL server's,
// the etcd cluster's lease; the local clock for a memory or file store),
// and once it is no longer live it is as if it had never been: nothing
// brings it back. Every method honours ctx, and a store that expires
// claims lazily (PostgreSQL, files) removes the expired ones in bounded
// batches, never in one unbounded sweep.
//
// CheckClaim does the argument checks every method starts with.
type ClaimStore interface {
	// Claim stores value under key, live for ttl, if key holds no live
	// claim, and returns the value key holds after the call: value itself
	// when this call made the claim, the other claim's value when one was
	// live. Among any number of concurrent callers across every process,
	// exactly one gets its own value back. An error means nothing is
	// known: the claim may or may not have been made (a write that landed
	// and whose reply was lost); calling Claim again with the same value
	// tells, since it returns value when the claim is this caller's.
	Claim(ctx context.Context, key, value string, ttl time.Duration) (held string, err error)
	// CompareAndSwapClaim replaces the live claim under key by value, live
	// for ttl from now, if and only if it holds old; value "" deletes the
	// claim instead (ttl is then ignored). swapped is false, with a nil
	// error, when key holds no live claim equal to old: it expired, was
	// deleted or was replaced, and nothing was written. A claim that
	// expired is never brought back by a late CompareAndSwapClaim of its
	// former holder.
	CompareAndSwapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (swapped bool, err error)
}

// MaxClaimValueLen is the longest claim value, in bytes, a ClaimStore
// accepts.
const MaxClaimValueLen = 256

// CheckClaim is the check every ClaimStore method starts with: CheckCall,
// then value (when it is not "" and not allowed to be) and ttl. allowEmpty
// is true for CompareAndSwapClaim's new value, where "" means delete.
func CheckClaim(ctx context.Context, key, value string, ttl time.Duration, allowEmpty bool) error {
	if err := CheckCall(ctx, key); err != nil {
		return err
	}
	switch {
	case value == "" && allowEmpty:
		return nil
	case value == "":
		return errors.New("empty claim value")
	case len(value) > MaxClaimValueLen:
		return fmt.Errorf("claim value of %d bytes is longer than %d", len(value), MaxClaimValueLen)
	case strings.IndexByte(value, 0) >= 0:
		return errors.New("claim value contains NUL")
	case !utf8.ValidString(value):
		return errors.New("claim value is not valid UTF-8")
	case ttl < time.Millisecond:
		return fmt.Errorf("claim time to live %v is shorter than a millisecond", ttl)
	}
	return nil
}

// ClaimStoreFor returns s itself when it implements ClaimStore (native is
// then true), and ClaimsOver(s) otherwise.
func ClaimStoreFor(s TokenStore) (c ClaimStore, native bool) {
	if c, ok := s.(ClaimStore); ok {
		return c, true
	}
	return ClaimsOver(s), false
}

// ClaimsOver returns claims emulated on the TokenStore contract alone, for
// a custom store that does not implement ClaimStore: each claim is a token
// under "<key>" whose ExpiresAt is the end of its life, made and replaced
// through Refresh (so under the store's lock, with its fenced write), and
// judged live by this process's clock. It is correct across the fleet as
// long as the fleet's clocks agree to well within a claim's ttl, and it
// has two costs a native ClaimStore does not:
//
//   - a claim is two or three store calls (a Get, then a Refresh that
//     takes the lock), not one;
//   - nothing is ever deleted: an expired or released claim stays in the
//     store as a token nobody uses, so the store grows by one small key
//     per push until something else removes them.
//
// Implement ClaimStore on the store to avoid both.
func ClaimsOver(s TokenStore) ClaimStore { return tokenClaims{s: s, now: time.Now} }

// tokenClaims is ClaimsOver's emulation.
type tokenClaims struct {
	s   TokenStore
	now func() time.Time
}

// A released claim is replaced by a token that expired long ago (a token
// can be neither deleted nor empty): claimTombstone, which is a value like
// any other (a claim may hold it too), with the ExpiresAt claimReleased.
// Liveness is told by ExpiresAt alone.
const claimTombstone = "\x01released"

// claimReleased is a released claim's ExpiresAt: past on every clock, and
// not the zero time or the Unix epoch, which a store may encode specially.
var claimReleased = time.UnixMilli(1)

func (c tokenClaims) live(t Token) bool {
	return t.Value != "" && c.now().Before(t.ExpiresAt)
}

func (c tokenClaims) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	if err := CheckClaim(ctx, key, value, ttl, false); err != nil {
		return "", err
	}
	for range 8 {
		cur, err := c.s.Get(ctx, key)
		switch {
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt):
			cur = Token{}
		case err != nil:
			return "", err
		case c.live(cur):
			return cur.Value, nil
		}
		wrote := false
		got, err := c.s.Refresh(ctx, key, cur.Value, func(context.Context) (Token, error) {
			wrote = true
			return Token{Value: value, ExpiresAt: c.now().Add(ttl)}, nil
		})
		if err != nil {
			return "", err
		}
		// Refresh called fetch, and its nil error says the fenced write
		// landed; otherwise got is what the key held.
		if wrote || c.live(got) {
			return got.Value, nil
		}
		// Another caller replaced the dead claim by another dead one (a
		// release racing us): read again.
	}
	return "", errors.New("claim: the key kept changing under the caller")
}

// errClaimGone stops a Refresh whose claim expired between the Get and the
// lock.
var errClaimGone = errors.New("the claim is no longer live")

func (c tokenClaims) CompareAndSwapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	if err := CheckClaim(ctx, key, old, time.Millisecond, false); err != nil {
		return false, err
	}
	if err := CheckClaim(ctx, key, value, ttl, true); err != nil {
		return false, err
	}
	cur, err := c.s.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt):
		return false, nil
	case err != nil:
		return false, err
	case cur.Value != old || !c.live(cur):
		return false, nil
	}
	wrote := false
	_, err = c.s.Refresh(ctx, key, old, func(context.Context) (Token, error) {
		now := c.now()
		if !now.Before(cur.ExpiresAt) {
			return Token{}, errClaimGone
		}
		wrote = true
		if value == "" {
			return Token{Value: claimTombstone, ExpiresAt: claimReleased}, nil
		}
		// ttl counts from the write, under the lock, not from the call,
		// which may have waited for the lock.
		return Token{Value: value, ExpiresAt: now.Add(ttl)}, nil
	})
	switch {
	case errors.Is(err, errClaimGone):
		return false, nil
	case err != nil:
		return false, err
	}
	// Refresh called fetch only if the key still held old; its nil error
	// says the fenced write landed.
	return wrote, nil
}
