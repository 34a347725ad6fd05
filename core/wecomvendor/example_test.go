package wecomvendor_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecomvendor"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// A WeCom vendor's third-party app on the simulated platform: WeCom pushes
// a suite_ticket, a corp installs the app (create_auth), and the corp is
// then called like a self-built app. In production the pushes arrive at
// the command callback URL (EventHandler, or ParseEvent in your handler)
// and the store is shared by the fleet.
func ExampleNew() {
	wx := wxtest.New(wxtest.Options{})
	defer wx.Close()
	wx.SetSuiteSecret("wwsuite000000001", "the-suite-secret")
	const token, key = "cmdToken", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

	suite, err := wecomvendor.New(wecomvendor.Config{
		SuiteID:        "wwsuite000000001",
		SuiteSecret:    core.NewSecret("the-suite-secret"),
		Token:          core.NewSecret(token),
		EncodingAESKey: core.NewSecret(key),
		Store:          core.NewMemoryStore(), // Redis, PostgreSQL, etcd: shared by the fleet
		BaseURL:        wx.URL,                // omit for qyapi.weixin.qq.com
		Now:            wx.Now,
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	// 1. The suite_ticket push (every 10 minutes, to the command callback URL).
	q, body, _, _ := wx.SuiteTicketPush("wwsuite000000001", token, key)
	ev, err := suite.HandleEvent(ctx, q, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	fmt.Println(ev.InfoType, ev.Applied)

	// 2. A corp installs the app: create_auth carries the auth code, which
	// is exchanged for the corp's permanent_code at once.
	code := wx.Install("wwsuite000000001", "wwcorp0000000001")
	q, body, _ = wx.CreateAuthPush("wwsuite000000001", code, token, key)
	if ev, err = suite.HandleEvent(ctx, q, bytes.NewReader(body)); err != nil {
		panic(err)
	}
	fmt.Println(ev.InfoType, ev.Applied, ev.CorpID)

	// 3. The corp, as a wecom.App: its token comes from get_corp_token.
	corp := suite.Corp("wwcorp0000000001")
	var agent map[string]any
	q = url.Values{"agentid": {fmt.Sprint(wx.AgentID("wwsuite000000001", "wwcorp0000000001"))}}
	if err := corp.Do(ctx, http.MethodGet, "/cgi-bin/agent/get", q, nil, &agent); err != nil {
		panic(err)
	}
	fmt.Println("called as", corp.CorpID())
	// Output:
	// suite_ticket stored
	// create_auth authorized wwcorp0000000001
	// called as wwcorp0000000001
}

// The provider_access_token, for the vendor's own management calls.
func ExampleNewProvider() {
	wx := wxtest.New(wxtest.Options{})
	defer wx.Close()
	wx.SetProviderSecret("wwprovider000001", "the-provider-secret")

	p, err := wecomvendor.NewProvider(wecomvendor.ProviderConfig{
		CorpID:         "wwprovider000001",
		ProviderSecret: core.NewSecret("the-provider-secret"),
		Store:          core.NewMemoryStore(),
		BaseURL:        wx.URL,
		Now:            wx.Now,
	})
	if err != nil {
		panic(err)
	}
	tok, err := p.ProviderAccessToken(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Println(tok.Value != "", p.Key())
	// Output: true wechatconf/wecomvendor/provider/wwprovider000001/provider_access_token
}
