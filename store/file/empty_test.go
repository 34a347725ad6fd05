package filestore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// emptyValueFile is a token file of key in the store's format (version 1 of
// core's codec) whose value is empty: what a program of its own, or a hand
// edit, may leave behind.
func emptyValueFile(key string) []byte {
	return []byte(`{"v":1,"key":` + strconv.Quote(key) + `,"value":"","expires_at":"` +
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano) + `"}` + "\n")
}

// TestEmptyValueFile tests a token file that holds an empty value: Get
// fails with an error wrapping core.ErrCorrupt (not ErrNotFound), and
// Refresh treats it as absent, whatever stale the caller saw: it fetches
// once and repairs the file.
func TestEmptyValueFile(t *testing.T) {
	const key = "wechatconf/wx1/access_token"
	for _, stale := range []string{"", "seen-by-the-caller"} {
		t.Run("stale="+stale, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := newStore(t, dir)
			if err := s.Set(ctx, key, tok("old")); err != nil {
				t.Fatal(err)
			}
			path := tokenFile(t, dir)
			if err := os.WriteFile(path, emptyValueFile(key), 0o600); err != nil {
				t.Fatal(err)
			}

			got, err := s.Get(ctx, key)
			if !errors.Is(err, core.ErrCorrupt) || errors.Is(err, core.ErrNotFound) {
				t.Errorf("Get(%q) of a file whose value is empty = %+v, %v; want an error wrapping core.ErrCorrupt, not core.ErrNotFound", key, got, err)
			}

			var n atomic.Int32
			fresh := tok("fresh")
			got, err = s.Refresh(ctx, key, stale, counting(&n, fresh))
			if err != nil || n.Load() != 1 || got.Value != fresh.Value {
				t.Errorf("Refresh(%q, stale=%q) over a file whose value is empty = %+v, %v, fetch ran %d times; want %q from 1 fetch (an empty value is corrupt, which counts as absent)", key, stale, got, err, n.Load(), fresh.Value)
			}
			if got, err := s.Get(ctx, key); err != nil || got.Value != fresh.Value {
				t.Errorf("Get(%q) after the repair = %+v, %v; want %q", key, got, err, fresh.Value)
			}
		})
	}
}

// TestSetRefusesEmptyValue tests that Set of a token with an empty value,
// with or without an ExpiresAt, fails with an error wrapping
// core.ErrEmptyToken and writes nothing: no file for a new key, and a
// stored token stays.
func TestSetRefusesEmptyValue(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t, dir)
	const absent, stored = "wechatconf/wx1/absent", "wechatconf/wx1/stored"
	old := tok("old")
	if err := s.Set(ctx, stored, old); err != nil {
		t.Fatal(err)
	}
	path := tokenFile(t, dir)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{absent, stored} {
		for _, e := range []core.Token{{}, {ExpiresAt: time.Now().Add(time.Hour)}} {
			if err := s.Set(ctx, key, e); !errors.Is(err, core.ErrEmptyToken) {
				t.Errorf("Set(%q, %+v): %v, want an error wrapping core.ErrEmptyToken", key, e, err)
			}
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.token")); len(m) != 1 {
		t.Errorf("token files after refused Sets: %q, want only %s", m, path)
	}
	if after, err := os.ReadFile(path); err != nil || string(after) != string(before) {
		t.Errorf("token file of %q after refused Sets: %q, %v; want it unchanged: %q", stored, after, err, before)
	}
	if _, err := s.Get(ctx, absent); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("Get(%q) after a refused Set: %v, want core.ErrNotFound", absent, err)
	}
}
