package core

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Red-team tests of the ledger's merge (package-internal: they need
// suspicions and mergeFound).

func ledgerRecords(n int, start time.Time) []FetchRecord {
	var out []FetchRecord
	for i := range n {
		out = append(out, FetchRecord{
			At: start.Add(time.Duration(i) * time.Minute).UTC(), Instance: "web-a/1", Seq: uint64(i + 1),
			Reason: ReasonExpiry, Token: fmt.Sprintf("%012x", i+1), Replaced: fmt.Sprintf("%012x", i),
		})
	}
	return out
}

// tests that a stored ledger, whatever it holds (hostile, hand-edited, a
// bug's), is written back within MaxLedgerBytes, with no negative count,
// its records in time order and the newest kept.
func TestLedgerHostileStoredLedgerIsBounded(t *testing.T) {
	at := time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)
	rec := ledgerRecords(1, at.Add(time.Hour))
	rec[0].Seq = 999
	manyDays := func() Ledger {
		var l Ledger
		for i := range 10000 {
			l.Days = append(l.Days, LedgerDay{Day: beijingDay(at.AddDate(0, 0, -i)), Fetches: 1})
		}
		return l
	}
	hugeInstance := Ledger{Entries: []FetchRecord{{At: at, Instance: strings.Repeat("x", 100000), Seq: 1, Token: "0123456789ab"}}}
	negative := Ledger{Days: []LedgerDay{{Day: beijingDay(at), Fetches: -50, Forced: -3, Outside: -7}}, Lost: -9}
	var reversed Ledger
	rs := ledgerRecords(LedgerEntries+4, at.Add(-24*time.Hour))
	for i := len(rs) - 1; i >= 0; i-- {
		reversed.Entries = append(reversed.Entries, rs[i])
	}
	var tenThousand Ledger
	tenThousand.Entries = ledgerRecords(10000, at.Add(-30*24*time.Hour))
	cases := map[string]Ledger{
		"10,000 days": manyDays(), "a 100 KB instance": hugeInstance, "negative counts": negative,
		"entries newest first": reversed, "10,000 entries": tenThousand,
	}
	for name, stored := range cases {
		t.Run(name, func(t *testing.T) {
			raw, err := json.Marshal(storedLedger{V: ledgerFormat, Ledger: stored})
			if err != nil {
				t.Fatal(err)
			}
			cur, err := decodeLedger(string(raw))
			if err != nil {
				return // replaced by a fresh ledger: bounded
			}
			next, _ := mergeLedger(cur, rec, 0)
			enc := encodeLedger(next)
			if len(enc) > MaxLedgerBytes {
				t.Errorf("wrote a ledger of %d bytes, more than MaxLedgerBytes (%d)", len(enc), MaxLedgerBytes)
			}
			back, err := decodeLedger(enc)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range back.Days {
				if d.Fetches < 0 || d.Forced < 0 || d.Outside < 0 {
					t.Errorf("day %+v holds a negative count", d)
				}
			}
			if back.Lost < 0 {
				t.Errorf("lost %d", back.Lost)
			}
			for i := 1; i < len(back.Entries); i++ {
				if back.Entries[i].At.Before(back.Entries[i-1].At) {
					t.Fatalf("entries out of time order at %d: %v after %v", i, back.Entries[i].At, back.Entries[i-1].At)
				}
			}
			if last, ok := back.Last(); !ok || last.Seq != 999 {
				t.Errorf("the newest record (this fetch) was not kept: last %+v", last)
			}
			if n := len(back.Days); n > LedgerDays {
				t.Errorf("%d days kept, want at most %d", n, LedgerDays)
			}
		})
	}
}

// tests that a fleet fetch that replaced the rejected token is evidence
// the fleet did it, whatever the clocks say: an instance whose clock runs
// two seconds ahead replaced T1 (it fetched while its store was down: an
// outage fetch, recorded with Replaced = T1), and another instance then
// saw T1 rejected. That is the fleet's own doing, not an outside fetch.
func TestLedgerOutsideFetchClockSkew(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)
	t1, t2, t3 := "0000000000t1", "0000000000t2", "0000000000t3"
	entries := []FetchRecord{
		{At: t0, Instance: "a/1", Seq: 1, Reason: ReasonExpiry, Token: t1},
		// c's clock is 2 s ahead: its fetch, made 1 s before the
		// rejection, reads 1 s after it.
		{At: t0.Add(10*time.Minute + 2*time.Second), Instance: "c/1", Seq: 1, Reason: ReasonOutage, Token: t2, Replaced: t1},
	}
	r := FetchRecord{At: t0.Add(10*time.Minute + time.Second), Instance: "a/1", Seq: 2, Reason: ReasonRejected, Token: t3, Replaced: t1,
		suspect: &suspicion{rejected: t1, code: 40001}}
	if o := outsideFetch(entries, r, r.suspect); o != nil {
		t.Fatalf("named an outside fetch %+v although the ledger holds the fleet's fetch that replaced %s", o, t1)
	}
}
