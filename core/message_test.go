package core_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/wxvectors"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// pushVector is one of Tencent's published sample pushes (WECHAT.md).
type pushVector struct {
	token, key, appID, timestamp, nonce, msgSignature, signature, encrypt, plain string
}

func fromVector(v wxvectors.Vector) pushVector {
	return pushVector{v.Token, v.Key, v.AppID, v.Timestamp, v.Nonce, v.MsgSignature, v.Signature, v.Encrypt, v.Plain}
}

var pushA = fromVector(wxvectors.A)

var pushD = fromVector(wxvectors.D)

// keyB and keyC are two more EncodingAESKeys, for rotation.
const (
	keyB = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	keyC = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
)

// clockAt returns a clock stopped at the Unix time ts.
func clockAt(ts string) func() time.Time {
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		panic(err)
	}
	return func() time.Time { return time.Unix(n, 0).Add(10 * time.Second) }
}

// msgConf returns a Conf with v's Token, key and AppID in mode, its clock
// ten seconds after v's timestamp; edit adjusts the Config.
func msgConf(t testing.TB, v pushVector, mode core.EncryptMode, edit func(*core.Config)) *core.Conf {
	t.Helper()
	cfg := core.Config{Token: core.NewSecret(v.token), AppID: v.appID, EncodingAESKey: core.NewSecret(v.key), EncryptMode: mode, Now: clockAt(v.timestamp)}
	if edit != nil {
		edit(&cfg)
	}
	c, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// query returns v's push URL parameters, for an encrypted push if enc.
func (v pushVector) query(enc bool) url.Values {
	q := url.Values{"signature": {v.signature}, "timestamp": {v.timestamp}, "nonce": {v.nonce}, "openid": {"oyORnuP8q7ou2gfYjqLzSIWZf0rs"}}
	if q.Get("signature") == "" {
		q.Set("signature", msgcrypt.Signature(v.token, v.timestamp, v.nonce))
	}
	if enc {
		q.Set("encrypt_type", "aes")
		q.Set("msg_signature", v.msgSignature)
	}
	return q
}

// body returns v's encrypted push body.
func (v pushVector) body() string {
	return "<xml><ToUserName><![CDATA[" + v.appID + "]]></ToUserName><Encrypt><![CDATA[" + v.encrypt + "]]></Encrypt></xml>"
}

// signedPush returns the query and body of an encrypted push of encrypt
// (any string, valid or not) for v's token, correctly signed.
func signedPush(v pushVector, encrypt string) (url.Values, string) {
	q := v.query(true)
	q.Set("msg_signature", msgcrypt.MsgSignature(v.token, v.timestamp, v.nonce, encrypt))
	return q, "<xml><Encrypt><![CDATA[" + encrypt + "]]></Encrypt></xml>"
}

// encryptWith encrypts plain for v's token and AppID with key and returns
// the signed push.
func encryptWith(t testing.TB, v pushVector, key, appID, plain string) (url.Values, string) {
	t.Helper()
	c, err := msgcrypt.New(v.token, key, appID)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return signedPush(v, enc)
}

// rawCBC encrypts an already padded plaintext with key, to build
// ciphertexts that are malformed inside.
func rawCBC(t testing.TB, key string, plaintext []byte) string {
	t.Helper()
	k, _ := base64.StdEncoding.DecodeString(key + "=")
	block, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(plaintext))
	cipher.NewCBCEncrypter(block, k[:16]).CryptBlocks(out, plaintext)
	return base64.StdEncoding.EncodeToString(out)
}

// inner builds a plaintext: random ‖ length n ‖ msg ‖ appID ‖ p bytes of v.
func inner(n uint32, msg, appID string, p int, v byte) []byte {
	b := append([]byte("RRRRRRRRRRRRRRRR"), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[16:], n)
	b = append(b, msg...)
	b = append(b, appID...)
	return append(b, bytes.Repeat([]byte{v}, p)...)
}

// TestReadMessagePublishedVectors tests that Tencent's sample pushes A
// and D are accepted in safe and compatible mode and come out as the
// published plaintext.
func TestReadMessagePublishedVectors(t *testing.T) {
	for _, v := range []pushVector{pushA, pushD} {
		for _, mode := range []core.EncryptMode{core.Safe, core.Compatible} {
			t.Run(v.appID+"/"+string(mode), func(t *testing.T) {
				c := msgConf(t, v, mode, nil)
				m, err := c.ReadMessage(v.query(true), strings.NewReader(v.body()))
				if err != nil {
					t.Fatalf("ReadMessage: %v", err)
				}
				if string(m.XML) != v.plain || !m.Encrypted || m.PreviousKey {
					t.Errorf("ReadMessage = %q, Encrypted %v, PreviousKey %v; want the published plaintext, true, false", m.XML, m.Encrypted, m.PreviousKey)
				}
				if m.MsgType != "text" || m.FromUserName == "" || m.ToUserName == "" || m.CreateTime == 0 {
					t.Errorf("header fields: %+v", m)
				}
			})
		}
	}
}

// TestVerifyURL tests that URL verification checks signature, timestamp
// and nonce and echoes echostr untouched.
func TestVerifyURL(t *testing.T) {
	c := msgConf(t, pushA, core.Safe, nil)
	const echo = "4 5+6/7=8&é"
	q := url.Values{"signature": {pushA.signature}, "timestamp": {pushA.timestamp}, "nonce": {pushA.nonce}, "echostr": {echo}}
	if got, err := c.VerifyURL(q); err != nil || got != echo {
		t.Errorf("VerifyURL(vector A) = %q, %v; want %q", got, err, echo)
	}
	// Vector E, in normal mode and with its own token.
	e, err := core.New(core.Config{Token: core.NewSecret("AAAAA"), Now: clockAt("1714037059")})
	if err != nil {
		t.Fatal(err)
	}
	qe := url.Values{"signature": {"899cf89e464efb63f54ddac96b0a0a235f53aa78"}, "timestamp": {"1714037059"}, "nonce": {"486452656"}, "echostr": {"e"}}
	if got, err := e.VerifyURL(qe); err != nil || got != "e" {
		t.Errorf("VerifyURL(vector E) = %q, %v", got, err)
	}

	bad := func(edit func(url.Values)) url.Values {
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = v
		}
		edit(q2)
		return q2
	}
	for _, tt := range []struct {
		name string
		q    url.Values
		want error
	}{
		{"WrongSignature", bad(func(q url.Values) { q.Set("signature", pushA.msgSignature) }), msgcrypt.ErrSignature},
		{"NoSignature", bad(func(q url.Values) { q.Del("signature") }), msgcrypt.ErrSignature},
		{"OtherNonce", bad(func(q url.Values) { q.Set("nonce", "1320562133") }), msgcrypt.ErrSignature},
		{"NoEchostr", bad(func(q url.Values) { q.Del("echostr") }), core.ErrNoEchostr},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := c.VerifyURL(tt.q); !errors.Is(err, tt.want) || got != "" {
				t.Errorf("VerifyURL = %q, %v; want error %v", got, err, tt.want)
			}
		})
	}
	t.Run("Replay", func(t *testing.T) {
		late := msgConf(t, pushA, core.Safe, func(cfg *core.Config) {
			cfg.Now = func() time.Time { return time.Unix(1409735669, 0).Add(6 * time.Minute) }
		})
		if got, err := late.VerifyURL(q); !errors.Is(err, msgcrypt.ErrTimestamp) || got != "" {
			t.Errorf("VerifyURL 6 minutes later = %q, %v; want ErrTimestamp", got, err)
		}
	})
}

// TestReadMessageModes tests what each encryption mode accepts.
func TestReadMessageModes(t *testing.T) {
	const plain = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1409735669</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>"
	plainQ := pushA.query(false)
	// A compatible-mode body: plaintext fields and <Encrypt> side by side.
	// The plaintext fields here disagree with the ciphertext, which wins.
	compatBody := "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><MsgType><![CDATA[forged]]></MsgType><Encrypt><![CDATA[" + pushA.encrypt + "]]></Encrypt></xml>"
	noKey := func(cfg *core.Config) { cfg.EncodingAESKey = core.NewSecret("") }
	for _, tt := range []struct {
		name      string
		mode      core.EncryptMode
		edit      func(*core.Config)
		q         url.Values
		body      string
		want      string // plaintext, "" for an error
		encrypted bool
		err       error  // when want is ""
		errText   string // when want is "" and err is nil
	}{
		{"NormalPlain", core.Normal, noKey, plainQ, plain, plain, false, nil, ""},
		{"NormalRawPlain", core.Normal, noKey, withParam(plainQ, "encrypt_type", "raw"), plain, plain, false, nil, ""},
		{"NormalEncryptedWithKey", core.Normal, nil, pushA.query(true), pushA.body(), pushA.plain, true, nil, ""},
		{"NormalEncryptedNoKey", core.Normal, noKey, pushA.query(true), pushA.body(), "", false, nil, "Config.EncodingAESKey is required to decrypt messages"},
		{"CompatiblePlain", core.Compatible, nil, plainQ, plain, plain, false, nil, ""},
		{"CompatibleEncrypted", core.Compatible, nil, pushA.query(true), compatBody, pushA.plain, true, nil, ""},
		{"SafeEncrypted", core.Safe, nil, pushA.query(true), pushA.body(), pushA.plain, true, nil, ""},
		{"SafeRefusesPlain", core.Safe, nil, plainQ, plain, "", false, msgcrypt.ErrNoEncrypt, ""},
		{"SafeRefusesRaw", core.Safe, nil, withParam(plainQ, "encrypt_type", "raw"), plain, "", false, msgcrypt.ErrNoEncrypt, ""},
		{"SafeRefusesPlainBodyMarkedAES", core.Safe, nil, pushA.query(true), plain, "", false, msgcrypt.ErrNoEncrypt, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := msgConf(t, pushA, tt.mode, tt.edit)
			m, err := c.ReadMessage(tt.q, strings.NewReader(tt.body))
			if tt.want == "" {
				switch {
				case m != nil:
					t.Errorf("ReadMessage accepted %q", m.XML)
				case tt.err != nil && !errors.Is(err, tt.err):
					t.Errorf("ReadMessage: %v, want error %v", err, tt.err)
				case tt.err == nil && (err == nil || !strings.Contains(err.Error(), tt.errText)):
					t.Errorf("ReadMessage: %v, want an error saying %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadMessage: %v", err)
			}
			if string(m.XML) != tt.want || m.Encrypted != tt.encrypted {
				t.Errorf("ReadMessage = %q, Encrypted %v; want %q, %v", m.XML, m.Encrypted, tt.want, tt.encrypted)
			}
		})
	}
	t.Run("HeaderFields", func(t *testing.T) {
		m, err := msgConf(t, pushA, core.Normal, nil).ReadMessage(plainQ, strings.NewReader(plain))
		if err != nil {
			t.Fatal(err)
		}
		if m.ToUserName != "gh_1" || m.FromUserName != "o1" || m.CreateTime != 1409735669 || m.MsgType != "event" || m.Event != "subscribe" {
			t.Errorf("header fields = %q %q %d %q %q", m.ToUserName, m.FromUserName, m.CreateTime, m.MsgType, m.Event)
		}
	})
}

func withParam(q url.Values, k, v string) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = v
	}
	out.Set(k, v)
	return out
}

// TestReadMessageRejectsBadInput tests that every malformed push gives
// its specific error and no message, whatever the mode that reads it.
func TestReadMessageRejectsBadInput(t *testing.T) {
	v := pushA
	plain := "<xml><MsgType><![CDATA[text]]></MsgType></xml>"
	signed := func(enc string) func() (url.Values, string) {
		return func() (url.Values, string) { return signedPush(v, enc) }
	}
	raw := func(pt []byte) func() (url.Values, string) { return signed(rawCBC(t, v.key, pt)) }
	tests := []struct {
		name string
		push func() (url.Values, string)
		want error
	}{
		{"WrongMsgSignature", func() (url.Values, string) {
			return withParam(v.query(true), "msg_signature", v.signature), v.body()
		}, msgcrypt.ErrSignature},
		{"NoMsgSignature", func() (url.Values, string) {
			q := v.query(true)
			q.Del("msg_signature")
			return q, v.body()
		}, msgcrypt.ErrSignature},
		{"CiphertextSwapped", func() (url.Values, string) { return pushD.query(true), pushD.body() }, msgcrypt.ErrSignature},
		{"WrongSignaturePlain", func() (url.Values, string) {
			return withParam(v.query(false), "signature", v.msgSignature), plain
		}, msgcrypt.ErrSignature},
		{"BadBase64", signed("not*base64"), msgcrypt.ErrBase64},
		{"NotBlockMultiple", signed(base64.StdEncoding.EncodeToString(make([]byte, 33))), msgcrypt.ErrBlockSize},
		{"PaddingZero", raw(inner(4, "abcd", v.appID, 22, 0)), msgcrypt.ErrPadding},
		{"PaddingOver32", raw(inner(4, "abcd", v.appID, 22+32, 54)), msgcrypt.ErrPadding},
		{"LengthBeyondBuffer", raw(inner(5000, "abcd", v.appID, 22, 22)), msgcrypt.ErrLength},
		{"AppIDMismatch", func() (url.Values, string) { return encryptWith(t, v, v.key, "wx0000000000000000", plain) }, msgcrypt.ErrAppID},
		{"NoEncrypt", func() (url.Values, string) { return v.query(true), "<xml><Content>hi</Content></xml>" }, msgcrypt.ErrNoEncrypt},
		{"NotXML", func() (url.Values, string) { return v.query(true), "Encrypt=" + v.encrypt }, msgcrypt.ErrXML},
		{"TrailingGarbage", func() (url.Values, string) { return v.query(true), v.body() + "<xml/>" }, msgcrypt.ErrXML},
		{"DecryptedNotXML", func() (url.Values, string) { return encryptWith(t, v, v.key, v.appID, "plain text") }, msgcrypt.ErrXML},
		{"UnknownEncryptType", func() (url.Values, string) { return withParam(v.query(true), "encrypt_type", "des"), v.body() }, msgcrypt.ErrEncryptType},
		{"TooLarge", func() (url.Values, string) {
			return v.query(true), "<xml><Encrypt>" + strings.Repeat("A", core.DefaultMaxMessageBytes) + "</Encrypt></xml>"
		}, msgcrypt.ErrTooLarge},
		{"TimestampOld", func() (url.Values, string) { return pushAt(t, v, "1409735300") }, msgcrypt.ErrTimestamp},
		{"TimestampFuture", func() (url.Values, string) { return pushAt(t, v, "1409736100") }, msgcrypt.ErrTimestamp},
		{"TimestampNotANumber", func() (url.Values, string) { return pushAt(t, v, "soon") }, msgcrypt.ErrTimestamp},
	}
	for _, mode := range []core.EncryptMode{core.Compatible, core.Safe} {
		c := msgConf(t, v, mode, nil)
		for _, tt := range tests {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				q, body := tt.push()
				want := tt.want
				if mode == core.Safe && q.Get("encrypt_type") == "" {
					want = msgcrypt.ErrNoEncrypt // safe mode refuses plaintext before looking at it
				}
				m, err := c.ReadMessage(q, strings.NewReader(body))
				if !errors.Is(err, want) || m != nil {
					t.Errorf("ReadMessage = %v, %v; want error %v", m, err, want)
				}
				if err != nil && strings.Contains(err.Error(), v.key) {
					t.Errorf("error shows the EncodingAESKey: %v", err)
				}
			})
		}
	}
}

// pushAt returns a correctly signed encrypted push dated ts.
func pushAt(t testing.TB, v pushVector, ts string) (url.Values, string) {
	t.Helper()
	c, _ := msgcrypt.New(v.token, v.key, v.appID)
	enc, _ := c.Encrypt([]byte("<xml/>"))
	q := v.query(true)
	q.Set("timestamp", ts)
	q.Set("signature", msgcrypt.Signature(v.token, ts, v.nonce))
	q.Set("msg_signature", msgcrypt.MsgSignature(v.token, ts, v.nonce, enc))
	return q, "<xml><Encrypt>" + enc + "</Encrypt></xml>"
}

// TestTimestampWindow tests the configured window and that a negative one
// disables the check.
func TestTimestampWindow(t *testing.T) {
	q, body := pushAt(t, pushA, "1409735000") // 11 min before the clock
	for _, tt := range []struct {
		window time.Duration
		ok     bool
	}{{0, false}, {10 * time.Minute, false}, {12 * time.Minute, true}, {-1, true}} {
		c := msgConf(t, pushA, core.Safe, func(cfg *core.Config) { cfg.TimestampWindow = tt.window })
		_, err := c.ReadMessage(q, strings.NewReader(body))
		if tt.ok && err != nil || !tt.ok && !errors.Is(err, msgcrypt.ErrTimestamp) {
			t.Errorf("TimestampWindow %v: ReadMessage error %v, want ok=%v", tt.window, err, tt.ok)
		}
	}
}

// countingReader is an endless body that counts what is read from it.
type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'A'
	}
	r.n += int64(len(p))
	return len(p), nil
}

// TestBodyLimit tests that an oversized body is refused after reading at
// most the limit plus one byte, or before reading by its Content-Length.
func TestBodyLimit(t *testing.T) {
	const limit = 4096
	c := msgConf(t, pushA, core.Safe, func(cfg *core.Config) { cfg.MaxMessageBytes = limit })
	body := &countingReader{}
	if m, err := c.ReadMessage(pushA.query(true), body); !errors.Is(err, msgcrypt.ErrTooLarge) || m != nil {
		t.Errorf("ReadMessage(endless body) = %v, %v; want ErrTooLarge", m, err)
	}
	if body.n > limit+1 {
		t.Errorf("read %d bytes of an endless body, want at most %d", body.n, limit+1)
	}

	target := "/wechat?" + pushA.query(true).Encode()
	unread := &countingReader{}
	r := httptest.NewRequest(http.MethodPost, target, unread)
	r.ContentLength = limit + 1
	if m, err := c.ParseMessage(r); !errors.Is(err, msgcrypt.ErrTooLarge) || m != nil {
		t.Errorf("ParseMessage(Content-Length over the limit) = %v, %v; want ErrTooLarge", m, err)
	}
	if n := unread.n; n != 0 {
		t.Errorf("ParseMessage read %d bytes of a body whose Content-Length is over the limit", n)
	}
	// A body exactly at the limit is read.
	exact := pushA.body() + strings.Repeat(" ", limit-len(pushA.body()))
	if _, err := c.ReadMessage(pushA.query(true), strings.NewReader(exact)); err != nil {
		t.Errorf("ReadMessage(body of exactly MaxMessageBytes): %v", err)
	}
	if _, err := c.ReadMessage(pushA.query(true), strings.NewReader(exact+" ")); !errors.Is(err, msgcrypt.ErrTooLarge) {
		t.Errorf("ReadMessage(body of MaxMessageBytes+1): %v, want ErrTooLarge", err)
	}
}

// TestParseMessage tests the net/http form, and that a failing body read
// is an error.
func TestParseMessage(t *testing.T) {
	c := msgConf(t, pushA, core.Safe, nil)
	r := httptest.NewRequest(http.MethodPost, "/wechat?"+pushA.query(true).Encode(), strings.NewReader(pushA.body()))
	m, err := c.ParseMessage(r)
	if err != nil || string(m.XML) != pushA.plain {
		t.Fatalf("ParseMessage = %v, %v", m, err)
	}
	r = httptest.NewRequest(http.MethodPost, "/wechat?"+pushA.query(true).Encode(), io.MultiReader(strings.NewReader("<xml>"), errReader{}))
	if m, err := c.ParseMessage(r); err == nil || !errors.Is(err, errBodyRead) || m != nil {
		t.Errorf("ParseMessage(failing body) = %v, %v; want the read error", m, err)
	}
}

var errBodyRead = errors.New("connection reset")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBodyRead }

// openReply verifies and decrypts an encrypted reply with key and checks
// its timestamp and nonce.
func openReply(t *testing.T, v pushVector, key string, reply []byte, wantTS int64) string {
	t.Helper()
	env, err := msgcrypt.ParseEnvelope(reply)
	if err != nil {
		t.Fatalf("reply %s: %v", reply, err)
	}
	if env.TimeStamp != strconv.FormatInt(wantTS, 10) {
		t.Errorf("reply TimeStamp = %s, want %d", env.TimeStamp, wantTS)
	}
	if !regexp.MustCompile(`^[0-9]{10}$`).MatchString(env.Nonce) {
		t.Errorf("reply Nonce = %q, want ten digits", env.Nonce)
	}
	c, _ := msgcrypt.New(v.token, key, v.appID)
	plain, err := c.DecryptMessage(env.MsgSignature, env.TimeStamp, env.Nonce, reply)
	if err != nil {
		t.Fatalf("decrypting the reply with the expected key: %v", err)
	}
	return string(plain)
}

// TestReply tests that a reply is encrypted exactly when the push was,
// with a fresh timestamp, nonce and a valid MsgSignature, and that "" and
// "success" pass through.
func TestReply(t *testing.T) {
	const reply = "<xml><ToUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></ToUserName><Content><![CDATA[收到]]></Content></xml>"
	now := clockAt(pushA.timestamp)().Unix()
	for _, mode := range []core.EncryptMode{core.Safe, core.Compatible} {
		t.Run(string(mode), func(t *testing.T) {
			c := msgConf(t, pushA, mode, nil)
			m, err := c.ReadMessage(pushA.query(true), strings.NewReader(pushA.body()))
			if err != nil {
				t.Fatal(err)
			}
			out, err := m.Reply([]byte(reply))
			if err != nil {
				t.Fatal(err)
			}
			if got := openReply(t, pushA, pushA.key, out, now); got != reply {
				t.Errorf("reply decrypts to %q, want %q", got, reply)
			}
			again, _ := m.Reply([]byte(reply))
			e1, _ := msgcrypt.ParseEnvelope(out)
			e2, _ := msgcrypt.ParseEnvelope(again)
			if e1.Nonce == e2.Nonce || e1.Encrypt == e2.Encrypt {
				t.Errorf("two replies share a nonce or a ciphertext")
			}
			for _, s := range []string{"", "success"} {
				if got, err := m.Reply([]byte(s)); err != nil || string(got) != s {
					t.Errorf("Reply(%q) = %q, %v; want it unchanged", s, got, err)
				}
			}
		})
	}
	for _, mode := range []core.EncryptMode{core.Normal, core.Compatible} {
		t.Run(string(mode)+"Plain", func(t *testing.T) {
			c := msgConf(t, pushA, mode, nil)
			m, err := c.ReadMessage(pushA.query(false), strings.NewReader(pushA.plain))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := m.Reply([]byte(reply)); err != nil || string(got) != reply {
				t.Errorf("Reply to a plaintext push = %q, %v; want it unchanged", got, err)
			}
		})
	}
	t.Run("ForgedMessage", func(t *testing.T) {
		if _, err := (&core.Message{Encrypted: true}).Reply([]byte(reply)); err == nil {
			t.Errorf("Reply on a Message not from ReadMessage: no error")
		}
	})
}

// TestKeyRotation tests that a push made with the previous key decrypts,
// says so, and is answered with that key; a push with the current key uses
// the current key; a push with neither fails.
func TestKeyRotation(t *testing.T) {
	c := msgConf(t, pushA, core.Safe, func(cfg *core.Config) {
		cfg.EncodingAESKey, cfg.PreviousEncodingAESKey = core.NewSecret(keyB), core.NewSecret(pushA.key)
	})
	now := clockAt(pushA.timestamp)().Unix()
	for _, tt := range []struct {
		name, key string
		previous  bool
	}{{"Previous", pushA.key, true}, {"Current", keyB, false}} {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 20 { // a wrong-key decryption fails in any of three ways
				plain := fmt.Sprintf("<xml><Content>%s</Content></xml>", strings.Repeat("x", i))
				q, body := encryptWith(t, pushA, tt.key, pushA.appID, plain)
				m, err := c.ReadMessage(q, strings.NewReader(body))
				if err != nil {
					t.Fatalf("ReadMessage: %v", err)
				}
				if string(m.XML) != plain || m.PreviousKey != tt.previous {
					t.Errorf("ReadMessage = %q, PreviousKey %v; want %q, %v", m.XML, m.PreviousKey, plain, tt.previous)
				}
				out, err := m.Reply([]byte("<xml/>"))
				if err != nil {
					t.Fatal(err)
				}
				if got := openReply(t, pushA, tt.key, out, now); got != "<xml/>" {
					t.Errorf("reply = %q", got)
				}
			}
		})
	}
	t.Run("PublishedVectorWithPreviousKey", func(t *testing.T) {
		m, err := c.ReadMessage(pushA.query(true), strings.NewReader(pushA.body()))
		if err != nil || string(m.XML) != pushA.plain || !m.PreviousKey {
			t.Errorf("ReadMessage(vector A, A as previous key) = %v, %v", m, err)
		}
	})
	t.Run("NeitherKey", func(t *testing.T) {
		q, body := encryptWith(t, pushA, keyC, pushA.appID, "<xml/>")
		m, err := c.ReadMessage(q, strings.NewReader(body))
		if m != nil || !(errors.Is(err, msgcrypt.ErrPadding) || errors.Is(err, msgcrypt.ErrLength) || errors.Is(err, msgcrypt.ErrAppID)) {
			t.Errorf("ReadMessage(third key) = %v, %v; want a decryption error", m, err)
		}
	})
	t.Run("NoPreviousKey", func(t *testing.T) {
		c := msgConf(t, pushA, core.Safe, func(cfg *core.Config) { cfg.EncodingAESKey = core.NewSecret(keyB) })
		if m, err := c.ReadMessage(pushA.query(true), strings.NewReader(pushA.body())); m != nil || err == nil {
			t.Errorf("ReadMessage(old key, no previous key configured) = %v, %v; want an error", m, err)
		}
	})
}

// TestMessageConfigValidation tests the new Config fields' validation, and
// that no error or printed form shows a key.
func TestMessageConfigValidation(t *testing.T) {
	base := core.Config{Token: core.NewSecret("t"), AppID: "wx1", EncodingAESKey: core.NewSecret(pushA.key)}
	for _, tt := range []struct {
		name    string
		edit    func(*core.Config)
		wantErr string
	}{
		{"PreviousKeyOK", func(c *core.Config) { c.PreviousEncodingAESKey = core.NewSecret(keyB) }, ""},
		{"PreviousKeyShort", func(c *core.Config) { c.PreviousEncodingAESKey = core.NewSecret(keyB[:42]) }, "PreviousEncodingAESKey must be 43 characters, got 42"},
		{"PreviousKeyNotBase64", func(c *core.Config) { c.PreviousEncodingAESKey = core.NewSecret("*" + keyB[1:]) }, "PreviousEncodingAESKey is not 43 base64 characters"},
		{"PreviousKeyAlone", func(c *core.Config) {
			c.EncodingAESKey, c.PreviousEncodingAESKey = core.NewSecret(""), core.NewSecret(keyB)
		}, "PreviousEncodingAESKey requires an EncodingAESKey"},
		{"NegativeMaxMessageBytes", func(c *core.Config) { c.MaxMessageBytes = -1 }, "MaxMessageBytes must not be negative"},
		{"NegativeWindowDisables", func(c *core.Config) { c.TimestampWindow = -1 }, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			_, err := core.New(cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("New: %v, want an error containing %q", err, tt.wantErr)
			case err != nil && (strings.Contains(err.Error(), keyB[1:42]) || strings.Contains(err.Error(), pushA.key)):
				t.Errorf("New's error shows a key: %v", err)
			}
		})
	}
	cfg := base
	cfg.PreviousEncodingAESKey = core.NewSecret(keyC)
	c, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "cfg", cfg)
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(c), logged.String()} {
		if strings.Contains(s, keyC) || strings.Contains(s, pushA.key) {
			t.Errorf("printed form shows a key: %s", s)
		}
	}
}

// TestMissingFieldsAreNamed tests that a method needing an unset Config
// field names it.
func TestMissingMessageFieldsAreNamed(t *testing.T) {
	c, err := core.New(core.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const want = "Config.Token is required to verify signatures"
	if _, err := c.VerifyURL(pushA.query(false)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("VerifyURL without a Token: %v, want %q", err, want)
	}
	if _, err := c.ReadMessage(pushA.query(false), strings.NewReader(pushA.plain)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ReadMessage without a Token: %v, want %q", err, want)
	}
}

// FuzzParseMessage tests that ReadMessage never panics and never returns
// both a message and an error, in every mode, on arbitrary query strings
// and bodies. With resign set the fuzzer's query is given correct
// signatures for its body, so that the decryption path is reached too.
func FuzzParseMessage(f *testing.F) {
	f.Add(pushA.query(true).Encode(), []byte(pushA.body()), false)
	f.Add(pushA.query(false).Encode(), []byte(pushA.plain), false)
	f.Add(pushA.query(true).Encode(), []byte(pushA.body()), true)
	f.Add("encrypt_type=aes", []byte("<xml><Encrypt><![CDATA[AAAA]]></Encrypt></xml>"), true)
	f.Add("encrypt_type=aes", []byte("<xml><Encrypt>"+pushD.encrypt+"</Encrypt></xml>"), true)
	f.Add("", []byte("<xml>"), false)
	confs := map[core.EncryptMode]*core.Conf{}
	for _, mode := range []core.EncryptMode{core.Normal, core.Compatible, core.Safe} {
		confs[mode] = msgConf(f, pushA, mode, func(cfg *core.Config) {
			cfg.PreviousEncodingAESKey = core.NewSecret(pushD.key)
			cfg.TimestampWindow = -1
			cfg.MaxMessageBytes = 64 << 10
		})
	}
	f.Fuzz(func(t *testing.T, rawQuery string, body []byte, resign bool) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		if resign {
			ts, nonce := q.Get("timestamp"), q.Get("nonce")
			q.Set("signature", msgcrypt.Signature(pushA.token, ts, nonce))
			if env, err := msgcrypt.ParseEnvelope(body); err == nil {
				q.Set("msg_signature", msgcrypt.MsgSignature(pushA.token, ts, nonce, env.Encrypt))
			}
		}
		for mode, c := range confs {
			m, err := c.ReadMessage(q, bytes.NewReader(body))
			if (m == nil) == (err == nil) {
				t.Fatalf("%s: ReadMessage = %v, %v: want exactly one of a message and an error", mode, m, err)
			}
			if err != nil {
				continue
			}
			if mode == core.Safe && !m.Encrypted {
				t.Fatalf("safe mode accepted a plaintext push")
			}
			if _, err := m.Reply(m.XML); err != nil {
				t.Fatalf("%s: Reply: %v", mode, err)
			}
		}
	})
}

// BenchmarkReadMessage measures receiving an encrypted 1 KiB push: size
// limit, XML, msg_signature, decryption, XML again.
func BenchmarkReadMessage(b *testing.B) {
	c := msgConf(b, pushA, core.Safe, nil)
	content := strings.Repeat("消", 1024/3)
	q, body := encryptWith(b, pushA, pushA.key, pushA.appID, "<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA["+content+"]]></Content></xml>")
	r := strings.NewReader(body)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(body)
		if _, err := c.ReadMessage(q, r); err != nil {
			b.Fatal(err)
		}
	}
}
