// Package msgcrypt encrypts, decrypts and signs the messages WeChat pushes
// to an Official Account server: Tencent's WXBizMsgCrypt scheme, with the
// URL signature and the msg_signature.
//
//	c, err := msgcrypt.New(token, encodingAESKey, appID)
//	plain, err := c.DecryptMessage(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
//	reply, err := c.EncryptMessage(replyXML, timestamp, nonce)
//
// The scheme: the key is the 43-character EncodingAESKey decoded as base64
// (32 bytes); messages are AES-256-CBC encrypted with the first 16 bytes of
// the key as IV, over 16 random bytes ‖ the 4-byte big-endian length of the
// message ‖ the message ‖ the AppID, PKCS#7-padded to a 32-byte block. The
// msg_signature is the hex SHA-1 of the sorted concatenation of the token,
// timestamp, nonce and ciphertext; the URL signature the same without the
// ciphertext.
//
// Every failure has its own sentinel error (ErrSignature, ErrBase64,
// ErrBlockSize, ErrPadding, ErrLength, ErrAppID, …) for errors.Is. Verify the
// msg_signature before decrypting (DecryptMessage does): the distinct
// decryption errors would otherwise tell an attacker about the plaintext of
// a ciphertext they crafted. No error text contains the key or the token.
//
// Receiving a push takes, besides the cryptography, a size limit
// (ReadLimited), a replay window and a key change (Keyring, whose Open
// verifies the msg_signature and the timestamp and decrypts with the
// current or the previous key), and a fresh nonce for the reply
// (NewNonce): the one mechanism on which package core receives the pushes
// of an Official Account or Mini Program (with the three encryption modes)
// and package core/wecom the callbacks of a WeCom app. Use msgcrypt
// directly when only the cryptography is needed.
package msgcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// EncodingAESKeyLen is the length of an EncodingAESKey: 43 base64
	// characters, which decode to a 32-byte AES-256 key.
	EncodingAESKeyLen = 43
	// BlockSize is the PKCS#7 padding block of WXBizMsgCrypt: 32 bytes,
	// not the AES block size of 16.
	BlockSize = 32
	// RandomLen is the length of the random prefix of every plaintext.
	RandomLen = 16

	lenLen = 4 // the big-endian length field after the random prefix
)

// Errors returned by this package, and wrapped by package core, for
// errors.Is. Their texts never contain a key or a token.
var (
	// ErrKey is returned by New and DecodeKey when an EncodingAESKey is not
	// 43 base64 characters decoding to 32 bytes.
	ErrKey = errors.New("msgcrypt: EncodingAESKey must be 43 base64 characters decoding to 32 bytes")
	// ErrSignature is returned when a signature or msg_signature does not
	// match (including when it is missing).
	ErrSignature = errors.New("msgcrypt: signature mismatch")
	// ErrBase64 is returned when a ciphertext is not standard base64.
	ErrBase64 = errors.New("msgcrypt: ciphertext is not valid base64")
	// ErrBlockSize is returned when a ciphertext is empty or its length is
	// not a multiple of the AES block size.
	ErrBlockSize = errors.New("msgcrypt: ciphertext length is not a positive multiple of the AES block size")
	// ErrPadding is returned when the decrypted PKCS#7 padding is invalid: a
	// padding byte of 0 or above 32, or padding bytes that differ. It is
	// also what a ciphertext made with another key usually gives.
	ErrPadding = errors.New("msgcrypt: invalid PKCS#7 padding")
	// ErrLength is returned when the plaintext is too short for its random
	// prefix and length field, or the length field points beyond it.
	ErrLength = errors.New("msgcrypt: message length field does not fit the plaintext")
	// ErrAppID is returned when the AppID at the end of the plaintext is not
	// the Crypter's: the message was encrypted for another account.
	ErrAppID = errors.New("msgcrypt: message is for another AppID")
	// ErrXML is returned when a body is not a single well-formed <xml>
	// element.
	ErrXML = errors.New("msgcrypt: body is not a well-formed <xml> document")
	// ErrNoEncrypt is returned when an encrypted message is required but
	// the body has no (or an empty) <Encrypt> element, or the push is
	// plaintext where only encrypted pushes are accepted.
	ErrNoEncrypt = errors.New("msgcrypt: message is not encrypted")
	// ErrEncryptType is returned when a push's encrypt_type query parameter
	// is neither "aes" nor "raw" (nor absent).
	ErrEncryptType = errors.New("msgcrypt: unknown encrypt_type")
	// ErrTooLarge is returned when a message or a request body exceeds its
	// size limit.
	ErrTooLarge = errors.New("msgcrypt: message too large")
	// ErrTimestamp is returned by CheckTimestamp when a timestamp is not a
	// Unix time or lies outside the accepted window (a replay).
	ErrTimestamp = errors.New("msgcrypt: timestamp outside the accepted window")
)

// Crypter encrypts and decrypts the messages of one Official Account with
// one EncodingAESKey. A Crypter is safe for concurrent use; build it with
// New.
type Crypter struct {
	// The token and the key sit behind a pointer, so that fmt, which
	// prints by reflection a *Crypter it reaches in an unexported field
	// (dereferencing it for a verb such as %s), shows an address and never
	// a secret.
	*crypter
}

type crypter struct {
	token string
	appID string
	block cipher.Block
	iv    [aes.BlockSize]byte
}

// New returns a Crypter for the Token, EncodingAESKey and AppID shown in
// the Official Account's admin console (基本配置 → 服务器配置). All three are
// required; a bad key gives ErrKey.
func New(token, encodingAESKey, appID string) (*Crypter, error) {
	switch {
	case token == "":
		return nil, errors.New("msgcrypt: the token is required")
	case appID == "":
		return nil, errors.New("msgcrypt: the AppID is required")
	}
	key, err := DecodeKey(encodingAESKey)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil { // unreachable: the key is 32 bytes
		return nil, ErrKey
	}
	c := &Crypter{&crypter{token: token, appID: appID, block: block}}
	copy(c.iv[:], key)
	return c, nil
}

// DecodeKey decodes a 43-character EncodingAESKey into its 32-byte AES key,
// as WeChat does: base64.StdEncoding of the key followed by "=". It returns
// ErrKey if the key is malformed.
func DecodeKey(encodingAESKey string) ([]byte, error) {
	if len(encodingAESKey) != EncodingAESKeyLen {
		return nil, ErrKey
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		return nil, ErrKey
	}
	return key, nil
}

// AppID returns the AppID the Crypter encrypts for and expects in the
// messages it decrypts.
func (c *Crypter) AppID() string { return c.appID }

// Format prints the Crypter as msgcrypt.Crypter{AppID:"…"}, whatever the
// verb, so that no fmt or log call shows its token or key.
func (c Crypter) Format(f fmt.State, verb rune) {
	appID := ""
	if c.crypter != nil {
		appID = c.appID
	}
	fmt.Fprintf(f, "msgcrypt.Crypter{AppID:%q}", appID)
}

// Encrypt encrypts msg for WeChat and returns the base64 ciphertext, the
// content of an <Encrypt> element. The random prefix comes from
// crypto/rand. Encrypt fails only with ErrTooLarge, for a message whose
// length does not fit the 4-byte length field.
func (c *Crypter) Encrypt(msg []byte) (string, error) {
	var random [RandomLen]byte
	rand.Read(random[:]) // never fails: crypto/rand crashes the program instead
	return c.EncryptWithRandom(random, msg)
}

// EncryptWithRandom is Encrypt with the random prefix given, for
// deterministic tests and for reproducing published samples. Production
// code uses Encrypt: a repeated prefix reveals which messages begin alike.
func (c *Crypter) EncryptWithRandom(random [RandomLen]byte, msg []byte) (string, error) {
	head := RandomLen + lenLen + len(c.appID)
	if uint64(len(msg)) > math.MaxUint32 || len(msg) > math.MaxInt-head-BlockSize {
		return "", fmt.Errorf("%w: %d bytes do not fit the 4-byte length field", ErrTooLarge, len(msg))
	}
	n := head + len(msg)
	pad := BlockSize - n%BlockSize // 1..32
	buf := make([]byte, n+pad)
	copy(buf, random[:])
	binary.BigEndian.PutUint32(buf[RandomLen:], uint32(len(msg)))
	copy(buf[RandomLen+lenLen:], msg)
	copy(buf[RandomLen+lenLen+len(msg):], c.appID)
	for i := n; i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(c.block, c.iv[:]).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf), nil
}

// Decrypt decrypts the content of an <Encrypt> element and returns the
// message. It checks, in order: the base64 (ErrBase64), the length
// (ErrBlockSize), the padding (ErrPadding), the length field (ErrLength) and
// the trailing AppID (ErrAppID). Verify the msg_signature first (see
// DecryptMessage).
func (c *Crypter) Decrypt(encrypt string) ([]byte, error) {
	buf, err := base64.StdEncoding.DecodeString(encrypt)
	if err != nil {
		return nil, ErrBase64
	}
	if len(buf) == 0 || len(buf)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w (%d bytes)", ErrBlockSize, len(buf))
	}
	cipher.NewCBCDecrypter(c.block, c.iv[:]).CryptBlocks(buf, buf)

	pad := int(buf[len(buf)-1])
	if pad == 0 || pad > BlockSize || pad > len(buf) {
		return nil, fmt.Errorf("%w: padding byte %d", ErrPadding, pad)
	}
	bad := 0
	for _, b := range buf[len(buf)-pad:] {
		bad |= int(b) ^ pad
	}
	if bad != 0 {
		return nil, fmt.Errorf("%w: padding bytes differ", ErrPadding)
	}
	buf = buf[:len(buf)-pad]

	if len(buf) < RandomLen+lenLen {
		return nil, fmt.Errorf("%w: %d bytes of plaintext", ErrLength, len(buf))
	}
	size := binary.BigEndian.Uint32(buf[RandomLen:])
	rest := buf[RandomLen+lenLen:]
	if uint64(size) > uint64(len(rest)) {
		return nil, fmt.Errorf("%w: length field %d, %d bytes left", ErrLength, size, len(rest))
	}
	msg, appID := rest[:size:size], rest[size:]
	if subtle.ConstantTimeCompare(appID, []byte(c.appID)) != 1 {
		return nil, fmt.Errorf("%w: got %s", ErrAppID, quote(appID))
	}
	return msg, nil
}

// Envelope holds the fields of an encrypted message's XML: the
// <Encrypt> element of a push, or the four elements of an encrypted reply.
type Envelope struct {
	ToUserName   string // a push names the account it is for; empty in replies
	Encrypt      string // the base64 ciphertext
	MsgSignature string // replies only: a push carries it in the URL query
	TimeStamp    string // replies only
	Nonce        string // replies only
}

// envelopeXML is the wire form of Envelope.
type envelopeXML struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   string   `xml:"ToUserName"`
	Encrypt      string   `xml:"Encrypt"`
	MsgSignature string   `xml:"MsgSignature"`
	TimeStamp    string   `xml:"TimeStamp"`
	Nonce        string   `xml:"Nonce"`
}

// ParseEnvelope reads the envelope of an encrypted push or reply. It
// returns ErrXML if body is not a single well-formed <xml> element and
// ErrNoEncrypt if it has no <Encrypt> (or an empty one).
func ParseEnvelope(body []byte) (Envelope, error) {
	var e envelopeXML
	if err := DecodeXML(body, &e); err != nil {
		return Envelope{}, err
	}
	if e.Encrypt == "" {
		return Envelope{}, ErrNoEncrypt
	}
	return Envelope{ToUserName: e.ToUserName, Encrypt: e.Encrypt, MsgSignature: e.MsgSignature, TimeStamp: e.TimeStamp, Nonce: e.Nonce}, nil
}

// DecodeXML unmarshals body, which must be exactly one well-formed XML
// element (with optional declaration, comments and surrounding space),
// into v as encoding/xml does. Anything else gives ErrXML, so that nothing
// outside the element v sees can slip through.
func DecodeXML(body []byte, v any) error {
	d := xml.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(v); err != nil {
		return ErrXML
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return ErrXML
		}
		switch t := tok.(type) {
		case xml.Comment, xml.ProcInst:
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return ErrXML
			}
		default:
			return ErrXML
		}
	}
}

// DecryptMessage verifies and decrypts a pushed message, as
// WXBizMsgCrypt's DecryptMsg: msgSignature, timestamp and nonce are the
// push's query parameters, body its XML. It returns ErrXML or ErrNoEncrypt
// for a body without ciphertext, ErrSignature if msgSignature does not
// match, and Decrypt's errors. It does not judge the timestamp: see
// CheckTimestamp.
func (c *Crypter) DecryptMessage(msgSignature, timestamp, nonce string, body []byte) ([]byte, error) {
	env, err := ParseEnvelope(body)
	if err != nil {
		return nil, err
	}
	if !VerifyMsgSignature(c.token, timestamp, nonce, env.Encrypt, msgSignature) {
		return nil, ErrSignature
	}
	return c.Decrypt(env.Encrypt)
}

// EncryptMessage encrypts a plaintext reply XML into the encrypted reply
// envelope WeChat expects, as WXBizMsgCrypt's EncryptMsg:
//
//	<xml><Encrypt><![CDATA[…]]></Encrypt><MsgSignature><![CDATA[…]]></MsgSignature><TimeStamp>…</TimeStamp><Nonce><![CDATA[…]]></Nonce></xml>
//
// timestamp (Unix seconds) and nonce should be fresh for each reply.
func (c *Crypter) EncryptMessage(reply []byte, timestamp, nonce string) ([]byte, error) {
	enc, err := c.Encrypt(reply)
	if err != nil {
		return nil, err
	}
	return MarshalReply(enc, MsgSignature(c.token, timestamp, nonce, enc), timestamp, nonce), nil
}

// MarshalReply returns the XML of an encrypted reply with the given
// fields, already computed:
//
//	<xml><Encrypt><![CDATA[…]]></Encrypt><MsgSignature><![CDATA[…]]></MsgSignature><TimeStamp>…</TimeStamp><Nonce><![CDATA[…]]></Nonce></xml>
func MarshalReply(encrypt, msgSignature, timestamp, nonce string) []byte {
	var b bytes.Buffer
	b.Grow(len(encrypt) + len(msgSignature) + len(timestamp) + len(nonce) + 150)
	b.WriteString("<xml><Encrypt>")
	writeCDATA(&b, encrypt)
	b.WriteString("</Encrypt><MsgSignature>")
	writeCDATA(&b, msgSignature)
	b.WriteString("</MsgSignature><TimeStamp>")
	xml.EscapeText(&b, []byte(timestamp)) // a bytes.Buffer never fails
	b.WriteString("</TimeStamp><Nonce>")
	writeCDATA(&b, nonce)
	b.WriteString("</Nonce></xml>")
	return b.Bytes()
}

// writeCDATA writes s as a CDATA section, split where s contains "]]>".
func writeCDATA(b *bytes.Buffer, s string) {
	b.WriteString("<![CDATA[")
	b.WriteString(strings.ReplaceAll(s, "]]>", "]]]]><![CDATA[>"))
	b.WriteString("]]>")
}

// Signature returns the URL signature WeChat puts in the signature query
// parameter: the hex SHA-1 of the sorted concatenation of token,
// timestamp and nonce.
func Signature(token, timestamp, nonce string) string {
	parts := [...]string{token, timestamp, nonce}
	return sign(parts[:])
}

// MsgSignature returns the signature of an encrypted message, the
// msg_signature query parameter of a push and the <MsgSignature> of a
// reply: the hex SHA-1 of the sorted concatenation of token, timestamp,
// nonce and the base64 ciphertext.
func MsgSignature(token, timestamp, nonce, encrypt string) string {
	parts := [...]string{token, timestamp, nonce, encrypt}
	return sign(parts[:])
}

// VerifySignature reports whether signature is the URL signature of
// token, timestamp and nonce, comparing in constant time. An empty token
// never verifies.
func VerifySignature(token, timestamp, nonce, signature string) bool {
	return token != "" && equal(signature, Signature(token, timestamp, nonce))
}

// VerifyMsgSignature reports whether msgSignature is the msg_signature of
// token, timestamp, nonce and encrypt, comparing in constant time. An empty
// token never verifies.
func VerifyMsgSignature(token, timestamp, nonce, encrypt, msgSignature string) bool {
	return token != "" && equal(msgSignature, MsgSignature(token, timestamp, nonce, encrypt))
}

func sign(parts []string) string {
	slices.Sort(parts)
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	buf := make([]byte, 0, n)
	for _, p := range parts {
		buf = append(buf, p...)
	}
	sum := sha1.Sum(buf)
	var out [2 * sha1.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

func equal(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// CheckTimestamp returns nil if timestamp, in Unix seconds, is within
// window of now, and an error wrapping ErrTimestamp otherwise (or if it is
// not a number). A window of zero or less accepts any timestamp.
func CheckTimestamp(timestamp string, now time.Time, window time.Duration) error {
	if window <= 0 {
		return nil
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not a Unix time", ErrTimestamp, quote([]byte(timestamp)))
	}
	// Sub saturates instead of overflowing, so compare both ways rather
	// than negate.
	if d := now.Sub(time.Unix(ts, 0)); d > window || d < -window {
		return fmt.Errorf("%w: %d is %v from now (window %v)", ErrTimestamp, ts, d.Round(time.Second), window)
	}
	return nil
}

// quote returns b quoted for an error message, cut to a readable length.
func quote(b []byte) string {
	const max = 40
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}
