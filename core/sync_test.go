package core_test

import (
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// A process holding a token that another instance has since replaced (an
// outside fetch killed it, a worker got 40001 and refreshed) follows the
// store at its next Sync, with no token call; Get alone would serve the
// dead token until its own refresh ahead of expiry.
func TestSyncFollowsTheFleetsReplacement(t *testing.T) {
	s := newServer(t)
	store := core.NewMemoryStore()
	agent := newConf(t, s, func(c *core.Config) { classic(c); c.Store = store })
	worker := newConf(t, s, func(c *core.Config) { classic(c); c.Store = store })
	ctx := t.Context()
	t1, err := agent.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(10 * time.Minute)
	t2, err := worker.RefreshAccessToken(ctx, t1.Value) // the worker saw t1 rejected
	if err != nil || t2.Value == t1.Value {
		t.Fatalf("the worker's refresh: %v, %v", t2, err)
	}
	calls := tokenCalls(s)
	if got, _ := agent.AccessToken(ctx); got.Value != t1.Value {
		t.Fatal("Get followed the store: the test's premise is gone")
	}
	got, err := agent.Credential("access_token").Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Value != t2.Value {
		t.Fatalf("Sync served %s, want the fleet's replacement", core.Fingerprint(got.Value))
	}
	if again, _ := agent.AccessToken(ctx); again.Value != t2.Value {
		t.Error("Get after Sync does not serve the replacement")
	}
	if n := tokenCalls(s) - calls; n != 0 {
		t.Errorf("Sync made %d token calls, want 0", n)
	}
}

// Sync moves forward only: a store that lost writes and holds an older
// token (a failover) is not followed, and an empty store makes Sync a Get.
func TestSyncNeverGoesBack(t *testing.T) {
	s := newServer(t)
	store := core.NewMemoryStore()
	c := newConf(t, s, func(c *core.Config) { classic(c); c.Store = store })
	ctx := t.Context()
	held, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	older := core.Token{Value: "an-older-token-from-before-the-failover", ExpiresAt: held.ExpiresAt.Add(-time.Minute)}
	if err := store.Set(ctx, "wechatconf/"+appID+"/access_token", older); err != nil {
		t.Fatal(err)
	}
	got, err := c.Credential("access_token").Sync(ctx)
	if err != nil || got.Value != held.Value {
		t.Fatalf("Sync = %s, %v; want the held token kept", core.Fingerprint(got.Value), err)
	}
	if c.Credential("no_such_kind") != nil {
		t.Error("Credential of an unknown kind is not nil")
	}
}
