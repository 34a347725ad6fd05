package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// testSetGetRoundTrip tests that Get returns the token Set stored under the
// key, value and ExpiresAt.
func testSetGetRoundTrip(t *testing.T, f *fixture) {
	s := f.store()
	key := f.key("k")
	tok := token("round-trip-token")
	f.set(s, key, tok)
	f.wantStored(s, key, tok, "Get returns what Set stored")
}

// testGetMissingKeyIsNotFound tests that Get of a key never written fails
// with an error wrapping core.ErrNotFound.
func testGetMissingKeyIsNotFound(t *testing.T, f *fixture) {
	f.wantNotFound(f.store(), f.key("never-set"), "a missing key is ErrNotFound")
}

// testSetOverwrites tests that Set replaces the token stored under the key,
// whatever it was, including one with a later ExpiresAt and a longer value.
func testSetOverwrites(t *testing.T, f *fixture) {
	s := f.store()
	key := f.key("k")
	first := core.Token{Value: pattern("first-", 600), ExpiresAt: time.Now().Add(3 * time.Hour).Truncate(time.Second)}
	second := token("second")
	f.set(s, key, first)
	f.set(s, key, second)
	f.wantStored(s, key, second, "Set replaces the stored token")
}

// testExpiresAtMillisecondPrecision tests that ExpiresAt round-trips to the
// millisecond: times with sub-millisecond nanoseconds, in locations other
// than UTC and Local, come back as the same instant once truncated to the
// millisecond.
func testExpiresAtMillisecondPrecision(t *testing.T, f *fixture) {
	s := f.store()
	times := []time.Time{
		time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("UTC+8", 8*3600)),
		time.Date(2031, 5, 6, 7, 8, 9, 999999999, time.FixedZone("UTC-3:30", -(3*3600+1800))),
		time.Date(2031, 5, 6, 7, 8, 9, 1000000, time.UTC),
		time.Now().Add(7200 * time.Second), // with a monotonic reading
	}
	for i, at := range times {
		key := f.key(fmt.Sprintf("t%d", i))
		tok := core.Token{Value: "precision", ExpiresAt: at}
		f.set(s, key, tok)
		got, err := s.Get(f.ctx, key)
		if err != nil {
			t.Errorf("Get(%q): %v", key, err)
			continue
		}
		if !sameInstant(got.ExpiresAt, at) {
			t.Errorf("Get(%q).ExpiresAt = %s, want %s to the millisecond (off by %v): ExpiresAt must round-trip to at least millisecond precision",
				key, got.ExpiresAt.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano), at.Sub(got.ExpiresAt))
		}
	}
}

// testZeroExpiresAtIsDurable tests that a token with a zero ExpiresAt —
// durable state, such as an Open Platform authorizer_refresh_token — is
// kept and reads back with a zero ExpiresAt, through Set and through
// Refresh, and that Refresh compares its value like any other's.
func testZeroExpiresAtIsDurable(t *testing.T, f *fixture) {
	s := f.store()
	key := f.key("durable")
	f.set(s, key, core.Token{Value: "refreshtoken@@@first"})
	got, err := s.Get(f.ctx, key)
	if err != nil || got.Value != "refreshtoken@@@first" || !got.ExpiresAt.IsZero() {
		t.Fatalf("Get after Set with a zero ExpiresAt = %q, %v (zero %v), %v; want the value with a zero ExpiresAt", got.Value, got.ExpiresAt, got.ExpiresAt.IsZero(), err)
	}
	next := core.Token{Value: "refreshtoken@@@second"}
	got, err = s.Refresh(f.ctx, key, "refreshtoken@@@first", func(context.Context) (core.Token, error) { return next, nil })
	if err != nil || got.Value != next.Value || !got.ExpiresAt.IsZero() {
		t.Fatalf("Refresh replacing a durable value = %q, %v, %v", got.Value, got.ExpiresAt, err)
	}
	got, err = s.Refresh(f.ctx, key, "refreshtoken@@@first", func(context.Context) (core.Token, error) {
		t.Error("Refresh fetched although the durable value differs from stale")
		return core.Token{Value: "refreshtoken@@@older"}, nil
	})
	if err != nil || got.Value != next.Value {
		t.Errorf("Refresh with an older stale value = %q, %v; want the stored value", got.Value, err)
	}
	f.wantStored(s, key, next, "a durable value is kept")
}

// testValuesKeptWhole tests that values of 1 byte, 512 bytes (a jsapi_ticket
// sized token) and 4 KiB are stored and returned whole, by Set/Get and by
// Refresh.
func testValuesKeptWhole(t *testing.T, f *fixture) {
	s := f.store()
	for _, n := range []int{1, 512, 4096} {
		key := f.key(fmt.Sprintf("set-%d", n))
		tok := token(pattern("v", n))
		f.set(s, key, tok)
		f.wantStored(s, key, tok, fmt.Sprintf("a %d-byte value is kept whole", n))

		key = f.key(fmt.Sprintf("refresh-%d", n))
		tok = token(pattern("r", n))
		got, err := s.Refresh(f.ctx, key, "", new(fetchCounter).returning(tok))
		switch {
		case err != nil:
			t.Errorf("Refresh(%q, stale=%q) with a %d-byte fetched value: %v", key, "", n, err)
		case !sameToken(got, tok):
			t.Errorf("Refresh(%q, stale=%q) = %s, want %s (the %d-byte fetched value whole)", key, "", fmtToken(got), fmtToken(tok), n)
		}
		f.wantStored(s, key, tok, fmt.Sprintf("a %d-byte fetched value is kept whole", n))
	}
}

// hostileKeys are key suffixes a store must map safely: each is its own
// key, with no path traversal, no injection and no two sharing storage.
var hostileKeys = []string{
	"a/b",
	"a\\b",
	"../../etc/passwd",
	strings.Repeat("../", 20) + "tmp/x",
	"..",
	".",
	"{tag}",
	"tag",
	"a:b",
	"a b",
	" ",
	"100%",
	"%2F",
	"%s%d%n",
	`"quoted"`,
	"'single'",
	"`back`",
	"semi;colon -- '); DROP TABLE tokens;--",
	"*",
	"?",
	"line\nbreak",
	"tab\there",
	"令牌/🔑",
	"Case",
	"case",
	"CASE",
}

// testHostileKeysIsolated tests that keys holding "/", "..", "{}", ":",
// quotes, "%", spaces, control characters, unicode, letters differing only
// in case, and a key of exactly core.MaxKeyLen bytes are each stored under
// their own key: written with distinct values, each reads back its own.
func testHostileKeysIsolated(t *testing.T, f *fixture) {
	s := f.store()
	prefix := f.key("")
	keys := make([]string, 0, len(hostileKeys)+2)
	for _, k := range hostileKeys {
		keys = append(keys, prefix+k)
	}
	// Keys of exactly MaxKeyLen bytes, one ASCII and one ending in 3-byte
	// runes, that differ only in their last byte from a sibling.
	long := prefix + strings.Repeat("k", core.MaxKeyLen-len(prefix))
	keys = append(keys, long, long[:len(long)-1]+"j")
	wide := prefix + strings.Repeat("令", (core.MaxKeyLen-len(prefix))/3)
	keys = append(keys, wide+strings.Repeat("w", core.MaxKeyLen-len(wide)))

	want := make(map[string]core.Token, len(keys))
	for i, k := range keys {
		if err := core.ValidateKey(k); err != nil {
			t.Fatalf("conformance: bad test key %q: %v", k, err)
		}
		tok := token(fmt.Sprintf("value-%02d", i))
		if err := s.Set(f.ctx, k, tok); err != nil {
			t.Errorf("Set(%q, %s): %v (keys may hold any character but NUL)", k, fmtToken(tok), err)
			continue
		}
		want[k] = tok
	}
	for _, k := range keys {
		if tok, ok := want[k]; ok {
			f.wantStored(s, k, tok, "each key has its own storage")
		}
	}
}

// testPrefixKeysIsolated tests that keys that are prefixes or decorations
// of one another ("a" and "a/b", "{tag}" and "tag", "k" and "k:lock") do not
// share storage, and that a key never written stays absent when its
// neighbours are written.
func testPrefixKeysIsolated(t *testing.T, f *fixture) {
	s := f.store()
	p := f.key("")
	pairs := [][2]string{
		{p + "a", p + "a/b"},
		{p + "{tag}", p + "tag"},
		{p + "k", p + "k:lock"},
		{p + "x", p + "x "},
	}
	for _, pair := range pairs {
		shorter, longer := pair[0], pair[1]
		lt, st := token("longer"), token("shorter")
		f.set(s, longer, lt)
		f.wantNotFound(s, shorter, fmt.Sprintf("writing %q must not create %q", longer, shorter))
		f.set(s, shorter, st)
		f.wantStored(s, longer, lt, fmt.Sprintf("writing %q must not change %q", shorter, longer))
		f.wantStored(s, shorter, st, "each key has its own storage")
	}
}

// testStoreValuesShareTokens tests that two store values over one backend
// share tokens: what one Sets the other Gets, Refresh through one sees the
// token the other wrote (no fetch when it differs from stale), and a
// token refreshed through one is read through the other.
func testStoreValuesShareTokens(t *testing.T, f *fixture) {
	a, b := f.store(), f.store()
	key := f.key("k")
	first := token("written-by-a")
	f.set(a, key, first)
	f.wantStored(b, key, first, "a token set through one store value is read through another")

	var c fetchCounter
	got, err := b.Refresh(f.ctx, key, "older", c.returning(token("must-not-be-fetched")))
	switch {
	case err != nil:
		t.Errorf("Refresh(%q, stale=%q) on a second store value: %v", key, "older", err)
	case !sameToken(got, first):
		t.Errorf("Refresh(%q, stale=%q) on a second store value = %s, want %s (the token the first wrote)", key, "older", fmtToken(got), fmtToken(first))
	}
	if n := c.n(); n != 0 {
		t.Errorf("Refresh(%q, stale=%q) on a second store value: fetch ran %d times, want 0 (rule 2: the stored value differs from stale)", key, "older", n)
	}

	second := token("refreshed-through-b")
	got, err = b.Refresh(f.ctx, key, first.Value, c.returning(second))
	switch {
	case err != nil:
		t.Fatalf("Refresh(%q, stale=%q) on a second store value: %v", key, first.Value, err)
	case !sameToken(got, second):
		t.Errorf("Refresh(%q, stale=%q) on a second store value = %s, want the fetched %s", key, first.Value, fmtToken(got), fmtToken(second))
	}
	f.wantStored(a, key, second, "a token refreshed through one store value is read through another")
}

// testRefreshSkipsFetchWhenValueChanged tests rule 2: when the stored value
// differs from stale, somebody already refreshed, so Refresh returns the
// stored token without calling fetch and leaves it stored.
func testRefreshSkipsFetchWhenValueChanged(t *testing.T, f *fixture) {
	s := f.store()
	key := f.key("k")
	cur := token("current")
	f.set(s, key, cur)
	var c fetchCounter
	for _, stale := range []string{"older", "", "current-but-longer", "curren"} {
		got, err := s.Refresh(f.ctx, key, stale, c.returning(token("must-not-be-fetched")))
		switch {
		case err != nil:
			t.Errorf("Refresh(%q, stale=%q): %v, want the stored %s", key, stale, err, fmtToken(cur))
		case !sameToken(got, cur):
			t.Errorf("Refresh(%q, stale=%q) = %s, want the stored %s (rule 2)", key, stale, fmtToken(got), fmtToken(cur))
		}
		if n := c.n(); n != 0 {
			t.Errorf("Refresh(%q, stale=%q): fetch ran %d times, want 0 (rule 2: the stored value %q differs from stale)", key, stale, n, cur.Value)
			c = fetchCounter{}
		}
	}
	f.wantStored(s, key, cur, "rule 2: Refresh without a fetch writes nothing")
}

// testRefreshFetchesWhenValueIsStale tests rule 3: when the stored value
// equals stale, Refresh calls fetch once, stores its token and returns it.
func testRefreshFetchesWhenValueIsStale(t *testing.T, f *fixture) {
	s := f.store()
	key := f.key("k")
	old := token("old")
	f.set(s, key, old)
	var c fetchCounter
	fresh := token("fresh")
	got, err := s.Refresh(f.ctx, key, old.Value, c.returning(fresh))
	switch {
	case err != nil:
		t.Fatalf("Refresh(%q, stale=%q): %v", key, old.Value, err)
	case !sameToken(got, fresh):
		t.Errorf("Refresh(%q, stale=%q) = %s, want the fetched %s (rule 3)", key, old.Value, fmtToken(got), fmtToken(fresh))
	}
	if n := c.n(); n != 1 {
		t.Errorf("Refresh(%q, stale=%q): fetch ran %d times, want 1 (rule 3: the stored value equals stale)", key, old.Value, n)
	}
	f.wantStored(s, key, fresh, "rule 3: the fetched token is written")
}

// testRefreshFetchesWhenNothingStored tests rule 3 for an absent key: with
// nothing stored Refresh fetches, whether stale is "" or a value that is no
// longer stored, and stores the result.
func testRefreshFetchesWhenNothingStored(t *testing.T, f *fixture) {
	s := f.store()
	for _, stale := range []string{"", "seen-elsewhere"} {
		key := f.key("stale=" + stale)
		var c fetchCounter
		fresh := token("fresh")
		got, err := s.Refresh(f.ctx, key, stale, c.returning(fresh))
		switch {
		case err != nil:
			t.Errorf("Refresh(%q, stale=%q) with nothing stored: %v", key, stale, err)
			continue
		case !sameToken(got, fresh):
			t.Errorf("Refresh(%q, stale=%q) with nothing stored = %s, want the fetched %s (rule 3)", key, stale, fmtToken(got), fmtToken(fresh))
		}
		if n := c.n(); n != 1 {
			t.Errorf("Refresh(%q, stale=%q) with nothing stored: fetch ran %d times, want 1 (rule 3)", key, stale, n)
		}
		f.wantStored(s, key, fresh, "rule 3: the fetched token is written")
	}
}

// errFetch is the error the suite's failing fetches return.
var errFetch = errors.New("conformance: injected fetch failure")

// fetchError is a typed fetch failure, to check that errors.As still finds
// it in what Refresh returns.
type fetchError struct{ code int }

func (e *fetchError) Error() string { return fmt.Sprintf("conformance: injected API error %d", e.code) }
func (e *fetchError) Unwrap() error { return errFetch }

// testRefreshFetchErrorWritesNothing tests rule 4: when fetch fails, Refresh
// returns an error that errors.Is and errors.As still match against fetch's
// (also when fetch wrapped it), writes nothing (an absent key stays absent,
// a stored token stays) and releases the lock (the next Refresh fetches
// before the failed one's lock could have run out of its lease).
func testRefreshFetchErrorWritesNothing(t *testing.T, f *fixture) {
	s := f.store()
	absent, stored := f.key("absent"), f.key("stored")
	old := token("old")
	f.set(s, stored, old)
	failing := func(err error) core.FetchFunc {
		return func(context.Context) (core.Token, error) { return core.Token{Value: "ignored-on-error"}, err }
	}

	lockedAfter := map[string]time.Time{absent: time.Now()}
	_, err := s.Refresh(f.ctx, absent, "", failing(errFetch))
	if !errors.Is(err, errFetch) {
		t.Errorf("Refresh(%q, stale=%q) with a failing fetch: %v, want an error matching fetch's (errors.Is) (rule 4)", absent, "", err)
	}
	f.wantNotFound(s, absent, "rule 4: a failed fetch writes nothing")

	lockedAfter[stored] = time.Now()
	_, err = s.Refresh(f.ctx, stored, old.Value, failing(fmt.Errorf("calling WeChat: %w", &fetchError{code: 40013})))
	var fe *fetchError
	if !errors.Is(err, errFetch) || !errors.As(err, &fe) || fe.code != 40013 {
		t.Errorf("Refresh(%q, stale=%q) with a fetch failing with a wrapped *fetchError: %v, want an error matching it with errors.Is and errors.As (rule 4)", stored, old.Value, err)
	}
	f.wantStored(s, stored, old, "rule 4: a failed fetch writes nothing")

	// The lock must be free: a Refresh now fetches before a leaked lock's
	// lease would run out.
	for _, key := range []string{absent, stored} {
		stale := ""
		if key == stored {
			stale = old.Value
		}
		f.wantLockFree(s, key, stale, lockedAfter[key], "rule 4: after a failed fetch the lock is released")
	}
}

// testEmptyValueNeverStored tests that an empty value is never stored: Set
// of a Token with an empty Value, with or without an ExpiresAt, fails with
// an error wrapping core.ErrEmptyToken and writes nothing (a stored token
// stays, an absent key stays absent); a Refresh whose fetch returns a token
// with an empty Value fails, writes nothing and releases the lock (the
// next Refresh fetches promptly).
func testEmptyValueNeverStored(t *testing.T, f *fixture) {
	s := f.store()
	absent, stored := f.key("absent"), f.key("stored")
	old := token("old")
	f.set(s, stored, old)
	stales := map[string]string{absent: "", stored: old.Value}
	empties := []core.Token{{}, {ExpiresAt: time.Now().Add(2 * time.Hour).Truncate(time.Second)}}

	for _, key := range []string{absent, stored} {
		for _, e := range empties {
			if err := s.Set(f.ctx, key, e); !errors.Is(err, core.ErrEmptyToken) {
				t.Errorf("Set(%q, %s): %v, want an error wrapping core.ErrEmptyToken (an empty value is never stored)", key, fmtToken(e), err)
			}
		}
	}
	f.wantNotFound(s, absent, "a Set of an empty value writes nothing")
	f.wantStored(s, stored, old, "a Set of an empty value writes nothing")

	lockedAfter := map[string]time.Time{}
	for _, key := range []string{absent, stored} {
		stale := stales[key]
		for _, e := range empties {
			var c fetchCounter
			lockedAfter[key] = time.Now()
			got, err := s.Refresh(f.ctx, key, stale, c.returning(e))
			switch {
			case c.n() != 1:
				t.Errorf("Refresh(%q, stale=%q): fetch ran %d times, want 1 (rule 3: the stored value equals stale or is absent)", key, stale, c.n())
			case err == nil:
				t.Errorf("Refresh(%q, stale=%q) whose fetch returned %s = %s, nil; want an error (an empty value is never stored)", key, stale, fmtToken(e), fmtToken(got))
			}
		}
	}
	f.wantNotFound(s, absent, "a Refresh whose fetch returned an empty value writes nothing")
	f.wantStored(s, stored, old, "a Refresh whose fetch returned an empty value writes nothing")

	// The lock must be free: a Refresh now fetches before a leaked lock's
	// lease would run out.
	for _, key := range []string{absent, stored} {
		f.wantLockFree(s, key, stales[key], lockedAfter[key], "after a fetch that returned an empty value the lock is released")
	}
}

// holder is a Refresh running in the background whose fetch blocks until the
// check lets it return.
type holder struct {
	entered chan struct{}   // closed when fetch starts
	release chan core.Token // fetch returns what is sent
	done    chan result     // Refresh's result

	once sync.Once
	res  result
}

type result struct {
	tok core.Token
	err error
	at  time.Time // when Refresh returned
}

// startHolder starts Refresh(key, stale) on s with a fetch that ignores its
// context and waits on h.release, and waits until fetch has started.
func (f *fixture) startHolder(s core.TokenStore, key, stale string) *holder {
	f.t.Helper()
	h := &holder{entered: make(chan struct{}), release: make(chan core.Token, 1), done: make(chan result, 1)}
	go func() {
		tok, err := s.Refresh(f.ctx, key, stale, func(context.Context) (core.Token, error) {
			close(h.entered)
			return <-h.release, nil
		})
		h.done <- result{tok, err, time.Now()}
	}()
	select {
	case <-h.entered:
	case r := <-h.done:
		f.t.Fatalf("Refresh(%q, stale=%q) = %s, %v without calling fetch; want a fetch (rule 3)", key, stale, fmtToken(r.tok), r.err)
	case <-f.ctx.Done():
		f.t.Fatalf("Refresh(%q, stale=%q): fetch not called before the watchdog fired", key, stale)
	}
	return h
}

// finish lets the holder's fetch return tok and returns Refresh's result;
// later calls return the same result.
func (h *holder) finish(tok core.Token) result {
	h.once.Do(func() {
		h.release <- tok
		h.res = <-h.done
	})
	return h.res
}

// testRefreshLocksArePerKey tests that the refresh lock is per key: while
// one store value holds the lock of a key inside fetch, Refresh of keys that
// are prefixes or decorations of it goes ahead: each fetches before the
// holder's lock could have run out of its lease (wantLockFree), and the
// holder then still writes.
func testRefreshLocksArePerKey(t *testing.T, f *fixture) {
	a, b := f.store(), f.store()
	p := f.key("")
	lockedAfter := time.Now()
	held := f.startHolder(a, p+"{tag}", "")
	defer held.finish(token("holder"))
	// Each other key's Refresh must fetch while the holder still holds its
	// lock: before that lock could have run out of its lease, after which a
	// Refresh blocked by it would go ahead too.
	var wg sync.WaitGroup
	for _, key := range []string{p + "tag", p + "{tag", p + "{tag}/x", p + "{tag}:lock", p} {
		wg.Go(func() {
			f.wantLockFree(b, key, "", lockedAfter, fmt.Sprintf("each key has its own lock: %q is held", p+"{tag}"))
		})
	}
	wg.Wait()
	r := held.finish(token("holder"))
	switch {
	case r.err == nil:
	case errors.Is(r.err, core.ErrLockLost) && r.at.Sub(lockedAfter) >= f.h.Lease:
		// The other keys took so long on this machine that the holder's
		// lease may have run out: nothing this check can hold against the
		// store.
		t.Logf("Refresh(%q, stale=%q) of the holder: %v, returning %v after its lock was taken (lease %v)", p+"{tag}", "", r.err, r.at.Sub(lockedAfter).Round(time.Millisecond), f.h.Lease)
	default:
		t.Errorf("Refresh(%q, stale=%q) of the holder: %v", p+"{tag}", "", r.err)
	}
}

// Herd sizes: store values (processes) and goroutines on each.
const (
	herdStores   = 4
	herdPerStore = 25
)

// testRefreshHerdFetchesOnce tests rules 1 and 2 under contention: callers
// on several store values (herdStores × herdPerStore goroutines), released
// together, call Refresh with the same stale value; fetch runs exactly once
// and every caller gets the token it fetched. A second fetch is legitimate
// when the holder outlived its lease (rule 5), which only a stalled machine
// makes happen and which takes the herd at least the lease (n fetches: n−1
// leases): such a herd is run again on a new key (up to timingRounds times,
// the last counts); one with extra fetches that took less fails at once.
func testRefreshHerdFetchesOnce(t *testing.T, f *fixture) {
	ss := f.stores(herdStores)
	for round := 1; ; round++ {
		fetches, elapsed, conclusive := herdOnce(t, f, ss, round, round == timingRounds)
		if conclusive || t.Failed() {
			return
		}
		t.Logf("round %d: fetch ran %d times, but the herd took %v, at least a %v lease per extra fetch: each holder may have lost its lock to the lease on a busy machine; running the herd again",
			round, fetches, elapsed.Round(time.Millisecond), f.h.Lease)
	}
}

// herdOnce runs one herd of testRefreshHerdFetchesOnce on a key of its own
// and reports its failures, unless it is inconclusive: extra fetches in a
// herd that took at least the lease, when last is false. It returns how many
// fetches ran and how long the herd took.
func herdOnce(t *testing.T, f *fixture, ss []core.TokenStore, round int, last bool) (fetches int, elapsed time.Duration, conclusive bool) {
	key := f.key(fmt.Sprintf("k%d", round))
	old := token("old")
	f.set(ss[0], key, old)

	var c fetchCounter
	fetch := func(ctx context.Context) (core.Token, error) {
		n := c.add()
		// Simulated work, so that the callers overlap.
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return core.Token{}, ctx.Err()
		}
		return token(fmt.Sprintf("herd-%d", n)), nil
	}
	start := make(chan struct{})
	results := make(chan result, len(ss)*herdPerStore)
	var wg sync.WaitGroup
	for _, s := range ss {
		for range herdPerStore {
			wg.Go(func() {
				<-start
				tok, err := s.Refresh(f.ctx, key, old.Value, fetch)
				results <- result{tok: tok, err: err}
			})
		}
	}
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed = time.Since(began)
	close(results)

	callers := len(ss) * herdPerStore
	if n := c.n(); n != 1 {
		if !last && n > 1 && elapsed >= time.Duration(n-1)*f.h.Lease {
			return n, elapsed, false // each extra fetch may follow a lease that ran out
		}
		t.Errorf("Refresh(%q, stale=%q): fetch ran %d times, want 1 (rules 1–2: %d callers on %d store values)", key, old.Value, n, callers, len(ss))
	}
	got := map[string]int{}
	var errs []error
	for r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		got[r.tok.Value]++
	}
	if len(errs) > 0 {
		t.Errorf("Refresh(%q, stale=%q) in a herd: %d of %d callers failed, the first with: %v", key, old.Value, len(errs), callers, errs[0])
	}
	if len(got) != 1 || got["herd-1"] == 0 {
		desc := fmt.Sprint(got)
		if len(got) > 4 {
			desc = fmt.Sprintf("%d distinct values", len(got))
		}
		t.Errorf("Refresh(%q, stale=%q) in a herd of %d: callers got %s, want all %q (the one fetched token)", key, old.Value, callers, desc, "herd-1")
	}
	return c.n(), elapsed, true
}

// testRefreshWakesWaitersPromptly tests rule 6: callers waiting for the lock
// on several store values return promptly once the holder's fetch ends, with
// its token and without a fetch of their own. The holder's fetch lasts until
// every waiter has called Refresh, then slowFetch more, so that they are all
// waiting when it ends. A waiter's latency runs from the end of that fetch
// (or from its own call, had it come later) to its return; the largest must
// stay within wakeBound plus costMargin times what the holder's write and
// the waiters' own reads cost on this machine at that moment (measureCost,
// before and after, the larger), measured again in a new round if it does
// not (withinBound): a busy machine's stall does not fail a store that wakes
// its waiters, while one that polls a second apart fails every round. The
// latencies and bounds are logged.
func testRefreshWakesWaitersPromptly(t *testing.T, f *fixture) {
	const perStore = 5
	ss := f.stores(herdStores)
	// The first operations on new store values open their connections: not
	// what a waiter costs once it waits.
	f.measureCost("warm-up", ss, perStore)
	f.withinBound("rule 6: waiters wake promptly, not on a coarse poll", func(round int) (bool, string) {
		return wakeRound(t, f, ss, perStore, round)
	})
}

// wakeRound is one round of testRefreshWakesWaitersPromptly on a key of its
// own. It reports failures other than the latency itself, and returns
// whether the latency kept to its bound, and what it measured.
func wakeRound(t *testing.T, f *fixture, ss []core.TokenStore, perStore, round int) (bool, string) {
	key := f.key(fmt.Sprintf("k%d", round))
	old := token("old")
	f.set(ss[0], key, old)
	costBefore := f.measureCost(fmt.Sprintf("before-%d", round), ss, perStore)

	fresh := token("fresh")
	waiters := len(ss) * perStore
	var fetchEnd time.Time // written by fetch, read after the holder returned
	var calling sync.WaitGroup
	calling.Add(waiters)
	allCalling := make(chan struct{})
	go func() { calling.Wait(); close(allCalling) }()
	entered := make(chan struct{})
	holderDone := make(chan result, 1)
	go func() {
		tok, err := ss[0].Refresh(f.ctx, key, old.Value, func(ctx context.Context) (core.Token, error) {
			close(entered)
			select { // every waiter called Refresh
			case <-allCalling:
			case <-ctx.Done():
				return core.Token{}, ctx.Err()
			}
			select { // simulated work, during which they wait
			case <-time.After(slowFetch):
			case <-ctx.Done():
				return core.Token{}, ctx.Err()
			}
			fetchEnd = time.Now()
			return fresh, nil
		})
		holderDone <- result{tok, err, time.Now()}
	}()
	select {
	case <-entered:
	case r := <-holderDone:
		t.Fatalf("Refresh(%q, stale=%q) = %s, %v without calling fetch; want a fetch (rule 3)", key, old.Value, fmtToken(r.tok), r.err)
	}

	type waited struct {
		result
		called time.Time
	}
	var c fetchCounter
	results := make(chan waited, waiters)
	var wg sync.WaitGroup
	for _, s := range ss {
		for range perStore {
			wg.Go(func() {
				called := time.Now()
				calling.Done()
				tok, err := s.Refresh(f.ctx, key, old.Value, c.returning(token("waiter-fetched")))
				results <- waited{result{tok, err, time.Now()}, called}
			})
		}
	}
	wg.Wait()
	close(results)
	h := <-holderDone
	if h.err != nil {
		t.Fatalf("Refresh(%q, stale=%q) of the holder: %v", key, old.Value, h.err)
	}
	if n := c.n(); n != 0 {
		t.Errorf("Refresh(%q, stale=%q) of waiters: fetch ran %d times, want 0 (rule 2: the holder refreshed)", key, old.Value, n)
	}
	var (
		latency time.Duration
		errs    []error
		wrong   []core.Token
	)
	for r := range results {
		switch {
		case r.err != nil:
			errs = append(errs, r.err)
		case !sameToken(r.tok, fresh):
			wrong = append(wrong, r.tok)
		default:
			latency = max(latency, r.at.Sub(later(fetchEnd, r.called)))
		}
	}
	if len(errs) > 0 {
		t.Errorf("Refresh(%q, stale=%q): %d of %d waiters failed, the first with: %v", key, old.Value, len(errs), waiters, errs[0])
	}
	if len(wrong) > 0 {
		t.Errorf("Refresh(%q, stale=%q): %d of %d waiters got another token than the holder's %s, the first %s", key, old.Value, len(wrong), waiters, fmtToken(fresh), fmtToken(wrong[0]))
	}
	if len(errs)+len(wrong) == waiters {
		return true, "no latency to measure" // failed above
	}
	cost := max(costBefore, f.measureCost(fmt.Sprintf("after-%d", round), ss, perStore))
	bound := wakeBound + costMargin*cost
	return latency <= bound, fmt.Sprintf("Refresh(%q, stale=%q): wake latency %v (max over %d waiters on %d store values of return time − end of the holder's %v fetch), %s",
		key, old.Value, latency, waiters-len(errs)-len(wrong), len(ss), slowFetch, fmtCost(wakeBound, cost, bound))
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// testRefreshWaiterHonoursContext tests rule 1 with ctx: a caller waiting
// for a lock another store value holds (inside a fetch that blocks) returns
// promptly once its ctx is cancelled, with an error wrapping ctx.Err() and
// without fetching; and it leaks no lock: once the holder is done, a
// Refresh with the holder's token as stale fetches before a lock the waiter
// took then could have run out of its lease. Promptly is within wakeBound
// plus costMargin times what a Refresh costs on the waiter's store value at
// that moment (measureCost), measured again in a new round if it is not
// (withinBound).
func testRefreshWaiterHonoursContext(t *testing.T, f *fixture) {
	a, b := f.store(), f.store()
	f.withinBound("rule 1: a waiter returns promptly once its ctx is cancelled", func(round int) (bool, string) {
		return cancelRound(t, f, a, b, round)
	})
}

// cancelRound is one round of testRefreshWaiterHonoursContext on a key of
// its own. It reports failures other than the latency itself, and returns
// whether the latency kept to its bound, and what it measured.
func cancelRound(t *testing.T, f *fixture, a, b core.TokenStore, round int) (bool, string) {
	key := f.key(fmt.Sprintf("k%d", round))
	cost := f.measureCost(fmt.Sprintf("waiter-%d", round), []core.TokenStore{b}, 0)
	bound := wakeBound + costMargin*cost
	held := f.startHolder(a, key, "")
	defer held.finish(token("holder"))

	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	// Cancel once the waiter is likely waiting, when an uncontended Refresh
	// would have returned twice over; cancelling earlier is valid too (it
	// must return ctx.Err() either way).
	cancelledAt := make(chan time.Time, 1)
	timer := time.AfterFunc(10*time.Millisecond+costMargin*cost, func() { cancelledAt <- time.Now(); cancel() })
	var c fetchCounter
	tok, err := b.Refresh(ctx, key, "", c.returning(token("waiter-fetched")))
	returned := time.Now()
	if timer.Stop() {
		cancelledAt <- returned // returned before the cancel: no latency to measure
	}
	cancelled := <-cancelledAt
	kept := true
	switch {
	case c.n() != 0:
		t.Errorf("Refresh(%q, stale=%q) while another store value holds the lock: fetch ran %d times, want 0 (rule 1)", key, "", c.n())
	case err == nil:
		t.Errorf("Refresh(%q, stale=%q) with ctx cancelled while waiting = %s, nil; want an error wrapping context.Canceled (rule 1)", key, "", fmtToken(tok))
	case !errors.Is(err, context.Canceled):
		t.Errorf("Refresh(%q, stale=%q) with ctx cancelled while waiting: %v, want an error wrapping context.Canceled (rule 1)", key, "", err)
	default:
		kept = returned.Sub(cancelled) <= bound
	}

	holderTok := token("holder")
	releasedAfter := time.Now() // a lock the waiter leaked is taken after this
	if r := held.finish(holderTok); r.err != nil {
		t.Fatalf("Refresh(%q, stale=%q) of the holder: %v", key, "", r.err)
	}
	f.wantLockFree(b, key, holderTok.Value, releasedAfter, "the cancelled waiter must not leak the lock")
	return kept, fmt.Sprintf("Refresh(%q, stale=%q) returned %v after its ctx was cancelled, %s", key, "", returned.Sub(cancelled), fmtCost(wakeBound, cost, bound))
}

// testMethodsHonourCanceledContext tests that Get, Set and Refresh called
// with a context already cancelled return an error wrapping
// context.Canceled, and that Set and Refresh then write nothing and Refresh
// does not fetch.
func testMethodsHonourCanceledContext(t *testing.T, f *fixture) {
	s := f.store()
	stored, absent := f.key("stored"), f.key("absent")
	old := token("old")
	f.set(s, stored, old)
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()

	if tok, err := s.Get(ctx, stored); !errors.Is(err, context.Canceled) {
		t.Errorf("Get(%q) with a cancelled ctx = %s, %v; want an error wrapping context.Canceled", stored, fmtToken(tok), err)
	}
	if err := s.Set(ctx, absent, token("set-cancelled")); !errors.Is(err, context.Canceled) {
		t.Errorf("Set(%q) with a cancelled ctx: %v, want an error wrapping context.Canceled", absent, err)
	}
	f.wantNotFound(s, absent, "a Set that failed on its ctx writes nothing")
	for _, key := range []string{stored, absent} {
		stale := ""
		if key == stored {
			stale = old.Value
		}
		var c fetchCounter
		tok, err := s.Refresh(ctx, key, stale, c.returning(token("refresh-cancelled")))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Refresh(%q, stale=%q) with a cancelled ctx = %s, %v; want an error wrapping context.Canceled", key, stale, fmtToken(tok), err)
		}
		if n := c.n(); n != 0 {
			t.Errorf("Refresh(%q, stale=%q) with a cancelled ctx: fetch ran %d times, want 0", key, stale, n)
		}
	}
	f.wantNotFound(s, absent, "a Refresh that failed on its ctx writes nothing")
	f.wantStored(s, stored, old, "a Refresh that failed on its ctx writes nothing")
}

// testRefreshFetchContextEndsWithLease tests rule 3's bound on fetch: the
// context fetch receives ends within the lease (plus leaseSlack), and a
// fetch that returns its ctx.Err() then makes Refresh fail and write
// nothing. A context whose deadline is within that bound passes on its
// deadline, read as a value (it then ends by itself, whatever the load);
// one without such a deadline must be seen ending within the bound plus
// costMargin times what a Refresh costs on this machine at that moment
// (measureCost).
func testRefreshFetchContextEndsWithLease(t *testing.T, f *fixture) {
	s := f.store()
	key := f.key("k")
	allowance := f.h.Lease + leaseSlack(f.h.Lease)
	cost := f.measureCost("fetch", []core.TokenStore{s}, 0)
	bound := allowance + costMargin*cost
	var (
		elapsed    time.Duration
		byDeadline bool
	)
	_, err := s.Refresh(f.ctx, key, "", func(ctx context.Context) (core.Token, error) {
		start := time.Now()
		limit := bound
		if d, ok := ctx.Deadline(); ok && d.Sub(start) <= allowance {
			// Ends by itself: wait for it as long as the watchdog lets.
			byDeadline, limit = true, watchdogTimeout(f.h.Lease)
		}
		select {
		case <-ctx.Done():
			elapsed = time.Since(start)
			return core.Token{}, ctx.Err()
		case <-time.After(limit):
			elapsed = -1
			return token("fetch-outlived-lease"), nil
		}
	})
	switch {
	case elapsed < 0:
		t.Errorf("Refresh(%q, stale=%q): fetch's context still not done %v into fetch, want it to end within the %v lease (rule 3: fetch runs with a context bounded by the lease; %s)", key, "", bound, f.h.Lease, fmtCost(allowance, cost, bound))
	case byDeadline:
		t.Logf("fetch's context ended %v into fetch, on its deadline (lease %v)", elapsed, f.h.Lease)
	default:
		t.Logf("fetch's context ended %v into fetch, with no deadline within %v (lease %v; %s)", elapsed, allowance, f.h.Lease, fmtCost(allowance, cost, bound))
	}
	if err == nil {
		t.Errorf("Refresh(%q, stale=%q) with a fetch that outlived the lease: nil error, want an error (rules 3–4)", key, "")
	}
	f.wantNotFound(s, key, "rules 3–4: a fetch that outlived the lease writes nothing")
}

// testRefreshFencesLateHolder tests rule 3's fenced write: a holder whose
// fetch outlives the lease loses the lock; another store value's Refresh
// with the same stale value then takes the lock and fetches; when the late
// holder's fetch finally returns, its Refresh fails with an error wrapping
// core.ErrLockLost and writes nothing, and the newer token survives.
func testRefreshFencesLateHolder(t *testing.T, f *fixture) {
	a, b := f.store(), f.store()
	key := f.key("k")
	old := token("old")
	f.set(a, key, old)
	// The second store value's Refresh must return within the lease, plus
	// leaseSlack, plus costMargin times what a Refresh costs on it now.
	allowance := f.h.Lease + leaseSlack(f.h.Lease)
	cost := f.measureCost("takeover", []core.TokenStore{b}, 0)
	bound := allowance + costMargin*cost
	late := f.startHolder(a, key, old.Value)
	defer late.finish(token("late-cleanup"))

	newer := token("newer")
	var c fetchCounter
	second := make(chan result, 1)
	started := time.Now()
	go func() {
		tok, err := b.Refresh(f.ctx, key, old.Value, c.returning(newer))
		second <- result{tok, err, time.Now()}
	}()
	var r result
	select {
	case r = <-second:
		t.Logf("the second store value took the lock over %v after it was called (lease %v; %s)", r.at.Sub(started).Round(time.Millisecond), f.h.Lease, fmtCost(allowance, cost, bound))
	case <-time.After(time.Until(started.Add(bound))):
		t.Fatalf("Refresh(%q, stale=%q) on a second store value did not return within %v while the holder's fetch outlived its %v lease (rule 3: the lease bounds the lock; %s)", key, old.Value, bound, f.h.Lease, fmtCost(allowance, cost, bound))
	}
	switch {
	case r.err != nil:
		t.Errorf("Refresh(%q, stale=%q) after the holder's lease ran out: %v, want the fetched %s", key, old.Value, r.err, fmtToken(newer))
	case !sameToken(r.tok, newer):
		t.Errorf("Refresh(%q, stale=%q) after the holder's lease ran out = %s, want the fetched %s", key, old.Value, fmtToken(r.tok), fmtToken(newer))
	}
	if n := c.n(); n != 1 {
		t.Errorf("Refresh(%q, stale=%q) after the holder's lease ran out: fetch ran %d times, want 1 (the lock is free, the stored value still equals stale)", key, old.Value, n)
	}

	lateTok := token("late")
	lr := late.finish(lateTok)
	if !errors.Is(lr.err, core.ErrLockLost) {
		t.Errorf("Refresh(%q, stale=%q) whose fetch outlived the lease = %s, %v; want an error wrapping core.ErrLockLost (rule 3: fenced write)", key, old.Value, fmtToken(lr.tok), lr.err)
	}
	f.wantStored(b, key, newer, "rule 3: a holder that lost its lock must not overwrite the newer token")
}
