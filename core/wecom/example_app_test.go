package wecom_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecom"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// A WeCom self-built app: its access_token kept valid through a store
// (here a MemoryStore; in a fleet, Redis, PostgreSQL or etcd), the WeCom
// API called with it, and wx.agentConfig signed with the app's ticket. The
// simulated WeCom (wxtest) stands in for https://qyapi.weixin.qq.com.
func ExampleNew() {
	ww := wxtest.New(wxtest.Options{WeComApps: []wxtest.WeComApp{
		{CorpID: "ww0123456789abcdef", AgentID: 1000002, Secret: "the-app-secret"},
	}})
	defer ww.Close()

	app, err := wecom.New(wecom.Config{
		CorpID:  "ww0123456789abcdef",
		AgentID: 1000002,
		Secret:  core.NewSecret("the-app-secret"), // core.NewSecret(os.Getenv("WECOM_SECRET"))
		Store:   core.NewMemoryStore(),
		BaseURL: ww.URL, // omit for qyapi.weixin.qq.com
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	var agent struct {
		AgentID int64  `json:"agentid"`
		Name    string `json:"name"`
	}
	if err := app.Do(ctx, http.MethodGet, "/cgi-bin/agent/get", url.Values{"agentid": {"1000002"}}, nil, &agent); err != nil {
		panic(err)
	}
	fmt.Println("agent:", agent.AgentID)

	cfg, err := app.AgentConfig(ctx, "https://example.com/page")
	if err != nil {
		panic(err)
	}
	fmt.Println("wx.agentConfig for", cfg.CorpID, cfg.AgentID, "signed:", len(cfg.Signature) == 40)
	key, _, _ := app.Keys()
	fmt.Println("store key:", key)
	fmt.Println("gettoken calls:", ww.Calls(wxtest.PathWeComToken))
	// Output:
	// agent: 1000002
	// wx.agentConfig for ww0123456789abcdef 1000002 signed: true
	// store key: wechatconf/wecom/ww0123456789abcdef/1000002/access_token
	// gettoken calls: 1
}
