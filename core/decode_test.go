package core_test

// Tests of CredentialConfig.Decode: a stored form (an Open Platform
// authorizer's record, its access token and its durable refresh token in
// one fenced value) distinct from the token served.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

const recordKey = "wechatconf/open/wxcomponent/authorizer/wxmerchant/record"

// withdrawn is the stored form of a withdrawal: it decodes to ErrRevoked.
const withdrawn = "WITHDRAWN"

// ledger is a fake Open Platform: it issues authorizer records
// "AT<n>|RT<n>|<unix expiry>" (a stored form with a zero ExpiresAt), rotating
// the refresh token at each fetch and honouring only the latest one, and
// records the FetchRequest.Stored of every fetch.
type ledger struct {
	mu      sync.Mutex
	now     time.Time
	n       int
	honours string       // the refresh token WeChat accepts now
	stored  []core.Token // FetchRequest.Stored of each fetch
}

func newLedger() *ledger {
	return &ledger{now: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC), honours: "RT0"}
}

func (l *ledger) clock() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.now
}

func (l *ledger) advance(d time.Duration) {
	l.mu.Lock()
	l.now = l.now.Add(d)
	l.mu.Unlock()
}

func (l *ledger) fetches() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.stored)
}

func (l *ledger) storedOf(i int) core.Token {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stored[i]
}

// fetch refreshes with the refresh token in r.Stored ("RT0", the one of the
// authorization, when nothing usable is stored).
func (l *ledger) fetch(_ context.Context, r core.FetchRequest) (core.Token, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stored = append(l.stored, r.Stored)
	rt := "RT0"
	if parts := strings.Split(r.Stored.Value, "|"); len(parts) == 3 {
		rt = parts[1]
	}
	if rt != l.honours {
		return core.Token{}, fmt.Errorf("refresh token %q is not the latest (61023)", rt)
	}
	l.n++
	l.honours = "RT" + strconv.Itoa(l.n)
	return core.Token{Value: fmt.Sprintf("AT%d|%s|%d", l.n, l.honours, l.now.Add(2*time.Hour).Unix())}, nil
}

// decodeRecord is the Decode of a ledger record.
func decodeRecord(stored core.Token) (core.Token, error) {
	if stored.Value == withdrawn {
		return core.Token{}, fmt.Errorf("authorizer withdrew: %w", core.ErrRevoked)
	}
	if stored.Value == "PLACEHOLDER" {
		return core.Token{}, nil
	}
	parts := strings.Split(stored.Value, "|")
	if len(parts) != 3 {
		return core.Token{}, fmt.Errorf("%w: not an authorizer record", core.ErrCorrupt)
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return core.Token{}, fmt.Errorf("%w: bad expiry", core.ErrCorrupt)
	}
	return core.Token{Value: parts[0], ExpiresAt: time.Unix(exp, 0)}, nil
}

// recordCredential is a Credential of l's records on store, logging to log
// when it is not nil.
func recordCredential(t *testing.T, l *ledger, store core.TokenStore, log *slog.Logger) *core.Credential {
	t.Helper()
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "authorizer_access_token", Key: recordKey, Store: store,
		Fetch: l.fetch, Decode: decodeRecord, Now: l.clock, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cr
}

// Two processes on one store: each expiry is one fetch, made from the
// stored form the store held (its refresh token), which the store keeps
// whole and durable (zero ExpiresAt); both serve the decoded token.
func TestDecodeTwoProcessesOneFetchPerExpiry(t *testing.T) {
	l := newLedger()
	store := core.NewMemoryStore()
	a, b := recordCredential(t, l, store, nil), recordCredential(t, l, store, nil)
	ctx := t.Context()

	var prev core.Token // the stored form before each cycle
	for cycle := 1; cycle <= 3; cycle++ {
		var wg sync.WaitGroup
		got := make([]core.Token, 20)
		errs := make([]error, 20)
		for i := range got {
			cr := a
			if i%2 == 1 {
				cr = b
			}
			wg.Go(func() { got[i], errs[i] = cr.Get(ctx) })
		}
		wg.Wait()
		want := "AT" + strconv.Itoa(cycle)
		for i := range got {
			if errs[i] != nil || got[i].Value != want {
				t.Fatalf("cycle %d: Get #%d = %q, %v; want %s (the token served, not the stored form)", cycle, i, got[i].Value, errs[i], want)
			}
			if !got[i].ExpiresAt.Equal(l.clock().Add(2 * time.Hour).Truncate(time.Second)) {
				t.Errorf("cycle %d: Get #%d expires at %v, want the decoded expiry %v", cycle, i, got[i].ExpiresAt, l.clock().Add(2*time.Hour))
			}
		}
		if n := l.fetches(); n != cycle {
			t.Fatalf("cycle %d: %d fetches in all across two processes, want %d (one per expiry)", cycle, n, cycle)
		}
		if s := l.storedOf(cycle - 1); s.Value != prev.Value || !s.ExpiresAt.Equal(prev.ExpiresAt) {
			t.Errorf("cycle %d: Fetch got Stored %q, want what the store held, %q", cycle, s.Value, prev.Value)
		}
		raw, err := store.Get(ctx, recordKey)
		if err != nil || !strings.HasPrefix(raw.Value, want+"|RT"+strconv.Itoa(cycle)+"|") || !raw.ExpiresAt.IsZero() {
			t.Fatalf("cycle %d: store holds %q (expires %v), %v; want the whole record with a zero ExpiresAt", cycle, raw.Value, raw.ExpiresAt, err)
		}
		if exp, ok := b.Expiry(); !ok || exp.IsZero() {
			t.Errorf("cycle %d: b.Expiry() = %v, %v; want the decoded expiry", cycle, exp, ok)
		}
		prev = raw
		l.advance(2*time.Hour - 30*time.Second) // inside the expiry margin
	}
}

// A rejection is a compare-and-refresh by the served value: the first
// process's Refresh(rejected) fetches from the stored form, the second's
// Refresh of the same served value adopts the result without a fetch, and
// a Refresh of a value that is no longer served fetches nothing.
func TestDecodeRejectionComparesTheServedValue(t *testing.T) {
	l := newLedger()
	store := core.NewMemoryStore()
	a, b := recordCredential(t, l, store, nil), recordCredential(t, l, store, nil)
	ctx := t.Context()
	first, err := a.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx); err != nil {
		t.Fatal(err)
	}
	held, _ := store.Get(ctx, recordKey)

	next, err := a.Refresh(ctx, first.Value)
	if err != nil || next.Value != "AT2" {
		t.Fatalf("a.Refresh(%s) = %q, %v; want AT2", first.Value, next.Value, err)
	}
	if s := l.storedOf(1); s.Value != held.Value {
		t.Errorf("the rejection's Fetch got Stored %q, want the stored form %q", s.Value, held.Value)
	}
	if got, err := b.Refresh(ctx, first.Value); err != nil || got.Value != "AT2" {
		t.Errorf("b.Refresh(%s) = %q, %v; want AT2 adopted", first.Value, got.Value, err)
	}
	if got, err := b.Refresh(ctx, "AT0"); err != nil || got.Value != "AT2" {
		t.Errorf("b.Refresh(a value never served) = %q, %v; want AT2", got.Value, err)
	}
	if n := l.fetches(); n != 2 {
		t.Errorf("%d fetches, want 2 (one per rejected value across the fleet)", n)
	}
}

// getFails is a TokenStore whose Get fails while fail > 0 (each call
// counts one down): a passing fault.
type getFails struct {
	core.TokenStore
	fail atomic.Int32
}

var errPassing = errors.New("getfails: connection reset")

func (s *getFails) Get(ctx context.Context, key string) (core.Token, error) {
	if s.fail.Add(-1) >= 0 {
		return core.Token{}, errPassing
	}
	return s.TokenStore.Get(ctx, key)
}

// With no stored value seen (Get failed), the first Store.Refresh compares
// the served value the caller rejected; the store answers with its stored
// form, whose served token is that very value, and the next call compares
// the stored form and fetches: one fetch, from the stored form.
func TestDecodeConvergesFromAServedStale(t *testing.T) {
	l := newLedger()
	store := &getFails{TokenStore: core.NewMemoryStore()}
	a := recordCredential(t, l, store, nil)
	ctx := t.Context()
	first, err := a.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held, _ := store.Get(ctx, recordKey)
	store.fail.Store(1)
	next, err := a.Refresh(ctx, first.Value)
	if err != nil || next.Value != "AT2" {
		t.Fatalf("Refresh(%s) with Get failing = %q, %v; want AT2", first.Value, next.Value, err)
	}
	if n := l.fetches(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	if s := l.storedOf(1); s.Value != held.Value {
		t.Errorf("Fetch got Stored %q, want the stored form %q", s.Value, held.Value)
	}
}

// A stored form that Decode finds corrupt counts as absent: it is replaced
// by a fetch, which gets it in Stored; one with nothing to serve (a
// placeholder) is refreshed too.
func TestDecodeCorruptOrEmptyStoredFormIsRefreshed(t *testing.T) {
	for _, bad := range []string{"garbage", "PLACEHOLDER"} {
		t.Run(bad, func(t *testing.T) {
			l := newLedger()
			store := core.NewMemoryStore()
			var logs jsonLog
			a := recordCredential(t, l, store, logs.logger(slog.LevelInfo))
			ctx := t.Context()
			if err := store.Set(ctx, recordKey, core.Token{Value: bad}); err != nil {
				t.Fatal(err)
			}
			tok, err := a.Get(ctx)
			if err != nil || tok.Value != "AT1" {
				t.Fatalf("Get over a stored %q = %q, %v; want AT1", bad, tok.Value, err)
			}
			if n := l.fetches(); n != 1 {
				t.Fatalf("%d fetches, want 1", n)
			}
			if s := l.storedOf(0); s.Value != bad {
				t.Errorf("Fetch got Stored %q, want the value it replaces, %q", s.Value, bad)
			}
			if raw, _ := store.Get(ctx, recordKey); !strings.HasPrefix(raw.Value, "AT1|") {
				t.Errorf("store holds %q after the refresh, want the new record", raw.Value)
			}
			decodeErrs := 0
			for _, r := range logs.records(t, core.EventStoreError) {
				if r["op"] == "decode" {
					decodeErrs++
				}
			}
			if want := map[string]int{"garbage": 1, "PLACEHOLDER": 0}[bad]; decodeErrs < want || (want == 0 && decodeErrs != 0) {
				t.Errorf("%d %s records with op decode, want %d", decodeErrs, core.EventStoreError, want)
			}
		})
	}
}

// A stored form that decodes to ErrRevoked (the merchant withdrew) fails
// the refresh with it, without a fetch, and drops the held copy: no caller
// is served the withdrawn authorizer's token.
func TestDecodeRevokedFailsWithoutFetch(t *testing.T) {
	l := newLedger()
	store := core.NewMemoryStore()
	a := recordCredential(t, l, store, nil)
	ctx := t.Context()
	held, err := a.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Set(ctx, recordKey, core.Token{Value: withdrawn}); err != nil {
		t.Fatal(err)
	}
	// WeChat rejects the held token: the compare-and-refresh finds the
	// withdrawal.
	if _, err := a.Refresh(ctx, held.Value); !errors.Is(err, core.ErrRevoked) {
		t.Fatalf("Refresh after a withdrawal = %v, want ErrRevoked", err)
	}
	if _, ok := a.Expiry(); ok {
		t.Error("the withdrawn authorizer's token is still held")
	}
	if tok, err := a.Get(ctx); !errors.Is(err, core.ErrRevoked) || tok.Value != "" {
		t.Errorf("Get after a withdrawal = %q, %v; want ErrRevoked and no token", tok.Value, err)
	}
	if n := l.fetches(); n != 1 {
		t.Errorf("%d fetches, want 1 (none after the withdrawal)", n)
	}
	// A second process that never held it gets the same, without a fetch.
	b := recordCredential(t, l, store, nil)
	if _, err := b.Get(ctx); !errors.Is(err, core.ErrRevoked) {
		t.Errorf("another process's Get after a withdrawal = %v, want ErrRevoked", err)
	}
	if n := l.fetches(); n != 1 {
		t.Errorf("%d fetches, want 1 (none after the withdrawal)", n)
	}
}

// A stored form the fetch returns that Decode refuses is never written.
func TestDecodeRefusesAFetchedFormItCannotDecode(t *testing.T) {
	store := core.NewMemoryStore()
	cr, err := core.NewCredential(core.CredentialConfig{Name: "x", Key: recordKey, Store: store, Decode: decodeRecord,
		Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			return core.Token{Value: "not-a-record"}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cr.Get(t.Context()); !errors.Is(err, core.ErrCorrupt) {
		t.Errorf("Get with a Fetch whose form Decode refuses = %v, want the Decode error", err)
	}
	if _, err := store.Get(t.Context(), recordKey); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("store.Get = %v, want ErrNotFound: nothing written", err)
	}
}

// NewCredential refuses a Decode with an Initial value or with
// FetchWithoutStore.
func TestNewCredentialRefusesDecodeWith(t *testing.T) {
	fetch := func(context.Context, core.FetchRequest) (core.Token, error) { return core.Token{}, nil }
	for name, cfg := range map[string]core.CredentialConfig{
		"Initial":           {Initial: core.Token{Value: "AT0", ExpiresAt: time.Now().Add(time.Hour)}},
		"FetchWithoutStore": {Policy: core.Policy{FetchWithoutStore: true}},
	} {
		cfg.Name, cfg.Key, cfg.Fetch, cfg.Decode = "x", "k", fetch, decodeRecord
		if _, err := core.NewCredential(cfg); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("NewCredential with Decode and %s = %v, want an error naming %s", name, err, name)
		}
	}
}
