package core

import (
	"context"
	"sync"
	"time"
)

// keyLocks is the in-process, per-key refresh lock with a lease that
// MemoryStore and FuncStore (Set form) share. Waiters block on a channel that
// the holder closes on release, so they wake at once (no polling). A holder
// that keeps the lock past its lease loses it: the lease timer releases it
// and a waiter takes over; the late holder's pin then fails and its write is
// refused (the fence).
type keyLocks struct {
	mu   sync.Mutex
	held map[string]*keyLock
	seq  uint64
}

type keyLock struct {
	gen      uint64
	released chan struct{} // closed when this holder releases or its lease ends
	timer    *time.Timer   // ends the lease; stopped by pin
}

// acquire takes the lock for key, waiting until it is free or ctx ends, and
// returns the holder's generation, which release and pin take.
func (l *keyLocks) acquire(ctx context.Context, key string, lease time.Duration) (uint64, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		l.mu.Lock()
		st := l.held[key]
		if st == nil {
			if l.held == nil {
				l.held = make(map[string]*keyLock)
			}
			l.seq++
			gen := l.seq
			st = &keyLock{gen: gen, released: make(chan struct{})}
			st.timer = time.AfterFunc(lease, func() { l.release(key, gen) })
			l.held[key] = st
			l.mu.Unlock()
			return gen, nil
		}
		wait := st.released
		l.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// release frees the lock if gen still holds it and wakes every waiter.
func (l *keyLocks) release(key string, gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.held[key]
	if st == nil || st.gen != gen {
		return
	}
	st.timer.Stop()
	delete(l.held, key)
	close(st.released)
}

// pin stops the lease of holder gen so that the lock stays held until
// release. It reports false when the lease already ran out (the lock is, or
// is about to be, someone else's): the caller must not write.
func (l *keyLocks) pin(key string, gen uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.held[key]
	return st != nil && st.gen == gen && st.timer.Stop()
}
