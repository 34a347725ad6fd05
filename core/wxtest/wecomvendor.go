package wxtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// The WeCom vendor platform (企业微信服务商): third-party apps (第三方应用)
// and custom-developed apps (代开发应用).
//
// A vendor declares its suites ([Server.SetSuiteSecret]: a third-party
// app's suite id, or a 代开发 template id, which starts with "dk") and its
// provider secret ([Server.SetProviderSecret]). The test plays WeCom's
// side: it pushes suite_tickets to the vendor's command callback URL
// ([Server.SuiteTicketPush], every [SuiteTicketInterval] on WeCom), makes
// corps install and uninstall the suite ([Server.Install],
// [Server.Uninstall], with the pushes [Server.CreateAuthPush],
// [Server.ChangeAuthPush], [Server.CancelAuthPush]), and resets a 代开发
// app's secret ([Server.ResetPermanentCode]). The vendor's client gets a
// suite_access_token with the newest ticket ([PathSuiteToken]), exchanges
// auth codes for permanent codes ([PathPermanentCode]), and gets corp
// tokens with them: [PathCorpToken] for a third-party app, [PathWeComToken]
// (gettoken, corpsecret = the permanent code) for a 代开发 app. Corp tokens
// are WeCom access tokens: [PathWeComAPI], [PathWeComSend] and the JS-SDK
// ticket endpoints accept them as they accept a self-built app's, with the
// same errcodes (40014 revoked, superseded or withdrawn; 42001 expired),
// and [Server.Revoke], [Server.Reject] and [Server.TokenValid] apply.
//
// Sources are WeCom's docs, cited by their path id
// (https://developer.work.weixin.qq.com/document/path/NNNNN); the facts
// and the decisions the docs leave open are listed in each path's comment.
//
// Errors are WeCom's (HTTP 200, errcode and an errmsg with hint and link);
// the vendor endpoints are POST-only (43002) and take a JSON body (47001
// "data format error" otherwise).

// Paths of the simulated WeCom vendor endpoints, relative to [Server.URL]
// (standing for https://qyapi.weixin.qq.com). Latency,
// [Server.InjectFault], [Server.Block], [Server.Calls] and the simulated
// clock apply to them as to every other path.
//
// The endpoints that take ?suite_access_token=ST check it first: a missing
// one is errcode 41022, one this server did not issue (or a corp or
// provider token), a revoked one, or one superseded past its overlap
// 40082 (不合法的suite_token), an expired one 42009
// (suite_access_token已过期).
const (
	// PathSuiteToken is get_suite_token (获取第三方应用凭证, path/90600;
	// the 代开发 copy is path/97162, "与获取第三方应用凭证是同一个接口"):
	// POST {"suite_id","suite_secret","suite_ticket"} answers
	// {"errcode":0,"errmsg":"ok","suite_access_token":"...","expires_in":7200}
	// (without errcode and errmsg under [Options.OmitVendorErrcode]).
	// Every successful call mints a new token; the previous one keeps
	// working for [Options.Overlap], then answers 40082 (the docs do not
	// say whether a repeated call returns the same token; minting is the
	// reading that catches a fleet whose processes each fetch one). The
	// ticket must be the newest or the one before it that this server
	// issued to the suite, at most [SuiteTicketLifetime] old ("suite_ticket
	// 实际有效期为30分钟…请永远使用最新接收到的suite_ticket"). Errcodes, in the
	// order they are checked: 41021 missing suite_id, 40083 a suite not
	// declared with [Server.SetSuiteSecret], 41024 missing suite_secret,
	// 40080 a wrong one, 40085 a missing, unknown, older or expired
	// suite_ticket, 45009 past [Options.DailyQuota] (counted per suite).
	PathSuiteToken = "/cgi-bin/service/get_suite_token"
	// PathPermanentCode is v2 get_permanent_code (获取企业永久授权码,
	// path/100776): POST ?suite_access_token=ST with {"auth_code"}
	// answers {"errcode":0,"errmsg":"ok","permanent_code":"...",
	// "auth_corp_info":{"corpid":"...","corp_name":"..."},"state":""} (no
	// access_token, no auth_info: the agentid comes from [PathAuthInfo]).
	// The auth code comes from [Server.Install] or
	// [Server.ResetPermanentCode]; it works once ("临时授权码一次有效") and
	// for [AuthCodeLifetime]: a missing, unknown, used or expired code, one
	// of another suite, or one issued before the corp uninstalled is 40078.
	// Each exchange gives a new permanent code for (suite, corp) and the
	// previous one stops working at once ([PathCorpToken] 40084, gettoken
	// 40001): a re-install, or a 代开发 secret reset. Corp tokens already
	// issued keep working until they expire or are superseded, as after a
	// secret reset in the WeCom console ([Server.SetWeComSecret]); only
	// [Server.Uninstall] kills them at once.
	PathPermanentCode = "/cgi-bin/service/v2/get_permanent_code"
	// PathPermanentCodeV1 is the old get_permanent_code (path/90603, the
	// "旧接口" the 代开发 appendix path/97163 still documents): the same
	// request and rules as [PathPermanentCode]; the reply adds the corp's
	// "access_token" and "expires_in" (a new corp token, counted as issued,
	// superseding the previous one as [PathCorpToken] does) and
	// "auth_info":{"agent":[{"agentid":N,"name":"app"}]}. For a 代开发
	// template the reply has no access_token and expires_in
	// ("代开发自建应用安装时不返回", path/97163).
	PathPermanentCodeV1 = "/cgi-bin/service/get_permanent_code"
	// PathCorpToken is get_corp_token (获取企业凭证, path/90605): POST
	// ?suite_access_token=ST with {"auth_corpid","permanent_code"} answers
	// {"errcode":0,"errmsg":"ok","access_token":"...","expires_in":7200}
	// (without errcode and errmsg under [Options.OmitVendorErrcode]). The
	// docs do not say whether a repeated call returns the same token; the
	// simulation takes the conservative reading, as the Open Platform's
	// authorizer token does: every call mints a new token and the previous
	// one keeps working for [Options.Overlap], then answers 40014. Errcodes:
	// 41002 missing auth_corpid, 41025 missing permanent_code, 40084 a
	// permanent code that is not the corp's current one for the token's
	// suite (unknown, replaced by a later exchange, withdrawn by
	// [Server.Uninstall], or any code of a 代开发 template, whose apps get
	// their token from [PathWeComToken]: "注意，这与第三方应用的access_token
	// 获取方式不一样", path/97164), 45009 past [Options.DailyQuota]
	// (counted per installation).
	PathCorpToken = "/cgi-bin/service/get_corp_token"
	// PathProviderToken is get_provider_token (获取服务商凭证, path/91200):
	// POST {"corpid","provider_secret"} answers
	// {"errcode":0,"errmsg":"ok","provider_access_token":"...","expires_in":N}
	// (without errcode and errmsg under [Options.OmitVendorErrcode], as the
	// doc's example is). "有效期内重复获取返回相同结果，过期后获取会返回新的
	// provider_access_token": a call made while the token is valid returns
	// it with expires_in its remaining lifetime in whole seconds, as
	// [PathWeComToken] does. Errcodes: 41002 missing corpid, 41004 missing
	// provider_secret, 40013 a corpid not declared with
	// [Server.SetProviderSecret], 40001 a wrong secret (不合法的secret参数),
	// 45009 past [Options.DailyQuota].
	PathProviderToken = "/cgi-bin/service/get_provider_token"
	// PathAuthInfo is v2 get_auth_info (获取企业授权信息, path/100779):
	// POST ?suite_access_token=ST with {"auth_corpid","permanent_code"}
	// answers {"errcode":0,"errmsg":"ok","auth_corp_info":{"corpid",
	// "corp_name"},"auth_info":{"agent":[{"agentid":N,"name":"app",
	// "auth_mode":0,"is_customized_app":B}]}}, where B is true for a 代开发
	// template. Errcodes as [PathCorpToken], except that a 代开发 app's
	// permanent code is accepted.
	PathAuthInfo = "/cgi-bin/service/v2/get_auth_info"
	// PathAuthInfoV1 is the older get_auth_info path that SDKs still use
	// (EasyWeChat 6, WxJava, wechatpy); it answers as [PathAuthInfo].
	PathAuthInfoV1 = "/cgi-bin/service/get_auth_info"
)

// WeCom's schedule and lifetimes of the vendor's one-off credentials.
const (
	// SuiteTicketInterval is how often WeCom pushes a new suite_ticket to
	// the command callback URL ("企业微信服务器会定时（每十分钟）向指令回调url
	// 推送ticket", path/90628; 7 to 14 minutes have been observed). The
	// simulation runs no timer: a test calls [Server.SuiteTicketPush]
	// after each Advance(SuiteTicketInterval), or [Server.SuiteTicketSchedule]
	// for the pushes that were lost.
	SuiteTicketInterval = 10 * time.Minute
	// SuiteTicketLifetime is how long a suite_ticket is accepted by
	// [PathSuiteToken] after its push ("suite_ticket实际有效期为30分钟",
	// path/90628, path/90600). Only the newest ticket and the one before
	// it are accepted, each for its own 30 minutes: the docs tell vendors
	// to "永远使用最新接收到的suite_ticket".
	SuiteTicketLifetime = 30 * time.Minute
	// AuthCodeLifetime is how long an auth code (create_auth's or
	// reset_permanent_code's AuthCode) can be exchanged at
	// [PathPermanentCode]: "临时授权码…10分钟内有效" (path/100964,
	// path/94758).
	AuthCodeLifetime = 10 * time.Minute
)

// WeCom's vendor errcodes (全局错误码, path/90455).
const (
	vendorCodeInvalidAuthCode      = 40078 // 不合法的auth_code参数
	vendorCodeInvalidSuiteSecret   = 40080 // 不合法的suite_secret
	vendorCodeInvalidSuiteToken    = 40082 // 不合法的suite_token
	vendorCodeInvalidSuiteID       = 40083 // 不合法的suite_id
	vendorCodeInvalidPermanentCode = 40084 // 不合法的permanent_code参数
	vendorCodeInvalidSuiteTicket   = 40085 // 不合法的的suite_ticket参数
	vendorCodeSuiteIDMissing       = 41021 // 缺少suite_id参数
	vendorCodeSuiteTokenMissing    = 41022 // 缺少suite_access_token参数
	vendorCodeSuiteSecretMissing   = 41024 // 缺少secret参数
	vendorCodePermanentMissing     = 41025 // 缺少permanent_code参数
	vendorCodeSuiteTokenExpired    = 42009 // suite_access_token已过期
)

func init() {
	for k, v := range map[int]string{
		vendorCodeInvalidAuthCode:      "invalid auth_code",
		vendorCodeInvalidSuiteSecret:   "invalid suite_secret",
		vendorCodeInvalidSuiteToken:    "invalid suite_token",
		vendorCodeInvalidSuiteID:       "invalid suite_id",
		vendorCodeInvalidPermanentCode: "invalid permanent_code",
		vendorCodeInvalidSuiteTicket:   "invalid suite_ticket",
		vendorCodeSuiteIDMissing:       "suite_id missing",
		vendorCodeSuiteTokenMissing:    "suite_access_token missing",
		vendorCodeSuiteSecretMissing:   "secret missing",
		vendorCodePermanentMissing:     "permanent_code missing",
		vendorCodeSuiteTokenExpired:    "suite_access_token expired",
		codeDataFormat:                 "data format error",
	} {
		weComErrmsgs[k] = v
	}
}

// vendorCorpName is the corp_name the simulation reports for every corp.
const vendorCorpName = "wxtest corp"

// vendorState is the vendor platform's part of a Server, guarded by s.mu.
type vendorState struct {
	omitErrcode    bool
	suites         map[string]*suite
	suiteTokens    map[string]*suiteToken
	authCodes      map[string]*vendorAuthCode
	providers      map[string]*provider
	providerTokens map[string]*providerToken
	suiteIssued    map[string]int // suite tokens minted, by suite id
	corpIssued     map[string]int // corp tokens minted, by corp id
	providerIssued map[string]int // provider tokens minted, by provider corp id
	agentSeq       int64          // agentids handed to installations
}

func (v *vendorState) init(omitErrcode bool) {
	v.omitErrcode = omitErrcode
	v.suites = make(map[string]*suite)
	v.suiteTokens = make(map[string]*suiteToken)
	v.authCodes = make(map[string]*vendorAuthCode)
	v.providers = make(map[string]*provider)
	v.providerTokens = make(map[string]*providerToken)
	v.suiteIssued = make(map[string]int)
	v.corpIssued = make(map[string]int)
	v.providerIssued = make(map[string]int)
	v.agentSeq = 1000000
}

func (v *vendorState) resetCounters() {
	clear(v.suiteIssued)
	clear(v.corpIssued)
	clear(v.providerIssued)
}

// suite is a third-party app's suite or a 代开发 template.
type suite struct {
	id, secret string
	custom     bool          // a 代开发 template (id "dk…")
	tickets    []suiteTicket // the newest last; only the last two are kept (and accepted)
	current    *suiteToken   // the latest suite_access_token
	quota      app           // only quotaDay and quotaUsed are used
	installs   map[string]*install
}

type suiteTicket struct {
	value  string
	issued time.Time
}

type suiteToken struct {
	token
	suite *suite
}

// install is one corp's installation of one suite.
type install struct {
	suite     *suite
	corpID    string
	agentID   int64
	installed bool
	gen       int             // bumped by Uninstall: auth codes issued before are void
	code      string          // the permanent code that works; "" when none
	retired   map[string]bool // permanent codes replaced or withdrawn
	app       *weComApp       // corp tokens: current, quota, agentid
	live      []*weComToken   // corp tokens that may still work, to kill on Uninstall
}

type vendorAuthCode struct {
	inst    *install
	gen     int
	expires time.Time
	used    bool
	reset   bool // from ResetPermanentCode
}

type provider struct {
	corpID, secret string
	current        *providerToken
	quota          app
}

type providerToken struct {
	token
	provider *provider
}

// SetSuiteSecret declares the suite suiteID with its suite_secret, or
// resets the secret of a declared one (the old secret gets 40080 at once;
// tokens already issued keep working). A suiteID starting with "dk" is a
// 代开发 template ("应用代开发模版id即为suite_id", path/97163), any other a
// third-party app's suite. It panics on an empty suiteID or secret.
func (s *Server) SetSuiteSecret(suiteID, secret string) {
	if suiteID == "" || secret == "" {
		panic("wxtest: SetSuiteSecret needs a suite id and a non-empty secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if su := s.vendor.suites[suiteID]; su != nil {
		su.secret = secret
		return
	}
	s.vendor.suites[suiteID] = &suite{id: suiteID, secret: secret,
		custom: strings.HasPrefix(suiteID, "dk"), installs: make(map[string]*install)}
}

// SetProviderSecret declares the provider (服务商) corpID, the vendor's own
// corp, with its provider_secret, or resets the secret (the old one gets
// 40001 at once; the token already issued keeps working). It panics on an
// empty corpID or secret.
func (s *Server) SetProviderSecret(corpID, secret string) {
	if corpID == "" || secret == "" {
		panic("wxtest: SetProviderSecret needs a corpid and a non-empty secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.vendor.providers[corpID]; p != nil {
		p.secret = secret
		return
	}
	s.vendor.providers[corpID] = &provider{corpID: corpID, secret: secret}
}

// OmitVendorErrcode sets, from now on, whether the successful replies of
// [PathSuiteToken], [PathCorpToken] and [PathProviderToken] leave out
// errcode and errmsg (see [Options.OmitVendorErrcode]).
func (s *Server) OmitVendorErrcode(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vendor.omitErrcode = on
}

// mustSuiteLocked returns the declared suite; an undeclared one is a bug in
// the test. s.mu must be held.
func (s *Server) mustSuiteLocked(suiteID string) *suite {
	su := s.vendor.suites[suiteID]
	if su == nil {
		panic("wxtest: suite " + strconv.Quote(suiteID) + " is not declared (Server.SetSuiteSecret)")
	}
	return su
}

// installFor returns corpID's installation of the suite, creating it (with
// a fresh agentid). s.mu must be held.
func (s *Server) installForLocked(su *suite, corpID string) *install {
	in := su.installs[corpID]
	if in == nil {
		s.vendor.agentSeq++
		in = &install{suite: su, corpID: corpID, agentID: s.vendor.agentSeq,
			retired: make(map[string]bool)}
		in.app = &weComApp{agentID: in.agentID}
		su.installs[corpID] = in
	}
	return in
}

// SuiteTicket returns the suite's current suite_ticket: the newest one,
// or, when there is none or it has expired, a new one issued now (as if
// WeCom had just pushed it). It panics if the suite is not declared.
func (s *Server) SuiteTicket(suiteID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	su := s.mustSuiteLocked(suiteID)
	now := s.nowLocked()
	if n := len(su.tickets); n > 0 && now.Before(su.tickets[n-1].issued.Add(SuiteTicketLifetime)) {
		return su.tickets[n-1].value
	}
	return s.mintTicketLocked(su, now)
}

// mintTicketLocked issues a new suite_ticket stamped at. s.mu must be held.
func (s *Server) mintTicketLocked(su *suite, at time.Time) string {
	v := newValue(ticketBytes)
	su.tickets = append(su.tickets, suiteTicket{value: v, issued: at})
	if n := len(su.tickets); n > 2 {
		su.tickets = append(su.tickets[:0], su.tickets[n-2:]...)
	}
	return v
}

// SuiteTicketSchedule brings the suite's tickets up to WeCom's schedule,
// for a test whose pushes were lost: for every [SuiteTicketInterval] that
// passed since the newest ticket (or at once if there is none), WeCom
// issued a new ticket, stamped at that time, whose push never arrived. The
// tickets the vendor holds thereby become older ones, which
// [PathSuiteToken] refuses once they are neither the newest nor the one
// before it. WeCom's real pushes are delivered with [Server.SuiteTicketPush]
// after each Advance(SuiteTicketInterval). It panics if the suite is not
// declared.
func (s *Server) SuiteTicketSchedule(suiteID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	su := s.mustSuiteLocked(suiteID)
	now := s.nowLocked()
	n := len(su.tickets)
	if n == 0 {
		s.mintTicketLocked(su, now)
		return
	}
	last := su.tickets[n-1].issued
	k := int64(now.Sub(last) / SuiteTicketInterval)
	if k > 2 { // only the last two are kept
		last = last.Add(time.Duration(k-2) * SuiteTicketInterval)
		k = 2
	}
	for i := int64(1); i <= k; i++ {
		s.mintTicketLocked(su, last.Add(time.Duration(i)*SuiteTicketInterval))
	}
}

// SuiteTicketPush issues a new suite_ticket now, as WeCom does every
// [SuiteTicketInterval], and returns the encrypted push WeCom POSTs to the
// suite's command callback URL (指令回调URL, path/90628) and the ticket.
// The plaintext is
//
//	<xml><SuiteId>…</SuiteId><InfoType>suite_ticket</InfoType><TimeStamp>…</TimeStamp><SuiteTicket>…</SuiteTicket></xml>
//
// with TimeStamp the simulated now in Unix seconds, encrypted with msgcrypt
// and the suite id as receive id ("在第三方回调事件中使用加解密算法，receiveid的
// 内容为suiteid", path/90613), in WeCom's envelope
// <xml><ToUserName>suiteID</ToUserName><Encrypt>…</Encrypt><AgentID></AgentID></xml>;
// the query carries msg_signature, timestamp and nonce. token and
// encodingAESKey are the callback settings. The vendor must answer
// "success". It panics if the suite is not declared; err is non-nil only
// for a malformed encodingAESKey.
func (s *Server) SuiteTicketPush(suiteID, token, encodingAESKey string) (query url.Values, body []byte, ticket string, err error) {
	now, ticket := s.pushTicket(suiteID)
	query, body, err = vendorPush(now, suiteID, token, encodingAESKey,
		"InfoType", "suite_ticket", "SuiteTicket", ticket)
	return query, body, ticket, err
}

// pushTicket issues a ticket for SuiteTicketPush and returns it with its
// time.
func (s *Server) pushTicket(suiteID string) (time.Time, string) {
	s.mu.Lock()
	defer s.mu.Unlock() // mustSuiteLocked may panic
	now := s.nowLocked()
	return now, s.mintTicketLocked(s.mustSuiteLocked(suiteID), now)
}

// Install simulates corpID installing the suite now (an admin confirming
// the authorization page, or scanning a 代开发 template's QR code) and
// returns the auth code, valid [AuthCodeLifetime] and exchangeable once at
// [PathPermanentCode] for a new permanent code of (suite, corp). Installing
// again is a re-install: the exchange replaces the corp's permanent code
// (the previous one stops working). The installation gets an agentid
// ([Server.AgentID]). It panics if the suite is not declared.
func (s *Server) Install(suiteID, corpID string) (authCode string) {
	if corpID == "" {
		panic("wxtest: Install needs a corpid")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.installForLocked(s.mustSuiteLocked(suiteID), corpID)
	in.installed = true
	return s.newAuthCodeLocked(in, false)
}

// ResetPermanentCode simulates the vendor clicking "重新获取secret" on a 代开发
// app's page (path/97163, path/94758) and returns the auth code WeCom
// pushes in reset_permanent_code ([Server.ResetPermanentCodePush]): its
// exchange at [PathPermanentCode] gives the app's new secret (a new
// permanent code), and the old one is refused from then on (gettoken
// answers 40001, the code for "重置了应用的secret，但应用程序仍用旧的secret调用").
// Until the exchange the old permanent code keeps working. It panics for
// a suite that is not a declared 代开发 template ("dk…"), or a corp that
// has not installed it.
func (s *Server) ResetPermanentCode(suiteID, corpID string) (authCode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	su := s.mustSuiteLocked(suiteID)
	if !su.custom {
		panic("wxtest: ResetPermanentCode: suite " + strconv.Quote(suiteID) + " is not a 代开发 template (its id does not start with \"dk\")")
	}
	in := su.installs[corpID]
	if in == nil || !in.installed {
		panic("wxtest: ResetPermanentCode: corp " + strconv.Quote(corpID) + " has not installed " + strconv.Quote(suiteID))
	}
	return s.newAuthCodeLocked(in, true)
}

func (s *Server) newAuthCodeLocked(in *install, reset bool) string {
	for {
		// The docs give auth codes 64 to 512 bytes.
		c := newValue(ticketBytes)
		if _, dup := s.vendor.authCodes[c]; !dup {
			s.vendor.authCodes[c] = &vendorAuthCode{inst: in, gen: in.gen, reset: reset,
				expires: s.nowLocked().Add(AuthCodeLifetime)}
			return c
		}
	}
}

// Uninstall simulates corpID cancelling its authorization of the suite
// (取消授权): its permanent code and its corp tokens stop working at once
// (get_corp_token answers 40084, gettoken 40001, WeCom APIs 40014), and
// the auth codes issued before are void (40078). A later [Server.Install]
// installs it afresh. The cancel_auth push is [Server.CancelAuthPush].
// Unknown pairs are ignored.
func (s *Server) Uninstall(suiteID, corpID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	su := s.vendor.suites[suiteID]
	if su == nil {
		return
	}
	in := su.installs[corpID]
	if in == nil {
		return
	}
	in.installed = false
	in.gen++
	if in.code != "" {
		in.retired[in.code] = true
		in.code = ""
	}
	for _, t := range in.live {
		t.revoked = true
	}
	clear(in.live)
	in.live = in.live[:0]
	in.app.current = nil
}

// AgentID returns the agentid of corpID's installation of the suite (the
// one [PathWeComAPI] and [PathWeComSend] require of its corp tokens, and
// [PathAuthInfo] reports), or 0 if the corp never installed it.
func (s *Server) AgentID(suiteID, corpID string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if su := s.vendor.suites[suiteID]; su != nil {
		if in := su.installs[corpID]; in != nil {
			return in.agentID
		}
	}
	return 0
}

// CreateAuthPush returns the encrypted create_auth push (授权成功通知,
// path/100964) for an auth code from [Server.Install]:
// <SuiteId/><AuthCode/><InfoType>create_auth</InfoType><TimeStamp/><State/>,
// with TimeStamp the simulated now and State empty. It carries no
// AuthCorpId: the vendor learns the corp by exchanging the code. See
// [Server.SuiteTicketPush] for the envelope. It panics on an auth code this
// server did not issue to suiteID.
func (s *Server) CreateAuthPush(suiteID, authCode, token, encodingAESKey string) (query url.Values, body []byte, err error) {
	s.checkAuthCode(suiteID, authCode)
	return vendorPush(s.Now(), suiteID, token, encodingAESKey,
		"AuthCode", authCode, "InfoType", "create_auth", "State", "")
}

// ResetPermanentCodePush returns the encrypted reset_permanent_code push
// (重置永久授权码通知, path/94758) for an auth code from
// [Server.ResetPermanentCode]:
// <SuiteId/><AuthCode/><InfoType>reset_permanent_code</InfoType><TimeStamp/>
// (no AuthCorpId), TimeStamp the simulated now. It panics on an auth code
// this server did not issue to suiteID.
func (s *Server) ResetPermanentCodePush(suiteID, authCode, token, encodingAESKey string) (query url.Values, body []byte, err error) {
	s.checkAuthCode(suiteID, authCode)
	return vendorPush(s.Now(), suiteID, token, encodingAESKey,
		"AuthCode", authCode, "InfoType", "reset_permanent_code")
}

func (s *Server) checkAuthCode(suiteID, authCode string) {
	s.mu.Lock()
	ac := s.vendor.authCodes[authCode]
	s.mu.Unlock()
	if ac == nil || ac.inst.suite.id != suiteID {
		panic("wxtest: auth code " + strconv.Quote(authCode) + " was not issued to suite " + strconv.Quote(suiteID))
	}
}

// ChangeAuthPush returns the encrypted change_auth push (变更授权通知,
// path/100964): <SuiteId/><InfoType>change_auth</InfoType><TimeStamp/>
// <AuthCorpId/><State/>, TimeStamp the simulated now and State empty. It
// changes nothing: the vendor is expected to call [PathAuthInfo].
func (s *Server) ChangeAuthPush(suiteID, corpID, token, encodingAESKey string) (query url.Values, body []byte, err error) {
	return vendorPush(s.Now(), suiteID, token, encodingAESKey,
		"InfoType", "change_auth", "AuthCorpId", corpID, "State", "")
}

// CancelAuthPush returns the encrypted cancel_auth push (取消授权通知,
// path/100964): <SuiteId/><InfoType>cancel_auth</InfoType><TimeStamp/>
// <AuthCorpId/>, TimeStamp the simulated now. It changes nothing: call
// [Server.Uninstall] for the cancellation itself.
func (s *Server) CancelAuthPush(suiteID, corpID, token, encodingAESKey string) (query url.Values, body []byte, err error) {
	return vendorPush(s.Now(), suiteID, token, encodingAESKey,
		"InfoType", "cancel_auth", "AuthCorpId", corpID)
}

// VendorPushAt builds any command-callback push of suiteID, issuing and
// changing nothing: to replay an old push, deliver one out of order, or
// push another suite's event. The plaintext is <xml> with SuiteId, then
// InfoType (fields["InfoType"]), then TimeStamp (at, in Unix seconds; also
// the query timestamp), then the other fields in the order of their names,
// each as <Name><![CDATA[value]]></Name>; fields named SuiteId or
// TimeStamp are ignored. The envelope and encryption are those of
// [Server.SuiteTicketPush]. For example, a stale ticket push:
//
//	s.VendorPushAt(at, suiteID, map[string]string{"InfoType": "suite_ticket", "SuiteTicket": old}, token, key)
func (s *Server) VendorPushAt(at time.Time, suiteID string, fields map[string]string, token, encodingAESKey string) (query url.Values, body []byte, err error) {
	names := make([]string, 0, len(fields))
	for k := range fields {
		if k != "SuiteId" && k != "TimeStamp" && k != "InfoType" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	kv := []string{"InfoType", fields["InfoType"]}
	for _, k := range names {
		kv = append(kv, k, fields[k])
	}
	return vendorPush(at, suiteID, token, encodingAESKey, kv...)
}

// vendorPush encrypts a command-callback event for suiteID. kv are element
// names and values, in order; TimeStamp (at) is written after InfoType, as
// in the docs' samples.
func vendorPush(at time.Time, suiteID, token, encodingAESKey string, kv ...string) (url.Values, []byte, error) {
	var b bytes.Buffer
	b.WriteString("<xml>")
	writeCDATAElem(&b, "SuiteId", suiteID)
	for i := 0; i+1 < len(kv); i += 2 {
		writeCDATAElem(&b, kv[i], kv[i+1])
		if kv[i] == "InfoType" {
			fmt.Fprintf(&b, "<TimeStamp>%d</TimeStamp>", at.Unix())
		}
	}
	b.WriteString("</xml>")
	enc, _, err := encryptXML(token, encodingAESKey, suiteID, b.Bytes())
	if err != nil {
		return nil, nil, err
	}
	query, body := weComEnvelope(token, enc, suiteID, "", at.Unix(), msgcrypt.NewNonce())
	return query, body, nil
}

// writeCDATAElem writes <name><![CDATA[value]]></name>, splitting any "]]>"
// in value across two sections.
func writeCDATAElem(b *bytes.Buffer, name, value string) {
	b.WriteString("<" + name + "><![CDATA[")
	b.WriteString(strings.ReplaceAll(value, "]]>", "]]]]><![CDATA[>"))
	b.WriteString("]]></" + name + ">")
}

// PermanentCodeValid reports whether code is corpID's working permanent
// code for the suite: the corp has it installed and code came from its
// latest exchange.
func (s *Server) PermanentCodeValid(suiteID, corpID, code string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if su := s.vendor.suites[suiteID]; su != nil {
		if in := su.installs[corpID]; in != nil {
			return in.installed && in.code != "" && in.code == code
		}
	}
	return false
}

// SuiteTokenValid reports whether a call made now with the
// suite_access_token would get past the suite-token check: issued by this
// server, not expired, not revoked ([Server.Revoke] and [Server.Reject]
// apply), not superseded past its overlap.
func (s *Server) SuiteTokenValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, code := s.suiteTokenLocked(token, s.nowLocked())
	return code == 0
}

// ProviderTokenValid reports whether the provider_access_token was issued
// by this server, has not expired and was not revoked or rejected.
func (s *Server) ProviderTokenValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.vendor.providerTokens[token]
	return t != nil && t.status(s.nowLocked()) == 0
}

// SuiteTokensIssued returns how many suite_access_tokens the server minted
// for suiteID since it started or since [Server.ResetCounters].
func (s *Server) SuiteTokensIssued(suiteID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vendor.suiteIssued[suiteID]
}

// CorpTokensIssued returns how many corp access tokens the server minted
// for corpID under any suite ([PathCorpToken], [PathPermanentCodeV1] and
// 代开发 gettoken together; a gettoken call that handed back the current
// token minted nothing) since it started or since [Server.ResetCounters].
// They also count in [Server.TokensIssued].
func (s *Server) CorpTokensIssued(corpID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vendor.corpIssued[corpID]
}

// ProviderTokensIssued returns how many provider_access_tokens the server
// minted for the provider corpID (a call that handed back the current one
// minted nothing) since it started or since [Server.ResetCounters].
func (s *Server) ProviderTokensIssued(corpID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vendor.providerIssued[corpID]
}

// vendorRevokeLocked applies Revoke (reject false) or Reject to a suite or
// provider token (corp tokens are WeCom tokens: wecom.go handles them).
// s.mu must be held.
func (s *Server) vendorRevokeLocked(value string, reject bool) {
	var t *token
	if st := s.vendor.suiteTokens[value]; st != nil {
		t = &st.token
	} else if pt := s.vendor.providerTokens[value]; pt != nil {
		t = &pt.token
	} else {
		return
	}
	if reject {
		t.rejected = true
	} else {
		t.revoked = true
	}
}

// suiteTokenLocked checks a suite_access_token. s.mu must be held.
func (s *Server) suiteTokenLocked(value string, now time.Time) (*suite, int) {
	if value == "" {
		return nil, vendorCodeSuiteTokenMissing
	}
	t := s.vendor.suiteTokens[value]
	switch {
	case t == nil, t.revoked, t.rejected:
		return nil, vendorCodeInvalidSuiteToken
	case !now.Before(t.expires):
		return nil, vendorCodeSuiteTokenExpired
	case !t.dead.IsZero() && !now.Before(t.dead):
		return nil, vendorCodeInvalidSuiteToken
	}
	return t.suite, 0
}

// mintCorpTokenLocked mints a corp access token for the installation,
// registered as a WeCom token; supersede starts the previous token's
// overlap. s.mu must be held.
func (s *Server) mintCorpTokenLocked(in *install, now time.Time, supersede bool) *weComToken {
	live := in.live[:0]
	for _, t := range in.live {
		if t.status(now) == 0 {
			live = append(live, t)
		}
	}
	clear(in.live[len(live):])
	in.live = live

	t := &weComToken{token: token{expires: now.Add(s.opts.ExpiresIn)}, app: in.app}
	for {
		t.value = newValue(tokenBytes)
		if _, dup := s.weComTokens[t.value]; !dup {
			break
		}
	}
	s.weComTokens[t.value] = t
	if old := in.app.current; supersede && old != nil && old.dead.IsZero() {
		old.dead = now.Add(s.opts.Overlap)
	}
	in.app.current = t
	in.live = append(in.live, t)
	s.tokensIssued++
	s.vendor.corpIssued[in.corpID]++
	return t
}

// serveCustomizedToken answers gettoken for a 代开发 app, whose corpsecret is
// the permanent code (path/97164), and reports whether it did: a secret
// that is no 代开发 permanent code of corpID, current or retired, is left
// to the self-built apps' rules.
func (s *Server) serveCustomizedToken(w http.ResponseWriter, r *http.Request, corpID, secret string) bool {
	if corpID == "" || secret == "" {
		return false
	}
	s.mu.Lock()
	var in *install
	retired := false
	for _, su := range s.vendor.suites {
		if c := su.installs[corpID]; su.custom && c != nil {
			if c.installed && c.code == secret {
				in = c
			} else if c.retired[secret] {
				retired = true
			}
		}
	}
	if in == nil {
		s.mu.Unlock()
		if retired {
			writeWeComError(w, r, weComCodeInvalidSecret)
		}
		return retired
	}
	now := s.nowLocked()
	t := in.app.current
	if !t.reusable(now) {
		if code := s.useQuotaLocked(&in.app.quota, now); code != 0 {
			s.mu.Unlock()
			writeWeComError(w, r, weComCodeFreqLimit)
			return true
		}
		t = s.mintCorpTokenLocked(in, now, false)
	}
	s.mu.Unlock()
	writeJSON(w, weComTokenReply{Errmsg: "ok", AccessToken: t.value, ExpiresIn: seconds(t.expires.Sub(now))})
	return true
}

// Requests and replies of the vendor endpoints.

type suiteTokenRequest struct {
	SuiteID     string `json:"suite_id"`
	SuiteSecret string `json:"suite_secret"`
	SuiteTicket string `json:"suite_ticket"`
}

type suiteTokenReply struct {
	Errcode          *int   `json:"errcode,omitempty"`
	Errmsg           string `json:"errmsg,omitempty"`
	SuiteAccessToken string `json:"suite_access_token"`
	ExpiresIn        int64  `json:"expires_in"`
}

type authCodeRequest struct {
	AuthCode string `json:"auth_code"`
}

type corpRequest struct {
	AuthCorpID    string `json:"auth_corpid"`
	PermanentCode string `json:"permanent_code"`
}

type authCorpInfo struct {
	CorpID   string `json:"corpid"`
	CorpName string `json:"corp_name"`
}

type vendorAgent struct {
	AgentID         int64  `json:"agentid"`
	Name            string `json:"name"`
	AuthMode        *int   `json:"auth_mode,omitempty"`
	IsCustomizedApp *bool  `json:"is_customized_app,omitempty"`
}

type vendorAuthInfo struct {
	Agent []vendorAgent `json:"agent"`
}

type permanentCodeReply struct {
	Errcode       int             `json:"errcode"`
	Errmsg        string          `json:"errmsg"`
	AccessToken   string          `json:"access_token,omitempty"`
	ExpiresIn     int64           `json:"expires_in,omitempty"`
	PermanentCode string          `json:"permanent_code"`
	AuthCorpInfo  authCorpInfo    `json:"auth_corp_info"`
	AuthInfo      *vendorAuthInfo `json:"auth_info,omitempty"`
	State         string          `json:"state"`
}

type corpTokenReply struct {
	Errcode     *int   `json:"errcode,omitempty"`
	Errmsg      string `json:"errmsg,omitempty"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

type authInfoReply struct {
	Errcode      int            `json:"errcode"`
	Errmsg       string         `json:"errmsg"`
	AuthCorpInfo authCorpInfo   `json:"auth_corp_info"`
	AuthInfo     vendorAuthInfo `json:"auth_info"`
}

type providerTokenRequest struct {
	CorpID         string `json:"corpid"`
	ProviderSecret string `json:"provider_secret"`
}

type providerTokenReply struct {
	Errcode             *int   `json:"errcode,omitempty"`
	Errmsg              string `json:"errmsg,omitempty"`
	ProviderAccessToken string `json:"provider_access_token"`
	ExpiresIn           int64  `json:"expires_in"`
}

// okLocked returns the errcode and errmsg of a success reply that may omit
// them. s.mu must be held.
func (s *Server) okLocked() (*int, string) {
	if s.vendor.omitErrcode {
		return nil, ""
	}
	return new(int), "ok"
}

// serveVendor answers the vendor endpoints: the method and body checks,
// then the endpoint.
func (s *Server) serveVendor(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	if r.Method != http.MethodPost {
		writeWeComError(w, r, codeRequirePOST)
		return
	}
	var req struct {
		suiteTokenRequest
		authCodeRequest
		corpRequest
		providerTokenRequest
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeWeComError(w, r, codeDataFormat)
		return
	}
	s.mu.Lock()
	now := s.nowLocked()
	var reply any
	var code int
	switch path {
	case PathSuiteToken:
		reply, code = s.issueSuiteTokenLocked(req.suiteTokenRequest, now)
	case PathProviderToken:
		reply, code = s.providerTokenLocked(req.providerTokenRequest, now)
	default:
		var su *suite
		if su, code = s.suiteTokenLocked(r.URL.Query().Get("suite_access_token"), now); code != 0 {
			break
		}
		switch path {
		case PathPermanentCode, PathPermanentCodeV1:
			reply, code = s.permanentCodeLocked(su, req.AuthCode, path == PathPermanentCodeV1, now)
		case PathCorpToken:
			reply, code = s.corpTokenLocked(su, req.corpRequest, now)
		case PathAuthInfo, PathAuthInfoV1:
			reply, code = s.authInfoLocked(su, req.corpRequest)
		}
	}
	s.mu.Unlock()
	if code != 0 {
		writeWeComError(w, r, code)
		return
	}
	writeJSON(w, reply)
}

// issueSuiteTokenLocked answers get_suite_token. s.mu must be held.
func (s *Server) issueSuiteTokenLocked(req suiteTokenRequest, now time.Time) (any, int) {
	if req.SuiteID == "" {
		return nil, vendorCodeSuiteIDMissing
	}
	su := s.vendor.suites[req.SuiteID]
	switch {
	case su == nil:
		return nil, vendorCodeInvalidSuiteID
	case req.SuiteSecret == "":
		return nil, vendorCodeSuiteSecretMissing
	case req.SuiteSecret != su.secret:
		return nil, vendorCodeInvalidSuiteSecret
	}
	accepted := false
	for _, t := range su.tickets { // the last two only are kept
		if req.SuiteTicket != "" && t.value == req.SuiteTicket && now.Before(t.issued.Add(SuiteTicketLifetime)) {
			accepted = true
		}
	}
	if !accepted {
		return nil, vendorCodeInvalidSuiteTicket
	}
	if s.useQuotaLocked(&su.quota, now) != 0 {
		return nil, weComCodeFreqLimit
	}
	t := &suiteToken{token: token{expires: now.Add(s.opts.ExpiresIn)}, suite: su}
	for {
		t.value = newValue(tokenBytes)
		if _, dup := s.vendor.suiteTokens[t.value]; !dup {
			break
		}
	}
	s.vendor.suiteTokens[t.value] = t
	s.vendor.suiteIssued[su.id]++
	if old := su.current; old != nil && old.dead.IsZero() {
		old.dead = now.Add(s.opts.Overlap)
	}
	su.current = t
	code, msg := s.okLocked()
	return suiteTokenReply{Errcode: code, Errmsg: msg, SuiteAccessToken: t.value, ExpiresIn: seconds(s.opts.ExpiresIn)}, 0
}

// permanentCodeLocked answers get_permanent_code (v1 or v2). s.mu must be
// held.
func (s *Server) permanentCodeLocked(su *suite, authCode string, v1 bool, now time.Time) (any, int) {
	ac := s.vendor.authCodes[authCode]
	switch {
	case authCode == "", ac == nil, ac.used, ac.inst.suite != su, ac.gen != ac.inst.gen:
		return nil, vendorCodeInvalidAuthCode
	case !now.Before(ac.expires):
		return nil, vendorCodeInvalidAuthCode
	}
	in := ac.inst
	mint := v1 && !su.custom
	if mint && s.useQuotaLocked(&in.app.quota, now) != 0 {
		return nil, weComCodeFreqLimit
	}
	ac.used = true // kept, so that its pushes can still be built
	if in.code != "" {
		in.retired[in.code] = true
	}
	for {
		in.code = newValue(32)
		if !in.retired[in.code] {
			break
		}
	}
	reply := permanentCodeReply{Errmsg: "ok", PermanentCode: in.code,
		AuthCorpInfo: authCorpInfo{CorpID: in.corpID, CorpName: vendorCorpName}}
	if v1 {
		reply.AuthInfo = &vendorAuthInfo{Agent: []vendorAgent{{AgentID: in.agentID, Name: "app"}}}
	}
	if mint {
		t := s.mintCorpTokenLocked(in, now, true)
		reply.AccessToken, reply.ExpiresIn = t.value, seconds(s.opts.ExpiresIn)
	}
	return reply, 0
}

// corpInstallLocked finds the installation a {auth_corpid, permanent_code}
// request names under su. s.mu must be held.
func corpInstallLocked(su *suite, req corpRequest) (*install, int) {
	switch {
	case req.AuthCorpID == "":
		return nil, weComCodeCorpIDMissing
	case req.PermanentCode == "":
		return nil, vendorCodePermanentMissing
	}
	in := su.installs[req.AuthCorpID]
	if in == nil || !in.installed || in.code == "" || in.code != req.PermanentCode {
		return nil, vendorCodeInvalidPermanentCode
	}
	return in, 0
}

// corpTokenLocked answers get_corp_token. s.mu must be held.
func (s *Server) corpTokenLocked(su *suite, req corpRequest, now time.Time) (any, int) {
	in, code := corpInstallLocked(su, req)
	switch {
	case code != 0:
		return nil, code
	case su.custom:
		return nil, vendorCodeInvalidPermanentCode
	case s.useQuotaLocked(&in.app.quota, now) != 0:
		return nil, weComCodeFreqLimit
	}
	t := s.mintCorpTokenLocked(in, now, true)
	ok, msg := s.okLocked()
	return corpTokenReply{Errcode: ok, Errmsg: msg, AccessToken: t.value, ExpiresIn: seconds(s.opts.ExpiresIn)}, 0
}

// authInfoLocked answers get_auth_info. s.mu must be held.
func (s *Server) authInfoLocked(su *suite, req corpRequest) (any, int) {
	in, code := corpInstallLocked(su, req)
	if code != 0 {
		return nil, code
	}
	mode, custom := 0, su.custom
	return authInfoReply{Errmsg: "ok",
		AuthCorpInfo: authCorpInfo{CorpID: in.corpID, CorpName: vendorCorpName},
		AuthInfo: vendorAuthInfo{Agent: []vendorAgent{{AgentID: in.agentID, Name: "app",
			AuthMode: &mode, IsCustomizedApp: &custom}}},
	}, 0
}

// providerTokenLocked answers get_provider_token. s.mu must be held.
func (s *Server) providerTokenLocked(req providerTokenRequest, now time.Time) (any, int) {
	switch {
	case req.CorpID == "":
		return nil, weComCodeCorpIDMissing
	case req.ProviderSecret == "":
		return nil, weComCodeSecretMissing
	}
	p := s.vendor.providers[req.CorpID]
	switch {
	case p == nil:
		return nil, weComCodeInvalidCorpID
	case req.ProviderSecret != p.secret:
		return nil, weComCodeInvalidSecret
	}
	t := p.current
	if t == nil || t.revoked || t.expires.Sub(now) < time.Second {
		if s.useQuotaLocked(&p.quota, now) != 0 {
			return nil, weComCodeFreqLimit
		}
		t = &providerToken{token: token{expires: now.Add(s.opts.ExpiresIn)}, provider: p}
		for {
			t.value = newValue(tokenBytes)
			if _, dup := s.vendor.providerTokens[t.value]; !dup {
				break
			}
		}
		s.vendor.providerTokens[t.value] = t
		s.vendor.providerIssued[p.corpID]++
		p.current = t
	}
	ok, msg := s.okLocked()
	return providerTokenReply{Errcode: ok, Errmsg: msg, ProviderAccessToken: t.value, ExpiresIn: seconds(t.expires.Sub(now))}, 0
}
