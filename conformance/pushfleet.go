package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// WeChat's behaviour, as PushFleet plays it: a delivery not answered 200
// within PushTimeout is sent again, PushTimeout after the last one, to a
// random live instance, up to PushRetries times.
const (
	// PushTimeout is how long WeChat waits for an answer to a push.
	PushTimeout = 5 * time.Second
	// PushRetries is how many times WeChat sends a push again.
	PushRetries = 3
)

// PushFleetConfig sizes a PushFleet run. Zero fields take the defaults.
type PushFleetConfig struct {
	// Procs is the number of child processes the fleet keeps alive
	// (killed ones are replaced). Default 8; at least 2.
	Procs int
	// Pushes is the number of pushes WeChat sends. Default 300.
	Pushes int
	// Spread is the time over which the pushes' first deliveries are
	// sent, evenly. Default 30s.
	Spread time.Duration
	// Kills is the number of "kill" pushes, whose first handler blocks
	// until the parent kills its process (or, when no moment is safe for
	// the guarantee, releases it: see PushFleet). Default Pushes/50;
	// negative means none.
	Kills int
	// Seed seeds the plan (each push's kind, endpoint, latency, failure
	// and kill, and the instances the deliveries go to); 0 picks one. The
	// seed is logged: with it a failure's plan can be replayed, though
	// not the machine's scheduling.
	Seed uint64
	// ExpirySlack is how late after a killed handler's lease ran out the
	// store may still hold its claim and a waiting delivery may take to
	// notice (the store's expiry tick, a waiter's poll interval, a loaded
	// machine). A kill waits until the lease plus this slack ends before
	// the last delivery of every push the victim holds would stop
	// waiting. Default 3s.
	ExpirySlack time.Duration
	// Timeout bounds the whole run; Default Spread + 2 minutes.
	Timeout time.Duration
	// Name names the store in the results row PushFleet logs
	// (ReportRow, table "Push fleet: every push handled once"). Default
	// the store's Go type.
	Name string
}

func (c PushFleetConfig) normalize(t testing.TB) PushFleetConfig {
	t.Helper()
	if c.Procs == 0 {
		c.Procs = 8
	}
	if c.Procs < 2 {
		t.Fatalf("PushFleetConfig.Procs is %d, want at least 2 (a killed process is replaced while the others serve)", c.Procs)
	}
	if c.Pushes <= 0 {
		c.Pushes = 300
	}
	if c.Spread <= 0 {
		c.Spread = 30 * time.Second
	}
	switch {
	case c.Kills == 0:
		c.Kills = c.Pushes / 50
	case c.Kills < 0:
		c.Kills = 0
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.ExpirySlack <= 0 {
		c.ExpirySlack = 3 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = c.Spread + 2*time.Minute
	}
	return c
}

// The handlers' behaviour in a PushFleet run.
const (
	pfSlowShare  = 0.20 // handlers slower than WeChat's timeout
	pfSlowMin    = 5 * time.Second
	pfSlowMax    = 9 * time.Second
	pfFastMax    = 300 * time.Millisecond
	pfFailShare  = 0.05 // first handlers that return an error
	pfEventShare = 0.40 // events (no MsgId) among single pushes
	pfPairShare  = 0.10 // pairs of events from one user in one second
	pfKillMin    = 100 * time.Millisecond
	pfKillMax    = 1500 * time.Millisecond // after its start, a kill push's process is killed within this, if safe
	pfPoll       = 50 * time.Millisecond   // how often the parent re-examines a postponed kill or the end of the run
)

// pfPlan is one push, as the seeded plan decides it.
type pfPlan struct {
	spec      pfSpec
	endpoint  int           // index into pfPaths
	event     bool          // an event (no MsgId), else a text message
	pair      int           // for the second of a pair, the first's number; else -1
	user      string        // FromUserName
	msgID     uint64        // a message's MsgId
	at        time.Duration // first delivery, from the start of the run
	killDelay time.Duration // for a kill push: from its handler's start to the kill
}

// pfPush is one push during the run.
type pfPush struct {
	plan  pfPlan
	query url.Values
	body  []byte
	sends []pfSend
	got   bool // a delivery was answered 200: WeChat is done with it
	ended bool // WeChat is done with it: a 200, or its last delivery failed
	fin   bool // a handler printed "finish ok"
}

// pfSend is one delivery.
type pfSend struct {
	proc   *pfProc
	at     time.Time
	status int    // 0 when the request failed
	err    string // the client's error
}

// pfProc is one child process.
type pfProc struct {
	n      int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	url    string
	ready  chan struct{}
	exited chan struct{}
	other  *tailBuffer // what it printed that is not history

	// guarded by the fleet's mu
	killed  bool            // by the parent, to crash it
	stopped bool            // waited for at the end
	pending map[[2]int]bool // deliveries sent to it and not answered: push, delivery
}

// tailBuffer keeps the last 64 KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 64<<10 {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-64<<10:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// pfFleet is the parent's side of a run: WeChat and the recorder.
type pfFleet struct {
	t      testing.TB
	h      Harness
	cfg    PushFleetConfig
	prefix string
	args   []string // the child's test binary arguments
	bench  bool
	client *http.Client
	lease  time.Duration // the children's Dedup lease
	wait   time.Duration // the children's Dedup wait

	mu       sync.Mutex
	rng      *rand.Rand
	procs    []*pfProc
	live     []*pfProc
	pushes   []*pfPush
	lines    []pfLine
	kills    int
	spared   int
	postpone int // kills that waited for a safe moment
	starts   []int
	other    map[string]int // children's events of no delivery, by event: how many processes logged it
	spawnErr []string
}

// PushFleet is the fleet check of "every push handled once" (core.Dedup),
// run from a test of its own: the parent plays WeChat, and cfg.Procs OS
// processes (the test binary started again, as ProcessHerd's; see
// Harness.ChildEnv) each serve three push endpoints on 127.0.0.1 that
// share one core.Dedup (default Lease, Wait and Remember) over a store from
// h: an Official Account in safe mode (core.Conf.MessageHandler), a WeCom
// app (wecom.Callback.Handler) and an Open Platform component's message
// URL for an authorizer (openplatform.Component.MessageHandler).
//
// WeChat sends cfg.Pushes encrypted pushes (core/wxtest's EncryptPush and
// EncryptWeComCallback) over cfg.Spread: text messages (by MsgId) and
// events (by FromUserName and CreateTime), among them pairs of different
// events from one user in the same second. Each delivery goes to a random
// live process; one not answered 200 within PushTimeout (5 s) is sent
// again 5 s after the last, up to PushRetries (3) times. Each push tells
// its handler what to do: most take under 300ms, 20% between 5 and 9 s
// (beyond WeChat's timeout), 5% fail on their first delivery, and
// cfg.Kills block on their first delivery until the parent kills the
// process with SIGKILL; a new process replaces it. The parent kills only
// when the guarantee can hold: every push with a delivery at the victim
// that is not yet handled must have its last delivery still waiting
// (PushTimeout after it was sent, the children's Dedup.Wait) after the
// victim's claims run out (the Dedup Lease plus cfg.ExpirySlack from
// now); otherwise it postpones the kill, and when its push's own window
// closes, tells the handler to finish instead ("spared").
//
// The children print their history (each handler's start and finish,
// each delivery's answer after HandleMessage returned, Dedup's claim-lost
// and unguarded events), stamped with the machine's clock, and a checker
// reads it: (a) every push was handled (a handler finished); (b) no push
// was started again unless every earlier start of it failed, crashed
// (its process was killed before it answered), or lost its claim or ran
// unguarded (Dedup's documented limits, shown by its own events). It
// logs one summary line with the counts (pushes, deliveries, retries and
// how they were answered, handlers started again after crashes, failures,
// lost claims, and any other — which fails the test), e.g.
//
//	PushFleet: seed 0x1f…, 8 processes, 300 pushes (…), 372 deliveries (72 retries: …), 6 kills (0 spared), handled again: 6 after crashes, 15 after failures, 0 after lost claims, 0 unguarded, 0 other; took 44s
//
// No assertion depends on timing: a slow machine makes more retries and
// postpones kills, but the checker's rules hold on any schedule.
//
// Call it from a test of its own, e.g.
//
//	func TestPushFleet(t *testing.T) { conformance.PushFleet(t, harness(t), conformance.PushFleetConfig{}) }
//
// In the child process the same call plays one process of the fleet.
func PushFleet(t *testing.T, h Harness, cfg PushFleetConfig) {
	t.Helper()
	h = h.normalize(t)
	if raw, ok := os.LookupEnv(pushFleetEnv); ok {
		runPushFleetChild(t, h, raw)
		return
	}
	if h.SingleProcess != "" {
		t.Skipf("PushFleet needs a backend other processes can reach; Harness.SingleProcess says: %s", h.SingleProcess)
	}
	cfg = cfg.normalize(t)
	f := newPushFleet(t, h, cfg, []string{"-test.run=" + runPattern(t.Name())}, false)
	f.run()
}

func newPushFleet(t testing.TB, h Harness, cfg PushFleetConfig, args []string, bench bool) *pfFleet {
	conns := 4 * cfg.Procs
	if bench {
		conns = 64
	}
	return &pfFleet{
		t: t, h: h, cfg: cfg, args: args, bench: bench,
		prefix: fmt.Sprintf("%spushfleet%08x", h.KeyPrefix, rand.Uint32()),
		client: &http.Client{Timeout: PushTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: conns}},
		lease:  core.DefaultPushLease, wait: core.DefaultPushWait,
		other: map[string]int{},
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
	}
}

// plan draws the pushes from the seeded generator.
func (f *pfFleet) plan() []pfPlan {
	r := f.rng
	n := f.cfg.Pushes
	plans := make([]pfPlan, 0, n)
	for len(plans) < n {
		at := f.cfg.Spread * time.Duration(len(plans)) / time.Duration(n)
		p := pfPlan{endpoint: r.IntN(len(pfPaths)), user: fmt.Sprintf("user%04d", r.IntN(10000)), pair: -1, at: at}
		p.spec.latency = time.Duration(r.Int64N(int64(pfFastMax)))
		if r.Float64() < pfSlowShare {
			p.spec.latency = pfSlowMin + time.Duration(r.Int64N(int64(pfSlowMax-pfSlowMin)))
		}
		p.spec.fail = r.Float64() < pfFailShare
		if len(plans)+2 <= n && r.Float64() < pfPairShare {
			p.event = true
			p.spec.push = len(plans)
			q := p
			q.spec.push, q.pair = len(plans)+1, len(plans)
			q.spec.latency = time.Duration(r.Int64N(int64(pfFastMax)))
			plans = append(plans, p, q)
			continue
		}
		p.event = r.Float64() < pfEventShare
		p.msgID = r.Uint64() >> 1
		p.spec.push = len(plans)
		plans = append(plans, p)
	}
	// The kill pushes: distinct single pushes, drawn at random.
	singles := make([]int, 0, n)
	for i, p := range plans {
		if p.pair < 0 && (i+1 >= n || plans[i+1].pair != i) {
			singles = append(singles, i)
		}
	}
	r.Shuffle(len(singles), func(i, j int) { singles[i], singles[j] = singles[j], singles[i] })
	for _, i := range singles[:min(f.cfg.Kills, len(singles))] {
		plans[i].spec.kill, plans[i].spec.fail = true, false
		plans[i].killDelay = pfKillMin + time.Duration(r.Int64N(int64(pfKillMax-pfKillMin)))
	}
	return plans
}

// build encrypts push p, created at createTime (Unix seconds).
func (f *pfFleet) build(p *pfPush, createTime int64) error {
	pl := p.plan
	var b strings.Builder
	account, receiveID := pfOAAccount, pfOAAppID
	switch pl.endpoint {
	case 1:
		account, receiveID = pfCorpID, pfCorpID
	case 2:
		account, receiveID = pfAuthorizer, pfComponentAppID
	}
	fmt.Fprintf(&b, "<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName><CreateTime>%d</CreateTime>",
		account, pl.user, createTime)
	if pl.event {
		fmt.Fprintf(&b, "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[%s]]></EventKey>", pl.spec)
	} else {
		fmt.Fprintf(&b, "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[%s]]></Content><MsgId>%d</MsgId>", pl.spec, pl.msgID)
	}
	if pl.endpoint == 1 {
		fmt.Fprintf(&b, "<AgentID>%d</AgentID>", pfAgentID)
	}
	b.WriteString("</xml>")
	var err error
	if pl.endpoint == 1 {
		p.query, p.body, err = wxtest.EncryptWeComCallback(pfToken, pfAESKey, receiveID, []byte(b.String()), createTime, msgcrypt.NewNonce())
	} else {
		p.query, p.body, err = wxtest.EncryptPush(pfToken, pfAESKey, receiveID, []byte(b.String()), createTime, msgcrypt.NewNonce())
	}
	return err
}

// spawn starts a child and returns it once it serves, or nil (the error
// reported) if it could not start.
func (f *pfFleet) spawn(ctx context.Context) *pfProc {
	raw, _ := json.Marshal(pfChildConfig{KeyPrefix: f.prefix, Bench: f.bench})
	f.mu.Lock()
	p := &pfProc{n: len(f.procs), ready: make(chan struct{}), exited: make(chan struct{}), other: &tailBuffer{}, pending: map[[2]int]bool{}}
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	p.cmd = exec.Command(os.Args[0], f.args...)
	p.cmd.Env = append(os.Environ(), f.h.ChildEnv...)
	p.cmd.Env = append(p.cmd.Env, pushFleetEnv+"="+string(raw),
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	p.cmd.Stderr = p.other
	stdout, err := p.cmd.StdoutPipe()
	if err == nil {
		p.stdin, err = p.cmd.StdinPipe()
	}
	if err == nil {
		err = p.cmd.Start()
	}
	if err != nil {
		f.spawnFailed(fmt.Sprintf("push fleet: starting child %d: %v", p.n, err))
		close(p.exited)
		return nil
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			f.record(p, sc.Text())
		}
		io.Copy(io.Discard, stdout)
		p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case <-p.ready:
		return p
	case <-p.exited:
		f.spawnFailed(fmt.Sprintf("push fleet: child %d exited before it served (%v); its output:\n%s", p.n, p.cmd.ProcessState, p.other))
	case <-ctx.Done():
		p.cmd.Process.Kill()
		f.spawnFailed(fmt.Sprintf("push fleet: child %d did not serve in time; its output:\n%s", p.n, p.other))
	}
	return nil
}

func (f *pfFleet) spawnFailed(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spawnErr = append(f.spawnErr, msg)
}

// record takes one line of child p's stdout.
func (f *pfFleet) record(p *pfProc, line string) {
	rest, ok := strings.CutPrefix(line, pfLinePrefix)
	if !ok {
		p.other.Write([]byte(line + "\n"))
		return
	}
	fs := strings.Fields(rest)
	if len(fs) < 2 {
		p.other.Write([]byte(line + "\n"))
		return
	}
	ts, _ := strconv.ParseInt(fs[0], 10, 64)
	if fs[1] == "port" && len(fs) == 3 {
		p.url = "http://127.0.0.1:" + fs[2]
		close(p.ready)
		return
	}
	if len(fs) < 4 {
		p.other.Write([]byte(line + "\n"))
		return
	}
	push, err1 := strconv.Atoi(fs[2])
	delivery, err2 := strconv.Atoi(fs[3])
	if err1 != nil || err2 != nil {
		p.other.Write([]byte(line + "\n"))
		return
	}
	l := pfLine{proc: p.n, ts: ts, kind: fs[1], push: push, delivery: delivery, arg: strings.Join(fs[4:], " ")}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bench {
		if l.kind == pfStart && push >= 0 {
			for len(f.starts) <= push {
				f.starts = append(f.starts, 0)
			}
			f.starts[push]++
		}
		return
	}
	if push < 0 {
		f.other[strings.Join(fs[4:], " ")]++
		return
	}
	f.lines = append(f.lines, l)
	if push >= len(f.pushes) {
		return // the checker reports it
	}
	q := f.pushes[push]
	switch l.kind {
	case pfStart:
		if q.plan.spec.kill && delivery == 0 {
			go f.killer(q, p)
		}
	case pfFinish:
		q.fin = q.fin || l.arg == "ok"
	case pfAnswered:
		delete(p.pending, [2]int{push, delivery})
	}
}

// lastWaitEnds is the earliest time at which the last delivery of q may
// stop waiting for a claim: PushTimeout after each delivery still to come,
// then the children's Dedup.Wait. Called with mu held.
func (f *pfFleet) lastWaitEnds(q *pfPush) time.Time {
	j := len(q.sends) - 1
	return q.sends[j].at.Add(time.Duration(PushRetries-j)*PushTimeout + f.wait)
}

// safeToKill reports whether killing v now keeps the guarantee: every
// push with a delivery pending at v and not yet handled keeps a delivery
// waiting after v's claims run out. Called with mu held.
func (f *pfFleet) safeToKill(v *pfProc, now time.Time) bool {
	free := now.Add(f.lease + f.cfg.ExpirySlack)
	for k := range v.pending {
		q := f.pushes[k[0]]
		if q.fin || q.got {
			continue
		}
		if !free.Before(f.lastWaitEnds(q)) {
			return false
		}
	}
	return len(f.live) >= 2
}

// killer kills v, which runs the first handler of kill push q, once it is
// safe, or spares the handler when its push's own window closes first.
func (f *pfFleet) killer(q *pfPush, v *pfProc) {
	t := time.NewTimer(q.plan.killDelay)
	<-t.C
	waited := false
	for {
		f.mu.Lock()
		if v.killed {
			f.mu.Unlock()
			return
		}
		now := time.Now()
		if f.safeToKill(v, now) {
			v.killed = true
			f.live = slices.DeleteFunc(f.live, func(p *pfProc) bool { return p == v })
			for k := range v.pending {
				delete(v.pending, k)
			}
			f.kills++
			if waited {
				f.postpone++
			}
			f.mu.Unlock()
			v.cmd.Process.Kill()
			go f.replace()
			return
		}
		if !now.Add(f.lease + f.cfg.ExpirySlack).Before(f.lastWaitEnds(q)) {
			f.spared++
			f.mu.Unlock()
			fmt.Fprintf(v.stdin, "spare %d\n", q.plan.spec.push)
			return
		}
		waited = true
		f.mu.Unlock()
		t.Reset(pfPoll)
		<-t.C
	}
}

// replace starts a process in place of a killed one.
func (f *pfFleet) replace() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if p := f.spawn(ctx); p != nil {
		f.mu.Lock()
		f.live = append(f.live, p)
		f.mu.Unlock()
	}
}

// deliver sends delivery k of q to a random live process and reports
// whether it was answered 200.
func (f *pfFleet) deliver(q *pfPush, k int) bool {
	f.mu.Lock()
	if len(f.live) == 0 { // the run is over
		f.mu.Unlock()
		return false
	}
	p := f.live[f.rng.IntN(len(f.live))]
	p.pending[[2]int{q.plan.spec.push, k}] = true
	q.sends = append(q.sends, pfSend{proc: p, at: time.Now()})
	i := len(q.sends) - 1
	f.mu.Unlock()

	status, errText := 0, ""
	req, err := http.NewRequest(http.MethodPost, p.url+pfPaths[q.plan.endpoint]+"?"+q.query.Encode(), bytes.NewReader(q.body))
	if err == nil {
		req.Header.Set("Content-Type", "text/xml")
		req.Header.Set(pfPushHeader, strconv.Itoa(q.plan.spec.push))
		req.Header.Set(pfDeliveryHeader, strconv.Itoa(k))
		var resp *http.Response
		if resp, err = f.client.Do(req); err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
	}
	if err != nil {
		errText = err.Error()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	q.sends[i].status, q.sends[i].err = status, errText
	ok := status == http.StatusOK && err == nil
	q.got = q.got || ok
	return ok
}

// send plays WeChat for one push: deliveries until one is answered 200,
// PushTimeout apart, at most 1+PushRetries.
func (f *pfFleet) send(ctx context.Context, q *pfPush) {
	defer func() {
		f.mu.Lock()
		q.ended = true
		f.mu.Unlock()
	}()
	for k := 0; k <= PushRetries; k++ {
		at := time.Now()
		if f.deliver(q, k) || k == PushRetries {
			return
		}
		t := time.NewTimer(time.Until(at.Add(PushTimeout)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// run runs the fleet and checks its history.
func (f *pfFleet) run() {
	t := f.t
	cfg := f.cfg
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	plans := f.plan()
	f.pushes = make([]*pfPush, len(plans))
	for i, pl := range plans {
		f.pushes[i] = &pfPush{plan: pl}
	}
	t.Logf("PushFleet: seed %#x (PushFleetConfig.Seed replays the plan), %d processes, %d pushes over %v, %d kill pushes, Dedup lease %v, wait %v, store key prefix %q",
		cfg.Seed, cfg.Procs, cfg.Pushes, cfg.Spread, cfg.Kills, f.lease, f.wait, f.prefix)

	defer f.stopAll()
	var wg sync.WaitGroup
	for range cfg.Procs {
		wg.Go(func() {
			if p := f.spawn(ctx); p != nil {
				f.mu.Lock()
				f.live = append(f.live, p)
				f.mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(f.live) != cfg.Procs {
		t.Fatalf("push fleet: %d of %d processes started:\n%s", len(f.live), cfg.Procs, strings.Join(f.spawnErr, "\n"))
	}

	start := time.Now()
	var senders sync.WaitGroup
	var createTime int64
	for _, q := range f.pushes {
		if d := time.Until(start.Add(q.plan.at)); d > 0 {
			tm := time.NewTimer(d)
			select {
			case <-tm.C:
			case <-ctx.Done():
				tm.Stop()
			}
		}
		if ctx.Err() != nil {
			break
		}
		if q.plan.pair < 0 {
			createTime = time.Now().Unix()
		} // the second of a pair: the same user, the same second
		if err := f.build(q, createTime); err != nil {
			t.Fatalf("push fleet: encrypting push %d: %v", q.plan.spec.push, err)
		}
		senders.Go(func() { f.send(ctx, q) })
	}
	senders.Wait()

	// WeChat is done; wait for every delivery a live process received to be
	// answered (slow handlers, waiting retries).
	for ctx.Err() == nil && f.pendingLeft() > 0 {
		tm := time.NewTimer(pfPoll)
		select {
		case <-tm.C:
		case <-ctx.Done():
		}
	}
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Errorf("push fleet: not done within PushFleetConfig.Timeout %v: %d pushes not ended, %d deliveries never answered", cfg.Timeout, f.notEnded(), f.pendingLeft())
	}
	f.stopAll()
	f.check(took)
}

func (f *pfFleet) pendingLeft() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.live {
		n += len(p.pending)
	}
	return n
}

func (f *pfFleet) notEnded() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, q := range f.pushes {
		if !q.ended {
			n++
		}
	}
	return n
}

// stopAll closes every child's stdin, which ends it, and waits for them;
// one still running after a minute is killed. It reports children that
// failed. Calling it again does nothing.
func (f *pfFleet) stopAll() {
	f.mu.Lock()
	procs := slices.Clone(f.procs)
	f.live = nil
	f.mu.Unlock()
	for _, p := range procs {
		if p.stdin != nil {
			p.stdin.Close()
		}
	}
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for _, p := range procs {
		select {
		case <-p.exited:
		case <-deadline.C:
			p.cmd.Process.Kill()
			<-p.exited
		}
		f.mu.Lock()
		report := !p.killed && !p.stopped
		p.stopped = true
		f.mu.Unlock()
		if report && p.cmd.ProcessState != nil && !p.cmd.ProcessState.Success() {
			f.t.Errorf("push fleet: child %d (pid %d) failed: %v; its output:\n%s", p.n, p.cmd.Process.Pid, p.cmd.ProcessState, p.other)
		}
	}
}

// check runs the checker over the history and logs the summary.
func (f *pfFleet) check(took time.Duration) {
	t := f.t
	f.mu.Lock()
	defer f.mu.Unlock()
	killed := map[int]bool{}
	for _, p := range f.procs {
		if p.killed {
			killed[p.n] = true
		}
	}
	var deliveries, retries, noAnswer, messages, events, pairs, lastDelivery int
	for _, q := range f.pushes {
		deliveries += len(q.sends)
		retries += max(len(q.sends)-1, 0)
		if !q.got {
			noAnswer++
		}
		if len(q.sends) == PushRetries+1 {
			lastDelivery++
		}
		switch {
		case q.plan.pair >= 0:
			pairs++
			events++
		case q.plan.event:
			events++
		default:
			messages++
		}
	}
	c, bad := checkPushHistory(len(f.pushes), f.lines, killed)
	outcomes := make([]string, 0, len(c.Outcomes))
	for _, o := range slices.Sorted(maps.Keys(c.Outcomes)) {
		outcomes = append(outcomes, fmt.Sprintf("%d %s", c.Outcomes[o], o))
	}
	store := f.cfg.Name
	if store == "" {
		store = fmt.Sprintf("%T", f.h.NewStore(t))
	}
	ReportRow(t, "Push fleet: every push handled once",
		Col{"store", store}, Col{"processes", strconv.Itoa(f.cfg.Procs)}, Col{"pushes", strconv.Itoa(c.Pushes)},
		Col{"deliveries", strconv.Itoa(deliveries)}, Col{"kills", strconv.Itoa(f.kills)},
		Col{"again after crash", strconv.Itoa(c.Dups["crashed"])}, Col{"again after failure", strconv.Itoa(c.Dups["failed"])},
		Col{"again, claim lost or unguarded", strconv.Itoa(c.Dups["lost"] + c.Dups["unguarded"])},
		Col{"again, other", strconv.Itoa(c.Dups["other"])}, Col{"never handled", strconv.Itoa(c.Pushes - c.Handled)},
		Col{"took", took.Round(100 * time.Millisecond).String()})
	t.Logf("PushFleet: seed %#x, %d processes, %d pushes (%d messages, %d events, %d same-second event pairs), %d deliveries (%d retries; answers: %s), %d reached their last delivery, %d got no 200 from the fleet; %d kills (%d postponed, %d spared), %d handlers started, %d pushes handled; handled again: %d after crashes, %d after failures, %d after lost claims, %d unguarded, %d other; took %v",
		f.cfg.Seed, f.cfg.Procs, c.Pushes, messages, events, pairs, deliveries, retries, strings.Join(outcomes, ", "),
		lastDelivery, noAnswer, f.kills, f.postpone, f.spared, c.Starts, c.Handled,
		c.Dups["crashed"], c.Dups["failed"], c.Dups["lost"], c.Dups["unguarded"], c.Dups["other"], took.Round(100*time.Millisecond))
	const maxOther = 8
	for i, o := range slices.Sorted(maps.Keys(f.other)) {
		if i == maxOther {
			t.Logf("PushFleet: … and %d more kinds of Dedup events", len(f.other)-maxOther)
			break
		}
		if o == "unguarded store" {
			t.Logf("PushFleet: %d processes warned that the store does not implement core.ClaimStore: claims are emulated (core.ClaimsOver)", f.other[o])
			continue
		}
		t.Logf("PushFleet: Dedup event %q logged %d times", o, f.other[o])
	}
	for _, e := range f.spawnErr {
		t.Error(e)
	}
	const maxReports = 20
	for i, b := range bad {
		if i == maxReports {
			t.Errorf("PushFleet: … and %d more violations", len(bad)-maxReports)
			break
		}
		t.Errorf("PushFleet (seed %#x): %s", f.cfg.Seed, b)
	}
}
