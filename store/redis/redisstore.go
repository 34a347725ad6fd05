package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/core"
)

// DefaultPrefix begins every Redis key and channel of a Store built
// without WithPrefix.
const DefaultPrefix = "wechatconf:"

// DefaultWaitBackoff is the longest a waiter sleeps between two attempts at
// a lock another caller holds when no release message arrives, for a Store
// built without WithWaitBackoff. It is also capped at a quarter of the
// lease.
const DefaultWaitBackoff = 200 * time.Millisecond

// wakeChannel ends the name of a Store's wake channel, after the prefix:
// every release of every key under the prefix is announced on it, with the
// key's wake name as the message.
const wakeChannel = "wake"

// DefaultExpiryGrace is how long Redis keeps a token after its ExpiresAt,
// for a Store built without WithExpiryGrace.
const DefaultExpiryGrace = time.Minute

// Option configures a Store built by New.
type Option func(*options)

type options struct {
	prefix  string
	lease   time.Duration
	backoff time.Duration
	grace   time.Duration
	logger  *slog.Logger
}

// WithPrefix sets the string that begins every Redis key and Pub/Sub
// channel of the Store (default DefaultPrefix); "" means no prefix. Every
// process sharing tokens must use the same prefix. It may contain any byte,
// "{" and "}" included: each key's own hash tag follows it (see the package
// documentation), but a prefix holding a complete "{…}" puts all keys of the
// Store on that one Cluster slot.
func WithPrefix(p string) Option {
	return func(o *options) { o.prefix = p }
}

// WithLease sets how long the refresh lock may be held (default
// core.DefaultLease): it is the PX of the lock, fetch runs with a context
// bounded by it, a holder still inside fetch when it runs out loses the
// lock and its write is refused with core.ErrLockLost, and a holder that
// dies frees the lock when it runs out. Redis keeps it to the millisecond.
// A value <= 0 keeps the default. Every process sharing a key should use the
// same lease.
func WithLease(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lease = max(d, time.Millisecond)
		}
	}
}

// WithWaitBackoff sets the longest a waiter sleeps between two attempts at
// a held lock when no release message wakes it (default DefaultWaitBackoff,
// and never more than a quarter of the lease), with jitter. A waiter also
// retries as soon as the holder's lease runs out. A value <= 0 keeps the
// default; a value below 1 ms is raised to 1 ms.
func WithWaitBackoff(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.backoff = max(d, time.Millisecond)
		}
	}
}

// WithExpiryGrace sets how long after a token's ExpiresAt Redis drops it
// (default DefaultExpiryGrace), so that nothing is left behind for a key no
// longer used. A token whose ExpiresAt is already past when written is kept
// for the grace from the time of the write. A value <= 0 keeps the default.
func WithExpiryGrace(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.grace = d
		}
	}
}

// Store is a core.TokenStore on Redis, shared by every process that uses
// the same server (or Sentinel group, or Cluster) and prefix. Two Store
// values over the same Redis, in one process or in several, behave like two
// processes: they share tokens and locks. See the package documentation for
// the key layout and the lock design.
//
// A Store is safe for concurrent use. Its zero value is not usable; build it
// with New. It holds no connection of its own between calls except, while
// callers wait, one Pub/Sub connection (see "Waiting" in the package
// documentation), and needs no Close.
type Store struct {
	client  redis.UniversalClient
	prefix  string
	lease   time.Duration
	backoff time.Duration // effective: min(WithWaitBackoff, lease/4)
	grace   time.Duration
	hub     hub
	logger  *slog.Logger

	durability checkOnce // the durability check of the first durable write

	// claimByScript is set once the server refused SET … NX … GET (Redis
	// before 7.0): Claim runs lua/claim.lua from then on.
	claimByScript atomic.Bool
}

// New returns a Store over client: a *redis.Client (standalone, or
// Sentinel-backed from redis.NewFailoverClient), a *redis.ClusterClient,
// or whatever redis.NewUniversalClient returns. The Store never closes the
// client. A nil client (or a nil *redis.Client, *redis.ClusterClient or
// *redis.Ring) is an error, as in the other stores of the suite, which all
// have the shape New(client, opts...) (*Store, error); New does no I/O.
func New(client redis.UniversalClient, opts ...Option) (*Store, error) {
	if isNilClient(client) {
		return nil, errors.New("redisstore: New: nil client")
	}
	o := options{prefix: DefaultPrefix, lease: core.DefaultLease, backoff: DefaultWaitBackoff, grace: DefaultExpiryGrace}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = core.DefaultLogger()
	}
	return &Store{
		client:  client,
		prefix:  o.prefix,
		lease:   o.lease,
		backoff: max(min(o.backoff, o.lease/4), time.Millisecond),
		grace:   o.grace,
		hub:     hub{client: client, channel: o.prefix + wakeChannel},
		logger:  o.logger,
	}, nil
}

// isNilClient reports whether client is nil, or a typed nil pointer in the
// interface.
func isNilClient(client redis.UniversalClient) bool {
	switch c := client.(type) {
	case nil:
		return true
	case *redis.Client:
		return c == nil
	case *redis.ClusterClient:
		return c == nil
	case *redis.Ring:
		return c == nil
	}
	return false
}

// RedisKeys returns the Redis keys that hold key's token (a hash) and its
// refresh lock (a string). They are for operators: deleting the token key
// makes the next Refresh fetch again; the lock key's PTTL tells how long a
// refresh may still hold it. They are not validated: key should satisfy
// core.ValidateKey.
func (s *Store) RedisKeys(key string) (token, lock string) {
	n := s.names(key)
	return n.token, n.lock
}

// Get implements core.TokenStore with one HMGET. A stored value that cannot
// be decoded (not a hash, an unknown format version, the token of another
// key) is an error naming the Redis key that does not wrap core.ErrNotFound;
// Refresh repairs it.
func (s *Store) Get(ctx context.Context, key string) (core.Token, error) {
	if err := core.CheckCall(ctx, key); err != nil {
		return core.Token{}, fmt.Errorf("redisstore: get: %w", err)
	}
	n := s.names(key)
	f, err := s.client.HMGet(ctx, n.token, fieldVersion, fieldKey, fieldValue, fieldExpiresAt).Result()
	if err == nil && len(f) != 4 {
		err = fmt.Errorf("HMGET returned %d fields, want 4", len(f))
	}
	if err != nil {
		if isWrongType(err) {
			return core.Token{}, fmt.Errorf("redisstore: get %q: redis key %q: %w: it is not a hash (%v)", key, n.token, core.ErrCorrupt, err)
		}
		return core.Token{}, fmt.Errorf("redisstore: get %q: %w", key, redisErr(ctx, err))
	}
	t, err := decode(key, f[0], f[1], f[2], f[3])
	switch {
	case errors.Is(err, errNotStored):
		return core.Token{}, fmt.Errorf("redisstore: get %q: %w", key, core.ErrNotFound)
	case err != nil:
		return core.Token{}, fmt.Errorf("redisstore: get %q: redis key %q: %w", key, n.token, err)
	}
	return t, nil
}

// Set implements core.TokenStore: it replaces the stored token in one
// atomic script, without taking the refresh lock. The token expires in
// Redis the grace (WithExpiryGrace) after its ExpiresAt; a token with a zero
// ExpiresAt is kept until it is overwritten or deleted (durable state: the
// first such write of a Store may ask the server whether it keeps it, see
// EventDurabilityRisk). A token with an empty Value is refused with an
// error wrapping core.ErrEmptyToken, and nothing is written.
func (s *Store) Set(ctx context.Context, key string, t core.Token) error {
	if err := core.CheckSet(ctx, key, t); err != nil {
		return fmt.Errorf("redisstore: set %q: %w", key, err)
	}
	n := s.names(key)
	err := setScript.Run(ctx, s.client, []string{n.token},
		formatVersion, key, t.Value, encodeExpiresAt(t.ExpiresAt), expireAt(t.ExpiresAt, s.grace)).Err()
	if err != nil {
		return fmt.Errorf("redisstore: set %q: %w", key, redisErr(ctx, err))
	}
	if t.ExpiresAt.IsZero() {
		s.durableWritten(ctx, key)
	}
	return nil
}

// Refresh implements core.TokenStore: see its rules and the package
// documentation for the lock. A stored value that cannot be decoded counts
// as absent and is replaced. A fetched token with a zero ExpiresAt is
// durable state, written like Set's (see EventDurabilityRisk).
func (s *Store) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if err := core.CheckCall(ctx, key); err != nil {
		return core.Token{}, fmt.Errorf("redisstore: refresh: %w", err)
	}
	t, err := s.refresh(ctx, key, stale, fetch)
	if err != nil {
		return core.Token{}, fmt.Errorf("redisstore: refresh %q: %w", key, err)
	}
	return t, nil
}

// Results of acquire.lua.
const (
	stateFresh  = "fresh"
	stateLocked = "locked"
	stateHeld   = "held"
)

func (s *Store) refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	n := s.names(key)
	owner := rand.Text()
	leaseMS := s.lease.Milliseconds()
	repair := "0" // "1" once the stored token proved undecodable
	var sub *wait
	defer func() {
		if sub != nil {
			sub.leave()
		}
	}()
	for {
		// Take the wake channel before the attempt, so that a release
		// between the attempt and the wait is not missed.
		var wake <-chan struct{}
		if sub != nil {
			wake = sub.wakeChan()
		}
		start := time.Now() // the lease on the server starts later than this
		reply, err := acquireScript.Run(ctx, s.client, []string{n.token, n.lock},
			owner, leaseMS, stale, formatVersion, key, repair).Slice()
		if err != nil {
			return core.Token{}, fmt.Errorf("taking the lock: %w", redisErr(ctx, err))
		}
		var state string
		if len(reply) > 0 {
			state, _ = reply[0].(string)
		}
		switch state {
		case stateFresh:
			if len(reply) != 6 {
				return core.Token{}, fmt.Errorf("taking the lock: unexpected reply %v", reply)
			}
			t, err := decode(key, reply[2], reply[3], reply[4], reply[5])
			if err == nil {
				return t, nil
			}
			repair = "1" // the script and decode disagree: replace it
			continue
		case stateLocked:
			if sub != nil {
				sub.leave() // no more waiting
				sub = nil
			}
			return s.hold(ctx, n, key, owner, start, fetch)
		case stateHeld:
		default:
			return core.Token{}, fmt.Errorf("taking the lock: unexpected reply %v", reply)
		}
		pttl := int64(-1)
		if len(reply) > 1 {
			pttl, _ = reply[1].(int64)
		}
		var ready <-chan struct{}
		if sub == nil {
			// Subscribe, wait for the server's confirmation, then try
			// again: a release from now on is announced to us.
			sub, ready = s.hub.join(n.wake)
		}
		timer := time.NewTimer(s.retryDelay(pttl))
		select {
		case <-ctx.Done():
			timer.Stop()
			return core.Token{}, fmt.Errorf("waiting for the lock: %w", ctx.Err())
		case <-wake:
		case <-ready:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// hold runs rules 2–4 for the holder of the lock: fetch, then the fenced
// write, which also releases the lock. start is when the attempt that took
// the lock was sent; the server's lease began later.
func (s *Store) hold(ctx context.Context, n names, key, owner string, start time.Time, fetch core.FetchFunc) (core.Token, error) {
	released := false
	defer func() {
		if !released {
			s.release(ctx, n, owner)
		}
	}()
	t, err := core.FetchUntil(ctx, start.Add(s.lease), fetch)
	if err != nil {
		return core.Token{}, err
	}

	// The token is fetched (and, in WeChat's classic mode, the previous one
	// is already invalid): write it even if ctx ends now.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lease)
	defer cancel()
	ok, err := writeScript.Run(wctx, s.client, []string{n.token, n.lock},
		owner, formatVersion, key, t.Value, encodeExpiresAt(t.ExpiresAt), expireAt(t.ExpiresAt, s.grace), n.wake, s.hub.channel).Int()
	switch {
	case err != nil && wctx.Err() != nil && ctx.Err() == nil:
		// Not the caller's deadline: do not let errors.Is say it was.
		return core.Token{}, fmt.Errorf("writing the fetched token: no reply within %v, the token may or may not be stored: %v", s.lease, err)
	case err != nil:
		return core.Token{}, fmt.Errorf("writing the fetched token: %w", redisErr(ctx, err))
	}
	released = true // by the script, or by whoever took the lock over
	if ok != 1 {
		return core.Token{}, fmt.Errorf("lock taken over after its %v lease, write refused: %w", s.lease, core.ErrLockLost)
	}
	if t.ExpiresAt.IsZero() {
		s.durableWritten(ctx, key)
	}
	return t, nil
}

// release releases the lock if owner still holds it and wakes the waiters.
// It runs even when ctx is done; an error is ignored, since the lease frees
// the lock anyway.
func (s *Store) release(ctx context.Context, n names, owner string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lease)
	defer cancel()
	_ = releaseScript.Run(rctx, s.client, []string{n.lock}, owner, n.wake, s.hub.channel).Err()
}

// retryDelay returns how long a waiter sleeps before its next attempt when
// no release message wakes it: just past the holder's remaining lease pttl
// (ms) when that is sooner than the backoff, otherwise the backoff, with
// jitter either way.
func (s *Store) retryDelay(pttl int64) time.Duration {
	if pttl >= 0 {
		if d := time.Duration(pttl) * time.Millisecond; d < s.backoff {
			return d + time.Millisecond + mrand.N(2*time.Millisecond)
		}
	}
	return s.backoff*3/4 + mrand.N(s.backoff/2+1)
}

// redisErr returns err, from a call with ctx, in the form the Store
// returns it: wrapping ctx.Err() when ctx is done, so that errors.Is
// matches context.Canceled or DeadlineExceeded whatever go-redis returned,
// and with the fix for a write to a replica.
func redisErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return core.ContextError(ctx, err)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "READONLY ") {
		return fmt.Errorf("%w (the client reached a read-only replica: point it at the master, or use a Sentinel failover or Cluster client)", err)
	}
	return err
}

// isWrongType reports whether err is Redis's WRONGTYPE error.
func isWrongType(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "WRONGTYPE ")
}
