package containertest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Environment of a TestSentinelFailover worker process: its presence makes
// the test play one worker.
const (
	sentinelWorkerEnv = "WECHATCONF_TEST_SENTINEL_WORKER" // JSON sentinelWorkerConfig
)

const (
	sentinelProcs      = 8                     // worker processes
	sentinelGoroutines = 8                     // callers per process
	sentinelAppID      = "wxsentinelfailover"  // the simulated Official Account
	sentinelSecret     = "sentinel-secret"     //
	sentinelLatency    = 20 * time.Millisecond // WeChat's answer time
	sentinelCallPause  = 10 * time.Millisecond // between two calls of one caller
	sentinelCallTO     = 10 * time.Second      // ctx of one call
	sentinelSteady     = 2 * time.Second       // error-free window required after recovery
	sentinelRecovery   = 30 * time.Second      // bound on recovery after the kill
	sentinelMaxFetches = 3                     // token fetches the revocation may cause
)

type sentinelWorkerConfig struct {
	MasterName    string
	SentinelAddrs []string
	WeChatURL     string
	KeyPrefix     string
}

// sentinelReport is what a worker prints (one JSON line prefixed "report ")
// when told to stop.
type sentinelReport struct {
	Calls, OK   int
	Errors      map[string]int // by kind
	SteadyErrs  int            // errors of calls started after "steady"
	Seen40001   int            // calls whose error wraps errcode 40001
	FirstErr    int64          // unix ns, 0 if none
	LastErr     int64          // unix ns, 0 if none
	FirstErrMsg string
	LastErrMsg  string
	Token       string // AccessToken at the end
}

// TestSentinelFailover runs a fleet over Redis Sentinel and kills the master
// while a token refresh is in flight: sentinelProcs worker processes (the
// test binary started again), each with one core.Conf (classic tokens,
// redisstore over redis.NewFailoverClient) and sentinelGoroutines callers
// calling the WeChat API through Conf.Do continuously. The parent revokes
// the fleet's token, so every caller gets 40001 and the fleet refreshes
// (compare-and-refresh: one holder fetches); the token endpoint is held
// while that fetch is in flight, the master is killed (SIGKILL), and the
// fetch is let through at once, so that its write meets a store without a
// master. What store/redis promises (doc "Caveats: Failover"): at most a
// second fetch (the lock may be lost with asynchronous replication; the
// fence refuses the first holder's write), and callers recover once the
// sentinels promoted a replica and go-redis followed. The test prints the
// figures (fetches, caller errors by kind, 40001s seen, recovery time) and
// asserts generous bounds: at most sentinelMaxFetches fetches, recovery
// within sentinelRecovery, no error in a sentinelSteady window after
// recovery, and every worker ending with the same token, valid at WeChat.
// Then the store's claim checks run through a failover client on the
// promoted master (ClaimsAfterFailover).
func TestSentinelFailover(t *testing.T) {
	if cfg := os.Getenv(sentinelWorkerEnv); cfg != "" {
		sentinelWorker(t, cfg)
		return
	}
	if testing.Short() {
		t.Skip("kills a Redis master under a fleet of processes")
	}
	testStart := time.Now()
	rs := containers.StartRedisSentinel(t)
	wx := wxtest.New(wxtest.Options{AppID: sentinelAppID, AppSecret: sentinelSecret, Latency: sentinelLatency})
	t.Cleanup(wx.Close)
	cfg := sentinelWorkerConfig{
		MasterName: rs.MasterName, SentinelAddrs: rs.SentinelAddrs,
		WeChatURL: wx.URL, KeyPrefix: uniqueKey(t, "fleet"),
	}
	cfgJSON, _ := json.Marshal(cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The workers, started together; each says "ready" after its first
	// successful call.
	workers := make([]*sentinelProc, sentinelProcs)
	for i := range workers {
		workers[i] = startSentinelWorker(t, ctx, i, string(cfgJSON))
	}
	for i, w := range workers {
		select {
		case <-w.ready:
		case err := <-w.exited:
			t.Fatalf("worker %d exited before it was ready: %v\n%s", i, err, w.stderr())
		case <-ctx.Done():
			t.Fatalf("worker %d not ready: %v", i, ctx.Err())
		}
	}
	if n := wx.Calls(wxtest.PathToken); n != 1 {
		t.Errorf("cold start of %d processes: %d token fetches, want 1", sentinelProcs, n)
	}

	// The fleet's current token, read through the store by a Conf of our own
	// (no fetch: the store holds it).
	rdb := newFailoverClient(rs)
	t.Cleanup(func() { rdb.Close() })
	own := newSentinelConf(t, rdb, cfg)
	old, err := own.AccessToken(ctx)
	if err != nil {
		t.Fatalf("AccessToken of the parent: %v", err)
	}
	if n := wx.Calls(wxtest.PathToken); n != 1 {
		t.Fatalf("the parent's AccessToken fetched (%d token calls)", n)
	}

	// Revoke it with the token endpoint held: a caller's 40001 makes its
	// Conf refresh, and the holder's fetch waits at the gate.
	base := wx.Calls(wxtest.PathToken)
	gate := wx.Block(wxtest.PathToken)
	wx.Revoke(old.Value)
	select {
	case <-gate.Arrived():
	case <-ctx.Done():
		t.Fatalf("no refresh reached WeChat after the revocation: %v", ctx.Err())
	}
	time.Sleep(200 * time.Millisecond) // let the other callers queue on the lock
	held := gate.Held()

	killed := time.Now()
	containers.Kill(t, rs.Master.Container)
	gate.Release()
	t.Logf("killed master %s with %d token fetch(es) in flight; the fetch was let through %v after the kill",
		rs.Master.Addr, held, time.Since(killed).Round(time.Millisecond))
	newMaster := rs.WaitFailover(t, rs.Master.Addr, sentinelRecovery)
	promoted := time.Since(killed)
	t.Logf("sentinels promoted %s %v after the kill", newMaster, promoted.Round(time.Millisecond))

	// Recovery: every worker has had a call that started after the
	// promotion succeed, and its callers last succeeded.
	for _, w := range workers {
		w.send("mark")
	}
	var recovered time.Time
	for {
		if allFresh(workers) {
			recovered = time.Now()
			break
		}
		if time.Since(killed) > sentinelRecovery {
			t.Fatalf("callers did not recover within %v of the kill", sentinelRecovery)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("every worker's calls started after the promotion succeed %v after the kill", recovered.Sub(killed).Round(time.Millisecond))

	// A window in which no caller may fail.
	for _, w := range workers {
		w.send("steady")
	}
	time.Sleep(sentinelSteady)
	for _, w := range workers {
		w.send("stop")
	}
	reports := make([]sentinelReport, len(workers))
	for i, w := range workers {
		select {
		case r, ok := <-w.report:
			if !ok {
				t.Fatalf("worker %d: %v\n%s", i, <-w.exited, w.stderr())
			}
			reports[i] = r
		case <-ctx.Done():
			t.Fatalf("worker %d: no report: %v", i, ctx.Err())
		}
		if err := <-w.exited; err != nil {
			t.Errorf("worker %d: %v\n%s", i, err, w.stderr())
		}
	}

	// Figures.
	fetches := wx.Calls(wxtest.PathToken) - base
	var calls, errs, steadyErrs, seen40001 int
	var lastErr int64
	kinds := map[string]int{}
	tokens := map[string]int{}
	for i, r := range reports {
		calls += r.Calls
		steadyErrs += r.SteadyErrs
		seen40001 += r.Seen40001
		for k, n := range r.Errors {
			kinds[k] += n
			errs += n
		}
		lastErr = max(lastErr, r.LastErr)
		tokens[r.Token]++
		if r.LastErrMsg != "" {
			t.Logf("worker %d: %d calls, %d ok, errors %v; first error %v after the kill (%s), last %v (%s)", i,
				r.Calls, r.OK, r.Errors, time.Unix(0, r.FirstErr).Sub(killed).Round(time.Millisecond), r.FirstErrMsg,
				time.Unix(0, r.LastErr).Sub(killed).Round(time.Millisecond), r.LastErrMsg)
		} else {
			t.Logf("worker %d: %d calls, %d ok, no error", i, r.Calls, r.OK)
		}
	}
	untilOK := time.Duration(0)
	if lastErr != 0 {
		untilOK = time.Unix(0, lastErr).Sub(killed)
	}
	kindList := make([]string, 0, len(kinds))
	for k, n := range kinds {
		kindList = append(kindList, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kindList)
	t.Logf("FIGURES: %d processes x %d callers, %d calls; token fetches for the revoked token: %d; "+
		"caller errors: %d {%s}; callers handed 40001: %d; failover (kill to promotion): %v; "+
		"last caller error %v after the kill; steady window errors: %d; end tokens: %d distinct; test took %v",
		sentinelProcs, sentinelGoroutines, calls, fetches, errs, strings.Join(kindList, " "), seen40001,
		promoted.Round(time.Millisecond), untilOK.Round(time.Millisecond), steadyErrs, len(tokens),
		time.Since(testStart).Round(time.Millisecond))
	conformance.ReportNote(t, "Redis Sentinel failover", "1 master, 2 replicas, 3 sentinels (quorum 2, down-after 1 s); 8 processes, each a classic-token Conf "+
		"over redis.NewFailoverClient calling the simulated API. The fleet's token is revoked, and the master SIGKILLed while the refresh holder's fetch is held at WeChat. "+
		"Caller errors are the calls whose refresh met the dead master (core.ErrStoreUnavailable) before the promotion; no caller was handed a token WeChat rejects. "+
		"A second fetch happens when the holder's write reached the dead master before go-redis followed the new one.")
	conformance.ReportRow(t, "Redis Sentinel failover",
		conformance.Col{Name: "processes × callers", Value: fmt.Sprintf("%d × %d", sentinelProcs, sentinelGoroutines)},
		conformance.Col{Name: "calls", Value: strconv.Itoa(calls)},
		conformance.Col{Name: "token fetches (1 refresh)", Value: strconv.Itoa(fetches)},
		conformance.Col{Name: "caller errors", Value: fmt.Sprintf("%d {%s}", errs, strings.Join(kindList, " "))},
		conformance.Col{Name: "callers handed 40001", Value: strconv.Itoa(seen40001)},
		conformance.Col{Name: "kill → promotion", Value: promoted.Round(time.Millisecond).String()},
		conformance.Col{Name: "last caller error after kill", Value: untilOK.Round(time.Millisecond).String()},
		conformance.Col{Name: "errors after recovery", Value: strconv.Itoa(steadyErrs)},
		conformance.Col{Name: "tokens at the end", Value: strconv.Itoa(len(tokens))})

	if fetches < 1 || fetches > sentinelMaxFetches {
		t.Errorf("%d token fetches for one revoked token across a failover, want 1 to %d", fetches, sentinelMaxFetches)
	}
	if untilOK > sentinelRecovery {
		t.Errorf("callers failed until %v after the kill, want recovery within %v", untilOK, sentinelRecovery)
	}
	if steadyErrs > 0 {
		t.Errorf("%d calls started after recovery failed, want 0", steadyErrs)
	}
	if len(tokens) != 1 {
		t.Errorf("workers end with %d different tokens, want 1: %v", len(tokens), tokens)
	}
	for tok := range tokens {
		if !wx.TokenValid(tok) {
			t.Errorf("a worker ends with a token WeChat does not accept")
		}
		if tok == old.Value {
			t.Errorf("a worker ends with the revoked token")
		}
	}

	// Claims through Sentinel, on the promoted master.
	t.Run("ClaimsAfterFailover", func(t *testing.T) {
		testClaims(t, func() redis.UniversalClient { return newFailoverClient(rs) })
	})
}

func allFresh(ws []*sentinelProc) bool {
	for _, w := range ws {
		if !w.ok.Load() || !w.fresh.Load() {
			return false
		}
	}
	return true
}

func newFailoverClient(rs *containers.RedisSentinel) *redis.Client {
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: rs.MasterName, SentinelAddrs: rs.SentinelAddrs, ContextTimeoutEnabled: true,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	})
}

func newSentinelConf(t testing.TB, rdb redis.UniversalClient, cfg sentinelWorkerConfig) *core.Conf {
	t.Helper()
	conf, err := core.New(core.Config{
		AppID: sentinelAppID, AppSecret: core.NewSecret(sentinelSecret), TokenAPI: core.ClassicToken,
		Store: mustNew(t, rdb), KeyPrefix: cfg.KeyPrefix, BaseURL: cfg.WeChatURL,
		RetryBackoff: 10 * time.Millisecond, RefreshTimeout: sentinelCallTO,
	})
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// ---- parent side of a worker -------------------------------------------------

type sentinelProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	ready  chan struct{}
	report chan sentinelReport
	exited chan error
	ok     atomic.Bool // the worker's callers last succeeded
	fresh  atomic.Bool // a call started after "mark" succeeded
	errBuf syncBuffer
}

func (p *sentinelProc) stderr() string   { return p.errBuf.String() }
func (p *sentinelProc) send(line string) { _, _ = io.WriteString(p.stdin, line+"\n") }

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() < 64<<10 {
		b.b.Write(p)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startSentinelWorker(t *testing.T, ctx context.Context, i int, cfg string) *sentinelProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestSentinelFailover$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), sentinelWorkerEnv+"="+cfg)
	p := &sentinelProc{cmd: cmd, ready: make(chan struct{}), report: make(chan sentinelReport, 1), exited: make(chan error, 1)}
	cmd.Stderr = &p.errBuf
	p.stdin, err = cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker %d: %v", i, err)
	}
	t.Cleanup(func() {
		_ = p.stdin.Close()
		_ = cmd.Process.Kill()
	})
	var readyOnce sync.Once
	go func() {
		reported := false
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			kind, rest, _ := strings.Cut(sc.Text(), " ")
			switch kind {
			case "ready":
				p.ok.Store(true)
				readyOnce.Do(func() { close(p.ready) })
			case "ok", "err":
				p.ok.Store(kind == "ok")
			case "fresh":
				p.fresh.Store(true)
			case "report":
				var r sentinelReport
				if err := json.Unmarshal([]byte(rest), &r); err == nil && !reported {
					reported = true
					p.report <- r
				}
			}
		}
		err := cmd.Wait()
		if err == nil && !reported {
			err = errors.New("exited without a report")
		}
		close(p.report) // a report, if any, was sent before
		p.exited <- err
	}()
	return p
}

// ---- the worker process ---------------------------------------------------------

// sentinelWorker plays one worker: callers call Conf.Do in a loop; it
// prints "ready" after the first success, "err NS"/"ok NS" when its callers
// go from succeeding to failing and back (NS: unix ns), and on "stop" (from
// stdin) a report line; "steady" starts the window whose errors are counted
// apart.
func sentinelWorker(t *testing.T, cfgJSON string) {
	var cfg sentinelWorkerConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: cfg.MasterName, SentinelAddrs: cfg.SentinelAddrs, ContextTimeoutEnabled: true,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	})
	defer rdb.Close()
	conf := newSentinelConf(t, rdb, cfg)

	var (
		mu      sync.Mutex
		rep     = sentinelReport{Errors: map[string]int{}}
		failing = false
		readyed = false
		steady  atomic.Int64 // unix ns of "steady"
		mark    atomic.Int64 // unix ns of "mark"
		fresh   = false
		stop    = make(chan struct{})
		outMu   sync.Mutex
	)
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	record := func(err error, start int64) {
		now := time.Now().UnixNano()
		mu.Lock()
		defer mu.Unlock()
		rep.Calls++
		if err == nil {
			rep.OK++
			if !readyed {
				readyed = true
				say("ready")
			}
			if failing {
				failing = false
				say("ok %d", now)
			}
			if m := mark.Load(); m != 0 && start > m && !fresh {
				fresh = true
				say("fresh %d", now)
			}
			return
		}
		rep.Errors[sentinelErrKind(err)]++
		if api := (*core.APIError)(nil); errors.As(err, &api) && api.Code == 40001 {
			rep.Seen40001++
		}
		if st := steady.Load(); st != 0 && start > st {
			rep.SteadyErrs++
		}
		msg := err.Error()
		if len(msg) > 240 {
			msg = msg[:240] + "…"
		}
		if rep.FirstErr == 0 {
			rep.FirstErr, rep.FirstErrMsg = now, msg
		}
		rep.LastErr, rep.LastErrMsg = now, msg
		if !failing {
			failing = true
			say("err %d", now)
		}
	}

	var wg sync.WaitGroup
	for range sentinelGoroutines {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now().UnixNano()
				ctx, cancel := context.WithTimeout(context.Background(), sentinelCallTO)
				var out struct {
					IPList []string `json:"ip_list"`
				}
				err := conf.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, &out)
				cancel()
				record(err, start)
				time.Sleep(sentinelCallPause)
			}
		})
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "mark":
			mark.Store(time.Now().UnixNano())
		case "steady":
			steady.Store(time.Now().UnixNano())
		case "stop":
			close(stop)
			wg.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), sentinelCallTO)
			tok, err := conf.AccessToken(ctx)
			cancel()
			if err != nil {
				t.Fatalf("AccessToken at the end: %v", err)
			}
			mu.Lock()
			rep.Token = tok.Value
			b, _ := json.Marshal(rep)
			mu.Unlock()
			say("report %s", b)
			return
		}
	}
	t.Fatal("stdin closed before stop")
}

// sentinelErrKind names the kind of a caller's error.
func sentinelErrKind(err error) string {
	var api *core.APIError
	var limit *core.LimitError
	switch {
	case errors.As(err, &limit):
		return "limit"
	case errors.As(err, &api):
		return strconv.Itoa(api.Code)
	case errors.Is(err, core.ErrLockLost):
		return "lock-lost"
	case errors.Is(err, core.ErrStoreUnavailable):
		return "store-unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "READONLY"):
		return "redis-readonly"
	case strings.Contains(s, "connection refused"):
		return "redis-conn-refused"
	case strings.Contains(s, "redisstore"):
		return "redis-other"
	}
	return "other"
}
