package wxtest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core/wxtest"
)

// quotaOf is PathQuotaGet's reply.
type quotaOf struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
	Quota   struct {
		DailyLimit int `json:"daily_limit"`
		Used       int `json:"used"`
		Remain     int `json:"remain"`
	} `json:"quota"`
	raw string
}

func quotaGet(t *testing.T, s *wxtest.Server, token, cgiPath string) quotaOf {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"cgi_path": cgiPath})
	r := must(t, s, http.MethodPost, wxtest.PathQuotaGet, url.Values{"access_token": {token}}, string(b))
	var q quotaOf
	if err := json.Unmarshal([]byte(r.Raw), &q); err != nil {
		t.Fatalf("quota/get: %q is not JSON: %v", r.Raw, err)
	}
	q.raw = r.Raw
	return q
}

// wantQuota checks quota/get's answer for cgiPath with token.
func wantQuota(t *testing.T, s *wxtest.Server, token, cgiPath string, limit, used, remain int) {
	t.Helper()
	q := quotaGet(t, s, token, cgiPath)
	if q.Errcode != 0 || q.Errmsg != "ok" || q.Quota.DailyLimit != limit || q.Quota.Used != used || q.Quota.Remain != remain {
		t.Fatalf("quota/get %s: %s, want daily_limit=%d used=%d remain=%d", cgiPath, q.raw, limit, used, remain)
	}
}

func clearQuota(t *testing.T, s *wxtest.Server, token, appid string) reply {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"appid": appid})
	return must(t, s, http.MethodPost, wxtest.PathClearQuota, url.Values{"access_token": {token}}, string(b))
}

func clearQuotaV2(t *testing.T, s *wxtest.Server, appid, secret string) reply {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"appid": appid, "appsecret": secret})
	return must(t, s, http.MethodPost, wxtest.PathClearQuotaV2, nil, string(b))
}

// TestQuotaGetCountsTokenMints tests that quota/get reports, for both
// token paths, the count that makes the token endpoints answer 45009:
// used is the tokens minted that day (a stable_token call that hands the
// current token back is not one), remain never goes below 0, and the next
// day (in Beijing, as WeChat's) starts at 0.
func TestQuotaGetCountsTokenMints(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := newServer(t, wxtest.Options{DailyQuota: 5, Start: start})
	tok := classicToken(t, s)
	wantQuota(t, s, tok, wxtest.PathToken, 5, 1, 4)
	classicToken(t, s)
	st := stableToken(t, s, false)
	stableToken(t, s, false) // the same token: nothing minted
	wantQuota(t, s, st, wxtest.PathToken, 5, 3, 2)
	wantQuota(t, s, st, wxtest.PathStableToken, 5, 3, 2)
	classicToken(t, s)
	tok = classicToken(t, s)
	wantQuota(t, s, tok, wxtest.PathToken, 5, 5, 0)
	if r := classic(t, s); r.Errcode != 45009 {
		t.Fatalf("sixth mint with remain=0: %s, want 45009", r.Raw)
	}
	wantQuota(t, s, tok, wxtest.PathToken, 5, 5, 0) // a refused call mints nothing
	s.Advance(12 * time.Hour)                       // the next Beijing day: the count starts again
	wantQuota(t, s, classicToken(t, s), wxtest.PathToken, 5, 1, 4)

	unlimited := newServer(t, wxtest.Options{})
	tok = classicToken(t, unlimited)
	wantQuota(t, unlimited, tok, wxtest.PathToken, wxtest.DefaultDailyLimit, 1, wxtest.DefaultDailyLimit-1)
}

// TestQuotaGetPerAccount tests that quota/get answers for the account the
// token belongs to.
func TestQuotaGetPerAccount(t *testing.T) {
	s := wxtest.New(wxtest.Options{DailyQuota: 10})
	defer s.Close()
	for range 3 {
		must(t, s, http.MethodGet, wxtest.PathToken, classicQuery("wx_a", "x"), "")
	}
	b := must(t, s, http.MethodGet, wxtest.PathToken, classicQuery("wx_b", "x"), "").AccessToken
	wantQuota(t, s, b, wxtest.PathToken, 10, 1, 9)
}

// TestQuotaGetErrors tests quota/get's refusals: the token checked as any
// API checks it, the method, the body and the cgi_path.
func TestQuotaGetErrors(t *testing.T) {
	s := newServer(t, wxtest.Options{})
	tok := classicToken(t, s)
	for _, c := range []struct {
		name, token, path string
		want              int
	}{
		{"no token", "", wxtest.PathToken, 41001},
		{"unknown token", "nope", wxtest.PathToken, 40001},
		{"no leading slash", tok, "cgi-bin/token", 76003},
		{"with the host", tok, "https://api.weixin.qq.com/cgi-bin/token", 76003},
		{"sns path", tok, "/sns/jscode2session", 76022},
		{"unknown path", tok, "/cgi-bin/no/such/api", 76021},
	} {
		if q := quotaGet(t, s, c.token, c.path); q.Errcode != c.want {
			t.Errorf("%s: quota/get %q: %s, want errcode %d", c.name, c.path, q.raw, c.want)
		}
	}
	if q := quotaGet(t, s, tok, "/cgi-bin/no/such/api"); !strings.HasPrefix(q.Errmsg, "cgi_path not found, please check rid: ") {
		t.Errorf("76021 errmsg %q, want WeChat's", q.Errmsg)
	}
	if r := must(t, s, http.MethodGet, wxtest.PathQuotaGet, url.Values{"access_token": {tok}}, ""); r.Errcode != 43002 {
		t.Errorf("GET quota/get: %s, want 43002", r.Raw)
	}
	if r := must(t, s, http.MethodPost, wxtest.PathQuotaGet, url.Values{"access_token": {tok}}, "not json"); r.Errcode != 47001 {
		t.Errorf("quota/get with a body that is not JSON: %s, want 47001", r.Raw)
	}
	s.Advance(wxtest.DefaultExpiresIn)
	if q := quotaGet(t, s, tok, wxtest.PathToken); q.Errcode != 42001 {
		t.Errorf("quota/get with an expired token: %s, want 42001", q.raw)
	}
}

// TestClearQuota tests that clear_quota forgets the day's token mints and
// force_refresh use of the token's account, refuses another appid without
// spending a chance, and allows ClearQuotaMonthlyLimit clears a month:
// the next answers 48006 and clears nothing, until the next month.
func TestClearQuota(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := newServer(t, wxtest.Options{DailyQuota: 2, ForceRefreshDailyLimit: 1, Start: start})
	tok := classicToken(t, s)
	stableToken(t, s, true)
	if r := classic(t, s); r.Errcode != 45009 {
		t.Fatalf("third mint: %s, want 45009", r.Raw)
	}
	if r := clearQuota(t, s, tok, ""); r.Errcode != 41002 {
		t.Errorf("clear_quota without appid: %s, want 41002", r.Raw)
	}
	if r := clearQuota(t, s, tok, "wx_someone_else"); r.Errcode != 40013 {
		t.Errorf("clear_quota of another appid: %s, want 40013", r.Raw)
	}
	if r := clearQuota(t, s, "nope", appID); r.Errcode != 40001 {
		t.Errorf("clear_quota with an unknown token: %s, want 40001", r.Raw)
	}
	if r := clearQuota(t, s, tok, appID); r.Errcode != 0 || r.Errmsg != "ok" {
		t.Fatalf("clear_quota: %s", r.Raw)
	}
	wantQuota(t, s, tok, wxtest.PathToken, 2, 0, 2)
	stableToken(t, s, true) // the force_refresh count was cleared too
	tok = classicToken(t, s)
	for i := 2; i <= wxtest.ClearQuotaMonthlyLimit; i++ { // the refused calls above spent none
		if r := clearQuota(t, s, tok, appID); r.Errcode != 0 {
			t.Fatalf("clear number %d of the month: %s", i, r.Raw)
		}
	}
	classicToken(t, s)
	r := clearQuota(t, s, tok, appID)
	if r.Errcode != 48006 || !strings.HasPrefix(r.Errmsg, "forbid to clear quota because of reaching the limit") {
		t.Fatalf("clear number %d of the month: %s, want 48006", wxtest.ClearQuotaMonthlyLimit+1, r.Raw)
	}
	wantQuota(t, s, tok, wxtest.PathToken, 2, 1, 1) // the refused clear cleared nothing
	s.ResetQuota()
	if r := clearQuota(t, s, tok, appID); r.Errcode != 48006 {
		t.Errorf("after ResetQuota: %s, want 48006 (ResetQuota gives no chance back)", r.Raw)
	}
	s.Advance(31 * 24 * time.Hour) // April
	tok = classicToken(t, s)
	if r := clearQuota(t, s, tok, appID); r.Errcode != 0 {
		t.Fatalf("first clear of the next month: %s", r.Raw)
	}
}

// TestClearQuotaV2 tests clear_quota/v2: no token, the AppSecret in the
// body (or, as WeChat's older doc has it, the query), the credential
// errors, and the monthly allowance it shares with clear_quota.
func TestClearQuotaV2(t *testing.T) {
	s := newServer(t, wxtest.Options{DailyQuota: 1})
	classicToken(t, s)
	if r := classic(t, s); r.Errcode != 45009 {
		t.Fatalf("second mint: %s, want 45009", r.Raw)
	}
	for _, c := range []struct {
		name, appid, secret string
		want                int
	}{
		{"no appid", "", appSecret, 41002},
		{"no secret", appID, "", 41004},
		{"wrong appid", "wx_other", appSecret, 40013},
		{"wrong secret", appID, "wrong", 40125},
	} {
		if r := clearQuotaV2(t, s, c.appid, c.secret); r.Errcode != c.want {
			t.Errorf("%s: clear_quota/v2: %s, want %d", c.name, r.Raw, c.want)
		}
	}
	if r := clearQuotaV2(t, s, appID, appSecret); r.Errcode != 0 {
		t.Fatalf("clear_quota/v2: %s", r.Raw)
	}
	tok := classicToken(t, s) // the quota was cleared
	q := url.Values{"appid": {appID}, "appsecret": {appSecret}}
	if r := must(t, s, http.MethodPost, wxtest.PathClearQuotaV2, q, ""); r.Errcode != 0 {
		t.Fatalf("clear_quota/v2 with the query: %s", r.Raw)
	}
	wantQuota(t, s, tok, wxtest.PathToken, 1, 0, 1)
	for i := 3; i <= wxtest.ClearQuotaMonthlyLimit; i++ {
		if r := clearQuota(t, s, tok, appID); r.Errcode != 0 {
			t.Fatalf("clear number %d of the month (clear_quota after v2): %s", i, r.Raw)
		}
	}
	if r := clearQuotaV2(t, s, appID, appSecret); r.Errcode != 48006 {
		t.Errorf("clear_quota/v2 past the allowance: %s, want 48006", r.Raw)
	}
	if r := clearQuota(t, s, tok, appID); r.Errcode != 48006 {
		t.Errorf("clear_quota past the allowance: %s, want 48006", r.Raw)
	}
}
