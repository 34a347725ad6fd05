package core

import (
	"context"
	"time"
)

// Hooks into the write-back for the tests of package core_test.

// SetWriteBackBackoff sets the bounds of cr's background write-back
// back-off; call it before cr is used.
// It sets them for every Credential of cr's kind.
func SetWriteBackBackoff(cr *Credential, min, max time.Duration) { cr.wbMin, cr.wbMax = min, max }

// PendingWrite returns the token cr holds for the write-back (the token
// served from it) and whether it holds one.
func PendingWrite(cr *Credential) (Token, bool) {
	if p := cr.pendingNow(); p != nil {
		return p.served, true
	}
	return Token{}, false
}

// WriteBackIdle waits until no background write-back of cr runs, or ctx
// ends (its error).
func WriteBackIdle(ctx context.Context, cr *Credential) error {
	for {
		var running bool
		var done chan struct{}
		cr.mu.Lock()
		if c := cr.cold; c != nil {
			running, done = c.wbRunning, c.wbDone
		}
		cr.mu.Unlock()
		if !running {
			return nil
		}
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// SetLedgerBackoff sets the bounds of cr's ledger writer's back-off; call
// it before cr is used.
func SetLedgerBackoff(cr *Credential, min, max time.Duration) {
	if cr.ledger != nil {
		w := cr.writer()
		w.min, w.max = min, max
	}
}

// EncodeLedgerForTest encodes l as the ledger writer stores it.
func EncodeLedgerForTest(l Ledger) string { return encodeLedger(l) }

// DecodeLedgerForTest decodes a stored ledger.
func DecodeLedgerForTest(v string) (Ledger, error) { return decodeLedger(v) }

// MergeLedgerForTest merges records into l as the writer does.
func MergeLedgerForTest(l Ledger, records []FetchRecord) Ledger {
	next, _ := mergeLedger(l, records, 0)
	return next
}
