//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/core"
)

// localLockEnv makes TestVendorFleetLocalLockChild run.
const localLockEnv = "WECHATCONF_CONFORMANCE_VENDORFLEET_LOCAL_LOCK"

// localLocks are the refresh locks of localLockStore: one set per process.
var localLocks sync.Map // key → *sync.Mutex

// localLockStore keeps its tokens in a store the processes share (the
// directory's fileStore) but locks a refresh only inside its process: what
// a vendor SDK with an in-process mutex over a shared cache does.
type localLockStore struct{ core.TokenStore }

func (s localLockStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	m, _ := localLocks.LoadOrStore(key, new(sync.Mutex))
	m.(*sync.Mutex).Lock()
	defer m.(*sync.Mutex).Unlock()
	cur, err := s.Get(ctx, key)
	switch {
	case errors.Is(err, core.ErrNotFound):
	case err != nil:
		return core.Token{}, err
	case cur.Value != stale:
		return cur, nil
	}
	t, err := fetch(ctx)
	if err != nil {
		return core.Token{}, err
	}
	return t, s.Set(ctx, key, t)
}

// TestVendorFleetLocalLockChild runs the custom-developed WeCom fleet on
// localLockStores; it is run in a child process by
// TestVendorFleetCatchesProcessLocalLocks.
func TestVendorFleetLocalLockChild(t *testing.T) {
	if os.Getenv(localLockEnv) == "" {
		t.Skipf("runs only as the child of TestVendorFleetCatchesProcessLocalLocks (%s not set)", localLockEnv)
	}
	h := fileHarness(true)(t)
	shared := h.NewStore
	h.NewStore = func(t testing.TB) core.TokenStore { return localLockStore{shared(t)} }
	// No lease can explain an extra fetch here: the round fails at once.
	h.Lease = 10 * time.Minute
	conformance.VendorFleet(t, h, conformance.VendorWeComCustom, 4, 20)
}

// TestVendorFleetCatchesProcessLocalLocks tests VendorFleet itself: stores
// whose refresh lock only works inside one process must fail the
// custom-developed WeCom fleet, whose gettoken hands a corp's valid token
// back: each corp's minted tokens move by exactly 1 in the cold start
// whatever the fleet does, and only the calls of /cgi-bin/gettoken show
// the processes that fetched it again.
func TestVendorFleetCatchesProcessLocalLocks(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestVendorFleetLocalLockChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), localLockEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("VendorFleet passed stores with process-local locks; want a failure. Output:\n%s", out)
	}
	if want := "VendorFleet wecom custom-developed cycle 0: 4 processes × 20 corps made 20 corp fetches (max per corp 1; "; !bytes.Contains(out, []byte(want)) {
		t.Fatalf("VendorFleet on process-local locks: want the report %q (one token minted per corp, the extra fetches only in the calls). Output:\n%s", want, out)
	}
	if bytes.Contains(out, []byte("; 20 calls of /cgi-bin/gettoken)")) {
		t.Fatalf("VendorFleet on process-local locks: 20 calls of gettoken, want more. Output:\n%s", out)
	}
}
