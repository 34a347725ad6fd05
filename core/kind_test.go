package core_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

func TestCredentialKindFieldsAreTheKindsOrEachCredentials(t *testing.T) {
	fetch := func(context.Context, core.FetchRequest) (core.Token, error) { return core.Token{}, nil }
	for name, cfg := range map[string]core.CredentialConfig{
		"no name": {},
		"a key":   {Name: "t", Key: "k"},
		"a fetch": {Name: "t", Fetch: fetch},
		"initial": {Name: "t", Initial: core.Token{Value: "v"}},
		"policy":  {Name: "t", Policy: core.Policy{RefreshAhead: time.Second, ExpiryMargin: time.Minute}},
	} {
		if _, err := core.NewCredentialKind(cfg); err == nil {
			t.Errorf("NewCredentialKind with %s: no error", name)
		}
	}
	kind, err := core.NewCredentialKind(core.CredentialConfig{Name: "t", Policy: core.Policy{FetchWithoutStore: true}})
	if err != nil {
		t.Fatal(err)
	}
	decode := func(t core.Token) (core.Token, error) { return t, nil }
	for name, cfg := range map[string]core.CredentialConfig{
		"no key":                      {Fetch: fetch},
		"no fetch":                    {Key: "k"},
		"a name":                      {Key: "k", Fetch: fetch, Name: "other"},
		"a store":                     {Key: "k", Fetch: fetch, Store: core.NewMemoryStore()},
		"a policy":                    {Key: "k", Fetch: fetch, Policy: core.Policy{RefreshAhead: time.Hour}},
		"a decode, FetchWithoutStore": {Key: "k", Fetch: fetch, Decode: decode},
	} {
		if _, err := kind.New(cfg); err == nil || !strings.Contains(err.Error(), "t:") {
			t.Errorf("Kind.New with %s: %v, want an error naming the kind", name, err)
		}
	}
}

// Each credential of a kind keeps its own state: one's rejection limit,
// back-off and token do not reach another's.
func TestCredentialsOfAKindKeepTheirOwnState(t *testing.T) {
	ctx := context.Background()
	kind, err := core.NewCredentialKind(core.CredentialConfig{Name: "t", Store: core.NewMemoryStore(), Policy: core.Policy{ErrorBackoff: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	var calls [2]atomic.Int32
	var fail atomic.Bool
	creds := make([]*core.Credential, 2)
	for i := range creds {
		creds[i], err = kind.New(core.CredentialConfig{Key: fmt.Sprintf("k/%d", i), Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			n := calls[i].Add(1)
			if i == 0 && fail.Load() {
				return core.Token{}, &core.APIError{Code: 40013, Message: "invalid appid"} // a configuration error: backs off
			}
			return core.Token{Value: fmt.Sprintf("tok-%d-%d", i, n), ExpiresAt: time.Now().Add(2 * time.Hour)}, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, cr := range creds {
		tok, err := cr.Get(ctx)
		if err != nil || tok.Value != fmt.Sprintf("tok-%d-1", i) {
			t.Fatalf("credential %d: %v %v", i, tok, err)
		}
	}
	// Credential 0 fails with a configuration error and backs off.
	fail.Store(true)
	if _, err := creds[0].Refresh(ctx, "tok-0-1"); err == nil {
		t.Fatal("the failing fetch succeeded")
	}
	var le *core.LimitError
	if _, err := creds[0].Refresh(ctx, "tok-0-1"); !errors.As(err, &le) {
		t.Fatalf("credential 0 after a configuration error: %v, want a *LimitError", err)
	}
	// Credential 1 is not held back, and its token is its own.
	tok, err := creds[1].Refresh(ctx, "tok-1-1")
	if err != nil || tok.Value != "tok-1-2" {
		t.Fatalf("credential 1 after credential 0 backed off: %v %v", tok, err)
	}
	if got, _ := creds[0].Get(ctx); got.Value != "tok-0-1" {
		t.Fatalf("credential 0 serves %q", got.Value)
	}
}

func TestConfFamilyConfsAreTheirAccounts(t *testing.T) {
	store := core.NewMemoryStore()
	for name, cfg := range map[string]core.Config{
		"an AppID":     {AppID: "wx1"},
		"an AppSecret": {AppSecret: core.NewSecret("s")},
		"a token":      {AccessToken: core.Token{Value: "t"}},
	} {
		if _, err := core.NewConfFamily(cfg); err == nil {
			t.Errorf("NewConfFamily with %s: no error", name)
		}
	}
	family, err := core.NewConfFamily(core.Config{Store: store, KeyPrefix: "p"})
	if err != nil {
		t.Fatal(err)
	}
	kind, err := core.NewCredentialKind(core.CredentialConfig{Name: "access_token", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	access := func(appid string) *core.Credential {
		cr, err := kind.New(core.CredentialConfig{Key: "p/" + appid + "/access_token", Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			return core.Token{Value: "token-of-" + appid, ExpiresAt: time.Now().Add(time.Hour)}, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		return cr
	}
	if _, err := family.New("wx1", nil); err == nil {
		t.Error("ConfFamily.New with no credential: no error")
	}
	a, err := family.New("wxaaa", access("wxaaa"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := family.New("wxbbb", access("wxbbb"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		conf  *core.Conf
		appid string
	}{{a, "wxaaa"}, {b, "wxbbb"}} {
		if c.conf.AppID() != c.appid || !strings.Contains(c.conf.String(), `AppID: "`+c.appid+`"`) {
			t.Errorf("Conf of %s: AppID %q, String %s", c.appid, c.conf.AppID(), c.conf)
		}
		if k := c.conf.Credential("jsapi_ticket").Key(); k != "p/"+c.appid+"/jsapi_ticket" {
			t.Errorf("Conf of %s: jsapi_ticket key %q", c.appid, k)
		}
		tok, err := c.conf.AccessToken(context.Background())
		if err != nil || tok.Value != "token-of-"+c.appid {
			t.Errorf("Conf of %s: access_token %v %v", c.appid, tok, err)
		}
	}
}

// A FuncStore whose Get fails at once is a store that is down, not a lock
// lost: its refresh said "reading the stored token outlived the lease"
// whatever the time it took (the lease's context was read after its
// cancel), so the outage rules did not apply (new-user trial, issue 27).
func TestFuncStoreGetFailingIsTheStoreDown(t *testing.T) {
	down := errors.New("db down")
	store, err := core.NewFuncStore(core.StoreFuncs{
		Get: func(context.Context, string) (core.Token, error) { return core.Token{}, down },
		Set: func(context.Context, string, core.Token) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := core.NewCredential(core.CredentialConfig{Name: "t", Key: "k", Store: store, Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
		return core.Token{Value: "v", ExpiresAt: time.Now().Add(time.Hour)}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cr.Get(context.Background())
	if !errors.Is(err, core.ErrStoreUnavailable) || errors.Is(err, core.ErrLockLost) || !errors.Is(err, down) || strings.Contains(err.Error(), "lease") {
		t.Fatalf("Get on a FuncStore whose Get fails: %v; want ErrStoreUnavailable wrapping its error, no lock lost", err)
	}
}
