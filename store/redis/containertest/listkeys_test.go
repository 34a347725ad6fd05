package containertest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/conformance/containers"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// testListKeysLayout tests what ListKeys reads beyond the conformance
// checks: it lists a store's keys only, not those of a Store whose prefix
// begins with the same bytes or holds glob characters, nor a hash planted
// under a key's name that holds another key ("copied"), a string under a
// token's name, or a lock; and it lists a hash whose token cannot be
// decoded by the key in its field k.
func testListKeysLayout(t *testing.T, dial func() redis.UniversalClient) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := fmt.Sprintf("%08x", rand.Uint32())
	base := "ls-" + run + ":"
	// Stores whose prefixes are prefixes of one another, or hold glob
	// characters that would match the others' names if not escaped.
	prefixes := []string{base, base + "x:", base + "*", base + "[a-z]", base + "?"}
	stores := make([]*redisstore.Store, len(prefixes))
	for i, p := range prefixes {
		stores[i], _ = testStore(t, dial, redisstore.WithPrefix(p))
		if err := stores[i].Set(ctx, fmt.Sprintf("key-of-%d", i), tok(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	s, rdb := stores[0], dial()
	t.Cleanup(func() { rdb.Close() })

	// A corrupt token (newer version, no value) is listed by its key.
	corrupt := "corrupt"
	name, _ := s.RedisKeys(corrupt)
	if err := rdb.HSet(ctx, name, "v", "9", "k", corrupt).Err(); err != nil {
		t.Fatal(err)
	}
	// A hash holding another key, under the name of "copied": neither key
	// is stored here.
	name, _ = s.RedisKeys("copied")
	if err := rdb.HSet(ctx, name, "v", "1", "k", "someone-else", "t", "tok", "e", "").Err(); err != nil {
		t.Fatal(err)
	}
	// Not a hash.
	name, _ = s.RedisKeys("string")
	if err := rdb.Set(ctx, name, "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// A held lock with no token.
	_, lock := s.RedisKeys("locked")
	if err := rdb.Set(ctx, lock, "owner", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}

	for i, st := range stores {
		want := []string{fmt.Sprintf("key-of-%d", i)}
		if i == 0 {
			want = []string{corrupt, "key-of-0"}
		}
		got, err := st.ListKeys(ctx, "")
		if err != nil {
			t.Fatalf("prefix %q: ListKeys: %v", prefixes[i], err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("prefix %q: ListKeys(\"\") = %q, want %q", prefixes[i], got, want)
		}
	}
}

// TestRing tests ListKeys on a redis.Ring of two servers: it walks every
// shard, so every key is listed, wherever the Ring put it.
func TestRing(t *testing.T) {
	a, b := containers.StartRedis(t), containers.StartRedis(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": a.Addr, "b": b.Addr}, ContextTimeoutEnabled: true})
	t.Cleanup(func() { ring.Close() })
	s := mustNew(t, ring, redisstore.WithLease(testLease))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 300
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("wechatconf/wx%03d/access_token", i)
		if err := s.Set(ctx, want[i], tok("v")); err != nil {
			t.Fatal(err)
		}
	}
	// Both shards must hold some keys, or the check proves nothing.
	for _, addr := range []string{a.Addr, b.Addr} {
		c := newClient(addr)
		size, err := c.DBSize(ctx).Result()
		c.Close()
		if err != nil || size == 0 || size == n {
			t.Fatalf("shard %s holds %d of the %d keys (%v): want some but not all", addr, size, n, err)
		}
	}
	got, err := s.ListKeys(ctx, "wechatconf/")
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListKeys(%q) on a Ring listed %d keys, want the %d stored (first missing or extra: %q)", "wechatconf/", len(got), n, firstDiff(got, want))
	}
}

// firstDiff returns the first element where two sorted slices differ.
func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return min(a[i], b[i])
		}
	}
	if len(a) > len(b) {
		return a[len(b)]
	}
	if len(b) > len(a) {
		return b[len(a)]
	}
	return ""
}
