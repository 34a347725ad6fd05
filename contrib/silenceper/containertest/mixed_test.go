package containertest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/silenceper/wechat/v2/cache"
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

// Environment of a mixed-fleet child; the presence of mixedURLEnv makes
// TestMixedFleet play one instance.
const (
	mixedURLEnv    = "WECHATCONF_SILENCEPER_MIXED_URL"
	mixedRedisEnv  = "WECHATCONF_SILENCEPER_MIXED_REDIS"
	mixedAppIDEnv  = "WECHATCONF_SILENCEPER_MIXED_APPID"
	mixedPrefixEnv = "WECHATCONF_SILENCEPER_MIXED_PREFIX"
	mixedRoleEnv   = "WECHATCONF_SILENCEPER_MIXED_ROLE"
	mixedStartEnv  = "WECHATCONF_SILENCEPER_MIXED_START"
)

// The roles an instance of the mixed fleet plays.
const (
	// roleOld is an instance not migrated yet: silenceper/wechat v2 alone,
	// classic /cgi-bin/token (its default, UseStableAK false), its token
	// cached in the fleet's Redis under silenceper's own key by
	// silenceper's own cache.Redis.
	roleOld = "old"
	// roleStable is a migrated instance: the same silenceper code through
	// contrib/silenceper over a core.Conf on the same Redis
	// (redisstore), with the Conf's default token API, stable_token.
	roleStable = "new-stable"
	// roleClassic is roleStable with the Conf pinned to core.ClassicToken.
	roleClassic = "new-classic"
)

// The span of each variant: mixedRounds rounds fleetStep apart (8
// simulated hours); in each, every instance calls GetCallbackIP
// mixedCalls times from each of mixedGoroutines goroutines.
const (
	mixedRounds     = 48
	mixedGoroutines = 4
	mixedCalls      = 2
	// oldCacheLife is how long silenceper keeps a classic token in its
	// cache: expires_in − 1500 s (credential.DefaultAccessToken).
	oldCacheLife = wxtest.DefaultExpiresIn - 1500*time.Second
	// oldKeyFormat is silenceper's cache key of an Official Account's
	// classic token: credential.CacheKeyOfficialAccountPrefix
	// ("gowechat_officialaccount_"), then "_access_token_" and the AppID.
	oldKeyFormat = "gowechat_officialaccount__access_token_%s"
	// simExpiryHash is the test's own Redis hash holding, for each key
	// simCache-on-Redis wrote, its expiry on the simulated clock.
	simExpiryHash = "wechatconf-mixedtest:sim-expiry"
)

// mixedVariant is one fleet of TestMixedFleet: the role of each instance,
// in the order they take their turns in a round.
type mixedVariant struct {
	name  string
	roles []string
}

// sideStats are the figures of one side (old or new) of a mixed fleet.
type sideStats struct {
	instances      int
	calls, ok      int
	rejected       int // calls that returned 40001/40014/42001 to the caller
	other          int // calls that failed otherwise
	wireRejected   int // API replies WeChat answered 40001/40014/42001, retried or not
	classic        int // requests to /cgi-bin/token
	stable         int // requests to /cgi-bin/stable_token
	rejectedRounds int // rounds in which at least one caller of the side got a rejection
	firstErr       string
}

func (s sideStats) String() string {
	if s.instances == 0 {
		return "none"
	}
	return fmt.Sprintf("%d instances, %d calls: %d token fetches (%d classic, %d stable), %d calls rejected (%.1f %%, in %d of %d rounds), %d rejections WeChat answered (retried or not), %d other errors",
		s.instances, s.calls, s.classic+s.stable, s.classic, s.stable, s.rejected, pct(s.rejected, s.calls), s.rejectedRounds, mixedRounds, s.wireRejected, s.other)
}

func pct(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// mixedResult is a variant's outcome: the old side and the new side, the
// token calls WeChat saw, and what Redis held under silenceper's key.
type mixedResult struct {
	old, new       sideStats
	classicAtWX    int
	stableAtWX     int
	oldKeyTTL      time.Duration // PTTL of silenceper's key at the end; -2 ns if absent
	oldKeyValueLen int
	startup        time.Duration // from the first process started to the last ready
	elapsed        time.Duration // the rounds
}

// TestMixedFleet measures a rolling migration from silenceper/wechat to
// wechatconf: a fleet of six instances on one real Redis, calling the
// simulated WeChat API (GetCallbackIP, which needs a valid access_token)
// for 8 simulated hours, in three shapes:
//
//   - before: the three old instances alone (silenceper alone, classic
//     token, its cache in Redis);
//   - stable: half-way through the rollout, the three old instances and
//     three new ones (silenceper through contrib/silenceper, the Conf on
//     its default stable_token);
//   - classic: the same, the new ones pinned to core.ClassicToken.
//
// The fleet after the rollout is TestFleet's (and the new side of
// "stable" on its own).
//
// Each instance is an OS process. The instances take their turns in each
// round one after another (old ones first), each running its goroutines
// at once: the simulated instant is the same for all, and which classic
// fetch comes last — the one WeChat keeps — is fixed, so every figure is
// the same from run to run. That leaves out the race silenceper's old
// instances have among themselves (several fetching at the moment their
// shared cache entry expires), which is the old fleet's own and is not
// changed by the migration.
//
// The claims of docs/migrating.md, each checked below: with new instances
// on stable_token the old side sees exactly what it saw before the
// rollout (same fetches, same rejections: none) and the new side makes no
// classic call at all and one stable fetch per token life, with no
// rejection; new instances pinned to ClassicToken and old ones invalidate
// each other's tokens, and silenceper, which never drops a rejected token
// from its cache, fails most of its calls until the entry expires.
func TestMixedFleet(t *testing.T) {
	if wechatURL, ok := os.LookupEnv(mixedURLEnv); ok {
		mixedChild(t, wechatURL)
		return
	}
	if testing.Short() {
		t.Skip("runs 15 processes and a Redis container")
	}
	r := containers.StartRedis(t)
	rep := func(role string, n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = role
		}
		return s
	}
	variants := []mixedVariant{
		{"before", rep(roleOld, 3)},
		{"stable", append(rep(roleOld, 3), rep(roleStable, 3)...)},
		{"classic", append(rep(roleOld, 3), rep(roleClassic, 3)...)},
	}
	res := map[string]mixedResult{}
	for _, v := range variants {
		m := runMixed(t, r.Addr, v)
		res[v.name] = m
		t.Logf("%s (%v simulated, %v real time after a start-up of %v): old side: %s; new side: %s; WeChat saw %d classic and %d stable token calls",
			v.name, fleetStep*mixedRounds, m.elapsed.Round(time.Millisecond), m.startup.Round(time.Millisecond), m.old, m.new, m.classicAtWX, m.stableAtWX)
	}
	before, stable, classic := res["before"], res["stable"], res["classic"]

	for _, v := range variants {
		m := res[v.name]
		for side, s := range map[string]sideStats{"old": m.old, "new": m.new} {
			if s.other != 0 {
				t.Errorf("%s, %s side: %d errors other than a rejected token (first: %s)", v.name, side, s.other, s.firstErr)
			}
		}
		if m.classicAtWX != m.old.classic+m.new.classic || m.stableAtWX != m.old.stable+m.new.stable {
			t.Errorf("%s: WeChat saw %d classic and %d stable token calls, the instances report %d and %d",
				v.name, m.classicAtWX, m.stableAtWX, m.old.classic+m.new.classic, m.old.stable+m.new.stable)
		}
		if m.old.instances > 0 && (m.oldKeyTTL <= 0 || m.oldKeyTTL > oldCacheLife || m.oldKeyValueLen == 0) {
			t.Errorf("%s: silenceper's key %q: PTTL %v and a %d-byte value, want a token with a TTL of at most %v",
				v.name, fmt.Sprintf(oldKeyFormat, "APPID"), m.oldKeyTTL, m.oldKeyValueLen, oldCacheLife)
		}
	}

	// Before: the old fleet on its own, one classic fetch per cache life.
	if before.old.classic != oldFetches() || before.old.rejected != 0 {
		t.Errorf("before: %d classic fetches and %d rejected calls, want %d (one per %v cache life) and 0",
			before.old.classic, before.old.rejected, oldFetches(), oldCacheLife)
	}
	// Stable: the old side exactly as before, the new side untouched.
	if stable.old != before.old {
		t.Errorf("stable: old side %+v, want what it saw alone: %+v", stable.old, before.old)
	}
	if stable.new.classic != 0 || stable.new.stable != newFetches() || stable.new.rejected != 0 || stable.new.wireRejected != 0 {
		t.Errorf("stable: new side %d classic and %d stable fetches, %d calls rejected, %d rejections at WeChat; want 0, %d (one per token life), 0, 0",
			stable.new.classic, stable.new.stable, stable.new.rejected, stable.new.wireRejected, newFetches())
	}
	// Classic: both sides break each other's tokens.
	if classic.old.rejected*4 < classic.old.calls {
		t.Errorf("classic: old side %d of %d calls rejected, want at least a quarter (the new side's fetches invalidate its cached token)",
			classic.old.rejected, classic.old.calls)
	}
	if classic.new.classic <= newFetches() || classic.new.wireRejected == 0 {
		t.Errorf("classic: new side %d classic fetches and %d rejections at WeChat, want more than %d fetches (its token invalidated by the old side's fetches) and some rejections",
			classic.new.classic, classic.new.wireRejected, newFetches())
	}
	if classic.new.rejected != 0 {
		t.Errorf("classic: new side %d calls rejected, want 0 (the adapter refreshes and retries)", classic.new.rejected)
	}
}

// oldFetches is the model of the old side alone: silenceper fetches a
// classic token in the first round and in each round where the cached one
// is oldCacheLife old or more.
func oldFetches() int {
	n := 0
	var expires time.Duration
	for round := range mixedRounds {
		if now := time.Duration(round) * fleetStep; round == 0 || now >= expires {
			n++
			expires = now + oldCacheLife
		}
	}
	return n
}

// newFetches is the model of the new side alone (as expectedFetches for
// TestFleet, without a revoke): a fetch in the first round and in each
// round where the token is within fleetMargin of its expiry.
func newFetches() int {
	n := 0
	var expires time.Duration
	for round := range mixedRounds {
		if now := time.Duration(round) * fleetStep; round == 0 || now >= expires-fleetMargin {
			n++
			expires = now + wxtest.DefaultExpiresIn
		}
	}
	return n
}

// runMixed runs the fleet of v once and returns its figures.
func runMixed(t *testing.T, redisAddr string, v mixedVariant) mixedResult {
	t.Helper()
	start := time.Now().Truncate(time.Second)
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	appID := fmt.Sprintf("wxmixed%s%08x", v.name, rand.Uint32())
	wechat := wxtest.New(wxtest.Options{AppID: appID, AppSecret: testAppSecret,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	defer wechat.Close()

	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	starting := time.Now()
	children := childproc.Start(t, len(v.roles), childproc.Options{
		Test: "TestMixedFleet",
		Env: []string{mixedURLEnv + "=" + wechat.URL, mixedRedisEnv + "=" + redisAddr, mixedAppIDEnv + "=" + appID,
			mixedPrefixEnv + "=mixed" + appID, mixedStartEnv + "=" + strconv.FormatInt(start.UnixNano(), 10)},
		EnvOf:   func(i int) []string { return []string{mixedRoleEnv + "=" + v.roles[i]} },
		Prefix:  fleetLine,
		Timeout: fleetTimeout,
	})
	next := func(i int) string { return children[i].Next() }
	for _, c := range children {
		c.Expect("ready")
	}

	res := mixedResult{startup: time.Since(starting)}
	for _, role := range v.roles {
		if role == roleOld {
			res.old.instances++
		} else {
			res.new.instances++
		}
	}
	began := time.Now()
	for round := range mixedRounds {
		now := start.Add(time.Duration(round) * fleetStep)
		clock.Store(now.UnixNano())
		var rejOld, rejNew bool
		for i, c := range children {
			c.Send("%d", now.UnixNano())
			f := strings.SplitN(next(i), " ", 8)
			if len(f) != 8 || f[0] != "done" {
				t.Fatalf("%s instance %d: malformed report %q", v.name, i, strings.Join(f, " "))
			}
			n := make([]int, 6)
			for j := range n {
				n[j], _ = strconv.Atoi(f[j+1])
			}
			s, rej := &res.new, &rejNew
			if v.roles[i] == roleOld {
				s, rej = &res.old, &rejOld
			}
			s.calls += mixedGoroutines * mixedCalls
			s.ok += n[0]
			s.rejected += n[1]
			s.other += n[2]
			s.wireRejected += n[3]
			s.classic += n[4]
			s.stable += n[5]
			*rej = *rej || n[1] > 0
			if e, _ := strconv.Unquote(f[7]); e != "" && s.firstErr == "" {
				s.firstErr = fmt.Sprintf("round %d, instance %d: %s", round, i, e)
			}
		}
		if rejOld {
			res.old.rejectedRounds++
		}
		if rejNew {
			res.new.rejectedRounds++
		}
	}
	res.elapsed = time.Since(began)
	res.classicAtWX = wechat.Calls(wxtest.PathToken)
	res.stableAtWX = wechat.Calls(wxtest.PathStableToken)
	for i, c := range children {
		if err := c.Wait(); err != nil {
			t.Errorf("%s instance %d: %v; its output:\n%s", v.name, i, err, c.Output())
		}
	}

	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	key := fmt.Sprintf(oldKeyFormat, appID)
	res.oldKeyTTL, _ = rdb.PTTL(ctx, key).Result()
	val, _ := rdb.Get(ctx, key).Result()
	res.oldKeyValueLen = len(val)
	return res
}

// mixedChild is one instance of the mixed fleet, in the role its
// environment names: it says ready, then for each simulated time read
// from stdin runs one round of calls and reports it on one line: "done",
// then the calls that succeeded, were rejected (40001, 40014, 42001) and
// failed otherwise, the rejections WeChat answered (the adapter's retried
// ones included), the classic and the stable token calls made, and the
// first other error, quoted.
func mixedChild(t *testing.T, wechatURL string) {
	startNS, err := strconv.ParseInt(os.Getenv(mixedStartEnv), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(startNS)
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	wire := &wireCounter{base: newToServer(t, wechatURL)}
	client := &http.Client{Transport: wire, Timeout: time.Minute}
	util.DefaultHTTPClient = client
	appID := os.Getenv(mixedAppIDEnv)
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(mixedRedisEnv)})
	defer rdb.Close()

	var oa *officialaccount.OfficialAccount
	switch role := os.Getenv(mixedRoleEnv); role {
	case roleOld:
		// silenceper's own Redis cache, as the old instances configure it.
		sc := cache.NewRedis(context.Background(), &cache.RedisOpts{Host: os.Getenv(mixedRedisEnv)})
		oa = officialaccount.NewOfficialAccount(&config.Config{AppID: appID, AppSecret: testAppSecret,
			Cache: &simRedisCache{inner: sc, rdb: rdb, now: now}})
	case roleStable, roleClassic:
		store, err := redisstore.New(rdb)
		if err != nil {
			t.Fatal(err)
		}
		api := core.StableToken
		if role == roleClassic {
			api = core.ClassicToken
		}
		conf, err := core.New(core.Config{
			AppID:        appID,
			AppSecret:    core.NewSecret(testAppSecret),
			Store:        store,
			KeyPrefix:    os.Getenv(mixedPrefixEnv),
			TokenAPI:     api,
			HTTPClient:   client, // BaseURL stays https://api.weixin.qq.com
			Now:          now,
			RefreshAhead: fleetMargin,
			ExpiryMargin: fleetMargin,
		})
		if err != nil {
			t.Fatal(err)
		}
		oa = silenceper.OfficialAccount(conf, nil)
	default:
		t.Fatalf("unknown role %q", role)
	}
	basic := oa.GetBasic() // created before the goroutines share it
	fmt.Println(fleetLine + "ready")

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		ns, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		clock.Store(ns)
		w0, c0, s0 := wire.rejected.Load(), wire.classic.Load(), wire.stable.Load()
		var ok, rejected, other atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		for range mixedGoroutines {
			wg.Go(func() {
				for range mixedCalls {
					ips, err := basic.GetCallbackIP()
					var ce *util.CommonError
					switch {
					case err == nil && len(ips) > 0:
						ok.Add(1)
					case errors.As(err, &ce) && isRejection(int(ce.ErrCode)):
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
		e, _ := firstErr.Load().(string)
		fmt.Printf("%sdone %d %d %d %d %d %d %q\n", fleetLine, ok.Load(), rejected.Load(), other.Load(),
			wire.rejected.Load()-w0, wire.classic.Load()-c0, wire.stable.Load()-s0, e)
	}
}

func isRejection(code int) bool { return code == 40001 || code == 40014 || code == 42001 }

// wireCounter is the bottom of an instance's HTTP stack, under silenceper,
// the adapter and the Conf: it counts the token calls the instance makes
// and the API replies that reject a token, including the ones the adapter
// retries and the caller never sees.
type wireCounter struct {
	base                      http.RoundTripper
	classic, stable, rejected atomic.Int64
}

func (w *wireCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Path {
	case wxtest.PathToken:
		w.classic.Add(1)
	case wxtest.PathStableToken:
		w.stable.Add(1)
	}
	resp, err := w.base.RoundTrip(req)
	if err != nil || req.URL.Path != wxtest.PathAPI {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var e struct {
		ErrCode int `json:"errcode"`
	}
	if json.Unmarshal(body, &e) == nil && isRejection(e.ErrCode) {
		w.rejected.Add(1)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// simRedisCache is silenceper's own Redis cache (cache.Redis: SETEX under
// silenceper's keys, values as plain strings, shared by the old
// instances) whose entries expire on the simulated clock: each entry's
// simulated expiry is kept beside it in simExpiryHash, and an entry past
// it reads as absent, as it would be once Redis expired it.
type simRedisCache struct {
	inner *cache.Redis
	rdb   *redis.Client
	now   func() time.Time
}

func (c *simRedisCache) Get(key string) any {
	exp, err := c.rdb.HGet(context.Background(), simExpiryHash, key).Int64()
	if err != nil || !c.now().Before(time.Unix(0, exp)) {
		return nil
	}
	return c.inner.Get(key)
}

func (c *simRedisCache) Set(key string, val any, timeout time.Duration) error {
	if err := c.inner.Set(key, val, timeout); err != nil {
		return err
	}
	return c.rdb.HSet(context.Background(), simExpiryHash, key, c.now().Add(timeout).UnixNano()).Err()
}

func (c *simRedisCache) IsExist(key string) bool { return c.Get(key) != nil }

func (c *simRedisCache) Delete(key string) error {
	if err := c.rdb.HDel(context.Background(), simExpiryHash, key).Err(); err != nil {
		return err
	}
	return c.inner.Delete(key)
}
