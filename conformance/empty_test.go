package conformance_test

import (
	"context"
	"sync"

	"github.com/wechatconf/wechatconf/core"
)

// storesEmpty is a store that breaks the empty-value rule the way a store
// written before it did: Set of a token with an empty Value succeeds and
// replaces what was stored, and Get then returns that empty token without
// an error.
type storesEmpty struct {
	core.TokenStore

	mu    sync.Mutex
	empty map[string]core.Token // keys whose last Set was an empty token
}

func (s *storesEmpty) Get(ctx context.Context, key string) (core.Token, error) {
	s.mu.Lock()
	t, ok := s.empty[key]
	s.mu.Unlock()
	if ok {
		return t, nil
	}
	return s.TokenStore.Get(ctx, key)
}

func (s *storesEmpty) Set(ctx context.Context, key string, t core.Token) error {
	if err := core.CheckCall(ctx, key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.Value == "" {
		if s.empty == nil {
			s.empty = map[string]core.Token{}
		}
		s.empty[key] = t
		return nil
	}
	delete(s.empty, key)
	return s.TokenStore.Set(ctx, key, t)
}
