// Package containers starts the real servers the conformance tests run
// against — Redis, a Redis Cluster, Redis with Sentinel, PostgreSQL 15 and etcd (single member or
// a cluster) — in Docker containers through testcontainers-go, and offers
// fault helpers (Stop, Start, Restart, Kill, Pause, Unpause) for failure tests.
//
// Every Start function takes a testing.TB, calls [RequireDocker] first,
// registers the container's teardown with t.Cleanup before it looks at the
// start error, starts within a bounded context, and logs how long the start
// took. Addresses are read back from the container (host and mapped port).
//
// # Requirements
//
// A local Docker engine: run scripts/docker-up (it installs docker.io and
// debootstrap from apt when missing and starts dockerd). Without an engine,
// [RequireDocker] skips the test, or fails it when the environment variable CI
// is set.
//
// testcontainers-go must be told two things on this kind of machine; export
// them before `go test` ([RequireDocker] fails fast, naming the variable, when
// the second is missing and testcontainers would pick a non-loopback host):
//
//	TESTCONTAINERS_RYUK_DISABLED=true     # no reaper container (its image cannot be pulled offline);
//	                                      # teardown relies on t.Cleanup
//	TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 # the engine's published ports are on the loopback
//
// # Images
//
// The images come from environment variables, defaulting to pinned official
// images:
//
//	WECHATCONF_REDIS_IMAGE     redis:7.4
//	WECHATCONF_POSTGRES_IMAGE  postgres:15
//	WECHATCONF_ETCD_IMAGE      gcr.io/etcd-development/etcd:v3.6.15
//
// Behind a firewall that blocks Docker Hub, gcr.io and quay.io, build local
// stand-ins from Debian packages and the Go module proxy and point the
// variables at them:
//
//	bash scripts/docker-up
//	eval "$(bash scripts/offline-images --env)"
//
// The harness only relies on what both kinds of image share: redis-server on
// PATH, the postgres image's POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB
// contract, and /usr/local/bin/etcd.
//
// # Addresses and restarts
//
// Each published port is bound to a fixed, free loopback port chosen at start
// (127.0.0.1:P), so an address stays valid across [Stop]/[Start]/[Restart]: a
// client keeps its address and reconnects. [MappedAddr] re-reads an address
// from the engine if needed. A port taken by another process between the
// choice and the container's start makes the start retry with a new port.
//
// Stop/Start keep the container's file system but not the server's memory:
// Redis comes back empty (no persistence is configured), etcd and PostgreSQL
// keep their data.
//
// # Teardown
//
// Containers are removed (killed, not stopped gracefully) by t.Cleanup. With
// the reaper disabled, a test binary that is killed leaves them behind; every
// container and network carries the label [Label]:
//
//	docker rm -f $(docker ps -aq --filter label=wechatconf.conformance)
//	docker network prune -f --filter label=wechatconf.conformance
//
// # Redis Cluster
//
// [StartRedisCluster] runs three masters (no replicas), one container each,
// with host networking: every node listens on 127.0.0.1:P (cluster bus on
// P+10000) and announces 127.0.0.1:P, so the addresses in CLUSTER SLOTS and
// MOVED replies are directly dialable from the host. go-redis needs nothing
// special:
//
//	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs})
//
// Host networking needs a Linux engine (not Docker Desktop's VM).
//
// # Redis Sentinel
//
// [StartRedisSentinel] runs a master, two replicas and three sentinels
// (quorum 2, down-after 1 s), one container each, with host networking like
// the cluster: every server listens on and announces 127.0.0.1:P (replicas
// with replica-announce-ip, sentinels with sentinel announce-ip), so the
// master address the sentinels hand out is directly dialable from the host:
//
//	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
//		MasterName: rs.MasterName, SentinelAddrs: rs.SentinelAddrs})
//
// [Kill] the master's container (SIGKILL, no shutdown work) and the sentinels
// promote a replica within a few seconds; [RedisSentinel.WaitFailover] waits
// for that. Sentinels run as `redis-server FILE --sentinel`, which both the
// official image and the offline one support.
//
// # etcd cluster
//
// [StartEtcdCluster] runs n members on a dedicated Docker network; members
// talk to each other over peer URLs http://etcdI:2380 on that network, and each
// advertises its host-reachable client URL http://127.0.0.1:P, which is what
// the member list reports. Use clientv3 with Endpoints set to
// [EtcdCluster.Endpoints] (auto-sync off or on both work, as the advertised
// URLs are host URLs). Inside the Docker network a member is reachable at
// http://etcdI:2379.
package containers
