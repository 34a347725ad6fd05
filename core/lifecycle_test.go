package core_test

// Tests of the token lifecycle off the happy path: a stable token WeChat
// rejects but keeps handing back, rejection storms, errors that must not be
// retried on every call, a lost lease, the time settings, and stores that
// misbehave. Each started as an input that failed.

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// watchdog bounds how long a test waits for a call that must return; it is
// a hang detector, not a timing assertion, so it is far longer than any
// bound the call itself has.
const watchdog = 30 * time.Second

// callAPI makes one Do call to the simulator's ordinary API.
func callAPI(ctx context.Context, c *core.Conf) error {
	var out struct {
		IPList []string `json:"ip_list"`
	}
	return c.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, &out)
}

// A stable token that every API rejects while stable_token's normal mode
// keeps handing it back: the refresh escalates to force_refresh once.
func TestRejectedStableTokenIsForcedOnce(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	ctx := t.Context()
	bad, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Reject(bad.Value)
	for i := range 5 {
		if err := callAPI(ctx, c); err != nil {
			t.Errorf("Do #%d: %v", i+1, err)
		}
	}
	if n := s.ForceRefreshes(); n != 1 {
		t.Errorf("%d force_refresh calls, want 1", n)
	}
	tok, err := c.AccessToken(ctx)
	if err != nil || tok.Value == bad.Value || !s.TokenValid(tok.Value) {
		t.Errorf("AccessToken after the rejection = %v, %v; want a new valid token", tok.Value != bad.Value, err)
	}
}

// noStall is a store lease and RefreshTimeout no run of a test can reach:
// for the tests of the fleet's one fetch, which holds while each lock
// holder's fetch ends within the store's lease. With the defaults (15 s,
// 30 s) a holder that a loaded machine stalls past its lease loses the
// lock and the next caller fetches again, and a refresh that waits for the
// lock past RefreshTimeout counts the store as down and, for a stable
// token, fetches without it: what the lease and the outage handling are
// for, tested on their own (TestLeaseLostReadsTheNewerToken,
// TestStoreLeaseFencesTheLateHolder, outage_test.go), not here.
const noStall = time.Hour

// A fleet of Confs on one store, every goroutine seeing the same rejected
// token: one forced call in all.
func TestRejectedStableTokenFleetForcesOnce(t *testing.T) {
	s := newServer(t)
	store := core.NewMemoryStore(core.WithLease(noStall))
	confs := make([]*core.Conf, 8)
	for i := range confs {
		confs[i] = newConf(t, s, func(c *core.Config) { c.Store = store; c.RefreshTimeout = noStall })
	}
	ctx := t.Context()
	for _, c := range confs {
		if _, err := c.AccessToken(ctx); err != nil {
			t.Fatal(err)
		}
	}
	bad, _ := confs[0].AccessToken(ctx)
	s.Reject(bad.Value)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 1000 {
		wg.Go(func() {
			if err := callAPI(ctx, confs[i%len(confs)]); err != nil && failed.Add(1) == 1 {
				t.Log("first failure:", err)
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of 1000 Do calls failed, want 0", n)
	}
	if n := s.ForceRefreshes(); n != 1 {
		t.Errorf("1000 workers seeing one rejected token made %d force_refresh calls, want 1", n)
	}
}

// ForceRefreshAccessToken rotates a token (a leaked one) within WeChat's
// limits on forced calls, compare-and-refresh like RefreshAccessToken.
func TestForceRefreshAccessToken(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, func(c *core.Config) { c.ForceRefreshDailyLimit = 2 })
	ctx := t.Context()
	leaked, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := c.ForceRefreshAccessToken(ctx, leaked.Value)
	switch {
	case err != nil:
		t.Fatal(err)
	case rotated.Value == leaked.Value || !s.TokenValid(rotated.Value):
		t.Fatal("ForceRefreshAccessToken did not return a new valid token")
	case s.TokenValid(leaked.Value):
		t.Error("the leaked token still works after a forced refresh")
	}
	// Asking again for the same leaked token: already rotated, no call.
	again, err := c.ForceRefreshAccessToken(ctx, leaked.Value)
	if err != nil || again.Value != rotated.Value {
		t.Errorf("second ForceRefreshAccessToken(leaked) = %v, %v; want the rotated token", again.Value == rotated.Value, err)
	}
	if n := s.ForceRefreshes(); n != 1 {
		t.Fatalf("%d force_refresh calls, want 1", n)
	}

	// Inside the interval: held back without a call.
	_, err = c.ForceRefreshAccessToken(ctx, "")
	var le *core.LimitError
	if !errors.As(err, &le) || le.Limit != "ForceRefreshInterval" {
		t.Fatalf("forced refresh inside the interval: %v, want a *LimitError for ForceRefreshInterval", err)
	}
	if want := s.Now().Add(core.DefaultForceRefreshInterval); !le.Until.Equal(want) {
		t.Errorf("LimitError.Until = %v, want %v", le.Until, want)
	}
	if n := s.Calls(wxtest.PathStableToken); n != 2 {
		t.Errorf("%d stable_token calls, want 2 (the first fetch, one forced)", n)
	}

	s.Advance(core.DefaultForceRefreshInterval)
	if _, err := c.ForceRefreshAccessToken(ctx, ""); err != nil {
		t.Fatalf("forced refresh after the interval: %v", err)
	}
	s.Advance(core.DefaultForceRefreshInterval)
	_, err = c.ForceRefreshAccessToken(ctx, "")
	if !errors.As(err, &le) || le.Limit != "ForceRefreshDailyLimit" {
		t.Fatalf("third forced refresh with a daily limit of 2: %v, want a *LimitError for ForceRefreshDailyLimit", err)
	}
	if n := s.ForceRefreshes(); n != 2 {
		t.Errorf("%d force_refresh calls, want 2", n)
	}
}

// When the forced calls are used up, a rejected stable token is a clear,
// typed error, and WeChat is not asked to force.
func TestRejectedStableTokenWithoutForcedCalls(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, func(c *core.Config) { c.ForceRefreshDailyLimit = -1 })
	ctx := t.Context()
	bad, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Reject(bad.Value)
	err = callAPI(ctx, c)
	var le *core.LimitError
	if !errors.As(err, &le) || le.Limit != "ForceRefreshDailyLimit" {
		t.Fatalf("Do with a rejected stable token and no forced calls allowed: %v, want a *LimitError", err)
	}
	if n := s.ForceRefreshes(); n != 0 {
		t.Errorf("%d force_refresh calls, want 0", n)
	}
}

// An API that rejects every token: the rejection limit is keyed on the
// rejected value, so it holds back none of these rejections (each is of a
// new token); what bounds the fetches is the compare-and-refresh, one per
// new token. The calls fail with the typed rejection, not a *LimitError.
// (TestRejectionLimitStopsALoopOnOneToken has the loop the limit stops.)
func TestRejectionStormFetchesOncePerToken(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, classic)
	ctx := t.Context()
	if _, err := c.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	s.InjectFault(wxtest.PathAPI, wxtest.Errcode(40001, "invalid credential, access_token is invalid or not latest rid: 1"), 1000)
	const calls = 50
	for i := range calls {
		err := callAPI(ctx, c)
		var le *core.LimitError
		if !core.IsInvalidCredential(err) || errors.As(err, &le) {
			t.Fatalf("Do #%d = %v, want the 40001 (typed), not a *LimitError", i+1, err)
		}
	}
	// One fetch per call: the call replaces its rejected token, and the
	// token its retry was rejected with is replaced by the next call.
	if n := s.Calls(wxtest.PathToken); n != 1+calls {
		t.Errorf("%d rejected calls made %d token fetches, want %d (the first, one per rejected token)", calls, n, 1+calls)
	}
}

// A token call refused with a configuration or quota error is not made
// again on every call: its error comes back at once for ErrorBackoff.
func TestConfigAndQuotaErrorsBackOff(t *testing.T) {
	for _, code := range []int{40013, 40125, 40164, 41002, 41004, 89503, 45009} {
		t.Run("errcode"+strconv.Itoa(code), func(t *testing.T) {
			s := newServer(t)
			c := newConf(t, s, nil)
			ctx := t.Context()
			s.InjectFault(wxtest.PathStableToken, wxtest.Errcode(code, "refused rid: 1"), 100)
			isIt := core.IsConfigError
			if code == 45009 {
				isIt = core.IsQuotaExceeded
			}
			if _, err := c.AccessToken(ctx); !isIt(err) {
				t.Fatalf("first AccessToken = %v, want errcode %d", err, code)
			}
			for range 10 {
				_, err := c.AccessToken(ctx)
				var le *core.LimitError
				if !errors.As(err, &le) || le.Limit != "ErrorBackoff" || !isIt(err) {
					t.Fatalf("AccessToken during the back-off = %v, want a *LimitError naming ErrorBackoff and wrapping errcode %d", err, code)
				}
			}
			if n := s.Calls(wxtest.PathStableToken); n != 1 {
				t.Errorf("%d token calls during the back-off, want 1", n)
			}
			s.Advance(core.DefaultErrorBackoff)
			_, _ = c.AccessToken(ctx)
			if n := s.Calls(wxtest.PathStableToken); n != 2 {
				t.Errorf("after the back-off: %d token calls, want 2", n)
			}
		})
	}
}

// holdFirst is an http.RoundTripper whose first request waits for release
// (ignoring its context, like a reply that takes far longer than the lease)
// and is then made; later requests pass through.
type holdFirst struct {
	base    http.RoundTripper
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (h *holdFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	first := false
	h.once.Do(func() { first = true })
	if first {
		close(h.entered)
		<-h.release
		r = r.WithContext(context.WithoutCancel(r.Context()))
	}
	return h.base.RoundTrip(r)
}

// A holder whose token reply comes after its lease: the store refuses its
// write (ErrLockLost) and the caller gets the newer token the next holder
// wrote, not the error.
func TestLeaseLostReadsTheNewerToken(t *testing.T) {
	s := newServer(t)
	store := core.NewMemoryStore(core.WithLease(time.Second))
	slow := &holdFirst{base: s.Client().Transport, entered: make(chan struct{}), release: make(chan struct{})}
	a := newConf(t, s, func(c *core.Config) {
		c.Store = store
		classic(c)
		c.HTTPClient = &http.Client{Transport: slow}
	})
	b := newConf(t, s, func(c *core.Config) { c.Store = store; classic(c) })
	ctx := t.Context()

	type res struct {
		tok core.Token
		err error
	}
	aDone := make(chan res, 1)
	go func() { tok, err := a.AccessToken(ctx); aDone <- res{tok, err} }()
	<-slow.entered
	// b waits for a's lease to run out, then fetches and writes.
	bTok, err := b.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	close(slow.release)
	var r res
	select {
	case r = <-aDone:
	case <-time.After(watchdog):
		t.Fatal("the late holder's AccessToken did not return")
	}
	if r.err != nil || r.tok.Value != bTok.Value {
		t.Fatalf("late holder's AccessToken = (same as the newer one: %v), %v; want the newer token", r.tok.Value == bTok.Value, r.err)
	}
	if got, _ := store.Get(ctx, "wechatconf/"+appID+"/access_token"); got.Value != bTok.Value {
		t.Error("the late write replaced the newer token in the store")
	}
}

// Settings that cannot keep the promise "never within ExpiryMargin" are
// refused at New, naming the fields and why.
func TestNewRefusesTimeSettingsThatCannotWork(t *testing.T) {
	tests := []struct {
		name string
		cfg  core.Config
		want string // "" means accepted
	}{
		{"RefreshAhead shorter than ExpiryMargin", core.Config{RefreshAhead: 10 * time.Second, ExpiryMargin: time.Minute}, "RefreshAhead"},
		{"RefreshAhead shorter than the default ExpiryMargin", core.Config{RefreshAhead: 10 * time.Second}, "ExpiryMargin"},
		{"stable ExpiryMargin beyond the hand-over", core.Config{ExpiryMargin: 10 * time.Minute, RefreshAhead: 15 * time.Minute}, "hand-over"},
		{"stable ExpiryMargin at the hand-over", core.Config{ExpiryMargin: 5 * time.Minute}, "hand-over"},
		{"classic ExpiryMargin of 10m", core.Config{TokenAPI: core.ClassicToken, ExpiryMargin: 10 * time.Minute, RefreshAhead: 15 * time.Minute}, ""},
		{"stable ExpiryMargin of 4m", core.Config{ExpiryMargin: 4 * time.Minute}, ""},
		{"defaults", core.Config{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.AppID = appID
			_, err := core.New(tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("New = %v, want accepted", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("New = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

// A token that lives less than the margins (expires_in 20) is served until
// its real expiry: one fetch per lifetime, not two per call.
func TestShortLivedTokenIsServedUntilItExpires(t *testing.T) {
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret, ExpiresIn: 20 * time.Second})
	t.Cleanup(s.Close)
	c := newConf(t, s, classic)
	ctx := t.Context()
	for i := range 10 {
		if err := callAPI(ctx, c); err != nil {
			t.Fatalf("Do #%d: %v", i+1, err)
		}
	}
	if n := s.Calls(wxtest.PathToken); n != 1 {
		t.Errorf("10 calls with a 20 s token made %d token fetches, want 1", n)
	}
	s.Advance(20 * time.Second)
	for i := range 10 {
		if err := callAPI(ctx, c); err != nil {
			t.Fatalf("Do #%d after expiry: %v", i+1, err)
		}
	}
	if n := s.Calls(wxtest.PathToken); n != 2 {
		t.Errorf("after one expiry: %d token fetches, want 2", n)
	}
}

// An absurd expires_in neither overflows nor is trusted for ever.
func TestHugeExpiresInIsCapped(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	s.InjectFault(wxtest.PathStableToken, wxtest.Fault{Body: `{"access_token":"HUGE","expires_in":99999999999}`}, 1)
	ctx := t.Context()
	tok, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := s.Now()
	if !tok.ExpiresAt.After(now.Add(2*time.Hour)) || tok.ExpiresAt.After(now.Add(24*time.Hour)) {
		t.Errorf("ExpiresAt = %v, want within (2 h, 24 h] of %v", tok.ExpiresAt, now)
	}
	for range 10 {
		if again, err := c.AccessToken(ctx); err != nil || again.Value != "HUGE" {
			t.Fatalf("AccessToken again = %q, %v", again.Value, err)
		}
	}
	if n := s.Calls(wxtest.PathStableToken); n != 1 {
		t.Errorf("%d token calls, want 1", n)
	}
}

// A stored token whose ExpiresAt is centuries ahead is served from memory,
// not refetched because the hot path's arithmetic overflowed.
func TestFarFutureExpiryDoesNotOverflow(t *testing.T) {
	for _, years := range []int{300, 5000} {
		s := newServer(t)
		store := core.NewMemoryStore()
		ctx := t.Context()
		far := core.Token{Value: "FAR", ExpiresAt: s.Now().AddDate(years, 0, 0)}
		if err := store.Set(ctx, "wechatconf/"+appID+"/access_token", far); err != nil {
			t.Fatal(err)
		}
		c := newConf(t, s, func(c *core.Config) { c.Store = store })
		// The hot path keeps deadlines as offsets from New: some time
		// after it, an offset plus a saturated time to expiry overflows.
		s.Advance(10 * time.Minute)
		for range 10 {
			if tok, err := c.AccessToken(ctx); err != nil || tok.Value != "FAR" {
				t.Fatalf("%d years: AccessToken = %q, %v; want the stored token", years, tok.Value, err)
			}
		}
		if n := tokenCalls(s); n != 0 {
			t.Errorf("%d years: %d token calls, want 0", years, n)
		}
	}
}

// stuckStore is a user's TokenStore whose Refresh ignores its ctx until
// released.
type stuckStore struct {
	core.TokenStore
	release chan struct{}
}

func (s *stuckStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	<-s.release
	return s.TokenStore.Refresh(ctx, key, stale, fetch)
}

// A refresh ends at RefreshTimeout whatever the store does: a store that
// does not answer is unavailable. With the classic token (every fetch
// invalidates the fleet's) the refresh fails; with stable_token this
// process fetches without the store.
func TestRefreshTimeoutHoldsWhateverTheStoreDoes(t *testing.T) {
	for _, api := range []core.TokenAPI{core.ClassicToken, core.StableToken} {
		t.Run(api.String(), func(t *testing.T) {
			s := newServer(t)
			store := &stuckStore{TokenStore: core.NewMemoryStore(), release: make(chan struct{})}
			t.Cleanup(func() { close(store.release) })
			c := newConf(t, s, func(c *core.Config) { c.Store = store; c.RefreshTimeout = 200 * time.Millisecond; c.TokenAPI = api })
			type result struct {
				tok core.Token
				err error
			}
			done := make(chan result, 1)
			go func() { tok, err := c.AccessToken(context.Background()); done <- result{tok, err} }()
			select {
			case r := <-done:
				switch api {
				case core.ClassicToken:
					if !errors.Is(r.err, context.DeadlineExceeded) || !errors.Is(r.err, core.ErrStoreUnavailable) || !strings.Contains(r.err.Error(), "RefreshTimeout") {
						t.Errorf("AccessToken over a stuck store = %v, want DeadlineExceeded and ErrStoreUnavailable naming RefreshTimeout", r.err)
					}
					if n := s.Calls(wxtest.PathToken); n != 0 {
						t.Errorf("%d classic token calls without the store's lock, want 0", n)
					}
				default:
					if r.err != nil || !s.TokenValid(r.tok.Value) {
						t.Errorf("AccessToken over a stuck store = %v, valid %v; want a token fetched without the store", r.err, s.TokenValid(r.tok.Value))
					}
				}
			case <-time.After(watchdog):
				t.Fatal("AccessToken over a stuck store did not return")
			}
		})
	}
}

// FuncStore (Get + Set): the lease runs from when the lock is taken, so a
// slow Get cannot let two fetches run under one lock.
func TestFuncStoreLeaseCountsFromAcquisition(t *testing.T) {
	var mu sync.Mutex
	stored := map[string]core.Token{}
	firstGet := make(chan struct{})
	releaseGet := make(chan struct{})
	var gets atomic.Int32
	fs, err := core.NewFuncStore(core.StoreFuncs{
		Get: func(ctx context.Context, key string) (core.Token, error) {
			mu.Lock()
			t := stored[key]
			mu.Unlock()
			if gets.Add(1) == 1 {
				close(firstGet)
				<-releaseGet // slow, ignores ctx, and answers what it read at the start
			}
			return t, nil
		},
		Set: func(ctx context.Context, key string, t core.Token) error {
			mu.Lock()
			defer mu.Unlock()
			stored[key] = t
			return nil
		},
	}, core.WithLease(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int32
	fetch := func(context.Context) (core.Token, error) {
		fetches.Add(1)
		return core.Token{Value: "T" + strconv.Itoa(int(fetches.Load())), ExpiresAt: time.Now().Add(time.Hour)}, nil
	}
	ctx := t.Context()
	slowErr := make(chan error, 1)
	go func() { _, err := fs.Refresh(ctx, "k", "", fetch); slowErr <- err }()
	<-firstGet
	// This one takes the lock when the slow holder's lease ends.
	if _, err := fs.Refresh(ctx, "k", "", fetch); err != nil {
		t.Fatal(err)
	}
	close(releaseGet)
	if err := <-slowErr; !errors.Is(err, core.ErrLockLost) {
		t.Errorf("holder whose Get outlived the lease: %v, want ErrLockLost", err)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1: the slow holder fetched after its lease ended", n)
	}
}

// FuncStore (Get + Set): a Set that ignores ctx does not hold the lock for
// ever.
func TestFuncStoreStuckSetReleasesTheLock(t *testing.T) {
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	var sets atomic.Int32
	fs, err := core.NewFuncStore(core.StoreFuncs{
		Get: func(context.Context, string) (core.Token, error) { return core.Token{}, nil },
		Set: func(context.Context, string, core.Token) error {
			if sets.Add(1) == 1 {
				<-stuck
			}
			return nil
		},
	}, core.WithLease(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(context.Context) (core.Token, error) {
		return core.Token{Value: "T", ExpiresAt: time.Now().Add(time.Hour)}, nil
	}
	done := make(chan error, 2)
	go func() { _, err := fs.Refresh(t.Context(), "k", "", fetch); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Refresh whose Set is stuck = %v, want DeadlineExceeded", err)
		}
	case <-time.After(watchdog):
		t.Fatal("Refresh whose Set is stuck did not return")
	}
	go func() { _, err := fs.Refresh(t.Context(), "k", "", fetch); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("next Refresh: %v", err)
		}
	case <-time.After(watchdog):
		t.Fatal("the lock stayed held after a stuck Set")
	}
}
