package containertest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wechatconf/wechatconf/core"
	pgstore "github.com/wechatconf/wechatconf/store/postgres"
)

// TestWaitersBounded counts what waiting costs a process: K distinct keys
// are locked by the holders of one store, one caller per key waits on them
// through another store, whose pool has maxConns connections, and the
// waiting store's sessions are counted on the server. A waiter holds one
// connection of the pool while it waits, so the sessions are bounded by
// the pool, not by K: the callers beyond it queue in the pool. Once the
// holders release, every waiter gets the holder's token.
func TestWaitersBounded(t *testing.T) {
	needServer(t)
	const k, maxConns = 40, 10
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newStore(t, testDSN, func(c *pgxpool.Config) { c.MaxConns = k + 2; withAppName("waiters-a")(c) }, pgstore.WithLease(time.Minute))
	b := newStore(t, testDSN, func(c *pgxpool.Config) { c.MaxConns = maxConns; withAppName("waiters-b")(c) }, pgstore.WithLease(time.Minute))
	monitor := newPool(t, testDSN, nil)

	keys := make([]string, k)
	release := make(chan struct{})
	entered := make(chan struct{}, k)
	var holders sync.WaitGroup
	for i := range keys {
		keys[i] = fmt.Sprintf("pgstore-test/waiters/%d/%d", time.Now().UnixNano(), i)
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
	eventually(t, time.Minute, "the waiting store's pool full of waiters", func() (bool, error) {
		n, err := waitingSessions(ctx, monitor, "waiters-b")
		return n == min(k, maxConns), err
	})
	var sessions int
	if err := monitor.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'waiters-b'`).Scan(&sessions); err != nil {
		t.Fatal(err)
	}
	waiting, _ := waitingSessions(ctx, monitor, "waiters-b")
	t.Logf("K=%d waiting keys, pool MaxConns=%d: %d sessions of the waiting store, %d of them waiting on an advisory lock; %d callers queue in the pool", k, maxConns, sessions, waiting, k-waiting)
	if sessions > maxConns {
		t.Errorf("%d sessions for %d waiting keys, want at most the pool's %d", sessions, k, maxConns)
	}
	close(release)
	holders.Wait()
	wg.Wait()
	for i := range keys {
		if errs[i] != nil || got[i].Value != fmt.Sprint("holder-", i) {
			t.Errorf("waiter on %q: %+v, %v; want the holder's token", keys[i], got[i], errs[i])
		}
	}
}
