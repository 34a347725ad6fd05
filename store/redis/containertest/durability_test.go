package containertest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// The durability check runs after the first durable write, before Set or
// Refresh returns: every assertion below is made once the write returned,
// with no waiting.

// record is one slog record a Store logged.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

// recorder is a slog.Handler that keeps every record, of every level.
type recorder struct {
	mu   sync.Mutex
	recs []record
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *recorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recorder) WithGroup(string) slog.Handler            { return h }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve()
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, rec)
	h.mu.Unlock()
	return nil
}

// all returns the records logged so far.
func (h *recorder) all() []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.recs)
}

// events returns the records whose message is event.
func (h *recorder) events(event string) []record {
	var out []record
	for _, r := range h.all() {
		if r.msg == event {
			out = append(out, r)
		}
	}
	return out
}

func (r record) String() string {
	keys := make([]string, 0, len(r.attrs))
	for k := range r.attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%v %s", r.level, r.msg)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%q", k, r.attrs[k].String())
	}
	return b.String()
}

// configCalls returns how many CONFIG commands the server has run since it
// started (INFO commandstats: cmdstat_config|get and the other subcommands
// on Redis 7, cmdstat_config before): the server's own count of the
// Store's questions, whatever their form.
func configCalls(t testing.TB, ctx context.Context, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	var n int64
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_config")
		if !ok {
			continue
		}
		_, stats, _ := strings.Cut(rest, ":")
		for f := range strings.SplitSeq(stats, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				c, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("INFO commandstats: %q: %v", line, err)
				}
				n += c
			}
		}
	}
	return n
}

// durableTok is durable state: a token with a zero ExpiresAt.
func durableTok(v string) core.Token { return core.Token{Value: v} }

// durabilityCase is a Redis server configuration and what the Store must
// say of it.
type durabilityCase struct {
	name string
	// args are the extra redis-server arguments, after the harness's
	// "--save '' --appendonly no".
	args []string
	// config is what CONFIG GET must report (checked first, so that the
	// case tests what its name says); nil when CONFIG cannot be asked.
	config map[string]string
	// aclNoConfig makes the Store's client a user whose ACL denies CONFIG.
	aclNoConfig bool
	// evicts and persistsNothing are the event's verdict; both false: no
	// event.
	evicts, persistsNothing bool
	// refused: the server refuses CONFIG; no Warn event, one
	// EventDurabilityUnchecked at Debug.
	refused bool
}

var durabilityCases = []durabilityCase{
	{name: "AllkeysLRU", args: []string{"--maxmemory-policy", "allkeys-lru", "--appendonly", "yes"},
		config: map[string]string{"maxmemory-policy": "allkeys-lru", "save": "", "appendonly": "yes"}, evicts: true},
	{name: "NoPersistence", args: nil,
		config: map[string]string{"maxmemory-policy": "noeviction", "save": "", "appendonly": "no"}, persistsNothing: true},
	{name: "AllkeysLFUNoPersistence", args: []string{"--maxmemory-policy", "allkeys-lfu"},
		config: map[string]string{"maxmemory-policy": "allkeys-lfu", "save": "", "appendonly": "no"}, evicts: true, persistsNothing: true},
	{name: "PersistentNoeviction", args: []string{"--save", "3600", "1", "--appendonly", "yes"},
		config: map[string]string{"maxmemory-policy": "noeviction", "save": "3600 1", "appendonly": "yes"}},
	{name: "RDBOnlyVolatileLRU", args: []string{"--save", "900", "1", "--maxmemory-policy", "volatile-lru"},
		config: map[string]string{"maxmemory-policy": "volatile-lru", "save": "900 1", "appendonly": "no"}},
	{name: "ConfigRenamed", args: []string{"--rename-command", "CONFIG", ""}, refused: true}, // persists nothing, unknowable
	{name: "ConfigDeniedByACL", args: nil, aclNoConfig: true, refused: true,
		config: map[string]string{"maxmemory-policy": "noeviction", "save": "", "appendonly": "no"}},
}

// TestDurabilityRisk tests the Store's durability check against real
// servers, one per configuration: a server whose maxmemory-policy is
// allkeys-* or that persists nothing (save "", appendonly no) gets exactly
// one EventDurabilityRisk at Warn, with its settings, after two durable
// Sets and a durable Refresh; a persistent server whose policy spares keys
// without a TTL (noeviction, volatile-lru; AOF, or RDB alone) gets none;
// a server that refuses CONFIG (renamed away, or denied by an ACL) gets no
// Warn event and one EventDurabilityUnchecked at Debug. In every case the
// non-durable writes before make the Store ask nothing (the server's
// CONFIG count does not move), the first durable write asks (it moves,
// unless CONFIG is refused), later ones do not ask again, and every durable
// write succeeds and reads back with a zero ExpiresAt.
func TestDurabilityRisk(t *testing.T) {
	for _, tc := range durabilityCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testDurability(t, tc)
		})
	}
}

func testDurability(t *testing.T, tc durabilityCase) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := containers.StartRedisWithArgs(t, tc.args...)
	admin := newClient(r.Addr)
	t.Cleanup(func() { admin.Close() })

	if tc.config != nil {
		for param, want := range tc.config {
			got, err := admin.ConfigGet(ctx, param).Result()
			if err != nil || got[param] != want {
				t.Fatalf("precondition: CONFIG GET %s = %v, %v; want %q (redis-server %q)", param, got, err, want, tc.args)
			}
		}
	} else if err := admin.ConfigGet(ctx, "save").Err(); err == nil {
		t.Fatalf("precondition: CONFIG GET answered, want it refused (redis-server %q)", tc.args)
	}

	opts := &redis.Options{Addr: r.Addr, ContextTimeoutEnabled: true}
	if tc.aclNoConfig {
		if err := admin.Do(ctx, "ACL", "SETUSER", "wechatconf", "on", ">pw", "~*", "&*", "+@all", "-config").Err(); err != nil {
			t.Fatalf("ACL SETUSER: %v", err)
		}
		opts.Username, opts.Password = "wechatconf", "pw"
		user := redis.NewClient(opts)
		err := user.ConfigGet(ctx, "save").Err()
		user.Close()
		if err == nil {
			t.Fatal("precondition: CONFIG GET as the ACL user answered, want it refused")
		}
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	rec := &recorder{}
	s := mustNew(t, rdb, redisstore.WithLease(testLease), redisstore.WithLogger(slog.New(rec)))

	// Non-durable writes: nothing asked, nothing logged.
	calls0 := configCalls(t, ctx, admin)
	if err := s.Set(ctx, uniqueKey(t, "access_token"), tok("a")); err != nil {
		t.Fatalf("Set (non-durable): %v", err)
	}
	if _, err := s.Refresh(ctx, uniqueKey(t, "ticket"), "", func(context.Context) (core.Token, error) { return tok("b"), nil }); err != nil {
		t.Fatalf("Refresh (non-durable): %v", err)
	}
	if got := configCalls(t, ctx, admin); got != calls0 {
		t.Errorf("non-durable Set and Refresh: the server ran %d CONFIG commands, want 0", got-calls0)
	}
	if recs := rec.all(); len(recs) != 0 {
		t.Errorf("non-durable Set and Refresh logged %v, want nothing", recs)
	}

	// Durable writes: the first asks, once; every one succeeds.
	durable := map[string]string{}
	k1 := uniqueKey(t, "authorizer_refresh_token/1")
	if err := s.Set(ctx, k1, durableTok("r1")); err != nil {
		t.Fatalf("Set(%q, durable): %v", k1, err)
	}
	durable[k1] = "r1"
	calls1 := configCalls(t, ctx, admin)
	if !tc.refused && calls1 == calls0 {
		t.Errorf("first durable Set: the server ran no CONFIG command, want the Store to ask")
	}
	k2 := uniqueKey(t, "authorizer_refresh_token/2")
	got, err := s.Refresh(ctx, k2, "", func(context.Context) (core.Token, error) { return durableTok("r2"), nil })
	if err != nil || got.Value != "r2" {
		t.Fatalf("Refresh(%q) of a durable token: %+v, %v", k2, got, err)
	}
	durable[k2] = "r2"
	if err := s.Set(ctx, k1, durableTok("r1b")); err != nil {
		t.Fatalf("Set(%q, durable) again: %v", k1, err)
	}
	durable[k1] = "r1b"
	if calls2 := configCalls(t, ctx, admin); calls2 != calls1 {
		t.Errorf("second and third durable writes: the server ran %d more CONFIG commands, want 0 (asked once per Store)", calls2-calls1)
	}
	for k, v := range durable {
		got, err := s.Get(ctx, k)
		if err != nil || got.Value != v || !got.ExpiresAt.IsZero() {
			t.Errorf("Get(%q) = %+v, %v; want %q with a zero ExpiresAt", k, got, err, v)
		}
	}

	risks := rec.events(redisstore.EventDurabilityRisk)
	unchecked := rec.events(redisstore.EventDurabilityUnchecked)
	want := 0
	if tc.evicts || tc.persistsNothing {
		want = 1
	}
	if len(risks) != want {
		t.Fatalf("%s logged %d times, want %d; records: %v", redisstore.EventDurabilityRisk, len(risks), want, rec.all())
	}
	if tc.refused {
		if len(unchecked) != 1 || unchecked[0].level != slog.LevelDebug || unchecked[0].attrs["key"].String() != k1 || unchecked[0].attrs["error"].String() == "" {
			t.Errorf("CONFIG refused: %s records %v, want one at Debug with key %q and the error", redisstore.EventDurabilityUnchecked, unchecked, k1)
		}
	} else if len(unchecked) != 0 {
		t.Errorf("CONFIG answered, yet %s logged: %v", redisstore.EventDurabilityUnchecked, unchecked)
	}
	if want == 0 {
		return
	}
	e := risks[0]
	t.Logf("logged: %v", e)
	if e.level != slog.LevelWarn {
		t.Errorf("%s at %v, want Warn", e.msg, e.level)
	}
	checkAttr := func(name, want string) {
		t.Helper()
		if v, ok := e.attrs[name]; !ok || v.String() != want {
			t.Errorf("%s: %s=%q (present %v), want %q; record: %v", e.msg, name, v.String(), ok, want, e)
		}
	}
	checkAttr("key", k1)
	checkAttr("evicts", strconv.FormatBool(tc.evicts))
	checkAttr("persists_nothing", strconv.FormatBool(tc.persistsNothing))
	checkAttr("policy", tc.config["maxmemory-policy"])
	checkAttr("save", tc.config["save"])
	checkAttr("appendonly", tc.config["appendonly"])
	risk := e.attrs["risk"].String()
	if tc.evicts && !strings.Contains(risk, "noeviction") {
		t.Errorf("%s: risk %q does not say to use noeviction", e.msg, risk)
	}
	if tc.persistsNothing && !strings.Contains(risk, "appendonly yes") {
		t.Errorf("%s: risk %q does not say to enable AOF", e.msg, risk)
	}
	if _, ok := e.attrs["addr"]; ok {
		t.Errorf("%s on a standalone server has addr: %v", e.msg, e)
	}
	for _, v := range durable {
		if strings.Contains(e.String(), v) {
			t.Errorf("%s holds the durable token %q: %v", e.msg, v, e)
		}
	}
}

// TestCheckDurability tests Store.CheckDurability against the servers of
// TestDurabilityRisk, one per configuration: a server at risk
// (allkeys-*, or persisting nothing) gets a sentence naming the fix
// (noeviction, appendonly yes), a safe one "", one that refuses CONFIG an
// error matching ErrDurabilityUnknown that wraps the server's redis.Error;
// each call asks the server (its CONFIG count moves, unless refused), none
// logs, and afterwards the first durable write still makes the Store's own
// check, once, whose EventDurabilityRisk carries the same risk text.
func TestCheckDurability(t *testing.T) {
	for _, tc := range durabilityCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testCheckDurability(t, tc)
		})
	}
}

func testCheckDurability(t *testing.T, tc durabilityCase) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := containers.StartRedisWithArgs(t, tc.args...)
	admin := newClient(r.Addr)
	t.Cleanup(func() { admin.Close() })
	opts := &redis.Options{Addr: r.Addr, ContextTimeoutEnabled: true}
	if tc.aclNoConfig {
		if err := admin.Do(ctx, "ACL", "SETUSER", "wechatconf", "on", ">pw", "~*", "&*", "+@all", "-config").Err(); err != nil {
			t.Fatalf("ACL SETUSER: %v", err)
		}
		opts.Username, opts.Password = "wechatconf", "pw"
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	rec := &recorder{}
	s := mustNew(t, rdb, redisstore.WithLogger(slog.New(rec)))

	var risk string
	for i := range 2 {
		before := configCalls(t, ctx, admin)
		got, err := s.CheckDurability(ctx)
		switch {
		case tc.refused:
			var rerr redis.Error
			if !errors.Is(err, redisstore.ErrDurabilityUnknown) || !errors.As(err, &rerr) || got != "" {
				t.Errorf("CheckDurability (call %d) = %q, %v; want an error matching ErrDurabilityUnknown and wrapping the server's redis.Error", i+1, got, err)
			}
		case err != nil:
			t.Fatalf("CheckDurability (call %d): %v", i+1, err)
		case (got != "") != (tc.evicts || tc.persistsNothing):
			t.Errorf("CheckDurability (call %d) = %q; want a risk %v (evicts %v, persists nothing %v)", i+1, got, tc.evicts || tc.persistsNothing, tc.evicts, tc.persistsNothing)
		case tc.evicts && !strings.Contains(got, "noeviction"), tc.persistsNothing && !strings.Contains(got, "appendonly yes"):
			t.Errorf("CheckDurability (call %d) = %q; want the fix named (noeviction, appendonly yes)", i+1, got)
		}
		if !tc.refused && configCalls(t, ctx, admin) == before {
			t.Errorf("CheckDurability (call %d): the server ran no CONFIG command, want it asked at every call", i+1)
		}
		risk = got
	}
	if recs := rec.all(); len(recs) != 0 {
		t.Errorf("CheckDurability logged %v, want nothing", recs)
	}

	// The Store's own check is untouched: the first durable write asks and
	// logs, once.
	calls := configCalls(t, ctx, admin)
	for i := range 2 {
		if err := s.Set(ctx, uniqueKey(t, fmt.Sprintf("authorizer_refresh_token/%d", i)), durableTok("r")); err != nil {
			t.Fatalf("durable Set: %v", err)
		}
	}
	if !tc.refused && configCalls(t, ctx, admin) == calls {
		t.Errorf("the first durable write after CheckDurability asked nothing: the Store's own check was marked done")
	}
	risks := rec.events(redisstore.EventDurabilityRisk)
	switch {
	case risk == "" && len(risks) != 0:
		t.Errorf("no risk, yet %s logged: %v", redisstore.EventDurabilityRisk, risks)
	case risk != "" && len(risks) != 1:
		t.Errorf("%s logged %d times after two durable writes, want 1; records: %v", redisstore.EventDurabilityRisk, len(risks), rec.all())
	case risk != "" && risks[0].attrs["risk"].String() != risk:
		t.Errorf("%s risk = %q, CheckDurability said %q: want the same text", redisstore.EventDurabilityRisk, risks[0].attrs["risk"].String(), risk)
	}
}

// TestDurabilityRiskOncePerStore tests that the check is once per Store
// value, whatever the concurrency: on a server that persists nothing, 32
// goroutines' first durable writes through one Store all succeed, it logs
// one EventDurabilityRisk, and the server runs as many CONFIG commands as
// for one durable write of a fresh Store (one check); a second Store over
// the same client logs its own event.
func TestDurabilityRiskOncePerStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := containers.StartRedis(t) // save "", appendonly no
	rdb := newClient(r.Addr)
	t.Cleanup(func() { rdb.Close() })

	// What one check costs the server.
	ref := &recorder{}
	s0 := mustNew(t, rdb, redisstore.WithLogger(slog.New(ref)))
	before := configCalls(t, ctx, rdb)
	if err := s0.Set(ctx, uniqueKey(t, "ref"), durableTok("r")); err != nil {
		t.Fatal(err)
	}
	perCheck := configCalls(t, ctx, rdb) - before
	if perCheck == 0 || len(ref.events(redisstore.EventDurabilityRisk)) != 1 {
		t.Fatalf("reference Store: %d CONFIG commands and records %v; want some and one %s", perCheck, ref.all(), redisstore.EventDurabilityRisk)
	}

	for i := range 2 {
		rec := &recorder{}
		s := mustNew(t, rdb, redisstore.WithLogger(slog.New(rec)))
		before := configCalls(t, ctx, rdb)
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, 32)
		for g := range errs {
			wg.Go(func() {
				<-start
				errs[g] = s.Set(ctx, uniqueKey(t, fmt.Sprintf("authorizer_refresh_token/%d", g)), durableTok(fmt.Sprintf("r%d", g)))
			})
		}
		close(start)
		wg.Wait()
		for g, err := range errs {
			if err != nil {
				t.Errorf("Store %d, goroutine %d: durable Set: %v", i, g, err)
			}
		}
		if n := len(rec.events(redisstore.EventDurabilityRisk)); n != 1 {
			t.Errorf("Store %d: 32 concurrent durable writes logged %s %d times, want 1; records: %v", i, redisstore.EventDurabilityRisk, n, rec.all())
		}
		if got := configCalls(t, ctx, rdb) - before; got != perCheck {
			t.Errorf("Store %d: 32 concurrent durable writes made the server run %d CONFIG commands, want %d (one check)", i, got, perCheck)
		}
	}
}

// TestDurabilityRiskCluster tests the check on a Redis Cluster (whose
// nodes persist nothing): every master is asked, one EventDurabilityRisk
// is logged, naming a master's address ("addr"), after durable writes to
// keys on several slots; CheckDurability, called first, says the same
// risk and does not stop the event.
func TestDurabilityRiskCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addrs := clusterAddrs(t)
	rdb := newClusterClient(addrs)
	t.Cleanup(func() { rdb.Close() })
	rec := &recorder{}
	s := mustNew(t, rdb, redisstore.WithLogger(slog.New(rec)))
	risk, err := s.CheckDurability(ctx)
	if err != nil || !strings.Contains(risk, "appendonly yes") || strings.Contains(risk, "noeviction") {
		t.Errorf("CheckDurability on the Cluster = %q, %v; want the risk of persisting nothing", risk, err)
	}
	for i := range 8 {
		key := uniqueKey(t, fmt.Sprintf("authorizer_refresh_token/%d", i))
		if err := s.Set(ctx, key, durableTok("r")); err != nil {
			t.Fatalf("Set(%q, durable): %v", key, err)
		}
	}
	risks := rec.events(redisstore.EventDurabilityRisk)
	if len(risks) != 1 {
		t.Fatalf("%s logged %d times, want 1; records: %v", redisstore.EventDurabilityRisk, len(risks), rec.all())
	}
	e := risks[0]
	if addr := e.attrs["addr"].String(); !slices.Contains(addrs, addr) {
		t.Errorf("%s: addr %q, want one of the masters %v; record: %v", e.msg, addr, addrs, e)
	}
	if e.attrs["persists_nothing"].String() != "true" || e.attrs["evicts"].String() != "false" {
		t.Errorf("%s: want persists_nothing and not evicts; record: %v", e.msg, e)
	}
	if got := e.attrs["risk"].String(); got != risk {
		t.Errorf("%s: risk %q, CheckDurability said %q: want the same text", e.msg, got, risk)
	}
}
