package containertest_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wechatconf/wechatconf/core"
	etcdstore "github.com/wechatconf/wechatconf/store/etcd"
)

// claimStore returns a store under prefix over a client of its own.
func claimStore(t *testing.T, eps []string, prefix string) (*etcdstore.Store, *clientv3.Client) {
	t.Helper()
	cli := newClient(t, eps)
	s, err := etcdstore.New(cli, etcdstore.WithPrefix(prefix), etcdstore.WithLease(testLease))
	if err != nil {
		t.Fatal(err)
	}
	return s, cli
}

// claimEtcdKey is the etcd key of key's claim under prefix (the layout of
// the package documentation).
func claimEtcdKey(prefix, key string) string {
	return prefix + "claim/" + base64.RawURLEncoding.EncodeToString([]byte(key))
}

// leaseCount is the number of leases the server holds.
func leaseCount(ctx context.Context, t *testing.T, cli *clientv3.Client) int {
	t.Helper()
	resp, err := cli.Leases(ctx)
	if err != nil {
		t.Fatalf("Leases: %v", err)
	}
	return len(resp.Leases)
}

// testClaims checks the store's core.ClaimStore on the real server: what
// the conformance suite checks in general, plus what is etcd's own (the
// lease's rounding, the key's deletion, the leases a claim costs).
func testClaims(t *testing.T, eps []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("OneWinnerAmongClients", func(t *testing.T) {
		// 8 clients × 25 goroutines claim one key at once, each with a
		// value of its own: exactly one gets its own value back, and every
		// caller gets that value.
		prefix := uniquePrefix(t)
		const clients, perClient = 8, 25
		stores := make([]*etcdstore.Store, clients)
		for i := range stores {
			stores[i], _ = claimStore(t, eps, prefix)
		}
		start := make(chan struct{})
		var mu sync.Mutex
		held := map[string]int{}
		winners := 0
		var wg sync.WaitGroup
		for i, s := range stores {
			for j := range perClient {
				wg.Go(func() {
					<-start
					v := fmt.Sprintf("c%d-g%d", i, j)
					got, err := s.Claim(ctx, "push/1", v, time.Minute)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						t.Errorf("Claim(push/1, %q): %v", v, err)
						return
					}
					held[got]++
					if got == v {
						winners++
					}
				})
			}
		}
		close(start)
		wg.Wait()
		if winners != 1 || len(held) != 1 {
			t.Errorf("%d concurrent claims: %d got their own value back, values returned %v; want exactly 1 winner whose value all get", clients*perClient, winners, held)
		}
	})

	t.Run("ExpiresNoEarlierAndNoResurrection", func(t *testing.T) {
		// A claim of 2.5s lives on a 3s lease (rounded up, never down):
		// etcd deletes its key no earlier than 2.5s after Claim was
		// called. Once deleted, the former holder's CompareAndSwapClaim
		// neither renews nor deletes anything, and another caller's Claim
		// wins.
		prefix := uniquePrefix(t)
		a, cli := claimStore(t, eps, prefix)
		b, _ := claimStore(t, eps, prefix)
		const ttl = 2500 * time.Millisecond
		ck := claimEtcdKey(prefix, "push/exp")
		begun := time.Now()
		if got, err := a.Claim(ctx, "push/exp", "a", ttl); err != nil || got != "a" {
			t.Fatalf("Claim(push/exp, a) = %q, %v; want a", got, err)
		}
		resp, err := cli.Get(ctx, ck)
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "a" || resp.Kvs[0].Lease == 0 {
			t.Fatalf("Get(%q) after the claim = %v, %v; want the value a on a lease", ck, resp, err)
		}
		ttlResp, err := cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
		if err != nil || ttlResp.GrantedTTL < 3 {
			t.Errorf("TimeToLive of the claim's lease = %+v, %v; want a granted TTL of at least 3s for a 2.5s claim", ttlResp, err)
		}
		if got, err := b.Claim(ctx, "push/exp", "b", ttl); err != nil || got != "a" {
			t.Errorf("Claim(push/exp, b) while a's claim is live = %q, %v; want a", got, err)
		}
		// Wait for etcd to delete the key: a watch, not a sleep.
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		watch := cli.Watch(wctx, ck, clientv3.WithRev(resp.Header.Revision+1), clientv3.WithFilterPut())
		deleted := false
		for wr := range watch {
			if len(wr.Events) > 0 {
				deleted = true
				break
			}
		}
		if !deleted {
			t.Fatalf("the claim's key %q was not deleted within 30s of a %v claim", ck, ttl)
		}
		if lived := time.Since(begun); lived < ttl {
			t.Errorf("the claim's key was deleted %v after Claim was called; want no earlier than its ttl %v", lived, ttl)
		}
		if ok, err := a.CompareAndSwapClaim(ctx, "push/exp", "a", "a-renewed", time.Minute); err != nil || ok {
			t.Errorf("late CompareAndSwapClaim(push/exp, a → a-renewed) = %v, %v; want false, nil", ok, err)
		}
		if ok, err := a.CompareAndSwapClaim(ctx, "push/exp", "a", "", 0); err != nil || ok {
			t.Errorf("late CompareAndSwapClaim(push/exp, a → delete) = %v, %v; want false, nil", ok, err)
		}
		if resp, err := cli.Get(ctx, ck); err != nil || len(resp.Kvs) != 0 {
			t.Errorf("Get(%q) after the late swaps = %v, %v; want no key (nothing resurrected)", ck, resp, err)
		}
		if got, err := b.Claim(ctx, "push/exp", "b", ttl); err != nil || got != "b" {
			t.Errorf("Claim(push/exp, b) after expiry = %q, %v; want b", got, err)
		}
	})

	t.Run("CompareAndSwap", func(t *testing.T) {
		// A swap replaces only the value it names; "" deletes; a deleted
		// claim is claimable at once.
		prefix := uniquePrefix(t)
		s, cli := claimStore(t, eps, prefix)
		other, _ := claimStore(t, eps, prefix)
		if got, err := s.Claim(ctx, "k", "a", time.Minute); err != nil || got != "a" {
			t.Fatalf("Claim(k, a) = %q, %v", got, err)
		}
		if ok, err := other.CompareAndSwapClaim(ctx, "k", "x", "y", time.Minute); err != nil || ok {
			t.Errorf("CompareAndSwapClaim(k, x → y) over a = %v, %v; want false, nil", ok, err)
		}
		if ok, err := other.CompareAndSwapClaim(ctx, "absent", "a", "y", time.Minute); err != nil || ok {
			t.Errorf("CompareAndSwapClaim(absent, a → y) = %v, %v; want false, nil", ok, err)
		}
		if ok, err := s.CompareAndSwapClaim(ctx, "k", "a", "b", 90*time.Second); err != nil || !ok {
			t.Errorf("CompareAndSwapClaim(k, a → b) = %v, %v; want true", ok, err)
		}
		resp, err := cli.Get(ctx, claimEtcdKey(prefix, "k"))
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "b" {
			t.Fatalf("Get of k's claim after the swap = %v, %v; want b", resp, err)
		}
		if ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil || ttl.GrantedTTL < 91 {
			t.Errorf("the swapped claim's lease = %+v, %v; want a granted TTL of at least 91s for 90s", ttl, err)
		}
		if got, err := other.Claim(ctx, "k", "c", time.Minute); err != nil || got != "b" {
			t.Errorf("Claim(k, c) after the swap = %q, %v; want b", got, err)
		}
		if ok, err := s.CompareAndSwapClaim(ctx, "k", "b", "", 0); err != nil || !ok {
			t.Errorf("CompareAndSwapClaim(k, b → delete) = %v, %v; want true", ok, err)
		}
		if got, err := other.Claim(ctx, "k", "c", time.Minute); err != nil || got != "c" {
			t.Errorf("Claim(k, c) after the delete = %q, %v; want c", got, err)
		}
	})

	t.Run("LeasesBounded", func(t *testing.T) {
		// Claims share leases: 300 claims of one ttl on distinct keys, then
		// 300 concurrent claims of one key (299 of them lost), add a few
		// leases to the server, not one per claim. A lease is reused for
		// at least 0.9s after its grant with a 20s ttl (21s leases, 100ms
		// margin), so at most 2 + elapsed/0.9s leases are new, whatever
		// the box's speed.
		prefix := uniquePrefix(t)
		s, cli := claimStore(t, eps, prefix)
		const n, ttl = 300, 20 * time.Second
		before := leaseCount(ctx, t, cli)
		begun := time.Now()
		for i := range n {
			v := fmt.Sprint("v", i)
			if got, err := s.Claim(ctx, fmt.Sprint("distinct/", i), v, ttl); err != nil || got != v {
				t.Fatalf("Claim(distinct/%d) = %q, %v; want %q", i, got, err, v)
			}
		}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if _, err := s.Claim(ctx, "contended", fmt.Sprint("v", i), ttl); err != nil {
					t.Errorf("Claim(contended, v%d): %v", i, err)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(begun)
		added := leaseCount(ctx, t, cli) - before
		limit := 2 + int(elapsed/(900*time.Millisecond))
		t.Logf("%d claims in %v added %d leases (limit %d)", 2*n, elapsed.Round(time.Millisecond), added, limit)
		if added > limit || added >= n {
			t.Errorf("%d claims in %v added %d leases to the server; want at most %d (leases shared, not one per claim)", 2*n, elapsed, added, limit)
		}
	})

	t.Run("ListKeysSkipsClaims", func(t *testing.T) {
		// Claims live apart from tokens: a claim and a token under the
		// same key share nothing, and ListKeys lists tokens only.
		prefix := uniquePrefix(t)
		s, _ := claimStore(t, eps, prefix)
		if _, err := s.Claim(ctx, "shared", "claimed", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, "claim-only", "claimed", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "shared"); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("Get(shared) with only a claim under it: %v; want ErrNotFound", err)
		}
		if err := s.Set(ctx, "shared", core.Token{Value: "tok", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Claim(ctx, "shared", "other", time.Minute); err != nil || got != "claimed" {
			t.Errorf("Claim(shared) after Set(shared) = %q, %v; want the claim unchanged", got, err)
		}
		if got, err := s.ListKeys(ctx, ""); err != nil || !slices.Equal(got, []string{"shared"}) {
			t.Errorf("ListKeys(\"\") = %q, %v; want [shared] (claims never listed)", got, err)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		// Bad arguments and an ended context are errors wrapped with the
		// store's name; nothing is written.
		prefix := uniquePrefix(t)
		s, cli := claimStore(t, eps, prefix)
		done, stop := context.WithCancel(ctx)
		stop()
		if _, err := s.Claim(done, "k", "v", time.Minute); !errors.Is(err, context.Canceled) {
			t.Errorf("Claim with a cancelled context: %v; want context.Canceled", err)
		}
		if _, err := s.CompareAndSwapClaim(done, "k", "v", "w", time.Minute); !errors.Is(err, context.Canceled) {
			t.Errorf("CompareAndSwapClaim with a cancelled context: %v; want context.Canceled", err)
		}
		for _, c := range []struct {
			key, value string
			ttl        time.Duration
		}{{"", "v", time.Minute}, {"k", "", time.Minute}, {"k", "v", 0}, {"k", "a\x00b", time.Minute}} {
			if _, err := s.Claim(ctx, c.key, c.value, c.ttl); err == nil {
				t.Errorf("Claim(%q, %q, %v) = nil error; want one", c.key, c.value, c.ttl)
			}
		}
		if resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
			t.Errorf("keys under %q after refused claims: %v, %v; want none", prefix, resp, err)
		}
	})
}
