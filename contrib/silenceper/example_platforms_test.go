package silenceper_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/silenceper/wechat/v2/miniprogram/message"
	"github.com/silenceper/wechat/v2/miniprogram/qrcode"
	"github.com/silenceper/wechat/v2/openplatform"
	opconfig "github.com/silenceper/wechat/v2/openplatform/config"
	"github.com/silenceper/wechat/v2/util"
	workmessage "github.com/silenceper/wechat/v2/work/message"

	"github.com/wechatconf/wechatconf/contrib/silenceper"
	"github.com/wechatconf/wechatconf/core"
	coreopen "github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wecom"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// ExampleMiniProgram gives a silenceper Mini Program client the Conf's
// access token, against the simulated WeChat API (Redirect sends
// silenceper's calls there). A Mini Program's Conf is an Official
// Account's: its AppID and AppSecret, a shared Store for a fleet.
func ExampleMiniProgram() {
	wechat := wxtest.New(wxtest.Options{})
	defer wechat.Close()
	rt, err := silenceper.Redirect(wechat.URL, nil)
	if err != nil {
		panic(err)
	}
	util.DefaultHTTPClient = &http.Client{Transport: rt} // before MiniProgram
	defer func() { util.DefaultHTTPClient = http.DefaultClient }()

	conf, err := core.New(core.Config{
		AppID:     "wxminiprogram",
		AppSecret: core.NewSecret("example-secret"),
		BaseURL:   wechat.URL, // omit in production
		// Store: a shared store (redisstore.New(rdb), ...) for a fleet
	})
	if err != nil {
		panic(err)
	}
	mp := silenceper.MiniProgram(conf, nil)
	defer silenceper.Uninstall()

	customer := mp.GetCustomerMessage()
	fmt.Println(customer.Send(message.NewCustomerTextMessage("openid", "hello")))

	// The token is revoked: the next call is not failed with 40001, the
	// token is replaced once and the call sent again; a binary reply (a
	// Mini Program code, image/jpeg) passes through unchanged.
	tok, _ := mp.GetContext().GetAccessToken()
	wechat.Revoke(tok)
	img, err := mp.GetQRCode().GetWXACodeUnlimit(qrcode.QRCoder{Scene: "id=42", Page: "pages/index/index"})
	fmt.Println(bytes.HasPrefix(img, []byte{0xff, 0xd8}), err)
	fmt.Println("token fetches:", wechat.TokensIssued())
	// Output:
	// <nil>
	// true <nil>
	// token fetches: 2
}

// ExampleWork gives a silenceper WeCom client a wechatconf wecom.App's
// access token, against the simulated WeCom API: RedirectWeCom sends
// silenceper's calls to https://qyapi.weixin.qq.com there.
func ExampleWork() {
	wechat := wxtest.New(wxtest.Options{WeComApps: []wxtest.WeComApp{{CorpID: "wwcorp", AgentID: 1000002, Secret: "app-secret"}}})
	defer wechat.Close()
	rt, err := silenceper.RedirectWeCom(wechat.URL, nil)
	if err != nil {
		panic(err)
	}
	util.DefaultHTTPClient = &http.Client{Transport: rt} // before Work
	defer func() { util.DefaultHTTPClient = http.DefaultClient }()

	app, err := wecom.New(wecom.Config{
		CorpID:  "wwcorp",
		AgentID: 1000002,
		Secret:  core.NewSecret("app-secret"),
		BaseURL: wechat.URL, // omit in production
		// Store: a shared store (redisstore.New(rdb), ...) for a fleet
	})
	if err != nil {
		panic(err)
	}
	wk := silenceper.Work(app, nil)
	defer silenceper.Uninstall()

	msgs := wk.GetMessage()
	send := func() error {
		_, err := msgs.SendText(workmessage.SendTextRequest{
			SendRequestCommon: &workmessage.SendRequestCommon{ToUser: "@all", AgentID: "1000002"},
			Text:              workmessage.TextField{Content: "hello"},
		})
		return err
	}
	fmt.Println(send())

	// WeCom invalidates the token early (提前使access_token失效): 40014 is
	// not handed to the caller, the token is replaced and the call resent.
	tok, _ := wk.GetContext().GetAccessToken()
	wechat.Revoke(tok)
	fmt.Println(send())
	fmt.Println("gettoken calls:", wechat.Calls(wxtest.PathWeComToken))
	// Output:
	// <nil>
	// <nil>
	// gettoken calls: 2
}

// ExampleAuthorizerOfficialAccount calls a merchant's Official Account
// through silenceper's Open Platform client with the authorizer token a
// wechatconf openplatform.Component keeps (fetched with the stored
// authorizer_refresh_token, once per refresh fleet-wide), against the
// simulated Open Platform.
func ExampleAuthorizerOfficialAccount() {
	const componentID, merchantID = "wxcomponent", "wxmerchant"
	wechat := wxtest.New(wxtest.Options{Components: []wxtest.Component{{AppID: componentID, AppSecret: "component-secret"}}})
	defer wechat.Close()
	rt, err := silenceper.Redirect(wechat.URL, nil)
	if err != nil {
		panic(err)
	}
	util.DefaultHTTPClient = &http.Client{Transport: rt} // before AuthorizerOfficialAccount
	defer func() { util.DefaultHTTPClient = http.DefaultClient }()

	component, err := coreopen.New(coreopen.Config{
		AppID:     componentID,
		AppSecret: core.NewSecret("component-secret"),
		BaseURL:   wechat.URL, // omit in production
		Now:       wechat.Now,
		// Store: a shared store for a fleet; Token and EncodingAESKey for
		// the pushes (HandleEvent)
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	// What the pushes bring (HandleEvent): the verify ticket, and the
	// merchant's authorization.
	if _, err := component.SetVerifyTicket(ctx, wechat.VerifyTicket(componentID), wechat.Now()); err != nil {
		panic(err)
	}
	if _, err := component.Authorize(ctx, wechat.Authorize(componentID, merchantID)); err != nil {
		panic(err)
	}

	op := openplatform.NewOpenPlatform(&opconfig.Config{AppID: componentID}) // silenceper's
	oa := silenceper.AuthorizerOfficialAccount(op, component.Authorizer(merchantID))
	defer silenceper.Uninstall()

	basic := oa.GetBasic()
	ips, err := basic.GetCallbackIP()
	fmt.Println(ips, err)

	tok, _ := oa.GetAccessToken()
	wechat.Revoke(tok)
	ips, err = basic.GetCallbackIP()
	fmt.Println(ips, err)
	fmt.Println("authorizer token fetches:", wechat.AuthorizerTokensIssued(merchantID))
	// Output:
	// [127.0.0.1] <nil>
	// [127.0.0.1] <nil>
	// authorizer token fetches: 2
}

// ExampleRedirectWeCom points silenceper's WeChat and WeCom calls at a
// proxy of one's own (an egress proxy with a fixed IP for WeCom's trusted
// IP list, say), where the wecom.App and the Conf fetch their tokens too.
func ExampleRedirectWeCom() {
	rt, err := silenceper.Redirect("https://wechat-proxy.internal.example", nil)
	if err != nil {
		panic(err)
	}
	if rt, err = silenceper.RedirectWeCom("https://wecom-proxy.internal.example", rt); err != nil {
		panic(err)
	}
	util.DefaultHTTPClient = &http.Client{Transport: rt}
	app, err := wecom.New(wecom.Config{
		CorpID:  "wwcorp",
		AgentID: 1000002,
		Secret:  core.NewSecret("app-secret"),
		BaseURL: "https://wecom-proxy.internal.example",
	})
	if err != nil {
		panic(err)
	}
	wk := silenceper.Work(app, nil)
	_ = wk // wk.GetMessage().SendText(...), ...
}
