// Package storetest holds a core.TokenStore wrapper that fails on demand,
// shared by the store-outage tests of core and core/wecom (internal: not
// part of any public API).
package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/wechatconf/wechatconf/core"
)

// ErrDown is the error every call of a Down store returns while Failing is
// set, standing for a store that refuses connections.
var ErrDown = errors.New("downstore: connection refused")

// Down is a TokenStore whose every call fails with ErrDown while Failing is
// set; otherwise it calls the TokenStore it wraps.
type Down struct {
	core.TokenStore
	Failing atomic.Bool
}

// NewDown returns a Down store over a new core.MemoryStore, up.
func NewDown() *Down { return &Down{TokenStore: core.NewMemoryStore()} }

// Get implements core.TokenStore.
func (s *Down) Get(ctx context.Context, key string) (core.Token, error) {
	if s.Failing.Load() {
		return core.Token{}, ErrDown
	}
	return s.TokenStore.Get(ctx, key)
}

// Set implements core.TokenStore.
func (s *Down) Set(ctx context.Context, key string, t core.Token) error {
	if s.Failing.Load() {
		return ErrDown
	}
	return s.TokenStore.Set(ctx, key, t)
}

// Refresh implements core.TokenStore.
func (s *Down) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if s.Failing.Load() {
		return core.Token{}, ErrDown
	}
	return s.TokenStore.Refresh(ctx, key, stale, fetch)
}

// ErrInjected is the error a Faulty store's armed call returns.
var ErrInjected = errors.New("faultystore: injected store error")

// Fault is what a Faulty store does to its armed call.
type Fault int

const (
	// Fail: the call fails without effect.
	Fail Fault = 1 + iota
	// Lands: the call takes effect (a Refresh calls fetch and writes),
	// then reports ErrInjected.
	Lands
)

// Faulty is a TokenStore that passes every call to the store it wraps,
// except the next call matching what Arm was given, which gets the fault.
type Faulty struct {
	core.TokenStore
	mu     sync.Mutex
	match  func(op, key string) bool
	fault  Fault
	hit    chan struct{}
	every  bool
	closed bool
}

// NewFaulty returns a Faulty store over a new core.MemoryStore.
func NewFaulty() *Faulty { return &Faulty{TokenStore: core.NewMemoryStore()} }

// Arm makes the next call for which match(op, key) holds (op is "get",
// "set" or "refresh") get fault; the returned channel is closed once it
// has.
func (s *Faulty) Arm(match func(op, key string) bool, fault Fault) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.match, s.fault, s.hit, s.every, s.closed = match, fault, make(chan struct{}), false, false
	return s.hit
}

// ArmEvery is Arm for every matching call, not only the next; the
// channel is closed at the first.
func (s *Faulty) ArmEvery(match func(op, key string) bool, fault Fault) <-chan struct{} {
	hit := s.Arm(match, fault)
	s.mu.Lock()
	s.every = true
	s.mu.Unlock()
	return hit
}

// take reports the fault for a call of op on key, disarming it.
func (s *Faulty) take(op, key string) (Fault, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.match == nil || !s.match(op, key) {
		return 0, nil
	}
	f, hit := s.fault, s.hit
	if !s.every {
		s.match = nil
	}
	if s.closed {
		return f, nil
	}
	s.closed = true
	return f, hit
}

// done closes hit if it is the call that closes it.
func done(hit chan struct{}) {
	if hit != nil {
		close(hit)
	}
}

// Get implements core.TokenStore.
func (s *Faulty) Get(ctx context.Context, key string) (core.Token, error) {
	f, hit := s.take("get", key)
	if f == 0 {
		return s.TokenStore.Get(ctx, key)
	}
	defer done(hit)
	if f == Lands {
		s.TokenStore.Get(ctx, key)
	}
	return core.Token{}, ErrInjected
}

// Set implements core.TokenStore.
func (s *Faulty) Set(ctx context.Context, key string, t core.Token) error {
	f, hit := s.take("set", key)
	if f == 0 {
		return s.TokenStore.Set(ctx, key, t)
	}
	defer done(hit)
	if f == Lands {
		if err := s.TokenStore.Set(ctx, key, t); err != nil {
			return err
		}
	}
	return ErrInjected
}

// Refresh implements core.TokenStore.
func (s *Faulty) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	f, hit := s.take("refresh", key)
	if f == 0 {
		return s.TokenStore.Refresh(ctx, key, stale, fetch)
	}
	defer done(hit)
	if f == Lands {
		if _, err := s.TokenStore.Refresh(ctx, key, stale, fetch); err != nil {
			return core.Token{}, err
		}
	}
	return core.Token{}, ErrInjected
}
