package containertest_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/core"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// TestWaitersBounded tests what waiting costs a process: K distinct keys
// are locked by the holders of one store, one caller per key waits on them
// through another store (one client), and the resources that store uses
// for waiting are counted on the server: its Pub/Sub connections, the
// wake channels subscribed under its prefix, and the store's own
// goroutines. None may grow with K. Once the holders release, every waiter
// gets the holder's token and nothing is left subscribed.
func TestWaitersBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("locks 500 keys")
	}
	const k = 500
	addr := standaloneAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix := fmt.Sprintf("waiters-%d:", time.Now().UnixNano())
	// A long lease and backoff: the waiters sit in their wait, so that
	// the count below sees all of them waiting at once.
	opts := []redisstore.Option{redisstore.WithPrefix(prefix), redisstore.WithLease(time.Minute), redisstore.WithWaitBackoff(15 * time.Second)}
	ca := newClient(addr)
	defer ca.Close()
	const name = "waiters-b"
	cb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, ClientName: name})
	defer cb.Close()
	a, b := mustNew(t, ca, opts...), mustNew(t, cb, opts...)

	keys := make([]string, k)
	holders := make([]holder, k)
	for i := range keys {
		keys[i] = uniqueKey(t, fmt.Sprint(i))
		holders[i] = startHolder(ctx, a, keys[i], "")
	}
	for _, h := range holders {
		<-h.entered
	}
	var wg sync.WaitGroup
	errs := make([]error, k)
	got := make([]core.Token, k)
	for i, key := range keys {
		wg.Go(func() {
			got[i], errs[i] = b.Refresh(ctx, key, "", func(context.Context) (core.Token, error) { return tok("waiter"), nil })
		})
	}
	waitFor(t, time.Minute, fmt.Sprintf("%d callers waiting", k), func() bool { return waiting() == k })

	pubsubConns, conns := clientsNamed(t, ca, name)
	channels, err := ca.PubSubChannels(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var numsub int64
	if len(channels) > 0 {
		n, err := ca.PubSubNumSub(ctx, channels...).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range n {
			numsub += c
		}
	}
	own := storeGoroutines()
	t.Logf("K=%d waiting keys: %d Pub/Sub connections (%d connections in all) of the waiting store's client, %d wake channels subscribed (%d subscriptions), %d goroutines of the store besides the waiters, %d goroutines in all",
		k, pubsubConns, conns, len(channels), numsub, own, runtime.NumGoroutine())
	if pubsubConns > 1 {
		t.Errorf("%d Pub/Sub connections for %d waiting keys, want at most 1", pubsubConns, k)
	}
	if numsub > 1 {
		t.Errorf("%d wake channel subscriptions for %d waiting keys, want at most 1", numsub, k)
	}
	if own > 1 {
		t.Errorf("%d goroutines of the store besides its waiters for %d waiting keys, want at most 1", own, k)
	}

	for i, h := range holders {
		h.release <- tok(fmt.Sprint("holder-", i))
	}
	for i, h := range holders {
		if err := <-h.done; err != nil {
			t.Errorf("holder of %q: %v", keys[i], err)
		}
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil || got[i].Value != fmt.Sprint("holder-", i) {
			t.Errorf("waiter on %q: %+v, %v; want the holder's token", keys[i], got[i], errs[i])
		}
	}
	waitFor(t, 10*time.Second, "no Pub/Sub connection of the waiting store", func() bool {
		n, _ := clientsNamed(t, ca, name)
		return n == 0
	})
	waitNoGoroutines(t, false)
}

// waiting returns how many goroutines are blocked waiting inside
// redisstore's Refresh.
func waiting() int {
	n := 0
	for _, g := range goroutines() {
		if strings.Contains(g, "[select") && strings.Contains(g, "store/redis.(*Store).refresh(") && !strings.Contains(g, "store/redis.(*Store).hold(") {
			n++
		}
	}
	return n
}

// storeGoroutines returns how many goroutines run the store's own code
// (its Pub/Sub receivers), not counting its callers.
func storeGoroutines() int {
	n := 0
	for _, g := range goroutines() {
		if strings.Contains(g, "store/redis.(*") && !strings.Contains(g, "store/redis.(*Store).") {
			n++
		}
	}
	return n
}

func goroutines() []string {
	buf := make([]byte, 16<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Split(string(buf), "\n\n")
}

// clientsNamed returns how many connections named name the server has,
// in Pub/Sub mode and in all.
func clientsNamed(t testing.TB, rdb redis.UniversalClient, name string) (pubsub, all int) {
	t.Helper()
	list, err := rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(list) {
		if !strings.Contains(line, " name="+name+" ") {
			continue
		}
		all++
		// Pub/Sub mode shows in the flags (P) and in sub= or psub=.
		for f := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(f, "flags="); ok && strings.Contains(v, "P") {
				pubsub++
			}
		}
	}
	return pubsub, all
}
