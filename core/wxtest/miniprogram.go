package wxtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// Paths of the Mini Program (小程序) endpoints. A Mini Program gets its
// access_token from [PathToken] and [PathStableToken] as an Official Account
// does.
const (
	// PathCode2Session is the Mini Program login (code2Session): GET
	// ?appid=APPID&secret=SECRET&js_code=CODE&grant_type=authorization_code,
	// with the AppSecret and no access_token. It answers
	// {"openid":"…","session_key":"…"} for a code from
	// [Server.IssueLoginCode]; a code works once (errcode 40163 "code been
	// used" after that) and for [LoginCodeTTL] of simulated time (then
	// 40029 "invalid code", as for a code the server never issued).
	PathCode2Session = "/sns/jscode2session"
	// PathWXACodeUnlimit makes an unlimited Mini Program code (小程序码): POST
	// ?access_token=TOKEN with the JSON body {"scene":"…","page":"…",
	// "width":430}. It answers a JPEG image (Content-Type image/jpeg) that
	// depends on scene, page and width, and errors as JSON: 40169 for a
	// scene that is empty or longer than 32 characters or a body that is
	// not JSON, 40129 for a scene with characters other than letters,
	// digits and !#$&'()*+,/:;=?@-._~, 41030 for a page starting with "/"
	// or carrying a query.
	PathWXACodeUnlimit = "/wxa/getwxacodeunlimit"
)

// LoginCodeTTL is how long a code from [Server.IssueLoginCode] can be
// exchanged at [PathCode2Session], as wx.login's code on WeChat.
const LoginCodeTTL = 5 * time.Minute

// Error codes of the Mini Program APIs.
const (
	codeInvalidCode   = 40029
	codeInvalidScene  = 40129
	codeCodeUsed      = 40163
	codeSceneLength   = 40169
	codeCodeBlocked   = 40226
	codeCodeMissing   = 41008
	codeInvalidPage   = 41030
	maxScene          = 32
	defaultCodeWidth  = 430
	minCodeWidth      = 280
	maxCodeWidth      = 1280
	codeModules       = 16 // the simulated code is a 16×16 grid: 256 bits of SHA-256
	sessionKeyBytes   = 16
	loginCodeBytes    = 24
	sceneExtraSymbols = "!#$&'()*+,/:;=?@-._~"
)

func init() {
	errmsgs[codeInvalidCode] = "invalid code"
	errmsgs[codeInvalidScene] = "invalid scene"
	errmsgs[codeCodeUsed] = "code been used"
	errmsgs[codeSceneLength] = "invalid length for scene, or the data is not json string"
	errmsgs[codeCodeBlocked] = "code blocked"
	errmsgs[codeCodeMissing] = "missing code"
	errmsgs[codeInvalidPage] = "invalid page"
}

// loginCode is a code issued by IssueLoginCode.
type loginCode struct {
	openid  string
	expires time.Time
	used    bool
	blocked bool // answers 40226, as for a high-risk user
}

type code2SessionReply struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
}

// IssueLoginCode returns a new login code for the user openid, what wx.login
// gives a Mini Program on the phone; the server exchanges it for openid at
// [PathCode2Session] once, within [LoginCodeTTL] of simulated time.
func (s *Server) IssueLoginCode(openid string) string {
	return s.issueLoginCode(&loginCode{openid: openid})
}

// IssueBlockedLoginCode returns a login code that [PathCode2Session]
// refuses with errcode 40226 ("code blocked"): WeChat's answer for a
// high-risk user, whom the Mini Program must not log in.
func (s *Server) IssueBlockedLoginCode(openid string) string {
	return s.issueLoginCode(&loginCode{openid: openid, blocked: true})
}

func (s *Server) issueLoginCode(c *loginCode) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loginCodes == nil {
		s.loginCodes = make(map[string]*loginCode)
	}
	c.expires = s.nowLocked().Add(LoginCodeTTL)
	for {
		v := newValue(loginCodeBytes)
		if _, dup := s.loginCodes[v]; !dup {
			s.loginCodes[v] = c
			return v
		}
	}
}

func (s *Server) serveCode2Session(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, codeRequireGET)
		return
	}
	q := r.URL.Query()
	var code int
	switch {
	case q.Get("grant_type") != "authorization_code":
		code = codeInvalidGrantType
	case q.Get("appid") == "":
		code = codeAppIDMissing
	case q.Get("secret") == "":
		code = codeSecretMissing
	case s.opts.AppID != "" && q.Get("appid") != s.opts.AppID:
		code = codeInvalidAppID
	case q.Get("js_code") == "":
		code = codeCodeMissing
	}
	if code == 0 {
		// The AppSecret as SetAppSecret left it (any secret but the
		// current one is 40125), else Options.AppSecret.
		if c, handled := s.checkAppSecret(q.Get("appid"), q.Get("secret"), false); handled {
			code = c
		} else if s.opts.AppSecret != "" && q.Get("secret") != s.opts.AppSecret {
			code = codeInvalidAppSecret
		}
	}
	if code != 0 {
		writeError(w, code)
		return
	}
	s.mu.Lock()
	c := s.loginCodes[q.Get("js_code")]
	switch {
	case c == nil || !s.nowLocked().Before(c.expires):
		code = codeInvalidCode
	case c.used:
		code = codeCodeUsed
	case c.blocked:
		code = codeCodeBlocked
	default:
		c.used = true
	}
	s.mu.Unlock()
	if code != 0 {
		writeError(w, code)
		return
	}
	writeJSON(w, code2SessionReply{OpenID: c.openid, SessionKey: newSessionKey()})
}

// newSessionKey returns a session_key shaped like WeChat's: 16 random bytes
// in standard base64 (24 characters).
func newSessionKey() string {
	v := newValue(sessionKeyBytes) // base64url without padding
	v = strings.NewReplacer("-", "+", "_", "/").Replace(v)
	return v + strings.Repeat("=", (4-len(v)%4)%4)
}

type wxaCodeRequest struct {
	Scene string `json:"scene"`
	Page  string `json:"page"`
	Width int    `json:"width"`
}

func (s *Server) serveWXACodeUnlimit(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeError(w, codeRequirePOST)
		return
	}
	if code := s.tokenStatus(r.URL.Query().Get("access_token")); code != 0 {
		writeError(w, code)
		return
	}
	var req wxaCodeRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, codeSceneLength)
		return
	}
	if code := checkScene(req.Scene); code != 0 {
		writeError(w, code)
		return
	}
	if strings.HasPrefix(req.Page, "/") || strings.Contains(req.Page, "?") {
		writeError(w, codeInvalidPage)
		return
	}
	width := req.Width
	switch {
	case width == 0:
		width = defaultCodeWidth
	case width < minCodeWidth:
		width = minCodeWidth
	case width > maxCodeWidth:
		width = maxCodeWidth
	}
	img := wxaCodeJPEG(req.Scene, req.Page, width)
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(img)))
	_, _ = w.Write(img)
}

// checkScene returns the errcode WeChat answers for a scene, 0 if valid.
func checkScene(scene string) int {
	if scene == "" || len(scene) > maxScene {
		return codeSceneLength
	}
	for _, r := range scene {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', strings.ContainsRune(sceneExtraSymbols, r):
		default:
			return codeInvalidScene
		}
	}
	return 0
}

// wxaCodeJPEG draws a stand-in for a Mini Program code: a width×width
// black-and-white grid of the SHA-256 of scene, page and width, encoded as
// JPEG. The same request always gives the same bytes.
func wxaCodeJPEG(scene, page string, width int) []byte {
	sum := sha256.Sum256([]byte(scene + "\x00" + page + "\x00" + strconv.Itoa(width)))
	img := image.NewGray(image.Rect(0, 0, width, width))
	cell := width / codeModules
	for y := range width {
		for x := range width {
			mx, my := min(x/cell, codeModules-1), min(y/cell, codeModules-1)
			bit := my*codeModules + mx
			if sum[bit/8]&(1<<(bit%8)) != 0 {
				img.SetGray(x, y, color.Gray{Y: 0})
			} else {
				img.SetGray(x, y, color.Gray{Y: 255})
			}
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 75}); err != nil { // cannot fail on a bytes.Buffer
		panic(err)
	}
	return buf.Bytes()
}

// EncryptJSONPush returns the query parameters and body of a message push
// in the JSON data format, encrypted (safe mode), as WeChat sends it to a
// Mini Program server configured with data format JSON: the body is
// {"ToUserName":"…","Encrypt":"…"} and the query carries signature,
// timestamp, nonce, encrypt_type=aes and msg_signature. plaintext is the
// JSON message (with ToUserName, FromUserName, CreateTime, MsgType, …);
// token, encodingAESKey and appID are the Mini Program's message push
// settings. timestamp is Unix seconds, e.g. Server.Now().Unix().
func EncryptJSONPush(token, encodingAESKey, appID string, plaintext []byte, timestamp int64, nonce string) (url.Values, []byte, error) {
	c, err := msgcrypt.New(token, encodingAESKey, appID)
	if err != nil {
		return nil, nil, err
	}
	var head struct {
		ToUserName string `json:"ToUserName"`
	}
	_ = json.Unmarshal(plaintext, &head) // only to copy ToUserName; the plaintext may be anything
	enc, err := c.Encrypt(plaintext)
	if err != nil {
		return nil, nil, err
	}
	ts := strconv.FormatInt(timestamp, 10)
	body, err := json.Marshal(struct {
		ToUserName string `json:"ToUserName"`
		Encrypt    string `json:"Encrypt"`
	}{head.ToUserName, enc})
	if err != nil { // cannot happen: two strings
		return nil, nil, err
	}
	q := url.Values{
		"signature":     {msgcrypt.Signature(token, ts, nonce)},
		"timestamp":     {ts},
		"nonce":         {nonce},
		"encrypt_type":  {"aes"},
		"msg_signature": {msgcrypt.MsgSignature(token, ts, nonce, enc)},
	}
	return q, body, nil
}
