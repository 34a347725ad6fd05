// Command tokenserver is the seed's 中控服务器 (central token server) for
// fleets that are not all Go: one process keeps the access_token, the
// jsapi_ticket and the wx_card api_ticket of one Official Account valid
// with a core.Conf and hands them out over HTTP to workers in any language
// (the seed's 业务逻辑服务器), which never hold the AppSecret. Run it from the
// repository root:
//
//	export TOKENSERVER_SECRET=$(openssl rand -hex 32)
//	WECHAT_APPID=wx… WECHAT_APPSECRET=… go run ./examples/tokenserver -addr 127.0.0.1:8080
//
// With neither WECHAT_APPID nor WECHAT_APPSECRET set it runs against the
// simulated WeChat API (core/wxtest) in-process, and if TOKENSERVER_SECRET is
// unset it generates one for the run and prints it, so
// `go run ./examples/tokenserver` works on any machine. With real
// credentials it refuses to start without TOKENSERVER_SECRET (at least 16
// characters). WECHAT_BASE_URL overrides the API host; -addr (or
// TOKENSERVER_ADDR, default 127.0.0.1:8080) is the listen address; -timeout
// (default 10s) is how long a request waits for WeChat. The secrets are read
// from the environment only, never from flags, which other users can see in
// the process list.
//
// The handler and the Go worker's store are the importable package
// github.com/wechatconf/wechatconf/tokenserver (endpoints, compare-and-refresh,
// tickets and security are documented there); this command is a thin main
// around tokenserver.Handler on the memory store, to try it. For production,
// with a shared store for two or more servers behind a load balancer, use
// the command cmd/wechatconf-tokenserver, which picks its store from a URL.
package main

import (
	"context"
	"crypto/rand"
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

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	"github.com/wechatconf/wechatconf/tokenserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "tokenserver:", err)
		os.Exit(1)
	}
}

// Demo credentials of the in-process simulator.
const (
	demoAppID     = "wx_tokenserver"
	demoAppSecret = "tokenserver-demo-secret"
)

// run serves until ctx is done, then shuts down gracefully. It prints where
// it listens to stdout and logs to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokenserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defAddr := getenv("TOKENSERVER_ADDR")
	if defAddr == "" {
		defAddr = "127.0.0.1:8080"
	}
	addr := fs.String("addr", defAddr, "listen address (env TOKENSERVER_ADDR)")
	timeout := fs.Duration("timeout", tokenserver.DefaultTimeout, "how long a request waits for WeChat before a 504")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: configure with flags and the environment", fs.Args())
	}
	if *timeout <= 0 {
		return fmt.Errorf("-timeout must be positive, got %v", *timeout)
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := core.Config{
		AppID:     getenv("WECHAT_APPID"),
		AppSecret: core.NewSecret(getenv("WECHAT_APPSECRET")),
		BaseURL:   getenv("WECHAT_BASE_URL"),
		Logger:    logger,
		// Store: nil, the memory store: this server is the single master.
		// For HA, cmd/wechatconf-tokenserver over a shared store.
	}
	simulated := cfg.AppID == "" && cfg.AppSecret.IsZero()
	if !simulated && (cfg.AppID == "" || cfg.AppSecret.IsZero()) {
		return errors.New("set both WECHAT_APPID and WECHAT_APPSECRET, or neither to use the simulated WeChat API")
	}
	secret := getenv("TOKENSERVER_SECRET")
	switch {
	case secret == "" && !simulated:
		return errors.New("TOKENSERVER_SECRET is not set: refusing to serve tokens without a bearer secret (make one with: openssl rand -hex 32)")
	case secret == "":
		secret = rand.Text()
		fmt.Fprintf(stdout, "tokenserver: no TOKENSERVER_SECRET: generated one for this run (simulator only):\nexport TOKENSERVER_SECRET=%s\n", secret)
	case len(secret) < tokenserver.MinSecretLen:
		return fmt.Errorf("TOKENSERVER_SECRET is %d characters; use at least %d (make one with: openssl rand -hex 32)", len(secret), tokenserver.MinSecretLen)
	}
	if simulated {
		sim := wxtest.New(wxtest.Options{AppID: demoAppID, AppSecret: demoAppSecret, Now: time.Now})
		defer sim.Close()
		cfg.AppID, cfg.AppSecret, cfg.BaseURL = demoAppID, core.NewSecret(demoAppSecret), sim.URL
		fmt.Fprintf(stdout, "tokenserver: no WECHAT_APPID/WECHAT_APPSECRET: using the simulated WeChat API at %s\n", sim.URL)
	}
	conf, err := core.New(cfg)
	if err != nil {
		return err
	}

	handler := tokenserver.Handler(conf, core.NewSecret(secret), tokenserver.WithTimeout(*timeout), tokenserver.WithLogger(logger))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "tokenserver: serving AppID %s on %s\n", cfg.AppID, base)
	fmt.Fprintf(stdout, "  curl -H \"Authorization: Bearer $TOKENSERVER_SECRET\" %s/access_token\n", base)

	return tokenserver.Serve(ctx, ln, handler, *timeout, logger)
}
