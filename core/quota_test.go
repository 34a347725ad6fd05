package core_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// newQuotaServer is a simulated WeChat whose token quota is limit a day.
func newQuotaServer(t *testing.T, limit int) *wxtest.Server {
	t.Helper()
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret, DailyQuota: limit,
		Start: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)})
	t.Cleanup(s.Close)
	return s
}

func classicConf(t *testing.T, s *wxtest.Server) *core.Conf {
	t.Helper()
	return newConf(t, s, func(c *core.Config) { c.TokenAPI = core.ClassicToken })
}

// TestQuotaReportsTheFetches tests that Quota reads WeChat's count with
// the access_token the Conf holds (no fetch of its own) and reports the
// token fetches made.
func TestQuotaReportsTheFetches(t *testing.T) {
	s := newQuotaServer(t, 5)
	c := classicConf(t, s)
	ctx := t.Context()
	if _, err := c.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ForceRefreshAccessToken(ctx, ""); err != nil {
		t.Fatal(err)
	}
	q, err := c.Quota(ctx, "/cgi-bin/token")
	if err != nil {
		t.Fatal(err)
	}
	if want := (core.Quota{DailyLimit: 5, Used: 2, Remain: 3}); q != want {
		t.Errorf("Quota(/cgi-bin/token) = %+v, want %+v", q, want)
	}
	if n := tokenCalls(s); n != 2 {
		t.Errorf("%d token calls, want 2: Quota uses the token the Conf holds", n)
	}
}

// TestQuotaErrors tests Quota's refusals: an empty path without a
// request, WeChat's 76021 as an *APIError with what to do, and a reply
// without a quota object as a *ReplyError rather than a zero Quota.
func TestQuotaErrors(t *testing.T) {
	s := newQuotaServer(t, 0)
	c := classicConf(t, s)
	ctx := t.Context()
	if _, err := c.Quota(ctx, ""); err == nil || s.Calls(wxtest.PathQuotaGet) != 0 {
		t.Errorf("Quota(\"\") = %v after %d calls; want an error and no call", err, s.Calls(wxtest.PathQuotaGet))
	}
	_, err := c.Quota(ctx, "/cgi-bin/no/such/api")
	var apiErr *core.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 76021 || !strings.Contains(err.Error(), "cgi_path") {
		t.Errorf("Quota of an unknown path: %v, want errcode 76021 saying what to give", err)
	}
	s.InjectFault(wxtest.PathQuotaGet, wxtest.EmptyReply(), 1)
	q, err := c.Quota(ctx, "/cgi-bin/token")
	var replyErr *core.ReplyError
	if !errors.As(err, &replyErr) {
		t.Errorf("Quota with a reply of {}: %+v, %v; want a *ReplyError", q, err)
	}
}

// TestClearQuotaLetsTheFleetFetchAgain tests that ClearQuota, with the
// token the Conf holds, clears the count that made the token call answer
// 45009, and that a rejected token is replaced and the call made once more.
func TestClearQuotaLetsTheFleetFetchAgain(t *testing.T) {
	s := newQuotaServer(t, 2)
	c := classicConf(t, s)
	ctx := t.Context()
	tok, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ForceRefreshAccessToken(ctx, tok.Value); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ForceRefreshAccessToken(ctx, ""); !core.IsQuotaExceeded(err) {
		t.Fatalf("third fetch: %v, want 45009", err)
	}
	if err := c.ClearQuota(ctx); err != nil {
		t.Fatal(err)
	}
	if q, err := c.Quota(ctx, "/cgi-bin/token"); err != nil || q.Used != 0 {
		t.Fatalf("Quota after ClearQuota = %+v, %v; want used 0", q, err)
	}
	// The 45009 started this Conf's ErrorBackoff: no token call for a
	// minute, cleared quota or not.
	s.Advance(core.DefaultErrorBackoff)
	held, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Revoke(held.Value)
	before := s.Calls(wxtest.PathClearQuota)
	if err := c.ClearQuota(ctx); err != nil {
		t.Fatalf("ClearQuota with a revoked token: %v, want the token replaced and the call made again", err)
	}
	if n := s.Calls(wxtest.PathClearQuota) - before; n != 2 {
		t.Errorf("ClearQuota with a revoked token: %d calls, want 2 (rejected, then with the new token)", n)
	}
}

// TestClearQuotaIsMadeOnce tests that ClearQuota and ClearQuotaByAppSecret
// are not retried on a busy reply or an HTTP 5xx (a clear that took
// effect would spend another of the month's chances), and that the call
// past ClearQuotaMonthlyLimit is 48006, which IsQuotaExceeded reports.
func TestClearQuotaIsMadeOnce(t *testing.T) {
	s := newQuotaServer(t, 0)
	c := classicConf(t, s)
	ctx := t.Context()
	for _, f := range []wxtest.Fault{wxtest.Busy(), wxtest.HTTPStatus(http.StatusBadGateway)} {
		for path, clear := range map[string]func() error{
			wxtest.PathClearQuota:   func() error { return c.ClearQuota(ctx) },
			wxtest.PathClearQuotaV2: func() error { return c.ClearQuotaByAppSecret(ctx) },
		} {
			before := s.Calls(path)
			s.InjectFault(path, f, 1)
			if err := clear(); err == nil {
				t.Errorf("%s answered %d: no error", path, f.Status)
			}
			if n := s.Calls(path) - before; n != 1 {
				t.Errorf("%s answered %d %s: %d calls, want 1 (no retry)", path, f.Status, f.Body, n)
			}
		}
	}
	for i := 1; i <= core.ClearQuotaMonthlyLimit; i++ {
		if err := c.ClearQuota(ctx); err != nil {
			t.Fatalf("clear %d of the month: %v", i, err)
		}
	}
	for _, err := range []error{c.ClearQuota(ctx), c.ClearQuotaByAppSecret(ctx)} {
		var apiErr *core.APIError
		if !errors.As(err, &apiErr) || apiErr.Code != 48006 || !core.IsQuotaExceeded(err) || !strings.Contains(err.Error(), "10 chances") {
			t.Errorf("clear %d of the month: %v, want 48006, a quota error saying why", core.ClearQuotaMonthlyLimit+1, err)
		}
	}
}

// TestClearQuotaByAppSecretNeedsNoToken tests that ClearQuotaByAppSecret
// clears a quota used up to the last token fetch without any token call,
// sends the AppSecret in the body, and shows it in no error.
func TestClearQuotaByAppSecretNeedsNoToken(t *testing.T) {
	s := newQuotaServer(t, 1)
	c := classicConf(t, s)
	ctx := t.Context()
	if err := c.ClearQuotaByAppSecret(ctx); err != nil {
		t.Fatal(err)
	}
	if n := tokenCalls(s); n != 0 {
		t.Errorf("ClearQuotaByAppSecret made %d token calls, want 0", n)
	}
	if body := string(s.LastBody(wxtest.PathClearQuotaV2)); !strings.Contains(body, `"appsecret":"`+appSecret+`"`) {
		t.Errorf("clear_quota/v2 body %q, want the appid and appsecret", body)
	}
	// Not a word of the error text in the wrong secret (its 6-character runs
	// are checked): "secret" is in ErrSecretRefused's text.
	wrong := newConf(t, s, func(c *core.Config) { c.AppSecret = core.NewSecret("wrong-s3cr3t-0123456789") })
	err := wrong.ClearQuotaByAppSecret(ctx)
	if !core.IsConfigError(err) {
		t.Errorf("ClearQuotaByAppSecret with a wrong AppSecret: %v, want 40125", err)
	}
	noLeak(t, []string{err.Error()}, "wrong-s3cr3t-0123456789")
	noSecret := newConf(t, s, func(c *core.Config) { c.AppSecret = core.Secret{} })
	before := s.Calls(wxtest.PathClearQuotaV2)
	if err := noSecret.ClearQuotaByAppSecret(ctx); err == nil || s.Calls(wxtest.PathClearQuotaV2) != before {
		t.Errorf("ClearQuotaByAppSecret without an AppSecret: %v; want an error and no call", err)
	}
}
