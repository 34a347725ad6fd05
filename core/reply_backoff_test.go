package core_test

// A token-endpoint reply of HTTP 200 that is not a token backs off like
// the other refused replies (issue 23, §1 item 8).

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// replyToken is the token value the malformed replies carry: it must
// appear in no error.
const replyToken = "ACCESS-TOKEN-IN-A-BAD-REPLY-0123456789"

// Each malformed reply: the first call of each Conf sharing a store makes
// one request and gets the typed *ReplyError; every later call inside
// ErrorBackoff gets a *LimitError wrapping it, without a request; after
// ErrorBackoff the call is made again. No error holds the token or the
// AppSecret. Before, every call fetched again.
func TestMalformedTokenRepliesBackOff(t *testing.T) {
	tests := []struct {
		name, body, reason string
	}{
		{"expires_in 0", `{"access_token":"` + replyToken + `","expires_in":0}`, "expires_in is 0, not a positive number of seconds"},
		{"expires_in negative", `{"access_token":"` + replyToken + `","expires_in":-5}`, "expires_in is -5, not a positive number of seconds"},
		{"no expires_in", `{"access_token":"` + replyToken + `"}`, "no expires_in in the reply"},
		{"no token", `{"expires_in":7200}`, "no access_token and no errcode in the reply"},
		{"empty token", `{"access_token":"","expires_in":7200}`, "access_token is empty or not a string"},
		{"cut short", `{"access_token":"` + replyToken + `","expi`, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			store := core.NewMemoryStore()
			fleet := []*core.Conf{
				newConf(t, s, func(c *core.Config) { c.Store = store }),
				newConf(t, s, func(c *core.Config) { c.Store = store }),
			}
			ctx := t.Context()
			// One bad reply per Conf; the server is healthy after them, so
			// any request the back-off lets through would succeed.
			s.InjectFault(wxtest.PathStableToken, wxtest.Fault{Status: 200, Body: tt.body}, len(fleet))
			for i, c := range fleet {
				_, err := c.AccessToken(ctx)
				var re *core.ReplyError
				if !errors.As(err, &re) {
					t.Fatalf("Conf %d: first AccessToken = %v; want a *core.ReplyError", i+1, err)
				}
				if !strings.Contains(re.Reason, tt.reason) {
					t.Errorf("Conf %d: ReplyError.Reason = %q, want it to say %q", i+1, re.Reason, tt.reason)
				}
				noSecretIn(t, err)
			}
			for i, c := range fleet {
				for j := range 5 {
					_, err := c.AccessToken(ctx)
					var le *core.LimitError
					var re *core.ReplyError
					if !errors.As(err, &le) || le.Limit != "ErrorBackoff" || !errors.As(err, &re) {
						t.Fatalf("Conf %d: AccessToken #%d inside ErrorBackoff = %v; want a *core.LimitError for ErrorBackoff wrapping the *core.ReplyError", i+1, j+2, err)
					}
					if want := s.Now().Add(core.DefaultErrorBackoff); le.Until.After(want) {
						t.Errorf("LimitError.Until = %v, want at most %v", le.Until, want)
					}
					noSecretIn(t, err)
				}
			}
			if n := s.Calls(wxtest.PathStableToken); n != len(fleet) {
				t.Fatalf("%d token requests from %d Confs inside ErrorBackoff, want %d (one each)", n, len(fleet), len(fleet))
			}
			s.Advance(core.DefaultErrorBackoff)
			tok, err := fleet[0].AccessToken(ctx)
			if err != nil || !s.TokenValid(tok.Value) {
				t.Fatalf("AccessToken after ErrorBackoff: %v; want a fetch and a valid token", err)
			}
			// The other Conf gets the token the first put in the store.
			if got, err := fleet[1].AccessToken(ctx); err != nil || got.Value != tok.Value {
				t.Errorf("second Conf after the first fetched: same token %v, %v; want the stored token", got.Value == tok.Value, err)
			}
			if n := s.Calls(wxtest.PathStableToken); n != len(fleet)+1 {
				t.Errorf("%d token requests in all, want %d", n, len(fleet)+1)
			}
		})
	}
}

// noSecretIn fails the test if err's text holds the AppSecret or the
// token of a malformed reply.
func noSecretIn(t *testing.T, err error) {
	t.Helper()
	if msg := err.Error(); strings.Contains(msg, appSecret) || strings.Contains(msg, replyToken) {
		t.Errorf("an error holds the AppSecret or a token (%d bytes of text; not printed)", len(msg))
	}
}

// A Fetch of one's own that returns an empty value is refused
// (ErrEmptyToken) and backs off the same way: one call per ErrorBackoff.
func TestEmptyFetchBacksOff(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var clock atomic.Int64
	var calls atomic.Int32
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "partner_token", Key: "test/partner/token",
		Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			calls.Add(1)
			return core.Token{}, nil
		},
		Now: func() time.Time { return now.Add(time.Duration(clock.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := cr.Get(ctx); !errors.Is(err, core.ErrEmptyToken) {
		t.Fatalf("first Get = %v, want an error wrapping ErrEmptyToken", err)
	}
	for range 3 {
		var le *core.LimitError
		if _, err := cr.Get(ctx); !errors.As(err, &le) || le.Limit != "ErrorBackoff" || !errors.Is(err, core.ErrEmptyToken) {
			t.Fatalf("Get inside ErrorBackoff = %v, want a *LimitError for ErrorBackoff wrapping ErrEmptyToken", err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d fetches inside ErrorBackoff, want 1", n)
	}
	clock.Store(int64(core.DefaultErrorBackoff))
	_, _ = cr.Get(ctx)
	if n := calls.Load(); n != 2 {
		t.Errorf("after ErrorBackoff: %d fetches, want 2", n)
	}
}
