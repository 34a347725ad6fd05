package containertest_test

import (
	"testing"

	"github.com/wechatconf/wechatconf/conformance"
)

// TestPushFleet runs the push fleet on the PostgreSQL server: 8 processes,
// each serving an Official Account, a WeCom app and an Open Platform
// message URL on one core.Dedup, receive 300 pushes with WeChat's retries
// while some are killed mid-handler; every push must be handled, and none
// twice but after a crash or a failure.
func TestPushFleet(t *testing.T) {
	needServer(t)
	conformance.PushFleet(t, harness("pgpushfleet/", nil), conformance.PushFleetConfig{})
}
