package core

import (
	"context"
	"fmt"
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
	for i := range 1000 {
		cr, err := NewCredential(CredentialConfig{Name: "t", Key: fmt.Sprint("k/", i), Now: clock,
			Fetch:  func(context.Context, FetchRequest) (Token, error) { return Token{}, nil },
			Policy: Policy{RefreshAhead: ahead, RefreshJitter: jitter}})
		if err != nil {
			t.Fatal(err)
		}
		cr.adopt(Token{Value: fmt.Sprint("v", i), ExpiresAt: exp}, false)
		again, _ := NewCredential(CredentialConfig{Name: "t", Key: fmt.Sprint("k/", i), Now: clock,
			Fetch:  func(context.Context, FetchRequest) (Token, error) { return Token{}, nil },
			Policy: Policy{RefreshAhead: ahead, RefreshJitter: jitter}})
		again.adopt(Token{Value: fmt.Sprint("v", i), ExpiresAt: exp}, false) // another process, the same token
		if a, b := int64(exp.Sub(cr.base))-cr.cur.Load().refreshAt, int64(exp.Sub(again.base))-again.cur.Load().refreshAt; a != b {
			t.Fatalf("two processes holding one token start refreshing it %v and %v before expiry, want the same point", time.Duration(a), time.Duration(b))
		}
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

// BenchmarkRefreshSpread measures how refreshes ahead are spread when
// 10,000 tokens come due within one second or within 5 minutes (fetched
// together, say, by a vendor's fleet after a restart): the largest number
// of refreshes that start in any one second, without jitter and with the
// Open Platform's default RefreshJitter of 10 minutes.
func BenchmarkRefreshSpread(b *testing.B) {
	for _, c := range []struct{ due, jitter time.Duration }{{time.Second, 0}, {time.Second, 10 * time.Minute}, {5 * time.Minute, 0}, {5 * time.Minute, 10 * time.Minute}} {
		due, jitter := c.due, c.jitter
		b.Run("due="+due.String()+"/jitter="+jitter.String(), func(b *testing.B) {
			const n = 10000
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			var worst int
			for b.Loop() {
				perSecond := map[int64]int{}
				for i := range n {
					cr, err := NewCredential(CredentialConfig{Name: "t", Key: fmt.Sprint("k/", i), Now: clock,
						Fetch:  func(context.Context, FetchRequest) (Token, error) { return Token{}, nil },
						Policy: Policy{RefreshJitter: jitter}})
					if err != nil {
						b.Fatal(err)
					}
					// Due within due: expiries spread evenly over it.
					cr.adopt(Token{Value: fmt.Sprint("v", i), ExpiresAt: now.Add(2*time.Hour + time.Duration(i)*due/n)}, false)
					perSecond[cr.cur.Load().refreshAt/int64(time.Second)]++
				}
				worst = 0
				for _, c := range perSecond {
					worst = max(worst, c)
				}
			}
			b.ReportMetric(float64(worst), "max-refreshes/s")
		})
	}
}
