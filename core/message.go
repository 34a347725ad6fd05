package core

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// Defaults of the Config fields that guard the message endpoint.
const (
	// DefaultMaxMessageBytes is the default Config.MaxMessageBytes: 1 MiB,
	// hundreds of times the largest push WeChat sends
	// (msgcrypt.DefaultMaxMessageBytes).
	DefaultMaxMessageBytes = msgcrypt.DefaultMaxMessageBytes
	// DefaultTimestampWindow is the default Config.TimestampWindow
	// (msgcrypt.DefaultTimestampWindow).
	DefaultTimestampWindow = msgcrypt.DefaultTimestampWindow
)

// ErrNoEchostr is returned by VerifyURL for a request without an echostr
// parameter: a push, not a URL verification.
var ErrNoEchostr = errors.New("wechatconf: verify URL: the request has no echostr")

// Message is a message WeChat pushed to the server, verified and, if it
// came encrypted, decrypted. Get one from Conf.ParseMessage or
// Conf.ReadMessage, and answer it with Reply.
type Message struct {
	// XML is the plaintext message, as WeChat sent it or as it decrypted.
	// Unmarshal it with encoding/xml into the type its MsgType calls for.
	// For a push in the JSON data format (JSON is true) it holds the
	// plaintext JSON object instead; Unmarshal reads either.
	XML []byte
	// JSON reports whether the push came in the JSON data format, which a
	// Mini Program's message push can be configured with instead of XML.
	// Reply then expects a JSON reply and encrypts it into a JSON envelope.
	JSON bool
	// Encrypted reports whether the push was encrypted; if so, Reply
	// encrypts the reply.
	Encrypted bool
	// PreviousKey reports whether the push decrypted only with
	// Config.PreviousEncodingAESKey. Once no push needs it, the previous
	// key can be removed.
	PreviousKey bool

	// The fields every message has, read from XML for convenience. A reply
	// goes to FromUserName, from ToUserName.
	ToUserName   string // the Official Account or Mini Program (its original ID, gh_…)
	FromUserName string // the sender's OpenID
	CreateTime   int64  // Unix seconds
	MsgType      string // text, image, voice, video, location, link, event…
	Event        string // for MsgType event: subscribe, CLICK, …
	// MsgID is a message's MsgId, a 64-bit integer in decimal; "" for an
	// event. WeChat's retries of a message carry the same one.
	MsgID string

	conf    *Conf
	crypter *msgcrypt.Crypter // the key that decrypted the push
}

// messageHeader is the part of a message's XML that Message keeps, plus
// the ciphertext of an encrypted push.
type messageHeader struct {
	ToUserName   string `xml:"ToUserName"`
	FromUserName string `xml:"FromUserName"`
	CreateTime   int64  `xml:"CreateTime"`
	MsgType      string `xml:"MsgType"`
	Event        string `xml:"Event"`
	MsgID        string `xml:"MsgId"`
	Encrypt      string `xml:"Encrypt"`
}

// xmlRoot wraps messageHeader to require the <xml> root WeChat uses.
type xmlRoot struct {
	XMLName xml.Name `xml:"xml"`
	messageHeader
}

// VerifyURL answers WeChat's URL verification, the GET request it sends
// when the server URL is configured in the admin console: it checks the
// signature, timestamp and nonce query parameters and returns echostr as it
// came, which the handler writes back as the response body. Errors wrap
// msgcrypt.ErrSignature, msgcrypt.ErrTimestamp (outside
// Config.TimestampWindow) or ErrNoEchostr; Config.Token is required.
func (c *Conf) VerifyURL(query url.Values) (echostr string, err error) {
	if c.cfg.Token.IsZero() {
		return "", errMissing("Token", "verify signatures")
	}
	if err := c.checkSignature(query); err != nil {
		return "", wrapErr(err, "verify URL")
	}
	if !query.Has("echostr") {
		return "", ErrNoEchostr
	}
	return query.Get("echostr"), nil
}

// ParseMessage reads, verifies and, if need be, decrypts the message WeChat
// pushed in r (a POST to the server URL): see ReadMessage. A body longer
// than Config.MaxMessageBytes is refused before it is read, by its
// Content-Length, or as soon as the limit is passed.
func (c *Conf) ParseMessage(r *http.Request) (*Message, error) {
	body, err := msgcrypt.RequestBody(r, c.maxMessageBytes())
	if err != nil {
		return nil, wrapErr(err, "receive message")
	}
	return c.ReadMessage(r.URL.Query(), body)
}

// ReadMessage reads a pushed message from body (at most
// Config.MaxMessageBytes) and returns it verified, and decrypted if it came
// encrypted; query holds the push URL's parameters. What is accepted
// depends on Config.EncryptMode:
//
//   - Normal: a plaintext push, whose signature parameter is checked. (An
//     encrypted push is handled as in compatible mode if an
//     EncodingAESKey is configured, as while the mode is being changed.)
//   - Compatible: a push with encrypt_type=aes is verified with
//     msg_signature and decrypted; a plaintext one is checked with
//     signature.
//   - Safe: only encrypted pushes, verified with msg_signature and
//     decrypted; a plaintext push is refused (msgcrypt.ErrNoEncrypt).
//
// Decryption tries Config.EncodingAESKey, then
// Config.PreviousEncodingAESKey, and checks that the message is for
// Config.AppID.
//
// A body whose first non-space byte is '{' is a push in the JSON data
// format, which a Mini Program's message push can be configured with: the
// plaintext is a JSON object and the encrypted push the object
// {"ToUserName":"…","Encrypt":"…"}. It goes through the same checks (the
// signatures, the timestamp, the key and the AppID); the Message has JSON
// set, and its header fields are read from the JSON. The timestamp must be within Config.TimestampWindow of the
// Conf's clock. Nothing is returned unless every check passes; each error
// wraps the msgcrypt sentinel of its failure (ErrSignature, ErrTimestamp,
// ErrTooLarge, ErrXML, ErrJSON, ErrNoEncrypt, ErrEncryptType, ErrBase64,
// ErrBlockSize, ErrPadding, ErrLength, ErrAppID). Config.Token is required,
// and Config.EncodingAESKey for encrypted pushes.
func (c *Conf) ReadMessage(query url.Values, body io.Reader) (*Message, error) {
	m, err := c.readMessage(query, body)
	if err != nil {
		return nil, wrapErr(err, "receive message")
	}
	return m, nil
}

func (c *Conf) readMessage(query url.Values, body io.Reader) (*Message, error) {
	if c.cfg.Token.IsZero() {
		return nil, errMissing("Token", "verify signatures")
	}
	var encrypted bool
	switch t := query.Get("encrypt_type"); t {
	case "aes":
		encrypted = true
	case "", "raw":
	default:
		return nil, fmt.Errorf("%w %.20q", msgcrypt.ErrEncryptType, t)
	}
	if !encrypted && c.cfg.EncryptMode == Safe {
		return nil, fmt.Errorf("%w: a plaintext push in safe mode", msgcrypt.ErrNoEncrypt)
	}
	if encrypted {
		if _, _, err := c.crypters(); err != nil {
			return nil, err
		}
	} else if err := c.checkSignature(query); err != nil {
		return nil, err // before the body is read: it is not signed
	}
	raw, err := msgcrypt.ReadLimited(body, c.maxMessageBytes())
	if err != nil {
		return nil, err
	}
	if isJSON(raw) {
		return c.readJSONMessage(query, raw, encrypted)
	}
	var root xmlRoot
	if err := msgcrypt.DecodeXML(raw, &root); err != nil {
		return nil, err
	}
	if !encrypted {
		return c.newMessage(raw, root.messageHeader, nil, false), nil
	}

	enc := root.Encrypt
	if enc == "" {
		return nil, fmt.Errorf("%w: encrypt_type=aes but no <Encrypt>", msgcrypt.ErrNoEncrypt)
	}
	plain, used, previous, err := c.decryptPush(query, enc)
	if err != nil {
		return nil, err
	}
	var inner xmlRoot
	if err := msgcrypt.DecodeXML(plain, &inner); err != nil {
		return nil, fmt.Errorf("decrypted message: %w", err)
	}
	return c.newMessage(plain, inner.messageHeader, used, previous), nil
}

// decryptPush opens the ciphertext enc of a push with the Conf's keys
// (msgcrypt.Keyring.Open): it verifies the msg_signature and the timestamp
// of query and decrypts enc with the current key or, failing that, the
// previous one, which it returns as used.
func (c *Conf) decryptPush(query url.Values, enc string) (plain []byte, used *msgcrypt.Crypter, previous bool, err error) {
	cur, prev, err := c.crypters()
	if err != nil {
		return nil, nil, false, err
	}
	keys := msgcrypt.Keyring{Current: cur, Previous: prev, Window: c.cfg.TimestampWindow, Now: c.cfg.Now}
	return keys.Open(query.Get("msg_signature"), query.Get("timestamp"), query.Get("nonce"), enc)
}

func (c *Conf) newMessage(plain []byte, h messageHeader, used *msgcrypt.Crypter, previous bool) *Message {
	return &Message{
		XML: plain, Encrypted: used != nil, PreviousKey: previous,
		ToUserName: h.ToUserName, FromUserName: h.FromUserName, CreateTime: h.CreateTime, MsgType: h.MsgType, Event: h.Event, MsgID: h.MsgID,
		conf: c, crypter: used,
	}
}

// Reply returns the body that answers m: the plaintext reply XML itself
// for a plaintext push, and for an encrypted push (every push in safe mode)
// the encrypted envelope, made with the key that decrypted m, a fresh
// timestamp and nonce, and its MsgSignature. An empty reply and "success",
// which tell WeChat there is no reply, are returned as they are in every
// mode, as WeChat expects them.
//
// For a push in the JSON data format (m.JSON) the reply must be a JSON
// object too, or "success", or empty; anything else is refused, as WeChat
// expects a reply in the configured data format. An encrypted JSON push
// gets the JSON envelope {"Encrypt","MsgSignature","TimeStamp","Nonce"}
// (msgcrypt.MarshalJSONReply). A Mini Program answers most pushes with
// "success" and replies to users through the customer-service API.
func (m *Message) Reply(plaintextXML []byte) ([]byte, error) {
	if len(plaintextXML) == 0 || string(plaintextXML) == "success" {
		return plaintextXML, nil
	}
	if m.JSON && !json.Valid(plaintextXML) {
		return nil, fmt.Errorf("wechatconf: reply: %w: the push came in JSON, so must the reply", msgcrypt.ErrJSON)
	}
	if !m.Encrypted {
		return plaintextXML, nil
	}
	if m.crypter == nil || m.conf == nil {
		return nil, errors.New("wechatconf: Reply: the Message did not come from ParseMessage or ReadMessage")
	}
	ts := strconv.FormatInt(m.conf.now().Unix(), 10)
	encrypt := m.crypter.EncryptMessage
	if m.JSON {
		encrypt = m.crypter.EncryptJSONMessage
	}
	out, err := encrypt(plaintextXML, ts, msgcrypt.NewNonce())
	if err != nil {
		return nil, wrapErr(err, "reply")
	}
	return out, nil
}

// checkSignature checks a URL signature and its timestamp.
func (c *Conf) checkSignature(query url.Values) error {
	ts := query.Get("timestamp")
	if !msgcrypt.VerifySignature(c.cfg.Token.Reveal(), ts, query.Get("nonce"), query.Get("signature")) {
		return fmt.Errorf("%w (signature)", msgcrypt.ErrSignature)
	}
	return c.checkTimestamp(ts)
}

func (c *Conf) checkTimestamp(ts string) error {
	return msgcrypt.CheckTimestamp(ts, c.now(), c.cfg.TimestampWindow)
}

// crypters returns the Crypter of the current key and, if configured, of
// the previous one.
func (c *Conf) crypters() (cur, prev *msgcrypt.Crypter, err error) {
	if c.cfg.EncodingAESKey.IsZero() {
		if c.cfg.EncryptMode == Safe {
			return nil, nil, errMissing("EncodingAESKey", "receive messages in safe mode")
		}
		return nil, nil, errMissing("EncodingAESKey", "decrypt messages")
	}
	return c.crypt, c.prevCrypt, nil
}

// maxMessageBytes is Config.MaxMessageBytes, defaulted also for a Conf
// that was not built by New.
func (c *Conf) maxMessageBytes() int64 {
	if c.cfg.MaxMessageBytes > 0 {
		return c.cfg.MaxMessageBytes
	}
	return DefaultMaxMessageBytes
}
