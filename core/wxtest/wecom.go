package wxtest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Paths of the simulated WeCom (企业微信) endpoints, relative to
// [Server.URL], which then stands for https://qyapi.weixin.qq.com. They do
// not collide with the Official Account paths, so one Server answers both;
// latency, [Server.InjectFault], [Server.Block], [Server.Calls] and the
// simulated clock apply to them the same way.
const (
	// PathWeComToken is WeCom's access_token endpoint (获取access_token,
	// https://developer.work.weixin.qq.com/document/path/91039):
	// GET ?corpid=ID&corpsecret=SECRET answers
	// {"errcode":0,"errmsg":"ok","access_token":"...","expires_in":7200}.
	// Each (corpid, corpsecret) pair is one application with its own token
	// ("每个应用有独立的secret，获取到的access_token只能本应用使用").
	// A call made while the application's token is still valid returns that
	// same token, as the page said until at least 2020 ("有效期内重复获取返回
	// 相同结果，过期后获取会返回新的access_token"; the 2024 version no longer
	// says it either way), with expires_in its remaining lifetime in whole
	// seconds, rounded down, so a client that trusts expires_in never keeps
	// the token longer than the server does (the docs do not say whether a
	// repeated call extends the lifetime; the simulation does not). A call
	// made after the token expired, or after [Server.Revoke] invalidated it
	// early ("企业微信可能会出于运营需要，提前使access_token失效"), mints a new
	// one. See [Options.WeComApps] for the error codes.
	PathWeComToken = "/cgi-bin/gettoken"
	// PathWeComJSAPITicket issues the corp's JS-SDK ticket, the one wx.config
	// is signed with (获取企业的jsapi_ticket,
	// https://developer.work.weixin.qq.com/document/path/90506):
	// GET ?access_token=TOKEN answers
	// {"errcode":0,"errmsg":"ok","ticket":"...","expires_in":7200}.
	PathWeComJSAPITicket = "/cgi-bin/get_jsapi_ticket"
	// PathWeComAgentTicket issues the application's JS-SDK ticket, the one
	// wx.agentConfig is signed with (获取应用的jsapi_ticket, same page):
	// GET ?access_token=TOKEN&type=agent_config answers the same shape as
	// PathWeComJSAPITicket; any other type gets errcode 40058.
	PathWeComAgentTicket = "/cgi-bin/ticket/get"
	// PathWeComAPI is an ordinary WeCom API that needs a valid token, 获取指定的
	// 应用详情 (https://developer.work.weixin.qq.com/document/path/90227):
	// GET ?access_token=TOKEN&agentid=ID answers
	// {"errcode":0,"errmsg":"ok","agentid":ID,"name":"wxtest",...}. A
	// token may only read its own application: an agentid other than the
	// declared one of the token's application gets errcode 301002; a
	// missing agentid 41011, one that is not a number 40056.
	PathWeComAPI = "/cgi-bin/agent/get"
	// PathWeComSend is a WeCom API with a request body, 发送应用消息
	// (https://developer.work.weixin.qq.com/document/path/90236): POST
	// ?access_token=TOKEN with a JSON body carrying "agentid" answers
	// {"errcode":0,"errmsg":"ok","invaliduser":"","invalidparty":"",
	// "invalidtag":"","unlicenseduser":"","msgid":"..."}. A body that is not
	// JSON gets errcode 40058; the agentid is checked as by PathWeComAPI.
	// The body is available from [Server.LastBody].
	PathWeComSend = "/cgi-bin/message/send"
)

// WeComApp declares one self-built WeCom application (自建应用) in
// [Options.WeComApps].
type WeComApp struct {
	// CorpID is the corp's id (企业ID, "ww..."), the corpid parameter.
	CorpID string
	// AgentID is the application's id (AgentId, e.g. 1000002), which
	// [PathWeComAPI] and [PathWeComSend] require of the token's application;
	// zero accepts any agentid.
	AgentID int64
	// Secret is the application's secret, the corpsecret parameter.
	Secret string
}

// WeCom's error codes, as the simulation answers them. They differ from the
// Official Account's: in WeCom 40001 means a wrong secret
// (不合法的secret参数), and an invalid or revoked access_token is 40014.
// Source: 全局错误码, https://developer.work.weixin.qq.com/document/path/90313
// (as quoted by WxJava's WxCpErrorMsgEnum); the English errmsg texts are the
// ones WeCom sends, as quoted in public bug reports. WeCom has been seen to
// answer 40014 rather than 42001 for an expired token, so a client should
// treat both as "fetch a new token"; the simulation answers 42001 for an
// expired token, as documented.
const (
	weComCodeSystemBusy     = -1
	weComCodeInvalidSecret  = 40001 // invalid credential
	weComCodeInvalidCorpID  = 40013
	weComCodeInvalidToken   = 40014
	weComCodeInvalidAgentID = 40056
	weComCodeInvalidParam   = 40058
	weComCodeTokenMissing   = 41001
	weComCodeCorpIDMissing  = 41002
	weComCodeSecretMissing  = 41004
	weComCodeAgentIDMissing = 41011
	weComCodeTokenExpired   = 42001
	weComCodeFreqLimit      = 45009
	weComCodeOtherAgent     = 301002
)

var weComErrmsgs = map[int]string{
	weComCodeSystemBusy:     "system error",
	weComCodeInvalidSecret:  "invalid credential",
	weComCodeInvalidCorpID:  "invalid corpid",
	weComCodeInvalidToken:   "invalid access_token",
	weComCodeInvalidAgentID: "invalid agentid",
	weComCodeInvalidParam:   "invalid parameter",
	weComCodeTokenMissing:   "access_token missing",
	weComCodeCorpIDMissing:  "corpid missing",
	weComCodeSecretMissing:  "corpsecret missing",
	weComCodeAgentIDMissing: "agentid missing",
	weComCodeTokenExpired:   "access_token expired",
	weComCodeFreqLimit:      "api freq out of limit",
	weComCodeOtherAgent:     "not allow operate another agent with this accesstoken.",
	codeRequireGET:          "require GET method",
	codeRequirePOST:         "require POST method",
}

// weComKey identifies a WeCom application: WeCom gives every application its
// own secret and its own token.
type weComKey struct{ corpID, secret string }

// weComApp is the per-application state.
type weComApp struct {
	agentID int64       // 0: any agentid is accepted
	current *weComToken // the token gettoken returns while it is valid
	quota   app         // only quotaDay and quotaUsed are used
}

type weComToken struct {
	token // value, expires, revoked, rejected; dead only for vendor corp tokens (get_corp_token)
	app   *weComApp
}

// status is the errcode a WeCom API answers for t at now, 0 if accepted.
func (t *weComToken) status(now time.Time) int {
	switch {
	case t.revoked, t.rejected:
		return weComCodeInvalidToken
	case !now.Before(t.expires):
		return weComCodeTokenExpired
	case !t.dead.IsZero() && !now.Before(t.dead):
		return weComCodeInvalidToken // a vendor corp token superseded past its overlap (wecomvendor.go)
	}
	return 0
}

// reusable reports whether gettoken hands t back at now: it has not expired
// and was not revoked (a rejected token is handed back, see Server.Reject).
// A token with less than a second left is not handed back: its
// expires_in would read 0, which no client can use; a new one is issued.
func (t *weComToken) reusable(now time.Time) bool {
	return t != nil && !t.revoked && t.dead.IsZero() && t.expires.Sub(now) >= time.Second
}

type weComTokenReply struct {
	Errcode     int    `json:"errcode"`
	Errmsg      string `json:"errmsg"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

type weComAgentReply struct {
	Errcode            int    `json:"errcode"`
	Errmsg             string `json:"errmsg"`
	AgentID            int64  `json:"agentid"`
	Name               string `json:"name"`
	SquareLogoURL      string `json:"square_logo_url"`
	Description        string `json:"description"`
	Close              int    `json:"close"`
	RedirectDomain     string `json:"redirect_domain"`
	ReportLocationFlag int    `json:"report_location_flag"`
	IsReportEnter      int    `json:"isreportenter"`
	HomeURL            string `json:"home_url"`
}

type weComSendReply struct {
	Errcode        int    `json:"errcode"`
	Errmsg         string `json:"errmsg"`
	InvalidUser    string `json:"invaliduser"`
	InvalidParty   string `json:"invalidparty"`
	InvalidTag     string `json:"invalidtag"`
	UnlicensedUser string `json:"unlicenseduser"`
	MsgID          string `json:"msgid"`
}

// writeWeComError answers WeCom's way: HTTP 200, an errcode and an errmsg
// followed by a hint, the caller's IP and a link to WeCom's error lookup,
// e.g. "invalid access_token, hint: [1737759218426833351570099], from ip:
// 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e=40014".
func writeWeComError(w http.ResponseWriter, r *http.Request, code int) {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	msg := fmt.Sprintf("%s, hint: [%d%015d], from ip: %s, more info at https://open.work.weixin.qq.com/devtool/query?e=%d",
		weComErrmsgs[code], time.Now().Unix(), rand.Int64N(1e15), ip, code)
	writeJSON(w, errorReply{Errcode: code, Errmsg: msg})
}

// checkWeComCredentials validates a gettoken request; 0 means accepted.
// key is the secret that identifies the application: the secret declared
// in Options.WeComApps, whatever SetWeComSecret made it since (an
// application keeps its token across a reset), or the secret itself for an
// undeclared one.
func (s *Server) checkWeComCredentials(corpID, secret string) (agentID int64, key string, code int) {
	switch {
	case corpID == "":
		return 0, "", weComCodeCorpIDMissing
	case secret == "":
		return 0, "", weComCodeSecretMissing
	case len(s.opts.WeComApps) == 0:
		return 0, secret, 0
	}
	corpKnown := false
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.opts.WeComApps {
		if a.CorpID != corpID {
			continue
		}
		corpKnown = true
		if s.weComSecretLocked(a) == secret {
			return a.AgentID, a.Secret, 0
		}
	}
	if !corpKnown {
		return 0, "", weComCodeInvalidCorpID
	}
	return 0, "", weComCodeInvalidSecret
}

func (s *Server) serveWeComToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeWeComError(w, r, codeRequireGET)
		return
	}
	q := r.URL.Query()
	if s.serveCustomizedToken(w, r, q.Get("corpid"), q.Get("corpsecret")) {
		return // a 代开发 app's permanent code (wecomvendor.go)
	}
	key := weComKey{corpID: q.Get("corpid")}
	agentID, appSecret, code := s.checkWeComCredentials(key.corpID, q.Get("corpsecret"))
	key.secret = appSecret
	if code != 0 {
		writeWeComError(w, r, code)
		return
	}

	s.mu.Lock()
	now := s.nowLocked()
	a := s.weComApps[key]
	if a == nil {
		a = &weComApp{agentID: agentID}
		s.weComApps[key] = a
	}
	t := a.current
	if !t.reusable(now) {
		if code := s.useQuotaLocked(&a.quota, now); code != 0 {
			s.mu.Unlock()
			writeWeComError(w, r, weComCodeFreqLimit)
			return
		}
		t = &weComToken{token: token{expires: now.Add(s.opts.ExpiresIn)}, app: a}
		for {
			t.value = newValue(tokenBytes)
			if _, dup := s.weComTokens[t.value]; !dup {
				break
			}
		}
		s.weComTokens[t.value] = t
		s.tokensIssued++
		a.current = t
	}
	s.mu.Unlock()

	writeJSON(w, weComTokenReply{Errmsg: "ok", AccessToken: t.value, ExpiresIn: seconds(t.expires.Sub(now))})
}

// weComTokenLocked returns the WeCom token value and the errcode an API
// answers for it at now (0 if accepted). s.mu must be held.
func (s *Server) weComTokenLocked(value string, now time.Time) (*weComToken, int) {
	if value == "" {
		return nil, weComCodeTokenMissing
	}
	t := s.weComTokens[value]
	if t == nil {
		return nil, weComCodeInvalidToken
	}
	return t, t.status(now)
}

// weComToken is weComTokenLocked with the lock taken.
func (s *Server) weComToken(value string) (*weComToken, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.weComTokenLocked(value, s.nowLocked())
}

func (s *Server) serveWeComTicket(w http.ResponseWriter, r *http.Request, agent bool) {
	if r.Method != http.MethodGet {
		writeWeComError(w, r, codeRequireGET)
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	now := s.nowLocked()
	_, code := s.weComTokenLocked(q.Get("access_token"), now)
	if code == 0 && agent && q.Get("type") != "agent_config" {
		code = weComCodeInvalidParam
	}
	if code != 0 {
		s.mu.Unlock()
		writeWeComError(w, r, code)
		return
	}
	var v string
	for {
		v = newValue(ticketBytes)
		if _, dup := s.tickets[v]; !dup {
			break
		}
	}
	s.tickets[v] = &ticket{expires: now.Add(s.opts.ExpiresIn)}
	s.ticketsIssued++
	s.mu.Unlock()

	writeJSON(w, ticketReply{Errmsg: "ok", Ticket: v, ExpiresIn: seconds(s.opts.ExpiresIn)})
}

// checkAgent validates the agentid a request names against the token's
// application; 0 means accepted.
func checkAgent(t *weComToken, agentID string) (int64, int) {
	if agentID == "" {
		return 0, weComCodeAgentIDMissing
	}
	id, err := strconv.ParseInt(agentID, 10, 64)
	if err != nil || id <= 0 {
		return 0, weComCodeInvalidAgentID
	}
	if t.app.agentID != 0 && id != t.app.agentID {
		return 0, weComCodeOtherAgent
	}
	return id, 0
}

func (s *Server) serveWeComAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeWeComError(w, r, codeRequireGET)
		return
	}
	q := r.URL.Query()
	t, code := s.weComToken(q.Get("access_token"))
	if code != 0 {
		writeWeComError(w, r, code)
		return
	}
	id, code := checkAgent(t, q.Get("agentid"))
	if code != 0 {
		writeWeComError(w, r, code)
		return
	}
	writeJSON(w, weComAgentReply{Errmsg: "ok", AgentID: id, Name: "wxtest"})
}

func (s *Server) serveWeComSend(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeWeComError(w, r, codeRequirePOST)
		return
	}
	t, code := s.weComToken(r.URL.Query().Get("access_token"))
	if code != 0 {
		writeWeComError(w, r, code)
		return
	}
	var req struct {
		AgentID json.RawMessage `json:"agentid"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeWeComError(w, r, weComCodeInvalidParam)
		return
	}
	// agentid is a number in the documented body; a quoted one is accepted
	// too, as clients send both.
	var agentID string
	if len(req.AgentID) > 0 && string(req.AgentID) != "null" {
		if err := json.Unmarshal(req.AgentID, &agentID); err != nil {
			agentID = string(req.AgentID)
		}
		if agentID == "" {
			agentID = "0"
		}
	}
	if _, code := checkAgent(t, agentID); code != 0 {
		writeWeComError(w, r, code)
		return
	}
	writeJSON(w, weComSendReply{Errmsg: "ok", MsgID: newValue(24)})
}

// weComRevokeLocked revokes the WeCom token value, if there is one: APIs
// answer 40014 and the next gettoken mints a new token. s.mu must be held.
func (s *Server) weComRevokeLocked(value string) {
	if t := s.weComTokens[value]; t != nil {
		t.revoked = true
	}
}

// weComRejectLocked rejects the WeCom token value, if there is one: APIs
// answer 40014 but gettoken keeps returning it until it expires. s.mu must
// be held.
func (s *Server) weComRejectLocked(value string) {
	if t := s.weComTokens[value]; t != nil {
		t.rejected = true
	}
}
