// # The fault sweep
//
// Sweep proves that a store keeps the durable state of the credential
// chain — an authorizer_refresh_token, a component_verify_ticket, a
// withdrawal, a WeCom corp's permanent_code — and the claims that have
// each push handled once, whichever of its calls fails, and how. It wraps
// the store in a fault injector and runs each of its scenarios (one
// process, or two, of a vendor platform — an openplatform.Component, or a
// wecomvendor.Suite of a third-party or a custom-developed "dk" app — with
// one or two tenants (authorizers, corps), or two core.Conf of an Official
// Account, against the simulated WeChat of core/wxtest on its manual
// clock; or two processes with a core.Dedup):
//
//   - FirstAuthorization: the redirect (Component.Authorize with the code)
//     and the authorized push, each delivered twice;
//   - Refresh and RefreshRotated: an authorizer token refreshed, WeChat
//     echoing or rotating the refresh token;
//   - VerifyTickets: ticket pushes duplicated and out of order;
//   - Reauthorize: a withdrawal, then a re-authorization, in order;
//   - WithdrawReauthorize: a withdrawal, then a re-authorization, with the
//     pushes late, duplicated and reordered (the T0 withdrawal delivered
//     again after the T0+20s authorization; an authorization's push
//     before the older withdrawal's; an authorization's push after the
//     newer withdrawal's);
//   - TwoProcesses: two processes refreshing one authorizer at once,
//     WeChat rotating its refresh token;
//   - WeComInstall, WeComCancelReinstall (WithdrawReauthorize's story:
//     a late create_auth, which names no corp and whose code WeCom
//     refuses as used, is found through the code index or ignored),
//     WeComResetPermanentCode (a "dk" suite's reset_permanent_code,
//     delivered twice: the new code voids the old at WeCom),
//     WeComSuiteTickets and WeComTwoProcesses: the vendor scenarios on a
//     wecomvendor.Suite, through the same steps and invariants (the
//     scenario's platform: see platform in sweepplatform.go); a
//     suite_ticket lives 30 minutes, so when the clock moves past every
//     expiry WeCom's newest ticket is handed to the store too, as its
//     pushes every 10 minutes would have;
//   - LostLease: the Official Account's classic token refreshed by two
//     processes, the first one's lease running out during its fetch (its
//     fenced write fails with core.ErrLockLost) and the second taking the
//     lock only after the first one's next store call;
//   - Pushes: two processes, each with a core.Dedup on the store (Lease
//     500ms, Wait six leases, CallTimeout the hang mode's wait there),
//     receive pushes through Dedup.Do with core.PushKey keys — a message
//     whose handler fails once, an event, two different events of one
//     user in one second, and the event again after its answer was lost
//     — delivered as WeChat does: first to A, then, while a delivery is
//     not answered with status 200 (PushOutcome.HTTPStatus), again to B,
//     A (restarted after a kill), B. Every handler's start and end is
//     recorded in the parent's history, in order with the store calls and
//     writes (a kill-mode child reports them as it goes).
//
// Each scenario runs once without a fault (the baseline, which counts its
// store calls N), then once per fault point: for every k from 1 to N, one
// fault at the k-th store call, in each mode:
//
//   - fail: the call fails without effect (a Refresh before its lock and
//     fetch);
//   - lands: the call takes effect, then reports failure (a Refresh's
//     fetch runs and its result is written);
//   - hang: the call blocks until its ctx ends, without effect. The run's
//     processes have a short RefreshTimeout (ten times the baseline's
//     slowest step, 500ms to 3s) and its calls the same deadline, so that
//     every hang ends by its ctx;
//   - lost, for a Refresh only: the fetch runs (WeChat issues), then the
//     write fails — the store lost the connection, or the lease, under
//     the fetch;
//   - kill: the process is killed with SIGKILL right after the call
//     returns, or (Pushes) right after a push handler returns: the crash
//     between the Claim and the call that records or releases the push. The scenario's process A is then a child process (the test
//     binary started again, as for the crash check: see Harness.ChildEnv)
//     that runs the scenario's steps as its parent sends them, the k-th
//     call is the k-th of A's, and a new process takes A's place after the
//     kill. Skipped when Harness.SingleProcess is set.
//
// The store calls are those of core.TokenStore (Get, Set, Refresh) and,
// when the store implements core.ClaimStore, its Claim and
// CompareAndSwapClaim (every mode but lost). On a store without it, a
// Dedup emulates its claims over Refresh (core.ClaimsOver), and the faults
// hit the emulation's Get and Refresh calls instead.
//
// After the fault the store answers again, and the run is driven to rest
// as WeChat and callers would: a push not answered "success" is delivered
// again (WeChat's three re-sends), a failed call is made again (three
// times in all), then the clock moves past every expiry and each
// process's callers ask for every credential. Then the invariants are
// checked:
//
//  1. the authorizer_refresh_token WeChat honours
//     (wxtest.Server.RefreshTokenValid) is the one in the store
//     (Component.RefreshToken), or the merchant withdrew and the store
//     says so; on WeCom, the permanent_code (PermanentCodeValid,
//     Suite.PermanentCode), or the corp cancelled;
//  2. no older value replaces a newer one: no key's value comes back once
//     another replaced it (the history of what every call wrote, keys and
//     values opaque), the stored verify ticket moves forward by CreateTime
//     and ends the newest, an authorizer's stored state moves forward by
//     the time of the event it follows (sampled after every step), and no
//     process is served a token older than one it was served
//     (wxtest.Server.TokenSeq; WeCom tokens have no issue order there,
//     and are not checked so);
//  3. no withdrawn authorizer is served a token: AccessToken and Do answer
//     a *openplatform.ReauthorizeError (*wecomvendor.ReauthorizeError)
//     matching core.ErrRevoked, in the
//     process that took the withdrawal from the moment it did, in every
//     process at rest;
//  4. at rest no caller gets an error while WeChat honours the stored
//     refresh token, and every token served works at WeChat;
//  5. WeChat issues at most one token of each kind more than the scenario
//     without a fault (one per refresh cycle): the fault's own.
//
// And, for the Pushes scenario, on the history of the handlers' runs, the
// deliveries and the store's writes:
//
//  6. every push is handled (a handler finished) at least once, and
//     answered 200 within WeChat's re-sends;
//  7. no push is handled twice, unless the fault is one core.Dedup
//     documents as a possible duplicate, as the history shows it: a kill
//     of the process whose handler finished, after it finished and before
//     any write recorded the push as handled ("d/…"); or a fault of that
//     process's call of the push after its handler finished, when no such
//     write landed before the next run. Never two handlers of a push at
//     once, never three runs. Which (mode, call) pairs allow one is not
//     listed by k: it is derived from each run's history;
//  8. every delivery's outcome agrees with the runs: PushHandled (or
//     PushUnguarded) after its own handler started and finished,
//     PushFailed after it started and failed, PushDuplicate with no run
//     of its own and only after some handler of the push finished,
//     PushInProgress and PushRefused with no run of their own.
//
// The baseline must also play every step at the first try (each push
// answered "success" at once — but the Pushes message whose handler fails
// once —, each call succeeding) with at most one
// fetch per refresh cycle, and every run must reach rest: each push
// answered "success" within WeChat's re-sends. A faulted run fails for
// what it breaks that the baseline does not.
//
// What is sampled: the kill mode skips a kill right after a Get that
// follows the process's previous store call with no WeChat call between
// them — the same crash as a kill right after that previous call — unless
// SweepKillEnv is "all". Every k is tried in the other modes.
//
// Timing: nothing waits on a timer but the hang mode's ctx, and in
// Pushes a claim's lease: a delivery that finds the claim a killed process
// (or a release that failed) left waits for it to expire. A run that
// breaks an invariant while the machine's speed played a part (a call
// ran out its ctx, a Refresh lost its lock to the lease) is played once
// more, with twice the hang mode's wait, and the second result counts.
// The runs of a scenario run side by side (a simulated WeChat and keys of
// their own each), up to fourteen at a time, each calling Harness.NewStore two or
// three times (its store values are released with the run's subtest);
// memory and file stores take well under a minute with -race, servers in
// containers one to two.
//
// Each scenario × mode is a subtest (Sweep/FirstAuthorization/fail), each
// run a subtest of it (k=07); a run that breaks an invariant fails with the
// call it faulted and what broke, e.g.
//
//	RefreshRotated/fail k=7 (A Refresh("…/wxsweepauthorizer1/authorizer_refresh_token")):
//		invariant 1, the refresh token WeChat honours is stored: the store's refresh token of wxsweepauthorizer1 is not the one WeChat honours: its next refresh gets 61023 [step at rest]
//
// and Sweep logs a table: per scenario and mode, the fault points tried,
// those that broke an invariant, those after which WeChat issued one
// token more than without a fault (for Pushes instead: those that
// invariant 7 allows a duplicate, and those after which a push was
// handled twice), and the time.
//
// Not covered: faults of WeChat itself (its own errors, latency), two
// faults in one run, a kill inside a fetch (between WeChat's reply and the
// write: the lost mode plays its store side, and the Refresh kill points
// its crash side; and so the processes keep no fetch ledger, whose writes
// run on a goroutine of their own: a kill at one of them would be a kill
// inside another call's fetch), faults of processes other than A in the
// kill mode, a Dedup's renewals and a delivery that arrives while another
// handler of its push runs (the scenario's handlers return at once and its
// deliveries follow one another: a delivery waits on a live claim only
// after a fault left one; core/dedup_test.go injects the rest), and the
// limits and registries of the credentials (rejection limits,
// evicted handles), which have tests of their own.
package conformance

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// SweepKillEnv, set to "all" in the environment of the test that calls
// Sweep, makes its kill mode try every store call, including the kills
// right after a Get that are the same crash as one right after the call
// before it.
const SweepKillEnv = "WECHATCONF_SWEEP_KILL"

// Bounds of the sweep's concurrency: the runs of a scenario are
// independent (a simulated WeChat and keys of their own each), so they run
// side by side; a hang-mode run mostly waits, a kill-mode run starts a
// process.
const (
	sweepParallel     = 4
	sweepHangParallel = 8
	sweepKillParallel = 2
)

// Bounds of the RefreshTimeout (and call timeout) of the hang mode: ten
// times the baseline's slowest step, within these.
const (
	minHangWait = 500 * time.Millisecond
	maxHangWait = 3 * time.Second
)

// Sweep runs the fault sweep on the store h builds: every scenario, every
// fault mode, every store call of the scenario (see the package
// documentation, "The fault sweep"). Call it from a test of its own; in the
// kill mode's child process the same call plays the child:
//
//	func TestSweep(t *testing.T) { conformance.Sweep(t, harness(t)) }
//
// h.Lease bounds how long a process killed while it held a lock keeps it.
func Sweep(t *testing.T, h Harness) {
	t.Helper()
	sweep(t, h, nil)
}

// sweep is Sweep, limited to the scenarios named in only (nil: all).
func sweep(t *testing.T, h Harness, only []string) {
	t.Helper()
	h = h.normalize(t)
	if os.Getenv(sweepChildEnv) != "" {
		runSweepChild(t, h)
		return
	}
	sw := &sweeper{h: h, runName: t.Name(), killAll: os.Getenv(SweepKillEnv) == "all",
		sem: make(chan struct{}, sweepParallel), hangSem: make(chan struct{}, sweepHangParallel), killSem: make(chan struct{}, sweepKillParallel)}
	begin := time.Now()
	ReportNote(t, "Fault sweep", "One fault (fail, lands, hang, lost, kill) at each store call k of each scenario, then the scenario driven to rest and five invariants checked; \"broke an invariant\" counts fault points that broke one the fault-free run did not (must be 0); \"extra fetch\" counts fault points where WeChat issued one token more than the fault-free run (the fault's own, allowed). kill samples: a Get with no WeChat call since the previous store call is skipped as equivalent (WECHATCONF_SWEEP_KILL=all tries every one).")
	ReportNote(t, pushTable, "The Pushes scenario: two processes, each with a core.Dedup on the store, receive pushes delivered as WeChat does (re-sent while not answered 200); one fault at each store call k (Claim and CompareAndSwapClaim, or the Get and Refresh calls of core.ClaimsOver's emulation on a store without core.ClaimStore), and in the kill mode also right after each handler returns; invariants 6-8 checked on the history of the handlers' runs. \"duplicate allowed\" counts fault points the Dedup documents as a possible duplicate (a kill after the handler finished and before the push was recorded as handled, a record that never landed), derived from the history; \"duplicate seen\" those after which a push was handled twice: every one must be allowed, or it counts as broken.")
	for _, sc := range sweepScenarios {
		if only == nil || slices.Contains(only, sc.name) {
			t.Run(sc.name, func(t *testing.T) { sw.scenario(t, sc) })
		}
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	t.Logf("Sweep: %d runs in %v\n%s", sw.runs, time.Since(begin).Round(time.Millisecond), strings.Join(sw.table, "\n"))
}

// sweeper is one Sweep call.
type sweeper struct {
	h       Harness
	runName string
	killAll bool
	sem     chan struct{}
	hangSem chan struct{}
	killSem chan struct{}

	mu    sync.Mutex
	runs  int
	table []string
}

// scenario runs sc's baseline, then its modes side by side.
func (sw *sweeper) scenario(t *testing.T, sc *scenario) {
	var base *runResult
	t.Run(faultNone.String(), func(t *testing.T) {
		start := time.Now()
		base = sw.run(t, sc, faultNone, 0, 0, nil, nil)
		var failed []int
		if len(base.found) > 0 {
			failed = []int{0}
		}
		sw.row(sc, faultNone, 1, 0, failed, 0, 0, 0, 0, time.Since(start))
	})
	if base == nil { // -run left the baseline out: play it unreported
		base = sw.runOnce(t, sc, faultNone, 0, 0, nil)
	}
	if len(base.calls) == 0 {
		t.Errorf("%s: the baseline made no store call: nothing to sweep", sc.name)
		return
	}
	known := map[string]bool{}
	for _, v := range base.found {
		known[v.key()] = true
	}
	hangWait := min(max(10*base.slowest, minHangWait), maxHangWait)
	modes := []faultMode{faultFail, faultLands, faultHang, faultLost, faultKill}
	var wg sync.WaitGroup
	for _, m := range modes {
		wg.Go(func() {
			t.Run(m.String(), func(t *testing.T) { sw.mode(t, sc, m, base, known, hangWait) })
		})
	}
	wg.Wait()
}

// points returns the fault points of mode m, given the baseline's calls.
func (sw *sweeper) points(m faultMode, calls []storeCall) (ks []int, skipped int) {
	switch m {
	case faultLost:
		for _, c := range calls {
			if c.Op == "Refresh" {
				ks = append(ks, c.Seq)
			}
		}
		return ks, 0
	case faultKill:
		n := 0
		for _, c := range calls {
			if c.Proc != "A" {
				continue
			}
			n++
			if !sw.killAll && n > 1 && c.Op == "Get" && c.Quiet {
				skipped++
				continue
			}
			ks = append(ks, n)
		}
		return ks, skipped
	}
	for _, c := range calls {
		if c.Op != opHandler { // a kill point only
			ks = append(ks, c.Seq)
		}
	}
	return ks, 0
}

// mode runs every fault point of mode m. known holds the violations of the
// baseline: a run is told apart by what else it breaks.
func (sw *sweeper) mode(t *testing.T, sc *scenario, m faultMode, base *runResult, known map[string]bool, hangWait time.Duration) {
	if m == faultKill {
		switch {
		case sw.h.SingleProcess != "":
			t.Skipf("the kill mode needs a backend another process can reach; Harness.SingleProcess says: %s", sw.h.SingleProcess)
		case runtime.GOOS == "windows" || runtime.GOOS == "plan9":
			t.Skipf("the kill mode kills a process with SIGKILL, which %s lacks", runtime.GOOS)
		}
	}
	ks, skipped := sw.points(m, base.calls)
	sem := sw.sem
	switch m {
	case faultHang:
		sem = sw.hangSem
	case faultKill:
		sem = sw.killSem
	}
	start := time.Now()
	results := make([]*runResult, len(ks))
	played := make([]bool, len(ks))
	var wg sync.WaitGroup
	for i, k := range ks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t.Run(fmt.Sprintf("k=%02d", k), func(t *testing.T) {
				played[i] = true
				results[i] = sw.run(t, sc, m, k, hangWait, known, &base.counts)
			})
		})
	}
	wg.Wait()
	var failed []int
	notReached, tried, extra, dupAllowed, dupSeen := 0, 0, 0, 0, 0
	for i, res := range results {
		if played[i] {
			tried++
		}
		if res != nil && !res.notReached && res.counts.more(base.counts) {
			extra++
		}
		if res != nil && !res.notReached && res.push.dupAllowed {
			dupAllowed++
		}
		if res != nil && !res.notReached && res.push.dupSeen {
			dupSeen++
		}
		switch {
		case !played[i]: // left out by -run
		case res == nil: // the run stopped the test (t.Fatal in NewStore)
			failed = append(failed, ks[i])
		case res.notReached:
			notReached++
		case len(fresh(res.found, known)) > 0:
			failed = append(failed, ks[i])
		}
	}
	elapsed := time.Since(start)
	sw.row(sc, m, tried, skipped, failed, notReached, extra, dupAllowed, dupSeen, elapsed)
	if sc.pushes {
		ReportRow(t, pushTable, Col{"store", sw.runName}, Col{"scenario", sc.name}, Col{"mode", m.String()},
			Col{"fault points", fmt.Sprint(tried)}, Col{"skipped (equivalent)", fmt.Sprint(skipped)},
			Col{"broke an invariant", fmt.Sprint(len(failed))}, Col{"duplicate allowed", fmt.Sprint(dupAllowed)},
			Col{"duplicate seen", fmt.Sprint(dupSeen)}, Col{"time", elapsed.Round(time.Millisecond).String()})
		t.Logf("%s/%s: %d fault points tried (%d equivalent ones skipped), %d not reached, %d broke an invariant beyond the baseline %v, %d are a fault the Dedup documents as a possible duplicate, %d had a push handled twice, in %v",
			sc.name, m, tried, skipped, notReached, len(failed), failed, dupAllowed, dupSeen, elapsed.Round(time.Millisecond))
		return
	}
	ReportRow(t, "Fault sweep", Col{"store", sw.runName}, Col{"scenario", sc.name}, Col{"mode", m.String()},
		Col{"fault points", fmt.Sprint(tried)}, Col{"skipped (equivalent)", fmt.Sprint(skipped)},
		Col{"broke an invariant", fmt.Sprint(len(failed))}, Col{"extra fetch", fmt.Sprint(extra)},
		Col{"time", elapsed.Round(time.Millisecond).String()})
	t.Logf("%s/%s: %d fault points tried (%d equivalent ones skipped), %d not reached, %d broke an invariant beyond the baseline %v, %d had WeChat issue a token more than the baseline (the fault's own, allowed), in %v",
		sc.name, m, tried, skipped, notReached, len(failed), failed, extra, elapsed.Round(time.Millisecond))
}

// row adds a line to the table Sweep logs at its end.
func (sw *sweeper) row(sc *scenario, m faultMode, tried, skipped int, failed []int, notReached, extra, dupAllowed, dupSeen int, elapsed time.Duration) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.runs += tried
	f := fmt.Sprint(len(failed))
	if len(failed) > 0 {
		f += " " + strings.ReplaceAll(fmt.Sprint(failed), " ", ",")
	}
	last := fmt.Sprintf("extra fetch %2d", extra)
	if sc.pushes {
		last = fmt.Sprintf("duplicate allowed %2d seen %2d", dupAllowed, dupSeen)
	}
	sw.table = append(sw.table, fmt.Sprintf("\t%-20s %-8s points %3d (skipped %2d, not reached %2d)  failed %-24s %s  %v",
		sc.name, m, tried, skipped, notReached, f, last, elapsed.Round(time.Millisecond)))
}

// pushTable is the ReportRow table of the scenarios with pushes.
const pushTable = "Fault sweep, pushes"

// run plays one run and reports what it found on t. A run that broke an
// invariant while the machine's speed played a part — a call ran out its
// ctx (the hang mode's RefreshTimeout is short), a lock ran out its lease
// — is inconclusive, a second fault having been injected by the machine:
// it is played again, with twice the hang mode's wait each time, up to
// sweepAttempts runs, and the last run's result counts (as ProcessHerd's
// rounds). A fault the product mishandles breaks the invariant at every
// wait; one the machine's speed caused goes once the wait covers it (a
// loaded CI machine has needed more than one doubling).
func (sw *sweeper) run(t *testing.T, sc *scenario, m faultMode, k int, hangWait time.Duration, known map[string]bool, base *fetchCounts) *runResult {
	for attempt := 1; ; attempt++ {
		res := sw.runOnce(t, sc, m, k, hangWait, base)
		slow := res.slow()
		if len(fresh(res.found, known)) == 0 || slow == "" || attempt == sweepAttempts || t.Failed() {
			if slow != "" {
				t.Logf("the machine was slow: %s", slow)
			}
			sw.report(t, sc, m, k, res, known)
			return res
		}
		t.Logf("inconclusive (%s); running again%s", slow, describe(fresh(res.found, known)))
		hangWait *= 2
	}
}

// sweepAttempts is how many times an inconclusive run is played at most.
const sweepAttempts = 4

// runTimeout bounds one run: its watchdog.
func runTimeout(lease time.Duration) time.Duration { return 2*time.Minute + 4*lease }

// runOnce plays one run; base is what the baseline had WeChat issue (nil
// for the baseline itself).
func (sw *sweeper) runOnce(t *testing.T, sc *scenario, m faultMode, k int, hangWait time.Duration, base *fetchCounts) *runResult {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout(sw.h.Lease))
	defer cancel()
	r := &run{t: t, h: sw.h, sc: sc, mode: m, k: k, runName: sw.runName, ctx: ctx, timeout: callTimeout, base: base}
	switch m {
	case faultKill:
		r.plan = newFaultPlan(faultNone, 0) // the child injects; this plan records
	default:
		r.plan = newFaultPlan(m, k)
	}
	if m == faultHang {
		r.timeout, r.cfg.RefreshTimeout = hangWait, hangWait
	}
	res := r.play()
	if ctx.Err() != nil {
		res.found = append(res.found, violation{inv: "rest", what: "watchdog", msg: fmt.Sprintf("watchdog: the run was still going after %v", runTimeout(sw.h.Lease))})
	}
	return res
}

// report fails t with what a run found that the baseline (known) does
// not, and logs the rest.
func (sw *sweeper) report(t *testing.T, sc *scenario, m faultMode, k int, res *runResult, known map[string]bool) {
	t.Helper()
	where := ""
	if res.hit != nil {
		where = " (" + res.hit.String() + ")"
	}
	name := fmt.Sprintf("%s/%s k=%d%s", sc.name, m, k, where)
	if m == faultNone {
		name = sc.name + " without a fault"
	}
	found := fresh(res.found, known)
	holds := "invariants hold"
	if n := len(res.found) - len(found); n > 0 {
		holds = fmt.Sprintf("nothing broken beyond the %d violations the scenario has without a fault too", n)
	}
	switch {
	case res.notReached:
		t.Logf("%s: the run made fewer than %d store calls: fault not injected", name, k)
	case len(found) > 0:
		msg := name + ":" + describe(found)
		if len(res.notes) > 0 {
			msg += "\n\tdriving: " + strings.Join(res.notes, "; ")
		}
		t.Error(msg)
	default:
		t.Logf("%s: %s", name, holds)
	}
}

// fresh returns the violations of found that are not known.
func fresh(found []violation, known map[string]bool) []violation {
	var out []violation
	seen := map[string]bool{}
	for _, v := range found {
		if !known[v.key()] && !seen[v.key()+"\x00"+v.msg] {
			seen[v.key()+"\x00"+v.msg] = true
			out = append(out, v)
		}
	}
	return out
}
