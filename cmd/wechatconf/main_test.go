package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
)

// TestMain runs main itself when the test binary is started as the
// command by a test (runAsCommand is set): go-redis writes its log lines
// to the process's own stderr, which only a separate process shows.
func TestMain(m *testing.M) {
	if os.Getenv(runAsCommand) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const runAsCommand = "WECHATCONF_TEST_RUN_AS_COMMAND"

// TestUnreachableRedis tests that when the Redis store does not answer,
// the process's stderr holds the command's error alone — one line, naming
// the store — and none of the go-redis pool's own log lines ("redis:
// connection pool: failed to dial …"), which used to precede it, one per
// failed dial; exit 2.
func TestUnreachableRedis(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: every dial is refused
	for _, args := range [][]string{{"get", "wx0123456789abcdef"}, {"ls"}, {"inspect", "wx0123456789abcdef"}} {
		cmd := exec.Command(os.Args[0], append([]string{"--store", "redis://" + addr + "/0", "--timeout", "10s"}, args...)...)
		cmd.Env = append(os.Environ(), runAsCommand+"=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != cli.ExitError {
			t.Errorf("wechatconf %q on an unreachable Redis: %v, want exit %d\nstderr: %s", args, err, cli.ExitError, stderr.String())
			continue
		}
		want := "wechatconf: storeurl: opening redis://" + addr + "/0: "
		if lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], want) || stdout.Len() != 0 {
			t.Errorf("wechatconf %q on an unreachable Redis: stderr\n%s\nwant one line, %q…, and nothing on stdout (%q)", args, stderr.String(), want, stdout.String())
		}
	}
}
