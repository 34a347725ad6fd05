package openplatform_test

import (
	"context"
	"fmt"
	"math/rand/v2"
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
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			runtime.GC()
			var m0, m1, m2 runtime.MemStats
			runtime.ReadMemStats(&m0)
			goroutines := runtime.NumGoroutine()
			c, ids := authorizersHeld(b, n)
			runtime.GC()
			runtime.ReadMemStats(&m1)
			ctx := context.Background()
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
			for _, id := range ids {
				if _, err := c.Authorizer(id).AccessToken(ctx); err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&m2)
			rest := runtime.NumGoroutine() - goroutines
			b.ReportAllocs()
			var a0, a1 runtime.MemStats
			runtime.ReadMemStats(&a0)
			i := 0
			for b.Loop() {
				if _, err := c.Authorizer(ids[i]).AccessToken(ctx); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(ids) {
					i = 0
				}
			}
			runtime.ReadMemStats(&a1)
			benchrow.Row(b, "Tenants per process",
				benchrow.Col{Name: "platform", Value: "Open Platform authorizers"},
				benchrow.Col{Name: "tenants", Value: fmt.Sprint(n)},
				benchrow.Col{Name: "heap per tenant (goal ≤ 1 KiB)", Value: fmt.Sprintf("%.0f B", float64(m2.HeapAlloc-m1.HeapAlloc)/float64(n))},
				benchrow.Col{Name: "the memory store's copy per tenant", Value: fmt.Sprintf("%.0f B", float64(m1.HeapAlloc-m0.HeapAlloc)/float64(n))},
				benchrow.Col{Name: "goroutines at rest", Value: fmt.Sprint(rest)},
				benchrow.Col{Name: "lookup + hot path, shuffled ids (goal < 100 ns)", Value: fmt.Sprintf("%.1f ns", float64(b.Elapsed().Nanoseconds())/float64(b.N))},
				benchrow.Col{Name: "allocs/op (goal 0)", Value: fmt.Sprintf("%.2f", float64(a1.Mallocs-a0.Mallocs)/float64(b.N))})
			// After the loop: b.Loop's first call resets the metrics.
			b.ReportMetric(float64(m2.HeapAlloc-m1.HeapAlloc)/float64(n), "heap-B/tenant")
			b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/float64(n), "store-B/tenant")
			b.ReportMetric(float64(rest), "goroutines-at-rest")
			runtime.KeepAlive(c)
		})
	}
}
