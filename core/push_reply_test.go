package core_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// A handler that finished but whose reply cannot be encoded (an XML reply
// to a push in the JSON data format) has handled the push: WeChat's retry
// does not run it again. The error reaches the caller, with no body.
func TestHandleMessageReplyErrorStillHandledOnce(t *testing.T) {
	d, err := core.NewDedup(core.DedupConfig{Store: core.NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	c := msgConf(t, pushA, core.Safe, func(c *core.Config) { c.Dedup = d })
	var runs atomic.Int32
	h := func(ctx context.Context, m *core.Message) ([]byte, error) {
		runs.Add(1) // a coupon granted, an order created
		return []byte("<xml><MsgType>text</MsgType></xml>"), nil
	}
	q, body := jsonPush(t, pushA.key, pushA.appID, jsonPlain)
	for i := range 2 {
		m, err := c.ReadMessage(q, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, o, err := c.HandleMessage(context.Background(), m, h)
		if i == 0 && (!errors.Is(err, msgcrypt.ErrJSON) || b != nil) {
			t.Errorf("delivery %d: %q, %v, %v; want no body and the reply's ErrJSON", i, b, o, err)
		}
		if i == 1 && (o != core.PushDuplicate || err != nil) {
			t.Errorf("retry: %q, %v, %v; want a duplicate", b, o, err)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the handler ran %d times for one push whose handler finished", n)
	}
}
