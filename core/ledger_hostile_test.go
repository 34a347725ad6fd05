package core_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// Red-team tests of the fetch ledger's durable state, end to end through a
// Credential and a MemoryStore with injected faults.

// ledgerCred is a Credential on store whose every fetch issues a new
// token, with the ledger's DailyLimit daily.
func ledgerCred(t *testing.T, store core.TokenStore, clk *clock, lg *jsonLog, instance string, daily int) *core.Credential {
	return ledgerCredCounting(t, store, clk, lg, instance, daily, new(atomic.Int64))
}

// ledgerCredCounting is ledgerCred adding each fetch to fetches.
func ledgerCredCounting(t *testing.T, store core.TokenStore, clk *clock, lg *jsonLog, instance string, daily int, fetches *atomic.Int64) *core.Credential {
	t.Helper()
	var mu sync.Mutex
	n := 0
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "access_token", Key: "k/access_token", Store: store, Now: clk.now, Logger: lg.logger(slog.LevelDebug),
		Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			mu.Lock()
			defer mu.Unlock()
			n++
			fetches.Add(1)
			return core.Token{Value: fmt.Sprintf("token-%s-%d", instance, n), ExpiresAt: clk.now().Add(2 * time.Hour)}, nil
		},
		Ledger: &core.LedgerConfig{Instance: instance, DailyLimit: daily},
	})
	if err != nil {
		t.Fatal(err)
	}
	core.SetLedgerBackoff(cr, time.Millisecond, time.Millisecond)
	return cr
}

func flushCred(t *testing.T, crs ...*core.Credential) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), watchdog)
	defer cancel()
	for _, cr := range crs {
		if err := cr.FlushLedger(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// force makes cr fetch n new tokens.
func force(t *testing.T, cr *core.Credential, n int) {
	t.Helper()
	for range n {
		tok, err := cr.Get(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cr.ForceRefresh(t.Context(), tok.Value); err != nil {
			t.Fatal(err)
		}
	}
}

// tests that a ledger write that lands but reports failure still logs what
// its merge found: the quota threshold it crossed is an EventQuota once —
// not zero times because the retry finds the records already merged.
func TestLedgerLandedButFailedStillLogsQuota(t *testing.T) {
	clk := newClock(time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC))
	store := &ledgerFaults{MemoryStore: core.NewMemoryStore(), landFail: 1}
	var lg jsonLog
	cr := ledgerCred(t, store, clk, &lg, "a/1", 2) // 50 % at 1 fetch, 80 % at 2
	if _, err := cr.Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	flushCred(t, cr)
	if got := lg.records(t, core.EventQuota); len(got) != 1 || got[0]["percent"] != float64(50) {
		t.Fatalf("quota events %v, want one at 50 %%", got)
	}
	force(t, cr, 1)
	flushCred(t, cr)
	if got := lg.records(t, core.EventQuota); len(got) != 2 || got[1]["percent"] != float64(80) {
		t.Fatalf("quota events %v, want a second at 80 %%", got)
	}
}

// batchFaults fails the first ledger Get once the test releases it (so the
// writer's next attempt carries every record queued meanwhile), then lets
// the next ledger Refresh land and report failure.
type batchFaults struct {
	*core.MemoryStore
	release  chan struct{}
	mu       sync.Mutex
	gets     int
	landFail bool
}

func (s *batchFaults) Get(ctx context.Context, key string) (core.Token, error) {
	if isLedger(key) {
		s.mu.Lock()
		s.gets++
		first := s.gets == 1
		s.mu.Unlock()
		if first {
			select {
			case <-s.release:
			case <-ctx.Done():
			}
			return core.Token{}, errInjected
		}
	}
	return s.MemoryStore.Get(ctx, key)
}

func (s *batchFaults) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	tok, err := s.MemoryStore.Refresh(ctx, key, stale, fetch)
	if isLedger(key) && err == nil {
		s.mu.Lock()
		fail := s.landFail
		s.landFail = false
		s.mu.Unlock()
		if fail {
			return core.Token{}, errInjected
		}
	}
	return tok, err
}

// tests that a queue that grew while the store was down (more records than
// the ledger keeps) is counted once when its write lands but reports
// failure: the day's count is the number of fetches WeChat answered.
func TestLedgerLandedButFailedBigBatchCountsOnce(t *testing.T) {
	clk := newClock(time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC))
	store := &batchFaults{MemoryStore: core.NewMemoryStore(), release: make(chan struct{}), landFail: true}
	var lg jsonLog
	c := ledgerCred(t, store, clk, &lg, "a/1", 0)
	// RefreshTimeout bounds the blocked Get: keep it long enough that the
	// 20 fetches are queued before it ends.
	if _, err := c.Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	const n = core.LedgerEntries + 4
	force(t, c, n-1)
	close(store.release)
	flushCred(t, c)
	l, err := c.Ledger(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Today(clk.now()).Fetches; got != n {
		t.Fatalf("the ledger counts %d fetches today, want %d (each fetch once)", got, n)
	}
}

// tests that a ledger written by a newer version (a format this one does
// not know) is not overwritten: during a rolling upgrade the old instances
// must not destroy the new ones' history.
func TestLedgerNewerFormatIsKept(t *testing.T) {
	clk := newClock(time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC))
	mem := core.NewMemoryStore()
	newer := `{"v":2,"entries":[],"days":[{"day":"2026-03-01","fetches":7}],"shards":["future"]}`
	key := core.LedgerKey("k/access_token")
	if err := mem.Set(t.Context(), key, core.Token{Value: newer}); err != nil {
		t.Fatal(err)
	}
	var lg jsonLog
	cr := ledgerCred(t, mem, clk, &lg, "a/1", 0)
	if _, err := cr.Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	flushCred(t, cr)
	got, err := mem.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Value != newer {
		t.Fatalf("a newer version's ledger was overwritten: %s", got.Value)
	}
}

// tests that two Credentials (two processes) on one store, recording at
// once, land every record exactly once, and that the quota thresholds are
// each one event fleet-wide.
func TestLedgerConcurrentWritersExact(t *testing.T) {
	clk := newClock(time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC))
	mem := core.NewMemoryStore()
	var lg jsonLog
	const total = 40
	var fetches atomic.Int64
	var crs []*core.Credential
	for i := range 4 {
		crs = append(crs, ledgerCredCounting(t, &ledgerFaults{MemoryStore: mem, landFail: 2}, clk, &lg, fmt.Sprintf("w%d/1", i), total, &fetches))
	}
	var wg sync.WaitGroup
	for _, cr := range crs {
		wg.Go(func() {
			for fetches.Load() < total {
				tok, err := cr.Get(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := cr.ForceRefresh(t.Context(), tok.Value); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	flushCred(t, crs...)
	l, err := crs[0].Ledger(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	issued := len(lg.records(t, core.EventFetched))
	if got := l.Today(clk.now()).Fetches; got != issued {
		t.Errorf("the ledger counts %d fetches, the credentials logged %d", got, issued)
	}
	q := lg.records(t, core.EventQuota)
	seen := map[float64]int{}
	for _, e := range q {
		seen[e["percent"].(float64)]++
	}
	if seen[50] != 1 || seen[80] != 1 {
		t.Errorf("quota events %v at %d fetches, want one at 50 %% and one at 80 %%", q, issued)
	}
}
