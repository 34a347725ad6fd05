package containertest_test

import (
	"testing"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/conformance/containers"
)

// TestVendorFleet runs the vendor fleets on a single etcd member: the Open
// Platform fleet (8 processes × 500 authorizers: Redis and PostgreSQL run
// 1000; on a loaded 2-core machine 1000 took 200 s here, every refresh
// being an etcd lease and transactions) and the WeCom vendor fleet, a
// third-party app's suite and a custom-developed app template (代开发),
// 8 processes × 500 corps each.
func TestVendorFleet(t *testing.T) {
	eps, child := endpointsFromEnv(singleEnv)
	if !child {
		eps = containers.StartEtcd(t).Endpoints
	}
	h := harness(eps, singleEnv)
	t.Run("OpenPlatform", func(t *testing.T) { conformance.OpenPlatformFleet(t, h, 8, 500) })
	t.Run("WeComThirdParty", func(t *testing.T) { conformance.VendorFleet(t, h, conformance.VendorWeComThirdParty, 8, 500) })
	t.Run("WeComCustom", func(t *testing.T) { conformance.VendorFleet(t, h, conformance.VendorWeComCustom, 8, 500) })
}
