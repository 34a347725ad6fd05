package wechatconfotel_test

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	wechatconfotel "github.com/wechatconf/wechatconf/contrib/otel"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// namesEncoder prints each metric's name and its count (the sum of a
// counter, the number of a histogram's measurements, the points of a
// gauge): the deterministic part of stdoutmetric's output. Leave
// WithEncoder out for stdoutmetric's JSON.
type namesEncoder struct{}

func (namesEncoder) Encode(v any) error {
	rm := v.(*metricdata.ResourceMetrics)
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			var n int64
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					n += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					n += int64(p.Count)
				}
			case metricdata.Gauge[float64]:
				n = int64(len(d.DataPoints))
			case metricdata.Gauge[int64]:
				n = int64(len(d.DataPoints))
			}
			lines = append(lines, fmt.Sprintf("%s (%s): %d", m.Name, m.Unit, n))
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	return nil
}

// A Conf whose events become metrics, exported to stdout.
func Example() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "app-secret"})
	defer wechat.Close()

	exporter, err := stdoutmetric.New(stdoutmetric.WithEncoder(namesEncoder{}))
	if err != nil {
		panic(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exporter)))

	// nil: no logs, metrics only (pass a handler to keep logging).
	h := wechatconfotel.NewHandler(nil, wechatconfotel.WithMeterProvider(mp))
	conf, err := core.New(core.Config{
		AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("app-secret"),
		BaseURL: wechat.URL, HTTPClient: wechat.Client(), Now: wechat.Now,
		Logger: slog.New(h),
	})
	if err != nil {
		panic(err)
	}
	h.Observe(conf.AccessTokenCredential())

	ctx := context.Background()
	conf.AccessToken(ctx)                 // a token call: wechatconf.fetches
	conf.AccessToken(ctx)                 // from memory: nothing recorded
	conf.ForceRefreshAccessToken(ctx, "") // a forced refresh and a token call
	conf.ForceRefreshAccessToken(ctx, "") // held back: wechatconf.limited
	conf.FlushLedger(ctx)                 // the fetch ledger's counts: wechatconf.quota.used (fetches, forced) and .limit (forced: 20)

	if err := mp.Shutdown(ctx); err != nil { // the last export
		panic(err)
	}
	// Output:
	// wechatconf.fetch.duration (s): 2
	// wechatconf.fetches ({fetch}): 2
	// wechatconf.forced_refreshes ({refresh}): 1
	// wechatconf.limited ({call}): 1
	// wechatconf.lock.wait (s): 2
	// wechatconf.quota.limit ({fetch}): 1
	// wechatconf.quota.used ({fetch}): 2
	// wechatconf.token.remaining (s): 1
}

// Observe holds credentials weakly, so a service can observe every
// credential it makes (each Open Platform authorizer it serves, a kind of
// its own) without keeping any alive; Forget removes one at once, here a
// partner's token no longer used. The gauge has one point per kind and
// platform (CredentialConfig.Platform).
func ExampleHandler_Forget() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	h := wechatconfotel.NewHandler(nil, wechatconfotel.WithMeterProvider(mp))
	ctx := context.Background()
	partnerToken := func(key string) *core.Credential {
		cr, err := core.NewCredential(core.CredentialConfig{
			Name: "partner_token", Platform: "partner", Key: key, Logger: slog.New(h),
			Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
				return core.Token{Value: "token-of-" + key, ExpiresAt: time.Now().Add(time.Hour)}, nil
			},
		})
		if err != nil {
			panic(err)
		}
		if _, err := cr.Get(ctx); err != nil {
			panic(err)
		}
		return cr
	}
	a, b := partnerToken("partner/a"), partnerToken("partner/b")
	h.Observe(a, b)
	printGauge := func() {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			panic(err)
		}
		points := 0
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if g, ok := m.Data.(metricdata.Gauge[float64]); ok {
					for _, p := range g.DataPoints {
						kind, _ := p.Attributes.Value(wechatconfotel.AttrCredential)
						platform, _ := p.Attributes.Value(wechatconfotel.AttrPlatform)
						fmt.Printf("%s{%s, %s}\n", m.Name, kind.AsString(), platform.AsString())
						points++
					}
				}
			}
		}
		fmt.Println(points, "point(s)")
	}
	printGauge()
	h.Forget(a, b)
	printGauge()
	// Output:
	// wechatconf.token.remaining{partner_token, partner}
	// 1 point(s)
	// 0 point(s)
}
