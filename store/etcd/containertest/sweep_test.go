package containertest_test

import (
	"testing"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/conformance/containers"
)

// TestSweepEtcd runs the fault sweep (conformance.Sweep) on a single etcd
// member started for it: one fault at every store call of every scenario —
// the call fails, lands and reports failure, hangs until its ctx ends,
// loses WeChat's reply, or the process is SIGKILLed right after it (a
// child process re-executing this binary, which reaches the member through
// singleEnv) — and the durable state must survive each.
func TestSweepEtcd(t *testing.T) {
	eps, child := endpointsFromEnv(singleEnv)
	if !child {
		eps = containers.StartEtcd(t).Endpoints
	}
	conformance.Sweep(t, harness(eps, singleEnv))
}
