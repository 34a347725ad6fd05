package cli

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
)

// redisNamer is the Redis store's: the Redis names of a key.
type redisNamer interface {
	RedisKeys(key string) (token, lock string)
}

// lockReader reads a key's refresh lock where the store can tell it
// cheaply: on Redis, the lock is a string key with a PX lease (one PTTL).
// The file store's flock, PostgreSQL's advisory lock and etcd's lease
// cannot be read without taking them or a query per backend, so inspect
// and ls show no lock for them. Its client is the command's own, of the
// URL's topology (storeurl.Spec.NewRedisClient: one server, Sentinel,
// Cluster), so that it needs nothing from the store but the names.
type lockReader struct {
	client goredis.UniversalClient
	names  redisNamer
}

func newLockReader(spec storeurl.Spec, st core.TokenStore) *lockReader {
	r := &lockReader{}
	if names, ok := st.(redisNamer); ok {
		if c := spec.NewRedisClient(); c != nil {
			r.client, r.names = c, names
		}
	}
	return r
}

// read returns key's lock, or nil when the store cannot tell.
func (r *lockReader) read(ctx context.Context, key string) *LockView {
	if r.client == nil {
		return nil
	}
	_, lock := r.names.RedisKeys(key)
	ttl, err := r.client.PTTL(ctx, lock).Result()
	if err != nil {
		return nil
	}
	if ttl < 0 { // -2: no lock; -1 (no lease) is not one of the store's
		return &LockView{Held: false}
	}
	lease := ttl.Round(time.Millisecond).Seconds()
	return &LockView{Held: true, Lease: &lease}
}

func (r *lockReader) close() {
	if r.client != nil {
		r.client.Close()
	}
}
