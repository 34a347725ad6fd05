package wecomvendor_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/benchrow"
	"github.com/wechatconf/wechatconf/core/wecomvendor"
)

// corpsHeld returns a Suite holding n corps' records, each with a valid
// access token (no WeCom call), and their corp ids.
func corpsHeld(b *testing.B, n int) (*wecomvendor.Suite, []string) {
	b.Helper()
	store := core.NewMemoryStore()
	s, err := wecomvendor.New(wecomvendor.Config{SuiteID: suiteID, SuiteSecret: core.NewSecret(suiteSecret), Store: store, MaxCorps: n, NoLedger: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	exp := time.Now().Add(2 * time.Hour)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("wwcorp%010d", i)
		if err := store.Set(ctx, s.AuthorizationKey(ids[i]), wecomvendor.StoredRecord(fmt.Sprintf("permanent-code-%d", i), fmt.Sprintf("corp-token-%d", i), exp)); err != nil {
			b.Fatal(err)
		}
	}
	return s, ids
}

// BenchmarkTenants is issue 27's scale benchmark for WeCom vendors: n
// corps (1,000, 10,000, 100,000) each holding its token, looked up by
// shuffled corp ids; the figures and goals are those of
// openplatform.BenchmarkTenants (heap-B/tenant ≤ 1 KiB, the store's copy
// apart; 0 goroutines at rest; < 100 ns and 0 allocs per lookup + hot
// path).
func BenchmarkTenants(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			runtime.GC()
			var m0, m1, m2 runtime.MemStats
			runtime.ReadMemStats(&m0)
			goroutines := runtime.NumGoroutine()
			s, ids := corpsHeld(b, n)
			runtime.GC()
			runtime.ReadMemStats(&m1)
			ctx := context.Background()
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
			for _, id := range ids {
				if _, err := s.Corp(id).AccessToken(ctx); err != nil {
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
				if _, err := s.Corp(ids[i]).AccessToken(ctx); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(ids) {
					i = 0
				}
			}
			runtime.ReadMemStats(&a1)
			benchrow.Row(b, "Tenants per process",
				benchrow.Col{Name: "platform", Value: "WeCom vendor corps (third-party suite)"},
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
			runtime.KeepAlive(s)
		})
	}
}
