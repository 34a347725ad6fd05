package faults

import (
	"fmt"
	"sort"
	"time"
)

// Record is what a worker writes down about one store call, with the raw
// token values (they never leave the worker's history file: no log line
// shows one). History turns records into Ops, FetchStats counts fetches.
type Record struct {
	Client int    `json:"client"`
	Op     string `json:"op"` // "get", "refresh", or "set" (only to sabotage the run)
	Call   int64  `json:"call"`
	Return int64  `json:"return"`
	// Token is the token Get or Refresh returned ("" on an error).
	Token    string `json:"token,omitempty"`
	NotFound bool   `json:"not_found,omitempty"` // Get found nothing
	Err      string `json:"err,omitempty"`       // the call's error, "" if none
	LockLost bool   `json:"lock_lost,omitempty"` // Err wraps core.ErrLockLost

	// Refresh only.
	Stale       string `json:"stale,omitempty"`
	FetchCalled bool   `json:"fetch_called,omitempty"`
	FetchStart  int64  `json:"fetch_start,omitempty"`
	FetchEnd    int64  `json:"fetch_end,omitempty"`
	Fetched     string `json:"fetched,omitempty"`   // the token the fetch got, "" if it failed
	FetchErr    string `json:"fetch_err,omitempty"` // why the fetch failed
}

// History turns records into the operations Check checks, with each token
// given by seq (its issue order; wxtest.Server.TokenSeq):
//
//   - a Get that returned a token reads it; one that found nothing reads 0;
//     a failed Get is dropped (it observed nothing);
//   - a Refresh whose fetch got a token writes it: with a known outcome if
//     Refresh returned nil, an unknown one otherwise (core.ErrLockLost, a
//     network error after the fetch);
//   - a Refresh that returned a token without fetching reads it; a failed
//     Refresh whose fetch did not get a token is dropped (nothing was
//     fetched, so nothing could be written);
//   - a Set (which only a sabotaged worker makes) writes its token, with a
//     known outcome if it returned nil.
//
// It reports an error for a record that breaks the store contract outright:
// a successful Refresh that returned a token other than the one it fetched,
// or a token seq does not know.
func History(records []Record, seq func(token string) int) ([]Op, error) {
	var ops []Op
	value := func(r Record, tok string) (int, error) {
		v := seq(tok)
		if v == 0 {
			return 0, fmt.Errorf("worker %d: %s at %d returned a token the simulated WeChat never minted", r.Client, r.Op, r.Call)
		}
		return v, nil
	}
	for _, r := range records {
		switch {
		case r.Op == "get" && r.Err == "":
			v, err := value(r, r.Token)
			if err != nil {
				return nil, err
			}
			ops = append(ops, Op{Client: r.Client, Kind: Read, Value: v, Call: r.Call, Return: r.Return})
		case r.Op == "get" && r.NotFound:
			ops = append(ops, Op{Client: r.Client, Kind: Read, Value: 0, Call: r.Call, Return: r.Return})
		case r.Op == "get":
		case r.Op == "set":
			v, err := value(r, r.Token)
			if err != nil {
				return nil, err
			}
			ops = append(ops, Op{Client: r.Client, Kind: Write, Value: v, Call: r.Call, Return: r.Return, Known: r.Err == ""})
		case r.Fetched != "":
			if r.Err == "" && r.Token != r.Fetched {
				return nil, fmt.Errorf("worker %d: refresh at %d fetched a token and returned nil, but returned another token", r.Client, r.Call)
			}
			v, err := value(r, r.Fetched)
			if err != nil {
				return nil, err
			}
			ops = append(ops, Op{Client: r.Client, Kind: Write, Value: v, Call: r.Call, Return: r.Return, Known: r.Err == ""})
		case r.Err == "":
			v, err := value(r, r.Token)
			if err != nil {
				return nil, err
			}
			ops = append(ops, Op{Client: r.Client, Kind: Read, Value: v, Call: r.Call, Return: r.Return})
		}
	}
	return ops, nil
}

// FetchStats counts the fetches of a run by refresh cycle: the fetches made
// by Refresh calls given the same stale value.
type FetchStats struct {
	Cycles  int // distinct stale values at least one fetch was made for: the ideal number of fetches
	Fetches int // fetches made (fetch functions called)
	Extras  int // Fetches - Cycles
	// Explained extras: a fetch that followed, for the same stale value,
	// the fetch of a holder that did not write, because
	LockLost  int // its write was refused with core.ErrLockLost;
	LeaseOut  int // its fetch and write outlasted the lease (a fetch cut off by the lease, a reply that came too late);
	WriteLost int // its write or its reply was lost to a store fault, and its lock was released or ran out.
	// Unexplained lists the extras that followed a holder whose Refresh
	// succeeded for the same stale value: the store fetched again although
	// the token had been replaced. Must be empty.
	Unexplained []string
}

// CountFetches computes FetchStats over records; lease is the store's
// lease.
func CountFetches(records []Record, lease time.Duration) FetchStats {
	byStale := map[string][]Record{}
	var st FetchStats
	for _, r := range records {
		if r.Op == "refresh" && r.FetchCalled {
			byStale[r.Stale] = append(byStale[r.Stale], r)
			st.Fetches++
		}
	}
	st.Cycles = len(byStale)
	st.Extras = st.Fetches - st.Cycles
	for _, rs := range byStale {
		sort.Slice(rs, func(i, j int) bool { return rs[i].FetchStart < rs[j].FetchStart })
		for i, r := range rs[:len(rs)-1] {
			next := rs[i+1]
			switch {
			case r.Err == "" && r.Fetched != "":
				st.Unexplained = append(st.Unexplained, fmt.Sprintf(
					"worker %d fetched at %d after worker %d's refresh of the same stale token fetched and wrote at %d..%d",
					next.Client, next.FetchStart, r.Client, r.FetchStart, r.Return))
			case r.LockLost:
				st.LockLost++
			case r.Fetched == "" || time.Duration(r.Return-r.FetchStart) >= lease:
				// The simulated WeChat answers every call: a fetch that
				// failed was cut off by its context, which the lease bounds.
				st.LeaseOut++
			default:
				st.WriteLost++
			}
		}
	}
	return st
}
