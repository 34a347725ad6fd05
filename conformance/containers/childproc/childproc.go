// Package childproc runs the OS processes of a multi-process test: the test
// binary started again, N times, each child running the calling test
// (-test.run) and finding in its environment that it plays a child. The
// parent and each child talk in lines: the parent writes commands to the
// child's stdin (Child.Send), the child answers with lines that begin with
// a protocol prefix on its stdout (Child.Next); everything else the child
// writes (its logs, a failing test's report) is kept (Child.Output) for
// the parent to read or to show when the child fails.
//
// It is the helper the fleet tests of the containertest modules share
// (store/redis/containertest's outside-fetcher fleet,
// contrib/silenceper/containertest's TestFleet): a round-driven fleet on a
// clock the parent owns, where the parent says "run a round at this
// instant" and waits for each child's report, so that nothing waits on
// real time except watchdogs.
//
// A child is told apart by an environment variable the test chooses
// (Options.Env); its side of the protocol is plain: read stdin line by
// line, print Options.Prefix + the answer.
//
// It lives in the test-only module conformance/containers, beside the
// container helpers the same tests use; it needs only the standard
// library.
package childproc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options describe the children Start starts.
type Options struct {
	// Test is the name of the test the children run (t.Name() of the
	// parent's test, usually): each child is started with
	// -test.run=^Test$ (subtests anchored the same way).
	Test string
	// Env is added to every child's environment (after os.Environ()); it
	// should hold the variable that makes the test play a child.
	Env []string
	// EnvOf, if set, returns the variables added for child i alone (its
	// index, its instance name).
	EnvOf func(i int) []string
	// Prefix begins the protocol lines a child writes on stdout
	// ("fleet: "); Next returns them without it. Other lines are output.
	Prefix string
	// Timeout is the watchdog of Next and Wait: a child that says nothing
	// for that long fails the test with its output. Default 5 minutes.
	Timeout time.Duration
}

// Child is one child process as the parent sees it.
type Child struct {
	// Index is the child's number, from 0.
	Index int

	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	out   *buffer
	done  chan struct{} // closed when the process has exited and its output is read
	err   error         // Wait's, set before done closes
	wait  time.Duration
}

// Start starts n children as o says and registers their end with
// t.Cleanup (stdin closed, the process killed if it still runs). Each
// child's stdout and stderr are read from the start; it fails t if a child
// cannot be started.
func Start(t testing.TB, n int, o Options) []*Child {
	t.Helper()
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	children := make([]*Child, n)
	for i := range children {
		cmd := exec.Command(os.Args[0], "-test.run="+RunPattern(o.Test), "-test.count=1")
		cmd.Env = append(os.Environ(), o.Env...)
		if o.EnvOf != nil {
			cmd.Env = append(cmd.Env, o.EnvOf(i)...)
		}
		// A -race child would otherwise sleep 1 s when it exits.
		cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		c := &Child{Index: i, t: t, cmd: cmd, lines: make(chan string, 64), out: &buffer{}, done: make(chan struct{}), wait: o.Timeout}
		cmd.Stderr = c.out
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if c.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("child %d: starting %s: %v", i, os.Args[0], err)
		}
		go func() {
			defer close(c.done)
			defer close(c.lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 4<<20)
			for sc.Scan() {
				if l, ok := strings.CutPrefix(sc.Text(), o.Prefix); ok && o.Prefix != "" {
					c.lines <- l
				} else {
					c.out.Write(append(sc.Bytes(), '\n'))
				}
			}
			io.Copy(io.Discard, stdout)
			c.err = cmd.Wait()
		}()
		children[i] = c
		t.Cleanup(func() {
			c.stdin.Close()
			select {
			case <-c.done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-c.done
			}
		})
	}
	return children
}

// RunPattern returns the -test.run pattern that runs exactly the test (or
// subtest) named name.
func RunPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// Send writes one line (format and args, a newline added) to the child's
// stdin. A child that has exited is noticed by the next Next.
func (c *Child) Send(format string, args ...any) {
	fmt.Fprintf(c.stdin, format+"\n", args...)
}

// Next returns the child's next protocol line, without the prefix. It
// fails the test, with the child's output, if the child exits first or
// says nothing within Options.Timeout.
func (c *Child) Next() string {
	c.t.Helper()
	timer := time.NewTimer(c.wait)
	defer timer.Stop()
	select {
	case l, ok := <-c.lines:
		if !ok {
			<-c.done
			c.t.Fatalf("child %d exited (%v) before its next line; its output:\n%s", c.Index, exitStatus(c.err), c.Output())
		}
		return l
	case <-timer.C:
		c.t.Fatalf("child %d said nothing within %v; its output:\n%s", c.Index, c.wait, c.Output())
	}
	return ""
}

// Expect fails the test unless the child's next line is want.
func (c *Child) Expect(want string) {
	c.t.Helper()
	if got := c.Next(); got != want {
		c.t.Fatalf("child %d: got %q, want %q; its output:\n%s", c.Index, got, want, c.Output())
	}
}

// Wait closes the child's stdin (the end of the protocol), waits for the
// child to exit (within Options.Timeout) and returns its exit error. Lines
// it writes meanwhile are dropped.
func (c *Child) Wait() error {
	c.t.Helper()
	c.stdin.Close()
	timer := time.NewTimer(c.wait)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-c.lines:
			if ok {
				continue
			}
			<-c.done
			return c.err
		case <-timer.C:
			c.cmd.Process.Kill()
			<-c.done
			return fmt.Errorf("child %d did not exit within %v of its stdin closing (killed)", c.Index, c.wait)
		}
	}
}

// Output returns everything the child wrote other than protocol lines
// (its stderr, and its stdout lines without the prefix), whole.
func (c *Child) Output() string { return c.out.String() }

// Tail is Output cut to its last n bytes, for failure messages.
func (c *Child) Tail(n int) string {
	s := c.Output()
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// buffer is a bytes.Buffer safe for concurrent use.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
