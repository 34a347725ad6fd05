package conformance

import (
	"os"
	"time"
)

// WatchdogEnv shortens the watchdog in this module's own test binary, so
// that TestSuiteCatchesBrokenStores can check it on a store that hangs.
const WatchdogEnv = "WECHATCONF_CONFORMANCE_WATCHDOG"

func init() {
	if d, err := time.ParseDuration(os.Getenv(WatchdogEnv)); err == nil {
		watchdogTimeout = func(time.Duration) time.Duration { return d }
	}
}
