package core

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Redaction at the source: what this package keeps of a reply or a URL in
// an error or a log line is redacted before it is cut short, and errors
// keep their types (*APIError, *ReplyError, *url.Error) so that the
// predicates and the retry decisions still see them.

// redacted is the text that replaces credentials in errors and logs.
const redacted = "REDACTED"

// credentialParams are the parameter names, in query ("name=value") and
// JSON ("name":"value") form, whose values never appear in an error or a
// log line: every secret and credential of WeChat's APIs.
var credentialParams = []string{
	"secret", "appsecret", "corpsecret", "component_appsecret",
	"access_token", "component_access_token", "authorizer_access_token", "suite_access_token",
	"authorizer_refresh_token", "refresh_token",
	"ticket", "jsapi_ticket", "component_verify_ticket", "suite_ticket",
	"session_key", "js_code", "authorization_code", "code",
	// WeCom vendors (wecomvendor): "secret" and "access_token" match only
	// as whole names, not inside these.
	"suite_secret", "provider_secret", "provider_access_token", "permanent_code", "auth_code",
}

var (
	paramAlternation = "(?:" + strings.Join(credentialParams, "|") + ")"
	// queryParamRE matches name=value, the value running to the next
	// separator or the end of the text (a body cut short mid-value).
	queryParamRE = regexp.MustCompile(`(?i)\b(` + paramAlternation + `)=[^&\s"'<>;,]*`)
	// jsonParamRE matches "name": "value", the closing quote optional (a
	// body cut short mid-value).
	jsonParamRE = regexp.MustCompile(`(?i)"(` + paramAlternation + `)"(\s*:\s*)"(?:[^"\\]|\\.)*"?`)
)

// minSecretRun is the shortest run of a secret's characters that redact
// removes wherever it appears: an echo of a secret cut short still goes.
const minSecretRun = 6

// maxKeptBody is how much of a reply body an error keeps, after redaction.
const maxKeptBody = 200

// redactWindow is how much of a body is redacted at all: the part kept is
// cut from its start, so the rest never reaches an error.
const redactWindow = 16 * maxKeptBody

// redactText removes every credential from s: the values of credential
// parameters in query and JSON form, and every run of minSecretRun or more
// characters of any of secrets.
func redactText(s string, secrets ...string) string {
	s = queryParamRE.ReplaceAllString(s, "${1}="+redacted)
	s = jsonParamRE.ReplaceAllString(s, `"${1}"${2}"`+redacted+`"`)
	for _, secret := range secrets {
		s = removeRuns(s, secret)
	}
	return s
}

// removeRuns replaces every run of s made of minSecretRun or more
// consecutive characters of secret (every occurrence of each of its
// substrings of that length, overlapping runs merged) with redacted.
// Secrets shorter than minSecretRun are removed where they occur whole.
func removeRuns(s, secret string) string {
	if secret == "" {
		return s
	}
	if len(secret) < minSecretRun {
		return strings.ReplaceAll(s, secret, redacted)
	}
	grams := make(map[string]struct{}, len(secret)-minSecretRun+1)
	for i := 0; i+minSecretRun <= len(secret); i++ {
		grams[secret[i:i+minSecretRun]] = struct{}{}
	}
	var cover []bool // cover[i]: byte i of s belongs to a run of the secret
	for i := 0; i+minSecretRun <= len(s); i++ {
		if _, ok := grams[s[i:i+minSecretRun]]; ok {
			if cover == nil {
				cover = make([]bool, len(s))
			}
			for j := i; j < i+minSecretRun; j++ {
				cover[j] = true
			}
		}
	}
	if cover == nil {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if !cover[i] {
			b.WriteByte(s[i])
			i++
			continue
		}
		for i < len(s) && cover[i] {
			i++
		}
		b.WriteString(redacted)
	}
	return b.String()
}

// redactBody returns the part of a reply body an error keeps: redacted
// first, then cut to maxKeptBody bytes on a UTF-8 boundary.
func redactBody(body []byte, secrets ...string) string {
	if len(body) > redactWindow {
		body = body[:redactWindow]
	}
	s := redactText(string(body), secrets...)
	if len(s) > maxKeptBody {
		cut := maxKeptBody
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// redactURL replaces the values of credential parameters in a URL string,
// and any run of secrets left elsewhere in it.
func redactURL(raw string, secrets ...string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redactText(raw, secrets...)
	}
	q := u.Query()
	changed := false
	for name := range q {
		for _, p := range credentialParams {
			if strings.EqualFold(name, p) {
				q[name] = []string{redacted}
				changed = true
			}
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return redactText(u.String(), secrets...)
}

// redactError returns err without secrets and with its type: a *url.Error
// gets its URL redacted (and its cause, if that text holds a secret, is
// replaced by its redacted text, keeping context.Canceled and
// DeadlineExceeded); other errors this package makes are redacted where
// they are built.
func redactError(err error, secrets ...string) error {
	var ue *url.Error
	if !errors.As(err, &ue) || ue != err {
		return err
	}
	cause := ue.Err
	if text := cause.Error(); redactText(text, secrets...) != text {
		r := &redactedError{text: redactText(text, secrets...)}
		switch {
		case errors.Is(cause, context.Canceled):
			r.cause = context.Canceled
		case errors.Is(cause, context.DeadlineExceeded):
			r.cause = context.DeadlineExceeded
		}
		cause = r
	}
	return &url.Error{Op: ue.Op, URL: redactURL(ue.URL, secrets...), Err: cause}
}

// redactedError stands in for an error whose text held a secret: the
// redacted text, and the context error below it, if any, for errors.Is.
type redactedError struct {
	text  string
	cause error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.cause }
