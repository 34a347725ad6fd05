// Command fleet is the flagship demo of wechatconf: a fleet of worker
// processes keeps one AppID's access_token through one shared store for a
// simulated day, against a simulated WeChat API (classic /cgi-bin/token by
// default, -api stable for /cgi-bin/stable_token; -api wecom keeps a WeCom
// app's token instead), and counts what WeChat and the callers saw. Run it
// from the repository root:
//
//	go run ./examples/fleet                                 # 8 processes, file store, 24h in 60s
//	go run ./examples/fleet -naive                          # the same fleet, each process on its own
//	go run ./examples/fleet -api stable [-naive]            # the same, with stable tokens
//	go run ./examples/fleet -api wecom [-naive]             # a WeCom app, its token revoked early 3 times a day
//	go run ./examples/fleet -store=redis -redis=127.0.0.1:6379
//	go run ./examples/fleet -duration 5s -json              # a smoke run, summary as JSON
//
// # What runs
//
// The parent starts the simulated WeChat API (core/wxtest) in classic mode:
// every /cgi-bin/token call mints a new access_token, and the previous one
// answers errcode 40001 five (simulated) minutes later. It then re-executes
// its own binary -procs times (default 8); each worker process builds a
// core.Conf for the same AppID (core.ClassicToken, or core.StableToken
// with -api stable) and calls an ordinary API
// (/cgi-bin/getcallbackip) from -callers goroutines (default 4), pausing
// -pause (5 ms, real time) between calls so that a small machine is not
// saturated. All processes share an accelerated clock: simulated time
// runs -sim / -duration times faster than real time (a 24h day in 60 s:
// ×1440), so a token lives 5 real seconds. The clock is start + (real time
// since startReal) × speed, the same function in the parent (the
// simulator's Options.Now) and in every worker (core.Config.Now), built
// from start and speed, passed in the environment, and startReal. The
// clock starts once every worker has built its Conf and said it is ready
// (however long that takes on a busy machine), and no sooner than -warmup
// (1 s) after the workers were launched; the parent then writes startReal
// to every worker's stdin, so that they are all running when it starts.
//
// # Classic and stable tokens
//
// With -api classic (the default) every fetch mints a new token and the
// previous one answers 40001 five simulated minutes later, so processes
// that fetch alone break each other: that is where -naive loses most
// calls. With -api stable (POST /cgi-bin/stable_token, core's default) a
// fetch returns the current token until its last five minutes and never
// invalidates the one others hold, so -naive has no 40001 cascade: what it loses
// is -procs times as many token calls (each process fetches for itself,
// against WeChat's daily quota), which a shared store turns back into one
// per refresh.
//
// # WeCom
//
// With -api wecom each worker keeps the access_token of one WeCom app
// (企业微信自建应用) with a wecom.App on the same store and calls
// /cgi-bin/agent/get (获取指定的应用详情) through App.Do. WeCom's
// /cgi-bin/gettoken returns the current token while it is valid, so
// fetches alone break nobody; what breaks a fleet is WeCom revoking a token
// early ("企业微信可能会出于运营需要，提前使access_token失效"): the parent
// makes the simulator revoke the current token every 7 simulated hours
// (07:00, 14:00 and 21:00), and the token answers 40014. The schedule is
// off the 2h expiry grid on purpose: a token is minted at the start and
// at each revocation and lives 2h, so each revocation falls halfway
// through its token's life, an hour before it would expire; every
// instance holds that token and must notice that it was revoked (a
// schedule on the grid, such as every 6h, would end a token seconds
// before its expiry, which the fleet was replacing anyway). The parent
// prints each revocation on stderr with the time the revoked token had
// left. Through the shared store the first call to meet it
// does a compare-and-refresh, one gettoken call for the fleet, and is
// retried: no caller sees the 40014. With -naive each process has its own
// wecom.App on a memory store and calls with its cached token; a 40014
// goes back to the caller and the process drops its token (its next call
// fetches): one gettoken call per process per expiry or revocation, and a
// 40014 for each call made with the revoked token before its process has
// the new one. Because gettoken hands back the same token until its end,
// wecom.App serves a token to its end and fetches after it
// (core.HandoverAtExpiry), so a call made in a token's last instant
// reaches WeCom after it expired and gets 42001: Do replaces the token and
// retries, -naive hands the 42001 to its caller. On the fast simulated
// clock (a real millisecond is 1.4 simulated seconds at ×1440) a fetch at
// a token's end can also reach WeCom a moment before the end, by WeCom's
// clock (the fleet reckons the end from expires_in, whole seconds rounded
// down), and get the old token back for that moment: one more gettoken
// call that mints nothing.
// "token fetches" counts the fleet's gettoken calls, not the parent's own
// (it learns the token to revoke with one, through the simulator's
// handler); "expected" is one at the start, one per revocation and one
// per 2h token lifetime in between; "new tokens" is how many of the
// fleet's calls minted a token (the rest got the current one back); the
// "40014 errors" and "42001 errors" lines split the rejected calls (JSON
// errors_40001 counts both, errors_42001 the second).
//
// Every second the parent prints a progress line to stderr (simulated
// time, token fetches, 40001 errors (40014/42001 with -api wecom) and
// calls so far); at the end of the
// simulated day the workers stop, send their counters and latency
// histograms to the parent (JSON lines on their stdout), and the parent
// prints the summary.
//
// # The two modes
//
// By default (wechatconf) each worker's Conf uses the one store chosen with
// -store, and calls go through Conf.Do: the store's lock makes one process
// fetch each new token and the others read it, a token is refreshed in the
// background 5 simulated minutes before it expires (Config.RefreshAhead),
// and a call WeChat answers with 40001 does a compare-and-refresh and is
// retried once. A caller-visible 40001 is a Do error that still has errcode
// 40001 (core.IsInvalidCredential) after that.
//
// With -naive each process does what an SDK with an in-process cache and
// mutex does: its Conf has its own core.NewMemoryStore (-store is ignored),
// so every process fetches its own token, and each fetch invalidates the
// token all the others hold five minutes later. Calls take
// Conf.AccessToken and make the HTTP GET themselves with no 40001
// handling: a superseded token stays in the process's cache, rejected,
// until it expires, and every rejected call is counted.
//
// -store=memory without -naive gives each process its own memory store too,
// but calls through Do: there are few visible errors, because every 40001
// is answered by a fetch, but that fetch invalidates the others' tokens in
// turn, and the fetch count shows the storm (it would exhaust WeChat's
// daily quota of about 2,000 fetches).
//
// # Flags
//
//	-store     memory|file|redis|postgres|etcd, default file
//	-api       classic|stable|wecom: the token endpoint, default classic;
//	           wecom: a WeCom app's /cgi-bin/gettoken, revoked every 7h
//	-dir       the file store's directory; default a new temporary
//	           directory, removed at the end
//	-redis     Redis address host:port (a comma-separated list for a
//	           Cluster, or a redis:// URL); default $WECHATCONF_REDIS_ADDR
//	-postgres  PostgreSQL DSN; default $DATABASE_URL (prefer the variable:
//	           flags are visible in the process list)
//	-etcd      etcd endpoints, comma-separated; default $ETCD_ENDPOINTS
//	-naive     each process keeps its own token (see above)
//	-procs     worker processes, default 8
//	-callers   calling goroutines per process, default 4
//	-pause     real pause between a caller's calls, default 5ms
//	-sim       simulated time to run, default 24h
//	-duration  real time the simulated time takes, default 60s
//	-lease     the store's refresh-lock lease, real time, default 5s
//	-warmup    least real time between launching the workers and starting
//	           the clock, which also waits for every worker to be ready;
//	           default 1s
//	-json      print the summary as one JSON object on stdout
//
// -store=redis, postgres or etcd without a connection is an error naming
// the flag. Each run keeps its token under a key prefix of its own
// (fleet-RUNID), and removes it from Redis, PostgreSQL or etcd at the end.
//
// # Reading the summary
//
// go run ./examples/fleet -duration 20s printed, on a 2-core machine:
//
//	fleet: 8 processes × 4 callers, store file (/tmp/fleet-4009437282), classic /cgi-bin/token
//	       24h simulated in 20.0s (×4320)
//	token fetches       13   expected 13 = 24h / (2h − 5m refresh-ahead) + 1
//	outside fetches      0   named by the fleet's fetch ledger (it recorded 13 fetches)
//	40001 errors         0   seen by callers, after Do's compare-and-refresh and one retry
//	calls           114396   0 other errors
//	AccessToken    p50 452ns   p99 2.144µs   (114397 samples, measured in the workers)
//	=> one fetch per refresh for the whole fleet, and no caller saw a rejected token.
//
// and with -naive:
//
//	token fetches      104   expected 13 = 24h / (2h − 5m refresh-ahead) + 1
//	40001 errors     94508   seen by callers (no 40001 handling: -naive)
//	calls           113101   0 other errors
//	=> 104 fetches where 13 would do: each fetch invalidates, 5 minutes later, the token every other process holds;
//	   83.6% of the calls were rejected with 40001.
//
// "outside fetches" reads the fleet's fetch ledger (core.ReadLedger), which
// every worker (core.Config.Instance "worker-N") writes to the shared store
// and flushes before its last report: the outside fetches it named
// (core.EventOutsideFetch: a token the fleet fetched rejected with no later
// fetch by the fleet) and the fetches it recorded, which should be the
// token fetches. Nobody outside fetches here, so it is 0; the line is left
// out with -naive, -store=memory and -api wecom (no shared ledger to read).
//
// "token fetches" is how many token calls (/cgi-bin/token, or
// /cgi-bin/stable_token with -api stable) reached the simulator;
// "expected" is what a fleet needs: one at the start, then one every 2h
// minus the refresh-ahead. With a shared store the two agree (±1: at a
// high speed each refresh lands a little later in simulated time) and no
// caller sees a 40001. With -naive every process fetches for itself, -procs
// times as many fetches, and every process but the last to fetch holds a
// token WeChat no longer accepts, so most calls are rejected. "calls"
// counts the calls the callers completed (each Do, or each GET with
// -naive). The AccessToken latencies are measured in the workers around
// every Conf.AccessToken call a caller makes, just before its call (Do
// takes the token again, from memory): mostly the in-process copy, whose
// cost here is dominated by reading the clock (the accelerated clock and
// the measurement read it three times) after a 5 ms sleep; the tail is
// the refreshes and the scheduler. They are merged from per-process
// histograms (±3%).
//
// With -json the summary is one JSON object on stdout, with exactly these
// keys:
//
//	{"store":"file","api":"classic","naive":false,"procs":8,"sim_hours":24,"duration_s":5,
//	 "fetches":13,"expected_fetches":13,"errors_40001":0,"ledger_fetches":13,"outside_fetches":0,
//	 "calls":28331,"access_token_p50_ns":536,"access_token_p99_ns":2656}
//
// store is "memory" with -naive (each process its own); api is "classic",
// "stable" or "wecom"; with -api wecom there are three more keys:
// "revocations", the early revocations made, "new_tokens", the tokens
// WeCom minted for the fleet, and "errors_42001", the calls among
// errors_40001 rejected with 42001 (the others with 40014);
// "ledger_fetches" and "outside_fetches" are the "outside fetches" line's
// figures, left out where that line is; duration_s is the real time from
// the clock's start to the last worker's report; the latencies are in
// nanoseconds.
//
// Ctrl-C stops the run: the parent closes the workers' stdin, they report,
// the summary covers the simulated time run so far (sim_hours and
// expected_fetches too), and the exit status is 1. Workers still running
// 10 seconds after being told to stop are killed; a worker whose parent
// dies sees its stdin close and stops.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

func main() {
	if spec, ok := os.LookupEnv(workerEnv); ok {
		os.Exit(workerMain(spec))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

// workerMain runs this process as a worker and returns its exit status.
func workerMain(spec string) int {
	// Ctrl-C reaches every process of the terminal's process group. The
	// parent decides when workers stop, by closing their stdin, so that it
	// gets their reports.
	signal.Ignore(os.Interrupt)
	if err := runWorker(context.Background(), spec, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fleet worker:", err)
		return 1
	}
	return 0
}

// refreshAhead is core.Config.RefreshAhead's default, which the workers
// use; the expected fetch count depends on it.
const refreshAhead = 5 * time.Minute

// stopTimeout is how long the parent waits for workers to report after
// telling them to stop, before it kills them.
const stopTimeout = 10 * time.Second

// options are the parsed flags.
type options struct {
	store, dir, redis, postgres, etcd string
	api                               string
	naive, json                       bool
	procs, callers                    int
	pause, sim, duration, lease       time.Duration
	warmup                            time.Duration
}

// Summary is the result of a run; with -json it is printed as is. The keys
// are a contract with scripts that read it.
type Summary struct {
	Store            string  `json:"store"`
	API              string  `json:"api"`
	Naive            bool    `json:"naive"`
	Procs            int     `json:"procs"`
	SimHours         float64 `json:"sim_hours"`
	DurationS        float64 `json:"duration_s"`
	Fetches          int     `json:"fetches"`
	ExpectedFetches  int     `json:"expected_fetches"`
	Errors40001      int64   `json:"errors_40001"`           // with -api wecom: 40014 and 42001
	Errors42001      *int64  `json:"errors_42001,omitempty"` // -api wecom only: the 42001s among Errors40001
	NewTokens        *int    `json:"new_tokens,omitempty"`   // -api wecom only: tokens WeCom minted for the fleet
	Revocations      int     `json:"revocations,omitempty"`
	LedgerFetches    *int    `json:"ledger_fetches,omitempty"`  // the fleet's fetch ledger: fetches recorded (shared store, not wecom)
	OutsideFetches   *int    `json:"outside_fetches,omitempty"` // the outside fetches the ledger named
	Calls            int64   `json:"calls"`
	AccessTokenP50NS int64   `json:"access_token_p50_ns"`
	AccessTokenP99NS int64   `json:"access_token_p99_ns"`
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.store, "store", storeFile, "the shared store: memory, file, redis, postgres or etcd")
	fs.StringVar(&o.api, "api", apiClassic, "the token endpoint: classic (/cgi-bin/token, every fetch invalidates the previous token), stable (/cgi-bin/stable_token), or wecom (a WeCom app's /cgi-bin/gettoken, its token revoked early every 7 simulated hours, halfway through its 2h life)")
	fs.StringVar(&o.dir, "dir", "", "the file store's directory (default a new temporary directory, removed at the end)")
	fs.StringVar(&o.redis, "redis", "", "Redis address host:port, a comma-separated Cluster list or a redis:// URL (default $WECHATCONF_REDIS_ADDR)")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL DSN (default $DATABASE_URL)")
	fs.StringVar(&o.etcd, "etcd", "", "etcd endpoints, comma-separated (default $ETCD_ENDPOINTS)")
	fs.BoolVar(&o.naive, "naive", false, "each process keeps its own token and calls with no 40001 handling, as an SDK with an in-process cache does (ignores -store)")
	fs.IntVar(&o.procs, "procs", 8, "worker processes")
	fs.IntVar(&o.callers, "callers", 4, "calling goroutines per worker process")
	fs.DurationVar(&o.pause, "pause", 5*time.Millisecond, "real pause between a caller's calls")
	fs.DurationVar(&o.sim, "sim", 24*time.Hour, "simulated time to run")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "real time the simulated time takes")
	fs.DurationVar(&o.lease, "lease", 5*time.Second, "the store's refresh-lock lease (real time)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "least real time between launching the workers and starting the clock (which also waits for every worker to be ready)")
	fs.BoolVar(&o.json, "json", false, "print the summary as one JSON object on stdout")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.api != apiClassic && o.api != apiStable && o.api != apiWeCom:
		return nil, fmt.Errorf("unknown -api %q: want classic, stable or wecom", o.api)
	case o.procs < 1:
		return nil, fmt.Errorf("-procs must be at least 1, got %d", o.procs)
	case o.callers < 1:
		return nil, fmt.Errorf("-callers must be at least 1, got %d", o.callers)
	case o.pause < 0:
		return nil, fmt.Errorf("-pause must not be negative, got %v", o.pause)
	case o.sim <= 0:
		return nil, fmt.Errorf("-sim must be positive, got %v", o.sim)
	case o.duration <= 0:
		return nil, fmt.Errorf("-duration must be positive, got %v", o.duration)
	case o.lease <= 0:
		return nil, fmt.Errorf("-lease must be positive, got %v", o.lease)
	case o.warmup < 0:
		return nil, fmt.Errorf("-warmup must not be negative, got %v", o.warmup)
	}
	if o.redis == "" {
		o.redis = getenv("WECHATCONF_REDIS_ADDR")
	}
	if o.postgres == "" {
		o.postgres = getenv("DATABASE_URL")
	}
	if o.etcd == "" {
		o.etcd = getenv("ETCD_ENDPOINTS")
	}
	return &o, nil
}

// The values of -api.
const (
	apiClassic = "classic"
	apiStable  = "stable"
	apiWeCom   = "wecom"
)

// revokeEvery is how often, in simulated time, the parent makes the
// simulated WeCom revoke the current access_token early with -api wecom
// ("企业微信可能会出于运营需要，提前使access_token失效"): at 07:00, 14:00 and
// 21:00 of a simulated day (revocationTimes).
//
// It is off the tokens' expiry grid by half a lifetime: a token is minted
// at the start and at each revocation and lives wxtest.DefaultExpiresIn
// (2h), so 7h after a revocation its fourth token is 1h old and has 1h
// left, and every revocation ends a token halfway through its life. A
// multiple of 2h (every 6h, the earlier schedule) falls on the grid: it
// revoked a token seconds before it expired, which the fleet was about
// to replace anyway, or one the revoker's own probe had just minted.
// TestRevocationsFallInsideATokensLife checks the schedule.
const revokeEvery = 7 * time.Hour

// revocationTimes returns the simulated times, from the start, at which
// the parent revokes the WeCom token over a run of sim: every revokeEvery
// before sim.
func revocationTimes(sim time.Duration) []time.Duration {
	var at []time.Duration
	for t := revokeEvery; t < sim; t += revokeEvery {
		at = append(at, t)
	}
	return at
}

// tokenPath is the simulator's token endpoint for api.
func tokenPath(api string) string {
	switch api {
	case apiStable:
		return wxtest.PathStableToken
	case apiWeCom:
		return wxtest.PathWeComToken
	}
	return wxtest.PathToken
}

// apiDesc describes api in the summary.
func apiDesc(api string) string {
	switch api {
	case apiStable:
		return "stable /cgi-bin/stable_token"
	case apiWeCom:
		return "WeCom app /cgi-bin/gettoken, token revoked every " + fmtDur(revokeEvery) + " (halfway through its life)"
	}
	return "classic /cgi-bin/token"
}

// rejectedCodes names the errcodes of a rejected token for api.
func rejectedCodes(api string) string {
	if api == apiWeCom {
		return "40014/42001"
	}
	return "40001"
}

// revokeWeCom makes the simulated WeCom revoke the app's current
// access_token, as WeCom may do early: the token answers 40014 and the
// next gettoken mints a new one. It learns the token with a gettoken call
// of its own, through the handler (no network), which the caller must not
// count as one of the fleet's, and returns the time the token had left
// (its expires_in: 2h if no valid token existed and the probe minted it).
func revokeWeCom(wechat *wxtest.Server) (left time.Duration, err error) {
	q := "?corpid=" + simCorpID + "&corpsecret=" + simCorpSecret
	rec := httptest.NewRecorder()
	wechat.Handler().ServeHTTP(rec, httptest.NewRequest("GET", wxtest.PathWeComToken+q, nil))
	var reply struct {
		Errcode     int    `json:"errcode"`
		Errmsg      string `json:"errmsg"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil || reply.AccessToken == "" {
		return 0, fmt.Errorf("revoking the WeCom token: gettoken answered %d %q (%v)", reply.Errcode, reply.Errmsg, err)
	}
	wechat.Revoke(reply.AccessToken)
	return time.Duration(reply.ExpiresIn) * time.Second, nil
}

// spec returns the store the workers open, without the connection checked.
func (o *options) spec() (storeSpec, error) {
	s := storeSpec{Kind: o.store, Lease: o.lease}
	if o.naive {
		s.Kind = storeMemory
		return s, nil
	}
	switch o.store {
	case storeMemory:
	case storeFile:
		s.Conn = o.dir
	case storeRedis:
		if s.Conn = o.redis; s.Conn == "" {
			return s, errors.New("-store=redis needs a Redis address: pass -redis=host:port or set WECHATCONF_REDIS_ADDR")
		}
	case storePostgres:
		if s.Conn = o.postgres; s.Conn == "" {
			return s, errors.New("-store=postgres needs a PostgreSQL DSN: pass -postgres=postgres://user:pass@host/db or set DATABASE_URL")
		}
	case storeEtcd:
		if s.Conn = o.etcd; s.Conn == "" {
			return s, errors.New("-store=etcd needs etcd endpoints: pass -etcd=127.0.0.1:2379 or set ETCD_ENDPOINTS")
		}
	default:
		return s, fmt.Errorf("unknown -store %q: want memory, file, redis, postgres or etcd", o.store)
	}
	return s, nil
}

// run is the parent: it starts the simulator and the workers, shows the
// progress, and prints the summary.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	spec, err := o.spec()
	if err != nil {
		return err
	}
	var idb [4]byte
	rand.Read(idb[:])
	spec.RunID = hex.EncodeToString(idb[:])
	keyPrefix := "fleet-" + spec.RunID

	if spec.Kind == storeFile && spec.Conn == "" {
		dir, err := os.MkdirTemp("", "fleet-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		spec.Conn = dir
	}
	// Open the store here first: a bad connection is one clear error, not
	// one per worker.
	be, err := spec.open(ctx, true)
	if err != nil {
		return err
	}
	defer be.close()
	if be.remove != nil {
		defer func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), connectTimeout)
			defer cancel()
			key := keyPrefix + "/" + simAppID + "/access_token"
			if o.api == apiWeCom {
				key = keyPrefix + "/wecom/" + simCorpID + "/" + strconv.Itoa(simAgentID) + "/access_token"
			}
			// The token and its fetch ledger (core.LedgerKey).
			if err := errors.Join(be.remove(rctx, key), be.remove(rctx, core.LedgerKey(key))); err != nil {
				fmt.Fprintf(stderr, "fleet: removing the run's token from the store: %v\n", err)
			}
		}()
	}

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program to start the workers: %w", err)
	}

	errw := &syncWriter{w: stderr, term: isTerminal(stderr)}
	speed := float64(o.sim) / float64(o.duration)
	start := time.Now().Truncate(time.Second)
	// The clock stands still at start until every worker is ready.
	var clkp atomic.Pointer[clock]
	clkp.Store(&clock{start: start, startReal: time.Unix(0, math.MaxInt64), speed: speed})

	wechat := wxtest.New(wxtest.Options{
		AppID: simAppID, AppSecret: simAppSecret,
		WeComApps: []wxtest.WeComApp{{CorpID: simCorpID, AgentID: simAgentID, Secret: simCorpSecret}},
		Now:       func() time.Time { return clkp.Load().now() },
	})
	defer wechat.Close()

	procs := make([]*proc, o.procs)
	defer func() { // on any early return
		for _, p := range procs {
			if p != nil {
				p.kill()
			}
		}
	}()
	launched := time.Now()
	for i := range procs {
		cfg := workerConfig{
			Index: i, Start: start.UnixNano(), Speed: speed, Sim: o.sim,
			URL: wechat.URL, KeyPrefix: keyPrefix, Store: spec, API: o.api, Naive: o.naive, Callers: o.callers, Pause: o.pause,
		}
		if procs[i], err = startWorker(self, cfg, errw); err != nil {
			return err
		}
	}
	storeDesc := spec.Kind
	switch {
	case o.naive:
		storeDesc = "none shared (-naive: each process its own memory cache)"
	case spec.Kind == storeMemory:
		storeDesc = "memory (each process its own)"
	case spec.Kind == storeFile:
		storeDesc = "file (" + spec.Conn + ")"
	}
	errw.printf("fleet: %d processes × %d callers, store %s, %s; %s simulated in %v (×%.0f)\n",
		o.procs, o.callers, storeDesc, apiDesc(o.api), fmtDur(o.sim), o.duration, speed)

	allExited := make(chan struct{})
	go func() {
		for _, p := range procs {
			<-p.done
		}
		close(allExited)
	}()

	// The clock starts once every worker has said it is ready (or exited),
	// and no sooner than -warmup after they were launched; each worker is
	// told when.
	interrupted := false
	clk := *clkp.Load()
	if err := awaitReady(ctx, procs, launched.Add(o.warmup)); err != nil {
		if ctx.Err() == nil {
			return err
		}
		interrupted = true // before the clock started: stoppedAt is 0
	} else {
		clk = newClock(start.UnixNano(), time.Now().UnixNano(), speed)
		clkp.Store(&clk)
		line := fmt.Sprintf("%s%d\n", startLine, clk.startReal.UnixNano())
		for _, p := range procs {
			io.WriteString(p.stdin, line) // a worker that exited reports at the end
		}
	}
	startReal := clk.startReal
	endReal := clk.realAt(o.sim)

	// With -api wecom, WeCom revokes the current token at revocationTimes;
	// each revocation makes one gettoken call of the parent's own (probes),
	// which the fetch count leaves out, and is shown on stderr with the
	// time the revoked token had left.
	var revocations, probes, probeMints atomic.Int64
	stopRevoking := make(chan struct{})
	revokerDone := make(chan struct{})
	revoke := o.api == apiWeCom && !interrupted
	go func() {
		defer close(revokerDone)
		if !revoke {
			return
		}
		for _, at := range revocationTimes(o.sim) {
			t := time.NewTimer(time.Until(clk.realAt(at)))
			select {
			case <-t.C:
			case <-stopRevoking:
				t.Stop()
				return
			}
			probes.Add(1)
			left, err := revokeWeCom(wechat)
			now := clk.now().Sub(clk.start) // at, or a little after on a busy machine
			if err != nil {
				errw.printf("fleet: %v\n", err)
				continue
			}
			if left >= wxtest.DefaultExpiresIn-time.Second {
				// The fleet held no valid token: the probe minted this one.
				probeMints.Add(1)
				errw.printf("fleet: sim %s: WeCom revoked a token no instance had yet (the fleet's had expired)\n", hhmm(now))
			} else {
				errw.printf("fleet: sim %s: WeCom revoked the app's token, %s before its expiry\n", hhmm(now), fmtDur(left))
			}
			revocations.Add(1)
		}
	}()
	fleetFetches := func() int { return wechat.Calls(tokenPath(o.api)) - int(probes.Load()) }

	// Progress until the simulated end, ctrl-C, or every worker gone.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	endTimer := time.NewTimer(time.Until(endReal))
	defer endTimer.Stop()
	progress := func(sim time.Duration) {
		var calls, e40001 int64
		for _, p := range procs {
			if m := p.last.Load(); m != nil {
				calls += m.Calls
				e40001 += m.Errors40001
			}
		}
		errw.progress("sim %s / %s   fetches %d   %ss %d   calls %d",
			hhmm(min(sim, o.sim)), hhmm(o.sim), fleetFetches(), rejectedCodes(o.api), e40001, calls)
	}
loop:
	for !interrupted {
		select {
		case <-tick.C:
			progress(clk.now().Sub(clk.start))
		case <-endTimer.C:
			break loop
		case <-ctx.Done():
			interrupted = true
			break loop
		case <-allExited:
			break loop
		}
	}
	// The simulated time run: o.sim, or less after ctrl-C.
	stoppedAt := min(clk.now().Sub(clk.start), o.sim)
	close(stopRevoking)
	<-revokerDone // revocations and probes are final

	// Tell the workers to stop (they also stop by themselves at the
	// simulated end), wait for their reports, kill stragglers.
	for _, p := range procs {
		p.stdin.Close()
	}
	stragglers := time.NewTimer(stopTimeout)
	defer stragglers.Stop()
	select {
	case <-allExited:
	case <-stragglers.C:
		for _, p := range procs {
			select {
			case <-p.done:
			default:
				errw.printf("fleet: worker %d did not stop within %v; killing it\n", p.index, stopTimeout)
				p.kill()
			}
		}
		<-allExited
	}
	elapsed := max(time.Since(startReal), 0)
	progress(stoppedAt) // with the workers' final counts
	errw.endProgress()

	sum := Summary{
		Store:           spec.Kind,
		API:             o.api,
		Naive:           o.naive,
		Procs:           o.procs,
		SimHours:        stoppedAt.Hours(),
		DurationS:       float64(elapsed.Round(100*time.Millisecond)) / float64(time.Second),
		Fetches:         fleetFetches(),
		ExpectedFetches: expectedFetches(stoppedAt),
		Revocations:     int(revocations.Load()),
	}
	if l, err := readLedger(ctx, be.store, keyPrefix+"/"+simAppID+"/access_token"); err != nil {
		errw.printf("fleet: reading the fleet's fetch ledger: %v\n", err)
	} else if l != nil {
		fetches, outside := 0, 0
		for _, d := range l.Days {
			fetches += d.Fetches
			outside += d.Outside
		}
		sum.LedgerFetches, sum.OutsideFetches = &fetches, &outside
	}
	var errors42001 int64
	if o.api == apiWeCom {
		sum.ExpectedFetches = expectedWeComFetches(stoppedAt)
		newTokens := wechat.TokensIssued() - int(probeMints.Load())
		sum.NewTokens = &newTokens
		sum.Errors42001 = &errors42001
	}
	var lat hist
	var other int64
	var firstErr string
	var failures []error
	for _, p := range procs {
		m := p.final
		if m == nil {
			m = p.last.Load()
			failures = append(failures, fmt.Errorf("worker %d: %v, before its final report", p.index, exitStatus(p.err)))
		} else if p.err != nil {
			failures = append(failures, fmt.Errorf("worker %d: %v", p.index, p.err))
		}
		if m == nil {
			continue
		}
		sum.Calls += m.Calls
		sum.Errors40001 += m.Errors40001
		errors42001 += m.Errors42001
		other += m.OtherErrors
		if firstErr == "" {
			firstErr = m.FirstError
		}
		lat.addSparse(m.Latency)
	}
	sum.AccessTokenP50NS = lat.quantile(0.50)
	sum.AccessTokenP99NS = lat.quantile(0.99)

	if o.json {
		b, err := json.Marshal(sum)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		printSummary(stdout, o, sum, stoppedAt, storeDesc, speed, other, firstErr, lat.n)
	}
	if other > 0 && o.json {
		errw.printf("fleet: %d calls failed with errors other than %s; the first: %s\n", other, rejectedCodes(o.api), firstErr)
	}
	if interrupted {
		failures = append(failures, fmt.Errorf("interrupted at simulated %s of %s", hhmm(stoppedAt), hhmm(o.sim)))
	}
	return errors.Join(failures...)
}

// readLedger reads the Official Account's fetch ledger from the parent's
// store (core.ReadLedger); nil when there is none: -naive and -store=memory
// (each process its own store), -api wecom (the ledger is the Official
// Account's), or no fetch recorded.
func readLedger(ctx context.Context, store core.TokenStore, key string) (*core.Ledger, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), connectTimeout)
	defer cancel()
	l, err := core.ReadLedger(ctx, store, key)
	switch {
	case errors.Is(err, core.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &l, nil
}

// expectedFetches is how many token fetches a fleet needs over sim: one at
// the start, then one each token lifetime minus the refresh-ahead.
func expectedFetches(sim time.Duration) int {
	return int(sim/(wxtest.DefaultExpiresIn-refreshAhead)) + 1
}

// expectedWeComFetches is how many gettoken calls a WeCom fleet needs over
// sim: one at the start and one at each revocation (revocationTimes),
// and one each time a token expires in between: WeCom hands the current
// token back until it expires, so there is no refreshing ahead
// (core.HandoverAtExpiry).
func expectedWeComFetches(sim time.Duration) int {
	if sim <= 0 {
		return 1
	}
	n := 0
	from := time.Duration(0)
	for _, to := range append(revocationTimes(sim), sim) {
		n += int((to - from + wxtest.DefaultExpiresIn - 1) / wxtest.DefaultExpiresIn)
		from = to
	}
	return n
}

func printSummary(w io.Writer, o *options, s Summary, sim time.Duration, storeDesc string, speed float64, other int64, firstErr string, samples int64) {
	fmt.Fprintf(w, "fleet: %d processes × %d callers, store %s, %s\n", o.procs, o.callers, storeDesc, apiDesc(o.api))
	fmt.Fprintf(w, "       %s simulated in %.1fs (×%.0f)\n", fmtDur(sim.Round(time.Minute)), s.DurationS, speed)
	if o.api == apiWeCom {
		fmt.Fprintf(w, "token fetches %8d   expected %d = 1 + %d revocations + expiries (2h) in %s\n", s.Fetches, s.ExpectedFetches, s.Revocations, fmtDur(sim.Round(time.Minute)))
		if s.NewTokens != nil {
			fmt.Fprintf(w, "new tokens    %8d   minted by WeCom; the other %d gettoken calls got the current token back\n", *s.NewTokens, s.Fetches-*s.NewTokens)
		}
	} else {
		fmt.Fprintf(w, "token fetches %8d   expected %d = %s / (2h − 5m refresh-ahead) + 1\n", s.Fetches, s.ExpectedFetches, fmtDur(sim.Round(time.Minute)))
	}
	if s.OutsideFetches != nil && s.LedgerFetches != nil {
		fmt.Fprintf(w, "outside fetches %6d   named by the fleet's fetch ledger (it recorded %d fetches)\n", *s.OutsideFetches, *s.LedgerFetches)
	}
	code := rejectedCodes(o.api)
	how := "seen by callers, after Do's compare-and-refresh and one retry"
	if o.naive && o.api == apiWeCom {
		how = "seen by callers (-naive: the process drops its token, no retry)"
	} else if o.naive {
		how = "seen by callers (no 40001 handling: -naive)"
	}
	if o.api == apiWeCom && s.Errors42001 != nil {
		fmt.Fprintf(w, "40014 errors  %8d   a revoked token, %s\n", s.Errors40001-*s.Errors42001, how)
		fmt.Fprintf(w, "42001 errors  %8d   an expired token (used in its last instant), %s\n", *s.Errors42001, how)
	} else {
		fmt.Fprintf(w, "%s errors  %8d   %s\n", code, s.Errors40001, how)
	}
	fmt.Fprintf(w, "calls         %8d   %d other errors\n", s.Calls, other)
	if other > 0 {
		fmt.Fprintf(w, "              first other error: %s\n", firstErr)
	}
	fmt.Fprintf(w, "AccessToken    p50 %v   p99 %v   (%d samples, measured in the workers)\n",
		time.Duration(s.AccessTokenP50NS), time.Duration(s.AccessTokenP99NS), samples)
	tooMany := s.Fetches > s.ExpectedFetches+1
	if o.api == apiWeCom {
		printWeComVerdict(w, o, s)
		return
	}
	switch {
	case s.Errors40001 == 0 && !tooMany:
		fmt.Fprintln(w, "=> one fetch per refresh for the whole fleet, and no caller saw a rejected token.")
	case tooMany && o.api == apiStable && (o.naive || o.store == storeMemory):
		fmt.Fprintf(w, "=> %d fetches where %d would do: each process fetches for itself (stable tokens do not invalidate each other", s.Fetches, s.ExpectedFetches)
		if s.Errors40001 == 0 {
			fmt.Fprint(w, ", so no caller saw a 40001")
		}
		fmt.Fprintln(w, ").")
	case tooMany && o.api == apiStable:
		// A refresh ahead of expiry that reaches WeChat before its hand-over
		// window gets the same token back, and is tried again.
		fmt.Fprintf(w, "=> %d fetches where %d would do: refreshes ahead of expiry that reached WeChat before its last 5 minutes got the same token back.\n", s.Fetches, s.ExpectedFetches)
	case tooMany:
		fmt.Fprintf(w, "=> %d fetches where %d would do: each fetch invalidates, 5 minutes later, the token every other process holds", s.Fetches, s.ExpectedFetches)
		if s.Errors40001 > 0 {
			fmt.Fprintf(w, ";\n   %.1f%% of the calls were rejected with 40001", 100*float64(s.Errors40001)/float64(max(s.Calls, 1)))
		}
		fmt.Fprintln(w, ".")
	default:
		fmt.Fprintf(w, "=> %d calls were rejected with 40001.\n", s.Errors40001)
	}
}

// printWeComVerdict ends the summary of an -api wecom run.
func printWeComVerdict(w io.Writer, o *options, s Summary) {
	perProc := o.naive || o.store == storeMemory
	switch {
	case perProc:
		fmt.Fprintf(w, "=> %d gettoken calls where %d would do: each process fetches for itself at every expiry and revocation", s.Fetches, s.ExpectedFetches)
	case s.Fetches <= s.ExpectedFetches:
		fmt.Fprint(w, "=> one gettoken call per expiry or revocation for the whole fleet")
	default:
		// On the fast simulated clock a fetch at a token's end can reach
		// WeCom a few simulated seconds early and get it back.
		fmt.Fprintf(w, "=> %d gettoken calls where %d would do: the extra ones reached WeCom just before a token's end and got it back", s.Fetches, s.ExpectedFetches)
	}
	if s.Errors40001 > 0 {
		fmt.Fprintf(w, ";\n   %d calls (%.2f%%) were rejected with 40014 or 42001: revoked or expired tokens reached the callers.\n", s.Errors40001, 100*float64(s.Errors40001)/float64(max(s.Calls, 1)))
	} else {
		fmt.Fprintln(w, ", and no caller saw a revoked token.")
	}
}

// fmtDur formats a duration without zero minutes and seconds: 24h, 1h30m.
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// hhmm formats a simulated duration as hours:minutes.
func hhmm(d time.Duration) string {
	m := int64(d / time.Minute)
	return fmt.Sprintf("%02d:%02d", m/60, m%60)
}

// proc is one worker process as the parent sees it.
type proc struct {
	index int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	last  atomic.Pointer[workerMsg] // the latest counters
	ready chan struct{}             // closed at the ready line

	final *workerMsg    // the final report, nil if none; set before done closes
	err   error         // from Wait; set before done closes
	done  chan struct{} // closed when the process has exited and its output is read
}

// startWorker starts worker cfg.Index, relaying its stderr to errw.
func startWorker(self string, cfg workerConfig, errw *syncWriter) (*proc, error) {
	spec, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), workerEnv+"="+string(spec),
		// A worker built with -race would otherwise sleep 1 s when it exits.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.Stderr = &prefixWriter{w: errw, prefix: fmt.Sprintf("worker %d: ", cfg.Index)}
	cmd.WaitDelay = time.Second
	p := &proc{index: cfg.Index, cmd: cmd, ready: make(chan struct{}), done: make(chan struct{})}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting worker %d (%s): %w", cfg.Index, self, err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		ready := false
		for sc.Scan() {
			var m workerMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				errw.printf("worker %d: %s\n", cfg.Index, sc.Bytes())
				continue
			}
			switch {
			case m.Ready:
				if !ready {
					ready = true
					close(p.ready)
				}
			case m.Final:
				p.final = &m
				p.last.Store(&m)
			default:
				p.last.Store(&m)
			}
		}
		io.Copy(io.Discard, out)
		p.err = cmd.Wait()
	}()
	return p, nil
}

// kill ends the process if it still runs.
func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		p.stdin.Close()
		p.cmd.Process.Kill()
	}
}

// readyTimeout bounds how long the parent waits for its workers to be
// ready: generous, since starting a process and opening a store can take
// seconds on a busy machine, and the clock waits for the last of them.
const readyTimeout = 2 * time.Minute

// awaitReady waits until every worker has said it is ready or has exited,
// and until notBefore; it fails when ctx ends first or after readyTimeout.
func awaitReady(ctx context.Context, procs []*proc, notBefore time.Time) error {
	limit := time.NewTimer(readyTimeout)
	defer limit.Stop()
	for _, p := range procs {
		select {
		case <-p.ready:
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		case <-limit.C:
			return fmt.Errorf("worker %d not ready within %v", p.index, readyTimeout)
		}
	}
	select {
	case <-time.After(time.Until(notBefore)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exited"
	}
	return err.Error()
}

// syncWriter serialises the parent's stderr among the progress line and the
// workers' relayed output. On a terminal the progress line is redrawn in
// place; elsewhere it is one line per update.
type syncWriter struct {
	mu       sync.Mutex
	w        io.Writer
	term     bool
	drawn    bool // a progress line without its newline is on screen
	lastLine string
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clearLocked()
	return s.w.Write(b)
}

func (s *syncWriter) printf(format string, args ...any) {
	fmt.Fprintf(s, format, args...)
}

func (s *syncWriter) clearLocked() {
	if s.drawn {
		io.WriteString(s.w, "\r\033[K")
		s.drawn = false
	}
}

func (s *syncWriter) progress(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	line := fmt.Sprintf(format, args...)
	if !s.term {
		if line != s.lastLine {
			fmt.Fprintln(s.w, line)
		}
		s.lastLine = line
		return
	}
	s.clearLocked()
	io.WriteString(s.w, line)
	s.drawn = true
}

// endProgress leaves the last progress line on screen.
func (s *syncWriter) endProgress() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drawn {
		io.WriteString(s.w, "\n")
		s.drawn = false
	}
}

// prefixWriter relays a worker's stderr line by line with a prefix.
type prefixWriter struct {
	w      *syncWriter
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.w.printf("%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// isTerminal reports whether w is a character device, where the progress
// line can be redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
