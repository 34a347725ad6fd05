package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/core"
)

// scanCount is the COUNT hint of each SCAN that ListKeys sends: how many
// slots of the keyspace the server looks at per call, so per round trip.
const scanCount = 1000

// ListKeys implements core.KeyLister: the user keys of the tokens the Store
// holds under its prefix that begin with prefix ("" for all), sorted, each
// once.
//
// The Redis names are hashed, so prefix cannot narrow the walk: ListKeys
// SCANs the keyspace (never KEYS) with MATCH on the Store's prefix, a hash
// tag and ":token" — so never a lock, a wake name, or a name of a Store
// with another prefix — COUNT 1000 at a time, and reads field k (the user
// key) of the token hashes each batch found, in one pipeline per batch.
// On a Cluster it walks every master (ForEachMaster), on a Ring every live
// shard (ForEachShard: the keys of a shard the Ring holds down are not
// listed, as Get cannot read them either), one at a time per node and the
// nodes in parallel. A name is listed by the key in its field k only if
// that key maps to that name: a hash copied from another key, or written by
// something else, is skipped, and so is one that is not a hash or expired
// during the walk. A hash whose other fields cannot be decoded is still
// listed by its key. SCAN may return a name twice; ListKeys lists it once.
//
// The cost is one SCAN per 1,000 keys of the database (all of them, not
// only the Store's) and one pipelined HGET per token hash, whatever prefix
// is. Errors wrap the Redis error, and ctx.Err() once ctx is done.
func (s *Store) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.listKeys(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("redisstore: list keys under %q: %w", prefix, redisErr(ctx, err))
	}
	return keys, nil
}

func (s *Store) listKeys(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	match := tokenPattern(s.prefix)
	var (
		mu   sync.Mutex
		seen = make(map[string]bool)
	)
	walk := func(ctx context.Context, node redis.Cmdable) error {
		var cursor uint64
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			names, next, err := node.Scan(ctx, cursor, match, scanCount).Result()
			if err != nil {
				return fmt.Errorf("SCAN: %w", err)
			}
			if len(names) > 0 {
				keys, err := s.keysOf(ctx, names, prefix)
				if err != nil {
					return err
				}
				mu.Lock()
				for _, k := range keys {
					seen[k] = true
				}
				mu.Unlock()
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	var err error
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return walk(ctx, n) })
	case *redis.Ring:
		err = c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return walk(ctx, n) })
	default: // *redis.Client (standalone or Sentinel-backed), or another implementation
		err = walk(ctx, s.client)
	}
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// keysOf reads field k of the token hashes names, through the Store's
// client (which routes each name to its node), and returns the keys that
// begin with prefix and map to the name they were read from.
func (s *Store) keysOf(ctx context.Context, names []string, prefix string) ([]string, error) {
	cmds := make([]*redis.StringCmd, len(names))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.HGet(ctx, n, fieldKey)
		}
		return nil
	})
	var keys []string
	for i, cmd := range cmds {
		k, cerr := cmd.Result()
		switch {
		case errors.Is(cerr, redis.Nil), isWrongType(cerr):
			// Expired or deleted since the SCAN, no field k, or not a
			// hash: no key to list.
			continue
		case cerr != nil:
			return nil, fmt.Errorf("HGET %s %s: %w", names[i], fieldKey, cerr)
		}
		if core.ValidateKey(k) != nil || !strings.HasPrefix(k, prefix) || s.names(k).token != names[i] {
			continue
		}
		keys = append(keys, k)
	}
	if err != nil && !errors.Is(err, redis.Nil) && !isWrongType(err) {
		return nil, fmt.Errorf("HGET: %w", err)
	}
	return keys, nil
}

// tokenPattern returns the SCAN MATCH pattern of the token hashes of a
// Store with the given prefix: the prefix (its glob characters escaped),
// "{", the 32 hex digits of a hash tag, "}:token".
func tokenPattern(prefix string) string {
	var b strings.Builder
	for i := 0; i < len(prefix); i++ {
		switch c := prefix[i]; c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('{')
	b.WriteString(strings.Repeat("[0-9a-f]", 2*tagLen))
	b.WriteString("}:token")
	return b.String()
}
