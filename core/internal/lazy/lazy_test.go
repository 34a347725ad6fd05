package lazy_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wechatconf/wechatconf/core/internal/lazy"
)

func TestValueIsMadeOnceWhoeverAsks(t *testing.T) {
	var v lazy.Value[int]
	if v.Load() != nil {
		t.Fatal("an empty Value loads a value")
	}
	var made atomic.Int32
	var wg sync.WaitGroup
	got := make([]*int, 8)
	for i := range got {
		wg.Go(func() { got[i] = v.Get(func() *int { made.Add(1); n := 42; return &n }) })
	}
	wg.Wait()
	for _, p := range got {
		if p != got[0] || *p != 42 {
			t.Fatal("Get returned different values")
		}
	}
	if made.Load() != 1 || v.Load() != got[0] {
		t.Fatalf("made %d times, Load %v", made.Load(), v.Load())
	}
}
