package openplatform_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/spread"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// openFleet is a fleet of Components (the processes) on one store, for
// spread.Run.
type openFleet struct {
	s     *wxtest.Server
	procs []*openplatform.Component
}

func (f *openFleet) Authorize(ctx context.Context, proc int, appid string) error {
	_, err := f.procs[proc].Authorize(ctx, f.s.Authorize(componentAppID, appid))
	return err
}

func (f *openFleet) Call(ctx context.Context, proc int, appid string) (bool, error) {
	a := f.procs[proc].Authorizer(appid)
	tok, err := a.AccessToken(ctx)
	if err != nil || f.s.TokenValid(tok.Value) {
		return false, err
	}
	// WeChat rejects it (superseded by another process's refresh, its
	// overlap over): replaced as Do would.
	_, err = a.RefreshAccessToken(ctx, tok.Value)
	return true, err
}

func (f *openFleet) Push(ctx context.Context, proc int) error {
	q, body, _, err := f.s.VerifyTicketPush(componentAppID, pushToken, pushKey)
	if err == nil {
		_, err = f.procs[proc].HandleEvent(ctx, q, bytes.NewReader(body))
	}
	return err
}

// spreadConfig is issue 27's refresh-spreading day for n tenants: 8
// processes, authorizations within the first hour, each tenant called
// every 5 minutes on average, the verify ticket pushed every 10 minutes.
func spreadConfig(n int) spread.Config {
	return spread.Config{
		Tenants: n, Processes: 8, AuthorizeWithin: time.Hour,
		Day: 24 * time.Hour, Step: 10 * time.Second, Bin: time.Minute,
		CallEvery: 5 * time.Minute, PushEvery: 10 * time.Minute, Seed: 27,
	}
}

// runOpenSpread runs cfg over Open Platform authorizers with jitter as
// Policy.RefreshJitter (0: the platform's default).
func runOpenSpread(tb testing.TB, cfg spread.Config, jitter time.Duration) *spread.Result {
	tb.Helper()
	clock := spread.NewClock(spread.Start)
	s := wxtest.New(wxtest.Options{Now: clock.Now, Components: []wxtest.Component{{AppID: componentAppID, AppSecret: componentSecret}}})
	tb.Cleanup(s.Close)
	store := &spread.Store{Inner: core.NewMemoryStore()}
	tr := &spread.Transport{Handler: s.Handler(), RefreshPath: openplatform.PathAuthorizerToken, ExchangePath: openplatform.PathQueryAuth}
	f := &openFleet{s: s}
	for i := range cfg.Processes {
		c, err := openplatform.New(openplatform.Config{
			AppID: componentAppID, AppSecret: core.NewSecret(componentSecret),
			Token: core.NewSecret(pushToken), EncodingAESKey: core.NewSecret(pushKey),
			Store: store, BaseURL: "http://wxtest.invalid", HTTPClient: &http.Client{Transport: tr},
			Now: clock.Now, Logger: slog.New(slog.DiscardHandler), Instance: "process-" + strconv.Itoa(i),
			Policy: core.Policy{RefreshJitter: jitter}, MaxAuthorizers: cfg.Tenants,
		})
		if err != nil {
			tb.Fatal(err)
		}
		f.procs = append(f.procs, c)
	}
	r, err := spread.Run(context.Background(), cfg, f, clock, store, tr)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// jitterName names a RefreshJitter setting in the rows.
func jitterName(j time.Duration) string {
	switch {
	case j == 0:
		return "default (" + openplatform.DefaultRefreshJitter.String() + ")"
	case j < 0:
		return "none"
	}
	return j.String()
}

// TestRefreshSpreading is issue 27's refresh-spreading day scaled down
// and made harsher, to run in CI: 250 authorizers on 8 processes, all
// authorized within the first 15 minutes (not an hour), the default
// policy. The refresh fetches per 30 minutes never exceed twice their
// average over the day; without the first token's spread (tenant's
// firstExpiry) the authorizations' 15 minutes come due again together at
// every 2-hour cycle, ≈ 4× the average. 30-minute bins: at 250 tenants
// they hold ≈ 60 refreshes, whose noise stays far from 2×. Every call is
// served, each authorizer is fetched about a dozen times in the day, and
// at the peak the store does a bounded number of operations per refresh.
func TestRefreshSpreading(t *testing.T) {
	cfg := spreadConfig(250)
	cfg.AuthorizeWithin, cfg.Step, cfg.CallEvery = 15*time.Minute, time.Minute, 10*time.Minute
	r := runOpenSpread(t, cfg, 0)
	s := r.Summarize(30)
	spread.Report(t, "Open Platform authorizers (in-suite)", jitterName(0), cfg, s)
	if s.Errors != 0 {
		t.Fatalf("%d of %d calls failed, the first: %v", s.Errors, s.Calls, s.FirstError)
	}
	if s.Ratio > 2 {
		t.Errorf("the refresh fetches peak at %d per %v (at %v), %.2f× their average %.1f: the goal is at most 2×",
			s.MaxRefreshes, s.Width, time.Duration(s.PeakBin)*s.Width, s.Ratio, s.AvgRefreshes)
	}
	// Each token lives 2 h and is refreshed ahead: about 12 refreshes a
	// day, far from WeChat's quotas; a fleet that fetched per process
	// would make several times more.
	if s.RefreshesPerTenant < 10 || s.RefreshesPerTenant > 20 {
		t.Errorf("%.2f refresh fetches per authorizer in the day, want 10 to 20", s.RefreshesPerTenant)
	}
	// At the peak, the store does a bounded number of operations per
	// refresh fetch (the record's get and compare-and-refresh, the fleet's
	// other processes adopting the new token, the ledger's write) plus the
	// calls' own (none on the hot path).
	if perFetch := s.Total() * s.Width.Seconds() / float64(s.MaxRefreshes); perFetch > 20 {
		t.Errorf("%.1f store operations per refresh fetch at the peak, want at most 20", perFetch)
	}
}

// BenchmarkRefreshSpreading is issue 27's refresh-spreading day at the
// scale of WECHATCONF_SPREAD_TENANTS authorizers (100000 for the issue's
// figures; it takes minutes, so it runs only when that variable is set):
// 8 processes, each authorizer authorized within the first hour, then
// called every 5 minutes on average by a random process. It reports the
// most refresh fetches in a minute, their average over the day, the ratio
// (the goal: ≤ 2), the store's operations per second in the peak minute,
// and the refresh fetches per authorizer per day, as metrics and as a
// "Refresh spreading" row. Run it with -benchtime 1x: one op is the day.
func BenchmarkRefreshSpreading(b *testing.B) {
	v := os.Getenv("WECHATCONF_SPREAD_TENANTS")
	if v == "" {
		b.Skip("set WECHATCONF_SPREAD_TENANTS (e.g. 100000) to run the refresh-spreading day; it takes minutes")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("WECHATCONF_SPREAD_TENANTS=%q: want a positive number of tenants", v)
	}
	cfg := spreadConfig(n)
	var s spread.Summary
	for b.Loop() {
		s = runOpenSpread(b, cfg, 0).Summarize(1)
	}
	if s.Errors != 0 {
		b.Fatalf("%d of %d calls failed, the first: %v", s.Errors, s.Calls, s.FirstError)
	}
	spread.Note(b, cfg)
	spread.Report(b, "Open Platform authorizers", jitterName(0), cfg, s)
	b.ReportMetric(float64(s.MaxRefreshes), "max-fetches/min")
	b.ReportMetric(s.AvgRefreshes, "avg-fetches/min")
	b.ReportMetric(s.Ratio, "max/avg")
	b.ReportMetric(s.Total(), "store-ops/s-at-peak")
	b.ReportMetric(s.RefreshesPerTenant, "fetches/tenant/day")
}
