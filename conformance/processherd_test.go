package conformance_test

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/core"
)

// processLocalEnv makes TestProcessHerdLocalLockChild run.
const processLocalEnv = "WECHATCONF_CONFORMANCE_PROCESS_LOCAL"

// processLocal is one MemoryStore per process, declared (wrongly) as a
// shared backend: what an SDK with an in-process mutex only does.
var processLocal = core.NewMemoryStore(core.WithLease(testLease))

// TestProcessHerdLocalLockChild runs ProcessHerd on per-process stores; it
// is run in a child process by TestProcessHerdCatchesProcessLocalLocks.
func TestProcessHerdLocalLockChild(t *testing.T) {
	if os.Getenv(processLocalEnv) == "" {
		t.Skipf("runs only as the child of TestProcessHerdCatchesProcessLocalLocks (%s not set)", processLocalEnv)
	}
	conformance.ProcessHerd(t, conformance.Harness{
		NewStore: func(testing.TB) core.TokenStore { return processLocal },
		Lease:    testLease,
	}, 4, 10)
}

// TestProcessHerdCatchesProcessLocalLocks tests ProcessHerd itself: stores
// whose lock only works inside one process must fail it, with one fetch per
// process instead of one in all.
func TestProcessHerdCatchesProcessLocalLocks(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestProcessHerdLocalLockChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), processLocalEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("ProcessHerd passed stores with process-local locks; want a failure. Output:\n%s", out)
	}
	if !bytes.Contains(out, []byte("made 4 token fetches, want 1")) {
		t.Fatalf("ProcessHerd on process-local locks: want the report of 4 fetches. Output:\n%s", out)
	}
}
