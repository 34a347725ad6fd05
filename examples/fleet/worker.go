package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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
	"github.com/wechatconf/wechatconf/core/wecom"
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

// The simulated WeCom app of -api wecom.
const (
	simCorpID     = "ww_fleet_demo"
	simAgentID    = 1000002
	simCorpSecret = "fleet-demo-corpsecret"
)

// codeExpired is WeCom's errcode for an expired access_token (42001
// access_token已过期); its other rejection, 40014, is a revoked or unknown
// token. Both are wecom.Codes' invalid credentials.
const codeExpired = 42001

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
	API       string        `json:"api"` // apiClassic, apiStable or apiWeCom
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
	Errors42001 int64      `json:"errors_42001,omitempty"` // the part of Errors40001 that was 42001 (-api wecom)
	OtherErrors int64      `json:"other_errors"`
	FirstError  string     `json:"first_error,omitempty"`
	Latency     [][2]int64 `json:"latency,omitempty"` // AccessToken latency histogram (hist.sparse)
}

// workerCounters are a worker's live counters.
type workerCounters struct {
	calls, errors40001, errors42001, other atomic.Int64

	mu       sync.Mutex
	firstErr string
}

func (c *workerCounters) msg() workerMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return workerMsg{Calls: c.calls.Load(), Errors40001: c.errors40001.Load(), Errors42001: c.errors42001.Load(), OtherErrors: c.other.Load(), FirstError: c.firstErr}
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
// simulated AppID (or, with -api wecom, WeCom app) through the store in spec and, from the start the parent
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

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	now := func() time.Time { return clk.Load().now() }
	var cl client
	if cfg.API == apiWeCom {
		app, err := wecom.New(wecom.Config{
			CorpID:     simCorpID,
			AgentID:    simAgentID,
			Secret:     core.NewSecret(simCorpSecret),
			Store:      be.store,
			KeyPrefix:  cfg.KeyPrefix,
			BaseURL:    cfg.URL,
			HTTPClient: httpc,
			Logger:     logger,
			Now:        now,
		})
		if err != nil {
			return err
		}
		cl = weComClient{app: app, httpc: httpc, base: cfg.URL}
	} else {
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
			Logger:     logger,
			Now:        now,
			Instance:   workerInstance(cfg.Index),
			// RefreshAhead and ExpiryMargin: the defaults, 5 and 1 minutes of
			// simulated time.
		})
		if err != nil {
			return err
		}
		cl = officialClient{conf: conf, httpc: httpc, base: cfg.URL}
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
			h := caller(ctx, cl, &cfg, &cnt)
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
	// The fleet's fetch ledger: this worker's records are in the store
	// before it reports, so that the parent reads the whole fleet's.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout/2)
	if err := cl.credential().FlushLedger(fctx); err != nil {
		fmt.Fprintf(stderr, "the fetch ledger: %v\n", err)
	}
	fcancel()
	final := cnt.msg()
	final.Final = true
	final.Latency = total.sparse()
	return out.send(final)
}

// workerInstance is worker i's name in the fleet's fetch ledger
// (core.Config.Instance): the ledger's records and an outside fetch's
// evidence say which worker fetched.
func workerInstance(i int) string { return "worker-" + strconv.Itoa(i) }

// client is what a caller calls through: an Official Account's core.Conf
// (-api classic or stable) or a WeCom app's wecom.App (-api wecom).
type client interface {
	// AccessToken returns the token, from memory, the store or the API.
	AccessToken(ctx context.Context) (core.Token, error)
	// do makes one call the wechatconf way: the library adds the token, and
	// on a rejected one does a compare-and-refresh and retries once.
	do(ctx context.Context) error
	// naive makes one call the way an SDK with only an in-process cache
	// does, with tok: see naiveCall and weComClient.naive.
	naive(ctx context.Context, tok core.Token) error
	// credential is the access_token's credential (its fetch ledger).
	credential() *core.Credential
}

// officialClient calls the Official Account API, PathAPI.
type officialClient struct {
	conf  *core.Conf
	httpc *http.Client
	base  string
}

func (c officialClient) AccessToken(ctx context.Context) (core.Token, error) {
	return c.conf.AccessToken(ctx)
}

func (c officialClient) credential() *core.Credential { return c.conf.AccessTokenCredential() }

func (c officialClient) do(ctx context.Context) error {
	// Do takes the token again (from memory), and on 40001 does a
	// compare-and-refresh through the store and retries once.
	var reply struct {
		IPList []string `json:"ip_list"`
	}
	return c.conf.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, &reply)
}

func (c officialClient) naive(ctx context.Context, tok core.Token) error {
	return naiveCall(ctx, c.httpc, c.base, wxtest.PathAPI, url.Values{"access_token": {tok.Value}}, nil)
}

// weComClient calls the WeCom API, PathWeComAPI (获取指定的应用详情).
type weComClient struct {
	app   *wecom.App
	httpc *http.Client
	base  string
}

func (c weComClient) AccessToken(ctx context.Context) (core.Token, error) {
	return c.app.AccessToken(ctx)
}

func (c weComClient) credential() *core.Credential { return c.app.AccessTokenCredential() }

func (c weComClient) do(ctx context.Context) error {
	// As Conf.Do: on 40014 or 42001 a compare-and-refresh through the
	// store, once for the fleet, and one retry.
	var reply struct {
		AgentID int64 `json:"agentid"`
	}
	return c.app.Do(ctx, http.MethodGet, wxtest.PathWeComAPI, url.Values{"agentid": {strconv.Itoa(simAgentID)}}, nil, &reply)
}

// naive is what a WeCom SDK with an in-process cache does: GET the API
// with the cached token; on 40014 or 42001 the caller gets the error and
// the process drops its token, so that its next call fetches a new one
// (RefreshAccessToken on the process's own memory store: one gettoken per
// process, however many of its callers saw the error).
func (c weComClient) naive(ctx context.Context, tok core.Token) error {
	err := naiveCall(ctx, c.httpc, c.base, wxtest.PathWeComAPI,
		url.Values{"access_token": {tok.Value}, "agentid": {strconv.Itoa(simAgentID)}}, wecom.Codes)
	if core.IsInvalidCredential(err) {
		c.app.RefreshAccessToken(ctx, tok.Value) // its error shows at the next call
	}
	return err
}

// caller calls the API until ctx ends, pausing cfg.Pause between calls, and
// returns the latencies of its AccessToken calls. Calls cut short by the
// end of the run are not counted.
func caller(ctx context.Context, cl client, cfg *workerConfig, cnt *workerCounters) *hist {
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
		tok, err := cl.AccessToken(ctx)
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
			err = cl.naive(ctx, tok)
		} else {
			err = cl.do(ctx)
		}
		if ctx.Err() != nil {
			return h
		}
		cnt.calls.Add(1)
		switch {
		case err == nil:
		case core.IsInvalidCredential(err):
			cnt.errors40001.Add(1)
			if ae := (*core.APIError)(nil); errors.As(err, &ae) && ae.Code == codeExpired {
				cnt.errors42001.Add(1)
			}
		default:
			cnt.fail(err)
		}
	}
}

// naiveCall is what an SDK with only an in-process cache does: GET the API
// at path with query (which carries the cached token), and take whatever
// errcode comes back as the caller's error, an *core.APIError with codes
// (nil: the Official Account's). With -api classic a token another
// process's fetch superseded stays in the cache, and is rejected, until it
// expires.
func naiveCall(ctx context.Context, httpc *http.Client, base, path string, query url.Values, codes *core.Codes) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+query.Encode(), nil)
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
		return fmt.Errorf("%s: HTTP %d: %w", path, resp.StatusCode, err)
	}
	if reply.ErrCode != 0 {
		return &core.APIError{Code: reply.ErrCode, Message: reply.ErrMsg, Path: path, Codes: codes}
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
