package containertest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/core"
)

func BenchmarkConformance(b *testing.B) {
	needServer(b)
	conformance.Benchmark(b, harness("pgbench/", nil))
}

// BenchmarkGetOverhead compares Store.Get with the bare SELECT it runs, on
// the same pool and the same 512-byte token: the difference is the store's
// own cost (argument checks, NULL and infinity checks, error wrapping).
func BenchmarkGetOverhead(b *testing.B) {
	needServer(b)
	ctx := context.Background()
	pool := newPool(b, testDSN, nil)
	s := newStoreOn(b, pool)
	key := uniqueKey(b)
	want := core.Token{Value: strings.Repeat("t", 512), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.Set(ctx, key, want); err != nil {
		b.Fatalf("Set(%q): %v", key, err)
	}

	b.Run("Store.Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RawSelect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var (
				value string
				exp   time.Time
			)
			if err := pool.QueryRow(ctx, `SELECT value, expires_at FROM "wechatconf_tokens" WHERE key = $1`, key).Scan(&value, &exp); err != nil {
				b.Fatal(err)
			}
		}
	})
}
