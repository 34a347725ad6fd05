package msgcrypt_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

func TestDecodeJSON(t *testing.T) {
	var v map[string]any
	for _, ok := range []string{`{}`, " {\"a\":1}\n", `{"a":{"b":[1,2]}}`} {
		if err := msgcrypt.DecodeJSON([]byte(ok), &v); err != nil {
			t.Errorf("DecodeJSON(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{``, ` `, `[]`, `"x"`, `{`, `{}{}`, `{} x`, `<xml/>`, `{"a":1}]`} {
		if err := msgcrypt.DecodeJSON([]byte(bad), &v); !errors.Is(err, msgcrypt.ErrJSON) {
			t.Errorf("DecodeJSON(%q) = %v, want ErrJSON", bad, err)
		}
	}
}

func TestParseJSONEnvelope(t *testing.T) {
	e, err := msgcrypt.ParseJSONEnvelope([]byte(`{"ToUserName":"gh_x","Encrypt":"abc"}`))
	if err != nil || e.ToUserName != "gh_x" || e.Encrypt != "abc" {
		t.Fatalf("ParseJSONEnvelope = %+v, %v", e, err)
	}
	if _, err := msgcrypt.ParseJSONEnvelope([]byte(`{"ToUserName":"gh_x"}`)); !errors.Is(err, msgcrypt.ErrNoEncrypt) {
		t.Errorf("no Encrypt: %v, want ErrNoEncrypt", err)
	}
	if _, err := msgcrypt.ParseJSONEnvelope([]byte(`{"Encrypt":1}`)); !errors.Is(err, msgcrypt.ErrJSON) {
		t.Errorf("Encrypt a number: %v, want ErrJSON", err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	const token, key, appID = "spamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2"
	c, err := msgcrypt.New(token, key, appID)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(`{"MsgType":"text","Content":"你好"}`)
	reply, err := c.EncryptJSONMessage(msg, "1409735669", "1320562132")
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Encrypt, MsgSignature, Nonce string
		TimeStamp                    json.Number
	}
	if err := json.Unmarshal(reply, &env); err != nil {
		t.Fatal(err)
	}
	if env.TimeStamp != "1409735669" || env.Nonce != "1320562132" {
		t.Fatalf("reply %s", reply)
	}
	body, _ := json.Marshal(map[string]string{"ToUserName": "gh_x", "Encrypt": env.Encrypt})
	got, err := c.DecryptJSONMessage(env.MsgSignature, "1409735669", "1320562132", body)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("DecryptJSONMessage = %q, %v", got, err)
	}
	if _, err := c.DecryptJSONMessage(env.MsgSignature, "1409735670", "1320562132", body); !errors.Is(err, msgcrypt.ErrSignature) {
		t.Errorf("another timestamp: %v, want ErrSignature", err)
	}
}

func TestMarshalJSONReplyTimeStamp(t *testing.T) {
	for ts, want := range map[string]string{
		"1409735669": `1409735669`,
		"+5":         `"+5"`,
		"007":        `"007"`,
		"soon":       `"soon"`,
	} {
		var env map[string]json.RawMessage
		if err := json.Unmarshal(msgcrypt.MarshalJSONReply("e", "s", ts, "n"), &env); err != nil {
			t.Fatalf("%q: %v", ts, err)
		}
		if got := string(env["TimeStamp"]); got != want {
			t.Errorf("TimeStamp for %q = %s, want %s", ts, got, want)
		}
	}
}
