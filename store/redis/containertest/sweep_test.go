package containertest_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/conformance"
)

// TestSweepRedis runs the fault sweep (conformance.Sweep) on one Redis server:
// one fault at every store call of every scenario — the call fails, lands
// and reports failure, hangs until its ctx ends, loses WeChat's reply, or
// the process is SIGKILLed right after it (a child process re-executing
// this binary, which reaches the server through addrEnv) — and the
// durable state must survive each.
func TestSweepRedis(t *testing.T) {
	addr := standaloneAddr(t)
	conformance.Sweep(t, harness(func() redis.UniversalClient { return newClient(addr) }, addrEnv+"="+addr))
}
