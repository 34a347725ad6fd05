package core_test

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
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// sampleEncrypt is the <Encrypt> of Tencent's published sample push
// (token spamtest, EncodingAESKey abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG,
// AppID wx2c2769f8efd9abc2).
const sampleEncrypt = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="

// sampleConf returns a Conf in safe mode with the sample's credentials,
// its clock at the sample's time. In production leave Now unset.
func sampleConf() *core.Conf {
	conf, err := core.New(core.Config{
		Token:          core.NewSecret("spamtest"),
		AppID:          "wx2c2769f8efd9abc2",
		EncodingAESKey: core.NewSecret("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
		EncryptMode:    core.Safe,
		Now:            func() time.Time { return time.Unix(1409735670, 0) },
	})
	if err != nil {
		log.Fatal(err)
	}
	return conf
}

// URL verification: WeChat sends a GET with signature, timestamp, nonce and
// echostr; the handler writes echostr back.
func ExampleConf_VerifyURL() {
	conf := sampleConf()
	query, _ := url.ParseQuery("signature=16120ec1b8dbb870f510d87ce6bc2463eae6ca1a&timestamp=1409735669&nonce=1320562132&echostr=5838479218127813673")
	echostr, err := conf.VerifyURL(query)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(echostr)

	query.Set("nonce", "1")
	_, err = conf.VerifyURL(query)
	fmt.Println(err)
	// Output:
	// 5838479218127813673
	// wechatconf: verify URL: msgcrypt: signature mismatch (signature)
}

// ReadMessage takes the push's query parameters and body, from any HTTP
// framework.
func ExampleConf_ReadMessage() {
	conf := sampleConf()
	query, _ := url.ParseQuery("signature=16120ec1b8dbb870f510d87ce6bc2463eae6ca1a&timestamp=1409735669&nonce=1320562132" +
		"&openid=oyORnuP8q7ou2gfYjqLzSIWZf0rs&encrypt_type=aes&msg_signature=5d197aaffba7e9b25a30732f161a50dee96bd5fa")
	body := strings.NewReader("<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[" + sampleEncrypt + "]]></Encrypt></xml>")

	msg, err := conf.ReadMessage(query, body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(msg.Encrypted, msg.MsgType, msg.FromUserName)
	fmt.Println(string(msg.XML))
	// Output:
	// true text oyORnuP8q7ou2gfYjqLzSIWZf0rs
	// <xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>
	// <FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>
	// <CreateTime>1409735668</CreateTime>
	// <MsgType><![CDATA[text]]></MsgType>
	// <Content><![CDATA[abcdteT]]></Content>
	// <MsgId>6054768590064713728</MsgId>
	// </xml>
}

// A net/http handler for the server URL: URL verification on GET, pushes
// on POST, each answered with a reply encrypted as the push was.
func ExampleConf_ParseMessage() {
	conf := sampleConf()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			echostr, err := conf.VerifyURL(r.URL.Query())
			if err != nil {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			io.WriteString(w, echostr)
			return
		}
		msg, err := conf.ParseMessage(r)
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		reply := fmt.Sprintf("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"+
			"<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[收到]]></Content></xml>",
			msg.FromUserName, msg.ToUserName, time.Now().Unix())
		out, err := msg.Reply([]byte(reply))
		if err != nil {
			io.WriteString(w, "success") // no reply rather than a broken one
			return
		}
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		w.Write(out)
	})

	// What WeChat would send:
	push := httptest.NewRequest(http.MethodPost, "/wechat?signature=16120ec1b8dbb870f510d87ce6bc2463eae6ca1a&timestamp=1409735669&nonce=1320562132"+
		"&openid=oyORnuP8q7ou2gfYjqLzSIWZf0rs&encrypt_type=aes&msg_signature=5d197aaffba7e9b25a30732f161a50dee96bd5fa",
		strings.NewReader("<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA["+sampleEncrypt+"]]></Encrypt></xml>"))
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, push)
	env, err := msgcrypt.ParseEnvelope(rec.Body.Bytes())
	fmt.Println(rec.Code, err == nil && env.MsgSignature != "")

	forged := httptest.NewRequest(http.MethodPost, "/wechat?encrypt_type=aes&msg_signature=0&timestamp=1409735669&nonce=1", strings.NewReader("<xml/>"))
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, forged)
	fmt.Println(rec.Code)
	// Output:
	// 200 true
	// 400
}

// Reply encrypts the reply with the key the push came with; WeChat checks
// its MsgSignature.
func ExampleMessage_Reply() {
	conf := sampleConf()
	query, _ := url.ParseQuery("timestamp=1409735669&nonce=1320562132&encrypt_type=aes&msg_signature=5d197aaffba7e9b25a30732f161a50dee96bd5fa")
	msg, err := conf.ReadMessage(query, strings.NewReader("<xml><Encrypt><![CDATA["+sampleEncrypt+"]]></Encrypt></xml>"))
	if err != nil {
		log.Fatal(err)
	}
	out, err := msg.Reply([]byte("<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[ok]]></Content></xml>"))
	if err != nil {
		log.Fatal(err)
	}
	// What WeChat does with it:
	env, _ := msgcrypt.ParseEnvelope(out)
	c, _ := msgcrypt.New("spamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2")
	plain, err := c.DecryptMessage(env.MsgSignature, env.TimeStamp, env.Nonce, out)
	fmt.Println(env.TimeStamp, string(plain), err)

	none, _ := msg.Reply([]byte("success")) // "no reply" is never encrypted
	fmt.Println(string(none))
	// Output:
	// 1409735670 <xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[ok]]></Content></xml> <nil>
	// success
}

// JSSDKConfig gives a page what it passes to wx.config.
func ExampleConf_JSSDKConfig() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "secret"})
	defer wechat.Close()
	conf, err := core.New(core.Config{AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("secret"), BaseURL: wechat.URL, Now: wechat.Now})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	cfg, err := conf.JSSDKConfig(ctx, "https://example.com/shop?item=1#/cart")
	if err != nil {
		log.Fatal(err)
	}
	// The page runs: wx.config({appId, timestamp, nonceStr, signature, jsApiList: [...]})
	ticket, _ := conf.JSAPITicket(ctx) // the ticket it was signed with
	fmt.Println(cfg.AppID, cfg.Timestamp == wechat.Now().Unix(),
		cfg.Signature == core.JSSDKSignature(ticket.Value, cfg.NonceStr, cfg.Timestamp, "https://example.com/shop?item=1"))
	// Output: wx0123456789abcdef true true
}

// The published JS-SDK example.
func ExampleJSSDKSignature() {
	fmt.Println(core.JSSDKSignature(
		"sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
		"Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value"))
	// Output: 0f9de62fce790f9a083d5c99e95740ceb90c27ed
}
