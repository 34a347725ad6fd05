package conformance_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/core"
)

// testLease is the lease of the stores tested here: short, so that the lease
// checks are quick, yet well above the prompt-wake check's 200ms fetch.
const testLease = 500 * time.Millisecond

// memoryHarness tests one core.MemoryStore. Its lock and its tokens live in
// the value, so NewStore returns that same value every time: two
// MemoryStores share nothing, like two processes with no common backend.
func memoryHarness() conformance.Harness {
	s := core.NewMemoryStore(core.WithLease(testLease))
	return conformance.Harness{
		NewStore:      func(testing.TB) core.TokenStore { return s },
		Lease:         testLease,
		SingleProcess: "core.MemoryStore keeps its tokens in process memory",
	}
}

// funcHarness tests one core.FuncStore in its Set form, over a map. Its
// refresh lock is per FuncStore value (an in-process lock around the user's
// Get and Set), so two values over the same map would not exclude each
// other: NewStore returns the same value every time, as a program that
// shares tokens between goroutines must.
func funcHarness(t testing.TB) conformance.Harness {
	m := &mapFuncs{tokens: map[string]core.Token{}}
	s, err := core.NewFuncStore(core.StoreFuncs{Get: m.get, Set: m.set}, core.WithLease(testLease))
	if err != nil {
		t.Fatalf("NewFuncStore: %v", err)
	}
	return conformance.Harness{
		NewStore:      func(testing.TB) core.TokenStore { return s },
		Lease:         testLease,
		KeyPrefix:     "wechatconf:conformance:",
		SingleProcess: "core.FuncStore's lock is in process memory (and these functions keep tokens in a map)",
	}
}

// mapFuncs are a user's get and set functions over a map.
type mapFuncs struct {
	mu     sync.Mutex
	tokens map[string]core.Token
}

func (m *mapFuncs) get(_ context.Context, key string) (core.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tokens[key], nil // a zero Token means "nothing stored"
}

func (m *mapFuncs) set(_ context.Context, key string, t core.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[key] = t
	return nil
}

func TestMemoryStore(t *testing.T) { conformance.Run(t, memoryHarness()) }

func TestFuncStore(t *testing.T) { conformance.Run(t, funcHarness(t)) }

func BenchmarkMemoryStore(b *testing.B) { conformance.Benchmark(b, memoryHarness()) }

func BenchmarkFuncStore(b *testing.B) { conformance.Benchmark(b, funcHarness(b)) }
