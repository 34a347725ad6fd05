package core_test

// Red-team tests (issue 27) of keyLocks.refresh's "outlived", read before
// the lease's cancel: a Get that fails fast is the store down, but one
// that truly outlives the lease is still a lock lost, and a caller's
// cancel is neither.

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

func TestFuncStoreGetOutlivingTheLeaseIsStillALockLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := errors.New("db timed out")
		const lease = time.Second
		for _, tc := range []struct {
			name string
			get  func(ctx context.Context) error
		}{
			{"honours ctx", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
			{"ignores ctx, fails after the lease", func(ctx context.Context) error { time.Sleep(2 * lease); return down }},
		} {
			store, err := core.NewFuncStore(core.StoreFuncs{
				Get: func(ctx context.Context, _ string) (core.Token, error) { return core.Token{}, tc.get(ctx) },
				Set: func(context.Context, string, core.Token) error { return nil },
			}, core.WithLease(lease))
			if err != nil {
				t.Fatal(err)
			}
			_, err = store.Refresh(context.Background(), "k", "", func(context.Context) (core.Token, error) {
				t.Error("fetched")
				return core.Token{}, nil
			})
			if !errors.Is(err, core.ErrLockLost) {
				t.Errorf("%s: a Get outliving the %v lease: %v, want ErrLockLost", tc.name, lease, err)
			}
		}

		// The caller's cancel while Get runs: its own error, no lock lost.
		ctx, cancel := context.WithCancel(context.Background())
		store, _ := core.NewFuncStore(core.StoreFuncs{
			Get: func(ctx context.Context, _ string) (core.Token, error) {
				cancel()
				<-ctx.Done()
				return core.Token{}, ctx.Err()
			},
			Set: func(context.Context, string, core.Token) error { return nil },
		}, core.WithLease(lease))
		_, err := store.Refresh(ctx, "k", "", func(context.Context) (core.Token, error) { return core.Token{}, nil })
		if !errors.Is(err, context.Canceled) || errors.Is(err, core.ErrLockLost) {
			t.Errorf("caller cancelled during Get: %v, want context.Canceled and no ErrLockLost", err)
		}
	})
}
