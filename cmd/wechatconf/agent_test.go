//go:build unix

package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core/tokenfile"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// TestAgentStopsOnSIGTERM tests that the agent, as a process, ends with
// exit 0 on SIGTERM once it has written its file, logging that it stops,
// and leaves the file it wrote. The test waits for the write by reading
// the agent's log line, not by time.
func TestAgentStopsOnSIGTERM(t *testing.T) {
	const appID, secret = "wx0123456789abcdef", "app-secret-0123456789abcdef"
	wechat := wxtest.New(wxtest.Options{AppID: appID, AppSecret: secret, Now: time.Now})
	t.Cleanup(wechat.Close)
	store, out := t.TempDir(), filepath.Join(t.TempDir(), "access_token.json")
	cmd := exec.Command(os.Args[0], "--store", "file://"+store, "--base-url", wechat.URL,
		"agent", appID, "--out", out, "--interval", "10ms")
	cmd.Env = append(os.Environ(), runAsCommand+"=1", "WECHAT_APPSECRET="+secret)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "msg=tokenfile.wrote") {
			break
		}
	}
	if !strings.Contains(log.String(), "msg=tokenfile.wrote") {
		cmd.Wait()
		t.Fatalf("the agent ended without writing:\n%s", log.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stderr)
	log.Write(rest)
	if err := cmd.Wait(); err != nil {
		t.Errorf("the agent after SIGTERM: %v, want exit 0\n%s", err, log.String())
	}
	if !strings.Contains(string(rest), "msg=agent.stop") {
		t.Errorf("the agent's log after SIGTERM has no agent.stop:\n%s", log.String())
	}
	if _, err := tokenfile.Read(out, tokenfile.DefaultMargin, time.Now()); err != nil {
		t.Errorf("the file after SIGTERM: %v", err)
	}
	if strings.Contains(log.String(), secret) {
		t.Errorf("the agent's log holds the AppSecret")
	}
}
