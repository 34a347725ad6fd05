package tokenserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// credential is one credential the server hands out. Its name is both the
// URL path (/name and /name/refresh) and the last element of the core
// store key ("<KeyPrefix>/<AppID>/name"), which is how NewWorkerStore maps a
// key to an endpoint.
type credential struct {
	name    string
	get     func(*core.Conf, context.Context) (core.Token, error)
	refresh func(*core.Conf, context.Context, string) (core.Token, error)
}

// credentials are the three credentials of core.Conf. Only the access_token
// has a compare-and-refresh in core; a ticket's refresh endpoint answers
// with the current valid ticket (see the package doc, "Tickets").
var credentials = []credential{
	{"access_token", (*core.Conf).AccessToken, (*core.Conf).RefreshAccessToken},
	{"jsapi_ticket", (*core.Conf).JSAPITicket, currentTicket((*core.Conf).JSAPITicket)},
	{"wx_card_ticket", (*core.Conf).CardTicket, currentTicket((*core.Conf).CardTicket)},
}

// currentTicket is the refresh of a ticket: the current valid one, whatever
// stale is.
func currentTicket(get func(*core.Conf, context.Context) (core.Token, error)) func(*core.Conf, context.Context, string) (core.Token, error) {
	return func(c *core.Conf, ctx context.Context, _ string) (core.Token, error) { return get(c, ctx) }
}

// DefaultTimeout is how long a request waits for a credential before the
// handler answers 504, unless WithTimeout says otherwise.
const DefaultTimeout = 10 * time.Second

// MinSecretLen is the shortest bearer secret the commands of this
// repository accept; make one with `openssl rand -hex 32`.
const MinSecretLen = 16

// maxBody bounds a refresh body: {"stale":"…"} with a token of at most 512 bytes.
const maxBody = 4 << 10

// An Option configures Handler.
type Option func(*server)

// WithTimeout sets how long one request waits for a credential (WeChat's
// answer, or the shared store's lock) before the handler answers 504; the
// refresh goes on, and the next request gets its result. d <= 0 keeps
// DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(s *server) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// WithLogger sets the logger that receives one line per request (method,
// path, status, duration, remote address) and the credential errors; never
// a credential or a secret. nil keeps the default, which discards.
func WithLogger(l *slog.Logger) Option {
	return func(s *server) {
		if l != nil {
			s.log = l
		}
	}
}

// Handler returns the token server: an http.Handler serving conf's
// access_token, jsapi_ticket and wx_card api_ticket to callers that present
// secret as a bearer token, with GET /healthz (liveness) and GET /readyz
// (readiness: conf.Ready) open to all (see the package doc for the
// endpoints). An empty secret refuses every credential request.
// The secret is kept only as its SHA-256. The handler is safe for
// concurrent use; serve it with an http.Server whose WriteTimeout exceeds
// the request timeout.
func Handler(conf *core.Conf, secret core.Secret, opts ...Option) http.Handler {
	s := newServer(conf, secret)
	for _, o := range opts {
		o(s)
	}
	return s
}

// tokenReply is the body of every successful credential request.
type tokenReply struct {
	Value         string `json:"value"`
	ExpiresAt     string `json:"expires_at"`      // RFC 3339, UTC, truncated to the second
	ExpiresAtUnix int64  `json:"expires_at_unix"` // the same instant in Unix seconds
}

// errorReply is the body of every error.
type errorReply struct {
	Error string `json:"error"`
}

// refreshRequest is the body of a POST …/refresh. Stale is a pointer so that
// a missing field is an error, while "" ("I have no token") is allowed.
type refreshRequest struct {
	Stale *string `json:"stale"`
}

// server is the token server's handler: the credentials of one core.Conf
// behind a bearer secret. It is safe for concurrent use.
type server struct {
	conf     *core.Conf
	secret   [sha256.Size]byte // SHA-256 of the bearer secret
	noSecret bool              // built with an empty secret: refuse everything
	mux      *http.ServeMux

	// timeout bounds how long one request waits for a credential (504
	// after it); log receives one line per request and the errors, never
	// a credential. The options set both; newServer's defaults are
	// DefaultTimeout and a discarding logger.
	timeout time.Duration
	log     *slog.Logger
}

// newServer returns the handler serving conf's credentials to callers that
// present secret as a bearer token. An empty secret refuses every request.
// The secret arrives as a core.Secret, which nothing prints, and is kept
// only as its SHA-256.
func newServer(conf *core.Conf, secret core.Secret) *server {
	s := &server{
		conf:     conf,
		secret:   sha256.Sum256([]byte(secret.Reveal())),
		noSecret: secret.IsZero(),
		mux:      http.NewServeMux(),
		timeout:  DefaultTimeout,
		log:      slog.New(slog.DiscardHandler),
	}
	for _, c := range credentials {
		s.mux.Handle("/"+c.name, allow(http.MethodGet, func(w http.ResponseWriter, r *http.Request) { s.serveGet(w, r, c) }))
		s.mux.Handle("/"+c.name+"/refresh", allow(http.MethodPost, func(w http.ResponseWriter, r *http.Request) { s.serveRefresh(w, r, c) }))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: use /access_token, /jsapi_ticket or /wx_card_ticket (GET), or their /refresh (POST)")
	})
	return s
}

// ServeHTTP checks the bearer secret, then serves the endpoint. /healthz
// needs no secret and touches no credential; /readyz needs no secret (the
// error's text needs it) and is core.Conf.Ready.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Path == "/healthz" {
		allow(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}).ServeHTTP(w, r)
		return
	}
	if r.URL.Path == "/readyz" {
		allow(http.MethodGet, s.serveReady).ServeHTTP(w, r)
		return
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	if !s.authorized(r) {
		rec.Header().Set("WWW-Authenticate", `Bearer realm="tokenserver"`)
		writeError(rec, http.StatusUnauthorized, "missing or wrong bearer secret: send Authorization: Bearer $TOKENSERVER_SECRET")
	} else {
		s.mux.ServeHTTP(rec, r)
	}
	s.log.Info("tokenserver: request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
		"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
}

// authorized reports whether r carries the bearer secret. Both sides are
// hashed first, so the comparison takes the same time whatever the length
// or content of what was sent.
func (s *server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || s.noSecret {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], s.secret[:]) == 1
}

// serveGet answers GET /name with the current valid credential.
func (s *server) serveGet(w http.ResponseWriter, r *http.Request, c credential) {
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	tok, err := c.get(s.conf, ctx)
	if err != nil {
		s.fail(w, r, c, err)
		return
	}
	writeToken(w, tok)
}

// serveRefresh answers POST /name/refresh {"stale":"…"}.
func (s *server) serveRefresh(w http.ResponseWriter, r *http.Request, c credential) {
	stale, status, msg := readStale(w, r)
	if status != 0 {
		writeError(w, status, msg)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	tok, err := c.refresh(s.conf, ctx, stale)
	if err != nil {
		s.fail(w, r, c, err)
		return
	}
	writeToken(w, tok)
}

// readStale decodes a refresh body. On failure it returns the status and a
// fixed message (the decoder's own error would echo what the client sent).
func readStale(w http.ResponseWriter, r *http.Request) (stale string, status int, msg string) {
	const want = `the body must be one JSON object {"stale":"<the token you saw rejected, or \"\" if you have none>"}`
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	var req refreshRequest
	err := dec.Decode(&req)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("trailing data")
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return "", http.StatusRequestEntityTooLarge, "the body is larger than 4 KiB; " + want
	case errors.Is(err, io.EOF):
		return "", http.StatusBadRequest, "empty body; " + want
	case err != nil:
		return "", http.StatusBadRequest, want
	case req.Stale == nil:
		return "", http.StatusBadRequest, `"stale" is missing; ` + want
	}
	return *req.Stale, 0, ""
}

// fail answers a credential error: 504 when the request's time ran out, 503
// when the client or the server gave up, 502 otherwise (WeChat refused or
// could not be reached; core's message says why and never holds the
// AppSecret).
func (s *server) fail(w http.ResponseWriter, r *http.Request, c credential, err error) {
	status := http.StatusBadGateway
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		status = http.StatusServiceUnavailable
	}
	s.log.Warn("tokenserver: credential unavailable", "credential", c.name, "method", r.Method, "status", status, "error", err)
	writeError(w, status, err.Error())
}

func writeToken(w http.ResponseWriter, t core.Token) {
	at := t.ExpiresAt.UTC().Truncate(time.Second)
	writeJSON(w, http.StatusOK, tokenReply{Value: t.Value, ExpiresAt: at.Format(time.RFC3339), ExpiresAtUnix: at.Unix()})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorReply{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) // a write error means the client is gone
}

// allow serves h for method only, and 405 with Allow for any other.
func allow(method string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "use "+method+" "+r.URL.Path)
			return
		}
		h(w, r)
	})
}

// statusRecorder remembers the status written, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
