package etcdstore

import (
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// TestLockPrefixesDisjoint tests that no key's mutex queue prefix is a
// prefix of another key's, and that token keys are distinct, for keys that
// are prefixes of one another or contain the characters etcd layouts trip
// on.
func TestLockPrefixesDisjoint(t *testing.T) {
	s := &Store{prefix: DefaultPrefix}
	keys := []string{"a", "a/b", "a/", "ab", "{tag}", "tag", "k", "k:lock", "k/lock", "../x", "x/..", "/", "//", "ü", "u",
		strings.Repeat("z", core.MaxKeyLen), strings.Repeat("z", core.MaxKeyLen-1), "a\x01", "a\x7f"}
	tokens := map[string]string{}
	for _, k := range keys {
		tk := s.tokenKey(k)
		if other, ok := tokens[tk]; ok {
			t.Errorf("keys %q and %q share the token key %q", k, other, tk)
		}
		tokens[tk] = k
		// concurrency.NewMutex appends "/" to the prefix it is given.
		pk := s.lockPrefix(k) + "/"
		if strings.Count(strings.TrimPrefix(pk, DefaultPrefix+lockSegment), "/") != 1 {
			t.Errorf("lock prefix %q of %q: want exactly the terminating /", pk, k)
		}
		for _, k2 := range keys {
			if k2 == k {
				continue
			}
			pk2 := s.lockPrefix(k2) + "/"
			if strings.HasPrefix(pk2, pk) {
				t.Errorf("lock prefix %q of key %q is a prefix of %q, that of key %q: their mutex queues would mix", pk, k, pk2, k2)
			}
			if strings.HasPrefix(s.tokenKey(k2), pk) || strings.HasPrefix(pk2, s.tokenKey(k)) {
				t.Errorf("token and lock keys of %q and %q overlap", k, k2)
			}
		}
	}
}

// TestLeaseTTL tests how leases are rounded to etcd's whole seconds.
func TestLeaseTTL(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{
		{time.Nanosecond, 1}, {500 * time.Millisecond, 1}, {time.Second, 1}, {time.Second + 1, 2},
		{1500 * time.Millisecond, 2}, {2 * time.Second, 2}, {core.DefaultLease, 15},
	} {
		if got := leaseTTL(c.d); got != c.want {
			t.Errorf("leaseTTL(%v) = %ds, want %ds", c.d, got, c.want)
		}
	}
}
