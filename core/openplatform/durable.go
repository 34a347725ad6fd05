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

// heldWrites are the durable writes the store has not taken yet, by key,
// in the order they came: each is a step, so the background writer
// applies them all in turn and each keeps to its own ordering rule (an
// older withdrawal held after a newer authorization does not replace it;
// one write held must never replace another).
// One goroutine per key runs while anything is held for it.
type heldWrites struct {
	mu      sync.Mutex
	m       map[string][]*heldWrite
	running map[string]bool // a writeBack goroutine serves the key
	drained chan struct{}   // closed when the last held write is done; nil while none is held
}

// heldWrite is one write held for a key.
type heldWrite struct {
	step  step
	name  string // what it is, for events
	appid string // the authorizer whose record it is, "" for none
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
	n := 0
	for _, hs := range c.held.m {
		n += len(hs)
	}
	return n
}

// Flush waits until every durable write held (see Held) has landed or
// been superseded, and the fetch records of the component_access_token and
// of every authorizer handle alive are in their fetch ledgers
// (core.Credential.FlushLedger), or ctx ends (then it returns ctx's error,
// and the writes go on being retried). Call it before a process stops, so
// that nothing held in memory is lost with it.
func (c *Component) Flush(ctx context.Context) error {
	for {
		c.held.mu.Lock()
		ch := c.held.drained
		c.held.mu.Unlock()
		if ch == nil {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return wrap("Flush", fmt.Errorf("%d durable writes still held: %w", c.Held(), ctx.Err()))
		}
	}
	err := c.token.FlushLedger(ctx)
	c.handles.Range(func(_, v any) bool {
		if a := v.(*entry).live(); a != nil && err == nil {
			err = a.Conf.FlushLedger(ctx) // its access_token (a.access) and tickets
		}
		return err == nil
	})
	if err != nil {
		return wrap("Flush", fmt.Errorf("fetch records not yet in the ledger: %w", err))
	}
	return nil
}

// writeDurable applies st to the value under key in the durable store
// (writeForward), for name (what it is, for events) of authorizer appid
// (or ""), retrying store errors with back-off for at most
// Policy.RefreshTimeout within ctx. If the store has not answered by then,
// the write is held and retried in the background (see heldWrites), and
// the error returned says so. It may overtake writes held for the same
// key: each is a step that only moves the value forward by its own rule,
// so their order does not matter. written reports whether the store now
// holds what st asked for.
func (c *Component) writeDurable(ctx context.Context, name, appid, key string, st step) (written bool, err error) {
	h := &heldWrite{step: st, name: name, appid: appid}
	fg, cancel := context.WithTimeout(ctx, c.refreshTimeout())
	defer cancel()
	for wait := retryFirst; ; wait = min(2*wait, retryMax) {
		written, err = writeForward(fg, c.durable, key, st)
		if err == nil {
			return written, nil
		}
		c.logStoreError(name, key, "write", err)
		if fg.Err() != nil || !sleepCtx(fg, wait) {
			break
		}
	}
	c.hold(key, h)
	return false, fmt.Errorf("%w (held in memory: it is written when the store answers)", err)
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// hold queues h for the background writer and starts it if none runs for
// key.
func (c *Component) hold(key string, h *heldWrite) {
	c.held.mu.Lock()
	defer c.held.mu.Unlock()
	if c.held.m == nil {
		c.held.m, c.held.running = make(map[string][]*heldWrite), make(map[string]bool)
	}
	c.held.m[key] = append(c.held.m[key], h)
	if c.held.drained == nil {
		c.held.drained = make(chan struct{})
	}
	if !c.held.running[key] {
		c.held.running[key] = true
		go c.writeBack(key)
	}
}

// writeBack applies the writes held for key in order until none is left;
// each attempt is bounded by Policy.RefreshTimeout.
func (c *Component) writeBack(key string) {
	wait := retryFirst
	for {
		c.held.mu.Lock()
		if len(c.held.m[key]) == 0 {
			delete(c.held.m, key)
			delete(c.held.running, key)
			if len(c.held.m) == 0 && c.held.drained != nil {
				close(c.held.drained)
				c.held.drained = nil
			}
			c.held.mu.Unlock()
			return
		}
		h := c.held.m[key][0]
		c.held.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), c.refreshTimeout())
		written, err := writeForward(ctx, c.durable, key, h.step)
		cancel()
		if err != nil {
			c.logStoreError(h.name, key, "write_back", err)
			sleepCtx(context.Background(), wait)
			wait = min(2*wait, retryMax)
			continue
		}
		wait = retryFirst
		c.held.mu.Lock()
		c.held.m[key] = c.held.m[key][1:]
		c.held.mu.Unlock()
		if written {
			c.logger().LogAttrs(context.Background(), slog.LevelInfo, core.EventWrittenBack,
				slog.String("credential", h.name), slog.String("platform", string(platformOf(h.name))), slog.String("key", key))
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
	return core.DefaultLogger()
}

// logStoreError logs core.EventStoreError for a durable write of name
// under key that failed in op; err holds no credential (stores never put
// a value in an error).
func (c *Component) logStoreError(name, key, op string, err error) {
	c.logger().LogAttrs(context.Background(), slog.LevelWarn, core.EventStoreError,
		slog.String("credential", name), slog.String("platform", string(platformOf(name))), slog.String("key", key),
		slog.String("op", op), slog.String("error", err.Error()))
}

// platformOf is the "platform" attribute of the events of a durable write
// of name: the component's verify ticket is the component's, the rest
// (an authorizer's record, an authorization code's index) an authorizer's.
func platformOf(name string) core.Platform {
	if name == "component_verify_ticket" {
		return core.PlatformOpenPlatformComponent
	}
	return core.PlatformOpenPlatformAuthorizer
}
