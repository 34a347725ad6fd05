package filestore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unicode/utf8"

	"github.com/wechatconf/wechatconf/core"
)

// formatVersion is the version of the token file format this package
// writes, the "v" field. A later format bumps it; this package refuses a
// version it does not know rather than misread it.
const formatVersion = 1

// maxTokenFile bounds a token file: a larger file is corrupt, and a token
// that would encode larger is refused.
const maxTokenFile = 1 << 20

// tempInfix is in the name of every temporary file: NAME.token.tmp-RANDOM.
const tempInfix = ".token.tmp-"

// errCorrupt is wrapped by the errors of a token file that cannot be
// decoded.
var errCorrupt = errors.New("corrupt token file")

// tokenFile is the JSON of a token file, format version 1.
type tokenFile struct {
	V         int     `json:"v"`
	Key       *string `json:"key"`
	Value     *string `json:"value"`
	ExpiresAt string  `json:"expires_at"` // RFC 3339 with nanoseconds, UTC
}

// encodeToken returns the content of the token file of key.
func encodeToken(key string, t core.Token) ([]byte, error) {
	if !utf8.ValidString(t.Value) {
		return nil, errors.New("token value is not valid UTF-8; the file store keeps UTF-8 values only")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(tokenFile{
		V:         formatVersion,
		Key:       &key,
		Value:     &t.Value,
		ExpiresAt: t.ExpiresAt.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return nil, err
	}
	if buf.Len() > maxTokenFile {
		return nil, fmt.Errorf("token value of %d bytes is too large", len(t.Value))
	}
	return buf.Bytes(), nil
}

// readToken reads the token file at path, which must hold key. Its error
// wraps fs.ErrNotExist when there is no file, errCorrupt (and names the
// file) when it cannot be decoded.
func readToken(path, key string) (core.Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return core.Token{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return core.Token{}, fmt.Errorf("reading %s: %w", path, err)
	}
	t, err := decodeToken(b, key)
	if err != nil {
		return core.Token{}, fmt.Errorf("%s: %w: %v", path, errCorrupt, err)
	}
	return t, nil
}

// decodeToken decodes the content of a token file that must hold key.
func decodeToken(b []byte, key string) (core.Token, error) {
	switch {
	case len(b) == 0:
		return core.Token{}, errors.New("empty file")
	case len(b) > maxTokenFile:
		return core.Token{}, fmt.Errorf("larger than %d bytes", maxTokenFile)
	}
	var tf tokenFile
	if err := json.Unmarshal(b, &tf); err != nil {
		var version struct {
			V int `json:"v"`
		}
		if json.Unmarshal(b, &version) == nil && version.V != formatVersion {
			return core.Token{}, errVersion(version.V)
		}
		return core.Token{}, fmt.Errorf("not a token file (truncated?): %v", err)
	}
	switch {
	case tf.V != formatVersion:
		return core.Token{}, errVersion(tf.V)
	case tf.Key == nil:
		return core.Token{}, errors.New(`no "key"`)
	case *tf.Key != key:
		return core.Token{}, fmt.Errorf("holds key %q, want %q (copied from another key?)", *tf.Key, key)
	case tf.Value == nil:
		return core.Token{}, errors.New(`no "value"`)
	}
	exp, err := time.Parse(time.RFC3339Nano, tf.ExpiresAt)
	if err != nil {
		return core.Token{}, fmt.Errorf(`bad "expires_at": %v`, err)
	}
	return core.Token{Value: *tf.Value, ExpiresAt: exp}, nil
}

// errVersion is the error of a token file of format version v, which this
// package does not read.
func errVersion(v int) error {
	if v == 0 {
		return errors.New(`no format version ("v")`)
	}
	return fmt.Errorf("format version %d, this filestore reads version %d (written by a newer one?)", v, formatVersion)
}

// writeTemp writes the token file of key to a new temporary file in the
// Store's directory, synced to disk, and returns its name. The file is 0600.
func (s *Store) writeTemp(p paths, key string, t core.Token) (string, error) {
	b, err := encodeToken(key, t)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(s.dir, p.base+tempInfix+"*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// install renames the temporary file tmp over the token file and syncs the
// directory, so that the new token survives a crash of the machine. On
// error tmp is removed.
func (s *Store) install(tmp string, p paths) error {
	if err := replaceFile(tmp, p.token); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(s.dir)
}
