package storeurl

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Topology is how a redis:// or rediss:// URL reaches Redis.
type Topology string

// The Redis topologies, chosen by the URL as go-redis's NewUniversalClient
// chooses its client: master_name → Sentinel; two or more addresses, or
// ?cluster=true → Cluster; otherwise one server.
const (
	// Standalone is one Redis server (go-redis ParseURL, NewClient).
	Standalone Topology = "standalone"
	// Sentinel is the master a set of Redis Sentinels names (go-redis
	// ParseFailoverURL, NewFailoverClient).
	Sentinel Topology = "sentinel"
	// Cluster is a Redis Cluster reached through seed nodes (go-redis
	// ParseClusterURL, NewClusterClient).
	Cluster Topology = "cluster"
)

// defaultRedisPort is go-redis's default port for a host without one (for a
// sentinel too: go-redis does not default to 26379).
const defaultRedisPort = "6379"

// parseRedis parses a redis:// or rediss:// URL into s: our own ?prefix=
// and ?cluster=, a comma-separated host list (go-redis writes the others as
// ?addr=), then go-redis's parser for the topology.
func parseRedis(s *Spec, u *url.URL) error {
	if u.Host == "" {
		return errors.New("no host: write redis://host:6379/0")
	}
	q := u.Query()
	s.Prefix = q.Get("prefix")
	q.Del("prefix")
	cluster := false
	if q.Has("cluster") {
		switch v := q.Get("cluster"); v {
		case "true", "1":
			cluster = true
		case "false", "0", "":
		default:
			return fmt.Errorf("cluster=%q: want cluster=true or cluster=false", v)
		}
		q.Del("cluster")
	}
	var hosts []string
	for h := range strings.SplitSeq(u.Host, ",") {
		a, err := redisAddr(h)
		if err != nil {
			return err
		}
		hosts = append(hosts, a)
	}
	n := len(hosts) + len(q["addr"])
	q["addr"] = append(hosts[1:], q["addr"]...)
	if len(q["addr"]) == 0 {
		q.Del("addr")
	}
	u2 := *u
	u2.Host, u2.RawQuery = hosts[0], q.Encode()

	switch {
	case q.Has("master_name"):
		if cluster {
			return errors.New("master_name (Sentinel) and cluster=true (Cluster) exclude each other: choose one")
		}
		o, err := goredis.ParseFailoverURL(u2.String())
		if err != nil {
			return err
		}
		if o.MasterName == "" {
			return errors.New("master_name is empty: name the master the sentinels monitor")
		}
		s.Topology, s.failover = Sentinel, o
		s.Addrs, s.DB, s.MasterName = o.SentinelAddrs, o.DB, o.MasterName
	case cluster || n > 1:
		switch u.Path {
		case "", "/", "/0":
		default:
			return fmt.Errorf("database %q: a Redis Cluster has database 0 only: write redis://host1:6379,host2:6379 (no /DB)", strings.TrimPrefix(u.Path, "/"))
		}
		u2.Path = ""
		o, err := goredis.ParseClusterURL(u2.String())
		if err != nil {
			return err
		}
		s.Topology, s.cluster, s.Addrs = Cluster, o, o.Addrs
	default:
		o, err := goredis.ParseURL(u2.String())
		if err != nil {
			return err
		}
		s.Topology, s.redis = Standalone, o
		s.Addrs, s.DB = []string{o.Addr}, o.DB
	}
	s.Kind = Redis
	return nil
}

// redisAddr is h as host:port, with go-redis's default port.
func redisAddr(h string) (string, error) {
	if host, port, err := net.SplitHostPort(h); err == nil {
		if host == "" || port == "" {
			return "", fmt.Errorf("address %q: want host:port", h)
		}
		return h, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if host == "" || strings.ContainsAny(host, "[]") {
		return "", fmt.Errorf("address %q: want host:port, e.g. redis://host1:6379,host2:6379", h)
	}
	return net.JoinHostPort(host, defaultRedisPort), nil
}

// RedisOptions returns a copy of the go-redis options of a redis:// or
// rediss:// URL naming one server (Topology Standalone), nil for another
// kind or topology: for a command that reads what the store does not
// expose, such as a refresh lock's lease (cmd/wechatconf's inspect). The
// options hold the password: never print them. NewRedisClient serves every
// topology.
func (s Spec) RedisOptions() *goredis.Options {
	if s.redis == nil {
		return nil
	}
	o := *s.redis
	return &o
}

// NewRedisClient returns a new go-redis client for a redis:// or rediss://
// URL, of its topology (a *redis.Client for Standalone and Sentinel, a
// *redis.ClusterClient for Cluster), nil for another kind. It does no I/O;
// the caller closes it.
func (s Spec) NewRedisClient() goredis.UniversalClient {
	switch {
	case s.redis != nil:
		o := *s.redis
		return goredis.NewClient(&o)
	case s.failover != nil:
		o := *s.failover
		return goredis.NewFailoverClient(&o)
	case s.cluster != nil:
		o := *s.cluster
		return goredis.NewClusterClient(&o)
	}
	return nil
}
