// Package servetest holds the helpers the wechatconf-tokenserver command's
// tests share: those of package serve (file store) and those of the
// test-only module cmd/containertest (real Redis). It imports only the
// standard library, core and the command.
package servetest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/serve"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	"github.com/wechatconf/wechatconf/tokenserver"
)

// The credentials the tests give the command and the simulator.
const (
	AppID        = "wx0123456789abcdef"
	AppSecret    = "app-secret-0123456789abcdef"
	BearerSecret = "bearer-secret-0123456789"
)

// StartServer runs the command with env on 127.0.0.1:0 until the test
// ends, and returns its base URL once it listens. The cleanup stops it
// through its context, as SIGTERM would, and checks that it returned nil.
func StartServer(t *testing.T, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	logs := &SyncBuffer{}
	go func() {
		done <- serve.Run(ctx, []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, pw, logs)
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
		for _, s := range []string{AppSecret, BearerSecret} {
			if strings.Contains(logs.String(), s) {
				t.Errorf("the log holds a secret:\n%s", logs)
			}
		}
	})
	return base
}

// TwoServersOneStore starts two servers over the store storeURL names, in
// front of one simulated WeChat API, with 8 Go workers on each, and tests
// that the 16 workers' 400 concurrent first calls get one token with one
// fetch between the two servers, and that the token revoked under all of
// them costs one more fetch, whichever server each worker asks.
func TwoServersOneStore(t *testing.T, storeURL string) {
	wechat := wxtest.New(wxtest.Options{AppID: AppID, AppSecret: AppSecret, Now: time.Now})
	t.Cleanup(wechat.Close)
	fetches := func() int { return wechat.Calls(wxtest.PathStableToken) + wechat.Calls(wxtest.PathToken) }
	env := map[string]string{
		"WECHAT_APPID": AppID, "WECHAT_APPSECRET": AppSecret, "WECHAT_BASE_URL": wechat.URL,
		"TOKENSERVER_SECRET": BearerSecret, "WECHATCONF_STORE": storeURL,
	}
	servers := []string{StartServer(t, env), StartServer(t, env)}
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
		store, err := tokenserver.NewWorkerStore(servers[i%2], core.NewSecret(BearerSecret), nil)
		if err != nil {
			t.Fatal(err)
		}
		conf, err := core.New(core.Config{AppID: AppID, Store: store, BaseURL: wechat.URL})
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

// SyncBuffer is a bytes.Buffer safe for concurrent use, for logs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
