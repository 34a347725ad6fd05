package msgcrypt_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// at returns a clock stopped at the Unix time ts.
func at(t testing.TB, ts string) func() time.Time {
	t.Helper()
	var sec int64
	if _, err := fmt.Sscan(ts, &sec); err != nil {
		t.Fatal(err)
	}
	return func() time.Time { return time.Unix(sec, 0) }
}

// TestKeyringOpen tests that Open verifies and decrypts Tencent's sample
// push with the current key, falls back to the previous key only for a
// ciphertext made with another key, and checks the signature before the
// timestamp and both before decrypting.
func TestKeyringOpen(t *testing.T) {
	v := vectorA
	key := v.crypter(t)
	other, err := msgcrypt.New(v.token, randomKey(), v.appID)
	if err != nil {
		t.Fatal(err)
	}
	third, err := msgcrypt.New(v.token, randomKey(), v.appID)
	if err != nil {
		t.Fatal(err)
	}
	now := at(t, v.timestamp)
	window := msgcrypt.DefaultTimestampWindow

	for _, tt := range []struct {
		name         string
		keys         msgcrypt.Keyring
		sig, ts, enc string
		used         *msgcrypt.Crypter
		previous     bool
		err          error // nil: success
	}{
		{"current", msgcrypt.Keyring{Current: key, Window: window, Now: now}, v.msgSignature, v.timestamp, v.encrypt, key, false, nil},
		{"current with a previous key", msgcrypt.Keyring{Current: key, Previous: other, Window: window, Now: now}, v.msgSignature, v.timestamp, v.encrypt, key, false, nil},
		{"wrong key: fallback to previous", msgcrypt.Keyring{Current: other, Previous: key, Window: window, Now: now}, v.msgSignature, v.timestamp, v.encrypt, key, true, nil},
		{"wrong key, no previous", msgcrypt.Keyring{Current: other, Window: window, Now: now}, v.msgSignature, v.timestamp, v.encrypt, nil, false, errWrongKey},
		{"wrong key, wrong previous", msgcrypt.Keyring{Current: other, Previous: third, Window: window, Now: now}, v.msgSignature, v.timestamp, v.encrypt, nil, false, errWrongKey},
		{"bad signature", msgcrypt.Keyring{Current: key, Previous: key, Window: window, Now: now}, strings.Repeat("0", 40), v.timestamp, v.encrypt, nil, false, msgcrypt.ErrSignature},
		{"no signature", msgcrypt.Keyring{Current: key, Window: window, Now: now}, "", v.timestamp, v.encrypt, nil, false, msgcrypt.ErrSignature},
		{"bad signature before stale timestamp", msgcrypt.Keyring{Current: key, Window: window}, "x", v.timestamp, v.encrypt, nil, false, msgcrypt.ErrSignature},
		{"stale timestamp on the real clock", msgcrypt.Keyring{Current: key, Window: window}, v.msgSignature, v.timestamp, v.encrypt, nil, false, msgcrypt.ErrTimestamp},
		{"window 0 accepts any timestamp", msgcrypt.Keyring{Current: key}, v.msgSignature, v.timestamp, v.encrypt, key, false, nil},
		{"negative window accepts any timestamp", msgcrypt.Keyring{Current: key, Window: -1}, v.msgSignature, v.timestamp, v.encrypt, key, false, nil},
		{"timestamp just outside the window", msgcrypt.Keyring{Current: key, Window: window, Now: func() time.Time { return now().Add(window + time.Second) }}, v.msgSignature, v.timestamp, v.encrypt, nil, false, msgcrypt.ErrTimestamp},
		{"timestamp at the edge of the window", msgcrypt.Keyring{Current: key, Window: window, Now: func() time.Time { return now().Add(-window) }}, v.msgSignature, v.timestamp, v.encrypt, key, false, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plain, used, previous, err := tt.keys.Open(tt.sig, tt.ts, v.nonce, tt.enc)
			switch {
			case tt.err == nil:
				if err != nil || string(plain) != v.plain || used != tt.used || previous != tt.previous {
					t.Fatalf("Open = %q, %p, %v, %v; want the plaintext, %p, %v", plain, used, previous, err, tt.used, tt.previous)
				}
			case tt.err == errWrongKey:
				if !errors.Is(err, msgcrypt.ErrPadding) && !errors.Is(err, msgcrypt.ErrLength) && !errors.Is(err, msgcrypt.ErrAppID) {
					t.Fatalf("Open: %v, want ErrPadding, ErrLength or ErrAppID", err)
				}
			default:
				if !errors.Is(err, tt.err) {
					t.Fatalf("Open: %v, want %v", err, tt.err)
				}
			}
			if err != nil && (plain != nil || used != nil || previous) {
				t.Errorf("Open failed with results: %q, %p, %v", plain, used, previous)
			}
			if err != nil && (strings.Contains(err.Error(), v.token) || strings.Contains(err.Error(), v.key)) {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}

// errWrongKey stands for the errors of a ciphertext made with another key.
var errWrongKey = errors.New("wrong key")

// TestKeyringOpenNoFallback tests that a ciphertext that fails for another
// reason than the key (bad base64, bad length) is not tried with the
// previous key: the current key's error is returned.
func TestKeyringOpenNoFallback(t *testing.T) {
	v := vectorA
	key := v.crypter(t)
	other, _ := msgcrypt.New(v.token, randomKey(), v.appID)
	keys := msgcrypt.Keyring{Current: other, Previous: key}
	for _, tt := range []struct {
		enc  string
		want error
	}{
		{"!!!!", msgcrypt.ErrBase64},
		{"AAAA", msgcrypt.ErrBlockSize},
	} {
		sig := msgcrypt.MsgSignature(v.token, v.timestamp, v.nonce, tt.enc)
		if _, _, _, err := keys.Open(sig, v.timestamp, v.nonce, tt.enc); !errors.Is(err, tt.want) {
			t.Errorf("Open(%q): %v, want %v", tt.enc, err, tt.want)
		}
	}
	// A previous key for another AppID does not open the push either.
	otherApp, _ := msgcrypt.New(v.token, v.key, "wx0000000000000000")
	keys = msgcrypt.Keyring{Current: other, Previous: otherApp}
	if _, _, _, err := keys.Open(v.msgSignature, v.timestamp, v.nonce, v.encrypt); err == nil {
		t.Error("Open with a previous key of another AppID succeeded")
	}
}

// TestKeyringOpenNoCurrent tests that a Keyring without Current fails,
// even with a Previous.
func TestKeyringOpenNoCurrent(t *testing.T) {
	v := vectorA
	for _, keys := range []msgcrypt.Keyring{{}, {Previous: v.crypter(t)}} {
		if plain, used, _, err := keys.Open(v.msgSignature, v.timestamp, v.nonce, v.encrypt); err == nil || plain != nil || used != nil {
			t.Errorf("Open without Current = %q, %p, %v; want an error", plain, used, err)
		}
	}
}

// TestKeyringRoundTrip tests that a reply encrypted with the key Open
// reports, under NewNonce, opens again with the same Keyring.
func TestKeyringRoundTrip(t *testing.T) {
	cur, _ := msgcrypt.New("token", randomKey(), "ww0123456789abcdef")
	prev, _ := msgcrypt.New("token", randomKey(), "ww0123456789abcdef")
	ts := "1700000000"
	keys := msgcrypt.Keyring{Current: cur, Previous: prev, Window: msgcrypt.DefaultTimestampWindow, Now: at(t, ts)}
	for _, sender := range []*msgcrypt.Crypter{cur, prev} {
		nonce := msgcrypt.NewNonce()
		out, err := sender.EncryptMessage([]byte("<xml><Content>hi</Content></xml>"), ts, nonce)
		if err != nil {
			t.Fatal(err)
		}
		env, err := msgcrypt.ParseEnvelope(out)
		if err != nil {
			t.Fatal(err)
		}
		plain, used, previous, err := keys.Open(env.MsgSignature, env.TimeStamp, env.Nonce, env.Encrypt)
		if err != nil || string(plain) != "<xml><Content>hi</Content></xml>" || used != sender || previous != (sender == prev) {
			t.Errorf("Open = %q, %p, %v, %v; want the reply, %p", plain, used, previous, err, sender)
		}
	}
}

// TestCrypterPrintsNoSecret tests that fmt, reaching a Crypter by
// reflection in an unexported field (where it dereferences a pointer for a
// verb it does not fit, such as %s), shows neither the token nor the key.
func TestCrypterPrintsNoSecret(t *testing.T) {
	v := vectorD
	c := v.crypter(t)
	key, _ := msgcrypt.DecodeKey(v.key)
	iv := strings.Trim(fmt.Sprint(key[:16]), "[]")
	type hidden struct {
		c    *msgcrypt.Crypter
		keys msgcrypt.Keyring
	}
	h := hidden{c, msgcrypt.Keyring{Current: c, Previous: c}}
	for _, val := range []any{c, *c, h, &h, h.keys, &h.keys, []*msgcrypt.Crypter{c}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			s := fmt.Sprintf(verb, val)
			if strings.Contains(s, v.token) || strings.Contains(s, v.key) || strings.Contains(s, iv) {
				t.Errorf("%s of %T = %s: shows a secret", verb, val, s)
			}
		}
	}
}

// TestReadLimited tests ReadLimited at limit-1, limit and limit+1 bytes,
// and that it stops reading after limit+1 bytes.
func TestReadLimited(t *testing.T) {
	const limit = 100
	for _, tt := range []struct {
		n  int
		ok bool
	}{
		{0, true},
		{limit - 1, true},
		{limit, true},
		{limit + 1, false},
		{10 * limit, false},
	} {
		body := bytes.Repeat([]byte("x"), tt.n)
		got, err := msgcrypt.ReadLimited(bytes.NewReader(body), limit)
		if tt.ok {
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("ReadLimited(%d bytes, %d) = %d bytes, %v; want them all", tt.n, limit, len(got), err)
			}
			continue
		}
		if !errors.Is(err, msgcrypt.ErrTooLarge) || got != nil {
			t.Errorf("ReadLimited(%d bytes, %d) = %d bytes, %v; want ErrTooLarge", tt.n, limit, len(got), err)
		}
	}

	// An endless body is refused after limit+1 bytes.
	r := &countingReader{}
	if _, err := msgcrypt.ReadLimited(r, limit); !errors.Is(err, msgcrypt.ErrTooLarge) {
		t.Errorf("ReadLimited(endless) = %v, want ErrTooLarge", err)
	}
	if r.n > limit+1 {
		t.Errorf("ReadLimited read %d bytes of an endless body, want at most %d", r.n, limit+1)
	}

	// Limits of zero and less accept only an empty body.
	for _, l := range []int64{0, -1} {
		if got, err := msgcrypt.ReadLimited(strings.NewReader(""), l); err != nil || len(got) != 0 {
			t.Errorf("ReadLimited(empty, %d) = %q, %v", l, got, err)
		}
		if _, err := msgcrypt.ReadLimited(strings.NewReader("x"), l); !errors.Is(err, msgcrypt.ErrTooLarge) {
			t.Errorf("ReadLimited(1 byte, %d) = %v, want ErrTooLarge", l, err)
		}
	}
	// The largest limit does not overflow.
	if got, err := msgcrypt.ReadLimited(strings.NewReader("abc"), 1<<63-1); err != nil || string(got) != "abc" {
		t.Errorf("ReadLimited(abc, MaxInt64) = %q, %v", got, err)
	}

	// A read error is returned wrapped.
	boom := errors.New("boom")
	if _, err := msgcrypt.ReadLimited(iotest.ErrReader(boom), limit); !errors.Is(err, boom) || errors.Is(err, msgcrypt.ErrTooLarge) {
		t.Errorf("ReadLimited(failing reader) = %v, want it to wrap the read error", err)
	}
}

// TestRequestBody tests that RequestBody refuses a Content-Length over the
// limit (at limit-1, limit and limit+1) before reading, gives http.NoBody
// for a request without a body, and passes an unknown length to
// ReadLimited.
func TestRequestBody(t *testing.T) {
	const limit = 100
	for _, tt := range []struct {
		n  int64
		ok bool
	}{
		{limit - 1, true},
		{limit, true},
		{limit + 1, false},
		{-1, true}, // unknown: ReadLimited judges
	} {
		r := httptest.NewRequest(http.MethodPost, "/push", strings.NewReader(strings.Repeat("x", limit+1)))
		r.ContentLength = tt.n
		body, err := msgcrypt.RequestBody(r, limit)
		if tt.ok && (err != nil || body != r.Body) || !tt.ok && (!errors.Is(err, msgcrypt.ErrTooLarge) || body != nil) {
			t.Errorf("RequestBody(Content-Length %d, %d) = %v, %v", tt.n, limit, body, err)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/push", nil)
	r.Body = nil
	if body, err := msgcrypt.RequestBody(r, limit); err != nil || body != http.NoBody {
		t.Errorf("RequestBody(no body) = %v, %v; want http.NoBody", body, err)
	}
}

// countingReader is an endless body of 'x' that counts what is read.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	r.n += len(p)
	return len(p), nil
}

var _ io.Reader = (*countingReader)(nil)

// TestNewNonce tests that nonces are ten digits and differ.
func TestNewNonce(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n := msgcrypt.NewNonce()
		if len(n) != 10 || strings.Trim(n, "0123456789") != "" {
			t.Fatalf("NewNonce() = %q, want ten digits", n)
		}
		if seen[n] {
			t.Fatalf("NewNonce() repeated %q", n)
		}
		seen[n] = true
	}
}

// TestDefaults pins the defaults that core and core/wecom re-export.
func TestDefaults(t *testing.T) {
	if msgcrypt.DefaultMaxMessageBytes != 1<<20 || msgcrypt.DefaultTimestampWindow != 5*time.Minute {
		t.Errorf("defaults = %d, %v; want 1 MiB, 5m", msgcrypt.DefaultMaxMessageBytes, msgcrypt.DefaultTimestampWindow)
	}
}
