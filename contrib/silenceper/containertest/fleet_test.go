package containertest_test

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/silenceper/wechat/v2/officialaccount"
	"github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/conformance/containers/childproc"
	"github.com/wechatconf/wechatconf/contrib/silenceper"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// Environment of a fleet child; the presence of fleetURLEnv makes
// TestFleet play one process of the fleet.
const (
	fleetURLEnv    = "WECHATCONF_SILENCEPER_FLEET_URL"
	fleetRedisEnv  = "WECHATCONF_SILENCEPER_FLEET_REDIS"
	fleetPrefixEnv = "WECHATCONF_SILENCEPER_FLEET_PREFIX"
	fleetModeEnv   = "WECHATCONF_SILENCEPER_FLEET_MODE" // "adapter" or "naive"
	fleetStartEnv  = "WECHATCONF_SILENCEPER_FLEET_START"
)

// The simulated span: rounds every fleetStep of the simulated clock; in
// each, every process calls GetCallbackIP fleetCalls times from each of
// fleetGoroutines goroutines. Before round fleetRevokeRound the fleet's
// token is revoked at WeChat (a leak, a classic fetch by some other tool),
// so that one refresh cycle is started by 40001 rather than by expiry.
const (
	fleetProcs       = 8
	fleetGoroutines  = 8
	fleetCalls       = 5
	fleetStep        = 10 * time.Minute
	fleetRounds      = 48 // 8 simulated hours
	fleetRevokeRound = 6
	fleetMargin      = time.Minute // RefreshAhead and ExpiryMargin of the children's Conf
	fleetTimeout     = 5 * time.Minute
	fleetLine        = "fleet: "

	testAppID     = "wxsilenceper"
	testAppSecret = "silenceper-secret"
	weChatHost    = "api.weixin.qq.com" // the host silenceper calls, hardcoded in its URLs
)

// TestFleet runs silenceper's Official Account API (GetCallbackIP) in 8 OS
// processes against one simulated classic-token WeChat API, where every
// token fetch invalidates the previous token after wxtest's Overlap (5
// minutes), for 8 simulated hours: once through the adapter over one Redis
// store, once with silenceper's own per-process token cache. The parent
// runs the WeChat simulation and owns its clock; the children only talk
// HTTP and take the simulated time from the parent with each round, so
// every round is at a known instant and nothing waits on real time.
//
// With the adapter, WeChat must see exactly one token fetch per refresh
// cycle (the model in expectedFetches: one at start, one at each expiry,
// one after the revoke) and no caller may see an error; without it the
// same fleet must fetch more and callers must see 40001.
func TestFleet(t *testing.T) {
	if wechatURL, ok := os.LookupEnv(fleetURLEnv); ok {
		fleetChild(t, wechatURL)
		return
	}
	if testing.Short() {
		t.Skip("runs 16 processes and a Redis container")
	}
	r := containers.StartRedis(t)
	with := runFleet(t, r.Addr, "adapter")
	without := runFleet(t, r.Addr, "naive")
	calls := fleetProcs * fleetGoroutines * fleetCalls * fleetRounds
	for _, f := range []fleetResult{with, without} {
		t.Logf("%d processes x %d goroutines, %d rounds %v apart (%v simulated), %d GetCallbackIP calls, %s: %d token fetches (one per refresh cycle would be %d), %d calls rejected with 40001/42001 (%.1f %%), %d other errors, %v real time",
			fleetProcs, fleetGoroutines, fleetRounds, fleetStep, fleetStep*fleetRounds, calls, f.mode, f.fetches, f.expected,
			f.rejected, 100*float64(f.rejected)/float64(calls), f.other, f.elapsed.Round(time.Millisecond))
	}
	if with.fetches != with.expected {
		t.Errorf("with the adapter: %d token fetches, want %d (one per refresh cycle)", with.fetches, with.expected)
	}
	if with.rejected != 0 || with.other != 0 || with.ok != calls {
		t.Errorf("with the adapter: %d calls succeeded of %d, %d rejected, %d other errors (first: %s); want every call to succeed",
			with.ok, calls, with.rejected, with.other, with.firstErr)
	}
	if with.splitRounds != 0 {
		t.Errorf("with the adapter: in %d rounds the processes ended on different tokens, want one token fleet-wide", with.splitRounds)
	}
	if without.fetches <= with.fetches {
		t.Errorf("without the adapter: %d token fetches, not more than the adapter's %d", without.fetches, with.fetches)
	}
	if without.rejected == 0 {
		t.Errorf("without the adapter: no call rejected; the simulation did not reproduce the classic-token race")
	}
	if without.other != 0 {
		t.Errorf("without the adapter: %d errors other than rejections (first: %s)", without.other, without.firstErr)
	}
}

// expectedFetches is the model of a fleet with the adapter: a token is
// fetched in the first round, in the round where the one held is within
// fleetMargin of its expiry (WeChat's 7200 s from its fetch), and in the
// round after it was revoked; one fetch each, whatever the fleet's size.
func expectedFetches() int {
	n := 0
	var expires time.Duration
	for round := range fleetRounds {
		now := time.Duration(round) * fleetStep
		if round == 0 || round == fleetRevokeRound || now >= expires-fleetMargin {
			n++
			expires = now + wxtest.DefaultExpiresIn
		}
	}
	return n
}

type fleetResult struct {
	mode                string
	fetches, expected   int
	ok, rejected, other int
	splitRounds         int
	firstErr            string
	elapsed             time.Duration
}

// runFleet runs the fleet once in the given mode and returns its figures.
func runFleet(t *testing.T, redisAddr, mode string) fleetResult {
	t.Helper()
	start := time.Now().Truncate(time.Second)
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	defer wechat.Close()
	prefix := fmt.Sprintf("silenceperfleet%08x", rand.Uint32())

	children := childproc.Start(t, fleetProcs, childproc.Options{
		Test: "TestFleet",
		Env: []string{fleetURLEnv + "=" + wechat.URL, fleetRedisEnv + "=" + redisAddr, fleetPrefixEnv + "=" + prefix,
			fleetModeEnv + "=" + mode, fleetStartEnv + "=" + strconv.FormatInt(start.UnixNano(), 10)},
		Prefix:  fleetLine,
		Timeout: fleetTimeout,
	})
	next := func(i int) string { return children[i].Next() }
	for _, c := range children {
		c.Expect("ready")
	}

	res := fleetResult{mode: mode, expected: expectedFetches()}
	began := time.Now()
	held := map[string]bool{} // tokens the processes ended the last round on
	for round := range fleetRounds {
		now := start.Add(time.Duration(round) * fleetStep)
		clock.Store(now.UnixNano())
		if round == fleetRevokeRound {
			for tok := range held {
				wechat.Revoke(tok)
			}
		}
		for _, c := range children {
			c.Send("%d", now.UnixNano())
		}
		held = map[string]bool{}
		for i := range children {
			f := strings.SplitN(next(i), " ", 6)
			if len(f) != 6 || f[0] != "done" {
				t.Fatalf("%s fleet child %d: malformed report %q", mode, i, strings.Join(f, " "))
			}
			ok, _ := strconv.Atoi(f[1])
			rej, _ := strconv.Atoi(f[2])
			other, _ := strconv.Atoi(f[3])
			res.ok += ok
			res.rejected += rej
			res.other += other
			held[f[4]] = true
			if e, _ := strconv.Unquote(f[5]); e != "" && res.firstErr == "" {
				res.firstErr = fmt.Sprintf("round %d, process %d: %s", round, i, e)
			}
		}
		if len(held) != 1 {
			res.splitRounds++
		}
	}
	res.elapsed = time.Since(began)
	res.fetches = wechat.TokensIssued()
	for i, c := range children {
		if err := c.Wait(); err != nil {
			t.Errorf("%s fleet child %d: %v; its output:\n%s", mode, i, err, c.Output())
		}
	}
	return res
}

// fleetChild is one process of the fleet: it builds silenceper's Official
// Account client (through the adapter over the Redis store, or with
// silenceper's own token cache), says ready, then for each simulated time
// read from stdin runs one round of calls and reports it.
func fleetChild(t *testing.T, wechatURL string) {
	startNS, err := strconv.ParseInt(os.Getenv(fleetStartEnv), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(startNS)
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	client := &http.Client{Transport: newToServer(t, wechatURL), Timeout: time.Minute}
	util.DefaultHTTPClient = client

	var oa *officialaccount.OfficialAccount
	switch mode := os.Getenv(fleetModeEnv); mode {
	case "adapter":
		rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(fleetRedisEnv)})
		defer rdb.Close()
		store, err := redisstore.New(rdb)
		if err != nil {
			t.Fatal(err)
		}
		conf, err := core.New(core.Config{
			AppID:        testAppID,
			AppSecret:    core.NewSecret(testAppSecret),
			Store:        store,
			KeyPrefix:    os.Getenv(fleetPrefixEnv),
			TokenAPI:     core.ClassicToken,
			HTTPClient:   client, // BaseURL stays https://api.weixin.qq.com
			Now:          now,
			RefreshAhead: fleetMargin,
			ExpiryMargin: fleetMargin,
		})
		if err != nil {
			t.Fatal(err)
		}
		oa = silenceper.OfficialAccount(conf, nil)
	case "naive":
		oa = officialaccount.NewOfficialAccount(&config.Config{AppID: testAppID, AppSecret: testAppSecret, Cache: &simCache{now: now}})
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	// silenceper's OfficialAccount creates its API objects lazily, without
	// a lock: create the one the goroutines share before they start.
	basic := oa.GetBasic()
	fmt.Println(fleetLine + "ready")

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		ns, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		clock.Store(ns)
		var ok, rejected, other atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		for range fleetGoroutines {
			wg.Go(func() {
				for range fleetCalls {
					ips, err := basic.GetCallbackIP()
					var ce *util.CommonError
					switch {
					case err == nil && len(ips) > 0:
						ok.Add(1)
						continue
					case errors.As(err, &ce) && (ce.ErrCode == 40001 || ce.ErrCode == 40014 || ce.ErrCode == 42001):
						rejected.Add(1)
					default:
						other.Add(1)
						if err == nil {
							err = errors.New("no IP list")
						}
						firstErr.CompareAndSwap(nil, err.Error())
					}
				}
			})
		}
		wg.Wait()
		tok, err := oa.GetAccessToken()
		if err != nil {
			tok = "error"
		}
		e, _ := firstErr.Load().(string)
		fmt.Printf("%sdone %d %d %d %s %q\n", fleetLine, ok.Load(), rejected.Load(), other.Load(), tok, e)
	}
}

// simCache is silenceper's cache.Cache on the simulated clock, so that its
// own token cache (expires_in − 1500 s) expires in simulated time, as it
// would over a real day.
type simCache struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]simEntry
}

type simEntry struct {
	val     any
	expires time.Time
}

func (c *simCache) Get(key string) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !c.now().Before(e.expires) {
		return nil
	}
	return e.val
}

func (c *simCache) Set(key string, val any, timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]simEntry{}
	}
	c.m[key] = simEntry{val, c.now().Add(timeout)}
	return nil
}

func (c *simCache) IsExist(key string) bool { return c.Get(key) != nil }

func (c *simCache) Delete(key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
	return nil
}

// toServer is the test's network: requests to https://api.weixin.qq.com
// (silenceper's, and the Conf's with core.Config.BaseURL left at its
// default) go to the simulated API at target instead; others go out
// unchanged.
type toServer struct {
	target *neturl.URL
	base   http.RoundTripper
}

func newToServer(t testing.TB, serverURL string) *toServer {
	u, err := neturl.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	return &toServer{target: u, base: http.DefaultTransport}
}

func (r *toServer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != weChatHost {
		return r.base.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	u := *req.URL
	u.Scheme, u.Host = r.target.Scheme, r.target.Host
	out.URL, out.Host = &u, ""
	return r.base.RoundTrip(out)
}
