package containertest

import (
	"context"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
	"github.com/wechatconf/wechatconf/cmd/internal/cli/clitest"
	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
)

// The wechatconf CLI's flow (clitest.Flow) against real stores in
// containers (without Docker they skip, and fail under CI).

func TestCLIRedisStore(t *testing.T) {
	r := containers.StartRedis(t)
	url := "redis://" + r.Addr + "/0"
	t.Run("flow", func(t *testing.T) { clitest.Flow(t, url, false) })
	t.Run("held lock", func(t *testing.T) { clitest.HeldLock(t, url) })
	t.Run("store prefix hint", func(t *testing.T) { storePrefixHint(t, url) })
}

// TestCLIRedisSentinelAndCluster runs the flow and the store-prefix hint
// over Redis Sentinel and Redis Cluster URLs: the lock inspect and ls read
// and the hint's SCAN (every master of a Cluster) go through a client of
// the URL's topology.
func TestCLIRedisSentinelAndCluster(t *testing.T) {
	t.Run("Sentinel", func(t *testing.T) {
		rs := containers.StartRedisSentinel(t)
		url := "redis://" + strings.Join(rs.SentinelAddrs, ",") + "/0?master_name=" + neturl.QueryEscape(rs.MasterName)
		t.Run("flow", func(t *testing.T) { clitest.Flow(t, url, false) })
		t.Run("store prefix hint", func(t *testing.T) { storePrefixHint(t, url) })
	})
	t.Run("Cluster", func(t *testing.T) {
		rc := containers.StartRedisCluster(t)
		url := "redis://" + strings.Join(rc.Addrs, ",")
		t.Run("flow", func(t *testing.T) { clitest.Flow(t, url, false) })
		t.Run("store prefix hint", func(t *testing.T) { storePrefixHint(t, url) })
	})
}

// storePrefixHint tests that a get that finds nothing on Redis names the
// store prefix it looked under and finds the key under another store
// prefix of the same server, with the ?prefix= to add; that refresh makes
// no token call for it; and that with that ?prefix= the key is found.
func storePrefixHint(t *testing.T, url string) {
	ctx := context.Background()
	const other = "otherfleet:"
	withPrefix := func(p string) string {
		if strings.Contains(url, "?") {
			return url + "&prefix=" + p
		}
		return url + "?prefix=" + p
	}
	st, closeStore, err := storeurl.Open(ctx, withPrefix(other))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeStore() })
	tok := core.Token{Value: "token-under-another-store-prefix-0123456789", ExpiresAt: time.Now().Add(time.Hour)}
	const appID = "wxstoreprefix00001"
	key := "wechatconf/" + appID + "/access_token"
	if err := st.Set(ctx, key, tok); err != nil {
		t.Fatal(err)
	}
	// And one under the default store prefix, for the hint's list.
	def, closeDef, err := storeurl.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDef() })
	if err := def.Set(ctx, "wechatconf/wxdefaultprefix001/access_token", tok); err != nil {
		t.Fatal(err)
	}
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": url}, Secrets: func() []string { return []string{tok.Value} }}
	r := c.Exec(ctx, "get", appID)
	c.Want(r, cli.ExitNotFound)
	for _, want := range []string{
		`store prefix "wechatconf:" (the default; the URL's ?prefix= sets it)`,
		"found: " + key + ` is in this Redis under store prefix "otherfleet:": add ?prefix=otherfleet: to the store URL`,
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("get of a key under another store prefix: stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	// refresh --classic under the default store prefix makes no token
	// call: the fleet's valid token is under "otherfleet:", and a classic
	// call would stop it working (the base URL refuses every call).
	c.Setenv("WECHAT_APPSECRET", clitest.AppSecret)
	r = c.Exec(ctx, "--classic", "--base-url", "http://127.0.0.1:1", "refresh", appID)
	c.Want(r, cli.ExitNotFound)
	if !strings.Contains(r.Stderr, `a valid one is stored under Redis store prefix "otherfleet:"`) || !strings.Contains(r.Stderr, "no call to WeChat") {
		t.Errorf("refresh of a key valid under another store prefix: stderr\n%s\nwant where it is and that nothing was done", r.Stderr)
	}
	c.Setenv("WECHAT_APPSECRET", "")
	c.Setenv("WECHATCONF_STORE", withPrefix(other))
	c.Want(c.Exec(ctx, "get", appID), cli.ExitOK)
	r = c.Exec(ctx, "get", "wxnowhere000000001")
	c.Want(r, cli.ExitNotFound)
	if !strings.Contains(r.Stderr, `store prefix "otherfleet:" (the URL's ?prefix=)`) || !strings.Contains(r.Stderr, `"wechatconf:"`) ||
		strings.Contains(r.Stderr, "found:") {
		t.Errorf("get of a key stored nowhere, under ?prefix=%s: stderr\n%s\nwant the prefix it looked under and the other store prefixes listed, none holding the key", other, r.Stderr)
	}
}

// TestCLIPostgresStore passes the URL, which holds a password, in
// WECHATCONF_STORE: a flag would be refused.
func TestCLIPostgresStore(t *testing.T) {
	pg := containers.StartPostgres(t)
	clitest.Flow(t, pg.DSN, true)
}

func TestCLIEtcdStore(t *testing.T) {
	e := containers.StartEtcd(t)
	clitest.Flow(t, "etcd://"+strings.TrimPrefix(e.Endpoints[0], "http://"), false)
}
