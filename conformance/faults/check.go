package faults

import (
	"fmt"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kind is the kind of a history operation: a read or a write of the
// register "the token stored under the key".
type Kind uint8

// The kinds of Op.
const (
	Read  Kind = iota + 1 // a Get, or a Refresh that returned a token it did not fetch
	Write                 // a Refresh whose fetch ran and returned a token
)

// Op is one store operation of a history, with the token it read or wrote
// given by its issue order (wxtest.Server.TokenSeq: 1 is the first token the
// simulated WeChat minted, 0 is "no token").
type Op struct {
	Client int   // the worker that ran it
	Kind   Kind  // Read or Write
	Value  int   // issue order of the token read or written; 0 for a read of nothing
	Call   int64 // time.Now().UnixNano() when it was called
	Return int64 // when it returned; ignored for a write whose outcome is unknown
	// Known is false for a write whose outcome is unknown: its Refresh
	// returned an error after the fetch (core.ErrLockLost, a network
	// error), so the write may have been refused, or applied at any time
	// after Call, even after the caller gave up. Check lets it take effect
	// at any point after Call, or never.
	Known bool
}

// Model is the sequential specification the histories are checked against:
// one register holding the issue order of the stored token, initially 0
// (nothing stored), that only moves forward.
//
//   - A read must return the current state.
//   - A write of v whose outcome is known (Refresh returned nil) is legal
//     only if v > state; the state becomes v. A write of an older token,
//     or of the current one, is a violation: an older token won.
//   - A write of v whose outcome is unknown takes effect if v > state and is
//     a no-op otherwise (the store's fence refused it). Its return time is
//     the end of the history, so the checker may place it anywhere after its
//     call; placing it at the very end makes it harmless, which is how "it
//     may never have taken effect" is expressed in a deterministic model.
var Model = porcupine.Model{
	Init: func() any { return 0 },
	Step: func(state, input, output any) (bool, any) {
		s, op := state.(int), input.(Op)
		switch {
		case op.Kind == Read:
			return op.Value == s, s
		case op.Known:
			return op.Value > s, op.Value
		case op.Value > s:
			return true, op.Value
		default:
			return true, s
		}
	},
	Hash: func(state any) uint64 { return uint64(state.(int)) },
	DescribeOperation: func(input, output any) string {
		op := input.(Op)
		switch {
		case op.Kind == Read:
			return fmt.Sprintf("read → token #%d", op.Value)
		case op.Known:
			return fmt.Sprintf("write token #%d", op.Value)
		default:
			return fmt.Sprintf("write token #%d (outcome unknown)", op.Value)
		}
	},
	DescribeState: func(state any) string { return fmt.Sprintf("token #%d", state.(int)) },
}

// Result is the outcome of Check.
type Result struct {
	Ops    int                   // operations checked
	Result porcupine.CheckResult // porcupine.Ok, Illegal or Unknown (timed out)
	// Visualization is the file the porcupine visualization of an Illegal
	// history was written to ("" if the history was linearizable).
	Visualization string
	Elapsed       time.Duration
}

// Check runs porcupine over history with Model, giving every write whose
// outcome is unknown the end of the history as its return time, and stops
// after timeout (the result is then porcupine.Unknown). nClients is the
// number of workers: unknown writes are drawn as clients of their own
// (Client + nClients) in the visualization, which an Illegal result is
// written to, in a temporary file named in Result.Visualization.
func Check(history []Op, nClients int, timeout time.Duration) (Result, error) {
	var end int64
	for _, op := range history {
		end = max(end, op.Call, op.Return)
	}
	end++
	ops := make([]porcupine.Operation, 0, len(history))
	for _, op := range history {
		p := porcupine.Operation{ClientId: op.Client, Input: op, Call: op.Call, Return: op.Return}
		if op.Kind == Write && !op.Known {
			p.Return = end
			p.ClientId += nClients
		}
		ops = append(ops, p)
	}
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(Model, ops, timeout)
	r := Result{Ops: len(ops), Result: res, Elapsed: time.Since(start)}
	if res != porcupine.Illegal {
		return r, nil
	}
	f, err := os.CreateTemp("", "wechatconf-faults-*.html")
	if err != nil {
		return r, fmt.Errorf("writing the visualization: %w", err)
	}
	defer f.Close()
	if err := porcupine.Visualize(Model, info, f); err != nil {
		return r, fmt.Errorf("writing the visualization to %s: %w", f.Name(), err)
	}
	r.Visualization = f.Name()
	return r, nil
}
