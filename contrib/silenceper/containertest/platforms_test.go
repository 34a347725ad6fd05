package containertest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/silenceper/wechat/v2/miniprogram"
	mpconfig "github.com/silenceper/wechat/v2/miniprogram/config"
	"github.com/silenceper/wechat/v2/miniprogram/message"
	"github.com/silenceper/wechat/v2/openplatform"
	opconfig "github.com/silenceper/wechat/v2/openplatform/config"
	"github.com/silenceper/wechat/v2/util"
	"github.com/silenceper/wechat/v2/work"
	workconfig "github.com/silenceper/wechat/v2/work/config"
	workmessage "github.com/silenceper/wechat/v2/work/message"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/conformance/containers/childproc"
	"github.com/wechatconf/wechatconf/contrib/silenceper"
	"github.com/wechatconf/wechatconf/core"
	coreopen "github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wecom"
	"github.com/wechatconf/wechatconf/core/wxtest"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// The fleets of TestFleetPlatforms: smaller than the Official Account's TestFleet
// (which shows the scale), to keep each well under a minute on a loaded
// 2-core machine. Rounds every fleetStep of the simulated clock (4
// simulated hours: two refresh cycles and a revoke); in each, every process makes pfCalls calls from each
// of pfGoroutines goroutines; before round fleetRevokeRound the fleet's
// token is revoked at WeChat.
const (
	pfProcs      = 4
	pfGoroutines = 4
	pfCalls      = 4
	pfRounds     = 24

	pfPlatformEnv = "WECHATCONF_SILENCEPER_PFLEET" // the platform a child plays
	pfSecretEnv   = "WECHATCONF_SILENCEPER_PFLEET_REFRESH"

	mpAppID      = "wxsilencepermp"
	mpSecret     = "silenceper-mp-secret"
	workCorpID   = "wwsilenceper"
	workAgentID  = 1000002
	workSecret   = "silenceper-work-secret"
	componentID  = "wxsilencepercomponent"
	componentKey = "silenceper-component-secret"
	merchantID   = "wxsilencepermerchant"
)

// platformFleet is one platform's fleet: how the parent sets WeChat up
// and counts its token fetches, and how a child builds its client.
type platformFleet struct {
	name  string // "miniprogram", "work", "openplatform"
	test  string // the subtest of TestFleetPlatforms
	calls string // what each call is, for the log
	opts  wxtest.Options
	// setup prepares WeChat and the store before the children start (the
	// Open Platform's verify ticket and authorization) and returns the
	// environment the children need; nil for none.
	setup func(t *testing.T, f *pfRun) []string
	// tick runs before each round, at the round's simulated time, and
	// returns what the children get with it ("-" for nothing): the Open
	// Platform's verify ticket, pushed every 10 minutes.
	tick func(t *testing.T, f *pfRun) string
	// fetches counts the fleet's access-token fetches at WeChat.
	fetches func(w *wxtest.Server) int
	// expected is the adapter's model: how many fetches one per refresh
	// cycle makes.
	expected int
	// naiveFails says that silenceper alone fails calls with errors other
	// than a rejected token (the reason is in the Test's doc).
	naiveFails bool
	// client builds the child's silenceper client in mode ("adapter" or
	// "naive").
	client func(t *testing.T, c *pfChild) pfClient
}

// pfRun is the parent's view of one run.
type pfRun struct {
	wechat    *wxtest.Server
	redisAddr string
	prefix    string
	mode      string
	now       func() time.Time
	component *coreopen.Component // the Open Platform's push handler, if any
}

// pfChild is a child's environment.
type pfChild struct {
	wechatURL, redisAddr, prefix, mode string
	now                                func() time.Time
	rdb                                *redis.Client
}

// pfClient is what a child does with its client.
type pfClient struct {
	call  func() error           // one API call
	token func() (string, error) // the token the client holds now
	round func(extra string)     // before each round's calls; nil for nothing
}

// fleetModel is expectedFetches for a fleet whose Conf refreshes margin
// before expiry: a fetch in the first round, in the round where the token
// held is within margin of its expiry, and in the round after the revoke.
func fleetModel(margin time.Duration) int {
	n := 0
	var expires time.Duration
	for round := range pfRounds {
		now := time.Duration(round) * fleetStep
		if round == 0 || round == fleetRevokeRound || now >= expires-margin {
			n++
			expires = now + wxtest.DefaultExpiresIn
		}
	}
	return n
}

// miniProgramFleet runs silenceper's Mini Program API (customer
// service messages) in 4 processes over one Redis store against a
// simulated classic-token WeChat, as TestFleet does for the Official
// Account: with MiniProgram, exactly one token fetch per refresh cycle and
// no rejected call; with silenceper alone (its per-process token cache,
// classic tokens, its default), more fetches and rejected calls.
func miniProgramFleet() *platformFleet {
	return &platformFleet{
		name: "miniprogram", test: "MiniProgram", calls: "customer message Send",
		opts:     wxtest.Options{AppID: mpAppID, AppSecret: mpSecret},
		fetches:  func(w *wxtest.Server) int { return w.TokensIssued() },
		expected: fleetModel(fleetMargin),
		client: func(t *testing.T, c *pfChild) pfClient {
			var mp *miniprogram.MiniProgram
			if c.mode == "adapter" {
				conf, err := core.New(core.Config{
					AppID: mpAppID, AppSecret: core.NewSecret(mpSecret), Store: c.store(t), KeyPrefix: c.prefix,
					TokenAPI: core.ClassicToken, BaseURL: c.wechatURL, Now: c.now,
					RefreshAhead: fleetMargin, ExpiryMargin: fleetMargin,
				})
				if err != nil {
					t.Fatal(err)
				}
				mp = silenceper.MiniProgram(conf, nil)
			} else {
				mp = miniprogram.NewMiniProgram(&mpconfig.Config{AppID: mpAppID, AppSecret: mpSecret, Cache: &simCache{now: c.now}})
			}
			customer := mp.GetCustomerMessage()
			return pfClient{
				call:  func() error { return customer.Send(message.NewCustomerTextMessage("openid", "hello")) },
				token: mp.GetContext().GetAccessToken,
			}
		},
	}
}

// workFleet runs silenceper's WeCom API (application messages) in 4
// processes over one Redis store against the simulated WeCom, where
// gettoken hands back the app's token until it expires and WeCom revokes
// it once early (40014). With Work, one gettoken call per token (at its
// expiry and after the revoke: the App serves a token to its end) and no
// rejected call; with silenceper alone, each process keeps the revoked
// token in its cache (for expires_in − 1500 s) and its calls fail with
// 40014, and in each token's last 25 minutes silenceper's cache takes the
// token for a negative time and calls gettoken before every API call.
func workFleet() *platformFleet {
	return &platformFleet{
		name: "work", test: "Work", calls: "application message SendText",
		opts:     wxtest.Options{WeComApps: []wxtest.WeComApp{{CorpID: workCorpID, AgentID: workAgentID, Secret: workSecret}}},
		fetches:  func(w *wxtest.Server) int { return w.Calls(wxtest.PathWeComToken) },
		expected: fleetModel(0), // HandoverAtExpiry: served to its expiry
		client: func(t *testing.T, c *pfChild) pfClient {
			var wk *work.Work
			if c.mode == "adapter" {
				app, err := wecom.New(wecom.Config{
					CorpID: workCorpID, AgentID: workAgentID, Secret: core.NewSecret(workSecret),
					Store: c.store(t), KeyPrefix: c.prefix, BaseURL: c.wechatURL, Now: c.now,
				})
				if err != nil {
					t.Fatal(err)
				}
				wk = silenceper.Work(app, nil)
			} else {
				wk = work.NewWork(&workconfig.Config{CorpID: workCorpID, CorpSecret: workSecret,
					AgentID: strconv.Itoa(workAgentID), Cache: &simCache{now: c.now}})
			}
			msgs := wk.GetMessage()
			return pfClient{
				call: func() error {
					_, err := msgs.SendText(workmessage.SendTextRequest{
						SendRequestCommon: &workmessage.SendRequestCommon{ToUser: "@all", AgentID: strconv.Itoa(workAgentID)},
						Text:              workmessage.TextField{Content: "hello"},
					})
					return err
				},
				token: wk.GetContext().GetAccessToken,
			}
		},
	}
}

// openPlatformFleet runs a merchant's Official Account API
// (GetCallbackIP) through silenceper's Open Platform client in 4 processes
// over one Redis store against the simulated Open Platform, where each
// authorizer-token refresh mints a new token and the one before works 5
// more minutes (as classic tokens), the verify ticket is pushed every 10
// minutes and the merchant's token is revoked once. With
// AuthorizerOfficialAccount (a wechatconf openplatform.Component on the
// store), one authorizer-token refresh per cycle fleet-wide (the first
// token came with the authorization) and no rejected call; with silenceper
// alone (each process's cache holding the component token, set from every
// ticket push, and the refresh token), each process refreshes on its own
// and the others' tokens die under them (40001); and each process's
// component-token fetch supersedes the others' (5 minutes' overlap), so
// their next authorizer refresh is refused and silenceper, which does not
// check that reply's errcode, caches an empty token: their calls then fail
// with 41001 (access_token missing) until its cache expires.
func openPlatformFleet() *platformFleet {
	return &platformFleet{
		name: "openplatform", test: "OpenPlatform", calls: "merchant GetCallbackIP",
		opts: wxtest.Options{Components: []wxtest.Component{{AppID: componentID, AppSecret: componentKey}}},
		setup: func(t *testing.T, f *pfRun) []string {
			// The push handler: on the fleet's store with the adapter, on
			// a memory store of its own (to read the refresh token
			// silenceper's caches are given) without.
			store := core.TokenStore(core.NewMemoryStore())
			if f.mode == "adapter" {
				rdb := redis.NewClient(&redis.Options{Addr: f.redisAddr})
				t.Cleanup(func() { rdb.Close() })
				var err error
				if store, err = redisstore.New(rdb); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			f.component, err = coreopen.New(coreopen.Config{AppID: componentID, AppSecret: core.NewSecret(componentKey),
				Store: store, KeyPrefix: f.prefix, BaseURL: f.wechat.URL, Now: f.now})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := f.component.SetVerifyTicket(ctx, f.wechat.VerifyTicket(componentID), f.now()); err != nil {
				t.Fatal(err)
			}
			if _, err := f.component.Authorize(ctx, f.wechat.Authorize(componentID, merchantID)); err != nil {
				t.Fatal(err)
			}
			rt, err := f.component.RefreshToken(ctx, merchantID)
			if err != nil {
				t.Fatal(err)
			}
			return []string{pfSecretEnv + "=" + rt.Value}
		},
		tick: func(t *testing.T, f *pfRun) string {
			ticket := f.wechat.VerifyTicket(componentID)
			if _, err := f.component.SetVerifyTicket(context.Background(), ticket, f.now()); err != nil {
				t.Fatal(err)
			}
			return ticket
		},
		fetches:    func(w *wxtest.Server) int { return w.AuthorizerTokensIssued(merchantID) },
		expected:   fleetModel(fleetMargin) - 1, // the first token came with the authorization
		naiveFails: true,
		client: func(t *testing.T, c *pfChild) pfClient {
			if c.mode == "adapter" {
				component, err := coreopen.New(coreopen.Config{AppID: componentID, AppSecret: core.NewSecret(componentKey),
					Store: c.store(t), KeyPrefix: c.prefix, BaseURL: c.wechatURL, Now: c.now,
					Policy: core.Policy{RefreshAhead: fleetMargin, ExpiryMargin: fleetMargin, RefreshJitter: time.Nanosecond}})
				if err != nil {
					t.Fatal(err)
				}
				op := openplatform.NewOpenPlatform(&opconfig.Config{AppID: componentID})
				oa := silenceper.AuthorizerOfficialAccount(op, component.Authorizer(merchantID))
				basic := oa.GetBasic()
				return pfClient{call: func() error { _, err := basic.GetCallbackIP(); return err }, token: oa.GetAccessToken}
			}
			cache := &simCache{now: c.now}
			op := openplatform.NewOpenPlatform(&opconfig.Config{AppID: componentID, AppSecret: componentKey, Cache: cache})
			if err := cache.Set("authorizer_refresh_token_"+merchantID, os.Getenv(pfSecretEnv), 10*365*24*time.Hour); err != nil {
				t.Fatal(err)
			}
			oa := op.GetOfficialAccount(merchantID)
			basic := oa.GetBasic()
			return pfClient{
				call:  func() error { _, err := basic.GetCallbackIP(); return err },
				token: oa.GetAccessToken,
				// Every ticket push reaches every process, and each sets
				// its component token from it when its own has expired:
				// silenceper's way, as generous to it as can be.
				round: func(ticket string) {
					if _, err := op.GetComponentAccessToken(); err != nil {
						if _, err := op.SetComponentAccessToken(context.Background(), ticket); err != nil {
							t.Fatalf("SetComponentAccessToken: %v", err)
						}
					}
				},
			}
		},
	}
}

// store returns the child's Redis store.
func (c *pfChild) store(t *testing.T) core.TokenStore {
	c.rdb = redis.NewClient(&redis.Options{Addr: c.redisAddr})
	t.Cleanup(func() { c.rdb.Close() })
	s, err := redisstore.New(c.rdb)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFleetPlatforms runs the fleets of silenceper's Mini Program
// (miniProgramFleet), WeCom (workFleet) and Open Platform
// (openPlatformFleet) clients, one subtest each, over one Redis: each
// with the adapter and with silenceper alone.
func TestFleetPlatforms(t *testing.T) {
	fleets := []*platformFleet{miniProgramFleet(), workFleet(), openPlatformFleet()}
	if name := os.Getenv(pfPlatformEnv); name != "" {
		for _, p := range fleets {
			if p.name == name {
				platformChild(t, p)
			}
		}
		return
	}
	if testing.Short() {
		t.Skip("runs 24 processes and a Redis container")
	}
	r := containers.StartRedis(t)
	for _, p := range fleets {
		t.Run(p.test, func(t *testing.T) { runPlatformFleet(t, p, r.Addr) })
	}
}

// runPlatformFleet runs p's fleet with the adapter and with silenceper
// alone over the Redis at redisAddr, and checks the adapter's figures
// against the model and silenceper's against the adapter's.
func runPlatformFleet(t *testing.T, p *platformFleet, redisAddr string) {
	with := runPlatformOnce(t, p, redisAddr, "adapter")
	without := runPlatformOnce(t, p, redisAddr, "naive")
	calls := pfProcs * pfGoroutines * pfCalls * pfRounds
	for _, f := range []fleetResult{with, without} {
		t.Logf("%s: %d processes x %d goroutines, %d rounds %v apart (%v simulated), %d %s calls, %s: %d token fetches (one per refresh cycle would be %d), %d calls rejected with 40001/40014/42001 (%.1f %%), %d other errors, %v real time",
			p.name, pfProcs, pfGoroutines, pfRounds, fleetStep, fleetStep*pfRounds, calls, p.calls, f.mode, f.fetches, f.expected,
			f.rejected, 100*float64(f.rejected)/float64(calls), f.other, f.elapsed.Round(time.Millisecond))
	}
	if with.fetches != with.expected {
		t.Errorf("%s with the adapter: %d token fetches, want %d (one per refresh cycle)", p.name, with.fetches, with.expected)
	}
	if with.rejected != 0 || with.other != 0 || with.ok != calls {
		t.Errorf("%s with the adapter: %d calls succeeded of %d, %d rejected, %d other errors (first: %s); want every call to succeed",
			p.name, with.ok, calls, with.rejected, with.other, with.firstErr)
	}
	if with.splitRounds != 0 {
		t.Errorf("%s with the adapter: in %d rounds the processes ended on different tokens, want one token fleet-wide", p.name, with.splitRounds)
	}
	if without.fetches <= with.fetches {
		t.Errorf("%s without the adapter: %d token fetches, not more than the adapter's %d", p.name, without.fetches, with.fetches)
	}
	if without.rejected == 0 {
		t.Errorf("%s without the adapter: no call rejected; the simulation did not reproduce silenceper's behaviour", p.name)
	}
	if without.other != 0 && !p.naiveFails {
		t.Errorf("%s without the adapter: %d errors other than rejections (first: %s)", p.name, without.other, without.firstErr)
	}
}

// runPlatformOnce runs p's fleet once in mode and returns its figures.
func runPlatformOnce(t *testing.T, p *platformFleet, redisAddr, mode string) fleetResult {
	t.Helper()
	start := time.Now().Truncate(time.Second)
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	opts := p.opts
	opts.Now = now
	wechat := wxtest.New(opts)
	defer wechat.Close()
	f := &pfRun{wechat: wechat, redisAddr: redisAddr, prefix: fmt.Sprintf("silenceper%s%08x", p.name, rand.Uint32()), mode: mode, now: now}
	var env []string
	if p.setup != nil {
		env = p.setup(t, f)
	}
	wechat.ResetCounters()

	children := childproc.Start(t, pfProcs, childproc.Options{
		Test: "TestFleetPlatforms",
		Env: append([]string{pfPlatformEnv + "=" + p.name, fleetURLEnv + "=" + wechat.URL, fleetRedisEnv + "=" + redisAddr,
			fleetPrefixEnv + "=" + f.prefix, fleetModeEnv + "=" + mode, fleetStartEnv + "=" + strconv.FormatInt(start.UnixNano(), 10)}, env...),
		Prefix:  fleetLine,
		Timeout: fleetTimeout,
	})
	next := func(i int) string { return children[i].Next() }
	for _, c := range children {
		c.Expect("ready")
	}

	res := fleetResult{mode: mode, expected: p.expected}
	began := time.Now()
	held := map[string]bool{}
	for round := range pfRounds {
		clock.Store(start.Add(time.Duration(round) * fleetStep).UnixNano())
		if round == fleetRevokeRound {
			for tok := range held {
				wechat.Revoke(tok)
			}
		}
		extra := "-"
		if p.tick != nil {
			extra = p.tick(t, f)
		}
		for _, c := range children {
			c.Send("%d %s", clock.Load(), extra)
		}
		held = map[string]bool{}
		for i := range children {
			fs := strings.SplitN(next(i), " ", 6)
			if len(fs) != 6 || fs[0] != "done" {
				t.Fatalf("%s %s fleet child %d: malformed report %q", p.name, mode, i, strings.Join(fs, " "))
			}
			ok, _ := strconv.Atoi(fs[1])
			rej, _ := strconv.Atoi(fs[2])
			other, _ := strconv.Atoi(fs[3])
			res.ok += ok
			res.rejected += rej
			res.other += other
			held[fs[4]] = true
			if e, _ := strconv.Unquote(fs[5]); e != "" && res.firstErr == "" {
				res.firstErr = fmt.Sprintf("round %d, process %d: %s", round, i, e)
			}
		}
		if len(held) != 1 {
			res.splitRounds++
		}
	}
	res.elapsed = time.Since(began)
	res.fetches = p.fetches(wechat)
	for i, c := range children {
		if err := c.Wait(); err != nil {
			t.Errorf("%s %s fleet child %d: %v; its output:\n%s", p.name, mode, i, err, c.Output())
		}
	}
	return res
}

// platformChild is one process of p's fleet: it builds its client, says
// ready, then for each simulated time read from stdin runs one round of
// calls and reports it.
func platformChild(t *testing.T, p *platformFleet) {
	startNS, err := strconv.ParseInt(os.Getenv(fleetStartEnv), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(startNS)
	c := &pfChild{wechatURL: os.Getenv(fleetURLEnv), redisAddr: os.Getenv(fleetRedisEnv), prefix: os.Getenv(fleetPrefixEnv),
		mode: os.Getenv(fleetModeEnv), now: func() time.Time { return time.Unix(0, clock.Load()) }}
	// silenceper calls WeChat's and WeCom's hosts: both go to the simulator.
	rt, err := silenceper.Redirect(c.wechatURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rt, err = silenceper.RedirectWeCom(c.wechatURL, rt); err != nil {
		t.Fatal(err)
	}
	util.DefaultHTTPClient = &http.Client{Transport: rt, Timeout: time.Minute}
	if c.mode != "adapter" && c.mode != "naive" {
		t.Fatalf("unknown mode %q", c.mode)
	}
	cl := p.client(t, c)
	fmt.Println(fleetLine + "ready")

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		nsText, extra, _ := strings.Cut(sc.Text(), " ")
		ns, err := strconv.ParseInt(nsText, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		clock.Store(ns)
		if cl.round != nil {
			cl.round(extra)
		}
		var ok, rejected, other atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		for range pfGoroutines {
			wg.Go(func() {
				for range pfCalls {
					err := cl.call()
					var ce *util.CommonError
					switch {
					case err == nil:
						ok.Add(1)
					case errors.As(err, &ce) && (ce.ErrCode == 40001 || ce.ErrCode == 40014 || ce.ErrCode == 42001):
						rejected.Add(1)
					default:
						other.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
				}
			})
		}
		wg.Wait()
		tok, err := cl.token()
		if err != nil {
			tok = "error"
		}
		e, _ := firstErr.Load().(string)
		fmt.Printf("%sdone %d %d %d %s %q\n", fleetLine, ok.Load(), rejected.Load(), other.Load(), tok, e)
	}
}
