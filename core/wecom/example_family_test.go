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

// The same app in many corps — a group's subsidiaries, each its own corp
// with its own secret; a WeCom vendor's installs are package wecomvendor's
// — kept by one process: a core.CredentialKind for their access_tokens and
// an AppFamily for their Apps, so the configuration is made once and each
// corp costs its key, its fetch and its tokens.
func ExampleNewAppFamily() {
	corps := map[string]string{"ww0000000000000001": "secret-1", "ww0000000000000002": "secret-2"} // corp id → the app's secret
	ww := wxtest.New(wxtest.Options{WeComApps: []wxtest.WeComApp{
		{CorpID: "ww0000000000000001", AgentID: 1000002, Secret: corps["ww0000000000000001"]},
		{CorpID: "ww0000000000000002", AgentID: 1000002, Secret: corps["ww0000000000000002"]},
	}})
	defer ww.Close()
	ctx := context.Background()
	store := core.NewMemoryStore()

	var secrets []core.Secret
	for _, s := range corps {
		secrets = append(secrets, core.NewSecret(s))
	}
	raw, err := core.NewAPI(core.APIConfig{BaseURL: ww.URL, Codes: wecom.Codes, Secrets: secrets})
	if err != nil {
		panic(err)
	}
	kind, err := core.NewCredentialKind(core.CredentialConfig{
		Name: "access_token", Platform: core.PlatformWeCom, Store: store,
		Policy: core.Policy{Handover: core.HandoverAtExpiry}, // gettoken hands back the current token until it expires
	})
	if err != nil {
		panic(err)
	}
	family, err := wecom.NewAppFamily(wecom.Config{AgentID: 1000002, Store: store, BaseURL: ww.URL})
	if err != nil {
		panic(err)
	}
	for _, corp := range []string{"ww0000000000000001", "ww0000000000000002"} {
		secret := core.NewSecret(corps[corp])
		access, err := kind.New(core.CredentialConfig{
			Key: "wechatconf/wecom/" + corp + "/1000002/access_token",
			Fetch: func(ctx context.Context, _ core.FetchRequest) (core.Token, error) {
				return raw.Issue(ctx, http.MethodGet, wecom.PathToken, url.Values{"corpid": {corp}, "corpsecret": {secret.Reveal()}}, nil, "access_token")
			},
		})
		if err != nil {
			panic(err)
		}
		app, err := family.New(corp, access)
		if err != nil {
			panic(err)
		}
		var agent struct {
			AgentID int64 `json:"agentid"`
		}
		if err := app.Do(ctx, http.MethodGet, "/cgi-bin/agent/get", url.Values{"agentid": {"1000002"}}, nil, &agent); err != nil {
			panic(err)
		}
		fmt.Println(app.CorpID(), "agent", agent.AgentID)
	}
	// Output:
	// ww0000000000000001 agent 1000002
	// ww0000000000000002 agent 1000002
}
