package core_test

// Red team 2 (issue 25 §4): Ready against a store that hangs, and in a
// tight loop.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// rt2HungStore is a MemoryStore whose calls, once hang is set, wait until
// their ctx ends or the test releases them.
type rt2HungStore struct {
	*core.MemoryStore
	hang     atomic.Bool
	entered  chan struct{} // one value per hung call
	release  chan struct{}
	once     sync.Once
	released atomic.Bool
}

func newRT2HungStore() *rt2HungStore {
	return &rt2HungStore{MemoryStore: core.NewMemoryStore(), entered: make(chan struct{}, 64), release: make(chan struct{})}
}

func (s *rt2HungStore) free() { s.once.Do(func() { s.released.Store(true); close(s.release) }) }

func (s *rt2HungStore) wait(ctx context.Context) error {
	s.entered <- struct{}{}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.release:
		return errors.New("released")
	}
}

func (s *rt2HungStore) Get(ctx context.Context, key string) (core.Token, error) {
	if s.hang.Load() {
		return core.Token{}, s.wait(ctx)
	}
	return s.MemoryStore.Get(ctx, key)
}

func (s *rt2HungStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if s.hang.Load() {
		return core.Token{}, s.wait(ctx)
	}
	return s.MemoryStore.Refresh(ctx, key, stale, fetch)
}

// Ready honours its ctx whatever the store does: with nothing held (it is
// Get) and with a held token inside the horizon (the refresh ahead it
// waits for), a store that hangs does not hold it past ctx's end.
func TestReadyHonoursCtxWithAHungStore(t *testing.T) {
	for _, held := range []bool{false, true} {
		name := map[bool]string{false: "nothing held", true: "held token within the horizon"}[held]
		t.Run(name, func(t *testing.T) {
			s := newServer(t)
			store := newRT2HungStore()
			c := newConf(t, s, func(c *core.Config) {
				c.Store, c.TokenAPI, c.RefreshTimeout = store, core.ClassicToken, time.Hour
			})
			if held {
				if _, err := c.AccessToken(t.Context()); err != nil {
					t.Fatal(err)
				}
				s.Advance(7200*time.Second - 90*time.Second) // 1m30s left: inside the 2-minute horizon
			}
			store.hang.Store(true)
			failsafe := time.AfterFunc(time.Minute, store.free)
			defer func() { failsafe.Stop(); store.free() }()
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- c.Ready(ctx) }()
			<-store.entered // Ready's refresh is in the store
			cancel()
			err := <-done
			if store.released.Load() {
				t.Fatal("Ready returned only when the hung store was released, not at its ctx's end")
			}
			var nr *core.NotReadyError
			if !errors.As(err, &nr) || !errors.Is(err, context.Canceled) {
				t.Fatalf("Ready = %v; want a *NotReadyError wrapping context.Canceled", err)
			}
		})
	}
}

// Ready in a tight loop makes no token call a caller's Get would not:
// 1,000 Ready calls of a ready Conf, of one inside ErrorBackoff (a wrong
// AppSecret) and of one whose store is down with a token held, cost at
// most the one call each state allows.
func TestReadyTightLoopMakesNoExtraCalls(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, classic)
	ctx := t.Context()
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if err := c.Ready(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := tokenCalls(s); n != 1 {
		t.Errorf("ready Conf: %d token calls for 1,001 Ready, want 1", n)
	}

	wrong := newConf(t, s, func(cfg *core.Config) { classic(cfg); cfg.AppSecret = core.NewSecret("wr0ng-0000-1111-2222-3333") })
	before := tokenCalls(s)
	for range 1000 {
		var nr *core.NotReadyError
		if err := wrong.Ready(ctx); !errors.As(err, &nr) || nr.Reason != core.ReasonConfiguration {
			t.Fatalf("Ready with a wrong AppSecret = %v; want ReasonConfiguration", err)
		}
	}
	if n := tokenCalls(s) - before; n != 1 {
		t.Errorf("wrong AppSecret: %d token calls for 1,000 Ready, want 1 (then ErrorBackoff)", n)
	}
	_ = wxtest.PathToken
}
