package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// Secrets that rotate without a restart.
//
// When an administrator resets an AppSecret in WeChat's console (设置与开发 →
// 基本配置 → 开发者密码(AppSecret) → 重置), the old secret stops working at
// once: every token call made with it is refused (40001 on
// /cgi-bin/token, whose documentation reads "AppSecret错误或者AppSecret不属于
// 这个公众号"; 40125 "invalid appsecret" on /cgi-bin/stable_token). WeCom's
// corpsecret (40001 不合法的secret参数, 40091 secret不合法) and an Open
// Platform's component_appsecret (40125) are reset the same way. A process
// given the secret as a fixed value fails every fetch until it is restarted
// with the new one. One given a SecretSource instead reads it again after
// such a refusal, and recovers as soon as the new secret is in place.

// SecretSource returns the current value of a secret — an AppSecret, a
// WeCom corpsecret, a component_appsecret — from wherever the operator keeps
// it: a file mounted from a secret manager (FileSecret), a vault client, an
// environment lookup. It is called at the first token fetch, and again only
// at the first fetch after WeChat refused the value it returned last (see
// RotatingSecret), so at most once per Config.ErrorBackoff per process
// while the secret is refused.
//
// It must be safe for concurrent use, honour ctx (the fetch's, bounded by
// Config.RefreshTimeout) and return a non-zero Secret or an error. Its
// error should not quote the secret: it is wrapped in a *SecretSourceError,
// whose text removes the values the source returned before, but cannot know
// a value it never returned.
type SecretSource func(ctx context.Context) (Secret, error)

// StaticSecret returns a SecretSource that always returns s (the zero
// Secret is ErrEmptySecret). It is what a fixed Config.AppSecret amounts
// to, for code that takes a SecretSource.
func StaticSecret(s Secret) SecretSource {
	return func(context.Context) (Secret, error) {
		if s.IsZero() {
			return Secret{}, ErrEmptySecret
		}
		return s, nil
	}
}

// maxSecretFile bounds what FileSecret reads: a secret is tens of bytes.
const maxSecretFile = 64 << 10

// FileSecret returns a SecretSource that reads the secret from the file at
// path each time it is called: a Kubernetes Secret or a Docker/Compose
// secret mounted as a file, which the platform replaces when the secret is
// updated (Kubernetes swaps a symbolic link to a new directory, so a read
// sees the old file or the new one whole). One trailing newline ("\n" or
// "\r\n", as editors and `kubectl create secret --from-file` leave it) is
// removed; nothing else is.
//
// Errors, none of which quotes the file's content: the file cannot be read
// (an *os.PathError: missing, a dangling link during a swap, no
// permission), it is empty after the newline is removed (ErrEmptySecret),
// or it is larger than 64 KiB (ErrSecretTooLarge); ctx ended before the
// read answered (a FIFO with no writer, a hung network mount: the error
// wraps ctx's, and the read is left to finish).
func FileSecret(path string) SecretSource {
	return func(ctx context.Context) (Secret, error) {
		if err := ctx.Err(); err != nil {
			return Secret{}, err
		}
		// The read runs apart, so that ctx ends the wait for a read that
		// blocks (a FIFO with no writer, a hung network mount); the read
		// itself goes on until the file system answers.
		type result struct {
			s   Secret
			err error
		}
		done := make(chan result, 1)
		go func() {
			s, err := readSecretFile(path)
			done <- result{s, err}
		}()
		select {
		case r := <-done:
			return r.s, r.err
		case <-ctx.Done():
			return Secret{}, fmt.Errorf("reading %s: %w", path, ctx.Err())
		}
	}
}

// readSecretFile is FileSecret's read of path.
func readSecretFile(path string) (Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return Secret{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	switch {
	case err != nil:
		return Secret{}, err // an *os.PathError: the path, never the content
	case len(b) > maxSecretFile:
		return Secret{}, fmt.Errorf("%w: %s holds more than %d bytes", ErrSecretTooLarge, path, maxSecretFile)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return Secret{}, fmt.Errorf("%w: %s", ErrEmptySecret, path)
	}
	return NewSecret(string(b)), nil
}

// Errors of the secret sources.
var (
	// ErrEmptySecret is returned by a SecretSource that has no secret to
	// give: an empty file (one being written, or left empty), a zero
	// StaticSecret. A source that returns a zero Secret without an error
	// is treated the same.
	ErrEmptySecret = errors.New("the secret source holds no secret")
	// ErrSecretTooLarge is returned by FileSecret for a file of more than
	// 64 KiB: not a secret (a wrong path, a whole bundle).
	ErrSecretTooLarge = errors.New("the secret file is too large to be a secret")
	// ErrSecretRefused is wrapped by the error of a token call whose
	// secret WeChat refused (a RotatingSecret's refusal codes: 40001 and
	// 40125 on the Official Account's token calls). The *APIError is
	// wrapped too (errors.As reaches it). The call starts
	// Config.ErrorBackoff (Policy.ErrorBackoff), and with a SecretSource
	// the secret is read again at the first fetch after it.
	ErrSecretRefused = errors.New("WeChat refused the secret")
)

// SecretSourceError is the error of a token fetch whose SecretSource
// failed: no request was sent to WeChat. Like a configuration error it
// starts Config.ErrorBackoff (Policy.ErrorBackoff), so a failing source is
// called at most once per back-off per process, and is called again at the
// first fetch after it. Its text names the field and never holds the
// secret; Unwrap returns the source's error (errors.Is(err,
// fs.ErrNotExist), errors.Is(err, ErrEmptySecret)).
type SecretSourceError struct {
	Field string // the Config field of the source, e.g. "AppSecretSource"
	Err   error  // what the source returned
	text  string // Err's text, redacted
}

// Error reads "reading the secret from Config.<Field>: <the source's
// error, with the secrets it gave before removed>".
func (e *SecretSourceError) Error() string {
	return fmt.Sprintf("reading the secret from Config.%s: %s", e.Field, e.text)
}

// Unwrap returns the source's error.
func (e *SecretSourceError) Unwrap() error { return e.Err }

// RotatingSecret is the secret of one token call — an AppSecret, a WeCom
// corpsecret, a component_appsecret — read from a SecretSource and kept
// until WeChat refuses it, or fixed. It is the one mechanism behind
// Config.AppSecretSource, wecom.Config.SecretSource and
// openplatform.Config.AppSecretSource, for a credential kind of your own
// too:
//
//	sec, err := rs.Get(ctx)            // in the kind's Fetch
//	if err != nil { return Token{}, err }
//	tok, err := api.Issue(ctx, …, sec.Reveal(), …)
//	return tok, rs.Check(sec, err)
//
// Get reads the source at the first call, and again at the first call
// after Check saw the value refused; in between it returns the value it
// holds, with no I/O. Called from a Credential's Fetch, which a refusal
// holds back for Policy.ErrorBackoff (Check's error starts it), the source
// is read at most once per back-off per process while WeChat refuses the
// secret, and the first fetch after the new secret is in place succeeds:
// no restart. A fixed secret (no source) is never read again; Check still
// marks its refusals ErrSecretRefused.
//
// Give the RotatingSecret to APIConfig.RotatingSecrets of the API that
// sends it, so that its values are removed from errors and log lines like
// APIConfig.Secrets. A RotatingSecret is safe for concurrent use; a nil
// *RotatingSecret holds no secret.
type RotatingSecret struct {
	field   string // the Config field: "AppSecret", "Secret"
	srcName string // the Config field of the source: "AppSecretSource"
	src     SecretSource
	refused CodeSet

	readSem chan struct{} // holds one value while src is read: one read at a time, waited for under ctx
	mu      sync.Mutex    // guards what follows
	cur     Secret
	prev    Secret // the value cur replaced, still redacted
	read    bool   // cur came from src (or is the fixed secret)
	stale   bool   // WeChat refused cur: read src at the next Get
	reads   int    // calls of src
}

// RotatingSecretConfig configures NewRotatingSecret.
type RotatingSecretConfig struct {
	// Field names the fixed secret's Config field in errors ("AppSecret",
	// "Secret"); SourceField the source's ("AppSecretSource",
	// "SecretSource"). Defaults "secret" and "SecretSource".
	Field, SourceField string
	// Secret is the fixed secret, used when Source is nil.
	Secret Secret
	// Source, if set, is read instead; setting both Secret and Source is
	// an error (which one is meant cannot be guessed).
	Source SecretSource
	// Refused lists the errcodes with which the token call refuses the
	// secret, e.g. {40001, 40125} on the Official Account's token calls.
	// Check compares them with the *APIError of that call only, so a code
	// that means "rejected access_token" on other calls is no ambiguity.
	Refused CodeSet
}

// NewRotatingSecret checks cfg and returns its RotatingSecret. Neither a
// fixed secret nor a source is allowed (IsZero then reports true: the
// kind's Fetch says the secret is missing); both is an error.
func NewRotatingSecret(cfg RotatingSecretConfig) (*RotatingSecret, error) {
	if cfg.Field == "" {
		cfg.Field = "secret"
	}
	if cfg.SourceField == "" {
		cfg.SourceField = "SecretSource"
	}
	if cfg.Source != nil && !cfg.Secret.IsZero() {
		return nil, fmt.Errorf("wechatconf: set Config.%s or Config.%s, not both", cfg.Field, cfg.SourceField)
	}
	r := &RotatingSecret{field: cfg.Field, srcName: cfg.SourceField, src: cfg.Source, refused: cfg.Refused, readSem: make(chan struct{}, 1)}
	if cfg.Source == nil {
		r.cur, r.read = cfg.Secret, true
	}
	return r, nil
}

// IsZero reports whether r holds no secret and has no source to read one
// from.
func (r *RotatingSecret) IsZero() bool {
	return r == nil || (r.src == nil && r.cur.IsZero())
}

// Get returns the secret to send: the value held, or, at the first call
// and at the first call after Check saw the held value refused, the
// source's (a *SecretSourceError when it fails or gives nothing; the next
// call reads it again).
func (r *RotatingSecret) Get(ctx context.Context) (Secret, error) {
	if s, ok := r.cached(); ok {
		return s, nil
	}
	// One read at a time, without holding mu: held, which the API calls
	// for every error it redacts, must not wait for a slow source. A Get
	// waiting for another's read gives up when its own ctx ends.
	select {
	case r.readSem <- struct{}{}:
	case <-ctx.Done():
		return Secret{}, &SecretSourceError{Field: r.srcName, Err: ctx.Err(), text: "waiting for another read of the source: " + ctx.Err().Error()}
	}
	defer func() { <-r.readSem }()
	if s, ok := r.cached(); ok {
		return s, nil // another Get read it meanwhile
	}
	r.mu.Lock()
	r.reads++
	cur, prev := r.cur, r.prev
	r.mu.Unlock()
	s, err := r.readSource(ctx)
	if err == nil && s.IsZero() {
		err = ErrEmptySecret
	}
	if err != nil {
		return Secret{}, &SecretSourceError{Field: r.srcName, Err: err, text: strings.TrimPrefix(redactText(err.Error(), cur.Reveal(), prev.Reveal()), prefix)}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.Reveal() != r.cur.Reveal() {
		r.prev, r.cur = r.cur, s
	}
	r.read, r.stale = true, false
	return s, nil
}

// ErrSecretSourcePanicked is wrapped by the *SecretSourceError of a
// SecretSource that panicked: the panic is recovered (the source runs in a
// credential's background refresh, where no caller could recover it, and
// it would end the process), and its value, which may quote the secret, is
// not kept — only its type is named.
var ErrSecretSourcePanicked = errors.New("the secret source panicked")

// readSource calls r's source, turning a panic into an error.
func (r *RotatingSecret) readSource(ctx context.Context) (s Secret, err error) {
	defer func() {
		if v := recover(); v != nil {
			s, err = Secret{}, fmt.Errorf("%w (a %T)", ErrSecretSourcePanicked, v)
		}
	}()
	return r.src(ctx)
}

// cached returns the value to send without reading the source, if there is
// one: a fixed secret, or a value read and not refused since.
func (r *RotatingSecret) cached() (Secret, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur, r.src == nil || (r.read && !r.stale)
}

// Check returns err, the outcome of a token call made with used (what Get
// returned). When err is an *APIError with one of the refusal codes, used
// is marked refused — the source is read again at the next Get, unless the
// value held has changed since — and err is returned wrapped with
// ErrSecretRefused (which starts the back-off of a Credential's fetch
// whatever the platform's Codes say of the code).
func (r *RotatingSecret) Check(used Secret, err error) error {
	e := asAPIError(err)
	if r == nil || e == nil || !r.refused.has(e.Code) {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := "a fixed secret is not read again: restart with the new one, or use Config." + r.srcName
	if r.src != nil {
		next = "Config." + r.srcName + " is read again at the next fetch, after Config.ErrorBackoff"
		if used.Reveal() == r.cur.Reveal() {
			r.stale = true
		}
	}
	return fmt.Errorf("%w (Config.%s; %s): %w", ErrSecretRefused, r.field, next, err)
}

// Reads returns how many times r called its source: for tests and
// diagnostics.
func (r *RotatingSecret) Reads() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads
}

// held returns the values no error or log line may show: the current
// secret and the one it replaced.
func (r *RotatingSecret) held() []string {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return []string{r.cur.Reveal(), r.prev.Reveal()}
}

// String describes r without its secret: "RotatingSecret(AppSecretSource)"
// or "RotatingSecret(AppSecret)".
func (r *RotatingSecret) String() string {
	if r == nil {
		return "RotatingSecret(none)"
	}
	if r.src != nil {
		return "RotatingSecret(" + r.srcName + ")"
	}
	return "RotatingSecret(" + r.field + ")"
}

// GoString is String, so that %#v shows no secret either.
func (r *RotatingSecret) GoString() string { return r.String() }
