package containertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	etcdstore "github.com/wechatconf/wechatconf/store/etcd"
)

// storedToken is a value under a token's etcd key, in the store's format
// (version 1 of core's codec).
type storedToken struct {
	V         int    `json:"v"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	ExpiresAt string `json:"expires_at"`
}

// TestEmptyValue tests the empty-value rule on a real etcd: Set of a token
// with an empty value fails with an error wrapping core.ErrEmptyToken and
// puts nothing; a value whose "value" is empty, put under the token's etcd
// key in the store's format, makes Get fail with an error wrapping
// core.ErrCorrupt (not ErrNotFound), and Refresh, whatever stale the caller
// saw, fetches once and repairs it.
func TestEmptyValue(t *testing.T) {
	eps, child := endpointsFromEnv(singleEnv)
	if !child {
		eps = containers.StartEtcd(t).Endpoints
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := uniquePrefix(t)
	cli := newClient(t, eps)
	s, err := etcdstore.New(cli, etcdstore.WithPrefix(prefix), etcdstore.WithLease(testLease))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("SetRefused", func(t *testing.T) {
		for _, e := range []core.Token{{}, {ExpiresAt: time.Now().Add(time.Hour)}} {
			if err := s.Set(ctx, "set-empty", e); !errors.Is(err, core.ErrEmptyToken) {
				t.Errorf("Set(%q, %+v): %v, want an error wrapping core.ErrEmptyToken", "set-empty", e, err)
			}
		}
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != 0 {
			t.Errorf("etcd keys under %q after refused Sets: %d, want none", prefix, resp.Count)
		}
	})

	for _, stale := range []string{"", "seen-by-the-caller"} {
		t.Run("StoredEmpty/stale="+stale, func(t *testing.T) {
			key := "empty/" + stale
			if err := s.Set(ctx, key, core.Token{Value: "old", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			// The token's etcd key is the one under prefix+"token/" whose
			// value names key.
			resp, err := cli.Get(ctx, prefix+"token/", clientv3.WithPrefix())
			if err != nil {
				t.Fatal(err)
			}
			var tokenKey string
			for _, kv := range resp.Kvs {
				var st storedToken
				if json.Unmarshal(kv.Value, &st) == nil && st.Key == key {
					tokenKey = string(kv.Key)
				}
			}
			if tokenKey == "" {
				t.Fatalf("no etcd key under %q holds the token of %q", prefix+"token/", key)
			}
			raw, err := json.Marshal(storedToken{V: 1, Key: key, Value: "", ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cli.Put(ctx, tokenKey, string(raw)); err != nil {
				t.Fatal(err)
			}

			if got, err := s.Get(ctx, key); !errors.Is(err, core.ErrCorrupt) || errors.Is(err, core.ErrNotFound) {
				t.Errorf("Get(%q) of %s = %+v, %v; want an error wrapping core.ErrCorrupt, not core.ErrNotFound", key, raw, got, err)
			}
			fresh := core.Token{Value: "fresh", ExpiresAt: time.Now().Add(time.Hour)}
			n := 0
			got, err := s.Refresh(ctx, key, stale, func(context.Context) (core.Token, error) { n++; return fresh, nil })
			if err != nil || n != 1 || got.Value != fresh.Value {
				t.Errorf("Refresh(%q, stale=%q) over %s = %+v, %v, %d fetches; want the fetched token from 1 fetch (an empty value is corrupt, which counts as absent)", key, stale, raw, got, err, n)
			}
			if got, err := s.Get(ctx, key); err != nil || got.Value != fresh.Value {
				t.Errorf("Get(%q) after the repair = %+v, %v; want %q", key, got, err, fresh.Value)
			}
		})
	}
}
