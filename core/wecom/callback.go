package wecom

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// Defaults of the CallbackConfig fields that guard the callback endpoint,
// the same as package core's for an Official Account.
const (
	// DefaultMaxMessageBytes is the default CallbackConfig.MaxMessageBytes:
	// 1 MiB, hundreds of times the largest push WeCom sends
	// (msgcrypt.DefaultMaxMessageBytes).
	DefaultMaxMessageBytes = msgcrypt.DefaultMaxMessageBytes
	// DefaultTimestampWindow is the default CallbackConfig.TimestampWindow
	// (msgcrypt.DefaultTimestampWindow).
	DefaultTimestampWindow = msgcrypt.DefaultTimestampWindow
)

// ErrNoEchostr is returned by Callback.VerifyURL for a request without an
// echostr parameter: a push, not a URL verification.
var ErrNoEchostr = errors.New("wechatconf: wecom: verify URL: the request has no echostr")

// CallbackConfig is what NewCallback needs to receive the callbacks (回调)
// of a WeCom (企业微信) self-built app: the values of its "接收消息" page in
// the admin console.
//
// Token, EncodingAESKey and PreviousEncodingAESKey are core.Secret values
// (core.NewSecret(os.Getenv(…))): no rendering of a CallbackConfig — fmt's
// every verb, even on a CallbackConfig in an unexported field of another
// struct, log/slog, encoding/json — shows them; a secret that is set
// prints as "REDACTED". A CallbackConfig can be read from JSON (the
// secrets as JSON strings; Now is not encoded).
type CallbackConfig struct {
	// Token signs every callback: the msg_signature query parameter.
	// Required.
	Token core.Secret
	// EncodingAESKey is the 43-character key every callback is encrypted
	// with (WeCom has no plaintext mode). Required.
	EncodingAESKey core.Secret
	// PreviousEncodingAESKey is the EncodingAESKey in use before the
	// current one. While it is set, a callback that does not decrypt with
	// EncodingAESKey is tried with it, and the reply is encrypted with the
	// key that worked. Default none.
	PreviousEncodingAESKey core.Secret

	// CorpID is the enterprise's CorpID (企业ID, ww… or wx…): the receive
	// id that a self-built app's callbacks carry at the end of their
	// plaintext, which the Callback checks and puts at the end of its
	// replies. Required unless ReceiveID is set.
	CorpID string
	// ReceiveID replaces CorpID as the receive id when they differ: the
	// callbacks of an app built by a third party (服务商) carry its suite
	// id (SuiteID) instead. Default CorpID.
	ReceiveID string

	// MaxMessageBytes bounds the body of a callback; a larger body is
	// refused (msgcrypt.ErrTooLarge) without being read in full. Default
	// DefaultMaxMessageBytes (1 MiB); negative is invalid.
	MaxMessageBytes int64
	// TimestampWindow is how far a callback's or URL verification's
	// timestamp may be from the clock, either way, before it is refused as
	// a replay (msgcrypt.ErrTimestamp). Default DefaultTimestampWindow (5
	// minutes); a negative value disables the check.
	TimestampWindow time.Duration
	// Now is the clock that judges timestamps and stamps replies; nil
	// means time.Now. Tests set it to replay recorded callbacks.
	Now func() time.Time `json:"-"`

	// Dedup, if set, makes HandleMessage and Handler handle each callback
	// once across the fleet: WeCom's retries of a callback whose handler
	// finished, or is still running, start no second handler
	// (core.Dedup; build it with core.NewDedup over the fleet's store).
	// nil handles every delivery.
	Dedup *core.Dedup `json:"-"`
}

// Callback receives the callbacks of one WeCom app: it answers the URL
// verification, verifies and decrypts the messages and events WeCom
// pushes, and encrypts the replies. Build it with NewCallback; it is
// immutable and safe for concurrent use.
type Callback struct {
	// Only the Keyring's Crypters hold the secrets, behind pointers, so
	// that fmt's reflection, which reaches unexported fields, prints
	// addresses and never a token or a key.
	receiveID string
	keys      msgcrypt.Keyring // the token, the keys and the timestamp window
	maxBytes  int64
	now       func() time.Time
	dedup     *core.Dedup
}

// NewCallback checks cfg and returns its Callback. It fails if Token,
// EncodingAESKey, or both CorpID and ReceiveID are missing, if a key is not
// 43 base64 characters (the error wraps msgcrypt.ErrKey) or if
// MaxMessageBytes is negative. No error text contains a secret.
func NewCallback(cfg CallbackConfig) (*Callback, error) {
	c, err := newCallback(cfg)
	if err != nil {
		return nil, cbWrap(err, "wecom: NewCallback")
	}
	return c, nil
}

func newCallback(cfg CallbackConfig) (*Callback, error) {
	switch {
	case cfg.Token.IsZero():
		return nil, errors.New("CallbackConfig.Token is required (the Token of the app's 接收消息 settings)")
	case cfg.EncodingAESKey.IsZero():
		return nil, errors.New("CallbackConfig.EncodingAESKey is required (WeCom encrypts every callback)")
	case cfg.MaxMessageBytes < 0:
		return nil, fmt.Errorf("CallbackConfig.MaxMessageBytes must not be negative, got %d", cfg.MaxMessageBytes)
	}
	if cfg.PreviousEncodingAESKey.Reveal() == cfg.EncodingAESKey.Reveal() {
		cfg.PreviousEncodingAESKey = core.Secret{} // nothing to fall back on
	}
	rid := cfg.ReceiveID
	if rid == "" {
		rid = cfg.CorpID
	}
	if rid == "" {
		return nil, errors.New("CallbackConfig.CorpID (or ReceiveID) is required: it is the receive id every callback is encrypted for")
	}
	cur, err := msgcrypt.New(cfg.Token.Reveal(), cfg.EncodingAESKey.Reveal(), rid)
	if err != nil {
		return nil, fmt.Errorf("CallbackConfig.EncodingAESKey: %w", err)
	}
	c := &Callback{receiveID: rid, maxBytes: cfg.MaxMessageBytes, now: cfg.Now, dedup: cfg.Dedup}
	c.keys = msgcrypt.Keyring{Current: cur, Window: cfg.TimestampWindow}
	if !cfg.PreviousEncodingAESKey.IsZero() {
		if c.keys.Previous, err = msgcrypt.New(cfg.Token.Reveal(), cfg.PreviousEncodingAESKey.Reveal(), rid); err != nil {
			return nil, fmt.Errorf("CallbackConfig.PreviousEncodingAESKey: %w", err)
		}
	}
	if c.maxBytes == 0 {
		c.maxBytes = DefaultMaxMessageBytes
	}
	if c.keys.Window == 0 {
		c.keys.Window = DefaultTimestampWindow
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.keys.Now = c.now
	return c, nil
}

// ReceiveID returns the receive id the Callback checks in every callback
// and writes into every reply: CallbackConfig.ReceiveID, or the CorpID.
func (c *Callback) ReceiveID() string { return c.receiveID }

// String describes the Callback without its secrets.
func (c Callback) String() string {
	return fmt.Sprintf("wecom.Callback{ReceiveID:%q}", c.receiveID)
}

// GoString is String, so %#v shows no secret either.
func (c Callback) GoString() string { return c.String() }

// Message is a callback WeCom pushed to the app, verified and decrypted.
// Get one from Callback.ParseMessage or Callback.ReadMessage, and answer it
// with Reply.
type Message struct {
	// XML is the decrypted message. Unmarshal it with encoding/xml into the
	// type its MsgType (and Event) calls for.
	XML []byte
	// PreviousKey reports whether the callback decrypted only with
	// CallbackConfig.PreviousEncodingAESKey. Once no callback needs it, the
	// previous key can be removed.
	PreviousKey bool

	// The fields most callbacks have, read from XML for convenience. A
	// reply goes to FromUserName, from ToUserName.
	ToUserName   string // the CorpID
	FromUserName string // the sender's UserID ("sys" for some events)
	CreateTime   int64  // Unix seconds
	MsgType      string // text, image, voice, video, location, link, event…
	Event        string // for MsgType event: subscribe, enter_agent, click, change_contact…
	// MsgID is a message's MsgId (decimal); "" for an event. WeCom's
	// retries of a message carry the same one.
	MsgID string
	// AgentID is the app the callback is for, from the decrypted XML; 0
	// for callbacks without one (the contact-change events). The
	// <AgentID> of the encrypted envelope is not signed and is ignored.
	AgentID int64

	now func() time.Time  // the Callback's clock
	key *msgcrypt.Crypter // the key that decrypted the callback
}

// cbHeader is the part of a decrypted callback that Message keeps.
type cbHeader struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   string   `xml:"ToUserName"`
	FromUserName string   `xml:"FromUserName"`
	CreateTime   int64    `xml:"CreateTime"`
	MsgType      string   `xml:"MsgType"`
	Event        string   `xml:"Event"`
	AgentID      int64    `xml:"AgentID"`
	MsgID        string   `xml:"MsgId"`
}

// VerifyURL answers WeCom's URL verification, the GET request it sends
// when the callback URL is saved in the admin console:
//
//	GET /callback?msg_signature=…&timestamp=…&nonce=…&echostr=…
//
// Unlike an Official Account's, the echostr is encrypted. VerifyURL checks
// that msg_signature signs the token, timestamp, nonce and echostr, that
// the timestamp is within CallbackConfig.TimestampWindow, decrypts echostr
// for the receive id (with the previous key if need be) and returns the
// plaintext, which the handler writes back as the response body, alone.
// query is the URL's decoded query (r.URL.Query()). Errors wrap
// ErrNoEchostr, or the msgcrypt sentinel of the failure (ErrSignature,
// ErrTimestamp, ErrBase64, ErrBlockSize, ErrPadding, ErrLength, ErrAppID).
func (c *Callback) VerifyURL(query url.Values) (echo string, err error) {
	if !query.Has("echostr") {
		return "", ErrNoEchostr
	}
	enc := query.Get("echostr")
	plain, _, _, err := c.open(query, enc)
	if err != nil {
		return "", cbWrap(err, "wecom: verify URL")
	}
	return string(plain), nil
}

// ParseMessage reads, verifies and decrypts the callback WeCom pushed in r
// (a POST to the callback URL): see ReadMessage. A body longer than
// CallbackConfig.MaxMessageBytes is refused before it is read, by its
// Content-Length, or as soon as the limit is passed.
func (c *Callback) ParseMessage(r *http.Request) (*Message, error) {
	body, err := msgcrypt.RequestBody(r, c.maxBytes)
	if err != nil {
		return nil, cbWrap(err, "wecom: receive message")
	}
	return c.ReadMessage(r.URL.Query(), body)
}

// ReadMessage reads a callback from body (at most
// CallbackConfig.MaxMessageBytes) and returns it verified and decrypted;
// query holds the callback URL's parameters (msg_signature, timestamp,
// nonce). The body is WeCom's envelope:
//
//	<xml><ToUserName>…</ToUserName><Encrypt>…</Encrypt><AgentID>…</AgentID></xml>
//
// Every callback is encrypted: msg_signature must sign the token,
// timestamp, nonce and <Encrypt>; the timestamp must be within
// CallbackConfig.TimestampWindow of the clock; the ciphertext must decrypt
// with EncodingAESKey, or PreviousEncodingAESKey, for the receive id
// (CorpID, or ReceiveID); and the plaintext must be one <xml> element.
// Nothing is returned unless every check passes; each error wraps the
// msgcrypt sentinel of its failure (ErrTooLarge, ErrXML, ErrNoEncrypt,
// ErrSignature, ErrTimestamp, ErrBase64, ErrBlockSize, ErrPadding,
// ErrLength, ErrAppID).
func (c *Callback) ReadMessage(query url.Values, body io.Reader) (*Message, error) {
	m, err := c.readMessage(query, body)
	if err != nil {
		return nil, cbWrap(err, "wecom: receive message")
	}
	return m, nil
}

func (c *Callback) readMessage(query url.Values, body io.Reader) (*Message, error) {
	raw, err := msgcrypt.ReadLimited(body, c.maxBytes)
	if err != nil {
		return nil, err
	}
	env, err := msgcrypt.ParseEnvelope(raw)
	if err != nil {
		return nil, err
	}
	plain, used, previous, err := c.open(query, env.Encrypt)
	if err != nil {
		return nil, err
	}
	var h cbHeader
	if err := msgcrypt.DecodeXML(plain, &h); err != nil {
		return nil, fmt.Errorf("decrypted message: %w", err)
	}
	return &Message{
		XML: plain, PreviousKey: previous,
		ToUserName: h.ToUserName, FromUserName: h.FromUserName, CreateTime: h.CreateTime, MsgType: h.MsgType, Event: h.Event, AgentID: h.AgentID, MsgID: h.MsgID,
		now: c.now, key: used,
	}, nil
}

// open checks the msg_signature and timestamp of query over enc, then
// decrypts enc with the current key or, failing that as another key's
// ciphertext does, the previous one: msgcrypt.Keyring.Open.
func (c *Callback) open(query url.Values, enc string) (plain []byte, used *msgcrypt.Crypter, previous bool, err error) {
	return c.keys.Open(query.Get("msg_signature"), query.Get("timestamp"), query.Get("nonce"), enc)
}

// Reply returns the body that answers m with a passive reply (被动回复):
// plaintextXML encrypted with the key that decrypted m, for the receive id,
// in the envelope WeCom expects (<Encrypt>, <MsgSignature>, <TimeStamp>,
// <Nonce>), with a fresh timestamp and nonce. An empty reply and
// "success", which tell WeCom there is no reply, are returned as they are.
func (m *Message) Reply(plaintextXML []byte) ([]byte, error) {
	if len(plaintextXML) == 0 || string(plaintextXML) == "success" {
		return plaintextXML, nil
	}
	if m.key == nil || m.now == nil {
		return nil, errors.New("wechatconf: wecom: Reply: the Message did not come from ParseMessage or ReadMessage")
	}
	ts := strconv.FormatInt(m.now().Unix(), 10)
	out, err := m.key.EncryptMessage(plaintextXML, ts, msgcrypt.NewNonce())
	if err != nil {
		return nil, cbWrap(err, "wecom: reply")
	}
	return out, nil
}

// PushKey returns the key m is de-duplicated by: core.PushKey of its
// account — the CorpID (ToUserName) and the AgentID — and its MsgId or,
// for an event, its FromUserName, CreateTime, Event and a hash of its
// plaintext: an event's own content tells it apart, so that the many
// change_contact events WeCom sends from "sys" in one second are never
// taken for one.
func (m *Message) PushKey() string {
	account := m.ToUserName + "/" + strconv.FormatInt(m.AgentID, 10)
	return core.PushKey(account, m.MsgID, m.FromUserName, m.CreateTime, m.Event, m.XML)
}

// HandlerFunc handles one callback: it returns the plaintext reply XML,
// or nil or "success" for none. With CallbackConfig.Dedup it runs once
// per callback across the fleet, and its ctx ends when its claim is lost
// (context.Cause is core.ErrClaimLost). A handler that needs longer than
// WeCom's 5 s answers nil and sends its answer later through the message
// API (发送应用消息).
type HandlerFunc func(ctx context.Context, m *Message) (reply []byte, err error)

// HandleMessage runs h for the callback m (from ReadMessage or
// ParseMessage), once across the fleet when CallbackConfig.Dedup is set
// (core.Dedup.Do, by m.PushKey), and returns the body to answer WeCom with
// — m.Reply of h's reply, or "success" for a duplicate — and the outcome,
// whose HTTPStatus is the status to answer with (see core.HandlePush). A
// reply that cannot be encrypted does not undo the callback: h is not run
// again for a retry, and the error comes with no body (core.HandleReply).
func (c *Callback) HandleMessage(ctx context.Context, m *Message, h HandlerFunc) ([]byte, core.PushOutcome, error) {
	return core.HandleReply(ctx, c.dedup, m.PushKey(), func(ctx context.Context) ([]byte, error) { return h(ctx, m) }, m.Reply)
}

// Handler returns the http.Handler of the callback URL: a GET is the URL
// verification (VerifyURL), a POST a callback (ParseMessage, then
// HandleMessage with h), answered with the outcome's HTTPStatus and body;
// one that does not verify is answered 400. h's context is not ended by
// WeCom hanging up after 5 s.
func (c *Callback) Handler(h HandlerFunc) http.Handler {
	return core.PushHTTPHandler(c.VerifyURL, c.ParseMessage, func(ctx context.Context, m *Message) ([]byte, core.PushOutcome, error) {
		return c.HandleMessage(ctx, m, h)
	})
}

// CallbackError is the error of every Callback operation that fails, and
// of NewCallback, except ErrNoEchostr: Op names the operation, Err the
// cause, which wraps the msgcrypt sentinel of the failure. Its text is
// "wechatconf: <Op>: <Err>", with "wechatconf: " once.
type CallbackError struct {
	Op  string // "wecom: verify URL", "wecom: receive message", "wecom: reply" or "wecom: NewCallback"
	Err error
}

// cbPrefix starts the text of every error.
const cbPrefix = "wechatconf: "

// Error reads "wechatconf: wecom: <op>: <the msgcrypt error>".
func (e *CallbackError) Error() string {
	return cbPrefix + e.Op + ": " + strings.TrimPrefix(e.Err.Error(), cbPrefix)
}

// Unwrap returns the cause.
func (e *CallbackError) Unwrap() error { return e.Err }

func cbWrap(err error, op string) error { return &CallbackError{Op: op, Err: err} }
