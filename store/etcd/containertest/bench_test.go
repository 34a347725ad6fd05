package containertest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/conformance/containers"
	etcdstore "github.com/wechatconf/wechatconf/store/etcd"
)

// BenchmarkStore runs the conformance benchmarks against a single etcd
// member.
func BenchmarkStore(b *testing.B) {
	node := containers.StartEtcd(b)
	conformance.Benchmark(b, harness(node.Endpoints, singleEnv))
}

// BenchmarkClaim measures a winning claim on a fresh key, one caller at a
// time, on one etcd member:
//
//   - raw is what a client does on its own for a create-if-absent with an
//     expiry: a lease Grant of the claim's whole seconds, then the Txn
//     "if the key does not exist, put it on the lease, else get it";
//   - store is Store.Claim, which reuses its lease across the claims of
//     the same ttl and so is usually the Txn alone. It reports ratio, its
//     ns/op divided by raw's in the same run (raw runs first; issue 26
//     requires at most 1.3).
func BenchmarkClaim(b *testing.B) {
	node := containers.StartEtcd(b)
	ctx := context.Background()
	const ttl = 5 * time.Second
	var rawPerOp time.Duration
	b.Run("raw", func(b *testing.B) {
		cli := newClient(b, node.Endpoints)
		prefix := uniquePrefix(b) + "raw/"
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			g, err := cli.Grant(ctx, int64(ttl/time.Second))
			if err != nil {
				b.Fatal(err)
			}
			k := fmt.Sprint(prefix, i)
			resp, err := cli.Txn(ctx).
				If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
				Then(clientv3.OpPut(k, "v", clientv3.WithLease(g.ID))).
				Else(clientv3.OpGet(k)).
				Commit()
			if err != nil || !resp.Succeeded {
				b.Fatalf("raw claim of %q: %v, succeeded %v", k, err, resp != nil && resp.Succeeded)
			}
		}
		rawPerOp = b.Elapsed() / time.Duration(b.N)
	})
	b.Run("store", func(b *testing.B) {
		s, err := etcdstore.New(newClient(b, node.Endpoints), etcdstore.WithPrefix(uniquePrefix(b)))
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			k := fmt.Sprint("push/", i)
			if got, err := s.Claim(ctx, k, "v", ttl); err != nil || got != "v" {
				b.Fatalf("Claim(%q) = %q, %v; want v", k, got, err)
			}
		}
		if rawPerOp > 0 {
			perOp := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(perOp)/float64(rawPerOp), "ratio")
		}
	})
}
