package sqlitestore_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/examples/customstore/sqlitestore"
)

// ─── Step 4: run the conformance suite ──────────────────────────────────────

// dbEnv passes the database file to the child processes of the crash check
// and of ProcessHerd (the test binary started again), so that they open the
// parent's file instead of a new one.
const dbEnv = "SQLITESTORE_TEST_DB"

// testLease is short so that the lease and crash checks finish quickly.
const testLease = time.Second

// harness returns the conformance harness: every NewStore call opens a new
// *sql.DB on the same file, so that each Store acts as a separate process
// and the checks exercise the lock rows, not anything in memory.
func harness(t testing.TB) conformance.Harness {
	path := os.Getenv(dbEnv)
	if path == "" {
		// The parent creates the database before any child opens it, as a
		// deployment would: eight processes creating one at once can meet
		// SQLITE_BUSY while switching it to WAL.
		path = filepath.Join(t.TempDir(), "tokens.db")
		s, err := sqlitestore.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	return conformance.Harness{
		NewStore: func(t testing.TB) core.TokenStore {
			s, err := sqlitestore.Open(path, sqlitestore.WithLease(testLease))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		Lease:    testLease,
		ChildEnv: []string{dbEnv + "=" + path},
	}
}

func TestConformance(t *testing.T) { conformance.Run(t, harness(t)) }

// TestProcessHerd: 8 processes × 50 goroutines on a cold start, one fetch.
func TestProcessHerd(t *testing.T) { conformance.ProcessHerd(t, harness(t), 8, 50) }

// TestProcessHerdWeCom: the same herd through a WeCom app's access_token.
func TestProcessHerdWeCom(t *testing.T) {
	conformance.ProcessHerdOf(t, harness(t), conformance.WeComApp, 8, 50)
}

func BenchmarkConformance(b *testing.B) { conformance.Benchmark(b, harness(b)) }
