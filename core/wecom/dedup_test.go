package wecom_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
	"github.com/wechatconf/wechatconf/core/wecom"
)

// Two instances' Handlers over one store: a message is handled once
// whichever instance each delivery reaches, and the change_contact events
// WeCom sends from "sys" in one second are each handled (their content
// tells them apart), each once.
func TestHandlerHandlesEachCallbackOnce(t *testing.T) {
	v := official(t)
	store := core.NewMemoryStore()
	var mu sync.Mutex
	count := map[string]int{}
	var instances []http.Handler
	for range 2 {
		d, err := core.NewDedup(core.DedupConfig{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		cfg := v.config(v.Push.Timestamp)
		cfg.Dedup = d
		cb, err := wecom.NewCallback(cfg)
		if err != nil {
			t.Fatal(err)
		}
		instances = append(instances, cb.Handler(func(ctx context.Context, m *wecom.Message) ([]byte, error) {
			mu.Lock()
			count[string(m.XML)]++
			mu.Unlock()
			return nil, nil
		}))
	}
	crypter, err := msgcrypt.New(v.Token, v.EncodingAESKey, v.CorpID)
	if err != nil {
		t.Fatal(err)
	}
	pushes := []string{
		"<xml><ToUserName>" + v.CorpID + "</ToUserName><FromUserName>u1</FromUserName><CreateTime>1409659813</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>4561255354251345929</MsgId><AgentID>218</AgentID></xml>",
		"<xml><ToUserName>" + v.CorpID + "</ToUserName><FromUserName>sys</FromUserName><CreateTime>1409659813</CreateTime><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>create_user</ChangeType><UserID>a</UserID></xml>",
		"<xml><ToUserName>" + v.CorpID + "</ToUserName><FromUserName>sys</FromUserName><CreateTime>1409659813</CreateTime><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>create_user</ChangeType><UserID>b</UserID></xml>",
	}
	for i, p := range pushes {
		enc, err := crypter.Encrypt([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		q, body := v.signed(enc)
		for delivery, h := range []http.Handler{instances[0], instances[1], instances[0]} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/cb?"+q.Encode(), strings.NewReader(body)))
			b, _ := io.ReadAll(w.Result().Body)
			want := ""
			if delivery > 0 {
				want = "success"
			}
			if w.Code != 200 || string(b) != want {
				t.Fatalf("push %d delivery %d: %d %q, want 200 %q", i, delivery, w.Code, b, want)
			}
		}
	}
	if len(count) != 3 {
		t.Fatalf("%d distinct callbacks handled, want 3", len(count))
	}
	for p, n := range count {
		if n != 1 {
			t.Errorf("handled %d times: %s", n, p)
		}
	}
}
