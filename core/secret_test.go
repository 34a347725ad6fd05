package core_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// server is a user's own type holding a Config in an unexported field,
// where fmt cannot call Config's methods and prints it by reflection.
type server struct {
	cfg  core.Config
	name string
}

// No rendering of a Secret, or of a Config holding secrets, shows them:
// every fmt verb, %+v/%#v of a user's struct with the Config in an
// unexported field, slog (text and JSON), encoding/json.
func TestSecretNeverRendered(t *testing.T) {
	const (
		secret = "QzXwVyUtSrQpOnMlKjIhGfEdCbA98765"
		token  = "MnBvCxZaSdFgHjKlPoIuYtReWq"
		aesKey = "PmQnRoSpTqUrVsWtXuYvZwAxByCzDaEbFcGdHeIfJgK"
	)
	cfg := core.Config{AppID: appID, AppSecret: core.NewSecret(secret), Token: core.NewSecret(token), EncodingAESKey: core.NewSecret(aesKey)}
	s := core.NewSecret(secret)
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%10.3s", "%p"} {
		out = append(out, fmt.Sprintf(verb, s), fmt.Sprintf(verb, &s), fmt.Sprintf(verb, cfg),
			fmt.Sprintf(verb, server{cfg, "x"}), fmt.Sprintf(verb, &server{cfg, "x"}), fmt.Sprintf(verb, []core.Config{cfg}))
	}
	out = append(out, fmt.Sprint(s, cfg, server{cfg, "x"}), fmt.Sprintln(s, cfg))
	for _, v := range []any{s, &s, map[string]core.Secret{"k": s}, struct{ AppSecret, Token core.Secret }{cfg.AppSecret, cfg.Token}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	txt, _ := s.MarshalText()
	out = append(out, string(txt), s.String(), s.GoString())
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		slog.New(h).Info("config", "secret", s, "cfg", cfg, "server", server{cfg, "x"}, "any", any(s))
	}
	out = append(out, logs.String())
	for _, o := range out {
		for _, v := range []string{secret, token, aesKey} {
			if l := leaks(o, v); l != nil {
				t.Fatalf("%q of a secret in %q", l, o)
			}
		}
	}
	if s.Reveal() != secret || cfg.AppSecret.Reveal() != secret {
		t.Error("Reveal does not return the secret")
	}
}

// A Secret reads from JSON and text, and the zero Secret is empty.
func TestSecretUnmarshal(t *testing.T) {
	var c struct {
		AppSecret core.Secret `json:"app_secret"`
		Missing   core.Secret `json:"missing"`
	}
	if err := json.Unmarshal([]byte(`{"app_secret":"from-json","missing":null}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.AppSecret.Reveal() != "from-json" || !c.Missing.IsZero() || c.Missing.String() != "" {
		t.Errorf("unmarshalled %q and %q", c.AppSecret.Reveal(), c.Missing.Reveal())
	}
	if err := json.Unmarshal([]byte(`{"app_secret":42}`), &c); err == nil {
		t.Error("a number was accepted as a Secret")
	}
	var s core.Secret
	if err := s.UnmarshalText([]byte("from-text")); err != nil || s.Reveal() != "from-text" {
		t.Errorf("UnmarshalText: %q, %v", s.Reveal(), err)
	}
	if !core.NewSecret("").IsZero() {
		t.Error(`NewSecret("") is not the zero Secret`)
	}
}

// A Token printed by mistake shows its length and expiry, never its value;
// JSON (the token server's wire form) still carries it.
func TestTokenPrintsWithoutItsValue(t *testing.T) {
	tok := core.Token{Value: "access-token-value-9f8e7d6c", ExpiresAt: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("token", "tok", tok)
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s %q", tok, tok, tok, tok, tok), fmt.Sprint(&tok), logs.String()} {
		if strings.Contains(s, "value-9f8e") || strings.Contains(s, "access-token") {
			t.Errorf("a rendering shows the token: %s", s)
		}
	}
	if b, _ := json.Marshal(tok); !bytes.Contains(b, []byte(tok.Value)) {
		t.Errorf("JSON %s lost the value", b)
	}
}
