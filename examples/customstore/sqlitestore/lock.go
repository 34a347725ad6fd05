package sqlitestore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// ─── Step 2: the lock, with a lease ─────────────────────────────────────────
//
// The refresh lock of a key is a row of wechatconf_locks: who holds it (a
// random owner id, one per Refresh call) and until when (deadline_ms, now +
// lease). Three statements do all the work, and each is atomic across
// processes because it is a single SQL statement: in autocommit mode SQLite
// runs a writing statement as its own write transaction, taking the
// database's write lock before it reads anything, exactly as BEGIN
// IMMEDIATE … COMMIT around it would, and waiting for that lock under
// busy_timeout. The check ("is the lock free?", "do I still hold it?") and
// the write that depends on it therefore cannot be split by another
// process: this is the backend's atomic compare the contract asks for.
// (A backend that needs several statements for a step wraps them in
// BEGIN IMMEDIATE … COMMIT on one connection; a deferred BEGIN would take
// the write lock only at the first write and could fail with SQLITE_BUSY
// without waiting.)

const (
	// tryLockSQL takes the lock of key ?1 for owner ?2 until ?3 (Unix ms)
	// if no row exists, or if the existing row's lease ended at or before
	// ?4 (now): a holder that died frees the lock when its lease runs out
	// (rule 5). A row whose deadline is not an integer (edited by hand)
	// counts as expired. It changes one row when the lock was taken, none
	// when somebody else holds it.
	tryLockSQL = `INSERT INTO wechatconf_locks (key, owner, deadline_ms) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, deadline_ms = excluded.deadline_ms
WHERE typeof(wechatconf_locks.deadline_ms) <> 'integer' OR wechatconf_locks.deadline_ms <= ?4`

	// unlockSQL releases the lock of key ?1 only if owner ?2 still holds
	// it: a holder whose lease ran out must not free its successor's lock.
	unlockSQL = `DELETE FROM wechatconf_locks WHERE key = ?1 AND owner = ?2`

	// fencedSetSQL stores value ?2 expiring at ?3 under key ?1 only if
	// owner ?4 still holds the lock of ?1 and its lease has not ended at
	// ?5 (now): the fenced write of rule 3. It changes no row when the lock
	// was lost. (The SELECT's WHERE also settles SQLite's parsing
	// ambiguity between a join's ON and the upsert's ON CONFLICT.)
	fencedSetSQL = `INSERT INTO wechatconf_tokens (key, value, expires_at_ms)
SELECT ?1, ?2, ?3 WHERE EXISTS (
	SELECT 1 FROM wechatconf_locks WHERE key = ?1 AND owner = ?4 AND deadline_ms > ?5)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms`
)

// Waiting for the lock. SQLite has no notification (no LISTEN, no
// keyspace events), so a waiter polls, with a short backoff and jitter: the
// first retry after 1–2 ms, then doubling up to 10–20 ms. That is rule 6's
// "short backoff with jitter of at most tens of milliseconds": a waiter
// notices a released lock or a fresh token within 20 ms, and the jitter
// keeps the waiters of several processes from polling in step.
const (
	minBackoff = 2 * time.Millisecond
	maxBackoff = 20 * time.Millisecond
)

// unlockTimeout bounds the release of a lock once Refresh is done, which
// runs even when the caller's ctx has ended. If it fails, the lease frees
// the lock anyway.
const unlockTimeout = time.Second

// heldLock is a lock this process holds: the key, the owner id written in
// the lock row, and the end of the lease.
type heldLock struct {
	key      string
	owner    string
	deadline time.Time
}

// lock takes the refresh lock of key (rule 1), waiting until it is free or
// ctx ends. While it waits it also watches the stored token: once its value
// differs from stale (somebody else refreshed), it returns that token and no
// lock, which is what rule 2 would return right after taking the lock. So a
// caller that finds a fresh token never writes to the database, and waiters
// return as soon as the holder's write commits.
func (s *Store) lock(ctx context.Context, key, stale string) (*heldLock, core.Token, error) {
	owner := rand.Text() // 26 random base32 characters: nobody else's
	for attempt := 0; ; attempt++ {
		cur, err := s.read(ctx, key)
		switch {
		case err == nil && cur.Value != stale:
			return nil, cur, nil // rule 2, seen before the lock
		case err == nil, errors.Is(err, core.ErrNotFound), isCorrupt(err):
			// Still stale, absent or unreadable: we need the lock.
		default:
			return nil, core.Token{}, err
		}

		now := time.Now()
		deadline := now.Add(s.lease)
		res, err := s.db.ExecContext(ctx, tryLockSQL, key, owner, deadline.UnixMilli(), now.UnixMilli())
		if err != nil {
			return nil, core.Token{}, fmt.Errorf("taking the lock: %w", core.ContextError(ctx, err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, core.Token{}, fmt.Errorf("taking the lock: %w", err)
		} else if n == 1 {
			return &heldLock{key: key, owner: owner, deadline: deadline}, core.Token{}, nil
		}

		// Somebody else holds it: back off, then look again (rule 6).
		d := min(minBackoff<<min(attempt, 8), maxBackoff)
		d = d/2 + mrand.N(d/2+1) // jitter: somewhere in [d/2, d]
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, core.Token{}, fmt.Errorf("waiting for the lock: %w", ctx.Err())
		}
	}
}

// unlock releases l if it still holds the lock (rule 4 and the end of every
// Refresh). It runs even when ctx has ended, bounded by unlockTimeout; an
// error is ignored because the lease frees the lock anyway (rule 5).
func (s *Store) unlock(ctx context.Context, l *heldLock) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
	defer cancel()
	s.db.ExecContext(ctx, unlockSQL, l.key, l.owner)
}

// writeFenced stores t under l's key if l still holds the lock and its
// lease has not ended (rule 3); otherwise it writes nothing and returns
// core.ErrLockLost. The "now" it compares the deadline with is taken just
// before the statement; should the statement then wait for SQLite's write
// lock, the write may land a little after the deadline, but never after a
// successor's tryLock: writes are serialised, and a successor that comes
// after it finds the token and does not fetch (rule 2).
func (s *Store) writeFenced(ctx context.Context, l *heldLock, t core.Token) error {
	res, err := s.db.ExecContext(ctx, fencedSetSQL, l.key, t.Value, t.ExpiresAt.UnixMilli(), l.owner, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("writing the fetched token: %w", core.ContextError(ctx, err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("writing the fetched token: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("lease of %v over or lock taken over, write refused: %w", s.lease, core.ErrLockLost)
	}
	return nil
}

func isCorrupt(err error) bool {
	var c *CorruptError
	return errors.As(err, &c)
}

// keyGate makes the goroutines of one Store take turns per key before they
// go to the database. It is not the refresh lock (that is the row above,
// shared by every process); it only keeps a hundred goroutines of one
// process from polling SQLite a hundred times over for the same answer.
// When one is done, the next finds the fresh token with one read. It honours
// ctx and wakes the next goroutine at once.
type keyGate struct {
	mu    sync.Mutex
	slots map[string]*gateSlot
}

type gateSlot struct {
	turn  chan struct{} // holds a value while a goroutine has the turn
	users int           // goroutines holding or waiting for the turn
}

// enter waits for the turn of key, or until ctx ends; the returned func
// gives the turn back.
func (g *keyGate) enter(ctx context.Context, key string) (leave func(), err error) {
	g.mu.Lock()
	sl := g.slots[key]
	if sl == nil {
		if g.slots == nil {
			g.slots = make(map[string]*gateSlot)
		}
		sl = &gateSlot{turn: make(chan struct{}, 1)}
		g.slots[key] = sl
	}
	sl.users++
	g.mu.Unlock()

	select {
	case sl.turn <- struct{}{}:
		return func() { <-sl.turn; g.done(key, sl) }, nil
	case <-ctx.Done():
		g.done(key, sl)
		return nil, ctx.Err()
	}
}

// done drops a user of sl, forgetting the slot when it was the last.
func (g *keyGate) done(key string, sl *gateSlot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if sl.users--; sl.users == 0 {
		delete(g.slots, key)
	}
}
