package msgcrypt_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wechatconf/wechatconf/core/internal/wxvectors"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// vector is one of Tencent's published samples (WECHAT.md).
type vector struct {
	name, token, key, appID, timestamp, nonce, msgSignature, signature, encrypt, plain string
}

func fromVector(v wxvectors.Vector) vector {
	return vector{v.Name, v.Token, v.Key, v.AppID, v.Timestamp, v.Nonce, v.MsgSignature, v.Signature, v.Encrypt, v.Plain}
}

// Vector A: the official Official Account sample.
var vectorA = fromVector(wxvectors.A)

// Vector D: Tencent's C# sample.
var vectorD = fromVector(wxvectors.D)

func (v vector) crypter(t testing.TB) *msgcrypt.Crypter {
	t.Helper()
	c, err := msgcrypt.New(v.token, v.key, v.appID)
	if err != nil {
		t.Fatalf("New(vector %s): %v", v.name, err)
	}
	return c
}

// envelope returns the push body carrying v's ciphertext.
func (v vector) envelope() []byte {
	return []byte("<xml><ToUserName><![CDATA[" + v.appID + "]]></ToUserName><Encrypt><![CDATA[" + v.encrypt + "]]></Encrypt></xml>")
}

// TestPublishedVectors tests that Tencent's samples A and D verify and
// decrypt to the published plaintext, and that the URL signatures of A and
// E match.
func TestPublishedVectors(t *testing.T) {
	for _, v := range []vector{vectorA, vectorD} {
		t.Run(v.name, func(t *testing.T) {
			if got := msgcrypt.MsgSignature(v.token, v.timestamp, v.nonce, v.encrypt); got != v.msgSignature {
				t.Errorf("MsgSignature = %s, want %s", got, v.msgSignature)
			}
			if !msgcrypt.VerifyMsgSignature(v.token, v.timestamp, v.nonce, v.encrypt, v.msgSignature) {
				t.Errorf("VerifyMsgSignature rejected the published msg_signature")
			}
			c := v.crypter(t)
			got, err := c.Decrypt(v.encrypt)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if string(got) != v.plain {
				t.Errorf("Decrypt = %q, want %q", got, v.plain)
			}
			got, err = c.DecryptMessage(v.msgSignature, v.timestamp, v.nonce, v.envelope())
			if err != nil || string(got) != v.plain {
				t.Errorf("DecryptMessage = %q, %v; want the published plaintext", got, err)
			}
		})
	}
	for _, s := range []struct{ name, token, timestamp, nonce, want string }{
		{"A", vectorA.token, vectorA.timestamp, vectorA.nonce, vectorA.signature},
		{"E", "AAAAA", "1714037059", "486452656", "899cf89e464efb63f54ddac96b0a0a235f53aa78"},
	} {
		t.Run("Signature"+s.name, func(t *testing.T) {
			if got := msgcrypt.Signature(s.token, s.timestamp, s.nonce); got != s.want {
				t.Errorf("Signature(%q, %q, %q) = %s, want %s", s.token, s.timestamp, s.nonce, got, s.want)
			}
			if !msgcrypt.VerifySignature(s.token, s.timestamp, s.nonce, s.want) {
				t.Errorf("VerifySignature rejected the published signature")
			}
		})
	}
}

// independentDecrypt decrypts a WXBizMsgCrypt ciphertext with crypto/aes
// and crypto/cipher directly, written apart from the package, and returns
// the random prefix, the message and the AppID.
func independentDecrypt(t testing.TB, encodingAESKey, encrypt string) (random, msg []byte, appID string) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil {
		t.Fatal(err)
	}
	ct, err := base64.StdEncoding.DecodeString(encrypt)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	if len(ct)%32 != 0 {
		t.Fatalf("ciphertext is %d bytes, not padded to 32", len(ct))
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, key[:16]).CryptBlocks(pt, ct)
	pad := int(pt[len(pt)-1])
	if pad < 1 || pad > 32 || !bytes.Equal(pt[len(pt)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		t.Fatalf("bad padding %d", pad)
	}
	pt = pt[:len(pt)-pad]
	n := int(binary.BigEndian.Uint32(pt[16:20]))
	return pt[:16], pt[20 : 20+n], string(pt[20+n:])
}

// rawEncrypt encrypts plaintext (already padded by the caller, to a
// multiple of 16 bytes) the WXBizMsgCrypt way, to build malformed
// ciphertexts.
func rawEncrypt(t testing.TB, encodingAESKey string, plaintext []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	ct := make([]byte, len(plaintext))
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(ct, plaintext)
	return base64.StdEncoding.EncodeToString(ct)
}

// TestEncryptWithRandomReproducesTheVectors tests that encrypting a
// published plaintext with its own random prefix (recovered by the
// independent decrypt) gives Tencent's ciphertext byte for byte.
func TestEncryptWithRandomReproducesTheVectors(t *testing.T) {
	for _, v := range []vector{vectorA, vectorD} {
		t.Run(v.name, func(t *testing.T) {
			random, msg, appID := independentDecrypt(t, v.key, v.encrypt)
			if string(msg) != v.plain || appID != v.appID {
				t.Fatalf("independent decrypt = %q for %q, want the published plaintext for %q", msg, appID, v.appID)
			}
			got, err := v.crypter(t).EncryptWithRandom([16]byte(random), []byte(v.plain))
			if err != nil {
				t.Fatal(err)
			}
			if got != v.encrypt {
				t.Errorf("EncryptWithRandom = %s\nwant %s", got, v.encrypt)
			}
		})
	}
}

// TestDeterministicEncryptAgreesWithIndependentDecrypt tests that a
// ciphertext made with an injected prefix is stable and that Decrypt and the
// independent decrypt read the same message, prefix and AppID from it.
func TestDeterministicEncryptAgreesWithIndependentDecrypt(t *testing.T) {
	c := vectorA.crypter(t)
	random := [16]byte([]byte("0123456789abcdef"))
	msg := []byte("<xml><Content><![CDATA[你好，世界]]></Content></xml>")
	enc, err := c.EncryptWithRandom(random, msg)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := c.EncryptWithRandom(random, msg)
	if again != enc {
		t.Errorf("EncryptWithRandom is not deterministic: %s then %s", enc, again)
	}
	const want = "Q3stYC6hdFzMh9T8HCvyDPJVhdGNYpRuWvIs6zImL8xRHEVOEb5o1KO6mJgOBQjtgxt4LVyan0w3AoQXMtOW7OKAGLJzNX4ifvr+3XtV0VOQi9HHwf/WqeOlSNuQ+363"
	if enc != want {
		t.Errorf("EncryptWithRandom = %s, want %s", enc, want)
	}
	gotRandom, gotMsg, gotAppID := independentDecrypt(t, vectorA.key, enc)
	if !bytes.Equal(gotRandom, random[:]) || !bytes.Equal(gotMsg, msg) || gotAppID != vectorA.appID {
		t.Errorf("independent decrypt = %q, %q, %q; want %q, %q, %q", gotRandom, gotMsg, gotAppID, random, msg, vectorA.appID)
	}
	ours, err := c.Decrypt(enc)
	if err != nil || !bytes.Equal(ours, gotMsg) {
		t.Errorf("Decrypt = %q, %v; the independent decrypt read %q", ours, err, gotMsg)
	}
}

// randomKey returns a fresh EncodingAESKey.
func randomKey() string {
	var k [32]byte
	rand.Read(k[:])
	return strings.TrimSuffix(base64.StdEncoding.EncodeToString(k[:]), "=")
}

// randomMessage returns n bytes of a message; half of them mix UTF-8
// Chinese text into the ASCII.
func randomMessage(r *mrand.Rand, n int) []byte {
	if r.IntN(2) == 0 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
	var sb strings.Builder
	for sb.Len() < n {
		if r.IntN(3) == 0 && n-sb.Len() >= len("消息") {
			sb.WriteString("消息")
		} else {
			sb.WriteByte(byte('a' + r.IntN(26)))
		}
	}
	return []byte(sb.String())
}

// TestRoundTrip tests that Decrypt returns what Encrypt was given, for
// random keys and AppIDs, messages from 0 B to 64 KiB, every padding length
// from 1 to 32, and UTF-8 Chinese text.
func TestRoundTrip(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	pads := map[int]bool{}
	lengths := []int{0, 1, 15, 16, 31, 32, 33, 1024, 64 << 10}
	for n := range 80 {
		lengths = append(lengths, n)
	}
	for range 40 {
		lengths = append(lengths, r.IntN(64<<10+1))
	}
	for i, n := range lengths {
		key, appID := randomKey(), fmt.Sprintf("wx%016x", r.Uint64())
		c, err := msgcrypt.New("token", key, appID)
		if err != nil {
			t.Fatalf("New(random key %d): %v", i, err)
		}
		msg := randomMessage(r, n)
		enc, err := c.Encrypt(msg)
		if err != nil {
			t.Fatalf("Encrypt(%d bytes): %v", n, err)
		}
		ct, _ := base64.StdEncoding.DecodeString(enc)
		pads[len(ct)-(16+4+len(msg)+len(appID))] = true
		got, err := c.Decrypt(enc)
		if err != nil || !bytes.Equal(got, msg) {
			t.Errorf("Decrypt(Encrypt(%d bytes)) = %d bytes, %v", len(msg), len(got), err)
		}
		if utf8.Valid(msg) && string(got) != string(msg) {
			t.Errorf("UTF-8 message changed in a round trip")
		}
	}
	for p := 1; p <= 32; p++ {
		if !pads[p] {
			t.Errorf("no round trip used padding length %d", p)
		}
	}
	if pads[0] || len(pads) != 32 {
		t.Errorf("padding lengths used: %v, want exactly 1..32", pads)
	}
}

// TestEncryptIsRandomised tests that two encryptions of one message differ.
func TestEncryptIsRandomised(t *testing.T) {
	c := vectorA.crypter(t)
	a, _ := c.Encrypt([]byte("same"))
	b, _ := c.Encrypt([]byte("same"))
	if a == b {
		t.Errorf("Encrypt gave %s twice", a)
	}
}

// padded returns plaintext for appID with a PKCS#7 pad of p bytes of value
// v, the length field saying n.
func padded(random string, n uint32, msg, appID string, p int, v byte) []byte {
	b := append([]byte(random), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[16:], n)
	b = append(b, msg...)
	b = append(b, appID...)
	return append(b, bytes.Repeat([]byte{v}, p)...)
}

// TestDecryptRejectsBadInput tests that each malformed ciphertext gives
// its own error and no message.
func TestDecryptRejectsBadInput(t *testing.T) {
	const random = "RRRRRRRRRRRRRRRR"
	key, appID := vectorA.key, vectorA.appID // 18 bytes: 16+4+18 = 38
	enc := func(pt []byte) string { return rawEncrypt(t, key, pt) }
	other, _ := msgcrypt.New("t", key, "wx0000000000000000")
	otherEnc, _ := other.Encrypt([]byte("<xml/>"))
	tests := []struct {
		name    string
		encrypt string
		want    error
	}{
		{"NotBase64", "not base64!", msgcrypt.ErrBase64},
		{"TruncatedBase64", vectorA.encrypt[:len(vectorA.encrypt)-3], msgcrypt.ErrBase64},
		{"Empty", "", msgcrypt.ErrBlockSize},
		{"NotBlockMultiple", base64.StdEncoding.EncodeToString(make([]byte, 40)), msgcrypt.ErrBlockSize},
		{"OneByte", "AA==", msgcrypt.ErrBlockSize},
		{"PaddingZero", enc(padded(random, 4, "abcd", appID, 22, 0)), msgcrypt.ErrPadding},
		{"Padding33", enc(padded(random, 4, "abcd", appID, 22+32, 33)), msgcrypt.ErrPadding},
		{"Padding255", enc(padded(random, 4, "abcd", appID, 22, 255)), msgcrypt.ErrPadding},
		{"PaddingBytesDiffer", enc(append(padded(random, 4, "abcd", appID, 21, 7), 22)), msgcrypt.ErrPadding},
		{"PaddingLongerThanPlaintext", enc(bytes.Repeat([]byte{32}, 16)), msgcrypt.ErrPadding},
		{"TooShortForLengthField", enc([]byte(random + "abc" + strings.Repeat("\x0d", 13))), msgcrypt.ErrLength},
		{"LengthBeyondBuffer", enc(padded(random, 100, "abcd", appID, 22, 22)), msgcrypt.ErrLength},
		{"LengthMax", enc(padded(random, math.MaxUint32, "abcd", appID, 22, 22)), msgcrypt.ErrLength},
		{"AppIDMismatch", otherEnc, msgcrypt.ErrAppID},
		{"AppIDMissing", enc(padded(random, 4, "abcd", "", 8, 8)), msgcrypt.ErrAppID},
		{"AppIDLonger", enc(padded(random, 4, "abcd", appID+"x", 21, 21)), msgcrypt.ErrAppID},
		{"LengthShortensMessage", enc(padded(random, 3, "abcd", appID, 22, 22)), msgcrypt.ErrAppID},
	}
	c := vectorA.crypter(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Decrypt(tt.encrypt)
			if !errors.Is(err, tt.want) {
				t.Errorf("Decrypt = %q, %v; want error %v", got, err, tt.want)
			}
			if got != nil {
				t.Errorf("Decrypt returned %q with its error", got)
			}
		})
	}
}

// TestDecryptWithAnotherKeyFails tests that a ciphertext never decrypts
// under a key other than its own.
func TestDecryptWithAnotherKeyFails(t *testing.T) {
	for i := range 200 {
		a, _ := msgcrypt.New("t", randomKey(), "wx1")
		b, _ := msgcrypt.New("t", randomKey(), "wx1")
		enc, _ := a.Encrypt([]byte(strings.Repeat("m", i)))
		if got, err := b.Decrypt(enc); err == nil {
			t.Fatalf("Decrypt with another key = %q, want an error", got)
		} else if !errors.Is(err, msgcrypt.ErrPadding) && !errors.Is(err, msgcrypt.ErrLength) && !errors.Is(err, msgcrypt.ErrAppID) {
			t.Fatalf("Decrypt with another key: %v, want ErrPadding, ErrLength or ErrAppID", err)
		}
	}
}

// TestNewRejectsBadArguments tests that New names what is wrong.
func TestNewRejectsBadArguments(t *testing.T) {
	k := vectorA.key
	for _, tt := range []struct {
		name, token, key, appID string
		wantKey                 bool
	}{
		{"KeyShort", "t", k[:42], "wx1", true},
		{"KeyLong", "t", k + "A", "wx1", true},
		{"KeyNotBase64", "t", "!" + k[1:], "wx1", true},
		{"KeyWithNewline", "t", "\n" + k[1:], "wx1", true},
		{"KeyEmpty", "t", "", "wx1", true},
		{"NoToken", "", k, "wx1", false},
		{"NoAppID", "t", k, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := msgcrypt.New(tt.token, tt.key, tt.appID)
			if err == nil || c != nil {
				t.Fatalf("New = %v, %v; want an error", c, err)
			}
			if errors.Is(err, msgcrypt.ErrKey) != tt.wantKey {
				t.Errorf("New: %v; errors.Is(ErrKey) = %v, want %v", err, !tt.wantKey, tt.wantKey)
			}
			if tt.key != "" && strings.Contains(err.Error(), tt.key) {
				t.Errorf("New's error shows the key: %v", err)
			}
		})
	}
}

// TestVerifyRejects tests that a wrong, missing, truncated or differently
// cased signature fails, and that an empty token never verifies.
func TestVerifyRejects(t *testing.T) {
	v := vectorA
	for _, sig := range []string{"", "0", v.signature[:39], strings.ToUpper(v.signature), v.signature + "0", v.msgSignature} {
		if msgcrypt.VerifySignature(v.token, v.timestamp, v.nonce, sig) {
			t.Errorf("VerifySignature accepted %q", sig)
		}
	}
	for _, sig := range []string{"", v.msgSignature[:39], v.signature} {
		if msgcrypt.VerifyMsgSignature(v.token, v.timestamp, v.nonce, v.encrypt, sig) {
			t.Errorf("VerifyMsgSignature accepted %q", sig)
		}
	}
	if msgcrypt.VerifySignature("", "1", "2", msgcrypt.Signature("", "1", "2")) {
		t.Errorf("VerifySignature accepted a signature made with an empty token")
	}
	if msgcrypt.VerifyMsgSignature("", "1", "2", "e", msgcrypt.MsgSignature("", "1", "2", "e")) {
		t.Errorf("VerifyMsgSignature accepted a signature made with an empty token")
	}
}

// TestDecryptMessageRejects tests DecryptMessage's checks before Decrypt.
func TestDecryptMessageRejects(t *testing.T) {
	v := vectorA
	c := v.crypter(t)
	for _, tt := range []struct {
		name string
		sig  string
		body string
		want error
	}{
		{"WrongSignature", v.signature, string(v.envelope()), msgcrypt.ErrSignature},
		{"NoSignature", "", string(v.envelope()), msgcrypt.ErrSignature},
		{"NotXML", v.msgSignature, "Encrypt=" + v.encrypt, msgcrypt.ErrXML},
		{"WrongRoot", v.msgSignature, "<msg><Encrypt>" + v.encrypt + "</Encrypt></msg>", msgcrypt.ErrXML},
		{"TrailingElement", v.msgSignature, string(v.envelope()) + "<xml/>", msgcrypt.ErrXML},
		{"TrailingText", v.msgSignature, string(v.envelope()) + "x", msgcrypt.ErrXML},
		{"Unclosed", v.msgSignature, "<xml><Encrypt>" + v.encrypt + "</Encrypt>", msgcrypt.ErrXML},
		{"NoEncrypt", v.msgSignature, "<xml><Content>hi</Content></xml>", msgcrypt.ErrNoEncrypt},
		{"EmptyEncrypt", v.msgSignature, "<xml><Encrypt></Encrypt></xml>", msgcrypt.ErrNoEncrypt},
		{"EmptyBody", v.msgSignature, "", msgcrypt.ErrXML},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.DecryptMessage(tt.sig, v.timestamp, v.nonce, []byte(tt.body))
			if !errors.Is(err, tt.want) || got != nil {
				t.Errorf("DecryptMessage = %q, %v; want error %v", got, err, tt.want)
			}
		})
	}
	// Space, a declaration and comments around the element are fine.
	body := "<?xml version=\"1.0\"?>\n<!-- push -->" + string(v.envelope()) + "\n\t<!-- end -->\n"
	if got, err := c.DecryptMessage(v.msgSignature, v.timestamp, v.nonce, []byte(body)); err != nil || string(got) != v.plain {
		t.Errorf("DecryptMessage with a declaration and comments = %q, %v", got, err)
	}
}

// TestEncryptMessage tests that an encrypted reply has the documented
// shape, carries a valid MsgSignature and decrypts to the reply.
func TestEncryptMessage(t *testing.T) {
	c := vectorA.crypter(t)
	reply := []byte("<xml><Content><![CDATA[回复 ]]> ]]></Content></xml>")
	out, err := c.EncryptMessage(reply, "1409735670", "nonce]]>")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if !strings.HasPrefix(s, "<xml><Encrypt><![CDATA[") || !strings.Contains(s, "]]></Encrypt><MsgSignature><![CDATA[") ||
		!strings.Contains(s, "]]></MsgSignature><TimeStamp>1409735670</TimeStamp><Nonce><![CDATA[") || !strings.HasSuffix(s, "</Nonce></xml>") {
		t.Errorf("EncryptMessage = %s, not the documented envelope", s)
	}
	env, err := msgcrypt.ParseEnvelope(out)
	if err != nil {
		t.Fatal(err)
	}
	if env.TimeStamp != "1409735670" || env.Nonce != "nonce]]>" {
		t.Errorf("envelope TimeStamp, Nonce = %q, %q", env.TimeStamp, env.Nonce)
	}
	got, err := c.DecryptMessage(env.MsgSignature, env.TimeStamp, env.Nonce, out)
	if err != nil || !bytes.Equal(got, reply) {
		t.Errorf("DecryptMessage(EncryptMessage(reply)) = %q, %v", got, err)
	}
}

// TestCheckTimestamp tests the replay window, both ways, at its edges and
// for values that would overflow.
func TestCheckTimestamp(t *testing.T) {
	now := time.Unix(1409735669, 0)
	w := 5 * time.Minute
	for _, tt := range []struct {
		ts     string
		window time.Duration
		ok     bool
	}{
		{"1409735669", w, true},
		{"1409735369", w, true},  // 5 min ago
		{"1409735969", w, true},  // 5 min ahead
		{"1409735368", w, false}, // 5 min 1 s ago
		{"1409735970", w, false},
		{"0", w, false},
		{"-1", w, false},
		{"9223372036854775807", w, false},
		{"-9223372036854775808", w, false},
		{"99999999999999999999", w, false},
		{"", w, false},
		{"1409735669.0", w, false},
		{" 1409735669", w, false},
		{"0", 0, true},
		{"junk", -1, true},
	} {
		err := msgcrypt.CheckTimestamp(tt.ts, now, tt.window)
		if tt.ok && err != nil || !tt.ok && !errors.Is(err, msgcrypt.ErrTimestamp) {
			t.Errorf("CheckTimestamp(%q, window %v) = %v, want ok=%v", tt.ts, tt.window, err, tt.ok)
		}
	}
}

// TestErrorsHoldNoSecrets tests that no error text contains the key or the
// token.
func TestErrorsHoldNoSecrets(t *testing.T) {
	v := vectorA
	c := v.crypter(t)
	var errs []error
	for _, enc := range []string{"!", "", "AAAA", rawEncrypt(t, v.key, make([]byte, 32)), v.encrypt[:len(v.encrypt)-4] + "AAA="} {
		_, err := c.Decrypt(enc)
		errs = append(errs, err)
	}
	_, err := msgcrypt.New(v.token, v.key[1:], v.appID)
	errs = append(errs, err)
	_, err = c.DecryptMessage("bad", v.timestamp, v.nonce, v.envelope())
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil {
			t.Errorf("expected an error")
			continue
		}
		if s := err.Error(); strings.Contains(s, v.key) || strings.Contains(s, v.key[1:]) || strings.Contains(s, v.token) {
			t.Errorf("error shows a secret: %s", s)
		}
	}
}

// FuzzDecrypt tests that Decrypt never panics, and that whatever it
// accepts round-trips through Encrypt.
func FuzzDecrypt(f *testing.F) {
	f.Add(vectorA.encrypt)
	f.Add(vectorD.encrypt)
	f.Add("")
	f.Add("AAAA")
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	f.Add(vectorA.encrypt[:44])
	c := vectorA.crypter(f)
	f.Fuzz(func(t *testing.T, encrypt string) {
		msg, err := c.Decrypt(encrypt)
		if err != nil {
			if msg != nil {
				t.Fatalf("Decrypt returned %q with error %v", msg, err)
			}
			return
		}
		enc, err := c.Encrypt(msg)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.Decrypt(enc)
		if err != nil || !bytes.Equal(again, msg) {
			t.Fatalf("round trip of an accepted message: %q, %v", again, err)
		}
	})
}

func benchCrypter(b *testing.B) (*msgcrypt.Crypter, []byte) {
	c := vectorA.crypter(b)
	msg := bytes.Repeat([]byte("<xml>消息</xml>"), 1024/len("<xml>消息</xml>")+1)[:1024]
	return c, msg
}

// BenchmarkEncrypt1KiB measures Encrypt of a 1 KiB message.
func BenchmarkEncrypt1KiB(b *testing.B) {
	c, msg := benchCrypter(b)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Encrypt(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecrypt1KiB measures Decrypt of a 1 KiB message.
func BenchmarkDecrypt1KiB(b *testing.B) {
	c, msg := benchCrypter(b)
	enc, _ := c.Encrypt(msg)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decrypt(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMsgSignature measures one msg_signature of a 1 KiB message's
// ciphertext.
func BenchmarkMsgSignature(b *testing.B) {
	c, msg := benchCrypter(b)
	enc, _ := c.Encrypt(msg)
	b.ReportAllocs()
	for b.Loop() {
		msgcrypt.MsgSignature("token", "1409735669", "1320562132", enc)
	}
}
