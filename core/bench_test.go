package core_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// BenchmarkAccessTokenHot measures the hot path: a valid in-process token,
// no I/O. The goal is < 50 ns/op and 0 allocs/op.
func BenchmarkAccessTokenHot(b *testing.B) {
	c := hotConf(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.AccessToken(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccessTokenHotParallel is the hot path under RunParallel.
func BenchmarkAccessTokenHotParallel(b *testing.B) {
	c := hotConf(b)
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.AccessToken(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCredentialHot measures the hot path of a credential kind built
// on the engine directly (NewCredential with a Fetch of its own), the path
// every kind shares. The goal is < 50 ns/op and 0 allocs/op.
func BenchmarkCredentialHot(b *testing.B) {
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "bench_token", Key: "bench/bench_token",
		Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			return core.Token{Value: "bench-token-value", ExpiresAt: time.Now().Add(2 * time.Hour)}, nil
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	if _, err := cr.Get(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cr.Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// hotConf returns a Conf holding a valid token, on the real clock.
func hotConf(b *testing.B) *core.Conf {
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret, Now: time.Now})
	b.Cleanup(s.Close)
	c, err := core.New(core.Config{AppID: appID, AppSecret: core.NewSecret(appSecret), BaseURL: s.URL, HTTPClient: s.Client()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.AccessToken(b.Context()); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkHerd measures one cold start of 8 Confs sharing a MemoryStore
// (8 "processes") with 1,000 goroutines asking at once, against a WeChat
// answering in 50 ms. It reports fetches/op (the goal is exactly 1) and
// herd-ms-over-fetch: how long the whole herd took beyond the fetch itself.
func BenchmarkHerd(b *testing.B) {
	const latency = 50 * time.Millisecond
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret})
	b.Cleanup(s.Close)
	s.SetLatency(latency)
	ctx := b.Context()
	var over time.Duration
	for b.Loop() {
		b.StopTimer()
		store := core.NewMemoryStore()
		confs := make([]*core.Conf, 8)
		for i := range confs {
			confs[i] = newConf(b, s, func(c *core.Config) { c.Store = store; c.TokenAPI = core.ClassicToken })
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 1000 {
			wg.Go(func() {
				<-start
				if _, err := confs[i%8].AccessToken(ctx); err != nil {
					b.Error(err)
				}
			})
		}
		b.StartTimer()
		t0 := time.Now()
		close(start)
		wg.Wait()
		over += time.Since(t0) - latency
	}
	b.ReportMetric(float64(s.Calls(wxtest.PathToken))/float64(b.N), "fetches/op")
	b.ReportMetric(float64(over.Microseconds())/1000/float64(b.N), "herd-ms-over-fetch")
}

// BenchmarkAccessTokenHotLedger is the hot path with the fetch ledger on
// (the default) and off, in one run: the ledger must cost it nothing (same
// ns/op, 0 allocs/op).
func BenchmarkAccessTokenHotLedger(b *testing.B) {
	for _, on := range []bool{true, false} {
		name := "ledger=on"
		if !on {
			name = "ledger=off"
		}
		b.Run(name, func(b *testing.B) {
			s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret, Now: time.Now})
			b.Cleanup(s.Close)
			c, err := core.New(core.Config{AppID: appID, AppSecret: core.NewSecret(appSecret), BaseURL: s.URL, HTTPClient: s.Client(), NoLedger: !on})
			if err != nil {
				b.Fatal(err)
			}
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
		})
	}
}
