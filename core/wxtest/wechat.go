package wxtest

import (
	cryptorand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// WeChat's error codes, as the simulation answers them.
const (
	codeSystemBusy        = -1
	codeInvalidCredential = 40001
	codeInvalidGrantType  = 40002
	codeInvalidAppID      = 40013
	codeInvalidArgs       = 40097
	codeInvalidAppSecret  = 40125
	codeTokenMissing      = 41001
	codeAppIDMissing      = 41002
	codeSecretMissing     = 41004
	codeTokenExpired      = 42001
	codeRequireGET        = 43001
	codeRequirePOST       = 43002
	codeDailyQuota        = 45009
	codeMinuteQuota       = 45011
	codeDataFormat        = 47001
)

var errmsgs = map[int]string{
	codeSystemBusy:        "system error",
	codeInvalidCredential: "invalid credential, access_token is invalid or not latest",
	codeInvalidGrantType:  "invalid grant_type",
	codeInvalidAppID:      "invalid appid",
	codeInvalidArgs:       "invalid args",
	codeInvalidAppSecret:  "invalid appsecret",
	codeTokenMissing:      "access_token missing",
	codeAppIDMissing:      "appid missing",
	codeSecretMissing:     "appsecret missing",
	codeTokenExpired:      "access_token expired",
	codeRequireGET:        "require GET method",
	codeRequirePOST:       "require POST method",
	codeDailyQuota:        "reach max api daily quota limit",
	codeMinuteQuota:       "api minute-quota reach limit  mustslower  retry next minute",
	codeDataFormat:        "data format error",
}

const jsonContentType = "application/json; encoding=utf-8"

// Lengths, in random bytes, of minted values. Base64url makes 102 bytes 136
// characters (a typical access_token) and 64 bytes 86 (a typical ticket).
const (
	tokenBytes  = 102
	ticketBytes = 64
)

// app is the per-appid state.
type app struct {
	id string // the appid; "" for the quota holders of WeCom and the Open Platform

	classic *token   // the latest classic token
	stable  *token   // the stable token normal calls return
	stables []*token // stable tokens not yet expired or invalidated, stable among them

	quotaDay  string // Beijing date quotaUsed counts for (dayOf)
	quotaUsed int

	forceDay  string // Beijing date forceUsed counts for (dayOf)
	forceUsed int
	lastForce time.Time

	clearMonth string // Beijing year and month clears counts for (quota.go)
	clears     int    // clear_quota and clear_quota/v2 calls that cleared this month
}

type token struct {
	value   string
	expires time.Time
	dead    time.Time // when a superseded token stops working; zero if not superseded
	revoked bool      // APIs answer 40001, and stable_token stops returning it
	// rejected: APIs answer 40001, but a normal stable_token call keeps
	// returning it until it hands over or a force_refresh replaces it.
	rejected bool
	seq      int    // issue order: the n-th token mintLocked created has seq n (see Server.TokenSeq)
	appid    string // the account the token was issued to, whose quota it reads and clears (quota.go)
}

// status is the errcode an API answers for t at now, 0 if t is accepted.
func (t *token) status(now time.Time) int {
	switch {
	case t.revoked, t.rejected:
		return codeInvalidCredential
	}
	return t.lifeStatus(now)
}

// lifeStatus is status without the rejection: whether t has expired or was
// superseded past its overlap. stable_token's normal mode looks only at
// this, so a rejected stable token keeps being handed back.
func (t *token) lifeStatus(now time.Time) int {
	switch {
	case t.revoked:
		return codeInvalidCredential
	case !now.Before(t.expires):
		return codeTokenExpired
	case !t.dead.IsZero() && !now.Before(t.dead):
		return codeInvalidCredential
	}
	return 0
}

type ticket struct {
	expires time.Time
	revoked bool
}

func (t *ticket) valid(now time.Time) bool { return !t.revoked && now.Before(t.expires) }

type errorReply struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

type tokenReply struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

type ticketReply struct {
	Errcode   int    `json:"errcode"`
	Errmsg    string `json:"errmsg"`
	Ticket    string `json:"ticket"`
	ExpiresIn int64  `json:"expires_in"`
}

type ipListReply struct {
	IPList []string `json:"ip_list"`
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen: the replies are plain structs
		panic(err)
	}
	w.Header().Set("Content-Type", jsonContentType)
	_, _ = w.Write(b)
}

// writeError answers WeChat's way: HTTP 200, an errcode and an errmsg ending
// with a request id.
func writeError(w http.ResponseWriter, code int) {
	writeJSON(w, errorReply{Errcode: code, Errmsg: errmsgs[code] + " rid: " + rid()})
}

// rid returns a request id shaped like WeChat's: three groups of eight hex
// digits.
func rid() string {
	return fmt.Sprintf("%08x-%08x-%08x", uint32(time.Now().Unix()), rand.Uint32(), rand.Uint32())
}

// newValue returns a random base64url string made of n random bytes.
func newValue(n int) string {
	b := make([]byte, n)
	_, _ = cryptorand.Read(b) // never fails: crypto/rand.Read panics instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// seconds is d in whole seconds, rounded down: a client that trusts it
// never keeps a token longer than the server does.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// checkCredentials validates a token request's parameters; 0 means accepted.
// classic says which endpoint asks ([PathToken] rather than
// [PathStableToken]): they answer a secret retired by SetAppSecret
// differently.
func (s *Server) checkCredentials(grantType, appid, secret string, classic bool) int {
	switch {
	case grantType != "client_credential":
		return codeInvalidGrantType
	case appid == "":
		return codeAppIDMissing
	case secret == "":
		return codeSecretMissing
	case s.opts.AppID != "" && appid != s.opts.AppID:
		return codeInvalidAppID
	}
	if code, handled := s.checkAppSecret(appid, secret, classic); handled {
		return code
	}
	switch {
	case s.opts.AppSecret != "" && secret != s.opts.AppSecret:
		return codeInvalidAppSecret
	}
	return 0
}

// appLocked returns the state of appid, creating it. s.mu must be held.
func (s *Server) appLocked(appid string) *app {
	a := s.apps[appid]
	if a == nil {
		a = &app{id: appid}
		s.apps[appid] = a
	}
	return a
}

// useQuotaLocked takes one token mint from a's daily quota, or returns 45009.
// s.mu must be held.
func (s *Server) useQuotaLocked(a *app, now time.Time) int {
	day := dayOf(now)
	if a.quotaDay != day {
		a.quotaDay, a.quotaUsed = day, 0
	}
	if s.opts.DailyQuota > 0 && a.quotaUsed >= s.opts.DailyQuota {
		return codeDailyQuota
	}
	a.quotaUsed++
	return 0
}

// mintLocked creates and registers a new access token of appid. s.mu must
// be held.
func (s *Server) mintLocked(appid string, now time.Time) *token {
	t := &token{expires: now.Add(s.opts.ExpiresIn), appid: appid}
	for {
		t.value = newValue(tokenBytes)
		if _, dup := s.tokens[t.value]; !dup {
			s.minted++
			t.seq = s.minted
			s.tokens[t.value] = t
			s.tokensIssued++
			return t
		}
	}
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, codeRequireGET)
		return
	}
	q := r.URL.Query()
	appid := q.Get("appid")
	if code := s.checkCredentials(q.Get("grant_type"), appid, q.Get("secret"), true); code != 0 {
		writeError(w, code)
		return
	}

	s.mu.Lock()
	now := s.nowLocked()
	a := s.appLocked(appid)
	if code := s.useQuotaLocked(a, now); code != 0 {
		s.mu.Unlock()
		writeError(w, code)
		return
	}
	t := s.mintLocked(appid, now)
	if old := a.classic; old != nil && old.dead.IsZero() {
		old.dead = now.Add(s.opts.Overlap)
	}
	a.classic = t
	s.mu.Unlock()

	writeJSON(w, tokenReply{AccessToken: t.value, ExpiresIn: seconds(s.opts.ExpiresIn)})
}

type stableRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

func (s *Server) serveStableToken(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeError(w, codeRequirePOST)
		return
	}
	var req stableRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, codeDataFormat)
		return
	}
	if code := s.checkCredentials(req.GrantType, req.AppID, req.Secret, false); code != 0 {
		writeError(w, code)
		return
	}

	s.mu.Lock()
	now := s.nowLocked()
	a := s.appLocked(req.AppID)
	t, code := s.stableLocked(a, req.ForceRefresh, now)
	s.mu.Unlock()

	if code != 0 {
		writeError(w, code)
		return
	}
	writeJSON(w, tokenReply{AccessToken: t.value, ExpiresIn: seconds(t.expires.Sub(now))})
}

// stableLocked implements stable_token for a. s.mu must be held.
func (s *Server) stableLocked(a *app, force bool, now time.Time) (*token, int) {
	// Forget the tokens that no longer work.
	live := a.stables[:0]
	for _, t := range a.stables {
		if t.lifeStatus(now) == 0 {
			live = append(live, t)
		}
	}
	clear(a.stables[len(live):])
	a.stables = live

	if !force {
		if cur := a.stable; cur != nil && cur.lifeStatus(now) == 0 && cur.expires.Sub(now) > s.opts.Overlap {
			return cur, 0
		}
		// No usable token, or the current one is in its last Overlap: hand
		// over to the next. The current one keeps working until it expires.
		if code := s.useQuotaLocked(a, now); code != 0 {
			return nil, code
		}
		return s.mintStableLocked(a, now), 0
	}

	day := dayOf(now)
	if a.forceDay != day {
		a.forceDay, a.forceUsed = day, 0
	}
	if s.opts.ForceRefreshDailyLimit > 0 && a.forceUsed >= s.opts.ForceRefreshDailyLimit {
		return nil, codeDailyQuota
	}
	if s.opts.ForceRefreshInterval > 0 && !a.lastForce.IsZero() &&
		now.Sub(a.lastForce) < s.opts.ForceRefreshInterval {
		return nil, codeMinuteQuota
	}
	if code := s.useQuotaLocked(a, now); code != 0 {
		return nil, code
	}
	a.forceUsed++
	a.lastForce = now
	s.forceRefreshes++
	// Every earlier stable token of the appid, including one still in its
	// hand-over window, stops working at once.
	for _, t := range a.stables {
		t.dead = now
	}
	clear(a.stables)
	a.stables = a.stables[:0]
	return s.mintStableLocked(a, now), 0
}

// mintStableLocked mints the next stable token of a and makes it current.
// s.mu must be held.
func (s *Server) mintStableLocked(a *app, now time.Time) *token {
	t := s.mintLocked(a.id, now)
	a.stable = t
	a.stables = append(a.stables, t)
	return t
}

func (s *Server) serveTicket(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, codeRequireGET)
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	now := s.nowLocked()
	code := s.tokenStatusLocked(q.Get("access_token"), now)
	if code == 0 {
		if typ := q.Get("type"); typ != "jsapi" && typ != "wx_card" {
			code = codeInvalidArgs
		}
	}
	if code != 0 {
		s.mu.Unlock()
		writeError(w, code)
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

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, codeRequireGET)
		return
	}
	if code := s.tokenStatus(r.URL.Query().Get("access_token")); code != 0 {
		writeError(w, code)
		return
	}
	writeJSON(w, ipListReply{IPList: []string{"127.0.0.1"}})
}

func (s *Server) serveSend(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeError(w, codeRequirePOST)
		return
	}
	if code := s.tokenStatus(r.URL.Query().Get("access_token")); code != 0 {
		writeError(w, code)
		return
	}
	if !json.Valid(body) {
		writeError(w, codeDataFormat)
		return
	}
	writeJSON(w, errorReply{Errcode: 0, Errmsg: "ok"})
}

func (s *Server) tokenStatus(value string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenStatusLocked(value, s.nowLocked())
}

// tokenStatusLocked is the errcode an API answers for the access_token value
// at now, 0 if accepted. s.mu must be held.
func (s *Server) tokenStatusLocked(value string, now time.Time) int {
	if value == "" {
		return codeTokenMissing
	}
	t := s.tokens[value]
	if t == nil {
		return codeInvalidCredential
	}
	return t.status(now)
}

// TokenValid reports whether an API call ([PathAPI], [PathSend],
// [PathTicket]) made now with the access token would be accepted: the token
// was issued by this server, has not expired, was not revoked and was not
// superseded past its overlap. For a WeCom token it reports whether a WeCom
// API call ([PathWeComAPI], [PathWeComSend], [PathWeComJSAPITicket],
// [PathWeComAgentTicket]) would be accepted. An Open Platform
// authorizer_access_token is an Official Account token; a
// component_access_token is not (see [Server.ComponentTokenValid]).
func (s *Server) TokenValid(token string) bool {
	if _, code := s.weComToken(token); code == 0 {
		return true
	}
	return s.tokenStatus(token) == 0
}

// TokenSeq returns the issue order of an access token this server minted
// (classic, stable or Open Platform authorizer): 1 for the first token it
// ever minted, 2 for the next, and so on, counted since the server started
// ([Server.ResetCounters] does not restart it). It returns 0 for a value the
// server never minted (and for WeCom tokens). A later token has a larger
// number, so a history of stored tokens can be checked for going backwards:
// conformance/faults does that.
func (s *Server) TokenSeq(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tokens[token]; t != nil {
		return t.seq
	}
	return 0
}

// Reject makes every API answer errcode 40001 to the access token from now
// on, while a normal-mode stable_token call keeps handing it back (until its
// hand-over window or a force_refresh replaces it): what WeChat does with a
// leaked or revoked stable token, or after a force_refresh elsewhere that the
// normal call has not caught up with. Only force_refresh gets a working
// token. For a classic token it is the same as [Server.Revoke]. A rejected
// WeCom token gets errcode 40014 from every WeCom API, while
// [PathWeComToken] keeps handing it back until it expires. Unknown values
// are ignored.
func (s *Server) Reject(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tokens[token]; t != nil {
		t.rejected = true
	}
	s.weComRejectLocked(token)
	s.componentRevokeLocked(token, true)
	s.vendorRevokeLocked(token, true)
}

// TicketValid reports whether ticket was issued by this server, has not
// expired and was not revoked.
func (s *Server) TicketValid(ticket string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tickets[ticket]
	return t != nil && t.valid(s.nowLocked())
}

// Revoke invalidates an access token (it answers errcode 40001 from now on)
// or a ticket (TicketValid reports false). Revoking a token does not revoke
// the tickets obtained with it, as on WeChat. A revoked WeCom token answers
// errcode 40014, and the next [PathWeComToken] call mints a new token: what
// WeCom does when it "提前使access_token失效" (invalidates a token early).
// Open Platform authorizer tokens behave as classic tokens; a revoked or
// rejected component_access_token answers 40001 from [PathQueryAuth] and
// [PathAuthorizerToken]. Unknown values are ignored.
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tokens[token]; t != nil {
		t.revoked = true
	}
	s.weComRevokeLocked(token)
	s.componentRevokeLocked(token, false)
	s.vendorRevokeLocked(token, false)
	if t := s.tickets[token]; t != nil {
		t.revoked = true
	}
}
