package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wechatconf/wechatconf/core"
)

// DefaultPrefix begins every etcd key of a Store built without WithPrefix.
const DefaultPrefix = "wechatconf/"

// Option configures a Store built by New.
type Option func(*options)

type options struct {
	prefix string
	lease  time.Duration
}

// WithPrefix sets the string that begins every etcd key the store writes
// (default DefaultPrefix). It is used as is, so end it with "/" to keep a
// tidy hierarchy. Stores that share data and locks must use the same
// prefix; give each application its own.
func WithPrefix(p string) Option {
	return func(o *options) { o.prefix = p }
}

// WithLease sets the lease of the refresh lock (default core.DefaultLease):
// fetch runs with a context bounded by it, a holder still inside fetch when
// it runs out loses the lock and its write is refused with core.ErrLockLost,
// and the lock of a holder that dies is free again within it. A value <= 0
// keeps the default.
//
// etcd lease TTLs are whole seconds: d is rounded up to the next whole
// second (500ms and 1s give 1s, 1.2s gives 2s). The etcd server raises a
// TTL below its minimum, 1.5 × the election timeout rounded up to a second
// (2s with the default 1s election timeout), to that minimum; the store
// then bounds fetch by the TTL the server actually granted, so with a
// default server a lease below 2s behaves as 2s.
func WithLease(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lease = d
		}
	}
}

// Store is a core.TokenStore on etcd: tokens are etcd keys, and the refresh
// lock is a concurrency.Mutex whose owner key lives on a lease that bounds
// the holder. See the package documentation for the design.
//
// A Store is safe for concurrent use. Its zero value is not usable; build it
// with New. It never closes the client it was given.
type Store struct {
	cli    *clientv3.Client
	prefix string
	ttl    int64 // requested lease TTL, whole seconds
	claims claimLeases
}

// New returns a Store over client, which the caller keeps and closes. It
// does no I/O: a misconfigured client shows up as an error from the first
// call.
func New(client *clientv3.Client, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, errors.New("etcdstore: New: nil *clientv3.Client")
	}
	o := options{prefix: DefaultPrefix, lease: core.DefaultLease}
	for _, opt := range opts {
		opt(&o)
	}
	return &Store{cli: client, prefix: o.prefix, ttl: leaseTTL(o.lease)}, nil
}

// leaseTTL rounds a lease up to whole seconds, at least 1.
func leaseTTL(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

func (s *Store) tokenKey(key string) string   { return s.prefix + tokenSegment + encodeKey(key) }
func (s *Store) lockPrefix(key string) string { return s.prefix + lockSegment + encodeKey(key) }

// Get implements core.TokenStore with a linearizable read. A stored value
// that cannot be decoded is an error that does not wrap core.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (core.Token, error) {
	if err := core.CheckCall(ctx, key); err != nil {
		return core.Token{}, fmt.Errorf("etcdstore: get: %w", err)
	}
	t, found, _, err := s.read(ctx, key)
	switch {
	case err != nil:
		return core.Token{}, fmt.Errorf("etcdstore: get %q: %w", key, err)
	case !found:
		return core.Token{}, fmt.Errorf("etcdstore: get %q: %w", key, core.ErrNotFound)
	}
	return t, nil
}

// Set implements core.TokenStore: it overwrites the key's token in place,
// without taking the refresh lock. A token with an empty Value is refused
// with an error wrapping core.ErrEmptyToken, and nothing is written.
func (s *Store) Set(ctx context.Context, key string, t core.Token) error {
	if err := core.CheckSet(ctx, key, t); err != nil {
		return fmt.Errorf("etcdstore: set %q: %w", key, err)
	}
	b, err := core.EncodeToken(key, t)
	if err != nil {
		return fmt.Errorf("etcdstore: set %q: %w", key, err)
	}
	if _, err := s.cli.Put(ctx, s.tokenKey(key), string(b)); err != nil {
		return fmt.Errorf("etcdstore: set %q: %w", key, core.ContextError(ctx, err))
	}
	return nil
}

// Refresh implements core.TokenStore: see its rules and the package
// documentation for how the lock, the lease and the fenced write work.
func (s *Store) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if err := core.CheckCall(ctx, key); err != nil {
		return core.Token{}, fmt.Errorf("etcdstore: refresh: %w", err)
	}
	t, err := s.refresh(ctx, key, stale, fetch)
	if err != nil {
		return core.Token{}, fmt.Errorf("etcdstore: refresh %q: %w", key, err)
	}
	return t, nil
}

func (s *Store) refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	// Somebody may have refreshed already: one linearizable read answers
	// without touching the lock. Its revision is where the wait for a
	// newer token starts watching.
	cur, found, rev, err := s.readTolerant(ctx, key)
	if err != nil {
		return core.Token{}, err
	}
	if found && cur.Value != stale {
		return cur, nil
	}

	h, newer, err := s.lock(ctx, key, stale, rev)
	if err != nil {
		return core.Token{}, fmt.Errorf("waiting for the lock: %w", err)
	}
	if h == nil { // the token changed while we waited (rule 2)
		return newer, nil
	}
	defer h.release(ctx)

	// Rule 2, under the lock.
	cur, found, _, err = s.readTolerant(ctx, key)
	if err != nil {
		return core.Token{}, err
	}
	if found && cur.Value != stale {
		return cur, nil
	}

	// Rule 3: fetch within the lease, then write only while still the
	// owner.
	t, err := core.FetchUntil(ctx, h.deadline, fetch)
	if err != nil {
		return core.Token{}, err
	}
	b, err := core.EncodeToken(key, t)
	if err != nil {
		return core.Token{}, err
	}
	owned, err := h.write(ctx, s.tokenKey(key), b)
	if err != nil {
		return core.Token{}, fmt.Errorf("fenced write: %w", err)
	}
	if !owned {
		return core.Token{}, fmt.Errorf("the %ds lease ran out before the write (the lock is gone or someone else's), write refused: %w", h.ttl, core.ErrLockLost)
	}
	return t, nil
}

// read is a linearizable Get of key's token. It reports the token, whether
// one is stored, and the revision of the read; a value that cannot be
// decoded is an error wrapping core.ErrCorrupt.
func (s *Store) read(ctx context.Context, key string) (t core.Token, found bool, rev int64, err error) {
	resp, err := s.cli.Get(ctx, s.tokenKey(key))
	if err != nil {
		return core.Token{}, false, 0, core.ContextError(ctx, err)
	}
	rev = resp.Header.Revision
	if len(resp.Kvs) == 0 {
		return core.Token{}, false, rev, nil
	}
	t, err = core.DecodeToken(resp.Kvs[0].Value, key)
	if err != nil {
		return core.Token{}, false, rev, fmt.Errorf("%s: %w", resp.Kvs[0].Key, err)
	}
	return t, true, rev, nil
}

// readTolerant is read for Refresh: a corrupt value counts as absent (the
// fenced write repairs it).
func (s *Store) readTolerant(ctx context.Context, key string) (core.Token, bool, int64, error) {
	t, found, rev, err := s.read(ctx, key)
	if errors.Is(err, core.ErrCorrupt) {
		return core.Token{}, false, rev, nil
	}
	return t, found, rev, err
}
