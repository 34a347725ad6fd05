package containertest_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/conformance"
)

// BenchmarkStandalone measures the store against one Redis server in a
// container on the loopback.
func BenchmarkStandalone(b *testing.B) {
	addr := standaloneAddr(b)
	conformance.Benchmark(b, harness(func() redis.UniversalClient { return newClient(addr) }))
}

// BenchmarkCluster measures the store against a Redis Cluster of three
// masters on the loopback.
func BenchmarkCluster(b *testing.B) {
	addrs := clusterAddrs(b)
	conformance.Benchmark(b, harness(func() redis.UniversalClient { return newClusterClient(addrs) },
		clusterAddrsEnv+"="+strings.Join(addrs, ",")))
}

// BenchmarkPushFleet measures how many pushes per second 8 processes on
// one Redis server handle, each once (conformance.BenchmarkPushFleet).
func BenchmarkPushFleet(b *testing.B) {
	addr := standaloneAddr(b)
	conformance.BenchmarkPushFleet(b, harness(func() redis.UniversalClient { return newClient(addr) }, addrEnv+"="+addr), 8)
}
