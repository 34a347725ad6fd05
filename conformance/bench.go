package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// Benchmark measures the store that h builds, with allocations reported:
//
//   - Get: Get of a stored token;
//   - Set: Set of a token;
//   - RefreshUncontended: Refresh whose stale differs from the stored value,
//     the fast path with no fetch;
//   - RefreshFetch: Refresh whose stale equals the stored value, one fetch
//     (which returns at once) per operation;
//   - RefreshContended: goroutines (b.RunParallel) refreshing one key, each
//     with the last value it saw as stale, so that most calls find a value
//     another goroutine fetched; fetches/op tells how many calls fetched;
//   - FetchLedger/on and FetchLedger/off: one refresh of a core.Credential
//     whose Fetch answers at once, with the fetch ledger written (on: the
//     default of core.Config) or not, the ledger already full
//     (core.LedgerEntries records); the difference is what the ledger adds
//     to a fetch. store-calls/op counts the TokenStore calls (the ledger's
//     are one Get and one Refresh of its key), ledger-bytes the stored
//     ledger's size;
//   - Claim: a Claim that wins, on a fresh key per operation, with a ttl of
//     a minute; ClaimLost: a Claim of a key another value holds. Both run
//     on the store's own core.ClaimStore, or on core.ClaimsOver(store) for
//     a store without one (the log line says which); store-calls/op counts
//     the store calls a claim makes (a native Claim is one, the emulation's
//     are a Get and, to win, a Refresh). allocs/op of Claim includes the
//     key's string, one allocation;
//   - ListKeys10000: ListKeys of a prefix holding 10,000 keys, for a store
//     that implements core.KeyLister (skipped otherwise); keys/s is how
//     many keys it lists a second. The keys are stored once, before the
//     timer starts, and stay in the backend.
func Benchmark(b *testing.B, h Harness) {
	h = h.normalize(b)
	ctx := context.Background()
	runID := fmt.Sprintf("%08x", rand.Uint32())
	// A key of its own for every run of a sub-benchmark (the testing package
	// runs each several times, and -count more), so no run sees another's
	// token.
	var runs atomic.Int64
	key := func(b *testing.B) string {
		return fmt.Sprintf("%scf%s/%s/%d", h.KeyPrefix, runID, b.Name(), runs.Add(1))
	}
	tok := core.Token{Value: pattern("bench-", 512), ExpiresAt: time.Now().Add(2 * time.Hour)}

	b.Run("Get", func(b *testing.B) {
		s, k := h.NewStore(b), key(b)
		if err := s.Set(ctx, k, tok); err != nil {
			b.Fatalf("Set(%q): %v", k, err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, k); err != nil {
				b.Fatalf("Get(%q): %v", k, err)
			}
		}
	})

	b.Run("Set", func(b *testing.B) {
		s, k := h.NewStore(b), key(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Set(ctx, k, tok); err != nil {
				b.Fatalf("Set(%q): %v", k, err)
			}
		}
	})

	b.Run("RefreshUncontended", func(b *testing.B) {
		s, k := h.NewStore(b), key(b)
		if err := s.Set(ctx, k, tok); err != nil {
			b.Fatalf("Set(%q): %v", k, err)
		}
		var fetches atomic.Int64
		fetch := func(context.Context) (core.Token, error) { fetches.Add(1); return tok, nil }
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Refresh(ctx, k, "older", fetch); err != nil {
				b.Fatalf("Refresh(%q, stale=%q): %v", k, "older", err)
			}
		}
		if n := fetches.Load(); n != 0 {
			b.Fatalf("Refresh(%q, stale=%q): fetch ran %d times, want 0 (rule 2)", k, "older", n)
		}
	})

	b.Run("RefreshFetch", func(b *testing.B) {
		s, k := h.NewStore(b), key(b)
		var n int
		fetch := func(context.Context) (core.Token, error) {
			n++
			return core.Token{Value: "fetched-" + strconv.Itoa(n), ExpiresAt: tok.ExpiresAt}, nil
		}
		stale, ops := "", 0
		b.ReportAllocs()
		for b.Loop() {
			ops++
			t, err := s.Refresh(ctx, k, stale, fetch)
			if err != nil {
				b.Fatalf("Refresh(%q, stale=%q): %v", k, stale, err)
			}
			stale = t.Value
		}
		if n != ops {
			b.Fatalf("Refresh(%q) with stale = the stored value: fetch ran %d times in %d calls, want one per call (rule 3)", k, n, ops)
		}
	})

	b.Run("RefreshContended", func(b *testing.B) {
		s, k := h.NewStore(b), key(b)
		var fetches atomic.Int64
		fetch := func(context.Context) (core.Token, error) {
			n := fetches.Add(1)
			return core.Token{Value: "fetched-" + strconv.FormatInt(n, 10), ExpiresAt: tok.ExpiresAt}, nil
		}
		b.ReportAllocs()
		b.SetParallelism(4) // 4×GOMAXPROCS goroutines, so that some wait for the lock
		b.RunParallel(func(pb *testing.PB) {
			stale := ""
			for pb.Next() {
				t, err := s.Refresh(ctx, k, stale, fetch)
				if err != nil {
					b.Errorf("Refresh(%q, stale=%q): %v", k, stale, err)
					return
				}
				stale = t.Value
			}
		})
		b.ReportMetric(float64(fetches.Load())/float64(b.N), "fetches/op")
	})

	b.Run("FetchLedger", func(b *testing.B) {
		for _, on := range []bool{true, false} {
			name := "on"
			if !on {
				name = "off"
			}
			b.Run(name, func(b *testing.B) { benchmarkFetchLedger(b, h.NewStore(b), key(b), on) })
		}
	})

	b.Run("Claim", func(b *testing.B) { benchmarkClaim(b, h.NewStore(b), key(b), false) })
	b.Run("ClaimLost", func(b *testing.B) { benchmarkClaim(b, h.NewStore(b), key(b), true) })

	b.Run("ListKeys10000", func(b *testing.B) {
		benchmarkListKeys(b, h.NewStore(b), key(b)+"/")
	})
}

// countedStore counts a TokenStore's calls.
type countedStore struct {
	core.TokenStore
	calls atomic.Int64
}

func (s *countedStore) Get(ctx context.Context, key string) (core.Token, error) {
	s.calls.Add(1)
	return s.TokenStore.Get(ctx, key)
}

func (s *countedStore) Set(ctx context.Context, key string, t core.Token) error {
	s.calls.Add(1)
	return s.TokenStore.Set(ctx, key, t)
}

func (s *countedStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	s.calls.Add(1)
	return s.TokenStore.Refresh(ctx, key, stale, fetch)
}

// benchmarkFetchLedger is Benchmark's FetchLedger/on and /off.
func benchmarkFetchLedger(b *testing.B, s core.TokenStore, key string, on bool) {
	ctx := context.Background()
	store := &countedStore{TokenStore: s}
	var ledger *core.LedgerConfig
	if on {
		ledger = &core.LedgerConfig{Instance: "bench/1"}
	}
	var seq atomic.Int64
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "access_token", Key: key, Store: store, Ledger: ledger,
		Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			return core.Token{Value: pattern(fmt.Sprintf("fetched-%d-", seq.Add(1)), 512), ExpiresAt: time.Now().Add(2 * time.Hour)}, nil
		},
		Policy: core.Policy{RejectedRefreshInterval: -1},
	})
	if err != nil {
		b.Fatal(err)
	}
	t, err := cr.Get(ctx)
	if err != nil {
		b.Fatalf("Get: %v", err)
	}
	for range core.LedgerEntries { // a full ledger, as in production
		if t, err = cr.Refresh(ctx, t.Value); err != nil {
			b.Fatalf("Refresh: %v", err)
		}
	}
	if err := cr.FlushLedger(ctx); err != nil {
		b.Fatal(err)
	}
	calls := store.calls.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if t, err = cr.Refresh(ctx, t.Value); err != nil {
			b.Fatalf("Refresh: %v", err)
		}
		if err := cr.FlushLedger(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(store.calls.Load()-calls)/float64(b.N), "store-calls/op")
	if on {
		raw, err := s.Get(ctx, core.LedgerKey(key))
		if err != nil {
			b.Fatalf("Get of the ledger: %v", err)
		}
		b.ReportMetric(float64(len(raw.Value)), "ledger-bytes")
	}
}

// countedClaims counts the calls of a native ClaimStore into calls.
type countedClaims struct {
	core.ClaimStore
	calls *atomic.Int64
}

func (c countedClaims) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	c.calls.Add(1)
	return c.ClaimStore.Claim(ctx, key, value, ttl)
}

func (c countedClaims) CompareAndSwapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	c.calls.Add(1)
	return c.ClaimStore.CompareAndSwapClaim(ctx, key, old, value, ttl)
}

// benchmarkClaim is Benchmark's Claim (lost false: each operation claims a
// key of its own, and wins) and ClaimLost (each claims key, which another
// value holds, and loses).
func benchmarkClaim(b *testing.B, s core.TokenStore, key string, lost bool) {
	ctx := context.Background()
	const (
		value = "bench-claimer"
		ttl   = time.Minute
	)
	store := &countedStore{TokenStore: s}
	var c core.ClaimStore
	if native, ok := s.(core.ClaimStore); ok {
		c = countedClaims{ClaimStore: native, calls: &store.calls}
	} else {
		c = core.ClaimsOver(store)
	}
	_, native := core.ClaimStoreFor(s)
	b.Log(claimsKind(s, native))
	if lost {
		if held, err := c.Claim(ctx, key, "bench-holder", time.Hour); err != nil || held != "bench-holder" {
			b.Fatalf("Claim(%q, %q) of a fresh key = %q, %v", key, "bench-holder", held, err)
		}
	}
	calls := store.calls.Load()
	buf := []byte(key + "/")
	prefix := len(buf)
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		k, want := key, "bench-holder"
		if !lost {
			n++
			buf = strconv.AppendInt(buf[:prefix], int64(n), 10)
			k, want = string(buf), value
		}
		held, err := c.Claim(ctx, k, value, ttl)
		if err != nil || held != want {
			b.Fatalf("Claim(%q, %q) = %q, %v; want %q", k, value, held, err, want)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(store.calls.Load()-calls)/float64(b.N), "store-calls/op")
}
