package conformance

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Environment of a ProcessHerd child: the simulated WeChat API's URL (its
// presence makes ProcessHerd play the child), the key prefix of the run and
// the number of goroutines.
const (
	herdURLEnv    = "WECHATCONF_CONFORMANCE_HERD_URL"
	herdPrefixEnv = "WECHATCONF_CONFORMANCE_HERD_PREFIX"
	herdNEnv      = "WECHATCONF_CONFORMANCE_HERD_N"
)

const (
	herdAppID     = "wxconformanceherd"
	herdAppSecret = "conformance-herd-secret"
	herdLatency   = 50 * time.Millisecond // WeChat's answer time, so that callers overlap
	herdTimeout   = 2 * time.Minute
)

// ProcessHerd is the fleet check: procs OS processes (the test binary started
// again, as for the crash check: see Harness.ChildEnv) each build a
// core.Conf over a store from h and, released together, call AccessToken
// from perProc goroutines on a cold start, against one simulated WeChat API
// (core/wxtest, in this process) in classic mode, where every fetch
// invalidates the previous token. Exactly one token fetch must reach WeChat,
// and all procs × perProc callers must get the same token.
//
// One holder's fetch may legitimately be followed by another when the
// holder outlives its lease (rule 5), which a busy machine can make happen
// although WeChat answers in 50ms; that takes the herd at least the lease
// per extra fetch. So a herd of n fetches that took at least n−1 times
// Harness.Lease is run again, up to herdRounds times, and only the last
// round's result counts; one that took less fails at once (processes that
// each fetch do so together, within WeChat's answer time).
//
// Call it from a test of its own, e.g.
//
//	func TestProcessHerd(t *testing.T) { conformance.ProcessHerd(t, harness(t), 8, 50) }
//
// In the child process the same call plays one process of the herd.
func ProcessHerd(t *testing.T, h Harness, procs, perProc int) {
	t.Helper()
	h = h.normalize(t)
	if url, ok := os.LookupEnv(herdURLEnv); ok {
		runHerdChild(t, h, url)
		return
	}
	if h.SingleProcess != "" {
		t.Skipf("ProcessHerd needs a backend other processes can reach; Harness.SingleProcess says: %s", h.SingleProcess)
	}
	for round := 1; ; round++ {
		fetches, elapsed := herdRound(t, h, procs, perProc, round == herdRounds)
		if fetches <= 1 || elapsed < time.Duration(fetches-1)*h.Lease || round == herdRounds || t.Failed() {
			return
		}
		t.Logf("ProcessHerd round %d: %d token fetches, but the herd took %v, at least a %v lease per extra fetch: each holder may have lost its lock to the lease on a busy machine; running the herd again",
			round, fetches, elapsed.Round(time.Millisecond), h.Lease)
	}
}

// herdRounds is how many times ProcessHerd runs a herd at most.
const herdRounds = 3

// herdRound runs one herd of ProcessHerd and returns how many token
// fetches reached WeChat and how long the herd took. It reports the
// failures of the round, except extra fetches in a herd that took at least
// a lease per extra fetch when it is not the last round.
func herdRound(t *testing.T, h Harness, procs, perProc int, last bool) (int, time.Duration) {
	t.Helper()
	wechat := wxtest.New(wxtest.Options{AppID: herdAppID, AppSecret: herdAppSecret, Now: time.Now, Latency: herdLatency})
	defer wechat.Close()
	prefix := fmt.Sprintf("%sherd%08x", h.KeyPrefix, rand.Uint32())

	ctx, cancel := context.WithTimeout(context.Background(), herdTimeout)
	defer cancel()
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *markerWriter
		done  chan error
	}
	children := make([]*child, procs)
	for i := range children {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+runPattern(t.Name()))
		cmd.Env = append(os.Environ(), h.ChildEnv...)
		cmd.Env = append(cmd.Env, herdURLEnv+"="+wechat.URL, herdPrefixEnv+"="+prefix, herdNEnv+"="+strconv.Itoa(perProc),
			// A -race child would otherwise sleep 1 s at exit, inflating the herd's time.
			"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		c := &child{cmd: cmd, out: &markerWriter{marker: herdReady, seen: make(chan struct{})}, done: make(chan error, 1)}
		cmd.Stdout, cmd.Stderr = c.out, c.out
		var err error
		if c.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("herd child %d: starting %s: %v", i, os.Args[0], err)
		}
		go func() { c.done <- cmd.Wait() }()
		children[i] = c
		defer func() { c.stdin.Close(); cmd.Process.Kill() }()
	}
	// Release the herd once every process has its Conf ready.
	for i, c := range children {
		select {
		case <-c.out.seen:
		case err := <-c.done:
			t.Fatalf("herd child %d exited (%v) before it was ready; its output:\n%s", i, err, c.out)
		case <-ctx.Done():
			t.Fatalf("herd child %d not ready within %v; its output:\n%s", i, herdTimeout, c.out)
		}
	}
	start := time.Now()
	for _, c := range children {
		io.WriteString(c.stdin, "go\n")
	}
	tokens := map[string]int{}
	for i, c := range children {
		if err := <-c.done; err != nil {
			t.Errorf("herd child %d: %v; its output:\n%s", i, err, c.out)
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(c.out.String()))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), herdTokenLine); ok {
				tokens[v]++
			}
		}
	}
	elapsed := time.Since(start)

	got := 0
	for _, n := range tokens {
		got += n
	}
	fetches := wechat.Calls(wxtest.PathToken)
	t.Logf("ProcessHerd: %d processes × %d goroutines: %d token fetch(es), herd done %v after release (WeChat latency %v)",
		procs, perProc, fetches, elapsed.Round(time.Millisecond), herdLatency)
	if fetches > 1 && elapsed >= time.Duration(fetches-1)*h.Lease && !last {
		return fetches, elapsed // inconclusive: each extra fetch may follow a lease that ran out
	}
	if fetches != 1 {
		t.Errorf("ProcessHerd: %d processes × %d goroutines made %d token fetches, want 1", procs, perProc, fetches)
	}
	if len(tokens) != 1 || got != procs*perProc {
		t.Errorf("ProcessHerd: callers got %d distinct tokens in %d answers, want 1 token in %d answers", len(tokens), got, procs*perProc)
	}
	return fetches, elapsed
}

// Lines a herd child writes: ready once its Conf is built, then one line
// per caller with the token it got.
const (
	herdReady     = "wechatconf/conformance: herd child ready"
	herdTokenLine = "wechatconf/conformance: herd token "
)

// runHerdChild plays one process of ProcessHerd.
func runHerdChild(t *testing.T, h Harness, url string) {
	n, err := strconv.Atoi(os.Getenv(herdNEnv))
	if err != nil || n <= 0 {
		t.Fatalf("herd child: bad %s=%q", herdNEnv, os.Getenv(herdNEnv))
	}
	conf, err := core.New(core.Config{
		AppID: herdAppID, AppSecret: core.NewSecret(herdAppSecret), TokenAPI: core.ClassicToken,
		BaseURL: url, KeyPrefix: os.Getenv(herdPrefixEnv), Store: h.NewStore(t),
		RetryBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(herdReady)
	if line, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil || line != "go\n" {
		t.Fatalf("herd child: waiting for the start: %q, %v", line, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), herdTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range n {
		wg.Go(func() {
			tok, err := conf.AccessToken(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("herd child: AccessToken: %v", err)
				return
			}
			fmt.Println(herdTokenLine + tok.Value)
		})
	}
	wg.Wait()
}
