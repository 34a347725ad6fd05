package conformance

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// The claim checks that need other OS processes: the test binary started
// again, as for the crash check (see the package documentation), with an
// environment variable that makes Run in the child play its part only.

// Environment of a claim check's child process.
const (
	// claimRaceEnv holds the key prefix of ClaimOneWinnerAcrossProcesses;
	// its presence makes Run play one process of the race.
	claimRaceEnv = "WECHATCONF_CONFORMANCE_CLAIM_RACE"
	// claimProcEnv numbers the race's processes (the parent is 0).
	claimProcEnv = "WECHATCONF_CONFORMANCE_CLAIM_PROC"
	// claimHoldEnv holds the key ClaimCrashedHolder's child claims; its
	// presence makes Run play the holder that is killed.
	claimHoldEnv = "WECHATCONF_CONFORMANCE_CLAIM_HOLD"
	// claimTTLEnv is the ttl of that claim (time.Duration's format).
	claimTTLEnv = "WECHATCONF_CONFORMANCE_CLAIM_TTL"
)

// Sizes of ClaimOneWinnerAcrossProcesses: claimProcs children and the
// parent, each with claimPerProc goroutines, claim claimProcKeys keys one
// after the other.
const (
	claimProcs    = 3
	claimPerProc  = 8
	claimProcKeys = 4
)

// Lines the claim checks' children write.
const (
	claimReady      = "wechatconf/conformance: claim child ready"
	claimResultLine = "wechatconf/conformance: claim result "
	claimHeldMarker = "wechatconf/conformance: claim child holds its claim"
	claimBeganLine  = "wechatconf/conformance: claim child called Claim at "
	// claimCrashValue is the value of the killed holder's claim.
	claimCrashValue = "killed-holder"
)

// runClaimChild plays a claim check's child process if the environment
// asks for one, and reports whether it did.
func runClaimChild(t *testing.T, h Harness) bool {
	if key, ok := os.LookupEnv(claimHoldEnv); ok {
		runClaimHoldChild(t, h, key)
		return true
	}
	if base, ok := os.LookupEnv(claimRaceEnv); ok {
		runClaimRaceChild(t, h, base)
		return true
	}
	return false
}

// claimChild is a running child process of a claim check.
type claimChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // the child exits when it closes
	out   *markerWriter
	done  chan error

	exited bool
	err    error
}

// startClaimChild starts the test binary again with env added to the
// harness's ChildEnv; marker is the line its output is watched for. The
// child is killed at the end of the check at the latest.
func (f *fixture) startClaimChild(marker string, env ...string) *claimChild {
	f.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run="+runPattern(f.runName))
	cmd.Env = append(os.Environ(), f.h.ChildEnv...)
	cmd.Env = append(cmd.Env, env...)
	// A -race child would otherwise sleep a second when it exits.
	cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	c := &claimChild{cmd: cmd, out: &markerWriter{marker: marker, seen: make(chan struct{})}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		f.t.Fatalf("claim child: %v", err)
	}
	if err := cmd.Start(); err != nil {
		f.t.Fatalf("claim child: starting %s: %v", os.Args[0], err)
	}
	go func() { c.done <- cmd.Wait() }()
	f.t.Cleanup(func() { c.stdin.Close(); c.kill() })
	return c
}

// waitMarker waits until the child wrote its marker line, and stops the
// check if it exits first or takes longer than childStartTimeout. what
// says what the marker means.
func (f *fixture) waitMarker(c *claimChild, what string) {
	f.t.Helper()
	select {
	case <-c.out.seen:
	case err := <-c.done:
		c.exited, c.err = true, err
		f.t.Fatalf("claim child (%s -test.run=%s) exited (%v) before it %s; its output:\n%s", os.Args[0], runPattern(f.runName), err, what, c.out)
	case <-time.After(childStartTimeout):
		f.t.Fatalf("claim child did not %s within %v; its output:\n%s", what, childStartTimeout, c.out)
	case <-f.ctx.Done():
		f.t.Fatalf("claim child did not %s before the watchdog fired; its output:\n%s", what, c.out)
	}
}

// wait waits for the child to exit and returns its error; the watchdog's
// context bounds the wait.
func (c *claimChild) wait(ctx context.Context) error {
	if !c.exited {
		select {
		case c.err = <-c.done:
			c.exited = true
		case <-ctx.Done():
			return fmt.Errorf("still running when the watchdog fired: %w", ctx.Err())
		}
	}
	return c.err
}

// kill kills the child with SIGKILL, if it still runs, and waits for it.
func (c *claimChild) kill() {
	if !c.exited {
		c.cmd.Process.Kill()
		c.err, c.exited = <-c.done, true
	}
}

// raceKey is the key number k of ClaimOneWinnerAcrossProcesses under base.
func raceKey(base string, k int) string { return base + "k" + strconv.Itoa(k) }

// raceValue is the value caller g of process proc claims with.
func raceValue(proc, g int) string { return fmt.Sprintf("p%d-g%d", proc, g) }

// raceClaims runs one process's part of ClaimOneWinnerAcrossProcesses on
// c: claimPerProc goroutines each claim the keys under base in turn, with
// a value of their own, and report each result to report.
func raceClaims(ctx context.Context, c core.ClaimStore, base string, proc int, report func(k int, r claimResult)) {
	var wg sync.WaitGroup
	for g := range claimPerProc {
		value := raceValue(proc, g)
		wg.Go(func() {
			for k := range claimProcKeys {
				held, err := c.Claim(ctx, raceKey(base, k), value, claimLongTTL)
				report(k, claimResult{value: value, held: held, err: err})
			}
		})
	}
	wg.Wait()
}

// testClaimOneWinnerAcrossProcesses tests ClaimOneWinner across OS
// processes: claimProcs child processes (the test binary started again)
// and this one, each on a store value of its own with claimPerProc
// goroutines, released together, claim claimProcKeys keys in turn, each
// caller with a value of its own; the children report their results on
// stdout. For each key exactly one caller in all the processes gets its
// own value back, and every other gets the winner's. Skipped, saying why,
// under Harness.SingleProcess.
func testClaimOneWinnerAcrossProcesses(t *testing.T, f *fixture) {
	if f.h.SingleProcess != "" {
		t.Skipf("the check needs a backend other processes can reach; Harness.SingleProcess says: %s", f.h.SingleProcess)
	}
	c := f.claimStore()
	base := f.key("")
	children := make([]*claimChild, claimProcs)
	for i := range children {
		children[i] = f.startClaimChild(claimReady, claimRaceEnv+"="+base, claimProcEnv+"="+strconv.Itoa(i+1))
	}
	for _, ch := range children {
		f.waitMarker(ch, "got ready to claim")
	}

	results := make([][]claimResult, claimProcKeys)
	var mu sync.Mutex
	report := func(k int, r claimResult) {
		mu.Lock()
		defer mu.Unlock()
		results[k] = append(results[k], r)
	}
	for _, ch := range children {
		io.WriteString(ch.stdin, "go\n")
	}
	raceClaims(f.ctx, c, base, 0, report)

	for i, ch := range children {
		if err := ch.wait(f.ctx); err != nil {
			t.Fatalf("claim child %d: %v; its output:\n%s", i+1, err, ch.out)
		}
		sc := bufio.NewScanner(strings.NewReader(ch.out.String()))
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), claimResultLine)
			if !ok {
				continue
			}
			var (
				k      int
				r      claimResult
				errMsg string
			)
			if _, err := fmt.Sscanf(line, "%d %q %q %q", &k, &r.value, &r.held, &errMsg); err != nil || k < 0 || k >= claimProcKeys {
				t.Fatalf("claim child %d wrote %q: %v", i+1, sc.Text(), err)
			}
			if errMsg != "" {
				r.err = fmt.Errorf("in child %d: %s", i+1, errMsg)
			}
			report(k, r)
		}
	}
	callers := (claimProcs + 1) * claimPerProc
	where := fmt.Sprintf("%d processes × %d goroutines", claimProcs+1, claimPerProc)
	for k, rs := range results {
		key := raceKey(base, k)
		if len(rs) != callers {
			t.Errorf("Claim(%q) by %s: %d results reported, want %d", key, where, len(rs), callers)
		}
		judgeClaims(t, key, rs, where)
	}
}

// runClaimRaceChild plays one child process of
// ClaimOneWinnerAcrossProcesses: it builds its store, says it is ready,
// waits for the parent's "go" and claims, writing one line per result.
func runClaimRaceChild(t *testing.T, h Harness, base string) {
	proc, err := strconv.Atoi(os.Getenv(claimProcEnv))
	if err != nil || proc <= 0 {
		t.Fatalf("claim child: bad %s=%q", claimProcEnv, os.Getenv(claimProcEnv))
	}
	c, _ := core.ClaimStoreFor(h.NewStore(t))
	fmt.Println(claimReady)
	if line, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil || line != "go\n" {
		t.Fatalf("claim child: waiting for the start: %q, %v", line, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), childStartTimeout)
	defer cancel()
	var mu sync.Mutex
	raceClaims(ctx, c, base, proc, func(k int, r claimResult) {
		errMsg := ""
		if r.err != nil {
			errMsg = r.err.Error()
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf("%s%d %q %q %q\n", claimResultLine, k, r.value, r.held, errMsg)
	})
}

// testClaimCrashedHolder tests that the claim of a holder that died ends
// with its ttl: a child process (the test binary started again) claims a
// key with claimTTL and is killed with SIGKILL once this process saw the
// claim held (a Claim here returned the child's value); a probe Claim here
// then wins within ttl + claimSlack (plus costMargin times what a Claim
// cost) of the child's claim, and not before its ttl had passed since the
// child called Claim. Skipped, saying why, under Harness.SingleProcess,
// and on Windows and Plan 9.
func testClaimCrashedHolder(t *testing.T, f *fixture) {
	switch {
	case f.h.SingleProcess != "":
		t.Skipf("the check needs a backend another process can reach; Harness.SingleProcess says: %s", f.h.SingleProcess)
	case runtime.GOOS == "windows" || runtime.GOOS == "plan9":
		t.Skipf("the check kills a process with SIGKILL, which %s lacks", runtime.GOOS)
	}
	c := f.claimStore()
	ttl := f.claimTTL()
	for round := 1; round <= timingRounds; round++ {
		key := f.key(fmt.Sprintf("k%d", round))
		child := f.startClaimChild(claimHeldMarker, claimHoldEnv+"="+key, claimTTLEnv+"="+ttl.String())
		f.waitMarker(child, "claimed "+key)
		seen := time.Now()
		began := childClaimBegan(t, child)

		probeBegan := time.Now()
		held, err := c.Claim(f.ctx, key, "parent", claimLongTTL)
		returned := time.Now()
		switch {
		case err != nil:
			t.Fatalf("Claim(%q, %q) while the child holds the key: %v", key, "parent", err)
		case held == "parent" && returned.Before(began.Add(ttl-claimClockSlack)):
			t.Fatalf("Claim(%q, %q) %v after the child claimed the key with a ttl of %v = %q, want the child's %q (is the child on the same backend? see Harness.ChildEnv)",
				key, "parent", returned.Sub(began).Round(time.Millisecond), ttl, held, claimCrashValue)
		case held == "parent":
			t.Logf("round %d: Claim(%q) returned %v after the child's claim, past its %v ttl on this busy machine: running the round again", round, key, returned.Sub(began).Round(time.Millisecond), ttl)
			child.kill()
			continue
		case held != claimCrashValue:
			t.Fatalf("Claim(%q, %q) while the child holds the key = %q, want the child's %q", key, "parent", held, claimCrashValue)
		}
		child.kill()
		deadline := seen.Add(ttl + claimSlack(f.h.Lease) + costMargin*returned.Sub(probeBegan))
		f.wantClaimGone(c, key, claimCrashValue, "parent", began, ttl, deadline, "a killed holder's claim ends with its ttl")
		return
	}
	t.Errorf("Claim of the child's key returned past the claim's %v ttl in each of %d rounds: the machine is too slow for the check to tell", ttl, timingRounds)
}

// childClaimBegan returns when the child called Claim, from the line it
// wrote before its marker.
func childClaimBegan(t *testing.T, c *claimChild) time.Time {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(c.out.String()))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), claimBeganLine); ok {
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("claim child wrote %q: %v", sc.Text(), err)
			}
			return time.Unix(0, ns)
		}
	}
	t.Fatalf("claim child wrote its marker without the time it called Claim; its output:\n%s", c.out)
	return time.Time{}
}

// runClaimHoldChild plays ClaimCrashedHolder's child: it claims key, says
// when it called Claim and that it holds the claim, and waits to be
// killed.
func runClaimHoldChild(t *testing.T, h Harness, key string) {
	ttl, err := time.ParseDuration(os.Getenv(claimTTLEnv))
	if err != nil {
		t.Fatalf("claim child: bad %s=%q: %v", claimTTLEnv, os.Getenv(claimTTLEnv), err)
	}
	parentGone := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin) // returns when the parent closes the pipe or dies
		close(parentGone)
	}()
	c, _ := core.ClaimStoreFor(h.NewStore(t))
	began := time.Now()
	held, err := c.Claim(context.Background(), key, claimCrashValue, ttl)
	if err != nil || held != claimCrashValue {
		t.Fatalf("claim child: Claim(%q, %q, %v) = %q, %v; want %q", key, claimCrashValue, ttl, held, err, claimCrashValue)
	}
	fmt.Println(claimBeganLine + strconv.FormatInt(began.UnixNano(), 10))
	fmt.Println(claimHeldMarker)
	<-parentGone
	t.Fatalf("claim child: the parent went away before killing the holder of %q", key)
}
