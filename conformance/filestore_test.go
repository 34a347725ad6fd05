//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package conformance_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/core"
)

// fileStoreDirEnv passes the file store's directory to the crash check's
// child process.
const fileStoreDirEnv = "WECHATCONF_CONFORMANCE_TEST_DIR"

func init() {
	brokenStores = append(brokenStores,
		brokenCase{"correct-cross-process", fileHarness(true), nil},
		brokenCase{"DeadHolderKeepsLock", fileHarness(false), []string{"RefreshSurvivesCrashedHolder"}})
}

// TestFileStore runs the suite on a store that several processes share
// through a directory, which exercises the crash check: the child process
// finds the directory through ChildEnv.
func TestFileStore(t *testing.T) { conformance.Run(t, fileHarness(true)(t)) }

func TestFileStoreProcessHerd(t *testing.T) { conformance.ProcessHerd(t, fileHarness(true)(t), 8, 50) }

// TestFileStoreProcessHerdWeCom runs the herd through a WeCom app's
// access_token instead.
func TestFileStoreProcessHerdWeCom(t *testing.T) {
	conformance.ProcessHerdOf(t, fileHarness(true)(t), conformance.WeComApp, 8, 50)
}

// TestFileStoreOpenPlatformFleet runs the Open Platform fleet: 8
// processes × 200 authorizers over one directory (Redis and PostgreSQL run
// 1,000; this one is a local check). Every lock operation of
// the fileStore, in every process, runs under one flock of the directory,
// so under the fleet's 128 callers a holder waits long for it: its lease is
// 2s rather than testLease here.
func TestFileStoreOpenPlatformFleet(t *testing.T) {
	conformance.OpenPlatformFleet(t, fileHarnessLease(true, fleetFileLease)(t), 8, 200)
}

const fleetFileLease = 2 * time.Second

// TestFileStoreWeComVendorFleet runs the WeCom vendor fleet over one
// directory, a third-party app's suite and a custom-developed app template
// (代开发): 8 processes × 200 corps each, as the Open Platform fleet here.
func TestFileStoreWeComVendorFleet(t *testing.T) {
	t.Run("ThirdParty", func(t *testing.T) {
		conformance.VendorFleet(t, fileHarnessLease(true, fleetFileLease)(t), conformance.VendorWeComThirdParty, 8, 200)
	})
	t.Run("Custom", func(t *testing.T) {
		conformance.VendorFleet(t, fileHarnessLease(true, fleetFileLease)(t), conformance.VendorWeComCustom, 8, 200)
	})
}

// fileHarness returns the harness of a fileStore; with expire false, its
// locks have no lease (a dead holder keeps its lock forever).
func fileHarness(expire bool) func(testing.TB) conformance.Harness {
	return fileHarnessLease(expire, testLease)
}

// fileHarnessLease is fileHarness with stores built with lease.
func fileHarnessLease(expire bool, lease time.Duration) func(testing.TB) conformance.Harness {
	return func(t testing.TB) conformance.Harness {
		dir := os.Getenv(fileStoreDirEnv)
		if dir == "" {
			dir = t.TempDir()
		}
		var n atomic.Int64
		return conformance.Harness{
			// A new value per call: each has its own holder identity and
			// shares only the directory, like a separate process.
			NewStore: func(testing.TB) core.TokenStore {
				return &fileStore{
					dir:    dir,
					lease:  lease,
					owner:  fmt.Sprintf("%d.%d.%x", os.Getpid(), n.Add(1), rand.Uint64()),
					expire: expire,
				}
			},
			Lease:    lease,
			ChildEnv: []string{fileStoreDirEnv + "=" + dir},
		}
	}
}

// fileStore is a TokenStore over a directory, shared by the processes that
// use it: a test double with a cross-process lease lock, built to exercise
// the suite's crash check with the standard library only. Tokens are files
// named by the key's hash; the lock of a key is a file holding its holder
// and its expiry; every lock operation runs under an flock of dir/mutex, so
// that checking the holder and writing is atomic (the fence).
type fileStore struct {
	dir    string
	lease  time.Duration
	owner  string
	seq    atomic.Uint64
	expire bool // false: a broken store whose locks never expire
}

type fileToken struct {
	V  string `json:"v"`
	MS int64  `json:"ms"`
}

func (s *fileStore) path(kind, key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.dir, kind+"-"+hex.EncodeToString(sum[:]))
}

func (s *fileStore) Get(ctx context.Context, key string) (core.Token, error) {
	if err := check(ctx, key); err != nil {
		return core.Token{}, err
	}
	b, err := os.ReadFile(s.path("t", key))
	if errors.Is(err, fs.ErrNotExist) {
		return core.Token{}, fmt.Errorf("filestore: get %q: %w", key, core.ErrNotFound)
	}
	if err != nil {
		return core.Token{}, err
	}
	var ft fileToken
	if err := json.Unmarshal(b, &ft); err != nil {
		return core.Token{}, fmt.Errorf("filestore: get %q: %v", key, err)
	}
	if ft.V == "" {
		return core.Token{}, fmt.Errorf("filestore: get %q: %w: empty value", key, core.ErrCorrupt)
	}
	return core.Token{Value: ft.V, ExpiresAt: time.UnixMilli(ft.MS)}, nil
}

func (s *fileStore) Set(ctx context.Context, key string, t core.Token) error {
	if err := core.CheckSet(ctx, key, t); err != nil {
		return err
	}
	return s.write(key, t)
}

// write replaces the token file of key atomically (rename).
func (s *fileStore) write(key string, t core.Token) error {
	b, err := json.Marshal(fileToken{V: t.Value, MS: t.ExpiresAt.UnixMilli()})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, "tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.path("t", key))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func (s *fileStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if err := check(ctx, key); err != nil {
		return core.Token{}, err
	}
	id, err := s.acquire(ctx, key)
	if err != nil {
		return core.Token{}, fmt.Errorf("filestore: refresh %q: %w", key, err)
	}
	defer s.release(key, id)
	cur, err := s.Get(ctx, key)
	switch {
	case errors.Is(err, core.ErrNotFound), errors.Is(err, core.ErrCorrupt):
	case err != nil:
		return core.Token{}, err
	case cur.Value != stale:
		return cur, nil
	}
	fctx, cancel := context.WithTimeout(ctx, s.lease)
	t, err := fetch(fctx)
	cancel()
	if err != nil {
		return core.Token{}, err
	}
	if t.Value == "" {
		return core.Token{}, fmt.Errorf("filestore: refresh %q: fetch returned an empty token", key)
	}
	err = s.critical(func() error {
		if holder, _ := s.readLock(key); holder != id {
			return fmt.Errorf("filestore: refresh %q: %w", key, core.ErrLockLost)
		}
		return s.write(key, t)
	})
	return t, err
}

// acquire takes the lock of key, polling every few milliseconds, and
// returns the holder id it wrote.
func (s *fileStore) acquire(ctx context.Context, key string) (string, error) {
	id := s.owner + "." + strconv.FormatUint(s.seq.Add(1), 10)
	for {
		taken := false
		err := s.critical(func() error {
			if holder, _ := s.readLock(key); holder != "" {
				return nil
			}
			taken = true
			exp := time.Now().Add(s.lease).UnixNano()
			return os.WriteFile(s.path("l", key), []byte(id+" "+strconv.FormatInt(exp, 10)), 0o600)
		})
		if err != nil || taken {
			return id, err
		}
		select {
		case <-time.After(time.Duration(1+rand.IntN(4)) * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func (s *fileStore) release(key, id string) {
	s.critical(func() error {
		if holder, _ := s.readLock(key); holder == id {
			return os.Remove(s.path("l", key))
		}
		return nil
	})
}

// readLock returns the holder of key's lock, "" when it is free or its
// lease ran out. It must run inside critical.
func (s *fileStore) readLock(key string) (string, error) {
	b, err := os.ReadFile(s.path("l", key))
	if err != nil {
		return "", err
	}
	holder, exp, _ := strings.Cut(string(b), " ")
	ns, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || (s.expire && time.Now().UnixNano() >= ns) {
		return "", err
	}
	return holder, nil
}

// critical runs fn holding an exclusive flock of dir/mutex, which every
// process using the directory shares.
func (s *fileStore) critical(fn func() error) error {
	f, err := os.OpenFile(filepath.Join(s.dir, "mutex"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

func check(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return core.ValidateKey(key)
}

// TestFileStorePushFleet runs the push fleet on the directory store, whose
// claims are ClaimsOver's emulation (this fileStore does not implement
// core.ClaimStore): a smaller fleet than the server stores' (4 processes,
// 80 pushes over 15 s, 2 kills), since every claim takes the directory's
// flock.
func TestFileStorePushFleet(t *testing.T) {
	conformance.PushFleet(t, fileHarness(true)(t), conformance.PushFleetConfig{Procs: 4, Pushes: 80, Spread: 15 * time.Second, Kills: 2})
}
