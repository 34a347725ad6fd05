package storeurl_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/storeurl"
)

// TestMalformedURLsQuoteNoPassword: a store URL the parsers refuse,
// whose password sits where the refusal cannot tell where it ends, is quoted
// in no error (String of a refused URL is never shown: Parse returns the
// error alone). pw is the password the writer meant.
func TestMalformedURLsQuoteNoPassword(t *testing.T) {
	const pw = "Hunter2Hunter2"
	for _, tc := range []struct{ name, raw string }{
		// "//" forgotten: the userinfo is an opaque part or a path.
		{"RedisNoSlashes", "redis:app:" + pw + "@127.0.0.1:6379/0"},
		{"RedisOneSlash", "redis:/app:" + pw + "@127.0.0.1:6379/0"},
		{"RedisThreeSlashes", "redis:///app:" + pw + "@127.0.0.1:6379/0"},
		{"RedissNoSlashes", "rediss::" + pw + "@127.0.0.1:6379"},
		{"EtcdNoSlashes", "etcd:root:" + pw + "@127.0.0.1:2379"},
		{"PostgresNoSlashes", "postgres:app:" + pw + "@127.0.0.1:5432/db"},
		{"PostgresqlOneSlash", "postgresql:/app:" + pw + "@127.0.0.1:5432/db"},
		{"NoScheme", "app:" + pw + "@127.0.0.1:6379"},
		{"MemoryWithPassword", "memory:app:" + pw + "@x"},
		// PostgreSQL URLs pgx refuses: an Azure-style user name with an
		// unencoded '@' (pgx reads the user "app" and the port
		// "<pw>@127.0.0.1"), an unencoded '/' in a password.
		{"PostgresAtInUserName", "postgres://app@myserver:" + pw + "@127.0.0.1:5432/db"},
		{"PostgresAtInUserNameSpace", "postgres://app@myserver:" + pw + " x@127.0.0.1:5432/db"},
		{"PostgresSlashInPassword", "postgres://app:x/" + pw + "@127.0.0.1:5432/db"},
		// PostgreSQL URLs pgx accepts while the password the writer meant
		// runs into the host: a second unencoded '@' (pgx's password is
		// "x", its host "<pw>@127.0.0.1"), a '@' in a query password of a
		// URL without a path (pgx's lookahead reads it as the end of a
		// userinfo: its host is what follows).
		{"PostgresAtInPassword", "postgres://app:x@" + pw + "@127.0.0.1:1/db"},
		{"PostgresAtInQueryPassword", "postgres://127.0.0.1:1?user=app&password=x@" + pw},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := storeurl.Parse(tc.raw)
			if err == nil {
				// Accepted: then neither String nor an Open error may show it.
				if p := leak(s.String(), pw); p != "" {
					t.Errorf("Parse(%q) accepted; String() = %q shows %q", tc.raw, s, p)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if _, closeFn, err := s.Open(ctx); err == nil {
					closeFn()
				} else if p := leak(err.Error(), pw); p != "" {
					t.Errorf("Open error %q shows %q", err, p)
				}
				return
			}
			if p := leak(err.Error(), pw); p != "" {
				t.Errorf("Parse(%q) error %q shows %q", tc.raw, err, p)
			}
			if p := leak(fmt.Sprintf("%v %+v %#v", s, s, s), pw); p != "" {
				t.Errorf("the zero Spec of a refused URL shows %q", p)
			}
		})
	}
}
