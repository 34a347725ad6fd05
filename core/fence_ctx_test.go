package core_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// TestRefreshWriteOutlivingCtxKeepsTheLock tests that a Refresh whose
// caller's ctx ends while its write is still running returns ctx's error
// at once but keeps the key's lock until that write has returned: the next
// holder then reads what it wrote, and it never lands over the next
// holder's write (rule 3: the write is made only while the lock is held).
// FuncStore (Get + Set) shows it with a Set held on a gate; MemoryStore runs
// the same code (keyLocks.refresh), where the write is a goroutine that may
// not have been scheduled yet when ctx ends — the Open Platform permutation
// red-team test saw an authorization, reported not written, land over the
// withdrawal written after it.
//
// It runs in a synctest bubble: synctest.Wait says when every goroutine is
// blocked, so "the second Refresh waits for the lock" is observed, not
// guessed from a pause.
func TestRefreshWriteOutlivingCtxKeepsTheLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		stored := map[string]core.Token{}
		var sets atomic.Int32
		entered, gate := make(chan struct{}), make(chan struct{})
		fs, err := core.NewFuncStore(core.StoreFuncs{
			Get: func(_ context.Context, key string) (core.Token, error) {
				mu.Lock()
				defer mu.Unlock()
				return stored[key], nil
			},
			Set: func(_ context.Context, key string, t core.Token) error {
				if sets.Add(1) == 1 { // the first write is slow and ignores ctx
					close(entered)
					<-gate
				}
				mu.Lock()
				defer mu.Unlock()
				stored[key] = t
				return nil
			},
		}, core.WithLease(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		fetch := func(v string) core.FetchFunc {
			return func(context.Context) (core.Token, error) {
				return core.Token{Value: v, ExpiresAt: time.Now().Add(time.Hour)}, nil
			}
		}
		type result struct {
			tok core.Token
			err error
		}
		first, second := make(chan result, 1), make(chan result, 1)
		ctx1, cancel1 := context.WithCancel(t.Context())
		go func() { tok, err := fs.Refresh(ctx1, "k", "", fetch("A")); first <- result{tok, err} }()
		<-entered
		cancel1() // the caller gives up while its write runs
		synctest.Wait()
		var r1 result
		returned := false
		select {
		case r1 = <-first:
			returned = true
			if !errors.Is(r1.err, context.Canceled) {
				t.Errorf("Refresh(stale=\"\") whose ctx ended during its write = %q, %v; want an error wrapping context.Canceled", r1.tok.Value, r1.err)
			}
		default:
			t.Errorf("Refresh(stale=\"\") did not return when its ctx ended during its write")
		}

		go func() { tok, err := fs.Refresh(t.Context(), "k", "", fetch("B")); second <- result{tok, err} }()
		synctest.Wait()
		select {
		case r := <-second:
			t.Errorf("a second Refresh(stale=\"\") took the lock while the first one's write was still running (returned %q, %v)", r.tok.Value, r.err)
			second <- r
		default: // it waits for the lock
		}
		close(gate)
		r2 := <-second
		if !returned {
			<-first
		}
		synctest.Wait() // a write left running lands
		got, err := fs.Get(t.Context(), "k")
		if err != nil || r2.err != nil || got.Value != r2.tok.Value {
			t.Errorf("after the second Refresh returned %q (%v), the store holds %q (%v): the first write, reported failed, landed over it", r2.tok.Value, r2.err, got.Value, err)
		}
	})
}
