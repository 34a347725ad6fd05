package tokenserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// maxReply bounds how much of a token server reply a worker reads.
const maxReply = 64 << 10

// NewWorkerStore returns the store of a Go worker of the token server at
// baseURL (the seed's 业务逻辑服务器): the worker form of core.FuncStore, whose
// Get is GET /<credential> and whose Refresh is POST /<credential>/refresh
// with the stale value, both sent with secret as a bearer token. The
// credential is the last element of the store key (Conf's keys end in
// /access_token, /jsapi_ticket and /wx_card_ticket). A nil client means one
// with a 30 s timeout. Use it as a Conf's Store; the Conf needs the AppID
// and no AppSecret:
//
//	store, err := tokenserver.NewWorkerStore("http://tokens.internal:8080", core.NewSecret(os.Getenv("TOKENSERVER_SECRET")), nil)
//	conf, err := core.New(core.Config{AppID: "wx…", Store: store})
//
// The worker reads the server only when its in-process copy nears expiry,
// and its Conf's Do (or Transport) sends a token WeChat rejected back as
// stale, so a fleet that sees one token revoked causes one fetch.
//
// The worker store cannot list keys (it does not implement core.KeyLister,
// like every core.FuncStore): the tokens live in the server's store, which
// is the one to list.
func NewWorkerStore(baseURL string, secret core.Secret, client *http.Client) (*core.FuncStore, error) {
	u, err := url.Parse(baseURL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("tokenserver worker: base URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return nil, fmt.Errorf("tokenserver worker: base URL %q: want http://host[:port] or https://host[:port]", baseURL)
	case secret.IsZero():
		return nil, errors.New("tokenserver worker: the bearer secret is empty (set TOKENSERVER_SECRET)")
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	w := &worker{base: strings.TrimRight(baseURL, "/"), auth: "Bearer " + secret.Reveal(), client: client}
	return core.NewFuncStore(core.StoreFuncs{Get: w.get, Refresh: w.refresh})
}

// worker makes the token server requests of a NewWorkerStore.
type worker struct {
	base   string // without a trailing slash
	auth   string // the Authorization header
	client *http.Client
}

// endpoint returns the URL path of the credential stored under key.
func (w *worker) endpoint(key string) (string, error) {
	for _, c := range credentials {
		if strings.HasSuffix(key, "/"+c.name) {
			return "/" + c.name, nil
		}
	}
	return "", fmt.Errorf("tokenserver worker: no endpoint for store key %q", key)
}

func (w *worker) get(ctx context.Context, key string) (core.Token, error) {
	path, err := w.endpoint(key)
	if err != nil {
		return core.Token{}, err
	}
	return w.do(ctx, http.MethodGet, path, nil)
}

func (w *worker) refresh(ctx context.Context, key, stale string) (core.Token, error) {
	path, err := w.endpoint(key)
	if err != nil {
		return core.Token{}, err
	}
	body, err := json.Marshal(refreshRequest{Stale: &stale})
	if err != nil {
		return core.Token{}, err
	}
	return w.do(ctx, http.MethodPost, path+"/refresh", body)
}

// do makes one request and decodes the token, or the server's error.
func (w *worker) do(ctx context.Context, method, path string, body []byte) (core.Token, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.base+path, rd)
	if err != nil {
		return core.Token{}, fmt.Errorf("tokenserver worker: %w", err)
	}
	req.Header.Set("Authorization", w.auth)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return core.Token{}, fmt.Errorf("tokenserver worker: %w", err) // the URL holds no secret: it travels in a header
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return core.Token{}, fmt.Errorf("tokenserver worker: %s %s: reading the reply: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorReply
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = "no error message"
		}
		return core.Token{}, fmt.Errorf("tokenserver worker: %s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	var t tokenReply
	if err := json.Unmarshal(data, &t); err != nil {
		return core.Token{}, fmt.Errorf("tokenserver worker: %s %s: the reply is not a token: %w", method, path, err)
	}
	at, err := time.Parse(time.RFC3339, t.ExpiresAt)
	if err != nil || t.Value == "" {
		return core.Token{}, fmt.Errorf("tokenserver worker: %s %s: the reply lacks a value or an RFC 3339 expires_at", method, path)
	}
	return core.Token{Value: t.Value, ExpiresAt: at}, nil
}
