package wechatconfotel_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	wechatconfotel "github.com/wechatconf/wechatconf/contrib/otel"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

var (
	official = wechatconfotel.AttrPlatform.String(string(core.PlatformOfficialAccount))
	fetchesQ = wechatconfotel.AttrQuota.String("fetches")
	forcedQ  = wechatconfotel.AttrQuota.String("forced")
)

// gauge returns the points of the int64 gauge name whose attributes hold
// want.
func gauge(t testing.TB, ms map[string]metricdata.Metrics, name string, want ...attribute.KeyValue) []metricdata.DataPoint[int64] {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		return nil
	}
	g, ok := m.Data.(metricdata.Gauge[int64])
	if !ok {
		t.Fatalf("%s: data %T, want an int64 gauge", name, m.Data)
	}
	var out []metricdata.DataPoint[int64]
	for _, p := range g.DataPoints {
		if matches(p.Attributes, want) {
			out = append(out, p)
		}
	}
	return out
}

// gaugeValue is the value of the one point of gauge name holding want, or
// -1 when there is not exactly one.
func gaugeValue(t testing.TB, ms map[string]metricdata.Metrics, name string, want ...attribute.KeyValue) int64 {
	t.Helper()
	ps := gauge(t, ms, name, want...)
	if len(ps) != 1 {
		return -1
	}
	return ps[0].Value
}

// ledgerConf is a Conf of s on its clock, logging to l.
func ledgerConf(t testing.TB, s *wxtest.Server, l *slog.Logger, api core.TokenAPI) *core.Conf {
	t.Helper()
	c, err := core.New(core.Config{AppID: appID, AppSecret: core.NewSecret(appSecret), TokenAPI: api, Instance: "web-a/1",
		BaseURL: s.URL, HTTPClient: s.Client(), Now: s.Now, RetryBackoff: time.Millisecond, Logger: l})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func flushLedger(t testing.TB, c *core.Conf) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.FlushLedger(ctx); err != nil {
		t.Fatal(err)
	}
}

// A script outside the fleet fetches a classic token; the fleet meets the
// rejection and names the outside fetch (core.EventOutsideFetch): counted
// in wechatconf.outside_fetches. The quota gauges show the fleet's two
// fetches of the day against the classic 2,000 — read from
// core.EventRecorded, a Debug event, though the next handler (the user's
// logger) takes Warn and above only; that Debug event is not passed on to
// it. No token in any attribute.
func TestOutsideFetchAndQuotaGauges(t *testing.T) {
	hs := newHarness(t)
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret})
	t.Cleanup(s.Close)
	wechatconfotel.SetClock(hs.h, s.Now)
	c := ledgerConf(t, s, slog.New(hs.h), core.ClassicToken)
	ctx := t.Context()
	first, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(10 * time.Minute)
	q := url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {appSecret}}
	resp, err := s.Client().Get(s.URL + wxtest.PathToken + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s.Advance(wxtest.DefaultOverlap + time.Second)
	var out struct {
		IPList []string `json:"ip_list"`
	}
	if err := c.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, &out); err != nil {
		t.Fatal(err)
	}
	flushLedger(t, c)
	second, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}

	ms := hs.collect(t)
	if n := count(t, ms, "wechatconf.outside_fetches", cred, official, wechatconfotel.AttrForced.Bool(false)); n != 1 {
		t.Errorf("wechatconf.outside_fetches = %d, want 1", n)
	}
	if v := gaugeValue(t, ms, "wechatconf.quota.used", cred, official, fetchesQ); v != 2 {
		t.Errorf("wechatconf.quota.used{limit=fetches} = %d (%v), want 2 (one point)", v, gauge(t, ms, "wechatconf.quota.used"))
	}
	if v := gaugeValue(t, ms, "wechatconf.quota.limit", cred, official, fetchesQ); v != core.ClassicTokenDailyLimit {
		t.Errorf("wechatconf.quota.limit{limit=fetches} = %d, want %d", v, core.ClassicTokenDailyLimit)
	}
	if ps := gauge(t, ms, "wechatconf.quota.used", forcedQ); len(ps) != 0 {
		t.Errorf("wechatconf.quota.used{limit=forced} on the classic token, which forces nothing: %v", ps)
	}
	if logs := hs.logged(); !strings.Contains(logs, core.EventOutsideFetch) || strings.Contains(logs, core.EventRecorded) {
		t.Errorf("logs passed on: want the Warn outside fetch, not the Debug recorded event: %.500s", logs)
	}
	for _, a := range allStrings(ms, hs.spans.Ended()) {
		for _, secret := range []string{first.Value, second.Value, appSecret} {
			if strings.Contains(a, secret) {
				t.Fatalf("an attribute holds a secret: %s", a)
			}
		}
	}

	// The next Beijing day: the counts are yesterday's, no point.
	wechatconfotel.SetClock(hs.h, func() time.Time { return s.Now().Add(24 * time.Hour) })
	if ps := gauge(t, hs.collect(t), "wechatconf.quota.used"); len(ps) != 0 {
		t.Errorf("wechatconf.quota.used the next day = %v, want no point", ps)
	}
}

// On stable_token, 16 forced refreshes of the fleet cross 50 % (10) and
// 80 % (16) of WeChat's 20 a day: wechatconf.quota.crossed counts each
// once, and the gauges show 16 of 20.
func TestQuotaCrossed(t *testing.T) {
	hs := newHarness(t)
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret})
	t.Cleanup(s.Close)
	wechatconfotel.SetClock(hs.h, s.Now)
	c := ledgerConf(t, s, slog.New(hs.h), core.StableToken)
	ctx := t.Context()
	tok, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 16 {
		s.Advance(core.DefaultForceRefreshInterval + time.Second)
		if tok, err = c.ForceRefreshAccessToken(ctx, tok.Value); err != nil {
			t.Fatal(err)
		}
	}
	flushLedger(t, c)
	ms := hs.collect(t)
	for _, p := range []int64{50, 80} {
		if n := count(t, ms, "wechatconf.quota.crossed", cred, official, forcedQ, wechatconfotel.AttrPercent.Int64(p)); n != 1 {
			t.Errorf("wechatconf.quota.crossed{limit=forced, percent=%d} = %d, want 1", p, n)
		}
	}
	if n := count(t, ms, "wechatconf.quota.crossed"); n != 2 {
		t.Errorf("wechatconf.quota.crossed = %d in all, want 2", n)
	}
	if used, limit := gaugeValue(t, ms, "wechatconf.quota.used", cred, forcedQ), gaugeValue(t, ms, "wechatconf.quota.limit", cred, forcedQ); used != 16 || limit != core.DefaultForceRefreshDailyLimit {
		t.Errorf("forced quota gauges: %d of %d, want 16 of %d", used, limit, core.DefaultForceRefreshDailyLimit)
	}
	if used := gaugeValue(t, ms, "wechatconf.quota.used", cred, fetchesQ); used != 17 {
		t.Errorf("wechatconf.quota.used{limit=fetches} = %d, want 17 (the first fetch and 16 forced)", used)
	}
	if ps := gauge(t, ms, "wechatconf.quota.limit", fetchesQ); len(ps) != 0 {
		t.Errorf("wechatconf.quota.limit{limit=fetches} on stable_token, whose limit core does not know: %v", ps)
	}
}

// Without the key attribute the quota gauges have one point per kind,
// platform and limit: the credential nearest its limit; with it, one per
// credential.
func TestQuotaGaugesPerKind(t *testing.T) {
	now := time.Now()
	day := now.In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
	recorded := func(l *slog.Logger, key string, fetches, limit int) {
		l.Debug(core.EventRecorded, "credential", "access_token", "platform", "official_account", "key", key,
			"day", day, "fetches", fetches, "forced", 0, "outside", 0, "daily_limit", limit, "forced_daily_limit", 0)
	}
	hs := newHarness(t)
	wechatconfotel.SetClock(hs.h, func() time.Time { return now })
	l := slog.New(hs.h)
	recorded(l, "wechatconf/wxa/access_token", 100, 2000)
	recorded(l, "wechatconf/wxb/access_token", 1500, 2000)
	recorded(l, "wechatconf/wxc/access_token", 1800, 0)  // no limit known: nearer to nothing
	recorded(l, "wechatconf/wxa/access_token", 90, 2000) // out of order: the count only grows within a day
	ms := hs.collect(t)
	if ps := gauge(t, ms, "wechatconf.quota.used", fetchesQ); len(ps) != 1 || ps[0].Value != 1500 {
		t.Errorf("wechatconf.quota.used without the key = %v, want one point, 1500 (wxb's: 75 %% of its limit)", ps)
	}
	hk := newHarness(t, wechatconfotel.WithKeyAttribute())
	wechatconfotel.SetClock(hk.h, func() time.Time { return now })
	l = slog.New(hk.h)
	recorded(l, "wechatconf/wxa/access_token", 100, 2000)
	recorded(l, "wechatconf/wxb/access_token", 1500, 2000)
	recorded(l, "wechatconf/wxa/access_token", 90, 2000)
	ms = hk.collect(t)
	if v := gaugeValue(t, ms, "wechatconf.quota.used", wechatconfotel.AttrKey.String("wechatconf/wxa/access_token")); v != 100 {
		t.Errorf("wechatconf.quota.used{key=wxa} = %d, want 100", v)
	}
	if ps := gauge(t, ms, "wechatconf.quota.limit"); len(ps) != 2 {
		t.Errorf("wechatconf.quota.limit with the key = %v, want a point per credential", ps)
	}
}
