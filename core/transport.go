package core

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Transport returns an http.RoundTripper that puts this Conf's fleet-safe
// access_token under any HTTP client — an SDK's, a generated client's, a
// plain one — the way golang.org/x/oauth2's Transport does for OAuth:
//
//   - A request to the WeChat API host (the scheme and host of
//     Config.BaseURL, DefaultBaseURL by default) that carries no
//     access_token gets the Conf's (AccessToken), on a clone of the
//     request: the caller's request is never modified. A request that
//     carries one keeps it. Requests to other hosts pass through untouched.
//   - The reply is read only as far as needed to see a JSON errcode: a body
//     that does not start with "{" passes through after a 512-byte peek,
//     unbuffered; one that does is buffered up to 64 KiB. The caller gets
//     the whole body either way.
//   - On 40001, 40014 or 42001 for the Conf's token (the one it added, or
//     the one the request carried if it is the Conf's current token), the
//     token is replaced by a compare-and-refresh (RefreshAccessToken: once
//     fleet-wide), the request is sent once more with the new token, and
//     that reply is returned. The body is replayed through
//     Request.GetBody, which http.NewRequest sets for bytes.Buffer,
//     bytes.Reader and strings.Reader bodies. A request whose body cannot be
//     replayed (no GetBody, as for an io.Pipe or io.NopCloser body, or a
//     GetBody that fails) is not sent again: the token is replaced all the
//     same, and the caller gets the rejection as it came, so that its next
//     request carries the new token. A token the Conf does not keep (a
//     user's OAuth token for /sns/userinfo) is never refreshed.
//   - If the refresh fails (a *LimitError, a store error), the rejection
//     is returned as it came; the failure is logged as an event.
//
// base is the transport that sends the requests; nil means
// http.DefaultTransport. Errors never hold a token or the AppSecret. The
// RoundTripper is safe for concurrent use.
func (c *Conf) Transport(base http.RoundTripper) http.RoundTripper { return c.api.Transport(base) }

// Client returns an *http.Client whose Transport is c.Transport(base), for
// code that takes a client; base nil means http.DefaultTransport.
func (c *Conf) Client(base http.RoundTripper) *http.Client { return c.api.Client(base) }

// Transport returns an http.RoundTripper that adds a's credential to the
// requests to a's host and replaces a rejected one, as Conf.Transport
// describes, with the credential's query parameter in place of
// access_token and its Rejects in place of 40001/40014/42001: Rejects is
// asked about the reply's JSON errcode (an *APIError) or, for a reply
// without one whose HTTP status is not 200, a *ReplyError with that
// StatusCode (and no Body). An API without a credential passes requests
// through untouched.
func (a *API) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{api: a, base: base}
}

// Client returns an *http.Client whose Transport is a.Transport(base).
func (a *API) Client(base http.RoundTripper) *http.Client {
	return &http.Client{Transport: a.Transport(base)}
}

type transport struct {
	api  *API
	base http.RoundTripper
}

// peekSize is how much of a reply the transport looks at before it knows
// whether the body can be a JSON error.
const peekSize = 512

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	a := t.api
	if req.URL == nil || !strings.EqualFold(req.URL.Host, a.host) || req.URL.Scheme != a.scheme || a.cred == nil {
		return t.base.RoundTrip(req)
	}
	q := req.URL.Query()
	tok := q.Get(a.param)
	ours := tok == ""
	if ours {
		cur, err := a.cred.Get(req.Context())
		if err != nil {
			closeBody(req)
			return nil, err
		}
		tok = cur.Value
	} else if a.cred.current() == tok {
		ours = true
	}
	r := a.withToken(req, q, tok, nil)
	for retried := false; ; retried = true {
		resp, err := t.base.RoundTrip(r)
		if err != nil {
			return nil, redactError(err, a.secretsOf(request{token: tok})...)
		}
		// What the credential's Rejects is asked about: a JSON errcode,
		// or, for a reply that has none, its HTTP status (a kind of one's
		// own may say 401 means "rejected").
		var rejection error
		if apiErr := a.peekAPIError(resp, r.URL.Path, tok); apiErr != nil {
			rejection = apiErr
		} else if resp.StatusCode != http.StatusOK {
			rejection = &ReplyError{Path: r.URL.Path, StatusCode: resp.StatusCode, Reason: "HTTP status is not 200", Platform: a.platform()}
		}
		if retried || !ours || rejection == nil || !a.cred.rejects(rejection) {
			return resp, nil
		}
		// The rejected token is replaced whether or not the request can be
		// sent again: a body that cannot be replayed skips the resend only,
		// and the caller's next request carries the new token.
		var body io.ReadCloser // the body to send again, nil for none
		resend := true
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				resend = false
			} else if body, err = req.GetBody(); err != nil {
				body, resend = nil, false
			}
		}
		fresh, rerr := a.cred.rejected(req.Context(), r.URL.Path, tok, rejection)
		if rerr != nil || !resend {
			if body != nil { // a failed refresh logged its own event
				body.Close()
			}
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, peekErrcode))
		resp.Body.Close()
		tok = fresh.Value
		r = a.withToken(req, q, tok, body)
	}
}

// withToken returns a clone of req carrying tok in a's parameter (q is
// req's parsed query, changed here), and body in place of req's own when
// body is not nil (a retry).
func (a *API) withToken(req *http.Request, q url.Values, tok string, body io.ReadCloser) *http.Request {
	r := req.Clone(req.Context())
	if q.Get(a.param) != tok {
		u := *req.URL
		q.Set(a.param, tok)
		u.RawQuery = q.Encode()
		r.URL = &u
	}
	if body != nil {
		r.Body = body
	}
	return r
}

// peekAPIError returns the *APIError resp's body holds, if it is a JSON
// object with a non-zero errcode, reading no more than needed to tell, and
// leaves resp.Body reading the whole body from its start.
func (a *API) peekAPIError(resp *http.Response, path, tok string) *APIError {
	br := bufio.NewReaderSize(resp.Body, peekSize)
	body := struct {
		io.Reader
		io.Closer
	}{br, resp.Body}
	resp.Body = body
	first, err := peekNonSpace(br)
	if err != nil || first != '{' {
		return nil
	}
	head, err := io.ReadAll(io.LimitReader(br, peekErrcode))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), br), body.Closer}
	if err != nil || len(head) >= peekErrcode || !json.Valid(head) {
		return nil
	}
	return a.apiError(path, head, a.secretsOf(request{token: tok}))
}

// closeBody closes req's body, as a RoundTripper must on every early
// return.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
