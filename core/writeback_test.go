package core_test

// Tests of the write-back (issue 23, items 5 and 7): a token a fetch
// returned — WeChat issued it, and with the classic token it has already
// invalidated the fleet's previous one — is never wasted when its fenced
// write does not land. It is served to the callers waiting for that
// refresh and written back by a compare-and-refresh from the value the
// fetch replaced, unless the store holds a newer value by then.
//
// Each test drives one fault with faultStore, a MemoryStore wrapper whose
// next Refresh calls fail in a chosen way, and checks the invariants: at
// most one fetch per refresh cycle (beyond the fault's own), no older value
// replaces a newer one in the store, no caller error while a valid token
// exists, and the events.

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

const wbKey = "wechatconf/wxwriteback/access_token"

// classicIssuer issues tokens as /cgi-bin/token does: each fetch mints a new
// one and invalidates every earlier one.
type classicIssuer struct{ n atomic.Int32 }

const tokenPrefix = "issued-token-"

func (c *classicIssuer) fetch(context.Context, core.FetchRequest) (core.Token, error) {
	n := c.n.Add(1)
	return core.Token{Value: fmt.Sprintf("%s%04d", tokenPrefix, n), ExpiresAt: time.Now().Add(2 * time.Hour)}, nil
}

func (c *classicIssuer) fetches() int { return int(c.n.Load()) }

// valid reports whether tok is the latest token issued (the only valid one).
func (c *classicIssuer) valid(tok string) bool {
	return tok != "" && tok == fmt.Sprintf("%s%04d", tokenPrefix, c.n.Load())
}

// A fault is what faultStore does with one Refresh call.
type fault int

const (
	passes           fault = iota
	lockLost               // the fetch runs under the lock, nothing is written, the call returns ErrLockLost
	writeFails             // the fetch runs, nothing is written, the call returns a store error
	landedFails            // the fetch runs and its token is written, then the call returns a store error
	refused                // the call fails at once, without effect (the store is down)
	hangsBeforeWrite       // the fetch runs, then the call waits for release (a paused server) and writes
)

var (
	errBroken  = errors.New("faultstore: connection reset")
	errNoWrite = errors.New("faultstore: write dropped")
)

// faultStore is a MemoryStore whose next Refresh calls do what faults
// says, in order (then they pass), and every call while down is refused.
// It records the values written, in order.
type faultStore struct {
	inner *core.MemoryStore
	down  atomic.Bool

	mu      sync.Mutex
	faults  []fault
	after   func()   // run when a lockLost or writeFails call has left the lock, before it returns
	history []string // values written, in order

	arrived chan struct{} // hangsBeforeWrite: receives when the call waits
	release chan struct{} // hangsBeforeWrite: closed (resume) to let it write
	once    sync.Once
	resumed chan struct{} // hangsBeforeWrite: receives when the call has returned
}

// resume lets a hangsBeforeWrite call write.
func (s *faultStore) resume() { s.once.Do(func() { close(s.release) }) }

func newFaultStore(t *testing.T, faults ...fault) *faultStore {
	s := &faultStore{inner: core.NewMemoryStore(), faults: faults, arrived: make(chan struct{}, 1), release: make(chan struct{}), resumed: make(chan struct{}, 1)}
	t.Cleanup(s.resume)
	return s
}

func (s *faultStore) Get(ctx context.Context, key string) (core.Token, error) {
	return s.inner.Get(ctx, key)
}

func (s *faultStore) Set(ctx context.Context, key string, t core.Token) error {
	return s.inner.Set(ctx, key, t)
}

func (s *faultStore) next() fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.faults) == 0 {
		return passes
	}
	f := s.faults[0]
	s.faults = s.faults[1:]
	return f
}

func (s *faultStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	f := s.next()
	if f == refused || s.down.Load() {
		return core.Token{}, fmt.Errorf("faultstore: refresh %q: %w", key, errBroken)
	}
	fetched := ""
	if f == hangsBeforeWrite {
		// A paused server under a client without timeouts: the call
		// goes on, whatever ctx says, until the server resumes.
		ctx = context.WithoutCancel(ctx)
	}
	tok, err := s.inner.Refresh(ctx, key, stale, func(ctx context.Context) (core.Token, error) {
		t, err := fetch(ctx)
		if err != nil {
			return t, err
		}
		fetched = t.Value
		switch f {
		case lockLost, writeFails:
			return core.Token{}, errNoWrite
		case hangsBeforeWrite:
			s.arrived <- struct{}{}
			<-s.release // whatever ctx says
		}
		return t, nil
	})
	if fetched == "" {
		return tok, err // the fetch did not run, or failed
	}
	switch f {
	case lockLost, writeFails:
		s.mu.Lock()
		after := s.after
		s.mu.Unlock()
		if after != nil {
			after()
		}
		if f == lockLost {
			return core.Token{}, fmt.Errorf("faultstore: refresh %q: fetch outlived the lease, write refused: %w", key, core.ErrLockLost)
		}
		return core.Token{}, fmt.Errorf("faultstore: refresh %q: %w", key, errBroken)
	}
	if err == nil {
		s.mu.Lock()
		s.history = append(s.history, tok.Value)
		s.mu.Unlock()
	}
	if f == hangsBeforeWrite {
		defer func() { s.resumed <- struct{}{} }()
	}
	if f == landedFails && err == nil {
		return core.Token{}, fmt.Errorf("faultstore: refresh %q: %w", key, errBroken)
	}
	return tok, err
}

// peer is another process on the same store: its calls pass (no fault,
// never down), and its writes join the history.
func (s *faultStore) peer() core.TokenStore { return peerStore{s} }

type peerStore struct{ s *faultStore }

func (p peerStore) Get(ctx context.Context, key string) (core.Token, error) {
	return p.s.inner.Get(ctx, key)
}

func (p peerStore) Set(ctx context.Context, key string, t core.Token) error {
	return p.s.inner.Set(ctx, key, t)
}

func (p peerStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	fetched := false
	tok, err := p.s.inner.Refresh(ctx, key, stale, func(ctx context.Context) (core.Token, error) {
		t, err := fetch(ctx)
		fetched = err == nil
		return t, err
	})
	if fetched && err == nil {
		p.s.mu.Lock()
		p.s.history = append(p.s.history, tok.Value)
		p.s.mu.Unlock()
	}
	return tok, err
}

// written returns the values written, in order.
func (s *faultStore) written() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.history...)
}

// checkNeverOlder reports a write of a token older (issued earlier) than
// one written before it, or the same token written twice.
func checkNeverOlder(t *testing.T, history []string) {
	t.Helper()
	last := 0
	for i, v := range history {
		n, err := strconv.Atoi(strings.TrimPrefix(v, tokenPrefix))
		if err != nil || n <= last {
			t.Errorf("write #%d of the store's history %q: token %d after token %d, want each write newer than the last", i, history, n, last)
		}
		last = n
	}
}

// storeHolds reports what the store holds under wbKey ("" for nothing).
func storeHolds(t *testing.T, s *faultStore) string {
	t.Helper()
	tok, err := s.inner.Get(context.Background(), wbKey)
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("store.Get: %v", err)
	}
	return tok.Value
}

// eventLog is an slog.Handler that keeps every record's message and
// attributes and lets a test wait for an event.
type eventLog struct {
	mu      sync.Mutex
	recs    []map[string]string
	changed chan struct{}
}

func newEventLog() *eventLog { return &eventLog{changed: make(chan struct{}, 1)} }

func (l *eventLog) logger() *slog.Logger { return slog.New(l) }

func (l *eventLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *eventLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *eventLog) WithGroup(string) slog.Handler            { return l }

func (l *eventLog) Handle(_ context.Context, r slog.Record) error {
	rec := map[string]string{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool { rec[a.Key] = a.Value.String(); return true })
	l.mu.Lock()
	l.recs = append(l.recs, rec)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return nil
}

// count returns how many records of event there are, with attribute op
// equal to op unless op is "".
func (l *eventLog) count(event, op string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r["msg"] == event && (op == "" || r["op"] == op) {
			n++
		}
	}
	return n
}

// waitFor waits until there are at least n records of event.
func (l *eventLog) waitFor(t *testing.T, event string, n int) {
	t.Helper()
	timeout := time.NewTimer(watchdog)
	defer timeout.Stop()
	for l.count(event, "") < n {
		select {
		case <-l.changed:
		case <-timeout.C:
			t.Fatalf("waited %v for %d %s records, have %d", watchdog, n, event, l.count(event, ""))
		}
	}
}

// checkNoToken reports a record with a token in an attribute.
func (l *eventLog) checkNoToken(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		for k, v := range r {
			if strings.Contains(v, tokenPrefix) {
				t.Errorf("%s record: attribute %q holds a token", r["msg"], k)
			}
		}
	}
}

// wbCredential is a Credential of iss's tokens on store.
func wbCredential(t *testing.T, iss *classicIssuer, store core.TokenStore, log *eventLog, p core.Policy) *core.Credential {
	t.Helper()
	cfg := core.CredentialConfig{Name: "access_token", Key: wbKey, Store: store, Fetch: iss.fetch, Policy: p}
	if log != nil {
		cfg.Logger = log.logger()
	}
	cr, err := core.NewCredential(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cr
}

// getValid calls cr.Get and fails the test unless it returns the valid
// token, which it returns.
func getValid(t *testing.T, what string, cr *core.Credential, iss *classicIssuer) core.Token {
	t.Helper()
	tok, err := cr.Get(t.Context())
	if err != nil || !iss.valid(tok.Value) {
		t.Fatalf("%s: Get = (valid %v), %v; want the valid token", what, iss.valid(tok.Value), err)
	}
	return tok
}

// idle waits for cr's background write-back to end and checks that
// nothing is left to write back.
func idle(t *testing.T, cr *core.Credential) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), watchdog)
	defer cancel()
	if err := core.WriteBackIdle(ctx, cr); err != nil {
		t.Fatalf("the background write-back did not end: %v", err)
	}
	if _, ok := core.PendingWrite(cr); ok {
		t.Error("a token is still held for the write-back, want none")
	}
}

// Item 5: A's fetch outlives its lease; the store refuses its write
// (ErrLockLost). A's caller gets a valid token — A's own, written back by a
// compare-and-refresh from the value it replaced, when nobody wrote since;
// the newer one another holder wrote otherwise — never the lock-lost
// error. Before, A re-read the store through a Refresh whose fetch returned
// the lock-lost error: with the lock free and nothing newer written, the
// caller got that error.
func TestLockLostFetchIsServedAndWrittenBack(t *testing.T) {
	t.Run("NobodyWrote", func(t *testing.T) {
		iss, log := &classicIssuer{}, newEventLog()
		store := newFaultStore(t, lockLost)
		a := wbCredential(t, iss, store, log, core.Policy{})
		tok := getValid(t, "A after losing its lease", a, iss)
		if got := storeHolds(t, store); got != tok.Value {
			t.Errorf("store holds (A's token: %v), want A's token written back", got == tok.Value)
		}
		if n := iss.fetches(); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
		checkNeverOlder(t, store.written())
		idle(t, a)
		if n := log.count(core.EventLockLost, ""); n != 1 {
			t.Errorf("%d %s records, want 1", n, core.EventLockLost)
		}
		if n := log.count(core.EventWrittenBack, ""); n != 1 {
			t.Errorf("%d %s records, want 1", n, core.EventWrittenBack)
		}
		log.checkNoToken(t)
	})
	t.Run("AnotherHolderWroteANewerOne", func(t *testing.T) {
		iss, log := &classicIssuer{}, newEventLog()
		store := newFaultStore(t, lockLost)
		a := wbCredential(t, iss, store, log, core.Policy{})
		b := wbCredential(t, iss, store.peer(), nil, core.Policy{})
		var bTok core.Token
		store.after = func() { bTok = getValid(t, "B, the lock's next holder", b, iss) }
		tok := getValid(t, "A after losing its lease to B", a, iss)
		if tok.Value != bTok.Value {
			t.Error("A's caller did not get the token B wrote")
		}
		if got := storeHolds(t, store); got != bTok.Value {
			t.Error("the store does not hold B's token: A's older one replaced it")
		}
		if n := iss.fetches(); n != 2 {
			t.Errorf("%d fetches, want 2 (A's, whose lease ran out, and B's)", n)
		}
		checkNeverOlder(t, store.written())
		idle(t, a)
		if n := log.count(core.EventWrittenBack, ""); n != 0 {
			t.Errorf("%d %s records, want 0 (B's token won)", n, core.EventWrittenBack)
		}
	})
	t.Run("RealLease", func(t *testing.T) {
		// The MemoryStore's own lease: the token reply comes after the
		// lease has run out (the fetch ignores its ctx's end, like a reply
		// already on its way), and nobody takes the lock in between.
		iss := &classicIssuer{}
		store := core.NewMemoryStore(core.WithLease(20 * time.Millisecond))
		a, err := core.NewCredential(core.CredentialConfig{Name: "access_token", Key: wbKey, Store: store,
			Fetch: func(ctx context.Context, r core.FetchRequest) (core.Token, error) {
				<-ctx.Done()
				return iss.fetch(ctx, r)
			}})
		if err != nil {
			t.Fatal(err)
		}
		tok := getValid(t, "A after its lease ran out", a, iss)
		if got, err := store.Get(t.Context(), wbKey); err != nil || got.Value != tok.Value {
			t.Errorf("store holds (A's token: %v), %v; want A's token written back", got.Value == tok.Value, err)
		}
		if n := iss.fetches(); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
		idle(t, a)
	})
}

// Item 7: the store pauses once the fetch has run, before the write.
// RefreshTimeout ends the refresh while the write is in flight: the caller
// gets the token fetched for it (WeChat issued it; with the classic token
// the fleet's previous one is already dead), a store error is logged, and
// the token is held for the write-back. When the store resumes, the write
// lands, the write-back sees it there, drops it and logs EventWrittenBack;
// nothing is fetched or written again. Before, the caller got "the store
// did not answer within RefreshTimeout", no event was logged, and the
// token was served to nobody.
func TestRefreshTimeoutServesTheFetchedToken(t *testing.T) {
	iss, log := &classicIssuer{}, newEventLog()
	store := newFaultStore(t, hangsBeforeWrite)
	a := wbCredential(t, iss, store, log, core.Policy{RefreshTimeout: time.Second})
	core.SetWriteBackBackoff(a, time.Millisecond, 10*time.Millisecond)
	tok := getValid(t, "A with the store paused before the write", a, iss)
	if n := log.count(core.EventStoreError, "refresh"); n != 1 {
		t.Errorf("%d %s records with op refresh when RefreshTimeout ended the write, want 1", n, core.EventStoreError)
	}
	select {
	case <-store.arrived:
	default:
		t.Fatal("the store's write did not wait")
	}
	if held, ok := core.PendingWrite(a); !ok || held.Value != tok.Value {
		t.Errorf("held for the write-back: (the token served: %v), %v; want the token served", held.Value == tok.Value, ok)
	}
	if got := storeHolds(t, store); got != "" {
		t.Errorf("the store holds a value while its write is paused")
	}
	store.resume() // the paused write lands
	<-store.resumed
	log.waitFor(t, core.EventWrittenBack, 1)
	idle(t, a)
	if got := storeHolds(t, store); got != tok.Value {
		t.Errorf("store holds (the token served: %v), want the token served", got == tok.Value)
	}
	if again := getValid(t, "A after the write-back", a, iss); again.Value != tok.Value {
		t.Error("A serves another token after the write-back")
	}
	if n := iss.fetches(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	if h := store.written(); len(h) != 1 {
		t.Errorf("%d writes, want 1 (the paused one)", len(h))
	}
	if n := log.count(core.EventWrittenBack, ""); n != 1 {
		t.Errorf("%d %s records, want 1", n, core.EventWrittenBack)
	}
	log.checkNoToken(t)
}

// Item 7's fault as a store error after the fetch ran: the write failed
// (and so does the first write-back), or the write landed but the store
// reported a failure. The token is served, held, and written back — at
// the next load, or by the background write-back — or, when it had
// landed, found in the store and dropped without a second fetch or write.
func TestStoreErrorAfterFetchServesAndWritesBack(t *testing.T) {
	t.Run("WriteFailedWrittenBackAtTheNextLoad", func(t *testing.T) {
		iss, log := &classicIssuer{}, newEventLog()
		store := newFaultStore(t, writeFails, refused)
		a := wbCredential(t, iss, store, log, core.Policy{})
		core.SetWriteBackBackoff(a, time.Hour, time.Hour) // only the load writes back
		tok := getValid(t, "A with its write failing", a, iss)
		if held, ok := core.PendingWrite(a); !ok || held.Value != tok.Value {
			t.Fatalf("held for the write-back: (the token served: %v), %v; want the token served", held.Value == tok.Value, ok)
		}
		if got := storeHolds(t, store); got != "" {
			t.Fatal("the store holds a value its failed write did not write")
		}
		if n := log.count(core.EventStoreError, "write_back"); n != 1 {
			t.Errorf("%d %s records with op write_back, want 1", n, core.EventStoreError)
		}
		a.Invalidate() // the next load
		if again := getValid(t, "A's next load", a, iss); again.Value != tok.Value {
			t.Error("the next load served another token")
		}
		if got := storeHolds(t, store); got != tok.Value {
			t.Error("the next load did not write the token back")
		}
		idle(t, a)
		if n := iss.fetches(); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
		checkNeverOlder(t, store.written())
		if n := log.count(core.EventWrittenBack, ""); n != 1 {
			t.Errorf("%d %s records, want 1", n, core.EventWrittenBack)
		}
		log.checkNoToken(t)
	})
	t.Run("WriteFailedWrittenBackInTheBackground", func(t *testing.T) {
		iss, log := &classicIssuer{}, newEventLog()
		store := newFaultStore(t, writeFails, refused, refused, refused)
		a := wbCredential(t, iss, store, log, core.Policy{})
		core.SetWriteBackBackoff(a, time.Millisecond, 4*time.Millisecond)
		tok := getValid(t, "A with its write failing", a, iss)
		log.waitFor(t, core.EventWrittenBack, 1) // after three failed write-backs
		idle(t, a)
		if got := storeHolds(t, store); got != tok.Value {
			t.Error("the background write-back did not write the token")
		}
		if n := log.count(core.EventStoreError, "write_back"); n != 3 {
			t.Errorf("%d %s records with op write_back, want 3 (one per refused write-back)", n, core.EventStoreError)
		}
		if n := iss.fetches(); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
		if h := store.written(); len(h) != 1 {
			t.Errorf("%d writes, want 1", len(h))
		}
	})
	t.Run("LandedButReportedFailure", func(t *testing.T) {
		iss, log := &classicIssuer{}, newEventLog()
		store := newFaultStore(t, landedFails)
		a := wbCredential(t, iss, store, log, core.Policy{})
		tok := getValid(t, "A with its write reported failed", a, iss)
		idle(t, a)
		if got := storeHolds(t, store); got != tok.Value {
			t.Error("the store does not hold the token served")
		}
		if n := iss.fetches(); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
		if h := store.written(); len(h) != 1 {
			t.Errorf("%d writes, want 1: the write-back found the token there", len(h))
		}
		if n := log.count(core.EventWrittenBack, ""); n != 1 {
			t.Errorf("%d %s records, want 1", n, core.EventWrittenBack)
		}
		if n := log.count(core.EventStoreError, "refresh"); n != 1 {
			t.Errorf("%d %s records with op refresh, want 1", n, core.EventStoreError)
		}
	})
}

// A process holds a token for the write-back, but the store meanwhile holds
// a newer one (another instance refreshed; with the classic token, that
// invalidated the held one): the held token is dropped, never written, and
// the newer one served — found at the next load, or by the background
// write-back.
func TestPendingTokenSupersededByANewerOne(t *testing.T) {
	setup := func(t *testing.T, backoff time.Duration) (*classicIssuer, *eventLog, *faultStore, *core.Credential, core.Token) {
		iss, log := &classicIssuer{}, newEventLog()
		store := newFaultStore(t, writeFails)
		store.after = func() { store.down.Store(true) } // A's write-backs fail until B has written
		a := wbCredential(t, iss, store, log, core.Policy{})
		core.SetWriteBackBackoff(a, backoff, backoff)
		held := getValid(t, "A with its write failing", a, iss)
		b := wbCredential(t, iss, store.peer(), nil, core.Policy{})
		bTok := getValid(t, "B, another instance", b, iss)
		if iss.valid(held.Value) {
			t.Fatal("A's token is still valid after B's fetch")
		}
		store.down.Store(false)
		return iss, log, store, a, bTok
	}
	check := func(t *testing.T, iss *classicIssuer, log *eventLog, store *faultStore, a *core.Credential, bTok core.Token) {
		t.Helper()
		if got := storeHolds(t, store); got != bTok.Value {
			t.Error("the store does not hold B's token: A's older one replaced it")
		}
		if h := store.written(); len(h) != 1 || h[0] != bTok.Value {
			t.Errorf("the store's writes: %d, (B's only: %v); want B's only", len(h), len(h) == 1 && h[0] == bTok.Value)
		}
		if n := iss.fetches(); n != 2 {
			t.Errorf("%d fetches, want 2 (A's and B's)", n)
		}
		if n := log.count(core.EventWrittenBack, ""); n != 0 {
			t.Errorf("%d %s records, want 0", n, core.EventWrittenBack)
		}
		log.checkNoToken(t)
	}
	t.Run("AtTheNextLoad", func(t *testing.T) {
		iss, log, store, a, bTok := setup(t, time.Hour)
		held, _ := core.PendingWrite(a)
		// WeChat rejects A's token: the compare-and-refresh finds B's.
		tok, err := a.Refresh(t.Context(), held.Value)
		if err != nil || tok.Value != bTok.Value {
			t.Fatalf("A's Refresh of its rejected token = (B's: %v), %v; want B's token", tok.Value == bTok.Value, err)
		}
		idle(t, a)
		check(t, iss, log, store, a, bTok)
	})
	t.Run("InTheBackground", func(t *testing.T) {
		iss, log, store, a, bTok := setup(t, time.Millisecond)
		log.waitFor(t, core.EventAdopted, 1)
		idle(t, a)
		if tok := getValid(t, "A once the write-back found B's token", a, iss); tok.Value != bTok.Value {
			t.Error("A does not serve B's token")
		}
		check(t, iss, log, store, a, bTok)
	})
}

// With Decode, a stored form whose write did not land carries the refresh
// token WeChat now honours (it rotated): while it is held for the
// write-back, the next fetch starts from it (FetchRequest.Stored), never
// from the older value in the store, and its result supersedes it. Here
// the write of the first record and its two write-backs fail; WeChat then
// rejects the access token, and the refresh must use the rotated refresh
// token or the merchant would have to authorize again.
func TestDecodePendingRecordIsTheNextFetchsBase(t *testing.T) {
	l := newLedger()
	store := newFaultStore(t, writeFails, refused, refused)
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "authorizer_access_token", Key: recordKey, Store: store,
		Fetch: l.fetch, Decode: decodeRecord, Now: l.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	core.SetWriteBackBackoff(cr, time.Hour, time.Hour) // only the loads write back
	ctx := t.Context()
	first, err := cr.Get(ctx)
	if err != nil || first.Value != "AT1" {
		t.Fatalf("Get with the record's write failing = %q, %v; want AT1", first.Value, err)
	}
	next, err := cr.Refresh(ctx, first.Value)
	if err != nil || next.Value != "AT2" {
		t.Fatalf("Refresh(AT1) while the rotated record is not in the store = %q, %v; want AT2, fetched with the rotated refresh token", next.Value, err)
	}
	if n := l.fetches(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	if s := l.storedOf(1); !strings.HasPrefix(s.Value, "AT1|RT1|") {
		t.Errorf("the second fetch got Stored %q, want the record held for the write-back (AT1|RT1|…)", s.Value)
	}
	if raw, err := store.inner.Get(ctx, recordKey); err != nil || !strings.HasPrefix(raw.Value, "AT2|RT2|") {
		t.Errorf("store holds %q, %v; want the newest record (AT2|RT2|…)", raw.Value, err)
	}
	idle(t, cr)
}
