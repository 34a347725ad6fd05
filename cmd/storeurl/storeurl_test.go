package storeurl_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
)

const password = "s3cret-pa55word"

// The passwords of the tables: plain, full of characters a URL must
// percent-encode, and one that a keyword/value DSN must quote.
const (
	pwPlain  = password
	pwWeird  = "p@ss:w0rd/with?#%&=+ space"
	pwQuoted = `it's quoted\back slash`
)

// pwWeirdUser is pwWeird as a URL's userinfo, pwWeirdQuery as a query value.
var (
	pwWeirdUser  = strings.TrimPrefix(url.UserPassword("u", pwWeird).String(), "u:")
	pwWeirdQuery = url.QueryEscape(pwWeird)
)

// pctEncode percent-encodes every byte of s but letters and digits.
func pctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x80 && (unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c))) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// pgEscape escapes ' and \ for a quoted keyword/value DSN value.
func pgEscape(s string) string { return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) }

// leak returns the part of password pw that text shows, or "": pw itself,
// percent-encoded, or any run of 4 or more letters and digits of it (a
// parser that cut a password at a quote or a space would show the rest).
// The allowed strings (a host name the password is part of) are removed
// from text first.
func leak(text, pw string, allowed ...string) string {
	if pw == "" {
		return ""
	}
	for _, a := range allowed {
		text = strings.ReplaceAll(text, a, "")
	}
	parts := []string{pw, url.QueryEscape(pw), url.PathEscape(pw)}
	for _, f := range strings.FieldsFunc(pw, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if len(f) >= 4 {
			parts = append(parts, f)
		}
	}
	for _, p := range parts {
		if strings.Contains(text, p) {
			return p
		}
	}
	return ""
}

// form is one accepted store URL and what Parse must make of it. The hosts
// of the Redis, PostgreSQL and etcd forms are closed loopback ports, for
// TestOpenRedacts.
type form struct {
	name      string
	raw       string
	kind      storeurl.Kind
	topology  storeurl.Topology
	addrs     []string // Spec.Addrs
	endpoints []string // Spec.Endpoints (etcd)
	db        int
	database  string
	master    string
	prefix    string
	dir       string
	redacted  string   // String(), exactly
	pw        string   // the password the URL holds, "" for none
	allowed   []string // what may show pw legitimately (a host name)
}

// forms enumerates every accepted form, with every placement of a password.
var forms = []form{
	{name: "Memory", raw: "memory:", kind: storeurl.Memory, redacted: "memory:"},
	{name: "MemorySlashes", raw: " memory:// ", kind: storeurl.Memory},
	{name: "File", raw: "file:///var/lib/wechatconf/", kind: storeurl.File, dir: "/var/lib/wechatconf", redacted: "file:///var/lib/wechatconf/"},
	{name: "FileLocalhost", raw: "file://localhost/var/lib/wechatconf", kind: storeurl.File, dir: "/var/lib/wechatconf"},
	{name: "FileOneSlash", raw: "file:/srv/tokens", kind: storeurl.File, dir: "/srv/tokens"},

	// Redis, one server: go-redis ParseURL.
	{name: "Redis", raw: "redis://127.0.0.1:1/0", kind: storeurl.Redis, topology: storeurl.Standalone,
		addrs: []string{"127.0.0.1:1"}, redacted: "redis://127.0.0.1:1/0"},
	{name: "RedisDefaultPort", raw: "redis://127.0.0.1", kind: storeurl.Redis, topology: storeurl.Standalone,
		addrs: []string{"127.0.0.1:6379"}},
	{name: "RedisUserinfoPassword", raw: "rediss://user:" + pwPlain + "@127.0.0.1:1/2", kind: storeurl.Redis, topology: storeurl.Standalone,
		addrs: []string{"127.0.0.1:1"}, db: 2, redacted: "rediss://user:xxxxx@127.0.0.1:1/2", pw: pwPlain},
	{name: "RedisPercentEncodedPassword", raw: "redis://:" + pwWeirdUser + "@127.0.0.1:1/1?prefix=app1:&dial_timeout=3s",
		kind: storeurl.Redis, topology: storeurl.Standalone, addrs: []string{"127.0.0.1:1"}, db: 1, prefix: "app1:",
		redacted: "redis://:xxxxx@127.0.0.1:1/1?prefix=app1:&dial_timeout=3s", pw: pwWeird},
	{name: "RedisPasswordInHostName", raw: "redis://:local@localhost:1/0", kind: storeurl.Redis, topology: storeurl.Standalone,
		addrs: []string{"localhost:1"}, redacted: "redis://:xxxxx@localhost:1/0", pw: "local", allowed: []string{"localhost"}},
	{name: "RedisDBQuery", raw: "redis://127.0.0.1:1?db=3", kind: storeurl.Redis, topology: storeurl.Standalone,
		addrs: []string{"127.0.0.1:1"}, db: 3},

	// Redis Sentinel: go-redis ParseFailoverURL (master_name). The userinfo
	// is the sentinels' credentials, ?username=&password= the data nodes'.
	{name: "SentinelHostList", raw: "redis://127.0.0.1:1,127.0.0.2:1,127.0.0.3:1/2?master_name=mymaster",
		kind: storeurl.Redis, topology: storeurl.Sentinel, addrs: []string{"127.0.0.1:1", "127.0.0.2:1", "127.0.0.3:1"},
		db: 2, master: "mymaster"},
	{name: "SentinelAddrParams", raw: "redis://127.0.0.1:1/0?master_name=m&addr=127.0.0.2:1&addr=127.0.0.3:1",
		kind: storeurl.Redis, topology: storeurl.Sentinel, addrs: []string{"127.0.0.1:1", "127.0.0.2:1", "127.0.0.3:1"}, master: "m"},
	{name: "SentinelQueryPassword", raw: "redis://127.0.0.1:1/0?master_name=m&password=" + pwPlain + "&prefix=wx:",
		kind: storeurl.Redis, topology: storeurl.Sentinel, addrs: []string{"127.0.0.1:1"}, master: "m", prefix: "wx:",
		redacted: "redis://127.0.0.1:1/0?master_name=m&password=xxxxx&prefix=wx:", pw: pwPlain},
	{name: "SentinelPercentEncodedQueryPassword", raw: "rediss://127.0.0.1:1?master_name=m&username=app&password=" + pwWeirdQuery,
		kind: storeurl.Redis, topology: storeurl.Sentinel, addrs: []string{"127.0.0.1:1"}, master: "m",
		redacted: "rediss://127.0.0.1:1?master_name=m&username=app&password=xxxxx", pw: pwWeird},
	{name: "SentinelUserinfoPassword", raw: "redis://sentinel:" + pwPlain + "@127.0.0.1:1,127.0.0.2:1/0?master_name=m",
		kind: storeurl.Redis, topology: storeurl.Sentinel, addrs: []string{"127.0.0.1:1", "127.0.0.2:1"}, master: "m",
		redacted: "redis://sentinel:xxxxx@127.0.0.1:1,127.0.0.2:1/0?master_name=m", pw: pwPlain},

	// Redis Cluster: go-redis ParseClusterURL (two or more addresses, or
	// cluster=true).
	{name: "ClusterHostList", raw: "redis://127.0.0.1:1,127.0.0.2:1,127.0.0.3:1", kind: storeurl.Redis, topology: storeurl.Cluster,
		addrs: []string{"127.0.0.1:1", "127.0.0.2:1", "127.0.0.3:1"}},
	{name: "ClusterAddrParams", raw: "redis://127.0.0.1:1?addr=127.0.0.2:1&addr=127.0.0.3:1", kind: storeurl.Redis, topology: storeurl.Cluster,
		addrs: []string{"127.0.0.1:1", "127.0.0.2:1", "127.0.0.3:1"}},
	{name: "ClusterOneSeed", raw: "redis://127.0.0.1:1?cluster=true", kind: storeurl.Redis, topology: storeurl.Cluster,
		addrs: []string{"127.0.0.1:1"}},
	{name: "ClusterUserinfoPassword", raw: "redis://:" + pwWeirdUser + "@127.0.0.1:1,127.0.0.2:1/0?prefix=wx:",
		kind: storeurl.Redis, topology: storeurl.Cluster, addrs: []string{"127.0.0.1:1", "127.0.0.2:1"}, prefix: "wx:",
		redacted: "redis://:xxxxx@127.0.0.1:1,127.0.0.2:1/0?prefix=wx:", pw: pwWeird},

	// PostgreSQL URLs (pgx, as libpq).
	{name: "PostgresUserinfoPassword", raw: "postgres://wechat:" + pwPlain + "@127.0.0.1:1/tokens?sslmode=disable&connect_timeout=2",
		kind: storeurl.Postgres, addrs: []string{"127.0.0.1:1"}, database: "tokens",
		redacted: "postgres://wechat:xxxxx@127.0.0.1:1/tokens?sslmode=disable&connect_timeout=2", pw: pwPlain},
	{name: "Postgresql", raw: "postgresql://wechat@127.0.0.1:1/tokens?sslmode=disable", kind: storeurl.Postgres,
		addrs: []string{"127.0.0.1:1"}, database: "tokens", redacted: "postgresql://wechat@127.0.0.1:1/tokens?sslmode=disable"},
	{name: "PostgresQueryPassword", raw: "postgres://app@127.0.0.1:1/db?password=" + pwPlain + "&sslmode=disable",
		kind: storeurl.Postgres, addrs: []string{"127.0.0.1:1"}, database: "db",
		redacted: "postgres://app@127.0.0.1:1/db?password=xxxxx&sslmode=disable", pw: pwPlain},
	{name: "PostgresPercentEncodedQueryPassword", raw: "postgres://app@127.0.0.1:1/db?sslmode=disable&password=" + pctEncode(pwWeird),
		kind: storeurl.Postgres, addrs: []string{"127.0.0.1:1"}, database: "db",
		redacted: "postgres://app@127.0.0.1:1/db?sslmode=disable&password=xxxxx", pw: pwWeird},
	{name: "PostgresPercentEncodedUserinfoPassword", raw: "postgres://app:" + pwWeirdUser + "@127.0.0.1:1/db?sslmode=disable",
		kind: storeurl.Postgres, addrs: []string{"127.0.0.1:1"}, database: "db",
		redacted: "postgres://app:xxxxx@127.0.0.1:1/db?sslmode=disable", pw: pwWeird},
	{name: "PostgresPasswordInHostName", raw: "postgres://app:local@localhost:1/db?sslmode=disable",
		kind: storeurl.Postgres, addrs: []string{"localhost:1"}, database: "db",
		redacted: "postgres://app:xxxxx@localhost:1/db?sslmode=disable", pw: "local", allowed: []string{"localhost"}},
	{name: "PostgresHostListSSLPassword", raw: "postgres://app@127.0.0.1:1,127.0.0.2:2/db?sslmode=disable&sslpassword=" + pwPlain,
		kind: storeurl.Postgres, addrs: []string{"127.0.0.1:1", "127.0.0.2:2"}, database: "db",
		redacted: "postgres://app@127.0.0.1:1,127.0.0.2:2/db?sslmode=disable&sslpassword=xxxxx", pw: pwPlain},

	// PostgreSQL keyword/value DSNs (pgx, as libpq).
	{name: "KeywordPassword", raw: "host=127.0.0.1 port=1 dbname=tokens user=wechat password=" + pwPlain + " sslmode=disable",
		kind: storeurl.Postgres, addrs: []string{"127.0.0.1:1"}, database: "tokens",
		redacted: "host=127.0.0.1 port=1 dbname=tokens user=wechat password=xxxxx sslmode=disable", pw: pwPlain},
	{name: "KeywordQuotedPassword", raw: `host=127.0.0.1 port=1 dbname=tokens user=wechat password='it\'s quoted\\back slash' sslmode=disable`,
		kind: storeurl.Postgres, addrs: []string{"127.0.0.1:1"}, database: "tokens",
		redacted: "host=127.0.0.1 port=1 dbname=tokens user=wechat password=xxxxx sslmode=disable", pw: pwQuoted},
	{name: "KeywordSpacesQuotedValues", raw: "host = 127.0.0.1  port= 1 dbname ='my tokens' user=app sslmode=disable",
		kind: storeurl.Postgres, addrs: []string{"127.0.0.1:1"}, database: "my tokens",
		redacted: "host=127.0.0.1 port=1 dbname='my tokens' user=app sslmode=disable"},
	{name: "KeywordHostListWeirdPassword", raw: "host=127.0.0.1,127.0.0.2 port=1,2 dbname=d user=u sslmode=disable password='" + pgEscape(pwWeird) + "'",
		kind: storeurl.Postgres, addrs: []string{"127.0.0.1:1", "127.0.0.2:2"}, database: "d",
		redacted: "host=127.0.0.1,127.0.0.2 port=1,2 dbname=d user=u sslmode=disable password=xxxxx", pw: pwWeird},
	{name: "KeywordSSLPassword", raw: "host=127.0.0.1 port=1 dbname=d user=u sslmode=disable sslpassword=" + pwPlain,
		kind: storeurl.Postgres, addrs: []string{"127.0.0.1:1"}, database: "d",
		redacted: "host=127.0.0.1 port=1 dbname=d user=u sslmode=disable sslpassword=xxxxx", pw: pwPlain},
	{name: "KeywordPasswordInHostName", raw: "host=localhost port=1 dbname=d user=u sslmode=disable password=local",
		kind: storeurl.Postgres, addrs: []string{"localhost:1"}, database: "d",
		redacted: "host=localhost port=1 dbname=d user=u sslmode=disable password=xxxxx", pw: "local", allowed: []string{"localhost"}},

	// etcd endpoint lists.
	{name: "Etcd", raw: "etcd://127.0.0.1:1", kind: storeurl.Etcd, endpoints: []string{"http://127.0.0.1:1"}},
	{name: "EtcdList", raw: "etcd://127.0.0.1:1,127.0.0.2:1,127.0.0.3:1/?prefix=wx/", kind: storeurl.Etcd,
		endpoints: []string{"http://127.0.0.1:1", "http://127.0.0.2:1", "http://127.0.0.3:1"}, prefix: "wx/"},
	{name: "EtcdUserinfoPassword", raw: "etcd://root:" + pwPlain + "@127.0.0.1:1", kind: storeurl.Etcd,
		endpoints: []string{"http://127.0.0.1:1"}, redacted: "etcd://root:xxxxx@127.0.0.1:1", pw: pwPlain},
	{name: "EtcdListPercentEncodedPassword", raw: "etcd://root:" + pwWeirdUser + "@127.0.0.1:1,127.0.0.2:1", kind: storeurl.Etcd,
		endpoints: []string{"http://127.0.0.1:1", "http://127.0.0.2:1"}, redacted: "etcd://root:xxxxx@127.0.0.1:1,127.0.0.2:1", pw: pwWeird},
}

// TestParse tests that Parse accepts every form (kind, topology,
// addresses, database, prefix), that String shows it with the password
// masked, and that HasPassword reports every placement of a password.
func TestParse(t *testing.T) {
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			s, err := storeurl.Parse(f.raw)
			if err != nil {
				t.Fatalf("Parse(%q): %v", f.raw, err)
			}
			if s.Kind != f.kind || s.Topology != f.topology || !slices.Equal(s.Addrs, f.addrs) || !slices.Equal(s.Endpoints, f.endpoints) ||
				s.DB != f.db || s.Database != f.database || s.MasterName != f.master || s.Prefix != f.prefix || s.Dir != f.dir {
				t.Errorf("Parse(%q) = kind %q topology %q addrs %q endpoints %q db %d database %q master %q prefix %q dir %q;\n"+
					"want kind %q topology %q addrs %q endpoints %q db %d database %q master %q prefix %q dir %q", f.raw,
					s.Kind, s.Topology, s.Addrs, s.Endpoints, s.DB, s.Database, s.MasterName, s.Prefix, s.Dir,
					f.kind, f.topology, f.addrs, f.endpoints, f.db, f.database, f.master, f.prefix, f.dir)
			}
			if f.redacted != "" && s.String() != f.redacted {
				t.Errorf("Parse(%q).String() = %q, want %q", f.raw, s.String(), f.redacted)
			}
			if p := leak(s.String(), f.pw, f.allowed...); p != "" {
				t.Errorf("Parse(%q).String() = %q shows %q of the password", f.raw, s.String(), p)
			}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
				if text := fmt.Sprintf(verb, s); leak(text, f.pw, f.allowed...) != "" {
					t.Errorf("Parse(%q) printed with %s shows the password: %s", f.raw, verb, text)
				}
			}
			if s.HasPassword() != (f.pw != "") {
				t.Errorf("Parse(%q).HasPassword() = %v, want %v", f.raw, s.HasPassword(), f.pw != "")
			}
			if f.pw != "" && !strings.Contains(s.String(), "xxxxx") {
				t.Errorf("Parse(%q).String() = %q: no mask where the password was", f.raw, s.String())
			}
		})
	}
}

// TestOpenRedacts tests that opening each Redis, PostgreSQL and etcd form
// against closed ports fails within its context, with an error that names
// the URL redacted and shows no part of the password. The opens run
// together (each waits for its context), not as parallel subtests, which
// -parallel (GOMAXPROCS) would run two at a time on a 2-core box.
func TestOpenRedacts(t *testing.T) {
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(forms))
	)
	for i, f := range forms {
		if f.kind == storeurl.Memory || f.kind == storeurl.File {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			_, closeStore, err := storeurl.Open(ctx, f.raw)
			if err == nil {
				closeStore()
				err = errors.New("no error")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, f := range forms {
		err := errs[i]
		if err == nil {
			continue
		}
		s, _ := storeurl.Parse(f.raw)
		switch {
		case err.Error() == "no error":
			t.Errorf("%s: Open(%q) succeeded; want an error from a closed port", f.name, f.raw)
		case !strings.Contains(err.Error(), s.String()):
			t.Errorf("%s: Open(%q): %v; want it to name %s", f.name, f.raw, err, s)
		}
		if p := leak(err.Error(), f.pw, f.allowed...); p != "" {
			t.Errorf("%s: Open(%q): the error shows %q of the password: %v", f.name, f.raw, p, err)
		}
	}
}

// TestParseRefuses tests the URLs Parse refuses, each with an error that
// names the problem, and none of them with an error that shows any part of
// the password, wherever the URL put it.
func TestParseRefuses(t *testing.T) {
	for _, c := range []struct {
		raw, want, pw string
	}{
		{raw: "", want: "empty store URL"},
		{raw: "   ", want: "empty store URL"},
		{raw: "/var/lib/wechatconf", want: "no scheme"},
		{raw: "localhost:6379", want: "unknown scheme"},
		{raw: "mysql://host/db", want: `unknown scheme "mysql"`},
		{raw: "memcached://host:11211", want: "unknown scheme"},
		{raw: "memory:foo", want: "memory store takes no"},
		{raw: "memory://host", want: "memory store takes no"},
		{raw: "memory:?size=3", want: "memory store takes no"},
		{raw: "memory://u:" + pwPlain + "@host", want: "memory store takes no", pw: pwPlain},
		{raw: "file:relative/dir", want: "must be absolute"},
		{raw: "file://var/lib/wechatconf", want: "file store is local"},
		{raw: "file://", want: "no directory"},
		{raw: "file:///", want: "no directory"},
		{raw: "file:///x?mode=0600", want: "takes no user, options"},
		{raw: "file:///x?password=" + pwPlain, want: "takes no user, options", pw: pwPlain},

		{raw: "redis://", want: "no host"},
		{raw: "redis://host:6379/x", want: "invalid database"},
		{raw: "redis://host:6379/0?bogus=1", want: "bogus"},
		{raw: "redis://u:" + pwPlain + "@host:6379/zz", want: "invalid database", pw: pwPlain},
		{raw: "redis://u:" + pwPlain + "@host:6379/0 x", want: "invalid database", pw: pwPlain},
		{raw: "redis://host:6379/0?password=" + pwPlain, want: "unexpected option: password", pw: pwPlain},
		{raw: "redis://host:6379/0?master_name=m&sentinel_password=" + pwWeirdQuery, want: "unexpected option: sentinel_password", pw: pwWeird},
		{raw: "redis://host:6379/0?master_name=", want: "master_name is empty"},
		{raw: "redis://:" + pwPlain + "@a:1,b:2/3", want: "database 0 only", pw: pwPlain},
		{raw: "redis://:" + pwPlain + "@a:1/0?master_name=m&cluster=true", want: "exclude each other", pw: pwPlain},
		{raw: "redis://a:1?cluster=maybe", want: "cluster=true"},
		{raw: "redis://a:1,,b:2", want: "want host:port"},
		{raw: "redis://:p4ss#w0rd@host:6379/0", want: "not a URL", pw: "p4ss#w0rd"},
		{raw: "redis://:p%zzw0rdp4ss@host:6379/0", want: "not a URL", pw: "p%zzw0rdp4ss"},

		{raw: "postgres://", want: "no host"},
		{raw: "postgres://app:" + pwPlain + "@/db", want: "no host", pw: pwPlain},
		{raw: "postgres://app@/db?password=" + pwPlain, want: "no host", pw: pwPlain},
		{raw: "postgres:host/db", want: "two slashes"},
		{raw: "postgres://u:" + pwPlain + "@host:notaport/db", want: "port", pw: pwPlain},
		{raw: "postgres://u@host/db?connect_timeout=abc&password=" + pwPlain, want: "connect_timeout", pw: pwPlain},
		{raw: "postgres://u:" + pwWeirdUser + "@host/db?pool_max_conns=x", want: "pool_max_conns", pw: pwWeird},
		{raw: "dbname=x user=u password=" + pwPlain, want: "no host", pw: pwPlain},
		{raw: "host=db user=u password=pa55 w0rdy", want: "keyword/value", pw: "pa55 w0rdy"},
		{raw: "host=db user=u password=pa55 w0rdy port=1", want: "keyword/value", pw: "pa55 w0rdy"},
		{raw: "host=db user=u password='unterminated p4ssword", want: "keyword/value", pw: "unterminated p4ssword"},
		{raw: "host=db port=notaport password='" + pgEscape(pwQuoted) + "'", want: "port", pw: pwQuoted},

		{raw: "etcd://", want: "no endpoint"},
		{raw: "etcd://host", want: "want host:port"},
		{raw: "etcd://a:2379,,b:2379", want: "want host:port"},
		{raw: "etcd://host:2379/prefix", want: "no path"},
		{raw: "etcd://host:2379?timeout=3s", want: "unknown option"},
		{raw: "etcd://host:2379?password=" + pwPlain, want: "unknown option", pw: pwPlain},
		{raw: "etcd://root:" + pwPlain + "@host", want: "want host:port", pw: pwPlain},
		{raw: "::", want: "not a URL"},
	} {
		_, err := storeurl.Parse(c.raw)
		switch {
		case err == nil:
			t.Errorf("Parse(%q): no error, want one mentioning %q", c.raw, c.want)
		case !strings.Contains(err.Error(), c.want):
			t.Errorf("Parse(%q): %v; want it to mention %q", c.raw, err, c.want)
		}
		if err != nil {
			if p := leak(err.Error(), c.pw); p != "" {
				t.Errorf("Parse(%q): the error shows %q of the password: %v", c.raw, p, err)
			}
		}
	}
}

// TestOpen tests that memory: and file:// open working stores (two file
// stores over one directory see each other's tokens). The other kinds open
// against real servers in module cmd/containertest.
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
	if f.RedisOptions() != nil || f.NewRedisClient() != nil {
		t.Fatal("RedisOptions or NewRedisClient of a file URL is not nil")
	}
}

// TestNewRedisClient tests that each Redis topology gets go-redis's client
// of that topology, and that only a standalone URL has RedisOptions.
func TestNewRedisClient(t *testing.T) {
	for _, c := range []struct {
		raw     string
		client  string
		options bool
	}{
		{"redis://127.0.0.1:1/0", "*redis.Client", true},
		{"redis://127.0.0.1:1/0?master_name=m", "*redis.Client", false},
		{"redis://127.0.0.1:1,127.0.0.2:1", "*redis.ClusterClient", false},
		{"redis://127.0.0.1:1?cluster=true", "*redis.ClusterClient", false},
	} {
		s, err := storeurl.Parse(c.raw)
		if err != nil {
			t.Fatal(err)
		}
		client := s.NewRedisClient()
		if got := fmt.Sprintf("%T", client); got != c.client {
			t.Errorf("Parse(%q).NewRedisClient() is a %s, want a %s", c.raw, got, c.client)
		}
		client.Close()
		if (s.RedisOptions() != nil) != c.options {
			t.Errorf("Parse(%q).RedisOptions() = %v, want options %v", c.raw, s.RedisOptions(), c.options)
		}
	}
}

// TestSpecInAnUnexportedField: fmt prints a struct that keeps a Spec in an
// unexported field by reflection, without calling String; no password, of
// any form, may show (the passwords are behind pointers).
func TestSpecInAnUnexportedField(t *testing.T) {
	const pw = "Refl3ctedPassw0rd"
	for _, raw := range []string{
		"redis://u:" + pw + "@127.0.0.1:6379/0",
		"redis://u:" + pw + "@127.0.0.1:26379/0?master_name=m",
		"postgres://app@127.0.0.1/db?password=" + pw,
		"host=127.0.0.1 dbname=db user=app password=" + pw,
		"etcd://root:" + pw + "@127.0.0.1:2379",
	} {
		spec, err := storeurl.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		type holder struct{ spec storeurl.Spec }
		for _, verb := range []string{"%v", "%+v", "%#v"} {
			if out := fmt.Sprintf(verb, holder{spec}); strings.Contains(out, pw) || strings.Contains(out, pw[:8]) {
				t.Errorf("%s of a struct holding %s shows the password: %s", verb, spec, out)
			}
		}
	}
}
