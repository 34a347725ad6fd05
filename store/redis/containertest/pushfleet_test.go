package containertest_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/conformance"
)

// TestPushFleet runs the push fleet on one Redis server: 8 processes, each
// serving an Official Account, a WeCom app and an Open Platform message URL
// on one core.Dedup, receive 300 pushes with WeChat's retries while some
// are killed mid-handler; every push must be handled, and none twice but
// after a crash or a failure.
func TestPushFleet(t *testing.T) {
	addr := standaloneAddr(t)
	h := harness(func() redis.UniversalClient { return newClient(addr) }, addrEnv+"="+addr)
	conformance.PushFleet(t, h, conformance.PushFleetConfig{})
}

// BenchmarkPushFleet measures how many pushes per second 8 processes on
// one Redis server handle, each once (conformance.BenchmarkPushFleet).
func BenchmarkPushFleet(b *testing.B) {
	addr := standaloneAddr(b)
	conformance.BenchmarkPushFleet(b, harness(func() redis.UniversalClient { return newClient(addr) }, addrEnv+"="+addr), 8)
}
