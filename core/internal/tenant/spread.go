package tenant

import (
	"math/rand/v2"
	"time"
)

// FirstTrust is the least part of its life a tenant's first token is
// trusted for (see firstExpiry): a quarter.
const FirstTrust = 4

// firstExpiry is when a tenant's first token — the one an authorization's
// code exchange brings, or one fetched for a record that holds none (the
// first fetch after a WeCom v2 authorization, whose exchange brings no
// token, or after an Import) — is taken to expire: at a random point
// between a quarter of its life and its end, from start (when its request
// was sent). Tenants authorized together (a launch, a campaign, a
// migration: 100,000 within an hour) would otherwise come due together
// at every 2-hour cycle for the rest of the day, since the refresh ahead's
// own jitter (Policy.RefreshJitter, 10 minutes on the vendor platforms,
// drawn by each process, the fleet refreshing at the earliest draw) moves
// them by minutes per cycle, not by the hour the burst lasted: drawn over
// three quarters of a life, the first refreshes — and so every later one —
// are spread over a whole cycle (issue 27's refresh spreading: see
// BenchmarkRefreshSpreading in package openplatform). It costs at most one
// fetch per authorization, three eighths of one on average; a token taken
// to expire early is never served past its real expiry. Later tokens are
// trusted for their whole life: a tenant idle past its token's expiry is
// fetched at its next call, which its traffic spreads.
func firstExpiry(start time.Time, life time.Duration) time.Time {
	least := life / FirstTrust
	if life <= 0 {
		return start.Add(life)
	}
	return start.Add(least + rand.N(life-least+1))
}
