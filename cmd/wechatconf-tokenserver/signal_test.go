//go:build unix

package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/serve/servetest"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	testAppID     = servetest.AppID
	testAppSecret = servetest.AppSecret
	testSecret    = servetest.BearerSecret
)

// TestSIGTERMDrains builds the binary, runs it, and sends it SIGTERM while
// a request waits on WeChat: the request still gets its token, the binary
// logs its shutdown and exits 0.
func TestSIGTERMDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "wechatconf-tokenserver")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now})
	t.Cleanup(wechat.Close)
	gate := wechat.Block(wxtest.PathStableToken)
	t.Cleanup(gate.Release)

	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "WECHAT_APPID="+testAppID, "WECHAT_APPSECRET="+testAppSecret,
		"WECHAT_BASE_URL="+wechat.URL, "TOKENSERVER_SECRET="+testSecret,
		"WECHATCONF_STORE=file://"+filepath.Join(t.TempDir(), "tokens"))
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	var base string
	sc := bufio.NewScanner(stdout)
	for base == "" && sc.Scan() {
		if _, url, ok := strings.Cut(sc.Text(), " on http://"); ok {
			base = "http://" + url
		}
	}
	go io.Copy(io.Discard, stdout)
	if base == "" {
		t.Fatal("the binary printed no address")
	}

	type result struct {
		status int
		err    error
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/access_token", nil)
		req.Header.Set("Authorization", "Bearer "+testSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{0, err}
			return
		}
		resp.Body.Close()
		got <- result{resp.StatusCode, nil}
	}()
	<-gate.Arrived() // the request is in flight, waiting on WeChat

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	logs := bufio.NewScanner(stderr)
	var all strings.Builder
	for logs.Scan() {
		all.WriteString(logs.Text() + "\n")
		if strings.Contains(logs.Text(), "shutting down") {
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	if !strings.Contains(all.String(), "shutting down") {
		t.Fatalf("no shutdown in the log:\n%s", all.String())
	}
	gate.Release()
	if r := <-got; r.err != nil || r.status != http.StatusOK {
		t.Errorf("the in-flight request: status %d, error %v; want 200", r.status, r.err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("the binary after SIGTERM: %v, want exit status 0", err)
	}
	if strings.Contains(all.String(), testAppSecret) || strings.Contains(all.String(), testSecret) {
		t.Error("the log holds a secret")
	}
}
