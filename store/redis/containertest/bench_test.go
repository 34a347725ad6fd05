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
