package conformance_test

import (
	"bytes"
	"os"
	"os/exec"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/conformance"
)

// TestPushHistoryChecker tests PushFleet's checker on histories written by
// hand: the ones the guarantee allows pass, with their duplicates counted
// by cause; a push handled again after a handler that finished, a push
// never handled and a handler that never finished fail.
func TestPushHistoryChecker(t *testing.T) {
	l := conformance.NewPFLine
	handled := func(proc int, ts int64, push, delivery int) []conformance.PFLine {
		return []conformance.PFLine{
			l(proc, ts, "start", push, delivery, "1"),
			l(proc, ts+1, "finish", push, delivery, "ok"),
			l(proc, ts+2, "answered", push, delivery, "handled"),
		}
	}
	cat := func(parts ...[]conformance.PFLine) []conformance.PFLine {
		var all []conformance.PFLine
		for _, p := range parts {
			all = append(all, p...)
		}
		return all
	}
	for _, c := range []struct {
		name    string
		pushes  int
		lines   []conformance.PFLine
		killed  map[int]bool
		dups    map[string]int
		wantBad string // a substring of the first violation; "" for none
	}{
		{name: "OnceEach", pushes: 2, lines: cat(handled(0, 10, 0, 0), handled(1, 20, 1, 0),
			[]conformance.PFLine{l(2, 30, "answered", 0, 1, "duplicate")})},
		{name: "AgainAfterFailure", pushes: 1, lines: cat([]conformance.PFLine{
			l(0, 10, "start", 0, 0, "1"), l(0, 11, "finish", 0, 0, "err"), l(0, 12, "answered", 0, 0, "failed"),
		}, handled(1, 20, 0, 1)), dups: map[string]int{"failed": 1}},
		{name: "AgainAfterCrash", pushes: 1, lines: cat([]conformance.PFLine{l(0, 10, "start", 0, 0, "1")}, handled(1, 20, 0, 1)),
			killed: map[int]bool{0: true}, dups: map[string]int{"crashed": 1}},
		{name: "AgainAfterCrashBeforeAnswer", pushes: 1, lines: cat([]conformance.PFLine{
			l(0, 10, "start", 0, 0, "1"), l(0, 11, "finish", 0, 0, "ok"),
		}, handled(1, 20, 0, 1)), killed: map[int]bool{0: true}, dups: map[string]int{"crashed": 1}},
		{name: "AgainAfterLostClaim", pushes: 1, lines: cat(handled(0, 10, 0, 0),
			[]conformance.PFLine{l(0, 12, "event", 0, 0, "claim_lost handling")}, handled(1, 20, 0, 1)),
			dups: map[string]int{"lost": 1}},
		{name: "Unguarded", pushes: 1, lines: cat(handled(0, 10, 0, 0),
			[]conformance.PFLine{l(1, 19, "event", 0, 1, "unguarded claim")}, handled(1, 20, 0, 1)),
			dups: map[string]int{"unguarded": 1}},
		// The children's lines reach the parent in any order; the
		// checker orders starts by their time.
		{name: "OrderByTime", pushes: 1, lines: cat(handled(1, 20, 0, 1), []conformance.PFLine{
			l(0, 10, "start", 0, 0, "1"), l(0, 11, "finish", 0, 0, "err"),
		}), dups: map[string]int{"failed": 1}},
		{name: "AgainAfterFinished", pushes: 1, lines: cat(handled(0, 10, 0, 0), handled(1, 20, 0, 1)),
			wantBad: "push 0 handled again after a handler that finished"},
		{name: "AgainAfterFinishedThenFailed", pushes: 1, lines: cat(handled(0, 10, 0, 0), []conformance.PFLine{
			l(1, 20, "start", 0, 1, "1"), l(1, 21, "finish", 0, 1, "err"),
		}), wantBad: "push 0 handled again after a handler that finished"},
		{name: "NeverHandled", pushes: 2, lines: cat(handled(0, 10, 0, 0), []conformance.PFLine{
			l(0, 20, "start", 1, 0, "1"), l(0, 21, "finish", 1, 0, "err"),
		}), wantBad: "push 1 was never handled"},
		{name: "NeverStarted", pushes: 2, lines: handled(0, 10, 0, 0), wantBad: "push 1 was never handled"},
		{name: "Hung", pushes: 1, lines: cat([]conformance.PFLine{l(0, 10, "start", 0, 0, "1")}, handled(1, 20, 0, 1)),
			wantBad: "a handler never finished"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dups, bad := conformance.CheckPushHistory(c.pushes, c.lines, c.killed)
			switch {
			case c.wantBad == "" && len(bad) > 0:
				t.Fatalf("violations %q, want none", bad)
			case c.wantBad != "" && (len(bad) == 0 || !strings.Contains(bad[0], c.wantBad)):
				t.Fatalf("violations %q, want one with %q", bad, c.wantBad)
			case c.wantBad != "":
				return
			}
			for _, cause := range []string{"crashed", "failed", "lost", "unguarded", "other"} {
				if dups[cause] != c.dups[cause] {
					t.Errorf("duplicates after %s: %d, want %d (all: %v)", cause, dups[cause], c.dups[cause], dups)
				}
			}
		})
	}
}

// pushLocalEnv makes TestPushFleetLocalClaimsChild run.
const pushLocalEnv = "WECHATCONF_CONFORMANCE_PUSH_LOCAL"

// pushLocal is one MemoryStore per process, declared (wrongly) as a shared
// backend: claims that only work inside one process, what an in-process
// duplicate checker does.
var pushLocal = core.NewMemoryStore(core.WithLease(testLease))

// TestPushFleetLocalClaimsChild runs PushFleet on per-process stores; it
// is run in a child process by TestPushFleetCatchesProcessLocalClaims.
func TestPushFleetLocalClaimsChild(t *testing.T) {
	if os.Getenv(pushLocalEnv) == "" {
		t.Skipf("runs only as the child of TestPushFleetCatchesProcessLocalClaims (%s not set)", pushLocalEnv)
	}
	conformance.PushFleet(t, conformance.Harness{
		NewStore: func(testing.TB) core.TokenStore { return pushLocal },
		Lease:    testLease,
	}, pushLocalFleet)
}

// pushLocalFleet is a small fleet: 4 processes, 60 pushes over 5 s, no
// kills. About 12 of its handlers are slower than WeChat's timeout, and
// each of their retries reaches another process (whose claims know
// nothing of the first) with probability 3/4: that none does has odds of
// about (1/4)^12.
var pushLocalFleet = conformance.PushFleetConfig{Procs: 4, Pushes: 60, Spread: 5 * time.Second, Kills: -1, Seed: 0x5eed}

// TestPushFleetCatchesProcessLocalClaims tests PushFleet itself: claims
// that only work inside one process must fail it, with pushes handled
// again after a handler that finished.
func TestPushFleetCatchesProcessLocalClaims(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestPushFleetLocalClaimsChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), pushLocalEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("PushFleet passed process-local claims; want a failure. Output:\n%s", out)
	}
	if want := "handled again after a handler that finished (rule b)"; !bytes.Contains(out, []byte(want)) {
		t.Fatalf("PushFleet on process-local claims: want the report %q. Output:\n%s", want, out)
	}
}
