package sqlitestore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// TestEmptyValue tests the empty-value rule on the table: Set of a token
// with an empty value fails with an error wrapping core.ErrEmptyToken and
// writes no row; a row whose value is empty (inserted by hand) makes Get
// fail with an error wrapping core.ErrCorrupt, and Refresh, whatever stale
// the caller saw, fetches once and repairs it.
func TestEmptyValue(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	s := newStore(t, db)
	for _, e := range []core.Token{{}, {ExpiresAt: time.Now().Add(time.Hour)}} {
		if err := s.Set(ctx, "set-empty", e); !errors.Is(err, core.ErrEmptyToken) {
			t.Errorf("Set(%q, %+v): %v, want an error wrapping core.ErrEmptyToken", "set-empty", e, err)
		}
	}
	var rows int
	if err := db.QueryRow(`SELECT count(*) FROM wechatconf_tokens WHERE key = 'set-empty'`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("rows of %q after refused Sets: %d, %v; want none", "set-empty", rows, err)
	}

	for _, stale := range []string{"", "seen-by-the-caller"} {
		key := "empty-row/" + stale
		if _, err := db.Exec(`INSERT INTO wechatconf_tokens (key, value, expires_at_ms) VALUES (?1, '', ?2)`, key, time.Now().Add(time.Hour).UnixMilli()); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, key); !errors.Is(err, core.ErrCorrupt) || errors.Is(err, core.ErrNotFound) {
			t.Errorf("Get(%q) of a row whose value is empty = %+v, %v; want an error wrapping core.ErrCorrupt, not core.ErrNotFound", key, got, err)
		}
		fresh := core.Token{Value: "fresh", ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
		calls := 0
		got, err := s.Refresh(ctx, key, stale, fetchOf(fresh, &calls))
		if err != nil || calls != 1 || got.Value != fresh.Value {
			t.Errorf("Refresh(%q, stale=%q) over a row whose value is empty = %+v, %v, %d fetches; want the fetched token from 1 fetch (corrupt counts as absent)", key, stale, got, err, calls)
		}
		if got, err := s.Get(ctx, key); err != nil || got.Value != fresh.Value {
			t.Errorf("Get(%q) after the repair = %+v, %v; want %q", key, got, err, fresh.Value)
		}
	}
}
