// Package benchrow logs rows of results tables in the form scripts/bench
// collects into BENCHMARKS.md, for core's own benchmarks: the line format
// of conformance.ReportRow ("wechatconf-row: " and compact JSON), which
// core cannot import (conformance is another module, built on core).
package benchrow

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// Marker starts every row line; it is conformance.RowMarker.
const Marker = "wechatconf-row: "

// Col is one cell: its column heading and its value, formatted with units.
type Col struct{ Name, Value string }

// Row logs one row of table (see conformance.ReportRow).
func Row(tb testing.TB, table string, cols ...Col) {
	tb.Helper()
	r := struct {
		Table   string   `json:"table"`
		Columns []string `json:"columns"`
		Values  []string `json:"values"`
	}{Table: table}
	for _, c := range cols {
		r.Columns, r.Values = append(r.Columns, c.Name), append(r.Values, c.Value)
	}
	b, err := json.Marshal(r)
	if err != nil || table == "" || len(cols) == 0 {
		tb.Errorf("benchrow: table %q with %d columns: %v", table, len(cols), err)
		return
	}
	tb.Logf("%s%s", Marker, b)
}

// Note logs a note on table (see conformance.ReportNote).
func Note(tb testing.TB, table, note string) {
	tb.Helper()
	b, err := json.Marshal(struct {
		Table string `json:"table"`
		Note  string `json:"note"`
	}{table, note})
	if err != nil || table == "" || note == "" {
		tb.Errorf("benchrow: note on table %q: %v", table, err)
		return
	}
	tb.Logf("%s%s", Marker, b)
}

// TenantSizes are the sizes Tenants measures: issue 27's 1,000, 10,000
// and 100,000 tenants per process.
var TenantSizes = []int{1000, 10000, 100000}

// Tenants is the scale benchmark of a vendor platform (platform names it
// in the row): for each of TenantSizes, fill makes n tenants' durable
// state in a store and returns their ids and hot, the lookup + hot path of
// one tenant (its handle's access token) and keep, the value that holds
// the handles. Each tenant is warmed once, in shuffled order; then it
// reports per tenant the heap the handles cost (heap-B/tenant; the fill's
// own heap, the memory store's copy, apart: store-B/tenant, since a
// fleet's store is another process), the goroutines at rest beyond those
// before, and ns/op and allocs/op of hot over the shuffled ids — as
// b.ReportMetric figures and as a "Tenants per process" row.
func Tenants(b *testing.B, platform string, fill func(b *testing.B, n int) (ids []string, hot func(id string) error, keep any)) {
	for _, n := range TenantSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			runtime.GC()
			var m0, m1, m2, a0, a1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			goroutines := runtime.NumGoroutine()
			ids, hot, keep := fill(b, n)
			runtime.GC()
			runtime.ReadMemStats(&m1)
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
			for _, id := range ids {
				if err := hot(id); err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&m2)
			rest := runtime.NumGoroutine() - goroutines
			b.ReportAllocs()
			runtime.ReadMemStats(&a0)
			i := 0
			for b.Loop() {
				if err := hot(ids[i]); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(ids) {
					i = 0
				}
			}
			runtime.ReadMemStats(&a1)
			elapsed, loops := b.Elapsed(), b.N
			floor := Floor(ids)
			heap, store := float64(m2.HeapAlloc-m1.HeapAlloc)/float64(n), float64(m1.HeapAlloc-m0.HeapAlloc)/float64(n)
			Row(b, "Tenants per process",
				Col{Name: "platform", Value: platform},
				Col{Name: "tenants", Value: fmt.Sprint(n)},
				Col{Name: "heap per tenant (goal ≤ 1 KiB)", Value: fmt.Sprintf("%.0f B", heap)},
				Col{Name: "the memory store's copy per tenant", Value: fmt.Sprintf("%.0f B", store)},
				Col{Name: "goroutines at rest", Value: fmt.Sprint(rest)},
				Col{Name: "lookup + hot path, shuffled ids (goal < 100 ns)", Value: fmt.Sprintf("%.1f ns", float64(elapsed.Nanoseconds())/float64(loops))},
				Col{Name: "floor: a bare map lookup + clock read, same ids", Value: fmt.Sprintf("%.1f ns", floor)},
				Col{Name: "allocs/op (goal 0)", Value: fmt.Sprintf("%.2f", float64(a1.Mallocs-a0.Mallocs)/float64(b.N))})
			// After the loop: b.Loop's first call resets the metrics.
			b.ReportMetric(heap, "heap-B/tenant")
			b.ReportMetric(store, "store-B/tenant")
			b.ReportMetric(float64(rest), "goroutines-at-rest")
			b.ReportMetric(floor, "floor-ns/op")
			runtime.KeepAlive(keep)
		})
	}
}

// Floor returns this machine's floor under the lookup + hot path over ids
// (in their order): the ns per lookup of the least a handle registry can
// do — a plain Go map from id to a pointer, one atomic load of the token
// it holds and one monotonic clock read, as a Credential's hot path does —
// measured over 3 passes of ids. At 100,000 shuffled ids most of it is
// the machine's memory latency: the map's slot, the id's bytes and the
// token are each a cache miss.
func Floor(ids []string) float64 {
	type tok struct{ until time.Duration }
	type slot struct{ t atomic.Pointer[tok] }
	m := make(map[string]*slot, len(ids))
	for _, id := range ids {
		s := &slot{}
		s.t.Store(&tok{until: time.Hour})
		m[id] = s
	}
	base := time.Now()
	const passes = 3
	start := time.Now()
	miss := 0
	for range passes {
		for _, id := range ids {
			if t := m[id].t.Load(); time.Since(base) >= t.until {
				miss++
			}
		}
	}
	el := time.Since(start)
	if miss != 0 {
		panic("benchrow: Floor: a token expired")
	}
	return float64(el.Nanoseconds()) / float64(passes*len(ids))
}
