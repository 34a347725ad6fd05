// Package wxtest is an in-process simulation of the WeChat Official Account
// API and of the WeCom (企业微信) API, for tests, demos and examples that must
// run without credentials or network access.
//
// [New] starts an [httptest.Server] that answers the credential endpoints
// ([PathToken], [PathStableToken], [PathTicket]) and two ordinary APIs
// ([PathAPI], [PathSend]) and the temporary media APIs ([PathMediaUpload],
// [PathMediaGet]) the way WeChat does, and the Mini Program login and code
// APIs ([PathCode2Session] with [Server.IssueLoginCode], [PathWXACodeUnlimit]),
// including the rules that production fleets trip over:
//
//   - Every successful classic /cgi-bin/token call mints a new access_token;
//     the previous classic token keeps working for [Options.Overlap] more,
//     then answers errcode 40001. Two processes that each fetch a classic
//     token therefore break each other.
//   - /cgi-bin/stable_token returns the same token while it has more than
//     Overlap to live; during its last Overlap a call gets the next token, and
//     both work until the old one expires. force_refresh mints a new token at
//     once and the old one answers 40001 immediately. Classic and stable
//     tokens never invalidate each other.
//   - Tokens and tickets expire [Options.ExpiresIn] after they were issued
//     (errcode 42001 for an expired token); tickets need a valid token; token
//     mints are limited per simulated day ([Options.DailyQuota], errcode
//     45009); wrong or missing credentials get WeChat's error codes.
//
// The same server also answers WeCom's credential endpoints
// ([PathWeComToken], [PathWeComJSAPITicket], [PathWeComAgentTicket]) and two
// ordinary WeCom APIs ([PathWeComAPI], [PathWeComSend]), with WeCom's own
// rules and error codes: each application ([Options.WeComApps]) has one
// token at a time, which gettoken hands back until it expires (42001) or is
// revoked (40014); a wrong corpid is 40013, a wrong secret 40001.
//
// The quota APIs ([PathQuotaGet], [PathClearQuota], [PathClearQuotaV2])
// report and clear the token endpoints' daily count from the same counters
// that make them answer 45009, and clearing is limited to
// [ClearQuotaMonthlyLimit] times a month per account (errcode 48006), as
// on WeChat.
//
// It also answers the Open Platform (第三方平台) credential endpoints
// ([PathComponentToken], [PathQueryAuth], [PathAuthorizerToken]) for the
// platforms in [Options.Components]: the test plays WeChat's side of the
// flow with [Server.VerifyTicket] or [Server.VerifyTicketPush] (the
// component_verify_ticket pushed every 10 minutes), [Server.Authorize] (an
// account confirming the authorization page) and [Server.Unauthorize], and
// gets the encrypted event pushes from [Server.AuthorizedPush] and its
// siblings. An authorizer_access_token works on the Official Account APIs
// above exactly like an Official Account token; a component_access_token
// does not (40001), and the component endpoints refuse any other token
// (61014).
//
// WeCom's vendor platform (服务商: third-party apps 第三方应用 and
// custom-developed apps 代开发应用) is simulated too ([PathSuiteToken],
// [PathPermanentCode], [PathCorpToken], [PathProviderToken] and the
// others in wecomvendor.go): suites declared with [Server.SetSuiteSecret]
// get suite_tickets ([Server.SuiteTicketPush]), corps install them
// ([Server.Install], [Server.Uninstall], [Server.ResetPermanentCode]), and
// the corp tokens from get_corp_token, or from gettoken with a 代开发
// permanent code, work on the WeCom APIs above like a self-built app's.
//
// Errors are HTTP 200 with a {"errcode":N,"errmsg":"..."} body, as from
// WeChat, with realistic errmsg texts ending in " rid: ..." (WeCom's end in
// ", hint: [...], from ip: ..., more info at ...", as WeCom's do).
//
// # Pointing a client at the server
//
// WeChat has regional hosts, so every client has a configurable base URL: use
// [Server.URL] wherever https://api.weixin.qq.com (or, for WeCom,
// https://qyapi.weixin.qq.com) would go, and
// [Server.Client] (or any HTTP client: the server speaks plain HTTP). The
// [Server.Handler] can also be mounted in a server of one's own.
//
// # Simulated time
//
// Token and ticket lifetimes follow the server's own clock, which is manual:
// it starts at [Options.Start] and moves only when [Server.Advance] is
// called, so a test can cross a two-hour expiry instantly and
// deterministically. [Options.Now] replaces it with a clock of the caller's.
// Only [Options.Latency] is real time.
//
// # Inspection, faults and gates
//
// [Server.Calls], [Server.TokensIssued], [Server.ForceRefreshes] and
// [Server.LastBody] tell a test what its client did; [Server.TokenValid],
// [Server.TicketValid], [Server.Revoke] and [Server.Reject] inspect and
// change the server's state; [Server.SetAppSecret], [Server.SetWeComSecret]
// and [Server.SetComponentSecret] reset a secret as an administrator does
// in the console, the old one refused at once. [Server.InjectFault] makes the next
// requests to a path fail in a chosen way (system busy, malformed JSON, an
// HTTP 5xx, any errcode), and [Server.Block] holds requests until the test
// releases them, so concurrency tests synchronise on channels instead of
// sleeps.
//
// A Server is safe for concurrent use.
package wxtest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"
)

// Paths of the simulated endpoints, relative to [Server.URL].
const (
	// PathToken is the classic access_token endpoint:
	// GET ?grant_type=client_credential&appid=APPID&secret=SECRET.
	PathToken = "/cgi-bin/token"
	// PathStableToken is the stable access_token endpoint: POST with the JSON
	// body {"grant_type","appid","secret","force_refresh"}.
	PathStableToken = "/cgi-bin/stable_token"
	// PathTicket issues JS-SDK and card tickets:
	// GET ?access_token=TOKEN&type=jsapi or type=wx_card.
	PathTicket = "/cgi-bin/ticket/getticket"
	// PathAPI is an ordinary API that needs a valid token:
	// GET ?access_token=TOKEN answers {"ip_list":["127.0.0.1"]}.
	PathAPI = "/cgi-bin/getcallbackip"
	// PathSend is an ordinary API with a request body:
	// POST ?access_token=TOKEN with a JSON body answers
	// {"errcode":0,"errmsg":"ok"}. The body is available from
	// [Server.LastBody].
	PathSend = "/cgi-bin/message/custom/send"
	// PathMediaUpload uploads a temporary media file: POST
	// ?access_token=TOKEN&type=image|voice|video|thumb with a
	// multipart/form-data body whose file is in the field "media"; it
	// answers {"type":"image","media_id":"...","created_at":1234567890}.
	PathMediaUpload = "/cgi-bin/media/upload"
	// PathMediaGet downloads a temporary media file: GET
	// ?access_token=TOKEN&media_id=ID answers the file itself, with its
	// Content-Type and a Content-Disposition naming it; errors are JSON
	// labelled text/plain, as WeChat sends them (40007 for an unknown
	// media_id).
	PathMediaGet = "/cgi-bin/media/get"
)

// Defaults for the zero values of [Options].
const (
	// DefaultExpiresIn is the lifetime of tokens and tickets, as WeChat
	// announces it (expires_in 7200).
	DefaultExpiresIn = 7200 * time.Second
	// DefaultOverlap is how long a superseded classic token keeps working,
	// and how long before its expiry stable_token hands over to the next
	// token.
	DefaultOverlap = 5 * time.Minute
)

// maxBody bounds the request bodies the server reads.
const maxBody = 1 << 20

// Options configures a [Server]. The zero value is usable: it accepts any
// non-empty credentials and uses WeChat's lifetimes.
type Options struct {
	// AppID and AppSecret are the credentials the token endpoints accept;
	// anything else gets errcode 40013 (invalid appid) or 40125 (invalid
	// appsecret). An empty AppID accepts any non-empty appid, an empty
	// AppSecret any non-empty secret. Each distinct appid has its own tokens
	// and quota, as on WeChat.
	AppID, AppSecret string

	// ExpiresIn is the lifetime of tokens and tickets; zero or negative means
	// DefaultExpiresIn. Replies announce it in whole seconds.
	ExpiresIn time.Duration

	// Overlap is how long a superseded classic token keeps working after the
	// next classic fetch, and the hand-over window of stable_token: during
	// the last Overlap of a stable token's life a normal call returns the
	// next token. Zero means DefaultOverlap; a negative Overlap means none (a
	// superseded classic token fails at once, stable_token hands over only
	// when the token expires).
	Overlap time.Duration

	// Start is the initial time of the simulated clock; the zero value
	// means time.Now() when New is called. Ignored when Now is set.
	Start time.Time

	// Now, if set, replaces the manual clock: the server reads the time from
	// it and Server.Advance panics. It is called with the server's lock
	// held, so it must not call methods of the Server; it must be safe for
	// concurrent use.
	Now func() time.Time

	// Latency is a real-time delay added to every request before it is
	// handled, as network delay would be. A request whose context ends
	// during the delay is dropped. See also Server.SetLatency.
	Latency time.Duration

	// DailyQuota is how many access tokens (classic and stable together) an
	// appid, or a WeCom application, can mint per simulated day (the Beijing
	// date of the server's clock) before the token endpoints answer errcode
	// 45009. A stable_token or WeCom gettoken call that returns the current
	// token mints nothing and is not counted. Zero means unlimited.
	DailyQuota int

	// ForceRefreshDailyLimit is how many stable_token force_refresh calls an
	// appid may make per simulated day before errcode 45009 (WeChat allows
	// about 20). Zero means unlimited.
	ForceRefreshDailyLimit int

	// ForceRefreshInterval is the least simulated time between two
	// force_refresh calls of an appid; a call made sooner gets errcode 45011
	// (WeChat requires about 30 s). Zero means no limit.
	ForceRefreshInterval time.Duration

	// WeComApps declares the WeCom applications [PathWeComToken] accepts.
	// Empty accepts any non-empty corpid and corpsecret, each pair being an
	// application of its own that may name any agentid. Otherwise a missing
	// corpid gets errcode 41002, a missing corpsecret 41004, a corpid not
	// declared 40013 (invalid corpid) and a corpsecret not declared for that
	// corpid 40001 (invalid credential: WeCom's code for a wrong secret).
	// Tokens live ExpiresIn; DailyQuota limits the tokens each application
	// mints per simulated day (errcode 45009).
	WeComApps []WeComApp

	// Components declares the third-party platforms the Open Platform
	// endpoints accept ([PathComponentToken] and the others; see
	// [Component]). Empty accepts any non-empty component_appid, its
	// secret being the first one it presents. Component and authorizer
	// tokens live ExpiresIn, superseded ones keep working for Overlap, and
	// DailyQuota limits the tokens each component, and each authorizer,
	// mints per simulated day (errcode 45009).
	Components []Component

	// OmitVendorErrcode makes the successful replies of [PathSuiteToken],
	// [PathCorpToken] and [PathProviderToken] leave out errcode and errmsg,
	// as WeCom may ("因历史原因，该接口在调用失败时才返回errcode。没返回errcode视为
	// 调用成功"); by default they carry {"errcode":0,"errmsg":"ok"}, as the
	// docs' examples of the first two show. See also
	// [Server.OmitVendorErrcode].
	OmitVendorErrcode bool
}

// Server is a running simulation of the WeChat API, created by [New]. Its
// methods are safe for concurrent use.
type Server struct {
	// URL is the server's base URL, of the form http://127.0.0.1:PORT with no
	// trailing slash: use it in place of https://api.weixin.qq.com.
	URL string

	srv       *httptest.Server
	handler   http.Handler
	opts      Options // normalised: ExpiresIn > 0, Overlap >= 0
	latency   atomic.Int64
	closing   chan struct{}
	closeOnce sync.Once

	mu               sync.Mutex
	clock            time.Time // the manual clock, unused when opts.Now is set
	apps             map[string]*app
	tokens           map[string]*token
	tickets          map[string]*ticket
	media            map[string]*mediaFile
	calls            map[string]int
	bodies           map[string][]byte
	faults           map[string][]queuedFault
	gates            map[string]*Gate
	weComApps        map[weComKey]*weComApp
	weComTokens      map[string]*weComToken
	appSecrets       map[string]*rotated   // SetAppSecret, by appid
	weComSecrets     map[weComKey]*rotated // SetWeComSecret, by the declared app
	loginCodes       map[string]*loginCode // Mini Program login codes, made on first use
	components       map[string]*component // Open Platform state, by component_appid
	componentTokens  map[string]*componentToken
	authCodes        map[string]*authCode
	authorizerIssued map[string]int // authorizer access tokens minted, by authorizer appid
	componentIssued  int
	rotateRefresh    bool
	singleUseCodes   bool
	codeSeq          int // authorization codes issued
	tokensIssued     int
	minted           int // access tokens mintLocked created, never reset: the last one's seq
	ticketsIssued    int
	forceRefreshes   int
	vendor           vendorState // WeCom vendor platform (wecomvendor.go)
}

// New starts a simulated WeChat API server configured by opts. Call
// [Server.Close] when done with it.
func New(opts Options) *Server {
	if opts.ExpiresIn <= 0 {
		opts.ExpiresIn = DefaultExpiresIn
	}
	switch {
	case opts.Overlap == 0:
		opts.Overlap = DefaultOverlap
	case opts.Overlap < 0:
		opts.Overlap = 0
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	s := &Server{
		opts:    opts,
		closing: make(chan struct{}),
		clock:   opts.Start,
		apps:    make(map[string]*app),
		tokens:  make(map[string]*token),
		tickets: make(map[string]*ticket),
		media:   make(map[string]*mediaFile),
		calls:   make(map[string]int),
		bodies:  make(map[string][]byte),
		faults:  make(map[string][]queuedFault),
		gates:   make(map[string]*Gate),

		weComApps:   make(map[weComKey]*weComApp),
		weComTokens: make(map[string]*weComToken),

		appSecrets:   make(map[string]*rotated),
		weComSecrets: make(map[weComKey]*rotated),

		components:       make(map[string]*component),
		componentTokens:  make(map[string]*componentToken),
		authCodes:        make(map[string]*authCode),
		authorizerIssued: make(map[string]int),
	}
	for _, c := range opts.Components {
		s.components[c.AppID] = &component{appID: c.AppID, secret: c.AppSecret,
			tickets: make(map[string]time.Time), authorizers: make(map[string]*authorizer)}
	}
	s.vendor.init(opts.OmitVendorErrcode)
	s.latency.Store(int64(opts.Latency))
	s.handler = http.HandlerFunc(s.serveHTTP)
	s.srv = httptest.NewServer(s.handler)
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down and blocks until its outstanding requests have
// completed. Requests held by a [Gate] or by the latency delay are answered
// with HTTP 503 at once. Close is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.srv.Close()
	})
}

// Handler returns the handler that serves the simulated API, for mounting in
// a server of one's own (for example under http.StripPrefix). It shares the
// Server's state: tokens, clock, counters, faults and gates.
func (s *Server) Handler() http.Handler { return s.handler }

// Client returns an HTTP client configured for requests to the server. It is
// closed, with its idle connections, by [Server.Close].
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Now returns the current simulated time.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

func (s *Server) nowLocked() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return s.clock
}

// Advance moves the simulated clock forward by d. It panics if d is negative
// or if the server was created with [Options.Now] (then that clock is the
// one to move).
func (s *Server) Advance(d time.Duration) {
	if s.opts.Now != nil {
		panic("wxtest: Server.Advance called on a server whose Options.Now is set; advance that clock instead")
	}
	if d < 0 {
		panic("wxtest: Server.Advance called with a negative duration " + d.String())
	}
	s.mu.Lock()
	s.clock = s.clock.Add(d)
	s.mu.Unlock()
}

// SetLatency changes the real-time delay added to every request from now on
// (see [Options.Latency]). Zero or negative means none.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// Calls returns how many requests reached path since the server started or
// since [Server.ResetCounters]: every request, including rejected ones,
// faulted ones, held ones and ones whose client gave up.
func (s *Server) Calls(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

// TokensIssued returns how many new access tokens the server minted (classic,
// stable, WeCom — vendor corp tokens included — and Open Platform
// authorizer tokens together; not
// component_access_tokens) since it started or since
// [Server.ResetCounters]. A stable_token or WeCom gettoken call that returned
// the current token minted nothing.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokensIssued
}

// ForceRefreshes returns how many stable_token calls with force_refresh:true
// minted a token since the server started or since [Server.ResetCounters]
// (a call refused by the force_refresh limits is not counted).
func (s *Server) ForceRefreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forceRefreshes
}

// TicketsIssued returns how many tickets (jsapi, wx_card and WeCom's corp and
// agent tickets together) the server minted since it started or since
// [Server.ResetCounters].
func (s *Server) TicketsIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ticketsIssued
}

// ResetCounters sets [Server.Calls], [Server.TokensIssued],
// [Server.TicketsIssued], [Server.ForceRefreshes],
// [Server.ComponentTokensIssued], [Server.AuthorizerTokensIssued],
// [Server.SuiteTokensIssued], [Server.CorpTokensIssued] and
// [Server.ProviderTokensIssued] back to zero. Tokens, tickets, quotas, recorded
// bodies, faults and gates are left as they are.
func (s *Server) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
	clear(s.authorizerIssued)
	s.componentIssued = 0
	s.tokensIssued = 0
	s.ticketsIssued = 0
	s.forceRefreshes = 0
	s.vendor.resetCounters()
}

// ResetQuota forgets the daily quota and force_refresh use of every appid,
// as WeChat's clear_quota API ([PathClearQuota]) does, and the daily quota
// of every WeCom application. It spends none of clear_quota's monthly
// allowance, and gives none back.
func (s *Server) ResetQuota() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.apps {
		a.quotaDay, a.quotaUsed = "", 0
		a.forceDay, a.forceUsed, a.lastForce = "", 0, time.Time{}
	}
	for _, a := range s.weComApps {
		a.quota.quotaDay, a.quota.quotaUsed = "", 0
	}
}

// LastBody returns a copy of the body of the most recent request that reached
// path (empty for a request without one), or nil if none did.
func (s *Server) LastBody(path string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.bodies[path])
}

// serveHTTP counts and records the request, applies the latency, the gate and
// any injected fault, then hands it to the endpoint.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	r.Body = io.NopCloser(bytes.NewReader(body))

	s.mu.Lock()
	s.calls[path]++
	s.bodies[path] = body
	g := s.gates[path]
	s.mu.Unlock()

	if !s.sleep(r.Context(), time.Duration(s.latency.Load())) {
		s.dropped(w)
		return
	}
	if g != nil && !g.hold(r.Context(), s.closing) {
		s.dropped(w)
		return
	}
	if f, ok := s.takeFault(path); ok {
		f.write(w)
		return
	}
	switch path {
	case PathToken:
		s.serveToken(w, r)
	case PathStableToken:
		s.serveStableToken(w, r, body)
	case PathTicket:
		s.serveTicket(w, r)
	case PathAPI:
		s.serveAPI(w, r)
	case PathQuotaGet:
		s.serveQuotaGet(w, r, body)
	case PathClearQuota:
		s.serveClearQuota(w, r, body)
	case PathClearQuotaV2:
		s.serveClearQuotaV2(w, r, body)
	case PathSend:
		s.serveSend(w, r, body)
	case PathMediaUpload:
		s.serveMediaUpload(w, r)
	case PathMediaGet:
		s.serveMediaGet(w, r)
	case PathWeComToken:
		s.serveWeComToken(w, r)
	case PathWeComJSAPITicket:
		s.serveWeComTicket(w, r, false)
	case PathWeComAgentTicket:
		s.serveWeComTicket(w, r, true)
	case PathWeComAPI:
		s.serveWeComAPI(w, r)
	case PathWeComSend:
		s.serveWeComSend(w, r, body)
	case PathCode2Session:
		s.serveCode2Session(w, r)
	case PathWXACodeUnlimit:
		s.serveWXACodeUnlimit(w, r, body)
	case PathComponentToken:
		s.serveComponentToken(w, r, body)
	case PathQueryAuth:
		s.serveQueryAuth(w, r, body)
	case PathAuthorizerToken:
		s.serveAuthorizerToken(w, r, body)
	case PathSuiteToken, PathPermanentCode, PathPermanentCodeV1, PathCorpToken,
		PathProviderToken, PathAuthInfo, PathAuthInfoV1:
		s.serveVendor(w, r, path, body)
	default:
		http.NotFound(w, r)
	}
}

// sleep waits d in real time. It reports false if ctx ended or the server
// closed first.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	}
}

// dropped answers a request abandoned by its client (nobody reads the reply)
// or cut short by Close.
func (s *Server) dropped(w http.ResponseWriter) {
	http.Error(w, "wxtest: request abandoned or server closed", http.StatusServiceUnavailable)
}
