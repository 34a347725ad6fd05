//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package conformance_test

import (
	"testing"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/core"
)

// TestSweepFileStore runs the fault sweep on the directory-backed store of
// filestore_test.go, kill mode included: the child process finds the
// directory through ChildEnv.
func TestSweepFileStore(t *testing.T) { conformance.Sweep(t, fileHarness(true)(t)) }

// nativeClaimsView is a TokenStore that implements core.ClaimStore with
// core.ClaimsOver over itself: to the sweep, whose fault injector wraps
// the store's calls, each Claim and CompareAndSwapClaim is one call, as a
// native ClaimStore's, while the claims live in the shared directory.
type nativeClaimsView struct {
	core.TokenStore
	core.ClaimStore
}

// TestSweepFileStoreClaimStore runs the sweep's Pushes scenario on the
// directory-backed store with claims the Dedup sees as native (see
// nativeClaimsView), so that the kill mode tries a kill right after every
// Claim and CompareAndSwapClaim, as it does on a store with a native
// ClaimStore; TestSweepFileStore plays the emulated path.
func TestSweepFileStoreClaimStore(t *testing.T) {
	h := fileHarness(true)(t)
	newStore := h.NewStore
	h.NewStore = func(t testing.TB) core.TokenStore {
		s := newStore(t)
		return nativeClaimsView{TokenStore: s, ClaimStore: core.ClaimsOver(s)}
	}
	conformance.SweepScenarios(t, h, "Pushes")
}
