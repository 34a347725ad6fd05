package containertest_test

import (
	"testing"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/conformance/containers"
)

// TestVendorFleet runs the vendor fleets on a single etcd member, 8
// processes × 300 tenants each: the Open Platform fleet (Redis and
// PostgreSQL run 1000 authorizers) and the WeCom vendor fleets, a
// third-party app's suite and a custom-developed app template (代开发;
// Redis and PostgreSQL run 500 corps). Every refresh is an etcd lease and
// transactions under 8 contending processes: on a loaded 2-core machine a
// cycle of 500 corps took 35-50 s here, 1000 authorizers 200 s in all.
func TestVendorFleet(t *testing.T) {
	eps, child := endpointsFromEnv(singleEnv)
	if !child {
		eps = containers.StartEtcd(t).Endpoints
	}
	h := harness(eps, singleEnv)
	t.Run("OpenPlatform", func(t *testing.T) { conformance.OpenPlatformFleet(t, h, 8, 300) })
	t.Run("WeComThirdParty", func(t *testing.T) { conformance.VendorFleet(t, h, conformance.VendorWeComThirdParty, 8, 300) })
	t.Run("WeComCustom", func(t *testing.T) { conformance.VendorFleet(t, h, conformance.VendorWeComCustom, 8, 300) })
}
