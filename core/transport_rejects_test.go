package core_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// A kind whose API says "rejected" with HTTP 401 and no errcode: its
// Rejects is honoured by Do and by the Transport alike.
func TestRejectsOnHTTPStatus(t *testing.T) {
	var (
		mu      sync.Mutex
		valid   = map[string]bool{}
		fetches atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/token" {
			tok := fmt.Sprintf("tok-%d", fetches.Add(1))
			valid[tok] = true
			fmt.Fprintf(w, `{"access_token":%q,"expires_in":3600}`, tok)
			return
		}
		if !valid[r.URL.Query().Get("access_token")] {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_token"}`)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer srv.Close()
	revokeAll := func() { mu.Lock(); clear(valid); mu.Unlock() }

	api, err := core.NewAPI(core.APIConfig{BaseURL: srv.URL, RetryBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := core.NewCredential(core.CredentialConfig{
		Name: "partner_token", Key: "partner/token",
		Fetch: func(ctx context.Context, _ core.FetchRequest) (core.Token, error) {
			return api.Issue(ctx, http.MethodGet, "/token", nil, nil, "access_token")
		},
		Rejects: func(err error) bool {
			var re *core.ReplyError
			return errors.As(err, &re) && re.StatusCode == http.StatusUnauthorized
		},
		Policy: core.Policy{RejectedRefreshInterval: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	authed := api.WithCredential(cr, "")
	ctx := t.Context()
	if err := authed.Do(ctx, http.MethodGet, "/v1/me", url.Values{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	revokeAll()
	if err := authed.Do(ctx, http.MethodGet, "/v1/me", nil, nil, nil); err != nil {
		t.Fatalf("Do after the token was revoked: %v", err)
	}
	revokeAll()
	resp, err := authed.Client(nil).Get(srv.URL + "/v1/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("through the Transport after the token was revoked: HTTP %d, want the request retried with a new token", resp.StatusCode)
	}
	if n := fetches.Load(); n != 3 {
		t.Errorf("%d token fetches, want 3 (first, after Do's 401, after the Transport's 401)", n)
	}
}
