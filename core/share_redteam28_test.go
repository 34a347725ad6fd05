package core_test

// Red-team tests of 0284ceb (issue 27: CredentialKind, ConfFamily, the
// API settings shared by WithCredential copies, rare-path state made on
// first use). A failing test is a finding; a passing one is coverage.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// rtKeyDown is a store whose calls on keys containing down fail.
type rtKeyDown struct {
	core.TokenStore
	down   string
	healed atomic.Bool // the store answers for every key again
}

var errRTDown = errors.New("rtkeydown: connection refused")

func (s *rtKeyDown) Get(ctx context.Context, key string) (core.Token, error) {
	if !s.healed.Load() && strings.Contains(key, s.down) {
		return core.Token{}, errRTDown
	}
	return s.TokenStore.Get(ctx, key)
}

func (s *rtKeyDown) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if !s.healed.Load() && strings.Contains(key, s.down) {
		return core.Token{}, errRTDown
	}
	return s.TokenStore.Refresh(ctx, key, stale, fetch)
}

// One credential of a kind refused with a configuration error (its
// ErrorBackoff), another whose store is down (its outage state, its
// write-back), a third that works: the third fetches, is Ready and never
// sees the others' back-off or outage — the rare-path state is each
// credential's, not the kind's.
func TestRedteam28KindIsolatesBackoffAndOutage(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	store := &rtKeyDown{TokenStore: core.NewMemoryStore(), down: "tenant-down"}
	kind, err := core.NewCredentialKind(core.CredentialConfig{
		Name: "access_token", Store: store, Now: clock,
		Policy: core.Policy{FetchWithoutStore: true, ErrorBackoff: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	var calls [3]atomic.Int32
	mk := func(i int, key string, fail error) *core.Credential {
		cr, err := kind.New(core.CredentialConfig{Key: key, Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			calls[i].Add(1)
			if fail != nil {
				return core.Token{}, fail
			}
			return core.Token{Value: fmt.Sprintf("tok-%d-%d", i, calls[i].Load()), ExpiresAt: now.Add(2 * time.Hour)}, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		return cr
	}
	refused := mk(0, "p/tenant-refused/access_token", &core.APIError{Code: 40013, Message: "invalid appid"})
	down := mk(1, "p/tenant-down/access_token", nil)
	ok := mk(2, "p/tenant-ok/access_token", nil)
	ctx := t.Context()
	if _, err := refused.Get(ctx); err == nil {
		t.Fatal("the refused credential got a token")
	}
	if _, err := refused.Get(ctx); err == nil || calls[0].Load() != 1 {
		t.Fatalf("the refused credential: %v, %d fetches; want its back-off (1 fetch)", err, calls[0].Load())
	}
	if tok, err := down.Get(ctx); err != nil || tok.Value == "" {
		t.Fatalf("the credential whose store is down (FetchWithoutStore): %q, %v", tok.Value, err)
	}
	if _, held := core.PendingWrite(down); !held {
		t.Fatal("the outage's token is not held for the write-back")
	}
	tok, err := ok.Get(ctx)
	if err != nil || calls[2].Load() != 1 {
		t.Fatalf("the working credential: %q, %v, %d fetches", tok.Value, err, calls[2].Load())
	}
	if err := ok.Ready(ctx, time.Minute); err != nil {
		t.Errorf("the working credential is not Ready: %v", err)
	}
	if _, held := core.PendingWrite(ok); held {
		t.Error("the working credential holds a write-back (the other's?)")
	}
	if got, err := store.TokenStore.Get(ctx, ok.Key()); err != nil || got.Value != tok.Value {
		t.Errorf("the store holds %q, %v for the working credential, want %q", got.Value, err, tok.Value)
	}
	var le *core.LimitError
	if err := refused.Ready(ctx, time.Minute); !errors.As(err, &le) {
		t.Errorf("the refused credential's Ready = %v, want its *LimitError", err)
	}
}

// Many credentials of one kind, each first used concurrently with its
// Ready, Invalidate and an outage of the store of half of them: the
// lazily made limits and cold state race with nothing (run with -race),
// and each ends with its own token.
func TestRedteam28KindLazyStateConcurrent(t *testing.T) {
	now := time.Now()
	store := &rtKeyDown{TokenStore: core.NewMemoryStore(), down: "/down"}
	kind, err := core.NewCredentialKind(core.CredentialConfig{
		Name: "access_token", Store: store, Now: func() time.Time { return now },
		Policy: core.Policy{FetchWithoutStore: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	creds := make([]*core.Credential, n)
	for i := range creds {
		key := fmt.Sprintf("p/t%d/up/access_token", i)
		if i%2 == 1 {
			key = fmt.Sprintf("p/t%d/down/access_token", i)
		}
		value := fmt.Sprintf("tok-%d", i)
		if creds[i], err = kind.New(core.CredentialConfig{Key: key, Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			return core.Token{Value: value, ExpiresAt: now.Add(time.Hour)}, nil
		}}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, cr := range creds {
		for range 4 {
			wg.Go(func() {
				if tok, err := cr.Get(t.Context()); err != nil || tok.Value != fmt.Sprintf("tok-%d", i) {
					t.Errorf("credential %d: %q, %v", i, tok.Value, err)
				}
			})
		}
		wg.Go(func() { _ = cr.Ready(t.Context(), time.Minute) })
		wg.Go(func() { cr.Invalidate() })
	}
	wg.Wait()
	store.healed.Store(true)
	for i, cr := range creds {
		cr.Invalidate()
		if tok, err := cr.Get(t.Context()); err != nil || tok.Value != fmt.Sprintf("tok-%d", i) {
			t.Errorf("credential %d once the store is back: %q, %v", i, tok.Value, err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		if err := core.WriteBackIdle(ctx, cr); err != nil {
			t.Errorf("credential %d's write-back: %v", i, err)
		}
		cancel()
	}
}

// No rendering of the new types shows a secret: a kind, a credential with
// an Initial token, a family and its Conf, an API. Finding: %s (or %q) of
// a *Credential dereferences its pointer fields one level down — fmt's
// bad-verb path prints them at depth 0 — and shows the Initial token
// (during a flight, the stale and fetched tokens too): Credential has no
// String method. (Before 0284ceb, even %v showed Initial, held inline.)
func TestRedteam28NewTypesPrintNoSecret(t *testing.T) {
	const tokenValue = "INITIAL-TOKEN-0123456789-secret"
	kind, err := core.NewCredentialKind(core.CredentialConfig{Name: "access_token"})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := kind.New(core.CredentialConfig{Key: "k/access_token", Initial: core.Token{Value: tokenValue, ExpiresAt: time.Now().Add(time.Hour)},
		Fetch: func(context.Context, core.FetchRequest) (core.Token, error) { return core.Token{}, errors.New("no") }})
	if err != nil {
		t.Fatal(err)
	}
	fam, err := core.NewConfFamily(core.Config{Token: core.NewSecret("push-token-secret"), EncryptMode: core.Normal})
	if err != nil {
		t.Fatal(err)
	}
	c, err := fam.New("wxfamilyapp01", cr)
	if err != nil {
		t.Fatal(err)
	}
	single := newConf(t, newServer(t), nil)
	for _, v := range []any{kind, cr, fam, c, c.API(), single, single.API(), *kind, *fam} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(verb, v)
			for _, secret := range []string{tokenValue, "push-token-secret", appSecret} {
				if strings.Contains(out, secret) {
					t.Errorf("%s of %T shows a secret: %s", verb, v, out)
				}
			}
		}
	}
	if s := c.String(); !strings.Contains(s, `"wxfamilyapp01"`) {
		t.Errorf("a family Conf's String does not show its AppID: %s", s)
	}
	if s := single.String(); !strings.Contains(s, appID) || !strings.Contains(fmt.Sprintf("%#v", single), appID) {
		t.Errorf("a single Conf's String does not show its AppID: %s", s)
	}
}

// The Confs of a family keep their tickets under their own AppID, fetched
// with their own access_token; one's rejection refreshes its own token.
func TestRedteam28FamilyTicketsPerAppID(t *testing.T) {
	s := wxtest.New(wxtest.Options{})
	t.Cleanup(s.Close)
	store := core.NewMemoryStore()
	fam, err := core.NewConfFamily(core.Config{Store: store, BaseURL: s.URL, HTTPClient: s.Client(), Now: s.Now, RetryBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var confs []*core.Conf
	for _, id := range []string{"wxfamA000000001", "wxfamB000000002"} {
		access := newConf(t, s, func(c *core.Config) { c.AppID, c.Store = id, store }).AccessTokenCredential()
		c, err := fam.New(id, access)
		if err != nil {
			t.Fatal(err)
		}
		confs = append(confs, c)
	}
	ctx := t.Context()
	var tickets []string
	for _, c := range confs {
		tk, err := c.JSAPITicket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk.Value)
		key := c.Credential("jsapi_ticket").Key()
		if !strings.Contains(key, "/"+c.AppID()+"/") {
			t.Errorf("%s's jsapi_ticket key %q is not under its AppID", c.AppID(), key)
		}
		if got, err := store.Get(ctx, key); err != nil || got.Value != tk.Value {
			t.Errorf("%s's store key holds %q, %v, want %q", c.AppID(), got.Value, err, tk.Value)
		}
	}
	if tickets[0] == tickets[1] {
		t.Errorf("two Confs of a family share a jsapi_ticket %q", tickets[0])
	}
	a0, _ := confs[0].AccessToken(ctx)
	a1, _ := confs[1].AccessToken(ctx)
	s.Revoke(a0.Value)
	if err := confs[0].Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, nil); err != nil {
		t.Fatalf("Do after a revocation: %v", err)
	}
	if b1, _ := confs[1].AccessToken(ctx); b1.Value != a1.Value {
		t.Errorf("the other Conf's token changed (%q → %q) on one's rejection", a1.Value, b1.Value)
	}
}

// ClearQuota makes one attempt; Do on the same Conf (sharing the API's
// settings with ClearQuota's copy) still retries afterwards.
func TestRedteam28ClearQuotaLeavesDoRetries(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	ctx := t.Context()
	if _, err := c.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	s.InjectFault(wxtest.PathClearQuota, wxtest.Busy(), 1)
	if err := c.ClearQuota(ctx); err == nil {
		t.Fatal("ClearQuota retried a busy reply")
	}
	s.InjectFault(wxtest.PathAPI, wxtest.Busy(), 2)
	if err := c.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, nil); err != nil {
		t.Errorf("Do after ClearQuota did not retry two busy replies: %v", err)
	}
}
