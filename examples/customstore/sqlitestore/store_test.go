package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/examples/customstore/sqlitestore"
)

// The conformance suite checks the contract; the tests here check what is
// particular to this store: rows edited by hand, a lock stolen from outside,
// the ownership of the *sql.DB, file names that are not URI-safe.

// openDB opens a database file the way a user of New would.
func openDB(t *testing.T) *sql.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newStore(t *testing.T, db *sql.DB, opts ...sqlitestore.Option) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.New(db, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func fetchOf(tok core.Token, calls *int) core.FetchFunc {
	return func(context.Context) (core.Token, error) { *calls++; return tok, nil }
}

// TestCorruptRow tests that a token row Get cannot decode is a descriptive
// error (a *CorruptError, not ErrNotFound) and that Refresh treats it as
// absent: it fetches and replaces it.
func TestCorruptRow(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	s := newStore(t, db)
	rows := map[string]string{
		"text-expiry": `INSERT INTO wechatconf_tokens VALUES ('text-expiry', 'v', 'soon')`,
		"empty-value": `INSERT INTO wechatconf_tokens VALUES ('empty-value', '', 0)`,
		"real-expiry": `INSERT INTO wechatconf_tokens VALUES ('real-expiry', 'v', 1.5)`,
	}
	for key, stmt := range rows {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
		_, err := s.Get(ctx, key)
		var corrupt *sqlitestore.CorruptError
		if !errors.As(err, &corrupt) || errors.Is(err, core.ErrNotFound) {
			t.Errorf("Get(%q) of a corrupt row: %v; want a *CorruptError that is not ErrNotFound", key, err)
		}
		fresh := core.Token{Value: "fresh-" + key, ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
		calls := 0
		got, err := s.Refresh(ctx, key, "v", fetchOf(fresh, &calls))
		if err != nil || calls != 1 || got.Value != fresh.Value {
			t.Errorf("Refresh(%q) over a corrupt row = %v, %v, %d fetches; want the fetched token (a corrupt row counts as absent)", key, got, err, calls)
		}
		if got, err := s.Get(ctx, key); err != nil || got.Value != fresh.Value || !got.ExpiresAt.Equal(fresh.ExpiresAt) {
			t.Errorf("Get(%q) after Refresh = %v, %v; want %v", key, got, err, fresh)
		}
	}
}

// TestOddLockRowIsExpired tests that a lock row whose deadline is not an
// integer (edited by hand) does not block Refresh forever.
func TestOddLockRowIsExpired(t *testing.T) {
	db := openDB(t)
	s := newStore(t, db) // core.DefaultLease
	// The fetch must come before a lease counted from the row's insertion
	// could have run out: a store that took the row for a live holder would
	// wait at least that long, or for ever.
	deadline := time.Now().Add(core.DefaultLease)
	if _, err := db.Exec(`INSERT INTO wechatconf_locks VALUES ('k', 'someone', 'never')`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	calls := 0
	if _, err := s.Refresh(ctx, "k", "", fetchOf(core.Token{Value: "v", ExpiresAt: time.Now()}, &calls)); err != nil || calls != 1 {
		t.Errorf("Refresh over a lock row with deadline 'never': %v, %d fetches; want 1 fetch before a %v lease from the row's insertion could have run out", err, calls, core.DefaultLease)
	}
}

// TestStolenLockRefusesWrite tests the fence against theft: while the
// holder is inside fetch, its lock row is overwritten from outside (another
// owner, a live lease); the holder's write must fail with core.ErrLockLost
// and leave the stored token alone.
func TestStolenLockRefusesWrite(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	s := newStore(t, db)
	old := core.Token{Value: "old", ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.Set(ctx, "k", old); err != nil {
		t.Fatal(err)
	}
	_, err := s.Refresh(ctx, "k", "old", func(context.Context) (core.Token, error) {
		deadline := time.Now().Add(time.Minute).UnixMilli()
		if _, err := db.Exec(`UPDATE wechatconf_locks SET owner = 'thief', deadline_ms = ? WHERE key = 'k'`, deadline); err != nil {
			t.Error(err)
		}
		return core.Token{Value: "late", ExpiresAt: time.Now().Add(time.Hour)}, nil
	})
	if !errors.Is(err, core.ErrLockLost) {
		t.Errorf("Refresh whose lock was stolen during fetch: %v, want an error wrapping core.ErrLockLost", err)
	}
	if got, err := s.Get(ctx, "k"); err != nil || got.Value != "old" {
		t.Errorf("Get after a refused write = %v, %v; want the old token", got, err)
	}
	var owner string
	if err := db.QueryRow(`SELECT owner FROM wechatconf_locks WHERE key = 'k'`).Scan(&owner); err != nil || owner != "thief" {
		t.Errorf("lock row after the refused write: owner %q, %v; want the thief's lock left alone", owner, err)
	}
}

// TestNewNeverClosesDB tests that a Store built by New leaves the caller's
// *sql.DB open when closed.
func TestNewNeverClosesDB(t *testing.T) {
	db := openDB(t)
	if err := newStore(t, db).Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Errorf("db.Ping after Store.Close: %v; want the caller's db still open", err)
	}
}

// TestOpenOddPath tests that Open takes a path literally, even one that
// holds characters with a meaning in a URI.
func TestOpenOddPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "to?kens #1 %41.db")
	s, err := sqlitestore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Set(context.Background(), "k", core.Token{Value: "v"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		entries, _ := os.ReadDir(dir)
		t.Errorf("Open(%q) did not create that file (%v); the directory holds %v", path, err, entries)
	}
}
