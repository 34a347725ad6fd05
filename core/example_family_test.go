package core_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Many credentials of one kind: the kind holds what they share (name,
// store, policy, logger, ledger settings), made once; each credential of
// it is its key and its fetch. Here three clients of the made-up partner
// API of ExampleNewCredential, each with its own token; a platform with
// thousands of tenants does the same (package openplatform's authorizers,
// package wecomvendor's corps).
func ExampleNewCredentialKind() {
	partner := newPartnerAPI()
	defer partner.Close()
	ctx := context.Background()

	api, err := core.NewAPI(core.APIConfig{BaseURL: partner.URL})
	if err != nil {
		panic(err)
	}
	kind, err := core.NewCredentialKind(core.CredentialConfig{
		Name:  "partner_token",
		Store: core.NewMemoryStore(), // shared by the fleet: Redis, PostgreSQL, etcd, …
	})
	if err != nil {
		panic(err)
	}
	for _, client := range []string{"client-1", "client-2", "client-3"} {
		cred, err := kind.New(core.CredentialConfig{
			Key: "wechatconf/partner/" + client + "/partner_token",
			Fetch: func(ctx context.Context, _ core.FetchRequest) (core.Token, error) {
				return api.Issue(ctx, http.MethodGet, "/oauth/token", url.Values{"client_id": {client}}, nil, "access_token")
			},
		})
		if err != nil {
			panic(err)
		}
		if _, err := cred.Get(ctx); err != nil {
			panic(err)
		}
		fmt.Println(cred.Name(), cred.Key())
	}
	fmt.Println("fetches:", partner.fetches.Load())
	// Output:
	// partner_token wechatconf/partner/client-1/partner_token
	// partner_token wechatconf/partner/client-2/partner_token
	// partner_token wechatconf/partner/client-3/partner_token
	// fetches: 3
}

// An agency that keeps the Official Accounts of its clients — thousands in
// production, three here — each with its own AppSecret (from the agency's
// database), in one process: a CredentialKind for their access_tokens and
// a ConfFamily for their Confs, so that the configuration is made once and
// each account costs its key, its fetch and its tokens. Everything a Conf
// does (Do, tickets, JSSDKConfig) works on each.
func ExampleNewConfFamily() {
	wechat := wxtest.New(wxtest.Options{}) // any appid, any secret
	defer wechat.Close()
	ctx := context.Background()
	store := core.NewMemoryStore()
	secrets := map[string]core.Secret{ // appid → AppSecret
		"wx0000000000000001": core.NewSecret("secret-1"),
		"wx0000000000000002": core.NewSecret("secret-2"),
		"wx0000000000000003": core.NewSecret("secret-3"),
	}

	// The token calls, with every secret kept out of errors and logs.
	raw, err := core.NewAPI(core.APIConfig{BaseURL: wechat.URL, Now: wechat.Now, Secrets: slices.Collect(maps.Values(secrets))})
	if err != nil {
		panic(err)
	}
	kind, err := core.NewCredentialKind(core.CredentialConfig{
		Name: "access_token", Platform: core.PlatformOfficialAccount, Store: store, Now: wechat.Now,
	})
	if err != nil {
		panic(err)
	}
	family, err := core.NewConfFamily(core.Config{
		Store: store, BaseURL: wechat.URL, Now: wechat.Now, Platform: core.PlatformOfficialAccount,
	})
	if err != nil {
		panic(err)
	}

	for _, appid := range slices.Sorted(maps.Keys(secrets)) {
		secret := secrets[appid]
		access, err := kind.New(core.CredentialConfig{
			Key: "wechatconf/" + appid + "/access_token",
			Fetch: func(ctx context.Context, _ core.FetchRequest) (core.Token, error) {
				return raw.Issue(ctx, http.MethodGet, "/cgi-bin/token", url.Values{
					"grant_type": {"client_credential"}, "appid": {appid}, "secret": {secret.Reveal()},
				}, nil, "access_token")
			},
		})
		if err != nil {
			panic(err)
		}
		conf, err := family.New(appid, access)
		if err != nil {
			panic(err)
		}
		var out struct {
			IPList []string `json:"ip_list"`
		}
		if err := conf.Do(ctx, http.MethodGet, "/cgi-bin/getcallbackip", nil, nil, &out); err != nil {
			panic(err)
		}
		fmt.Println(conf.AppID(), out.IPList)
	}
	// Output:
	// wx0000000000000001 [127.0.0.1]
	// wx0000000000000002 [127.0.0.1]
	// wx0000000000000003 [127.0.0.1]
}
