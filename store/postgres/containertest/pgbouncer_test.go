package containertest_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
)

// Environment of the PgBouncer test: the binary to run (default pgbouncer
// on PATH), and the DSN of the PgBouncer that the parent started, for the
// suite's child processes.
const (
	pgbouncerBinEnv = "WECHATCONF_PGBOUNCER"
	pgbouncerDSNEnv = "WECHATCONF_TEST_PGBOUNCER_DSN"
)

// TestConformancePgBouncer runs the suite through a real PgBouncer in
// transaction pooling mode in front of the package's server, with pgx on
// the simple protocol (PgBouncer before 1.21 does not carry prepared
// statements across transactions). PgBouncer runs as a local process: set
// WECHATCONF_PGBOUNCER to its binary, or put pgbouncer on PATH (Debian:
// apt-get install pgbouncer, or apt-get download pgbouncer libc-ares2 and
// dpkg -x them, with LD_LIBRARY_PATH pointing at the extracted libraries).
// Without a binary the test is skipped, saying so, or fails when CI is set
// (.ci/run installs Debian's pgbouncer).
func TestConformancePgBouncer(t *testing.T) {
	needServer(t)
	dsn := os.Getenv(pgbouncerDSNEnv)
	if dsn == "" {
		dsn = startPgBouncer(t)
	}
	h := conformance.Harness{
		NewStore:  func(t testing.TB) core.TokenStore { return newStore(t, dsn, simpleProtocol) },
		Lease:     testLease,
		KeyPrefix: "pgbouncer/",
		ChildEnv:  []string{dsnEnv + "=" + testDSN, pgbouncerDSNEnv + "=" + dsn},
	}
	conformance.Run(t, h)
}

// startPgBouncer starts PgBouncer in transaction mode in front of the
// package's server and returns a DSN that goes through it.
func startPgBouncer(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(pgbouncerBinEnv)
	if bin == "" {
		var err error
		for _, name := range []string{"pgbouncer", "/usr/sbin/pgbouncer"} {
			if bin, err = exec.LookPath(name); err == nil {
				break
			}
		}
		if err != nil {
			msg := fmt.Sprintf("no PgBouncer binary: set %s or put pgbouncer on PATH (see the test's doc comment)", pgbouncerBinEnv)
			if os.Getenv("CI") != "" {
				t.Fatal(msg + "; .ci/run installs it")
			}
			t.Skip(msg)
		}
	}
	server, err := url.Parse(testDSN)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // readable by the user PgBouncer drops to
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ini := fmt.Sprintf(`[databases]
%[1]s = host=%[2]s port=%[3]s dbname=%[1]s user=%[4]s password=%[5]s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[6]d
unix_socket_dir =
auth_type = trust
auth_file = %[7]s
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 50
`, containers.PostgresDB, server.Hostname(), server.Port(), containers.PostgresUser, containers.PostgresPassword,
		port, filepath.Join(dir, "users.txt"))
	for name, content := range map[string]string{
		"pgbouncer.ini": ini,
		"users.txt":     fmt.Sprintf("%q \"\"\n", containers.PostgresUser),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if os.Geteuid() == 0 { // PgBouncer refuses to run as root
		if _, err := user.Lookup("nobody"); err != nil {
			t.Skipf("running as root and no user nobody for PgBouncer to switch to: %v", err)
		}
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(bin, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	eventually(t, 10*time.Second, "PgBouncer accepts connections", func() (bool, error) {
		select {
		case <-exited:
			t.Fatalf("PgBouncer exited: %s", out)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	})
	dsn := (&url.URL{
		Scheme:   "postgres",
		User:     url.User(containers.PostgresUser),
		Host:     addr,
		Path:     "/" + containers.PostgresDB,
		RawQuery: "sslmode=disable",
	}).String()
	// Through PgBouncer, on the server: proves the path before the suite.
	pool := newPool(t, dsn, simpleProtocol)
	var version string
	if err := pool.QueryRow(context.Background(), "SHOW server_version").Scan(&version); err != nil {
		t.Fatalf("query through PgBouncer at %s: %v; its output:\n%s", addr, err, out)
	}
	t.Logf("PgBouncer (%s) in transaction mode at %s in front of PostgreSQL %s", bin, addr, version)
	return dsn
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
