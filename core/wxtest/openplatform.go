package wxtest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// Paths of the simulated WeChat Open Platform (第三方平台, third-party
// platform) credential endpoints, relative to [Server.URL]. Latency,
// [Server.InjectFault], [Server.Block], [Server.Calls] and the simulated
// clock apply to them as to every other path. They are POST-only (errcode
// 43002 otherwise) and take a JSON body (errcode 47001 if it is not JSON).
//
// The component_access_token goes in the query as component_access_token
// (the 2.0 docs) or access_token (the current docs, which name the same
// parameter so). A missing one is errcode 41001, an unknown one 40001, an
// expired one 42001; an Official Account or authorizer access_token is
// 61014 "must use component token for component api" (the error table of
// 获取授权账号调用令牌 getAuthorizerAccessToken in the current Open Platform
// docs).
const (
	// PathComponentToken is the third-party platform's token endpoint
	// (令牌 component_access_token,
	// https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/ThirdParty/token/component_access_token.html):
	// POST {"component_appid","component_appsecret","component_verify_ticket"}
	// answers {"component_access_token":"...","expires_in":7200}. Every
	// successful call mints a new token; the previous one keeps working for
	// [Options.Overlap], as a classic access_token does (the docs say only
	// that a token lives 2 hours and should be fetched again shortly before
	// it expires). Errcodes, in the order they are checked: 41002 missing
	// component_appid, 41004 missing component_appsecret, 40013 a
	// component_appid not in [Options.Components], 40125 a wrong
	// component_appsecret, 61006 "component ticket is invalid" for a ticket
	// this server never issued to that component (or none), 61005 "component
	// ticket is expired" for one older than [VerifyTicketLifetime], 45009
	// past [Options.DailyQuota].
	PathComponentToken = "/cgi-bin/component/api_component_token"
	// PathQueryAuth exchanges an authorization code for the authorizer's
	// tokens (使用授权码获取授权信息 api_query_auth,
	// https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/ThirdParty/token/authorization_info.html):
	// POST ?component_access_token=CT with {"component_appid",
	// "authorization_code"} answers {"authorization_info":{"authorizer_appid":
	// "...","authorizer_access_token":"...","expires_in":7200,
	// "authorizer_refresh_token":"...","func_info":[{"funcscope_category":
	// {"id":1}},...]}}. A code (from [Server.Authorize]) works for
	// [AuthorizationCodeLifetime]; an unknown or revoked code is 61009
	// "code is invalid", an expired one 61010 "code is expired". Its first
	// exchange issues a new refresh token: the authorizer's previous
	// refresh token and its access tokens stop working at once ("用户重新授
	// 权后，之前的刷新令牌会失效"). WeChat's docs give the code a validity
	// (the push's AuthorizationCodeExpiredTime) and do not make it
	// single-use, and a vendor receives every code twice (the redirect's
	// auth_code and the authorized push), so the simulation answers a code
	// exchanged again within its life with the same authorization — the
	// refresh token that works now and the current access token, nothing
	// invalidated — while it is the authorizer's latest; a code superseded
	// by a later authorization (issued before the last code exchanged, used
	// or not) or a withdrawal is 61009.
	// [Server.SingleUseAuthorizationCodes] makes every second exchange
	// 61009, for testing a client against the strict reading. A missing
	// component_appid is 41002, one other than the token's component 61011
	// "invalid component".
	PathQueryAuth = "/cgi-bin/component/api_query_auth"
	// PathAuthorizerToken gets a new authorizer_access_token with the
	// refresh token (获取/刷新接口调用令牌 api_authorizer_token,
	// https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/ThirdParty/token/api_authorizer_token.html):
	// POST ?component_access_token=CT with {"component_appid",
	// "authorizer_appid","authorizer_refresh_token"} answers
	// {"authorizer_access_token":"...","expires_in":7200,
	// "authorizer_refresh_token":"..."}. Every call mints a new access token;
	// the previous one keeps working for [Options.Overlap], as a classic
	// token does. The refresh token answered is the one sent (the docs'
	// example echoes it), unless [Server.RotateRefreshTokens] is on: then
	// each call answers a new one and the one sent stops working. Errcodes:
	// 41002 missing component_appid or authorizer_appid, 61011 a
	// component_appid other than the token's, 61003 "component is not
	// authorized by this account" for an authorizer that never authorized
	// the component or revoked it ([Server.Unauthorize]), 61023
	// "refresh_token is invalid" for a missing, unknown or superseded
	// refresh token, 45009 past [Options.DailyQuota] (counted per
	// authorizer).
	PathAuthorizerToken = "/cgi-bin/component/api_authorizer_token"
)

// Lifetimes of the Open Platform's one-off credentials.
const (
	// VerifyTicketLifetime is how long a component_verify_ticket is accepted
	// by [PathComponentToken]: "component_verify_ticket 的有效时间为12小时"
	// (验证票据,
	// https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/Before_Develop/component_verify_ticket.html).
	// A newer ticket does not invalidate older ones: the docs advise keeping
	// "the most recently available" ticket, so each works for its own 12
	// hours.
	VerifyTicketLifetime = 12 * time.Hour
	// AuthorizationCodeLifetime is how long an authorization code from
	// [Server.Authorize] is accepted by [PathQueryAuth]: the authorization
	// page redirects with "redirect_url?auth_code=xxx&expires_in=600"
	// (授权流程, quoted with the api_query_auth page
	// https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/ThirdParty/token/authorization_info.html
	// in EasyWeChat's and Senparc.Weixin's sources among others; the push's
	// AuthorizationCodeExpiredTime is the same instant in Unix seconds).
	AuthorizationCodeLifetime = 600 * time.Second
	// VerifyTicketInterval is how often WeChat pushes a new
	// component_verify_ticket ("每隔 10 分钟"). The simulation pushes
	// nothing by itself: a test calls [Server.VerifyTicketPush] when it
	// wants one.
	VerifyTicketInterval = 10 * time.Minute
)

// Open Platform errcodes, as WeChat's docs and WxJava's WxMpErrorMsgEnum
// (https://github.com/binarywang/WxJava) list them.
const (
	codeNotAuthorized    = 61003 // component is not authorized by this account
	codeTicketExpired    = 61005 // component ticket is expired
	codeTicketInvalid    = 61006 // component ticket is invalid
	codeCodeInvalid      = 61009 // code is invalid
	codeCodeExpired      = 61010 // code is expired
	codeInvalidComponent = 61011 // invalid component
	codeNeedComponentTok = 61014 // must use component token for component api
	codeRefreshInvalid   = 61023 // refresh_token is invalid
)

var componentErrmsgs = map[int]string{
	codeNotAuthorized:    "component is not authorized by this account",
	codeTicketExpired:    "component ticket is expired",
	codeTicketInvalid:    "component ticket is invalid",
	codeCodeInvalid:      "code is invalid",
	codeCodeExpired:      "code is expired",
	codeInvalidComponent: "invalid component",
	codeNeedComponentTok: "must use component token for component api",
	codeRefreshInvalid:   "refresh_token is invalid",
}

func init() {
	for k, v := range componentErrmsgs {
		errmsgs[k] = v
	}
}

// Component declares one third-party platform (第三方平台) in
// [Options.Components].
type Component struct {
	// AppID is the platform's component_appid.
	AppID string
	// AppSecret is its component_appsecret; empty accepts any non-empty
	// secret.
	AppSecret string
}

// component is the state of one third-party platform.
type component struct {
	appID, secret string
	tickets       map[string]time.Time // verify ticket → expiry; pruned as new ones are issued
	current       *componentToken      // the latest component_access_token
	quota         app                  // only quotaDay and quotaUsed are used
	authorizers   map[string]*authorizer
}

type componentToken struct {
	token
	comp *component
}

// authorizer is the state of one account's authorization of one component.
type authorizer struct {
	appID      string
	authorized bool
	gen        int       // bumped by Unauthorize: codes issued before it are void
	refresh    string    // the refresh token that works; "" when none
	current    *token    // the latest authorizer_access_token
	lastCode   *authCode // the code whose exchange made the current authorization
	live       []*token  // tokens that may still work, to kill on re-authorization
	quota      app       // only quotaDay and quotaUsed are used
}

type authCode struct {
	comp       *component
	authorizer *authorizer
	gen        int
	preAuth    string
	expires    time.Time
	used       bool
	seq        int // order of issue: a code issued before the last one exchanged is void
}

// componentLocked returns the state of the component appid, or nil if it is
// not declared. With no declared components every appid is one, created
// with the secret first seen (empty: any). s.mu must be held.
func (s *Server) componentLocked(appid string) *component {
	if c := s.components[appid]; c != nil || len(s.opts.Components) > 0 {
		return c
	}
	c := &component{appID: appid, tickets: make(map[string]time.Time), authorizers: make(map[string]*authorizer)}
	s.components[appid] = c
	return c
}

// mustComponentLocked is componentLocked for the test-facing methods: an
// undeclared component is a bug in the test. s.mu must be held.
func (s *Server) mustComponentLocked(appid string) *component {
	c := s.componentLocked(appid)
	if c == nil {
		panic("wxtest: component " + strconv.Quote(appid) + " is not in Options.Components")
	}
	return c
}

func (c *component) authorizerFor(appid string) *authorizer {
	a := c.authorizers[appid]
	if a == nil {
		a = &authorizer{appID: appid}
		c.authorizers[appid] = a
	}
	return a
}

// VerifyTicket issues a new component_verify_ticket for componentAppID, as
// WeChat does every [VerifyTicketInterval], and returns it. It is accepted
// by [PathComponentToken] for [VerifyTicketLifetime] of simulated time;
// earlier tickets keep working until their own expiry. It panics if
// componentAppID is not in [Options.Components] (when any are declared).
func (s *Server) VerifyTicket(componentAppID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.verifyTicketLocked(s.mustComponentLocked(componentAppID), s.nowLocked())
}

func (s *Server) verifyTicketLocked(c *component, now time.Time) string {
	for v, exp := range c.tickets {
		if !now.Before(exp.Add(VerifyTicketLifetime)) { // keep expired ones a while: they answer 61005, not 61006
			delete(c.tickets, v)
		}
	}
	v := "ticket@@@" + newValue(ticketBytes)
	c.tickets[v] = now.Add(VerifyTicketLifetime)
	return v
}

// VerifyTicketPush issues a new ticket as [Server.VerifyTicket] does and
// returns the encrypted push WeChat POSTs to the platform's authorization
// event URL (授权事件接收URL): the query (signature, timestamp, nonce,
// encrypt_type=aes, msg_signature) and the body
// <xml><AppId>…</AppId><Encrypt>…</Encrypt></xml>, whose plaintext is
//
//	<xml><AppId>…</AppId><CreateTime>…</CreateTime><InfoType>component_verify_ticket</InfoType><ComponentVerifyTicket>…</ComponentVerifyTicket></xml>
//
// encrypted with msgcrypt and the receive id componentAppID. token and
// encodingAESKey are the platform's message settings. CreateTime and
// timestamp are the simulated now.
func (s *Server) VerifyTicketPush(componentAppID, token, encodingAESKey string) (query url.Values, body []byte, ticket string, err error) {
	s.mu.Lock()
	now := s.nowLocked()
	ticket = s.verifyTicketLocked(s.mustComponentLocked(componentAppID), now)
	s.mu.Unlock()
	query, body, err = VerifyTicketPushAt(componentAppID, token, encodingAESKey, ticket, now)
	return query, body, ticket, err
}

// VerifyTicketPushAt builds a component_verify_ticket push like
// [Server.VerifyTicketPush] with a chosen ticket and CreateTime (also the
// query timestamp), issuing nothing: to replay an old push, or deliver one
// out of order after a newer one.
func VerifyTicketPushAt(componentAppID, token, encodingAESKey, ticket string, createTime time.Time) (query url.Values, body []byte, err error) {
	return ComponentPush(token, encodingAESKey, ComponentEvent{
		AppID:                 componentAppID,
		CreateTime:            createTime.Unix(),
		InfoType:              "component_verify_ticket",
		ComponentVerifyTicket: ticket,
	})
}

// ComponentEvent is the plaintext of a push to a third-party platform's
// authorization event URL (验证票据 and 授权变更通知推送,
// https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/Before_Develop/authorize_event.html).
// Empty fields are left out of the XML.
type ComponentEvent struct {
	XMLName                      xml.Name `xml:"xml"`
	AppID                        string   `xml:"AppId"`      // the component_appid
	CreateTime                   int64    `xml:"CreateTime"` // Unix seconds
	InfoType                     string   `xml:"InfoType"`   // component_verify_ticket, authorized, updateauthorized, unauthorized
	ComponentVerifyTicket        string   `xml:"ComponentVerifyTicket,omitempty"`
	AuthorizerAppid              string   `xml:"AuthorizerAppid,omitempty"`
	AuthorizationCode            string   `xml:"AuthorizationCode,omitempty"`
	AuthorizationCodeExpiredTime int64    `xml:"AuthorizationCodeExpiredTime,omitempty"` // Unix seconds
	PreAuthCode                  string   `xml:"PreAuthCode,omitempty"`
}

// ComponentPush encrypts ev into a push to the platform's authorization
// event URL, in WeChat's safe mode: the body is
// <xml><AppId>…</AppId><Encrypt>…</Encrypt></xml> and the query carries
// signature, timestamp (ev.CreateTime), nonce (random), encrypt_type=aes and
// msg_signature. The receive id is ev.AppID, the component_appid.
func ComponentPush(token, encodingAESKey string, ev ComponentEvent) (query url.Values, body []byte, err error) {
	c, err := msgcrypt.New(token, encodingAESKey, ev.AppID)
	if err != nil {
		return nil, nil, err
	}
	plain, err := xml.Marshal(ev)
	if err != nil {
		return nil, nil, err
	}
	enc, err := c.Encrypt(plain)
	if err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	b.WriteString("<xml><AppId><![CDATA[")
	xml.EscapeText(&b, []byte(ev.AppID)) // a bytes.Buffer never fails
	b.WriteString("]]></AppId><Encrypt><![CDATA[")
	b.WriteString(enc) // base64: nothing to escape
	b.WriteString("]]></Encrypt></xml>")
	ts := strconv.FormatInt(ev.CreateTime, 10)
	nonce := msgcrypt.NewNonce()
	query = url.Values{
		"signature":     {msgcrypt.Signature(token, ts, nonce)},
		"timestamp":     {ts},
		"nonce":         {nonce},
		"encrypt_type":  {"aes"},
		"msg_signature": {msgcrypt.MsgSignature(token, ts, nonce, enc)},
	}
	return query, b.Bytes(), nil
}

// Authorize simulates the administrator of authorizerAppID (an Official
// Account or Mini Program) confirming the authorization page of
// componentAppID, and returns the authorization code the page redirects
// with, valid [AuthorizationCodeLifetime]. The account counts as
// authorized from now on (until [Server.Unauthorize]); the platform gets
// its tokens by exchanging the code at [PathQueryAuth]. Authorizing again
// is re-authorization: the code's exchange replaces the refresh token. It
// panics if componentAppID is not declared.
func (s *Server) Authorize(componentAppID, authorizerAppID string) (authorizationCode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustComponentLocked(componentAppID)
	a := c.authorizerFor(authorizerAppID)
	a.authorized = true
	now := s.nowLocked()
	for {
		authorizationCode = "queryauthcode@@@" + newValue(ticketBytes)
		if _, dup := s.authCodes[authorizationCode]; !dup {
			break
		}
	}
	s.codeSeq++
	s.authCodes[authorizationCode] = &authCode{
		comp: c, authorizer: a, gen: a.gen, seq: s.codeSeq,
		preAuth: "preauthcode@@@" + newValue(32),
		expires: now.Add(AuthorizationCodeLifetime),
	}
	return authorizationCode
}

// AuthorizedPush returns the encrypted "authorized" (授权成功通知) push for
// an authorization code from [Server.Authorize]: InfoType authorized with
// AuthorizerAppid, AuthorizationCode, AuthorizationCodeExpiredTime (Unix
// seconds) and PreAuthCode; CreateTime is the simulated now. See
// [ComponentPush] for the envelope. The code may already have been
// exchanged. It panics on a code this server did not issue.
func (s *Server) AuthorizedPush(authorizationCode, token, encodingAESKey string) (query url.Values, body []byte, err error) {
	return s.codePush("authorized", authorizationCode, token, encodingAESKey)
}

// UpdateAuthorizedPush is [Server.AuthorizedPush] with InfoType
// updateauthorized (授权更新通知), which WeChat sends when an authorized
// account changes what it granted; the code comes from a new
// [Server.Authorize].
func (s *Server) UpdateAuthorizedPush(authorizationCode, token, encodingAESKey string) (query url.Values, body []byte, err error) {
	return s.codePush("updateauthorized", authorizationCode, token, encodingAESKey)
}

func (s *Server) codePush(infoType, code, token, encodingAESKey string) (url.Values, []byte, error) {
	s.mu.Lock()
	ac := s.authCodes[code]
	now := s.nowLocked()
	s.mu.Unlock()
	if ac == nil {
		panic("wxtest: unknown authorization code " + strconv.Quote(code))
	}
	return ComponentPush(token, encodingAESKey, ComponentEvent{
		AppID:                        ac.comp.appID,
		CreateTime:                   now.Unix(),
		InfoType:                     infoType,
		AuthorizerAppid:              ac.authorizer.appID,
		AuthorizationCode:            code,
		AuthorizationCodeExpiredTime: ac.expires.Unix(),
		PreAuthCode:                  ac.preAuth,
	})
}

// UnauthorizedPush returns the encrypted "unauthorized" (取消授权通知) push:
// InfoType unauthorized with AuthorizerAppid, CreateTime the simulated now.
// It changes nothing: call [Server.Unauthorize] for the revocation itself.
func (s *Server) UnauthorizedPush(componentAppID, authorizerAppID, token, encodingAESKey string) (query url.Values, body []byte, err error) {
	return ComponentPush(token, encodingAESKey, ComponentEvent{
		AppID:           componentAppID,
		CreateTime:      s.Now().Unix(),
		InfoType:        "unauthorized",
		AuthorizerAppid: authorizerAppID,
	})
}

// Unauthorize simulates authorizerAppID cancelling its authorization of
// componentAppID: its refresh token and its authorizer access tokens stop
// working at once (APIs answer 40001, [PathAuthorizerToken] 61003), and the
// authorization codes issued before it are void (61009). A later
// [Server.Authorize] authorizes it afresh. Unknown pairs are ignored.
func (s *Server) Unauthorize(componentAppID, authorizerAppID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.components[componentAppID]
	if c == nil {
		return
	}
	a := c.authorizers[authorizerAppID]
	if a == nil {
		return
	}
	a.authorized = false
	a.gen++
	a.refresh = ""
	killTokens(a)
}

// killTokens makes every token of a stop working at once.
func killTokens(a *authorizer) {
	for _, t := range a.live {
		t.revoked = true
	}
	clear(a.live)
	a.live = a.live[:0]
	a.current = nil
}

// RotateRefreshTokens sets whether [PathAuthorizerToken] answers a new
// authorizer_refresh_token on every call, the one sent stopping working at
// once (on), or echoes the one sent (off, the default, as the docs'
// example shows). With rotation on, two processes that refresh the same
// authorizer concurrently break each other: the loser's refresh token is
// 61023.
func (s *Server) RotateRefreshTokens(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotateRefresh = on
}

// SingleUseAuthorizationCodes sets whether an authorization code already
// exchanged at [PathQueryAuth] is refused (61009 "code is invalid"), the
// strict reading of WeChat's docs, instead of answering the same
// authorization again (off, the default: see [PathQueryAuth]).
func (s *Server) SingleUseAuthorizationCodes(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.singleUseCodes = on
}

// RefreshTokenValid reports whether refreshToken is the working
// authorizer_refresh_token of authorizerAppID under componentAppID.
func (s *Server) RefreshTokenValid(componentAppID, authorizerAppID, refreshToken string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.components[componentAppID]
	if c == nil {
		return false
	}
	a := c.authorizers[authorizerAppID]
	return a != nil && a.authorized && a.refresh != "" && a.refresh == refreshToken
}

// ComponentTokenValid reports whether a call to [PathQueryAuth] or
// [PathAuthorizerToken] made now with the component_access_token would get
// past the token check: issued by this server, not expired, not revoked
// ([Server.Revoke] and [Server.Reject] apply to component tokens too), not
// superseded past its overlap.
func (s *Server) ComponentTokenValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.componentTokens[token]
	return t != nil && t.status(s.nowLocked()) == 0
}

// ComponentTokensIssued returns how many component_access_tokens the server
// minted since it started or since [Server.ResetCounters].
func (s *Server) ComponentTokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.componentIssued
}

// AuthorizerTokensIssued returns how many authorizer_access_tokens the
// server minted for authorizerAppID ([PathQueryAuth] and
// [PathAuthorizerToken] together, under every component) since it started
// or since [Server.ResetCounters]. They also count in
// [Server.TokensIssued].
func (s *Server) AuthorizerTokensIssued(authorizerAppID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authorizerIssued[authorizerAppID]
}

// componentRevokeLocked applies Revoke (reject false) or Reject to a
// component token. s.mu must be held.
func (s *Server) componentRevokeLocked(value string, reject bool) {
	if t := s.componentTokens[value]; t != nil {
		if reject {
			t.rejected = true
		} else {
			t.revoked = true
		}
	}
}

type componentTokenRequest struct {
	ComponentAppID     string `json:"component_appid"`
	ComponentAppSecret string `json:"component_appsecret"`
	VerifyTicket       string `json:"component_verify_ticket"`
}

type componentTokenReply struct {
	ComponentAccessToken string `json:"component_access_token"`
	ExpiresIn            int64  `json:"expires_in"`
}

func (s *Server) serveComponentToken(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeError(w, codeRequirePOST)
		return
	}
	var req componentTokenRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, codeDataFormat)
		return
	}
	switch {
	case req.ComponentAppID == "":
		writeError(w, codeAppIDMissing)
		return
	case req.ComponentAppSecret == "":
		writeError(w, codeSecretMissing)
		return
	}

	s.mu.Lock()
	now := s.nowLocked()
	code := 0
	c := s.componentLocked(req.ComponentAppID)
	if c == nil {
		code = codeInvalidAppID
	} else {
		if c.secret == "" && len(s.opts.Components) == 0 {
			c.secret = req.ComponentAppSecret // undeclared: the first secret seen is the secret
		}
		exp, known := c.tickets[req.VerifyTicket]
		switch {
		case c.secret != "" && req.ComponentAppSecret != c.secret:
			code = codeInvalidAppSecret
		case !known:
			code = codeTicketInvalid
		case !now.Before(exp):
			code = codeTicketExpired
		default:
			code = s.useQuotaLocked(&c.quota, now)
		}
	}
	if code != 0 {
		s.mu.Unlock()
		writeError(w, code)
		return
	}
	t := &componentToken{token: token{expires: now.Add(s.opts.ExpiresIn)}, comp: c}
	for {
		t.value = newValue(tokenBytes)
		if _, dup := s.componentTokens[t.value]; !dup {
			if _, dup := s.tokens[t.value]; !dup {
				break
			}
		}
	}
	s.componentTokens[t.value] = t
	s.componentIssued++
	if old := c.current; old != nil && old.dead.IsZero() {
		old.dead = now.Add(s.opts.Overlap)
	}
	c.current = t
	s.mu.Unlock()

	writeJSON(w, componentTokenReply{ComponentAccessToken: t.value, ExpiresIn: seconds(s.opts.ExpiresIn)})
}

// componentCallLocked checks a component API call's token and
// component_appid and returns the component. s.mu must be held.
func (s *Server) componentCallLocked(r *http.Request, componentAppID string, now time.Time) (*component, int) {
	q := r.URL.Query()
	v := q.Get("component_access_token")
	if v == "" {
		v = q.Get("access_token")
	}
	if v == "" {
		return nil, codeTokenMissing
	}
	t := s.componentTokens[v]
	if t == nil {
		if s.tokens[v] != nil {
			return nil, codeNeedComponentTok
		}
		return nil, codeInvalidCredential
	}
	if code := t.status(now); code != 0 {
		return nil, code
	}
	switch {
	case componentAppID == "":
		return nil, codeAppIDMissing
	case componentAppID != t.comp.appID:
		return nil, codeInvalidComponent
	}
	return t.comp, 0
}

// mintAuthorizerLocked mints an authorizer access token for a. s.mu must
// be held.
func (s *Server) mintAuthorizerLocked(a *authorizer, now time.Time) *token {
	live := a.live[:0]
	for _, t := range a.live {
		if t.lifeStatus(now) == 0 {
			live = append(live, t)
		}
	}
	clear(a.live[len(live):])
	a.live = live

	t := s.mintLocked(a.appID, now)
	if old := a.current; old != nil && old.dead.IsZero() {
		old.dead = now.Add(s.opts.Overlap)
	}
	a.current = t
	a.live = append(a.live, t)
	s.authorizerIssued[a.appID]++
	return t
}

func (s *Server) newRefreshLocked() string { return "refreshtoken@@@" + newValue(32) }

type queryAuthRequest struct {
	ComponentAppID    string `json:"component_appid"`
	AuthorizationCode string `json:"authorization_code"`
}

type funcInfo struct {
	FuncscopeCategory struct {
		ID int `json:"id"`
	} `json:"funcscope_category"`
}

type authorizationInfo struct {
	AuthorizerAppID        string     `json:"authorizer_appid"`
	AuthorizerAccessToken  string     `json:"authorizer_access_token"`
	ExpiresIn              int64      `json:"expires_in"`
	AuthorizerRefreshToken string     `json:"authorizer_refresh_token"`
	FuncInfo               []funcInfo `json:"func_info"`
}

type queryAuthReply struct {
	AuthorizationInfo authorizationInfo `json:"authorization_info"`
}

func (s *Server) serveQueryAuth(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeError(w, codeRequirePOST)
		return
	}
	var req queryAuthRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, codeDataFormat)
		return
	}
	s.mu.Lock()
	now := s.nowLocked()
	c, code := s.componentCallLocked(r, req.ComponentAppID, now)
	var ac *authCode
	if code == 0 {
		ac = s.authCodes[req.AuthorizationCode]
		switch {
		case ac == nil, ac.comp != c, ac.gen != ac.authorizer.gen:
			code = codeCodeInvalid
		case ac.used && (s.singleUseCodes || ac.authorizer.lastCode != ac || ac.authorizer.refresh == ""):
			code = codeCodeInvalid
		case !ac.used && ac.authorizer.lastCode != nil && ac.seq < ac.authorizer.lastCode.seq:
			code = codeCodeInvalid // a later authorization's code was exchanged: this one is superseded
		case !now.Before(ac.expires):
			code = codeCodeExpired
		default:
			code = s.useQuotaLocked(&ac.authorizer.quota, now)
		}
	}
	if code != 0 {
		s.mu.Unlock()
		writeError(w, code)
		return
	}
	a := ac.authorizer
	var t *token
	if ac.used {
		// The same authorization again: its current tokens, nothing
		// invalidated.
		if t = a.current; t == nil || t.lifeStatus(now) != 0 {
			t = s.mintAuthorizerLocked(a, now)
		}
	} else {
		ac.used = true // kept, so that its pushes can still be built
		a.lastCode = ac
		killTokens(a) // re-authorization: the previous refresh and access tokens stop working
		a.refresh = s.newRefreshLocked()
		t = s.mintAuthorizerLocked(a, now)
	}
	info := authorizationInfo{
		AuthorizerAppID:        a.appID,
		AuthorizerAccessToken:  t.value,
		ExpiresIn:              seconds(s.opts.ExpiresIn),
		AuthorizerRefreshToken: a.refresh,
	}
	s.mu.Unlock()

	for _, id := range []int{1, 2, 3} {
		var f funcInfo
		f.FuncscopeCategory.ID = id
		info.FuncInfo = append(info.FuncInfo, f)
	}
	writeJSON(w, queryAuthReply{AuthorizationInfo: info})
}

type authorizerTokenRequest struct {
	ComponentAppID  string `json:"component_appid"`
	AuthorizerAppID string `json:"authorizer_appid"`
	RefreshToken    string `json:"authorizer_refresh_token"`
}

type authorizerTokenReply struct {
	AuthorizerAccessToken  string `json:"authorizer_access_token"`
	ExpiresIn              int64  `json:"expires_in"`
	AuthorizerRefreshToken string `json:"authorizer_refresh_token"`
}

func (s *Server) serveAuthorizerToken(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeError(w, codeRequirePOST)
		return
	}
	var req authorizerTokenRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, codeDataFormat)
		return
	}
	s.mu.Lock()
	now := s.nowLocked()
	c, code := s.componentCallLocked(r, req.ComponentAppID, now)
	var a *authorizer
	if code == 0 {
		if req.AuthorizerAppID == "" {
			code = codeAppIDMissing
		} else if a = c.authorizers[req.AuthorizerAppID]; a == nil || !a.authorized {
			code = codeNotAuthorized
		} else if a.refresh == "" || req.RefreshToken != a.refresh {
			code = codeRefreshInvalid
		} else {
			code = s.useQuotaLocked(&a.quota, now)
		}
	}
	if code != 0 {
		s.mu.Unlock()
		writeError(w, code)
		return
	}
	if s.rotateRefresh {
		a.refresh = s.newRefreshLocked()
	}
	t := s.mintAuthorizerLocked(a, now)
	reply := authorizerTokenReply{AuthorizerAccessToken: t.value, ExpiresIn: seconds(s.opts.ExpiresIn), AuthorizerRefreshToken: a.refresh}
	s.mu.Unlock()

	writeJSON(w, reply)
}
