package msgcrypt

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// The JSON data format. A Mini Program's message push (消息推送) can be
// configured with the data format XML or JSON; in JSON the encrypted push
// is the object {"ToUserName":"gh_…","Encrypt":"…"} and its plaintext a
// JSON object with the same fields as the XML (ToUserName, FromUserName,
// CreateTime, MsgType, Event, …). The cryptography and the signatures are
// those of the XML format: msg_signature covers the token, timestamp,
// nonce and the Encrypt string.

// ErrJSON is returned when a body that should be a JSON object is not a
// single well-formed one.
var ErrJSON = errors.New("msgcrypt: body is not a well-formed JSON object")

// DecodeJSON unmarshals body, which must be exactly one JSON object (with
// optional surrounding space), into v as encoding/json does. Anything else,
// trailing data included, gives ErrJSON.
func DecodeJSON(body []byte, v any) error {
	t := bytes.TrimSpace(body)
	if len(t) == 0 || t[0] != '{' {
		return ErrJSON
	}
	d := json.NewDecoder(bytes.NewReader(t))
	if err := d.Decode(v); err != nil {
		return ErrJSON
	}
	if _, err := d.Token(); err != io.EOF {
		return ErrJSON
	}
	return nil
}

// envelopeJSON is the wire form of a JSON push envelope.
type envelopeJSON struct {
	ToUserName string `json:"ToUserName"`
	Encrypt    string `json:"Encrypt"`
}

// ParseJSONEnvelope reads the envelope of an encrypted push in the JSON
// data format, {"ToUserName":"…","Encrypt":"…"}. It returns ErrJSON if
// body is not a single JSON object (or its fields are not strings) and
// ErrNoEncrypt if it has no (or an empty) Encrypt.
func ParseJSONEnvelope(body []byte) (Envelope, error) {
	var e envelopeJSON
	if err := DecodeJSON(body, &e); err != nil {
		return Envelope{}, err
	}
	if e.Encrypt == "" {
		return Envelope{}, ErrNoEncrypt
	}
	return Envelope{ToUserName: e.ToUserName, Encrypt: e.Encrypt}, nil
}

// DecryptJSONMessage is DecryptMessage for a push in the JSON data format.
func (c *Crypter) DecryptJSONMessage(msgSignature, timestamp, nonce string, body []byte) ([]byte, error) {
	env, err := ParseJSONEnvelope(body)
	if err != nil {
		return nil, err
	}
	if !VerifyMsgSignature(c.token, timestamp, nonce, env.Encrypt, msgSignature) {
		return nil, ErrSignature
	}
	return c.Decrypt(env.Encrypt)
}

// EncryptJSONMessage is EncryptMessage for the JSON data format: it
// returns the encrypted reply as MarshalJSONReply writes it.
func (c *Crypter) EncryptJSONMessage(reply []byte, timestamp, nonce string) ([]byte, error) {
	enc, err := c.Encrypt(reply)
	if err != nil {
		return nil, err
	}
	return MarshalJSONReply(enc, MsgSignature(c.token, timestamp, nonce, enc), timestamp, nonce), nil
}

// MarshalJSONReply returns the JSON of an encrypted reply in the JSON data
// format, the four fields of the XML reply:
//
//	{"Encrypt":"…","MsgSignature":"…","TimeStamp":1713424427,"Nonce":"…"}
//
// TimeStamp is written as a number when timestamp is a decimal integer, as
// a string otherwise.
func MarshalJSONReply(encrypt, msgSignature, timestamp, nonce string) []byte {
	var ts json.RawMessage
	if _, err := strconv.ParseInt(timestamp, 10, 64); err == nil && json.Valid([]byte(timestamp)) {
		ts = json.RawMessage(timestamp)
	} else {
		ts, _ = json.Marshal(timestamp) // a string always marshals
	}
	b, _ := json.Marshal(struct { // cannot fail: strings and a valid RawMessage
		Encrypt      string          `json:"Encrypt"`
		MsgSignature string          `json:"MsgSignature"`
		TimeStamp    json.RawMessage `json:"TimeStamp"`
		Nonce        string          `json:"Nonce"`
	}{encrypt, msgSignature, ts, nonce})
	return b
}
