package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// The checks of core.KeyLister, the optional listing of a store's keys. A
// store that does not implement it has them skipped, with that reason.

// lister returns s as a core.KeyLister, or skips the check saying that the
// store does not list.
func (f *fixture) lister(s core.TokenStore) core.KeyLister {
	f.t.Helper()
	l, ok := s.(core.KeyLister)
	if !ok {
		f.t.Skipf("the store (%T) does not implement core.KeyLister, which is optional", s)
	}
	return l
}

// listKeys calls ListKeys(prefix) on l and stops the check if it fails.
func (f *fixture) listKeys(l core.KeyLister, prefix string) []string {
	f.t.Helper()
	keys, err := l.ListKeys(f.ctx, prefix)
	if err != nil {
		f.t.Fatalf("ListKeys(%q): %v", prefix, err)
	}
	return keys
}

// wantListed reports an error unless got, what ListKeys(prefix) returned,
// is sorted, holds each key once, and equals want (in any order); rule
// says which rule would be broken.
func wantListed(t *testing.T, prefix string, got, want []string, rule string) {
	t.Helper()
	checkSortedOnce(t, prefix, got)
	want = slices.Sorted(slices.Values(want))
	want = slices.Compact(want)
	have := slices.Compact(slices.Sorted(slices.Values(got)))
	if missing := difference(want, have); len(missing) > 0 {
		t.Errorf("ListKeys(%q) does not list %q (%s); it listed %q", prefix, missing, rule, got)
	}
	if extra := difference(have, want); len(extra) > 0 {
		t.Errorf("ListKeys(%q) lists %q, which it must not (%s)", prefix, extra, rule)
	}
}

// checkSortedOnce reports an error unless keys is sorted with no key twice.
func checkSortedOnce(t *testing.T, prefix string, keys []string) {
	t.Helper()
	for i := 1; i < len(keys); i++ {
		switch {
		case keys[i-1] == keys[i]:
			t.Errorf("ListKeys(%q) lists %q twice: each key must be listed once", prefix, keys[i])
		case keys[i-1] > keys[i]:
			t.Errorf("ListKeys(%q) lists %q before %q: keys must be sorted", prefix, keys[i-1], keys[i])
		}
	}
}

// difference returns the elements of the sorted slice a that the sorted
// slice b lacks.
func difference(a, b []string) []string {
	var d []string
	for _, k := range a {
		if _, found := slices.BinarySearch(b, k); !found {
			d = append(d, k)
		}
	}
	return d
}

// under returns the keys of all that begin with prefix.
func under(all []string, prefix string) []string {
	var keys []string
	for _, k := range all {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	return keys
}

// testListKeysListsStoredKeys tests that ListKeys lists, sorted and each
// once, the key of every token stored through Set (an expiring one, a
// durable one with a zero ExpiresAt, one overwritten) and through Refresh
// (a fetch into an absent key, a fetch replacing a stale value), through
// another store value too; and not the key of a Refresh whose fetch
// failed, nor a key never written.
func testListKeysListsStoredKeys(t *testing.T, f *fixture) {
	a, b := f.store(), f.store()
	la := f.lister(a)
	lb := f.lister(b)
	p := f.key("")
	set, durable, overwritten := p+"set", p+"durable", p+"overwritten"
	fetched, replaced, failed := p+"fetched", p+"replaced", p+"failed"
	f.set(a, set, token("set"))
	f.set(a, durable, core.Token{Value: "refreshtoken@@@durable"})
	f.set(a, overwritten, token("first"))
	f.set(b, overwritten, token("second"))
	if _, err := b.Refresh(f.ctx, fetched, "", new(fetchCounter).returning(token("fetched"))); err != nil {
		t.Fatalf("Refresh(%q, stale=%q): %v", fetched, "", err)
	}
	f.set(a, replaced, token("stale"))
	if _, err := b.Refresh(f.ctx, replaced, "stale", new(fetchCounter).returning(token("fresh"))); err != nil {
		t.Fatalf("Refresh(%q, stale=%q): %v", replaced, "stale", err)
	}
	if _, err := a.Refresh(f.ctx, failed, "", func(context.Context) (core.Token, error) { return core.Token{}, errFetch }); !errors.Is(err, errFetch) {
		t.Fatalf("Refresh(%q) whose fetch failed: %v, want the fetch's error", failed, err)
	}
	want := []string{set, durable, overwritten, fetched, replaced}
	wantListed(t, p, f.listKeys(la, p), want, "the keys stored by Set and Refresh, through any store value")
	wantListed(t, p, f.listKeys(lb, p), want, "a second store value lists what the first wrote")

	// "" lists every key of the store: ours among them, sorted, once.
	all := f.listKeys(la, "")
	checkSortedOnce(t, "", all)
	wantListed(t, "", under(all, p), want, `"" lists every key`)
	for _, k := range all {
		if err := core.ValidateKey(k); err != nil {
			t.Errorf("ListKeys(%q) lists %q, which is not a key (%v): only keys given to Set and Refresh are listed", "", k, err)
		}
	}
}

// listPrefixKeys are key suffixes that make prefix matching easy to get
// wrong: a key that is a prefix of another's segment ("app/1", "app/10"),
// LIKE and glob metacharacters, and two runes that share their first byte.
var listPrefixKeys = []string{
	"app", "app/1", "app/1/x", "app/10", "app/2",
	"a%b", "a_b", "axb", "a*b", "a?b", "a[b]", "a\\b", "a b",
	"é", "ê",
}

// testListKeysFiltersByPrefix tests that ListKeys(prefix) lists exactly the
// keys that begin with prefix, byte for byte: "app/1" lists "app/1",
// "app/1/x" and "app/10" (a prefix is a string, not a path segment), while
// "app/1/" lists only "app/1/x"; "%", "_", "*", "?", "[" and "\" match
// themselves; a prefix that ends inside a UTF-8 rune matches the keys that
// continue it; a key is its own prefix; a prefix nothing begins with lists
// nothing, without an error.
func testListKeysFiltersByPrefix(t *testing.T, f *fixture) {
	s := f.store()
	l := f.lister(s)
	p := f.key("")
	var all []string
	for i, k := range listPrefixKeys {
		f.set(s, p+k, token(fmt.Sprintf("prefix-%02d", i)))
		all = append(all, p+k)
	}
	prefixes := []string{
		"", "app", "app/", "app/1", "app/1/", "app/10", "app/1/x", "app/1/x/", "app/3",
		"a%", "a_", "a*", "a?", "a[", "a\\", "a ", "x",
		"\xc3", "é", // the first byte of "é" and "ê", then the whole rune
	}
	for _, q := range prefixes {
		wantListed(t, p+q, f.listKeys(l, p+q), under(all, p+q), "the keys that begin with the prefix, byte for byte")
	}
}

// testListKeysHidesInternalNames tests that ListKeys lists only the keys of
// stored tokens, never a name the store keeps for itself: while another
// store value holds the refresh lock of a key that has no token yet, that
// key is not listed, nor anything else beside the stored keys; once the
// holder writes, its key is; and a Refresh that took and released a lock,
// or found a newer token, leaves nothing else listed.
func testListKeysHidesInternalNames(t *testing.T, f *fixture) {
	a, b := f.store(), f.store()
	l := f.lister(b)
	p := f.key("")
	stored, held := p+"stored", p+"held"
	f.set(a, stored, token("stored"))
	h := f.startHolder(a, held, "")
	defer h.finish(token("holder"))
	wantListed(t, p, f.listKeys(l, p), []string{stored}, "a key whose lock is held and which has no token is not listed")
	wantListed(t, "", under(f.listKeys(l, ""), p), []string{stored}, "a lock is not a key")

	if r := h.finish(token("holder")); r.err != nil {
		t.Fatalf("Refresh(%q, stale=%q) of the holder: %v", held, "", r.err)
	}
	if _, err := b.Refresh(f.ctx, stored, "stored", new(fetchCounter).returning(token("refreshed"))); err != nil {
		t.Fatalf("Refresh(%q, stale=%q): %v", stored, "stored", err)
	}
	if _, err := b.Refresh(f.ctx, held, "older", new(fetchCounter).returning(token("unused"))); err != nil {
		t.Fatalf("Refresh(%q, stale=%q): %v", held, "older", err)
	}
	wantListed(t, p, f.listKeys(l, p), []string{stored, held}, "after refreshes, only the keys of stored tokens")
}

// testListKeysHonoursCanceledContext tests that ListKeys with a context
// already cancelled fails with an error wrapping context.Canceled.
func testListKeysHonoursCanceledContext(t *testing.T, f *fixture) {
	s := f.store()
	l := f.lister(s)
	f.set(s, f.key("k"), token("k"))
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	if keys, err := l.ListKeys(ctx, f.key("")); !errors.Is(err, context.Canceled) {
		t.Errorf("ListKeys(%q) with a cancelled ctx = %q, %v; want an error wrapping context.Canceled", f.key(""), keys, err)
	}
}

// listWriteKeys is how many keys testListKeysDuringWrites stores before it
// lists: more than one page of the stores' batched walks (1,000 keys).
const listWriteKeys = 1200

// listWriters is how many store values write while it lists, and
// listNewKeys how many new keys each stores at most (a store in memory
// would otherwise grow by millions during the listings).
const (
	listWriters = 4
	listNewKeys = 500
)

// testListKeysDuringWrites tests ListKeys while other store values write:
// listWriteKeys keys are stored, then, while listWriters store values
// overwrite them and store new keys (up to listNewKeys each) without pause, each of several
// listings is sorted, lists each key once, lists every key stored before
// it began (a key overwritten during the walk is still a key), and lists
// nothing that was never written; once the writers stop, a listing is
// exactly the keys written.
func testListKeysDuringWrites(t *testing.T, f *fixture) {
	s := f.store()
	l := f.lister(s)
	p := f.key("")
	old := make([]string, listWriteKeys)
	for i := range old {
		old[i] = fmt.Sprintf("%sold/%04d", p, i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, listWriters)
	for w := range listWriters {
		ws := f.store()
		wg.Go(func() {
			for i := w; i < len(old); i += listWriters {
				if err := ws.Set(f.ctx, old[i], token("old")); err != nil {
					errs <- fmt.Errorf("Set(%q): %v", old[i], err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// The writers: each overwrites the old keys in turn, with a new key of
	// its own between two overwrites for its first listNewKeys rounds,
	// until stop is closed.
	stop := make(chan struct{})
	var (
		mu      sync.Mutex
		written = map[string]bool{} // new keys whose Set has begun
		writes  atomic.Int64
		werr    = make(chan error, listWriters)
	)
	var started sync.WaitGroup
	started.Add(listWriters)
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters() // also when a listing stops the check
	for w := range listWriters {
		ws := f.store()
		wg.Go(func() {
			begun := sync.OnceFunc(started.Done)
			defer begun()
			for i := 0; ; i++ {
				if i == 1 {
					begun() // one round written
				}
				select {
				case <-stop:
					return
				default:
				}
				if i < listNewKeys {
					k := fmt.Sprintf("%snew/%d/%06d", p, w, i)
					mu.Lock()
					written[k] = true
					mu.Unlock()
					if err := ws.Set(f.ctx, k, token("new")); err != nil {
						werr <- fmt.Errorf("Set(%q) during the listings: %v", k, err)
						return
					}
					writes.Add(1)
				}
				o := old[(i*listWriters+w)%len(old)]
				if err := ws.Set(f.ctx, o, token(fmt.Sprintf("over-%d-%d", w, i))); err != nil {
					werr <- fmt.Errorf("Set(%q) during the listings: %v", o, err)
					return
				}
				writes.Add(1)
			}
		})
	}
	started.Wait()
	const listings = 5
	for n := 1; n <= listings && !t.Failed(); n++ {
		before := writes.Load()
		got := f.listKeys(l, p)
		during := writes.Load() - before
		checkSortedOnce(t, p, got)
		if missing := difference(old, slices.Compact(slices.Sorted(slices.Values(got)))); len(missing) > 0 {
			t.Errorf("ListKeys(%q) during writes (listing %d, %d writes during it) does not list %d keys stored before it began, e.g. %q: a key stored for the whole walk must be listed",
				p, n, during, len(missing), missing[0])
		}
		mu.Lock()
		for _, k := range got {
			if _, isOld := slices.BinarySearch(old, k); !isOld && !written[k] {
				t.Errorf("ListKeys(%q) during writes lists %q, which was never written", p, k)
			}
		}
		mu.Unlock()
		t.Logf("listing %d: %d keys, %d writes during it", n, len(got), during)
	}
	stopWriters()
	close(werr)
	for err := range werr {
		t.Error(err)
	}
	want := slices.Clone(old)
	for k := range written {
		want = append(want, k)
	}
	wantListed(t, p, f.listKeys(l, p), want, "once the writes are done, every key written")
}

// listBenchKeys is how many keys the ListKeys benchmark lists.
const listBenchKeys = 10000

// benchmarkListKeys stores listBenchKeys keys under prefix through s, in
// parallel, then measures ListKeys(prefix), reporting keys/s besides ns/op.
func benchmarkListKeys(b *testing.B, s core.TokenStore, prefix string) {
	l, ok := s.(core.KeyLister)
	if !ok {
		b.Skipf("the store (%T) does not implement core.KeyLister", s)
	}
	ctx := context.Background()
	tok := core.Token{Value: pattern("list-", 512), ExpiresAt: time.Now().Add(2 * time.Hour)}
	const writers = 16
	var (
		wg   sync.WaitGroup
		werr atomic.Value
	)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < listBenchKeys; i += writers {
				k := fmt.Sprintf("%s%05d", prefix, i)
				if err := s.Set(ctx, k, tok); err != nil {
					werr.CompareAndSwap(nil, fmt.Errorf("Set(%q): %v", k, err))
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := werr.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		keys, err := l.ListKeys(ctx, prefix)
		if err != nil {
			b.Fatalf("ListKeys(%q): %v", prefix, err)
		}
		if len(keys) != listBenchKeys {
			b.Fatalf("ListKeys(%q) listed %d keys, want %d", prefix, len(keys), listBenchKeys)
		}
	}
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(float64(listBenchKeys)*float64(b.N)/sec, "keys/s")
	}
}

// testListKeysOddPrefixes tests that ListKeys lists keys of any bytes a key
// may hold (the hostile keys, and keys of exactly MaxKeyLen bytes, ASCII
// and ending in 3-byte runes), and that a prefix no key can begin with —
// one holding NUL, one that is not valid UTF-8 before its end, one longer
// than MaxKeyLen — lists nothing, without an error: a prefix is a string
// compared byte for byte, not something the store must be able to hold.
func testListKeysOddPrefixes(t *testing.T, f *fixture) {
	s := f.store()
	l := f.lister(s)
	p := f.key("")
	var all []string
	for i, k := range hostileKeys {
		f.set(s, p+k, token(fmt.Sprintf("odd-%02d", i)))
		all = append(all, p+k)
	}
	long := p + strings.Repeat("k", core.MaxKeyLen-len(p))
	wide := p + strings.Repeat("令", (core.MaxKeyLen-len(p))/3)
	wide += strings.Repeat("w", core.MaxKeyLen-len(wide))
	for i, k := range []string{long, wide} {
		f.set(s, k, token(fmt.Sprintf("long-%d", i)))
		all = append(all, k)
	}
	wantListed(t, p, f.listKeys(l, p), all, "every key a store accepts is listed, whatever its bytes and length")
	wantListed(t, long, f.listKeys(l, long), []string{long}, "a key of MaxKeyLen bytes is its own prefix")
	wantListed(t, wide, f.listKeys(l, wide), []string{wide}, "a key of MaxKeyLen bytes is its own prefix")
	wantListed(t, wide[:len(p)+1], f.listKeys(l, wide[:len(p)+1]), under(all, wide[:len(p)+1]), "a prefix may end inside a rune")
	for _, q := range []string{
		"\x00", p + "\x00", p + "\x00x",
		"\xff", p + "\xff", p + "\xffapp", p + "\xc3x",
		long + "k",
	} {
		wantListed(t, q, f.listKeys(l, q), nil, "a prefix no key can begin with (NUL, invalid UTF-8, longer than any key) lists nothing, without an error")
	}
}
