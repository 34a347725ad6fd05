package containertest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// Environment through which the conformance suite's child processes (the
// crash check, ProcessHerd) reach the parent's servers instead of starting
// their own.
const (
	addrEnv         = "WECHATCONF_TEST_REDIS_ADDR"          // host:port of the standalone server
	clusterAddrsEnv = "WECHATCONF_TEST_REDIS_CLUSTER_ADDRS" // comma-separated seed addresses
)

// testLease is the lease of the stores under test: short, so that the lease
// and crash checks are quick.
const testLease = time.Second

// standaloneAddr returns the address of the standalone Redis of the test
// binary: the parent's (from addrEnv) in a child process, else a container
// started for t.
func standaloneAddr(t testing.TB) string {
	if addr := os.Getenv(addrEnv); addr != "" {
		return addr
	}
	return containers.StartRedis(t).Addr
}

// clusterAddrs is standaloneAddr for the Redis Cluster.
func clusterAddrs(t testing.TB) []string {
	if addrs := os.Getenv(clusterAddrsEnv); addrs != "" {
		return strings.Split(addrs, ",")
	}
	return containers.StartRedisCluster(t).Addrs
}

// mustNew returns redisstore.New(client, opts...), failing t on an error.
func mustNew(t testing.TB, client redis.UniversalClient, opts ...redisstore.Option) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(client, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keyNames are the three Redis names of a user key, as the package
// documents them: the token hash and the lock from Store.RedisKeys, and the
// Pub/Sub channel on which releases are announced, which shares their
// prefix and hash tag and ends in ":wake".
type keyNames struct{ token, lock, wake string }

func namesOf(s *redisstore.Store, key string) keyNames {
	token, lock := s.RedisKeys(key)
	return keyNames{token: token, lock: lock, wake: strings.TrimSuffix(token, ":token") + ":wake"}
}

// subs returns how many connections the server has subscribed to the wake
// channel of s's prefix, on which every release of a key under the prefix
// is announced: a store holds one subscription however many of its callers
// wait, on however many keys, so with one waiting store it is 1, and 0 once
// none waits. key names the prefix (the part of its names before the hash
// tag).
func subs(t testing.TB, rdb redis.UniversalClient, s *redisstore.Store, key string) int {
	t.Helper()
	token, _ := s.RedisKeys(key)
	ch := token[:strings.LastIndex(token, "{")] + "wake"
	n, err := rdb.PubSubNumSub(context.Background(), ch).Result()
	if err != nil {
		t.Fatalf("PUBSUB NUMSUB %s: %v", ch, err)
	}
	return int(n[ch])
}

func newClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
}

func newClusterClient(addrs []string) *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
}

// fleetLease is the lease of the stores of OpenPlatformFleet and the
// WeCom vendor fleets (VendorFleet): longer than
// any of its runs, so that no lock holder can lose its lock to a stall.
// With testLease, 8 race-enabled processes × 16 callers on a loaded 2-core
// machine kept holders past their 1 s lease (a cycle took 1m33s), and the
// callers whose lock was lost failed: the fleet checks one fetch per
// authorizer and no caller error, which hold while each holder's fetch ends
// within its lease; what a lost lease does is checked by the conformance
// suite's lease checks, with testLease.
const fleetLease = 10 * time.Minute

// harness returns the conformance harness over the server that dial reaches:
// every store value gets a client of its own (a process of its own, for the
// suite), closed at the end of the test.
func harness(dial func() redis.UniversalClient, childEnv ...string) conformance.Harness {
	return harnessLease(dial, testLease, childEnv...)
}

// harnessLease is harness with stores built with lease.
func harnessLease(dial func() redis.UniversalClient, lease time.Duration, childEnv ...string) conformance.Harness {
	return conformance.Harness{
		NewStore: func(t testing.TB) core.TokenStore {
			rdb := dial()
			t.Cleanup(func() { rdb.Close() })
			return mustNew(t, rdb, redisstore.WithLease(lease))
		},
		Lease:     lease,
		KeyPrefix: "redisstore-test/",
		ChildEnv:  childEnv,
	}
}

// TestStandalone runs the conformance suite, the process herd and this
// package's own checks against one Redis server.
func TestStandalone(t *testing.T) {
	addr := standaloneAddr(t)
	dial := func() redis.UniversalClient { return newClient(addr) }
	h := harness(dial, addrEnv+"="+addr)
	t.Run("Conformance", func(t *testing.T) { conformance.Run(t, h) })
	t.Run("ProcessHerd", func(t *testing.T) { conformance.ProcessHerd(t, h, 8, 50) })
	t.Run("ProcessHerdWeCom", func(t *testing.T) { conformance.ProcessHerdOf(t, h, conformance.WeComApp, 8, 50) })
	t.Run("OpenPlatformFleet", func(t *testing.T) {
		conformance.OpenPlatformFleet(t, harnessLease(dial, fleetLease, addrEnv+"="+addr), 8, 1000)
	})
	t.Run("WeComVendorFleet", func(t *testing.T) {
		h := harnessLease(dial, fleetLease, addrEnv+"="+addr)
		t.Run("ThirdParty", func(t *testing.T) { conformance.VendorFleet(t, h, conformance.VendorWeComThirdParty, 8, 500) })
		t.Run("Custom", func(t *testing.T) { conformance.VendorFleet(t, h, conformance.VendorWeComCustom, 8, 500) })
	})
	t.Run("Theft", func(t *testing.T) { testTheft(t, dial) })
	t.Run("Corrupt", func(t *testing.T) { testCorrupt(t, dial) })
	t.Run("Expiry", func(t *testing.T) { testExpiry(t, dial) })
	t.Run("KeyLayout", func(t *testing.T) { testKeyLayout(t, dial) })
	t.Run("RetriedAcquire", func(t *testing.T) { testRetriedAcquire(t, dial) })
	t.Run("NoSubscriptionLeft", func(t *testing.T) { testNoSubscriptionLeft(t, dial) })
	t.Run("RetryWithoutMessage", func(t *testing.T) { testRetryWithoutMessage(t, dial) })
	t.Run("ListKeysLayout", func(t *testing.T) { testListKeysLayout(t, dial) })
	t.Run("Claims", func(t *testing.T) { testClaims(t, dial) })
}

// TestCluster runs the conformance suite and the slot checks against a
// Redis Cluster of three masters.
func TestCluster(t *testing.T) {
	addrs := clusterAddrs(t)
	dial := func() redis.UniversalClient { return newClusterClient(addrs) }
	h := harness(dial, clusterAddrsEnv+"="+strings.Join(addrs, ","))
	t.Run("Conformance", func(t *testing.T) { conformance.Run(t, h) })
	t.Run("Theft", func(t *testing.T) { testTheft(t, dial) })
	t.Run("Corrupt", func(t *testing.T) { testCorrupt(t, dial) })
	t.Run("KeyLayout", func(t *testing.T) { testKeyLayout(t, dial) })
	t.Run("ListKeysLayout", func(t *testing.T) { testListKeysLayout(t, dial) })
	t.Run("Claims", func(t *testing.T) { testClaims(t, dial) })
}

// uniqueKey returns a user key no other test uses.
func uniqueKey(t testing.TB, name string) string {
	return fmt.Sprintf("redisstore-test/%08x/%s/%s", rand.Uint32(), t.Name(), name)
}

// testStore returns a store with the test lease over a new client closed
// at the end of the test, and the client.
func testStore(t testing.TB, dial func() redis.UniversalClient, opts ...redisstore.Option) (*redisstore.Store, redis.UniversalClient) {
	rdb := dial()
	t.Cleanup(func() { rdb.Close() })
	return mustNew(t, rdb, append([]redisstore.Option{redisstore.WithLease(testLease)}, opts...)...), rdb
}

func tok(v string) core.Token {
	return core.Token{Value: v, ExpiresAt: time.Now().Add(2 * time.Hour).Truncate(time.Millisecond)}
}

// holder is a Refresh blocked inside its fetch until release is closed.
type holder struct {
	entered chan struct{}
	release chan core.Token
	done    chan error
}

// startHolder starts Refresh(key, stale) on s with a fetch that signals
// entered and then returns the token sent on release.
func startHolder(ctx context.Context, s *redisstore.Store, key, stale string) holder {
	h := holder{entered: make(chan struct{}), release: make(chan core.Token), done: make(chan error, 1)}
	go func() {
		_, err := s.Refresh(ctx, key, stale, func(fctx context.Context) (core.Token, error) {
			close(h.entered)
			select {
			case t := <-h.release:
				return t, nil
			case <-ctx.Done():
				return core.Token{}, ctx.Err()
			}
		})
		h.done <- err
	}()
	return h
}

// testTheft tests the fence: a holder whose lock is overwritten (or
// deleted) from outside while it is inside fetch gets core.ErrLockLost
// from its write, writes nothing, and leaves the thief's lock alone.
func testTheft(t *testing.T, dial func() redis.UniversalClient) {
	for _, how := range []string{"overwritten", "deleted"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, rdb := testStore(t, dial)
			key := uniqueKey(t, "k")
			old := tok("old")
			if err := s.Set(ctx, key, old); err != nil {
				t.Fatal(err)
			}
			h := startHolder(ctx, s, key, old.Value)
			select {
			case <-h.entered:
			case err := <-h.done:
				t.Fatalf("Refresh(%q, stale=%q) returned %v without fetching", key, old.Value, err)
			}
			_, lock := s.RedisKeys(key)
			var err error
			if how == "overwritten" {
				err = rdb.Set(ctx, lock, "thief", time.Minute).Err()
			} else {
				err = rdb.Del(ctx, lock).Err()
			}
			if err != nil {
				t.Fatalf("stealing the lock %q: %v", lock, err)
			}
			h.release <- tok("late")
			err = <-h.done
			if !errors.Is(err, core.ErrLockLost) {
				t.Errorf("Refresh(%q, stale=%q) with its lock %s during fetch: %v, want an error wrapping core.ErrLockLost", key, old.Value, how, err)
			}
			if got, err := s.Get(ctx, key); err != nil || got.Value != old.Value {
				t.Errorf("Get(%q) after the refused write = %q, %v; want %q (nothing written)", key, got.Value, err, old.Value)
			}
			owner, err := rdb.Get(ctx, lock).Result()
			switch {
			case how == "overwritten" && owner != "thief":
				t.Errorf("lock %q after the refused write = %q, %v; want the thief's %q left alone", lock, owner, err, "thief")
			case how == "deleted" && !errors.Is(err, redis.Nil):
				t.Errorf("lock %q after the refused write = %q, %v; want none", lock, owner, err)
			}
		})
	}
}

// testCorrupt tests that a value under a token key that is not a token of
// this key is an error for Get that does not wrap core.ErrNotFound, and
// that Refresh treats it as absent: it fetches and repairs it.
func testCorrupt(t *testing.T, dial func() redis.UniversalClient) {
	cases := []struct {
		name    string
		plant   func(ctx context.Context, rdb redis.UniversalClient, tokenKey, key string) error
		errText string
	}{
		{"string", func(ctx context.Context, rdb redis.UniversalClient, k, key string) error {
			return rdb.Set(ctx, k, "garbage", 0).Err()
		}, "not a hash"},
		{"newer-version", func(ctx context.Context, rdb redis.UniversalClient, k, key string) error {
			return rdb.HSet(ctx, k, "v", "2", "payload", "x").Err()
		}, "newer"},
		{"other-key", func(ctx context.Context, rdb redis.UniversalClient, k, key string) error {
			return rdb.HSet(ctx, k, "v", "1", "k", "someone-else", "t", "tok", "e", "1").Err()
		}, "another key"},
		{"no-value", func(ctx context.Context, rdb redis.UniversalClient, k, key string) error {
			return rdb.HSet(ctx, k, "v", "1", "k", key, "t", "", "e", "1").Err()
		}, "no token value"},
		// The script's check passes this one; decoding catches it.
		{"expiry-overflow", func(ctx context.Context, rdb redis.UniversalClient, k, key string) error {
			return rdb.HSet(ctx, k, "v", "1", "k", key, "t", "tok", "e", "99999999999999999999999").Err()
		}, "bad expiry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, rdb := testStore(t, dial)
			key := uniqueKey(t, "k")
			tokenKey, _ := s.RedisKeys(key)
			plant := func() {
				t.Helper()
				if err := c.plant(ctx, rdb, tokenKey, key); err != nil {
					t.Fatalf("planting %s under %q: %v", c.name, tokenKey, err)
				}
			}
			plant()
			_, err := s.Get(ctx, key)
			switch {
			case err == nil || errors.Is(err, core.ErrNotFound) || !errors.Is(err, core.ErrCorrupt):
				t.Errorf("Get(%q) of a corrupt value (%s): %v; want a corrupt-token error, not ErrNotFound", key, c.name, err)
			case !strings.Contains(err.Error(), c.errText) || !strings.Contains(err.Error(), tokenKey):
				t.Errorf("Get(%q) of a corrupt value (%s): %q; want it to say %q and name %q", key, c.name, err, c.errText, tokenKey)
			}
			for _, stale := range []string{"", "tok"} {
				plant()
				fresh := tok("repaired-" + stale)
				var fetches int
				got, err := s.Refresh(ctx, key, stale, func(context.Context) (core.Token, error) { fetches++; return fresh, nil })
				if err != nil || fetches != 1 || got.Value != fresh.Value {
					t.Errorf("Refresh(%q, stale=%q) over a corrupt value (%s) = %q, %v, %d fetches; want the fetched %q (corrupt counts as absent)", key, stale, c.name, got.Value, err, fetches, fresh.Value)
				}
				if got, err := s.Get(ctx, key); err != nil || got.Value != fresh.Value {
					t.Errorf("Get(%q) after Refresh repaired it = %q, %v; want %q", key, got.Value, err, fresh.Value)
				}
			}
		})
	}
}

// testExpiry tests that a token expires in Redis WithExpiryGrace after its
// ExpiresAt (after the write for a token already expired), that a zero
// ExpiresAt means no expiry and round-trips, and that Refresh's write
// expires like Set's.
func testExpiry(t *testing.T, dial func() redis.UniversalClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const grace = 5 * time.Minute
	s, rdb := testStore(t, dial, redisstore.WithExpiryGrace(grace))
	now := time.Now()
	cases := []struct {
		name      string
		expiresAt time.Time
		want      time.Duration // -1: no expiry
	}{
		{"future", now.Add(time.Hour), time.Hour + grace},
		{"past", now.Add(-time.Hour), grace},
		{"zero", time.Time{}, -1},
	}
	for _, c := range cases {
		for _, via := range []string{"Set", "Refresh"} {
			key := uniqueKey(t, c.name+"-"+via)
			in := core.Token{Value: "v-" + c.name, ExpiresAt: c.expiresAt}
			var err error
			if via == "Set" {
				err = s.Set(ctx, key, in)
			} else {
				_, err = s.Refresh(ctx, key, "", func(context.Context) (core.Token, error) { return in, nil })
			}
			if err != nil {
				t.Fatalf("%s(%q): %v", via, key, err)
			}
			tokenKey, _ := s.RedisKeys(key)
			ttl, err := rdb.PTTL(ctx, tokenKey).Result()
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c.want < 0 && ttl != -1:
				t.Errorf("%s(%q) of a token expiring %s: PTTL %v, want none", via, key, c.name, ttl)
			case c.want >= 0 && (ttl > c.want || ttl < c.want-10*time.Second):
				t.Errorf("%s(%q) of a token expiring %s: PTTL %v, want about %v", via, key, c.name, ttl, c.want)
			}
			got, err := s.Get(ctx, key)
			if err != nil || got.Value != in.Value || !got.ExpiresAt.Equal(in.ExpiresAt.Truncate(time.Millisecond)) || got.ExpiresAt.IsZero() != in.ExpiresAt.IsZero() {
				t.Errorf("Get(%q) after %s = %+v, %v; want %+v", key, via, got, err, in)
			}
		}
	}
}

// testKeyLayout tests the Redis names of hostile keys: each key's token,
// lock and channel share a hash tag and therefore a slot (CLUSTER KEYSLOT
// on a cluster), whatever "{", "}" the key or the prefix holds; different
// keys have different names.
func testKeyLayout(t *testing.T, dial func() redis.UniversalClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := dial()
	defer rdb.Close()
	keys := []string{"a", "{a}", "a{b}c", "}{", "{", "}", "{}", "x/{tag}/y", "k:lock", "日本語", strings.Repeat("{z}", 85)}
	cc, isCluster := rdb.(*redis.ClusterClient)
	for _, prefix := range []string{redisstore.DefaultPrefix, "", "{", "}", "app{x", "{app}:"} {
		s := mustNew(t, rdb, redisstore.WithPrefix(prefix))
		seen := map[string]string{}
		for _, key := range keys {
			n := namesOf(s, key)
			if !strings.HasPrefix(n.token, prefix) {
				t.Errorf("prefix %q, key %q: token key %q does not begin with the prefix", prefix, key, n.token)
			}
			if other, dup := seen[n.token]; dup {
				t.Errorf("prefix %q: keys %q and %q share the token key %q", prefix, key, other, n.token)
			}
			seen[n.token] = key
			if tag := hashTag(n.token); tag != hashTag(n.lock) || tag != hashTag(n.wake) {
				t.Errorf("prefix %q, key %q: hash tags %q, %q, %q of %q, %q, %q differ", prefix, key, hashTag(n.token), hashTag(n.lock), hashTag(n.wake), n.token, n.lock, n.wake)
			}
			if isCluster {
				a, err1 := cc.ClusterKeySlot(ctx, n.token).Result()
				b, err2 := cc.ClusterKeySlot(ctx, n.lock).Result()
				if err := errors.Join(err1, err2); err != nil {
					t.Fatal(err)
				}
				if a != b {
					t.Errorf("prefix %q, key %q: slots %d of %q and %d of %q differ", prefix, key, a, n.token, b, n.lock)
				}
			}
		}
		// The whole cycle works under every prefix.
		key := uniqueKey(t, "cycle")
		want := tok("cycle")
		if _, err := s.Refresh(ctx, key, "", func(context.Context) (core.Token, error) { return want, nil }); err != nil {
			t.Errorf("prefix %q: Refresh(%q): %v", prefix, key, err)
		} else if got, err := s.Get(ctx, key); err != nil || got.Value != want.Value {
			t.Errorf("prefix %q: Get(%q) = %q, %v; want %q", prefix, key, got.Value, err, want.Value)
		}
	}
}

// hashTag returns the part of a Redis key that Cluster hashes (its rules:
// the content of the first "{…}" if non-empty, else the whole key).
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// testRetriedAcquire tests that an attempt go-redis sends again after a lost
// reply finds the lock it took and holds it, instead of waiting for itself.
// It runs the store's acquire script as shipped (../lua/acquire.lua, the
// file the package embeds; its header documents KEYS, ARGV and the reply).
func testRetriedAcquire(t *testing.T, dial func() redis.UniversalClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := os.ReadFile(filepath.Join("..", "lua", "acquire.lua"))
	if err != nil {
		t.Fatalf("reading the store's acquire script: %v", err)
	}
	acquireScript := redis.NewScript(string(src))
	const formatVersion = "1" // field v of the token hash (format.go)
	s, rdb := testStore(t, dial)
	key := uniqueKey(t, "k")
	n := namesOf(s, key)
	for i, want := range []string{"locked", "locked", "held"} {
		owner := "owner-1"
		if i == 2 {
			owner = "owner-2"
		}
		reply, err := acquireScript.Run(ctx, rdb, []string{n.token, n.lock}, owner, testLease.Milliseconds(), "", formatVersion, key, "0").Slice()
		if err != nil {
			t.Fatal(err)
		}
		if reply[0] != want {
			t.Errorf("attempt %d by %s: %v, want %s", i, owner, reply, want)
		}
	}
}

// testNoSubscriptionLeft tests that a Store whose waiters are all done
// holds no subscription and no goroutine.
func testNoSubscriptionLeft(t *testing.T, dial func() redis.UniversalClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, rdb := testStore(t, dial)
	b, _ := testStore(t, dial)
	key := uniqueKey(t, "k")
	h := startHolder(ctx, a, key, "")
	<-h.entered
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			_, err := b.Refresh(ctx, key, "", func(context.Context) (core.Token, error) { return tok("waiter"), nil })
			errs <- err
		})
	}
	// Wait until the waiters subscribed.
	waitFor(t, 10*time.Second, "a subscription of the waiting store", func() bool {
		return subs(t, rdb, b, key) == 1
	})
	h.release <- tok("holder")
	if err := <-h.done; err != nil {
		t.Fatalf("holder: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("waiter: %v", err)
		}
	}
	// The server drops the subscription when the store unsubscribes, which
	// it does as its last waiter returns; a bounded settle for the reply.
	deadline := time.Now().Add(10 * time.Second)
	left := subs(t, rdb, b, key)
	for left != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		left = subs(t, rdb, b, key)
	}
	if left != 0 {
		t.Errorf("store still holds %d subscriptions after its waiters returned, want 0", left)
	}
	waitNoGoroutines(t, false)
}

// waitFor polls cond (a test helper's bounded settle loop, not a
// synchronisation between the test's own goroutines) until it holds or
// within runs out.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testRetryWithoutMessage tests the waiters' fallback: a lock freed without
// a release message (deleted from outside, as a lost message would look) is
// taken by a waiter after the wait backoff, long before the holder's lease
// would have run out.
func testRetryWithoutMessage(t *testing.T, dial func() redis.UniversalClient) {
	const lease = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, rdb := testStore(t, dial, redisstore.WithLease(lease))
	b, _ := testStore(t, dial, redisstore.WithLease(lease))
	key := uniqueKey(t, "k")
	locked := time.Now() // the lock is taken after this
	h := startHolder(ctx, a, key, "")
	<-h.entered
	fetched := make(chan time.Time, 1)
	waiter := make(chan error, 1)
	go func() {
		_, err := b.Refresh(ctx, key, "", func(context.Context) (core.Token, error) {
			fetched <- time.Now()
			return tok("waiter"), nil
		})
		waiter <- err
	}()
	waitFor(t, 10*time.Second, "the waiter to subscribe", func() bool { return subs(t, rdb, b, key) == 1 })
	_, lock := a.RedisKeys(key)
	deleted := time.Now()
	if err := rdb.Del(ctx, lock).Err(); err != nil {
		t.Fatal(err)
	}
	// A waiter that relied on the lease would look again only when the
	// lock's time to live (10s from its taking) ran out; one that retries
	// after its backoff (200ms) takes it long before. The bound lies half
	// way, on the holder's lease: the waiter must fetch before half of the
	// lease that was left when the lock was deleted has passed, whatever
	// the load of the machine adds to the 200ms.
	var at time.Time
	select {
	case at = <-fetched:
	case err := <-waiter:
		t.Fatalf("waiter returned %v without fetching", err)
	case <-ctx.Done():
		t.Fatalf("waiter did not take a lock freed without a message before the test's ctx ended (backoff %v, lease %v)", redisstore.DefaultWaitBackoff, lease)
	}
	took, bound := at.Sub(deleted), (lease-deleted.Sub(locked))/2
	t.Logf("waiter took the lock %v after it was deleted without a message (backoff %v, bound %v)", took, redisstore.DefaultWaitBackoff, bound)
	if took > bound {
		t.Errorf("waiter took a lock freed without a message %v after it was deleted, want within %v: half the %v lease left, where a waiter without the backoff retry would wait (backoff %v)", took, bound, lease, redisstore.DefaultWaitBackoff)
	}
	if err := <-waiter; err != nil {
		t.Errorf("waiter: %v", err)
	}
	h.release <- tok("holder")
	if err := <-h.done; !errors.Is(err, core.ErrLockLost) {
		t.Errorf("holder whose lock was deleted: %v, want core.ErrLockLost", err)
	}
}
