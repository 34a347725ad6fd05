package wechatconfotel_test

import (
	"context"
	"log/slog"
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
	r.AddAttrs(slog.String("credential", "access_token"), slog.String("key", "wechatconf:wx:access_token"),
		slog.String("reason", "expiry"), slog.Bool("forced", false), slog.Duration("latency", 80*time.Millisecond),
		slog.Duration("lock_wait", time.Millisecond), slog.Time("expires_at", time.Now().Add(2*time.Hour)))
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Handle(ctx, r)
	}
}
