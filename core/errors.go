package core

import (
	"errors"
	"fmt"
	"regexp"
)

// APIError is an error reply from a WeChat API: HTTP 200 with a non-zero
// errcode. Use errors.As to reach it, or the predicates IsInvalidCredential,
// IsConfigError, IsQuotaExceeded and IsTemporary, which accept any error.
// What a code means depends on the platform that answered (40001 is a
// rejected access_token on the Official Account API, a wrong secret on
// WeCom's): Codes says, and the predicates follow it.
type APIError struct {
	Code    int    // errcode, e.g. 40001
	Message string // errmsg as WeChat sent it
	Path    string // the API path that answered, e.g. "/cgi-bin/token"
	// Codes is the table of the platform that answered; nil means
	// OfficialAccountCodes (the Official Account and Mini Program API).
	Codes *Codes
}

// Error reads "<platform> <path>: errcode <code>: <errmsg>", followed by
// what to do about it (Codes.Hint) when a person must act.
func (e *APIError) Error() string {
	c := e.codes()
	s := fmt.Sprintf("%s %s: errcode %d: %s", c.Platform, e.Path, e.Code, e.Message)
	if c.Hint != nil {
		if h := c.Hint(e.Code, e.Message); h != "" {
			s += " — " + h
		}
	}
	return s
}

func (e *APIError) codes() *Codes {
	if e.Codes != nil {
		return e.Codes
	}
	return OfficialAccountCodes
}

// InvalidCredential reports whether the API rejected the credential the
// call carried (Codes.InvalidCredential: 40001, 40014, 42001 on the
// Official Account API). Conf and API.Do handle these themselves by a
// compare-and-refresh and one retry.
func (e *APIError) InvalidCredential() bool { return e.codes().InvalidCredential.has(e.Code) }

// ConfigError reports whether the error can only be fixed by a person
// (Codes.Config): a wrong or missing AppID or AppSecret, a server IP
// missing from the whitelist, or an IP awaiting an administrator's
// approval. These are never retried.
func (e *APIError) ConfigError() bool { return e.codes().Config.has(e.Code) }

// QuotaExceeded reports whether the API's quota is used up (Codes.Quota:
// 45009 on the Official Account API, and 48006, clear_quota's monthly
// chances). It is never retried: retrying only
// burns tomorrow's quota.
func (e *APIError) QuotaExceeded() bool { return e.codes().Quota.has(e.Code) }

// Temporary reports whether the call may succeed if retried later
// (Codes.Temporary: -1, system busy, and 45011, minute quota, on the
// Official Account API). Conf retries these with capped exponential
// backoff within the caller's context.
func (e *APIError) Temporary() bool { return e.codes().Temporary.has(e.Code) }

// Codes says what a WeChat platform's errcodes mean, for APIError's
// predicates and so for everything that decides on them: the
// compare-and-refresh of a rejected credential, retries, and the back-off
// after a configuration or quota error (Config.ErrorBackoff; a malformed
// token reply, a *ReplyError, backs off too, whatever the Codes). Each
// platform has one table: OfficialAccountCodes (Official Accounts and Mini
// Programs), wecom.Codes (WeCom). A Codes must not be changed once an API
// uses it.
type Codes struct {
	// Platform starts every APIError message: "wechat", "wecom".
	Platform string
	// InvalidCredential: the access_token (or ticket) the call carried is
	// invalid or expired; a new one fixes it.
	InvalidCredential CodeSet
	// Config: only a person can fix it (wrong id or secret, IP whitelist).
	Config CodeSet
	// Quota: the call's quota is used up; retrying burns more of it.
	Quota CodeSet
	// Temporary: busy or rate-limited for a moment; retried with backoff.
	Temporary CodeSet
	// Hint, if set, says what to do about an error: the text after " — "
	// in APIError.Error. errmsg is WeChat's, with credentials removed.
	Hint func(code int, errmsg string) string
}

// CodeSet is a set of errcodes.
type CodeSet []int

func (s CodeSet) has(code int) bool {
	for _, c := range s {
		if c == code {
			return true
		}
	}
	return false
}

// OfficialAccountCodes is the errcode table of the Official Account API on
// api.weixin.qq.com, which Mini Programs share (全局返回码说明 in the
// Official Account and Mini Program server documentation).
var OfficialAccountCodes = &Codes{
	Platform:          "wechat",
	InvalidCredential: CodeSet{40001, 40014, 42001},
	Config:            CodeSet{40013, 40125, 40164, 41002, 41004, 89503},
	Quota:             CodeSet{45009, 48006},
	Temporary:         CodeSet{-1, 45011},
	Hint:              officialAccountHint,
}

var whitelistIP = regexp.MustCompile(`invalid ip ([0-9A-Fa-f.:]+)`)

// officialAccountHint says what to do about the Official Account API's
// errors that a person must act on.
func officialAccountHint(code int, msg string) string {
	switch code {
	case -1:
		return "WeChat is busy; retry later"
	case 40013:
		return "the AppID is not valid: check Config.AppID"
	case 40125:
		return "the AppSecret is not valid (wrong, or reset in the admin console): check Config.AppSecret"
	case 40164:
		ip := "this server's IP"
		if m := whitelistIP.FindStringSubmatch(msg); m != nil {
			ip = "IP " + m[1]
		}
		return ip + " is not in the IP whitelist: add it in the admin console (设置与开发 → 基本配置 → IP白名单)"
	case 41002:
		return "the appid parameter is missing: set Config.AppID"
	case 41004:
		return "the secret parameter is missing: set Config.AppSecret"
	case 45009:
		return "the daily quota of this API is used up: it resets at midnight Beijing time, or can be cleared in the admin console or with clear_quota (Conf.ClearQuota, 10 times a month); not retried"
	case 45011:
		return "the per-minute quota of this API is used up; retry later"
	case 48006:
		return "clear_quota's 10 chances this month are used up (clear_quota and clear_quota/v2 together): the daily quota resets at midnight Beijing time"
	case 76003:
		return "cgi_path must be the API path alone, with its leading / and no host, e.g. /cgi-bin/token"
	case 76021:
		return "WeChat knows no API at this cgi_path: give an API path such as /cgi-bin/token"
	case 76022:
		return "WeChat reports no quota for this cgi_path with this token (the /sns/ APIs, or an API of another kind of account)"
	case 89503:
		return "the call came from an IP an administrator must confirm in the admin console; not retried"
	}
	return ""
}

func asAPIError(err error) *APIError {
	var e *APIError
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// IsInvalidCredential reports whether err wraps an APIError whose
// InvalidCredential method reports true.
func IsInvalidCredential(err error) bool {
	e := asAPIError(err)
	return e != nil && e.InvalidCredential()
}

// IsConfigError reports whether err wraps an APIError whose ConfigError
// method reports true.
func IsConfigError(err error) bool {
	e := asAPIError(err)
	return e != nil && e.ConfigError()
}

// IsQuotaExceeded reports whether err wraps an APIError whose QuotaExceeded
// method reports true.
func IsQuotaExceeded(err error) bool {
	e := asAPIError(err)
	return e != nil && e.QuotaExceeded()
}

// IsTemporary reports whether err wraps an APIError whose Temporary method
// reports true.
func IsTemporary(err error) bool {
	e := asAPIError(err)
	return e != nil && e.Temporary()
}

// ReplyError is a reply from the WeChat API that is not a usable answer:
// an HTTP status other than 200, a body that is not JSON (or is cut
// short), or JSON that has neither the expected fields nor an errcode — for
// a token or ticket call (API.Issue), a reply with no token, or whose
// expires_in is missing, 0 or negative. It is never turned into an empty
// token. Replies with a 5xx status are retried; the others are not. A
// token call answered with one of HTTP 200 starts Config.ErrorBackoff
// (Policy.ErrorBackoff of a Credential; 1 minute), as a configuration
// error does: each process then makes no such call for that long, and its
// callers get a *LimitError wrapping this error (errors.As reaches both).
// Reason and Body hold no token or secret.
type ReplyError struct {
	Path       string // the API path that answered
	StatusCode int    // the HTTP status
	Reason     string // what is wrong with the reply
	Body       string // the start of the body, with credentials removed
	// Platform is the Codes.Platform of the API that answered ("wecom");
	// "" means "wechat".
	Platform string
}

// Error reads "<platform> <path>: malformed reply: <reason> (HTTP <status>,
// body <start of the body, credentials removed>)".
func (e *ReplyError) Error() string {
	p := e.Platform
	if p == "" {
		p = "wechat"
	}
	return fmt.Sprintf("%s %s: malformed reply: %s (HTTP %d, body %q)", p, e.Path, e.Reason, e.StatusCode, e.Body)
}
