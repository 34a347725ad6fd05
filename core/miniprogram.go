package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// pathCode2Session is the Mini Program login (小程序登录, auth.code2Session).
const pathCode2Session = "/sns/jscode2session"

// Session is a Mini Program login session from /sns/jscode2session: who
// the user is, and the key of their session.
//
// SessionKey decrypts the user data the Mini Program sends (wx.getUserInfo's
// encryptedData, a phone number) and checks its signature: keep it on the
// server and never send it to the Mini Program. It is a Secret, so no
// rendering of a Session (fmt, log/slog, encoding/json) shows it; read it
// with SessionKey.Reveal.
type Session struct {
	OpenID     string `json:"openid"`      // the user's openid in this Mini Program
	SessionKey Secret `json:"session_key"` // the session key: never to leave the server
	// UnionID is the user's unionid across the apps of the WeChat Open
	// Platform account the Mini Program is bound to; "" when it is not
	// bound to one.
	UnionID string `json:"unionid,omitempty"`
}

// Code2Session logs a Mini Program user in (小程序登录, auth.code2Session):
// it exchanges code, the code wx.login gave the Mini Program on the phone,
// for the user's Session with
//
//	GET https://api.weixin.qq.com/sns/jscode2session?appid=APPID&secret=SECRET&js_code=CODE&grant_type=authorization_code
//
// The call is made with the AppSecret, not an access_token, so it needs
// Config.AppID and Config.AppSecret (a missing one is an error, without a
// request) and does not touch the access_token. The AppSecret and the
// session_key appear in no error.
//
// A code can be exchanged once, for about five minutes. WeChat's refusals
// are *APIError: 40029 (invalid code: unknown, expired, or of another
// AppID), 40163 (code been used), 40226 (a high-risk user, whom the Mini
// Program must not log in), 45011 (too many calls a minute) or -1 (busy).
// -1 and 45011, HTTP 5xx and network errors are retried like every call
// (Config.MaxRetries); 40029, 40163 and 40226 never are: the Mini Program
// must call wx.login for a new code. (If a reply is lost after WeChat
// accepted the code, the retry finds it used: 40163.) A reply without an
// openid or a session_key is a *ReplyError. A refused AppSecret (40125,
// reset in the admin console) is ErrSecretRefused too, and with
// Config.AppSecretSource the source is read again at the next call.
func (c *Conf) Code2Session(ctx context.Context, code string) (Session, error) {
	switch {
	case c.appID == "":
		return Session{}, errMissing("AppID", "log a Mini Program user in (code2Session)")
	case c.secret.IsZero():
		return Session{}, errMissing("AppSecret", "log a Mini Program user in (code2Session)")
	case code == "":
		return Session{}, wrapErr(errors.New("the code is empty: pass the code wx.login gave the Mini Program"), "code2Session")
	}
	// The AppSecret held (AppSecretSource is read here only when nothing
	// is held yet, or a call saw it refused).
	secret, err := c.secret.Get(ctx)
	if err != nil {
		return Session{}, err
	}
	var raw json.RawMessage
	err = c.raw.Do(ctx, http.MethodGet, pathCode2Session, url.Values{
		"appid": {c.appID}, "secret": {secret.Reveal()}, "js_code": {code}, "grant_type": {"authorization_code"},
	}, nil, &raw)
	if err != nil {
		// A refusal of the secret (40125) has the source read again at
		// the next call: a service that only logs users in recovers from
		// a reset without a restart. There is no back-off here: while
		// WeChat refuses the source's value, each login reads it once.
		return Session{}, c.secret.Check(secret, err)
	}
	return c.readSession(raw)
}

// readSession decodes a code2Session reply that carries no errcode. A
// malformed one is a *ReplyError whose body has neither the AppSecret nor
// the session_key.
func (c *Conf) readSession(raw []byte) (Session, error) {
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(raw, &fields) // API.Do checked that raw is a JSON object
	var key string
	_ = json.Unmarshal(fields["session_key"], &key)
	bad := func(reason string) (Session, error) {
		body := redactBody(raw, append(c.secret.held(), key, string(fields["session_key"]))...)
		return Session{}, wrapErr(&ReplyError{Path: pathCode2Session, StatusCode: http.StatusOK, Reason: reason, Body: body}, "")
	}
	var s struct {
		OpenID  string `json:"openid"`
		UnionID string `json:"unionid"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return bad(fmt.Sprintf("unexpected JSON: %v", err))
	}
	switch {
	case s.OpenID == "":
		return bad("no openid and no errcode in the reply")
	case key == "":
		return bad("no session_key and no errcode in the reply")
	}
	return Session{OpenID: s.OpenID, SessionKey: NewSecret(key), UnionID: s.UnionID}, nil
}
