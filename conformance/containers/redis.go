package containers

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

const redisPort = "6379/tcp"

// Redis is a running single Redis server.
type Redis struct {
	// Container is the server's container, for the fault helpers.
	Container testcontainers.Container
	// Addr is host:port for clients. It stays the same across Stop/Start.
	Addr string
}

// redisArgs are the arguments after redis-server shared by every node: no
// persistence and protected mode off, like the official image's defaults.
func redisArgs(extra ...string) []string {
	args := []string{"redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"}
	return append(args, extra...)
}

// StartRedis starts a Redis server (image [RedisImage]) published on a
// loopback port, and returns once it accepts connections.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisWithArgs(t)
}

// StartRedisWithArgs is [StartRedis] with extra redis-server arguments,
// passed after the defaults (protected mode off, no persistence), so that
// a later directive overrides a default: for example
// "--maxmemory-policy", "allkeys-lru"; "--appendonly", "yes"; or
// "--rename-command", "CONFIG", "" (an argument may be empty: no shell is
// involved).
func StartRedisWithArgs(t testing.TB, extra ...string) *Redis {
	t.Helper()
	RequireDocker(t)
	ctx, cancel := startCtx()
	defer cancel()
	image := RedisImage()
	begin := time.Now()
	c, _, err := runOnFixedPort(t, ctx, image, false, func(hostPort int) []testcontainers.ContainerCustomizer {
		return []testcontainers.ContainerCustomizer{
			testcontainers.WithCmd(redisArgs(append([]string{"--bind", "0.0.0.0"}, extra...)...)...),
			testcontainers.WithExposedPorts(redisPort),
			bindLoopback(redisPort, hostPort),
			testcontainers.WithWaitStrategyAndDeadline(StartTimeout,
				wait.ForLog("Ready to accept connections"),
				wait.ForListeningPort(redisPort),
			),
		}
	})
	if err != nil {
		t.Fatalf("start redis (%s): %v", image, err)
	}
	addr, err := MappedAddr(ctx, c, redisPort)
	if err != nil {
		t.Fatalf("redis address: %v", err)
	}
	logStart(t, "redis", image, addr, begin)
	return &Redis{Container: c, Addr: addr}
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
