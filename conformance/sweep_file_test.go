//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package conformance_test

import (
	"testing"

	"github.com/wechatconf/wechatconf/conformance"
)

// TestSweepFileStore runs the fault sweep on the directory-backed store of
// filestore_test.go, kill mode included: the child process finds the
// directory through ChildEnv.
func TestSweepFileStore(t *testing.T) { conformance.Sweep(t, fileHarness(true)(t)) }
