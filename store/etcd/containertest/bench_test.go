package containertest_test

import (
	"testing"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/conformance/containers"
)

// BenchmarkStore runs the conformance benchmarks against a single etcd
// member.
func BenchmarkStore(b *testing.B) {
	node := containers.StartEtcd(b)
	conformance.Benchmark(b, harness(node.Endpoints, singleEnv))
}
