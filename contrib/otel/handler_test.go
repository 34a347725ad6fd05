package wechatconfotel_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	wechatconfotel "github.com/wechatconf/wechatconf/contrib/otel"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

const (
	appID     = "wx0123456789abcdef"
	appSecret = "app-secret-0123456789abcdef0123456"
)

// harness is a Handler over in-memory OpenTelemetry SDK providers, with a
// JSON log of what reached the next handler.
type harness struct {
	h      *wechatconfotel.Handler
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	mu     sync.Mutex
	logs   bytes.Buffer
}

func newHarness(t testing.TB, opts ...wechatconfotel.Option) *harness {
	t.Helper()
	hs := &harness{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(hs.reader))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(hs.spans))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()); _ = tp.Shutdown(context.Background()) })
	next := slog.NewJSONHandler(lockedWriter{&hs.mu, &hs.logs}, &slog.HandlerOptions{Level: slog.LevelWarn})
	hs.h = wechatconfotel.NewHandler(next, append([]wechatconfotel.Option{wechatconfotel.WithMeterProvider(mp), wechatconfotel.WithTracerProvider(tp)}, opts...)...)
	return hs
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (hs *harness) logged() string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.logs.String()
}

// collect returns the metrics by name.
func (hs *harness) collect(t testing.TB) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := hs.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// matches reports whether set holds every one of want.
func matches(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// count is the sum of the counter's points (or the histogram's counts) whose
// attributes hold want.
func count(t testing.TB, ms map[string]metricdata.Metrics, name string, want ...attribute.KeyValue) int64 {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		return 0
	}
	var n int64
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, want) {
				n += p.Value
			}
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, want) {
				n += int64(p.Count)
			}
		}
	default:
		t.Fatalf("%s: unexpected data %T", name, m.Data)
	}
	return n
}

// allAttributes returns every attribute set of ms, and every attribute,
// name and status of the spans, as strings.
func allStrings(ms map[string]metricdata.Metrics, spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	add := func(kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			out = append(out, string(kv.Key)+"="+kv.Value.Emit())
		}
	}
	for _, m := range ms {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				add(p.Attributes.ToSlice())
			}
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				add(p.Attributes.ToSlice())
			}
		case metricdata.Gauge[float64]:
			for _, p := range d.DataPoints {
				add(p.Attributes.ToSlice())
			}
		}
	}
	for _, s := range spans {
		out = append(out, s.Name(), s.Status().Description)
		add(s.Attributes())
		for _, e := range s.Events() {
			out = append(out, e.Name)
			add(e.Attributes)
		}
	}
	return out
}

func newConf(t testing.TB, s *wxtest.Server, logger *slog.Logger) *core.Conf {
	t.Helper()
	c, err := core.New(core.Config{
		AppID: appID, AppSecret: core.NewSecret(appSecret),
		BaseURL: s.URL, HTTPClient: s.Client(), RetryBackoff: time.Millisecond,
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	cred     = wechatconfotel.AttrCredential.String("access_token")
	ticket   = wechatconfotel.AttrCredential.String("jsapi_ticket")
	ok       = wechatconfotel.AttrOutcome.String("ok")
	failed   = wechatconfotel.AttrOutcome.String("error")
	expiry   = wechatconfotel.AttrReason.String("expiry")
	rejected = wechatconfotel.AttrReason.String("rejected")
)

// A real Conf against wxtest: a cold fetch, a rejection (compare-and-refresh,
// escalated to force_refresh by stable_token), a limited forced refresh, a
// failed ticket fetch; the metrics, the spans, the logs passed on, and no
// secret or token anywhere.
func TestConfEvents(t *testing.T) {
	hs := newHarness(t)
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret, Now: time.Now})
	t.Cleanup(s.Close)
	c := newConf(t, s, slog.New(hs.h).With("app", "test"))
	hs.h.Observe(c.AccessTokenCredential())
	ctx := t.Context()
	var tokens []string

	// Cold fetch.
	tok, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tokens = append(tokens, tok.Value)
	ms := hs.collect(t)
	if n := count(t, ms, "wechatconf.fetches", cred, ok, expiry, wechatconfotel.AttrForced.Bool(false)); n != 1 {
		t.Errorf("cold fetch: wechatconf.fetches{ok,expiry} = %d, want 1", n)
	}
	if n := count(t, ms, "wechatconf.fetch.duration", cred, ok); n != 1 {
		t.Errorf("wechatconf.fetch.duration count = %d, want 1", n)
	}
	if n := count(t, ms, "wechatconf.lock.wait", cred, wechatconfotel.AttrEvent.String("fetched")); n != 1 {
		t.Errorf("wechatconf.lock.wait{fetched} count = %d, want 1", n)
	}
	g, okGauge := ms["wechatconf.token.remaining"].Data.(metricdata.Gauge[float64])
	if !okGauge || len(g.DataPoints) != 1 {
		t.Fatalf("wechatconf.token.remaining = %+v, want one point", ms["wechatconf.token.remaining"])
	}
	if p := g.DataPoints[0]; p.Value < 7000 || p.Value > 7200 || !matches(p.Attributes, []attribute.KeyValue{cred}) {
		t.Errorf("wechatconf.token.remaining = %v %v, want about 7200 s for access_token", p.Value, p.Attributes.ToSlice())
	}
	for _, u := range []struct{ name, unit string }{{"wechatconf.fetches", "{fetch}"}, {"wechatconf.fetch.duration", "s"}, {"wechatconf.lock.wait", "s"}, {"wechatconf.token.remaining", "s"}} {
		if got := ms[u.name].Unit; got != u.unit {
			t.Errorf("%s unit = %q, want %q", u.name, got, u.unit)
		}
	}

	// A rejection: Do gets 40001, the Conf refreshes (stable_token hands
	// the same token back, so the refresh is forced) and retries.
	s.Reject(tok.Value)
	var out struct {
		IPList []string `json:"ip_list"`
	}
	if err := c.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, &out); err != nil {
		t.Fatal(err)
	}
	tok2, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tokens = append(tokens, tok2.Value)
	if tok2.Value == tok.Value {
		t.Fatal("the rejected token is still served")
	}
	ms = hs.collect(t)
	if n := count(t, ms, "wechatconf.rejections", cred, wechatconfotel.AttrErrcode.Int64(40001)); n != 1 {
		t.Errorf("wechatconf.rejections{40001} = %d, want 1", n)
	}
	if n := count(t, ms, "wechatconf.forced_refreshes", cred, wechatconfotel.AttrWhy.String("rejected token handed back")); n != 1 {
		t.Errorf("wechatconf.forced_refreshes = %d, want 1", n)
	}
	if n := count(t, ms, "wechatconf.fetches", cred, ok, rejected, wechatconfotel.AttrForced.Bool(true)); n != 1 {
		t.Errorf("wechatconf.fetches{ok,rejected,forced} = %d, want 1", n)
	}
	if n := count(t, ms, "wechatconf.fetches", cred, ok, rejected, wechatconfotel.AttrForced.Bool(false)); n != 1 {
		t.Errorf("wechatconf.fetches{ok,rejected,not forced} = %d, want 1 (the token handed back)", n)
	}
	// Counting fetches counts token calls: cold, the normal call handing
	// the rejected token back, the forced call.
	if n, calls := count(t, ms, "wechatconf.fetches", cred), s.Calls(wxtest.PathStableToken); n != 3 || calls != 3 {
		t.Errorf("wechatconf.fetches = %d for %d stable_token calls, want 3 and 3", n, calls)
	}

	// A forced refresh inside ForceRefreshInterval is held back.
	if _, err := c.ForceRefreshAccessToken(ctx, ""); err == nil {
		t.Fatal("a second forced refresh inside the interval was made")
	}
	ms = hs.collect(t)
	if n := count(t, ms, "wechatconf.limited", cred, wechatconfotel.AttrLimit.String("ForceRefreshInterval")); n != 1 {
		t.Errorf("wechatconf.limited{ForceRefreshInterval} = %d, want 1", n)
	}

	// A failed ticket fetch.
	s.InjectFault(wxtest.PathTicket, wxtest.Errcode(45009, "reach max api daily quota limit rid: 1"), 1)
	if _, err := c.JSAPITicket(ctx); !core.IsQuotaExceeded(err) {
		t.Fatalf("JSAPITicket = %v, want 45009", err)
	}
	ms = hs.collect(t)
	if n := count(t, ms, "wechatconf.fetches", ticket, failed, wechatconfotel.AttrErrcode.Int64(45009)); n != 1 {
		t.Errorf("wechatconf.fetches{jsapi_ticket,error,45009} = %d, want 1", n)
	}
	if n := count(t, ms, "wechatconf.fetch.duration", ticket, failed); n != 1 {
		t.Errorf("wechatconf.fetch.duration{jsapi_ticket,error} = %d, want 1", n)
	}

	// The key is not an attribute of any metric by default.
	for _, a := range allStrings(ms, nil) {
		if strings.HasPrefix(a, string(wechatconfotel.AttrKey)+"=") {
			t.Errorf("metric attribute %s without WithKeyAttribute", a)
		}
	}

	// Spans: one refresh per token call, its lock wait, then its fetch.
	spans := hs.spans.Ended()
	byID := map[string]sdktrace.ReadOnlySpan{}
	var refreshes []sdktrace.ReadOnlySpan
	for _, sp := range spans {
		byID[sp.SpanContext().SpanID().String()] = sp
		if strings.HasPrefix(sp.Name(), "wechatconf.refresh ") {
			refreshes = append(refreshes, sp)
		}
	}
	if len(refreshes) != 4 || len(spans) != 12 {
		t.Fatalf("%d spans, %d refreshes, want 12 and 4 (3 access_token calls, 1 failed ticket call)", len(spans), len(refreshes))
	}
	for _, r := range refreshes {
		var wait, fetch sdktrace.ReadOnlySpan
		for _, sp := range spans {
			if sp.Parent().SpanID() != r.SpanContext().SpanID() {
				continue
			}
			switch sp.Name() {
			case "wechatconf.store.lock_wait":
				wait = sp
			case "wechatconf.fetch":
				fetch = sp
			}
		}
		if wait == nil || fetch == nil {
			t.Fatalf("%s has no lock_wait or fetch child", r.Name())
		}
		if !wait.StartTime().Equal(r.StartTime()) || !wait.EndTime().Equal(fetch.StartTime()) || !fetch.EndTime().Equal(r.EndTime()) || r.EndTime().Before(r.StartTime()) {
			t.Errorf("%s [%v, %v]: lock_wait [%v, %v], fetch [%v, %v]", r.Name(), r.StartTime(), r.EndTime(), wait.StartTime(), wait.EndTime(), fetch.StartTime(), fetch.EndTime())
		}
		if d := r.EndTime().Sub(r.StartTime()); d > 10*time.Second {
			t.Errorf("%s lasted %v", r.Name(), d)
		}
		failedFetch := r.Name() == "wechatconf.refresh jsapi_ticket"
		if (r.Status().Code == codes.Error) != failedFetch || (fetch.Status().Code == codes.Error) != failedFetch {
			t.Errorf("%s status %v, fetch status %v", r.Name(), r.Status(), fetch.Status())
		}
	}

	// The next handler (level Warn) got the Warn events, not the Info ones,
	// with the attributes of the logger's With.
	logs := hs.logged()
	if !strings.Contains(logs, core.EventForced) || !strings.Contains(logs, core.EventLimited) || !strings.Contains(logs, `"app":"test"`) {
		t.Errorf("logs passed on lack the Warn events: %s", logs)
	}
	if strings.Contains(logs, core.EventFetched+`"`) {
		t.Errorf("an Info event reached a Warn handler: %s", logs)
	}

	// Nothing secret anywhere.
	for _, a := range allStrings(ms, spans) {
		for _, secret := range append([]string{appSecret}, tokens...) {
			if strings.Contains(a, secret) {
				t.Errorf("attribute %q holds a secret or a token", a)
			}
		}
	}
}

// WithKeyAttribute adds the store key to the metrics, and the gauge gets a
// point per credential.
func TestWithKeyAttribute(t *testing.T) {
	hs := newHarness(t, wechatconfotel.WithKeyAttribute())
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret, Now: time.Now})
	t.Cleanup(s.Close)
	c := newConf(t, s, slog.New(hs.h))
	hs.h.Observe(c.AccessTokenCredential(), c.AccessTokenCredential())
	if _, err := c.AccessToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	key := wechatconfotel.AttrKey.String(c.AccessTokenCredential().Key())
	ms := hs.collect(t)
	if n := count(t, ms, "wechatconf.fetches", cred, key); n != 1 {
		t.Errorf("wechatconf.fetches{key} = %d, want 1", n)
	}
	g := ms["wechatconf.token.remaining"].Data.(metricdata.Gauge[float64])
	if len(g.DataPoints) != 1 || !matches(g.DataPoints[0].Attributes, []attribute.KeyValue{cred, key}) {
		t.Errorf("wechatconf.token.remaining = %+v, want one point with the key", g.DataPoints)
	}
	if err := hs.h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := hs.collect(t)["wechatconf.token.remaining"]; ok {
		t.Error("the gauge is still observed after Close")
	}
}

// Without the key, the gauge reports the least life left per kind.
func TestGaugeLeastPerKind(t *testing.T) {
	hs := newHarness(t)
	mk := func(key string, life time.Duration) *core.Credential {
		cr, err := core.NewCredential(core.CredentialConfig{Name: "my_token", Key: key,
			Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
				return core.Token{Value: "v-" + key, ExpiresAt: time.Now().Add(life)}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		return cr
	}
	a, b, none := mk("a", time.Hour), mk("b", 2*time.Hour), mk("c", time.Hour)
	for _, cr := range []*core.Credential{a, b} {
		if _, err := cr.Get(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	hs.h.Observe(a, b, none)
	g := hs.collect(t)["wechatconf.token.remaining"].Data.(metricdata.Gauge[float64])
	if len(g.DataPoints) != 1 || g.DataPoints[0].Value > 3600 || g.DataPoints[0].Value < 3500 {
		t.Errorf("wechatconf.token.remaining = %+v, want one point of about 3600 s", g.DataPoints)
	}
}

func TestEnabled(t *testing.T) {
	ctx := context.Background()
	h := wechatconfotel.NewHandler(nil)
	if !h.Enabled(ctx, slog.LevelDebug) || !h.Enabled(ctx, slog.LevelWarn) || h.Enabled(ctx, slog.LevelDebug-1) {
		t.Error("a Handler without next: want Enabled from Debug up only (core.EventRecorded is a Debug event)")
	}
	d := wechatconfotel.NewHandler(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if !d.Enabled(ctx, slog.LevelDebug) || !d.WithAttrs(nil).Enabled(ctx, slog.LevelDebug) || !d.WithGroup("g").Enabled(ctx, slog.LevelDebug) {
		t.Error("a Handler whose next logs Debug is not Enabled for Debug")
	}
	if err := h.Handle(ctx, slog.NewRecord(time.Now(), slog.LevelInfo, "other", 0)); err != nil {
		t.Error(err)
	}
}

// Derived handlers (WithAttrs, WithGroup) record to the same instruments
// and pass records to the derived next; concurrent use is safe (-race).
func TestDerivedAndConcurrent(t *testing.T) {
	hs := newHarness(t)
	g := slog.New(hs.h).WithGroup("grp").With("x", 1)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				g.Warn(core.EventLimited, "credential", "access_token", "key", fmt.Sprint("k", i), "limit", "ErrorBackoff", "until", time.Now(), "error", "x")
				g.Info("unrelated", "j", j)
				if j%10 == 0 {
					hs.collect(t)
				}
			}
		})
	}
	wg.Wait()
	if n := count(t, hs.collect(t), "wechatconf.limited", cred, wechatconfotel.AttrLimit.String("ErrorBackoff")); n != 400 {
		t.Errorf("wechatconf.limited = %d, want 400", n)
	}
	if logs := hs.logged(); !strings.Contains(logs, `"grp":{"x":1,"credential":"access_token"`) || strings.Contains(logs, "unrelated") {
		t.Errorf("logs passed on through WithGroup: %.300s", logs)
	}
}

// A token written back after its first write failed (core.EventWrittenBack)
// is counted.
func TestWrittenBackIsCounted(t *testing.T) {
	hs := newHarness(t)
	l := slog.New(hs.h)
	for range 3 {
		l.Info(core.EventWrittenBack, "credential", "access_token", "key", "k", "expires_at", time.Now())
	}
	if n := count(t, hs.collect(t), "wechatconf.written_back", cred); n != 3 {
		t.Errorf("wechatconf.written_back = %d, want 3", n)
	}
}
