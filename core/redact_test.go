package core_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// echoSecret is an AppSecret whose every 6-character run is unlike anything
// else an error or a log line holds (hex request ids, base64url tokens).
const echoSecret = "QzXwVyUtSrQpOnMlKjIhGfEdCbA98765"

// echoProxy stands between the client and the simulator like a gateway
// that echoes the request it failed on: the whole request line and body,
// after pad bytes of padding, cut to the first cut bytes (0: whole).
type echoProxy struct {
	status   int // the reply's HTTP status
	errcode  int // if not 0, a 200 JSON error whose errmsg echoes the request
	pad, cut int
}

func (p echoProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	echo := strings.Repeat("~", p.pad) + r.Method + " " + r.URL.RequestURI() + " " + string(body)
	if p.cut > 0 && p.cut < len(echo) {
		echo = echo[:p.cut]
	}
	if p.errcode != 0 {
		fmt.Fprintf(w, `{"errcode":%d,"errmsg":%q}`, p.errcode, "echo: "+echo)
		return
	}
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(p.status)
	io.WriteString(w, "<html><body>"+echo+"</body></html>")
}

// leaks returns the 6-character runs of secret found in text.
func leaks(text, secret string) []string {
	var found []string
	for i := 0; i+6 <= len(secret); i++ {
		if strings.Contains(text, secret[i:i+6]) {
			found = append(found, secret[i:i+6])
		}
	}
	return found
}

// renderings is every way an error reaches a person: its text, %+v, %#v,
// and the same for every error in its chain.
func renderings(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		out = append(out, e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e))
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				walk(inner)
			}
		}
	}
	walk(err)
	return out
}

// Replies that echo the request, whole or cut anywhere, for both token
// calls and for an API call carrying the access_token: no 6-character run
// of the AppSecret or the token reaches an error, any error in its chain,
// %+v, %#v or a Debug log line; and the errors keep their types.
func TestEchoedRequestsLeakNothing(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))

	wx := wxtest.New(wxtest.Options{AppID: appID, AppSecret: echoSecret})
	t.Cleanup(wx.Close)
	var tokens []string
	check := func(what string, err error, secrets ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		for _, r := range renderings(err) {
			for _, s := range secrets {
				if l := leaks(r, s); l != nil {
					t.Fatalf("%s: %q of a secret in %q", what, l, r)
				}
			}
		}
	}

	for _, api := range []core.TokenAPI{core.ClassicToken, core.StableToken} {
		for _, cut := range []int{0, 40, 60, 75, 90, 110, 150, 190, 230} {
			for _, pad := range []int{0, 150, 185} {
				for _, p := range []echoProxy{{status: 502}, {status: 200}, {errcode: 40125}, {errcode: 40164}} {
					p.pad, p.cut = pad, cut
					what := fmt.Sprintf("%v, %+v", api, p)
					srv := httptest.NewServer(p)
					c, err := core.New(core.Config{AppID: appID, AppSecret: core.NewSecret(echoSecret), TokenAPI: api, BaseURL: srv.URL,
						RetryBackoff: 1, MaxRetries: 1, ErrorBackoff: -1, Logger: logger})
					if err != nil {
						t.Fatal(err)
					}
					_, err = c.AccessToken(t.Context())
					srv.Close()
					check(what, err, echoSecret)
					var re *core.ReplyError
					switch {
					case p.errcode != 0 && !core.IsConfigError(err):
						t.Errorf("%s: %v is no longer a config error", what, err)
					case p.errcode == 0 && !errors.As(err, &re):
						t.Errorf("%s: %v is not a *core.ReplyError", what, err)
					case p.errcode == 0 && re.Body == "":
						t.Errorf("%s: the *core.ReplyError carries no body", what)
					}
				}
			}
		}
	}

	// An API call: the token is in the query.
	c := newConf(t, wx, func(c *core.Config) { c.AppSecret = core.NewSecret(echoSecret); c.Logger = logger })
	tok, err := c.AccessToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tokens = append(tokens, tok.Value)
	for _, cut := range []int{0, 50, 100, 140, 180} {
		p := echoProxy{status: 502, cut: cut}
		srv := httptest.NewServer(p)
		api, err := core.New(core.Config{AppID: appID, AppSecret: core.NewSecret(echoSecret), BaseURL: srv.URL, AccessToken: tok,
			Now: wx.Now, RetryBackoff: 1, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		err = api.Do(t.Context(), http.MethodGet, wxtest.PathAPI, nil, nil, nil)
		srv.Close()
		check(fmt.Sprintf("API call, %+v", p), err, echoSecret, tok.Value)
	}

	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), `"level":"DEBUG"`) {
		t.Fatal("no Debug line was logged; the log check is void")
	}
	for _, s := range append(tokens, echoSecret) {
		if l := leaks(logs.String(), s); l != nil {
			t.Fatalf("a log line holds %q of a secret", l)
		}
	}
}

// A secret of one character: errors keep their types (a config error
// stays one, a 5xx is still retried) however the text is redacted.
func TestShortSecretKeepsErrorTypes(t *testing.T) {
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: "x"})
	t.Cleanup(s.Close)
	c := newConf(t, s, func(c *core.Config) { c.AppSecret = core.NewSecret("x"); classic(c) })
	s.InjectFault(wxtest.PathToken, wxtest.Errcode(40125, "invalid appsecret x rid: 1"), 1)
	if _, err := c.AccessToken(t.Context()); !core.IsConfigError(err) || strings.Contains(err.Error(), "appsecret x") {
		t.Errorf("40125 with a 1-character secret = %v; want a config error without the secret", err)
	}
	c = newConf(t, s, func(c *core.Config) { c.AppSecret = core.NewSecret("x"); classic(c); c.ErrorBackoff = -1 })
	s.ResetCounters()
	s.InjectFault(wxtest.PathToken, wxtest.Fault{Status: 502, Body: "bad gateway: secret x"}, 2)
	if _, err := c.AccessToken(t.Context()); err != nil {
		t.Errorf("502, 502, then a token: %v; want the 5xx retried", err)
	}
	if n := s.Calls(wxtest.PathToken); n != 3 {
		t.Errorf("%d token calls, want 3", n)
	}
}
