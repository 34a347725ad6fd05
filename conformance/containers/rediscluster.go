package containers

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/wait"
)

// RedisClusterMasters is the number of masters [StartRedisCluster] runs.
const RedisClusterMasters = 3

// RedisCluster is a running Redis Cluster whose nodes announce loopback
// addresses that the host can dial directly.
type RedisCluster struct {
	// Nodes are the cluster's nodes (all masters); Nodes[i].Addr is the
	// address the node announces in CLUSTER SLOTS / MOVED, and
	// Nodes[i].Container can be stopped or paused.
	Nodes []*Redis
	// Addrs are the seed addresses for redis.ClusterOptions.Addrs. No custom
	// Dialer is needed.
	Addrs []string
}

// StartRedisCluster starts a Redis Cluster of [RedisClusterMasters] masters
// without replicas (image [RedisImage]), one container per node with host
// networking: node i listens on 127.0.0.1:P_i, its cluster bus on
// 127.0.0.1:P_i+10000, and announces 127.0.0.1:P_i. It returns once every
// node reports cluster_state:ok. A stopped node keeps its port and its
// nodes.conf, so it rejoins with the same address and ID after Start.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	RequireDocker(t)
	ctx, cancel := startCtx()
	defer cancel()
	image := RedisImage()
	begin := time.Now()

	rc := &RedisCluster{}
	for i := range RedisClusterMasters {
		var (
			c   *testcontainers.DockerContainer
			err error
		)
		for range 3 { // retry if the chosen port was taken meanwhile
			var port int
			port, err = freePort(true)
			if err != nil {
				break
			}
			c, err = testcontainers.Run(ctx, image, append(redisClusterNodeOpts(port), labelled)...)
			testcontainers.CleanupContainer(t, c, teardownKill)
			if err == nil {
				rc.Nodes = append(rc.Nodes, &Redis{Container: c, Addr: loopback(port)})
				break
			}
			err = hint(err)
			if !isPortClash(err) {
				break
			}
			if c != nil {
				_ = c.Terminate(ctx)
			}
		}
		if err != nil {
			t.Fatalf("start redis cluster node %d (%s): %v", i, image, err)
		}
	}
	for _, n := range rc.Nodes {
		rc.Addrs = append(rc.Addrs, n.Addr)
	}

	create := append([]string{"redis-cli", "--cluster", "create"}, rc.Addrs...)
	create = append(create, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := execOK(ctx, rc.Nodes[0].Container, create); err != nil {
		t.Fatalf("redis --cluster create: %v\n%s", err, out)
	}
	if err := rc.waitOK(ctx); err != nil {
		t.Fatalf("redis cluster: %v", err)
	}
	logStart(t, fmt.Sprintf("redis cluster of %d masters", len(rc.Nodes)), image, strings.Join(rc.Addrs, ","), begin)
	return rc
}

func redisClusterNodeOpts(port int) []testcontainers.ContainerCustomizer {
	p := strconv.Itoa(port)
	return []testcontainers.ContainerCustomizer{
		testcontainers.WithCmd(redisArgs(
			"--bind", "127.0.0.1",
			"--port", p,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "/tmp/nodes-"+p+".conf",
			"--cluster-node-timeout", "5000",
			"--cluster-announce-ip", "127.0.0.1",
		)...),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.NetworkMode = "host"
		}),
		// With host networking nothing is published; the image's EXPOSE is ignored.
		testcontainers.WithExposedPorts(p + "/tcp"),
		testcontainers.WithWaitStrategyAndDeadline(StartTimeout,
			wait.ForLog("Ready to accept connections"),
			wait.ForExec([]string{"redis-cli", "-p", p, "ping"}).
				WithPollInterval(200*time.Millisecond).
				WithResponseMatcher(func(r io.Reader) bool {
					b, _ := io.ReadAll(r)
					return strings.Contains(string(b), "PONG")
				}),
		),
	}
}

// waitOK polls CLUSTER INFO on every node until all say cluster_state:ok.
func (rc *RedisCluster) waitOK(ctx context.Context) error {
	for {
		var notOK []string
		for _, n := range rc.Nodes {
			_, port, _ := strings.Cut(n.Addr, ":")
			out, err := execOK(ctx, n.Container, []string{"redis-cli", "-p", port, "cluster", "info"})
			if err != nil || !strings.Contains(out, "cluster_state:ok") {
				notOK = append(notOK, n.Addr)
			}
		}
		if len(notOK) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster_state not ok on %v: %w", notOK, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// execOK runs cmd in the container and returns its combined output; a
// non-zero exit code is an error.
func execOK(ctx context.Context, c testcontainers.Container, cmd []string) (string, error) {
	code, r, err := c.Exec(ctx, cmd, tcexec.Multiplexed())
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return string(b), err
	}
	if code != 0 {
		return string(b), fmt.Errorf("%q exited with %d", strings.Join(cmd, " "), code)
	}
	return string(b), nil
}
