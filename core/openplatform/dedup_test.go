package openplatform_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
	"github.com/wechatconf/wechatconf/core/openplatform"
)

// authorizerPush encrypts an authorizer's push for the component, as
// WeChat sends it to the message URL.
func authorizerPush(t *testing.T, plain string) (url.Values, string) {
	t.Helper()
	c, err := msgcrypt.New(pushToken, pushKey, componentAppID)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "n0nce"
	q := url.Values{"timestamp": {ts}, "nonce": {nonce}, "encrypt_type": {"aes"},
		"signature": {msgcrypt.Signature(pushToken, ts, nonce)}, "msg_signature": {msgcrypt.MsgSignature(pushToken, ts, nonce, enc)}}
	return q, "<xml><ToUserName><![CDATA[gh_merchant]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"
}

// Two instances of a component over one store: an authorizer's message is
// handled once whichever instance each delivery reaches; the same MsgId
// for another authorizer is another push.
func TestMessageHandlerHandlesEachAuthorizerPushOnce(t *testing.T) {
	store := core.NewMemoryStore()
	var runs atomic.Int32
	var instances []http.Handler
	for range 2 {
		d, err := core.NewDedup(core.DedupConfig{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		c := newComponent(t, store, func(cfg *openplatform.Config) {
			cfg.Token, cfg.EncodingAESKey, cfg.Dedup = core.NewSecret(pushToken), core.NewSecret(pushKey), d
		})
		instances = append(instances, c.MessageHandler(func(ctx context.Context, m *core.Message) ([]byte, error) {
			runs.Add(1)
			return nil, nil
		}))
	}
	for _, to := range []string{"gh_merchant1", "gh_merchant2"} {
		q, body := authorizerPush(t, "<xml><ToUserName>"+to+"</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><MsgId>42</MsgId></xml>")
		for i, h := range []http.Handler{instances[0], instances[1]} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/wx"+to+"/callback?"+q.Encode(), strings.NewReader(body)))
			b, _ := io.ReadAll(w.Result().Body)
			if w.Code != 200 || (i == 1) != (string(b) == "success") {
				t.Fatalf("%s delivery %d: %d %q", to, i, w.Code, b)
			}
		}
	}
	if n := runs.Load(); n != 2 {
		t.Fatalf("handler ran %d times for 2 pushes delivered twice each", n)
	}
}
