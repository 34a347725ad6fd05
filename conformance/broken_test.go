package conformance_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/conformance"
	"github.com/wechatconf/wechatconf/core"
)

// brokenEnv selects, in TestBrokenChild, the store to run the suite on.
const brokenEnv = "WECHATCONF_CONFORMANCE_BROKEN_STORE"

// brokenStores are the stores TestSuiteCatchesBrokenStores runs the suite
// on, each with a subtest that must catch it. "correct" is the sanity
// case: the suite must pass it when run the same way.
var brokenStores = []brokenCase{
	{"correct", inProcess(newTestStore(lockedFenced)), nil},
	{"NoLock", inProcess(newTestStore(noLock)), []string{"RefreshHerdFetchesOnce"}},
	{"NoFencing", inProcess(newTestStore(lockedUnfenced)), []string{"RefreshFencesLateHolder"}},
	{"IgnoresStale", inProcess(newTestStore(ignoresStale)), []string{"RefreshSkipsFetchWhenValueChanged"}},
	{"SecondsExpiry", inProcess(secondsGet{newTestStore(lockedFenced)}), []string{"ExpiresAtMillisecondPrecision"}},
	{"CoarsePoll", inProcess(newTestStore(coarsePoll)), []string{"RefreshWakesWaitersPromptly"}},
	{"StoresEmpty", inProcess(&storesEmpty{TokenStore: newTestStore(lockedFenced)}), []string{"EmptyValueNeverStored"}},
	// Waiters that miss the release hang until their ctx ends: the
	// watchdog (shortened in the child) must fail the check and cancel it.
	{"LostWakeup", inProcess(newTestStore(lostWakeup)), []string{"RefreshHerdFetchesOnce", "RefreshWakesWaitersPromptly"}},
	// Listers that get core.KeyLister wrong.
	{"ListsLocks", inProcess(&listsLocks{newTestStore(lockedFenced)}), []string{"ListKeysHidesInternalNames"}},
	{"ListsBySegment", inProcess(&listsBySegment{newTestStore(lockedFenced)}), []string{"ListKeysFiltersByPrefix"}},
}

// inProcess returns the harness of a store that lives in process memory.
func inProcess(s core.TokenStore) func(testing.TB) conformance.Harness {
	return func(testing.TB) conformance.Harness {
		return conformance.Harness{
			NewStore:      func(testing.TB) core.TokenStore { return s },
			Lease:         testLease,
			SingleProcess: "a test store in process memory",
		}
	}
}

type brokenCase struct {
	name    string
	harness func(testing.TB) conformance.Harness
	caught  []string // subtests that must fail; none for "correct"
}

// TestBrokenChild runs the suite on the store named by brokenEnv; it is run
// in a child process by TestSuiteCatchesBrokenStores and skipped otherwise.
func TestBrokenChild(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skipf("runs only as the child of TestSuiteCatchesBrokenStores (%s not set)", brokenEnv)
	}
	i := slices.IndexFunc(brokenStores, func(b brokenCase) bool { return b.name == name })
	if i < 0 {
		t.Fatalf("%s=%q names no store", brokenEnv, name)
	}
	conformance.Run(t, brokenStores[i].harness(t))
}

// failLine matches the report of a failed subtest of TestBrokenChild.
var failLine = regexp.MustCompile(`^\s*--- FAIL: TestBrokenChild/(\S+) `)

// TestSuiteCatchesBrokenStores tests the suite itself: run on a store that
// breaks one rule, it must fail, and in the subtest of that rule; run the
// same way on a correct store, it must pass.
func TestSuiteCatchesBrokenStores(t *testing.T) {
	for _, bs := range brokenStores {
		t.Run(bs.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenChild$", "-test.v", "-test.count=1")
			// The watchdog is shortened for the stores that hang, yet long
			// enough for every round of a timing check on one that is only
			// slow (CoarsePoll: three rounds of about a second).
			cmd.Env = append(os.Environ(), brokenEnv+"="+bs.name, conformance.WatchdogEnv+"=6s")
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatalf("running the suite in a child: %v", err)
			}
			var failed []string
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				if m := failLine.FindStringSubmatch(sc.Text()); m != nil {
					failed = append(failed, m[1])
				}
			}
			if bs.caught == nil {
				if err != nil || len(failed) > 0 {
					t.Fatalf("the suite on a correct store: %v, failed subtests %v; want a pass. Output:\n%s", err, failed, out)
				}
				if !bytes.Contains(out, []byte("--- PASS: TestBrokenChild/RefreshFencesLateHolder")) {
					t.Fatalf("the suite on a correct store passed without running its checks. Output:\n%s", out)
				}
				return
			}
			if err == nil {
				t.Fatalf("the suite passed a store with %s; want a failure. Output:\n%s", bs.name, out)
			}
			for _, want := range bs.caught {
				if !slices.Contains(failed, want) {
					t.Errorf("the suite on a store with %s failed %v, want %s among them. Output:\n%s", bs.name, failed, want, out)
				}
			}
			if bs.name == "LostWakeup" && !bytes.Contains(out, []byte("watchdog: TestBrokenChild/RefreshHerdFetchesOnce still running")) {
				t.Errorf("the suite on a store with %s: no watchdog message for RefreshHerdFetchesOnce. Output:\n%s", bs.name, out)
			}
			t.Logf("store with %s: failed subtests %s", bs.name, strings.Join(failed, ", "))
		})
	}
}

// testStore is an in-process TokenStore for the suite's own tests whose
// Refresh can be broken in the ways a real store gets it wrong.
type testStore struct {
	mode  refreshMode
	mem   *core.MemoryStore // tokens; its own Refresh is not used
	locks leaseLocks
}

type refreshMode int

const (
	lockedFenced   refreshMode = iota // correct
	noLock                            // get, compare, fetch, set: no lock at all
	lockedUnfenced                    // a lock with a lease, but the write is not fenced
	ignoresStale                      // fetches even when the stored value differs from stale
	coarsePoll                        // waiters look at the lock once a second
	lostWakeup                        // waiters are not woken by a release, only by their ctx
)

func newTestStore(mode refreshMode) *testStore {
	s := &testStore{mode: mode, mem: core.NewMemoryStore()}
	switch mode {
	case coarsePoll:
		s.locks.poll = time.Second
	case lostWakeup:
		s.locks.deaf = true
	}
	return s
}

func (s *testStore) Get(ctx context.Context, key string) (core.Token, error) {
	return s.mem.Get(ctx, key)
}

func (s *testStore) Set(ctx context.Context, key string, t core.Token) error {
	return s.mem.Set(ctx, key, t)
}

func (s *testStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if err := ctx.Err(); err != nil {
		return core.Token{}, err
	}
	var held *leaseLock
	if s.mode != noLock {
		var err error
		if held, err = s.locks.acquire(ctx, key, testLease); err != nil {
			return core.Token{}, err
		}
		defer s.locks.release(key, held)
	}
	cur, err := s.mem.Get(ctx, key)
	switch {
	case errors.Is(err, core.ErrNotFound):
	case err != nil:
		return core.Token{}, err
	case cur.Value != stale && s.mode != ignoresStale:
		return cur, nil
	}
	fctx, cancel := context.WithTimeout(ctx, testLease)
	defer cancel()
	t, err := fetch(fctx)
	if err != nil {
		return core.Token{}, err
	}
	if held != nil && s.mode != lockedUnfenced && !s.locks.stillHeld(key, held) {
		return core.Token{}, fmt.Errorf("teststore: refresh %q: %w", key, core.ErrLockLost)
	}
	return t, s.mem.Set(ctx, key, t)
}

// ListKeys implements core.KeyLister over the tokens, correctly.
func (s *testStore) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	return s.mem.ListKeys(ctx, prefix)
}

// listsLocks is a store whose ListKeys also lists the refresh locks held,
// by the name a store might give them (the key and ":lock").
type listsLocks struct{ *testStore }

func (s *listsLocks) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.testStore.ListKeys(ctx, prefix)
	s.locks.mu.Lock()
	for k := range s.locks.held {
		if name := k + ":lock"; strings.HasPrefix(name, prefix) {
			keys = append(keys, name)
		}
	}
	s.locks.mu.Unlock()
	slices.Sort(keys)
	return keys, err
}

// listsBySegment is a store whose ListKeys reads the prefix as whole path
// segments: "app/1" lists "app/1" and "app/1/x" but not "app/10".
type listsBySegment struct{ *testStore }

func (s *listsBySegment) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.testStore.ListKeys(ctx, prefix)
	if prefix == "" || strings.HasSuffix(prefix, "/") {
		return keys, err
	}
	return slices.DeleteFunc(keys, func(k string) bool {
		return k != prefix && !strings.HasPrefix(k, prefix+"/")
	}), err
}

// leaseLocks is a per-key lock whose holder loses it when its lease runs
// out (the fence is up to the caller: stillHeld).
type leaseLocks struct {
	poll time.Duration // if set, waiters poll at this interval instead of being woken
	deaf bool          // if set, waiters are never woken

	mu   sync.Mutex
	held map[string]*leaseLock
}

type leaseLock struct {
	released chan struct{}
	timer    *time.Timer
}

func (l *leaseLocks) acquire(ctx context.Context, key string, lease time.Duration) (*leaseLock, error) {
	for {
		l.mu.Lock()
		cur := l.held[key]
		if cur == nil {
			if l.held == nil {
				l.held = map[string]*leaseLock{}
			}
			ll := &leaseLock{released: make(chan struct{})}
			ll.timer = time.AfterFunc(lease, func() { l.release(key, ll) })
			l.held[key] = ll
			l.mu.Unlock()
			return ll, nil
		}
		l.mu.Unlock()
		wake, poll := cur.released, (<-chan time.Time)(nil)
		switch {
		case l.deaf:
			wake = nil
		case l.poll > 0:
			wake, poll = nil, time.After(l.poll)
		}
		select {
		case <-wake:
		case <-poll:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (l *leaseLocks) release(key string, ll *leaseLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[key] == ll {
		ll.timer.Stop()
		delete(l.held, key)
		close(ll.released)
	}
}

// stillHeld reports whether ll still holds the lock of key, and pins it
// (stops its lease) if so.
func (l *leaseLocks) stillHeld(key string, ll *leaseLock) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[key] == ll && ll.timer.Stop()
}

// secondsGet is a store whose Get loses ExpiresAt's sub-second part, as a
// store that keeps Unix seconds would.
type secondsGet struct{ core.TokenStore }

func (s secondsGet) Get(ctx context.Context, key string) (core.Token, error) {
	t, err := s.TokenStore.Get(ctx, key)
	t.ExpiresAt = t.ExpiresAt.Truncate(time.Second)
	return t, err
}
