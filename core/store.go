package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Token is a credential and the instant it stops being valid: an access_token,
// a jsapi_ticket or a wx_card api_ticket.
//
// ExpiresAt is the expiry WeChat announced (fetch time + expires_in), not a
// time with a safety margin taken off: the margins are Conf's policy. A Token
// with an empty Value is "no token".
type Token struct {
	Value     string
	ExpiresAt time.Time
}

// String describes t without its value (a credential): the value's length
// and the expiry. fmt's %v, %+v, %s and %q use it, and %#v GoString, so a
// Token printed by mistake shows nothing secret; read Value to use it.
// json.Marshal is unaffected (the token server sends tokens as JSON).
func (t Token) String() string {
	return fmt.Sprintf("core.Token{Value: REDACTED (%d bytes), ExpiresAt: %s}", len(t.Value), t.ExpiresAt.Format(time.RFC3339))
}

// GoString is String.
func (t Token) GoString() string { return t.String() }

// LogValue lets log/slog print a Token without its value.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("value_bytes", len(t.Value)), slog.Time("expires_at", t.ExpiresAt))
}

// IsZero reports whether t holds no value.
func (t Token) IsZero() bool { return t.Value == "" }

// FetchFunc obtains a brand-new token from WeChat. A TokenStore calls it from
// Refresh, at most once per Refresh call, while it holds the key's lock. The
// context it receives ends when the caller's context ends or the lock's lease
// runs out, whichever comes first.
type FetchFunc func(ctx context.Context) (Token, error)

// ErrNotFound is returned (possibly wrapped) by TokenStore.Get when no token is
// stored under the key. Test for it with errors.Is.
var ErrNotFound = errors.New("token not found")

// ErrLockLost is returned (wrapped) by TokenStore.Refresh when the caller's
// lock expired or was taken over before the fetched token could be written.
// Nothing was written: a newer token written by the new lock holder survives.
// Test for it with errors.Is.
var ErrLockLost = errors.New("refresh lock lost before the write")

// ErrEmptyToken is wrapped by the error TokenStore.Set returns for a Token
// whose Value is empty: "no token" is never stored, on any store, so that a
// reader can never mistake it for a credential. Nothing is written. Test for
// it with errors.Is.
var ErrEmptyToken = errors.New("refusing to store a token with an empty value")

// TokenStore keeps tokens under string keys and serialises their refresh
// across every process that shares the store. The store decides the
// topology: a memory store serves one process, a file store one machine, and
// Redis, PostgreSQL or etcd a whole fleet.
//
// # Keys and values
//
// Keys are opaque, non-empty UTF-8 strings of at most 256 bytes. They may
// contain "/", ":", "{", "}", "..", spaces, quotes, "%" and any other
// character except NUL; a store maps them safely (no path traversal, no
// injection, no two keys sharing storage; CheckCall does the argument checks
// every method starts with, and EncodeToken/DecodeToken are a versioned
// encoding for stores that keep a token as one blob). Values may be up to
// 4 KiB and are stored and compared whole. An empty value is never stored:
// Set refuses it with an error wrapping ErrEmptyToken (CheckSet does that
// check), and a stored value that reads back empty (written by something
// else, or hand-edited) is corrupt: Get wraps ErrCorrupt. ExpiresAt round-trips to at least millisecond
// precision. Every method honours ctx: once ctx is done a method returns an
// error that wraps ctx.Err(). Stores are safe for concurrent use, and two
// store values built over the same backend behave like two processes: they
// share data and locks. A store that opens its own connections has a
// Close() error method; a store built on a client the caller passes in never
// closes that client.
//
// # Refresh
//
// Refresh(ctx, key, stale, fetch) replaces a token that the caller saw
// expiring or rejected, with exactly one fetch across all processes no matter
// how many call it at once. stale is the value the caller saw ("" when it
// found nothing). The rules, across every process sharing the store:
//
//  1. Take the store's exclusive lock for key, waiting until it is free or
//     ctx ends (then return an error wrapping ctx.Err(); the lock is not taken
//     and nothing is leaked).
//  2. Read the stored token. If one is stored and its Value differs from
//     stale, somebody else already refreshed: release the lock and return the
//     stored token without calling fetch. A stored value that cannot be
//     decoded (ErrCorrupt) counts as absent.
//  3. Otherwise call fetch with a context bounded by the lock's lease, and on
//     success write the result, but only while the lock is still held (a
//     fenced write, an atomic compare in the backend). A holder whose lease
//     ran out must not overwrite a newer token: it writes nothing and returns
//     an error wrapping ErrLockLost.
//  4. If fetch fails, nothing is written, the lock is released and fetch's
//     error is returned (wrapped or as is; errors.Is/As must still match it).
//  5. A holder that dies (process killed, connection cut) frees the lock
//     within its lease, a store option with a default of a few seconds to
//     tens of seconds; waiters then take over.
//  6. Waiters wake promptly when the lock is released (a notification, or a
//     short backoff with jitter of at most tens of milliseconds), never on a
//     coarse fixed poll: a herd of callers finishes within tens of
//     milliseconds of the fetch.
//
// The store needs no clock and no policy: it never looks at ExpiresAt to
// decide anything. Time policy (when a token is too old to serve) lives in
// Conf, which calls Refresh again with the returned value as stale if the
// token it got back is itself expired.
type TokenStore interface {
	// Get returns the token stored under key, or an error wrapping
	// ErrNotFound when there is none. A stored value that cannot be decoded
	// is a descriptive error wrapping ErrCorrupt (not ErrNotFound).
	Get(ctx context.Context, key string) (Token, error)
	// Set stores t under key unconditionally, replacing what was there.
	// It does not take the refresh lock.
	Set(ctx context.Context, key string, t Token) error
	// Refresh replaces the token under key if it still equals stale (or is
	// absent), calling fetch at most once, and returns the token now stored.
	// See the TokenStore documentation for its six rules.
	Refresh(ctx context.Context, key, stale string, fetch FetchFunc) (Token, error)
}

// KeyLister is implemented by a TokenStore that can list the keys it holds,
// for operators: the wechatconf command's ls, and its hint when a key is
// not found (the keys found under other prefixes). It is optional; a
// TokenStore that does not implement it is listed by nobody, and nothing
// in the engine depends on it.
//
// ListKeys returns every key the store holds that begins with prefix (""
// for all), sorted, each once: the keys of stored credentials and durable
// records, as given to Set and Refresh, never a lock, fence or other
// internal name, and never a value. A key written after ListKeys began may
// or may not be included. It reads only: a large store is walked in
// batches (SCAN, a paged query, a keys-only range read), never with one
// blocking command, and ctx bounds the whole walk. Errors are the
// store's, wrapped with the operation; a value that cannot be decoded is
// still listed by its key when the key can be read, and skipped otherwise.
type KeyLister interface {
	ListKeys(ctx context.Context, prefix string) ([]string, error)
}
