package containertest_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/wechatconf/wechatconf/conformance/containers"
)

// dsnEnv holds the DSN of the package's PostgreSQL server. TestMain sets it
// up; the conformance suite's child processes (crash check, ProcessHerd)
// get it through Harness.ChildEnv and reuse the parent's server. Set it by
// hand to run the tests against a server of your own.
const dsnEnv = "WECHATCONF_TEST_POSTGRES_DSN"

var (
	// testDSN is the DSN of the shared server; empty when none could be
	// started, and then noServer says why.
	testDSN  string
	noServer string
)

// TestMain starts one PostgreSQL container for the whole package (unless
// dsnEnv names a server already), and removes it when the tests are done.
func TestMain(m *testing.M) {
	var cleanup func()
	testDSN = os.Getenv(dsnEnv)
	if testDSN == "" {
		var pg *containers.Postgres
		tb := &mainTB{}
		done := make(chan struct{})
		go func() { // the TB's Fatal and Skip end this goroutine, as in a test
			defer close(done)
			pg = containers.StartPostgres(tb)
		}()
		<-done
		cleanup = tb.runCleanups
		switch {
		case tb.failed:
			cleanup()
			fmt.Fprintln(os.Stderr, "pgstore tests: could not start PostgreSQL")
			os.Exit(1)
		case tb.skipped != "":
			noServer = tb.skipped
		default:
			testDSN = pg.DSN
		}
	}
	code := m.Run()
	if cleanup != nil {
		cleanup()
	}
	os.Exit(code)
}

// needServer skips t when TestMain found no Docker engine (without CI set:
// with CI set, TestMain failed instead).
func needServer(t testing.TB) {
	t.Helper()
	if testDSN == "" {
		t.Skip(noServer)
	}
}

// mainTB is the testing.TB that TestMain hands to containers.StartPostgres,
// which outlives any one test. It implements the methods the containers
// harness and testcontainers call; the embedded nil TB only supplies the
// interface's unexported method, so any other call panics loudly.
type mainTB struct {
	testing.TB

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	skipped  string
}

func (m *mainTB) Helper()                  {}
func (m *mainTB) Name() string             { return "TestMain" }
func (m *mainTB) Context() context.Context { return context.Background() }
func (m *mainTB) Log(args ...any)          { fmt.Fprintln(os.Stderr, args...) }
func (m *mainTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func (m *mainTB) Cleanup(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cleanups = append(m.cleanups, f)
}

func (m *mainTB) runCleanups() {
	m.mu.Lock()
	fs := m.cleanups
	m.cleanups = nil
	m.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		done := make(chan struct{})
		go func() { // FailNow in a cleanup ends this goroutine, not main
			defer close(done)
			fs[i]()
		}()
		<-done
	}
}

func (m *mainTB) Fail() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failed = true
}

func (m *mainTB) Failed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed
}

func (m *mainTB) Error(args ...any)                 { m.Log(args...); m.Fail() }
func (m *mainTB) Errorf(format string, args ...any) { m.Logf(format, args...); m.Fail() }
func (m *mainTB) FailNow()                          { m.Fail(); runtime.Goexit() }
func (m *mainTB) Fatal(args ...any)                 { m.Error(args...); runtime.Goexit() }
func (m *mainTB) Fatalf(format string, args ...any) { m.Errorf(format, args...); runtime.Goexit() }
func (m *mainTB) Skip(args ...any)                  { m.skip(fmt.Sprint(args...)) }
func (m *mainTB) Skipf(format string, args ...any)  { m.skip(fmt.Sprintf(format, args...)) }
func (m *mainTB) SkipNow()                          { m.skip("skipped") }
func (m *mainTB) Skipped() bool                     { return m.skipped != "" }

func (m *mainTB) skip(reason string) {
	m.mu.Lock()
	m.skipped = reason
	m.mu.Unlock()
	runtime.Goexit()
}
