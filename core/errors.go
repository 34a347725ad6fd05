package core

import (
	"errors"
	"fmt"
	"regexp"
)

// APIError is an error reply from the WeChat API: HTTP 200 with a non-zero
// errcode. Use errors.As to reach it, or the predicates IsInvalidCredential,
// IsConfigError, IsQuotaExceeded and IsTemporary, which accept any error.
type APIError struct {
	Code    int    // errcode, e.g. 40001
	Message string // errmsg as WeChat sent it
	Path    string // the API path that answered, e.g. "/cgi-bin/token"
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("wechat %s: errcode %d: %s", e.Path, e.Code, e.Message)
	if h := e.hint(); h != "" {
		s += " — " + h
	}
	return s
}

// InvalidCredential reports whether WeChat rejected the access_token the
// call carried (40001, 40014, 42001). Conf handles these itself by a
// compare-and-refresh and one retry.
func (e *APIError) InvalidCredential() bool {
	switch e.Code {
	case 40001, 40014, 42001:
		return true
	}
	return false
}

// ConfigError reports whether the error can only be fixed by a person: a
// wrong or missing AppID or AppSecret, a server IP missing from the
// whitelist, or an IP awaiting an administrator's approval. These are never
// retried.
func (e *APIError) ConfigError() bool {
	switch e.Code {
	case 40013, 40125, 40164, 41002, 41004, 89503:
		return true
	}
	return false
}

// QuotaExceeded reports whether the daily quota of the API is used up
// (45009). It is never retried: retrying only burns tomorrow's quota.
func (e *APIError) QuotaExceeded() bool { return e.Code == 45009 }

// Temporary reports whether the call may succeed if retried later: -1
// (system busy) and 45011 (minute quota). Conf retries these with capped
// exponential backoff within the caller's context.
func (e *APIError) Temporary() bool { return e.Code == -1 || e.Code == 45011 }

var whitelistIP = regexp.MustCompile(`invalid ip ([0-9A-Fa-f.:]+)`)

// hint says what to do about the error, for the codes a person must act on.
func (e *APIError) hint() string {
	switch e.Code {
	case -1:
		return "WeChat is busy; retry later"
	case 40013:
		return "the AppID is not valid: check Config.AppID"
	case 40125:
		return "the AppSecret is not valid (wrong, or reset in the admin console): check Config.AppSecret"
	case 40164:
		ip := "this server's IP"
		if m := whitelistIP.FindStringSubmatch(e.Message); m != nil {
			ip = "IP " + m[1]
		}
		return ip + " is not in the IP whitelist: add it in the admin console (设置与开发 → 基本配置 → IP白名单)"
	case 41002:
		return "the appid parameter is missing: set Config.AppID"
	case 41004:
		return "the secret parameter is missing: set Config.AppSecret"
	case 45009:
		return "the daily quota of this API is used up: it resets at midnight Beijing time or can be cleared in the admin console; not retried"
	case 45011:
		return "the per-minute quota of this API is used up; retry later"
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
// an HTTP status other than 200, a body that is not JSON, or JSON that has
// neither the expected fields nor an errcode. It is never turned into an
// empty token. Replies with a 5xx status are retried; the others are not.
type ReplyError struct {
	Path       string // the API path that answered
	StatusCode int    // the HTTP status
	Reason     string // what is wrong with the reply
	Body       string // the start of the body, with credentials removed
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("wechat %s: malformed reply: %s (HTTP %d, body %q)", e.Path, e.Reason, e.StatusCode, e.Body)
}
