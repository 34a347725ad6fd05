package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// ErrCorrupt is wrapped by the error a store returns for a stored value it
// cannot decode: a truncated or hand-edited file, a value written by a
// newer format, another key's token. Get reports it (it does not wrap
// ErrNotFound); Refresh treats such a value as absent and replaces it.
var ErrCorrupt = errors.New("corrupt stored token")

// TokenFormatVersion is the version of the encoding EncodeToken writes, its
// "v" field. A later format bumps it; DecodeToken refuses a version it does
// not know rather than misread it.
const TokenFormatVersion = 1

// MaxEncodedToken bounds an encoded token: DecodeToken refuses a larger
// value as corrupt and EncodeToken refuses a token that would encode larger.
const MaxEncodedToken = 64 << 10

// encodedToken is the JSON of a stored token, format version 1.
type encodedToken struct {
	V         int     `json:"v"`
	Key       *string `json:"key"`
	Value     *string `json:"value"`
	ExpiresAt string  `json:"expires_at"` // RFC 3339 with nanoseconds, UTC
}

// EncodeToken returns the versioned encoding of t stored under key:
//
//	{"v":1,"key":"<key>","value":"<token>","expires_at":"<RFC 3339, ns, UTC>"}
//
// It is the format of the stores that keep a token as one blob (the file
// and etcd stores), offered to a new backend so that it need not invent one.
// The key is kept inside so that DecodeToken can tell a value copied from
// another key. Values must be non-empty (ErrEmptyToken) and valid UTF-8
// (WeChat's are ASCII).
func EncodeToken(key string, t Token) ([]byte, error) {
	if t.Value == "" {
		return nil, ErrEmptyToken
	}
	if !utf8.ValidString(t.Value) {
		return nil, errors.New("token value is not valid UTF-8")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(encodedToken{
		V:         TokenFormatVersion,
		Key:       &key,
		Value:     &t.Value,
		ExpiresAt: t.ExpiresAt.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return nil, err
	}
	if buf.Len() > MaxEncodedToken {
		return nil, fmt.Errorf("token value of %d bytes is too large", len(t.Value))
	}
	return buf.Bytes(), nil
}

// DecodeToken decodes a value written by EncodeToken that must hold key's
// token. Its errors wrap ErrCorrupt and say what is wrong.
func DecodeToken(b []byte, key string) (Token, error) {
	t, err := decodeToken(b, key)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return t, nil
}

func decodeToken(b []byte, key string) (Token, error) {
	switch {
	case len(b) == 0:
		return Token{}, errors.New("empty value")
	case len(b) > MaxEncodedToken:
		return Token{}, fmt.Errorf("larger than %d bytes", MaxEncodedToken)
	}
	var version struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(b, &version); err != nil {
		return Token{}, fmt.Errorf("not an encoded token (truncated, or written by something else?): %v", err)
	}
	switch {
	case version.V == nil:
		return Token{}, errors.New(`no format version ("v")`)
	case *version.V != TokenFormatVersion:
		return Token{}, fmt.Errorf("format version %d, this version of wechatconf reads version %d (written by a newer one?)", *version.V, TokenFormatVersion)
	}
	var et encodedToken
	if err := json.Unmarshal(b, &et); err != nil {
		return Token{}, err
	}
	switch {
	case et.Key == nil:
		return Token{}, errors.New(`no "key"`)
	case *et.Key != key:
		return Token{}, fmt.Errorf("holds key %q, want %q (copied from another key?)", *et.Key, key)
	case et.Value == nil:
		return Token{}, errors.New(`no "value"`)
	case *et.Value == "":
		return Token{}, errors.New(`empty "value"`)
	}
	exp, err := time.Parse(time.RFC3339Nano, et.ExpiresAt)
	if err != nil {
		return Token{}, fmt.Errorf(`bad "expires_at": %v`, err)
	}
	return Token{Value: *et.Value, ExpiresAt: exp}, nil
}
