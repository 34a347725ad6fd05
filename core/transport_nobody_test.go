package core_test

// A rejected token is replaced even when the request cannot be sent again
// (issue 23, §1 item 9), and by Do when the caller put the current token
// in the query itself.

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// sendBody is a request body for wxtest.PathSend.
const sendBody = `{"touser":"OPENID","msgtype":"text","text":{"content":"hi"}}`

// A POST through the Transport whose body has no GetBody (an io.NopCloser,
// a pipe) and whose token WeChat rejects: the caller gets the rejection as
// it came (it is not sent again), but the token is replaced, so the next
// request carries the new one. Before, the dead token was kept until its
// scheduled refresh.
func TestTransportReplacesTheTokenWhenTheBodyCannotBeReplayed(t *testing.T) {
	bodies := map[string]func() io.Reader{
		"NopCloser": func() io.Reader { return io.NopCloser(strings.NewReader(sendBody)) },
		"pipe": func() io.Reader {
			pr, pw := io.Pipe()
			go func() {
				_, _ = io.WriteString(pw, sendBody)
				pw.Close()
			}()
			return pr
		},
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			s := newServer(t)
			c := newConf(t, s, classic)
			client := c.Client(s.Client().Transport)
			ctx := t.Context()
			dead, err := c.AccessToken(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s.Revoke(dead.Value)
			send := func() (int, string) {
				t.Helper()
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+wxtest.PathSend, body())
				if err != nil {
					t.Fatal(err)
				}
				if req.GetBody != nil {
					t.Fatal("the request's body can be replayed; the test needs one that cannot")
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				raw, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				var r struct {
					Errcode int `json:"errcode"`
				}
				if err := json.Unmarshal(raw, &r); err != nil {
					t.Fatalf("reply is not whole JSON (%d bytes): %v", len(raw), err)
				}
				return r.Errcode, string(raw)
			}

			code, _ := send()
			if !core.IsInvalidCredential(&core.APIError{Code: code}) {
				t.Fatalf("first POST: errcode %d, want the rejection back as it came", code)
			}
			if n := s.Calls(wxtest.PathSend); n != 1 {
				t.Errorf("the POST whose body cannot be replayed was sent %d times, want 1", n)
			}
			fresh, err := c.AccessToken(ctx)
			switch {
			case err != nil:
				t.Fatal(err)
			case fresh.Value == dead.Value:
				t.Fatal("after the rejection the Conf still holds the rejected token: the Transport did not replace it")
			case !s.TokenValid(fresh.Value):
				t.Fatal("the token that replaced the rejected one is not valid")
			}
			if code, _ := send(); code != 0 {
				t.Errorf("next POST: errcode %d, want 0 with the new token", code)
			}
			if n := s.Calls(wxtest.PathToken); n != 2 {
				t.Errorf("%d token fetches, want 2 (the first, one refresh)", n)
			}
		})
	}
}

// Do with the Conf's current token in the query (a caller that got it from
// AccessToken and added it itself): a rejection replaces it by the
// compare-and-refresh and the call is made once more, as for a token Do
// adds. Before, Do sent it unchanged, returned the rejection, and every
// later call kept the dead token.
func TestDoReplacesTheCurrentTokenTheCallerCarried(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, classic)
	ctx := t.Context()
	dead, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Revoke(dead.Value)
	var out ipList
	if err := c.Do(ctx, http.MethodGet, wxtest.PathAPI, url.Values{"access_token": {dead.Value}}, nil, &out); err != nil || len(out.IPList) == 0 {
		t.Fatalf("Do carrying the current, rejected token = %v (%d IPs); want a refresh and a retry", err, len(out.IPList))
	}
	fresh, err := c.AccessToken(ctx)
	if err != nil || fresh.Value == dead.Value || !s.TokenValid(fresh.Value) {
		t.Fatalf("AccessToken after the rejection: replaced %v, %v; want a new valid token", fresh.Value != dead.Value, err)
	}
	if n := s.Calls(wxtest.PathToken); n != 2 {
		t.Errorf("%d token fetches, want 2 (the first, one refresh)", n)
	}
	// A token the Conf does not keep is still sent unchanged, never
	// refreshed.
	err = c.Do(ctx, http.MethodGet, wxtest.PathAPI, url.Values{"access_token": {dead.Value}}, nil, nil)
	if !core.IsInvalidCredential(err) {
		t.Errorf("Do carrying a token the Conf no longer holds = %v, want its rejection", err)
	}
	if n := s.Calls(wxtest.PathToken); n != 2 {
		t.Errorf("%d token fetches after a call with a token not kept, want still 2", n)
	}
}
