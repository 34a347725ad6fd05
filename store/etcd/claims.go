package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wechatconf/wechatconf/core"
)

// Claims (core.ClaimStore): each claim is the etcd key P+"claim/"+b64(K)
// holding the claim's value, put on a lease that etcd revokes when the
// claim's time is up, deleting the key with it. See the package
// documentation, section "Claims".

var _ core.ClaimStore = (*Store)(nil)

const (
	// claimBucket is added to a claim's ttl before it is rounded up to the
	// lease's whole seconds: every lease outlives the claims put on it by
	// at least claimMargin, and stays reusable for later claims of the same
	// ttl for at least claimBucket − claimMargin after it was granted.
	claimBucket = 250 * time.Millisecond
	// claimMargin is the least time a lease must still have, beyond a
	// claim's ttl, when the claim's Txn is sent on it: the Txn's trip to
	// the leader comes out of it, not out of the claim's life.
	claimMargin = 100 * time.Millisecond
	// claimGrantTries is how many leases a Claim waits for or grants before
	// giving up: another caller's grant may fail with that caller's
	// context, or return too late to fit.
	claimGrantTries = 3
)

// claimLease is a lease granted for claims. Claims whose ttl rounds to the
// same whole seconds share the latest one for as long as it outlives them
// (fits); it is never offered again once it has been replaced (retired),
// and a retired lease that no claim was written on is revoked.
type claimLease struct {
	ready chan struct{} // closed when the grant returned; the fields below are then set
	id    clientv3.LeaseID
	err   error
	// lower is the earliest instant etcd may end the lease, on this
	// process's monotonic clock: when the grant was sent, plus the TTL the
	// server granted. The server starts the TTL when it applies the grant,
	// which is later.
	lower   time.Time
	granted int64 // the TTL the server granted, whole seconds

	// Guarded by claimLeases.mu.
	users   int  // Claim and CompareAndSwapClaim calls using the lease now
	used    bool // a claim was written on it
	retired bool // replaced in the pool: no new claim uses it
}

// claimLeases is a Store's pool of claim leases, by requested TTL.
type claimLeases struct {
	mu    sync.Mutex
	byTTL map[int64]*claimLease
}

// fits reports whether a claim of ttl d whose Txn is sent at now may go on
// l: the lease lives at least d + claimMargin longer.
func (l *claimLease) fits(now time.Time, d time.Duration) bool {
	return l.err == nil && l.lower.Sub(now) >= d+claimMargin
}

// claimLeaseTTL is the TTL, in whole seconds, of the leases for claims of
// ttl d: d + claimBucket rounded up.
func claimLeaseTTL(d time.Duration) int64 { return leaseTTL(d + claimBucket) }

// leaseFor returns a lease on which a claim of ttl d can be written now,
// with its use counted: the pool's lease for d's TTL when it fits, a new
// one otherwise (one grant for all the callers that need it at the same
// time). The caller gives it back with done.
func (s *Store) leaseFor(ctx context.Context, d time.Duration) (*claimLease, error) {
	ttl := claimLeaseTTL(d)
	var lastErr error
	for range claimGrantTries {
		s.claims.mu.Lock()
		l := s.claims.byTTL[ttl]
		granting := false
		if l == nil || l.retired || (isReady(l) && !l.fits(time.Now(), d)) {
			if l != nil {
				s.retireLocked(ctx, ttl, l)
			}
			l = &claimLease{ready: make(chan struct{})}
			if s.claims.byTTL == nil {
				s.claims.byTTL = make(map[int64]*claimLease)
			}
			s.pruneLocked(ctx)
			s.claims.byTTL[ttl] = l
			granting = true
		}
		l.users++
		s.claims.mu.Unlock()

		if granting {
			sent := time.Now()
			g, err := s.cli.Grant(ctx, ttl)
			if err != nil {
				l.err = core.ContextError(ctx, err)
			} else {
				l.id, l.granted = g.ID, g.TTL
				l.lower = sent.Add(time.Duration(g.TTL) * time.Second)
			}
			close(l.ready)
			if err != nil {
				s.done(ctx, l, false)
				return nil, fmt.Errorf("grant lease: %w", l.err)
			}
			// The grant was sent after this call began: the lease fits.
			return l, nil
		}
		select {
		case <-l.ready:
		case <-ctx.Done():
			s.done(ctx, l, false)
			return nil, ctx.Err()
		}
		if l.fits(time.Now(), d) {
			return l, nil
		}
		// Another caller's grant failed (with its own context, perhaps) or
		// came back too late for this claim: try again.
		if l.err != nil {
			lastErr = l.err
		}
		s.done(ctx, l, false)
	}
	if lastErr == nil {
		lastErr = errors.New("every lease came back too late to outlive the claim")
	}
	return nil, fmt.Errorf("grant lease: %w", lastErr)
}

// isReady reports whether l's grant returned.
func isReady(l *claimLease) bool {
	select {
	case <-l.ready:
		return true
	default:
		return false
	}
}

// done gives back a lease leaseFor returned; wrote says a claim was (or
// may have been) written on it. A retired lease that nobody uses and no claim was written on is
// revoked in the background.
func (s *Store) done(ctx context.Context, l *claimLease, wrote bool) {
	s.claims.mu.Lock()
	defer s.claims.mu.Unlock()
	l.users--
	l.used = l.used || wrote
	s.revokeIfUnusedLocked(ctx, l)
}

// retireLocked takes l, the pool's lease for ttl, out of the pool.
func (s *Store) retireLocked(ctx context.Context, ttl int64, l *claimLease) {
	l.retired = true
	if s.claims.byTTL[ttl] == l {
		delete(s.claims.byTTL, ttl)
	}
	s.revokeIfUnusedLocked(ctx, l)
}

// revokeIfUnusedLocked revokes l, in the background, if it is retired,
// granted, unused and carries no claim: it would otherwise live out its
// TTL for nothing. A lease that carries a claim runs out with the claim.
func (s *Store) revokeIfUnusedLocked(ctx context.Context, l *claimLease) {
	if !l.retired || l.users > 0 || l.used || !isReady(l) || l.err != nil || l.id == clientv3.NoLease {
		return
	}
	l.used = true // revoke once
	id, ttl := l.id, l.granted
	go s.revoke(context.WithoutCancel(ctx), id, ttl)
}

// pruneLocked drops from the pool the leases that have run out (each
// carries nothing any more, or has been revoked by etcd), so that the pool
// holds at most one lease per TTL in use within the last TTL seconds.
func (s *Store) pruneLocked(ctx context.Context) {
	now := time.Now()
	for ttl, l := range s.claims.byTTL {
		if isReady(l) && (l.err != nil || !l.lower.After(now)) {
			s.retireLocked(ctx, ttl, l)
		}
	}
}

func (s *Store) claimKey(key string) string { return s.prefix + claimSegment + encodeKey(key) }

// Claim implements core.ClaimStore: one Txn that puts the claim on a lease
// if the key does not exist, and reads it otherwise. The lease is the
// Store's current one for the ttl's whole seconds when it outlives the
// claim, a new one otherwise: see the package documentation for what a
// claim costs and how long it lives.
func (s *Store) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	if err := core.CheckClaim(ctx, key, value, ttl, false); err != nil {
		return "", fmt.Errorf("etcdstore: claim: %w", err)
	}
	held, err := s.claim(ctx, key, value, ttl)
	if err != nil {
		return "", fmt.Errorf("etcdstore: claim %q: %w", key, core.ContextError(ctx, err))
	}
	return held, nil
}

func (s *Store) claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	ck := s.claimKey(key)
	for attempt := 0; ; attempt++ {
		l, err := s.leaseFor(ctx, ttl)
		if err != nil {
			return "", err
		}
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(ck), "=", 0)).
			Then(clientv3.OpPut(ck, value, clientv3.WithLease(l.id))).
			Else(clientv3.OpGet(ck)).
			Commit()
		if err != nil {
			if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
				// The lease ended early (revoked from outside, or this
				// process was paused past it): nothing was written; once
				// more on a new lease.
				s.done(ctx, l, false)
				s.retire(ctx, l)
				continue
			}
			// The claim may have landed: its lease must not be revoked.
			s.done(ctx, l, true)
			return "", err
		}
		s.done(ctx, l, resp.Succeeded)
		if resp.Succeeded {
			return value, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return "", errors.New("the claim's key exists and has no value")
		}
		return string(kvs[0].Value), nil
	}
}

// retire takes l out of the pool if it is still there.
func (s *Store) retire(ctx context.Context, l *claimLease) {
	s.claims.mu.Lock()
	defer s.claims.mu.Unlock()
	for ttl, p := range s.claims.byTTL {
		if p == l {
			delete(s.claims.byTTL, ttl)
		}
	}
	l.retired = true
	s.revokeIfUnusedLocked(ctx, l)
}

// CompareAndSwapClaim implements core.ClaimStore: one Txn that compares the
// key's value with old and puts value on a lease (as Claim does) or
// deletes the key. A claim whose lease ran out has been deleted by etcd,
// so its value compares unequal and a late holder writes nothing.
func (s *Store) CompareAndSwapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	if err := core.CheckClaim(ctx, key, old, time.Millisecond, false); err != nil {
		return false, fmt.Errorf("etcdstore: compare and swap claim: %w", err)
	}
	if err := core.CheckClaim(ctx, key, value, ttl, true); err != nil {
		return false, fmt.Errorf("etcdstore: compare and swap claim: %w", err)
	}
	swapped, err := s.swapClaim(ctx, key, old, value, ttl)
	if err != nil {
		return false, fmt.Errorf("etcdstore: compare and swap claim %q: %w", key, core.ContextError(ctx, err))
	}
	return swapped, nil
}

func (s *Store) swapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	ck := s.claimKey(key)
	same := clientv3.Compare(clientv3.Value(ck), "=", old)
	if value == "" {
		resp, err := s.cli.Txn(ctx).If(same).Then(clientv3.OpDelete(ck)).Commit()
		if err != nil {
			return false, err
		}
		return resp.Succeeded, nil
	}
	for attempt := 0; ; attempt++ {
		l, err := s.leaseFor(ctx, ttl)
		if err != nil {
			return false, err
		}
		resp, err := s.cli.Txn(ctx).If(same).Then(clientv3.OpPut(ck, value, clientv3.WithLease(l.id))).Commit()
		if err != nil {
			if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
				s.done(ctx, l, false)
				s.retire(ctx, l)
				continue
			}
			s.done(ctx, l, true) // the swap may have landed
			return false, err
		}
		s.done(ctx, l, resp.Succeeded)
		return resp.Succeeded, nil
	}
}
