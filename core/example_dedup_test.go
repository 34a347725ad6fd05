package core_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// One option makes every instance behind the load balancer handle each
// push once: a Dedup over the fleet's store (Redis, PostgreSQL, etcd…;
// a MemoryStore here). WeChat's retries of a push whose handler finished
// or is still running start no second handler; a handler that fails or
// dies frees the push for the next retry.
func ExampleConf_MessageHandler() {
	store := core.NewMemoryStore() // redisstore.New(client) in production
	dedup, err := core.NewDedup(core.DedupConfig{Store: store})
	if err != nil {
		log.Fatal(err)
	}
	conf, err := core.New(core.Config{
		AppID:          "wx2c2769f8efd9abc2",
		Token:          core.NewSecret("spamtest"), // core.NewSecret(os.Getenv(…))
		EncodingAESKey: core.NewSecret("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
		Store:          store,
		Dedup:          dedup,
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/wechat", conf.MessageHandler(func(ctx context.Context, m *core.Message) ([]byte, error) {
		// Runs once per push across the fleet. Granting a coupon, creating
		// an order: it happens once. Slower than WeChat's 5 s? Answer nil
		// and reply later through the customer-service API.
		if m.MsgType == "text" {
			return []byte("<xml><ToUserName><![CDATA[" + m.FromUserName + "]]></ToUserName><FromUserName><![CDATA[" + m.ToUserName +
				"]]></FromUserName><CreateTime>" + fmt.Sprint(time.Now().Unix()) + "</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[received]]></Content></xml>"), nil
		}
		return nil, nil // "success": nothing to say
	}))
	fmt.Println(dedup)
	// Output:
	// core.Dedup{KeyPrefix: "wechatconf/push", Lease: 3s, Remember: 5m0s, Wait: 4.5s, FailClosed: false, NativeClaims: true}
}

// Do is the mechanism under every handler API, for pushes read by other
// means (another SDK's server, a queue): run the work once per key across
// the fleet and answer WeChat as the outcome says.
func ExampleDedup_Do() {
	dedup, err := core.NewDedup(core.DedupConfig{Store: core.NewMemoryStore()})
	if err != nil {
		log.Fatal(err)
	}
	key := core.PushKey("gh_123456789abc", "6054768590064713728", "", 0, "", nil)
	for delivery := 1; delivery <= 2; delivery++ {
		outcome, err := dedup.Do(context.Background(), key, func(ctx context.Context) error {
			fmt.Println("handling", key)
			return nil
		})
		fmt.Println(delivery, outcome, outcome.HTTPStatus(), err)
	}
	// Output:
	// handling gh_123456789abc/m/6054768590064713728
	// 1 handled 200 <nil>
	// 2 duplicate 200 <nil>
}
