package cli_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/wechatconf/wechatconf/core"
)

// listing is a core.MemoryStore that lists the keys written through it: a
// core.KeyLister for the tests of ls and of the not-found hint that does
// not depend on any store's own ListKeys.
type listing struct {
	*core.MemoryStore
	mu   sync.Mutex
	keys map[string]bool
}

func newListing() *listing {
	return &listing{MemoryStore: core.NewMemoryStore(), keys: map[string]bool{}}
}

func (l *listing) Set(ctx context.Context, key string, t core.Token) error {
	if err := l.MemoryStore.Set(ctx, key, t); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys[key] = true
	return nil
}

func (l *listing) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	t, err := l.MemoryStore.Refresh(ctx, key, stale, fetch)
	if err == nil {
		l.mu.Lock()
		l.keys[key] = true
		l.mu.Unlock()
	}
	return t, err
}

// ListKeys implements core.KeyLister.
func (l *listing) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ks []string
	for k := range l.keys {
		if strings.HasPrefix(k, prefix) {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks, nil
}

// unlisted hides a store's ListKeys: a store that cannot list.
type unlisted struct{ core.TokenStore }

// failingLister is a store whose listing fails.
type failingLister struct{ core.TokenStore }

var errListing = errors.New("listing refused by the test")

func (failingLister) ListKeys(context.Context, string) ([]string, error) { return nil, errListing }
