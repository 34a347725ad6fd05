package wechatconfotel_test

import (
	"context"
	"log/slog"
	"runtime"
	"testing"
	"time"

	wechatconfotel "github.com/wechatconf/wechatconf/contrib/otel"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// BenchmarkAccessTokenHotWithHandler is core's hot path (a valid token in
// memory) with the handler installed: nothing is logged there, so it stays
// under 50 ns/op with 0 allocs/op, as without it.
func BenchmarkAccessTokenHotWithHandler(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	h := wechatconfotel.NewHandler(nil, wechatconfotel.WithMeterProvider(mp))
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret, Now: time.Now})
	b.Cleanup(s.Close)
	c := newConf(b, s, slog.New(h))
	h.Observe(c.AccessTokenCredential())
	ctx := b.Context()
	if _, err := c.AccessToken(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.AccessToken(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandleOther is a record that is not a wechatconf event, with
// logging off (next nil): the cost the handler adds to other logging.
func BenchmarkHandleOther(b *testing.B) {
	h := wechatconfotel.NewHandler(nil)
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "request served", 0)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Handle(ctx, r)
	}
}

// BenchmarkHandleFetched is one EventFetched record: metrics and spans.
func BenchmarkHandleFetched(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	h := wechatconfotel.NewHandler(nil, wechatconfotel.WithMeterProvider(mp))
	r := slog.NewRecord(time.Now(), slog.LevelInfo, core.EventFetched, 0)
	r.AddAttrs(slog.String("credential", "access_token"), slog.String("platform", "official_account"), slog.String("key", "wechatconf:wx:access_token"),
		slog.String("reason", "expiry"), slog.Bool("forced", false), slog.Duration("latency", 80*time.Millisecond),
		slog.Duration("lock_wait", time.Millisecond), slog.Time("expires_at", time.Now().Add(2*time.Hour)))
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Handle(ctx, r)
	}
}

// churnAuthorizers is how many authorizers BenchmarkObserveEvictedAuthorizers
// observes and has evicted.
const churnAuthorizers = 100_000

// BenchmarkObserveEvictedAuthorizers is a service on an Open Platform that
// observes the access_token of every authorizer it serves while the
// Component's registry (MaxAuthorizers 1,000) evicts the least used: 100,000
// authorizers observed, then evicted. It reports the heap still held after
// GC per evicted authorizer (the goal: about 0 — the handler keeps nothing
// of an evicted authorizer), the credentials the handler still observes
// after GC (the goal: at most the 1,000 the registry keeps), and the time
// per authorizer handed out and observed, wall-clock and CPU (process-wide,
// GC included; flat in the number observed: an Observe is O(1)).
func BenchmarkObserveEvictedAuthorizers(b *testing.B) {
	const max = 1000
	for b.Loop() {
		b.StopTimer()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		h := wechatconfotel.NewHandler(nil, wechatconfotel.WithMeterProvider(mp))
		c := newComponent(b, max)
		observeAuthorizers(h, c, 0, max) // the registry full: the steady state
		gcUntil(func() bool { return false })
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start, cpu := time.Now(), cpuTime()
		b.StartTimer()
		observeAuthorizers(h, c, max, churnAuthorizers)
		b.StopTimer()
		elapsed, cpu := time.Since(start), cpuTime()-cpu
		gcUntil(func() bool { return false })
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/churnAuthorizers, "heap-B/evicted-authorizer")
		b.ReportMetric(float64(wechatconfotel.ObservedLen(h)), "observed-after-GC")
		b.ReportMetric(float64(elapsed.Nanoseconds())/churnAuthorizers, "ns/authorizer")
		b.ReportMetric(float64(cpu.Nanoseconds())/churnAuthorizers, "cpu-ns/authorizer")
		runtime.KeepAlive(c)
		runtime.KeepAlive(h)
		_ = mp.Shutdown(context.Background())
		b.StartTimer()
	}
}
