package core

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// memClaims are a MemoryStore's claims: a map guarded by its own mutex,
// judged live by the local clock, and swept in bounded steps.
type memClaims struct {
	mu sync.Mutex
	m  map[string]memClaim
}

type memClaim struct {
	value string
	until time.Time
}

// claimSweepBatch is how many entries one Claim looks at for expired
// claims to delete: the map stays within the live claims plus what a
// burst leaves behind, and no call does unbounded work.
const claimSweepBatch = 16

func (c *memClaims) claim(now time.Time, key, value string, ttl time.Duration) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]memClaim)
	}
	c.sweep(now)
	if cur, ok := c.m[key]; ok && now.Before(cur.until) {
		return cur.value
	}
	c.m[key] = memClaim{value: value, until: now.Add(ttl)}
	return value
}

func (c *memClaims) swap(now time.Time, key, old, value string, ttl time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.m[key]
	if !ok || cur.value != old || !now.Before(cur.until) {
		return false
	}
	if value == "" {
		delete(c.m, key)
	} else {
		c.m[key] = memClaim{value: value, until: now.Add(ttl)}
	}
	return true
}

// sweep deletes the expired claims among at most claimSweepBatch entries
// (Go's map iteration starts at a random place, so successive sweeps
// cover the map).
func (c *memClaims) sweep(now time.Time) {
	n := 0
	for k, v := range c.m {
		if !now.Before(v.until) {
			delete(c.m, k)
		}
		if n++; n >= claimSweepBatch {
			return
		}
	}
}

// Claim implements ClaimStore with the local clock; claims live in memory
// apart from tokens.
func (m *MemoryStore) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	if err := CheckClaim(ctx, key, value, ttl, false); err != nil {
		return "", fmt.Errorf("memorystore: claim: %w", err)
	}
	return m.claims.claim(time.Now(), key, value, ttl), nil
}

// CompareAndSwapClaim implements ClaimStore.
func (m *MemoryStore) CompareAndSwapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	if err := CheckClaim(ctx, key, old, time.Millisecond, false); err != nil {
		return false, fmt.Errorf("memorystore: compare and swap claim: %w", err)
	}
	if err := CheckClaim(ctx, key, value, ttl, true); err != nil {
		return false, fmt.Errorf("memorystore: compare and swap claim: %w", err)
	}
	return m.claims.swap(time.Now(), key, old, value, ttl), nil
}
