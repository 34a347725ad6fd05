package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// workerEnv is the environment variable that makes the binary a worker: it
// holds the worker's workerConfig as JSON. The parent sets it when it
// re-executes itself; main and TestMain check it first.
const workerEnv = "WECHATCONF_FLEET_WORKER"

// Credentials of the simulated WeChat API.
const (
	simAppID     = "wx_fleet_demo"
	simAppSecret = "fleet-demo-secret"
)

// progressEvery is how often a worker reports its counters to the parent.
const progressEvery = 250 * time.Millisecond

// workerConfig is everything a worker needs, passed in workerEnv.
type workerConfig struct {
	Index     int           `json:"index"`
	Start     int64         `json:"start"`      // simulated start, Unix nanoseconds
	Speed     float64       `json:"speed"`      // simulated seconds per real second
	Sim       time.Duration `json:"sim"`        // how much simulated time to run
	URL       string        `json:"url"`        // the simulated WeChat API
	KeyPrefix string        `json:"key_prefix"` // core.Config.KeyPrefix, one per run
	Store     storeSpec     `json:"store"`
	API       string        `json:"api"` // apiClassic or apiStable
	Naive     bool          `json:"naive"`
	Callers   int           `json:"callers"`
	Pause     time.Duration `json:"pause"`
}

// startLine begins the line the parent writes to every worker's stdin once
// all of them are ready: "start " and the real instant the simulated clock
// starts, Unix nanoseconds.
const startLine = "start "

// workerMsg is one line a worker writes to its stdout for the parent: a
// ready line, progress lines and one final line.
type workerMsg struct {
	Ready       bool       `json:"ready,omitempty"`
	Final       bool       `json:"final,omitempty"`
	Calls       int64      `json:"calls"`
	Errors40001 int64      `json:"errors_40001"`
	OtherErrors int64      `json:"other_errors"`
	FirstError  string     `json:"first_error,omitempty"`
	Latency     [][2]int64 `json:"latency,omitempty"` // AccessToken latency histogram (hist.sparse)
}

// workerCounters are a worker's live counters.
type workerCounters struct {
	calls, errors40001, other atomic.Int64

	mu       sync.Mutex
	firstErr string
}

func (c *workerCounters) msg() workerMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return workerMsg{Calls: c.calls.Load(), Errors40001: c.errors40001.Load(), OtherErrors: c.other.Load(), FirstError: c.firstErr}
}

func (c *workerCounters) fail(err error) {
	c.other.Add(1)
	c.mu.Lock()
	if c.firstErr == "" {
		c.firstErr = err.Error()
	}
	c.mu.Unlock()
}

// runWorker is a worker process: it keeps the access_token of the
// simulated AppID through the store in spec and, from the start the parent
// sends on stdin, calls PathAPI from cfg.Callers goroutines until the
// simulated run ends or stdin closes, reporting to stdout.
func runWorker(ctx context.Context, spec string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg workerConfig
	if err := json.Unmarshal([]byte(spec), &cfg); err != nil {
		return fmt.Errorf("bad %s: %w", workerEnv, err)
	}
	// The clock stands still at the simulated start until the parent says
	// when it starts.
	var clk atomic.Pointer[clock]
	clk.Store(&clock{start: time.Unix(0, cfg.Start), startReal: time.Unix(0, math.MaxInt64), speed: cfg.Speed})

	be, err := cfg.Store.open(ctx, false)
	if err != nil {
		return err
	}
	defer be.close()

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.Callers + 2 // keep one connection per caller
	httpc := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	defer tr.CloseIdleConnections()

	tokenAPI := core.ClassicToken
	if cfg.API == apiStable {
		tokenAPI = core.StableToken
	}
	conf, err := core.New(core.Config{
		AppID:      simAppID,
		AppSecret:  core.NewSecret(simAppSecret),
		Store:      be.store,
		KeyPrefix:  cfg.KeyPrefix,
		TokenAPI:   tokenAPI,
		BaseURL:    cfg.URL,
		HTTPClient: httpc,
		Logger:     slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Now:        func() time.Time { return clk.Load().now() },
		// RefreshAhead and ExpiryMargin: the defaults, 5 and 1 minutes of
		// simulated time.
	})
	if err != nil {
		return err
	}

	out := &lineWriter{w: stdout}
	if err := out.send(workerMsg{Ready: true}); err != nil {
		return err
	}
	in := bufio.NewReader(stdin)
	line, err := in.ReadString('\n')
	if err != nil { // stdin closed before the start: the run was stopped
		final := workerMsg{Final: true}
		return out.send(final)
	}
	startReal, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, startLine)), 10, 64)
	if err != nil || !strings.HasPrefix(line, startLine) {
		return fmt.Errorf("bad start line %q from the parent", line)
	}
	c := newClock(cfg.Start, startReal, cfg.Speed)
	clk.Store(&c)

	// The run ends at the simulated end, computed from the shared clock, or
	// when the parent closes stdin (it does at the end, on ctrl-C, and by
	// dying), whichever comes first.
	ctx, cancel := context.WithDeadline(ctx, c.realAt(cfg.Sim))
	defer cancel()
	go func() {
		io.Copy(io.Discard, in)
		cancel()
	}()

	select { // wait for the clock to start
	case <-time.After(time.Until(c.startReal)):
	case <-ctx.Done():
	}

	var cnt workerCounters
	var total hist
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range cfg.Callers {
		wg.Go(func() {
			h := caller(ctx, conf, httpc, &cfg, &cnt)
			mu.Lock()
			total.merge(h)
			mu.Unlock()
		})
	}

	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	callersDone := make(chan struct{})
	go func() { wg.Wait(); close(callersDone) }()
	for running := true; running; {
		select {
		case <-tick.C:
			out.send(cnt.msg())
		case <-callersDone:
			running = false
		}
	}
	final := cnt.msg()
	final.Final = true
	final.Latency = total.sparse()
	return out.send(final)
}

// caller calls PathAPI until ctx ends, pausing cfg.Pause between calls, and
// returns the latencies of its AccessToken calls. Calls cut short by the
// end of the run are not counted.
func caller(ctx context.Context, conf *core.Conf, httpc *http.Client, cfg *workerConfig, cnt *workerCounters) *hist {
	h := new(hist)
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-ctx.Done():
			return h
		case <-pause.C:
		}
		pause.Reset(cfg.Pause)

		t0 := time.Now()
		tok, err := conf.AccessToken(ctx)
		lat := time.Since(t0)
		if ctx.Err() != nil {
			return h
		}
		if err != nil {
			cnt.fail(err)
			continue
		}
		h.add(lat)

		if cfg.Naive {
			err = naiveCall(ctx, httpc, cfg.URL, tok.Value)
		} else {
			// Do takes the token again (from memory), and on 40001 does a
			// compare-and-refresh through the store and retries once.
			var reply struct {
				IPList []string `json:"ip_list"`
			}
			err = conf.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, &reply)
		}
		if ctx.Err() != nil {
			return h
		}
		cnt.calls.Add(1)
		switch {
		case err == nil:
		case core.IsInvalidCredential(err):
			cnt.errors40001.Add(1)
		default:
			cnt.fail(err)
		}
	}
}

// naiveCall is what an SDK with only an in-process cache does: GET the API
// with the cached token, and take whatever errcode comes back as the
// caller's error. A token another process's fetch superseded stays in the
// cache, and is rejected, until it expires.
func naiveCall(ctx context.Context, httpc *http.Client, base, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+wxtest.PathAPI+"?access_token="+url.QueryEscape(token), nil)
	if err != nil {
		return err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var reply struct {
		ErrCode int    `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return fmt.Errorf("%s: HTTP %d: %w", wxtest.PathAPI, resp.StatusCode, err)
	}
	if reply.ErrCode != 0 {
		return &core.APIError{Code: reply.ErrCode, Message: reply.ErrMsg, Path: wxtest.PathAPI}
	}
	return nil
}

// lineWriter writes JSON lines, one goroutine at a time.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) send(m workerMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err = l.w.Write(append(b, '\n'))
	return err
}
