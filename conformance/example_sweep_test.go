package conformance_test

import (
	"os"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/core"
)

// A store's package runs the fault sweep from a test of its own, with the
// harness it gives Run. The kill mode re-executes the test binary: the
// child finds the backend through ChildEnv, as the crash check's does.
func ExampleSweep() {
	testSweep := func(t *testing.T) {
		dir := os.Getenv("MYSTORE_DIR") // set in the kill mode's child
		if dir == "" {
			dir = t.TempDir()
		}
		conformance.Sweep(t, conformance.Harness{
			NewStore: func(t testing.TB) core.TokenStore {
				s := openMyStore(dir, time.Second) // a new value: another "process"
				t.Cleanup(func() { s.Close() })
				return s
			},
			Lease:    time.Second,
			ChildEnv: []string{"MYSTORE_DIR=" + dir},
		})
	}
	_ = testSweep // func TestSweep(t *testing.T) { … }
}
