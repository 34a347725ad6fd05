package containers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Default images, used when the matching WECHATCONF_*_IMAGE variable is unset.
const (
	DefaultRedisImage    = "redis:7.4"
	DefaultPostgresImage = "postgres:15"
	DefaultEtcdImage     = "gcr.io/etcd-development/etcd:v3.6.15"
)

// Environment variables naming the images to run.
const (
	RedisImageEnv    = "WECHATCONF_REDIS_IMAGE"
	PostgresImageEnv = "WECHATCONF_POSTGRES_IMAGE"
	EtcdImageEnv     = "WECHATCONF_ETCD_IMAGE"
)

// Timeouts bounding container operations.
const (
	// StartTimeout bounds one container's start, including its wait strategy.
	StartTimeout = 2 * time.Minute
	// OpTimeout bounds a fault operation (stop, pause, unpause; Start
	// has StartTimeout).
	OpTimeout = time.Minute
	// StopGrace is how long a stopped container gets before it is killed.
	StopGrace = 10 * time.Second
)

// RedisImage returns the Redis image to run.
func RedisImage() string { return imageFromEnv(RedisImageEnv, DefaultRedisImage) }

// PostgresImage returns the PostgreSQL image to run.
func PostgresImage() string { return imageFromEnv(PostgresImageEnv, DefaultPostgresImage) }

// EtcdImage returns the etcd image to run.
func EtcdImage() string { return imageFromEnv(EtcdImageEnv, DefaultEtcdImage) }

func imageFromEnv(env, def string) string {
	if v := strings.TrimSpace(os.Getenv(env)); v != "" {
		return v
	}
	return def
}

// Label is set (to "true") on every container and network this package
// creates. Teardown is t.Cleanup's job (the reaper is disabled), so a test
// binary that is killed leaves its containers behind; remove them with
//
//	docker rm -f $(docker ps -aq --filter label=wechatconf.conformance)
//	docker network prune -f --filter label=wechatconf.conformance
const Label = "wechatconf.conformance"

var dockerProbe struct {
	once sync.Once
	err  error // no engine
	herr error // engine, but a container host the loopback bindings cannot serve
}

// RequireDocker makes sure a Docker engine answers. If none does, it fails
// the test when the environment variable CI is set and skips it otherwise,
// naming the fix. The probe runs once per test binary.
func RequireDocker(t testing.TB) {
	t.Helper()
	dockerProbe.once.Do(func() {
		dockerProbe.err = probeDocker()
		if dockerProbe.err == nil {
			dockerProbe.herr = checkContainerHost()
		}
	})
	if dockerProbe.err == nil {
		if dockerProbe.herr != nil {
			t.Fatal(dockerProbe.herr)
		}
		return
	}
	msg := fmt.Sprintf("no Docker engine answers (testcontainers: %v); run `bash scripts/docker-up` to install and start one, "+
		"and on networks that block Docker Hub also `eval \"$(bash scripts/offline-images --env)\"`; "+
		"export TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1", dockerProbe.err)
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set: %s", msg)
	}
	t.Skipf("skipping: %s", msg)
}

// probeTimeout bounds the probe of RequireDocker: long, because a loaded
// engine (containers starting and stopping beside the test) can take many
// seconds to answer, and an engine that answers ends it at once.
const probeTimeout = time.Minute

func probeDocker() (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	defer func() {
		// testcontainers panics in some host-discovery paths; treat it as "no engine".
		if r := recover(); r != nil {
			err = fmt.Errorf("docker host discovery: %v", r)
		}
	}()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		return err
	}
	return nil
}

// checkContainerHost fails fast when testcontainers would reach published
// ports through a non-loopback address (it picks the docker0 gateway when it
// runs inside a container), since every port here is published on 127.0.0.1.
func checkContainerHost() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return fmt.Errorf("testcontainers provider: %w", err)
	}
	defer p.Close()
	host, err := p.DaemonHost(ctx)
	if err != nil {
		return fmt.Errorf("testcontainers container host: %w", err)
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("testcontainers resolves the container host to %q, but containers publish their ports "+
		"on 127.0.0.1 only: export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1", host)
}

// hint adds the likely fix to a start error.
func hint(err error) error {
	if err != nil && strings.Contains(err.Error(), "reaper") {
		return fmt.Errorf("%w (the reaper image cannot be pulled here: export TESTCONTAINERS_RYUK_DISABLED=true)", err)
	}
	return err
}

// teardownKill makes teardown kill the container at once: test data is
// throwaway, and a last etcd member without quorum takes seconds to stop.
var teardownKill = testcontainers.StopTimeout(0)

// labelled marks a container with [Label].
var labelled = testcontainers.WithLabels(map[string]string{Label: "true"})

// MappedAddr re-reads host:port of the container's published port (for
// example "6379/tcp") from the engine.
func MappedAddr(ctx context.Context, c testcontainers.Container, port string) (string, error) {
	host, err := c.Host(ctx)
	if err != nil {
		return "", fmt.Errorf("container host: %w", err)
	}
	p, err := c.MappedPort(ctx, port)
	if err != nil {
		return "", fmt.Errorf("mapped port %s: %w", port, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(int(p.Num()))), nil
}

// Stop stops the container (SIGTERM or the image's stop signal, then SIGKILL
// after StopGrace). Its published ports and file system are kept.
func Stop(t testing.TB, c testcontainers.Container) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
	defer cancel()
	grace := StopGrace
	if err := c.Stop(ctx, &grace); err != nil {
		t.Fatalf("stop container %s: %v", shortID(c), err)
	}
}

// Start starts a stopped container and waits until its wait strategy passes
// again, within StartTimeout like a first start (the wait strategy's
// checks run docker exec, slow on a loaded engine). Its address is
// unchanged (fixed host port bindings).
func Start(t testing.TB, c testcontainers.Container) {
	t.Helper()
	ctx, cancel := startCtx()
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start container %s: %v", shortID(c), err)
	}
}

// Restart stops then starts the container; see [Stop] and [Start].
func Restart(t testing.TB, c testcontainers.Container) {
	t.Helper()
	Stop(t, c)
	Start(t, c)
}

// Pause freezes every process of the container (docker pause): connections
// stay open but nothing answers until [Unpause].
func Pause(t testing.TB, c testcontainers.Container) {
	t.Helper()
	withDocker(t, "pause", c, func(ctx context.Context, cli *testcontainers.DockerClient) error {
		_, err := cli.ContainerPause(ctx, c.GetContainerID(), client.ContainerPauseOptions{})
		return err
	})
}

// Unpause resumes a container frozen by [Pause].
func Unpause(t testing.TB, c testcontainers.Container) {
	t.Helper()
	withDocker(t, "unpause", c, func(ctx context.Context, cli *testcontainers.DockerClient) error {
		_, err := cli.ContainerUnpause(ctx, c.GetContainerID(), client.ContainerUnpauseOptions{})
		return err
	})
}

func withDocker(t testing.TB, what string, c testcontainers.Container, fn func(context.Context, *testcontainers.DockerClient) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatalf("%s container %s: docker client: %v", what, shortID(c), err)
	}
	defer cli.Close()
	if err := fn(ctx, cli); err != nil {
		t.Fatalf("%s container %s: %v", what, shortID(c), err)
	}
}

func shortID(c testcontainers.Container) string {
	id := c.GetContainerID()
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// ---- fixed loopback ports ----------------------------------------------------

var ports struct {
	mu   sync.Mutex
	used map[int]bool
}

// freePort returns a loopback TCP port that is free now and was not handed
// out before by this process. If bus is true, port+10000 must be free too
// (Redis Cluster bus port).
func freePort(bus bool) (int, error) {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	for range 100 {
		p, err := listenFree(0)
		if err != nil {
			return 0, err
		}
		if ports.used[p] || (bus && (p+10000 > 65535 || ports.used[p+10000])) {
			continue
		}
		if bus {
			if _, err := listenFree(p + 10000); err != nil {
				continue
			}
			ports.used[p+10000] = true
		}
		ports.used[p] = true
		return p, nil
	}
	return 0, errors.New("no free loopback port found")
}

func listenFree(port int) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// bindLoopback publishes the container port on 127.0.0.1:hostPort.
func bindLoopback(containerPort string, hostPort int) testcontainers.CustomizeRequestOption {
	return testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
		p := network.MustParsePort(containerPort)
		if hc.PortBindings == nil {
			hc.PortBindings = network.PortMap{}
		}
		hc.PortBindings[p] = []network.PortBinding{{
			HostIP:   netip.AddrFrom4([4]byte{127, 0, 0, 1}),
			HostPort: strconv.Itoa(hostPort),
		}}
	})
}

func isPortClash(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "port is already allocated") ||
		strings.Contains(s, "address already in use")
}

// runOnFixedPort runs a container whose published port is bound to a fresh
// loopback port, retrying with another port if that one was taken meanwhile.
// Every container created is registered for cleanup before its error is
// looked at. opts builds the request for a given host port.
func runOnFixedPort(t testing.TB, ctx context.Context, image string, bus bool,
	opts func(hostPort int) []testcontainers.ContainerCustomizer,
) (*testcontainers.DockerContainer, int, error) {
	t.Helper()
	var lastErr error
	for range 3 {
		port, err := freePort(bus)
		if err != nil {
			return nil, 0, err
		}
		c, err := testcontainers.Run(ctx, image, append(opts(port), labelled)...)
		testcontainers.CleanupContainer(t, c, teardownKill)
		if err == nil {
			return c, port, nil
		}
		lastErr = hint(err)
		if !isPortClash(err) {
			break
		}
		if c != nil {
			_ = c.Terminate(ctx)
		}
	}
	return nil, 0, lastErr
}

// startCtx returns the bounded context one container start runs in.
func startCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), StartTimeout)
}

func logStart(t testing.TB, what, image, addr string, start time.Time) {
	t.Helper()
	t.Logf("containers: %s (%s) ready at %s in %v", what, image, addr, time.Since(start).Round(time.Millisecond))
}

// Kill sends SIGKILL to the container's processes (docker kill): a crash,
// with no shutdown work (a Redis master does not wait for its replicas).
// Like [Stop], it keeps the container's published ports and file system;
// [Start] runs it again.
func Kill(t testing.TB, c testcontainers.Container) {
	t.Helper()
	withDocker(t, "kill", c, func(ctx context.Context, cli *testcontainers.DockerClient) error {
		_, err := cli.ContainerKill(ctx, c.GetContainerID(), client.ContainerKillOptions{Signal: "KILL"})
		return err
	})
}
