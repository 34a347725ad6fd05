package core

import (
	"testing"
	"time"
)

// Red team 2 (issue 25 §2): a lease that ends mid-fetch. Holder A's fetch
// outlives its lease; B takes the lock and fetches too; both fetches are
// at WeChat at once. The token B stored (T3) is rejected later. A's fetch
// returned before B's (its record is older), but it was answered while B's
// was in flight, so WeChat may have issued A's token after B's — which is
// what killed T3 (a classic token dies 5 minutes after the next is
// issued). The fleet's own fetch may have done it: no outside fetch is
// named. Before, only records newer than T3's were looked at, so the
// fleet's own overlapping fetch was named an outside one. A fetch that
// ended before T3's was even asked for is no excuse: then it is named.
func TestOverlappingFleetFetchIsNoOutsideFetch(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)
	base := FetchRecord{At: t0.Add(-2 * time.Hour), Instance: "web-c/3", Seq: 1, Reason: ReasonExpiry, Token: "t1t1t1t1t1t1", Latency: 100 * time.Millisecond}
	rejection := func(at time.Time) FetchRecord {
		return FetchRecord{At: at, Instance: "web-c/3", Seq: 9, Reason: ReasonRejected, Token: "t4t4t4t4t4t4", Replaced: "t3t3t3t3t3t3",
			suspect: &suspicion{rejected: "t3t3t3t3t3t3", code: 40001, path: "/cgi-bin/message/custom/send"}}
	}
	for _, tc := range []struct {
		name  string
		aAt   time.Time // when A's fetch returned
		named bool
	}{
		{"A answered during B's fetch", t0.Add(-time.Second), false},
		{"A answered at the same instant", t0, false},
		{"A answered before B asked", t0.Add(-10 * time.Second), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := FetchRecord{At: tc.aAt, Instance: "web-a/1", Seq: 2, Reason: ReasonExpiry, Token: "t2t2t2t2t2t2", Replaced: "t1t1t1t1t1t1", Latency: 40 * time.Second}
			// B asked at t0-3s and was answered at t0.
			b := FetchRecord{At: t0, Instance: "web-b/2", Seq: 3, Reason: ReasonExpiry, Token: "t3t3t3t3t3t3", Replaced: "t1t1t1t1t1t1", Latency: 3 * time.Second}
			cur, _ := mergeLedger(Ledger{}, []FetchRecord{base, a, b}, 0)
			next, found := mergeLedger(cur, []FetchRecord{rejection(t0.Add(6 * time.Minute))}, 0)
			last, _ := next.Last()
			if got := last.Outside != nil; got != tc.named || len(found.outside) != map[bool]int{false: 0, true: 1}[tc.named] {
				t.Fatalf("outside named = %v (%+v), want %v", got, last.Outside, tc.named)
			}
		})
	}
}
