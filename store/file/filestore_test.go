package filestore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/core"
	filestore "github.com/wechatconf/wechatconf/store/file"
)

// dirEnv passes the store's directory to the conformance crash check's
// child process (the test binary started again).
const dirEnv = "FILESTORE_TEST_DIR"

// testLease is the lease of the stores under test: short, so that the
// lease and crash checks run quickly.
const testLease = time.Second

// harness returns the conformance harness of stores over dir. Each NewStore
// call opens a new Store value: it shares only the directory with the
// others, like another process.
func harness(dir string) conformance.Harness {
	return conformance.Harness{
		NewStore: func(t testing.TB) core.TokenStore { return newStore(t, dir) },
		Lease:    testLease,
		ChildEnv: []string{dirEnv + "=" + dir},
	}
}

func newStore(t testing.TB, dir string, opts ...filestore.Option) *filestore.Store {
	t.Helper()
	s, err := filestore.New(dir, append([]filestore.Option{filestore.WithLease(testLease)}, opts...)...)
	if err != nil {
		t.Fatalf("New(%q): %v", dir, err)
	}
	return s
}

// testDir returns the directory of the stores under test: the parent's,
// passed in dirEnv, in a child process; a new one otherwise.
func testDir(t *testing.T) string {
	if dir := os.Getenv(dirEnv); dir != "" {
		return dir
	}
	return t.TempDir()
}

// TestConformance runs the TokenStore conformance suite, crash check
// included: its child process finds the directory in dirEnv.
func TestConformance(t *testing.T) {
	conformance.Run(t, harness(testDir(t)))
}

// TestProcessHerd runs the suite's fleet check: 8 processes × 50 goroutines
// on one directory, one token fetch.
func TestProcessHerd(t *testing.T) {
	conformance.ProcessHerd(t, harness(testDir(t)), 8, 50)
}

// TestProcessHerdWeCom runs the fleet check through a WeCom app's
// access_token (conformance.WeComApp): 8 processes × 50 goroutines on one
// directory, one gettoken call.
func TestProcessHerdWeCom(t *testing.T) {
	conformance.ProcessHerdOf(t, harness(testDir(t)), conformance.WeComApp, 8, 50)
}

// BenchmarkStore runs the conformance benchmarks (go test -run '^$' -bench .).
// Each benchmark's store gets a directory of its own: with -count above 1 a
// benchmark runs again under the same key, and must not find the tokens of
// its previous run.
func BenchmarkStore(b *testing.B) {
	h := harness(b.TempDir())
	h.NewStore = func(tb testing.TB) core.TokenStore { return newStore(tb, tb.TempDir()) }
	conformance.Benchmark(b, h)
}

// tok returns a token with value v that expires in two hours.
func tok(v string) core.Token {
	return core.Token{Value: v, ExpiresAt: time.Now().Add(2 * time.Hour).Round(0)}
}

// counting returns a fetch that counts its calls in n and returns t.
func counting(n *atomic.Int32, t core.Token) core.FetchFunc {
	return func(context.Context) (core.Token, error) { n.Add(1); return t, nil }
}

var fileName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,39}-[0-9a-f]{64}\.(token|lock|lease|held)$`)

// TestHostileKeysStayInDir tests that keys made to escape the directory, or
// to collide on Windows and macOS name rules, each get their own files,
// named safely, inside the directory and nowhere else.
func TestHostileKeysStayInDir(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	s := newStore(t, dir)
	ctx := context.Background()
	keys := []string{
		"../x", "../../etc/passwd", "/abs/path", "a/b", "a\\b", "..\\..\\x", "..", ".", "./.",
		"C:\\Windows\\x", "con", "NUL", "aux.txt", "COM1", "Key", "key", "KEY", ".hidden", " spaced ", "trailing.",
		"a:b*?<>|\"", "%2e%2e%2f", "a\x01b\x7f", "\u65e5\u672c\u8a9e/\u30ad\u30fc", "\u202e-rtl", "-leading-dash",
		strings.Repeat("a", core.MaxKeyLen), strings.Repeat("\u00e9", core.MaxKeyLen/2), strings.Repeat("/..", 85),
	}
	for i, k := range keys {
		want := tok("v" + string(rune('A'+i)))
		if err := s.Set(ctx, k, want); err != nil {
			t.Fatalf("Set(%q): %v", k, err)
		}
		var n atomic.Int32
		if _, err := s.Refresh(ctx, k, want.Value, counting(&n, tok("r"+want.Value))); err != nil || n.Load() != 1 {
			t.Errorf("Refresh(%q, stale=%q): fetch ran %d times, err %v; want 1 fetch", k, want.Value, n.Load(), err)
		}
	}
	for i, k := range keys {
		want := "rv" + string(rune('A'+i))
		if got, err := s.Get(ctx, k); err != nil || got.Value != want {
			t.Errorf("Get(%q) = %q, %v; want %q (each key has its own file)", k, got.Value, err, want)
		}
	}

	top, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 1 || top[0].Name() != "store" {
		var names []string
		for _, e := range top {
			names = append(names, e.Name())
		}
		t.Errorf("the store's parent directory holds %q, want only [store]: a key escaped the directory", names)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	folded := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !fileName.MatchString(name) || len(name) > 255 {
			t.Errorf("file %q (%v) in the store's directory: want a regular file named %v, at most 255 bytes", name, e.Type(), fileName)
		}
		if other, ok := folded[strings.ToLower(name)]; ok {
			t.Errorf("files %q and %q differ only in case: they collide on macOS and Windows", other, name)
		}
		folded[strings.ToLower(name)] = name
	}
	if want := 4 * len(keys); len(entries) != want {
		t.Errorf("the store's directory holds %d files, want %d (4 per key)", len(entries), want)
	}
}

// TestPermissions tests that New creates the directory 0700 and that every
// file the store writes is 0600: they hold credentials.
func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits")
	}
	dir := filepath.Join(t.TempDir(), "a", "store")
	s := newStore(t, dir)
	ctx := context.Background()
	if err := s.Set(ctx, "k1", tok("v1")); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	if _, err := s.Refresh(ctx, "k2", "", counting(&n, tok("v2"))); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o700 {
			t.Errorf("directory %s created with mode %v, want 0700", d, got)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 5 { // k1.token; k2's .token, .lock, .lease, .held
		t.Errorf("directory holds %d files, want 5", len(entries))
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("file %s has mode %v, want 0600", e.Name(), got)
		}
	}
}

// tokenFile returns the path of the one token file in dir.
func tokenFile(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.token"))
	if err != nil || len(m) != 1 {
		t.Fatalf("token files in %s: %q, %v; want one", dir, m, err)
	}
	return m[0]
}

// TestCorruptFile tests a token file that cannot be decoded: Get fails with
// an error naming the file that does not wrap core.ErrNotFound, ListKeys
// lists its key when the file's "key" can be read and is the file's own
// (and skips it otherwise), and Refresh treats the value as absent, fetches
// and repairs the file.
func TestCorruptFile(t *testing.T) {
	const key = "wechatconf/wx1/access_token"
	valid := func(t *testing.T, key string) []byte {
		dir := t.TempDir()
		if err := newStore(t, dir).Set(context.Background(), key, tok("old")); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(tokenFile(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		content func(t *testing.T) []byte
		listed  bool // its key can be read: ListKeys lists it
	}{
		{"Empty", func(*testing.T) []byte { return nil }, false},
		{"Truncated", func(t *testing.T) []byte { b := valid(t, key); return b[:len(b)/2] }, false},
		{"Garbage", func(*testing.T) []byte { return []byte("\x00\xff\xfe garbage \x01\x02") }, false},
		{"NotJSONObject", func(*testing.T) []byte { return []byte(`["v",1]`) }, false},
		{"NoVersion", func(*testing.T) []byte {
			return []byte(`{"key":"` + key + `","value":"x","expires_at":"2030-01-01T00:00:00Z"}`)
		}, true},
		{"NewerVersion", func(*testing.T) []byte {
			return []byte(`{"v":2,"key":"` + key + `","value":"x","expires_at":"2030-01-01T00:00:00Z"}`)
		}, true},
		// Another key's file copied here: that key is not stored here.
		{"OtherKey", func(t *testing.T) []byte { return valid(t, "wechatconf/wx2/access_token") }, false},
		{"NoValue", func(*testing.T) []byte {
			return []byte(`{"v":1,"key":"` + key + `","expires_at":"2030-01-01T00:00:00Z"}`)
		}, true},
		{"BadExpiry", func(*testing.T) []byte { return []byte(`{"v":1,"key":"` + key + `","value":"x","expires_at":"soon"}`) }, true},
		{"Huge", func(*testing.T) []byte { return make([]byte, 2<<20) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := newStore(t, dir)
			ctx := context.Background()
			if err := s.Set(ctx, key, tok("old")); err != nil {
				t.Fatal(err)
			}
			path := tokenFile(t, dir)
			if err := os.WriteFile(path, tc.content(t), 0o600); err != nil {
				t.Fatal(err)
			}

			got, err := s.Get(ctx, key)
			switch {
			case err == nil:
				t.Errorf("Get(%q) of a corrupt file = %q, nil; want an error", key, got.Value)
			case errors.Is(err, core.ErrNotFound):
				t.Errorf("Get(%q) of a corrupt file: %v; want an error that does not wrap core.ErrNotFound", key, err)
			case !strings.Contains(err.Error(), path):
				t.Errorf("Get(%q) of a corrupt file: %v; want the error to name %s", key, err, path)
			default:
				t.Logf("Get: %v", err)
			}
			keys, err := s.ListKeys(ctx, "")
			switch {
			case err != nil:
				t.Errorf("ListKeys: %v", err)
			case tc.listed && (len(keys) != 1 || keys[0] != key):
				t.Errorf("ListKeys of a corrupt file whose key can be read = %q, want [%q]", keys, key)
			case !tc.listed && len(keys) != 0:
				t.Errorf("ListKeys of a corrupt file whose key cannot be read (or is another file's) = %q, want none", keys)
			}

			var n atomic.Int32
			fresh := tok("fresh")
			got, err = s.Refresh(ctx, key, "whatever-the-caller-saw", counting(&n, fresh))
			if err != nil || n.Load() != 1 || got.Value != fresh.Value {
				t.Errorf("Refresh(%q) over a corrupt file = %q, %v, fetch ran %d times; want %q from 1 fetch (corrupt counts as absent)", key, got.Value, err, n.Load(), fresh.Value)
			}
			if got, err := s.Get(ctx, key); err != nil || got.Value != fresh.Value || !got.ExpiresAt.Equal(fresh.ExpiresAt) {
				t.Errorf("Get(%q) after the repair = %+v, %v; want %+v", key, got, err, fresh)
			}
		})
	}
}

// TestGarbledLeaseRecordIsFree tests that a lease record nobody can read (a
// crash mid-write, an edit) does not block refreshes.
func TestGarbledLeaseRecordIsFree(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	ctx := context.Background()
	var n atomic.Int32
	if _, err := s.Refresh(ctx, "k", "", counting(&n, tok("v1"))); err != nil {
		t.Fatal(err)
	}
	leases, _ := filepath.Glob(filepath.Join(dir, "*.lease"))
	if len(leases) != 1 {
		t.Fatalf("lease files: %q, want one", leases)
	}
	for _, garbage := range []string{"1 someone", "2 someone 99999999999999999 1\n", "\x00\x00\x00", "1 a notanumber 1"} {
		// "At once" means before a lease counted from the garbling could
		// have freed it: a store that took the record for a live holder
		// would wait at least that long (or for ever).
		deadline := time.Now().Add(testLease)
		if err := os.WriteFile(leases[0], []byte(garbage), 0o600); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithDeadline(ctx, deadline)
		n.Store(0)
		_, err := s.Refresh(cctx, "k", "v1", counting(&n, tok("v1")))
		cancel()
		if err != nil || n.Load() != 1 {
			t.Errorf("Refresh over the lease record %q: fetch ran %d times, err %v; want 1 fetch at once, before a %v lease from the garbling could have run out", garbage, n.Load(), err, testLease)
		}
	}
}

// holdLock starts a Refresh of key on s whose fetch blocks until the
// returned release is called with the token to return, and waits until
// fetch has started. done receives Refresh's error.
func holdLock(t *testing.T, s *filestore.Store, key, stale string) (release func(core.Token), done <-chan error) {
	t.Helper()
	entered, ch, errc := make(chan struct{}), make(chan core.Token, 1), make(chan error, 1)
	go func() {
		_, err := s.Refresh(context.Background(), key, stale, func(context.Context) (core.Token, error) {
			close(entered)
			return <-ch, nil
		})
		errc <- err
	}()
	select {
	case <-entered:
	case err := <-errc:
		t.Fatalf("Refresh(%q) returned %v without calling fetch", key, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("Refresh(%q): fetch not called within 10s", key)
	}
	return func(tk core.Token) { ch <- tk }, errc
}

// TestStoreValuesInOneProcessExclude tests that two Store values in one
// process exclude each other: flock locks belong to an open file
// description, not to the process (unlike fcntl locks), so each value's
// opens conflict with the other's.
func TestStoreValuesInOneProcessExclude(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "probe")
	a, b := flock.New(path), flock.New(path)
	if ok, err := a.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock of a fresh file: %v, %v", ok, err)
	}
	if ok, err := b.TryLock(); ok || err != nil {
		t.Errorf("a second flock.Flock of the same file in the same process: TryLock = %v, %v; want false (flock is per open file description)", ok, err)
	}
	a.Unlock()
	if ok, err := b.TryLock(); !ok || err != nil {
		t.Errorf("TryLock after the first was unlocked = %v, %v; want true", ok, err)
	}
	b.Unlock()

	// The holder's lease must not run out during the test, however slow
	// the machine: what is tested is that the second value waits.
	s1, s2 := newStore(t, dir, filestore.WithLease(time.Minute)), newStore(t, dir)
	release, done := holdLock(t, s1, "k", "")
	// How long the second value must keep waiting, not a synchronisation.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	var n atomic.Int32
	_, err := s2.Refresh(ctx, "k", "", counting(&n, tok("second")))
	cancel()
	if n.Load() != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Refresh on a second Store value while the first holds the lock: fetch ran %d times, err %v; want it to wait until its ctx ends", n.Load(), err)
	}
	release(tok("first"))
	if err := <-done; err != nil {
		t.Fatalf("holder: %v", err)
	}
	got, err := s2.Refresh(context.Background(), "k", "", counting(&n, tok("second")))
	if err != nil || got.Value != "first" || n.Load() != 0 {
		t.Errorf("Refresh on the second value after the holder finished = %q, %v, fetch ran %d times; want the holder's %q, no fetch", got.Value, err, n.Load(), "first")
	}
}

// TestStolenLockRefusesWrite tests the fence against theft: while the
// holder is inside fetch, its lease record is overwritten from outside (as
// by another process that took the lock over); its write is then refused
// with core.ErrLockLost and the stored token stays.
func TestStolenLockRefusesWrite(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	ctx := context.Background()
	old := tok("old")
	if err := s.Set(ctx, "k", old); err != nil {
		t.Fatal(err)
	}
	release, done := holdLock(t, s, "k", old.Value)
	leases, _ := filepath.Glob(filepath.Join(dir, "*.lease"))
	if len(leases) != 1 {
		t.Fatalf("lease files: %q, want one", leases)
	}
	far := time.Now().Add(time.Hour).UnixNano()
	if err := os.WriteFile(leases[0], []byte("1 thief "+strconv.FormatInt(far, 10)+" 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	release(tok("late"))
	if err := <-done; !errors.Is(err, core.ErrLockLost) {
		t.Errorf("Refresh whose lock was stolen: %v, want an error wrapping core.ErrLockLost", err)
	}
	if got, err := s.Get(ctx, "k"); err != nil || got.Value != old.Value {
		t.Errorf("Get after the refused write = %q, %v; want %q", got.Value, err, old.Value)
	}
}

// TestNewErrors tests that New refuses an empty name and a path that is a
// file.
func TestNewErrors(t *testing.T) {
	if _, err := filestore.New(""); err == nil {
		t.Error(`New("") = nil error, want one`)
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := filestore.New(f); err == nil {
		t.Errorf("New(%q) over a file = nil error, want one", f)
	}
}

// TestStaleTempFilesRemoved tests that New removes the temporary files a
// crashed writer left long ago, and leaves recent ones (a writer may be
// about to rename them).
func TestStaleTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "k-00.token.tmp-123")
	recent := filepath.Join(dir, "k-00.token.tmp-456")
	for _, p := range []string{old, recent} {
		if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	newStore(t, dir)
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file an hour old: Stat = %v, want it removed", err)
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("recent temporary file: Stat = %v, want it kept", err)
	}
}
