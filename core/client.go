package core

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"time"
)

// Paths of the WeChat API calls Conf makes itself.
const (
	pathToken       = "/cgi-bin/token"
	pathStableToken = "/cgi-bin/stable_token"
	pathTicket      = "/cgi-bin/ticket/getticket"
)

// maxReply bounds how much of a JSON reply body is read.
const maxReply = 8 << 20

// peekErrcode bounds how much of a content reply (a file) that starts with
// "{" is buffered to see whether it is a JSON error.
const peekErrcode = 64 << 10

// request is one WeChat API call, replayable for retries.
type request struct {
	method      string
	path        string
	query       url.Values
	body        []byte // nil for none
	contentType string // of body; "" means JSON
	// token is the access_token the request carries, redacted from every
	// error and log line like the AppSecret.
	token string
}

// Media is a reply that is content rather than JSON: a file from
// /cgi-bin/media/get, /cgi-bin/material/get_material, a QR code image.
// Pass a *Media as Do's out to receive it. A JSON object with a non-zero
// errcode is an *APIError instead, whatever its Content-Type.
type Media struct {
	Body        []byte      // the whole body
	ContentType string      // the Content-Type header, e.g. "image/jpeg"
	Filename    string      // from Content-Disposition, "" if none
	Header      http.Header // every header of the reply
}

// Multipart is a multipart/form-data request body, for the upload APIs
// (/cgi-bin/media/upload, /cgi-bin/material/add_material,
// /cgi-bin/media/uploadimg). Pass it (or a pointer to it) as Do's body.
// Files are held in memory so that a retried or re-sent request carries
// the same body.
type Multipart struct {
	// Fields are plain form fields, e.g. "description" with the JSON a
	// video upload needs.
	Fields map[string]string
	// Files are the file parts; WeChat's upload APIs take one, in the
	// field "media".
	Files []File
}

// File is one file part of a Multipart body.
type File struct {
	Field       string // the form field, "media" for WeChat's upload APIs
	Name        string // the file name sent, e.g. "photo.jpg"
	ContentType string // "" means application/octet-stream
	Data        []byte
}

// encode returns the body and its Content-Type (with the boundary).
func (m *Multipart) encode() ([]byte, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	keys := make([]string, 0, len(m.Fields))
	for k := range m.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := w.WriteField(k, m.Fields[k]); err != nil {
			return nil, "", err
		}
	}
	for _, f := range m.Files {
		h := make(textproto.MIMEHeader)
		h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": f.Field, "filename": f.Name}))
		ct := f.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
		part, err := w.CreatePart(h)
		if err != nil {
			return nil, "", err
		}
		if _, err := part.Write(f.Data); err != nil {
			return nil, "", err
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}

// Do calls the WeChat API at path (e.g. "/cgi-bin/user/info") with the
// Conf's access_token added to query, and decodes the reply into out.
//
// body is nil (no body), a []byte or json.RawMessage (sent as JSON, as is),
// a Multipart or *Multipart (sent as multipart/form-data), or anything else,
// marshalled to JSON without HTML escaping (which WeChat does not undo).
// Every kind is replayable, so retries resend the same body.
//
// out decides how the reply is read:
//
//	out                   a JSON object with errcode != 0   any other reply
//	nil                   *APIError                         JSON checked, discarded; not JSON: *ReplyError
//	*T (struct, map, …)   *APIError                         JSON decoded into out; not JSON: *ReplyError
//	*[]byte               *APIError                         the body, whatever it is (a file)
//	*Media                *APIError                         body, Content-Type, file name, headers
//	io.Writer             *APIError                         the body, streamed; only a body starting
//	                                                        with "{" is buffered (up to 64 KiB) to look for errcode
//
// A reply whose HTTP status is not 200 is a *ReplyError carrying the start
// of its body (credentials removed). When WeChat rejects the Conf's token
// (40001, 40014, 42001), Do calls RefreshAccessToken with the token it
// used and retries once; busy replies (-1, 45011), HTTP 5xx and network
// errors are retried with backoff within ctx.
//
// If query already carries an access_token (a user's OAuth token for
// /sns/userinfo, another account's token), Do sends it unchanged and does
// not refresh it on a rejection: it is not a token this Conf keeps.
func (c *Conf) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	req := request{method: method, path: path, query: query}
	switch b := body.(type) {
	case nil:
	case []byte:
		req.body = b
	case json.RawMessage:
		req.body = b
	case Multipart:
		return c.Do(ctx, method, path, query, &b, out)
	case *Multipart:
		data, ct, err := b.encode()
		if err != nil {
			return fmt.Errorf("wechatconf: %s %s: encoding the multipart body: %w", method, path, err)
		}
		req.body, req.contentType = data, ct
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(body); err != nil {
			return fmt.Errorf("wechatconf: %s %s: encoding the body: %w", method, path, err)
		}
		req.body = bytes.TrimRight(buf.Bytes(), "\n")
	}
	var err error
	if query.Has("access_token") {
		req.token = query.Get("access_token")
		err = c.call(ctx, req, out)
	} else {
		err = c.doWithToken(ctx, req, out)
	}
	if err != nil {
		return wrapErr(err, "")
	}
	return nil
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
		r.query, r.token = q, tok.Value
		err = c.call(ctx, r, out)
		if retried || !IsInvalidCredential(err) {
			return err
		}
		c.access.logEvent(slog.LevelInfo, EventRejected, slog.String("path", req.path), slog.Int("errcode", asAPIError(err).Code))
		if _, rerr := c.access.refresh(ctx, tok.Value, reasonRejected, err); rerr != nil {
			return wrapErr(rerr, "%s: refreshing the access_token after errcode %d", req.path, asAPIError(err).Code)
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
		c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, EventRetry, slog.String("path", req.path), slog.Int("attempt", attempt+1), slog.Duration("delay", delay), slog.String("error", err.Error()))
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

// secrets are the values no error or log line about req may contain.
func (c *Conf) secrets(req request) []string { return []string{c.cfg.AppSecret.Reveal(), req.token} }

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
		return fmt.Errorf("wechatconf: %s %s: %s", req.method, req.path, redactText(err.Error(), c.secrets(req)...))
	}
	if req.body != nil {
		ct := req.contentType
		if ct == "" {
			ct = "application/json; charset=utf-8"
		}
		hr.Header.Set("Content-Type", ct)
	}
	resp, err := c.cfg.HTTPClient.Do(hr)
	if err != nil {
		return redactError(err, c.secrets(req)...)
	}
	defer resp.Body.Close()
	return c.decode(req, resp, out)
}

// decode reads resp into out (see Do), an *APIError or a *ReplyError.
func (c *Conf) decode(req request, resp *http.Response, out any) error {
	secrets := c.secrets(req)
	bad := func(status int, reason string, data []byte) error {
		return &ReplyError{Path: req.path, StatusCode: status, Reason: reason, Body: redactBody(data, secrets...)}
	}
	readErr := func(err error) error {
		return fmt.Errorf("wechatconf: %s: reading the reply: %s", req.path, redactText(err.Error(), secrets...))
	}
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, redactWindow))
		return bad(resp.StatusCode, "HTTP status is not 200", data)
	}
	switch o := out.(type) {
	case *[]byte, *Media, io.Writer:
		br := bufio.NewReaderSize(resp.Body, 512)
		var head []byte
		if first, err := peekNonSpace(br); err == nil && first == '{' {
			var rerr error
			head, rerr = io.ReadAll(io.LimitReader(br, peekErrcode))
			if rerr != nil {
				return readErr(rerr)
			}
			if e := apiError(req.path, head, secrets); e != nil && len(head) < peekErrcode {
				return e
			}
		}
		rest := io.MultiReader(bytes.NewReader(head), br)
		switch o := o.(type) {
		case *[]byte:
			data, err := io.ReadAll(rest)
			if err != nil {
				return readErr(err)
			}
			*o = data
		case *Media:
			data, err := io.ReadAll(rest)
			if err != nil {
				return readErr(err)
			}
			*o = Media{Body: data, ContentType: resp.Header.Get("Content-Type"), Header: resp.Header}
			if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
				o.Filename = params["filename"]
			}
		case io.Writer:
			if _, err := io.Copy(o, rest); err != nil {
				return fmt.Errorf("wechatconf: %s: copying the reply: %s", req.path, redactText(err.Error(), secrets...))
			}
		}
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return readErr(err)
	}
	if len(data) > maxReply {
		return bad(http.StatusOK, fmt.Sprintf("longer than %d bytes", maxReply), data)
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(data, &env); err != nil {
		return bad(http.StatusOK, "not a JSON object: "+err.Error(), data)
	}
	if e := apiError(req.path, data, secrets); e != nil {
		return e
	}
	if r, ok := out.(*expiringReply); ok {
		r.raw = data
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return bad(http.StatusOK, "unexpected JSON: "+err.Error(), data)
		}
	}
	return nil
}

// apiError returns the *APIError that data holds, if it is a JSON object
// with a non-zero errcode, and nil otherwise.
func apiError(path string, data []byte, secrets []string) *APIError {
	var env struct {
		ErrCode *int   `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if json.Unmarshal(data, &env) != nil || env.ErrCode == nil || *env.ErrCode == 0 {
		return nil
	}
	return &APIError{Code: *env.ErrCode, Message: redactText(env.ErrMsg, secrets...), Path: path}
}

// peekNonSpace returns the first byte of br that is not JSON white space,
// without consuming anything.
func peekNonSpace(br *bufio.Reader) (byte, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if len(b) < n {
			return 0, err
		}
		switch c := b[n-1]; c {
		case ' ', '\t', '\r', '\n':
			if n == br.Size() {
				return c, nil
			}
		default:
			return c, nil
		}
	}
}

// expiringReply is the shape of the token and ticket replies.
type expiringReply struct {
	AccessToken string `json:"access_token"`
	Ticket      string `json:"ticket"`
	ExpiresIn   int64  `json:"expires_in"`
	raw         []byte // the body, for a *ReplyError
}

// token turns a reply into a Token: a reply without a value or without a
// positive expires_in is malformed, never an empty or eternal token. An
// expires_in beyond maxTrustedLifetime is trusted only that far (computed
// without overflow).
func (r *expiringReply) token(path, value string, start time.Time) (Token, error) {
	switch {
	case value == "":
		return Token{}, &ReplyError{Path: path, StatusCode: http.StatusOK, Reason: "no credential and no errcode in the reply", Body: redactBody(r.raw)}
	case r.ExpiresIn <= 0:
		return Token{}, &ReplyError{Path: path, StatusCode: http.StatusOK, Reason: fmt.Sprintf("expires_in is %d", r.ExpiresIn), Body: redactBody(r.raw)}
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
	if c.cfg.AppSecret.IsZero() {
		return Token{}, errMissing("AppSecret", "fetch an access_token")
	}
	start := c.now()
	var req request
	if c.cfg.TokenAPI == ClassicToken {
		req = request{method: http.MethodGet, path: pathToken, query: url.Values{
			"grant_type": {"client_credential"}, "appid": {c.cfg.AppID}, "secret": {c.cfg.AppSecret.Reveal()},
		}}
	} else {
		body, err := json.Marshal(map[string]any{
			"grant_type": "client_credential", "appid": c.cfg.AppID, "secret": c.cfg.AppSecret.Reveal(), "force_refresh": force,
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
