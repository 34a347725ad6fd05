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
// so a test can see that Prepare and Commit run with none held.
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

// Prepare reads durable state before the lock, Fetch gets it, Commit
// writes what the fetch brought after the token is stored: no store call
// while the lock is held.
func TestPrepareAndCommit(t *testing.T) {
	store := &lockWatch{TokenStore: core.NewMemoryStore()}
	ctx := t.Context()
	if err := store.Set(ctx, "durable", core.Token{Value: "rt-1"}); err != nil {
		t.Fatal(err)
	}
	type state struct{ used, next string }
	var prepares, commits atomic.Int32
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "authorizer_access_token", Key: "token", Store: store,
		Prepare: func(ctx context.Context) (any, error) {
			prepares.Add(1)
			if store.held.Load() != 0 {
				t.Error("Prepare ran while a lock was held")
			}
			rt, err := store.Get(ctx, "durable")
			return &state{used: rt.Value}, err
		},
		Fetch: func(_ context.Context, r core.FetchRequest) (core.Token, error) {
			st := r.Prepared.(*state)
			if st.used != "rt-1" {
				t.Errorf("Fetch got %q, want the durable value", st.used)
			}
			st.next = "rt-2"
			return core.Token{Value: "at-1", ExpiresAt: time.Now().Add(time.Hour)}, nil
		},
		Commit: func(ctx context.Context, prepared any) error {
			commits.Add(1)
			if store.held.Load() != 0 {
				t.Error("Commit ran while a lock was held")
			}
			if tok, _ := store.Get(ctx, "token"); tok.Value != "at-1" {
				t.Errorf("Commit ran before the token was written (store holds %q)", tok.Value)
			}
			st := prepared.(*state)
			_, err := store.Refresh(ctx, "durable", st.used, func(context.Context) (core.Token, error) { return core.Token{Value: st.next}, nil })
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := cr.Get(ctx); err != nil || tok.Value != "at-1" {
		t.Fatalf("Get = %v, %v", tok.Value, err)
	}
	if rt, _ := store.Get(ctx, "durable"); rt.Value != "rt-2" {
		t.Errorf("durable value %q after Commit, want rt-2", rt.Value)
	}
	if prepares.Load() != 1 || commits.Load() != 1 {
		t.Errorf("%d prepares, %d commits, want 1 and 1", prepares.Load(), commits.Load())
	}
	// A second instance adopts the stored token: no fetch, no commit.
	again, _ := core.NewCredential(core.CredentialConfig{Name: "authorizer_access_token", Key: "token", Store: store,
		Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			t.Error("fetched")
			return core.Token{}, nil
		},
		Commit: func(context.Context, any) error { t.Error("committed without a fetch"); return nil }})
	if _, err := again.Get(ctx); err != nil {
		t.Fatal(err)
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
