package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wecomvendor"
)

// sweepChildEnv, set in a kill-mode child process, makes Sweep play the
// child: one vendor process that runs the commands its parent sends on
// stdin and kills itself right after its store call number KillAt returns.
const sweepChildEnv = "WECHATCONF_CONFORMANCE_SWEEP_CHILD"

// sweepLine starts every line of the protocol a child writes on stdout;
// the kind ("reply", "call", "wrote", "ran", "kill", "next") and a JSON value follow.
const sweepLine = "wechatconf/conformance: sweep "

// childCmd is one command of the parent to a kill-mode child.
type childCmd struct {
	Op  string `json:"op"`  // init, handle, authorize, access, do, component, oa, oado, push, exit
	Now int64  `json:"now"` // the simulated time, Unix nanoseconds
	// init
	Config vendorConfig `json:"config,omitzero"`
	Proc   string       `json:"proc,omitempty"`
	KillAt int          `json:"kill_at,omitempty"`
	// handle
	Query url.Values `json:"query,omitempty"`
	Body  []byte     `json:"body,omitempty"`
	// authorize, access, do (AppID: the tenant, an appid or a corp id;
	// AgentID: see platform.agentID)
	Code    string `json:"code,omitempty"`
	AppID   string `json:"appid,omitempty"`
	AgentID int64  `json:"agent_id,omitempty"`
	// oa
	Lose bool `json:"lose,omitempty"`
	// push
	PushKey string `json:"push_key,omitempty"`
	Fail    bool   `json:"fail,omitempty"`
}

// childReply is a child's answer to a command.
type childReply struct {
	Applied   string `json:"applied,omitempty"`
	AppID     string `json:"appid,omitempty"`
	Token     string `json:"token,omitempty"`
	Expires   int64  `json:"expires,omitempty"`
	Err       string `json:"err,omitempty"`
	Reauth    bool   `json:"reauth,omitempty"`
	Withdrawn bool   `json:"withdrawn,omitempty"`
	LockLost  bool   `json:"lock_lost,omitempty"`
	Revoked   bool   `json:"revoked,omitempty"`
	Outage    bool   `json:"outage,omitempty"`
	Outcome   int    `json:"outcome,omitempty"` // push: the core.PushOutcome
}

// remoteError is a child's error seen in the parent: its text, and what
// the checks ask of it through errors.Is and errors.As.
type remoteError struct {
	r     childReply
	appid string
}

func (e *remoteError) Error() string { return e.r.Err }

func (e *remoteError) Is(target error) bool {
	switch target {
	case core.ErrRevoked:
		return e.r.Revoked
	case core.ErrLockLost:
		return e.r.LockLost
	case core.ErrStoreUnavailable:
		return e.r.Outage
	}
	return false
}

func (e *remoteError) As(target any) bool {
	if !e.r.Reauth {
		return false
	}
	switch p := target.(type) {
	case **openplatform.ReauthorizeError:
		*p = &openplatform.ReauthorizeError{AuthorizerAppID: e.appid, Reason: e.r.Err, Withdrawn: e.r.Withdrawn}
		return true
	case **wecomvendor.ReauthorizeError:
		*p = &wecomvendor.ReauthorizeError{CorpID: e.appid, Reason: e.r.Err, Withdrawn: e.r.Withdrawn}
		return true
	}
	return false
}

// errKilled is the error of a command whose child was killed under it.
var errKilled = errors.New("the process was killed")

// childVendor is a vendor process played by a child process (the test
// binary started again), for the kill mode.
type childVendor struct {
	proc   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *sweepOutput
	exited chan struct{} // closed once the process exited; err is then set
	err    error
	now    func() time.Time

	mu     sync.Mutex // one command at a time
	killed atomic.Bool
	// died is set when the child exited without being killed: its
	// output, for the run to report.
	died atomic.Pointer[string]
}

// startChild starts the child that plays proc, killed after its store
// call number killAt; it reports its calls and writes to plan.
func startChild(ctx context.Context, h Harness, runName, proc string, cfg vendorConfig, killAt int, plan *faultPlan, now func() time.Time) (*childVendor, error) {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+runPattern(runName), "-test.count=1")
	cmd.Env = append(os.Environ(), h.ChildEnv...)
	cmd.Env = append(cmd.Env, sweepChildEnv+"=1",
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	c := &childVendor{proc: proc, cmd: cmd, exited: make(chan struct{}), now: now,
		out: &sweepOutput{replies: make(chan childReply, 4), plan: plan}}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", os.Args[0], err)
	}
	go func() { c.err = cmd.Wait(); close(c.exited) }()
	if _, err := c.send(ctx, childCmd{Op: "init", Config: cfg, Proc: proc, KillAt: killAt}); err != nil {
		c.close()
		return nil, fmt.Errorf("child %s: init: %w; its output:\n%s", proc, err, c.out)
	}
	return c, nil
}

// send runs one command and returns the child's reply, or errKilled if
// the child died under it.
func (c *childVendor) send(ctx context.Context, cmd childCmd) (childReply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killed.Load() {
		return childReply{}, errKilled
	}
	cmd.Now = c.now().UnixNano()
	for drained := false; !drained; { // replies to commands given up on
		select {
		case <-c.out.replies:
		default:
			drained = true
		}
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		return childReply{}, err
	}
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		return c.dead(ctx)
	}
	select {
	case r := <-c.out.replies:
		return r, nil
	case <-c.exited:
		select { // a reply written just before the exit
		case r := <-c.out.replies:
			return r, nil
		default:
		}
		return c.dead(ctx)
	case <-ctx.Done():
		return childReply{}, ctx.Err()
	}
}

// dead waits for the child's exit and reports it as errKilled if it was
// killed, as an error with its output otherwise.
func (c *childVendor) dead(ctx context.Context) (childReply, error) {
	select {
	case <-c.exited:
	case <-ctx.Done():
		return childReply{}, ctx.Err()
	}
	c.killed.Store(true)
	if c.out.killing.Load() {
		return childReply{}, errKilled
	}
	msg := fmt.Sprintf("child %s exited (%v) without being killed; its output:\n%s", c.proc, c.err, c.out)
	c.died.CompareAndSwap(nil, &msg)
	return childReply{}, errKilled
}

// alive reports whether the child still runs.
func (c *childVendor) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return !c.killed.Load()
	}
}

func (c *childVendor) result(r childReply, err error, appid string) error {
	if err != nil {
		return err
	}
	if r.Err != "" {
		return &remoteError{r: r, appid: appid}
	}
	return nil
}

func (c *childVendor) token(r childReply, err error, appid string) (core.Token, error) {
	if err := c.result(r, err, appid); err != nil {
		return core.Token{}, err
	}
	return core.Token{Value: r.Token, ExpiresAt: time.UnixMilli(r.Expires)}, nil
}

func (c *childVendor) name() string { return c.proc }

func (c *childVendor) handle(ctx context.Context, p push) (string, error) {
	r, err := c.send(ctx, childCmd{Op: "handle", Query: p.query, Body: p.body})
	return r.Applied, c.result(r, err, p.appid)
}

func (c *childVendor) authorize(ctx context.Context, code string) (string, error) {
	r, err := c.send(ctx, childCmd{Op: "authorize", Code: code})
	return r.AppID, c.result(r, err, "")
}

func (c *childVendor) accessToken(ctx context.Context, appid string) (core.Token, error) {
	r, err := c.send(ctx, childCmd{Op: "access", AppID: appid})
	return c.token(r, err, appid)
}

func (c *childVendor) do(ctx context.Context, appid string, agentID int64) error {
	r, err := c.send(ctx, childCmd{Op: "do", AppID: appid, AgentID: agentID})
	return c.result(r, err, appid)
}

func (c *childVendor) platformToken(ctx context.Context) (core.Token, error) {
	r, err := c.send(ctx, childCmd{Op: "component"})
	return c.token(r, err, "")
}

func (c *childVendor) oaToken(ctx context.Context, lose bool, next func()) (core.Token, error) {
	if lose {
		c.out.setNext(next)
	}
	r, err := c.send(ctx, childCmd{Op: "oa", Lose: lose})
	return c.token(r, err, "")
}

func (c *childVendor) oaDo(ctx context.Context) error {
	r, err := c.send(ctx, childCmd{Op: "oado"})
	return c.result(r, err, "")
}

func (c *childVendor) pushDo(ctx context.Context, key string, fail bool) (core.PushOutcome, error) {
	r, err := c.send(ctx, childCmd{Op: "push", PushKey: key, Fail: fail})
	return core.PushOutcome(r.Outcome), c.result(r, err, "")
}

// flush: a child is dead at rest (see run.rest), its held writes with it.
func (c *childVendor) flush(context.Context) error { return nil }

func (c *childVendor) gate(<-chan struct{}) {
	panic("conformance: sweep: the gated process is played in this process")
}

// close ends the child: asks it to exit, then kills it if it does not.
func (c *childVendor) close() {
	if !c.killed.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), childStartTimeout)
		c.send(ctx, childCmd{Op: "exit"})
		cancel()
	}
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(childStartTimeout):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// sweepOutput collects a child's output and dispatches the protocol's
// lines: replies to the command waiting, calls and writes to the plan, the
// lost-lease step's "next" to its callback.
type sweepOutput struct {
	replies chan childReply
	plan    *faultPlan
	killing atomic.Bool // the child reported the call it dies after

	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	next    func()
}

func (w *sweepOutput) setNext(f func()) {
	w.mu.Lock()
	w.next = f
	w.mu.Unlock()
}

func (w *sweepOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() < 1<<20 {
		w.buf.Write(p)
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		rest, ok := strings.CutPrefix(line, sweepLine)
		if !ok {
			continue
		}
		kind, v, _ := strings.Cut(rest, " ")
		switch kind {
		case "reply":
			var r childReply
			if json.Unmarshal([]byte(v), &r) == nil {
				select {
				case w.replies <- r:
				default: // a reply to a command the parent gave up on
				}
			}
		case "call":
			var c storeCall
			if json.Unmarshal([]byte(v), &c) == nil {
				w.plan.absorbChildCall(c)
			}
		case "wrote":
			var s storeWrite
			if json.Unmarshal([]byte(v), &s) == nil {
				w.plan.absorbWrite(s)
			}
		case "ran":
			var e histEvent
			if json.Unmarshal([]byte(v), &e) == nil {
				w.plan.record(e)
			}
		case "kill":
			w.killing.Store(true)
		case "next":
			if w.next != nil {
				go w.next()
				w.next = nil
			}
		}
	}
	return len(p), nil
}

func (w *sweepOutput) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// runSweepChild plays a kill-mode child: one vendor process over a store
// from h, wrapped by a plan that kills the process right after its store
// call number KillAt returns, running its parent's commands in order.
func runSweepChild(t *testing.T, h Harness) {
	var outMu sync.Mutex
	emit := func(kind string, v any) {
		b, _ := json.Marshal(v)
		outMu.Lock()
		os.Stdout.Write([]byte(sweepLine + kind + " " + string(b) + "\n"))
		outMu.Unlock()
	}
	in := bufio.NewReader(os.Stdin)
	read := func() childCmd {
		line, err := in.ReadString('\n')
		if err != nil {
			os.Exit(0) // the parent is gone
		}
		var cmd childCmd
		if err := json.Unmarshal([]byte(line), &cmd); err != nil {
			t.Fatalf("sweep child: %q from the parent: %v", line, err)
		}
		return cmd
	}
	init := read()
	if init.Op != "init" {
		t.Fatalf("sweep child: first command %q, want init", init.Op)
	}
	var clock atomic.Int64
	clock.Store(init.Now)
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	plan := newFaultPlan(faultKill, init.KillAt)
	plan.emit = emit
	plan.kill = func() { emit("kill", struct{}{}); killSelf() }
	plan.arm(true)
	v, err := newLocalVendor(init.Proc, init.Config, h.NewStore(t), plan, now)
	if err != nil {
		t.Fatalf("sweep child: %v", err)
	}
	defer v.close()
	emit("reply", childReply{})
	// Commands run with no deadline of their own: the parent bounds them
	// (it kills the child when its run ends).
	ctx := context.Background()
	for {
		cmd := read()
		clock.Store(cmd.Now)
		var (
			r   childReply
			tok core.Token
			err error
		)
		switch cmd.Op {
		case "exit":
			emit("reply", r)
			return
		case "handle":
			r.Applied, err = v.handle(ctx, push{query: cmd.Query, body: cmd.Body})
		case "authorize":
			r.AppID, err = v.authorize(ctx, cmd.Code)
		case "access":
			tok, err = v.accessToken(ctx, cmd.AppID)
		case "do":
			err = v.do(ctx, cmd.AppID, cmd.AgentID)
		case "component":
			tok, err = v.platformToken(ctx)
		case "oa":
			tok, err = v.oaToken(ctx, cmd.Lose, func() { emit("next", struct{}{}) })
		case "oado":
			err = v.oaDo(ctx)
		case "push":
			var out core.PushOutcome
			out, err = v.pushDo(ctx, cmd.PushKey, cmd.Fail)
			r.Outcome = int(out)
		default:
			t.Fatalf("sweep child: unknown command %q", cmd.Op)
		}
		if tok.Value != "" {
			r.Token, r.Expires = tok.Value, tok.ExpiresAt.UnixMilli()
		}
		if err != nil {
			r.Err = err.Error()
			r.Reauth, r.Withdrawn = reauthorizeOf(err)
			r.Revoked = errors.Is(err, core.ErrRevoked)
			r.LockLost = errors.Is(err, core.ErrLockLost)
			r.Outage = errors.Is(err, core.ErrStoreUnavailable)
		}
		emit("reply", r)
	}
}
