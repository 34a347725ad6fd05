package silenceper_test

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/silenceper/wechat/v2/util"

	"github.com/wechatconf/wechatconf/contrib/silenceper"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Example gives a silenceper Official Account client the Conf's tokens. The
// simulated WeChat API stands in for https://api.weixin.qq.com; in
// production leave util.DefaultHTTPClient and core.Config.HTTPClient alone
// and give the Conf a shared Store.
func Example() {
	wechat := wxtest.New(wxtest.Options{})
	defer wechat.Close()
	sim, _ := url.Parse(wechat.URL)
	client := &http.Client{Transport: &toServer{target: sim, base: http.DefaultTransport}}
	util.DefaultHTTPClient = client // silenceper's calls go to the simulation
	defer func() { util.DefaultHTTPClient = http.DefaultClient }()

	conf, err := core.New(core.Config{
		AppID:      "wxexample",
		AppSecret:  core.NewSecret("example-secret"),
		HTTPClient: client, // the Conf's token calls too
		// Store: a shared store (redisstore.New(rdb), ...) for a fleet
	})
	if err != nil {
		panic(err)
	}
	oa := silenceper.OfficialAccount(conf, nil)
	defer silenceper.Uninstall()

	ips, err := oa.GetBasic().GetCallbackIP()
	fmt.Println(ips, err)

	// WeChat stops accepting the token (another instance fetched a classic
	// token, it leaked, ...): the call is not failed with 40001, the token is
	// replaced once and the call sent again.
	tok, _ := oa.GetAccessToken()
	wechat.Revoke(tok)
	ips, err = oa.GetBasic().GetCallbackIP()
	fmt.Println(ips, err)
	fmt.Println("token fetches:", wechat.TokensIssued())

	cfg, err := oa.GetJs().GetConfig("https://example.com/page")
	fmt.Println(cfg.AppID, cfg.Signature != "", err)
	// Output:
	// [127.0.0.1] <nil>
	// [127.0.0.1] <nil>
	// token fetches: 2
	// wxexample true <nil>
}
