package storeurl

import (
	"cmp"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// mask replaces a password wherever a store URL is shown.
const mask = "xxxxx"

// isSecretKey reports whether a query parameter or keyword names a secret:
// password (pgx, and the data nodes' password of a go-redis Sentinel URL),
// sslpassword (pgx: the client key's passphrase), sentinel_password, and
// anything else whose name holds "password", "passwd" or "secret", so that
// a misspelt or refused option's value is masked too.
func isSecretKey(key string) bool {
	k := strings.ToLower(key)
	return strings.Contains(k, "password") || strings.Contains(k, "passwd") || strings.Contains(k, "secret")
}

// redactQuery returns a raw query (a=1&b=2, no '?') with the value of every
// secret key masked, keeping every other pair as written, and the secrets
// it masked: each value decoded and as written. decode is the URL's own
// percent-decoding of a key or value.
func redactQuery(raw string, decode func(string) (string, error)) (string, []string) {
	if raw == "" {
		return "", nil
	}
	var secrets []string
	pairs := strings.Split(raw, "&")
	for i, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		dk, err := decode(k)
		if err != nil {
			dk = k
		}
		if !ok || !isSecretKey(dk) || v == "" {
			continue
		}
		secrets = append(secrets, v)
		if dv, err := decode(v); err == nil {
			secrets = append(secrets, dv)
		}
		pairs[i] = k + "=" + mask
	}
	return strings.Join(pairs, "&"), secrets
}

// queryUnescape is net/url's decoding of a query key or value ('+' is a
// space), which go-redis uses through url.Values.
func queryUnescape(s string) (string, error) { return url.QueryUnescape(s) }

// redactURL returns u as a string with its userinfo password and secret
// query values masked, and the secrets it masked.
func redactURL(u *url.URL) (string, []string) {
	var secrets []string
	c := *u
	if pw, ok := u.User.Password(); ok && pw != "" {
		secrets = append(secrets, pw)
		c.User = url.UserPassword(u.User.Username(), mask)
	}
	q, qs := redactQuery(u.RawQuery, queryUnescape)
	c.RawQuery = q
	secrets = append(secrets, qs...)
	// url.URL.String escapes the mask's userinfo as it is: "xxxxx" needs
	// no escaping, so the result reads user:xxxxx@host.
	return c.String(), secrets
}

// scrub returns msg with every secret, in each encoding a library might
// echo it in (as is, percent-encoded for a query, a path or userinfo,
// Go-quoted), replaced by the mask. A secret that is also part of a host
// name masks that part too: over-masking is the safe side.
func scrub(msg string, secrets []string) string {
	var forms []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		forms = append(forms, s, url.QueryEscape(s), url.PathEscape(s),
			strings.TrimPrefix(url.UserPassword("u", s).String(), "u:"),
			strings.Trim(strconv.Quote(s), `"`))
	}
	// Longest first, so that a secret containing another is masked whole.
	slices.SortFunc(forms, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, f := range forms {
		msg = strings.ReplaceAll(msg, f, mask)
	}
	return msg
}
