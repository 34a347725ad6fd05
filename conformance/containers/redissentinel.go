package containers

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Shape and timing of the set [StartRedisSentinel] runs.
const (
	// RedisSentinelMasterName is the name the sentinels monitor the master
	// under (redis.FailoverOptions.MasterName).
	RedisSentinelMasterName = "wechatconf"
	// RedisSentinelReplicas is the number of replicas of the initial master.
	RedisSentinelReplicas = 2
	// RedisSentinels is the number of sentinels.
	RedisSentinels = 3
	// RedisSentinelQuorum is how many sentinels must agree that the master
	// is down before a failover starts (a majority of [RedisSentinels] must
	// still authorise it).
	RedisSentinelQuorum = 2
	// RedisSentinelDownAfter is the sentinels' down-after-milliseconds: how
	// long a master may not answer before a sentinel thinks it down.
	RedisSentinelDownAfter = 1000 * time.Millisecond
	// RedisSentinelFailoverTimeout is the sentinels' failover-timeout; a
	// failover that did not complete is retried by the same sentinel after
	// twice this.
	RedisSentinelFailoverTimeout = 3000 * time.Millisecond
)

// RedisSentinel is a running Redis master with replicas, monitored by
// sentinels, all on host networking with loopback addresses: every server
// listens on, and announces, 127.0.0.1:P, so the addresses sentinels hand out
// (SENTINEL get-master-addr-by-name, +switch-master) are directly dialable
// from the host.
type RedisSentinel struct {
	// MasterName is what the sentinels monitor ([RedisSentinelMasterName]).
	MasterName string
	// Master is the initial master; kill its Container (see [Kill]) to make
	// the sentinels fail over. After a failover, [RedisSentinel.Node] finds
	// the node behind the current master address.
	Master *Redis
	// Replicas are the initial master's replicas ([RedisSentinelReplicas]).
	Replicas []*Redis
	// Sentinels are the sentinels ([RedisSentinels]).
	Sentinels []*Redis
	// SentinelAddrs are the sentinels' host:port, for
	// redis.FailoverOptions.SentinelAddrs.
	SentinelAddrs []string
}

// StartRedisSentinel starts one Redis master, [RedisSentinelReplicas]
// replicas of it and [RedisSentinels] sentinels (quorum
// [RedisSentinelQuorum], down-after [RedisSentinelDownAfter], failover
// timeout [RedisSentinelFailoverTimeout]), one container each (image
// [RedisImage], which must have redis-server on PATH; sentinels run
// `redis-server FILE --sentinel`), with host networking. It returns once the
// replicas are in sync and every sentinel sees the master, both replicas and
// the other sentinels, and SENTINEL CKQUORUM passes, so that killing the
// master leads to a failover within a few seconds.
//
// A killed node is not restarted by the harness; [Start] brings a data node
// back empty (no persistence) on its old address, where the sentinels turn
// it into a replica of the new master.
func StartRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	RequireDocker(t)
	ctx, cancel := startCtx()
	defer cancel()
	image := RedisImage()
	begin := time.Now()

	rs := &RedisSentinel{MasterName: RedisSentinelMasterName}
	master, err := runHostRedis(t, ctx, image, redisReady, func(p string) []string {
		return redisArgs("--bind", "127.0.0.1", "--port", p, "--replica-announce-ip", "127.0.0.1")
	})
	if err != nil {
		t.Fatalf("start redis sentinel master (%s): %v", image, err)
	}
	rs.Master = master
	_, mport, _ := net.SplitHostPort(master.Addr)

	// Replicas start in parallel, then sentinels in parallel once the
	// replicas are in sync: a sentinel learns of replicas from the master's
	// INFO, which it reads at once on connecting and then every 10 s only.
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	rs.Replicas = make([]*Redis, RedisSentinelReplicas)
	rs.Sentinels = make([]*Redis, RedisSentinels)
	for i := range rs.Replicas {
		wg.Go(func() {
			r, err := runHostRedis(t, ctx, image, redisReady, func(p string) []string {
				return redisArgs("--bind", "127.0.0.1", "--port", p, "--replica-announce-ip", "127.0.0.1",
					"--replicaof", "127.0.0.1", mport)
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("replica %d: %w", i, err))
			}
			rs.Replicas[i] = r
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("start redis sentinel replicas (%s): %v", image, errs)
	}
	if err := poll(ctx, rs.replicasOnline); err != nil {
		t.Fatalf("redis sentinel replicas: %v", err)
	}
	for i := range rs.Sentinels {
		wg.Go(func() {
			s, err := runHostRedis(t, ctx, image, "+monitor master", func(p string) []string {
				return sentinelCmd(p, rs.MasterName, mport)
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("sentinel %d: %w", i, err))
			}
			rs.Sentinels[i] = s
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("start redis sentinels (%s): %v", image, errs)
	}
	for _, s := range rs.Sentinels {
		rs.SentinelAddrs = append(rs.SentinelAddrs, s.Addr)
	}
	if err := poll(ctx, rs.sentinelsReady); err != nil {
		t.Fatalf("redis sentinel set: %v", err)
	}
	logStart(t, fmt.Sprintf("redis sentinel set (master %s, %d replicas, %d sentinels)",
		rs.Master.Addr, len(rs.Replicas), len(rs.Sentinels)), image, strings.Join(rs.SentinelAddrs, ","), begin)
	return rs
}

const redisReady = "Ready to accept connections"

// sentinelCmd writes a sentinel config file (sentinels rewrite theirs, so it
// must be a writable file) and runs the sentinel from it.
func sentinelCmd(port, name, masterPort string) []string {
	conf := strings.Join([]string{
		"port " + port,
		"bind 127.0.0.1",
		"protected-mode no",
		"sentinel announce-ip 127.0.0.1",
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %s %d", name, masterPort, RedisSentinelQuorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", name, RedisSentinelDownAfter.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s %d", name, RedisSentinelFailoverTimeout.Milliseconds()),
		fmt.Sprintf("sentinel parallel-syncs %s %d", name, RedisSentinelReplicas),
	}, "\n")
	file := "/tmp/sentinel-" + port + ".conf"
	return []string{"sh", "-c", fmt.Sprintf("printf '%%s\\n' '%s' >%s && exec redis-server %s --sentinel",
		strings.ReplaceAll(conf, "\n", "' '"), file, file)}
}

// runHostRedis runs one redis-server (or sentinel) container with host
// networking on a fresh loopback port, retrying with another port if that one
// was taken meanwhile. cmd builds the command for a given port; the container
// is up once readyLog was logged and redis-cli PING answers.
func runHostRedis(t testing.TB, ctx context.Context, image, readyLog string, cmd func(port string) []string) (*Redis, error) {
	t.Helper()
	var lastErr error
	for range 3 {
		port, err := freePort(false)
		if err != nil {
			return nil, err
		}
		p := strconv.Itoa(port)
		c, err := testcontainers.Run(ctx, image,
			testcontainers.WithCmd(cmd(p)...),
			testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
				hc.NetworkMode = "host"
			}),
			// With host networking nothing is published; the image's EXPOSE is ignored.
			testcontainers.WithExposedPorts(p+"/tcp"),
			testcontainers.WithWaitStrategyAndDeadline(StartTimeout,
				wait.ForLog(readyLog),
				redisPing(p),
			),
			labelled,
		)
		testcontainers.CleanupContainer(t, c, teardownKill)
		if err == nil {
			return &Redis{Container: c, Addr: loopback(port)}, nil
		}
		logs := containerLogTail(ctx, c)
		lastErr = hint(err)
		if logs != "" {
			lastErr = fmt.Errorf("%w; its log ends: %s", lastErr, logs)
		}
		// A redis-server that lost its port to another process between
		// freePort and its bind exits (code 1) with the reason in its log.
		if !isPortClash(err) && !strings.Contains(logs, "Address already in use") {
			break
		}
		if c != nil {
			_ = c.Terminate(ctx)
		}
	}
	return nil, lastErr
}

func redisPing(port string) wait.Strategy {
	return wait.ForExec([]string{"redis-cli", "-p", port, "ping"}).
		WithPollInterval(200 * time.Millisecond).
		WithResponseMatcher(func(r io.Reader) bool {
			b, _ := io.ReadAll(r)
			return strings.Contains(string(b), "PONG")
		})
}

// poll calls notReady every 100 ms until it returns "" or ctx ends.
func poll(ctx context.Context, notReady func(context.Context) string) error {
	for {
		why := notReady(ctx)
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready (%s): %w", why, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// redisDo runs one command on addr from the host (a short-lived connection).
func redisDo(ctx context.Context, addr string, args ...any) *redis.Cmd {
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, MaxRetries: -1, DialTimeout: 2 * time.Second,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, PoolSize: 1})
	defer c.Close()
	return c.Do(ctx, args...)
}

// replicasOnline says why the replicas are not all online at the master.
func (rs *RedisSentinel) replicasOnline(ctx context.Context) string {
	info, err := redisDo(ctx, rs.Master.Addr, "INFO", "replication").Text()
	if err != nil {
		return fmt.Sprintf("master INFO: %v", err)
	}
	if n := strings.Count(info, ",state=online,"); n != len(rs.Replicas) {
		return fmt.Sprintf("%d of %d replicas online", n, len(rs.Replicas))
	}
	return ""
}

// sentinelsReady says why a sentinel does not yet see every replica and the
// other sentinels, or lacks quorum.
func (rs *RedisSentinel) sentinelsReady(ctx context.Context) string {
	for _, s := range rs.Sentinels {
		m, err := redisDo(ctx, s.Addr, "SENTINEL", "MASTER", rs.MasterName).Slice()
		if err != nil {
			return fmt.Sprintf("sentinel %s: %v", s.Addr, err)
		}
		field := func(k string) string {
			for i := 0; i+1 < len(m); i += 2 {
				if m[i] == k {
					return fmt.Sprint(m[i+1])
				}
			}
			return ""
		}
		if got := field("num-slaves"); got != strconv.Itoa(len(rs.Replicas)) {
			return fmt.Sprintf("sentinel %s sees %s replicas", s.Addr, got)
		}
		if got := field("num-other-sentinels"); got != strconv.Itoa(len(rs.Sentinels)-1) {
			return fmt.Sprintf("sentinel %s sees %s other sentinels", s.Addr, got)
		}
		if err := redisDo(ctx, s.Addr, "SENTINEL", "CKQUORUM", rs.MasterName).Err(); err != nil {
			return fmt.Sprintf("sentinel %s ckquorum: %v", s.Addr, err)
		}
	}
	return ""
}

// MasterAddr asks the sentinels, in turn, for the current master's host:port
// (SENTINEL GET-MASTER-ADDR-BY-NAME) and returns the first answer.
func (rs *RedisSentinel) MasterAddr(ctx context.Context) (string, error) {
	var lastErr error
	for _, s := range rs.SentinelAddrs {
		f, err := redisDo(ctx, s, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", rs.MasterName).StringSlice()
		if err != nil || len(f) != 2 {
			lastErr = fmt.Errorf("sentinel %s: get-master-addr-by-name: %q, %v", s, f, err)
			continue
		}
		return net.JoinHostPort(f[0], f[1]), nil
	}
	return "", lastErr
}

// WaitFailover polls the sentinels (every 100 ms, up to timeout) until they
// name a master other than old, and returns the new master's host:port. It
// fails the test on timeout.
func (rs *RedisSentinel) WaitFailover(t testing.TB, old string, timeout time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		addr, err := rs.MasterAddr(ctx)
		if err == nil && addr != old {
			return addr
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no failover away from %s within %v (last answer %q, %v)", old, timeout, addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Node returns the data node (master or replica) whose address is addr, or
// nil.
func (rs *RedisSentinel) Node(addr string) *Redis {
	for _, n := range append([]*Redis{rs.Master}, rs.Replicas...) {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// containerLogTail returns the last lines of c's log (at most 1 KiB), ""
// when there is no container or its log cannot be read.
func containerLogTail(ctx context.Context, c *testcontainers.DockerContainer) string {
	if c == nil {
		return ""
	}
	r, err := c.Logs(ctx)
	if err != nil {
		return ""
	}
	defer r.Close()
	b, _ := io.ReadAll(io.LimitReader(r, 1<<20))
	s := strings.TrimSpace(string(b))
	if len(s) > 1024 {
		s = s[len(s)-1024:]
	}
	return s
}
