package conformance

import (
	"os"
	"testing"
	"time"
)

// SweepScenarios is Sweep limited to the scenarios named, for this
// module's own tests.
func SweepScenarios(t *testing.T, h Harness, names ...string) {
	t.Helper()
	sweep(t, h, names)
}

// WatchdogEnv shortens the watchdog in this module's own test binary, so
// that TestSuiteCatchesBrokenStores can check it on a store that hangs.
const WatchdogEnv = "WECHATCONF_CONFORMANCE_WATCHDOG"

func init() {
	if d, err := time.ParseDuration(os.Getenv(WatchdogEnv)); err == nil {
		watchdogTimeout = func(time.Duration) time.Duration { return d }
	}
}
