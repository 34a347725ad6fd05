package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/core"
)

// The Store keeps claims natively.
var _ core.ClaimStore = (*Store)(nil)

// RedisClaimKey returns the Redis key that holds key's claim (see
// core.ClaimStore): a string whose value is the claim's and whose PTTL is
// what is left of its life. It shares the hash tag of the key's token and
// lock (RedisKeys) but is a key of its own, which ListKeys never lists.
// It is for operators: deleting it releases the claim. key is not
// validated: it should satisfy core.ValidateKey.
func (s *Store) RedisClaimKey(key string) string { return s.claimName(key) }

// Claim implements core.ClaimStore with one command, one round trip:
// SET <claim key> value NX PX ttl GET, where the claim key is
// RedisClaimKey(key) and ttl is rounded up to a whole millisecond. A nil
// reply means the claim is the caller's; otherwise the reply is the live
// claim's value. The server's clock judges expiry. A server that refuses
// NX with GET (Redis before 7.0) gets the same step as a Lua script
// (lua/claim.lua), one round trip too, from then on for this Store.
//
// A Claim that go-redis sends again after a lost reply (its MaxRetries)
// finds its own value and returns it: the caller learns it won. A claim
// key holding something else than a string (written by something other
// than a Store) is an error wrapping core.ErrCorrupt that names it.
func (s *Store) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	if err := core.CheckClaim(ctx, key, value, ttl, false); err != nil {
		return "", fmt.Errorf("redisstore: claim: %w", err)
	}
	name := s.claimName(key)
	held, err := s.claim(ctx, name, value, ttl)
	switch {
	case err == nil:
		return held, nil
	case isWrongType(err):
		return "", fmt.Errorf("redisstore: claim %q: redis key %q: %w: it is not a string (%v)", key, name, core.ErrCorrupt, err)
	}
	return "", fmt.Errorf("redisstore: claim %q: %w", key, redisErr(ctx, err))
}

func (s *Store) claim(ctx context.Context, name, value string, ttl time.Duration) (string, error) {
	ttl = ceilMillisecond(ttl)
	if !s.claimByScript.Load() {
		held, err := s.client.SetArgs(ctx, name, value, redis.SetArgs{Mode: "NX", TTL: ttl, Get: true}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return value, nil // the key held no live claim: ours now
		case err == nil:
			return held, nil
		case !isSyntaxError(err):
			return "", err
		}
		// The server does not know SET … NX … GET: it wrote nothing.
		s.claimByScript.Store(true)
	}
	return claimScript.Run(ctx, s.client, []string{name}, value, ttl.Milliseconds()).Text()
}

// CompareAndSwapClaim implements core.ClaimStore with one Lua script, one
// round trip (lua/swapclaim.lua): if the claim key holds old, it is
// replaced by value with PX ttl (rounded up to a whole millisecond), or
// deleted when value is ""; otherwise nothing is written and swapped is
// false. A claim the server expired is gone, so a late holder's swap finds
// nothing and brings nothing back.
//
// Unlike Claim, a swap is not idempotent: one that landed, whose reply was
// lost and that go-redis sent again (its MaxRetries), finds value rather
// than old and reports false. Claim(key, value, …) then tells, returning
// value when the swap landed.
func (s *Store) CompareAndSwapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	if err := core.CheckClaim(ctx, key, old, time.Millisecond, false); err != nil {
		return false, fmt.Errorf("redisstore: compare and swap claim: %w", err)
	}
	if err := core.CheckClaim(ctx, key, value, ttl, true); err != nil {
		return false, fmt.Errorf("redisstore: compare and swap claim: %w", err)
	}
	ms := int64(0)
	if value != "" {
		ms = ceilMillisecond(ttl).Milliseconds()
	}
	n, err := swapClaimScript.Run(ctx, s.client, []string{s.claimName(key)}, old, value, ms).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: compare and swap claim %q: %w", key, redisErr(ctx, err))
	}
	return n == 1, nil
}

// ceilMillisecond returns d rounded up to a whole millisecond: Redis keeps
// expiries in milliseconds, and a claim may live longer than asked, never
// shorter.
func ceilMillisecond(d time.Duration) time.Duration {
	if r := d % time.Millisecond; r != 0 && d <= math.MaxInt64-time.Millisecond {
		d += time.Millisecond - r
	}
	return d
}

// isSyntaxError reports whether err is Redis's "ERR syntax error", what a
// server before 7.0 answers SET with both NX and GET.
func isSyntaxError(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "ERR syntax error")
}
