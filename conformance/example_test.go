package conformance_test

import (
	"os"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/core"
)

// This is the test a store's package writes to check it against the
// contract: TestConformance below, in a _test.go file of that package.
// For a store over a shared backend, NewStore returns a new value (a new
// client) each call and ChildEnv tells the crash check's child process
// where the backend is; the in-memory store here declares that it has none.
func ExampleRun() {
	testConformance := func(t *testing.T) {
		// One value: two MemoryStores share nothing.
		s := core.NewMemoryStore(core.WithLease(time.Second))
		conformance.Run(t, conformance.Harness{
			NewStore:      func(testing.TB) core.TokenStore { return s },
			Lease:         time.Second,
			SingleProcess: "tokens live in this process's memory",
		})
	}
	_ = testConformance // func TestConformance(t *testing.T) { … }
}

// A store over a backend that several processes share: each NewStore call
// builds an independent store value, and the backend's address reaches the
// crash check's child process through ChildEnv, which the test reads back.
func ExampleHarness_sharedBackend() {
	testConformance := func(t *testing.T) {
		dir := os.Getenv("MYSTORE_DIR") // set in the crash check's child
		if dir == "" {
			dir = t.TempDir()
		}
		conformance.Run(t, conformance.Harness{
			NewStore: func(t testing.TB) core.TokenStore {
				s := openMyStore(dir, time.Second) // a new value: another "process"
				t.Cleanup(func() { s.Close() })
				return s
			},
			Lease:     time.Second,
			KeyPrefix: "conformance:",
			ChildEnv:  []string{"MYSTORE_DIR=" + dir},
		})
	}
	_ = testConformance
}

// openMyStore stands for the constructor of the store under test.
var openMyStore func(dir string, lease time.Duration) interface {
	core.TokenStore
	Close() error
}

// The vendor fleets of a store over a shared backend, one test per
// platform (the child processes run the calling test again and play the
// same platform): the harness is ExampleHarness_sharedBackend's.
func ExampleVendorFleet() {
	harness := func(t *testing.T) conformance.Harness {
		dir := os.Getenv("MYSTORE_DIR")
		if dir == "" {
			dir = t.TempDir()
		}
		return conformance.Harness{
			NewStore: func(t testing.TB) core.TokenStore {
				s := openMyStore(dir, time.Minute) // longer than a cycle: no holder loses its lock
				t.Cleanup(func() { s.Close() })
				return s
			},
			Lease:    time.Minute,
			ChildEnv: []string{"MYSTORE_DIR=" + dir},
		}
	}
	testWeComVendorFleet := func(t *testing.T) {
		t.Run("ThirdParty", func(t *testing.T) {
			conformance.VendorFleet(t, harness(t), conformance.VendorWeComThirdParty, 8, 500)
		})
		t.Run("Custom", func(t *testing.T) {
			conformance.VendorFleet(t, harness(t), conformance.VendorWeComCustom, 8, 500)
		})
	}
	testOpenPlatformFleet := func(t *testing.T) { conformance.OpenPlatformFleet(t, harness(t), 8, 1000) }
	_, _ = testWeComVendorFleet, testOpenPlatformFleet
}
