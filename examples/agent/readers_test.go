package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/tokenfile"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	testAppID     = "wx0123456789abcdef"
	testAppSecret = "0123456789abcdef0123456789abcdef"
)

// reader is one non-Go reader of readers/: the interpreter, the file, and
// a driver that loads the file's reader and calls it without pause on
// $TOKEN_FILE with a 60 s margin and the simulated clock's Unix time read
// from $CLOCK_FILE just before, printing each new expires_at_unix it sees,
// until $CLOCK_FILE says "stop". A reader's error ends the driver with a
// non-zero exit.
type reader struct {
	interpreter, file string
	args              func(driver string) []string
	driver            string
}

var readers = []reader{
	{
		interpreter: "python3", file: "reader.py",
		args: func(d string) []string { return []string{"-c", d} },
		driver: `import os, sys
sys.path.insert(0, os.environ["READER_DIR"])
from reader import read_token
last = None
while True:
    with open(os.environ["CLOCK_FILE"]) as f:
        now = f.read()
    if now == "stop":
        break
    tok = read_token(os.environ["TOKEN_FILE"], 60, int(now))
    if tok["expires_at_unix"] != last:
        last = tok["expires_at_unix"]
        print(last, flush=True)`,
	},
	{
		interpreter: "node", file: "reader.mjs",
		args: func(d string) []string { return []string{"--input-type=module", "-e", d} },
		driver: `import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const { readToken } = await import(pathToFileURL(process.env.READER_DIR + "/reader.mjs").href);
let last;
for (;;) {
  const now = readFileSync(process.env.CLOCK_FILE, "utf8");
  if (now === "stop") break;
  const tok = readToken(process.env.TOKEN_FILE, 60, Number(now));
  if (tok.expires_at_unix !== last) {
    last = tok.expires_at_unix;
    process.stdout.write(last + "\n");
  }
}`,
	},
	{
		interpreter: "php", file: "reader.php",
		args: func(d string) []string { return []string{"-r", d} },
		driver: `require getenv("READER_DIR") . "/reader.php";
$last = null;
for (;;) {
    $now = file_get_contents(getenv("CLOCK_FILE"));
    if ($now === "stop") break;
    $tok = wechat_read_token(getenv("TOKEN_FILE"), 60, (int)$now);
    if ($tok["expires_at_unix"] !== $last) {
        $last = $tok["expires_at_unix"];
        echo $last, "\n";
    }
}`,
	},
}

// running is one reader's process: the expiries it printed, and its end.
type running struct {
	name string
	seen chan int64
	done chan error
	errb *syncBuffer
}

// TestReadersAcrossRefreshes runs the Python, Node and PHP readers of
// readers/ (the ones README.md shows), each reading the file without pause
// while a tokenfile.Agent keeps it through several refreshes of a Conf on
// the simulated WeChat API: every read must parse and hold a token valid
// for more than the readers' 60 s margin at the simulated time of the read.
// The test alone moves the simulated clock, each time to 3 minutes before
// the file's token expires (inside the Conf's refresh ahead, outside the
// margin), and publishes it in a file the drivers read before each read
// (so the time they judge by is never later than the true one); it then
// waits for the agent's write and for every reader to have read the new
// token. A missing interpreter skips, except under CI, where it fails.
func TestReadersAcrossRefreshes(t *testing.T) {
	const refreshes = 4
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("readers")
	if err != nil {
		t.Fatal(err)
	}
	var present []reader
	for _, r := range readers {
		src, err := os.ReadFile(filepath.Join(dir, r.file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), strings.TrimSpace(string(src))) {
			t.Errorf("README.md does not show readers/%s as it is: keep the two in step", r.file)
		}
		if _, err := exec.LookPath(r.interpreter); err != nil {
			if os.Getenv("CI") != "" {
				t.Errorf("%s is not installed, and CI is set: install it (%v)", r.interpreter, err)
				continue
			}
			t.Logf("%s is not installed: its reader is not run (set CI to make this a failure)", r.interpreter)
			continue
		}
		present = append(present, r)
	}
	if len(present) == 0 {
		t.Skip("none of python3, node, php is installed (set CI to make this a failure)")
	}

	epoch := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Start: epoch})
	t.Cleanup(wechat.Close)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	conf, err := core.New(core.Config{AppID: testAppID, AppSecret: core.NewSecret(testAppSecret), BaseURL: wechat.URL,
		Now: wechat.Now, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	tokenPath, clockPath := filepath.Join(work, "access_token.json"), filepath.Join(work, "clock")
	publish := func(s string) { // the clock file, replaced atomically
		t.Helper()
		tmp := clockPath + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, clockPath); err != nil {
			t.Fatal(err)
		}
	}
	publishNow := func() { publish(strconv.FormatInt(wechat.Now().Unix(), 10)) }

	writes := make(chan tokenfile.Record, refreshes+2)
	agent := &tokenfile.Agent{Path: tokenPath, Kind: "access_token", AppID: testAppID, Token: conf.AccessToken,
		Interval: time.Millisecond, Now: wechat.Now, Logger: discard,
		OnWrite: func(r tokenfile.Record) { writes <- r }}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Run(ctx) }()

	watchdog := time.NewTimer(3 * time.Minute)
	defer watchdog.Stop()
	var procs []*running
	// fail ends the test with what every reader printed on stderr.
	fail := func(format string, a ...any) {
		t.Helper()
		for _, p := range procs {
			if s := p.errb.String(); s != "" {
				t.Logf("%s stderr:\n%s", p.name, s)
			}
		}
		t.Fatalf(format, a...)
	}
	nextWrite := func(what string) tokenfile.Record {
		t.Helper()
		select {
		case r := <-writes:
			return r
		case err := <-agentDone:
			fail("%s: the agent returned %v", what, err)
		case <-watchdog.C:
			fail("%s: no write within 3 minutes", what)
		}
		panic("unreachable")
	}
	cur := nextWrite("the first write")
	publishNow()

	defer publish("stop") // ends the drivers however the test ends
	for _, r := range present {
		p := &running{name: r.interpreter, seen: make(chan int64, refreshes+2), done: make(chan error, 1), errb: new(syncBuffer)}
		cmd := exec.CommandContext(t.Context(), r.interpreter, r.args(r.driver)...)
		cmd.Env = append(os.Environ(), "READER_DIR="+dir, "TOKEN_FILE="+tokenPath, "CLOCK_FILE="+clockPath)
		cmd.Stderr = p.errb
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", r.interpreter, err)
		}
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				n, err := strconv.ParseInt(sc.Text(), 10, 64)
				if err != nil {
					n = -1
				}
				p.seen <- n
			}
			p.done <- cmd.Wait()
		}()
		procs = append(procs, p)
	}
	// waitReaders waits for every reader to print exp.
	waitReaders := func(exp int64) {
		t.Helper()
		for _, p := range procs {
			for {
				var n int64
				select {
				case n = <-p.seen:
				case err := <-p.done:
					fail("%s reader ended (%v) before it read the token expiring at %d", p.name, err, exp)
				case <-watchdog.C:
					fail("%s reader did not read the token expiring at %d within 3 minutes", p.name, exp)
				}
				if n == exp {
					break
				}
				if n < 0 || n > exp {
					fail("%s reader printed %d, waiting for %d", p.name, n, exp)
				}
			}
		}
	}
	waitReaders(cur.ExpiresAtUnix)
	for n := 1; n <= refreshes; n++ {
		wechat.Advance(cur.ExpiresAt.Add(-3 * time.Minute).Sub(wechat.Now()))
		publishNow() // after the clock moved: the drivers' time is never ahead of it
		next := nextWrite(fmt.Sprintf("refresh %d", n))
		if next.Value == cur.Value || !next.ExpiresAt.After(cur.ExpiresAt) {
			fail("refresh %d wrote %v after %v: not a new token", n, next, cur)
		}
		waitReaders(next.ExpiresAtUnix)
		cur = next
	}
	publish("stop")
	for _, p := range procs {
		select {
		case err := <-p.done:
			if err != nil {
				fail("%s reader: %v", p.name, err)
			}
		case <-watchdog.C:
			fail("%s reader did not stop within 3 minutes", p.name)
		}
	}
	cancel()
	if err := <-agentDone; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := wechat.TokensIssued(); n != refreshes+1 {
		t.Errorf("WeChat issued %d tokens for %d refreshes, want %d", n, refreshes, refreshes+1)
	}
}

// syncBuffer is a buffer the process and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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
