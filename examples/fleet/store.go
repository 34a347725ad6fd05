package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/wechatconf/wechatconf/core"
	etcdstore "github.com/wechatconf/wechatconf/store/etcd"
	filestore "github.com/wechatconf/wechatconf/store/file"
	pgstore "github.com/wechatconf/wechatconf/store/postgres"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// The -store values.
const (
	storeMemory   = "memory"
	storeFile     = "file"
	storeRedis    = "redis"
	storePostgres = "postgres"
	storeEtcd     = "etcd"
)

// connectTimeout bounds connecting to a store and checking it answers.
const connectTimeout = 10 * time.Second

// backend is an opened store with what it takes to close it and to remove
// the run's token afterwards.
type backend struct {
	store core.TokenStore
	close func()
	// remove deletes the token kept under key, so that a run leaves
	// nothing behind in a server the user keeps; nil when there is
	// nothing to remove (memory) or the parent removes the whole
	// directory (file).
	remove func(ctx context.Context, key string) error
}

// storeSpec says which store a process opens; the parent passes it to the
// workers.
type storeSpec struct {
	Kind  string        `json:"kind"`
	Conn  string        `json:"conn"`  // directory, Redis address, PostgreSQL DSN or etcd endpoints
	Lease time.Duration `json:"lease"` // the refresh lock's lease, real time
	RunID string        `json:"run_id"`
}

// open opens the store. create is true in the parent, which opens it first
// to check the connection (and creates PostgreSQL's table, so that the
// workers do not race to create it).
func (s storeSpec) open(ctx context.Context, create bool) (*backend, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	switch s.Kind {
	case storeMemory:
		return &backend{store: core.NewMemoryStore(), close: func() {}}, nil

	case storeFile:
		st, err := filestore.New(s.Conn, filestore.WithLease(s.Lease))
		if err != nil {
			return nil, err
		}
		return &backend{store: st, close: func() {}}, nil

	case storeRedis:
		var rdb redis.UniversalClient
		if strings.Contains(s.Conn, "://") {
			opts, err := redis.ParseURL(s.Conn)
			if err != nil {
				return nil, fmt.Errorf("-redis: %w", err)
			}
			rdb = redis.NewClient(opts)
		} else {
			rdb = redis.NewUniversalClient(&redis.UniversalOptions{Addrs: strings.Split(s.Conn, ",")})
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			rdb.Close()
			return nil, fmt.Errorf("cannot reach Redis at %s: %w", s.Conn, err)
		}
		st, err := redisstore.New(rdb, redisstore.WithLease(s.Lease))
		if err != nil {
			rdb.Close()
			return nil, err
		}
		return &backend{
			store: st,
			close: func() { rdb.Close() },
			remove: func(ctx context.Context, key string) error {
				tok, lock := st.RedisKeys(key)
				return errors.Join(rdb.Del(ctx, tok).Err(), rdb.Del(ctx, lock).Err())
			},
		}, nil

	case storePostgres:
		pool, err := pgxpool.New(ctx, s.Conn)
		if err != nil {
			return nil, fmt.Errorf("-postgres: %w", err)
		}
		st, err := pgstore.New(ctx, pool, pgstore.WithLease(s.Lease), pgstore.WithCreateTable(create))
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("cannot use PostgreSQL: %w", err)
		}
		return &backend{
			store: st,
			close: pool.Close,
			remove: func(ctx context.Context, key string) error {
				_, err := pool.Exec(ctx, "DELETE FROM "+pgstore.DefaultTable+" WHERE key = $1", key)
				return err
			},
		}, nil

	case storeEtcd:
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   strings.Split(s.Conn, ","),
			DialTimeout: connectTimeout,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			return nil, fmt.Errorf("-etcd: %w", err)
		}
		if _, err := cli.Get(ctx, "wechatconf-fleet-ping"); err != nil {
			cli.Close()
			return nil, fmt.Errorf("cannot reach etcd at %s: %w", s.Conn, err)
		}
		// A prefix of the run's own, so that removing it removes the token
		// and any lock key the run left.
		prefix := etcdstore.DefaultPrefix + "fleet-" + s.RunID + "/"
		st, err := etcdstore.New(cli, etcdstore.WithPrefix(prefix), etcdstore.WithLease(s.Lease))
		if err != nil {
			cli.Close()
			return nil, err
		}
		return &backend{
			store: st,
			close: func() { cli.Close() },
			remove: func(ctx context.Context, _ string) error {
				_, err := cli.Delete(ctx, prefix, clientv3.WithPrefix())
				return err
			},
		}, nil
	}
	return nil, fmt.Errorf("unknown store %q", s.Kind)
}
