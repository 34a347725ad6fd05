package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// Harness tells the suite how to reach the store under test. Only NewStore is
// required.
type Harness struct {
	// NewStore returns a store over the backend under test, built with Lease.
	// The suite calls it several times in a check and treats every value as
	// a separate process: over a shared backend (Redis, PostgreSQL, a
	// directory) return a new client or connection each time, so that the
	// checks exercise the backend's lock and not an in-process one. A store
	// whose data or lock lives in its own memory (core.MemoryStore,
	// core.FuncStore) must return the same value every time, because two
	// such values share nothing. Release what it opens with t.Cleanup.
	NewStore func(t testing.TB) core.TokenStore

	// Lease is the refresh-lock lease the stores were built with; zero means
	// core.DefaultLease. The lease and crash checks wait for it to run out,
	// so use a short one: 500ms to 2s. It must be at least 500ms, because
	// the prompt-wake check holds the lock through a 200ms fetch.
	Lease time.Duration

	// KeyPrefix begins every key the suite uses (at most 64 bytes). Keys
	// are unique per Run call and per check anyway; a prefix keeps the
	// suite's keys apart from other data in a shared backend.
	KeyPrefix string

	// SingleProcess, when not empty, declares that the store has no backend
	// that another OS process can reach (an in-memory store) and says why.
	// The crash check, which needs one, is skipped with this reason.
	SingleProcess string

	// ChildEnv is added ("NAME=value" entries) to the environment of the
	// crash check's child process, the test binary started again, so that
	// NewStore (and TestMain, if any) in the child reach the parent's
	// backend instead of starting their own.
	ChildEnv []string
}

// Timing bounds of the checks.
const (
	minLease = 500 * time.Millisecond
	// wakeBound is how long after the event a waiter may take to return
	// on an idle machine: after the holder's fetch ends (rule 6), after its
	// ctx is cancelled. The checks add a margin scaled from what the store
	// operations cost at that moment (see timing.go).
	wakeBound = 100 * time.Millisecond
	// slowFetch is how long the holder's fetch takes in the wake check.
	slowFetch = 200 * time.Millisecond
	maxPrefix = 64
)

// leaseSlack is how long after the lease ran out the lease and crash checks
// wait for the store to act on it: a second, plus half the lease for
// backends that expire leases on a coarse tick (etcd checks every 500 ms and
// rounds leases up to whole seconds).
func leaseSlack(lease time.Duration) time.Duration { return time.Second + lease/2 }

// watchdogTimeout is how long one check may run before its watchdog fails
// it and cancels its context; a variable so that the suite's own tests can
// shorten it.
var watchdogTimeout = func(lease time.Duration) time.Duration { return 30*time.Second + 4*lease }

// watchdogGrace is how long a check may go on after its context was
// cancelled before Run gives up on the store and panics.
const watchdogGrace = 10 * time.Second

// A check is one rule of the contract, run as the subtest called name.
type check struct {
	name string
	fn   func(t *testing.T, f *fixture)
}

// checks lists the subtests of Run, in order. Each function's doc comment
// states the rule it checks.
var checks = []check{
	{"SetGetRoundTrip", testSetGetRoundTrip},
	{"GetMissingKeyIsNotFound", testGetMissingKeyIsNotFound},
	{"SetOverwrites", testSetOverwrites},
	{"ExpiresAtMillisecondPrecision", testExpiresAtMillisecondPrecision},
	{"ZeroExpiresAtIsDurable", testZeroExpiresAtIsDurable},
	{"ValuesKeptWhole", testValuesKeptWhole},
	{"HostileKeysIsolated", testHostileKeysIsolated},
	{"PrefixKeysIsolated", testPrefixKeysIsolated},
	{"StoreValuesShareTokens", testStoreValuesShareTokens},
	{"RefreshSkipsFetchWhenValueChanged", testRefreshSkipsFetchWhenValueChanged},
	{"RefreshFetchesWhenValueIsStale", testRefreshFetchesWhenValueIsStale},
	{"RefreshFetchesWhenNothingStored", testRefreshFetchesWhenNothingStored},
	{"RefreshFetchErrorWritesNothing", testRefreshFetchErrorWritesNothing},
	{"EmptyValueNeverStored", testEmptyValueNeverStored},
	{"RefreshLocksArePerKey", testRefreshLocksArePerKey},
	{"RefreshHerdFetchesOnce", testRefreshHerdFetchesOnce},
	{"RefreshWakesWaitersPromptly", testRefreshWakesWaitersPromptly},
	{"RefreshWaiterHonoursContext", testRefreshWaiterHonoursContext},
	{"MethodsHonourCanceledContext", testMethodsHonourCanceledContext},
	{"RefreshFetchContextEndsWithLease", testRefreshFetchContextEndsWithLease},
	{"RefreshFencesLateHolder", testRefreshFencesLateHolder},
	{"RefreshSurvivesCrashedHolder", testRefreshSurvivesCrashedHolder},
	{"ListKeysListsStoredKeys", testListKeysListsStoredKeys},
	{"ListKeysFiltersByPrefix", testListKeysFiltersByPrefix},
	{"ListKeysHidesInternalNames", testListKeysHidesInternalNames},
	{"ListKeysHonoursCanceledContext", testListKeysHonoursCanceledContext},
	{"ListKeysDuringWrites", testListKeysDuringWrites},
	{"ListKeysOddPrefixes", testListKeysOddPrefixes},
	{"ClaimOneWinner", testClaimOneWinner},
	{"ClaimOneWinnerAcrossProcesses", testClaimOneWinnerAcrossProcesses},
	{"ClaimReclaimIsIdempotent", testClaimReclaimIsIdempotent},
	{"ClaimValuesKeptWhole", testClaimValuesKeptWhole},
	{"ClaimCompareAndSwap", testClaimCompareAndSwap},
	{"ClaimExpires", testClaimExpires},
	{"ClaimNotResurrected", testClaimNotResurrected},
	{"ClaimCrashedHolder", testClaimCrashedHolder},
	{"ClaimsApartFromTokens", testClaimsApartFromTokens},
	{"ClaimArguments", testClaimArguments},
}

// Run checks the store that h builds against the TokenStore contract, one
// subtest per rule. In the crash check's child process it plays the crashing
// holder instead, and nothing else. The subtests, each testing that:
//
//   - SetGetRoundTrip: Get returns the token Set stored, value and ExpiresAt.
//   - GetMissingKeyIsNotFound: Get of a key never written wraps core.ErrNotFound.
//   - SetOverwrites: Set replaces whatever was stored.
//   - ExpiresAtMillisecondPrecision: ExpiresAt (sub-millisecond nanoseconds,
//     locations other than UTC) comes back as the same instant to the millisecond.
//   - ZeroExpiresAtIsDurable: a token with a zero ExpiresAt (durable state, an
//     authorizer_refresh_token) is kept and reads back with a zero ExpiresAt,
//     through Set and Refresh, and Refresh compares its value as any other.
//   - ValuesKeptWhole: values of 1, 512 and 4096 bytes come back whole, through
//     Set/Get and through Refresh.
//   - HostileKeysIsolated: keys with "/", "..", "{}", ":", quotes, "%", spaces,
//     control characters, unicode, case differences and of 256 bytes each have
//     their own storage.
//   - PrefixKeysIsolated: "a" and "a/b", "{tag}" and "tag", "k" and "k:lock"
//     do not share storage.
//   - StoreValuesShareTokens: what one store value writes (Set or Refresh),
//     another reads (Get or Refresh).
//   - RefreshSkipsFetchWhenValueChanged: rule 2, no fetch when the stored value
//     differs from stale.
//   - RefreshFetchesWhenValueIsStale: rule 3, one fetch when it equals stale.
//   - RefreshFetchesWhenNothingStored: rule 3, one fetch when nothing is stored.
//   - RefreshFetchErrorWritesNothing: rule 4, fetch's error is returned
//     (errors.Is/As match), nothing is written, the lock is released.
//   - EmptyValueNeverStored: Set of a token with an empty value fails with
//     core.ErrEmptyToken, and a Refresh whose fetch returns one fails; both
//     write nothing, and the lock is released.
//   - RefreshLocksArePerKey: holding one key's lock does not block other keys.
//   - RefreshHerdFetchesOnce: rules 1–2, 4 store values × 25 goroutines
//     released together fetch exactly once and all get that token.
//   - RefreshWakesWaitersPromptly: rule 6, waiters return within 100ms of the
//     end of the holder's 200ms fetch, plus twice what the holder's write
//     and the waiters' reads cost on the machine at that moment (the
//     latency and the bound are logged).
//   - RefreshWaiterHonoursContext: rule 1, a waiter whose ctx is cancelled
//     returns within 100ms (plus twice what a Refresh costs at that moment)
//     with an error wrapping context.Canceled and leaks no lock.
//   - MethodsHonourCanceledContext: Get, Set and Refresh with a cancelled ctx
//     fail with context.Canceled and write or fetch nothing.
//   - RefreshFetchContextEndsWithLease: rule 3, fetch's ctx ends within the
//     lease; the failed Refresh writes nothing.
//   - RefreshFencesLateHolder: rule 3, a holder whose fetch outlives the lease
//     loses the lock to another caller, and its write is refused with
//     core.ErrLockLost; the newer token survives.
//   - RefreshSurvivesCrashedHolder: rule 5, the lock of a holder killed in
//     another process is taken over within the lease (see the package
//     documentation for what it needs).
//
// The ListKeys checks run on a store that implements core.KeyLister (the
// optional listing of its keys) and are skipped, saying so, on one that
// does not:
//
//   - ListKeysListsStoredKeys: the keys stored by Set (expiring, durable,
//     overwritten) and by Refresh are listed, sorted and each once, through
//     any store value; a failed Refresh's key and a key never written are
//     not; "" lists them among all the others.
//   - ListKeysFiltersByPrefix: a prefix selects the keys that begin with it,
//     byte for byte ("app/1" lists "app/10" too, "app/1/" does not; "%",
//     "_", "*", "?", "[" and "\" match themselves; a prefix may end inside
//     a rune); a prefix nothing begins with lists nothing, without error.
//   - ListKeysHidesInternalNames: a key whose lock is held and which has no
//     token is not listed, and no lock or other name of the store is.
//   - ListKeysHonoursCanceledContext: a cancelled ctx fails with
//     context.Canceled.
//   - ListKeysDuringWrites: while other store values overwrite 1,200 keys
//     and store new ones, every listing is sorted, lists each key once,
//     lists every key stored before it began and nothing never written.
//   - ListKeysOddPrefixes: keys of any bytes a key may hold and of
//     MaxKeyLen bytes are listed; a prefix no key can begin with (holding
//     NUL, invalid UTF-8, longer than MaxKeyLen) lists nothing, without an
//     error.
//
// The claim checks (core.ClaimStore, the claims with an expiry behind "every
// push handled once") run on every store: on the store's own ClaimStore
// when it implements one, and otherwise on core.ClaimsOver(store), the
// emulation over Refresh that core.ClaimStoreFor gives it; each logs which.
// A short ttl is the lease, and at least a second:
//
//   - ClaimOneWinner: 4 store values × 10 goroutines released together claim
//     a key, each with a value of its own: exactly one gets its own value
//     back, every other the winner's; on 5 keys in turn.
//   - ClaimOneWinnerAcrossProcesses: the same with 3 child processes (the
//     test binary started again, as for the crash check) and this one, × 8
//     goroutines each, on 4 keys; skipped under Harness.SingleProcess.
//   - ClaimReclaimIsIdempotent: Claim with the value the key holds returns
//     it, through any store value (how a caller resolves an ambiguous
//     error); another value still loses.
//   - ClaimValuesKeptWhole: values of 1 and core.MaxClaimValueLen bytes, with
//     quotes, "%", control characters and unicode, come back whole and are
//     compared whole.
//   - ClaimCompareAndSwap: CompareAndSwapClaim from another value returns
//     false and changes nothing; from the held one it replaces the claim,
//     extends it past its first ttl (to the same value with a longer ttl),
//     or deletes it (to ""), after which a Claim wins at once and a second
//     delete returns false.
//   - ClaimExpires: a claim with a short ttl is held right after it was made
//     and gone (a probe Claim wins) within ttl + 2s + half the lease (the
//     lease checks' slack and a second for the store's rounding of ttl),
//     not before its ttl; one with a ttl of a minute is still held.
//   - ClaimNotResurrected: once an expired claim's key was claimed again,
//     its former holder's CompareAndSwapClaim (to a value, to itself, to
//     "") returns false, nil and changes nothing, also after a release.
//   - ClaimCrashedHolder: the claim of a holder in another process, killed
//     with SIGKILL, ends as ClaimExpires says; skipped under
//     Harness.SingleProcess.
//   - ClaimsApartFromTokens: a token and a claim under one key share nothing
//     (Set, Get, Refresh and its lock against Claim and
//     CompareAndSwapClaim), and core.KeyLister never lists a claim; for a
//     native ClaimStore only (core.ClaimsOver keeps claims as tokens).
//   - ClaimArguments: a key core.ValidateKey refuses, an empty value (but
//     the new value "" that deletes), one holding NUL or longer than
//     core.MaxClaimValueLen, and a ttl under a millisecond are errors that
//     write nothing; a cancelled ctx is an error wrapping context.Canceled.
func Run(t *testing.T, h Harness) {
	t.Helper()
	h = h.normalize(t)
	if key, ok := os.LookupEnv(crashChildEnv); ok {
		runCrashChild(t, h, key)
		return
	}
	if runClaimChild(t, h) {
		return
	}
	runID := fmt.Sprintf("%08x", rand.Uint32())
	runName := t.Name()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			f := &fixture{h: h, t: t, runName: runName, base: h.KeyPrefix + "cf" + runID + "/" + c.name}
			watch(t, f, h.Lease, c.fn)
		})
	}
}

// normalize applies the defaults and stops the test on a harness the suite
// cannot use.
func (h Harness) normalize(t testing.TB) Harness {
	t.Helper()
	if h.NewStore == nil {
		t.Fatal("conformance: Harness.NewStore is nil")
	}
	if h.Lease == 0 {
		h.Lease = core.DefaultLease
	}
	if h.Lease < minLease {
		t.Fatalf("conformance: Harness.Lease is %v, want at least %v (build the stores with a lease of 500ms to 2s)", h.Lease, minLease)
	}
	if len(h.KeyPrefix) > maxPrefix {
		t.Fatalf("conformance: Harness.KeyPrefix is %d bytes, want at most %d", len(h.KeyPrefix), maxPrefix)
	}
	return h
}

// watch runs fn under a watchdog, like nettest's timeoutWrapper: if fn is
// still running after the timeout, the check fails with a clear message and
// its context is cancelled, so that a store blocked in a method that honours
// ctx returns and the run goes on. If fn still does not return, the store
// ignores ctx and Run panics naming the check rather than hang.
func watch(t *testing.T, f *fixture, lease time.Duration, fn func(*testing.T, *fixture)) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.ctx = ctx

	timeout := watchdogTimeout(lease)
	var (
		mu       sync.Mutex
		finished bool
		done     = make(chan struct{})
	)
	timer := time.AfterFunc(timeout, func() {
		mu.Lock()
		if finished {
			mu.Unlock()
			return
		}
		t.Errorf("watchdog: %s still running after %v: a store method is blocked; cancelling the check's context", t.Name(), timeout)
		mu.Unlock()
		cancel()
		select {
		case <-done:
		case <-time.After(watchdogGrace):
			panic(fmt.Sprintf("conformance: %s still blocked %v after its context was cancelled: the store ignores ctx", t.Name(), watchdogGrace))
		}
	})
	defer func() {
		timer.Stop()
		mu.Lock()
		finished = true
		mu.Unlock()
		close(done)
	}()
	fn(t, f)
}

// fixture is what a check works with: its context, which the watchdog
// cancels, its stores and its keys.
type fixture struct {
	h       Harness
	t       *testing.T
	ctx     context.Context
	runName string // name of the test that called Run
	base    string // key prefix unique to this Run call and check

	claimsLogged bool // the claim checks said which ClaimStore they run on
}

// key returns a key unique to this check; name tells the keys of a check
// apart and may be any string (the result stays within core.MaxKeyLen).
func (f *fixture) key(name string) string {
	k := f.base + "/" + name
	if len(k) > core.MaxKeyLen {
		f.t.Fatalf("conformance: key %q is %d bytes, more than %d", k, len(k), core.MaxKeyLen)
	}
	return k
}

// store returns a new store value from the harness.
func (f *fixture) store() core.TokenStore {
	s := f.h.NewStore(f.t)
	if s == nil {
		f.t.Fatal("conformance: Harness.NewStore returned nil")
	}
	return s
}

// stores returns n store values from the harness.
func (f *fixture) stores(n int) []core.TokenStore {
	ss := make([]core.TokenStore, n)
	for i := range ss {
		ss[i] = f.store()
	}
	return ss
}

// set stores tok under key and stops the check if it cannot.
func (f *fixture) set(s core.TokenStore, key string, tok core.Token) {
	f.t.Helper()
	if err := s.Set(f.ctx, key, tok); err != nil {
		f.t.Fatalf("Set(%q, %s): %v", key, fmtToken(tok), err)
	}
}

// wantStored reports an error unless Get(key) returns want; rule says which
// rule would be broken.
func (f *fixture) wantStored(s core.TokenStore, key string, want core.Token, rule string) {
	f.t.Helper()
	got, err := s.Get(f.ctx, key)
	switch {
	case err != nil:
		f.t.Errorf("Get(%q): %v, want %s (%s)", key, err, fmtToken(want), rule)
	case !sameToken(got, want):
		f.t.Errorf("Get(%q) = %s, want %s (%s)", key, fmtToken(got), fmtToken(want), rule)
	}
}

// wantNotFound reports an error unless Get(key) fails with ErrNotFound.
func (f *fixture) wantNotFound(s core.TokenStore, key string, rule string) {
	f.t.Helper()
	got, err := s.Get(f.ctx, key)
	switch {
	case err == nil:
		f.t.Errorf("Get(%q) = %s, want an error wrapping core.ErrNotFound (%s)", key, fmtToken(got), rule)
	case !errors.Is(err, core.ErrNotFound):
		f.t.Errorf("Get(%q): %v, want an error wrapping core.ErrNotFound (%s)", key, err, rule)
	}
}

// sameToken reports whether got holds want's value and want's ExpiresAt to
// the millisecond (the precision the contract promises).
func sameToken(got, want core.Token) bool {
	return got.Value == want.Value && sameInstant(got.ExpiresAt, want.ExpiresAt)
}

func sameInstant(got, want time.Time) bool {
	return got.Truncate(time.Millisecond).Equal(want.Truncate(time.Millisecond))
}

// fmtToken formats t for a message, abbreviating a long value.
func fmtToken(t core.Token) string {
	v := fmt.Sprintf("%q", t.Value)
	if len(t.Value) > 40 {
		v = fmt.Sprintf("%q…(%d bytes)", t.Value[:24], len(t.Value))
	}
	return fmt.Sprintf("{%s, expires %s}", v, t.ExpiresAt.Format(time.RFC3339Nano))
}

// token returns a token with value v that expires in two hours, on a whole
// second, so that only ExpiresAtMillisecondPrecision fails a store that
// loses sub-second precision.
func token(v string) core.Token {
	return core.Token{Value: v, ExpiresAt: time.Now().Add(2 * time.Hour).Truncate(time.Second)}
}

// fetchCounter counts the calls of the fetch functions it makes.
type fetchCounter struct {
	mu    sync.Mutex
	calls int
}

// returning returns a fetch that counts its call and returns tok.
func (c *fetchCounter) returning(tok core.Token) core.FetchFunc {
	return func(context.Context) (core.Token, error) {
		c.add()
		return tok, nil
	}
}

func (c *fetchCounter) add() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return c.calls
}

func (c *fetchCounter) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// pattern returns n printable bytes in which every prefix differs from every
// other string of the same length the suite uses, so that a truncated or
// shifted value cannot pass for the whole one.
func pattern(seed string, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var b strings.Builder
	b.Grow(n)
	b.WriteString(seed)
	for i := b.Len(); i < n; i++ {
		b.WriteByte(alphabet[(i*7+i/len(alphabet))%len(alphabet)])
	}
	return b.String()[:n]
}
