package containers_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/conformance/containers"
)

// A conformance test starts the servers it needs; teardown is automatic.
// Run with:
//
//	export TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
//	eval "$(bash scripts/offline-images --env)"   # only where Docker Hub is blocked
//	go test ./...
func Example() {
	var t testing.TB // in a test: func TestX(t *testing.T)

	// A Redis Cluster: the seed addresses are all go-redis needs.
	rc := containers.StartRedisCluster(t)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs})
	defer rdb.Close()
	_ = rdb.Set(context.Background(), "k", "v", 0).Err()

	// Take one master down and bring it back on the same address.
	containers.Stop(t, rc.Nodes[0].Container)
	containers.Start(t, rc.Nodes[0].Container)

	// PostgreSQL and etcd.
	pg := containers.StartPostgres(t)
	_ = pg.DSN // postgres://wechatconf:wechatconf@127.0.0.1:P/wechatconf?sslmode=disable
	cl := containers.StartEtcdCluster(t, 3)
	_ = cl.Endpoints // clientv3.Config{Endpoints: cl.Endpoints}
	containers.Pause(t, cl.Members[2].Container)
	containers.Unpause(t, cl.Members[2].Container)
}
