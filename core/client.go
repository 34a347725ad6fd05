package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
)

// Paths of the WeChat API calls Conf makes itself.
const (
	pathToken       = "/cgi-bin/token"
	pathStableToken = "/cgi-bin/stable_token"
	pathTicket      = "/cgi-bin/ticket/getticket"
)

// maxReply bounds how much of a reply body is read.
const maxReply = 8 << 20

// request is one WeChat API call, replayable for retries.
type request struct {
	method string
	path   string
	query  url.Values
	body   []byte // JSON, nil for none
}

// Do calls the WeChat API at path (e.g. "/cgi-bin/user/info") with the
// current access_token added to query. body, if not nil, is sent as JSON:
// a []byte or json.RawMessage as is, anything else marshalled (without HTML
// escaping, which WeChat does not undo). The reply is decoded into out when
// out is not nil. A reply with a non-zero errcode is an *APIError. When
// WeChat rejects the token (40001, 40014, 42001), Do calls
// RefreshAccessToken with the token it used and retries once; busy replies
// (-1, 45011), HTTP 5xx and network errors are retried with backoff within
// ctx.
func (c *Conf) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	req := request{method: method, path: path, query: query}
	switch b := body.(type) {
	case nil:
	case []byte:
		req.body = b
	case json.RawMessage:
		req.body = b
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(body); err != nil {
			return fmt.Errorf("wechatconf: %s %s: encoding the body: %w", method, path, err)
		}
		req.body = bytes.TrimRight(buf.Bytes(), "\n")
	}
	return c.doWithToken(ctx, req, out)
}

// doWithToken makes req with the current access_token, and on a rejected
// token does one compare-and-refresh and one retry.
func (c *Conf) doWithToken(ctx context.Context, req request, out any) error {
	for retried := false; ; retried = true {
		tok, err := c.AccessToken(ctx)
		if err != nil {
			return err
		}
		q := make(url.Values, len(req.query)+1)
		for k, v := range req.query {
			q[k] = v
		}
		q.Set("access_token", tok.Value)
		r := req
		r.query = q
		err = c.call(ctx, r, out)
		if retried || !IsInvalidCredential(err) {
			return err
		}
		c.cfg.Logger.Info("wechatconf: access_token rejected; compare-and-refresh", "path", req.path, "errcode", asAPIError(err).Code)
		if _, rerr := c.access.refresh(ctx, tok.Value, reasonRejected, err); rerr != nil {
			return fmt.Errorf("%w (refreshing after errcode %d)", rerr, asAPIError(err).Code)
		}
	}
}

// call makes req, retrying busy replies, HTTP 5xx and network errors with
// capped exponential backoff and jitter, within ctx.
func (c *Conf) call(ctx context.Context, req request, out any) error {
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, req, out)
		if err == nil || !retryable(err) || attempt >= c.cfg.MaxRetries || ctx.Err() != nil {
			return err
		}
		delay := c.backoff(attempt)
		c.cfg.Logger.Debug("wechatconf: retrying", "path", req.path, "attempt", attempt+1, "delay", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wechatconf: %s: %w; last error: %w", req.path, ctx.Err(), err)
		}
	}
}

// backoff is the delay before retry number attempt+1: RetryBackoff doubled
// per attempt, capped at 16 times it, with up to 50% jitter taken off.
func (c *Conf) backoff(attempt int) time.Duration {
	d := c.cfg.RetryBackoff << min(attempt, 4)
	return d - time.Duration(rand.Int64N(int64(d/2)+1))
}

// retryable reports whether a failed call may succeed when made again.
func retryable(err error) bool {
	if e := asAPIError(err); e != nil {
		return e.Temporary()
	}
	var re *ReplyError
	if errors.As(err, &re) {
		return re.StatusCode >= 500
	}
	var ue *url.Error
	return errors.As(err, &ue) // transport errors: refused, reset, timeout
}

// once makes req a single time and decodes the reply.
func (c *Conf) once(ctx context.Context, req request, out any) error {
	u := c.cfg.BaseURL + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return secretFree(fmt.Errorf("wechatconf: %s: %w", req.path, err), c.cfg.AppSecret)
	}
	if req.body != nil {
		hr.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := c.cfg.HTTPClient.Do(hr)
	if err != nil {
		return secretFree(err, c.cfg.AppSecret)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return secretFree(fmt.Errorf("wechatconf: %s: reading the reply: %w", req.path, err), c.cfg.AppSecret)
	}
	return c.decode(req.path, resp.StatusCode, data, out)
}

// decode turns a reply into out, an *APIError or a *ReplyError.
func (c *Conf) decode(path string, status int, data []byte, out any) error {
	bad := func(reason string) error {
		snippet := data
		if len(snippet) > 200 {
			snippet = snippet[:200]
		}
		return secretFree(&ReplyError{Path: path, StatusCode: status, Reason: reason, Body: string(snippet)}, c.cfg.AppSecret)
	}
	switch {
	case status != http.StatusOK:
		return bad("HTTP status is not 200")
	case len(data) > maxReply:
		return bad(fmt.Sprintf("longer than %d bytes", maxReply))
	}
	var env struct {
		ErrCode *int   `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return bad("not a JSON object: " + err.Error())
	}
	if env.ErrCode != nil && *env.ErrCode != 0 {
		return secretFree(&APIError{Code: *env.ErrCode, Message: env.ErrMsg, Path: path}, c.cfg.AppSecret)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return bad("unexpected JSON: " + err.Error())
		}
	}
	return nil
}

// expiringReply is the shape of the token and ticket replies.
type expiringReply struct {
	AccessToken string `json:"access_token"`
	Ticket      string `json:"ticket"`
	ExpiresIn   int64  `json:"expires_in"`
}

// token turns a reply into a Token: a reply without a value or without a
// positive expires_in is malformed, never an empty or eternal token. An
// expires_in beyond maxTrustedLifetime is trusted only that far (computed
// without overflow).
func (r *expiringReply) token(path, value string, start time.Time) (Token, error) {
	switch {
	case value == "":
		return Token{}, &ReplyError{Path: path, StatusCode: http.StatusOK, Reason: "no credential and no errcode in the reply"}
	case r.ExpiresIn <= 0:
		return Token{}, &ReplyError{Path: path, StatusCode: http.StatusOK, Reason: fmt.Sprintf("expires_in is %d", r.ExpiresIn)}
	}
	life := maxTrustedLifetime
	if r.ExpiresIn < int64(maxTrustedLifetime/time.Second) {
		life = time.Duration(r.ExpiresIn) * time.Second
	}
	return Token{Value: value, ExpiresAt: start.Add(life).Round(0)}, nil
}

// fetchAccessToken makes one access_token call: classic /cgi-bin/token or
// /cgi-bin/stable_token, with "force_refresh":true when force is set.
func (c *Conf) fetchAccessToken(ctx context.Context, _ Token, force bool) (Token, error) {
	if c.cfg.AppSecret == "" {
		return Token{}, errMissing("AppSecret", "fetch an access_token")
	}
	start := c.now()
	var req request
	if c.cfg.TokenAPI == ClassicToken {
		req = request{method: http.MethodGet, path: pathToken, query: url.Values{
			"grant_type": {"client_credential"}, "appid": {c.cfg.AppID}, "secret": {c.cfg.AppSecret},
		}}
	} else {
		body, err := json.Marshal(map[string]any{
			"grant_type": "client_credential", "appid": c.cfg.AppID, "secret": c.cfg.AppSecret, "force_refresh": force,
		})
		if err != nil {
			return Token{}, err
		}
		req = request{method: http.MethodPost, path: pathStableToken, body: body}
	}
	var r expiringReply
	if err := c.call(ctx, req, &r); err != nil {
		return Token{}, err
	}
	return r.token(req.path, r.AccessToken, start)
}

// ticketFetcher returns the fetch of a ticket of type typ ("jsapi" or
// "wx_card"), made with the access_token the credential engine got before
// taking the ticket's lock (a rejection of it is returned, and the engine
// refreshes the token outside the lock and tries once more).
func (c *Conf) ticketFetcher(typ string) func(context.Context, Token, bool) (Token, error) {
	return func(ctx context.Context, access Token, _ bool) (Token, error) {
		start := c.now()
		var r expiringReply
		req := request{method: http.MethodGet, path: pathTicket, query: url.Values{"type": {typ}, "access_token": {access.Value}}}
		if err := c.call(ctx, req, &r); err != nil {
			return Token{}, err
		}
		return r.token(pathTicket, r.Ticket, start)
	}
}
