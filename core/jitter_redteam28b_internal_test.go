package core

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Red-team test (issue 27) of jitterOf: "the same refresh point in every
// process that holds the token". The point is drawn in [0, j] with j =
// min(RefreshJitter, (left-RefreshAhead)/2), left being the token's life
// when the process adopts it: a process that adopts the token late (it
// started, or its copy was dropped, with less than RefreshAhead +
// 2×RefreshJitter left) draws from another range, so its point is
// another. Past the fleet's refresh + WeChat's 5-minute overlap it still
// serves the superseded token (every call rejected, a refresh each).
func TestJitterSamePointForALateAdopter(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	const ahead, jitter = 5 * time.Minute, 10 * time.Minute
	exp := t0.Add(2 * time.Hour)
	worst := time.Duration(0)
	for i := range 200 {
		key, value := fmt.Sprint("k/", i), fmt.Sprint("v", i)
		mk := func(at time.Time) *Credential {
			cr, err := NewCredential(CredentialConfig{Name: "t", Key: key, Now: func() time.Time { return at },
				Fetch:  func(context.Context, FetchRequest) (Token, error) { return Token{}, nil },
				Policy: Policy{RefreshAhead: ahead, RefreshJitter: jitter}})
			if err != nil {
				t.Fatal(err)
			}
			cr.adopt(Token{Value: value, ExpiresAt: exp}, false)
			return cr
		}
		early := mk(t0)                           // the fetcher
		point := func(cr *Credential) time.Time { // wall time of the refresh point
			return cr.base.Add(time.Duration(cr.cur.Load().refreshAt))
		}
		first := point(early)
		late := mk(exp.Add(-20 * time.Minute)) // a process started 1 h 40 min in
		if late.base.After(first) {
			continue // adopted after the fleet refreshed: it reads the new token
		}
		if d := point(late).Sub(first); d > worst {
			worst = d
		}
	}
	if worst >= 5*time.Minute {
		t.Errorf("a process that adopted the token 20 min before expiry refreshes up to %v after the fleet did, want < 5 min (WeChat's overlap)", worst)
	}
	if worst != 0 {
		t.Logf("worst lateness %v", worst)
	}
}

// With a hand-over (stable_token), the jitter never moves the refresh
// point before it: a normal fetch there hands the same token back, and
// past the grace each caller would make one.
func TestJitterStaysInsideTheHandover(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := now.Add(2 * time.Hour)
	for i := range 200 {
		cr, err := NewCredential(CredentialConfig{Name: "t", Key: fmt.Sprint("k/", i), Now: func() time.Time { return now },
			Fetch:  func(context.Context, FetchRequest) (Token, error) { return Token{}, nil },
			Policy: Policy{Handover: StableTokenHandover, RefreshJitter: 10 * time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		cr.adopt(Token{Value: fmt.Sprint("v", i), ExpiresAt: exp}, false)
		if before := time.Duration(int64(exp.Sub(cr.base)) - cr.cur.Load().refreshAt); before > StableTokenHandover-handoverSlack {
			t.Fatalf("refresh ahead starts %v before expiry, before the %v hand-over", before, StableTokenHandover)
		}
	}
}
