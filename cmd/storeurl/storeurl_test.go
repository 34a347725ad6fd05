package storeurl_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
)

const password = "s3cret-pa55word"

// TestParse tests the store URLs Parse accepts (kind, directory, endpoints,
// prefix, redaction) and the ones it refuses, each with an error that
// names the problem and never the password.
func TestParse(t *testing.T) {
	for _, c := range []struct {
		raw       string
		kind      storeurl.Kind
		dir       string
		endpoints []string
		prefix    string
		redacted  string
		password  bool
	}{
		{raw: "memory:", kind: storeurl.Memory},
		{raw: "memory://", kind: storeurl.Memory},
		{raw: " memory: ", kind: storeurl.Memory},
		{raw: "file:///var/lib/wechatconf", kind: storeurl.File, dir: "/var/lib/wechatconf"},
		{raw: "file:///var/lib/wechatconf/", kind: storeurl.File, dir: "/var/lib/wechatconf"},
		{raw: "file://localhost/var/lib/wechatconf", kind: storeurl.File, dir: "/var/lib/wechatconf"},
		{raw: "file:/srv/tokens", kind: storeurl.File, dir: "/srv/tokens"},
		{raw: "redis://host:6379/0", kind: storeurl.Redis},
		{raw: "redis://host", kind: storeurl.Redis},
		{raw: "rediss://user:" + password + "@host:6380/2", kind: storeurl.Redis, redacted: "rediss://user:xxxxx@host:6380/2", password: true},
		{raw: "redis://host:6379/0?prefix=app1:&dial_timeout=3s", kind: storeurl.Redis, prefix: "app1:"},
		{raw: "postgres://wechat:" + password + "@db.internal:5432/tokens?sslmode=disable", kind: storeurl.Postgres,
			redacted: "postgres://wechat:xxxxx@db.internal:5432/tokens?sslmode=disable", password: true},
		{raw: "postgresql://wechat@db/tokens", kind: storeurl.Postgres},
		{raw: "etcd://host:2379", kind: storeurl.Etcd, endpoints: []string{"http://host:2379"}},
		{raw: "etcd://a:2379,b:2379,c:2379/?prefix=wx/", kind: storeurl.Etcd, endpoints: []string{"http://a:2379", "http://b:2379", "http://c:2379"}, prefix: "wx/"},
		{raw: "etcd://root:" + password + "@host:2379", kind: storeurl.Etcd, endpoints: []string{"http://host:2379"},
			redacted: "etcd://root:xxxxx@host:2379", password: true},
	} {
		s, err := storeurl.Parse(c.raw)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.raw, err)
			continue
		}
		if s.Kind != c.kind || s.Dir != c.dir || !slices.Equal(s.Endpoints, c.endpoints) || s.Prefix != c.prefix || s.HasPassword() != c.password {
			t.Errorf("Parse(%q) = kind %q dir %q endpoints %q prefix %q password %v; want %q %q %q %q %v",
				c.raw, s.Kind, s.Dir, s.Endpoints, s.Prefix, s.HasPassword(), c.kind, c.dir, c.endpoints, c.prefix, c.password)
		}
		if c.redacted != "" && s.String() != c.redacted {
			t.Errorf("Parse(%q).String() = %q, want %q", c.raw, s.String(), c.redacted)
		}
		if strings.Contains(s.String(), password) {
			t.Errorf("Parse(%q).String() holds the password", c.raw)
		}
	}

	for _, c := range []struct{ raw, want string }{
		{"", "empty store URL"},
		{"   ", "empty store URL"},
		{"/var/lib/wechatconf", "no scheme"},
		{"localhost:6379", "unknown scheme"},
		{"mysql://host/db", `unknown scheme "mysql"`},
		{"memcached://host:11211", "unknown scheme"},
		{"memory:foo", "memory store takes no"},
		{"memory://host", "memory store takes no"},
		{"memory:?size=3", "memory store takes no"},
		{"file:relative/dir", "must be absolute"},
		{"file://var/lib/wechatconf", "file store is local"},
		{"file://", "no directory"},
		{"file:///", "no directory"},
		{"file:///x?mode=0600", "takes no user, options"},
		{"redis://", "no host"},
		{"redis://host:6379/x", "invalid database"},
		{"redis://host:6379/0?bogus=1", "bogus"},
		{"redis://u:" + password + "@host:6379/zz", "invalid database"},
		{"postgres://", "no host"},
		{"postgres://u:" + password + "@host:notaport/db", "not a URL"},
		{"postgres://u@host/db?connect_timeout=abc", "connect_timeout"},
		{"etcd://", "no endpoint"},
		{"etcd://host", "want host:port"},
		{"etcd://a:2379,,b:2379", "want host:port"},
		{"etcd://host:2379/prefix", "no path"},
		{"etcd://host:2379?timeout=3s", "unknown option"},
		{"etcd://root:" + password + "@host", "want host:port"},
		{"redis://u:" + password + "@host:6379/0 x", "invalid database"},
		{"::", "not a URL"},
	} {
		_, err := storeurl.Parse(c.raw)
		switch {
		case err == nil:
			t.Errorf("Parse(%q): no error, want one mentioning %q", c.raw, c.want)
		case !strings.Contains(err.Error(), c.want):
			t.Errorf("Parse(%q): %v; want it to mention %q", c.raw, err, c.want)
		case strings.Contains(err.Error(), password):
			t.Errorf("Parse(%q): the error holds the password: %v", c.raw, err)
		}
	}
}

// TestOpen tests that memory: and file:// open working stores (two file
// stores over one directory see each other's tokens), and that a Redis,
// PostgreSQL or etcd URL nobody answers fails in Open, within its context,
// with the password redacted.
func TestOpen(t *testing.T) {
	ctx := t.Context()
	tok := core.Token{Value: "token-1", ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Millisecond)}

	mem, closeMem, err := storeurl.Open(ctx, "memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer closeMem()
	if err := mem.Set(ctx, "k", tok); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "tokens")
	a, closeA, err := storeurl.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeA()
	b, closeB, err := storeurl.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeB()
	if err := a.Set(ctx, "k", tok); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "k"); err != nil || got.Value != tok.Value {
		t.Errorf("the second file store reads %q, %v; want the first one's token", got.Value, err)
	}

	for _, raw := range []string{
		"redis://u:" + password + "@127.0.0.1:1/0",
		"postgres://u:" + password + "@127.0.0.1:1/db?connect_timeout=2",
		"etcd://u:" + password + "@127.0.0.1:1",
	} {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, _, err := storeurl.Open(ctx, raw)
		cancel()
		switch {
		case err == nil:
			t.Errorf("Open(%q): no error from a closed port", raw)
		case strings.Contains(err.Error(), password):
			t.Errorf("Open(%q): the error holds the password: %v", raw, err)
		case !strings.Contains(err.Error(), "xxxxx"):
			t.Errorf("Open(%q): %v; want it to name the redacted URL", raw, err)
		}
	}
}

func TestRedisOptions(t *testing.T) {
	s, err := storeurl.Parse("redis://user:" + password + "@127.0.0.1:6379/2?prefix=p:")
	if err != nil {
		t.Fatal(err)
	}
	o := s.RedisOptions()
	if o == nil || o.Addr != "127.0.0.1:6379" || o.DB != 2 || o.Password != password {
		t.Fatalf("RedisOptions: %+v", o)
	}
	o.Addr = "changed:1"
	if s.RedisOptions().Addr != "127.0.0.1:6379" {
		t.Fatal("RedisOptions returned the Spec's own options, not a copy")
	}
	f, err := storeurl.Parse("file:///tmp/x")
	if err != nil {
		t.Fatal(err)
	}
	if f.RedisOptions() != nil {
		t.Fatal("RedisOptions of a file URL is not nil")
	}
}
