package containertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// TestEmptyValue tests the empty-value rule on the table: Set of a token
// with an empty value fails with an error wrapping core.ErrEmptyToken and
// writes nothing (no row for a new key, a stored row unchanged); a row whose
// value is the empty string (INSERTed by hand) makes Get fail with an error
// wrapping core.ErrCorrupt (not ErrNotFound), and Refresh, whatever stale
// the caller saw, fetches once and repairs it.
func TestEmptyValue(t *testing.T) {
	needServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := newStore(t, testDSN, nil)
	pool := newPool(t, testDSN, nil)
	rowOf := func(key string) (value string, n int) {
		t.Helper()
		err := pool.QueryRow(ctx, `SELECT coalesce(max(value), ''), count(*) FROM wechatconf_tokens WHERE key = $1`, key).Scan(&value, &n)
		if err != nil {
			t.Fatalf("reading the row of %q: %v", key, err)
		}
		return value, n
	}

	t.Run("SetRefused", func(t *testing.T) {
		absent, stored := uniqueKey(t)+"/absent", uniqueKey(t)+"/stored"
		if err := s.Set(ctx, stored, tok("old")); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{absent, stored} {
			for _, e := range []core.Token{{}, {ExpiresAt: time.Now().Add(time.Hour)}} {
				if err := s.Set(ctx, key, e); !errors.Is(err, core.ErrEmptyToken) {
					t.Errorf("Set(%q, %+v): %v, want an error wrapping core.ErrEmptyToken", key, e, err)
				}
			}
		}
		if _, n := rowOf(absent); n != 0 {
			t.Errorf("rows of %q after refused Sets: %d, want none", absent, n)
		}
		if v, n := rowOf(stored); n != 1 || v != "old" {
			t.Errorf("row of %q after refused Sets: value %q (%d rows), want %q", stored, v, n, "old")
		}
	})

	for _, stale := range []string{"", "seen-by-the-caller"} {
		t.Run("StoredEmpty/stale="+stale, func(t *testing.T) {
			key := uniqueKey(t)
			if _, err := pool.Exec(ctx, `INSERT INTO wechatconf_tokens (key, value, expires_at) VALUES ($1, '', now() + interval '1 hour')`, key); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Get(ctx, key); !errors.Is(err, core.ErrCorrupt) || errors.Is(err, core.ErrNotFound) {
				t.Errorf("Get(%q) of a row whose value is '' = %+v, %v; want an error wrapping core.ErrCorrupt, not core.ErrNotFound", key, got, err)
			}
			fresh := tok("fresh")
			n := 0
			got, err := s.Refresh(ctx, key, stale, func(context.Context) (core.Token, error) { n++; return fresh, nil })
			if err != nil || n != 1 || got.Value != fresh.Value {
				t.Errorf("Refresh(%q, stale=%q) over a row whose value is '' = %+v, %v, %d fetches; want the fetched token from 1 fetch (corrupt counts as absent)", key, stale, got, err, n)
			}
			if v, _ := rowOf(key); v != fresh.Value {
				t.Errorf("row of %q after the repair: value %q, want %q", key, v, fresh.Value)
			}
		})
	}
}
