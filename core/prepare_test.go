package core_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// lockWatch is a MemoryStore that knows whether a Refresh lock is held,
// so a test can see that Prepare runs with none held.
type lockWatch struct {
	core.TokenStore
	held atomic.Int32
}

func (w *lockWatch) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	return w.TokenStore.Refresh(ctx, key, stale, func(ctx context.Context) (core.Token, error) {
		w.held.Add(1)
		defer w.held.Add(-1)
		return fetch(ctx)
	})
}

// Prepare reads what the fetch needs from the store before the lock, with
// no lock held (no store call while the lock is held), and Fetch gets it;
// a second instance adopts the stored token without a Prepare or a fetch.
func TestPrepareRunsBeforeTheLock(t *testing.T) {
	store := &lockWatch{TokenStore: core.NewMemoryStore()}
	ctx := t.Context()
	if err := store.Set(ctx, "ticket", core.Token{Value: "ticket-1"}); err != nil {
		t.Fatal(err)
	}
	var prepares atomic.Int32
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "component_access_token", Key: "token", Store: store,
		Prepare: func(ctx context.Context) (any, error) {
			prepares.Add(1)
			if store.held.Load() != 0 {
				t.Error("Prepare ran while a lock was held")
			}
			tk, err := store.Get(ctx, "ticket")
			return tk.Value, err
		},
		Fetch: func(_ context.Context, r core.FetchRequest) (core.Token, error) {
			if r.Prepared != "ticket-1" {
				t.Errorf("Fetch got Prepared %v, want what Prepare read", r.Prepared)
			}
			return core.Token{Value: "at-1", ExpiresAt: time.Now().Add(time.Hour)}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := cr.Get(ctx); err != nil || tok.Value != "at-1" {
		t.Fatalf("Get = %v, %v", tok.Value, err)
	}
	if prepares.Load() != 1 {
		t.Errorf("%d prepares, want 1", prepares.Load())
	}
	// A second instance adopts the stored token: no Prepare, no fetch.
	again, _ := core.NewCredential(core.CredentialConfig{Name: "component_access_token", Key: "token", Store: store,
		Prepare: func(context.Context) (any, error) { t.Error("prepared without a fetch"); return nil, nil },
		Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			t.Error("fetched")
			return core.Token{}, nil
		}})
	if tok, err := again.Get(ctx); err != nil || tok.Value != "at-1" {
		t.Fatalf("second instance Get = %v, %v; want the stored token", tok.Value, err)
	}
}

// A Prepare error fails the refresh without a fetch, typed.
func TestPrepareErrorFailsWithoutFetch(t *testing.T) {
	errNoTicket := errors.New("no component_verify_ticket yet")
	var fetches atomic.Int32
	cr, _ := core.NewCredential(core.CredentialConfig{Name: "component_access_token", Key: "k",
		Prepare: func(context.Context) (any, error) { return nil, errNoTicket },
		Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			fetches.Add(1)
			return core.Token{}, nil
		}})
	if _, err := cr.Get(t.Context()); !errors.Is(err, errNoTicket) {
		t.Errorf("Get = %v, want the Prepare error", err)
	}
	if fetches.Load() != 0 {
		t.Error("fetched after Prepare failed")
	}
}
