package conformance

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Environment of an OpenPlatformFleet child: the simulated WeChat API's URL
// (its presence makes OpenPlatformFleet play the child), the key prefix of
// the round and the number of authorizers.
const (
	fleetURLEnv    = "WECHATCONF_CONFORMANCE_OPFLEET_URL"
	fleetPrefixEnv = "WECHATCONF_CONFORMANCE_OPFLEET_PREFIX"
	fleetNEnv      = "WECHATCONF_CONFORMANCE_OPFLEET_N"
)

// The simulated third-party platform of OpenPlatformFleet.
const (
	fleetComponentID     = "wxconformancefleet"
	fleetComponentSecret = "conformance-fleet-component-secret"
	fleetPushToken       = "conformanceFleetToken"
	fleetPushKey         = "conformanceFleetEncodingAESKey0123456789abc" // 43 characters
)

const (
	// FleetCycles is how many cycles OpenPlatformFleet runs: the cold
	// start, then FleetCycles-1 expiries of every token.
	FleetCycles = 3
	// FleetWorkers is how many goroutines of each child call the
	// authorizers in a cycle.
	FleetWorkers = 16

	fleetLatency = 5 * time.Millisecond // WeChat's answer time, so that fetches overlap callers
	// fleetStep moves the simulated clock past the expiry of every token
	// issued in the previous cycle (WeChat's 2 h, plus ten minutes).
	fleetStep    = wxtest.DefaultExpiresIn + 10*time.Minute
	fleetTimeout = 5 * time.Minute // one round, all cycles
)

// Lines a fleet child writes: ready once its Component is built; then, per
// cycle, up to fleetErrSamples error lines and the cycle's end with its
// count of caller errors.
const (
	fleetLine       = "wechatconf/conformance: opfleet "
	fleetReady      = fleetLine + "ready"
	fleetErrLine    = fleetLine + "error "
	fleetDoneLine   = fleetLine + "done " // + "<cycle> <errors> <of which core.ErrLockLost>"
	fleetErrSamples = 5
)

// fleetAppID is the AppID of the i-th authorizer of the fleet.
func fleetAppID(i int) string { return fmt.Sprintf("wxopfleet%07d", i) }

// OpenPlatformFleet is the fleet check of an Open Platform vendor
// (core/openplatform): procs OS processes (the test binary started again,
// as for ProcessHerd: see Harness.ChildEnv) each build an
// openplatform.Component over a store from h and call the API
// (Authorizer(appid).Do on wxtest.PathAPI) for every one of authorizers
// merchant accounts, from FleetWorkers goroutines each, all processes
// walking the authorizers in the same order, against one simulated Open
// Platform (core/wxtest, in this process, answering in 5ms).
//
// Before the children start, the parent delivers a component_verify_ticket
// push and an authorized push per authorizer through a Component of its own
// (Component.HandleEvent), so that the store holds the ticket, the
// component_access_token and each authorizer's access and refresh tokens.
// The simulated clock is the server's manual clock: at each cycle the
// parent sends its time to the children over stdin, and their Components
// read it (Config.Now), so the clock stands still during a cycle. There are
// FleetCycles cycles:
//
//   - cycle 0, the cold start, at the time of the authorizations: every
//     token is adopted from the store, and no fetch may reach WeChat;
//   - each later cycle after the clock moved 2 h 10 min (past the expiry of
//     every token, so callers refresh on the expired path and neither
//     RefreshAhead nor RefreshJitter plays a part) and a new ticket push:
//     each authorizer's token must be fetched exactly once in the whole
//     fleet (wxtest.Server.AuthorizerTokensIssued moves by 1 for every
//     authorizer) and the component_access_token exactly once
//     (ComponentTokensIssued moves by 1).
//
// In every cycle every call must succeed: 0 caller-visible errors. Each
// cycle logs one line, e.g.
//
//	OpenPlatformFleet: 8 processes × 1000 authorizers, cycle 1: authorizer fetches 1000 (want 1000, max per authorizer 1), component fetches 1 (want 1), caller errors 0 (cycle done 4.2s after release)
//
// The lease allowance is ProcessHerd's: an extra fetch is legitimate when
// its holder outlived the lease (rule 5), which a busy machine can make
// happen. A round whose extra fetches (the most fetches of one authorizer,
// or of the component, beyond 1) came in a cycle that took at least a lease
// per extra fetch is run again, on new keys and a new server, up to
// herdRounds times, and only the last round's result counts; extra fetches
// in a quicker cycle, missing fetches and caller errors fail at once.
//
// Call it from a test of its own, e.g.
//
//	func TestOpenPlatformFleet(t *testing.T) { conformance.OpenPlatformFleet(t, harness(t), 8, 1000) }
//
// In the child process the same call plays one process of the fleet.
func OpenPlatformFleet(t *testing.T, h Harness, procs, authorizers int) {
	t.Helper()
	h = h.normalize(t)
	if url, ok := os.LookupEnv(fleetURLEnv); ok {
		runFleetChild(t, h, url)
		return
	}
	if h.SingleProcess != "" {
		t.Skipf("OpenPlatformFleet needs a backend other processes can reach; Harness.SingleProcess says: %s", h.SingleProcess)
	}
	if procs < 1 || authorizers < 1 {
		t.Fatalf("OpenPlatformFleet: %d processes × %d authorizers: want at least 1 of each", procs, authorizers)
	}
	for round := 1; ; round++ {
		again := fleetRound(t, h, procs, authorizers, round == herdRounds)
		if !again || round == herdRounds || t.Failed() {
			return
		}
		t.Logf("OpenPlatformFleet round %d: extra fetches in a cycle that took at least a %v lease per extra fetch: each holder may have lost its lock to the lease on a busy machine; running the fleet again",
			round, h.Lease)
	}
}

// newFleetComponent builds the Component of the fleet over store.
func newFleetComponent(store core.TokenStore, baseURL, keyPrefix string, now func() time.Time) (*openplatform.Component, error) {
	return openplatform.New(openplatform.Config{
		AppID: fleetComponentID, AppSecret: core.NewSecret(fleetComponentSecret),
		Token: core.NewSecret(fleetPushToken), EncodingAESKey: core.NewSecret(fleetPushKey),
		Store: store, KeyPrefix: keyPrefix, BaseURL: baseURL, Now: now,
		RetryBackoff: 10 * time.Millisecond,
	})
}

// fleetChild is a child process of a fleet round, seen from the parent.
type fleetChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *lineLog
	exited chan struct{} // closed when the process has exited; err is then set
	err    error
}

// fleetRound runs one round of OpenPlatformFleet: the setup, the children
// and every cycle. It returns true when the round is inconclusive (extra
// fetches that a lease running out may explain, not in the last round)
// and should be run again; it reports every other failure.
func fleetRound(t *testing.T, h Harness, procs, authorizers int, last bool) (again bool) {
	t.Helper()
	wechat := wxtest.New(wxtest.Options{
		Components: []wxtest.Component{{AppID: fleetComponentID, AppSecret: fleetComponentSecret}},
		Latency:    fleetLatency,
	})
	defer wechat.Close()
	prefix := fmt.Sprintf("%sopfleet%08x", h.KeyPrefix, rand.Uint32())
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()

	// The parent's Component: the pushes WeChat makes to the vendor's
	// authorization event URL land here.
	vendor, err := newFleetComponent(h.NewStore(t), wechat.URL, prefix, wechat.Now)
	if err != nil {
		t.Fatal(err)
	}
	pushTicket := func() {
		t.Helper()
		q, body, _, err := wechat.VerifyTicketPush(fleetComponentID, fleetPushToken, fleetPushKey)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := vendor.HandleEvent(ctx, q, bytes.NewReader(body))
		if err != nil || ev.Applied != "stored" {
			t.Fatalf("OpenPlatformFleet: the verify ticket push: %+v, %v", ev, err)
		}
	}
	pushTicket()
	setup := time.Now()
	if err := fleetAuthorize(ctx, wechat, vendor, authorizers); err != nil {
		t.Fatalf("OpenPlatformFleet: authorizing %d authorizers: %v", authorizers, err)
	}
	t.Logf("OpenPlatformFleet: %d authorizers authorized through their pushes in %v", authorizers, time.Since(setup).Round(time.Millisecond))

	children := make([]*fleetChild, procs)
	for i := range children {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+runPattern(t.Name()))
		cmd.Env = append(os.Environ(), h.ChildEnv...)
		cmd.Env = append(cmd.Env, fleetURLEnv+"="+wechat.URL, fleetPrefixEnv+"="+prefix, fleetNEnv+"="+strconv.Itoa(authorizers),
			"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		c := &fleetChild{cmd: cmd, out: newLineLog(fleetLine), exited: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = c.out, c.out
		if c.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("fleet child %d: starting %s: %v", i, os.Args[0], err)
		}
		go func() { c.err = cmd.Wait(); close(c.exited) }()
		children[i] = c
		defer func() { c.stdin.Close(); cmd.Process.Kill(); <-c.exited }()
	}
	// next returns the next line child i writes with the prefix fleetLine.
	next := func(i int) string {
		t.Helper()
		c := children[i]
		select {
		case line := <-c.out.lines:
			return line
		case <-c.exited:
			select { // a line written just before the exit
			case line := <-c.out.lines:
				return line
			default:
			}
			t.Fatalf("fleet child %d exited (%v); its output:\n%s", i, c.err, c.out)
		case <-ctx.Done():
			t.Fatalf("fleet child %d: no answer within %v; its output:\n%s", i, fleetTimeout, c.out)
		}
		return ""
	}
	for i := range children {
		if line := next(i); line != fleetReady {
			t.Fatalf("fleet child %d: %q, want %q; its output:\n%s", i, line, fleetReady, children[i].out)
		}
	}

	for cycle := range FleetCycles {
		wantAuth, wantComp := 0, 0
		if cycle > 0 {
			wechat.Advance(fleetStep)
			pushTicket() // WeChat keeps pushing; the first ticket would still do (12 h)
			wantAuth, wantComp = 1, 1
		}
		before := make([]int, authorizers)
		for i := range before {
			before[i] = wechat.AuthorizerTokensIssued(fleetAppID(i))
		}
		compBefore := wechat.ComponentTokensIssued()
		start := time.Now()
		for _, c := range children {
			fmt.Fprintf(c.stdin, "cycle %d %d\n", cycle, wechat.Now().UnixNano())
		}
		callerErrs, lockLost := 0, 0
		var samples []string
		for i := range children {
			for {
				line := next(i)
				if s, ok := strings.CutPrefix(line, fleetErrLine); ok {
					samples = append(samples, fmt.Sprintf("child %d: %s", i, s))
					continue
				}
				var gotCycle, n, lost int
				if _, err := fmt.Sscanf(line, fleetDoneLine+"%d %d %d", &gotCycle, &n, &lost); err != nil || gotCycle != cycle {
					t.Fatalf("fleet child %d: %q, want the end of cycle %d; its output:\n%s", i, line, cycle, children[i].out)
				}
				callerErrs += n
				lockLost += lost
				break
			}
		}
		elapsed := time.Since(start)

		fetches, maxPer := 0, 0
		var off []string // authorizers fetched other than wantAuth times
		for i := range before {
			d := wechat.AuthorizerTokensIssued(fleetAppID(i)) - before[i]
			fetches += d
			maxPer = max(maxPer, d)
			if d != wantAuth && len(off) < 10 {
				off = append(off, fmt.Sprintf("%s: %d", fleetAppID(i), d))
			}
		}
		comp := wechat.ComponentTokensIssued() - compBefore
		t.Logf("OpenPlatformFleet: %d processes × %d authorizers, cycle %d: authorizer fetches %d (want %d, max per authorizer %d), component fetches %d (want %d), caller errors %d (cycle done %v after release, WeChat latency %v)",
			procs, authorizers, cycle, fetches, wantAuth*authorizers, maxPer, comp, wantComp, callerErrs, elapsed.Round(time.Millisecond), fleetLatency)
		// Extra fetches, and callers whose refresh lost its lock with no
		// newer token stored (core.ErrLockLost), follow a holder that
		// outlived its lease: the lease may explain them, if the cycle
		// lasted a lease per extra fetch. Too few fetches, never.
		extra := max(maxPer-1, comp-1, min(lockLost, 1))
		onlyLease := fetches >= wantAuth*authorizers && comp >= wantComp && callerErrs == lockLost
		if cycle > 0 && extra > 0 && onlyLease && elapsed >= time.Duration(extra)*h.Lease && !last {
			if lockLost > 0 {
				t.Logf("OpenPlatformFleet cycle %d: %d callers lost their refresh lock to the lease; the first:\n\t%s", cycle, lockLost, strings.Join(samples, "\n\t"))
			}
			return true
		}
		if callerErrs != 0 {
			t.Errorf("OpenPlatformFleet cycle %d: %d caller errors (%d of them a refresh lock lost to the lease), want 0; the first:\n\t%s",
				cycle, callerErrs, lockLost, strings.Join(samples, "\n\t"))
		}
		if fetches != wantAuth*authorizers || maxPer != wantAuth || comp != wantComp {
			t.Errorf("OpenPlatformFleet cycle %d: %d processes × %d authorizers made %d authorizer fetches (max per authorizer %d) and %d component fetches, want exactly %d per authorizer and %d component fetch; authorizers off: %s",
				cycle, procs, authorizers, fetches, maxPer, comp, wantAuth, wantComp, strings.Join(off, ", "))
		}
		if t.Failed() {
			return false
		}
	}
	for i, c := range children {
		io.WriteString(c.stdin, "exit\n")
		select {
		case <-c.exited:
			if c.err != nil {
				t.Errorf("fleet child %d: %v; its output:\n%s", i, c.err, c.out)
			}
		case <-ctx.Done():
			t.Errorf("fleet child %d did not exit; its output:\n%s", i, c.out)
		}
	}
	return false
}

// fleetAuthorize has each of n merchants authorize the component on
// wechat and delivers its authorized push to vendor, from FleetWorkers
// goroutines; it returns the first error.
func fleetAuthorize(ctx context.Context, wechat *wxtest.Server, vendor *openplatform.Component, n int) error {
	var idx atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range FleetWorkers {
		wg.Go(func() {
			for i := int(idx.Add(1) - 1); i < n; i = int(idx.Add(1) - 1) {
				appid := fleetAppID(i)
				q, body, err := wechat.AuthorizedPush(wechat.Authorize(fleetComponentID, appid), fleetPushToken, fleetPushKey)
				var ev *openplatform.Event
				if err == nil {
					ev, err = vendor.HandleEvent(ctx, q, bytes.NewReader(body))
				}
				if err == nil && (ev.Applied != "authorized" || ev.AuthorizerAppID != appid) {
					err = fmt.Errorf("the authorized push of %s: applied %q to %q", appid, ev.Applied, ev.AuthorizerAppID)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// runFleetChild plays one process of OpenPlatformFleet: it builds its
// Component, then runs each cycle the parent starts, at the time the parent
// sends, until the parent says exit.
func runFleetChild(t *testing.T, h Harness, url string) {
	n, err := strconv.Atoi(os.Getenv(fleetNEnv))
	if err != nil || n <= 0 {
		t.Fatalf("fleet child: bad %s=%q", fleetNEnv, os.Getenv(fleetNEnv))
	}
	var clock atomic.Int64 // the simulated time, in Unix nanoseconds
	comp, err := newFleetComponent(h.NewStore(t), url, os.Getenv(fleetPrefixEnv), func() time.Time { return time.Unix(0, clock.Load()) })
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(fleetReady)
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			t.Fatalf("fleet child: waiting for the parent: %q, %v", line, err)
		}
		if line == "exit\n" {
			return
		}
		var cycle int
		var now int64
		if _, err := fmt.Sscanf(line, "cycle %d %d\n", &cycle, &now); err != nil {
			t.Fatalf("fleet child: %q from the parent: %v", line, err)
		}
		clock.Store(now)
		errs := fleetCycle(comp, n)
		for i, e := range errs {
			if i == fleetErrSamples {
				break
			}
			fmt.Println(fleetErrLine + strings.ReplaceAll(e.Error(), "\n", " "))
		}
		lost := 0
		for _, e := range errs {
			if errors.Is(e, core.ErrLockLost) {
				lost++
			}
		}
		fmt.Printf("%s%d %d %d\n", fleetDoneLine, cycle, len(errs), lost)
	}
}

// fleetCycle calls the API once for each of n authorizers of comp, from
// FleetWorkers goroutines, and returns the errors.
func fleetCycle(comp *openplatform.Component, n int) []error {
	ctx, cancel := context.WithTimeout(context.Background(), herdTimeout)
	defer cancel()
	var idx atomic.Int64
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range FleetWorkers {
		wg.Go(func() {
			for i := int(idx.Add(1) - 1); i < n; i = int(idx.Add(1) - 1) {
				appid := fleetAppID(i)
				var out struct {
					IPList []string `json:"ip_list"`
				}
				err := comp.Authorizer(appid).Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, &out)
				if err == nil && len(out.IPList) == 0 {
					err = fmt.Errorf("no ip_list in the reply")
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("authorizer %s: %w", appid, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errs
}

// lineLog collects a child's output, and passes each line that begins with
// prefix to lines as well.
type lineLog struct {
	prefix string
	lines  chan string

	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
}

func newLineLog(prefix string) *lineLog {
	return &lineLog{prefix: prefix, lines: make(chan string, 4096)}
}

func (w *lineLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		if line := string(w.partial[:i]); strings.HasPrefix(line, w.prefix) {
			select {
			case w.lines <- line:
			default: // a child writing far more than the protocol: its output says so
			}
		}
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *lineLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
