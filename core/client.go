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
	"strings"
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

// API calls one WeChat API host — api.weixin.qq.com, WeCom's
// qyapi.weixin.qq.com, a wxtest server — the way every call of this module
// is made: busy replies (Codes.Temporary), HTTP 5xx and network errors
// retried with capped exponential backoff within ctx; replies decoded into
// typed errors (*APIError read with the platform's Codes, *ReplyError for
// anything unusable, never an empty result); the secrets it was given and
// the tokens it sends removed from every error and log line. An API made
// with WithCredential also adds a kept credential's token to each call and
// replaces a rejected one by a compare-and-refresh.
//
// Conf and wecom.App are built on it; build one with NewAPI for a
// credential kind of your own (see the Credential example). An API is safe
// for concurrent use.
type API struct {
	*apiConfig // shared by the copies WithCredential makes: never written after NewAPI

	cred  *Credential // the token Do adds; nil for none
	param string      // the query parameter cred's token goes in
}

// apiConfig is an API's settings, one copy for an API and every
// WithCredential copy of it (thousands of Open Platform authorizers share
// their component's).
type apiConfig struct {
	baseURL      string
	scheme, host string
	client       *http.Client
	codes        *Codes
	retries      int
	backoff      time.Duration
	logger       *slog.Logger
	now          func() time.Time
	secrets      []Secret
	rotating     []*RotatingSecret
	account      Platform // the "platform" attribute of EventRetry, "" for none
}

// APIConfig configures NewAPI.
type APIConfig struct {
	// BaseURL is the host's URL, e.g. DefaultBaseURL; a trailing slash is
	// removed. Required: an absolute http(s) URL with no query.
	BaseURL string
	// HTTPClient makes the calls; nil means a client with a 15 s timeout.
	HTTPClient *http.Client
	// Codes says what the host's errcodes mean; nil means
	// OfficialAccountCodes.
	Codes *Codes
	// Secrets are values no error or log line may show, whole or in part:
	// the AppSecret or corpsecret the token calls send.
	Secrets []Secret
	// RotatingSecrets are secrets read from a SecretSource: the values
	// each holds (the current one and the one it replaced) are removed
	// like Secrets.
	RotatingSecrets []*RotatingSecret
	// MaxRetries is how many times a retryable call is retried; 0 means 3,
	// negative none.
	MaxRetries int
	// RetryBackoff is the first retry's delay, doubled per retry up to 16
	// times it, with jitter; 0 means 200 ms.
	RetryBackoff time.Duration
	// Logger receives EventRetry; nil drops it.
	Logger *slog.Logger
	// Platform is the "platform" attribute of the API's events
	// (EventRetry), the kind of account whose calls it makes; "" leaves
	// the attribute out. It selects nothing: Codes says how the host
	// answers.
	Platform Platform
	// Now is the clock Issue counts expires_in from; nil means time.Now.
	Now func() time.Time
}

// NewAPI checks cfg and returns an API that adds no credential to its
// calls (use WithCredential for one that does).
func NewAPI(cfg APIConfig) (*API, error) {
	base := strings.TrimRight(cfg.BaseURL, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("wechatconf: BaseURL %q is not an http(s) URL of a host (like %s)", cfg.BaseURL, DefaultBaseURL)
	}
	a := &apiConfig{baseURL: base, scheme: u.Scheme, host: u.Host, client: cfg.HTTPClient, codes: cfg.Codes,
		retries: cfg.MaxRetries, backoff: cfg.RetryBackoff, logger: cfg.Logger, now: cfg.Now, secrets: cfg.Secrets, rotating: cfg.RotatingSecrets, account: cfg.Platform}
	if a.client == nil {
		a.client = &http.Client{Timeout: 15 * time.Second}
	}
	if a.codes == nil {
		a.codes = OfficialAccountCodes
	}
	switch {
	case a.retries == 0:
		a.retries = 3
	case a.retries < 0:
		a.retries = 0
	}
	setDefault(&a.backoff, 200*time.Millisecond)
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	return &API{apiConfig: a}, nil
}

// withoutRetries returns a copy of a that makes one attempt per call.
func (a *API) withoutRetries() *API {
	cfg := *a.apiConfig
	cfg.retries = 0
	c := *a
	c.apiConfig = &cfg
	return &c
}

// WithCredential returns a copy of a whose Do and Transport add cr's token
// to every call that does not carry param itself, as the query parameter
// param ("" means "access_token"; the Open Platform's
// component_access_token travels in its own), and, when a reply rejects
// that token or a call that carried cr's current token itself (cr's
// CredentialConfig.Rejects), replace it through cr.Refresh — once per
// rejected token across the fleet — and retry once (the Transport skips
// the retry, not the refresh, for a body it cannot send again).
func (a *API) WithCredential(cr *Credential, param string) *API {
	if param == "" {
		param = "access_token"
	}
	c := *a
	c.cred, c.param = cr, param
	return &c
}

// Do calls the API at path (e.g. "/cgi-bin/user/info") and decodes the
// reply into out. With a credential (WithCredential) its token is added to
// query; without, query is sent as it is.
//
// body is nil (no body), a []byte or json.RawMessage (sent as JSON, as is),
// a Multipart or *Multipart (sent as multipart/form-data), or anything else,
// marshalled to JSON without HTML escaping (which WeChat does not undo).
// Every kind is replayable, so retries resend the same body.
//
// out decides how the reply is read:
//
//	out                   a JSON object with errcode != 0   any other reply
//	nil                   *APIError                         discarded: a reply starting with "{" is checked to be
//	                                                        JSON (cut short: *ReplyError), any other is drained unread
//	*T (struct, map, …)   *APIError                         JSON decoded into out; not JSON: *ReplyError
//	*[]byte               *APIError                         the body, whatever it is (a file)
//	*Media                *APIError                         body, Content-Type, file name, headers
//	io.Writer             *APIError                         the body, streamed; only a body starting
//	                                                        with "{" is buffered (up to 64 KiB) to look for errcode
//
// A reply whose HTTP status is not 200 is a *ReplyError carrying the start
// of its body (credentials removed). When the API rejects the credential's
// token, Do replaces it by a compare-and-refresh with the token it used
// and retries once; busy replies, HTTP 5xx and network errors are retried
// with backoff within ctx.
//
// If query already carries the credential's parameter, Do sends it
// unchanged and does not refresh it on a rejection when it is not the
// credential's current token (a user's OAuth token for /sns/userinfo,
// another account's token): it is not a token a keeps. When it is the
// current token (one the caller got from the credential and put in query
// itself), a rejection replaces it by the compare-and-refresh and the call
// is made once more with the new token, as for a token Do adds: later
// calls never keep using a token WeChat rejected.
func (a *API) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	req, err := newRequest(method, path, query, body)
	if err != nil {
		return err
	}
	switch carried := query.Get(a.paramOrDefault()); {
	case a.cred != nil && !query.Has(a.param):
		err = a.doWithToken(ctx, req, out, "")
	case a.cred != nil && carried != "" && carried == a.cred.current():
		err = a.doWithToken(ctx, req, out, carried)
	default:
		req.token = carried
		err = a.call(ctx, req, out)
	}
	if err != nil {
		return wrapErr(err, "")
	}
	return nil
}

func (a *API) paramOrDefault() string {
	if a.param == "" {
		return "access_token"
	}
	return a.param
}

// newRequest makes the replayable request of a Do call (see Do for body).
func newRequest(method, path string, query url.Values, body any) (request, error) {
	req := request{method: method, path: path, query: query}
	switch b := body.(type) {
	case nil:
	case []byte:
		req.body = b
	case json.RawMessage:
		req.body = b
	case Multipart:
		return newRequest(method, path, query, &b)
	case *Multipart:
		data, ct, err := b.encode()
		if err != nil {
			return request{}, fmt.Errorf("wechatconf: %s %s: encoding the multipart body: %w", method, path, err)
		}
		req.body, req.contentType = data, ct
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(body); err != nil {
			return request{}, fmt.Errorf("wechatconf: %s %s: encoding the body: %w", method, path, err)
		}
		req.body = bytes.TrimRight(buf.Bytes(), "\n")
	}
	return req, nil
}

// doWithToken makes req with the credential's token — first, if not "",
// else its current one — and on a rejected token does one
// compare-and-refresh and one retry with the token that replaced it.
func (a *API) doWithToken(ctx context.Context, req request, out any, first string) error {
	tok := Token{Value: first}
	for retried := false; ; retried = true {
		if tok.Value == "" {
			var err error
			if tok, err = a.cred.Get(ctx); err != nil {
				return err
			}
		}
		q := make(url.Values, len(req.query)+1)
		for k, v := range req.query {
			q[k] = v
		}
		q.Set(a.param, tok.Value)
		r := req
		r.query, r.token = q, tok.Value
		err := a.call(ctx, r, out)
		if retried || !a.cred.rejects(err) {
			return err
		}
		fresh, rerr := a.cred.rejected(ctx, req.path, tok.Value, err)
		if rerr != nil {
			return wrapErr(rerr, "%s: refreshing the %s after %v", req.path, a.cred.name, codeOf(err))
		}
		tok = fresh
	}
}

// codeOf names err's errcode for a message: "errcode 40001", or "a
// rejection" for an error that is not an *APIError.
func codeOf(err error) string {
	if e := asAPIError(err); e != nil {
		return fmt.Sprintf("errcode %d", e.Code)
	}
	return "a rejection"
}

// Issue makes a call that issues a credential (a token or ticket call)
// and returns it as a Token: the reply's string field named field
// ("access_token", "ticket", "component_access_token", …) and its
// "expires_in" (seconds; trusted up to 24 h), counted from when the call
// started by APIConfig.Now. No credential is added. A reply without the
// field or without a positive expires_in (or one cut short, not JSON) is a
// *ReplyError of HTTP 200 whose Reason says what is wrong, never an empty
// or eternal token; as a Credential's Fetch error it starts
// Policy.ErrorBackoff, like a configuration error. body is as for Do.
func (a *API) Issue(ctx context.Context, method, path string, query url.Values, body any, field string) (Token, error) {
	return a.IssueReply(ctx, method, path, query, body, field, nil)
}

// IssueReply is Issue that also decodes the whole reply into out (unless
// out is nil): the other fields a credential call returns, such as the
// authorizer_refresh_token beside an authorizer_access_token. A reply out
// cannot hold is a *ReplyError.
func (a *API) IssueReply(ctx context.Context, method, path string, query url.Values, body any, field string, out any) (Token, error) {
	req, err := newRequest(method, path, query, body)
	if err != nil {
		return Token{}, err
	}
	req.token = query.Get(a.paramOrDefault())
	start := a.now()
	r := issuedReply{}
	if err := a.call(ctx, req, &r); err != nil {
		return Token{}, err
	}
	secrets := a.secretsOf(req)
	tok, err := r.token(path, field, start, secrets)
	if err == nil && out != nil {
		if uerr := json.Unmarshal(r.raw, out); uerr != nil {
			err = &ReplyError{Path: path, StatusCode: http.StatusOK, Reason: "unexpected JSON: " + uerr.Error(), Body: redactBody(r.raw, secrets...)}
		}
	}
	if e, ok := err.(*ReplyError); ok {
		e.Platform = a.platform()
		return Token{}, e
	}
	return tok, err
}

// platform is the Platform of a's ReplyErrors: "" for the Official
// Account's, so that their text is as it always was.
func (a *API) platform() string {
	if a.codes == OfficialAccountCodes {
		return ""
	}
	return a.codes.Platform
}

// call makes req, retrying busy replies, HTTP 5xx and network errors with
// capped exponential backoff and jitter, within ctx.
func (a *API) call(ctx context.Context, req request, out any) error {
	for attempt := 0; ; attempt++ {
		err := a.once(ctx, req, out)
		if err == nil || !retryable(err) || attempt >= a.retries || ctx.Err() != nil {
			return err
		}
		delay := a.delay(attempt)
		if a.logger.Enabled(ctx, slog.LevelDebug) {
			attrs := []slog.Attr{slog.String("path", req.path), slog.Int("attempt", attempt+1), slog.Duration("delay", delay), slog.String("error", err.Error())}
			if a.account != "" {
				attrs = append(attrs, slog.String("platform", string(a.account)))
			}
			a.logger.LogAttrs(ctx, slog.LevelDebug, EventRetry, attrs...)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wechatconf: %s: %w; last error: %w", req.path, ctx.Err(), err)
		}
	}
}

// delay is the delay before retry number attempt+1: RetryBackoff doubled
// per attempt, capped at 16 times it, with up to 50% jitter taken off.
func (a *API) delay(attempt int) time.Duration {
	d := a.backoff << min(attempt, 4)
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

// secretsOf returns the values no error or log line about req may
// contain: the API's secrets and the token req carries.
func (a *API) secretsOf(req request) []string {
	s := make([]string, 0, len(a.secrets)+1)
	for _, x := range a.secrets {
		s = append(s, x.Reveal())
	}
	for _, r := range a.rotating {
		s = append(s, r.held()...)
	}
	return append(s, req.token)
}

// once makes req a single time and decodes the reply.
func (a *API) once(ctx context.Context, req request, out any) error {
	u := a.baseURL + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return fmt.Errorf("wechatconf: %s %s: %s", req.method, req.path, redactText(err.Error(), a.secretsOf(req)...))
	}
	if req.body != nil {
		ct := req.contentType
		if ct == "" {
			ct = "application/json; charset=utf-8"
		}
		hr.Header.Set("Content-Type", ct)
	}
	resp, err := a.client.Do(hr)
	if err != nil {
		return redactError(err, a.secretsOf(req)...)
	}
	defer resp.Body.Close()
	return a.decode(req, resp, out)
}

// decode reads resp into out (see Do), an *APIError or a *ReplyError.
func (a *API) decode(req request, resp *http.Response, out any) error {
	secrets := a.secretsOf(req)
	bad := func(status int, reason string, data []byte) error {
		return &ReplyError{Path: req.path, StatusCode: status, Reason: reason, Body: redactBody(data, secrets...), Platform: a.platform()}
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
			if e := a.apiError(req.path, head, secrets); e != nil && len(head) < peekErrcode {
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
	var body io.Reader = resp.Body
	if out == nil {
		// The caller does not need the body: only a reply that starts as a
		// JSON object can carry an errcode, so only that one is read and
		// checked; any other (a file, an empty body) is drained, unread.
		br := bufio.NewReaderSize(resp.Body, 512)
		if first, err := skipSpace(br); err != nil || first != '{' {
			if _, err := io.Copy(io.Discard, io.LimitReader(br, maxReply)); err != nil {
				return readErr(err)
			}
			return nil
		}
		body = br
	}
	data, err := io.ReadAll(io.LimitReader(body, maxReply+1))
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
	if e := a.apiError(req.path, data, secrets); e != nil {
		return e
	}
	if r, ok := out.(*issuedReply); ok {
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
func (a *API) apiError(path string, data []byte, secrets []string) *APIError {
	var env struct {
		ErrCode *int   `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if json.Unmarshal(data, &env) != nil || env.ErrCode == nil || *env.ErrCode == 0 {
		return nil
	}
	return &APIError{Code: *env.ErrCode, Message: redactText(env.ErrMsg, secrets...), Path: path, Codes: a.codes}
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

// skipSpace consumes the JSON white space and a UTF-8 byte order mark at
// the start of br, up to maxReply bytes of it (peekNonSpace gives up after
// its buffer), and returns the next byte without consuming it: a reply Do
// need not keep is tested for an errcode wherever its object starts. After
// maxReply bytes of white space it returns ' '.
func skipSpace(br *bufio.Reader) (byte, error) {
	if b, err := br.Peek(3); err == nil && string(b) == "\uFEFF" {
		br.Discard(3)
	}
	for range maxReply {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c, br.UnreadByte()
	}
	return ' ', nil
}

// issuedReply is a reply that issues a credential: its fields, and the
// body for a *ReplyError.
type issuedReply struct {
	fields map[string]json.RawMessage
	raw    []byte
}

func (r *issuedReply) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &r.fields) }

// token turns the reply into a Token: a reply without a string value in
// field or without a positive expires_in is malformed, never an empty or
// eternal token; its *ReplyError's Reason names what is wrong and never
// holds a value of the reply other than expires_in. An expires_in beyond
// maxTrustedLifetime is trusted only that far (computed without overflow).
func (r *issuedReply) token(path, field string, start time.Time, secrets []string) (Token, error) {
	var value string
	var expiresIn int64
	valErr := json.Unmarshal(r.fields[field], &value)
	expErr := json.Unmarshal(r.fields["expires_in"], &expiresIn)
	reason := ""
	switch _, has := r.fields[field]; {
	case !has:
		reason = fmt.Sprintf("no %s and no errcode in the reply", field)
	case valErr != nil || value == "":
		reason = fmt.Sprintf("%s is empty or not a string", field)
	case r.fields["expires_in"] == nil:
		reason = "no expires_in in the reply"
	case expErr != nil:
		reason = "expires_in is not a whole number of seconds"
	case expiresIn <= 0:
		reason = fmt.Sprintf("expires_in is %d, not a positive number of seconds", expiresIn)
	}
	if reason != "" {
		return Token{}, &ReplyError{Path: path, StatusCode: http.StatusOK, Reason: reason, Body: redactBody(r.raw, secrets...)}
	}
	life := maxTrustedLifetime
	if expiresIn < int64(maxTrustedLifetime/time.Second) {
		life = time.Duration(expiresIn) * time.Second
	}
	return Token{Value: value, ExpiresAt: start.Add(life).Round(0)}, nil
}
