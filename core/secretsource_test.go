package core_test

// Secrets that rotate without a restart (issue 25 §5): an AppSecret reset
// in the admin console is read again from Config.AppSecretSource after
// WeChat refuses the old one, at most once per ErrorBackoff.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// newAppSecret is the AppSecret after the reset: never to be seen in an
// error or a log either.
const newAppSecret = "fedcba9876543210fedcba9876543210"

// countingSource is a SecretSource whose value the test sets, counting its
// calls.
type countingSource struct {
	mu    sync.Mutex
	value string
	err   error
	calls atomic.Int32
}

func (s *countingSource) set(v string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.value, s.err = v, err
}

func (s *countingSource) read(context.Context) (core.Secret, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return core.Secret{}, s.err
	}
	return core.NewSecret(s.value), nil
}

// noSecretsIn fails t if text holds either AppSecret.
func noSecretsIn(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{appSecret, newAppSecret} {
		if strings.Contains(text, s) || strings.Contains(text, s[10:18]) {
			t.Errorf("%s holds an AppSecret (%d bytes of text; not printed)", what, len(text))
		}
	}
}

// A fleet of three Confs on one store, each reading the AppSecret from its
// own source: after the secret is reset, each Conf's first fetch is refused
// (40001 from /cgi-bin/token, 40125 from /cgi-bin/stable_token) with a
// typed error; inside ErrorBackoff no token call is made and no source is
// read again; once the new secret is in the sources and ErrorBackoff has
// passed, the first fetch reads its source once and succeeds, and the
// other Confs are served the token it stored. Before, the old secret was
// used until a restart.
func TestAppSecretSourceRotationRecoversAfterBackoff(t *testing.T) {
	for _, tc := range []struct {
		api  core.TokenAPI
		code int
		path string
	}{
		{core.StableToken, 40125, wxtest.PathStableToken},
		{core.ClassicToken, 40001, wxtest.PathToken},
	} {
		t.Run(tc.api.String(), func(t *testing.T) {
			s := newServer(t)
			store := core.NewMemoryStore()
			ctx := t.Context()
			srcs := make([]*countingSource, 3)
			fleet := make([]*core.Conf, 3)
			for i := range fleet {
				srcs[i] = &countingSource{value: appSecret}
				fleet[i] = newConf(t, s, func(c *core.Config) {
					c.AppSecret, c.AppSecretSource, c.Store, c.TokenAPI = core.Secret{}, srcs[i].read, store, tc.api
				})
			}
			first, err := fleet[0].AccessToken(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range fleet[1:] {
				if tok, err := c.AccessToken(ctx); err != nil || tok.Value != first.Value {
					t.Fatalf("Conf %d: AccessToken = %v; want the stored token", i+2, err)
				}
			}

			s.SetAppSecret(appID, newAppSecret) // the admin resets it; the sources still hold the old one
			if !s.TokenValid(first.Value) {
				t.Fatal("the reset killed the token already issued")
			}
			s.Advance(2 * 7200 * time.Second) // the token expires: every Conf needs a fetch
			calls := s.Calls(tc.path)
			for i, c := range fleet {
				_, err := c.AccessToken(ctx)
				var ae *core.APIError
				if !errors.Is(err, core.ErrSecretRefused) || !errors.As(err, &ae) || ae.Code != tc.code {
					t.Fatalf("Conf %d: AccessToken after the reset = %v; want ErrSecretRefused wrapping errcode %d", i+1, err, tc.code)
				}
				noSecretsIn(t, "the refusal", err.Error())
			}
			for i, src := range srcs {
				src.set(newAppSecret, nil) // the new secret is in place
				for j := range 5 {
					_, err := fleet[i].AccessToken(ctx)
					var le *core.LimitError
					if !errors.As(err, &le) || le.Limit != "ErrorBackoff" || !errors.Is(err, core.ErrSecretRefused) {
						t.Fatalf("Conf %d: call %d inside ErrorBackoff = %v; want a *LimitError (ErrorBackoff) wrapping the refusal", i+1, j+1, err)
					}
				}
			}
			if n := s.Calls(tc.path) - calls; n != len(fleet) {
				t.Errorf("%d token calls with the refused secret from %d Confs, want %d (one each, then back-off)", n, len(fleet), len(fleet))
			}
			for i, src := range srcs {
				if n := src.calls.Load(); n != 1 {
					t.Errorf("Conf %d: source read %d times before the back-off ended, want 1 (the first fetch only)", i+1, n)
				}
			}

			s.Advance(core.DefaultErrorBackoff)
			tok, err := fleet[0].AccessToken(ctx)
			if err != nil || !s.TokenValid(tok.Value) {
				t.Fatalf("Conf 1 after ErrorBackoff: AccessToken = %v; want a valid token fetched with the new secret", err)
			}
			if n := srcs[0].calls.Load(); n != 2 {
				t.Errorf("Conf 1: source read %d times, want 2 (once more after the refusal)", n)
			}
			for i, c := range fleet[1:] {
				if got, err := c.AccessToken(ctx); err != nil || got.Value != tok.Value {
					t.Errorf("Conf %d: AccessToken = %v; want the token Conf 1 stored (no restart, no fetch)", i+2, err)
				}
			}
		})
	}
}

// A source that keeps returning the refused secret is read once per
// ErrorBackoff, however many callers ask in between.
func TestAppSecretSourceReadOncePerBackoff(t *testing.T) {
	s := newServer(t)
	s.SetAppSecret(appID, newAppSecret)
	src := &countingSource{value: appSecret}
	c := newConf(t, s, func(c *core.Config) { c.AppSecret, c.AppSecretSource = core.Secret{}, src.read })
	ctx := t.Context()
	const intervals = 4
	for k := range intervals {
		for range 20 {
			if _, err := c.AccessToken(ctx); !errors.Is(err, core.ErrSecretRefused) {
				t.Fatalf("interval %d: AccessToken = %v; want ErrSecretRefused", k, err)
			}
		}
		if got, want := src.calls.Load(), int32(k+1); got != want {
			t.Fatalf("after %d back-off intervals the source was read %d times, want %d", k+1, got, want)
		}
		s.Advance(core.DefaultErrorBackoff)
	}
	if n := s.Calls(wxtest.PathStableToken); n != intervals {
		t.Errorf("%d token calls in %d back-off intervals, want %d", n, intervals, intervals)
	}
}

// A failing source: the fetch returns a *SecretSourceError (wrapping what
// the source said, with the secrets it gave before removed from the text)
// without a request, backs off like a refusal, and the source is read
// again after ErrorBackoff.
func TestAppSecretSourceFailure(t *testing.T) {
	s := newServer(t)
	src := &countingSource{value: appSecret}
	c := newConf(t, s, func(c *core.Config) { c.AppSecret, c.AppSecretSource = core.Secret{}, src.read })
	ctx := t.Context()
	if _, err := c.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	s.SetAppSecret(appID, newAppSecret)
	s.Advance(2 * 7200 * time.Second)
	if _, err := c.AccessToken(ctx); !errors.Is(err, core.ErrSecretRefused) {
		t.Fatalf("AccessToken after the reset = %v; want ErrSecretRefused", err)
	}
	denied := errors.New("vault: permission denied")
	src.set("", fmt.Errorf("%w reading the value %s", denied, appSecret)) // a careless source quotes the secret
	s.Advance(core.DefaultErrorBackoff)
	calls := tokenCalls(s)
	_, err := c.AccessToken(ctx)
	var se *core.SecretSourceError
	if !errors.As(err, &se) || !errors.Is(err, denied) || se.Field != "AppSecretSource" {
		t.Fatalf("AccessToken with a failing source = %v; want a *SecretSourceError for AppSecretSource wrapping the source's error", err)
	}
	noSecretsIn(t, "the source error", err.Error())
	for range 5 {
		var le *core.LimitError
		if _, err := c.AccessToken(ctx); !errors.As(err, &le) || !errors.As(err, &se) {
			t.Fatalf("AccessToken inside ErrorBackoff = %v; want a *LimitError wrapping the *SecretSourceError", err)
		}
	}
	if n := src.calls.Load(); n != 2 {
		t.Errorf("source read %d times, want 2 (the first fetch, the first after the refusal; none inside the back-off)", n)
	}
	src.set("", nil) // a zero Secret and no error: ErrEmptySecret
	s.Advance(core.DefaultErrorBackoff)
	if _, err := c.AccessToken(ctx); !errors.Is(err, core.ErrEmptySecret) || !errors.As(err, &se) {
		t.Fatalf("AccessToken with an empty source = %v; want a *SecretSourceError wrapping ErrEmptySecret", err)
	}
	if n := tokenCalls(s) - calls; n != 0 {
		t.Errorf("%d token calls while the source failed, want 0", n)
	}
	src.set(newAppSecret, nil)
	s.Advance(core.DefaultErrorBackoff)
	if tok, err := c.AccessToken(ctx); err != nil || !s.TokenValid(tok.Value) {
		t.Fatalf("AccessToken once the source works = %v; want a valid token", err)
	}
}

// A reply that echoes the secret the source gave has it removed, although
// it is not the Config's AppSecret: the API redacts what the
// RotatingSecret holds.
func TestAppSecretSourceRedactedFromReplies(t *testing.T) {
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: newAppSecret})
	t.Cleanup(s.Close)
	var logs strings.Builder
	src := &countingSource{value: newAppSecret}
	c := newConf(t, s, func(c *core.Config) {
		c.AppSecret, c.AppSecretSource = core.Secret{}, src.read
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	s.InjectFault(wxtest.PathStableToken, wxtest.Fault{Status: 200, Body: `{"errcode":40125,"errmsg":"invalid appsecret ` + newAppSecret + ` rid: 1"}`}, 1)
	_, err := c.AccessToken(t.Context())
	if !errors.Is(err, core.ErrSecretRefused) {
		t.Fatalf("AccessToken = %v; want ErrSecretRefused", err)
	}
	noSecretsIn(t, "the error", err.Error())
	noSecretsIn(t, "the log", logs.String())
	noSecretsIn(t, "%#v of the Conf", fmt.Sprintf("%#v %+v %v", c, c, c))
}

// Setting both AppSecret and AppSecretSource is an error of New.
func TestAppSecretAndSourceBothSet(t *testing.T) {
	_, err := core.New(core.Config{AppID: appID, AppSecret: core.NewSecret(appSecret), AppSecretSource: core.StaticSecret(core.NewSecret(appSecret))})
	if err == nil {
		t.Fatal("New with both AppSecret and AppSecretSource succeeded")
	}
	noSecretsIn(t, "the error", err.Error())
}

// A fixed AppSecret that WeChat refuses is marked ErrSecretRefused and
// backs off, whatever the code (40001 is not a configuration error in the
// Official Account's table): before, a classic 40001 was fetched again at
// every call.
func TestFixedAppSecretRefusedBacksOff(t *testing.T) {
	s := newServer(t)
	s.SetAppSecret(appID, newAppSecret)
	c := newConf(t, s, classic)
	for range 5 {
		if _, err := c.AccessToken(t.Context()); !errors.Is(err, core.ErrSecretRefused) {
			t.Fatalf("AccessToken = %v; want ErrSecretRefused", err)
		}
	}
	if n := s.Calls(wxtest.PathToken); n != 1 {
		t.Errorf("%d classic token calls with a refused secret, want 1 (then ErrorBackoff)", n)
	}
}

// kubeSecret lays out a mounted secret the way the kubelet does: the file
// is a link through "..data", itself a link to a timestamped directory
// that an update replaces by renaming a new "..data" link over the old.
type kubeSecret struct {
	t   *testing.T
	dir string
	gen int
}

func newKubeSecret(t *testing.T, value string) *kubeSecret {
	k := &kubeSecret{t: t, dir: t.TempDir()}
	k.update(value)
	if err := os.Symlink(filepath.Join("..data", "appsecret"), filepath.Join(k.dir, "appsecret")); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *kubeSecret) path() string { return filepath.Join(k.dir, "appsecret") }

// update writes value into a new directory and swaps "..data" to it
// atomically.
func (k *kubeSecret) update(value string) {
	k.gen++
	gen := fmt.Sprintf("..2026_01_02_03_04_%02d", k.gen)
	if err := os.Mkdir(filepath.Join(k.dir, gen), 0o755); err != nil {
		k.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(k.dir, gen, "appsecret"), []byte(value), 0o600); err != nil {
		k.t.Fatal(err)
	}
	k.swap(gen)
}

// swap points "..data" at target (which need not exist: a partial state).
func (k *kubeSecret) swap(target string) {
	tmp := filepath.Join(k.dir, "..data_tmp")
	if err := os.Symlink(target, tmp); err != nil {
		k.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.dir, "..data")); err != nil {
		k.t.Fatal(err)
	}
}

// FileSecret reads the file each time, removes one trailing newline and
// nothing else, follows the kubelet's link swap, and says what is wrong
// with a missing, empty or oversized file without quoting it.
func TestFileSecret(t *testing.T) {
	ctx := t.Context()
	k := newKubeSecret(t, appSecret+"\n")
	src := core.FileSecret(k.path())
	if s, err := src(ctx); err != nil || s.Reveal() != appSecret {
		t.Fatalf("FileSecret = %v, %v; want the secret without its newline", s, err)
	}
	k.update(newAppSecret + "\r\n")
	if s, err := src(ctx); err != nil || s.Reveal() != newAppSecret {
		t.Fatalf("FileSecret after the swap = %v, %v; want the new secret", s, err)
	}
	k.update(" " + newAppSecret + "\n\n")
	if s, err := src(ctx); err != nil || s.Reveal() != " "+newAppSecret+"\n" {
		t.Errorf("FileSecret removed more than one trailing newline")
	}
	k.swap("..2026_gone") // a dangling link: a partial state
	if _, err := src(ctx); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FileSecret through a dangling link = %v; want fs.ErrNotExist", err)
	}
	k.update("\n")
	if _, err := src(ctx); !errors.Is(err, core.ErrEmptySecret) {
		t.Errorf("FileSecret of an empty file = %v; want ErrEmptySecret", err)
	}
	k.update(strings.Repeat(appSecret, 3000))
	_, err := src(ctx)
	if !errors.Is(err, core.ErrSecretTooLarge) {
		t.Errorf("FileSecret of a 96 KB file = %v; want ErrSecretTooLarge", err)
	}
	noSecretsIn(t, "the error", fmt.Sprint(err))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := src(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("FileSecret with a cancelled context = %v; want context.Canceled", err)
	}
}

// A Conf reading a mounted file recovers from a reset once the kubelet
// swaps the new secret in, through a partial state (the link dangling) on
// the way: each state costs at most one ErrorBackoff, and no restart.
func TestFileSecretRotation(t *testing.T) {
	s := newServer(t)
	k := newKubeSecret(t, appSecret+"\n")
	c := newConf(t, s, func(c *core.Config) { c.AppSecret, c.AppSecretSource = core.Secret{}, core.FileSecret(k.path()) })
	ctx := t.Context()
	if _, err := c.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	s.SetAppSecret(appID, newAppSecret)
	s.Advance(2 * 7200 * time.Second)
	if _, err := c.AccessToken(ctx); !errors.Is(err, core.ErrSecretRefused) {
		t.Fatalf("AccessToken after the reset = %v; want ErrSecretRefused", err)
	}
	k.swap("..2026_half_written") // the kubelet is mid-update
	s.Advance(core.DefaultErrorBackoff)
	_, err := c.AccessToken(ctx)
	var se *core.SecretSourceError
	if !errors.As(err, &se) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("AccessToken in the partial state = %v; want a *SecretSourceError wrapping fs.ErrNotExist", err)
	}
	k.update(newAppSecret + "\n")
	if _, err := c.AccessToken(ctx); !errors.As(err, &se) {
		t.Fatalf("AccessToken inside ErrorBackoff = %v; want the source's error, held back", err)
	}
	s.Advance(core.DefaultErrorBackoff)
	if tok, err := c.AccessToken(ctx); err != nil || !s.TokenValid(tok.Value) {
		t.Fatalf("AccessToken after the swap = %v; want a valid token", err)
	}
}

// No rendering of a Config with a source, nor of a RotatingSecret, shows
// the secret.
func TestRotatingSecretRendering(t *testing.T) {
	r, err := core.NewRotatingSecret(core.RotatingSecretConfig{Field: "AppSecret", SourceField: "AppSecretSource",
		Source: core.StaticSecret(core.NewSecret(appSecret)), Refused: core.AppSecretRefused})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "r", r)
	cfg := core.Config{AppID: appID, AppSecretSource: core.StaticSecret(core.NewSecret(appSecret))}
	text := fmt.Sprintf("%v %+v %#v %s %v %+v %#v", r, r, r, r, cfg, cfg, cfg) + logs.String()
	noSecretsIn(t, "a rendering", text)
	if got := r.String(); got != "RotatingSecret(AppSecretSource)" {
		t.Errorf("String = %q", got)
	}
	if _, err := core.NewRotatingSecret(core.RotatingSecretConfig{Secret: core.NewSecret(appSecret), Source: core.StaticSecret(core.NewSecret(appSecret))}); err == nil {
		t.Error("NewRotatingSecret with both a Secret and a Source succeeded")
	}
	if _, err := core.StaticSecret(core.Secret{})(t.Context()); !errors.Is(err, core.ErrEmptySecret) {
		t.Errorf("StaticSecret(zero) = %v; want ErrEmptySecret", err)
	}
}

// Callers of Get at once on a secret not read yet read the source once;
// Check marks it stale only for the value held (a refusal of a value
// already replaced changes nothing), and the next Get reads it again.
func TestRotatingSecretReadsOnce(t *testing.T) {
	src := &countingSource{value: appSecret}
	r, err := core.NewRotatingSecret(core.RotatingSecretConfig{Source: src.read, Refused: core.AppSecretRefused})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if s, err := r.Get(t.Context()); err != nil || s.Reveal() != appSecret {
				t.Errorf("Get = %v, %v", s, err)
			}
		})
	}
	wg.Wait()
	if n := src.calls.Load(); n != 1 || r.Reads() != 1 {
		t.Fatalf("16 Gets at once read the source %d times (Reads %d), want 1", n, r.Reads())
	}
	refusal := &core.APIError{Code: 40125, Path: "/cgi-bin/stable_token"}
	if err := r.Check(core.NewSecret("an-older-value"), refusal); !errors.Is(err, core.ErrSecretRefused) {
		t.Fatalf("Check = %v; want ErrSecretRefused", err)
	}
	if _, _ = r.Get(t.Context()); src.calls.Load() != 1 {
		t.Errorf("a refusal of a value no longer held made Get read the source")
	}
	if err := r.Check(core.NewSecret(appSecret), &core.APIError{Code: 40164}); errors.Is(err, core.ErrSecretRefused) {
		t.Errorf("Check(40164) = %v; not a refusal of the secret", err)
	}
	held, _ := r.Get(t.Context())
	_ = r.Check(held, refusal)
	src.set(newAppSecret, nil)
	if s, err := r.Get(t.Context()); err != nil || s.Reveal() != newAppSecret || src.calls.Load() != 2 {
		t.Errorf("Get after a refusal = %v, %v after %d reads; want the new secret, read once more", s, err, src.calls.Load())
	}
}
