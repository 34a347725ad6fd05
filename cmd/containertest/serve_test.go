package containertest

import (
	"testing"

	"github.com/wechatconf/wechatconf/cmd/internal/serve/servetest"
	"github.com/wechatconf/wechatconf/conformance/containers"
)

// TestTokenServerTwoServersOneRedisStore is the high-availability set-up
// across machines: two token servers over one real Redis.
func TestTokenServerTwoServersOneRedisStore(t *testing.T) {
	r := containers.StartRedis(t)
	servetest.TwoServersOneStore(t, "redis://"+r.Addr+"/0")
}
