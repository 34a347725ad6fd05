package containertest_test

import (
	"testing"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/conformance/containers"
)

// TestVendorFleet runs the vendor fleets on a single etcd member: the Open
// Platform fleet (8 processes × 1000 authorizers, as on Redis and
// PostgreSQL) and the WeCom vendor fleet, a third-party app's suite and a
// custom-developed app template (代开发), 8 processes × 500 corps each.
func TestVendorFleet(t *testing.T) {
	eps, child := endpointsFromEnv(singleEnv)
	if !child {
		eps = containers.StartEtcd(t).Endpoints
	}
	h := harness(eps, singleEnv)
	t.Run("OpenPlatform", func(t *testing.T) { conformance.OpenPlatformFleet(t, h, 8, 1000) })
	t.Run("WeComThirdParty", func(t *testing.T) { conformance.VendorFleet(t, h, conformance.VendorWeComThirdParty, 8, 500) })
	t.Run("WeComCustom", func(t *testing.T) { conformance.VendorFleet(t, h, conformance.VendorWeComCustom, 8, 500) })
}
