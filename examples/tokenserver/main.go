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
// # When to use it
//
// Go services do not need it: give every instance a core.Conf over one
// shared store (a file, Redis, PostgreSQL or etcd store) and each instance
// is a worker, with no master to run. The token server is for fleets with
// PHP, Python, Java or Node services that cannot link the library: they ask
// it, and it is the only process that calls WeChat's token endpoints.
//
// # Endpoints
//
// Every endpoint except /healthz requires "Authorization: Bearer
// $TOKENSERVER_SECRET"; anything else is 401 with a WWW-Authenticate:
// Bearer header, and reveals no credential.
//
//	GET  /access_token             the current access_token
//	POST /access_token/refresh     {"stale":"…"}: compare-and-refresh
//	GET  /jsapi_ticket             the current jsapi_ticket
//	POST /jsapi_ticket/refresh     {"stale":"…"}: the current jsapi_ticket (see Tickets)
//	GET  /wx_card_ticket           the current wx_card api_ticket
//	POST /wx_card_ticket/refresh   {"stale":"…"}: the current api_ticket (see Tickets)
//	GET  /healthz                  {"status":"ok"}: no secret needed, no WeChat call
//
// A success is 200 with
//
//	{"value":"…","expires_at":"2026-01-02T15:04:05Z","expires_at_unix":1767366245}
//
// (expires_at in UTC truncated to the second; expires_at_unix is the same
// instant, like the seed's access_token_expires_at). An error is
// {"error":"…"} with status 401 (no or wrong secret), 400 (the body is not
// one {"stale":"…"} object), 413 (body over 4 KiB), 404 (no such
// endpoint), 405 (wrong method; Allow names the right one), 502 (WeChat
// refused or could not be reached; the message says why and never holds
// the AppSecret), 504 (no answer within -timeout: the refresh goes on, and
// the next request gets its result).
// Every reply carries Cache-Control: no-store.
//
//	curl -H "Authorization: Bearer $TOKENSERVER_SECRET" http://127.0.0.1:8080/access_token
//	curl -H "Authorization: Bearer $TOKENSERVER_SECRET" -H "Content-Type: application/json" \
//		-d '{"stale":"THE_TOKEN_WECHAT_REJECTED"}' http://127.0.0.1:8080/access_token/refresh
//
// # Compare-and-refresh
//
// A worker uses the token it got until WeChat rejects it (errcode 40001,
// 40014 or 42001) or expires_at draws near, and then POSTs the token it
// holds as "stale". If the server's token still equals stale, the server
// fetches a new one, once however many workers ask at the same moment; if
// it already holds another, it returns that one without calling WeChat.
// "stale":"" means "I have none" and returns the current token. So a fleet
// that sees one token rejected causes one fetch. Workers must not refresh
// on a timer or without a stale value: GET is what they call otherwise.
//
// # Tickets
//
// core has a compare-and-refresh for the access_token only
// (Conf.RefreshAccessToken). The decision here: a ticket's refresh
// endpoint answers with the current valid ticket, as GET does, whatever
// stale is; when stale equals it, the same ticket comes back (compare to
// tell). This loses nothing: WeChat never rejects a ticket in an API call
// (a ticket only goes into a JS-SDK signature the browser checks), so the
// only reason to replace one is its expiry, and the server's Conf handles
// that itself: it refreshes a ticket 5 minutes before expiry while serving
// the valid one, and never serves one within a minute of expiry. The
// endpoints exist so that workers treat the three credentials alike, and
// so that a ticket compare-and-refresh can be added to core later without
// changing any client.
//
// # A Go worker
//
// workerStore (worker.go) is the seed's way 3 in Go: the worker form of
// core.FuncStore (StoreFuncs Get + Refresh) pointed at this server. A
// worker's core.Conf uses it as its Store and needs no AppSecret; it reads
// the server only when its in-process copy nears expiry, and its Do sends a
// rejected token back as stale. The tests run 8 such workers against one
// server: 400 concurrent first calls cause one token fetch, and a token
// revoked under all of them causes one more.
//
// # Store and high availability
//
// The server keeps its tokens in the default memory store: it is the single
// master, and a restart costs one fetch (stable_token, the default, hands
// back the same token while it is valid). For high availability run two or
// more behind a load balancer and give their Confs one shared store — a
// file store on one machine, or Redis, PostgreSQL or etcd — whose lock makes
// them fetch once between them; the code change is the Store field in run.
// This example uses the memory store to depend on core alone.
//
// # Security
//
// The bearer secret is compared in constant time (SHA-256 of both sides,
// then crypto/subtle, so not even its length leaks). The log has one line
// per request (method, path, status, duration) and the errors; never a
// token, the bearer secret or the AppSecret. Plain HTTP carries the secret
// and the tokens in clear: serve it on a private network, or behind a
// TLS-terminating proxy.
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
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
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

// minSecret is the shortest bearer secret accepted.
const minSecret = 16

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
	timeout := fs.Duration("timeout", defaultTimeout, "how long a request waits for WeChat before a 504")
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
		// For HA, a shared file, Redis, PostgreSQL or etcd store (see the
		// package doc).
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
	case len(secret) < minSecret:
		return fmt.Errorf("TOKENSERVER_SECRET is %d characters; use at least %d (make one with: openssl rand -hex 32)", len(secret), minSecret)
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

	handler := newServer(conf, core.NewSecret(secret))
	handler.timeout, handler.log = *timeout, logger
	hs := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      *timeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "tokenserver: serving AppID %s on %s\n", cfg.AppID, base)
	fmt.Fprintf(stdout, "  curl -H \"Authorization: Bearer $TOKENSERVER_SECRET\" %s/access_token\n", base)

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("tokenserver: shutting down")
	// In-flight requests may finish; their wait is bounded by -timeout.
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *timeout+time.Second)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil {
		hs.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
