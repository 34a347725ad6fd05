package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/tokenserver"
)

const (
	testAppSecret = "app-secret-0123456789abcdef"
	testSecret    = "bearer-secret-0123456789"
)

// tokenReply is the body of a successful credential request.
type tokenReply struct {
	Value         string `json:"value"`
	ExpiresAt     string `json:"expires_at"`
	ExpiresAtUnix int64  `json:"expires_at_unix"`
}

// TestRun starts the command as `go run ./examples/tokenserver` would with
// no environment (the simulator and a generated secret) on 127.0.0.1:0,
// queries it as a worker and with curl's requests, and stops it through
// ctx.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, func(string) string { return "" }, pw, io.Discard)
		pw.Close()
	}()

	var secret, base string
	sc := bufio.NewScanner(pr)
	for base == "" && sc.Scan() {
		line := sc.Text()
		if s, ok := strings.CutPrefix(line, "export TOKENSERVER_SECRET="); ok {
			secret = s
		}
		if _, url, ok := strings.Cut(line, " on http://"); ok && strings.HasPrefix(line, "tokenserver: serving") {
			base = "http://" + url
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" || len(secret) < tokenserver.MinSecretLen {
		t.Fatalf("run printed no address or no secret (address %q, secret of %d characters); err %v", base, len(secret), sc.Err())
	}

	get := func(path, auth string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, _ := get("/healthz", ""); status != 200 {
		t.Errorf("GET /healthz: %d", status)
	}
	if status, body := get("/access_token", ""); status != 401 || strings.Contains(body, "value") {
		t.Errorf("GET /access_token without the secret: %d %s", status, body)
	}
	status, body := get("/access_token", "Bearer "+secret)
	var tr tokenReply
	if status != 200 || json.Unmarshal([]byte(body), &tr) != nil || len(tr.Value) != 136 {
		t.Fatalf("GET /access_token: %d %s", status, body)
	}

	store, err := tokenserver.NewWorkerStore(base, core.NewSecret(secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	worker, err := core.New(core.Config{AppID: demoAppID, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := worker.AccessToken(t.Context()); err != nil || tok.Value != tr.Value {
		t.Errorf("worker AccessToken: %.8q, %v; want the server's token", tok.Value, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of its ctx ending")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the server still answers after run returned")
	}
}

// TestRunRefuses tests that run refuses to start without a bearer secret
// when real credentials are set, with a short secret, with half the
// credentials, and with bad flags.
func TestRunRefuses(t *testing.T) {
	real := map[string]string{"WECHAT_APPID": "wx1", "WECHAT_APPSECRET": testAppSecret, "WECHAT_BASE_URL": "http://127.0.0.1:1"}
	with := func(kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range real {
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
		{"no secret", real, nil, "TOKENSERVER_SECRET is not set"},
		{"short secret", with("TOKENSERVER_SECRET", "short"), nil, "at least 16"},
		{"short secret, simulator", map[string]string{"TOKENSERVER_SECRET": "short"}, nil, "at least 16"},
		{"AppID only", map[string]string{"WECHAT_APPID": "wx1", "TOKENSERVER_SECRET": testSecret}, nil, "both"},
		{"AppSecret only", map[string]string{"WECHAT_APPSECRET": testAppSecret, "TOKENSERVER_SECRET": testSecret}, nil, "both"},
		{"bad timeout", with("TOKENSERVER_SECRET", testSecret), []string{"-timeout", "0s"}, "-timeout"},
		{"stray argument", with("TOKENSERVER_SECRET", testSecret), []string{"serve"}, "unexpected"},
	} {
		var out, logs bytes.Buffer
		args := append([]string{"-addr", "127.0.0.1:0"}, c.args...)
		err := run(t.Context(), args, func(k string) string { return c.env[k] }, &out, &logs)
		switch {
		case err == nil:
			t.Errorf("%s: run returned nil, want an error", c.name)
		case !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: %v, want it to mention %q", c.name, err, c.want)
		}
		if strings.Contains(out.String()+logs.String()+err.Error(), testAppSecret) {
			t.Errorf("%s: the AppSecret was printed", c.name)
		}
		if strings.Contains(out.String(), "serving") {
			t.Errorf("%s: the server started:\n%s", c.name, out.String())
		}
	}
}
