package wxtest_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
	"github.com/wechatconf/wechatconf/core/wecom"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	encToken = "pushtoken"
	encKey   = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// TestEncryptPush tests that an Official Account in safe mode reads the
// push EncryptPush builds: signatures, envelope, plaintext and AppID.
func TestEncryptPush(t *testing.T) {
	now := time.Now()
	plain := []byte("<xml><ToUserName><![CDATA[gh_push]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName>" +
		"<CreateTime>" + itoa(now.Unix()) + "</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>42</MsgId></xml>")
	q, body, err := wxtest.EncryptPush(encToken, encKey, appID, plain, now.Unix(), "nonce1")
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("encrypt_type") != "aes" || q.Get("nonce") != "nonce1" || !msgcrypt.VerifySignature(encToken, q.Get("timestamp"), "nonce1", q.Get("signature")) {
		t.Fatalf("query %v", q)
	}
	if !bytes.HasPrefix(body, []byte("<xml><ToUserName><![CDATA[gh_push]]></ToUserName><Encrypt>")) {
		t.Fatalf("body %s", body)
	}
	conf, err := core.New(core.Config{AppID: appID, Token: core.NewSecret(encToken), EncodingAESKey: core.NewSecret(encKey), EncryptMode: core.Safe})
	if err != nil {
		t.Fatal(err)
	}
	m, err := conf.ReadMessage(q, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	if !bytes.Equal(m.XML, plain) || !m.Encrypted || m.MsgID != "42" || m.ToUserName != "gh_push" || m.FromUserName != "oUser" {
		t.Fatalf("ReadMessage = %+v", m)
	}
	// For another AppID, the push does not decrypt.
	q, body, err = wxtest.EncryptPush(encToken, encKey, "wxother", plain, now.Unix(), "nonce1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conf.ReadMessage(q, bytes.NewReader(body)); err == nil {
		t.Fatal("a push for another AppID was read")
	}
	if _, _, err := wxtest.EncryptPush(encToken, "short", appID, plain, 1, "1"); err == nil {
		t.Fatal("a bad key was accepted")
	}
}

// TestEncryptWeComCallback tests that a wecom.Callback reads the callback
// EncryptWeComCallback builds, with its AgentID in the envelope.
func TestEncryptWeComCallback(t *testing.T) {
	now := time.Now()
	plain := []byte("<xml><ToUserName><![CDATA[wwcorp]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName>" +
		"<CreateTime>" + itoa(now.Unix()) + "</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[click]]></Event>" +
		"<EventKey><![CDATA[k]]></EventKey><AgentID>1000002</AgentID></xml>")
	q, body, err := wxtest.EncryptWeComCallback(encToken, encKey, "wwcorp", plain, now.Unix(), "nonce2")
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 3 || q.Get("nonce") != "nonce2" {
		t.Fatalf("query %v", q)
	}
	if !strings.HasSuffix(string(body), "<AgentID><![CDATA[1000002]]></AgentID></xml>") {
		t.Fatalf("body %s", body)
	}
	cb, err := wecom.NewCallback(wecom.CallbackConfig{Token: core.NewSecret(encToken), EncodingAESKey: core.NewSecret(encKey), CorpID: "wwcorp"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cb.ReadMessage(q, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	if !bytes.Equal(m.XML, plain) || m.Event != "click" || m.FromUserName != "zhangsan" {
		t.Fatalf("ReadMessage = %+v", m)
	}
	q.Set("nonce", "other")
	if _, err := cb.ReadMessage(q, bytes.NewReader(body)); err == nil {
		t.Fatal("a callback with a wrong signature was read")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
