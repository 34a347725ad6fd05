package core_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// jsonPlain is a Mini Program push in the JSON data format.
const jsonPlain = `{"ToUserName":"gh_3a1b2c3d4e5f","FromUserName":"oUser","CreateTime":1409735668,"MsgType":"event","Event":"wxa_media_check","trace_id":"t1","result":{"suggest":"pass","label":100}}`

// jsonPush returns pushA's credentials' encrypted JSON push of plain, dated
// at pushA's timestamp.
func jsonPush(t testing.TB, key, appID, plain string) (url.Values, string) {
	t.Helper()
	ts, _ := strconv.ParseInt(pushA.timestamp, 10, 64)
	q, body, err := wxtest.EncryptJSONPush(pushA.token, key, appID, []byte(plain), ts, pushA.nonce)
	if err != nil {
		t.Fatal(err)
	}
	return q, string(body)
}

func TestReadMessageJSON(t *testing.T) {
	for _, mode := range []core.EncryptMode{core.Compatible, core.Safe} {
		t.Run(string(mode), func(t *testing.T) {
			c := msgConf(t, pushA, mode, nil)
			q, body := jsonPush(t, pushA.key, pushA.appID, jsonPlain)
			m, err := c.ReadMessage(q, strings.NewReader("\n "+body))
			if err != nil {
				t.Fatal(err)
			}
			if !m.JSON || !m.Encrypted || m.PreviousKey || string(m.XML) != jsonPlain {
				t.Fatalf("message %+v", m)
			}
			if m.ToUserName != "gh_3a1b2c3d4e5f" || m.FromUserName != "oUser" || m.CreateTime != 1409735668 || m.MsgType != "event" || m.Event != "wxa_media_check" {
				t.Fatalf("header %q %q %d %q %q", m.ToUserName, m.FromUserName, m.CreateTime, m.MsgType, m.Event)
			}
			var v struct {
				TraceID string `json:"trace_id"`
				Result  struct{ Suggest string }
			}
			if err := m.Unmarshal(&v); err != nil || v.TraceID != "t1" || v.Result.Suggest != "pass" {
				t.Fatalf("Unmarshal = %+v, %v", v, err)
			}
		})
	}
	for _, mode := range []core.EncryptMode{core.Normal, core.Compatible} {
		t.Run(string(mode)+"Plain", func(t *testing.T) {
			c := msgConf(t, pushA, mode, nil)
			plain := `{"ToUserName":"gh_x","FromUserName":"oUser","CreateTime":"1409735668","MsgType":"text","Content":"hi"}`
			m, err := c.ReadMessage(pushA.query(false), strings.NewReader(plain))
			if err != nil {
				t.Fatal(err)
			}
			if !m.JSON || m.Encrypted || m.CreateTime != 1409735668 || m.MsgType != "text" {
				t.Fatalf("message %+v", m)
			}
			var v struct{ Content string }
			if err := m.Unmarshal(&v); err != nil || v.Content != "hi" {
				t.Fatalf("Unmarshal = %+v, %v", v, err)
			}
		})
	}
	t.Run("XMLUnmarshal", func(t *testing.T) {
		m, err := msgConf(t, pushA, core.Safe, nil).ReadMessage(pushA.query(true), strings.NewReader(pushA.body()))
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ Content string }
		if m.JSON || m.Unmarshal(&v) != nil || v.Content == "" {
			t.Fatalf("XML message: JSON %v, Content %q", m.JSON, v.Content)
		}
	})
	t.Run("PreviousKey", func(t *testing.T) {
		c := msgConf(t, pushA, core.Safe, func(cfg *core.Config) {
			cfg.EncodingAESKey, cfg.PreviousEncodingAESKey = core.NewSecret(keyB), core.NewSecret(pushA.key)
		})
		q, body := jsonPush(t, pushA.key, pushA.appID, jsonPlain)
		m, err := c.ReadMessage(q, strings.NewReader(body))
		if err != nil || !m.PreviousKey || !m.JSON {
			t.Fatalf("ReadMessage = %+v, %v; want the previous key to decrypt", m, err)
		}
	})
}

func TestReadMessageJSONRejectsBadInput(t *testing.T) {
	v := pushA
	good := func() (url.Values, string) { return jsonPush(t, v.key, v.appID, jsonPlain) }
	tests := []struct {
		name string
		push func() (url.Values, string)
		want error
	}{
		{"WrongMsgSignature", func() (url.Values, string) {
			q, b := good()
			return withParam(q, "msg_signature", v.signature), b
		}, msgcrypt.ErrSignature},
		{"EncryptTampered", func() (url.Values, string) {
			q, b := good()
			var env map[string]string
			_ = json.Unmarshal([]byte(b), &env)
			// Another first character (the ciphertext is random: it
			// may begin with "A" already).
			first := "A"
			if strings.HasPrefix(env["Encrypt"], first) {
				first = "B"
			}
			env["Encrypt"] = first + env["Encrypt"][1:]
			nb, _ := json.Marshal(env)
			return q, string(nb)
		}, msgcrypt.ErrSignature},
		{"WrongSignaturePlain", func() (url.Values, string) {
			return withParam(v.query(false), "signature", v.msgSignature), jsonPlain
		}, msgcrypt.ErrSignature},
		{"TimestampOld", func() (url.Values, string) {
			q, b, _ := wxtest.EncryptJSONPush(v.token, v.key, v.appID, []byte(jsonPlain), 1409735300, v.nonce)
			return q, string(b)
		}, msgcrypt.ErrTimestamp},
		{"WrongAppID", func() (url.Values, string) { return jsonPush(t, v.key, "wx0000000000000000", jsonPlain) }, msgcrypt.ErrAppID},
		{"WrongKey", func() (url.Values, string) { return jsonPush(t, keyB, v.appID, jsonPlain) }, errWrongKey},
		{"Malformed", func() (url.Values, string) {
			q, b := good()
			return q, b[:len(b)-1]
		}, msgcrypt.ErrJSON},
		{"TrailingData", func() (url.Values, string) {
			q, b := good()
			return q, b + "{}"
		}, msgcrypt.ErrJSON},
		{"EncryptNotString", func() (url.Values, string) {
			q, _ := good()
			return q, `{"ToUserName":"gh_x","Encrypt":42}`
		}, msgcrypt.ErrJSON},
		{"NoEncrypt", func() (url.Values, string) {
			q, _ := good()
			return q, `{"ToUserName":"gh_x"}`
		}, msgcrypt.ErrNoEncrypt},
		{"DecryptedNotJSON", func() (url.Values, string) { return jsonPush(t, v.key, v.appID, "<xml/>") }, msgcrypt.ErrJSON},
		{"DecryptedBadCreateTime", func() (url.Values, string) {
			return jsonPush(t, v.key, v.appID, `{"CreateTime":"soon"}`)
		}, msgcrypt.ErrJSON},
		{"MalformedPlain", func() (url.Values, string) { return v.query(false), `{"MsgType":` }, msgcrypt.ErrJSON},
	}
	for _, mode := range []core.EncryptMode{core.Compatible, core.Safe} {
		c := msgConf(t, v, mode, nil)
		for _, tt := range tests {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				q, body := tt.push()
				want := tt.want
				if mode == core.Safe && q.Get("encrypt_type") == "" {
					want = msgcrypt.ErrNoEncrypt
				}
				m, err := c.ReadMessage(q, strings.NewReader(body))
				if want == errWrongKey && (errors.Is(err, msgcrypt.ErrPadding) || errors.Is(err, msgcrypt.ErrLength) || errors.Is(err, msgcrypt.ErrAppID)) {
					want = err // random bytes fail whichever check comes first
				}
				if !errors.Is(err, want) || m != nil {
					t.Fatalf("ReadMessage = %v, %v; want error %v", m, err, want)
				}
				if !strings.HasPrefix(err.Error(), "wechatconf: receive message: ") || strings.Contains(err.Error(), v.key) {
					t.Errorf("error text %q", err)
				}
			})
		}
	}
}

func TestReplyJSON(t *testing.T) {
	const reply = `{"ToUserName":"oUser","MsgType":"transfer_customer_service"}`
	c := msgConf(t, pushA, core.Safe, nil)
	q, body := jsonPush(t, pushA.key, pushA.appID, jsonPlain)
	m, err := c.ReadMessage(q, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Reply([]byte(reply))
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Encrypt, MsgSignature, Nonce string
		TimeStamp                    int64
	}
	if err := json.Unmarshal(out, &env); err != nil {
		t.Fatalf("reply %s: %v", out, err)
	}
	if want := clockAt(pushA.timestamp)().Unix(); env.TimeStamp != want {
		t.Errorf("TimeStamp %d, want %d", env.TimeStamp, want)
	}
	ts := strconv.FormatInt(env.TimeStamp, 10)
	if !msgcrypt.VerifyMsgSignature(pushA.token, ts, env.Nonce, env.Encrypt, env.MsgSignature) {
		t.Error("reply MsgSignature does not verify")
	}
	cr, _ := msgcrypt.New(pushA.token, pushA.key, pushA.appID)
	if got, err := cr.Decrypt(env.Encrypt); err != nil || string(got) != reply {
		t.Errorf("reply decrypts to %q, %v", got, err)
	}
	for _, s := range []string{"", "success"} {
		if got, err := m.Reply([]byte(s)); err != nil || string(got) != s {
			t.Errorf("Reply(%q) = %q, %v; want it unchanged", s, got, err)
		}
	}
	if _, err := m.Reply([]byte("<xml><MsgType>text</MsgType></xml>")); !errors.Is(err, msgcrypt.ErrJSON) {
		t.Errorf("XML reply to a JSON push: %v, want ErrJSON", err)
	}

	plainMsg, err := msgConf(t, pushA, core.Normal, nil).ReadMessage(pushA.query(false), strings.NewReader(jsonPlain))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := plainMsg.Reply([]byte(reply)); err != nil || !bytes.Equal(got, []byte(reply)) {
		t.Errorf("Reply to a plaintext JSON push = %q, %v; want it unchanged", got, err)
	}
	if _, err := plainMsg.Reply([]byte("not json")); !errors.Is(err, msgcrypt.ErrJSON) {
		t.Errorf("non-JSON reply to a plaintext JSON push: %v, want ErrJSON", err)
	}
}

// FuzzReadMessageJSON tests that ReadMessage never panics and never returns
// both a message and an error on JSON bodies; with resign set the query is
// signed for the body's Encrypt, so that decryption is reached.
func FuzzReadMessageJSON(f *testing.F) {
	q, body := jsonPush(f, pushA.key, pushA.appID, jsonPlain)
	f.Add(q.Encode(), []byte(body), false)
	f.Add(q.Encode(), []byte(body), true)
	f.Add(pushA.query(false).Encode(), []byte(jsonPlain), false)
	f.Add("encrypt_type=aes", []byte(`{"Encrypt":"AAAA"}`), true)
	f.Add("encrypt_type=aes", []byte(`{"Encrypt":"`+pushD.encrypt+`"}`), true)
	f.Add("", []byte(`{"CreateTime":"1e3"}`), false)
	f.Add("", []byte(`{`), false)
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
			if env, err := msgcrypt.ParseJSONEnvelope(body); err == nil {
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
			if m.JSON && !json.Valid(m.XML) {
				t.Fatalf("a JSON message whose plaintext is not JSON: %q", m.XML)
			}
			if _, err := m.Reply(m.XML); err != nil {
				t.Fatalf("%s: Reply: %v", mode, err)
			}
		}
	})
}

// errWrongKey stands for the errors of a ciphertext made with another
// key: its plaintext is random bytes, which fail the padding check, or
// (1 time in about 200) pass it and fail the length or AppID check.
var errWrongKey = errors.New("wrong key")
