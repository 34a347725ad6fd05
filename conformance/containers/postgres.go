package containers

import (
	"net/url"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

const postgresPort = "5432/tcp"

// PostgreSQL credentials of the containers [StartPostgres] starts.
const (
	PostgresUser     = "wechatconf"
	PostgresPassword = "wechatconf"
	PostgresDB       = "wechatconf"
)

// Postgres is a running PostgreSQL server.
type Postgres struct {
	// Container is the server's container, for the fault helpers.
	Container testcontainers.Container
	// DSN is postgres://user:pass@host:port/db?sslmode=disable. It stays the
	// same across Stop/Start.
	DSN string
	// Addr is host:port of the server.
	Addr string
}

// StartPostgres starts a PostgreSQL server (image [PostgresImage]) with the
// database, user and password PostgresDB, PostgresUser and PostgresPassword,
// and returns once it accepts TCP connections. fsync is off (test data only).
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	RequireDocker(t)
	ctx, cancel := startCtx()
	defer cancel()
	image := PostgresImage()
	begin := time.Now()
	c, _, err := runOnFixedPort(t, ctx, image, false, func(hostPort int) []testcontainers.ContainerCustomizer {
		return []testcontainers.ContainerCustomizer{
			testcontainers.WithEnv(map[string]string{
				"POSTGRES_USER":     PostgresUser,
				"POSTGRES_PASSWORD": PostgresPassword,
				"POSTGRES_DB":       PostgresDB,
			}),
			testcontainers.WithCmd("postgres", "-c", "fsync=off", "-c", "full_page_writes=off"),
			// Fast shutdown, as the official image's STOPSIGNAL (docker import cannot set it).
			testcontainers.WithConfigModifier(func(cfg *container.Config) { cfg.StopSignal = "SIGINT" }),
			testcontainers.WithExposedPorts(postgresPort),
			bindLoopback(postgresPort, hostPort),
			testcontainers.WithWaitStrategyAndDeadline(StartTimeout,
				wait.ForListeningPort(postgresPort),
				// TCP readiness: the entrypoint's init server only listens on the unix socket.
				wait.ForExec([]string{"pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432",
					"-U", PostgresUser, "-d", PostgresDB}).WithPollInterval(200*time.Millisecond),
			),
		}
	})
	if err != nil {
		t.Fatalf("start postgres (%s): %v", image, err)
	}
	addr, err := MappedAddr(ctx, c, postgresPort)
	if err != nil {
		t.Fatalf("postgres address: %v", err)
	}
	dsn := (&url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(PostgresUser, PostgresPassword),
		Host:     addr,
		Path:     "/" + PostgresDB,
		RawQuery: "sslmode=disable",
	}).String()
	logStart(t, "postgres", image, addr, begin)
	return &Postgres{Container: c, DSN: dsn, Addr: addr}
}
