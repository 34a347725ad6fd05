package wxtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	appID     = "wx0123456789abcdef"
	appSecret = "0123456789abcdef0123456789abcdef"
)

// reply is the union of the fields the simulated endpoints answer.
type reply struct {
	Status      int      `json:"-"`
	Raw         string   `json:"-"`
	Errcode     int      `json:"errcode"`
	Errmsg      string   `json:"errmsg"`
	AccessToken string   `json:"access_token"`
	ExpiresIn   int64    `json:"expires_in"`
	Ticket      string   `json:"ticket"`
	IPList      []string `json:"ip_list"`
}

func newServer(t *testing.T, opts wxtest.Options) *wxtest.Server {
	t.Helper()
	if opts.AppID == "" {
		opts.AppID = appID
	}
	if opts.AppSecret == "" {
		opts.AppSecret = appSecret
	}
	s := wxtest.New(opts)
	t.Cleanup(s.Close)
	return s
}

// do sends a request and decodes a JSON reply; Raw always holds the body.
func do(t *testing.T, s *wxtest.Server, ctx context.Context, method, path string, q url.Values, body string) (reply, error) {
	t.Helper()
	u := s.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	r := reply{Status: resp.StatusCode, Raw: string(b)}
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &r); err != nil {
			r.Errcode = -999 // marks "not JSON" for the tests that expect JSON
		}
	}
	return r, nil
}

// must is do that fails the test on a transport error or a non-200 status.
func must(t *testing.T, s *wxtest.Server, method, path string, q url.Values, body string) reply {
	t.Helper()
	r, err := do(t, s, context.Background(), method, path, q, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != http.StatusOK {
		t.Fatalf("%s %s: HTTP %d %q", method, path, r.Status, r.Raw)
	}
	return r
}

func classicQuery(appid, secret string) url.Values {
	return url.Values{"grant_type": {"client_credential"}, "appid": {appid}, "secret": {secret}}
}

func classic(t *testing.T, s *wxtest.Server) reply {
	t.Helper()
	return must(t, s, http.MethodGet, wxtest.PathToken, classicQuery(appID, appSecret), "")
}

// classicToken fetches a classic token and fails the test on an error reply.
func classicToken(t *testing.T, s *wxtest.Server) string {
	t.Helper()
	r := classic(t, s)
	if r.Errcode != 0 || r.AccessToken == "" {
		t.Fatalf("classic token: %s", r.Raw)
	}
	return r.AccessToken
}

func stableBody(appid, secret string, force bool) string {
	b, _ := json.Marshal(map[string]any{
		"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": force,
	})
	return string(b)
}

func stable(t *testing.T, s *wxtest.Server, force bool) reply {
	t.Helper()
	return must(t, s, http.MethodPost, wxtest.PathStableToken, nil, stableBody(appID, appSecret, force))
}

// stableToken fetches a stable token and fails the test on an error reply.
func stableToken(t *testing.T, s *wxtest.Server, force bool) string {
	t.Helper()
	r := stable(t, s, force)
	if r.Errcode != 0 || r.AccessToken == "" {
		t.Fatalf("stable token: %s", r.Raw)
	}
	return r.AccessToken
}

// api calls PathAPI with token and returns the errcode (0 on success).
func api(t *testing.T, s *wxtest.Server, token string) int {
	t.Helper()
	r := must(t, s, http.MethodGet, wxtest.PathAPI, url.Values{"access_token": {token}}, "")
	if r.Errcode == 0 && (len(r.IPList) != 1 || r.IPList[0] != "127.0.0.1") {
		t.Fatalf("getcallbackip: %s", r.Raw)
	}
	return r.Errcode
}

// wantAPI checks that an API call with token answers errcode want, and that
// TokenValid agrees.
func wantAPI(t *testing.T, s *wxtest.Server, token string, want int) {
	t.Helper()
	if got := api(t, s, token); got != want {
		t.Fatalf("API call with token %.8s…: errcode %d, want %d", token, got, want)
	}
	if got := s.TokenValid(token); got != (want == 0) {
		t.Fatalf("TokenValid(%.8s…) = %v, want %v", token, got, want == 0)
	}
}

func ticket(t *testing.T, s *wxtest.Server, token, typ string) reply {
	t.Helper()
	q := url.Values{"type": {typ}}
	if token != "" {
		q.Set("access_token", token)
	}
	return must(t, s, http.MethodGet, wxtest.PathTicket, q, "")
}

// receive reads one value from ch or fails after a generous timeout (a
// safety net against hangs, not a synchronisation).
func receive(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func isJSON(s string) bool { return json.Valid(bytes.TrimSpace([]byte(s))) }
