package tenant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// Durable state that a WeChat reply or push brings — an authorization
// (its code is single-use at WeChat: once exchanged, only the reply holds
// the secret), a withdrawal, a pushed ticket — is written forward to the
// durable store by Writer.Write. A store error does not lose it: the write
// is retried within the caller's time, and if the store has not taken it
// by then it is held in memory and written in the background until it
// lands or a newer value supersedes it. The caller is told (an error
// wrapping the store's), so that a push is not answered "success" and
// WeChat delivers it again.

// Step is one transition of a durable value: given what the store holds
// (the zero Token for none, or one that cannot be decoded), the value to
// write, or ok false when what the store holds is to stay (it is as new or
// newer). It must depend on cur alone: WriteForward calls it again when
// another writer came between.
type Step func(cur core.Token) (next core.Token, ok bool)

// WriteForward applies st to the value under key: it reads the stored
// token, asks st, and replaces exactly what it read by a compare-and-set
// through the key's lock (CompareAndSet), starting again if another writer
// came between (at most 16 times). written reports whether the store now
// holds what st asked for (false: st kept what the store holds). Errors
// are the store's, but ErrNotFound and ErrCorrupt on the read, which count
// as nothing stored.
func WriteForward(ctx context.Context, store core.TokenStore, key string, st Step) (written bool, err error) {
	for range 16 {
		cur, err := store.Get(ctx, key)
		if err != nil && !errors.Is(err, core.ErrNotFound) && !errors.Is(err, core.ErrCorrupt) {
			return false, err
		}
		next, ok := st(cur)
		switch {
		case !ok:
			return false, nil
		case cur.Value == next.Value:
			return true, nil
		}
		if ok, err := CompareAndSet(ctx, store, key, cur, next); err != nil || ok {
			return ok, err
		}
	}
	return false, errors.New("other writers kept coming between")
}

// CompareAndSet writes next under key only if the store still holds
// expected, through the key's lock (TokenStore.Refresh with expected as the
// stale value); it reports whether it wrote.
func CompareAndSet(ctx context.Context, store core.TokenStore, key string, expected, next core.Token) (bool, error) {
	got, err := store.Refresh(ctx, key, expected.Value, func(context.Context) (core.Token, error) { return next, nil })
	if err != nil {
		return false, err
	}
	return got.Value == next.Value, nil
}

// The back-off between two attempts of a durable write: from retryFirst,
// doubling, up to retryMax.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = 5 * time.Second
)

// Writer writes durable state forward to one store, holding in memory
// what the store has not taken yet (see Write). One goroutine per key runs
// while anything is held for it, none otherwise. The zero value is not
// usable: set Store.
type Writer struct {
	// Store is the durable store.
	Store core.TokenStore
	// Timeout bounds the foreground attempts of a Write and each
	// background attempt (the platform's Policy.RefreshTimeout; 30 s when
	// 0).
	Timeout time.Duration
	// Logger receives core.EventStoreError (op "write" or "write_back")
	// and core.EventWrittenBack; nil means core.DefaultLogger().
	Logger *slog.Logger
	// Platform is the "platform" attribute of the events of a write of
	// name (the credential it is).
	Platform func(name string) core.Platform
	// Landed, if set, is called after a held write of tenant's is applied
	// (written or superseded): its handle reads the store again.
	Landed func(tenant string)

	mu      sync.Mutex
	m       map[string][]*heldWrite
	running map[string]bool // a writeBack goroutine serves the key
	drained chan struct{}   // closed when the last held write is done; nil while none is held
}

// heldWrite is one write held for a key: a Step, so the background writer
// applies them all in turn and each keeps to its own ordering rule (an
// older withdrawal held after a newer authorization does not replace it;
// one write held must never replace another).
type heldWrite struct {
	step   Step
	name   string // what it is, for events
	tenant string // the tenant whose record it is, "" for none
}

// Write applies st to the value under key (WriteForward), for name (the
// credential it is, for events) of tenant (or ""), retrying store errors
// with back-off for at most Timeout within ctx. If the store has not
// answered by then, the write is held and retried in the background, and
// the error returned says so. It may overtake writes held for the same
// key: each is a step that only moves the value forward by its own rule,
// so their order does not matter. written reports whether the store now
// holds what st asked for.
func (w *Writer) Write(ctx context.Context, name, tenant, key string, st Step) (written bool, err error) {
	h := &heldWrite{step: st, name: name, tenant: tenant}
	fg, cancel := context.WithTimeout(ctx, w.timeout())
	defer cancel()
	for wait := retryFirst; ; wait = min(2*wait, retryMax) {
		written, err = WriteForward(fg, w.Store, key, st)
		if err == nil {
			return written, nil
		}
		w.logStoreError(name, key, "write", err)
		if fg.Err() != nil || !sleepCtx(fg, wait) {
			break
		}
	}
	w.hold(key, h)
	return false, fmt.Errorf("%w (held in memory: it is written when the store answers)", err)
}

// Held reports how many writes the store has not taken yet: they are
// retried in the background until they land (an event each:
// core.EventStoreError with op "write_back" while it fails,
// core.EventWrittenBack when it lands). A process that stops while one is
// held loses it.
func (w *Writer) Held() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, hs := range w.m {
		n += len(hs)
	}
	return n
}

// Drain waits until every write held has landed or been superseded, or
// ctx ends (then it returns ctx's error with the number still held, and
// the writes go on being retried).
func (w *Writer) Drain(ctx context.Context) error {
	for {
		w.mu.Lock()
		ch := w.drained
		w.mu.Unlock()
		if ch == nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%d durable writes still held: %w", w.Held(), ctx.Err())
		}
	}
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
func (w *Writer) hold(key string, h *heldWrite) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m, w.running = make(map[string][]*heldWrite), make(map[string]bool)
	}
	w.m[key] = append(w.m[key], h)
	if w.drained == nil {
		w.drained = make(chan struct{})
	}
	if !w.running[key] {
		w.running[key] = true
		go w.writeBack(key)
	}
}

// writeBack applies the writes held for key in order until none is left;
// each attempt is bounded by Timeout.
func (w *Writer) writeBack(key string) {
	wait := retryFirst
	for {
		w.mu.Lock()
		if len(w.m[key]) == 0 {
			delete(w.m, key)
			delete(w.running, key)
			if len(w.m) == 0 && w.drained != nil {
				close(w.drained)
				w.drained = nil
			}
			w.mu.Unlock()
			return
		}
		h := w.m[key][0]
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout())
		written, err := WriteForward(ctx, w.Store, key, h.step)
		cancel()
		if err != nil {
			w.logStoreError(h.name, key, "write_back", err)
			sleepCtx(context.Background(), wait)
			wait = min(2*wait, retryMax)
			continue
		}
		wait = retryFirst
		w.mu.Lock()
		w.m[key] = w.m[key][1:]
		w.mu.Unlock()
		if written {
			w.logger().LogAttrs(context.Background(), slog.LevelInfo, core.EventWrittenBack,
				slog.String("credential", h.name), slog.String("platform", string(w.platform(h.name))), slog.String("key", key))
		}
		if h.tenant != "" && w.Landed != nil {
			w.Landed(h.tenant)
		}
	}
}

func (w *Writer) timeout() time.Duration {
	if w.Timeout > 0 {
		return w.Timeout
	}
	return 30 * time.Second
}

func (w *Writer) logger() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return core.DefaultLogger()
}

func (w *Writer) platform(name string) core.Platform {
	if w.Platform != nil {
		return w.Platform(name)
	}
	return ""
}

// logStoreError logs core.EventStoreError for a durable write of name
// under key that failed in op; err holds no credential (stores never put
// a value in an error).
func (w *Writer) logStoreError(name, key, op string, err error) {
	w.logger().LogAttrs(context.Background(), slog.LevelWarn, core.EventStoreError,
		slog.String("credential", name), slog.String("platform", string(w.platform(name))), slog.String("key", key),
		slog.String("op", op), slog.String("error", err.Error()))
}
