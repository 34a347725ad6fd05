package containertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wechatconf/wechatconf/cmd/internal/serve"
	"github.com/wechatconf/wechatconf/cmd/internal/serve/servetest"
	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// storePassword is the password the Redis, PostgreSQL and etcd servers of
// these tests require: it holds every character a URL must percent-encode
// and a keyword/value DSN must quote.
const storePassword = `p@ss:w0rd/?#%&=+ it's\x`

// keyNames are the keys each round trip writes, after the test's name:
// enough that a Redis Cluster spreads them over its three masters (a
// client of one node would get MOVED for most of them).
var keyNames = []string{"wx1/access_token", "wx2/access_token", "wx3/jsapi_ticket", "wx4/access_token", "wx5/access_token", "wx6/card_ticket"}

// roundTrip opens raw twice and tests that what one store Sets the other
// Gets (both clients reach the same data), that a store opened from other
// (the same server, another ?prefix=; "" to skip) sees none of it, and
// that the stores' String shows no password.
func roundTrip(t *testing.T, raw, other string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	open := func(raw string) core.TokenStore {
		t.Helper()
		spec, err := storeurl.Parse(raw)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if strings.Contains(spec.String(), storePassword) || strings.Contains(spec.String(), url.QueryEscape(storePassword)) {
			t.Errorf("Parse(…).String() = %q holds the password", spec)
		}
		st, closeStore, err := spec.Open(ctx)
		if err != nil {
			t.Fatalf("Open(%s): %v", spec, err)
		}
		t.Cleanup(func() { closeStore() })
		return st
	}
	var keys []string
	for _, k := range keyNames {
		keys = append(keys, t.Name()+"/"+k)
	}
	a, b := open(raw), open(raw)
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	for _, k := range keys {
		if err := a.Set(ctx, k, core.Token{Value: "v-" + k, ExpiresAt: exp}); err != nil {
			t.Fatalf("Set(%q): %v", k, err)
		}
	}
	for _, k := range keys {
		got, err := b.Get(ctx, k)
		if err != nil || got.Value != "v-"+k || !got.ExpiresAt.Equal(exp) {
			t.Errorf("Get(%q) from a second client = %q %v, %v; want %q %v", k, got.Value, got.ExpiresAt, err, "v-"+k, exp)
		}
	}
	if other == "" {
		return
	}
	c := open(other)
	for _, k := range keys {
		if got, err := c.Get(ctx, k); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("Get(%q) under another prefix = %q, %v; want ErrNotFound", k, got.Value, err)
		}
	}
}

// startupLine runs the token server over the store WECHATCONF_STORE=raw
// names and returns the line it prints once it serves.
func startupLine(t *testing.T, raw string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	env := map[string]string{
		"WECHAT_APPID": servetest.AppID, "WECHAT_APPSECRET": servetest.AppSecret,
		"TOKENSERVER_SECRET": servetest.BearerSecret, "WECHATCONF_STORE": raw,
	}
	pr, pw := io.Pipe()
	logs := &servetest.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- serve.Run(ctx, []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, pw, logs)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr)
	cancel()
	if runErr := <-done; runErr != nil || err != nil {
		t.Fatalf("token server: %v, %v\n%s", runErr, err, logs) // runErr names the store redacted
	}
	if strings.Contains(logs.String(), storePassword) {
		t.Errorf("the token server's log holds the store password:\n%s", logs)
	}
	return line
}

// checkStartupLine tests that the token server's start-up line names the
// store with its password masked.
func checkStartupLine(t *testing.T, raw string) {
	t.Helper()
	line := startupLine(t, raw)
	if !strings.Contains(line, "serving") || !strings.Contains(line, "xxxxx") {
		t.Errorf("start-up line %q: want it to name the store redacted", line)
	}
	for _, part := range []string{storePassword, url.QueryEscape(storePassword), "w0rd", "it's"} {
		if strings.Contains(line, part) {
			t.Errorf("start-up line %q shows %q of the password", line, part)
		}
	}
}

// userinfo is storePassword percent-encoded for a URL's userinfo.
var userinfo = strings.TrimPrefix(url.UserPassword("u", storePassword).String(), "u:")

// pgQueryValue is storePassword percent-encoded for a PostgreSQL URL's
// query: libpq (and pgx) do not read '+' as a space, so a space is %20.
var pgQueryValue = strings.ReplaceAll(url.QueryEscape(storePassword), "+", "%20")

// pgQuoted is storePassword quoted for a keyword/value DSN.
var pgQuoted = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(storePassword) + "'"

// TestStoreURLRedis tests the standalone Redis forms against a server that
// requires a password: in the userinfo with and without a user name, with
// a database number and a prefix, and the token server's start-up line.
func TestStoreURLRedis(t *testing.T) {
	r := containers.StartRedisWithArgs(t, "--requirepass", storePassword)
	t.Run("UserinfoPassword", func(t *testing.T) {
		roundTrip(t, "redis://:"+userinfo+"@"+r.Addr+"/0", "redis://:"+userinfo+"@"+r.Addr+"/0?prefix=other:")
	})
	t.Run("DefaultUserDBPrefix", func(t *testing.T) {
		roundTrip(t, "redis://default:"+userinfo+"@"+r.Addr+"/3?prefix=team:&dial_timeout=5s", "redis://default:"+userinfo+"@"+r.Addr+"/3")
	})
	t.Run("StartupLine", func(t *testing.T) {
		checkStartupLine(t, "redis://:"+userinfo+"@"+r.Addr+"/0")
	})
}

// TestStoreURLRedisSentinel tests the Sentinel forms (master_name): the
// sentinels as a host list and as go-redis's addr= parameters.
func TestStoreURLRedisSentinel(t *testing.T) {
	rs := containers.StartRedisSentinel(t)
	name := url.QueryEscape(rs.MasterName)
	t.Run("HostList", func(t *testing.T) {
		roundTrip(t, "redis://"+strings.Join(rs.SentinelAddrs, ",")+"/0?master_name="+name,
			"redis://"+strings.Join(rs.SentinelAddrs, ",")+"/0?master_name="+name+"&prefix=other:")
	})
	t.Run("AddrParams", func(t *testing.T) {
		raw := "redis://" + rs.SentinelAddrs[0] + "/1?master_name=" + name + "&prefix=team:"
		for _, a := range rs.SentinelAddrs[1:] {
			raw += "&addr=" + a
		}
		roundTrip(t, raw, "")
	})
}

// TestStoreURLRedisCluster tests the Cluster forms: the seed nodes as a
// host list, as go-redis's addr= parameters, and one seed with
// cluster=true.
func TestStoreURLRedisCluster(t *testing.T) {
	rc := containers.StartRedisCluster(t)
	t.Run("HostList", func(t *testing.T) {
		roundTrip(t, "redis://"+strings.Join(rc.Addrs, ","), "redis://"+strings.Join(rc.Addrs, ",")+"?prefix=other:")
	})
	t.Run("AddrParams", func(t *testing.T) {
		raw := "redis://" + rc.Addrs[0] + "?prefix=team:"
		for _, a := range rc.Addrs[1:] {
			raw += "&addr=" + a
		}
		roundTrip(t, raw, "")
	})
	t.Run("OneSeed", func(t *testing.T) {
		roundTrip(t, "redis://"+rc.Addrs[1]+"/0?cluster=true", "")
	})
}

// TestStoreURLPostgres tests the PostgreSQL forms against a role whose
// password needs escaping: URL with the password in the userinfo and in
// the query, keyword/value DSN with it quoted, and the token server's
// start-up line for both.
func TestStoreURLPostgres(t *testing.T) {
	p := containers.StartPostgres(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, p.DSN)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"CREATE ROLE app LOGIN PASSWORD '" + strings.ReplaceAll(storePassword, "'", "''") + "'",
		"CREATE DATABASE appdb OWNER app",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("creating the role app and its database: %v", err)
		}
	}
	conn.Close(ctx)
	host, port, err := net.SplitHostPort(p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, raw string }{
		{"ContainerDSN", p.DSN},
		{"UserinfoPassword", "postgres://app:" + userinfo + "@" + p.Addr + "/appdb?sslmode=disable"},
		{"QueryPassword", "postgresql://app@" + p.Addr + "/appdb?sslmode=disable&password=" + pgQueryValue},
		{"KeywordDSN", fmt.Sprintf("host=%s port=%s dbname=appdb user=app password=%s sslmode=disable", host, port, pgQuoted)},
		{"KeywordDSNSpaces", fmt.Sprintf("  host = %s port = %s  dbname='appdb' user = app sslmode=disable password = %s ", host, port, pgQuoted)},
	} {
		t.Run(c.name, func(t *testing.T) { roundTrip(t, c.raw, "") })
	}
	t.Run("StartupLine", func(t *testing.T) {
		checkStartupLine(t, "postgres://app@"+p.Addr+"/appdb?sslmode=disable&password="+pgQueryValue)
		checkStartupLine(t, fmt.Sprintf("host=%s port=%s dbname=appdb user=app password=%s sslmode=disable", host, port, pgQuoted))
	})
}

// TestStoreURLEtcd tests the etcd forms: one endpoint, and the endpoint
// list of a three-member cluster, without and then with authentication
// (the root user's password in the userinfo).
func TestStoreURLEtcd(t *testing.T) {
	cl := containers.StartEtcdCluster(t, 3)
	var hosts []string
	for _, ep := range cl.Endpoints {
		hosts = append(hosts, strings.TrimPrefix(ep, "http://"))
	}
	list := strings.Join(hosts, ",")
	t.Run("OneEndpoint", func(t *testing.T) {
		roundTrip(t, "etcd://"+hosts[0], "etcd://"+hosts[0]+"?prefix=other/")
	})
	t.Run("EndpointList", func(t *testing.T) {
		roundTrip(t, "etcd://"+list+"?prefix=team/", "etcd://"+list)
	})
	t.Run("UserinfoPassword", func(t *testing.T) {
		enableEtcdAuth(t, cl.Endpoints)
		roundTrip(t, "etcd://root:"+userinfo+"@"+list+"/?prefix=auth/", "etcd://root:"+userinfo+"@"+list)
		checkStartupLine(t, "etcd://root:"+userinfo+"@"+list)
		if _, _, err := storeurl.Open(t.Context(), "etcd://"+list); err == nil {
			t.Error("Open without the password succeeded on an etcd with authentication on")
		}
	})
}

// enableEtcdAuth creates etcd's root user with storePassword and turns
// authentication on.
func enableEtcdAuth(t *testing.T, endpoints []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.UserAdd(ctx, "root", storePassword); err != nil {
		t.Fatalf("etcd user add root: %v", err)
	}
	if _, err := c.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatalf("etcd user grant-role root root: %v", err)
	}
	if _, err := c.AuthEnable(ctx); err != nil {
		t.Fatalf("etcd auth enable: %v", err)
	}
}
