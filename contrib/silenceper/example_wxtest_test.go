package silenceper_test

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/officialaccount"
	"github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wechatconf/wechatconf/contrib/silenceper"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Example_withoutTheAdapter tests silenceper code as it runs before a
// migration — silenceper alone, with its own cache — against the
// simulated WeChat API: of this module only Redirect is used, to send
// silenceper's calls (to https://api.weixin.qq.com, hardcoded in
// silenceper) to the simulator. The simulator then shows what silenceper
// does when WeChat stops accepting its token (another instance fetched a
// classic token, it leaked): the rejected token stays in silenceper's
// cache, and every call fails with 40001 until the cache entry expires
// (expires_in − 1500 s after the fetch).
func Example_withoutTheAdapter() {
	wechat := wxtest.New(wxtest.Options{AppID: "wxexample", AppSecret: "example-secret"})
	defer wechat.Close()
	rt, err := silenceper.Redirect(wechat.URL, nil)
	if err != nil {
		panic(err)
	}
	util.DefaultHTTPClient = &http.Client{Transport: rt} // process-wide: restore it after the test
	defer func() { util.DefaultHTTPClient = http.DefaultClient }()

	oa := officialaccount.NewOfficialAccount(&config.Config{
		AppID: "wxexample", AppSecret: "example-secret", // the simulator's
		Cache: cache.NewMemory(),
	})
	ips, err := oa.GetBasic().GetCallbackIP()
	fmt.Println(ips, err)

	tok, _ := oa.GetAccessToken()
	wechat.Revoke(tok)
	for range 2 {
		_, err = oa.GetBasic().GetCallbackIP()
		var ce *util.CommonError
		fmt.Println("rejected with 40001:", errors.As(err, &ce) && ce.ErrCode == 40001)
	}
	fmt.Println("classic token fetches:", wechat.Calls(wxtest.PathToken))
	// Output:
	// [127.0.0.1] <nil>
	// rejected with 40001: true
	// rejected with 40001: true
	// classic token fetches: 1
}
