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
	localLockChild(t, conformance.OfficialAccountClassic)
}

// TestProcessHerdWeComLocalLockChild is TestProcessHerdLocalLockChild
// through a WeCom app's access_token.
func TestProcessHerdWeComLocalLockChild(t *testing.T) { localLockChild(t, conformance.WeComApp) }

func localLockChild(t *testing.T, kind conformance.HerdKind) {
	t.Helper()
	if os.Getenv(processLocalEnv) == "" {
		t.Skipf("runs only as the child of TestProcessHerdCatchesProcessLocalLocks (%s not set)", processLocalEnv)
	}
	conformance.ProcessHerdOf(t, conformance.Harness{
		NewStore: func(testing.TB) core.TokenStore { return processLocal },
		Lease:    testLease,
	}, kind, 4, 10)
}

// TestProcessHerdCatchesProcessLocalLocks tests ProcessHerdOf itself:
// stores whose lock only works inside one process must fail it, with one
// fetch per process instead of one in all. For WeCom, whose gettoken
// answers the same token while it is valid, only the count of fetches can
// tell.
func TestProcessHerdCatchesProcessLocalLocks(t *testing.T) {
	for _, c := range []struct{ child, name string }{
		{"TestProcessHerdLocalLockChild", conformance.OfficialAccountClassic.Name},
		{"TestProcessHerdWeComLocalLockChild", conformance.WeComApp.Name},
	} {
		t.Run(c.child, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^"+c.child+"$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), processLocalEnv+"=1")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("ProcessHerd passed stores with process-local locks; want a failure. Output:\n%s", out)
			}
			if want := "ProcessHerd " + c.name + ": 4 processes × 10 goroutines made 4 token fetches, want 1"; !bytes.Contains(out, []byte(want)) {
				t.Fatalf("ProcessHerd on process-local locks: want the report %q. Output:\n%s", want, out)
			}
		})
	}
}
