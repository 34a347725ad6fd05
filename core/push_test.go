package core_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wechatconf/wechatconf/core"
)

// deliver posts one delivery of an encrypted push to the handler and
// returns the status and body.
func deliver(t *testing.T, h http.Handler, q string, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/wechat?"+q, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

// Two instances' MessageHandlers over one store: the first delivery of a
// message runs the handler and answers its reply, encrypted; WeChat's
// retry to the other instance answers "success" and runs nothing. Two
// different events of one user in one second are both handled.
func TestMessageHandlerHandlesEachPushOnce(t *testing.T) {
	store := core.NewMemoryStore()
	var runs atomic.Int32
	var seen []string
	handler := func(ctx context.Context, m *core.Message) ([]byte, error) {
		runs.Add(1)
		seen = append(seen, m.MsgType+"/"+m.Event+"/"+m.MsgID)
		return []byte("<xml><Content>hi</Content></xml>"), nil
	}
	var instances []http.Handler
	for range 2 {
		d, err := core.NewDedup(core.DedupConfig{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		instances = append(instances, msgConf(t, pushA, core.Safe, func(c *core.Config) { c.Dedup = d }).MessageHandler(handler))
	}
	pushes := []string{
		"<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>1409304348</CreateTime><MsgType>text</MsgType><Content>a</Content><MsgId>6054768590064713728</MsgId></xml>",
		"<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>1409304348</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>",
		"<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>1409304348</CreateTime><MsgType>event</MsgType><Event>LOCATION</Event><Latitude>23.1</Latitude></xml>",
	}
	for i, p := range pushes {
		q, body := encryptWith(t, pushA, pushA.key, pushA.appID, p)
		code, reply := deliver(t, instances[0], q.Encode(), body)
		if code != 200 || !strings.Contains(reply, "<Encrypt>") {
			t.Fatalf("push %d, first delivery: %d %q; want 200 and the encrypted reply", i, code, reply)
		}
		if code, reply := deliver(t, instances[1], q.Encode(), body); code != 200 || reply != "success" {
			t.Fatalf("push %d, retry: %d %q; want 200 success", i, code, reply)
		}
	}
	if n := runs.Load(); n != 3 {
		t.Fatalf("handler ran %d times for 3 pushes and 6 deliveries (%v)", n, seen)
	}
	if seen[0] != "text//6054768590064713728" {
		t.Fatalf("MsgID not read: %v", seen)
	}
}

// A handler error answers 500 and lets the retry handle the push; a push
// that does not verify answers 400 and runs nothing; GET verifies the URL.
func TestMessageHandlerStatuses(t *testing.T) {
	d, err := core.NewDedup(core.DedupConfig{Store: core.NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	fail := true
	var runs atomic.Int32
	h := msgConf(t, pushA, core.Safe, func(c *core.Config) { c.Dedup = d }).MessageHandler(func(ctx context.Context, m *core.Message) ([]byte, error) {
		runs.Add(1)
		if fail {
			fail = false
			return nil, io.ErrUnexpectedEOF
		}
		return nil, nil
	})
	q, body := encryptWith(t, pushA, pushA.key, pushA.appID, "<xml><ToUserName>gh_1</ToUserName><MsgType>text</MsgType><MsgId>1</MsgId></xml>")
	if code, b := deliver(t, h, q.Encode(), body); code != 500 || strings.Contains(b, "unexpected") {
		t.Fatalf("failing handler: %d %q", code, b)
	}
	if code, b := deliver(t, h, q.Encode(), body); code != 200 || b != "" {
		t.Fatalf("retry: %d %q", code, b)
	}
	if code, _ := deliver(t, h, q.Encode(), strings.Replace(body, "<Encrypt><![CDATA[", "<Encrypt><![CDATA[x", 1)); code != 400 {
		t.Fatalf("forged push: %d", code)
	}
	if runs.Load() != 2 {
		t.Fatalf("runs %d", runs.Load())
	}
	vq := pushA.query(false)
	vq.Set("echostr", "hello")
	r := httptest.NewRequest(http.MethodGet, "/wechat?"+vq.Encode(), nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || w.Body.String() != "hello" {
		t.Fatalf("verify: %d %q", w.Code, w.Body.String())
	}
}
