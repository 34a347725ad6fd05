package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/wechatconf/wechatconf/core"
)

// The refresh lock of a key (see the package documentation): the lease
// record in NAME.lease, looked at and changed only under the flock of
// NAME.lock, plus the flock of NAME.held that a live holder keeps.

// hold is one Refresh's hold of the refresh lock.
type hold struct {
	owner string       // written in the lease record
	start time.Time    // when the lock was taken, with a monotonic reading
	held  *flock.Flock // the flock of NAME.held, nil if another process kept it
	done  bool         // the record was released (by commit or release)
}

// unlockHeld drops the flock of NAME.held, if h has it.
func (h *hold) unlockHeld() {
	if h.held != nil {
		h.held.Unlock()
		h.held = nil
	}
}

// record is the content of a lease record.
type record struct {
	owner    string // "" when the lock is free
	deadline int64  // wall-clock end of the lease, Unix nanoseconds
	flocked  bool   // the owner holds the flock of NAME.held
}

// recordVersion starts every lease record.
const recordVersion = "1"

// recordSize is the size of a lease record: records are padded to it with
// spaces and overwritten in place, so the file never changes size (a
// truncate costs a metadata update on journaling filesystems).
const recordSize = 80

// readRecord reads the lease record in f. An empty or unreadable record is a
// free lock: a process that crashed while writing it is dead, and a record
// someone else garbled is no reason to block every refresh.
func readRecord(f *os.File) record {
	var buf [recordSize]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return record{}
	}
	fields := strings.Fields(string(buf[:n]))
	if len(fields) != 4 || fields[0] != recordVersion || fields[1] == "-" {
		return record{}
	}
	deadline, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil {
		return record{}
	}
	return record{owner: fields[1], deadline: deadline, flocked: fields[3] == "1"}
}

// writeRecord overwrites the lease record in f with r ("-" as the owner of a
// free lock). Records need not survive a reboot, so they are not synced.
func writeRecord(f *os.File, r record) error {
	owner, flocked := r.owner, "0"
	if owner == "" {
		owner = "-"
	}
	if r.flocked {
		flocked = "1"
	}
	var buf [recordSize]byte
	b := append(buf[:0], recordVersion+" "+owner+" "...)
	b = strconv.AppendInt(b, r.deadline, 10)
	b = append(b, ' ')
	b = append(b, flocked...)
	if len(b) >= recordSize {
		return fmt.Errorf("lease record of %d bytes", len(b))
	}
	for len(b) < recordSize-1 {
		b = append(b, ' ')
	}
	b = append(b, '\n')
	_, err := f.WriteAt(b, 0)
	return err
}

// critical runs fn with the lease record file open, holding the flock of
// NAME.lock. Waiting for that flock honours ctx; it is held for
// microseconds (a millisecond or so around the fenced write's rename and
// directory sync).
func (s *Store) critical(ctx context.Context, p paths, fn func(rec *os.File) error) error {
	mu := flock.New(p.lock, flock.SetPermissions(0o600))
	if err := lockWithin(ctx, mu); err != nil {
		return err
	}
	defer mu.Unlock()
	f, err := os.OpenFile(p.lease, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	return fn(f)
}

// lockWithin takes fl, retrying after 50 µs doubling up to 1 ms, until ctx
// ends.
func lockWithin(ctx context.Context, fl *flock.Flock) error {
	d := 50 * time.Microsecond
	for {
		ok, err := fl.TryLock()
		if err != nil {
			return fmt.Errorf("flock %s: %w", fl.Path(), err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		d = min(2*d, time.Millisecond)
	}
}

// acquire takes the refresh lock of the key whose files are p, waiting until
// it is free or ctx ends. One goroutine of the Store at a time polls the
// files; it sleeps a growing backoff with jitter between looks, and wakes at
// once when a Refresh of this Store releases the lock.
func (s *Store) acquire(ctx context.Context, p paths, ks *keyState) (*hold, error) {
	select {
	case ks.poll <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-ks.poll }()

	backoff := minWaitBackoff
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wake := ks.wakeChan() // before looking, so that a release in between is not missed
		h, err := s.tryAcquire(ctx, p)
		if err != nil || h != nil {
			return h, err
		}
		timer.Reset(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		case <-timer.C:
		}
		backoff = min(2*backoff, s.backoff)
	}
}

// tryAcquire takes the refresh lock if it is free, its lease ran out, or
// its holder died; it returns nil (and no error) when the lock is held.
func (s *Store) tryAcquire(ctx context.Context, p paths) (*hold, error) {
	var h *hold
	err := s.critical(ctx, p, func(f *os.File) error {
		r := readRecord(f)
		live := flock.New(p.held, flock.SetPermissions(0o600))
		if r.owner != "" && time.Now().UnixNano() < r.deadline {
			if !r.flocked {
				return nil // a holder within its lease that has no flock to test
			}
			// The holder keeps NAME.held flocked while it lives: if the
			// flock can be taken, it died.
			ok, err := live.TryLock()
			if err != nil || !ok {
				return err
			}
		} else if ok, err := live.TryLock(); err != nil {
			return err
		} else if !ok {
			// A holder that hung past its lease still has the flock: take
			// the lock without it; our own crash is then noticed when our
			// lease runs out.
			live = nil
		}
		start := time.Now()
		nh := &hold{owner: newOwner(), start: start, held: live}
		err := writeRecord(f, record{owner: nh.owner, deadline: start.Add(s.lease).UnixNano(), flocked: live != nil})
		if err != nil {
			nh.unlockHeld()
			return err
		}
		h = nh
		return nil
	})
	return h, err
}

// newOwner returns a fresh holder id: the process id, for a human reading
// the record, and 64 random bits.
func newOwner() string {
	return strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(rand.Uint64(), 16)
}

// commit is the fenced write: under the flock of NAME.lock, it renames the
// temporary token file tmp over the token file only if the lease record
// still names h and h's lease (on its monotonic clock) has not run out, and
// releases the lock. Otherwise it writes nothing and returns an error
// wrapping core.ErrLockLost. The caller removes tmp on error.
func (s *Store) commit(ctx context.Context, p paths, ks *keyState, h *hold, tmp string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lease)
	defer cancel()
	var lost string
	err := s.critical(cctx, p, func(f *os.File) error {
		h.done = true
		defer h.unlockHeld()
		if readRecord(f).owner != h.owner {
			lost = "another holder took the lock over"
			return nil
		}
		if elapsed := time.Since(h.start); elapsed >= s.lease {
			lost = fmt.Sprintf("fetch returned %v after the lock was taken", elapsed.Round(time.Millisecond))
			writeRecord(f, record{})
			return nil
		}
		err := s.install(tmp, p)
		// The token is written (or not) either way; a record that cannot be
		// cleared frees itself once NAME.held is unlocked or the lease ends.
		writeRecord(f, record{})
		return err
	})
	if h.done {
		ks.wake()
	}
	switch {
	case err != nil:
		return fmt.Errorf("writing the fetched token: %w", err)
	case lost != "":
		return fmt.Errorf("%s, past the %v lease; write refused: %w", lost, s.lease, core.ErrLockLost)
	}
	return nil
}

// release frees the refresh lock h holds, if it still does, and wakes the
// Store's waiters. It runs even when ctx is done.
func (s *Store) release(ctx context.Context, p paths, ks *keyState, h *hold) {
	if h.done {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lease)
	defer cancel()
	s.critical(cctx, p, func(f *os.File) error {
		h.done = true
		defer h.unlockHeld() // inside the critical section: a waiter never sees a free record and a busy flock
		if readRecord(f).owner == h.owner {
			return writeRecord(f, record{})
		}
		return nil
	})
	// If the critical section could not run, dropping the flock still lets
	// waiters take over at once: they see a holder that died.
	h.unlockHeld()
	ks.wake()
}
