package core

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// Defaults of the Config fields that guard the message endpoint.
const (
	// DefaultMaxMessageBytes is the default Config.MaxMessageBytes: 1 MiB,
	// hundreds of times the largest push WeChat sends.
	DefaultMaxMessageBytes = 1 << 20
	// DefaultTimestampWindow is the default Config.TimestampWindow.
	DefaultTimestampWindow = 5 * time.Minute
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
	if r.ContentLength > c.maxMessageBytes() {
		return nil, fmt.Errorf("wechatconf: receive message: %w: Content-Length %d, limit %d", msgcrypt.ErrTooLarge, r.ContentLength, c.maxMessageBytes())
	}
	if r.Body == nil {
		return c.ReadMessage(r.URL.Query(), http.NoBody)
	}
	return c.ReadMessage(r.URL.Query(), r.Body)
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
	raw, err := readLimited(body, c.maxMessageBytes())
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

// decryptPush verifies the msg_signature of the ciphertext enc of a push
// and its timestamp, and decrypts it with the current key or, failing
// that, the previous one, which it returns as used.
func (c *Conf) decryptPush(query url.Values, enc string) (plain []byte, used *msgcrypt.Crypter, previous bool, err error) {
	cur, prev, err := c.crypters()
	if err != nil {
		return nil, nil, false, err
	}
	ts, nonce := query.Get("timestamp"), query.Get("nonce")
	if !msgcrypt.VerifyMsgSignature(c.cfg.Token.Reveal(), ts, nonce, enc, query.Get("msg_signature")) {
		return nil, nil, false, fmt.Errorf("%w (msg_signature)", msgcrypt.ErrSignature)
	}
	if err := c.checkTimestamp(ts); err != nil {
		return nil, nil, false, err
	}
	plain, err = cur.Decrypt(enc)
	used = cur
	if err != nil && prev != nil && wrongKey(err) {
		if p, perr := prev.Decrypt(enc); perr == nil {
			plain, err, used, previous = p, nil, prev, true
		}
	}
	if err != nil {
		return nil, nil, false, err
	}
	return plain, used, previous, nil
}

func (c *Conf) newMessage(plain []byte, h messageHeader, used *msgcrypt.Crypter, previous bool) *Message {
	return &Message{
		XML: plain, Encrypted: used != nil, PreviousKey: previous,
		ToUserName: h.ToUserName, FromUserName: h.FromUserName, CreateTime: h.CreateTime, MsgType: h.MsgType, Event: h.Event,
		conf: c, crypter: used,
	}
}

// wrongKey reports whether a decryption error is what a ciphertext made
// with another key gives, so that the previous key is worth a try.
func wrongKey(err error) bool {
	return errors.Is(err, msgcrypt.ErrPadding) || errors.Is(err, msgcrypt.ErrLength) || errors.Is(err, msgcrypt.ErrAppID)
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
	out, err := encrypt(plaintextXML, ts, newNonce())
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

// readLimited reads r to its end, failing with msgcrypt.ErrTooLarge as
// soon as it has read more than limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: body over %d bytes", msgcrypt.ErrTooLarge, limit)
	}
	return b, nil
}

// newNonce returns a random nonce of ten digits, like WeChat's.
func newNonce() string {
	var b [8]byte
	rand.Read(b[:])
	return fmt.Sprintf("%010d", binary.BigEndian.Uint64(b[:])%1e10)
}
