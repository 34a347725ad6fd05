package core_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// sessionRenderings is every way a Session reaches a person.
func sessionRenderings(s core.Session) []string {
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		out = append(out, fmt.Sprintf(verb, s), fmt.Sprintf(verb, &s), fmt.Sprintf(verb, struct{ s core.Session }{s}))
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("login", "session", s)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("login", "session", s)
	return append(out, string(b), logs.String())
}

// noLeak fails t if any of texts holds a run of 6 characters of a secret.
func noLeak(t *testing.T, texts []string, secrets ...string) {
	t.Helper()
	for _, text := range texts {
		for _, s := range secrets {
			if l := leaks(text, s); l != nil {
				t.Fatalf("%q of a secret in %q", l, text)
			}
		}
	}
}

func TestCode2Session(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	code := s.IssueLoginCode("oUser1")
	sess, err := c.Code2Session(t.Context(), code)
	if err != nil {
		t.Fatal(err)
	}
	if sess.OpenID != "oUser1" || len(sess.SessionKey.Reveal()) != 24 || sess.UnionID != "" {
		t.Fatalf("Session = {%q, %d-character key, %q}; want oUser1, a 24-character session_key, no unionid", sess.OpenID, len(sess.SessionKey.Reveal()), sess.UnionID)
	}
	noLeak(t, sessionRenderings(sess), sess.SessionKey.Reveal(), appSecret)
	if out := fmt.Sprintf("%+v", sess); !strings.Contains(out, "oUser1") || !strings.Contains(out, "REDACTED") {
		t.Errorf("%%+v = %s; want the openid and REDACTED", out)
	}
	if n := tokenCalls(s); n != 0 {
		t.Errorf("%d access_token calls; code2Session takes the AppSecret, not a token", n)
	}

	// The code is single use: the second exchange is refused, not retried.
	_, err = c.Code2Session(t.Context(), code)
	wantAPIError(t, err, 40163)
	noLeak(t, renderings(err), appSecret, sess.SessionKey.Reveal())
	if n := s.Calls(wxtest.PathCode2Session); n != 2 {
		t.Errorf("%d calls to %s, want 2 (40163 is not retried)", n, wxtest.PathCode2Session)
	}
}

// wantAPIError fails t unless err is an *APIError with errcode code, and
// not one the API retries.
func wantAPIError(t *testing.T, err error, code int) {
	t.Helper()
	var e *core.APIError
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("err = %v; want an *APIError with errcode %d", err, code)
	}
	if core.IsTemporary(err) || core.IsConfigError(err) || core.IsInvalidCredential(err) {
		t.Errorf("errcode %d is Temporary, ConfigError or InvalidCredential: %v", code, err)
	}
	if !strings.HasPrefix(err.Error(), "wechatconf: ") || strings.Count(err.Error(), "wechatconf: ") != 1 {
		t.Errorf("error text %q: want one \"wechatconf: \" prefix", err)
	}
}

func TestCode2SessionRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		code func(*wxtest.Server) string
		want int
	}{
		{"unknown", func(*wxtest.Server) string { return "not-a-code" }, 40029},
		{"expired", func(s *wxtest.Server) string {
			c := s.IssueLoginCode("oUser1")
			s.Advance(wxtest.LoginCodeTTL)
			return c
		}, 40029},
		{"blocked", func(s *wxtest.Server) string { return s.IssueBlockedLoginCode("oRisky") }, 40226},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			c := newConf(t, s, nil)
			sess, err := c.Code2Session(t.Context(), tc.code(s))
			wantAPIError(t, err, tc.want)
			if sess != (core.Session{}) {
				t.Errorf("Session = %+v with the error; want the zero Session", sess)
			}
			noLeak(t, renderings(err), appSecret)
			if n := s.Calls(wxtest.PathCode2Session); n != 1 {
				t.Errorf("%d calls, want 1: errcode %d is not retried", n, tc.want)
			}
		})
	}
}

// Busy replies are retried like every call; the code still works after them.
func TestCode2SessionRetriesBusy(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	code := s.IssueLoginCode("oUser1")
	s.InjectFault(wxtest.PathCode2Session, wxtest.Busy(), 1)
	s.InjectFault(wxtest.PathCode2Session, wxtest.Errcode(45011, "api minute-quota reach limit"), 1)
	sess, err := c.Code2Session(t.Context(), code)
	if err != nil || sess.OpenID != "oUser1" {
		t.Fatalf("Code2Session = %+v, %v; want oUser1 after a -1 and a 45011", sess, err)
	}
	if n := s.Calls(wxtest.PathCode2Session); n != 3 {
		t.Errorf("%d calls, want 3", n)
	}
}

func TestCode2SessionNeedsConfig(t *testing.T) {
	for _, tc := range []struct {
		name, code, want string
		edit             func(*core.Config)
	}{
		{"no AppSecret", "c", "Config.AppSecret", func(c *core.Config) { c.AppSecret = core.Secret{} }},
		{"no AppID", "c", "Config.AppID", func(c *core.Config) { c.AppID = "" }},
		{"empty code", "", "code is empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			c := newConf(t, s, tc.edit)
			_, err := c.Code2Session(t.Context(), tc.code)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "wechatconf: ") {
				t.Fatalf("err = %v; want a wechatconf error naming %q", err, tc.want)
			}
			var e *core.APIError
			if errors.As(err, &e) {
				t.Errorf("err is an *APIError: %v", err)
			}
			if n := s.Calls(wxtest.PathCode2Session); n != 0 {
				t.Errorf("%d calls to %s; want none", n, wxtest.PathCode2Session)
			}
			noLeak(t, renderings(err), appSecret)
		})
	}
}

// A reply without an openid or a session_key is a *ReplyError, and its
// body shows neither the session_key nor the AppSecret.
func TestCode2SessionMalformedReply(t *testing.T) {
	const key = "SeSsIoNkEy0123456789ab=="
	for _, body := range []string{
		`{"session_key":"` + key + `"}`,
		`{"openid":"oUser1"}`,
		`{"openid":"oUser1","session_key":""}`,
		`{"openid":17,"session_key":"` + key + `","note":"` + appSecret + `"}`,
		`{"openid":"","session_key":"SeSsIoNkEy0123456789ab\u003d\u003d","unionid":"u"}`,
	} {
		s := newServer(t)
		c := newConf(t, s, nil)
		s.InjectFault(wxtest.PathCode2Session, wxtest.Fault{Body: body}, 1)
		sess, err := c.Code2Session(t.Context(), "c")
		var re *core.ReplyError
		if !errors.As(err, &re) {
			t.Fatalf("reply %s: Code2Session = %+v, %v; want a *ReplyError", body, sess, err)
		}
		if sess != (core.Session{}) {
			t.Errorf("reply %s: Session = %+v with the error", body, sess)
		}
		noLeak(t, renderings(err), key, appSecret)
	}
}

// A unionid, when the Mini Program is bound to an Open Platform account.
func TestCode2SessionUnionID(t *testing.T) {
	const key = "AbCdEfGhIjKlMnOpQrStUv=="
	s := newServer(t)
	c := newConf(t, s, nil)
	s.InjectFault(wxtest.PathCode2Session, wxtest.Fault{Body: `{"openid":"oUser1","session_key":"` + key + `","unionid":"uUnion1"}`}, 1)
	sess, err := c.Code2Session(t.Context(), "c")
	if err != nil || sess.OpenID != "oUser1" || sess.UnionID != "uUnion1" || sess.SessionKey.Reveal() != key {
		t.Fatalf("Code2Session = %+v, %v", sess, err)
	}
	noLeak(t, sessionRenderings(sess), key)
}
