package wechatconfotel_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	wechatconfotel "github.com/wechatconf/wechatconf/contrib/otel"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// maxGCs bounds the garbage collections a test runs before it judges what
// the handler still holds: one full cycle (runtime.GC returns after the
// sweep) clears the weak pointers of what it reclaimed; the rest are a
// margin for what a finished goroutine still held.
const maxGCs = 10

// gcUntil runs runtime.GC until done reports true, at most maxGCs times,
// and returns done's last answer.
func gcUntil(done func() bool) bool {
	for range maxGCs {
		runtime.GC()
		if done() {
			return true
		}
	}
	return false
}

// newComponent returns an Open Platform component on a memory store,
// keeping at most max authorizer handles. No call to WeChat is made:
// handing out a handle does no I/O.
func newComponent(t testing.TB, max int) *openplatform.Component {
	t.Helper()
	c, err := openplatform.New(openplatform.Config{AppID: "wxcomponent0000001", AppSecret: core.NewSecret("component-secret"), MaxAuthorizers: max})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// observeAuthorizers observes the access_token of n authorizers of c,
// numbered from first, as a service that observes each authorizer it
// serves does; it keeps none of them.
func observeAuthorizers(h *wechatconfotel.Handler, c *openplatform.Component, first, n int) {
	for i := first; i < first+n; i++ {
		h.Observe(c.Authorizer(fmt.Sprintf("wx%016d", i)).AccessTokenCredential())
	}
}

// Observing every authorizer a Component hands out is bounded: once the
// registry has evicted one and it is collected, the handler holds it no
// more, so the observed set follows the authorizers alive, not all that
// ever were.
func TestObserveForgetsEvictedAuthorizers(t *testing.T) {
	const max, n = 10, 1000
	hs := newHarness(t)
	c := newComponent(t, max)
	// One the caller keeps all along: it stays observed.
	kept := c.Authorizer("wxkeptbythecaller")
	hs.h.Observe(kept.AccessTokenCredential())
	observeAuthorizers(hs.h, c, 0, n)
	if held, evicted := c.Stats(); held > max || evicted < n-max {
		t.Fatalf("the registry holds %d, evicted %d; want at most %d held", held, evicted, max)
	}
	var got int
	if !gcUntil(func() bool { got = wechatconfotel.ObservedLen(hs.h); return got <= max+1 }) {
		t.Errorf("after %d evictions and %d GCs the handler observes %d credentials, want at most %d (the registry's and the one kept)", n-max, maxGCs, got, max+1)
	}
	if !wechatconfotel.IsObserved(hs.h, kept.AccessTokenCredential()) {
		t.Error("the authorizer the caller kept is no longer observed")
	}
	runtime.KeepAlive(kept)
	runtime.KeepAlive(c)
}

// A collected credential leaves the gauge (one point per credential with
// WithKeyAttribute), and Forget removes a live one.
func TestGaugeDropsCollectedAndForgotten(t *testing.T) {
	hs := newHarness(t, wechatconfotel.WithKeyAttribute())
	mk := func(key string) *core.Credential {
		cr, err := core.NewCredential(core.CredentialConfig{Name: "my_token", Platform: "my_platform", Key: key,
			Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
				return core.Token{Value: "v-" + key, ExpiresAt: time.Now().Add(time.Hour)}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cr.Get(t.Context()); err != nil {
			t.Fatal(err)
		}
		return cr
	}
	points := func() []metricdata.DataPoint[float64] {
		g, ok := hs.collect(t)["wechatconf.token.remaining"]
		if !ok {
			return nil
		}
		return g.Data.(metricdata.Gauge[float64]).DataPoints
	}
	func() { // observed, then dropped by the caller
		for i := range 5 {
			hs.h.Observe(mk(fmt.Sprint("gone", i)))
		}
	}()
	a, b := mk("a"), mk("b")
	hs.h.Observe(a, b)
	var n int
	if !gcUntil(func() bool { n = len(points()); return n == 2 }) {
		t.Errorf("after %d GCs the gauge has %d points, want 2 (the credentials alive)", maxGCs, n)
	}
	for _, p := range points() {
		if !matches(p.Attributes, []attribute.KeyValue{wechatconfotel.AttrCredential.String("my_token"), wechatconfotel.AttrPlatform.String("my_platform")}) {
			t.Errorf("point %v: want the kind and the platform", p.Attributes)
		}
	}
	hs.h.Forget(b, nil)
	if ps := points(); len(ps) != 1 || !matches(ps[0].Attributes, []attribute.KeyValue{wechatconfotel.AttrKey.String("a")}) {
		t.Errorf("after Forget(b): points %v, want a's only", ps)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
}
