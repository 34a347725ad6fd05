package etcdstore

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/wechatconf/wechatconf/core"
)

// formatVersion is the version of the stored value format this package
// writes, the "v" field. A later format bumps it; this package refuses a
// version it does not know rather than misread it.
const formatVersion = 1

// maxValue bounds a stored value: a larger one is corrupt, and a token that
// would encode larger is refused. etcd's own default request limit is
// 1.5 MiB.
const maxValue = 64 << 10

// errCorrupt is wrapped by the errors of a stored value that cannot be
// decoded.
var errCorrupt = errors.New("corrupt stored token")

// Key layout under the store's prefix P. A user key K is encoded with
// unpadded base64url (alphabet A–Z a–z 0–9 - _, no "/"), so that
//
//	P + "token/" + enc(K)        holds K's token, and
//	P + "lock/" + enc(K) + "/"   is the prefix of K's mutex queue
//	                             (concurrency.Mutex adds the "/" and then
//	                             the waiter's lease ID in hex).
//
// No key's queue prefix is a prefix of another key's: enc(K) never contains
// "/", so "P lock/enc(K)/" ends where enc(K) ends, whatever K looks like
// ("a" and "a/b", "{tag}" and "tag", 256-byte keys).
const (
	tokenSegment = "token/"
	lockSegment  = "lock/"
)

// encodeKey maps a user key to the key-safe segment of its etcd keys.
func encodeKey(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

// storedToken is the JSON of a stored token, format version 1.
type storedToken struct {
	V         int     `json:"v"`
	Key       *string `json:"key"`
	Value     *string `json:"value"`
	ExpiresAt string  `json:"expires_at"` // RFC 3339 with nanoseconds, UTC
}

// encodeToken returns the stored value of t under key.
func encodeToken(key string, t core.Token) ([]byte, error) {
	if !utf8.ValidString(t.Value) {
		return nil, errors.New("token value is not valid UTF-8; the etcd store keeps UTF-8 values only")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(storedToken{
		V:         formatVersion,
		Key:       &key,
		Value:     &t.Value,
		ExpiresAt: t.ExpiresAt.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return nil, err
	}
	if buf.Len() > maxValue {
		return nil, fmt.Errorf("token value of %d bytes is too large", len(t.Value))
	}
	return buf.Bytes(), nil
}

// decodeToken decodes a stored value that must hold key. Its error wraps
// errCorrupt.
func decodeToken(b []byte, key string) (core.Token, error) {
	t, err := decode(b, key)
	if err != nil {
		return core.Token{}, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	return t, nil
}

func decode(b []byte, key string) (core.Token, error) {
	switch {
	case len(b) == 0:
		return core.Token{}, errors.New("empty value")
	case len(b) > maxValue:
		return core.Token{}, fmt.Errorf("larger than %d bytes", maxValue)
	}
	var version struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(b, &version); err != nil {
		return core.Token{}, fmt.Errorf("not a stored token (written by something else?): %v", err)
	}
	switch {
	case version.V == nil:
		return core.Token{}, errors.New(`no format version ("v")`)
	case *version.V != formatVersion:
		return core.Token{}, fmt.Errorf("format version %d, this etcdstore reads version %d (written by a newer one?)", *version.V, formatVersion)
	}
	var st storedToken
	if err := json.Unmarshal(b, &st); err != nil {
		return core.Token{}, err
	}
	switch {
	case st.Key == nil:
		return core.Token{}, errors.New(`no "key"`)
	case *st.Key != key:
		return core.Token{}, fmt.Errorf("holds key %q, want %q (copied from another key?)", *st.Key, key)
	case st.Value == nil:
		return core.Token{}, errors.New(`no "value"`)
	}
	exp, err := time.Parse(time.RFC3339Nano, st.ExpiresAt)
	if err != nil {
		return core.Token{}, fmt.Errorf(`bad "expires_at": %v`, err)
	}
	return core.Token{Value: *st.Value, ExpiresAt: exp}, nil
}
