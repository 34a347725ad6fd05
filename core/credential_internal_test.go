package core

import (
	"context"
	"testing"
	"time"
)

// RefreshJitter spreads the refresh-ahead deadlines of tokens that expire
// together over the jitter window, and never past RefreshAhead or before
// half the remaining life.
func TestRefreshJitterSpreadsDeadlines(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	exp := now.Add(2 * time.Hour)
	const ahead, jitter = 5 * time.Minute, 10 * time.Minute
	seconds := map[int64]bool{}
	for range 1000 {
		cr, err := NewCredential(CredentialConfig{Name: "t", Key: "k", Now: clock,
			Fetch:  func(context.Context, FetchRequest) (Token, error) { return Token{}, nil },
			Policy: Policy{RefreshAhead: ahead, RefreshJitter: jitter}})
		if err != nil {
			t.Fatal(err)
		}
		cr.adopt(Token{Value: "v", ExpiresAt: exp}, false)
		before := time.Duration(int64(exp.Sub(cr.base)) - cr.cur.Load().refreshAt) // how long before expiry
		if before < ahead || before > ahead+jitter {
			t.Fatalf("refresh ahead starts %v before expiry, want within [%v, %v]", before, ahead, ahead+jitter)
		}
		seconds[int64(before/time.Second)] = true
	}
	if len(seconds) < 300 {
		t.Errorf("1000 tokens expiring together start refreshing in %d distinct seconds, want them spread over the %v jitter", len(seconds), jitter)
	}
}
