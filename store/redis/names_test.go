package redisstore

import (
	"path"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestNamesShareHashTag is the part of the key-layout check that needs no
// server (the rest, with CLUSTER KEYSLOT and a full cycle under every
// prefix, runs against Redis and a Redis Cluster in ./containertest): for
// hostile keys and prefixes, a key's token, lock, wake channel and claim
// begin with the prefix and share one hash tag, different keys have
// different token keys, the claim name differs from the three others and is
// what RedisClaimKey and claimName return, RedisKeys returns the token and
// lock names, and the wake channel is
// the token key with ":wake" for ":token" (the containertest module derives
// it that way from RedisKeys to count subscriptions on the server).
func TestNamesShareHashTag(t *testing.T) {
	// A client that is never used: names are computed, nothing is sent.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	keys := []string{"a", "{a}", "a{b}c", "}{", "{", "}", "{}", "x/{tag}/y", "k:lock", "日本語", strings.Repeat("{z}", 85)}
	for _, prefix := range []string{DefaultPrefix, "", "{", "}", "app{x", "{app}:"} {
		s := mustNew(t, rdb, WithPrefix(prefix))
		seen := map[string]string{}
		for _, key := range keys {
			n := s.names(key)
			for _, name := range []string{n.token, n.lock, n.wake, n.claim} {
				if !strings.HasPrefix(name, prefix) {
					t.Errorf("prefix %q, key %q: name %q does not begin with the prefix", prefix, key, name)
				}
			}
			if other, dup := seen[n.token]; dup {
				t.Errorf("prefix %q: keys %q and %q share the token key %q", prefix, key, other, n.token)
			}
			seen[n.token] = key
			if tag := hashTag(n.token); tag != hashTag(n.lock) || tag != hashTag(n.wake) {
				t.Errorf("prefix %q, key %q: hash tags %q, %q, %q of %q, %q, %q differ", prefix, key, hashTag(n.token), hashTag(n.lock), hashTag(n.wake), n.token, n.lock, n.wake)
			}
			if tag := hashTag(n.token); tag != hashTag(n.claim) {
				t.Errorf("prefix %q, key %q: claim %q has hash tag %q, token %q has %q", prefix, key, n.claim, hashTag(n.claim), n.token, tag)
			}
			if n.claim == n.token || n.claim == n.lock || n.claim == n.wake {
				t.Errorf("prefix %q, key %q: claim name %q is also the token, lock or wake name", prefix, key, n.claim)
			}
			if got := s.claimName(key); got != n.claim {
				t.Errorf("prefix %q, key %q: claimName = %q, want %q", prefix, key, got, n.claim)
			}
			if got := s.RedisClaimKey(key); got != n.claim {
				t.Errorf("prefix %q, key %q: RedisClaimKey = %q, want %q", prefix, key, got, n.claim)
			}
			if ok, err := path.Match(tokenPattern(prefix), n.claim); err != nil || ok {
				t.Errorf("prefix %q, key %q: ListKeys' pattern %q matches the claim name %q (err %v)", prefix, key, tokenPattern(prefix), n.claim, err)
			}
			if ok, err := path.Match(tokenPattern(prefix), n.token); err != nil || !ok {
				t.Errorf("prefix %q, key %q: ListKeys' pattern %q does not match the token name %q (err %v)", prefix, key, tokenPattern(prefix), n.token, err)
			}
			if token, lock := s.RedisKeys(key); token != n.token || lock != n.lock {
				t.Errorf("prefix %q, key %q: RedisKeys = %q, %q; want %q, %q", prefix, key, token, lock, n.token, n.lock)
			}
			if want := strings.TrimSuffix(n.token, ":token") + ":wake"; n.wake != want {
				t.Errorf("prefix %q, key %q: wake channel %q, want %q", prefix, key, n.wake, want)
			}
		}
	}
}

// hashTag returns the part of a Redis key that Cluster hashes (its rules:
// the content of the first "{…}" if non-empty, else the whole key).
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// TestTokenPattern tests the SCAN MATCH pattern of ListKeys: the prefix's
// glob characters are escaped, and the rest matches a hash tag of 32 hex
// digits and ":token" only.
func TestTokenPattern(t *testing.T) {
	for prefix, want := range map[string]string{
		"":            "{" + strings.Repeat("[0-9a-f]", 32) + "}:token",
		"wechatconf:": "wechatconf:{" + strings.Repeat("[0-9a-f]", 32) + "}:token",
		`a*b?c[d]e\f`: `a\*b\?c\[d\]e\\f{` + strings.Repeat("[0-9a-f]", 32) + "}:token",
	} {
		if got := tokenPattern(prefix); got != want {
			t.Errorf("tokenPattern(%q) = %q, want %q", prefix, got, want)
		}
	}
}

// TestCeilMillisecond tests the rounding of a claim's time to live: up to
// a whole millisecond, never down.
func TestCeilMillisecond(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		time.Millisecond:                  time.Millisecond,
		time.Millisecond + 1:              2 * time.Millisecond,
		1500 * time.Microsecond:           2 * time.Millisecond,
		time.Second:                       time.Second,
		time.Second + time.Nanosecond:     time.Second + time.Millisecond,
		10*time.Minute - time.Microsecond: 10 * time.Minute,
		time.Duration(1<<63 - 1):          time.Duration(1<<63 - 1), // no overflow
	} {
		if got := ceilMillisecond(d); got != want {
			t.Errorf("ceilMillisecond(%v) = %v, want %v", d, got, want)
		}
	}
}
