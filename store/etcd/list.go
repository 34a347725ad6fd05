package etcdstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wechatconf/wechatconf/core"
)

// listPage is how many etcd keys one range read of ListKeys returns.
const listPage = 1000

// ListKeys implements core.KeyLister: the user keys of the tokens stored
// under the Store's prefix that begin with prefix ("" for all), sorted,
// each once.
//
// It reads only etcd keys, never values: keys-only range reads of 1,000
// keys at a time over P+"token/" (never P+"lock/", so no lock queue key),
// each starting after the last key of the previous page, narrowed to the
// range whose base64url form begins with the encoding of the prefix's
// whole 3-byte groups; each etcd key is decoded back to the user key and
// the rest of the prefix compared in Go. An etcd key under P+"token/" that
// is not the encoding of a valid key (written by something else) is
// skipped. Every read is linearizable (clientv3's default) but the pages
// are not one snapshot: a key written after the walk passed its place may
// be missed, one stored throughout is listed once. A token whose value
// cannot be decoded is listed by its key. ctx bounds the walk.
func (s *Store) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.listKeys(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: list keys under %q: %w", prefix, core.ContextError(ctx, err))
	}
	return keys, nil
}

func (s *Store) listKeys(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Every key that begins with prefix has an encoding that begins with
	// the encoding of prefix's whole 3-byte groups (base64 maps each group
	// to 4 characters, independently of what follows).
	segment := s.prefix + tokenSegment
	from := segment + encodeKey(prefix[:len(prefix)/3*3])
	end := clientv3.GetPrefixRangeEnd(from)
	var keys []string
	start := from
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		resp, err := s.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithKeysOnly(),
			clientv3.WithLimit(listPage), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		if err != nil {
			return nil, err
		}
		for _, kv := range resp.Kvs {
			enc, ok := strings.CutPrefix(string(kv.Key), segment)
			if !ok {
				continue
			}
			b, err := base64.RawURLEncoding.Strict().DecodeString(enc)
			key := string(b)
			if err != nil || core.ValidateKey(key) != nil || !strings.HasPrefix(key, prefix) {
				continue
			}
			keys = append(keys, key)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	// base64url's alphabet is not in byte order: sort the user keys. Each
	// etcd key was read once and maps to one user key.
	slices.Sort(keys)
	return slices.Compact(keys), nil
}
