package containers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

const etcdClientPort = "2379/tcp"

// Etcd is a running etcd member (alone, or one of an [EtcdCluster]).
type Etcd struct {
	// Container is the member's container, for the fault helpers.
	Container testcontainers.Container
	// Name is the member name (also its alias on the cluster network).
	Name string
	// Endpoints holds the member's host-reachable client URL
	// (http://127.0.0.1:P). It stays the same across Stop/Start.
	Endpoints []string
}

// EtcdCluster is a running multi-member etcd cluster.
type EtcdCluster struct {
	// Members are the cluster's members, in start order; Members[i].Container
	// can be stopped or paused to take one member down.
	Members []*Etcd
	// Endpoints holds every member's host-reachable client URL.
	Endpoints []string
	// Network is the dedicated Docker network the members talk over (peer
	// URLs http://NAME:2380, client URLs http://NAME:2379 inside it).
	Network *testcontainers.DockerNetwork
}

type etcdMemberSpec struct {
	name         string
	peerURL      string // advertised peer URL
	initCluster  string // --initial-cluster
	clusterToken string
	network      *testcontainers.DockerNetwork
}

// etcdMemberOpts is the request of one member whose client port is
// published on 127.0.0.1:hostPort; the same command line works for the
// official image and the offline one (both have /usr/local/bin/etcd).
func etcdMemberOpts(spec etcdMemberSpec, hostPort int) []testcontainers.ContainerCustomizer {
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", hostPort)
	cmd := []string{
		"/usr/local/bin/etcd",
		"--name", spec.name,
		"--data-dir", "/var/lib/etcd/" + spec.name,
		"--listen-client-urls", "http://0.0.0.0:2379",
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", "http://0.0.0.0:2380",
		"--initial-advertise-peer-urls", spec.peerURL,
		"--initial-cluster", spec.initCluster,
		"--initial-cluster-token", spec.clusterToken,
		"--initial-cluster-state", "new",
		"--logger", "zap",
		"--log-level", "warn",
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithCmd(cmd...),
		testcontainers.WithExposedPorts(etcdClientPort),
		bindLoopback(etcdClientPort, hostPort),
		testcontainers.WithWaitStrategyAndDeadline(StartTimeout,
			// /health is true once the member has a leader (for a cluster: quorum).
			wait.ForHTTP("/health").WithPort(etcdClientPort).
				WithPollInterval(250*time.Millisecond).
				WithResponseMatcher(func(body io.Reader) bool {
					b, _ := io.ReadAll(body)
					return strings.Contains(string(b), `"health":"true"`)
				}),
		),
	}
	if spec.network != nil {
		opts = append(opts, tcnetwork.WithNetwork([]string{spec.name}, spec.network))
	}
	return opts
}

func newToken() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// StartEtcd starts a single-member etcd (image [EtcdImage]) and returns once
// /health reports true.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	RequireDocker(t)
	ctx, cancel := startCtx()
	defer cancel()
	image := EtcdImage()
	spec := etcdMemberSpec{
		name:         "etcd0",
		peerURL:      "http://127.0.0.1:2380",
		initCluster:  "etcd0=http://127.0.0.1:2380",
		clusterToken: "wechatconf-" + newToken(),
	}
	begin := time.Now()
	c, port, err := runOnFixedPort(t, ctx, image, false, func(hostPort int) []testcontainers.ContainerCustomizer {
		return etcdMemberOpts(spec, hostPort)
	})
	if err != nil {
		t.Fatalf("start etcd (%s): %v", image, err)
	}
	ep, err := clientURL(ctx, c, port)
	if err != nil {
		t.Fatalf("etcd address: %v", err)
	}
	e := &Etcd{Container: c, Name: spec.name, Endpoints: []string{ep}}
	logStart(t, "etcd", image, e.Endpoints[0], begin)
	return e
}

// StartEtcdCluster starts an n-member etcd cluster (image [EtcdImage]) on a
// dedicated Docker network. The members start concurrently (they need each
// other for quorum); it returns once every member's /health reports true.
func StartEtcdCluster(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("StartEtcdCluster: n = %d, want >= 1", n)
	}
	RequireDocker(t)
	ctx, cancel := startCtx()
	defer cancel()
	image := EtcdImage()
	begin := time.Now()

	nw, err := tcnetwork.New(ctx, tcnetwork.WithLabels(map[string]string{Label: "true"}))
	testcontainers.CleanupNetwork(t, nw)
	if err != nil {
		t.Fatalf("etcd cluster network: %v", err)
	}

	token := "wechatconf-" + newToken()
	names := make([]string, n)
	peers := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("etcd%d", i)
		peers[i] = fmt.Sprintf("%s=http://%s:2380", names[i], names[i])
	}
	initCluster := strings.Join(peers, ",")

	type result struct {
		c    *testcontainers.DockerContainer
		port int
		err  error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		spec := etcdMemberSpec{
			name:         names[i],
			peerURL:      fmt.Sprintf("http://%s:2380", names[i]),
			initCluster:  initCluster,
			clusterToken: token,
			network:      nw,
		}
		wg.Go(func() {
			// runOnFixedPort registers each container's cleanup itself
			// (t.Cleanup may be called from other goroutines).
			c, port, err := runOnFixedPort(t, ctx, image, false, func(hostPort int) []testcontainers.ContainerCustomizer {
				return etcdMemberOpts(spec, hostPort)
			})
			results[i] = result{c, port, err}
		})
	}
	wg.Wait()

	cl := &EtcdCluster{Network: nw}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("start etcd cluster member %s (%s): %v", names[i], image, r.err)
		}
		ep, err := clientURL(ctx, r.c, r.port)
		if err != nil {
			t.Fatalf("etcd cluster member %s address: %v", names[i], err)
		}
		cl.Members = append(cl.Members, &Etcd{Container: r.c, Name: names[i], Endpoints: []string{ep}})
		cl.Endpoints = append(cl.Endpoints, ep)
	}
	logStart(t, fmt.Sprintf("etcd cluster of %d", n), image, strings.Join(cl.Endpoints, ","), begin)
	return cl
}

// clientURL reads the member's client URL back from the container and checks
// it against the URL the member advertises.
func clientURL(ctx context.Context, c testcontainers.Container, hostPort int) (string, error) {
	addr, err := MappedAddr(ctx, c, etcdClientPort)
	if err != nil {
		return "", err
	}
	url := "http://" + addr
	if advertised := fmt.Sprintf("http://127.0.0.1:%d", hostPort); url != advertised {
		return "", fmt.Errorf("published at %s but advertises %s", url, advertised)
	}
	return url, nil
}
