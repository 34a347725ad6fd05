package core

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// The quota APIs (openApi管理, "API management", in the Official Account,
// Mini Program and Open Platform server docs).
const (
	// getApiQuota, 查询openAPI调用quota:
	// developers.weixin.qq.com/doc/offiaccount/openApi/get_api_quota.html
	pathQuotaGet = "/cgi-bin/openapi/quota/get"
	// clearQuota, 清空api的调用quota:
	// developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/openApi/clear_quota.html
	pathClearQuota = "/cgi-bin/clear_quota"
	// clearQuotaByAppSecret, 使用AppSecret重置API调用次数:
	// developers.weixin.qq.com/doc/service/en/api/apimanage/api_clearquotabyappsecret.html
	pathClearQuotaV2 = "/cgi-bin/clear_quota/v2"
)

// ClearQuotaMonthlyLimit is how many times WeChat lets an account clear
// its daily API counts per month, ClearQuota and ClearQuotaByAppSecret
// together: "每个帐号每月共10次清零操作机会,清零生效一次即用掉一次机会" (10
// chances a month per account; each clear that takes effect uses one).
// The call past them is refused with errcode 48006 (IsQuotaExceeded).
const ClearQuotaMonthlyLimit = 10

// Quota is an API's daily call quota for one account, as
// /cgi-bin/openapi/quota/get reports it (its "quota" object). The counts
// reset at midnight Beijing time; WeChat says its real-time counts may be
// off by up to about 1%.
type Quota struct {
	// DailyLimit is how many calls to the API the account may make a day
	// (daily_limit; 2,000 for /cgi-bin/token on an Official Account).
	DailyLimit int `json:"daily_limit"`
	// Used is how many it made today (used).
	Used int `json:"used"`
	// Remain is how many it may still make today (remain).
	Remain int `json:"remain"`
}

// Quota asks WeChat for the account's daily quota of the API at cgiPath,
// e.g. "/cgi-bin/token" (the path only: no host, a leading "/"), with
//
//	POST https://api.weixin.qq.com/cgi-bin/openapi/quota/get?access_token=ACCESS_TOKEN
//	{"cgi_path":"/cgi-bin/token"}
//
// answered {"errcode":0,"errmsg":"ok","quota":{"daily_limit":2000,"used":12,"remain":1988}}.
// The access_token is the Conf's, got as every call gets it (from memory,
// the store, or one fetch under the store's lock), so when the token
// quota itself is used up (45009) and no valid token is stored, Quota
// cannot be asked: ClearQuotaByAppSecret needs no token.
//
// WeChat's refusals are *APIError: 76021 "cgi_path not found, please
// check" (a path WeChat does not know), 76022 (an API whose quota this
// call cannot report, such as the /sns/ ones, or a token of the wrong
// kind of account), 76003 (a path with the host in front, or without its
// leading "/"). A reply without a quota object is a *ReplyError, never a
// zero Quota. Newer replies also carry rate_limit objects, which Quota
// does not read. An empty cgiPath is an error, without a request.
func (c *Conf) Quota(ctx context.Context, cgiPath string) (Quota, error) {
	if cgiPath == "" {
		return Quota{}, wrapErr(errors.New("the cgi_path is empty: give an API path such as /cgi-bin/token"), "quota")
	}
	var raw json.RawMessage
	if err := c.Do(ctx, http.MethodPost, pathQuotaGet, nil, map[string]string{"cgi_path": cgiPath}, &raw); err != nil {
		return Quota{}, err
	}
	var reply struct {
		Quota *Quota `json:"quota"`
	}
	bad := func(reason string) (Quota, error) {
		// The reply may echo what the call sent or the Conf holds: the
		// access_token, the AppSecret.
		secrets := append(c.secret.held(), c.access.current())
		return Quota{}, wrapErr(&ReplyError{Path: pathQuotaGet, StatusCode: http.StatusOK, Reason: reason, Body: redactBody(raw, secrets...)}, "")
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		return bad("unexpected JSON: " + err.Error())
	}
	if reply.Quota == nil {
		return bad("no quota and no errcode in the reply")
	}
	return *reply.Quota, nil
}

// ClearQuota sets the account's daily API counts back to zero — the
// access_token's among them, so that a fleet that ran into 45009 can
// fetch tokens again — with
//
//	POST https://api.weixin.qq.com/cgi-bin/clear_quota?access_token=ACCESS_TOKEN
//	{"appid":"APPID"}
//
// WeChat allows it ClearQuotaMonthlyLimit (10) times a month per account,
// shared with ClearQuotaByAppSecret; past that it answers errcode 48006
// "forbid to clear quota because of reaching the limit" (an *APIError
// that IsQuotaExceeded reports). The access_token is the Conf's, got as
// every call gets it: when the token quota is used up and no valid token
// is stored there is none, and ClearQuotaByAppSecret is the way. An
// appid other than the token's account is 40013.
//
// Clearing does not end the back-off the 45009 started: a Conf (this one
// included) that got it makes no token call for Config.ErrorBackoff (a
// minute by default) after it, as after any such error.
//
// The call is made once: a busy reply, an HTTP 5xx or a network error is
// returned, not retried, because a clear that took effect but whose reply
// was lost would spend a second of the month's chances (Quota tells
// whether it did). A rejected token is still replaced and the call made
// once more, as Do does: a rejection clears nothing. It needs
// Config.AppID.
func (c *Conf) ClearQuota(ctx context.Context) error {
	if c.appID == "" {
		return errMissing("AppID", "clear the API quota")
	}
	return c.api.withoutRetries().Do(ctx, http.MethodPost, pathClearQuota, nil, map[string]string{"appid": c.appID}, nil)
}

// ClearQuotaByAppSecret is ClearQuota authenticated by the AppSecret
// instead of an access_token (clearQuotaByAppSecret):
//
//	POST https://api.weixin.qq.com/cgi-bin/clear_quota/v2
//	{"appid":"APPID","appsecret":"APPSECRET"}
//
// WeChat made it for the case ClearQuota cannot serve: "该接口通过appsecret调用,
// 解决了accesss_token耗尽无法调用重置API调用次数的情况" (it solves not being able
// to clear the quota once the access_token quota is used up). It spends
// one of the same ClearQuotaMonthlyLimit chances (48006 past them), and
// is made once, as ClearQuota is. The AppSecret travels in the body, never
// in the URL (WeChat's older doc put it in the query string), and appears
// in no error. It needs Config.AppID and Config.AppSecret (a Conf made
// with NewWithAccessToken has no AppSecret: use ClearQuota). WeChat's
// refusals: 40013 (invalid appid), 40125 (invalid appsecret), 41002 and
// 41004 (missing), 48006.
//
// With Config.AppSecretSource the secret is the one the token calls use
// (read from the source at the first call); a refusal (40001, 40125) is
// ErrSecretRefused and has the source read again at the next call, as
// after a token call's.
func (c *Conf) ClearQuotaByAppSecret(ctx context.Context) error {
	switch {
	case c.appID == "":
		return errMissing("AppID", "clear the API quota")
	case c.secret.IsZero():
		return errMissing("AppSecret", "clear the API quota with clear_quota/v2")
	}
	secret, err := c.secret.Get(ctx)
	if err != nil {
		return err
	}
	err = c.raw.withoutRetries().Do(ctx, http.MethodPost, pathClearQuotaV2, nil,
		map[string]string{"appid": c.appID, "appsecret": secret.Reveal()}, nil)
	return c.secret.Check(secret, err)
}
