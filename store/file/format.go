package filestore

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/wechatconf/wechatconf/core"
)

// tempInfix is in the name of every temporary file: NAME.token.tmp-RANDOM.
const tempInfix = ".token.tmp-"

// readToken reads the token file at path, which must hold key. Its error
// wraps fs.ErrNotExist when there is no file, core.ErrCorrupt (and names the
// file) when it cannot be decoded.
func readToken(path, key string) (core.Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return core.Token{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, core.MaxEncodedToken+1))
	if err != nil {
		return core.Token{}, fmt.Errorf("reading %s: %w", path, err)
	}
	t, err := core.DecodeToken(b, key)
	if err != nil {
		return core.Token{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// keyOfFile returns the key kept in the token file at path (its "key"
// field), whatever the rest of the file holds, and false when there is
// none: the file is gone, unreadable, not JSON, or its key is not a valid
// key.
func keyOfFile(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, core.MaxEncodedToken+1))
	if err != nil || len(b) > core.MaxEncodedToken {
		return "", false
	}
	var k struct {
		Key *string `json:"key"`
	}
	if json.Unmarshal(b, &k) != nil || k.Key == nil || core.ValidateKey(*k.Key) != nil {
		return "", false
	}
	return *k.Key, true
}

// writeTemp writes the token file of key to a new temporary file in the
// Store's directory, synced to disk, and returns its name. The file is 0600.
func (s *Store) writeTemp(p paths, key string, t core.Token) (string, error) {
	b, err := core.EncodeToken(key, t)
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
