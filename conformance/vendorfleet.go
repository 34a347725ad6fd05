package conformance

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Environment of a VendorFleet child: the simulated platform's URL (its
// presence makes VendorFleet play the child), the platform's key (which the
// child checks against the one it was called with), the key prefix of the
// round, the number of tenants and the file of what a child needs to call
// as each tenant (see fleetVendor.authorize).
const (
	fleetURLEnv      = "WECHATCONF_CONFORMANCE_VENDORFLEET_URL"
	fleetPlatformEnv = "WECHATCONF_CONFORMANCE_VENDORFLEET_PLATFORM"
	fleetPrefixEnv   = "WECHATCONF_CONFORMANCE_VENDORFLEET_PREFIX"
	fleetNEnv        = "WECHATCONF_CONFORMANCE_VENDORFLEET_N"
	fleetDataEnv     = "WECHATCONF_CONFORMANCE_VENDORFLEET_DATA"
)

// The callback settings of the vendors of the fleets (the Token and
// EncodingAESKey of the push URL).
const (
	fleetPushToken = "conformanceFleetToken"
	fleetPushKey   = "conformanceFleetEncodingAESKey0123456789abc" // 43 characters
)

const (
	// FleetCycles is how many cycles OpenPlatformFleet (VendorFleet on
	// VendorOpenPlatform) runs: the cold start, then FleetCycles-1
	// expiries of every token. The WeCom platforms run
	// WeComFleetCycles.
	FleetCycles = 3
	// WeComFleetCycles is how many cycles VendorFleet runs on the WeCom
	// platforms: the cold start, which already fetches every corp's token
	// (the install brings none), then one expiry of every token.
	WeComFleetCycles = 2
	// FleetWorkers is how many goroutines of each child call the tenants
	// in a cycle.
	FleetWorkers = 16

	fleetLatency = 5 * time.Millisecond // WeChat's answer time, so that fetches overlap callers
	// fleetStep moves the simulated clock past the expiry of every token
	// issued in the previous cycle (WeChat's 2 h, plus ten minutes).
	fleetStep    = wxtest.DefaultExpiresIn + 10*time.Minute
	fleetTimeout = 5 * time.Minute // one round, all cycles
)

// Lines a fleet child writes: ready once its vendor is built; then, per
// cycle, up to fleetErrSamples error lines and the cycle's end with its
// count of caller errors.
const (
	fleetLine       = "wechatconf/conformance: vendorfleet "
	fleetReady      = fleetLine + "ready"
	fleetErrLine    = fleetLine + "error "
	fleetDoneLine   = fleetLine + "done " // + "<cycle> <errors> <of which core.ErrLockLost>"
	fleetErrSamples = 5
)

// VendorPlatform is a vendor platform VendorFleet runs on: a simulated
// platform (core/wxtest) with one vendor declared on it, the vendor's
// package (core/openplatform, core/wecomvendor) over the store, how a
// tenant (an authorizer, a corp) authorizes it, how a caller calls the API
// as a tenant, and which counters of the simulated platform are the
// fleet's fetches. The platforms are VendorOpenPlatform,
// VendorWeComThirdParty and VendorWeComCustom; the zero value is none.
type VendorPlatform struct {
	name    string // names the fleet in log lines and failures
	key     string // in key prefixes and the child's environment
	tenant  string // what a tenant is called: "authorizer", "corp"
	central string // the vendor's own token: "component", "suite"
	// tenantID is the id of the i-th tenant.
	tenantID func(i int) string
	// newServer starts the simulated platform with the vendor declared.
	newServer func(latency time.Duration) *wxtest.Server
	// newVendor builds the vendor over store, in the parent and in each
	// child; now is the simulated clock.
	newVendor func(store core.TokenStore, baseURL, keyPrefix string, now func() time.Time) (fleetVendor, error)
	// tenantFetches is how many access tokens the server minted for the
	// tenant with the id, centralFetches how many of the vendor's own.
	tenantFetches  func(w *wxtest.Server, id string) int
	centralFetches func(w *wxtest.Server) int
	// fetchPath is the path of a tenant token fetch: its calls in a cycle
	// are the fleet's tenant fetches, counted even when the server hands
	// back a token it issued before (WeCom's gettoken).
	fetchPath string
	// coldFetches is how many times each tenant's token is fetched in
	// cycle 0: 0 when the authorization stored it (Open Platform's
	// query_auth brings it), 1 when it did not (WeCom's v2
	// get_permanent_code brings none).
	coldFetches int
	// cycles is how many cycles a round runs (FleetCycles,
	// WeComFleetCycles).
	cycles int
	// note says, in the log, what the counts mean on this platform.
	note string
}

// fleetVendor is a vendor of a VendorFleet round in one process. The
// parent calls pushTicket, authorize and durable; each child calls begin
// and call.
type fleetVendor interface {
	// pushTicket has the platform push a new ticket (WeChat's
	// component_verify_ticket, WeCom's suite_ticket) to the vendor, now.
	pushTicket(ctx context.Context, w *wxtest.Server) error
	// authorize has tenant id authorize the vendor on w and delivers the
	// push that says so to the vendor, the way the platform does; it
	// returns what a child needs to call the API as the tenant (one line,
	// may be empty).
	authorize(ctx context.Context, w *wxtest.Server, id string) (data string, err error)
	// begin is called by each worker of a child at the start of a cycle,
	// before its tenants.
	begin(ctx context.Context) error
	// call calls the API as tenant id, with what authorize returned.
	call(ctx context.Context, id, data string) error
	// durable checks that the durable secret the store holds for tenant
	// id (a refresh token, a permanent code) is still the one the
	// platform accepts.
	durable(ctx context.Context, w *wxtest.Server, id string) error
}

// VendorFleet is the fleet check of a vendor platform: procs OS processes
// (the test binary started again, as for ProcessHerd: see
// Harness.ChildEnv) each build the platform's vendor over a store from h
// and call the API as every one of tenants tenants (authorizers of an Open
// Platform component, corps that installed a WeCom suite), from
// FleetWorkers goroutines each, all processes walking the tenants in the
// same order, against one simulated platform (core/wxtest, in this
// process, answering in 5ms).
//
// Before the children start, the parent delivers a ticket push and, for
// each tenant, the push of its authorization through a vendor of its own
// (HandleEvent), so that the store holds the ticket, the vendor's own
// token and each tenant's durable secret (an authorizer's refresh token, a
// corp's permanent code). The simulated clock is the server's manual
// clock: at each cycle the parent sends its time to the children over
// stdin, and their vendors read it (Config.Now), so the clock stands still
// during a cycle. There are FleetCycles cycles on the Open Platform,
// WeComFleetCycles on WeCom:
//
//   - cycle 0, the cold start, at the time of the authorizations: the
//     vendor's own token is adopted from the store (0 fetches), and each
//     tenant's token too where the authorization brought it (Open
//     Platform: 0 fetches) or fetched exactly once in the whole fleet
//     where it did not (WeCom: 1 per corp);
//   - each later cycle after the clock moved 2 h 10 min (past the expiry of
//     every token, so callers refresh on the expired path and neither
//     RefreshAhead nor RefreshJitter plays a part) and a new ticket push:
//     each tenant's token must be fetched exactly once in the whole fleet
//     and the vendor's own token exactly once.
//
// A tenant's fetches are counted twice: the tokens the platform minted for
// it, and the calls of the fetch path in the whole cycle, which must be
// equal — WeCom's gettoken (custom-developed apps) hands back the token it
// issued while it is valid, so a second fetch of one corp would mint
// nothing and show only in the calls. In every cycle every call must
// succeed: 0 caller-visible errors. After the last cycle the durable
// secret the store holds for every tenant must be the one the platform
// accepts. Each cycle logs one line, e.g.
//
//	VendorFleet wecom third-party: 8 processes × 500 corps, cycle 1: corp fetches 500 (want 500, max per corp 1, calls of /cgi-bin/service/get_corp_token 500), suite fetches 1 (want 1), caller errors 0 (cycle done 6.1s after release, WeChat latency 5ms)
//
// The lease allowance is ProcessHerd's: an extra fetch is legitimate when
// its holder outlived the lease (rule 5), which a busy machine can make
// happen. A round whose extra fetches (the most fetches of one tenant, of
// the vendor's own token, or the extra calls spread over the tenants,
// beyond 1) came in a cycle that took at least a lease per extra fetch is
// run again, on new keys and a new server, up to herdRounds times, and
// only the last round's result counts; extra fetches in a quicker cycle,
// missing fetches and caller errors fail at once.
//
// Call it from a test of its own per platform, e.g.
//
//	func TestWeComVendorFleet(t *testing.T) {
//		conformance.VendorFleet(t, harness(t), conformance.VendorWeComThirdParty, 8, 500)
//	}
//
// In the child process the same call plays one process of the fleet.
func VendorFleet(t *testing.T, h Harness, p VendorPlatform, procs, tenants int) {
	t.Helper()
	if p.newVendor == nil {
		t.Fatal("conformance: VendorFleet: the zero VendorPlatform: use VendorOpenPlatform, VendorWeComThirdParty or VendorWeComCustom")
	}
	h = h.normalize(t)
	if url, ok := os.LookupEnv(fleetURLEnv); ok {
		runFleetChild(t, h, p, url)
		return
	}
	if h.SingleProcess != "" {
		t.Skipf("%s needs a backend other processes can reach; Harness.SingleProcess says: %s", p.name, h.SingleProcess)
	}
	if procs < 1 || tenants < 1 {
		t.Fatalf("%s: %d processes × %d %ss: want at least 1 of each", p.name, procs, tenants, p.tenant)
	}
	for round := 1; ; round++ {
		again := fleetRound(t, h, p, procs, tenants, round == herdRounds)
		if !again || round == herdRounds || t.Failed() {
			return
		}
		t.Logf("%s round %d: extra fetches in a cycle that took at least a %v lease per extra fetch: each holder may have lost its lock to the lease on a busy machine; running the fleet again",
			p.name, round, h.Lease)
	}
}

// fleetChild is a child process of a fleet round, seen from the parent.
type fleetChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *lineLog
	exited chan struct{} // closed when the process has exited; err is then set
	err    error
}

// fleetRound runs one round of VendorFleet: the setup, the children and
// every cycle. It returns true when the round is inconclusive (extra
// fetches that a lease running out may explain, not in the last round)
// and should be run again; it reports every other failure.
func fleetRound(t *testing.T, h Harness, p VendorPlatform, procs, tenants int, last bool) (again bool) {
	t.Helper()
	wechat := p.newServer(fleetLatency)
	defer wechat.Close()
	prefix := fmt.Sprintf("%s%sfleet%08x", h.KeyPrefix, p.key, rand.Uint32())
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()

	// The parent's vendor: the pushes the platform makes to the vendor's
	// authorization event URL land here.
	vendor, err := p.newVendor(h.NewStore(t), wechat.URL, prefix, wechat.Now)
	if err != nil {
		t.Fatal(err)
	}
	pushTicket := func() {
		t.Helper()
		if err := vendor.pushTicket(ctx, wechat); err != nil {
			t.Fatalf("%s: the ticket push: %v", p.name, err)
		}
	}
	pushTicket()
	setup := time.Now()
	data, err := fleetAuthorize(ctx, wechat, vendor, p, tenants)
	if err != nil {
		t.Fatalf("%s: authorizing %d %ss: %v", p.name, tenants, p.tenant, err)
	}
	t.Logf("%s: %d %ss authorized through their pushes in %v", p.name, tenants, p.tenant, time.Since(setup).Round(time.Millisecond))
	dataFile := filepath.Join(t.TempDir(), "tenants")
	if err := os.WriteFile(dataFile, []byte(strings.Join(data, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	children := make([]*fleetChild, procs)
	for i := range children {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+runPattern(t.Name()))
		cmd.Env = append(os.Environ(), h.ChildEnv...)
		cmd.Env = append(cmd.Env, fleetURLEnv+"="+wechat.URL, fleetPlatformEnv+"="+p.key, fleetPrefixEnv+"="+prefix,
			fleetNEnv+"="+strconv.Itoa(tenants), fleetDataEnv+"="+dataFile,
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

	for cycle := range p.cycles {
		wantTenant, wantCentral := p.coldFetches, 0
		if cycle > 0 {
			wechat.Advance(fleetStep)
			pushTicket() // the platform keeps pushing; the first ticket may have expired
			wantTenant, wantCentral = 1, 1
		}
		before := make([]int, tenants)
		for i := range before {
			before[i] = p.tenantFetches(wechat, p.tenantID(i))
		}
		centralBefore := p.centralFetches(wechat)
		callsBefore := wechat.Calls(p.fetchPath)
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
		var off []string // tenants fetched other than wantTenant times
		for i := range before {
			d := p.tenantFetches(wechat, p.tenantID(i)) - before[i]
			fetches += d
			maxPer = max(maxPer, d)
			if d != wantTenant && len(off) < 10 {
				off = append(off, fmt.Sprintf("%s: %d", p.tenantID(i), d))
			}
		}
		central := p.centralFetches(wechat) - centralBefore
		calls := wechat.Calls(p.fetchPath) - callsBefore
		t.Logf("%s: %d processes × %d %ss, cycle %d: %s fetches %d (want %d, max per %s %d, calls of %s %d), %s fetches %d (want %d), caller errors %d (cycle done %v after release, WeChat latency %v)",
			p.name, procs, tenants, p.tenant, cycle, p.tenant, fetches, wantTenant*tenants, p.tenant, maxPer, p.fetchPath, calls,
			p.central, central, wantCentral, callerErrs, elapsed.Round(time.Millisecond), fleetLatency)
		// Extra fetches, and callers whose refresh lost its lock with no
		// newer token stored (core.ErrLockLost), follow a holder that
		// outlived its lease: the lease may explain them, if the cycle
		// lasted a lease per extra fetch. Extra calls that minted nothing
		// (a token handed back) are spread over the tenants for the count.
		// Too few fetches, never.
		extra := max(maxPer-wantTenant, central-wantCentral, min(lockLost, 1))
		if dup := calls - fetches; dup > 0 {
			extra = max(extra, (dup+tenants-1)/tenants)
		}
		enough := fetches >= wantTenant*tenants && central >= wantCentral && calls >= fetches
		if cycle > 0 && extra > 0 && enough && callerErrs == lockLost && elapsed >= time.Duration(extra)*h.Lease && !last {
			if lockLost > 0 {
				t.Logf("%s cycle %d: %d callers lost their refresh lock to the lease; the first:\n\t%s", p.name, cycle, lockLost, strings.Join(samples, "\n\t"))
			}
			return true
		}
		if callerErrs != 0 {
			t.Errorf("%s cycle %d: %d caller errors (%d of them a refresh lock lost to the lease), want 0; the first:\n\t%s",
				p.name, cycle, callerErrs, lockLost, strings.Join(samples, "\n\t"))
		}
		if fetches != wantTenant*tenants || maxPer != wantTenant || central != wantCentral || calls != fetches {
			if len(off) == 0 {
				off = append(off, "none by the tokens minted")
			}
			t.Errorf("%s cycle %d: %d processes × %d %ss made %d %s fetches (max per %s %d; %d calls of %s) and %d %s fetches, want exactly %d per %s (as many calls) and %d %s fetch; %ss off: %s",
				p.name, cycle, procs, tenants, p.tenant, fetches, p.tenant, p.tenant, maxPer, calls, p.fetchPath, central, p.central,
				wantTenant, p.tenant, wantCentral, p.central, p.tenant, strings.Join(off, ", "))
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
	fleetDurable(t, ctx, wechat, vendor, p, tenants)
	if p.note != "" {
		t.Logf("%s: %s", p.name, p.note)
	}
	return false
}

// fleetDurable checks, after the fleet's last cycle, that the durable
// secret the store holds for each tenant is the one the platform accepts.
func fleetDurable(t *testing.T, ctx context.Context, w *wxtest.Server, vendor fleetVendor, p VendorPlatform, n int) {
	t.Helper()
	var bad []string
	for i := range n {
		if err := vendor.durable(ctx, w, p.tenantID(i)); err != nil {
			if len(bad) < 10 {
				bad = append(bad, err.Error())
			}
			if len(bad) == 10 || ctx.Err() != nil {
				break
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s after the run: the durable state the store holds is not what the platform accepts; the first:\n\t%s", p.name, strings.Join(bad, "\n\t"))
	}
}

// fleetAuthorize has each of n tenants authorize the vendor on w and
// delivers the push to vendor, from FleetWorkers goroutines; it returns
// each tenant's data (authorize's) or the first error.
func fleetAuthorize(ctx context.Context, w *wxtest.Server, vendor fleetVendor, p VendorPlatform, n int) ([]string, error) {
	data := make([]string, n)
	var idx atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range FleetWorkers {
		wg.Go(func() {
			for i := int(idx.Add(1) - 1); i < n; i = int(idx.Add(1) - 1) {
				d, err := vendor.authorize(ctx, w, p.tenantID(i))
				if err == nil && strings.ContainsAny(d, "\r\n") {
					err = fmt.Errorf("%s %s: data %q spans lines", p.tenant, p.tenantID(i), d)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				data[i] = d
			}
		})
	}
	wg.Wait()
	return data, first
}

// runFleetChild plays one process of VendorFleet: it builds its vendor,
// then runs each cycle the parent starts, at the time the parent sends,
// until the parent says exit.
func runFleetChild(t *testing.T, h Harness, p VendorPlatform, url string) {
	if got := os.Getenv(fleetPlatformEnv); got != p.key {
		t.Fatalf("fleet child: the parent runs platform %q, this test %q", got, p.key)
	}
	n, err := strconv.Atoi(os.Getenv(fleetNEnv))
	if err != nil || n <= 0 {
		t.Fatalf("fleet child: bad %s=%q", fleetNEnv, os.Getenv(fleetNEnv))
	}
	raw, err := os.ReadFile(os.Getenv(fleetDataEnv))
	if err != nil {
		t.Fatalf("fleet child: the tenants' data: %v", err)
	}
	data := strings.Split(string(raw), "\n")
	if len(data) < n {
		t.Fatalf("fleet child: %d lines of tenants' data, want %d", len(data), n)
	}
	var clock atomic.Int64 // the simulated time, in Unix nanoseconds
	vendor, err := p.newVendor(h.NewStore(t), url, os.Getenv(fleetPrefixEnv), func() time.Time { return time.Unix(0, clock.Load()) })
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
		errs := fleetCycle(vendor, p, data[:n])
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

// fleetCycle has FleetWorkers goroutines each begin the cycle, then call
// the API once as each tenant, and returns the errors.
func fleetCycle(vendor fleetVendor, p VendorPlatform, data []string) []error {
	ctx, cancel := context.WithTimeout(context.Background(), herdTimeout)
	defer cancel()
	var idx atomic.Int64
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for range FleetWorkers {
		wg.Go(func() {
			if err := vendor.begin(ctx); err != nil {
				fail(fmt.Errorf("%s token: %w", p.central, err))
			}
			for i := int(idx.Add(1) - 1); i < len(data); i = int(idx.Add(1) - 1) {
				if err := vendor.call(ctx, p.tenantID(i), data[i]); err != nil {
					fail(fmt.Errorf("%s %s: %w", p.tenant, p.tenantID(i), err))
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
