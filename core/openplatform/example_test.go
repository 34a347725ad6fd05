package openplatform_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// A third-party platform's chain on the simulated Open Platform: WeChat
// pushes a component_verify_ticket, a merchant authorizes, and the
// merchant's account is then called like a single account's Conf. In
// production the pushes arrive at the authorization event URL
// (ParseEvent in its handler) and the store is shared by the fleet.
func ExampleNew() {
	wx := wxtest.New(wxtest.Options{Components: []wxtest.Component{{AppID: "wxcomponent000001", AppSecret: "the-component-secret"}}})
	defer wx.Close()
	const token, key = "pushToken", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

	component, err := openplatform.New(openplatform.Config{
		AppID:          "wxcomponent000001",
		AppSecret:      core.NewSecret("the-component-secret"),
		Token:          core.NewSecret(token),
		EncodingAESKey: core.NewSecret(key),
		Store:          core.NewMemoryStore(), // Redis, PostgreSQL, etcd: shared by the fleet
		BaseURL:        wx.URL,                // omit for api.weixin.qq.com
		Now:            wx.Now,
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	// 1. The ticket push (every 10 minutes, to the authorization event URL).
	q, body, _, _ := wx.VerifyTicketPush("wxcomponent000001", token, key)
	ev, err := component.HandleEvent(ctx, q, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	fmt.Println(ev.InfoType, ev.Applied)

	// 2. A merchant authorizes: the authorized push carries the code.
	code := wx.Authorize("wxcomponent000001", "wxmerchant000001")
	q, body, _ = wx.AuthorizedPush(code, token, key)
	if ev, err = component.HandleEvent(ctx, q, bytes.NewReader(body)); err != nil {
		panic(err)
	}
	fmt.Println(ev.InfoType, ev.AuthorizerAppID)

	// 3. The merchant's account, as a core.Conf.
	merchant := component.Authorizer("wxmerchant000001")
	var ips struct {
		IPList []string `json:"ip_list"`
	}
	if err := merchant.Do(ctx, http.MethodGet, "/cgi-bin/getcallbackip", nil, nil, &ips); err != nil {
		panic(err)
	}
	fmt.Println("merchant API call:", len(ips.IPList) > 0)
	fmt.Println("durable:", component.AuthorizationKey("wxmerchant000001"))
	// Output:
	// component_verify_ticket stored
	// authorized wxmerchant000001
	// merchant API call: true
	// durable: wechatconf/open/wxcomponent000001/wxmerchant000001/authorizer_refresh_token
}

// The message URL (消息与事件接收URL, "/$APPID$/callback") of a component
// that receives its authorizers' messages, each handled once across the
// fleet: a Dedup over the fleet's store in Config.Dedup.
func ExampleComponent_MessageHandler() {
	store := core.NewMemoryStore() // Redis, PostgreSQL, etcd: shared by the fleet
	dedup, err := core.NewDedup(core.DedupConfig{Store: store})
	if err != nil {
		panic(err)
	}
	component, err := openplatform.New(openplatform.Config{
		AppID:          "wxcomponent000001",
		AppSecret:      core.NewSecret("the-component-secret"),
		Token:          core.NewSecret("pushToken"),
		EncodingAESKey: core.NewSecret("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
		Store:          store,
		Dedup:          dedup,
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/{appid}/callback", component.MessageHandler(func(ctx context.Context, m *core.Message) ([]byte, error) {
		// m.ToUserName is the authorizer's original ID (gh_…); the
		// path's {appid} names it too (r.PathValue in a handler of your own).
		return nil, nil // "success"
	}))
	fmt.Println("ready")
	// Output:
	// ready
}
