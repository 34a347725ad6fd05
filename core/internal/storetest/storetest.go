// Package storetest holds a core.TokenStore wrapper that fails on demand,
// shared by the store-outage tests of core and core/wecom (internal: not
// part of any public API).
package storetest

import (
	"context"
	"errors"
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
