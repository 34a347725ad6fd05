package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// DefaultLease is how long a refresh lock is held at most when a store is
// built without WithLease: the fetch runs with a context bounded by it, and a
// holder that dies frees the lock within it. Every store in this project uses
// it as its default.
const DefaultLease = 15 * time.Second

// MaxKeyLen is the longest key, in bytes, that every TokenStore accepts.
const MaxKeyLen = 256

// ValidateKey reports whether key is a key every TokenStore must accept:
// non-empty, valid UTF-8, without NUL, at most MaxKeyLen bytes. Stores call it
// first so that a bad key is the same clear error everywhere.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty key")
	case len(key) > MaxKeyLen:
		return fmt.Errorf("key of %d bytes is longer than %d", len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("key %q is not valid UTF-8", key)
	}
	for i := 0; i < len(key); i++ {
		if key[i] == 0 {
			return fmt.Errorf("key %q contains NUL", key)
		}
	}
	return nil
}

// StoreOption configures the stores built in this package (NewMemoryStore,
// NewFuncStore). Backends in other modules have options of their own with
// the same names.
type StoreOption func(*storeOptions)

type storeOptions struct {
	lease time.Duration
}

func buildStoreOptions(opts []StoreOption) storeOptions {
	o := storeOptions{lease: DefaultLease}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithLease sets how long the refresh lock may be held (default
// DefaultLease): fetch runs with a context bounded by it, and a holder still
// inside fetch when it runs out loses the lock and its write is refused with
// ErrLockLost. A value <= 0 keeps the default.
func WithLease(d time.Duration) StoreOption {
	return func(o *storeOptions) {
		if d > 0 {
			o.lease = d
		}
	}
}

// MemoryStore is a TokenStore that lives in this process's memory: the store
// for a single process, and the one Conf uses when Config.Store is nil.
// Refresh takes a per-key lock; waiters wake the moment it is released.
// Two MemoryStore values share nothing: to let several Confs in one process
// share tokens, give them the same *MemoryStore.
//
// It implements KeyLister (ListKeys), so the wechatconf command's ls can
// list what it holds.
//
// A MemoryStore is safe for concurrent use. Its zero value is not usable;
// build it with NewMemoryStore.
type MemoryStore struct {
	lease time.Duration
	locks keyLocks

	mu     sync.RWMutex
	tokens map[string]Token

	claims memClaims // ClaimStore, apart from the tokens
}

// NewMemoryStore returns an empty in-memory TokenStore.
func NewMemoryStore(opts ...StoreOption) *MemoryStore {
	o := buildStoreOptions(opts)
	return &MemoryStore{lease: o.lease, tokens: make(map[string]Token)}
}

// Get implements TokenStore.
func (m *MemoryStore) Get(ctx context.Context, key string) (Token, error) {
	if err := CheckCall(ctx, key); err != nil {
		return Token{}, fmt.Errorf("memorystore: get: %w", err)
	}
	t, ok := m.load(key)
	if !ok {
		return Token{}, fmt.Errorf("memorystore: get %q: %w", key, ErrNotFound)
	}
	return t, nil
}

// Set implements TokenStore.
func (m *MemoryStore) Set(ctx context.Context, key string, t Token) error {
	if err := CheckSet(ctx, key, t); err != nil {
		return fmt.Errorf("memorystore: set %q: %w", key, err)
	}
	m.store(key, t)
	return nil
}

// Refresh implements TokenStore: see its rules. The lock is per key and
// in-process; the lease bounds fetch and fences the write.
func (m *MemoryStore) Refresh(ctx context.Context, key, stale string, fetch FetchFunc) (Token, error) {
	if err := CheckCall(ctx, key); err != nil {
		return Token{}, fmt.Errorf("memorystore: refresh: %w", err)
	}
	t, err := m.locks.refresh(ctx, key, stale, m.lease, fetch,
		func(context.Context) (Token, bool, error) { t, ok := m.load(key); return t, ok, nil },
		func(_ context.Context, t Token) error { m.store(key, t); return nil })
	if err != nil {
		return Token{}, fmt.Errorf("memorystore: refresh %q: %w", key, err)
	}
	return t, nil
}

// ListKeys implements KeyLister: the keys of the tokens m holds that begin
// with prefix ("" for all), sorted, each once. It copies the matching keys
// under m's read lock (one pass over the map, which holds no lock or other
// internal entry) and sorts them after releasing it. A ctx already done is
// an error wrapping ctx.Err().
func (m *MemoryStore) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memorystore: list keys: %w", err)
	}
	var keys []string
	m.mu.RLock()
	for k := range m.tokens {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	m.mu.RUnlock()
	slices.Sort(keys)
	return keys, nil
}

func (m *MemoryStore) load(key string) (Token, bool) {
	m.mu.RLock()
	t, ok := m.tokens[key]
	m.mu.RUnlock()
	return t, ok
}

func (m *MemoryStore) store(key string, t Token) {
	t.ExpiresAt = t.ExpiresAt.Round(0) // drop the monotonic reading: ExpiresAt is a wall-clock instant
	m.mu.Lock()
	m.tokens[key] = t
	m.mu.Unlock()
}

// refresh runs rules 1–4 of TokenStore.Refresh over the in-process lock, with
// get and set doing the storage. get reports (token, found, error); an error
// aborts the refresh, because fetching while the store cannot be read would
// let every process fetch.
//
// The lease runs from the moment the lock is taken: get and fetch share it
// (a slow get leaves fetch less time, never a second lease). The write is
// fenced by pinning the lock, and set gets one more lease of its own: a set
// that has not returned by then (a user function that ignores ctx) is left
// running and the lock is released with an error, never held forever. When
// ctx ends while set runs, refresh returns ctx's error at once but the lock
// stays held until set returns (or its lease ends): a write released from
// the lock early could land over the next holder's (MemoryStore's write is
// a goroutine that may not have run yet when ctx ends).
func (l *keyLocks) refresh(ctx context.Context, key, stale string, lease time.Duration, fetch FetchFunc,
	get func(context.Context) (Token, bool, error), set func(context.Context, Token) error) (Token, error) {
	gen, err := l.acquire(ctx, key, lease)
	if err != nil {
		return Token{}, fmt.Errorf("waiting for the lock: %w", err)
	}
	deadline := time.Now().Add(lease)
	unlock := true // false: a write left running releases the lock when it returns
	defer func() {
		if unlock {
			l.release(key, gen)
		}
	}()

	gctx, cancel := context.WithDeadline(ctx, deadline)
	cur, found, err := get(gctx)
	outlived := gctx.Err() == context.DeadlineExceeded && ctx.Err() == nil // read before cancel, which sets Err
	cancel()
	switch {
	case err != nil && outlived:
		return Token{}, fmt.Errorf("reading the stored token outlived the %v lease: %w: %w", lease, ErrLockLost, err)
	case err != nil:
		return Token{}, err
	case found && cur.Value != stale:
		return cur, nil
	}

	t, err := FetchUntil(ctx, deadline, fetch)
	if err != nil {
		return Token{}, err
	}
	if !l.pin(key, gen) {
		return Token{}, fmt.Errorf("fetch outlived the %v lease, write refused: %w", lease, ErrLockLost)
	}
	running, err := setWithin(ctx, lease, t, set)
	if running != nil {
		unlock = false
		go func() {
			<-running
			l.release(key, gen)
		}()
	}
	if err != nil {
		return Token{}, err
	}
	return t, nil
}

// setWithin calls set with a ctx that ends with ctx or after lease, and
// returns set's error (running nil), or an error wrapping
// context.DeadlineExceeded once lease has passed without set returning
// (set goes on in the background; the caller releases the lock). When ctx
// ends first, it returns an error wrapping ctx.Err() at once, and running,
// closed when set returns or lease has passed: the caller keeps the lock
// until then, so that set's write, which may still land, lands under it.
func setWithin(ctx context.Context, lease time.Duration, t Token, set func(context.Context, Token) error) (running <-chan struct{}, err error) {
	sctx, cancel := context.WithTimeout(ctx, lease)
	done := make(chan error, 1)
	go func() { done <- set(sctx, t) }()
	leaseEnd := time.NewTimer(lease)
	select {
	case err := <-done:
		leaseEnd.Stop()
		cancel()
		return nil, err
	case <-leaseEnd.C:
		cancel()
		return nil, fmt.Errorf("writing the token did not finish within the %v lease; lock released: %w", lease, context.DeadlineExceeded)
	case <-ctx.Done():
	}
	cancel() // set's ctx ended with ctx: a set that honours it returns soon
	left := make(chan struct{})
	go func() {
		defer close(left)
		defer leaseEnd.Stop()
		select {
		case <-done:
		case <-leaseEnd.C:
		}
	}()
	return left, fmt.Errorf("the caller's ctx ended while the token was being written (the write may still land; the lock is held until it returns): %w", ctx.Err())
}
