package openplatform

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// Durable state that a WeChat reply or push brings — an authorization
// (the code is single-use at WeChat: once exchanged, only the reply holds
// the refresh token), a withdrawal, a verify ticket — is written forward
// to the durable store by writeDurable. A store error does not lose it:
// the write is retried within the caller's time, and if the store has not
// taken it by then it is held in memory and written in the background
// until it lands or a newer value supersedes it (heldWrites). The caller
// is told (an error wrapping the store's), so that a push is not answered
// "success" and WeChat delivers it again.

// The back-off between two attempts of a durable write: from retryFirst,
// doubling, up to retryMax.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = 5 * time.Second
)

// heldWrites are the durable writes the store has not taken yet, by key:
// each is retried by one background goroutine while it is held (none is
// running when nothing is held).
type heldWrites struct {
	mu sync.Mutex
	m  map[string]*heldWrite
}

// heldWrite is the latest write held for a key.
type heldWrite struct {
	next  core.Token
	keep  func(cur core.Token) bool // what the store holds stays (it is as new or newer)
	name  string                    // what it is, for events
	appid string                    // the authorizer whose record it is, "" for none
}

// Held reports how many durable writes the store has not taken yet: they
// are retried in the background until they land (an event each:
// core.EventStoreError with op "write_back" while it fails,
// core.EventWrittenBack when it lands). A process that stops while one is
// held loses it; for an authorization WeChat's re-sent push brings it
// again (see Authorize).
func (c *Component) Held() int {
	c.held.mu.Lock()
	defer c.held.mu.Unlock()
	return len(c.held.m)
}

// writeDurable writes next (the name of what it is, for events; the
// record of authorizer appid, or "") under key in the durable store unless keep
// says the stored value is as new or newer (writeForward), retrying store
// errors with back-off for at most Policy.RefreshTimeout within ctx. If
// the store has not answered by then, the write is held and retried in
// the background (see heldWrites), and the error returned says so. written
// reports whether the store now holds next.
func (c *Component) writeDurable(ctx context.Context, name, appid, key string, next core.Token, keep func(cur core.Token) bool) (written bool, err error) {
	fg, cancel := context.WithTimeout(ctx, c.refreshTimeout())
	defer cancel()
	for wait := retryFirst; ; wait = min(2*wait, retryMax) {
		written, err = writeForward(fg, c.durable, key, next, keep)
		if err == nil {
			c.drop(key, next)
			return written, nil
		}
		c.logStoreError(name, key, "write", err)
		if fg.Err() != nil || !wait2(fg, wait) {
			break
		}
	}
	c.hold(name, appid, key, next, keep)
	return false, fmt.Errorf("%w (held in memory: it is written when the store answers)", err)
}

// wait2 waits d or until ctx ends; it reports whether d passed.
func wait2(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// hold keeps the write for the background writer, replacing an earlier
// write held for the same key, and starts the writer if none runs.
func (c *Component) hold(name, appid, key string, next core.Token, keep func(core.Token) bool) {
	c.held.mu.Lock()
	defer c.held.mu.Unlock()
	if c.held.m == nil {
		c.held.m = make(map[string]*heldWrite)
	}
	_, running := c.held.m[key]
	c.held.m[key] = &heldWrite{next: next, keep: keep, name: name, appid: appid}
	if !running {
		go c.writeBack(key)
	}
}

// drop forgets the write held for key if it is next (it landed).
func (c *Component) drop(key string, next core.Token) {
	c.held.mu.Lock()
	defer c.held.mu.Unlock()
	if h := c.held.m[key]; h != nil && h.next == next {
		delete(c.held.m, key)
	}
}

// writeBack writes the write held for key until it lands or is
// superseded; each attempt is bounded by Policy.RefreshTimeout.
func (c *Component) writeBack(key string) {
	for wait := retryFirst; ; wait = min(2*wait, retryMax) {
		c.held.mu.Lock()
		h := c.held.m[key]
		c.held.mu.Unlock()
		if h == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.refreshTimeout())
		written, err := writeForward(ctx, c.durable, key, h.next, h.keep)
		cancel()
		if err != nil {
			c.logStoreError(h.name, key, "write_back", err)
			wait2(context.Background(), wait)
			continue
		}
		c.held.mu.Lock()
		if c.held.m[key] == h {
			delete(c.held.m, key)
		}
		c.held.mu.Unlock()
		if written {
			c.logger().LogAttrs(context.Background(), slog.LevelInfo, core.EventWrittenBack,
				slog.String("credential", h.name), slog.String("key", key))
		}
		if h.appid != "" {
			c.changed(h.appid) // its handle reads the store again
		}
	}
}

func (c *Component) refreshTimeout() time.Duration {
	if d := c.cfg.Policy.RefreshTimeout; d > 0 {
		return d
	}
	return 30 * time.Second
}

// logger is Config.Logger, or slog.Default() for Warn and above.
func (c *Component) logger() *slog.Logger {
	if c.cfg.Logger != nil {
		return c.cfg.Logger
	}
	return slog.New(warnOnly{slog.Default().Handler()})
}

// logStoreError logs core.EventStoreError for a durable write of name
// under key that failed in op; err holds no credential (stores never put
// a value in an error).
func (c *Component) logStoreError(name, key, op string, err error) {
	c.logger().LogAttrs(context.Background(), slog.LevelWarn, core.EventStoreError,
		slog.String("credential", name), slog.String("key", key), slog.String("op", op), slog.String("error", err.Error()))
}

// warnOnly passes on records of level Warn and above.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
