package core_test

// The rejection limit (RejectedRefreshInterval) is keyed on the rejected
// token's value: it stops a loop on one rejected token, never the
// rejection of the next one (issue 23, §1 item 6).

import (
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// outsideFetch makes a classic /cgi-bin/token call the way another user of
// the AppID does (a test environment): WeChat mints a new token, and with
// no overlap the fleet's token answers 40001 at once.
func outsideFetch(t *testing.T, s *wxtest.Server) {
	t.Helper()
	q := url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {appSecret}}
	resp, err := s.Client().Get(s.URL + wxtest.PathToken + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("outside token call: HTTP %d", resp.StatusCode)
	}
}

// A fleet whose AppID a test environment also uses: every outside fetch
// invalidates the fleet's classic token, and each time the fleet replaces
// it with one fetch and no caller fails, however close together the outside
// fetches come (all of them inside one RejectedRefreshInterval). Before,
// the rejection of the newer token within 30 s of the last recovery was a
// *LimitError.
func TestRejectionOfANewerTokenIsNotLimited(t *testing.T) {
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret, Overlap: -1})
	t.Cleanup(s.Close)
	store := core.NewMemoryStore()
	fleet := []*core.Conf{
		newConf(t, s, func(c *core.Config) { classic(c); c.Store = store }),
		newConf(t, s, func(c *core.Config) { classic(c); c.Store = store }),
	}
	ctx := t.Context()
	for _, c := range fleet {
		if err := callAPI(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	const outside = 4
	start := s.Now()
	for i := range outside {
		outsideFetch(t, s)
		for j, c := range fleet {
			if err := callAPI(ctx, c); err != nil {
				t.Fatalf("outside fetch %d (%v after the first), Conf %d: Do = %v; want the rejected token replaced and the call made",
					i+1, s.Now().Sub(start), j+1, err)
			}
		}
		if n, want := s.Calls(wxtest.PathToken), 1+2*(i+1); n != want {
			t.Fatalf("after outside fetch %d: %d classic token calls, want %d (the fleet's first, and per outside fetch: it, one fleet refresh)", i+1, n, want)
		}
		s.Advance(core.DefaultRejectedRefreshInterval / (2 * outside)) // all inside one interval
	}
	tok, err := fleet[0].AccessToken(ctx)
	if err != nil || !s.TokenValid(tok.Value) {
		t.Errorf("AccessToken after the outside fetches: valid %v, %v; want a valid token", err == nil && s.TokenValid(tok.Value), err)
	}
}

// What the limit is for: a loop on one rejected token. stable_token keeps
// handing back a token every API rejects and no forced call is allowed;
// after the one fetch for that token, every rejection of it inside the
// interval is a *LimitError wrapping the 40001, without a token call.
func TestRejectionLimitStopsALoopOnOneToken(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, func(c *core.Config) { c.ForceRefreshDailyLimit = -1 })
	ctx := t.Context()
	bad, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Reject(bad.Value)
	var le *core.LimitError
	if err := callAPI(ctx, c); !errors.As(err, &le) || le.Limit != "ForceRefreshDailyLimit" {
		t.Fatalf("first Do with the rejected token = %v, want a *LimitError for ForceRefreshDailyLimit", err)
	}
	if n := s.Calls(wxtest.PathStableToken); n != 2 {
		t.Fatalf("%d stable_token calls, want 2 (the first fetch, one for the rejection)", n)
	}
	for i := range 5 {
		err := callAPI(ctx, c)
		if !errors.As(err, &le) || le.Limit != "RejectedRefreshInterval" || !core.IsInvalidCredential(err) {
			t.Fatalf("Do #%d with the same rejected token = %v, want a *LimitError for RejectedRefreshInterval wrapping the rejection", i+2, err)
		}
	}
	if n := s.Calls(wxtest.PathStableToken); n != 2 {
		t.Errorf("%d stable_token calls after the loop, want still 2", n)
	}
	s.Advance(core.DefaultRejectedRefreshInterval)
	_ = callAPI(ctx, c)
	if n := s.Calls(wxtest.PathStableToken); n != 3 {
		t.Errorf("after the interval: %d stable_token calls, want 3", n)
	}
}
