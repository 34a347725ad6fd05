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

// PFLine is a PushFleet history line, for the checker's tests.
type PFLine = pfLine

// NewPFLine returns a history line.
func NewPFLine(proc int, ts int64, kind string, push, delivery int, arg string) PFLine {
	return pfLine{proc: proc, ts: ts, kind: kind, push: push, delivery: delivery, arg: arg}
}

// CheckPushHistory is checkPushHistory, with the duplicates by cause.
func CheckPushHistory(pushes int, lines []PFLine, killed map[int]bool) (dups map[string]int, violations []string) {
	c, bad := checkPushHistory(pushes, lines, killed)
	return c.Dups, bad
}
