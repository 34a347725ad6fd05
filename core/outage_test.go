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
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/storetest"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const accessKey = "wechatconf/" + appID + "/access_token"

// Stable tokens: 8 processes cold-started on a store that is down, 100
// callers each: every caller gets a valid token, each process makes one
// stable_token call, the outage is logged; once the store is back, the next
// refresh writes the token back.
func TestStableTokenStoreOutageFetchesWithoutTheStore(t *testing.T) {
	s := newServer(t)
	store := storetest.NewDown()
	store.Failing.Store(true)
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
	store.Failing.Store(false)
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
	store := storetest.NewDown()
	var logs jsonLog
	c := newConf(t, s, func(c *core.Config) { classic(c); c.Store = store; c.Logger = logs.logger(slog.LevelInfo) })
	ctx := t.Context()
	held, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Calls(wxtest.PathToken)
	store.Failing.Store(true)
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
	if !errors.Is(err, core.ErrStoreUnavailable) || !errors.Is(err, storetest.ErrDown) {
		t.Errorf("AccessToken after expiry with the store down = %v, want ErrStoreUnavailable wrapping the store's error", err)
	}
	if _, err := c.RefreshAccessToken(ctx, held.Value); !errors.Is(err, core.ErrStoreUnavailable) {
		t.Errorf("RefreshAccessToken with the store down = %v, want ErrStoreUnavailable", err)
	}
	if n := s.Calls(wxtest.PathToken) - before; n != 0 {
		t.Errorf("%d /cgi-bin/token calls while the store was down, want 0 (each would invalidate the fleet's token)", n)
	}
	if r := logs.records(t, core.EventStoreOutage); len(r) == 0 || r[0]["fetched"] != false {
		t.Errorf("%s records for a classic token: %v; want them all with fetched=false", core.EventStoreOutage, r)
	} else {
		for _, rec := range r {
			if rec["fetched"] != false {
				t.Errorf("%s record for a classic token %v, want fetched=false", core.EventStoreOutage, rec)
			}
		}
	}
}

// The fetch without the store is rate-limited: with the store down and the
// stable token rejected (normal mode keeps handing it back), 10 refreshes
// every 20 s for 160 s make one fetch per StoreOutageInterval (1 minute):
// at 0, 60 and 120 s.
func TestStoreOutageFetchesAtMostOncePerInterval(t *testing.T) {
	s := newServer(t)
	store := storetest.NewDown()
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
	store.Failing.Store(true)
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

// hangingStore is a TokenStore over a server that does not answer, with a
// client that honours ctx (go-redis with ContextTimeoutEnabled, pgx, the
// etcd client): every call blocks until ctx ends and returns its error,
// until back is closed (the server answers again): then Get finds
// nothing, Set stores nothing and Refresh runs fetch and returns its token.
// inTime records whether a Get was called before its ctx ended. Build it
// with newHangingStore.
type hangingStore struct {
	back   chan struct{}
	inTime atomic.Bool
}

func newHangingStore() *hangingStore { return &hangingStore{back: make(chan struct{})} }

func (s *hangingStore) Get(ctx context.Context, key string) (core.Token, error) {
	if ctx.Err() == nil {
		s.inTime.Store(true)
	}
	select {
	case <-ctx.Done():
		return core.Token{}, ctx.Err()
	case <-s.back:
		return core.Token{}, core.ErrNotFound
	}
}

func (s *hangingStore) Set(ctx context.Context, key string, t core.Token) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.back:
		return nil
	}
}

func (s *hangingStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	select {
	case <-ctx.Done():
		return core.Token{}, ctx.Err()
	case <-s.back:
		return fetch(ctx)
	}
}

// A store call that the RefreshTimeout ends is a store outage whether the
// store's call returns at the deadline with ctx's error (a client that
// honours ctx) or keeps hanging: the refresh's error wraps
// ErrStoreUnavailable (classic), and stable_token fetches without the
// store. The store call and the RefreshTimeout end together, so which of
// the two the refresh sees first is a race: run it many times.
//
// It runs in a synctest bubble, whose clock moves only when every
// goroutine in it is blocked: the RefreshTimeout cannot end before the
// refresh has reached the store call (on a loaded machine a real 100 ms
// could pass before its goroutine first ran: a refresh that never asked
// the store is rightly not a store outage), and the fetch without the
// store, blocked on the network, cannot outlive its own RefreshTimeout.
// The bubble's HTTP connections are its own (a client without
// keep-alives), and each stable Conf's write-back is let land (the store
// answers again) before the next attempt, so that no goroutine outlives
// the bubble.
func TestStoreOutageOfAStoreThatHonoursTheDeadline(t *testing.T) {
	s := newServer(t)
	synctest.Test(t, func(t *testing.T) {
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		defer client.CloseIdleConnections()
		for i := range 20 {
			c := newConf(t, s, func(c *core.Config) {
				classic(c)
				c.Store = newHangingStore()
				c.RefreshTimeout = 100 * time.Millisecond
				c.HTTPClient = client
			})
			if _, err := c.AccessToken(t.Context()); !errors.Is(err, core.ErrStoreUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("classic, attempt %d: AccessToken over a store that answers at the deadline with ctx's error = %v; want an error wrapping ErrStoreUnavailable and context.DeadlineExceeded", i, err)
			}
			store := newHangingStore()
			st := newConf(t, s, func(c *core.Config) {
				c.Store = store
				c.RefreshTimeout = time.Second
				c.HTTPClient = client
			})
			if tok, err := st.AccessToken(t.Context()); err != nil || !s.TokenValid(tok.Value) {
				t.Fatalf("stable, attempt %d: AccessToken over a store that answers at the deadline with ctx's error = %v (valid %v); want a valid token fetched without the store", i, err, s.TokenValid(tok.Value))
			}
			close(store.back)
			if err := core.WriteBackIdle(t.Context(), st.AccessTokenCredential()); err != nil {
				t.Fatalf("stable, attempt %d: the write-back once the store answers: %v", i, err)
			}
		}
	})
	// On the real clock the store's answer and the RefreshTimeout also
	// meet in the other order (the refresh sees the store's error before
	// the deadline), which the bubble's scheduling does not produce. An
	// attempt whose goroutine first reached the store after the deadline
	// (a loaded machine) asked the store nothing: it is not judged.
	judged := 0
	for i := range 20 {
		store := newHangingStore()
		c := newConf(t, s, func(c *core.Config) {
			classic(c)
			c.Store = store
			c.RefreshTimeout = 100 * time.Millisecond
		})
		_, err := c.AccessToken(t.Context())
		if !store.inTime.Load() {
			continue
		}
		judged++
		if !errors.Is(err, core.ErrStoreUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("classic on the real clock, attempt %d: AccessToken over a store that answers at the deadline with ctx's error = %v; want an error wrapping ErrStoreUnavailable and context.DeadlineExceeded", i, err)
		}
	}
	t.Logf("classic on the real clock: %d of 20 attempts reached the store before the deadline", judged)
	if n := s.Calls(wxtest.PathToken); n != 0 {
		t.Errorf("%d classic token calls over a store that did not answer, want 0", n)
	}
	if n := s.Calls(wxtest.PathStableToken); n != 20 {
		t.Errorf("%d stable_token calls for 20 stable Confs over a store that did not answer, want 20 (one fetch without the store each)", n)
	}
}

// gatedStore is a storetest.Down whose calls, while hang is set, block until
// the gate is closed, whatever their ctx says (a paused server under a
// client without timeouts); arrived receives one value per blocked call.
type gatedStore struct {
	*storetest.Down
	hang    atomic.Bool
	gate    chan struct{}
	arrived chan struct{}
}

// wait hangs a call on key while hang is set, and says it arrived. The
// fetch ledger's calls (its own goroutine, retrying its writes in the
// background) are not the callers' and pass: counted, they made the test
// see "a second store call" whenever a ledger retry fell into the probe.
func (s *gatedStore) wait(key string) {
	if s.hang.Load() && !strings.HasSuffix(key, core.LedgerKeySuffix) {
		s.arrived <- struct{}{}
		<-s.gate
	}
}

func (s *gatedStore) Get(ctx context.Context, key string) (core.Token, error) {
	s.wait(key)
	return s.Down.Get(ctx, key)
}

func (s *gatedStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	s.wait(key)
	return s.Down.Refresh(ctx, key, stale, fetch)
}

// Once a refresh failed on the store, callers do not wait for it again:
// while one caller's refresh probes a store that hangs, every other caller
// whose token is gone gets the store's error at once instead of waiting
// RefreshTimeout (a minute here) with the probe; the probe's success ends
// the outage. Before, each joined the probe and waited it out (here: until
// their own 10 s deadline, without ErrStoreUnavailable). Each failure
// counts as a store error and a store outage (fetched=false) in the
// events, for the classic token as for stable_token.
func TestCallersDoNotWaitForAStoreKnownDown(t *testing.T) {
	s := newServer(t)
	store := &gatedStore{Down: storetest.NewDown(), gate: make(chan struct{}), arrived: make(chan struct{}, 16)}
	var logs jsonLog
	c := newConf(t, s, func(c *core.Config) {
		classic(c)
		c.Store = store
		c.RefreshTimeout = time.Minute
		c.Logger = logs.logger(slog.LevelInfo)
	})
	ctx := t.Context()
	held, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Calls(wxtest.PathToken)
	s.Advance(held.ExpiresAt.Sub(s.Now())) // the held token is gone

	// The store fails: the first refresh learns it.
	store.Failing.Store(true)
	if _, err := c.AccessToken(ctx); !errors.Is(err, core.ErrStoreUnavailable) {
		t.Fatalf("AccessToken with the store down = %v, want ErrStoreUnavailable", err)
	}
	// Now it hangs: the next caller's refresh probes it and waits.
	store.hang.Store(true)
	probe := make(chan error, 1)
	go func() {
		tok, err := c.AccessToken(ctx)
		if err == nil && !s.TokenValid(tok.Value) {
			err = errors.New("an invalid token")
		}
		probe <- err
	}()
	<-store.arrived
	for i := range 5 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.AccessToken(cctx)
		cancel()
		if !errors.Is(err, core.ErrStoreUnavailable) || !errors.Is(err, storetest.ErrDown) {
			t.Fatalf("caller %d during the probe of a store known down = %v; want the store's error at once (ErrStoreUnavailable wrapping it), not a wait", i, err)
		}
	}
	select {
	case <-store.arrived:
		t.Errorf("a second store call while the probe was in flight, want only the probe's")
	default:
	}
	// The store answers again: the probe gets a token, and so does
	// everyone after it.
	store.Failing.Store(false)
	store.hang.Store(false)
	close(store.gate)
	if err := <-probe; err != nil {
		t.Fatalf("the probing caller once the store answered: %v, want a valid token", err)
	}
	if tok, err := c.AccessToken(ctx); err != nil || !s.TokenValid(tok.Value) {
		t.Fatalf("AccessToken after the outage = %v (valid %v), want a valid token", err, s.TokenValid(tok.Value))
	}
	if n := s.Calls(wxtest.PathToken) - before; n != 1 {
		t.Errorf("%d /cgi-bin/token calls, want 1 (after the store came back)", n)
	}
	if n := len(logs.records(t, core.EventStoreError)); n == 0 {
		t.Errorf("no %s record for the store's failures", core.EventStoreError)
	}
	if n := len(logs.records(t, core.EventStoreOutage)); n == 0 {
		t.Errorf("no %s record for the classic token's outage", core.EventStoreOutage)
	}
}
