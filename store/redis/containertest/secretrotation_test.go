package containertest_test

// Secrets that rotate without a restart, over a real Redis (issue 25 §5):
// TestSecretRotation.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// The shape of the rotation scenario.
const (
	rotProcs      = 8
	rotGoroutines = 4
	rotAppID      = "wxsecretrotation"
	rotOldSecret  = "secret-before-the-reset-0123456789"
	rotNewSecret  = "secret-after-the-reset-9876543210ab"
	// Tokens live 10 s; the refresh falls due 3 s before expiry, the token
	// stops being served 1 s before it.
	rotExpiresIn    = 10 * time.Second
	rotRefreshAhead = 3 * time.Second
	rotExpiryMargin = 1 * time.Second
	rotBackoff      = 2 * time.Second // Config.ErrorBackoff
	rotTimeout      = 5 * time.Second // Config.RefreshTimeout
	// rotOperatorLag is how long after WeChat first refuses the old secret
	// the new one reaches the mounted file: longer than the refresh's lead
	// over the serving deadline, so that callers do fail for a while.
	rotOperatorLag = 3 * time.Second
	// rotSlack is what a loaded machine may add to the recovery after the
	// back-off: one refresh (RefreshTimeout bounds it).
	rotSlack = rotTimeout
	// rotChildEnv holds the child's configuration (JSON); its presence
	// makes TestSecretRotation play one process of the fleet.
	rotChildEnv = "WECHATCONF_SECRETROTATION_CHILD"
	rotLine     = "wechatconf/secretrotation: "
)

type rotChildConfig struct {
	URL, Addr, Prefix, File string
}

// rotSummary is what a child reports when told to stop; times are Unix ns.
type rotSummary struct {
	OK, Refused, Limited, SourceErrs, OtherErrs, BadTokens int
	FirstErr, LastErr                                      int64
	Reads                                                  int32
	Sample                                                 string
	LastValid                                              bool // the last token served works at WeChat at the stop
}

// mountedSecret is a secret file laid out as the kubelet mounts one:
// "appsecret" → "..data/appsecret", "..data" → a directory per version,
// which an update replaces by renaming a new "..data" link over the old.
type mountedSecret struct {
	dir string
	gen int
}

func newMountedSecret(t *testing.T, value string) *mountedSecret {
	m := &mountedSecret{dir: t.TempDir()}
	m.update(t, value)
	if err := os.Symlink(filepath.Join("..data", "appsecret"), m.path()); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *mountedSecret) path() string { return filepath.Join(m.dir, "appsecret") }

func (m *mountedSecret) update(t *testing.T, value string) {
	m.gen++
	gen := fmt.Sprintf("..v%d", m.gen)
	if err := os.Mkdir(filepath.Join(m.dir, gen), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, gen, "appsecret"), []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(gen, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// TestSecretRotation: 8 OS processes (this test binary started again, as
// TestStoreOutage does), each a core.Conf over redisstore on one real Redis
// reading its AppSecret from a mounted file (core.FileSecret), with
// goroutines calling AccessToken continuously and using each token on the
// simulated API (core/wxtest, in this process; classic /cgi-bin/token,
// which answers a reset secret with 40001). Mid-run the AppSecret is reset
// in wxtest, and rotOperatorLag after WeChat first refuses the old one
// the new one is swapped into the file the kubelet's way. It proves, with
// no process restarted:
//
//   - no call fails before the reset, and none later than ErrorBackoff
//     (plus one refresh) after the new secret is in the file; every error
//     is the refusal or the back-off holding it (no source error: the swap
//     is atomic), and no caller ever gets a token WeChat rejects;
//   - every process serves a token fetched with the new secret;
//   - the token calls WeChat refused are at most one per process per
//     ErrorBackoff, and each process read the file at most once per
//     ErrorBackoff after the refusal.
//
// In a child process (rotChildEnv set) the same test plays one process of
// the fleet: rotChild.
func TestSecretRotation(t *testing.T) {
	if raw := os.Getenv(rotChildEnv); raw != "" {
		rotChild(t, raw)
		return
	}
	r := containers.StartRedis(t)
	server := wxtest.New(wxtest.Options{AppID: rotAppID, AppSecret: rotOldSecret, ExpiresIn: rotExpiresIn,
		Overlap: 5 * time.Second, Now: time.Now, Latency: 20 * time.Millisecond})
	t.Cleanup(server.Close)
	file := newMountedSecret(t, rotOldSecret)
	cfg, err := json.Marshal(rotChildConfig{URL: server.URL, Addr: r.Addr, Prefix: fmt.Sprintf("rot%08x", rand.Uint32()), File: file.path()})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type proc struct {
		out       *lineWriter
		stdinW    interface{ Write([]byte) (int, error) }
		exited    chan struct{}
		err       error
		ready     chan struct{}
		warm      chan struct{}
		recovered chan struct{}
		sum       chan rotSummary
	}
	procs := make([]*proc, rotProcs)
	for i := range procs {
		p := &proc{exited: make(chan struct{}), ready: make(chan struct{}), warm: make(chan struct{}),
			recovered: make(chan struct{}), sum: make(chan rotSummary, 1)}
		var once [3]sync.Once
		p.out = &lineWriter{onLine: func(line string) {
			rest, ok := strings.CutPrefix(line, rotLine)
			if !ok {
				return
			}
			verb, arg, _ := strings.Cut(rest, " ")
			switch verb {
			case "ready":
				once[0].Do(func() { close(p.ready) })
			case "warm":
				once[1].Do(func() { close(p.warm) })
			case "recovered":
				once[2].Do(func() { close(p.recovered) })
			case "summary":
				var s rotSummary
				if err := json.Unmarshal([]byte(arg), &s); err == nil {
					p.sum <- s
				}
			}
		}}
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSecretRotation$")
		cmd.Env = append(os.Environ(), rotChildEnv+"="+string(cfg),
			"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		cmd.Stdout, cmd.Stderr = p.out, p.out
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdinW = stdin
		if err := cmd.Start(); err != nil {
			t.Fatalf("child %d: starting %s: %v", i, os.Args[0], err)
		}
		go func() { p.err = cmd.Wait(); close(p.exited) }()
		procs[i] = p
		defer func() { stdin.Close(); cmd.Process.Kill(); <-p.exited }()
	}
	send := func(line string) {
		for _, p := range procs {
			fmt.Fprintln(p.stdinW, line)
		}
	}
	wait := func(what string, within time.Duration, ch func(*proc) chan struct{}) {
		t.Helper()
		deadline := time.After(within)
		for i, p := range procs {
			select {
			case <-ch(p):
			case <-p.exited:
				t.Fatalf("child %d exited (%v) before %s; its output:\n%s", i, p.err, what, p.out)
			case <-deadline:
				t.Fatalf("child %d: not %s within %v; its output:\n%s", i, what, within, p.out)
			}
		}
	}
	wait("ready", 2*time.Minute, func(p *proc) chan struct{} { return p.ready })
	send("go")
	wait("warm (a first token)", time.Minute, func(p *proc) chan struct{} { return p.warm })

	// The admin resets the AppSecret: the old one is refused at once.
	resetAt := time.Now()
	calls0, minted0 := server.Calls(wxtest.PathToken), server.TokensIssued()
	server.SetAppSecret(rotAppID, rotNewSecret)
	refusedAt := time.Time{}
	for deadline := resetAt.Add(rotExpiresIn + time.Minute); refusedAt.IsZero(); {
		if server.Calls(wxtest.PathToken)-calls0 > server.TokensIssued()-minted0 {
			refusedAt = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no token call was refused within %v of the reset", deadline.Sub(resetAt))
		}
		time.Sleep(20 * time.Millisecond) // polling the server's counters, not synchronising
	}
	time.Sleep(rotOperatorLag) // the scenario: the operator is that much later than WeChat
	fileAt := time.Now()
	file.update(t, rotNewSecret)
	// A call that succeeds after every token minted before the reset has
	// expired was served a token fetched with the new secret.
	recoveredAfter := resetAt.Add(rotExpiresIn)
	if fileAt.After(recoveredAfter) {
		recoveredAfter = fileAt
	}
	send("rotated " + strconv.FormatInt(recoveredAfter.UnixNano(), 10))
	wait("recovered", time.Until(recoveredAfter)+rotBackoff+rotSlack+30*time.Second, func(p *proc) chan struct{} { return p.recovered })
	time.Sleep(rotBackoff) // the scenario: callers keep going after the recovery
	send("stop")
	stopAt := time.Now()

	sums := make([]rotSummary, len(procs))
	for i, p := range procs {
		select {
		case <-p.exited:
		case <-time.After(time.Minute):
			t.Fatalf("child %d still running a minute after stop; its output:\n%s", i, p.out)
		}
		if p.err != nil {
			t.Fatalf("child %d: %v; its output:\n%s", i, p.err, p.out)
		}
		select {
		case sums[i] = <-p.sum:
		default:
			t.Fatalf("child %d exited without its summary; its output:\n%s", i, p.out)
		}
	}

	refusedCalls := (server.Calls(wxtest.PathToken) - calls0) - (server.TokensIssued() - minted0)
	window := fileAt.Sub(refusedAt) + rotBackoff
	perProc := int(window/rotBackoff) + 2 // one per back-off, and the one that started the first
	var errs, ok int
	var last time.Time
	for i, s := range sums {
		ok += s.OK
		n := s.Refused + s.Limited + s.SourceErrs + s.OtherErrs
		errs += n
		t.Logf("process %d: %d calls ok, %d failed (%d refused, %d held by ErrorBackoff, %d source, %d other), %d tokens rejected by WeChat, %d file reads; errors from %v to %v after the file update",
			i, s.OK, n, s.Refused, s.Limited, s.SourceErrs, s.OtherErrs, s.BadTokens, s.Reads,
			rel(s.FirstErr, fileAt), rel(s.LastErr, fileAt))
		if s.FirstErr != 0 && time.Unix(0, s.FirstErr).Before(resetAt) {
			t.Errorf("process %d: a call failed %v before the reset: %s", i, resetAt.Sub(time.Unix(0, s.FirstErr)), s.Sample)
		}
		if bound := fileAt.Add(rotBackoff + rotSlack); s.LastErr != 0 && time.Unix(0, s.LastErr).After(bound) {
			t.Errorf("process %d: a call failed %v after the new secret was in the file, want none after ErrorBackoff (%v) + one refresh (%v)",
				i, time.Unix(0, s.LastErr).Sub(fileAt).Round(time.Millisecond), rotBackoff, rotSlack)
		}
		if s.SourceErrs+s.OtherErrs != 0 {
			t.Errorf("process %d: %d source and %d other errors, want none (the swap is atomic); first: %s", i, s.SourceErrs, s.OtherErrs, s.Sample)
		}
		if s.BadTokens != 0 {
			t.Errorf("process %d: %d tokens served that WeChat rejected, want 0", i, s.BadTokens)
		}
		if s.Reads > int32(1+perProc) {
			t.Errorf("process %d read the secret file %d times, want at most %d (the first fetch, then one per ErrorBackoff in %v)", i, s.Reads, 1+perProc, window.Round(time.Millisecond))
		}
		if !s.LastValid {
			t.Errorf("process %d: its last token does not work at WeChat", i)
		}
		if at := time.Unix(0, s.LastErr); s.LastErr != 0 && at.After(last) {
			last = at
		}
	}
	t.Logf("%d processes × %d callers: %d calls ok, %d failed; WeChat first refused the old secret %v after the reset, the new one reached the file %v after that; last failed call %v after it; %d token calls refused (at most %d allowed), %d minted since the reset, run of %v",
		rotProcs, rotGoroutines, ok, errs, refusedAt.Sub(resetAt).Round(time.Millisecond), fileAt.Sub(refusedAt).Round(time.Millisecond),
		last.Sub(fileAt).Round(time.Millisecond), refusedCalls, rotProcs*perProc, server.TokensIssued()-minted0, stopAt.Sub(resetAt).Round(time.Millisecond))
	if refusedCalls > rotProcs*perProc {
		t.Errorf("%d token calls with the old secret, want at most %d (%d processes, one per %v in %v, and one more each)", refusedCalls, rotProcs*perProc, rotProcs, rotBackoff, window.Round(time.Millisecond))
	}
	if most := int(stopAt.Sub(resetAt)/(rotExpiresIn-rotRefreshAhead)) + 2; server.TokensIssued()-minted0 > most {
		t.Errorf("%d tokens minted since the reset, want at most %d (one per refresh of the fleet)", server.TokensIssued()-minted0, most)
	}
	if errs == 0 {
		t.Errorf("no call failed, although the fleet's token stopped being served before the new secret reached the file: the scenario did not happen")
	}
}

// rel renders a Unix-ns time relative to ref, or "-" for none.
func rel(ns int64, ref time.Time) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).Sub(ref).Round(time.Millisecond).String()
}

// rotChild plays one process of TestSecretRotation's fleet until the
// parent says stop, then prints its summary.
func rotChild(t *testing.T, raw string) {
	var cfg rotChildConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("child: bad %s: %v", rotChildEnv, err)
	}
	rdb := newClient(cfg.Addr)
	defer rdb.Close()
	var reads atomic.Int32
	file := core.FileSecret(cfg.File)
	conf, err := core.New(core.Config{
		AppID: rotAppID, TokenAPI: core.ClassicToken,
		AppSecretSource: func(ctx context.Context) (core.Secret, error) {
			reads.Add(1)
			return file(ctx)
		},
		Store: mustNew(t, rdb), KeyPrefix: cfg.Prefix, BaseURL: cfg.URL,
		RefreshAhead: rotRefreshAhead, ExpiryMargin: rotExpiryMargin, ErrorBackoff: rotBackoff,
		RefreshTimeout: rotTimeout, RetryBackoff: 10 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	use := &http.Client{Timeout: 10 * time.Second}

	var (
		mu        sync.Mutex
		s         rotSummary
		after     int64 // a success after this (Unix ns) is a recovery
		warm, rec bool
		lastTok   string
		stopping  = make(chan struct{})
		release   = make(chan struct{})
	)
	go func() {
		defer close(stopping)
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			verb, arg, _ := strings.Cut(in.Text(), " ")
			switch verb {
			case "go":
				close(release)
			case "rotated":
				n, _ := strconv.ParseInt(arg, 10, 64)
				mu.Lock()
				after = n
				mu.Unlock()
			case "stop":
				return
			}
		}
	}()
	fmt.Println(rotLine + "ready")
	select {
	case <-release:
	case <-stopping:
		t.Fatal("child: stdin closed before the start")
	}
	var wg sync.WaitGroup
	for range rotGoroutines {
		wg.Go(func() {
			for {
				select {
				case <-stopping:
					return
				case <-time.After(time.Duration(20+rand.IntN(31)) * time.Millisecond): // pacing
				}
				cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				tok, err := conf.AccessToken(cctx)
				cancel()
				code := 0
				if err == nil {
					code, _ = useToken(use, cfg.URL, tok.Value)
				}
				now := time.Now().UnixNano()
				mu.Lock()
				var le *core.LimitError
				var se *core.SecretSourceError
				switch {
				case err == nil:
					s.OK++
					lastTok = tok.Value
					if code != 0 {
						s.BadTokens++
					}
					if !warm {
						warm = true
						fmt.Println(rotLine + "warm")
					}
					if !rec && after != 0 && now > after {
						rec = true
						fmt.Println(rotLine + "recovered")
					}
				case errors.As(err, &se):
					s.SourceErrs++
				case errors.As(err, &le) && errors.Is(err, core.ErrSecretRefused):
					s.Limited++
				case errors.Is(err, core.ErrSecretRefused):
					s.Refused++
				default:
					s.OtherErrs++
				}
				if err != nil {
					if s.FirstErr == 0 {
						s.FirstErr = now
					}
					if s.Sample == "" || (!errors.Is(err, core.ErrSecretRefused) && !strings.Contains(s.Sample, "other:")) {
						s.Sample = err.Error()
						if !errors.Is(err, core.ErrSecretRefused) {
							s.Sample = "other: " + s.Sample
						}
					}
					s.LastErr = now
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	s.Reads = reads.Load()
	code, err := useToken(use, cfg.URL, lastTok)
	s.LastValid = err == nil && code == 0
	b, _ := json.Marshal(s)
	for _, secret := range []string{rotOldSecret, rotNewSecret} {
		if strings.Contains(string(b), secret) {
			t.Fatal("child: an error holds the AppSecret")
		}
	}
	fmt.Println(rotLine + "summary " + string(b))
}
