package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wechatconf/wechatconf/core"
)

// held is a refresh lock this process holds: the mutex whose owner key
// fences the write, on a lease that is no longer kept alive, so that it
// runs out ttl seconds after the lock was taken at the latest.
type held struct {
	s        *Store
	id       clientv3.LeaseID
	mu       *concurrency.Mutex
	ttl      int64     // the TTL the server granted, seconds
	deadline time.Time // when the lease runs out, measured before renewing it
}

// lock takes the refresh lock of key, or returns (nil, t, nil) when a token
// t whose value differs from stale was written after revision rev while it
// waited: somebody else refreshed, and the waiter returns that token at
// once instead of queueing on (rule 6). Transient errors of etcd
// (unavailable member, leader change) and a waiter's lease lost while it
// waited retry the whole acquisition, for up to one lease.
func (s *Store) lock(ctx context.Context, key, stale string, rev int64) (*held, core.Token, error) {
	budget := time.Now().Add(time.Duration(s.ttl) * time.Second)
	backoff := 5 * time.Millisecond
	for {
		h, t, err := s.lockOnce(ctx, key, stale, rev)
		retriable := transient(err) || errors.Is(err, concurrency.ErrSessionExpired)
		if err == nil || !retriable || ctx.Err() != nil || time.Now().After(budget) {
			return h, t, err
		}
		if err := sleep(ctx, backoff); err != nil {
			return nil, core.Token{}, err
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

func (s *Store) lockOnce(ctx context.Context, key, stale string, rev int64) (*held, core.Token, error) {
	g, err := s.cli.Grant(ctx, s.ttl)
	if err != nil {
		return nil, core.Token{}, fmt.Errorf("grant lease: %w", core.ContextError(ctx, err))
	}
	// While it waits in the queue, the waiter's lease is kept alive (a
	// waiter that dies leaves the queue within the lease); keepCancel stops
	// that the moment the lock is taken, so the lease bounds the holder.
	keepCtx, keepCancel := context.WithCancel(context.WithoutCancel(ctx))
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(g.ID), concurrency.WithContext(keepCtx))
	if err != nil {
		keepCancel()
		s.revoke(ctx, g.ID, g.TTL)
		return nil, core.Token{}, fmt.Errorf("lease keepalive: %w", core.ContextError(ctx, err))
	}
	mu := concurrency.NewMutex(sess, s.lockPrefix(key))

	lockCtx, lockCancel := context.WithCancel(ctx)
	locked := make(chan error, 1)
	go func() { locked <- mu.Lock(lockCtx) }()
	// giveUp leaves the queue: Lock returns (deleting its queue key), the
	// keepalive stops and the lease is revoked, in the background so that
	// the waiter returns at once. A revoke that fails leaves the lease to
	// run out.
	giveUp := func() {
		lockCancel()
		go func() {
			<-locked
			keepCancel()
			<-sess.Done()
			s.revoke(ctx, g.ID, g.TTL)
		}()
	}

	// Watch the token for a newer value while waiting: every waiter wakes on
	// the holder's write at once, rather than one after the other down the
	// mutex queue.
	watch := s.cli.Watch(lockCtx, s.tokenKey(key), clientv3.WithRev(rev+1))
	for {
		select {
		case err := <-locked:
			if err != nil {
				locked <- err // for giveUp
				giveUp()
				return nil, core.Token{}, core.ContextError(ctx, err)
			}
			lockCancel() // ends the watch
			h, err := s.hold(ctx, g.ID, mu, keepCancel, sess)
			if err != nil {
				return nil, core.Token{}, err
			}
			return h, core.Token{}, nil
		case wr, ok := <-watch:
			if !ok || wr.Err() != nil {
				// The watch ended (history compacted, member lost): the
				// mutex alone wakes this waiter.
				watch = nil
				continue
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				t, err := core.DecodeToken(ev.Kv.Value, key)
				if err == nil && t.Value != stale {
					giveUp()
					return nil, t, nil
				}
			}
		case <-ctx.Done():
			giveUp()
			return nil, core.Token{}, ctx.Err()
		}
	}
}

// hold turns a freshly taken lock into a held one: it stops the lease's
// keepalive and renews the lease once, so that the lease runs out exactly
// ttl after this instant unless the lock is released first.
func (s *Store) hold(ctx context.Context, id clientv3.LeaseID, mu *concurrency.Mutex, keepCancel context.CancelFunc, sess *concurrency.Session) (*held, error) {
	keepCancel()
	<-sess.Done()
	sent := time.Now()
	ka, err := s.cli.KeepAliveOnce(ctx, id)
	if err != nil {
		s.revoke(ctx, id, s.ttl)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil, fmt.Errorf("the lease ran out as the lock was taken: %w", core.ErrLockLost)
		}
		return nil, fmt.Errorf("renew lease: %w", core.ContextError(ctx, err))
	}
	return &held{
		s:        s,
		id:       id,
		mu:       mu,
		ttl:      ka.TTL,
		deadline: sent.Add(time.Duration(ka.TTL) * time.Second),
	}, nil
}

// write puts b under tokenKey if this holder still owns the lock: a Txn
// that compares the create revision of the mutex's owner key. It reports
// false when the lock is lost (the lease ran out and the key is gone, or
// the key is someone else's). The write is idempotent, so an unavailable
// member or a leader change retries it, for up to one lease.
func (h *held) write(ctx context.Context, tokenKey string, b []byte) (owned bool, err error) {
	err = retry(ctx, time.Duration(h.ttl)*time.Second, func(ctx context.Context) error {
		resp, err := h.s.cli.Txn(ctx).If(h.mu.IsOwner()).Then(clientv3.OpPut(tokenKey, string(b))).Commit()
		if err != nil {
			return err
		}
		owned = resp.Succeeded
		return nil
	})
	return owned, core.ContextError(ctx, err)
}

// release frees the lock by revoking its lease, which deletes the owner
// key and wakes the next waiter.
func (h *held) release(ctx context.Context) { h.s.revoke(ctx, h.id, h.ttl) }

// revoke revokes lease id, even once ctx has ended, for at most ttl seconds
// (after which the lease has run out anyway). A lease already gone is fine.
func (s *Store) revoke(ctx context.Context, id clientv3.LeaseID, ttl int64) {
	d := time.Duration(max(ttl, 1)) * time.Second
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	_ = retry(rctx, d, func(ctx context.Context) error {
		_, err := s.cli.Revoke(ctx, id)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil
		}
		return err
	})
}

// transient reports whether err is one that the same request may not meet
// again: a member unavailable, no leader, a leader change.
func transient(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	return status.Code(err) == codes.Unavailable
}

// retry runs op until it succeeds, fails with an error that is not
// transient, ctx ends or budget has passed, with a short backoff between
// tries.
func retry(ctx context.Context, budget time.Duration, op func(context.Context) error) error {
	end := time.Now().Add(budget)
	backoff := 5 * time.Millisecond
	for {
		err := op(ctx)
		if err == nil || !transient(err) || ctx.Err() != nil || time.Now().After(end) {
			return err
		}
		if serr := sleep(ctx, backoff); serr != nil {
			return core.ContextError(ctx, err)
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
