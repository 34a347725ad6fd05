package main

import (
	"testing"

	"github.com/wechatconf/wechatconf/conformance/containers"
)

// TestTwoServersOneRedisStore is the high-availability set-up across
// machines: two servers over one real Redis (a container; without Docker
// it skips, and fails under CI).
func TestTwoServersOneRedisStore(t *testing.T) {
	r := containers.StartRedis(t)
	twoServersOneStore(t, "redis://"+r.Addr+"/0")
}
