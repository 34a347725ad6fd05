package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// The same flow against real stores in containers (without Docker they
// skip, and fail under CI), as cmd/wechatconf-tokenserver's Redis test.

func TestRedisStore(t *testing.T) {
	r := containers.StartRedis(t)
	url := "redis://" + r.Addr + "/0"
	t.Run("flow", func(t *testing.T) { flow(t, url, false) })
	t.Run("held lock", func(t *testing.T) { heldLock(t, url) })
}

// heldLock: while a refresh holds the access_token's lock (its WeChat call
// blocked), inspect shows the lock held with its lease.
func heldLock(t *testing.T, url string) {
	ctx := context.Background()
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now})
	t.Cleanup(wechat.Close)
	gate := wechat.Block(wxtest.PathStableToken)
	c := &cli{t: t, environ: map[string]string{"WECHAT_APPSECRET": testAppSecret, "WECHATCONF_STORE": url}}
	global := []string{"--prefix", "heldlock", "--base-url", wechat.URL}
	done := make(chan result, 1)
	go func() {
		var out, errOut syncBuffer
		code := run(ctx, append(append([]string{}, global...), "refresh", testAppID), func(k string) string { return c.environ[k] }, &out, &errOut)
		done <- result{code, out.String(), errOut.String()}
	}()
	select {
	case <-gate.Arrived():
	case <-time.After(20 * time.Second):
		t.Fatal("refresh made no WeChat call")
	}
	r := c.run(ctx, append(append([]string{}, global...), "inspect", testAppID, "--json")...)
	gate.Release()
	c.want(r, exitNotFound) // nothing stored yet
	vs := r.views(t)
	if len(vs) != 3 || vs[0].Lock == nil || !vs[0].Lock.Held || vs[0].Lock.Lease == nil || *vs[0].Lock.Lease <= 0 ||
		vs[1].Lock == nil || vs[1].Lock.Held {
		t.Fatalf("inspect during a refresh: %s", r.stdout)
	}
	if r := <-done; r.code != exitOK {
		t.Fatalf("refresh: %d %s %s", r.code, r.stdout, r.stderr)
	}
}

// TestPostgresStore passes the URL, which holds a password, in
// WECHATCONF_STORE: a flag would be refused.
func TestPostgresStore(t *testing.T) {
	pg := containers.StartPostgres(t)
	flow(t, pg.DSN, true)
}

func TestEtcdStore(t *testing.T) {
	e := containers.StartEtcd(t)
	flow(t, "etcd://"+strings.TrimPrefix(e.Endpoints[0], "http://"), false)
}
