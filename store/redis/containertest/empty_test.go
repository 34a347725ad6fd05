package containertest_test

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/core"
)

// The token hash's fields, as the package stores them (format.go): "v" the
// format version ("1"), "k" the user key, "t" the token value, "e" the
// expiry in Unix milliseconds.

// TestEmptyValue tests the empty-value rule on a real Redis: Set of a token
// with an empty value fails with an error wrapping core.ErrEmptyToken and
// writes nothing; a token hash whose value field is empty (HSET by hand, in
// the store's format) makes Get fail with an error wrapping core.ErrCorrupt
// (not ErrNotFound), and Refresh, whatever stale the caller saw, fetches
// once and repairs it.
func TestEmptyValue(t *testing.T) {
	addr := standaloneAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, rdb := testStore(t, func() redis.UniversalClient { return newClient(addr) })

	t.Run("SetRefused", func(t *testing.T) {
		for _, name := range []string{"absent", "stored"} {
			key := uniqueKey(t, name)
			tokenKey, _ := s.RedisKeys(key)
			if name == "stored" {
				if err := s.Set(ctx, key, tok("old")); err != nil {
					t.Fatal(err)
				}
			}
			before, err := rdb.HGetAll(ctx, tokenKey).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range []core.Token{{}, {ExpiresAt: time.Now().Add(time.Hour)}} {
				if err := s.Set(ctx, key, e); !errors.Is(err, core.ErrEmptyToken) {
					t.Errorf("Set(%q, %+v): %v, want an error wrapping core.ErrEmptyToken", key, e, err)
				}
			}
			after, err := rdb.HGetAll(ctx, tokenKey).Result()
			if err != nil || !maps.Equal(before, after) {
				t.Errorf("hash %q after refused Sets: %v, %v; want it unchanged: %v", tokenKey, after, err, before)
			}
		}
	})

	for _, stale := range []string{"", "seen-by-the-caller"} {
		t.Run("StoredEmpty/stale="+stale, func(t *testing.T) {
			key := uniqueKey(t, "k")
			tokenKey, _ := s.RedisKeys(key)
			exp := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
			if err := rdb.HSet(ctx, tokenKey, "v", "1", "k", key, "t", "", "e", exp).Err(); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Get(ctx, key); !errors.Is(err, core.ErrCorrupt) || errors.Is(err, core.ErrNotFound) {
				t.Errorf("Get(%q) of a hash whose value field is empty = %+v, %v; want an error wrapping core.ErrCorrupt, not core.ErrNotFound", key, got, err)
			}
			fresh := tok("fresh")
			n := 0
			got, err := s.Refresh(ctx, key, stale, func(context.Context) (core.Token, error) { n++; return fresh, nil })
			if err != nil || n != 1 || got.Value != fresh.Value {
				t.Errorf("Refresh(%q, stale=%q) over a hash whose value field is empty = %+v, %v, %d fetches; want the fetched token from 1 fetch (corrupt counts as absent)", key, stale, got, err, n)
			}
			if got, err := s.Get(ctx, key); err != nil || got.Value != fresh.Value {
				t.Errorf("Get(%q) after the repair = %+v, %v; want %q", key, got, err, fresh.Value)
			}
		})
	}
}
