package sqlitestore

import (
	"context"
	"errors"
	"fmt"

	"github.com/wechatconf/wechatconf/core"
)

// ─── Step 3: Refresh ────────────────────────────────────────────────────────
//
// lock → read and compare → fetch with a lease-bounded ctx → fenced write →
// release. Each step is commented with the rule of core.TokenStore it keeps.

// Refresh implements core.TokenStore: it replaces the token under key if it
// still equals stale (or is absent or corrupt), calling fetch at most once
// across every process sharing the database, and returns the token now
// stored.
func (s *Store) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if err := core.CheckCall(ctx, key); err != nil {
		return core.Token{}, fmt.Errorf("sqlitestore: refresh: %w", err)
	}
	t, err := s.refresh(ctx, key, stale, fetch)
	if err != nil {
		return core.Token{}, fmt.Errorf("sqlitestore: refresh %q: %w", key, err)
	}
	return t, nil
}

func (s *Store) refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	// This Store's own goroutines take turns (see keyGate); the ctx is
	// honoured while waiting.
	leave, err := s.gate.enter(ctx, key)
	if err != nil {
		return core.Token{}, fmt.Errorf("waiting for the lock: %w", err)
	}
	defer leave()

	// Rule 1: take the lock, waiting with a short backoff (rule 6) until it
	// is free or ctx ends. lock returns no lock but a token when the stored
	// value changed while it waited (rule 2 seen from outside the lock).
	l, cur, err := s.lock(ctx, key, stale)
	if err != nil {
		return core.Token{}, err
	}
	if l == nil {
		return cur, nil
	}
	// Released on every path below, fetch error included (rule 4); a
	// holder that dies never gets here, and its lease frees the lock
	// (rule 5).
	defer s.unlock(ctx, l)

	// Rule 2: under the lock, read again. Between lock's last read and the
	// lock being ours, another process may have finished a refresh.
	cur, err = s.read(ctx, key)
	switch {
	case err == nil && cur.Value != stale:
		return cur, nil // somebody else refreshed: no fetch
	case err == nil, errors.Is(err, core.ErrNotFound), isCorrupt(err):
		// Stale, absent, or corrupt (which counts as absent): fetch.
	default:
		// The database cannot be read: do not fetch, or every process
		// that cannot read would fetch too.
		return core.Token{}, err
	}

	// Rule 3: fetch with a ctx that ends with the lease at the latest.
	// core.FetchUntil also does rule 4's part: fetch's error comes back
	// wrapped (with core.ErrLockLost if the lease ran out), nothing is
	// written, and the deferred unlock releases the lock.
	t, err := core.FetchUntil(ctx, l.deadline, fetch)
	if err != nil {
		return core.Token{}, err
	}

	// Rule 3's fenced write: stored only if the lock is still ours and its
	// lease has not ended, checked by SQLite in the same statement;
	// otherwise core.ErrLockLost and nothing written.
	if err := s.writeFenced(ctx, l, t); err != nil {
		return core.Token{}, err
	}
	return t, nil
}
