package wxtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// The quota endpoints. WeChat documents them in "openApi管理" (API
// management) of the Official Account, Mini Program and Open Platform
// docs: getApiQuota (查询openAPI调用quota,
// developers.weixin.qq.com/doc/offiaccount/openApi/get_api_quota.html),
// clearQuota (清空api的调用quota,
// developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/openApi/clear_quota.html)
// and clearQuotaByAppSecret (使用AppSecret重置API调用次数,
// developers.weixin.qq.com/doc/service/en/api/apimanage/api_clearquotabyappsecret.html).
const (
	// PathQuotaGet reports an API's daily quota: POST
	// ?access_token=TOKEN with the JSON body {"cgi_path":"/cgi-bin/token"}
	// answers {"errcode":0,"errmsg":"ok","quota":{"daily_limit":2000,
	// "used":12,"remain":1988}} for the account the token belongs to.
	//
	// The simulation knows the quota of the token endpoints: [PathToken]
	// and [PathStableToken] both report the one daily count that
	// [Options.DailyQuota] limits (classic and stable mints together, as
	// the simulation counts them; WeChat keeps them apart), with
	// daily_limit DailyQuota, or [DefaultDailyLimit] when DailyQuota is
	// zero (then not enforced), and remain never below 0. used is what
	// the token endpoints minted for the appid this simulated day, so
	// after N fetches used is N. A cgi_path without a leading "/" (or
	// with the host in front) answers errcode 76003, a /sns/ path 76022
	// (WeChat: those APIs have no quota here), any other path 76021
	// "cgi_path not found, please check" (a simplification: WeChat knows
	// every API's quota). The token must be an access_token this server
	// issued (classic, stable or an Open Platform authorizer's) and valid,
	// checked as for [PathAPI]; a method other than POST gets 43002, a
	// body that is not JSON 47001.
	PathQuotaGet = "/cgi-bin/openapi/quota/get"
	// PathClearQuota clears the account's daily counts: POST
	// ?access_token=TOKEN with {"appid":"APPID"} answers
	// {"errcode":0,"errmsg":"ok"} and forgets the appid's token mints and
	// force_refresh use of the day, as [Server.ResetQuota] does for every
	// appid. appid must be the token's account: missing is 41002, another
	// 40013 (WeChat: "appid写错了;或者填入的appid与access_token代表的账号的appid不一致").
	// Each account may clear [ClearQuotaMonthlyLimit] times a month,
	// together with [PathClearQuotaV2]; the next call gets errcode 48006
	// "forbid to clear quota because of reaching the limit" and clears
	// nothing.
	PathClearQuota = "/cgi-bin/clear_quota"
	// PathClearQuotaV2 is [PathClearQuota] authenticated by the AppSecret
	// instead of an access_token, for when the token quota itself is used
	// up: POST with {"appid":"APPID","appsecret":"SECRET"}. WeChat's older
	// doc put both in the query string, which is accepted too (the body
	// wins). Errors: 41002 appid missing, 41004 appsecret missing, 40013
	// and 40125 for credentials [Options] does not accept, 48006 once the
	// monthly allowance, shared with PathClearQuota, is spent.
	PathClearQuotaV2 = "/cgi-bin/clear_quota/v2"
)

// ClearQuotaMonthlyLimit is how many times an account may clear its quota
// per simulated month ([PathClearQuota] and [PathClearQuotaV2] together):
// WeChat's "每个帐号每月共10次清零操作机会,清零生效一次即用掉一次机会" (10
// chances a month per account; each clear that takes effect uses one). The
// month is the Beijing month of the server's clock, as the day of
// [Options.DailyQuota] is its Beijing date. [Server.ResetQuota] does not give
// the chances back.
const ClearQuotaMonthlyLimit = 10

// DefaultDailyLimit is the daily_limit [PathQuotaGet] reports for the
// token endpoints when [Options.DailyQuota] is zero: WeChat's 2,000
// access_token calls a day per account. The simulation does not enforce it.
const DefaultDailyLimit = 2000

// The quota endpoints' own error codes.
const (
	codeClearQuotaLimit = 48006
	codeCGIPathInvalid  = 76003
	codeCGIPathNotFound = 76021
	codeCGIPathNoAccess = 76022
)

func init() {
	errmsgs[codeClearQuotaLimit] = "forbid to clear quota because of reaching the limit"
	// 76003 and 76022: the docs give the codes, not the texts; these are
	// the simulation's.
	errmsgs[codeCGIPathInvalid] = "invalid cgi_path: no host, and a leading /"
	errmsgs[codeCGIPathNotFound] = "cgi_path not found, please check"
	errmsgs[codeCGIPathNoAccess] = "could not use this cgi_path, no permission"
}

type quotaReply struct {
	Errcode int        `json:"errcode"`
	Errmsg  string     `json:"errmsg"`
	Quota   quotaCount `json:"quota"`
}

type quotaCount struct {
	DailyLimit int `json:"daily_limit"`
	Used       int `json:"used"`
	Remain     int `json:"remain"`
}

func (s *Server) serveQuotaGet(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeError(w, codeRequirePOST)
		return
	}
	var req struct {
		CGIPath string `json:"cgi_path"`
	}
	bad := json.Unmarshal(body, &req) != nil

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	t, code := s.tokenOwnerLocked(r.URL.Query().Get("access_token"), now)
	switch p := req.CGIPath; {
	case code != 0:
	case bad:
		code = codeDataFormat
	case !strings.HasPrefix(p, "/"):
		code = codeCGIPathInvalid
	case strings.Contains(p, "/sns/"):
		code = codeCGIPathNoAccess
	case p != PathToken && p != PathStableToken:
		code = codeCGIPathNotFound
	}
	if code != 0 {
		writeError(w, code)
		return
	}
	used := 0
	if a := s.apps[t.appid]; a != nil && a.quotaDay == dayOf(now) {
		used = a.quotaUsed
	}
	limit := s.opts.DailyQuota
	if limit <= 0 {
		limit = DefaultDailyLimit
	}
	writeJSON(w, quotaReply{Errmsg: "ok", Quota: quotaCount{DailyLimit: limit, Used: used, Remain: max(0, limit-used)}})
}

func (s *Server) serveClearQuota(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeError(w, codeRequirePOST)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	t, code := s.tokenOwnerLocked(r.URL.Query().Get("access_token"), now)
	if code != 0 {
		writeError(w, code)
		return
	}
	var req struct {
		AppID string `json:"appid"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, codeDataFormat)
		return
	}
	switch {
	case req.AppID == "":
		writeError(w, codeAppIDMissing)
		return
	case req.AppID != t.appid:
		writeError(w, codeInvalidAppID)
		return
	}
	s.clearLocked(w, req.AppID, now)
}

func (s *Server) serveClearQuotaV2(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeError(w, codeRequirePOST)
		return
	}
	q := r.URL.Query()
	req := struct {
		AppID     string `json:"appid"`
		AppSecret string `json:"appsecret"`
	}{q.Get("appid"), q.Get("appsecret")}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, codeDataFormat)
			return
		}
	}
	if code := s.checkCredentials("client_credential", req.AppID, req.AppSecret, false); code != 0 {
		writeError(w, code)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clearLocked(w, req.AppID, s.nowLocked())
}

// clearLocked spends one of appid's monthly clears and forgets its daily
// counts, or answers 48006. s.mu must be held.
func (s *Server) clearLocked(w http.ResponseWriter, appid string, now time.Time) {
	a := s.appLocked(appid)
	if month := now.In(beijing).Format("2006-01"); a.clearMonth != month {
		a.clearMonth, a.clears = month, 0
	}
	if a.clears >= ClearQuotaMonthlyLimit {
		writeError(w, codeClearQuotaLimit)
		return
	}
	a.clears++
	a.quotaDay, a.quotaUsed = "", 0
	a.forceDay, a.forceUsed, a.lastForce = "", 0, time.Time{}
	writeJSON(w, errorReply{Errcode: 0, Errmsg: "ok"})
}

// tokenOwnerLocked returns the Official Account token value names, or the
// errcode an API answers for it (as tokenStatusLocked). s.mu must be held.
func (s *Server) tokenOwnerLocked(value string, now time.Time) (*token, int) {
	if code := s.tokenStatusLocked(value, now); code != 0 {
		return nil, code
	}
	return s.tokens[value], 0
}

// beijing is China Standard Time (UTC+8, no daylight saving): WeChat's
// daily quotas reset at midnight there.
var beijing = time.FixedZone("CST", 8*60*60)

// dayOf is the simulated day now falls in: its date in Beijing, where
// WeChat's daily quotas reset at midnight.
func dayOf(now time.Time) string { return now.In(beijing).Format(time.DateOnly) }
