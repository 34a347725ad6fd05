package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	"github.com/wechatconf/wechatconf/tokenserver"
)

const (
	testAppID     = "wx0123456789abcdef"
	testAppSecret = "app-secret-0123456789abcdef"
	testSecret    = "bearer-secret-0123456789"
)

// startServer runs the command with env on 127.0.0.1:0 until the test
// ends, and returns its base URL once it listens. The cleanup stops it
// through its context, as SIGTERM would, and checks that it returned nil.
func startServer(t *testing.T, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, pw, logs)
		pw.Close()
	}()
	var base string
	sc := bufio.NewScanner(pr)
	for base == "" && sc.Scan() {
		if _, url, ok := strings.Cut(sc.Text(), " on http://"); ok {
			base = "http://" + url
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		cancel()
		t.Fatalf("the server printed no address: %v\n%s", <-done, logs)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run after its context ended: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("run did not return within 15s of its context ending")
		}
		for _, s := range []string{testAppSecret, testSecret} {
			if strings.Contains(logs.String(), s) {
				t.Errorf("the log holds a secret:\n%s", logs)
			}
		}
	})
	return base
}

// twoServersOneStore starts two servers over the store storeURL names, in
// front of one simulated WeChat API, with 8 Go workers on each, and tests
// that the 16 workers' 400 concurrent first calls get one token with one
// fetch between the two servers, and that the token revoked under all of
// them costs one more fetch, whichever server each worker asks.
func twoServersOneStore(t *testing.T, storeURL string) {
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now})
	t.Cleanup(wechat.Close)
	fetches := func() int { return wechat.Calls(wxtest.PathStableToken) + wechat.Calls(wxtest.PathToken) }
	env := map[string]string{
		"WECHAT_APPID": testAppID, "WECHAT_APPSECRET": testAppSecret, "WECHAT_BASE_URL": wechat.URL,
		"TOKENSERVER_SECRET": testSecret, "WECHATCONF_STORE": storeURL,
	}
	servers := []string{startServer(t, env), startServer(t, env)}
	for _, base := range servers {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s/healthz: %d", base, resp.StatusCode)
		}
	}

	var workers []*core.Conf
	for i := range 16 {
		store, err := tokenserver.NewWorkerStore(servers[i%2], core.NewSecret(testSecret), nil)
		if err != nil {
			t.Fatal(err)
		}
		conf, err := core.New(core.Config{AppID: testAppID, Store: store, BaseURL: wechat.URL})
		if err != nil {
			t.Fatal(err)
		}
		workers = append(workers, conf)
	}

	// all runs call on every worker from 25 goroutines each, released
	// together, and returns the distinct values they got.
	all := func(call func(*core.Conf) (core.Token, error)) map[string]bool {
		start := make(chan struct{})
		var mu sync.Mutex
		values := map[string]bool{}
		var wg sync.WaitGroup
		for _, w := range workers {
			for range 25 {
				wg.Go(func() {
					<-start
					tok, err := call(w)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						t.Error(err)
						return
					}
					values[tok.Value] = true
				})
			}
		}
		close(start)
		wg.Wait()
		return values
	}

	first := all(func(w *core.Conf) (core.Token, error) { return w.AccessToken(t.Context()) })
	if len(first) != 1 {
		t.Fatalf("the workers got %d different tokens, want 1", len(first))
	}
	if n := fetches(); n != 1 {
		t.Fatalf("%d token fetches for 400 first calls over two servers, want 1", n)
	}

	var old string
	for v := range first {
		old = v
	}
	wechat.Revoke(old)
	second := all(func(w *core.Conf) (core.Token, error) { return w.RefreshAccessToken(t.Context(), old) })
	if len(second) != 1 || second[old] {
		t.Fatalf("after the revocation the workers got %d tokens (the old one among them: %v), want 1 new one", len(second), second[old])
	}
	if n := fetches(); n != 2 {
		t.Errorf("%d token fetches after one revocation seen by every worker, want 2", n)
	}
}

// TestTwoServersOneFileStore is the high-availability set-up on one
// machine: two servers over one file:// store.
func TestTwoServersOneFileStore(t *testing.T) {
	twoServersOneStore(t, "file://"+filepath.Join(t.TempDir(), "tokens"))
}

// TestRunRefuses tests that the command refuses to start without the
// credentials or the bearer secret, with a short secret, a bad store URL, a
// password in -store, or bad flags, and prints no secret doing so.
func TestRunRefuses(t *testing.T) {
	const storePassword = "store-pa55word-xyz"
	good := map[string]string{"WECHAT_APPID": testAppID, "WECHAT_APPSECRET": testAppSecret, "TOKENSERVER_SECRET": testSecret}
	with := func(kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range good {
			env[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no secret", with("TOKENSERVER_SECRET", ""), nil, "TOKENSERVER_SECRET is not set"},
		{"short secret", with("TOKENSERVER_SECRET", "short"), nil, "at least 16"},
		{"no AppID", with("WECHAT_APPID", ""), nil, "WECHAT_APPID"},
		{"no AppSecret", with("WECHAT_APPSECRET", ""), nil, "WECHAT_APPSECRET"},
		{"bad store env", with("WECHATCONF_STORE", "mysql://host/db"), nil, "unknown scheme"},
		{"bad store flag", good, []string{"-store", "file:relative"}, "absolute"},
		{"password in -store", good, []string{"-store", "redis://u:" + storePassword + "@127.0.0.1:1/0"}, "WECHATCONF_STORE"},
		{"unreachable store", with("WECHATCONF_STORE", "redis://u:"+storePassword+"@127.0.0.1:1/0"), nil, "xxxxx"},
		{"bad timeout", good, []string{"-timeout", "0s"}, "-timeout"},
		{"stray argument", good, []string{"serve"}, "unexpected"},
	} {
		var out, logs bytes.Buffer
		args := append([]string{"-addr", "127.0.0.1:0"}, c.args...)
		err := run(t.Context(), args, func(k string) string { return c.env[k] }, &out, &logs)
		switch {
		case err == nil:
			t.Errorf("%s: run returned nil, want an error", c.name)
			continue
		case !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: %v, want it to mention %q", c.name, err, c.want)
		}
		for _, s := range []string{testAppSecret, testSecret, storePassword} {
			if strings.Contains(out.String()+logs.String()+err.Error(), s) {
				t.Errorf("%s: a secret was printed: %v", c.name, err)
			}
		}
		if strings.Contains(out.String(), "serving") {
			t.Errorf("%s: the server started:\n%s", c.name, out.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use, for logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
