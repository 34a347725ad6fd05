package containertest_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	etcdstore "github.com/wechatconf/wechatconf/store/etcd"
)

// TestWaitersCost counts what waiting costs a process: K distinct keys are
// locked by the holders of one store, one caller per key waits on them
// through another store (one client), and the server's watchers, watch
// streams and leases are counted from its metrics. It logs the numbers; a
// waiter queues on the key's mutex with a lease and a watch of its own, so
// they grow with K (see "Waiting" in the package documentation).
func TestWaitersCost(t *testing.T) {
	if testing.Short() {
		t.Skip("locks 100 keys")
	}
	const k = 100
	node := containers.StartEtcd(t)
	eps := node.Endpoints
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newStore(t, eps, etcdstore.WithLease(time.Minute), etcdstore.WithPrefix(testPrefix))
	b := newStore(t, eps, etcdstore.WithLease(time.Minute), etcdstore.WithPrefix(testPrefix))
	before := etcdMetrics(t, eps[0])
	g0 := runtime.NumGoroutine()

	keys := make([]string, k)
	release := make(chan struct{})
	entered := make(chan struct{}, k)
	var holders sync.WaitGroup
	for i := range keys {
		keys[i] = fmt.Sprintf("waiters/%d/%d", time.Now().UnixNano(), i)
		holders.Go(func() {
			_, err := a.Refresh(ctx, keys[i], "", func(context.Context) (core.Token, error) {
				entered <- struct{}{}
				<-release
				return core.Token{Value: fmt.Sprint("holder-", i), ExpiresAt: time.Now().Add(time.Hour)}, nil
			})
			if err != nil {
				t.Errorf("holder of %q: %v", keys[i], err)
			}
		})
	}
	for range k {
		<-entered
	}
	held := etcdMetrics(t, eps[0])
	g1 := runtime.NumGoroutine()
	var wg sync.WaitGroup
	errs := make([]error, k)
	got := make([]core.Token, k)
	for i, key := range keys {
		wg.Go(func() {
			got[i], errs[i] = b.Refresh(ctx, key, "", func(context.Context) (core.Token, error) {
				return core.Token{Value: "waiter", ExpiresAt: time.Now().Add(time.Hour)}, nil
			})
		})
	}
	deadline := time.Now().Add(time.Minute)
	var waiting map[string]float64
	for {
		waiting = etcdMetrics(t, eps[0])
		if waiting["etcd_debugging_mvcc_watcher_total"]-held["etcd_debugging_mvcc_watcher_total"] >= 2*k || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	g2 := runtime.NumGoroutine()
	for _, m := range []string{"etcd_debugging_mvcc_watcher_total", "etcd_debugging_mvcc_watch_stream_total", "etcd_debugging_lease_granted_total"} {
		t.Logf("%s: %v before, %v with %d keys held, %v with a waiter on each (+%v for the waiters)", m, before[m], held[m], k, waiting[m], waiting[m]-held[m])
	}
	t.Logf("goroutines: %d before, %d with %d keys held (+%d), %d with a waiter on each (+%d, %.1f per waiter besides its own)", g0, g1, k, g1-g0, g2, g2-g1, float64(g2-g1-k)/k)
	close(release)
	holders.Wait()
	wg.Wait()
	for i := range keys {
		if errs[i] != nil || got[i].Value != fmt.Sprint("holder-", i) {
			t.Errorf("waiter on %q: %+v, %v; want the holder's token", keys[i], got[i], errs[i])
		}
	}
}

// etcdMetrics returns the unlabelled metrics etcd serves on its client URL.
func etcdMetrics(t testing.TB, ep string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(ep + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		var name string
		var v float64
		if _, err := fmt.Sscan(line, &name, &v); err == nil {
			m[name] = v
		}
	}
	return m
}
