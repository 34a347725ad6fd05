package filestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// DefaultWaitBackoff is the longest a waiter sleeps between two looks at a
// refresh lock held by another process when the Store is built without
// WithWaitBackoff.
const DefaultWaitBackoff = 5 * time.Millisecond

// minWaitBackoff is a waiter's first sleep; it doubles up to the Store's
// wait backoff.
const minWaitBackoff = time.Millisecond

// staleTempAge is how old a temporary file left by a crashed writer must be
// before New removes it.
const staleTempAge = 10 * time.Minute

// Option configures a Store built by New.
type Option func(*options)

type options struct {
	lease   time.Duration
	backoff time.Duration
}

// WithLease sets how long the refresh lock may be held (default
// core.DefaultLease): fetch runs with a context bounded by it, a holder
// still inside fetch when it runs out loses the lock and its write is
// refused with core.ErrLockLost, and a holder that hangs frees the lock
// when it runs out (one that dies frees it at once). A value <= 0 keeps the
// default. Every process sharing a directory should use the same lease.
func WithLease(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lease = d
		}
	}
}

// WithWaitBackoff sets the longest sleep of a waiter between two looks at a
// refresh lock that another process holds (default DefaultWaitBackoff). The
// sleep starts at 1 ms and doubles up to it, with jitter. Waiters in the
// same Store value are woken at once instead. A value <= 0 keeps the
// default; a value below 1 ms is raised to 1 ms.
func WithWaitBackoff(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.backoff = max(d, minWaitBackoff)
		}
	}
}

// Store is a core.TokenStore over a local directory that several processes
// of one machine share. Two Store values over the same directory, in one
// process or in several, behave like two processes: they share tokens and
// locks. See the package documentation for the files it keeps and the lock
// design.
//
// A Store is safe for concurrent use. Its zero value is not usable; build it
// with New.
type Store struct {
	dir     string
	lease   time.Duration
	backoff time.Duration

	mu   sync.Mutex
	keys map[string]*keyState // by file name base

	claimSweep claimSweep
}

// keyState is what the goroutines of one Store share about one key.
type keyState struct {
	// poll is held (a token in the buffer) by the one goroutine of the
	// Store that polls the lock files for this key; the others wait on it.
	poll chan struct{}

	mu       sync.Mutex
	released chan struct{} // closed when a Refresh of this Store releases the lock
}

// New returns a Store over dir, creating it (and its parents) with mode
// 0700 if it is missing. dir must be on a local filesystem (see the package
// documentation). New also removes temporary files that a writer which
// crashed mid-write left behind more than ten minutes ago.
func New(dir string, opts ...Option) (*Store, error) {
	o := options{lease: core.DefaultLease, backoff: DefaultWaitBackoff}
	for _, opt := range opts {
		opt(&o)
	}
	if dir == "" {
		return nil, errors.New("filestore: empty directory name")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("filestore: %s is not a directory", abs)
	}
	removeStaleTemps(abs)
	return &Store{dir: abs, lease: o.lease, backoff: o.backoff, keys: make(map[string]*keyState)}, nil
}

// Dir returns the absolute path of the Store's directory.
func (s *Store) Dir() string { return s.dir }

// Get implements core.TokenStore. A token file that cannot be decoded
// (truncated, edited, of an unknown format version, or holding another key)
// is an error naming the file that does not wrap core.ErrNotFound; Refresh
// repairs it.
func (s *Store) Get(ctx context.Context, key string) (core.Token, error) {
	if err := core.CheckCall(ctx, key); err != nil {
		return core.Token{}, fmt.Errorf("filestore: get: %w", err)
	}
	t, err := readToken(s.paths(key).token, key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return core.Token{}, fmt.Errorf("filestore: get %q: %w", key, core.ErrNotFound)
		}
		return core.Token{}, fmt.Errorf("filestore: get %q: %w", key, err)
	}
	return t, nil
}

// Set implements core.TokenStore: it replaces the token file atomically and
// durably, without taking the refresh lock. A token with an empty Value is
// refused with an error wrapping core.ErrEmptyToken, and nothing is written.
func (s *Store) Set(ctx context.Context, key string, t core.Token) error {
	if err := core.CheckSet(ctx, key, t); err != nil {
		return fmt.Errorf("filestore: set %q: %w", key, err)
	}
	p := s.paths(key)
	tmp, err := s.writeTemp(p, key, t)
	if err == nil {
		err = s.install(tmp, p)
	}
	if err != nil {
		return fmt.Errorf("filestore: set %q: %w", key, err)
	}
	return nil
}

// Refresh implements core.TokenStore: see its rules and the package
// documentation for the lock. A token file that cannot be decoded counts as
// absent and is replaced.
func (s *Store) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if err := core.CheckCall(ctx, key); err != nil {
		return core.Token{}, fmt.Errorf("filestore: refresh: %w", err)
	}
	t, err := s.refresh(ctx, key, stale, fetch)
	if err != nil {
		return core.Token{}, fmt.Errorf("filestore: refresh %q: %w", key, err)
	}
	return t, nil
}

func (s *Store) refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	p := s.paths(key)
	ks := s.keyState(p.base)
	h, err := s.acquire(ctx, p, ks)
	if err != nil {
		return core.Token{}, fmt.Errorf("waiting for the lock: %w", err)
	}
	defer s.release(ctx, p, ks, h)

	cur, err := readToken(p.token, key)
	switch {
	case err == nil:
		if cur.Value != stale {
			return cur, nil
		}
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, core.ErrCorrupt):
		// Absent, or corrupt and to be repaired: fetch.
	default:
		// Fetching while the file cannot be read would let every process
		// fetch.
		return core.Token{}, err
	}

	t, err := core.FetchUntil(ctx, h.start.Add(s.lease), fetch)
	if err != nil {
		return core.Token{}, err
	}
	tmp, err := s.writeTemp(p, key, t)
	if err != nil {
		return core.Token{}, err
	}
	if err := s.commit(ctx, p, ks, h, tmp); err != nil {
		os.Remove(tmp)
		return core.Token{}, err
	}
	return t, nil
}

// paths are the files of one key.
type paths struct {
	base  string // file name without extension
	token string // the token (JSON)
	lock  string // flocked briefly around every look at the lease record
	lease string // the lease record
	held  string // flocked by the live holder of the refresh lock
}

// maxReadable is how many bytes of the key appear, made safe, at the start
// of its file names.
const maxReadable = 40

// paths returns the files of key: a readable prefix made of safe bytes of
// the key, then the SHA-256 of the whole key in hex. Hex is one case, so
// two keys that differ only in case get different names on case-insensitive
// filesystems too.
func (s *Store) paths(key string) paths {
	sum := sha256.Sum256([]byte(key))
	var b strings.Builder
	b.Grow(maxReadable + 1 + 2*len(sum))
	b.WriteString(readableName(key))
	b.WriteByte('-')
	b.WriteString(hex.EncodeToString(sum[:]))
	base := b.String()
	join := func(ext string) string { return filepath.Join(s.dir, base+ext) }
	return paths{base: base, token: join(".token"), lock: join(".lock"), lease: join(".lease"), held: join(".held")}
}

// listBatch is how many directory entries ListKeys reads at a time.
const listBatch = 256

// ListKeys implements core.KeyLister: the keys of the token files in the
// directory that begin with prefix ("" for all), sorted, each once. It
// reads the directory in batches of 256 entries, looks only at the .token
// files (never a .lock, .lease or .held file, nor a temporary file), skips
// those whose readable name shows that their key cannot begin with prefix,
// and reads the key kept inside the others. A file that cannot be decoded
// as a token is listed by its key when its "key" can be read and names that
// file (so a hand-edited value still shows), and skipped otherwise, as is
// a file that vanished meanwhile. ctx is checked between batches and
// between files. It takes no lock: a file renamed into place during the
// walk is listed once, a key written after the walk began may or may not
// be.
func (s *Store) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.listKeys(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("filestore: list keys under %q: %w", prefix, err)
	}
	return keys, nil
}

func (s *Store) listKeys(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	// A key that begins with prefix has a file name that begins with the
	// readable form of prefix (its first 40 bytes, made safe).
	readable := readableName(prefix)
	seen := make(map[string]bool)
	var keys []string
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		entries, err := d.ReadDir(listBatch)
		for _, e := range entries {
			name := e.Name()
			base, ok := strings.CutSuffix(name, ".token")
			if !ok || !e.Type().IsRegular() || !strings.HasPrefix(base, readable) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			key, ok := keyOfFile(filepath.Join(s.dir, name))
			if !ok || !strings.HasPrefix(key, prefix) || seen[key] || s.paths(key).base != base {
				continue
			}
			seen[key] = true
			keys = append(keys, key)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// readableName returns the readable part of the file names of key (see
// paths): up to maxReadable of its bytes, each letter, digit, "_" and "-"
// (not first) kept, anything else "_".
func readableName(key string) string {
	var b strings.Builder
	b.Grow(min(len(key), maxReadable))
	for i := 0; i < len(key) && i < maxReadable; i++ {
		c := key[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-' && i > 0:
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// keyState returns the state the goroutines of s share about the key whose
// files are called base. Entries are kept for the Store's life: a Store
// serves a handful of keys.
func (s *Store) keyState(base string) *keyState {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := s.keys[base]
	if ks == nil {
		ks = &keyState{poll: make(chan struct{}, 1), released: make(chan struct{})}
		s.keys[base] = ks
	}
	return ks
}

// wakeChan returns the channel closed at the next release by this Store.
func (ks *keyState) wakeChan() <-chan struct{} {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.released
}

// wake wakes the goroutines of this Store waiting for the lock.
func (ks *keyState) wake() {
	ks.mu.Lock()
	close(ks.released)
	ks.released = make(chan struct{})
	ks.mu.Unlock()
}

// removeStaleTemps removes the temporary files in dir older than
// staleTempAge: a writer that crashed between creating one and renaming it
// left it (they hold a credential). Errors are ignored: this is hygiene.
func removeStaleTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.Contains(e.Name(), tempInfix) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTempAge {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
