package containertest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	etcdstore "github.com/wechatconf/wechatconf/store/etcd"
)

type result struct {
	tok core.Token
	err error
}

func token(v string) core.Token {
	return core.Token{Value: v, ExpiresAt: time.Now().Add(2 * time.Hour).Truncate(time.Millisecond)}
}

// testPausedHolder tests the fence when the holder's etcd member is frozen:
// a holder on holderEPs takes the lock and enters a fetch that ignores its
// ctx; the member behind it (c) is paused past the lease. fetch's ctx must
// end with the lease although etcd cannot be reached. A store on otherEPs
// then takes the lock over and writes a newer token: while c is still
// paused when takeoverWhilePaused (a cluster member: the others have
// quorum), after it is unpaused otherwise (a single node: nobody can write
// while it is frozen). When the holder's fetch finally returns, its write
// must be refused with core.ErrLockLost, and the newer token survive. No
// goroutine of the store or the client may be left once the clients are
// closed.
func testPausedHolder(t *testing.T, c testcontainers.Container, holderEPs, otherEPs []string, takeoverWhilePaused bool) {
	before := etcdGoroutines()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix := uniquePrefix(t)
	holderCli, otherCli := newClient(t, holderEPs), newClient(t, otherEPs)
	a, _ := etcdstore.New(holderCli, etcdstore.WithPrefix(prefix), etcdstore.WithLease(testLease))
	b, _ := etcdstore.New(otherCli, etcdstore.WithPrefix(prefix), etcdstore.WithLease(testLease))
	const key = "paused"
	old := token("old")
	if err := a.Set(ctx, key, old); err != nil {
		t.Fatal(err)
	}
	checkCensus(t)

	entered := make(chan context.Context, 1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseFetch := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseFetch()
	late := token("late")
	holderDone := make(chan result, 1)
	go func() {
		tok, err := a.Refresh(ctx, key, old.Value, func(fctx context.Context) (core.Token, error) {
			entered <- fctx
			<-release // a fetch that ignores its ctx and returns long after the lease
			return late, nil
		})
		holderDone <- result{tok, err}
	}()
	var fctx context.Context
	select {
	case fctx = <-entered:
	case r := <-holderDone:
		t.Fatalf("holder Refresh(%q, stale=%q) = %+v, %v without fetching", key, old.Value, r.tok, r.err)
	case <-time.After(30 * time.Second):
		t.Fatalf("holder Refresh(%q) did not reach fetch within 30s", key)
	}
	inFetch := time.Now()

	containers.Pause(t, c)
	paused := true
	unpause := func() {
		if paused {
			paused = false
			containers.Unpause(t, c)
		}
	}
	defer unpause()

	// The lease bounds fetch on the holder's own clock: its ctx has a
	// deadline no later than the lease from the moment fetch began (the
	// lock was taken before), and it ends even though etcd cannot be
	// reached. The deadline is checked as a value; the wait for the ctx to
	// end only has a generous limit, since a ctx with a deadline always ends.
	if d, ok := fctx.Deadline(); !ok {
		t.Errorf("holder's fetch ctx has no deadline; want one within the %v lease", testLease)
	} else if d.After(inFetch.Add(testLease)) {
		t.Errorf("holder's fetch ctx deadline is %v after fetch began, want at most the %v lease", d.Sub(inFetch), testLease)
	}
	select {
	case <-fctx.Done():
		t.Logf("holder's fetch ctx ended %v into fetch (lease %v), etcd member paused", time.Since(inFetch).Round(time.Millisecond), testLease)
		if !errors.Is(fctx.Err(), context.DeadlineExceeded) {
			t.Errorf("holder's fetch ctx: %v, want context.DeadlineExceeded (the lease)", fctx.Err())
		}
	case <-ctx.Done():
		t.Fatalf("holder's fetch ctx still not done %v into fetch with its member paused; want it to end with the %v lease", time.Since(inFetch).Round(time.Millisecond), testLease)
	}

	if !takeoverWhilePaused {
		unpause()
	}
	newer := token("newer")
	fetches := 0
	bctx, bcancel := context.WithTimeout(ctx, 30*time.Second)
	defer bcancel()
	start := time.Now()
	got, err := b.Refresh(bctx, key, old.Value, func(context.Context) (core.Token, error) { fetches++; return newer, nil })
	if err != nil || fetches != 1 || got.Value != newer.Value {
		t.Fatalf("Refresh(%q, stale=%q) on another store after the holder's lease ran out = %+v, %v, %d fetches; want %q, 1 fetch", key, old.Value, got, err, fetches, newer.Value)
	}
	t.Logf("lock taken over and newer token written %v after the other store asked, %v after the holder entered fetch", time.Since(start).Round(time.Millisecond), time.Since(inFetch).Round(time.Millisecond))
	unpause()

	releaseFetch()
	var r result
	select {
	case r = <-holderDone:
	case <-time.After(30 * time.Second):
		t.Fatalf("holder Refresh(%q) did not return within 30s of its fetch returning", key)
	}
	if !errors.Is(r.err, core.ErrLockLost) {
		t.Errorf("holder Refresh(%q, stale=%q) whose member was paused past the lease = %+v, %v; want an error wrapping core.ErrLockLost", key, old.Value, r.tok, r.err)
	} else {
		t.Logf("holder: %v", r.err)
	}
	for name, s := range map[string]*etcdstore.Store{"holder's": a, "other": b} {
		if got, err := s.Get(ctx, key); err != nil || got.Value != newer.Value {
			t.Errorf("Get(%q) through the %s store = %+v, %v; want the newer %q (the late holder must not overwrite it)", key, name, got, err, newer.Value)
		}
	}

	holderCli.Close()
	otherCli.Close()
	checkGoroutines(t, before)
}

// testStoppedMemberMidHerd tests that losing the leader while a herd waits
// on the lock (clients with every endpoint) still makes exactly one fetch,
// and that every caller gets that token. The holder's fetch lasts until the
// member is stopped; the lease is long (30s) so that the check is about the
// member's loss, not about the lease: stopping a member can take Docker's
// whole 10s grace period on a loaded machine, and the holder writes only
// after that.
func testStoppedMemberMidHerd(t *testing.T, cl *containers.EtcdCluster) {
	const (
		stores   = 4
		perStore = 10
		lease    = 30 * time.Second
	)
	before := etcdGoroutines()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix := uniquePrefix(t)
	var clis []*clientv3.Client
	var ss []*etcdstore.Store
	for range stores {
		cli := newClient(t, cl.Endpoints)
		s, _ := etcdstore.New(cli, etcdstore.WithPrefix(prefix), etcdstore.WithLease(lease))
		clis, ss = append(clis, cli), append(ss, s)
	}
	const key = "herd"
	old := token("old")
	if err := ss[0].Set(ctx, key, old); err != nil {
		t.Fatal(err)
	}
	checkCensus(t)

	var (
		mu      sync.Mutex
		fetches int
	)
	entered, stopped := make(chan struct{}), make(chan struct{})
	fetch := func(fctx context.Context) (core.Token, error) {
		mu.Lock()
		fetches++
		n := fetches
		mu.Unlock()
		if n == 1 {
			close(entered)
		}
		select {
		case <-stopped:
		case <-fctx.Done():
			return core.Token{}, fctx.Err()
		}
		return token(fmt.Sprintf("herd-%d", n)), nil
	}
	start := make(chan struct{})
	results := make(chan result, stores*perStore)
	var wg sync.WaitGroup
	for _, s := range ss {
		for range perStore {
			wg.Go(func() {
				<-start
				tok, err := s.Refresh(ctx, key, old.Value, fetch)
				results <- result{tok, err}
			})
		}
	}
	close(start)
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no caller of the herd reached fetch within 30s")
	}
	leader := leaderIndex(t, cl)
	begin := time.Now()
	containers.Stop(t, cl.Members[leader].Container)
	t.Logf("stopped the leader, member %d, in %v, with the herd waiting", leader, time.Since(begin).Round(time.Millisecond))
	close(stopped)
	wg.Wait()
	close(results)
	t.Logf("herd done %v after the stop began", time.Since(begin).Round(time.Millisecond))

	got := map[string]int{}
	var errs []error
	for r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		got[r.tok.Value]++
	}
	if fetches != 1 {
		t.Errorf("Refresh(%q, stale=%q) in a herd of %d with the leader stopped mid-herd: fetch ran %d times, want 1", key, old.Value, stores*perStore, fetches)
	}
	if len(errs) > 0 {
		t.Errorf("%d of %d callers failed, the first with: %v", len(errs), stores*perStore, errs[0])
	}
	if len(got) != 1 || got["herd-1"] == 0 {
		t.Errorf("callers got %v, want all %q", got, "herd-1")
	}

	containers.Start(t, cl.Members[leader].Container)
	for _, cli := range clis {
		cli.Close()
	}
	checkGoroutines(t, before)
}

// memberIDs returns the member ID of each member of cl, and the leader's.
func memberIDs(t *testing.T, cl *containers.EtcdCluster) (ids []uint64, leader uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range cl.Members {
		cli := newClient(t, m.Endpoints)
		st, err := cli.Status(ctx, m.Endpoints[0])
		if err != nil {
			t.Fatalf("status of %s: %v", m.Name, err)
		}
		ids = append(ids, st.Header.MemberId)
		leader = st.Leader
		cli.Close()
	}
	return ids, leader
}

// leaderIndex returns the index in cl.Members of the leader.
func leaderIndex(t *testing.T, cl *containers.EtcdCluster) int {
	t.Helper()
	ids, leader := memberIDs(t, cl)
	for i, id := range ids {
		if id == leader {
			return i
		}
	}
	t.Fatalf("leader %x is none of the members %x", leader, ids)
	return -1
}

// moveLeader makes member to the cluster's leader.
func moveLeader(t *testing.T, cl *containers.EtcdCluster, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		ids, _ := memberIDs(t, cl)
		from := leaderIndex(t, cl)
		if from == to {
			return
		}
		cli := newClient(t, cl.Members[from].Endpoints)
		_, err := cli.MoveLeader(ctx, ids[to])
		cli.Close()
		if err != nil {
			t.Logf("move leader from member %d to %d: %v (retrying)", from, to, err)
		}
	}
	t.Fatalf("could not make member %d the leader within 30s", to)
}

// etcdGoroutines returns the stacks of the goroutines running code of the
// store, the etcd client or gRPC.
func etcdGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "go.etcd.io/") || strings.Contains(g, "google.golang.org/grpc") ||
			strings.Contains(g, "wechatconf/store/etcd.") {
			out = append(out, g)
		}
	}
	return out
}

// checkCensus makes sure that etcdGoroutines sees the goroutines of open
// clients, so that checkGoroutines is not blind.
func checkCensus(t *testing.T) {
	t.Helper()
	if len(etcdGoroutines()) == 0 {
		t.Fatal("etcdGoroutines sees no goroutine while clients are open: the leak check would be blind")
	}
}

// goroutineSettle bounds checkGoroutines: generous, since it only ends a
// wait for goroutines on their way out (a revoke in the background, gRPC's
// transports closing); a leaked goroutine never goes.
const goroutineSettle = 30 * time.Second

// checkGoroutines reports goroutines of the store, the client or gRPC left
// beyond those running before, after a bounded settle.
func checkGoroutines(t *testing.T, before []string) {
	t.Helper()
	deadline := time.Now().Add(goroutineSettle)
	for {
		after := etcdGoroutines()
		if len(after) <= len(before) {
			t.Logf("goroutines of the store, clientv3 and gRPC: %d before, %d after", len(before), len(after))
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines of the store, clientv3 or gRPC still running %v after the clients were closed, %d before; now:\n%s",
				len(after), goroutineSettle, len(before), strings.Join(after, "\n\n"))
			return
		}
		time.Sleep(50 * time.Millisecond) // polling interval of a settle loop bounded above
	}
}
