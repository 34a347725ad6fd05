package containertest_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wechatconf/wechatconf/conformance"
)

// TestSweepPostgres runs the fault sweep (conformance.Sweep) on the package's
// PostgreSQL server: one fault at every store call of every scenario — the
// call fails, lands and reports failure, hangs until its ctx ends, loses
// WeChat's reply, or the process is SIGKILLed right after it (a child
// process re-executing this binary, which reaches the server through
// dsnEnv) — and the durable state must survive each. The sweep runs a dozen
// runs at once, each with two or three store values (a pool each), so the
// pools are kept to two connections.
func TestSweepPostgres(t *testing.T) {
	needServer(t)
	conformance.Sweep(t, harness("pgsweep/", func(c *pgxpool.Config) { c.MaxConns = 2 }))
}
