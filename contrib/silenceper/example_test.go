package silenceper_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/silenceper/wechat/v2/util"

	"github.com/wechatconf/wechatconf/contrib/silenceper"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Example gives a silenceper Official Account client the Conf's tokens,
// against the simulated WeChat API: the Conf's BaseURL is the simulator's
// URL, and Redirect sends silenceper's calls (to https://api.weixin.qq.com,
// hardcoded in silenceper) there too. In production leave both at WeChat's
// host and give the Conf a shared Store.
func Example() {
	wechat := wxtest.New(wxtest.Options{})
	defer wechat.Close()
	rt, err := silenceper.Redirect(wechat.URL, nil)
	if err != nil {
		panic(err)
	}
	util.DefaultHTTPClient = &http.Client{Transport: rt} // before OfficialAccount
	defer func() { util.DefaultHTTPClient = http.DefaultClient }()

	conf, err := core.New(core.Config{
		AppID:     "wxexample",
		AppSecret: core.NewSecret("example-secret"),
		BaseURL:   wechat.URL,
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

// ExampleRedirect points silenceper's calls at WeChat's Shanghai access
// point, where the Conf fetches its tokens too. Any host works for the
// Conf: the adapter replaces a rejected token whichever of WeChat's hosts
// silenceper calls.
func ExampleRedirect() {
	rt, err := silenceper.Redirect("https://sh.api.weixin.qq.com", nil)
	if err != nil {
		panic(err)
	}
	util.DefaultHTTPClient = &http.Client{Transport: rt, Timeout: 15 * time.Second}
	conf, err := core.New(core.Config{
		AppID:     "wxexample",
		AppSecret: core.NewSecret("example-secret"),
		BaseURL:   "https://sh.api.weixin.qq.com",
	})
	if err != nil {
		panic(err)
	}
	oa := silenceper.OfficialAccount(conf, nil)
	_ = oa // oa.GetBasic().GetCallbackIP(), ...
}
