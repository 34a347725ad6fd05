package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/core"
)

// TestDecode tests the decoding of the fields of a token hash: absent, a
// good token (with and without an expiry), and each kind of corruption,
// which wraps core.ErrCorrupt and says what is wrong.
func TestDecode(t *testing.T) {
	const key = "app/{x}/access_token"
	at := time.UnixMilli(1_900_000_000_123)
	if _, err := decode(key, nil, nil, nil, nil); !errors.Is(err, errNotStored) {
		t.Errorf("decode(no fields): %v, want errNotStored", err)
	}
	if got, err := decode(key, "1", key, "tok", "1900000000123"); err != nil || got.Value != "tok" || !got.ExpiresAt.Equal(at) {
		t.Errorf("decode(good) = %+v, %v; want tok expiring %v", got, err, at)
	}
	if got, err := decode(key, "1", key, "tok", ""); err != nil || !got.ExpiresAt.IsZero() {
		t.Errorf("decode(no expiry) = %+v, %v; want a zero ExpiresAt", got, err)
	}
	for _, c := range []struct {
		name       string
		v, k, t, e any
		says       string
	}{
		{"no version", nil, key, "tok", "1", "no format version"},
		{"newer version", "2", key, "tok", "1", "newer"},
		{"unknown version", "x", key, "tok", "1", "unknown format version"},
		{"other key", "1", "app/{y}/access_token", "tok", "1", "another key"},
		{"no key", "1", nil, "tok", "1", "another key"},
		{"empty value", "1", key, "", "1", "no token value"},
		{"no expiry field", "1", key, "tok", nil, "no expiry"},
		{"bad expiry", "1", key, "tok", "soon", "bad expiry"},
		{"overflowing expiry", "1", key, "tok", "99999999999999999999", "bad expiry"},
	} {
		_, err := decode(key, c.v, c.k, c.t, c.e)
		if !errors.Is(err, core.ErrCorrupt) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("decode(%s): %v; want an error wrapping core.ErrCorrupt that says %q", c.name, err, c.says)
		}
	}
}

// TestExpireAt tests the PEXPIREAT argument: the grace after ExpiresAt,
// after now for a past ExpiresAt, none for a zero one.
func TestExpireAt(t *testing.T) {
	const grace = time.Minute
	future := time.Now().Add(time.Hour)
	if got, want := expireAt(future, grace), encodeExpiresAt(future.Add(grace)); got != want {
		t.Errorf("expireAt(in an hour) = %s, want %s", got, want)
	}
	before := time.Now().Add(grace).UnixMilli()
	past := expireAt(time.Now().Add(-time.Hour), grace)
	after := time.Now().Add(grace).UnixMilli()
	if got := encodeExpiresAt(time.UnixMilli(0)); got != "0" {
		t.Errorf("encodeExpiresAt(Unix 0) = %q, want \"0\"", got)
	}
	if ms, err := strconv.ParseInt(past, 10, 64); err != nil || ms < before || ms > after {
		t.Errorf("expireAt(an hour ago) = %s, want now+%v (%d..%d)", past, grace, before, after)
	}
	if got := expireAt(time.Time{}, grace); got != "" {
		t.Errorf("expireAt(zero) = %q, want \"\" (no expiry)", got)
	}
}

// TestRetryDelay tests a waiter's sleep: just past a lease that ends sooner
// than the backoff, else the backoff ±25%.
// mustNew is New for tests: a constructor error fails the test.
func mustNew(t testing.TB, client redis.UniversalClient, opts ...Option) *Store {
	t.Helper()
	s, err := New(client, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNewNilClient tests that a nil client, untyped or typed, is an error,
// not a panic.
func TestNewNilClient(t *testing.T) {
	var c *redis.Client
	var cc *redis.ClusterClient
	for _, client := range []redis.UniversalClient{nil, c, cc} {
		if s, err := New(client); err == nil || s != nil {
			t.Errorf("New(%T(nil)) = %v, %v; want an error", client, s, err)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{}) // never dialled
	defer rdb.Close()
	s := mustNew(t, rdb, WithLease(time.Second), WithWaitBackoff(100*time.Millisecond))
	for range 100 {
		if d := s.retryDelay(30); d < 31*time.Millisecond || d > 34*time.Millisecond {
			t.Fatalf("retryDelay(pttl 30ms) = %v, want 31–33ms", d)
		}
		for _, pttl := range []int64{-1, 500} {
			if d := s.retryDelay(pttl); d < 75*time.Millisecond || d > 125*time.Millisecond {
				t.Fatalf("retryDelay(pttl %d) = %v, want 75–125ms", pttl, d)
			}
		}
	}
	if s := mustNew(t, rdb, WithLease(200*time.Millisecond)); s.backoff != 50*time.Millisecond {
		t.Errorf("backoff with a 200ms lease = %v, want a quarter of the lease, 50ms", s.backoff)
	}
}

// replyErr is a Redis error reply.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

// TestRedisErr tests the errors a Store returns for Redis errors: a write
// to a replica says how to fix it, and an error after ctx ended wraps
// ctx.Err().
func TestRedisErr(t *testing.T) {
	ro := replyErr("READONLY You can't write against a read only replica.")
	if err := redisErr(context.Background(), ro); !errors.Is(err, ro) || !strings.Contains(err.Error(), "master") {
		t.Errorf("redisErr(READONLY) = %v, want it wrapped with the fix", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := redisErr(ctx, errors.New("i/o timeout")); !errors.Is(err, context.Canceled) {
		t.Errorf("redisErr after cancel = %v, want it to wrap context.Canceled", err)
	}
	if !isWrongType(replyErr("WRONGTYPE Operation against a key holding the wrong kind of value")) || isWrongType(ro) {
		t.Errorf("isWrongType misjudges")
	}
}
