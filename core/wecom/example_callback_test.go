package wecom_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
	"github.com/wechatconf/wechatconf/core/wecom"
)

// The values of Tencent's published WeCom callback sample
// (github.com/sbzhu/weworkapi_golang, sample.go).
const (
	sampleToken   = "QDG6eK"
	sampleKey     = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
	sampleCorpID  = "wx5823bf96d3bd56c7"
	sampleEncrypt = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)

// sampleCallback returns the sample's Callback, its clock at the sample's
// time (2014). In production leave Now unset and read the secrets from the
// environment.
func sampleCallback(unix int64) *wecom.Callback {
	cb, err := wecom.NewCallback(wecom.CallbackConfig{
		Token:          core.NewSecret(sampleToken),
		EncodingAESKey: core.NewSecret(sampleKey),
		CorpID:         sampleCorpID,
		Now:            func() time.Time { return time.Unix(unix, 0) },
	})
	if err != nil {
		log.Fatal(err)
	}
	return cb
}

// URL verification: WeCom sends a GET whose echostr is encrypted; the
// handler writes back its plaintext.
func ExampleCallback_VerifyURL() {
	cb := sampleCallback(1409659589)
	query, _ := url.ParseQuery("msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780" +
		"&echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D")
	echo, err := cb.VerifyURL(query)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(echo)

	query.Set("nonce", "1")
	_, err = cb.VerifyURL(query)
	fmt.Println(err)
	// Output:
	// 1616140317555161061
	// wechatconf: wecom: verify URL: msgcrypt: signature mismatch (msg_signature)
}

// ReadMessage takes the callback's query parameters and body, from any
// HTTP framework.
func ExampleCallback_ReadMessage() {
	cb := sampleCallback(1409659813)
	query, _ := url.ParseQuery("msg_signature=477715d11cdb4164915debcba66cb864d751f3e6&timestamp=1409659813&nonce=1372623149")
	body := strings.NewReader("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[" + sampleEncrypt + "]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>")

	msg, err := cb.ReadMessage(query, body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(msg.AgentID, msg.MsgType, msg.FromUserName)
	fmt.Println(string(msg.XML))
	// Output:
	// 218 text mycreate
	// <xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>
	// <FromUserName><![CDATA[mycreate]]></FromUserName>
	// <CreateTime>1409659813</CreateTime>
	// <MsgType><![CDATA[text]]></MsgType>
	// <Content><![CDATA[hello]]></Content>
	// <MsgId>4561255354251345929</MsgId>
	// <AgentID>218</AgentID>
	// </xml>
}

// A handler for the callback URL: GET is the URL verification, POST a
// callback, answered with an encrypted passive reply.
func ExampleCallback() {
	cb := sampleCallback(1409659813)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			echo, err := cb.VerifyURL(r.URL.Query())
			if err != nil {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			io.WriteString(w, echo)
			return
		}
		msg, err := cb.ParseMessage(r)
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		reply := fmt.Sprintf("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"+
			"<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[got %s]]></Content></xml>",
			msg.FromUserName, msg.ToUserName, msg.CreateTime, msg.MsgType)
		out, err := msg.Reply([]byte(reply))
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Write(out)
	})

	r := httptest.NewRequest(http.MethodPost, "/wecom?msg_signature=477715d11cdb4164915debcba66cb864d751f3e6&timestamp=1409659813&nonce=1372623149",
		strings.NewReader("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA["+sampleEncrypt+"]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"))
	w := httptest.NewRecorder()
	handler.ServeHTTP(w, r)

	// What WeCom does with the reply: verify and decrypt it.
	env, _ := msgcrypt.ParseEnvelope(w.Body.Bytes())
	c, _ := msgcrypt.New(sampleToken, sampleKey, sampleCorpID)
	fmt.Println(w.Code, msgcrypt.VerifyMsgSignature(sampleToken, env.TimeStamp, env.Nonce, env.Encrypt, env.MsgSignature))
	plain, _ := c.Decrypt(env.Encrypt)
	fmt.Println(string(plain))
	// Output:
	// 200 true
	// <xml><ToUserName><![CDATA[mycreate]]></ToUserName><FromUserName><![CDATA[wx5823bf96d3bd56c7]]></FromUserName><CreateTime>1409659813</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[got text]]></Content></xml>
}

// A CallbackConfig's secrets are core.Secret values: it prints, logs and
// marshals without them, even from an unexported field of another struct.
func ExampleCallbackConfig() {
	cfg := wecom.CallbackConfig{
		Token:          core.NewSecret(sampleToken), // core.NewSecret(os.Getenv(…)) in production
		EncodingAESKey: core.NewSecret(sampleKey),
		CorpID:         sampleCorpID,
	}
	fmt.Printf("%+v\n", cfg)
	type server struct {
		callback wecom.CallbackConfig
		addr     string
	}
	// fmt prints the unexported field by reflection: the secrets' addresses.
	s := fmt.Sprintf("%+v", server{cfg, ":8080"})
	fmt.Println(strings.Contains(s, sampleToken), strings.Contains(s, sampleKey))
	// Output:
	// {Token:REDACTED EncodingAESKey:REDACTED PreviousEncodingAESKey: CorpID:wx5823bf96d3bd56c7 ReceiveID: MaxMessageBytes:0 TimestampWindow:0s Now:<nil> Dedup:core.Dedup(nil)}
	// false false
}

// The callback URL's handler, once per callback across the fleet: a
// Dedup over the fleet's store (Redis, PostgreSQL, etcd…) in
// CallbackConfig.Dedup. WeCom's retries of a callback whose handler
// finished or is still running start no second handler.
func ExampleCallback_Handler() {
	dedup, err := core.NewDedup(core.DedupConfig{Store: core.NewMemoryStore()}) // the fleet's store in production
	if err != nil {
		log.Fatal(err)
	}
	cb, err := wecom.NewCallback(wecom.CallbackConfig{
		Token:          core.NewSecret(sampleToken), // core.NewSecret(os.Getenv(…))
		EncodingAESKey: core.NewSecret(sampleKey),
		CorpID:         sampleCorpID,
		Dedup:          dedup,
	})
	if err != nil {
		log.Fatal(err)
	}
	handler := cb.Handler(func(ctx context.Context, m *wecom.Message) ([]byte, error) {
		// Once per callback. Slower than 5 s? Answer nil and send the
		// answer later with the message API (发送应用消息).
		return nil, nil
	})
	mux := http.NewServeMux()
	mux.Handle("/wecom/callback", handler)
	fmt.Println(dedup)
	// Output:
	// core.Dedup{KeyPrefix: "wechatconf/push", Lease: 3s, Remember: 5m0s, Wait: 4.5s, FailClosed: false, NativeClaims: true}
}
