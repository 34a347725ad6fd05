package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/anishathalye/porcupine"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	etcdstore "github.com/wechatconf/wechatconf/store/etcd"
	pgstore "github.com/wechatconf/wechatconf/store/postgres"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// Parameters of a run.
const (
	workers       = 8
	faultDuration = 24 * time.Second       // default length of the fault schedule: each fault kind once
	pace          = 40 * time.Millisecond  // mean time between two cycles of a worker
	wechatLatency = 20 * time.Millisecond  // the simulated WeChat's answer time
	checkTimeout  = 5 * time.Minute        // porcupine's bound: generous, a run's history checks in seconds
	maxOps        = 400_000                // bound on a history, so that porcupine's check stays bounded
	readyTimeout  = 2 * time.Minute        // for the workers to build their stores
	appID         = "wxfaultsproof"        // the simulated Official Account
	appSecret     = "faults-proof-secret0" // its secret (a test value)
	soakEnv       = "WECHATCONF_SOAK"      // a duration: run the fault schedule that long instead
)

// Environment of a worker process.
const (
	envStore = "WECHATCONF_FAULTS_STORE" // its presence makes TestFaults a worker
	envAddr  = "WECHATCONF_FAULTS_ADDR"  // the proxy's address
	envKey   = "WECHATCONF_FAULTS_KEY"
	envLease = "WECHATCONF_FAULTS_LEASE"
	envWX    = "WECHATCONF_FAULTS_WECHAT"
	envOut   = "WECHATCONF_FAULTS_OUT"
	envID    = "WECHATCONF_FAULTS_ID"
	// sabotageEnv, set to 1, makes worker 0 write an older token with a
	// plain Set now and then: the run must then find a violation, which
	// shows that the whole pipeline (records, history, check) can fail.
	sabotageEnv = "WECHATCONF_FAULTS_SABOTAGE"
)

const readyLine = "wechatconf/faults: worker ready"

// backend is one store under test.
type backend struct {
	name  string
	lease time.Duration
	// start starts the server and returns the address to proxy to; it may
	// prepare it (PostgreSQL's table) directly, not through the proxy.
	start func(t *testing.T) (upstream string)
	// open builds, in a worker, a store reaching the server at addr.
	open func(ctx context.Context, addr string, lease time.Duration) (core.TokenStore, func(), error)
}

// Lease of the stores: short, so that the faults outlast it. etcd's lease
// TTL is whole seconds with a server minimum of 2s.
var backends = []backend{
	{
		name: "redis", lease: time.Second,
		start: func(t *testing.T) string { return containers.StartRedis(t).Addr },
		open: func(ctx context.Context, addr string, lease time.Duration) (core.TokenStore, func(), error) {
			cli := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
			s, err := redisstore.New(cli, redisstore.WithLease(lease))
			if err != nil {
				cli.Close()
				return nil, nil, err
			}
			return s, func() { cli.Close() }, nil
		},
	},
	{
		name: "postgres", lease: time.Second,
		start: func(t *testing.T) string {
			pg := containers.StartPostgres(t)
			// Create the table here, directly: the workers do not race to.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			pool, err := pgxpool.New(ctx, pg.DSN)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			if _, err := pgstore.New(ctx, pool); err != nil {
				t.Fatal(err)
			}
			return pg.Addr
		},
		open: func(ctx context.Context, addr string, lease time.Duration) (core.TokenStore, func(), error) {
			dsn := (&url.URL{Scheme: "postgres", User: url.UserPassword(containers.PostgresUser, containers.PostgresPassword),
				Host: addr, Path: containers.PostgresDB, RawQuery: "sslmode=disable&connect_timeout=2"}).String()
			pool, err := pgxpool.New(ctx, dsn)
			if err != nil {
				return nil, nil, err
			}
			s, err := pgstore.New(ctx, pool, pgstore.WithLease(lease), pgstore.WithCreateTable(false))
			if err != nil {
				pool.Close()
				return nil, nil, err
			}
			return s, pool.Close, nil
		},
	},
	{
		name: "etcd", lease: 2 * time.Second,
		start: func(t *testing.T) string {
			return strings.TrimPrefix(containers.StartEtcd(t).Endpoints[0], "http://")
		},
		open: func(ctx context.Context, addr string, lease time.Duration) (core.TokenStore, func(), error) {
			cli, err := clientv3.New(clientv3.Config{
				Endpoints: []string{"http://" + addr}, DialTimeout: 2 * time.Second,
				DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second,
				// Reconnect within a second of a fault's end (gRPC's default
				// backoff grows to two minutes).
				DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
					Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
					MinConnectTimeout: time.Second,
				})},
				Logger: zap.NewNop(),
			})
			if err != nil {
				return nil, nil, err
			}
			s, err := etcdstore.New(cli, etcdstore.WithLease(lease))
			if err != nil {
				cli.Close()
				return nil, nil, err
			}
			return s, func() { cli.Close() }, nil
		},
	},
}

// TestFaults is the proof: for each store, workers processes refresh one
// token through a toxiproxy proxy while faults are injected, and the merged
// history must be linearizable for Model. See the package documentation.
func TestFaults(t *testing.T) {
	if name, ok := os.LookupEnv(envStore); ok {
		for _, b := range backends {
			if b.name == name {
				runWorker(t, b)
				return
			}
		}
		t.Fatalf("worker: unknown store %q", name)
	}
	if testing.Short() {
		t.Skip("fault-injection proof skipped in -short mode")
	}
	duration := faultDuration
	if v := os.Getenv(soakEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive duration such as 10m", soakEnv, v)
		}
		duration = d
	}
	containers.RequireDocker(t)
	proxies := newToxiproxy()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			runStore(t, b, proxies, duration)
		})
	}
}

// worker is a running worker process, seen from the parent.
type worker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   bytes.Buffer // its output, once done is closed
	ready chan struct{}
	done  chan error
}

// runStore runs the proof for one store.
func runStore(t *testing.T, b backend, proxies *toxiproxy.ApiServer, duration time.Duration) {
	began := time.Now()
	upstream := b.start(t)
	proxy := startProxy(t, proxies, b.name, upstream)
	wechat := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret, Now: time.Now, Latency: wechatLatency})
	defer wechat.Close()
	dir := t.TempDir()
	key := fmt.Sprintf("faults/%s/%08x", b.name, rand.Uint32())

	ctx, cancel := context.WithTimeout(context.Background(), duration+readyTimeout+2*time.Minute)
	defer cancel()
	ws := make([]*worker, workers)
	for i := range ws {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFaults$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			envStore+"="+b.name, envAddr+"="+proxy.Listen, envKey+"="+key, envLease+"="+b.lease.String(),
			envWX+"="+wechat.URL, envOut+"="+filepath.Join(dir, fmt.Sprintf("worker%d.json", i)), envID+"="+strconv.Itoa(i),
			sabotageEnv+"="+os.Getenv(sabotageEnv), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		w := &worker{cmd: cmd, ready: make(chan struct{}), done: make(chan error, 1)}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if w.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
		go func() {
			sc := bufio.NewScanner(stdout)
			seen := false
			for sc.Scan() {
				if sc.Text() == readyLine && !seen {
					seen = true
					close(w.ready)
				}
				w.out.WriteString(sc.Text() + "\n")
			}
			w.done <- cmd.Wait()
			close(w.done)
		}()
		ws[i] = w
		defer func() { w.stdin.Close(); cmd.Process.Kill() }()
	}
	readyBy := time.NewTimer(readyTimeout)
	defer readyBy.Stop()
	for i, w := range ws {
		select {
		case <-w.ready:
		case err := <-w.done:
			t.Fatalf("%s: worker %d exited (%v) before it was ready; its output:\n%s", b.name, i, err, &w.out)
		case <-readyBy.C:
			t.Fatalf("%s: worker %d not ready within %v", b.name, i, readyTimeout)
		}
	}

	start := time.Now()
	end := start.Add(duration)
	for _, w := range ws {
		fmt.Fprintf(w.stdin, "go %d\n", end.UnixNano())
	}
	t.Logf("%s: %d workers ready %v after the start of the test; %v of faults", b.name, workers, time.Since(began).Round(time.Millisecond), duration)
	windows := runFaults(ctx, t, b.name, faultKinds(proxy, b.lease, wechat, wechatLatency), end)
	injected := len(windows)
	failed := false
	for i, w := range ws {
		if err := <-w.done; err != nil {
			t.Errorf("%s: worker %d: %v; its output:\n%s", b.name, i, err, &w.out)
			failed = true
		}
	}
	t.Logf("%s: workers done %v after the end of the faults", b.name, time.Since(end).Round(time.Millisecond))
	if failed {
		return
	}

	var records []Record
	for i := range ws {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("worker%d.json", i)))
		if err != nil {
			t.Fatal(err)
		}
		var rs []Record
		if err := json.Unmarshal(data, &rs); err != nil {
			t.Fatalf("worker %d's history: %v", i, err)
		}
		records = append(records, rs...)
	}
	history, err := History(records, wechat.TokenSeq)
	if err != nil {
		t.Fatalf("%s: %v", b.name, err)
	}
	if len(history) > maxOps {
		t.Fatalf("%s: %d operations, more than the %d the check is bounded to: slow the workers down (pace)", b.name, len(history), maxOps)
	}
	res, err := Check(history, workers, checkTimeout)
	if err != nil {
		t.Error(err)
	}
	if os.Getenv(sabotageEnv) == "1" {
		if res.Result != porcupine.Illegal {
			t.Fatalf("%s: %s=1: worker 0 wrote older tokens with Set, but the check of %d operations says %q, not Illegal", b.name, sabotageEnv, res.Ops, res.Result)
		}
		t.Logf("%s: %s=1: the older tokens worker 0 wrote with Set were caught: %d operations, Illegal; visualization: %s", b.name, sabotageEnv, res.Ops, res.Visualization)
		return
	}
	violations := 0
	switch res.Result {
	case porcupine.Ok:
	case porcupine.Illegal:
		violations = 1
		t.Errorf("%s: the history of %d operations is not linearizable: an older token won, or a token vanished; porcupine visualization: %s",
			b.name, res.Ops, res.Visualization)
	default:
		t.Errorf("%s: porcupine could not decide on %d operations within %v (result %q): the history is too large or too concurrent to check; shorten the run",
			b.name, res.Ops, checkTimeout, res.Result)
	}

	fs := CountFetches(records, b.lease)
	callerErrors, lockLost := 0, 0
	for _, r := range records {
		if r.Err != "" && !r.NotFound {
			callerErrors++
		}
		if r.LockLost {
			lockLost++
		}
	}
	writes, unknown := 0, 0
	for _, op := range history {
		if op.Kind == Write {
			writes++
			if !op.Known {
				unknown++
			}
		}
	}
	calls := wechat.Calls(wxtest.PathToken)
	t.Logf("%s: %s", b.name, opTimes(records))
	t.Logf("%s: most frequent caller errors: %s", b.name, topErrors(records, 4))
	t.Logf("%s: calls by fault: %s", b.name, byFault(records, windows))
	t.Logf("%s (lease %v, %v of faults, %d workers): %d operations checked in %v (%d writes, %d of unknown outcome): %s, %d violations; "+
		"%d refresh cycles, %d fetches (%d token calls reached WeChat), ideal %d, %d extra: %d after ErrLockLost, %d after the lease ran out, %d after a lost write, %d unexplained; "+
		"%d faults injected, %d caller errors (%d ErrLockLost)",
		b.name, b.lease, duration, workers, res.Ops, res.Elapsed.Round(time.Millisecond), writes, unknown, res.Result, violations,
		fs.Cycles, fs.Fetches, calls, fs.Cycles, fs.Extras, fs.LockLost, fs.LeaseOut, fs.WriteLost, len(fs.Unexplained),
		injected, callerErrors, lockLost)
	conformance.ReportNote(t, "Fault proxy: no older token ever wins", "Per store: toxiproxy between 8 worker processes and the server, faults of 3 s each "+
		"(latency with jitter, bandwidth limit, reset_peer, timeout, partition, and a lease squeeze: WeChat answering in 90 % of the lease while the store is slow); "+
		"each worker repeats Get, then Refresh(stale) against the simulated classic token endpoint. Every store call is a history operation; porcupine checks "+
		"the merged history against a register whose value only moves forward in WeChat's issue order (a write of unknown outcome may land any time later, or never). "+
		"An extra fetch is one more than one per stale value, counted by the cause that explains it (the holder lost its lease or its write); caller errors are the "+
		"store errors the faults cause, expected and only counted.")
	conformance.ReportRow(t, "Fault proxy: no older token ever wins",
		conformance.Col{Name: "store (lease)", Value: fmt.Sprintf("%s (%v)", b.name, b.lease)},
		conformance.Col{Name: "faults injected", Value: fmt.Sprintf("%d in %v", injected, duration)},
		conformance.Col{Name: "operations checked", Value: strconv.Itoa(res.Ops)},
		conformance.Col{Name: "writes (unknown outcome)", Value: fmt.Sprintf("%d (%d)", writes, unknown)},
		conformance.Col{Name: "porcupine", Value: fmt.Sprint(res.Result)},
		conformance.Col{Name: "violations", Value: strconv.Itoa(violations)},
		conformance.Col{Name: "refresh cycles = ideal fetches", Value: strconv.Itoa(fs.Cycles)},
		conformance.Col{Name: "fetches", Value: strconv.Itoa(fs.Fetches)},
		conformance.Col{Name: "extra: ErrLockLost / lease ran out / write lost", Value: fmt.Sprintf("%d / %d / %d", fs.LockLost, fs.LeaseOut, fs.WriteLost)},
		conformance.Col{Name: "unexplained extra", Value: strconv.Itoa(len(fs.Unexplained))},
		conformance.Col{Name: "caller errors", Value: strconv.Itoa(callerErrors)})
	for _, u := range fs.Unexplained {
		t.Errorf("%s: unexplained extra fetch: %s", b.name, u)
	}
	if calls > fs.Fetches {
		t.Errorf("%s: %d token calls reached WeChat, but the workers' fetch functions ran only %d times", b.name, calls, fs.Fetches)
	}
	if fs.Cycles == 0 || res.Ops == 0 {
		t.Errorf("%s: the workers made no progress (%d cycles, %d operations)", b.name, fs.Cycles, res.Ops)
	}
}

// runWorker plays one worker process: it builds its store through the
// proxy, says it is ready, waits for the start and the end time on stdin,
// then runs refresh cycles until the end time and writes its history.
func runWorker(t *testing.T, b backend) {
	id, err := strconv.Atoi(os.Getenv(envID))
	if err != nil {
		t.Fatal(err)
	}
	lease, err := time.ParseDuration(os.Getenv(envLease))
	if err != nil {
		t.Fatal(err)
	}
	key, wx := os.Getenv(envKey), os.Getenv(envWX)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	store, closeStore, err := b.open(ctx, os.Getenv(envAddr), lease)
	cancel()
	if err != nil {
		t.Fatalf("worker %d: opening the %s store: %v", id, b.name, err)
	}
	defer closeStore()
	fmt.Println(readyLine)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		t.Fatalf("worker %d: waiting for the start: %v", id, err)
	}
	endNanos, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "go ")), 10, 64)
	if err != nil {
		t.Fatalf("worker %d: bad start line %q", id, line)
	}
	end := time.Unix(0, endNanos)

	// An operation may outlast the lease (a write waits up to a lease for
	// its reply): bound it well above that.
	opTimeout := 2*lease + 2*time.Second
	httpc := &http.Client{}
	tokenURL := wx + wxtest.PathToken + "?" + url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {appSecret}}.Encode()
	sabotage := os.Getenv(sabotageEnv) == "1" && id == 0
	var older, last string // tokens this worker read, for the sabotage
	var records []Record
	var mu sync.Mutex // fetch runs on the Refresh caller's goroutine, but be safe
	for time.Now().Before(end) {
		timer := time.NewTimer(pace/2 + rand.N(pace)) // pacing, not synchronisation
		<-timer.C

		// Read the current token.
		r := Record{Client: id, Op: "get", Call: time.Now().UnixNano()}
		octx, ocancel := context.WithTimeout(context.Background(), opTimeout)
		tok, err := store.Get(octx, key)
		ocancel()
		r.Return = time.Now().UnixNano()
		switch {
		case err == nil:
			r.Token = tok.Value
		case errors.Is(err, core.ErrNotFound):
			r.Err, r.NotFound = err.Error(), true
		default:
			r.Err = err.Error()
		}
		records = append(records, r)
		if err != nil && !r.NotFound {
			continue // the store is unreachable: try again next cycle
		}
		if tok.Value != last {
			older, last = last, tok.Value
		}
		if sabotage && older != "" && rand.N(10) == 0 {
			// What a store without a fence would let a late holder do.
			r := Record{Client: id, Op: "set", Token: older, Call: time.Now().UnixNano()}
			octx, ocancel := context.WithTimeout(context.Background(), opTimeout)
			err := store.Set(octx, key, core.Token{Value: older, ExpiresAt: time.Now().Add(time.Hour)})
			ocancel()
			r.Return = time.Now().UnixNano()
			if err != nil {
				r.Err = err.Error()
			}
			records = append(records, r)
			continue
		}

		// Replace it, as a caller that saw it rejected would.
		rr := Record{Client: id, Op: "refresh", Stale: tok.Value}
		fetch := func(ctx context.Context) (core.Token, error) {
			mu.Lock()
			defer mu.Unlock()
			rr.FetchCalled, rr.FetchStart = true, time.Now().UnixNano()
			t, err := fetchToken(ctx, httpc, tokenURL)
			rr.FetchEnd = time.Now().UnixNano()
			if err != nil {
				rr.FetchErr = err.Error()
				return core.Token{}, err
			}
			rr.Fetched = t.Value
			return t, nil
		}
		octx, ocancel = context.WithTimeout(context.Background(), opTimeout)
		rr.Call = time.Now().UnixNano()
		tok, err = store.Refresh(octx, key, rr.Stale, fetch)
		rr.Return = time.Now().UnixNano()
		ocancel()
		mu.Lock()
		if err != nil {
			rr.Err, rr.LockLost = err.Error(), errors.Is(err, core.ErrLockLost)
		} else {
			rr.Token = tok.Value
		}
		records = append(records, rr)
		mu.Unlock()
	}
	data, err := json.Marshal(records)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv(envOut), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fetchToken gets a new classic access_token from the simulated WeChat.
func fetchToken(ctx context.Context, c *http.Client, tokenURL string) (core.Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tokenURL, nil)
	if err != nil {
		return core.Token{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return core.Token{}, err
	}
	defer resp.Body.Close()
	var reply struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Errcode     int    `json:"errcode"`
		Errmsg      string `json:"errmsg"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return core.Token{}, fmt.Errorf("token reply (HTTP %d): %w", resp.StatusCode, err)
	}
	if reply.AccessToken == "" {
		return core.Token{}, fmt.Errorf("token reply: errcode %d %s", reply.Errcode, reply.Errmsg)
	}
	return core.Token{Value: reply.AccessToken, ExpiresAt: time.Now().Add(time.Duration(reply.ExpiresIn) * time.Second)}, nil
}

// opTimes summarises how long the workers' calls took.
func opTimes(records []Record) string {
	var d []time.Duration
	slow := 0
	for _, r := range records {
		d = append(d, time.Duration(r.Return-r.Call))
		if d[len(d)-1] > time.Second {
			slow++
		}
	}
	if len(d) == 0 {
		return "no calls"
	}
	slices.Sort(d)
	return fmt.Sprintf("%d calls, median %v, 90th percentile %v, max %v, %d over 1s",
		len(d), d[len(d)/2].Round(time.Millisecond), d[len(d)*9/10].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond), slow)
}

// topErrors names the n most frequent caller errors (up to their first
// 100 bytes; store errors name the key, never a token).
func topErrors(records []Record, n int) string {
	count := map[string]int{}
	for _, r := range records {
		if r.Err != "" && !r.NotFound {
			e := r.Err
			if len(e) > 100 {
				e = e[:100]
			}
			count[r.Op+": "+e]++
		}
	}
	keys := slices.Collect(maps.Keys(count))
	slices.SortFunc(keys, func(a, b string) int { return count[b] - count[a] })
	var out []string
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, fmt.Sprintf("%d× %q", count[k], k))
	}
	return strings.Join(out, "; ")
}
