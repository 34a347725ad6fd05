package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// A Conf on the default in-memory store, pointed at the simulated WeChat
// API. In production leave BaseURL, HTTPClient and Now unset.
func ExampleNew() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "secret"})
	defer wechat.Close()

	conf, err := core.New(core.Config{
		AppID:     "wx0123456789abcdef",
		AppSecret: core.NewSecret("secret"),
		BaseURL:   wechat.URL,
		Now:       wechat.Now,
	})
	if err != nil {
		log.Fatal(err)
	}
	var out struct {
		IPList []string `json:"ip_list"`
	}
	if err := conf.Do(context.Background(), http.MethodGet, "/cgi-bin/getcallbackip", nil, nil, &out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.IPList)
	// Output: [127.0.0.1]
}

// AccessToken returns the token and its expiry (the seed's
// get_access_token()); the second call is served from memory.
func ExampleConf_AccessToken() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "secret"})
	defer wechat.Close()
	conf, err := core.New(core.Config{AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("secret"), BaseURL: wechat.URL, Now: wechat.Now})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	tok, err := conf.AccessToken(ctx)
	if err != nil {
		log.Fatal(err)
	}
	again, _ := conf.AccessToken(ctx)
	fmt.Println("valid for", tok.ExpiresAt.Sub(wechat.Now()))
	fmt.Println("same token:", again.Value == tok.Value, "fetches:", wechat.Calls(wxtest.PathStableToken))
	// Output:
	// valid for 2h0m0s
	// same token: true fetches: 1
}

// The seed's way 3: a worker whose refresh goes to a master (here a
// MemoryStore standing in for an HTTP call to a token server). The master
// receives stale, so it refreshes only if it still holds that value.
func ExampleNewFuncStore() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "secret"})
	defer wechat.Close()
	master, _ := core.New(core.Config{AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("secret"), BaseURL: wechat.URL, Now: wechat.Now})

	worker, err := core.NewFuncStore(core.StoreFuncs{
		Get: func(ctx context.Context, key string) (core.Token, error) {
			return master.AccessToken(ctx) // e.g. GET https://tokens.internal/access_token
		},
		Refresh: func(ctx context.Context, key, stale string) (core.Token, error) {
			return master.RefreshAccessToken(ctx, stale) // e.g. POST .../refresh {"stale": stale}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	conf, _ := core.New(core.Config{AppID: "wx0123456789abcdef", Store: worker, BaseURL: wechat.URL, Now: wechat.Now})
	tok, err := conf.AccessToken(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("worker has a token:", tok.Value != "", "— the worker has no AppSecret")
	// Output: worker has a token: true — the worker has no AppSecret
}

// The seed's way 2: tokens kept wherever the user's functions put them.
func ExampleStoreFuncs() {
	saved := map[string]core.Token{} // a file, a database, a cache…
	store, err := core.NewFuncStore(core.StoreFuncs{
		Get: func(ctx context.Context, key string) (core.Token, error) { return saved[key], nil },
		Set: func(ctx context.Context, key string, t core.Token) error { saved[key] = t; return nil },
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = store // core.Config{Store: store, ...}
	fmt.Println("ok")
	// Output: ok
}

// RefreshAccessToken is a compare-and-refresh: call it with the token WeChat
// rejected.
func ExampleConf_RefreshAccessToken() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "secret"})
	defer wechat.Close()
	conf, _ := core.New(core.Config{AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("secret"), BaseURL: wechat.URL, Now: wechat.Now})
	ctx := context.Background()
	tok, _ := conf.AccessToken(ctx)
	wechat.Revoke(tok.Value) // WeChat now answers 40001 for it
	fresh, err := conf.RefreshAccessToken(ctx, tok.Value)
	if err != nil {
		log.Fatal(err)
	}
	// A second caller that saw the same rejected token gets the new one
	// without another fetch.
	again, _ := conf.RefreshAccessToken(ctx, tok.Value)
	fmt.Println(fresh.Value != tok.Value, again.Value == fresh.Value, wechat.TokensIssued())
	// Output: true true 2
}

// Rotating a leaked access_token: ForceRefreshAccessToken makes WeChat issue
// a new one at once and invalidate the old one; asking again for the same
// leaked token (another instance, a retry) returns the new one without a
// call. A second rotation inside ForceRefreshInterval is held back with a
// *core.LimitError.
func ExampleConf_ForceRefreshAccessToken() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "secret"})
	defer wechat.Close()
	conf, err := core.New(core.Config{AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("secret"), BaseURL: wechat.URL, Now: wechat.Now})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	leaked, err := conf.AccessToken(ctx)
	if err != nil {
		log.Fatal(err)
	}
	rotated, err := conf.ForceRefreshAccessToken(ctx, leaked.Value)
	if err != nil {
		log.Fatal(err)
	}
	again, _ := conf.ForceRefreshAccessToken(ctx, leaked.Value)
	fmt.Println("leaked still works:", wechat.TokenValid(leaked.Value))
	fmt.Println("same rotation:", again.Value == rotated.Value, "forced calls:", wechat.ForceRefreshes())

	_, err = conf.ForceRefreshAccessToken(ctx, rotated.Value)
	var limit *core.LimitError
	fmt.Println("held back:", errors.As(err, &limit), limit.Limit)
	// Output:
	// leaked still works: false
	// same rotation: true forced calls: 1
	// held back: true ForceRefreshInterval
}

// Secrets go into a Config as core.Secret values; however the Config is
// printed or logged, they read REDACTED.
func ExampleNewSecret() {
	cfg := core.Config{AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("the-app-secret")}
	fmt.Println(cfg.AppSecret)
	fmt.Printf("%+v\n", struct{ secret core.Secret }{cfg.AppSecret}.secret)
	fmt.Println(len(cfg.AppSecret.Reveal()), "characters sent to WeChat")
	// Output:
	// REDACTED
	// REDACTED
	// 14 characters sent to WeChat
}

// Any *http.Client — an SDK's, a generated one, a plain one — gets the
// Conf's fleet-safe access_token from Transport: it is added to requests
// for WeChat's host, and a rejected token is replaced once fleet-wide and
// the request sent again.
func ExampleConf_Transport() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "secret"})
	defer wechat.Close()
	conf, err := core.New(core.Config{AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("secret"), BaseURL: wechat.URL, Now: wechat.Now})
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: conf.Transport(nil)}
	resp, err := client.Get(wechat.URL + "/cgi-bin/getcallbackip") // no access_token: the transport adds it
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		IPList []string `json:"ip_list"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.IPList)
	// Output: [127.0.0.1]
}

// Listing the keys a store holds, as an operator's tool does: any store
// that implements core.KeyLister (MemoryStore here; the file, Redis,
// PostgreSQL and etcd stores too) lists its keys by prefix, sorted,
// without their values.
func ExampleKeyLister() {
	ctx := context.Background()
	var store core.TokenStore = core.NewMemoryStore()
	for _, key := range []string{"wechatconf/wx10/access_token", "wechatconf/wx1/jsapi_ticket", "wechatconf/wx1/access_token"} {
		if err := store.Set(ctx, key, core.Token{Value: "secret-value"}); err != nil {
			log.Fatal(err)
		}
	}
	lister, ok := store.(core.KeyLister)
	if !ok {
		log.Fatal("this store cannot list its keys")
	}
	keys, err := lister.ListKeys(ctx, "wechatconf/wx1/")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(keys)
	// Output:
	// [wechatconf/wx1/access_token wechatconf/wx1/jsapi_ticket]
}

// Ledger reads the fleet's fetch ledger: who fetched the access_token, when
// and why, and the day's count, from the store the fleet shares.
func ExampleConf_Ledger() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "secret"})
	defer wechat.Close()
	conf, err := core.New(core.Config{
		AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("secret"), BaseURL: wechat.URL, Now: wechat.Now,
		Instance: "web-1/42", // default: hostname/pid
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if _, err := conf.AccessToken(ctx); err != nil {
		log.Fatal(err)
	}
	if err := conf.FlushLedger(ctx); err != nil { // the record is written in the background
		log.Fatal(err)
	}
	ledger, err := conf.Ledger(ctx)
	if err != nil {
		log.Fatal(err)
	}
	last, _ := ledger.Last()
	fmt.Println(last.Instance, last.Reason, len(last.Token), "hex digits of fingerprint")
	fmt.Println("fetches today:", ledger.Today(wechat.Now()).Fetches)
	// Output:
	// web-1/42 expiry 12 hex digits of fingerprint
	// fetches today: 1
}
