package conformance

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// crashChildEnv, set in the crash check's child process, holds the key the
// child must lock; its presence makes Run play the crashing holder.
const crashChildEnv = "WECHATCONF_CONFORMANCE_CRASH_KEY"

// crashMarker is the line the child writes to stdout once it holds the lock.
const crashMarker = "wechatconf/conformance: crash child is inside fetch"

// childStartTimeout bounds how long the child may take to start and take
// the lock.
const childStartTimeout = 30 * time.Second

// testRefreshSurvivesCrashedHolder tests rule 5: a holder in another OS
// process, killed with SIGKILL while inside fetch, frees the lock within its
// lease. The child (the test binary started again, see the package
// documentation) takes the lock and blocks in fetch; while it lives, a
// Refresh here must wait; once it is killed, a Refresh here fetches within
// the lease (plus leaseSlack, plus costMargin times what a Refresh costs on
// this machine at that moment) of the child taking the lock.
func testRefreshSurvivesCrashedHolder(t *testing.T, f *fixture) {
	switch {
	case f.h.SingleProcess != "":
		t.Skipf("the crash check needs a backend another process can reach; Harness.SingleProcess says: %s", f.h.SingleProcess)
	case runtime.GOOS == "windows" || runtime.GOOS == "plan9":
		t.Skipf("the crash check kills a process with SIGKILL, which %s lacks", runtime.GOOS)
	}
	key := f.key("k")
	s := f.store()
	cost := f.measureCost("crash", []core.TokenStore{s}, 0)
	cmd := exec.Command(os.Args[0], "-test.run="+runPattern(f.runName))
	cmd.Env = append(os.Environ(), f.h.ChildEnv...)
	cmd.Env = append(cmd.Env, crashChildEnv+"="+key)
	out := &markerWriter{marker: crashMarker, seen: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	// The child exits when this pipe closes, so it cannot outlive us.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("crash child: %v", err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatalf("crash child: starting %s: %v", os.Args[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil {
				t.Errorf("crash child: kill: %v", err)
			}
			<-exited
		}
	}
	defer kill()

	select {
	case <-out.seen:
	case err := <-exited:
		killed = true
		t.Fatalf("crash child (%s -test.run=%s) exited (%v) before taking the lock of %q; its output:\n%s", os.Args[0], runPattern(f.runName), err, key, out)
	case <-time.After(childStartTimeout):
		t.Fatalf("crash child did not take the lock of %q within %v; its output:\n%s", key, childStartTimeout, out)
	case <-f.ctx.Done():
		t.Fatalf("crash child did not take the lock of %q before the watchdog fired; its output:\n%s", key, out)
	}
	locked := time.Now()

	// While the child lives, its lock must hold here too; otherwise the
	// child did not reach this backend and the check below proves nothing.
	probe := f.h.Lease / 4
	ctx, cancel := context.WithTimeout(f.ctx, probe)
	var c fetchCounter
	_, err = s.Refresh(ctx, key, "", c.returning(token("probe")))
	cancel()
	if c.n() != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Refresh(%q, stale=%q) while the child holds the lock: fetch ran %d times, err %v; want it to wait until its %v ctx ends (is the child on the same backend? see Harness.ChildEnv)", key, "", c.n(), err, probe)
	}

	kill()
	killedAt := time.Now()
	allowance := f.h.Lease + leaseSlack(f.h.Lease)
	deadline := locked.Add(allowance + costMargin*cost)
	ctx, cancel = context.WithDeadline(f.ctx, deadline)
	defer cancel()
	fresh := token("after-crash")
	c = fetchCounter{}
	got, err := s.Refresh(ctx, key, "", c.returning(fresh))
	switch {
	case err != nil:
		t.Errorf("Refresh(%q, stale=%q) after the holder was killed: %v; want a fetch within the %v lease (+%v) of its taking the lock (rule 5; %s)", key, "", err, f.h.Lease, leaseSlack(f.h.Lease), fmtCost(allowance, cost, deadline.Sub(locked)))
	case c.n() != 1 || !sameToken(got, fresh):
		t.Errorf("Refresh(%q, stale=%q) after the holder was killed = %s, fetch ran %d times; want the fetched %s (rule 5)", key, "", fmtToken(got), c.n(), fmtToken(fresh))
	default:
		t.Logf("lock of the killed holder taken over %v after the kill, %v after it was taken (lease %v; %s)", time.Since(killedAt), time.Since(locked), f.h.Lease, fmtCost(allowance, cost, deadline.Sub(locked)))
	}
}

// runPattern returns the -test.run pattern that selects exactly the test
// (or subtest) called name.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// runCrashChild plays the crash check's holder in the child process: it
// takes the lock of key through a store from h and blocks inside fetch until
// the parent kills it.
func runCrashChild(t *testing.T, h Harness, key string) {
	parentGone := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin) // returns when the parent closes the pipe or dies
		close(parentGone)
	}()
	s := h.NewStore(t)
	tok, err := s.Refresh(context.Background(), key, "", func(context.Context) (core.Token, error) {
		fmt.Println(crashMarker)
		<-parentGone // blocks until killed, or until the parent is gone
		return core.Token{}, errors.New("crash child: the parent went away")
	})
	t.Fatalf("crash child: Refresh(%q, stale=%q) = %s, %v without blocking in fetch until killed", key, "", fmtToken(tok), err)
}

// markerWriter collects a child's output and closes seen when a line equal
// to marker was written.
type markerWriter struct {
	marker string
	seen   chan struct{}

	mu      sync.Mutex
	buf     bytes.Buffer
	scanned int
	found   bool
}

func (w *markerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.found {
		sc := bufio.NewScanner(bytes.NewReader(w.buf.Bytes()[w.scanned:]))
		for sc.Scan() {
			if sc.Text() == w.marker {
				w.found = true
				close(w.seen)
				break
			}
		}
		if i := bytes.LastIndexByte(w.buf.Bytes(), '\n'); i >= 0 {
			w.scanned = i + 1
		}
	}
	return len(p), nil
}

func (w *markerWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
