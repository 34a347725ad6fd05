package tokenserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Serve serves h on ln until ctx ends, then shuts down gracefully: requests
// in flight may finish within timeout plus one second (timeout is the
// Handler's per-request bound, WithTimeout), after which the remaining
// connections are closed. The http.Server has the timeouts a server facing
// a network needs (5 s to read headers, 10 s to read a request, timeout +
// 10 s to write a reply, 16 KiB of headers) and logs its own errors to
// logger at Warn (nil means slog.Default()). It returns nil after a clean
// shutdown, and otherwise the error that stopped serving or shutting down.
// The wechatconf-tokenserver binary and examples/tokenserver both serve
// through it.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, timeout time.Duration, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      timeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("tokenserver: shutting down")
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+time.Second)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil {
		hs.Close()
		return fmt.Errorf("tokenserver: shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
