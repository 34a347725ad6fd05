package core_test

// Tests of a TokenStore outage (issue 18, part 3): with stable_token a store
// that fails does not fail callers (each process fetches without the lock,
// rate-limited, and writes the token back once the store answers); with
// the classic token the held token is served until it expires, then a
// typed error, and WeChat is never called without the lock.

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

var errDown = errors.New("downstore: connection refused")

// downStore is a TokenStore whose every call fails with errDown while down
// is set.
type downStore struct {
	core.TokenStore
	down atomic.Bool
}

func newDownStore() *downStore { return &downStore{TokenStore: core.NewMemoryStore()} }

func (s *downStore) Get(ctx context.Context, key string) (core.Token, error) {
	if s.down.Load() {
		return core.Token{}, errDown
	}
	return s.TokenStore.Get(ctx, key)
}

func (s *downStore) Set(ctx context.Context, key string, t core.Token) error {
	if s.down.Load() {
		return errDown
	}
	return s.TokenStore.Set(ctx, key, t)
}

func (s *downStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if s.down.Load() {
		return core.Token{}, errDown
	}
	return s.TokenStore.Refresh(ctx, key, stale, fetch)
}

const accessKey = "wechatconf/" + appID + "/access_token"

// Stable tokens: 8 processes cold-started on a store that is down, 100
// callers each: every caller gets a valid token, each process makes one
// stable_token call, the outage is logged; once the store is back, the next
// refresh writes the token back.
func TestStableTokenStoreOutageFetchesWithoutTheStore(t *testing.T) {
	s := newServer(t)
	store := newDownStore()
	store.down.Store(true)
	var logs jsonLog
	confs := make([]*core.Conf, 8)
	for i := range confs {
		confs[i] = newConf(t, s, func(c *core.Config) { c.Store = store; c.Logger = logs.logger(slog.LevelInfo) })
	}
	ctx := t.Context()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for _, c := range confs {
		for range 100 {
			wg.Go(func() {
				tok, err := c.AccessToken(ctx)
				if (err != nil || !s.TokenValid(tok.Value)) && failed.Add(1) == 1 {
					t.Logf("first failure: %v (valid %v)", err, s.TokenValid(tok.Value))
				}
			})
		}
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of 800 callers got no valid token while the store was down, want 0", n)
	}
	calls := s.Calls(wxtest.PathStableToken)
	if calls > len(confs) || calls == 0 {
		t.Errorf("%d stable_token calls for %d processes, want 1 to %d", calls, len(confs), len(confs))
	}
	outages := logs.records(t, core.EventStoreOutage)
	fetched := 0
	for _, r := range outages {
		if r["level"] != "WARN" || r["op"] != "refresh" || r["error"] == nil {
			t.Errorf("%s record %v, want Warn with op refresh and an error", core.EventStoreOutage, r)
		}
		if r["fetched"] == true {
			fetched++
		}
	}
	if len(outages) == 0 || fetched != calls {
		t.Errorf("%d %s records, %d with fetched=true, for %d stable_token calls; want at least one, and one fetched per call", len(outages), core.EventStoreOutage, fetched, calls)
	}

	// The store is back: the next refresh writes the token back.
	held, _ := confs[0].AccessToken(ctx)
	store.down.Store(false)
	if _, err := store.Get(ctx, accessKey); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("store.Get before the write-back = %v, want ErrNotFound", err)
	}
	confs[0].AccessTokenCredential().Invalidate()
	tok, err := confs[0].AccessToken(ctx)
	if err != nil || tok.Value != held.Value {
		t.Fatalf("AccessToken after the store came back = same %v, %v; want the token held", tok.Value == held.Value, err)
	}
	stored, err := store.Get(ctx, accessKey)
	if err != nil || !same(stored, held) {
		t.Errorf("store.Get after the write-back = same %v, %v; want the token fetched during the outage", same(stored, held), err)
	}
	if n := s.Calls(wxtest.PathStableToken); n != calls {
		t.Errorf("the write-back made %d stable_token calls, want 0", n-calls)
	}
}

// Classic tokens: the held token is served while the store is down, until
// its expiry margin; then an error wrapping ErrStoreUnavailable and the
// store's error. No /cgi-bin/token call is made without the lock.
func TestClassicTokenStoreOutageServesHeldThenFails(t *testing.T) {
	s := newServer(t)
	store := newDownStore()
	var logs jsonLog
	c := newConf(t, s, func(c *core.Config) { classic(c); c.Store = store; c.Logger = logs.logger(slog.LevelInfo) })
	ctx := t.Context()
	held, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Calls(wxtest.PathToken)
	store.down.Store(true)
	for _, step := range []time.Duration{time.Hour, held.ExpiresAt.Sub(s.Now()) - time.Hour - 3*time.Minute} {
		// An hour in, then inside the refresh-ahead window (a background
		// refresh starts, and fails on the store).
		s.Advance(step)
		if tok, err := c.AccessToken(ctx); err != nil || tok.Value != held.Value {
			t.Fatalf("AccessToken %v before expiry with the store down = same %v, %v; want the held token", held.ExpiresAt.Sub(s.Now()), tok.Value == held.Value, err)
		}
	}
	s.Advance(2*time.Minute + time.Second) // inside the expiry margin
	_, err = c.AccessToken(ctx)
	if !errors.Is(err, core.ErrStoreUnavailable) || !errors.Is(err, errDown) {
		t.Errorf("AccessToken after expiry with the store down = %v, want ErrStoreUnavailable wrapping the store's error", err)
	}
	if _, err := c.RefreshAccessToken(ctx, held.Value); !errors.Is(err, core.ErrStoreUnavailable) {
		t.Errorf("RefreshAccessToken with the store down = %v, want ErrStoreUnavailable", err)
	}
	if n := s.Calls(wxtest.PathToken) - before; n != 0 {
		t.Errorf("%d /cgi-bin/token calls while the store was down, want 0 (each would invalidate the fleet's token)", n)
	}
	if r := logs.records(t, core.EventStoreOutage); len(r) != 0 {
		t.Errorf("%d %s records for a classic token, want 0", len(r), core.EventStoreOutage)
	}
}

// The fetch without the store is rate-limited: with the store down and the
// stable token rejected (normal mode keeps handing it back), 10 refreshes
// every 20 s for 160 s make one fetch per StoreOutageInterval (1 minute):
// at 0, 60 and 120 s.
func TestStoreOutageFetchesAtMostOncePerInterval(t *testing.T) {
	s := newServer(t)
	store := newDownStore()
	c := newConf(t, s, func(c *core.Config) {
		c.Store = store
		c.RejectedRefreshInterval = -1 // only the outage's limit
		c.StoreOutageInterval = time.Minute
	})
	ctx := t.Context()
	bad, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Calls(wxtest.PathStableToken)
	store.down.Store(true)
	s.Reject(bad.Value)
	for step := range 9 {
		for range 10 {
			if _, err := c.RefreshAccessToken(ctx, bad.Value); !errors.Is(err, core.ErrStoreUnavailable) {
				t.Fatalf("RefreshAccessToken at %v s = %v, want ErrStoreUnavailable", step*20, err)
			}
		}
		s.Advance(20 * time.Second)
	}
	if n := s.Calls(wxtest.PathStableToken) - before; n != 3 {
		t.Errorf("%d stable_token calls in 160 s with StoreOutageInterval 1m, want 3", n)
	}
	if n := s.ForceRefreshes(); n != 0 {
		t.Errorf("%d force_refresh calls without the store's lock, want 0", n)
	}
}

// A fetch without the store cannot move durable state forward: NewCredential
// refuses FetchWithoutStore with a Commit.
func TestFetchWithoutStoreRefusesCommit(t *testing.T) {
	_, err := core.NewCredential(core.CredentialConfig{
		Name: "x", Key: "k", Fetch: func(context.Context, core.FetchRequest) (core.Token, error) { return core.Token{}, nil },
		Commit: func(context.Context, any) error { return nil }, Policy: core.Policy{FetchWithoutStore: true},
	})
	if err == nil {
		t.Error("NewCredential with FetchWithoutStore and a Commit succeeded, want an error")
	}
}

// hangingStore is a TokenStore over a server that does not answer, with a
// client that honours ctx (go-redis with ContextTimeoutEnabled, pgx, the
// etcd client): every call blocks until ctx ends and returns its error.
type hangingStore struct{}

func (hangingStore) Get(ctx context.Context, key string) (core.Token, error) {
	<-ctx.Done()
	return core.Token{}, ctx.Err()
}

func (hangingStore) Set(ctx context.Context, key string, t core.Token) error {
	<-ctx.Done()
	return ctx.Err()
}

func (hangingStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	<-ctx.Done()
	return core.Token{}, ctx.Err()
}

// A store call that the RefreshTimeout ends is a store outage whether the
// store's call returns at the deadline with ctx's error (a client that
// honours ctx) or keeps hanging: the refresh's error wraps
// ErrStoreUnavailable (classic), and stable_token fetches without the
// store. The store call and the RefreshTimeout end together, so which of
// the two the refresh sees first is a race: run it many times.
func TestStoreOutageOfAStoreThatHonoursTheDeadline(t *testing.T) {
	s := newServer(t)
	for i := range 20 {
		c := newConf(t, s, func(c *core.Config) {
			classic(c)
			c.Store = hangingStore{}
			c.RefreshTimeout = 100 * time.Millisecond
		})
		if _, err := c.AccessToken(t.Context()); !errors.Is(err, core.ErrStoreUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("classic, attempt %d: AccessToken over a store that answers at the deadline with ctx's error = %v; want an error wrapping ErrStoreUnavailable and context.DeadlineExceeded", i, err)
		}
		st := newConf(t, s, func(c *core.Config) {
			c.Store = hangingStore{}
			c.RefreshTimeout = 100 * time.Millisecond
		})
		if tok, err := st.AccessToken(t.Context()); err != nil || !s.TokenValid(tok.Value) {
			t.Fatalf("stable, attempt %d: AccessToken over a store that answers at the deadline with ctx's error = %v (valid %v); want a valid token fetched without the store", i, err, s.TokenValid(tok.Value))
		}
	}
	if n := s.Calls(wxtest.PathToken); n != 0 {
		t.Errorf("%d classic token calls over a store that did not answer, want 0", n)
	}
}
