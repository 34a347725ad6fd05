// Command wechatconf-tokenserver is the 中控 token server as a product: it
// serves the access_token, jsapi_ticket and wx_card api_ticket of one
// Official Account over HTTP (package tokenserver: bearer secret,
// compare-and-refresh, GET /healthz, GET /readyz) from a store chosen by URL, so that
// two or more servers over one shared store behind a load balancer fetch
// once between them and survive the loss of any one:
//
//	export WECHAT_APPID=wx… WECHAT_APPSECRET=… TOKENSERVER_SECRET=$(openssl rand -hex 32)
//	export WECHATCONF_STORE=redis://redis.internal:6379/0   # or -store
//	wechatconf-tokenserver -addr :8080
//
// The store URL (-store, or WECHATCONF_STORE; default memory:) is one of
//
//	memory:                                 this process only (a restart costs one fetch)
//	file:///var/lib/wechatconf              servers on one machine
//	redis://[user:password@]host:6379/0     rediss:// for TLS; ?prefix=… for the key prefix
//	redis://h1:6379,h2:6379,h3:6379         Redis Cluster (or ?addr=h2:6379…, or one seed with ?cluster=true)
//	redis://s1:26379,s2:26379/0?master_name=mymaster   Redis Sentinel (&password=… for the master)
//	postgres://user:password@host:5432/db   pgx's connection parameters (?password=…, host lists)
//	host=db.internal dbname=db user=u       a PostgreSQL keyword/value DSN (password='…')
//	etcd://host:2379[,host:2379…]           ?prefix=… for the key prefix
//
// (package cmd/storeurl, which says how a Redis URL selects its topology).
// A URL with a password in any form (userinfo, ?password=, a keyword
// password=) is accepted from WECHATCONF_STORE only, never from -store,
// which other users can read in the process list, and it is printed with
// the password masked. The secrets come from the environment only and are
// never printed: WECHAT_APPID and WECHAT_APPSECRET
// (both required; or WECHAT_APPSECRET_FILE, a file holding the AppSecret —
// a mounted Kubernetes Secret — read again when WeChat refuses it, so that
// an AppSecret reset in WeChat's console needs no restart), TOKENSERVER_SECRET (the workers' bearer secret, at least
// 16 characters). WECHAT_BASE_URL overrides the WeChat API host. -addr (or
// TOKENSERVER_ADDR, default 127.0.0.1:8080) is the listen address and
// -timeout (default 10s) how long a request waits for a credential before a
// 504. -ready-horizon (default 2m) is core.Config.ReadyHorizon: GET /readyz
// answers 503 unless the access_token is valid for that long or can be had
// (a Kubernetes readinessProbe; GET /healthz is the livenessProbe: see
// docs/kubernetes.md).
//
// SIGINT or SIGTERM stops it gracefully: it stops accepting, lets requests
// in flight finish (at most -timeout), then closes the store's client.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/wechatconf/wechatconf/cmd/internal/serve"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := serve.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, serve.Name+":", err)
		os.Exit(1)
	}
}
