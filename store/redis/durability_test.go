package redisstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// replyError is a server's error reply, as go-redis returns it: a
// redis.Error.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

// TestServerConfigRisk tests the verdict on a server's CONFIG GET replies:
// an allkeys-* maxmemory-policy evicts durable state, volatile-* and
// noeviction do not; a server with save "" and appendonly no persists
// nothing, one with either an RDB rule or AOF persists; a parameter the
// server did not report counts as no risk; and the risk text names the
// setting and the fix.
func TestServerConfigRisk(t *testing.T) {
	safe := map[string]string{"maxmemory-policy": "noeviction", "save": "3600 1 300 100 60 10000", "appendonly": "no"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range safe {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "<absent>" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	tests := []struct {
		name            string
		reply           map[string]string
		evicts, nothing bool
		riskHas         []string
	}{
		{name: "noeviction, RDB", reply: safe},
		{name: "noeviction, AOF only", reply: with("save", "", "appendonly", "yes")},
		{name: "allkeys-lru", reply: with("maxmemory-policy", "allkeys-lru"), evicts: true,
			riskHas: []string{"maxmemory-policy allkeys-lru", "noeviction", "volatile-*", "another store"}},
		{name: "allkeys-lfu", reply: with("maxmemory-policy", "allkeys-lfu"), evicts: true},
		{name: "allkeys-random", reply: with("maxmemory-policy", "allkeys-random"), evicts: true},
		{name: "allkeys upper case", reply: with("maxmemory-policy", "ALLKEYS-LRU"), evicts: true},
		{name: "volatile-lru", reply: with("maxmemory-policy", "volatile-lru")},
		{name: "volatile-lfu", reply: with("maxmemory-policy", "volatile-lfu")},
		{name: "volatile-random", reply: with("maxmemory-policy", "volatile-random")},
		{name: "volatile-ttl", reply: with("maxmemory-policy", "volatile-ttl")},
		{name: "no persistence", reply: with("save", "", "appendonly", "no"), nothing: true,
			riskHas: []string{`save ""`, "appendonly no", "appendonly yes", "another store"}},
		{name: "no persistence, blank save", reply: with("save", " ", "appendonly", "no"), nothing: true},
		{name: "both", reply: with("maxmemory-policy", "allkeys-lru", "save", "", "appendonly", "no"), evicts: true, nothing: true,
			riskHas: []string{"allkeys-lru", "persists nothing"}},
		{name: "save unknown", reply: with("save", "<absent>", "appendonly", "no")},
		{name: "appendonly unknown", reply: with("save", "", "appendonly", "<absent>")},
		{name: "policy unknown", reply: with("maxmemory-policy", "<absent>")},
		{name: "empty reply", reply: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseConfig(tt.reply)
			if got := c.evicts(); got != tt.evicts {
				t.Errorf("%v: evicts() = %v, want %v", tt.reply, got, tt.evicts)
			}
			if got := c.persistsNothing(); got != tt.nothing {
				t.Errorf("%v: persistsNothing() = %v, want %v", tt.reply, got, tt.nothing)
			}
			if got, want := c.atRisk(), tt.evicts || tt.nothing; got != want {
				t.Errorf("%v: atRisk() = %v, want %v", tt.reply, got, want)
			}
			risk := c.risk()
			if (risk != "") != c.atRisk() {
				t.Errorf("%v: risk() = %q with atRisk() %v", tt.reply, risk, c.atRisk())
			}
			for _, s := range tt.riskHas {
				if !strings.Contains(risk, s) {
					t.Errorf("%v: risk() = %q, want it to name %q", tt.reply, risk, s)
				}
			}
		})
	}
}

// TestDurabilityRiskAttrs tests that EventDurabilityRisk carries exactly
// the documented attributes, "addr" only for a node of a Cluster or Ring.
func TestDurabilityRiskAttrs(t *testing.T) {
	c := parseConfig(map[string]string{"maxmemory-policy": "allkeys-lru", "save": "", "appendonly": "no"})
	keys := func(attrs []slog.Attr) string {
		var k []string
		for _, a := range attrs {
			k = append(k, a.Key)
		}
		return strings.Join(k, ",")
	}
	const want = "key,evicts,persists_nothing,policy,save,appendonly,risk"
	if got := keys(c.attrs("op/wx1/authorizer_refresh_token")); got != want {
		t.Errorf("attributes %s, want %s", got, want)
	}
	c.addr = "127.0.0.1:7000"
	if got := keys(c.attrs("k")); got != want+",addr" {
		t.Errorf("attributes of a Cluster node: %s, want %s,addr", got, want)
	}
}

// TestJudge tests the verdict on the nodes' answers: the first node at risk
// by address is named; a refusal (a server's error reply) is an answer, a
// failure to get one is not, unless a node at risk was found; no answer at
// all is not an answer.
func TestJudge(t *testing.T) {
	risky := func(addr string) nodeAnswer {
		return nodeAnswer{cfg: parseConfig(map[string]string{"maxmemory-policy": "allkeys-lru", "save": "", "appendonly": "no"}), err: nil}.at(addr)
	}
	safe := func(addr string) nodeAnswer {
		return nodeAnswer{cfg: parseConfig(map[string]string{"maxmemory-policy": "noeviction", "save": "3600 1", "appendonly": "no"})}.at(addr)
	}
	refused := func(addr string) nodeAnswer {
		return nodeAnswer{err: replyError("ERR unknown command 'CONFIG', with args beginning with: 'GET' 'maxmemory-policy'")}.at(addr)
	}
	down := func(addr string) nodeAnswer {
		return nodeAnswer{err: errors.New("dial tcp " + addr + ": connection refused")}.at(addr)
	}
	tests := []struct {
		name      string
		answers   []nodeAnswer
		riskyAddr string // "-" for none
		refused   bool
		answered  bool
	}{
		{"none", nil, "-", false, false},
		{"safe", []nodeAnswer{safe("")}, "-", false, true},
		{"risky", []nodeAnswer{risky("")}, "", false, true},
		{"refused", []nodeAnswer{refused("")}, "-", true, true},
		{"down", []nodeAnswer{down("")}, "-", false, false},
		{"redis.Nil is no refusal", []nodeAnswer{{err: redis.Nil}}, "-", false, false},
		{"cluster, first risky by address", []nodeAnswer{safe("b:1"), risky("c:1"), risky("a:2"), safe("a:1")}, "a:2", false, true},
		{"cluster, all safe", []nodeAnswer{safe("b:1"), safe("a:1")}, "-", false, true},
		{"cluster, one refused", []nodeAnswer{safe("b:1"), refused("a:1")}, "-", true, true},
		{"cluster, one down", []nodeAnswer{safe("b:1"), down("a:1")}, "-", false, false},
		{"cluster, one down, one risky", []nodeAnswer{down("b:1"), risky("a:1")}, "a:1", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge(tt.answers)
			switch {
			case tt.riskyAddr == "-" && v.risky != nil:
				t.Errorf("risky node %q, want none", v.risky.addr)
			case tt.riskyAddr != "-" && v.risky == nil:
				t.Errorf("no risky node, want %q", tt.riskyAddr)
			case tt.riskyAddr != "-" && v.risky.addr != tt.riskyAddr:
				t.Errorf("risky node %q, want %q", v.risky.addr, tt.riskyAddr)
			}
			if (v.refused != nil) != tt.refused {
				t.Errorf("refused = %v, want %v", v.refused, tt.refused)
			}
			if v.answered != tt.answered {
				t.Errorf("answered = %v, want %v", v.answered, tt.answered)
			}
		})
	}
}

func (a nodeAnswer) at(addr string) nodeAnswer { a.cfg.addr = addr; return a }

// TestCheckOnce tests the guard of the durability check: concurrent
// callers run one check; once a check answered none runs again; a check
// that got no answer lets a later caller try again; a caller arriving
// while a check runs does not wait for it and runs none.
func TestCheckOnce(t *testing.T) {
	var o checkOnce
	var runs atomic.Int32
	o.do(func() bool { runs.Add(1); return false }) // no answer
	o.do(func() bool {
		runs.Add(1)
		o.do(func() bool { t.Error("a check ran while another was running"); return true })
		return false
	})
	if got := runs.Load(); got != 2 {
		t.Fatalf("after two unanswered checks: %d runs, want 2", got)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 50 {
		wg.Go(func() {
			<-start
			o.do(func() bool { runs.Add(1); return true })
		})
	}
	close(start)
	wg.Wait()
	o.do(func() bool { runs.Add(1); return true })
	if got := runs.Load(); got != 3 {
		t.Errorf("51 callers after the unanswered ones: %d runs in all, want 3 (one answered, then none)", got)
	}
}

// TestDurabilityCheckNoServer tests the check against a server that does
// not answer: no event, no panic, and the check is not marked done, so the
// next durable write asks again.
func TestDurabilityCheckNoServer(t *testing.T) {
	var buf bytes.Buffer
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rdb.Close()
	s, err := New(rdb, WithLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	s.durableWritten(context.Background(), "k")
	if buf.Len() != 0 {
		t.Errorf("logged with no server: %s", buf.String())
	}
	if s.durability.done.Load() {
		t.Error("check marked done without an answer; the next durable write would not ask")
	}
}

// TestDefaultLogger tests that a Store built without a logger (or with a
// nil one) logs Warn and above to slog.Default(), read at each record, and
// drops the rest, as core does.
func TestDefaultLogger(t *testing.T) {
	old := slog.Default()
	t.Cleanup(func() { slog.SetDefault(old) })
	var buf bytes.Buffer
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for _, opts := range [][]Option{nil, {WithLogger(nil)}} {
		buf.Reset()
		s, err := New(rdb, opts...)
		if err != nil {
			t.Fatal(err)
		}
		slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
		s.logger.Debug(EventDurabilityUnchecked)
		s.logger.Warn(EventDurabilityRisk, "policy", "allkeys-lru")
		got := buf.String()
		if strings.Contains(got, EventDurabilityUnchecked) {
			t.Errorf("default logger passed a Debug record: %s", got)
		}
		if !strings.Contains(got, EventDurabilityRisk) || !strings.Contains(got, "policy=allkeys-lru") {
			t.Errorf("default logger dropped a Warn record: %q", got)
		}
	}
}

// TestCheckDurabilityNoServer tests CheckDurability against a server that
// does not answer: an error that is the client's (not
// ErrDurabilityUnknown, which says the server refused), nothing logged,
// and the Store's own check not marked done.
func TestCheckDurabilityNoServer(t *testing.T) {
	var buf bytes.Buffer
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rdb.Close()
	s, err := New(rdb, WithLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	risk, err := s.CheckDurability(context.Background())
	if err == nil || errors.Is(err, ErrDurabilityUnknown) || risk != "" {
		t.Errorf("CheckDurability with no server = %q, %v; want no risk and a connection error that is not ErrDurabilityUnknown", risk, err)
	}
	if buf.Len() != 0 {
		t.Errorf("CheckDurability logged: %s", buf.String())
	}
	if s.durability.done.Load() {
		t.Error("CheckDurability marked the Store's own check done")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.CheckDurability(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("CheckDurability(canceled ctx) = %v, want context.Canceled", err)
	}
}
