package msgcrypt

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"
)

// The mechanism that receives pushes. An Official Account's or Mini
// Program's message push (WeChat's 消息加解密说明) and a WeCom app's
// callback (WeCom's 加解密方案说明) are received the same way: the body is
// read up to a limit (RequestBody, ReadLimited), the msg_signature and the timestamp of
// the push URL are checked, the ciphertext is decrypted with the current
// EncodingAESKey or, during a key change, the previous one (Keyring.Open),
// and a reply is encrypted with the key that worked, under a fresh
// timestamp and nonce (NewNonce). Package core (Conf.ReadMessage) and
// package core/wecom (Callback.ReadMessage) are built on it.

// Defaults of the limits that guard an endpoint receiving pushes, shared by
// package core (Config) and package core/wecom (CallbackConfig).
const (
	// DefaultMaxMessageBytes is the default limit of a push's body: 1 MiB,
	// hundreds of times the largest push WeChat or WeCom sends.
	DefaultMaxMessageBytes = 1 << 20
	// DefaultTimestampWindow is the default Keyring.Window: how far a
	// push's timestamp may be from the clock, either way, before it is
	// refused as a replay.
	DefaultTimestampWindow = 5 * time.Minute
)

// errNoKey is returned by Keyring.Open for a Keyring without a current key.
var errNoKey = errors.New("msgcrypt: the Keyring has no current key")

// Keyring is a receiver's current key and, during a key change, its
// previous one, with the window that judges a push's timestamp: what
// WeChat's 消息加解密说明 and WeCom's 加解密方案说明 have a receiver check
// before it trusts a push. Both Crypters must have the same token and
// AppID (or WeCom receive id). A Keyring is a small value; it is safe for
// concurrent use when its Crypters and Now are.
type Keyring struct {
	// Current is the Crypter of the EncodingAESKey in use. Required: its
	// token verifies every msg_signature.
	Current *Crypter
	// Previous is the Crypter of the EncodingAESKey in use before Current,
	// while pushes encrypted with it may still come; nil outside a key
	// change.
	Previous *Crypter
	// Window is how far a push's timestamp may be from Now, either way,
	// before Open refuses it (ErrTimestamp), as CheckTimestamp judges it;
	// zero or less accepts any timestamp. Receivers default it to
	// DefaultTimestampWindow.
	Window time.Duration
	// Now is the clock that judges timestamps; nil means time.Now.
	Now func() time.Time
}

// Open verifies and decrypts the ciphertext of a push, in this order:
//
//  1. msgSignature, the push's msg_signature query parameter, must be
//     MsgSignature(token, timestamp, nonce, encrypt) with Current's token:
//     else an error wrapping ErrSignature, before anything is decrypted;
//  2. timestamp, in Unix seconds, must be within Window of Now: else an
//     error wrapping ErrTimestamp;
//  3. encrypt, the base64 content of the push's <Encrypt> (or of a WeCom
//     URL verification's echostr), must decrypt with Current or, when
//     Current fails as a ciphertext made with another key does (ErrPadding,
//     ErrLength or ErrAppID), with Previous: else Current's error
//     (ErrBase64, ErrBlockSize, ErrPadding, ErrLength, ErrAppID).
//
// On success it returns the plaintext, the Crypter that decrypted it (the
// one to encrypt the reply with) and whether that is Previous. A Keyring
// without Current gives an error. No error text contains a key or the
// token.
func (k Keyring) Open(msgSignature, timestamp, nonce, encrypt string) (plain []byte, used *Crypter, previous bool, err error) {
	if k.Current == nil {
		return nil, nil, false, errNoKey
	}
	if !VerifyMsgSignature(k.Current.token, timestamp, nonce, encrypt, msgSignature) {
		return nil, nil, false, fmt.Errorf("%w (msg_signature)", ErrSignature)
	}
	now := time.Now
	if k.Now != nil {
		now = k.Now
	}
	if err := CheckTimestamp(timestamp, now(), k.Window); err != nil {
		return nil, nil, false, err
	}
	plain, err = k.Current.Decrypt(encrypt)
	if err == nil {
		return plain, k.Current, false, nil
	}
	if k.Previous != nil && wrongKey(err) {
		if p, perr := k.Previous.Decrypt(encrypt); perr == nil {
			return p, k.Previous, true, nil
		}
	}
	return nil, nil, false, err
}

// wrongKey reports whether a decryption error is what a ciphertext made
// with another key gives, so that the previous key is worth a try.
func wrongKey(err error) bool {
	return errors.Is(err, ErrPadding) || errors.Is(err, ErrLength) || errors.Is(err, ErrAppID)
}

// ReadLimited reads r to its end and returns what it read, at most limit
// bytes: a push's body, read before it is verified. It reads no more than
// limit+1 bytes, and fails with an error wrapping ErrTooLarge as soon as
// it has read more than limit; a read error is returned wrapped. A limit of
// zero or less accepts only an empty r.
func ReadLimited(r io.Reader, limit int64) ([]byte, error) {
	limit = max(limit, 0)
	b, err := io.ReadAll(io.LimitReader(r, min(limit, math.MaxInt64-1)+1))
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

// RequestBody returns the body of r, a push's POST request, to be read
// with ReadLimited: r.Body, or http.NoBody for a request without one. A
// body whose Content-Length is over limit is refused before it is read,
// with an error wrapping ErrTooLarge.
func RequestBody(r *http.Request, limit int64) (io.Reader, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d, limit %d", ErrTooLarge, r.ContentLength, limit)
	}
	if r.Body == nil {
		return http.NoBody, nil
	}
	return r.Body, nil
}

// NewNonce returns a fresh random nonce for an encrypted reply: ten decimal
// digits from crypto/rand, like the nonces WeChat and WeCom send, for the
// nonce argument of EncryptMessage and EncryptJSONMessage.
func NewNonce() string {
	var b [8]byte
	rand.Read(b[:]) // never fails: crypto/rand crashes the program instead
	return fmt.Sprintf("%010d", binary.BigEndian.Uint64(b[:])%1e10)
}
