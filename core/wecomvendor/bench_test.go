package wecomvendor_test

import (
	"context"
	"fmt"
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
	ctx := context.Background()
	benchrow.Tenants(b, "WeCom vendor corps (third-party suite)", func(b *testing.B, n int) ([]string, func(string) error, any) {
		s, ids := corpsHeld(b, n)
		return ids, func(id string) error { _, err := s.Corp(id).AccessToken(ctx); return err }, s
	})
}
