package core_test

// Red team 2 (issue 25): secrets in the outputs of the new features, and
// secret rotation in the calls that send the AppSecret.

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// holdsRunOf reports whether text holds secret or any 6-character run of it.
func holdsRunOf(text, secret string) bool {
	if len(secret) < 6 {
		return strings.Contains(text, secret)
	}
	for i := 0; i+6 <= len(secret); i++ {
		if strings.Contains(text, secret[i:i+6]) {
			return true
		}
	}
	return false
}

// A quota/get reply with no quota object that echoes the AppSecret and the
// access_token (a misbehaving proxy, a future WeChat reply) must not put
// either into Quota's error: before, the *ReplyError's body was redacted by
// parameter names only.
func TestQuotaReplyEchoingSecretsIsRedacted(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	tok, err := c.AccessToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s.InjectFault("/cgi-bin/openapi/quota/get", wxtest.Fault{
		Body: `{"errcode":0,"errmsg":"ok","echo":"` + appSecret + `","seen":"` + tok.Value + `"}`,
	}, 1)
	_, err = c.Quota(t.Context(), wxtest.PathToken)
	if err == nil {
		t.Fatal("Quota accepted a reply without a quota object")
	}
	for what, secret := range map[string]string{"the AppSecret": appSecret, "the access_token": tok.Value} {
		if holdsRunOf(err.Error(), secret) {
			t.Errorf("Quota's error holds %s: %d bytes of text (not printed)", what, len(err.Error()))
		}
	}
}

// ClearQuotaByAppSecret on a Conf whose AppSecret comes from
// Config.AppSecretSource clears the quota with the source's secret:
// before, it said the AppSecret was missing (it looked at Config.AppSecret
// only), so clear_quota/v2 — the one way out of a used-up token quota —
// was unusable with a rotating secret.
func TestClearQuotaByAppSecretReadsTheSource(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, func(cfg *core.Config) {
		cfg.AppSecret, cfg.AppSecretSource = core.Secret{}, core.StaticSecret(core.NewSecret(appSecret))
	})
	if err := c.ClearQuotaByAppSecret(t.Context()); err != nil {
		t.Fatalf("ClearQuotaByAppSecret with AppSecretSource = %v; want the quota cleared", err)
	}
	if n := s.Calls("/cgi-bin/clear_quota/v2"); n != 1 {
		t.Fatalf("clear_quota/v2 calls = %d, want 1", n)
	}
}

// After the AppSecret is reset, ClearQuotaByAppSecret's refusal (40125) is
// ErrSecretRefused and marks the source's value refused, as a token call's
// does; the next call reads the source and clears with the new secret.
// Its error never holds either secret.
func TestClearQuotaByAppSecretRotates(t *testing.T) {
	s := newServer(t)
	src := &countingSource{value: appSecret}
	c := newConf(t, s, func(cfg *core.Config) { cfg.AppSecret, cfg.AppSecretSource = core.Secret{}, src.read })
	s.SetAppSecret(appID, newAppSecret)
	err := c.ClearQuotaByAppSecret(t.Context())
	if !errors.Is(err, core.ErrSecretRefused) {
		t.Fatalf("ClearQuotaByAppSecret with the old secret = %v; want ErrSecretRefused", err)
	}
	noSecretsIn(t, "the refusal", err.Error())
	src.set(newAppSecret, nil)
	if err := c.ClearQuotaByAppSecret(t.Context()); err != nil {
		t.Fatalf("ClearQuotaByAppSecret after the source holds the new secret = %v", err)
	}
}

// A reply to clear_quota/v2 that echoes the AppSecret (in errmsg) is
// redacted.
func TestClearQuotaByAppSecretEchoIsRedacted(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	s.InjectFault("/cgi-bin/clear_quota/v2", wxtest.Errcode(40125, "invalid appsecret "+appSecret+" hint: [x]"), 1)
	err := c.ClearQuotaByAppSecret(t.Context())
	if err == nil {
		t.Fatal("no error")
	}
	if holdsRunOf(err.Error(), appSecret) {
		t.Errorf("ClearQuotaByAppSecret's error holds the AppSecret")
	}
}

var _ = context.Background
