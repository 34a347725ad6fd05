package openplatform_test

// Red team 2 (issue 25 §6): 10,000 authorizers that never fetch cost no
// ledger goroutine, and the ledger adds no allocation to a handle.

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
)

// 10,000 authorizer handles whose tokens are adopted from the store (no
// fetch, so no ledger record) leave no goroutine behind, and a handle costs the
// same allocations with the ledger on as with it off: the ledger's writer
// and its goroutine are made at the first record only.
func TestTenThousandIdleAuthorizersHoldNoLedger(t *testing.T) {
	const n = 10000
	build := func(noLedger bool) (*openplatform.Component, []string) {
		store := core.NewMemoryStore()
		c, err := openplatform.New(openplatform.Config{AppID: componentAppID, AppSecret: core.NewSecret(componentSecret),
			Store: store, MaxAuthorizers: n, NoLedger: noLedger})
		if err != nil {
			t.Fatal(err)
		}
		exp := time.Now().Add(2 * time.Hour)
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("wx%014d", i)
			if err := store.Set(context.Background(), c.AuthorizationKey(ids[i]), openplatform.StoredRecord(fmt.Sprintf("refreshtoken@@@%d", i), fmt.Sprintf("authorizer-token-%d", i), exp)); err != nil {
				t.Fatal(err)
			}
		}
		return c, ids
	}
	c, ids := build(false)
	if _, err := c.Authorizer(ids[0]).AccessToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := ourGoroutines()
	for _, id := range ids {
		if _, err := c.Authorizer(id).AccessToken(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// A flight's goroutine may still be returning after its caller got the
	// token: a few are allowed, one per authorizer (a ledger writer, a
	// refresh loop) is not.
	if after, stacks := ourGoroutineStacks(); after > before+4 {
		t.Errorf("goroutines running this module's code %d -> %d after 10,000 authorizers adopted their tokens: want none more\n%.4000s", before, after, stacks)
	}
	// A handle's construction, ledger on and off.
	perHandle := func(noLedger bool) float64 {
		c, _ := build(noLedger)
		fresh := make([]string, 202) // AllocsPerRun's warm-up call and 200 runs
		for i := range fresh {
			fresh[i] = fmt.Sprintf("wy%014d", i)
		}
		i := 0
		return testing.AllocsPerRun(200, func() {
			c.Authorizer(fresh[i])
			i++
		})
	}
	on, off := perHandle(false), perHandle(true)
	if on > off {
		t.Errorf("a new authorizer handle allocates %.0f times with the ledger on, %.0f with it off: the ledger costs an idle authorizer", on, off)
	}
}

// ourGoroutines counts the goroutines running this module's code outside
// a test (the runtime's own come and go: runtime.NumGoroutine is noisy).
func ourGoroutines() int { n, _ := ourGoroutineStacks(); return n }

func ourGoroutineStacks() (int, string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n, all := 0, ""
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/wechatconf/wechatconf/core") && !strings.Contains(g, "testing.tRunner") {
			n++
			all += g + "\n\n"
		}
	}
	return n, all
}
