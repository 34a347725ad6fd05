// Package serve is the wechatconf-tokenserver command (cmd/wechatconf-tokenserver
// is its main): flags, environment, store URL, and the server's life. It is
// internal so that the command's tests in the test-only module
// cmd/containertest (real Redis) can run it in-process.
package serve

import (
	"sync/atomic"

	"context"
	"errors"
	"flag"
	"fmt"
	goredis "github.com/redis/go-redis/v9"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/tokenserver"
)

// Name is the command's name, in its usage and log lines.
const Name = "wechatconf-tokenserver"

// Run serves until ctx is done, then shuts down gracefully. It prints where
// it listens to stdout and logs to stderr; args are the command's flags
// (without the program name) and getenv reads its environment (os.Getenv).
// An error is a refusal to start (flags, environment, store) or the
// server's failure; flag.ErrHelp after -h.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	defAddr := getenv("TOKENSERVER_ADDR")
	if defAddr == "" {
		defAddr = "127.0.0.1:8080"
	}
	addr := fs.String("addr", defAddr, "listen address (env TOKENSERVER_ADDR)")
	storeFlag := fs.String("store", "", "store URL, without a password (env WECHATCONF_STORE; default memory:): "+storeurl.Schemes)
	timeout := fs.Duration("timeout", tokenserver.DefaultTimeout, "how long a request waits for a credential before a 504")
	readyHorizon := fs.Duration("ready-horizon", core.DefaultReadyHorizon, "GET /readyz answers 503 unless the access_token is valid for this long, or can be had (core.Config.ReadyHorizon)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of %s:\n", Name)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), `Environment (secrets come from here only, never from flags):
  WECHAT_APPID            the AppID (required)
  WECHAT_APPSECRET        its AppSecret, or
  WECHAT_APPSECRET_FILE   a file holding it (a mounted secret), read again when WeChat refuses it
  TOKENSERVER_SECRET      the workers' bearer secret (at least 16 characters; required)
  WECHATCONF_STORE        the store URL, password allowed (default memory:)
  TOKENSERVER_ADDR        the listen address (default 127.0.0.1:8080)
  WECHAT_BASE_URL         the WeChat API host (default https://api.weixin.qq.com)
`)
	}
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
	// WECHAT_APPSECRET_FILE: a mounted secret (a Kubernetes Secret volume),
	// read again when WeChat refuses the AppSecret — an admin reset it in
	// the console — so that the server recovers without a restart.
	var secretSource core.SecretSource
	if path := getenv("WECHAT_APPSECRET_FILE"); path != "" {
		if !appSecret.IsZero() {
			return errors.New("set WECHAT_APPSECRET or WECHAT_APPSECRET_FILE, not both")
		}
		secretSource = core.FileSecret(path)
	}
	if appID == "" || (appSecret.IsZero() && secretSource == nil) {
		return errors.New("set WECHAT_APPID and WECHAT_APPSECRET (or WECHAT_APPSECRET_FILE, a file holding it) in the environment")
	}
	secret := getenv("TOKENSERVER_SECRET")
	switch {
	case secret == "":
		return errors.New("TOKENSERVER_SECRET is not set: refusing to serve tokens without a bearer secret (make one with: openssl rand -hex 32)")
	case len(secret) < tokenserver.MinSecretLen:
		return fmt.Errorf("TOKENSERVER_SECRET is %d characters; use at least %d (make one with: openssl rand -hex 32)", len(secret), tokenserver.MinSecretLen)
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	redisLogTo.Store(&redisLogTarget{logger, spec})
	openCtx, cancelOpen := context.WithTimeout(ctx, 30*time.Second)
	store, closeStore, err := spec.Open(openCtx)
	cancelOpen()
	if err != nil {
		return err
	}
	defer func() {
		if err := closeStore(); err != nil {
			logger.Warn(Name+": closing the store", "error", err)
		}
	}()
	conf, err := core.New(core.Config{
		AppID: appID, AppSecret: appSecret, AppSecretSource: secretSource, BaseURL: getenv("WECHAT_BASE_URL"),
		Store: store, Logger: logger, ReadyHorizon: *readyHorizon,
	})
	if err != nil {
		return err
	}

	handler := tokenserver.Handler(conf, core.NewSecret(secret), tokenserver.WithTimeout(*timeout), tokenserver.WithLogger(logger))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: serving AppID %s from store %s on http://%s\n", Name, appID, spec, ln.Addr())

	err = tokenserver.Serve(ctx, ln, handler, *timeout, logger)
	// The fetch records of the server's Conf go to the fleet's ledger in
	// the background: wait for them (bounded), or the exit loses them.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := conf.FlushLedger(fctx); ferr != nil {
		logger.Warn(Name+": the fetch ledger (history) did not take this server's last fetches", "error", ferr)
	}
	return err
}

// go-redis logs through one process-wide logger (its pool's "failed to
// dial" lines, written to the process's stderr by default). The server
// routes them into its own log, as Warn records with the store URL's
// passwords redacted. The logger is installed once, in init, before any
// client exists (go-redis reads it unsynchronised), and points at the
// latest Run's logger (a test may run several servers in one process);
// before any Run it drops what it is given.
var redisLogTo atomic.Pointer[redisLogTarget]

func init() { goredis.SetLogger(redisLogger{}) }

type redisLogTarget struct {
	logger *slog.Logger
	spec   storeurl.Spec
}

// redisLogger is go-redis's logging interface over redisLogTo.
type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if t := redisLogTo.Load(); t != nil {
		t.logger.WarnContext(ctx, Name+": redis client", "message", t.spec.Redact(fmt.Sprintf(format, v...)))
	}
}
