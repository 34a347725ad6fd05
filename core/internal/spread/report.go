package spread

import (
	"fmt"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core/internal/benchrow"
)

// Summary is a Result's figures over bins of Width (Config.Bin times the
// bins merged).
type Summary struct {
	Width time.Duration
	// MaxRefreshes is the most refresh fetches in one bin, at bin
	// PeakBin (the first such); AvgRefreshes the refreshes of the whole
	// run per bin; Ratio their quotient (the goal: at most 2).
	MaxRefreshes int64
	PeakBin      int
	AvgRefreshes float64
	Ratio        float64
	// MinRefreshesAfter is the fewest refresh fetches in one bin after
	// the first refresh (the trough).
	MinRefreshesAfter int64
	// MaxExchanges is the most authorizations (code exchanges) in one
	// bin: the input's rate, in the first hour.
	MaxExchanges int64
	// OpsAtPeak is the store's operations per second, by kind, in the
	// peak bin; MaxOps the most operations in one bin, per second.
	OpsAtPeak    [numOps]float64
	MaxOpsPerSec float64
	// RefreshesPerTenant is the refresh fetches per tenant over the run
	// (the code exchange that brought the first token not counted).
	RefreshesPerTenant float64
	// Calls, Rejected, Errors and FirstError are the run's.
	Calls, Rejected, Errors int64
	FirstError              error
}

// Total returns the store operations per second at the peak, all kinds.
func (s Summary) Total() float64 {
	t := 0.0
	for _, v := range s.OpsAtPeak {
		t += v
	}
	return t
}

// Summarize returns r's figures over bins of merge of its own bins each
// (1 for Config.Bin).
func (r *Result) Summarize(merge int) Summary {
	merge = max(merge, 1)
	n := len(r.Refreshes) / merge
	s := Summary{Width: time.Duration(merge) * r.Config.Bin, PeakBin: -1, MinRefreshesAfter: -1,
		Calls: r.Calls, Rejected: r.Rejected, Errors: r.Errors, FirstError: r.FirstError}
	var total int64
	started := false
	secs := s.Width.Seconds()
	for b := range n {
		var ref, ex, all int64
		var ops [numOps]int64
		for i := b * merge; i < (b+1)*merge; i++ {
			ref += r.Refreshes[i]
			ex += r.Exchanges[i]
			for k, v := range r.Ops[i] {
				ops[k] += v
				all += v
			}
		}
		total += ref
		if ref > s.MaxRefreshes {
			s.MaxRefreshes, s.PeakBin = ref, b
			for k, v := range ops {
				s.OpsAtPeak[k] = float64(v) / secs
			}
		}
		if started = started || ref > 0; started && (s.MinRefreshesAfter < 0 || ref < s.MinRefreshesAfter) {
			s.MinRefreshesAfter = ref
		}
		s.MaxExchanges = max(s.MaxExchanges, ex)
		s.MaxOpsPerSec = max(s.MaxOpsPerSec, float64(all)/secs)
	}
	if n > 0 {
		s.AvgRefreshes = float64(total) / float64(n)
	}
	if s.AvgRefreshes > 0 {
		s.Ratio = float64(s.MaxRefreshes) / s.AvgRefreshes
	}
	s.RefreshesPerTenant = float64(total) / float64(r.Config.Tenants)
	return s
}

// Table is the BENCHMARKS.md table the rows go to.
const Table = "Refresh spreading"

// Report logs s as a row of Table (benchrow.Row) for platform, with the
// run's jitter (what Policy.RefreshJitter was set to, or "default …").
func Report(tb testing.TB, platform, jitter string, cfg Config, s Summary) {
	tb.Helper()
	per := "minute"
	if s.Width != time.Minute {
		per = s.Width.String()
	}
	benchrow.Row(tb, Table,
		benchrow.Col{Name: "platform", Value: platform},
		benchrow.Col{Name: "tenants × processes", Value: fmt.Sprintf("%d × %d", cfg.Tenants, cfg.Processes)},
		benchrow.Col{Name: "RefreshJitter", Value: jitter},
		benchrow.Col{Name: "refresh fetches per " + per + ": max (at) / min after the first / average", Value: fmt.Sprintf("%d (%s) / %d / %.1f",
			s.MaxRefreshes, clockAt(time.Duration(s.PeakBin)*s.Width), s.MinRefreshesAfter, s.AvgRefreshes)},
		benchrow.Col{Name: "max / average (goal ≤ 2)", Value: fmt.Sprintf("%.2f", s.Ratio)},
		benchrow.Col{Name: "store ops/s at the peak: all (get, refresh, set, ledger)", Value: fmt.Sprintf("%.0f (%.0f, %.0f, %.0f, %.0f)",
			s.Total(), s.OpsAtPeak[OpGet], s.OpsAtPeak[OpRefresh], s.OpsAtPeak[OpSet], s.OpsAtPeak[OpLedger])},
		benchrow.Col{Name: "store ops/s, busiest " + per, Value: fmt.Sprintf("%.0f", s.MaxOpsPerSec)},
		benchrow.Col{Name: "refresh fetches per tenant per day", Value: fmt.Sprintf("%.2f", s.RefreshesPerTenant*float64(24*time.Hour)/float64(cfg.Day))},
		benchrow.Col{Name: "authorizations per " + per + ", max", Value: fmt.Sprint(s.MaxExchanges)},
		benchrow.Col{Name: "calls: rejected at use / failed", Value: fmt.Sprintf("%d: %d / %d", s.Calls, s.Rejected, s.Errors)})
}

// Note logs the run's set-up as a note on Table.
func Note(tb testing.TB, cfg Config) {
	tb.Helper()
	benchrow.Note(tb, Table, fmt.Sprintf("Each row is one simulated day (%v, in steps of %v; the fleet is waited for at each step, so the figures do not depend on the machine): "+
		"the tenants authorize at uniformly random times within the first %v (the code exchange fetches their first token), "+
		"and each is then called (its handle's AccessToken) every %v on average (exponential intervals) by one of the processes drawn at random; "+
		"WeChat's ticket push reaches a random process every %v. The processes are real Components (Suites) in one Go process, "+
		"each with its own registry of handles (Config.MaxAuthorizers = the tenants), on one core.MemoryStore counted by a wrapper; "+
		"WeChat is core/wxtest's handler, called in memory, on the same simulated clock. Tokens live 2 h (WeChat's 7200 s); the policy is the platform's default but for RefreshJitter as the row says. "+
		"A refresh fetch is one api_authorizer_token (get_corp_token) call; the authorizations' code exchanges are counted apart. "+
		"The first tokens' trusted lives are drawn at random (unseeded), so runs differ by the noise of the counts.",
		cfg.Day, cfg.Step, cfg.AuthorizeWithin, cfg.CallEvery, cfg.PushEvery))
}

// clockAt formats an offset from the start as h:mm.
func clockAt(d time.Duration) string {
	return fmt.Sprintf("%d:%02d", int(d.Hours()), int(d.Minutes())%60)
}
