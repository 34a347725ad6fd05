package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"github.com/wechatconf/wechatconf/core"
)

// Claims (core.ClaimStore): the claim of a key is the file
// claims/NAME.claim, NAME being the key's file name (see paths), read and
// replaced only under the flock of one of 256 stripe lock files,
// claims/locks/XX.lock, XX being the first byte of the key's SHA-256 in
// hex (a lock file per key would pile up as claim files do, and could not
// be removed safely while another process may be about to flock it). See
// the package documentation, section "Claims".

var _ core.ClaimStore = (*Store)(nil)

const (
	// claimsDirName is the directory of the claims in the Store's
	// directory.
	claimsDirName = "claims"
	// claimLocksDirName is the directory of the stripe locks in the claims
	// directory.
	claimLocksDirName = "locks"
	// claimExt ends the name of every claim file.
	claimExt = ".claim"
	// claimTempInfix is in the name of every temporary claim file:
	// NAME.claim.tmp-RANDOM.
	claimTempInfix = claimExt + ".tmp-"
	// claimSweepEvery is how many Claim calls of a Store there are per
	// clean-up step.
	claimSweepEvery = 16
	// claimSweepBatch is how many directory entries one clean-up step
	// looks at.
	claimSweepBatch = 64
	// claimFileMax is the largest claim file read: header, key and value.
	claimFileMax = 1024
)

// claimSweep is a Store's progress through the claims directory: the
// directory stays open from one clean-up step to the next, so that each
// step reads the entries after those of the previous one.
type claimSweep struct {
	mu    sync.Mutex
	calls int      // Claim calls since the last step
	dir   *os.File // nil between two passes over the directory
}

// claimPaths are the files of one key's claim.
type claimPaths struct {
	base string // the key's file name (paths.base)
	file string // claims/NAME.claim
	lock string // claims/locks/XX.lock
}

func (s *Store) claimsDir() string { return filepath.Join(s.dir, claimsDirName) }

func (s *Store) claimPaths(key string) claimPaths {
	base := s.paths(key).base
	return s.claimPathsOf(base)
}

// claimPathsOf returns the claim files of the key whose file name is base,
// which ends with the 64 hex digits of its SHA-256.
func (s *Store) claimPathsOf(base string) claimPaths {
	dir := s.claimsDir()
	stripe := base[len(base)-64 : len(base)-62]
	return claimPaths{
		base: base,
		file: filepath.Join(dir, base+claimExt),
		lock: filepath.Join(dir, claimLocksDirName, stripe+".lock"),
	}
}

// claimRecord is the content of a claim file.
type claimRecord struct {
	value string
	until int64 // wall-clock end of the claim's life, Unix nanoseconds
}

// claimMagic begins every claim file. The file is the line
// "wechatconf-claim 1 UNTIL KEYLEN VALUELEN", then the key and the value,
// byte for byte: a value may hold any byte but NUL.
const claimMagic = "wechatconf-claim 1 "

func encodeClaim(key string, r claimRecord) []byte {
	b := make([]byte, 0, len(claimMagic)+48+len(key)+len(r.value))
	b = append(b, claimMagic...)
	b = strconv.AppendInt(b, r.until, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(key)), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(r.value)), 10)
	b = append(b, '\n')
	b = append(b, key...)
	return append(b, r.value...)
}

// decodeClaim decodes a claim file and returns the key it holds (so that
// the clean-up can check a file without knowing its key).
func decodeClaim(b []byte) (key string, r claimRecord, ok bool) {
	rest, found := bytes.CutPrefix(b, []byte(claimMagic))
	if !found {
		return "", claimRecord{}, false
	}
	header, body, found := bytes.Cut(rest, []byte{'\n'})
	if !found {
		return "", claimRecord{}, false
	}
	f := strings.Fields(string(header))
	if len(f) != 3 {
		return "", claimRecord{}, false
	}
	until, err1 := strconv.ParseInt(f[0], 10, 64)
	kl, err2 := strconv.Atoi(f[1])
	vl, err3 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || err3 != nil || kl < 0 || vl <= 0 || kl+vl != len(body) {
		return "", claimRecord{}, false
	}
	return string(body[:kl]), claimRecord{value: string(body[kl:]), until: until}, true
}

// readClaim reads the claim file at path. live is false when there is no
// file, when it cannot be decoded or holds another key, and when the claim
// has expired by now; err is reserved for a file that exists and cannot be
// read.
func readClaim(path, key string, now time.Time) (r claimRecord, live bool, err error) {
	b, err := readSmall(path)
	if errors.Is(err, fs.ErrNotExist) {
		return claimRecord{}, false, nil
	}
	if err != nil {
		return claimRecord{}, false, err
	}
	k, r, ok := decodeClaim(b)
	if !ok || k != key || now.UnixNano() >= r.until {
		return r, false, nil
	}
	return r, true, nil
}

// readSmall reads up to claimFileMax bytes of the file at path.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, claimFileMax))
}

// writeClaim replaces the claim file of key atomically: a temporary file
// in the claims directory renamed over it. It is not synced (see the
// package documentation).
func (s *Store) writeClaim(cp claimPaths, key string, r claimRecord) error {
	f, err := os.CreateTemp(s.claimsDir(), cp.base+claimTempInfix+"*")
	if err != nil {
		return err
	}
	_, err = f.Write(encodeClaim(key, r))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = replaceFile(f.Name(), cp.file)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// underClaimLock runs fn holding the flock of cp's stripe. It creates the
// claims directory (0700) when it is missing.
func (s *Store) underClaimLock(ctx context.Context, cp claimPaths, fn func() error) error {
	mu := flock.New(cp.lock, flock.SetPermissions(0o600))
	err := lockWithin(ctx, mu)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Join(s.claimsDir(), claimLocksDirName), 0o700); err != nil {
			return err
		}
		err = lockWithin(ctx, mu)
	}
	if err != nil {
		return err
	}
	defer mu.Unlock()
	return fn()
}

// Claim implements core.ClaimStore with the local clock: under the flock of
// the key's stripe, it reads the key's claim file and, if there is no live
// claim in it, replaces it atomically with one that ends at now + ttl.
// Every claimSweepEvery calls, it then takes one bounded clean-up step.
func (s *Store) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	if err := core.CheckClaim(ctx, key, value, ttl, false); err != nil {
		return "", fmt.Errorf("filestore: claim: %w", err)
	}
	cp := s.claimPaths(key)
	var held string
	err := s.underClaimLock(ctx, cp, func() error {
		now := time.Now()
		cur, live, err := readClaim(cp.file, key, now)
		switch {
		case err != nil:
			return err
		case live:
			held = cur.value
			return nil
		}
		if err := s.writeClaim(cp, key, claimRecord{value: value, until: now.Add(ttl).UnixNano()}); err != nil {
			return err
		}
		held = value
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("filestore: claim %q: %w", key, core.ContextError(ctx, err))
	}
	s.maybeSweepClaims(ctx)
	return held, nil
}

// CompareAndSwapClaim implements core.ClaimStore: under the flock of the
// key's stripe, it replaces the claim file (or removes it, for value "")
// if it holds a live claim of old.
func (s *Store) CompareAndSwapClaim(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	if err := core.CheckClaim(ctx, key, old, time.Millisecond, false); err != nil {
		return false, fmt.Errorf("filestore: compare and swap claim: %w", err)
	}
	if err := core.CheckClaim(ctx, key, value, ttl, true); err != nil {
		return false, fmt.Errorf("filestore: compare and swap claim: %w", err)
	}
	cp := s.claimPaths(key)
	swapped := false
	err := s.underClaimLock(ctx, cp, func() error {
		now := time.Now()
		cur, live, err := readClaim(cp.file, key, now)
		if err != nil || !live || cur.value != old {
			return err
		}
		if value == "" {
			err = os.Remove(cp.file)
		} else {
			err = s.writeClaim(cp, key, claimRecord{value: value, until: now.Add(ttl).UnixNano()})
		}
		swapped = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("filestore: compare and swap claim %q: %w", key, core.ContextError(ctx, err))
	}
	return swapped, nil
}

// maybeSweepClaims takes a clean-up step every claimSweepEvery calls,
// unless another goroutine of the Store is taking one.
func (s *Store) maybeSweepClaims(ctx context.Context) {
	if !s.claimSweep.mu.TryLock() {
		return
	}
	defer s.claimSweep.mu.Unlock()
	if s.claimSweep.calls++; s.claimSweep.calls < claimSweepEvery {
		return
	}
	s.claimSweep.calls = 0
	s.sweepClaims(ctx, claimSweepBatch)
}

// sweepClaims is one clean-up step: it reads the next n entries of the
// claims directory (starting a new pass at its end) and removes, each
// under its stripe's flock, the claim files that have expired or cannot be
// decoded, and the temporary files older than staleTempAge. It stops when
// ctx ends. Errors are ignored: this is hygiene, and the next pass tries
// again. The caller holds s.claimSweep.mu.
func (s *Store) sweepClaims(ctx context.Context, n int) {
	sw := &s.claimSweep
	if sw.dir == nil {
		d, err := os.Open(s.claimsDir())
		if err != nil {
			return
		}
		sw.dir = d
	}
	entries, err := sw.dir.ReadDir(n)
	if err != nil || len(entries) < n {
		// The end of the directory (io.EOF) or an error: the next step
		// starts a new pass.
		sw.dir.Close()
		sw.dir = nil
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			return
		}
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if strings.Contains(name, claimTempInfix) {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTempAge {
				os.Remove(filepath.Join(s.claimsDir(), name))
			}
			continue
		}
		base, ok := strings.CutSuffix(name, claimExt)
		if !ok || len(base) < 65 || !isHex(base[len(base)-64:]) {
			continue
		}
		cp := s.claimPathsOf(base)
		if s.claimIsLive(cp, time.Now()) {
			continue
		}
		// Look again under the lock: a Claim may have replaced it since.
		s.underClaimLock(ctx, cp, func() error {
			if !s.claimIsLive(cp, time.Now()) {
				os.Remove(cp.file)
			}
			return nil
		})
	}
}

// claimIsLive reports whether the claim file of cp holds a claim that is
// live at now, for the clean-up: a file that cannot be read counts as live
// (it is left alone), one that cannot be decoded or holds a key of another
// name as dead (Claim would replace it).
func (s *Store) claimIsLive(cp claimPaths, now time.Time) bool {
	b, err := readSmall(cp.file)
	if err != nil {
		return true
	}
	k, r, ok := decodeClaim(b)
	return ok && core.ValidateKey(k) == nil && s.paths(k).base == cp.base && now.UnixNano() < r.until
}

func isHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
