package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wecom"
)

// pushFleetEnv holds a PushFleet child's configuration (JSON
// pfChildConfig); its presence makes PushFleet and BenchmarkPushFleet play
// the child.
const pushFleetEnv = "WECHATCONF_CONFORMANCE_PUSHFLEET"

// pfChildConfig is what a PushFleet child is told.
type pfChildConfig struct {
	KeyPrefix string `json:"prefix"` // the Dedup's KeyPrefix, unique to the run
	Bench     bool   `json:"bench"`  // print only the start lines
}

// The accounts of the fleet's three endpoints. One Token and
// EncodingAESKey serve all three (each is encrypted for its own receive
// id, so a push meant for one endpoint does not decrypt at another).
const (
	pfToken          = "conformancePushFleetToken"
	pfAESKey         = "conformancePushFleetEncodingAESKey012345678" // 43 characters
	pfOAAppID        = "wxconformancepushoa"
	pfOAAccount      = "gh_conformancepushoa"
	pfCorpID         = "wwconformancepush"
	pfAgentID        = 1000002
	pfComponentAppID = "wxconformancepushcomponent"
	pfComponentSec   = "conformance-push-component-secret"
	pfAuthorizer     = "gh_conformancepushauthorizer" // an authorizer's original ID
)

// The fleet's endpoints, by a push's endpoint number.
var pfPaths = [...]string{"/oa", "/wecom", "/open/callback"}

// Headers through which the parent tells a child which push and delivery a
// request is: WeChat sends neither, but they let a child name the
// delivery in its history lines.
const (
	pfPushHeader     = "X-Conformance-Push"
	pfDeliveryHeader = "X-Conformance-Delivery"
)

// pfLinePrefix begins every history line a child prints:
// "<prefix><unix ns> <kind> <fields…>".
const pfLinePrefix = "wechatconf/conformance: pushfleet "

// pfSpec is a push's behaviour, which the parent writes into the push (the
// Content of a message, the EventKey of an event) as
// "pf:<push>:<latency ms>:<fail>:<kill>".
type pfSpec struct {
	push    int
	latency time.Duration
	fail    bool // the handler of delivery 0 returns an error
	kill    bool // the handler of delivery 0 blocks until its process is killed (or spared)
}

func (s pfSpec) String() string {
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	return fmt.Sprintf("pf:%d:%d:%d:%d", s.push, s.latency.Milliseconds(), b(s.fail), b(s.kill))
}

func parsePFSpec(v string) (pfSpec, error) {
	f := strings.Split(v, ":")
	if len(f) != 5 || f[0] != "pf" {
		return pfSpec{}, fmt.Errorf("not a push fleet spec: %q", v)
	}
	var n [4]int
	for i := range n {
		var err error
		if n[i], err = strconv.Atoi(f[i+1]); err != nil {
			return pfSpec{}, fmt.Errorf("push fleet spec %q: %v", v, err)
		}
	}
	return pfSpec{push: n[0], latency: time.Duration(n[1]) * time.Millisecond, fail: n[2] == 1, kill: n[3] == 1}, nil
}

// errPFFail is the error of a handler told to fail.
var errPFFail = errors.New("the push fleet told this handler to fail")

// pfOut prints a child's history lines, one write each.
type pfOut struct {
	mu sync.Mutex
}

func (o *pfOut) line(kind string, fields ...any) {
	var b strings.Builder
	b.WriteString(pfLinePrefix)
	b.WriteString(strconv.FormatInt(time.Now().UnixNano(), 10))
	b.WriteByte(' ')
	b.WriteString(kind)
	for _, f := range fields {
		b.WriteByte(' ')
		fmt.Fprint(&b, f)
	}
	b.WriteByte('\n')
	o.mu.Lock()
	defer o.mu.Unlock()
	os.Stdout.WriteString(b.String())
}

// pfDelivery is what a child knows of one request: its push and delivery
// (from the parent's headers) and whether Dedup ran the handler.
type pfDelivery struct {
	push, delivery int
	ran            atomic.Bool
}

type pfDeliveryKey struct{}

func deliveryOf(ctx context.Context) *pfDelivery {
	d, _ := ctx.Value(pfDeliveryKey{}).(*pfDelivery)
	return d
}

// pfChild is one process of the fleet.
type pfChild struct {
	out   *pfOut
	bench bool
	pid   int

	mu     sync.Mutex
	spares map[int]chan struct{} // kill pushes the parent spared, or may
}

// spare returns the channel that closes when the parent spares push.
func (c *pfChild) spare(push int) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.spares[push]
	if ch == nil {
		ch = make(chan struct{})
		c.spares[push] = ch
	}
	return ch
}

// handle is the handler of every endpoint: it plays the push's spec.
func (c *pfChild) handle(ctx context.Context, plain []byte) error {
	d := deliveryOf(ctx)
	var body struct {
		Content  string `xml:"Content"`
		EventKey string `xml:"EventKey"`
	}
	if err := xml.Unmarshal(plain, &body); err != nil {
		return err
	}
	spec, err := parsePFSpec(body.Content + body.EventKey)
	if err != nil {
		return err
	}
	if d == nil || d.push != spec.push {
		return fmt.Errorf("push fleet: the request's push header does not match its push %d", spec.push)
	}
	d.ran.Store(true)
	c.out.line(pfStart, spec.push, d.delivery, c.pid)
	if c.bench {
		return nil
	}
	switch {
	case spec.kill && d.delivery == 0:
		<-c.spare(spec.push) // or SIGKILL
	case spec.latency > 0:
		// The handler's work; it goes on when its claim is lost (its ctx
		// ends), so that a push is never lost to a handler that gave up:
		// Dedup reports the loss, which the checker reads.
		t := time.NewTimer(spec.latency)
		<-t.C
	}
	if spec.fail && d.delivery == 0 {
		c.out.line(pfFinish, spec.push, d.delivery, "err")
		return errPFFail
	}
	c.out.line(pfFinish, spec.push, d.delivery, "ok")
	return nil
}

// observe wraps an endpoint: it names the delivery in the request's
// context and prints "answered" once the endpoint (HandleMessage, then
// the answer) is done.
func (c *pfChild) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		push, err1 := strconv.Atoi(r.Header.Get(pfPushHeader))
		delivery, err2 := strconv.Atoi(r.Header.Get(pfDeliveryHeader))
		if err1 != nil || err2 != nil {
			http.Error(w, "push fleet headers missing", http.StatusBadRequest)
			return
		}
		d := &pfDelivery{push: push, delivery: delivery}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), pfDeliveryKey{}, d)))
		if c.bench {
			return
		}
		outcome := "status_" + strconv.Itoa(sw.status)
		switch {
		case sw.status == http.StatusOK && d.ran.Load():
			outcome = core.PushHandled.String()
		case sw.status == http.StatusOK:
			outcome = core.PushDuplicate.String()
		case sw.status == http.StatusInternalServerError && d.ran.Load():
			outcome = core.PushFailed.String()
		case sw.status == http.StatusServiceUnavailable:
			outcome = core.PushInProgress.String() // or refused: never with fail open
		}
		c.out.line(pfAnswered, push, delivery, outcome)
	})
}

// statusWriter records the status an endpoint answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// pfLogHandler turns Dedup's events into history lines: "event <push>
// <delivery> claim_lost <stage>" or "event <push> <delivery> unguarded
// <op>", named by the delivery in the context; an event of no delivery
// (the warning that claims are emulated) is printed as push -1.
type pfLogHandler struct{ out *pfOut }

func (h pfLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h pfLogHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h pfLogHandler) WithGroup(string) slog.Handler                { return h }

func (h pfLogHandler) Handle(ctx context.Context, r slog.Record) error {
	var name, detail, errText string
	switch r.Message {
	case core.EventPushClaimLost:
		name = "claim_lost"
	case core.EventPushUnguarded:
		name = "unguarded"
	default:
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "stage", "op":
			detail = a.Value.String()
		case "error":
			errText = a.Value.String()
		}
		return true
	})
	push, delivery := -1, -1
	if d := deliveryOf(ctx); d != nil {
		push, delivery = d.push, d.delivery
	}
	if errText != "" && push >= 0 {
		// The store's error, for the parent's summary (one line per kind).
		h.out.line(pfEvent, -1, -1, name, detail, "error:", pfQuoted.ReplaceAllString(strings.ReplaceAll(errText, "\n", " "), `"…"`))
	}
	h.out.line(pfEvent, push, delivery, name, detail)
	return nil
}

// pfQuoted matches the quoted parts of a store error (the claim's key), so
// that the errors of many pushes read as one kind.
var pfQuoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// runPushFleetChild plays one process of the fleet: it serves the three
// endpoints on 127.0.0.1, prints its port, and serves until the parent
// closes its stdin; "spare <push>" lines on stdin release a kill push's
// handler.
func runPushFleetChild(t testing.TB, h Harness, raw string) {
	var cfg pfChildConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("push fleet child: bad %s: %v", pushFleetEnv, err)
	}
	out := &pfOut{}
	store := h.NewStore(t)
	dedup, err := core.NewDedup(core.DedupConfig{Store: store, KeyPrefix: cfg.KeyPrefix, Logger: slog.New(pfLogHandler{out})})
	if err != nil {
		t.Fatal(err)
	}
	oa, err := core.New(core.Config{
		AppID: pfOAAppID, Token: core.NewSecret(pfToken), EncodingAESKey: core.NewSecret(pfAESKey), EncryptMode: core.Safe,
		Store: store, KeyPrefix: cfg.KeyPrefix, Dedup: dedup,
	})
	if err != nil {
		t.Fatal(err)
	}
	cb, err := wecom.NewCallback(wecom.CallbackConfig{
		Token: core.NewSecret(pfToken), EncodingAESKey: core.NewSecret(pfAESKey), CorpID: pfCorpID, Dedup: dedup,
	})
	if err != nil {
		t.Fatal(err)
	}
	comp, err := openplatform.New(openplatform.Config{
		AppID: pfComponentAppID, AppSecret: core.NewSecret(pfComponentSec),
		Token: core.NewSecret(pfToken), EncodingAESKey: core.NewSecret(pfAESKey),
		Store: store, KeyPrefix: cfg.KeyPrefix, Dedup: dedup,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &pfChild{out: out, bench: cfg.Bench, pid: os.Getpid(), spares: map[int]chan struct{}{}}
	official := func(ctx context.Context, m *core.Message) ([]byte, error) { return nil, c.handle(ctx, m.XML) }
	mux := http.NewServeMux()
	mux.Handle(pfPaths[0], c.observe(oa.MessageHandler(official)))
	mux.Handle(pfPaths[1], c.observe(cb.Handler(func(ctx context.Context, m *wecom.Message) ([]byte, error) {
		return nil, c.handle(ctx, m.XML)
	})))
	mux.Handle(pfPaths[2], c.observe(comp.MessageHandler(official)))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute}
	go srv.Serve(ln)
	defer srv.Close()
	out.line("port", ln.Addr().(*net.TCPAddr).Port)

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() { // ends when the parent closes stdin, or dies
		if v, ok := strings.CutPrefix(sc.Text(), "spare "); ok {
			if p, err := strconv.Atoi(v); err == nil {
				close(c.spare(p))
			}
		}
	}
}
