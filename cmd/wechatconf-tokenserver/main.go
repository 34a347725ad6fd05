// Command wechatconf-tokenserver is the 中控 token server as a product: it
// serves the access_token, jsapi_ticket and wx_card api_ticket of one
// Official Account over HTTP (package tokenserver: bearer secret,
// compare-and-refresh, GET /healthz) from a store chosen by URL, so that
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
//	postgres://user:password@host:5432/db   pgx's connection parameters
//	etcd://host:2379[,host:2379…]           ?prefix=… for the key prefix
//
// (package cmd/storeurl). A URL with a password is accepted from
// WECHATCONF_STORE only, never from -store, which other users can read in
// the process list, and it is printed redacted. The secrets come from the
// environment only and are never printed: WECHAT_APPID and WECHAT_APPSECRET
// (both required), TOKENSERVER_SECRET (the workers' bearer secret, at least
// 16 characters). WECHAT_BASE_URL overrides the WeChat API host. -addr (or
// TOKENSERVER_ADDR, default 127.0.0.1:8080) is the listen address and
// -timeout (default 10s) how long a request waits for a credential before a
// 504.
//
// SIGINT or SIGTERM stops it gracefully: it stops accepting, lets requests
// in flight finish (at most -timeout), then closes the store's client.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/tokenserver"
)

const name = "wechatconf-tokenserver"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down gracefully. It prints where
// it listens to stdout and logs to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	defAddr := getenv("TOKENSERVER_ADDR")
	if defAddr == "" {
		defAddr = "127.0.0.1:8080"
	}
	addr := fs.String("addr", defAddr, "listen address (env TOKENSERVER_ADDR)")
	storeFlag := fs.String("store", "", "store URL, without a password (env WECHATCONF_STORE; default memory:): "+storeurl.Schemes)
	timeout := fs.Duration("timeout", tokenserver.DefaultTimeout, "how long a request waits for a credential before a 504")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: configure with flags and the environment", fs.Args())
	}
	if *timeout <= 0 {
		return fmt.Errorf("-timeout must be positive, got %v", *timeout)
	}

	rawStore, fromFlag := *storeFlag, *storeFlag != ""
	if !fromFlag {
		rawStore = getenv("WECHATCONF_STORE")
	}
	if rawStore == "" {
		rawStore = "memory:"
	}
	spec, err := storeurl.Parse(rawStore)
	if err != nil {
		return err
	}
	if fromFlag && spec.HasPassword() {
		return fmt.Errorf("-store %s holds a password: pass it in WECHATCONF_STORE instead (the process list shows flags)", spec)
	}

	appID, appSecret := getenv("WECHAT_APPID"), core.NewSecret(getenv("WECHAT_APPSECRET"))
	if appID == "" || appSecret.IsZero() {
		return errors.New("set WECHAT_APPID and WECHAT_APPSECRET in the environment")
	}
	secret := getenv("TOKENSERVER_SECRET")
	switch {
	case secret == "":
		return errors.New("TOKENSERVER_SECRET is not set: refusing to serve tokens without a bearer secret (make one with: openssl rand -hex 32)")
	case len(secret) < tokenserver.MinSecretLen:
		return fmt.Errorf("TOKENSERVER_SECRET is %d characters; use at least %d (make one with: openssl rand -hex 32)", len(secret), tokenserver.MinSecretLen)
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	openCtx, cancelOpen := context.WithTimeout(ctx, 30*time.Second)
	store, closeStore, err := spec.Open(openCtx)
	cancelOpen()
	if err != nil {
		return err
	}
	defer func() {
		if err := closeStore(); err != nil {
			logger.Warn(name+": closing the store", "error", err)
		}
	}()
	conf, err := core.New(core.Config{
		AppID: appID, AppSecret: appSecret, BaseURL: getenv("WECHAT_BASE_URL"),
		Store: store, Logger: logger,
	})
	if err != nil {
		return err
	}

	handler := tokenserver.Handler(conf, core.NewSecret(secret), tokenserver.WithTimeout(*timeout), tokenserver.WithLogger(logger))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: serving AppID %s from store %s on http://%s\n", name, appID, spec, ln.Addr())

	return tokenserver.Serve(ctx, ln, handler, *timeout, logger)
}
