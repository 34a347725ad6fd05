package openplatform_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/benchrow"
	"github.com/wechatconf/wechatconf/core/openplatform"
)

// benchAuthorizers is how many authorizers one process serves in the
// benchmarks.
const benchAuthorizers = 10000

// authorizersHeld returns a Component holding n authorizer handles, each
// with a valid token adopted from the store (no WeChat call), and their
// AppIDs.
func authorizersHeld(b *testing.B, n int) (*openplatform.Component, []string) {
	b.Helper()
	store := core.NewMemoryStore()
	c, err := openplatform.New(openplatform.Config{AppID: componentAppID, AppSecret: core.NewSecret(componentSecret), Store: store, MaxAuthorizers: n})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	exp := time.Now().Add(2 * time.Hour)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("wx%014d", i)
		if err := store.Set(ctx, c.AuthorizationKey(ids[i]), openplatform.StoredRecord(fmt.Sprintf("refreshtoken@@@%d", i), fmt.Sprintf("authorizer-token-%d", i), exp)); err != nil {
			b.Fatal(err)
		}
	}
	return c, ids
}

// BenchmarkAuthorizerHot measures an authorizer's access_token on the hot
// path, the registry lookup included, over 10,000 authorizers. The goal is
// < 100 ns/op and 0 allocs/op.
func BenchmarkAuthorizerHot(b *testing.B) {
	c, ids := authorizersHeld(b, benchAuthorizers)
	ctx := b.Context()
	for _, id := range ids {
		if _, err := c.Authorizer(id).AccessToken(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Authorizer(ids[i]).AccessToken(ctx); err != nil {
			b.Fatal(err)
		}
		if i++; i == len(ids) {
			i = 0
		}
	}
}

// BenchmarkAuthorizersAtRest measures what 10,000 authorizers, each
// holding its token, cost one process at rest: heap bytes per authorizer
// (the goal is ≤ 2 KiB) and goroutines beyond those before (the goal: none,
// whatever the number of authorizers).
func BenchmarkAuthorizersAtRest(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		goroutines := runtime.NumGoroutine()
		b.StartTimer()
		c, ids := authorizersHeld(b, benchAuthorizers)
		ctx := context.Background()
		for _, id := range ids {
			if _, err := c.Authorizer(id).AccessToken(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/benchAuthorizers, "heap-B/authorizer")
		b.ReportMetric(float64(runtime.NumGoroutine()-goroutines), "goroutines-at-rest")
		runtime.KeepAlive(c)
		b.StartTimer()
	}
}

// BenchmarkTenants is issue 27's scale benchmark for Open Platform: n
// authorizers (1,000, 10,000, 100,000) each holding its token, looked up
// by shuffled AppIDs. It reports the heap the Component's handles cost per
// authorizer (heap-B/tenant; the memory store's copy of the records is
// reported apart, store-B/tenant, since a fleet's store is another
// process), the goroutines at rest beyond those before, and the lookup +
// hot path (ns/op, allocs/op serial). The goals: ≤ 1 KiB, 0, < 100 ns
// and 0 allocs, at every n.
func BenchmarkTenants(b *testing.B) {
	ctx := context.Background()
	benchrow.Tenants(b, "Open Platform authorizers", func(b *testing.B, n int) ([]string, func(string) error, any) {
		c, ids := authorizersHeld(b, n)
		return ids, func(id string) error { _, err := c.Authorizer(id).AccessToken(ctx); return err }, c
	})
}
