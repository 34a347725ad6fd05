package containertest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/core"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// claimTTL is the life of the claims of these checks that must not expire
// during a check: far longer than any check.
const claimTTL = 10 * time.Minute

// shortTTL is the life of the claims that the checks wait to see expire:
// the server's clock decides, the checks poll (bounded by expiryWithin).
const (
	shortTTL     = 30 * time.Millisecond
	expiryWithin = 20 * time.Second
)

// testClaims runs the store's own checks of core.ClaimStore against the
// server dial reaches (standalone, Cluster, Sentinel): the wire layout and
// the Redis-side facts the conformance suite cannot see.
func testClaims(t *testing.T, dial func() redis.UniversalClient) {
	t.Run("WinLoseAndTTL", func(t *testing.T) { testClaimWinLose(t, dial) })
	t.Run("OneWinnerAmongStores", func(t *testing.T) { testClaimOneWinner(t, dial) })
	t.Run("ApartFromToken", func(t *testing.T) { testClaimApartFromToken(t, dial) })
	t.Run("ListKeysHidesClaims", func(t *testing.T) { testClaimListKeys(t, dial) })
	t.Run("Swap", func(t *testing.T) { testClaimSwap(t, dial) })
	t.Run("ExpiredNeverResurrected", func(t *testing.T) { testClaimExpiry(t, dial) })
	t.Run("WrongType", func(t *testing.T) { testClaimWrongType(t, dial) })
	t.Run("Context", func(t *testing.T) { testClaimContext(t, dial) })
	t.Run("FallbackScript", func(t *testing.T) { testClaimFallbackScript(t, dial) })
}

func claimCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testClaimWinLose tests that Claim makes the claim under RedisClaimKey
// with the ttl as the server's PTTL, returns the caller's value when it won
// and the holder's when it lost (a repeated Claim of the winner, as a
// go-redis retry would send it, still returns the winner's value), and
// rounds a sub-millisecond ttl up.
func testClaimWinLose(t *testing.T, dial func() redis.UniversalClient) {
	ctx := claimCtx(t)
	s, rdb := testStore(t, dial)
	key := uniqueKey(t, "claim")
	name := s.RedisClaimKey(key)
	if held, err := s.Claim(ctx, key, "a", claimTTL); err != nil || held != "a" {
		t.Fatalf("Claim(%q, a) on a fresh key = %q, %v; want a", key, held, err)
	}
	if v, err := rdb.Get(ctx, name).Result(); err != nil || v != "a" {
		t.Errorf("GET %s = %q, %v; want the claim's value a", name, v, err)
	}
	if pttl, err := rdb.PTTL(ctx, name).Result(); err != nil || pttl <= 0 || pttl > claimTTL {
		t.Errorf("PTTL %s = %v, %v; want in (0, %v]", name, pttl, err, claimTTL)
	}
	for _, v := range []string{"b", "a"} {
		if held, err := s.Claim(ctx, key, v, claimTTL); err != nil || held != "a" {
			t.Errorf("Claim(%q, %s) while a holds it = %q, %v; want a", key, v, held, err)
		}
	}

	// A ttl below a whole millisecond is accepted (rounded up to 2 ms: see
	// TestCeilMillisecond in store/redis) and the claim expires on its own.
	key2 := uniqueKey(t, "claim-rounded")
	if held, err := s.Claim(ctx, key2, "r", 1500*time.Microsecond); err != nil || held != "r" {
		t.Fatalf("Claim(%q, r, 1.5ms) = %q, %v; want r", key2, held, err)
	}
	waitFor(t, expiryWithin, "the 1.5 ms claim to expire", func() bool {
		n, err := rdb.Exists(ctx, s.RedisClaimKey(key2)).Result()
		return err == nil && n == 0
	})

	// Argument checks write nothing.
	for _, c := range []struct {
		value string
		ttl   time.Duration
	}{{"", claimTTL}, {"v\x00", claimTTL}, {"v", time.Microsecond}, {string(make([]byte, core.MaxClaimValueLen+1)), claimTTL}} {
		bad := uniqueKey(t, "bad")
		if _, err := s.Claim(ctx, bad, c.value, c.ttl); err == nil {
			t.Errorf("Claim(%q, %q, %v) = nil error, want the argument refused", bad, c.value, c.ttl)
		}
		if n, _ := rdb.Exists(ctx, s.RedisClaimKey(bad)).Result(); n != 0 {
			t.Errorf("Claim(%q, %q, %v) refused but wrote its key", bad, c.value, c.ttl)
		}
	}
}

// testClaimOneWinner tests that among concurrent claimers, each with a
// Store and a client of its own (as processes would be), exactly one gets
// its own value back and every other gets the winner's.
func testClaimOneWinner(t *testing.T, dial func() redis.UniversalClient) {
	ctx := claimCtx(t)
	const claimers = 16
	for round := range 5 {
		key := uniqueKey(t, fmt.Sprintf("race-%d", round))
		stores := make([]*redisstore.Store, claimers)
		for i := range stores {
			stores[i], _ = testStore(t, dial)
		}
		held := make([]string, claimers)
		errs := make([]error, claimers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range stores {
			wg.Go(func() {
				<-start
				held[i], errs[i] = stores[i].Claim(ctx, key, fmt.Sprintf("claimer-%d", i), claimTTL)
			})
		}
		close(start)
		wg.Wait()
		winners := 0
		for i := range held {
			if errs[i] != nil {
				t.Fatalf("round %d: Claim of claimer %d: %v", round, i, errs[i])
			}
			if held[i] == fmt.Sprintf("claimer-%d", i) {
				winners++
			}
			if held[i] != held[0] {
				t.Errorf("round %d: claimer %d was told %q holds the claim, claimer 0 was told %q", round, i, held[i], held[0])
			}
		}
		if winners != 1 {
			t.Errorf("round %d: %d of %d concurrent claimers won, want exactly 1", round, winners, claimers)
		}
	}
}

// testClaimApartFromToken tests that a claim and a token under the same
// key share nothing: the claim has a Redis key of its own, on the token's
// slot; a token does not block a claim; a claim, its swap and its release
// leave the token as it was, and Get never returns a claim.
func testClaimApartFromToken(t *testing.T, dial func() redis.UniversalClient) {
	ctx := claimCtx(t)
	s, rdb := testStore(t, dial)
	key := uniqueKey(t, "shared")
	want := tok("the-token")
	if err := s.Set(ctx, key, want); err != nil {
		t.Fatal(err)
	}
	token, lock := s.RedisKeys(key)
	claim := s.RedisClaimKey(key)
	if claim == token || claim == lock || hashTag(claim) != hashTag(token) {
		t.Errorf("claim key %q: want a name of its own with the hash tag of the token %q", claim, token)
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		a, err1 := cc.ClusterKeySlot(ctx, token).Result()
		b, err2 := cc.ClusterKeySlot(ctx, claim).Result()
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Errorf("slots %d of %q and %d of %q differ", a, token, b, claim)
		}
	}
	if held, err := s.Claim(ctx, key, "c1", claimTTL); err != nil || held != "c1" {
		t.Fatalf("Claim(%q, c1) next to a token = %q, %v; want c1 (a token is no claim)", key, held, err)
	}
	check := func(after string) {
		t.Helper()
		if got, err := s.Get(ctx, key); err != nil || got != want {
			t.Errorf("after %s: Get(%q) = %+v, %v; want the token %+v", after, key, got, err, want)
		}
	}
	check("Claim")
	if ok, err := s.CompareAndSwapClaim(ctx, key, "c1", "c2", claimTTL); err != nil || !ok {
		t.Fatalf("CompareAndSwapClaim(%q, c1, c2) = %v, %v; want true", key, ok, err)
	}
	check("CompareAndSwapClaim")
	if ok, err := s.CompareAndSwapClaim(ctx, key, want.Value, "x", claimTTL); err != nil || ok {
		t.Errorf("CompareAndSwapClaim(%q, old = the token's value) = %v, %v; want false (a token is no claim)", key, ok, err)
	}
	if ok, err := s.CompareAndSwapClaim(ctx, key, "c2", "", 0); err != nil || !ok {
		t.Fatalf("CompareAndSwapClaim(%q, c2, \"\") = %v, %v; want true", key, ok, err)
	}
	check("the claim's release")
	// A Refresh does not touch the claim either.
	if held, err := s.Claim(ctx, key, "c3", claimTTL); err != nil || held != "c3" {
		t.Fatalf("Claim(%q, c3) = %q, %v", key, held, err)
	}
	if _, err := s.Refresh(ctx, key, want.Value, func(context.Context) (core.Token, error) { return tok("next"), nil }); err != nil {
		t.Fatal(err)
	}
	if held, err := s.Claim(ctx, key, "c4", claimTTL); err != nil || held != "c3" {
		t.Errorf("after a Refresh: Claim(%q, c4) = %q, %v; want c3 still held", key, held, err)
	}
	// A claim alone is no token.
	alone := uniqueKey(t, "claim-only")
	if _, err := s.Claim(ctx, alone, "c", claimTTL); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, alone); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("Get(%q) with only a claim = %+v, %v; want core.ErrNotFound", alone, got, err)
	}
}

// testClaimListKeys tests that ListKeys lists tokens only: not a claim
// alone, not a claim next to a token (once, by the token), not a released
// claim.
func testClaimListKeys(t *testing.T, dial func() redis.UniversalClient) {
	ctx := claimCtx(t)
	prefix := fmt.Sprintf("claims-ls-%08x:", rand.Uint32())
	s, _ := testStore(t, dial, redisstore.WithPrefix(prefix))
	for _, k := range []string{"claim-only", "both", "released"} {
		if _, err := s.Claim(ctx, k, "v", claimTTL); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CompareAndSwapClaim(ctx, "released", "v", "", 0); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"both", "token-only"} {
		if err := s.Set(ctx, k, tok("t")); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListKeys(ctx, "")
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	if want := []string{"both", "token-only"}; !slices.Equal(got, want) {
		t.Errorf("ListKeys(\"\") with claims under claim-only and both = %q, want %q", got, want)
	}
}

// testClaimSwap tests CompareAndSwapClaim: it swaps only the value it is
// given as old, gives the new value the new ttl (the server's PTTL), is
// refused for a wrong old value or a key with no claim, and deletes with
// "".
func testClaimSwap(t *testing.T, dial func() redis.UniversalClient) {
	ctx := claimCtx(t)
	s, rdb := testStore(t, dial)
	key := uniqueKey(t, "swap")
	name := s.RedisClaimKey(key)
	if ok, err := s.CompareAndSwapClaim(ctx, key, "a", "b", claimTTL); err != nil || ok {
		t.Errorf("CompareAndSwapClaim(%q, a, b) with no claim = %v, %v; want false", key, ok, err)
	}
	if n, _ := rdb.Exists(ctx, name).Result(); n != 0 {
		t.Errorf("a refused swap wrote %s", name)
	}
	if _, err := s.Claim(ctx, key, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.CompareAndSwapClaim(ctx, key, "x", "b", claimTTL); err != nil || ok {
		t.Errorf("CompareAndSwapClaim(%q, x, b) while a holds it = %v, %v; want false", key, ok, err)
	}
	if ok, err := s.CompareAndSwapClaim(ctx, key, "a", "b", claimTTL); err != nil || !ok {
		t.Fatalf("CompareAndSwapClaim(%q, a, b) = %v, %v; want true", key, ok, err)
	}
	if v, err := rdb.Get(ctx, name).Result(); err != nil || v != "b" {
		t.Errorf("after the swap: GET %s = %q, %v; want b", name, v, err)
	}
	// The claim was made for a minute, swapped for ten: its PTTL is now
	// beyond the minute.
	if pttl, err := rdb.PTTL(ctx, name).Result(); err != nil || pttl <= time.Minute || pttl > claimTTL {
		t.Errorf("after the swap: PTTL %s = %v, %v; want in (1m, %v]", name, pttl, err, claimTTL)
	}
	if ok, err := s.CompareAndSwapClaim(ctx, key, "a", "c", claimTTL); err != nil || ok {
		t.Errorf("second CompareAndSwapClaim(%q, a, c) = %v, %v; want false (b holds it)", key, ok, err)
	}
	if held, err := s.Claim(ctx, key, "z", claimTTL); err != nil || held != "b" {
		t.Errorf("Claim(%q, z) after the swap = %q, %v; want b", key, held, err)
	}
	if ok, err := s.CompareAndSwapClaim(ctx, key, "b", "", 0); err != nil || !ok {
		t.Fatalf("CompareAndSwapClaim(%q, b, \"\") = %v, %v; want true", key, ok, err)
	}
	if n, _ := rdb.Exists(ctx, name).Result(); n != 0 {
		t.Errorf("after the release: %s still exists", name)
	}
	if held, err := s.Claim(ctx, key, "z", claimTTL); err != nil || held != "z" {
		t.Errorf("Claim(%q, z) after the release = %q, %v; want z", key, held, err)
	}
	// A bad new value writes nothing.
	if _, err := s.CompareAndSwapClaim(ctx, key, "z", "v\x00", claimTTL); err == nil {
		t.Errorf("CompareAndSwapClaim(%q, z, a value with NUL) = nil error", key)
	}
	if v, _ := rdb.Get(ctx, name).Result(); v != "z" {
		t.Errorf("a refused swap changed the claim to %q", v)
	}
}

// testClaimExpiry tests that the server expires a claim by itself, that a
// late swap or release of its former holder finds nothing and brings
// nothing back, and that the next claimer wins.
func testClaimExpiry(t *testing.T, dial func() redis.UniversalClient) {
	ctx := claimCtx(t)
	s, rdb := testStore(t, dial)
	other, _ := testStore(t, dial)
	key := uniqueKey(t, "expiry")
	name := s.RedisClaimKey(key)
	if held, err := s.Claim(ctx, key, "late", shortTTL); err != nil || held != "late" {
		t.Fatalf("Claim(%q, late, %v) = %q, %v", key, shortTTL, held, err)
	}
	waitFor(t, expiryWithin, "the server to expire the claim", func() bool {
		n, err := rdb.Exists(ctx, name).Result()
		return err == nil && n == 0
	})
	for _, next := range []string{"late-again", ""} {
		if ok, err := s.CompareAndSwapClaim(ctx, key, "late", next, claimTTL); err != nil || ok {
			t.Errorf("CompareAndSwapClaim(%q, late, %q) after expiry = %v, %v; want false", key, next, ok, err)
		}
		if n, _ := rdb.Exists(ctx, name).Result(); n != 0 {
			t.Fatalf("CompareAndSwapClaim(%q, late, %q) after expiry brought %s back", key, next, name)
		}
	}
	if held, err := other.Claim(ctx, key, "next", claimTTL); err != nil || held != "next" {
		t.Errorf("Claim(%q, next) after expiry = %q, %v; want next", key, held, err)
	}
}

// testClaimWrongType tests a claim key holding something no Store wrote
// (a hash): Claim fails with core.ErrCorrupt naming the Redis key, and a
// swap finds no claim.
func testClaimWrongType(t *testing.T, dial func() redis.UniversalClient) {
	ctx := claimCtx(t)
	s, rdb := testStore(t, dial)
	key := uniqueKey(t, "wrongtype")
	name := s.RedisClaimKey(key)
	if err := rdb.HSet(ctx, name, "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	if held, err := s.Claim(ctx, key, "v", claimTTL); !errors.Is(err, core.ErrCorrupt) {
		t.Errorf("Claim(%q) over a hash = %q, %v; want core.ErrCorrupt", key, held, err)
	}
	if ok, err := s.CompareAndSwapClaim(ctx, key, "v", "w", claimTTL); err != nil || ok {
		t.Errorf("CompareAndSwapClaim(%q) over a hash = %v, %v; want false", key, ok, err)
	}
	if typ, _ := rdb.Type(ctx, name).Result(); typ != "hash" {
		t.Errorf("the planted hash is now a %s", typ)
	}
}

// testClaimContext tests that a done ctx fails both methods with an error
// matching ctx.Err() and writes nothing.
func testClaimContext(t *testing.T, dial func() redis.UniversalClient) {
	s, rdb := testStore(t, dial)
	key := uniqueKey(t, "ctx")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Claim(ctx, key, "v", claimTTL); !errors.Is(err, context.Canceled) {
		t.Errorf("Claim with a cancelled ctx: %v, want context.Canceled", err)
	}
	if _, err := s.CompareAndSwapClaim(ctx, key, "v", "", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("CompareAndSwapClaim with a cancelled ctx: %v, want context.Canceled", err)
	}
	if n, _ := rdb.Exists(context.Background(), s.RedisClaimKey(key)).Result(); n != 0 {
		t.Errorf("Claim with a cancelled ctx wrote %s", s.RedisClaimKey(key))
	}
}

// testClaimFallbackScript tests the script Claim runs on a server that
// refuses SET … NX … GET (before Redis 7.0), as shipped
// (../lua/claim.lua): it answers exactly as the command does on this
// server — the caller's value when it made the claim, with the PX given,
// the holder's value otherwise, a claim again once the server expired it.
func testClaimFallbackScript(t *testing.T, dial func() redis.UniversalClient) {
	ctx := claimCtx(t)
	src, err := os.ReadFile("../lua/claim.lua")
	if err != nil {
		t.Fatal(err)
	}
	script := redis.NewScript(string(src))
	s, rdb := testStore(t, dial)
	key := uniqueKey(t, "script")
	name := s.RedisClaimKey(key)
	run := func(value string, ttl time.Duration) string {
		t.Helper()
		held, err := script.Run(ctx, rdb, []string{name}, value, ttl.Milliseconds()).Text()
		if err != nil {
			t.Fatalf("claim.lua %s %s: %v", name, value, err)
		}
		return held
	}
	command := func(value string, ttl time.Duration) string {
		t.Helper()
		held, err := rdb.SetArgs(ctx, name, value, redis.SetArgs{Mode: "NX", TTL: ttl, Get: true}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return value
		case err != nil:
			t.Fatalf("SET %s %s NX GET: %v", name, value, err)
		}
		return held
	}
	for _, claim := range []func(string, time.Duration) string{run, command} {
		if held := claim("a", claimTTL); held != "a" {
			t.Errorf("on a fresh key: %q, want a", held)
		}
		if pttl, err := rdb.PTTL(ctx, name).Result(); err != nil || pttl <= 0 || pttl > claimTTL {
			t.Errorf("PTTL %s = %v, %v; want in (0, %v]", name, pttl, err, claimTTL)
		}
		if held := claim("b", claimTTL); held != "a" {
			t.Errorf("while a holds it: %q, want a", held)
		}
		if err := rdb.PExpire(ctx, name, shortTTL).Err(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, expiryWithin, "the server to expire the claim", func() bool {
			n, err := rdb.Exists(ctx, name).Result()
			return err == nil && n == 0
		})
		if held := claim("c", claimTTL); held != "c" {
			t.Errorf("after expiry: %q, want c", held)
		}
		if err := rdb.Del(ctx, name).Err(); err != nil {
			t.Fatal(err)
		}
	}
}
