package faults

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// ms is a timestamp in milliseconds, for readable synthetic histories.
func ms(n int64) int64 { return n * int64(time.Millisecond) }

func TestCheckLegal(t *testing.T) {
	history := []Op{
		{Client: 0, Kind: Read, Value: 0, Call: ms(0), Return: ms(1)},
		{Client: 0, Kind: Write, Value: 1, Call: ms(2), Return: ms(10), Known: true},
		// Concurrent with the write: may see either value.
		{Client: 1, Kind: Read, Value: 0, Call: ms(3), Return: ms(4)},
		{Client: 2, Kind: Read, Value: 1, Call: ms(5), Return: ms(6)},
		// A holder that lost its lease: its older token was refused.
		{Client: 1, Kind: Write, Value: 2, Call: ms(5), Known: false},
		{Client: 2, Kind: Write, Value: 3, Call: ms(11), Return: ms(20), Known: true},
		{Client: 0, Kind: Read, Value: 3, Call: ms(21), Return: ms(22)},
		// An unknown write that did land, seen by a later read.
		{Client: 0, Kind: Write, Value: 4, Call: ms(23), Known: false},
		{Client: 1, Kind: Read, Value: 3, Call: ms(24), Return: ms(25)},
		{Client: 2, Kind: Read, Value: 4, Call: ms(30), Return: ms(31)},
		// An unknown write never seen by anyone.
		{Client: 1, Kind: Write, Value: 5, Call: ms(32), Known: false},
		{Client: 0, Kind: Read, Value: 4, Call: ms(40), Return: ms(41)},
	}
	r, err := Check(history, 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r.Result != porcupine.Ok || r.Ops != len(history) {
		t.Fatalf("Check(legal history) = %+v, want Ok over %d operations", r, len(history))
	}
}

func TestCheckIllegal(t *testing.T) {
	for name, history := range map[string][]Op{
		// The fault the proof is about: a plain Set of an older token after
		// a newer one was written and read.
		"older token written": {
			{Client: 0, Kind: Write, Value: 2, Call: ms(0), Return: ms(5), Known: true},
			{Client: 1, Kind: Read, Value: 2, Call: ms(6), Return: ms(7)},
			{Client: 2, Kind: Write, Value: 1, Call: ms(8), Return: ms(9), Known: true},
		},
		"older token read back": {
			{Client: 0, Kind: Write, Value: 1, Call: ms(0), Return: ms(5), Known: true},
			{Client: 1, Kind: Write, Value: 2, Call: ms(6), Known: false},
			{Client: 2, Kind: Read, Value: 2, Call: ms(10), Return: ms(11)},
			{Client: 0, Kind: Read, Value: 1, Call: ms(12), Return: ms(13)},
		},
		"token vanished": {
			{Client: 0, Kind: Write, Value: 1, Call: ms(0), Return: ms(5), Known: true},
			{Client: 1, Kind: Read, Value: 0, Call: ms(6), Return: ms(7)},
		},
		"same token written twice": {
			{Client: 0, Kind: Write, Value: 1, Call: ms(0), Return: ms(5), Known: true},
			{Client: 1, Kind: Write, Value: 1, Call: ms(6), Return: ms(7), Known: true},
		},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := Check(history, 3, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if r.Result != porcupine.Illegal {
				t.Fatalf("Check = %+v, want Illegal", r)
			}
			if fi, err := os.Stat(r.Visualization); err != nil || fi.Size() == 0 {
				t.Errorf("visualization %q: %v", r.Visualization, err)
			} else {
				os.Remove(r.Visualization)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	seq := map[string]int{"a": 1, "b": 2, "c": 3}
	records := []Record{
		{Client: 0, Op: "get", NotFound: true, Err: "not found", Call: 1, Return: 2},
		{Client: 0, Op: "get", Err: "connection refused", Call: 3, Return: 4},                                             // dropped
		{Client: 0, Op: "refresh", FetchCalled: true, Fetched: "a", Token: "a", Call: 5, Return: 6},                       // write known
		{Client: 1, Op: "refresh", Token: "a", Call: 5, Return: 7},                                                        // read
		{Client: 1, Op: "refresh", FetchCalled: true, Fetched: "b", Err: "lock lost", LockLost: true, Call: 8, Return: 9}, // write unknown
		{Client: 2, Op: "refresh", FetchCalled: true, FetchErr: "deadline", Err: "deadline", Call: 8, Return: 9},          // dropped
		{Client: 2, Op: "refresh", Err: "EOF", Call: 10, Return: 11},                                                      // dropped
		{Client: 2, Op: "get", Token: "c", Call: 12, Return: 13},
	}
	ops, err := History(records, func(tok string) int { return seq[tok] })
	if err != nil {
		t.Fatal(err)
	}
	want := []Op{
		{Client: 0, Kind: Read, Value: 0, Call: 1, Return: 2},
		{Client: 0, Kind: Write, Value: 1, Call: 5, Return: 6, Known: true},
		{Client: 1, Kind: Read, Value: 1, Call: 5, Return: 7},
		{Client: 1, Kind: Write, Value: 2, Call: 8, Return: 9, Known: false},
		{Client: 2, Kind: Read, Value: 3, Call: 12, Return: 13},
	}
	if !slices.Equal(ops, want) {
		t.Errorf("History =\n%+v\nwant\n%+v", ops, want)
	}
	if _, err := History([]Record{{Op: "get", Token: "forged"}}, func(tok string) int { return seq[tok] }); err == nil {
		t.Error("History accepted a token the server never minted")
	}
	if _, err := History([]Record{{Op: "refresh", FetchCalled: true, Fetched: "a", Token: "b"}}, func(tok string) int { return seq[tok] }); err == nil {
		t.Error("History accepted a successful refresh returning a token other than the one it fetched")
	}
}

func TestCountFetches(t *testing.T) {
	lease := time.Second
	records := []Record{
		// Stale "": one fetch, ideal.
		{Client: 0, Op: "refresh", Stale: "", FetchCalled: true, FetchStart: ms(1), Fetched: "a", Token: "a", Return: ms(2)},
		// Stale "a": a holder lost its lock, another fetched: explained.
		{Client: 0, Op: "refresh", Stale: "a", FetchCalled: true, FetchStart: ms(10), Fetched: "b", Err: "lock lost", LockLost: true, Return: ms(1100)},
		{Client: 1, Op: "refresh", Stale: "a", FetchCalled: true, FetchStart: ms(1050), Fetched: "c", Token: "c", Return: ms(1060)},
		// Stale "c": a fetch cut off by the lease, then one whose write
		// was lost, then the one that wrote.
		{Client: 0, Op: "refresh", Stale: "c", FetchCalled: true, FetchStart: ms(2000), FetchErr: "deadline", Err: "deadline", Return: ms(2500)},
		{Client: 1, Op: "refresh", Stale: "c", FetchCalled: true, FetchStart: ms(2600), Fetched: "d", Err: "EOF", Return: ms(2700)},
		{Client: 2, Op: "refresh", Stale: "c", FetchCalled: true, FetchStart: ms(2800), Fetched: "e", Token: "e", Return: ms(2900)},
		// Reads.
		{Client: 2, Op: "refresh", Stale: "a", Token: "c"},
		{Client: 2, Op: "get", Token: "e"},
	}
	st := CountFetches(records, lease)
	if st.Cycles != 3 || st.Fetches != 6 || st.Extras != 3 || st.LockLost != 1 || st.LeaseOut != 1 || st.WriteLost != 1 || len(st.Unexplained) != 0 {
		t.Errorf("CountFetches = %+v", st)
	}
	// A fetch after a holder that wrote its token, for the same stale
	// value: the store fetched although the token had been replaced.
	records = append(records, Record{Client: 3, Op: "refresh", Stale: "c", FetchCalled: true, FetchStart: ms(3000), Fetched: "f", Token: "f", Return: ms(3100)})
	if st := CountFetches(records, lease); len(st.Unexplained) != 1 {
		t.Errorf("CountFetches after a fetch that followed a successful write = %+v, want 1 unexplained", st)
	}
}
