package wecom_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wechatconf/wechatconf/core/internal/storetest"
	"github.com/wechatconf/wechatconf/core/wecom"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// gettoken invalidates nobody's token: 4 processes cold-started on a store
// that is down, 50 callers each, all get a valid token with one gettoken
// call per process; once the store is back, the next refresh writes the
// token back.
func TestStoreOutageFetchesWithoutTheStore(t *testing.T) {
	s := newWeCom(t)
	store := storetest.NewDown()
	store.Failing.Store(true)
	apps := make([]*wecom.App, 4)
	for i := range apps {
		apps[i] = newApp(t, s, store, agent1, secret1, nil)
	}
	ctx := t.Context()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for _, a := range apps {
		for range 50 {
			wg.Go(func() {
				tok, err := a.AccessToken(ctx)
				if (err != nil || !s.TokenValid(tok.Value)) && failed.Add(1) == 1 {
					t.Logf("first failure: %v", err)
				}
			})
		}
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of 200 callers got no valid token while the store was down, want 0", n)
	}
	calls := s.Calls(wxtest.PathWeComToken)
	if calls == 0 || calls > len(apps) {
		t.Errorf("%d gettoken calls for %d processes, want 1 to %d", calls, len(apps), len(apps))
	}
	held, _ := apps[0].AccessToken(ctx)
	store.Failing.Store(false)
	apps[0].AccessTokenCredential().Invalidate()
	if tok, err := apps[0].AccessToken(ctx); err != nil || tok.Value != held.Value {
		t.Fatalf("AccessToken after the store came back = same %v, %v; want the token held", tok.Value == held.Value, err)
	}
	key, _, _ := apps[0].Keys()
	if stored, err := store.Get(ctx, key); err != nil || stored.Value != held.Value {
		t.Errorf("store.Get after the write-back = same %v, %v; want the token fetched during the outage", stored.Value == held.Value, err)
	}
	if n := s.Calls(wxtest.PathWeComToken); n != calls {
		t.Errorf("the write-back made %d gettoken calls, want 0", n-calls)
	}
}
