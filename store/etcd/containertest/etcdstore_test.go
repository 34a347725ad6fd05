package containertest_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	etcdstore "github.com/wechatconf/wechatconf/store/etcd"
)

// Environment through which the conformance crash check's and ProcessHerd's
// child processes (this test binary started again) reach the parent's etcd
// instead of starting their own: comma-separated client URLs.
const (
	singleEnv  = "WECHATCONF_TEST_ETCD_SINGLE"
	clusterEnv = "WECHATCONF_TEST_ETCD_CLUSTER"
)

// testLease is the stores' lease in the tests. It is the etcd server's
// minimum TTL with its default 1s election timeout, so that Harness.Lease
// matches the lease the server really grants.
const testLease = 2 * time.Second

// testPrefix begins every etcd key the tests write.
const testPrefix = "wechatconf-test/"

// endpointsFromEnv returns the endpoints in env, if it is set.
func endpointsFromEnv(env string) ([]string, bool) {
	v, ok := os.LookupEnv(env)
	if !ok || v == "" {
		return nil, false
	}
	return strings.Split(v, ","), true
}

// newClient returns a client of endpoints that t's cleanup closes.
func newClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("clientv3.New(%v): %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// newStore returns a store over a new client of endpoints.
func newStore(t testing.TB, endpoints []string, opts ...etcdstore.Option) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.New(newClient(t, endpoints), opts...)
	if err != nil {
		t.Fatalf("etcdstore.New: %v", err)
	}
	return s
}

// harness is the conformance harness over endpoints: every store value has
// a client of its own, as a separate process would.
func harness(endpoints []string, env string) conformance.Harness {
	return conformance.Harness{
		NewStore: func(t testing.TB) core.TokenStore {
			return newStore(t, endpoints, etcdstore.WithLease(testLease), etcdstore.WithPrefix(testPrefix))
		},
		Lease:     testLease,
		KeyPrefix: "etcd/",
		ChildEnv:  []string{env + "=" + strings.Join(endpoints, ",")},
	}
}

// uniquePrefix returns a store prefix no other test uses.
func uniquePrefix(t testing.TB) string {
	return fmt.Sprintf("%s%s-%08x/", testPrefix, t.Name(), rand.Uint32())
}

// TestSingle runs everything that needs one etcd member against a single
// container started once: the conformance suite, the multi-process herd,
// the store's own checks, and last the pause fault.
func TestSingle(t *testing.T) {
	eps, child := endpointsFromEnv(singleEnv)
	var node *containers.Etcd
	if !child {
		node = containers.StartEtcd(t)
		eps = node.Endpoints
	}
	h := harness(eps, singleEnv)
	t.Run("Conformance", func(t *testing.T) { conformance.Run(t, h) })
	t.Run("ProcessHerd", func(t *testing.T) { conformance.ProcessHerd(t, h, 8, 50) })
	t.Run("ProcessHerdWeCom", func(t *testing.T) { conformance.ProcessHerdOf(t, h, conformance.WeComApp, 8, 50) })
	t.Run("Store", func(t *testing.T) { testStore(t, eps) })
	t.Run("Claims", func(t *testing.T) { testClaims(t, eps) })
	t.Run("PausedNodeFencesHolder", func(t *testing.T) {
		if node == nil {
			t.Skipf("%s is set: the fault test pauses a container of its own", singleEnv)
		}
		testPausedHolder(t, node.Container, eps, eps, false)
	})
}

// TestCluster runs the conformance suite against a 3-member cluster, then
// the member faults.
func TestCluster(t *testing.T) {
	eps, child := endpointsFromEnv(clusterEnv)
	var cl *containers.EtcdCluster
	if !child {
		cl = containers.StartEtcdCluster(t, 3)
		eps = cl.Endpoints
	}
	h := harness(eps, clusterEnv)
	t.Run("Conformance", func(t *testing.T) { conformance.Run(t, h) })
	t.Run("PausedLeaderFencesHolder", func(t *testing.T) {
		if cl == nil {
			t.Skipf("%s is set: the fault test pauses a container of its own", clusterEnv)
		}
		// The holder's client reaches member 0 only, made the leader, so
		// that pausing it also costs the cluster an election; the other
		// store reaches member 1 only.
		moveLeader(t, cl, 0)
		testPausedHolder(t, cl.Members[0].Container, cl.Members[0].Endpoints, cl.Members[1].Endpoints, true)
	})
	t.Run("PausedFollowerFencesHolder", func(t *testing.T) {
		if cl == nil {
			t.Skipf("%s is set: the fault test pauses a container of its own", clusterEnv)
		}
		moveLeader(t, cl, 1)
		testPausedHolder(t, cl.Members[0].Container, cl.Members[0].Endpoints, cl.Members[1].Endpoints, true)
	})
	t.Run("StoppedLeaderMidHerdFetchesOnce", func(t *testing.T) {
		if cl == nil {
			t.Skipf("%s is set: the fault test stops a container of its own", clusterEnv)
		}
		testStoppedMemberMidHerd(t, cl)
	})
}

// testStore checks what the conformance suite does not: corrupt values,
// the key layout, lease rounding, prefixes and error wrapping.
func testStore(t *testing.T, eps []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("CorruptValue", func(t *testing.T) {
		// Get of a value that cannot be decoded is a clear error, not
		// ErrNotFound; Refresh treats it as absent and repairs it.
		prefix := uniquePrefix(t)
		cli := newClient(t, eps)
		s, err := etcdstore.New(cli, etcdstore.WithPrefix(prefix), etcdstore.WithLease(testLease))
		if err != nil {
			t.Fatal(err)
		}
		key := "corrupt"
		if err := s.Set(ctx, key, core.Token{Value: "v", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		raw, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil || len(raw.Kvs) != 1 {
			t.Fatalf("Get(%q, prefix) = %v, %v; want the one token key", prefix, raw, err)
		}
		tokenKey := string(raw.Kvs[0].Key)
		for _, bad := range []string{"not json", `{"v":2,"key":"corrupt","value":"x","expires_at":"2030-01-01T00:00:00Z"}`, `{"v":1,"key":"other","value":"x","expires_at":"2030-01-01T00:00:00Z"}`, `{"v":1,"key":"corrupt"}`} {
			if _, err := cli.Put(ctx, tokenKey, bad); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, key)
			switch {
			case err == nil:
				t.Errorf("Get(%q) of corrupt value %q = %+v, nil; want an error", key, bad, got)
			case errors.Is(err, core.ErrNotFound):
				t.Errorf("Get(%q) of corrupt value %q: %v; want an error that does not wrap core.ErrNotFound", key, bad, err)
			case !strings.Contains(err.Error(), "corrupt"):
				t.Errorf("Get(%q) of corrupt value %q: %v; want it to say the value is corrupt", key, bad, err)
			}
			fresh := core.Token{Value: "repaired", ExpiresAt: time.Now().Add(time.Hour)}
			n := 0
			got, err = s.Refresh(ctx, key, "unrelated-stale", func(context.Context) (core.Token, error) { n++; return fresh, nil })
			if err != nil || n != 1 || got.Value != fresh.Value {
				t.Errorf("Refresh(%q) over corrupt value %q = %+v, %v, %d fetches; want the fetched token, 1 fetch (corrupt counts as absent)", key, bad, got, err, n)
			}
			if got, err := s.Get(ctx, key); err != nil || got.Value != fresh.Value {
				t.Errorf("Get(%q) after Refresh repaired it = %+v, %v; want %q", key, got, err, fresh.Value)
			}
		}
	})

	t.Run("ListKeysSkipsForeign", func(t *testing.T) {
		// ListKeys lists the keys of tokens, a corrupt one included, and
		// skips what something else wrote under the token range: a name
		// that is not base64url, the encoding of something that is not a
		// key, and keys under another Store's prefix that begins with
		// this one's.
		prefix := uniquePrefix(t)
		cli := newClient(t, eps)
		s, _ := etcdstore.New(cli, etcdstore.WithPrefix(prefix), etcdstore.WithLease(testLease))
		other, _ := etcdstore.New(cli, etcdstore.WithPrefix(prefix+"token/x"), etcdstore.WithLease(testLease))
		tok := core.Token{Value: "v", ExpiresAt: time.Now().Add(time.Hour)}
		for _, k := range []string{"wechatconf/wx1/access_token", "corrupt"} {
			if err := s.Set(ctx, k, tok); err != nil {
				t.Fatal(err)
			}
		}
		if err := other.Set(ctx, "other-store", tok); err != nil {
			t.Fatal(err)
		}
		enc := base64.RawURLEncoding.EncodeToString
		for k, v := range map[string]string{
			prefix + "token/" + enc([]byte("corrupt")):                "not json",
			prefix + "token/!not-base64!":                             "x",
			prefix + "token/" + enc([]byte(strings.Repeat("k", 300))): "too long a key",
			prefix + "token/" + enc([]byte("a\x00b")):                 "NUL",
		} {
			if _, err := cli.Put(ctx, k, v); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.ListKeys(ctx, "")
		if want := []string{"corrupt", "wechatconf/wx1/access_token"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("ListKeys(\"\") = %q, %v; want %q", got, err, want)
		}
	})

	t.Run("NoKeyGrowth", func(t *testing.T) {
		// Refreshes leave exactly one etcd key per token (overwritten in
		// place), and no lock keys once released.
		prefix := uniquePrefix(t)
		cli := newClient(t, eps)
		s, _ := etcdstore.New(cli, etcdstore.WithPrefix(prefix), etcdstore.WithLease(testLease))
		stale := ""
		for i := range 20 {
			tok, err := s.Refresh(ctx, "k", stale, func(context.Context) (core.Token, error) {
				return core.Token{Value: fmt.Sprintf("t%d", i), ExpiresAt: time.Now().Add(time.Hour)}, nil
			})
			if err != nil {
				t.Fatalf("Refresh #%d: %v", i, err)
			}
			stale = tok.Value
		}
		keys := func() []string {
			resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, kv := range resp.Kvs {
				keys = append(keys, string(kv.Key))
			}
			return keys
		}
		if ks := keys(); len(ks) != 1 || !strings.HasPrefix(ks[0], prefix+"token/") {
			t.Errorf("keys under %q after 20 refreshes: %q; want one %q key", prefix, ks, prefix+"token/…")
		}

		// A herd: the waiters that return on the holder's write leave the
		// mutex queue in the background; their queue keys must go too.
		other, _ := etcdstore.New(newClient(t, eps), etcdstore.WithPrefix(prefix), etcdstore.WithLease(testLease))
		var wg sync.WaitGroup
		for i := range 20 {
			st := s
			if i%2 == 1 {
				st = other
			}
			wg.Go(func() {
				if _, err := st.Refresh(ctx, "k", stale, func(context.Context) (core.Token, error) {
					return core.Token{Value: "herd", ExpiresAt: time.Now().Add(time.Hour)}, nil
				}); err != nil {
					t.Errorf("Refresh in a herd: %v", err)
				}
			})
		}
		wg.Wait()
		// The waiters leave the queue in the background: poll, with a
		// generous limit (queue keys nobody removes stay for ever, their
		// sessions being kept alive).
		const settle = 30 * time.Second
		deadline := time.Now().Add(settle)
		for ks := keys(); len(ks) != 1; ks = keys() {
			if time.Now().After(deadline) {
				t.Fatalf("keys under %q %v after a herd of 20: %q; want only the token key (waiters leave the queue)", prefix, settle, ks)
			}
			time.Sleep(20 * time.Millisecond) // polling interval of a settle loop bounded above
		}
	})

	t.Run("PrefixesSeparate", func(t *testing.T) {
		// Stores with different prefixes share neither tokens nor locks.
		cli := newClient(t, eps)
		a, _ := etcdstore.New(cli, etcdstore.WithPrefix(uniquePrefix(t)+"a/"))
		b, _ := etcdstore.New(cli, etcdstore.WithPrefix(uniquePrefix(t)+"b/"))
		if err := a.Set(ctx, "k", core.Token{Value: "a"}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(ctx, "k"); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("Get through another prefix: %v, want ErrNotFound", err)
		}
	})

	t.Run("SubSecondLeaseRounded", func(t *testing.T) {
		// WithLease(500ms) asks for a 1s TTL, which a default server raises
		// to its 2s minimum; fetch's deadline follows the granted TTL.
		//
		// The deadline is the TTL after a moment between the call and
		// fetch, so the TTL lies between the deadline's distance from fetch
		// and its distance from the call: that interval must hold 2s. A
		// slow machine widens it (the check gets less sharp), it never
		// makes a 2s TTL fail.
		s := newStore(t, eps, etcdstore.WithPrefix(uniquePrefix(t)), etcdstore.WithLease(500*time.Millisecond))
		var deadline, inFetch time.Time
		called := time.Now()
		_, err := s.Refresh(ctx, "k", "", func(fctx context.Context) (core.Token, error) {
			inFetch = time.Now()
			d, ok := fctx.Deadline()
			if !ok {
				return core.Token{}, errors.New("fetch ctx has no deadline")
			}
			deadline = d
			return core.Token{Value: "v"}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := deadline.Sub(inFetch), deadline.Sub(called)
		t.Logf("WithLease(500ms): fetch deadline %v after fetch began, %v after Refresh was called", lo, hi)
		if lo > 2*time.Second || hi < 2*time.Second {
			t.Errorf("WithLease(500ms): fetch's deadline %v after fetch began and %v after Refresh was called; want a 2s TTL between the two (1s TTL raised to the server's 2s minimum)", lo, hi)
		}
	})

	t.Run("ErrorsWrapped", func(t *testing.T) {
		// An unreachable etcd gives errors that name the store, the
		// operation and the key, and wrap the ctx error.
		s := newStore(t, []string{"http://127.0.0.1:1"})
		dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer dcancel()
		_, err := s.Get(dctx, "k")
		if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), `etcdstore: get "k": `) {
			t.Errorf("Get from an unreachable etcd: %v; want `etcdstore: get \"k\": …` wrapping context.DeadlineExceeded", err)
		}
		dctx2, dcancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
		defer dcancel2()
		_, err = s.Refresh(dctx2, "k", "", func(context.Context) (core.Token, error) { return core.Token{Value: "v"}, nil })
		if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), `etcdstore: refresh "k": `) {
			t.Errorf("Refresh against an unreachable etcd: %v; want `etcdstore: refresh \"k\": …` wrapping context.DeadlineExceeded", err)
		}
	})

	t.Run("ClientNotClosed", func(t *testing.T) {
		// The store never closes the client it was given.
		cli := newClient(t, eps)
		s, _ := etcdstore.New(cli, etcdstore.WithPrefix(uniquePrefix(t)))
		if _, err := s.Refresh(ctx, "k", "", func(context.Context) (core.Token, error) { return core.Token{Value: "v"}, nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Get(ctx, "any"); err != nil {
			t.Errorf("client after the store's use: %v", err)
		}
	})
}

func TestNewNilClient(t *testing.T) {
	if s, err := etcdstore.New(nil); err == nil {
		t.Errorf("New(nil) = %v, nil; want an error", s)
	}
}
