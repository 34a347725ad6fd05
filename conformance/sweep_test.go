package conformance_test

import (
	"testing"

	"github.com/wechatconf/wechatconf/conformance"
)

// TestSweepMemoryStore runs the fault sweep on the in-memory store (its
// kill mode skips: no other process reaches it).
func TestSweepMemoryStore(t *testing.T) { conformance.Sweep(t, memoryHarness()) }
