package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	testAppID     = "wx0123456789abcdef"
	testAppSecret = "app-secret-0123456789abcdef"
)

// syncBuffer is a bytes.Buffer safe for a running command and the test.
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

// result is one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

// views decodes --json output, one object per line.
func (r result) views(t *testing.T) []view {
	t.Helper()
	var vs []view
	for line := range strings.Lines(r.stdout) {
		var v view
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		vs = append(vs, v)
	}
	return vs
}

// cli runs the command in-process with environ, and checks that the
// AppSecret and, without --reveal, no value in secrets reach its output.
type cli struct {
	t       *testing.T
	environ map[string]string
	secrets func() []string // token values that must not be printed
	masked  []result        // outputs without --reveal, for recheck
}

// recheck checks every output without --reveal against every token value
// known now (a value enters secrets only after the run that printed it).
func (c *cli) recheck() {
	c.t.Helper()
	for _, r := range c.masked {
		for _, s := range c.secretValues(false) {
			if strings.Contains(r.stdout+r.stderr, s) {
				c.t.Errorf("a token (%q) was printed without --reveal:\nstdout: %s\nstderr: %s", s, r.stdout, r.stderr)
			}
		}
	}
}

func (c *cli) run(ctx context.Context, args ...string) result {
	c.t.Helper()
	var out, errOut syncBuffer
	code := run(ctx, args, func(k string) string { return c.environ[k] }, &out, &errOut)
	r := result{code, out.String(), errOut.String()}
	reveal := false
	for _, a := range args {
		reveal = reveal || a == "--reveal" || a == "-reveal"
	}
	if !reveal {
		c.masked = append(c.masked, r)
	}
	for _, s := range append([]string{testAppSecret}, c.secretValues(reveal)...) {
		if s != "" && (strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s)) {
			c.t.Errorf("wechatconf %q printed a secret or token:\nstdout: %s\nstderr: %s", args, r.stdout, r.stderr)
		}
	}
	return r
}

func (c *cli) secretValues(reveal bool) []string {
	if reveal || c.secrets == nil {
		return nil
	}
	return c.secrets()
}

func (c *cli) want(r result, code int) {
	c.t.Helper()
	if r.code != code {
		c.t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
}

// flow runs get, refresh, force, inspect and watch against the store
// storeURL names (given in flags, or in WECHATCONF_STORE when viaEnv: a
// URL with a password), and a simulated WeChat.
func flow(t *testing.T, storeURL string, viaEnv bool) {
	ctx := context.Background()
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now})
	t.Cleanup(wechat.Close)
	fetches := func() int { return wechat.Calls(wxtest.PathStableToken) + wechat.Calls(wxtest.PathToken) }

	st, closeStore, err := storeurl.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeStore() })
	prefix := "cli" + strings.ReplaceAll(t.Name(), "/", "_")
	key := prefix + "/" + testAppID + "/access_token"

	var seen sync.Map // every token value the test has seen in the store
	stored := func() core.Token {
		tok, err := st.Get(ctx, key)
		if err != nil {
			t.Fatalf("reading %s from the store: %v", key, err)
		}
		seen.Store(tok.Value, true)
		return tok
	}
	c := &cli{t: t, environ: map[string]string{"WECHAT_APPSECRET": testAppSecret}, secrets: func() []string {
		var vs []string
		seen.Range(func(k, _ any) bool { vs = append(vs, k.(string)); return true })
		return vs
	}}
	global := []string{"--prefix", prefix, "--base-url", wechat.URL}
	if viaEnv {
		c.environ["WECHATCONF_STORE"] = storeURL
	} else {
		global = append(global, "--store", storeURL)
	}
	cmd := func(args ...string) result {
		t.Helper()
		return c.run(ctx, append(append([]string{}, global...), args...)...)
	}

	// Nothing stored yet: 3.
	r := cmd("get", testAppID)
	c.want(r, exitNotFound)
	r = cmd("--json", "inspect", testAppID)
	c.want(r, exitNotFound)
	if vs := r.views(t); len(vs) != 3 || vs[0].Status != "absent" {
		t.Fatalf("inspect of nothing: %+v", vs)
	}

	// refresh with no AppSecret: a usage error, no WeChat call.
	delete(c.environ, "WECHAT_APPSECRET")
	c.want(cmd("refresh", testAppID), exitError)
	c.environ["WECHAT_APPSECRET"] = testAppSecret
	if fetches() != 0 {
		t.Fatalf("%d fetches without an AppSecret", fetches())
	}

	// refresh of nothing: one fetch, stored, printed masked.
	r = cmd("refresh", testAppID, "--json")
	c.want(r, exitOK)
	first := stored()
	c.recheck()
	vs := r.views(t)
	if len(vs) != 1 || vs[0].Key != key || vs[0].Fingerprint != fingerprint(first.Value) || vs[0].Value != "" ||
		vs[0].Length != len(first.Value) || vs[0].Replaced == nil || !*vs[0].Replaced || fetches() != 1 {
		t.Fatalf("refresh: %+v (stored %v, %d fetches)", vs, first, fetches())
	}

	// get: found and valid, masked; --reveal shows it.
	r = cmd("get", testAppID, "--json")
	c.want(r, exitOK)
	v := r.views(t)[0]
	if v.Status != "valid" || v.Fingerprint != fingerprint(first.Value) || v.ExpiresAt == nil || !v.ExpiresAt.Equal(first.ExpiresAt) ||
		*v.ExpiresIn < 7000 || v.Age == nil || *v.Age > 200 {
		t.Fatalf("get --json: %+v", v)
	}
	r = cmd("get", testAppID)
	c.want(r, exitOK)
	if !strings.Contains(r.stdout, key) || !strings.Contains(r.stdout, fingerprint(first.Value)) || !strings.Contains(r.stdout, "expires_at=") {
		t.Fatalf("get: %s", r.stdout)
	}
	r = cmd("get", "--key", key, "--reveal", "--json")
	c.want(r, exitOK)
	if r.views(t)[0].Value != first.Value {
		t.Fatalf("get --reveal: %s", r.stdout)
	}

	// refresh again: the stored value is the rejected one; stable_token
	// hands it back and core escalates to force_refresh: a new token.
	r = cmd("refresh", testAppID, "--json")
	c.want(r, exitOK)
	second := stored()
	if v := r.views(t)[0]; second.Value == first.Value || v.Previous != fingerprint(first.Value) || v.Fingerprint != fingerprint(second.Value) {
		t.Fatalf("second refresh: %+v", v)
	}

	// force: refused without --yes; with it, a forced call and a new token.
	before := wechat.ForceRefreshes()
	r = cmd("force", testAppID)
	c.want(r, exitError)
	if !strings.Contains(r.stderr, "--yes") || wechat.ForceRefreshes() != before {
		t.Fatalf("force without --yes: %s", r.stderr)
	}
	r = cmd("force", testAppID, "--yes")
	c.want(r, exitOK)
	third := stored()
	if third.Value == second.Value || wechat.ForceRefreshes() != before+1 || !strings.Contains(r.stderr, "stops working") ||
		!strings.Contains(r.stdout, fingerprint(third.Value)) || !strings.Contains(r.stdout, "previous="+fingerprint(second.Value)) {
		t.Fatalf("force: forced %d→%d\nstdout: %s\nstderr: %s", before, wechat.ForceRefreshes(), r.stdout, r.stderr)
	}

	// An expired ticket: 1.
	ticketKey := prefix + "/" + testAppID + "/jsapi_ticket"
	expired := core.Token{Value: "expired-ticket-value-0123456789", ExpiresAt: time.Now().Add(-time.Minute)}
	seen.Store(expired.Value, true)
	if err := st.Set(ctx, ticketKey, expired); err != nil {
		t.Fatal(err)
	}
	r = cmd("get", testAppID, "jsapi_ticket", "--json")
	c.want(r, exitExpired)
	if v := r.views(t)[0]; v.Status != "expired" || *v.ExpiresIn > -59 {
		t.Fatalf("expired get: %+v", v)
	}

	// inspect: two keys present, one absent.
	r = cmd("inspect", testAppID, "--json")
	c.want(r, exitOK)
	vs = r.views(t)
	if len(vs) != 3 || vs[0].Status != "valid" || vs[1].Status != "expired" || vs[2].Status != "absent" {
		t.Fatalf("inspect: %s", r.stdout)
	}
	if strings.HasPrefix(storeURL, "redis") {
		if vs[0].Lock == nil || vs[0].Lock.Held {
			t.Fatalf("inspect on Redis shows no free lock: %s", r.stdout)
		}
	} else if vs[0].Lock != nil {
		t.Fatalf("inspect shows a lock the store cannot tell: %s", r.stdout)
	}

	// watch: the starting state, then the change a refresh elsewhere makes.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(wctx, append(append([]string{}, global...), "watch", testAppID, "--interval", "20ms", "--count", "1", "--json"),
			func(k string) string { return c.environ[k] }, &out, &errOut)
	}()
	for !strings.Contains(out.String(), "\n") {
		time.Sleep(10 * time.Millisecond)
		if wctx.Err() != nil {
			t.Fatalf("watch printed nothing: %s", errOut.String())
		}
	}
	c.want(cmd("force", testAppID, "--yes"), exitOK)
	fourth := stored()
	select {
	case code := <-done:
		w := result{code, out.String(), errOut.String()}
		c.want(w, exitOK)
		vs := w.views(t)
		if len(vs) != 2 || vs[0].Fingerprint != fingerprint(third.Value) || vs[1].Fingerprint != fingerprint(fourth.Value) || vs[1].Time == nil {
			t.Fatalf("watch: %s", w.stdout)
		}
		for _, s := range []string{third.Value, fourth.Value, testAppSecret} {
			if strings.Contains(w.stdout+w.stderr, s) {
				t.Fatalf("watch printed a secret: %s", w.stdout)
			}
		}
	case <-wctx.Done():
		t.Fatalf("watch did not stop after one change: %s", out.String())
	}

	// A wrong AppSecret: 2, and the error shows neither secret.
	c.recheck()
	c.environ["WECHAT_APPSECRET"] = "wrong-secret-0123456789abcdef"
	r = cmd("refresh", testAppID)
	c.want(r, exitError)
	if strings.Contains(r.stderr, "wrong-secret-0123456789abcdef") || r.stdout != "" {
		t.Fatalf("refresh with a wrong secret:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
}

func TestFileStore(t *testing.T) {
	flow(t, "file://"+t.TempDir(), false)
}

func TestFileStoreFromEnvironment(t *testing.T) {
	flow(t, "file://"+t.TempDir(), true)
}

func TestUsage(t *testing.T) {
	ctx := context.Background()
	dir := "file://" + t.TempDir()
	c := &cli{t: t, environ: map[string]string{}}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, exitError, "no command"},
		{[]string{"frobnicate"}, exitError, "unknown command"},
		{[]string{"get", testAppID}, exitError, "no store"},
		{[]string{"--store", "memory:", "get", testAppID}, exitError, "memory:"},
		{[]string{"--store", "redis://user:hunter2secret@127.0.0.1:1/0", "get", testAppID}, exitError, "holds a password"},
		{[]string{"--store", "ftp://x", "get", testAppID}, exitError, "unknown scheme"},
		{[]string{"--store", dir, "get", testAppID, "nonsense"}, exitError, "unknown kind"},
		{[]string{"--store", dir, "get", "--key", "k", testAppID}, exitError, "--key"},
		{[]string{"--store", dir, "get"}, exitError, "APPID"},
		{[]string{"--store", dir, "get", "--bogus"}, exitError, "bogus"},
		{[]string{"--store", dir, "inspect", "--wecom", "corp"}, exitError, "CORPID/AGENTID"},
		{[]string{"--store", dir, "watch", testAppID, "--interval", "0s"}, exitError, "interval"},
		{[]string{"--store", dir, "get", "--key", "raw/key"}, exitNotFound, "not found"},
		{[]string{"--store", dir, "inspect", "--wecom", "corp/1000002"}, exitNotFound, "none of the 3 keys"},
		{[]string{"--store", dir, "inspect", "--component", "wxcomp", testAppID}, exitNotFound, "none of the 3 keys"},
	} {
		r := c.run(ctx, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("wechatconf %q: exit %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.msg)
		}
		if strings.Contains(r.stderr, "hunter2secret") {
			t.Errorf("wechatconf %q printed the URL's password: %s", tc.args, r.stderr)
		}
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"get", "-h"}} {
		if r := c.run(ctx, args...); r.code != exitOK || !strings.Contains(r.stdout, "exit codes") {
			t.Errorf("%q: %d %q", args, r.code, r.stdout)
		}
	}
}

// TestWatchStopsOnContext: watch ends with 0 when its context ends (SIGINT).
func TestWatchStopsOnContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c := &cli{t: t, environ: map[string]string{}}
	start := time.Now()
	r := c.run(ctx, "--store", "file://"+t.TempDir(), "watch", testAppID, "--interval", "20ms")
	c.want(r, exitOK)
	if !strings.Contains(r.stdout, "absent") || time.Since(start) > 5*time.Second {
		t.Fatalf("watch: %q after %v", r.stdout, time.Since(start))
	}
}

// TestInspectWeComKeys checks the WeCom and Open Platform key layouts.
func TestInspectWeComKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, _, err := storeurl.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	tok := core.Token{Value: "wecom-token-0123456789abcdef", ExpiresAt: time.Now().Add(time.Hour)}
	if err := st.Set(ctx, "wechatconf/wecom/corp/1000002/access_token", tok); err != nil {
		t.Fatal(err)
	}
	if err := st.Set(ctx, "wechatconf/open/wxcomp/component_verify_ticket", tok); err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, environ: map[string]string{"WECHATCONF_STORE": "file://" + dir}, secrets: func() []string { return []string{tok.Value} }}
	r := c.run(ctx, "inspect", "--wecom", "corp/1000002", "--json")
	c.want(r, exitOK)
	vs := r.views(t)
	if len(vs) != 3 || vs[0].Status != "valid" || vs[1].Key != "wechatconf/wecom/corp/1000002/agent_config_ticket" || vs[2].Key != "wechatconf/wecom/corp/jsapi_ticket" {
		t.Fatalf("inspect --wecom: %s", r.stdout)
	}
	r = c.run(ctx, "inspect", "--component", "wxcomp")
	c.want(r, exitOK)
	if !strings.Contains(r.stdout, "wechatconf/open/wxcomp/component_access_token  absent") ||
		!strings.Contains(r.stdout, "wechatconf/open/wxcomp/component_verify_ticket  valid") {
		t.Fatalf("inspect --component: %s", r.stdout)
	}
}

// TestHeldBackByALimit tests exit code 4: WeChat's quota refusing a token
// call (45009, here the daily quota of token mints used up by the first
// refresh) and a limit of core's (*core.LimitError) both say "retry later",
// apart from other failures (2).
func TestHeldBackByALimit(t *testing.T) {
	ctx := context.Background()
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now, DailyQuota: 1})
	t.Cleanup(wechat.Close)
	c := &cli{t: t, environ: map[string]string{"WECHAT_APPSECRET": testAppSecret, "WECHATCONF_STORE": "file://" + t.TempDir()}}
	global := []string{"--base-url", wechat.URL}
	c.want(c.run(ctx, append(global, "refresh", testAppID)...), exitOK)
	r := c.run(ctx, append(global, "force", testAppID, "--yes")...)
	c.want(r, exitLimited)
	if !strings.Contains(r.stderr, "45009") || strings.Contains(r.stderr, "wechatconf: wechatconf:") {
		t.Errorf("force over a used-up quota: stderr %q, want WeChat's 45009 named, the command's name once", r.stderr)
	}
	if n := wechat.Calls(wxtest.PathStableToken); n != 2 {
		t.Errorf("%d stable_token calls, want 2 (the refresh, the refused force)", n)
	}

	// WeChat's minute quota (45011), still refused after core's retries:
	// retry later too.
	wechat.InjectFault(wxtest.PathStableToken, wxtest.Errcode(45011, "api minute-quota reach limit"), 10)
	if r := c.run(ctx, append(global, "refresh", testAppID)...); r.code != exitLimited || !strings.Contains(r.stderr, "45011") {
		t.Errorf("refresh refused with 45011: exit %d, stderr %q; want %d naming 45011", r.code, r.stderr, exitLimited)
	}

	var stderr bytes.Buffer
	e := &env{stdout: io.Discard, stderr: &stderr}
	limited := fmt.Errorf("force: %w", &core.LimitError{Credential: "access_token", Limit: "ForceRefreshInterval", Until: time.Now().Add(30 * time.Second)})
	if code := e.fail(limited); code != exitLimited || !strings.Contains(stderr.String(), "ForceRefreshInterval") {
		t.Errorf("fail(%v) = %d, stderr %q; want %d naming the limit", limited, code, stderr.String(), exitLimited)
	}
}

// TestMistypedFileStore: a file store URL naming a directory that does not
// exist is an error (2) for every command, and nothing is created or
// fetched: filestore.New would create it, so that get said "not found" and
// refresh fetched a token the fleet never sees.
func TestMistypedFileStore(t *testing.T) {
	ctx := context.Background()
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now})
	t.Cleanup(wechat.Close)
	dir := filepath.Join(t.TempDir(), "typo")
	c := &cli{t: t, environ: map[string]string{"WECHAT_APPSECRET": testAppSecret, "WECHATCONF_STORE": "file://" + dir}}
	for _, args := range [][]string{{"get", testAppID}, {"inspect", testAppID}, {"refresh", testAppID}, {"force", testAppID, "--yes"}} {
		r := c.run(ctx, append([]string{"--base-url", wechat.URL}, args...)...)
		if r.code != exitError || !strings.Contains(r.stderr, "no such directory") {
			t.Errorf("wechatconf %q on a missing directory: exit %d, stderr %q; want %d saying no such directory", args, r.code, r.stderr, exitError)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing directory after the commands: %v, want it still missing", err)
	}
	if n := wechat.Calls(wxtest.PathStableToken) + wechat.Calls(wxtest.PathToken); n != 0 {
		t.Errorf("%d token calls against a mistyped store, want 0", n)
	}
}
