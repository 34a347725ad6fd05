package core_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// WeChat reports an API's daily quota (here the access_token's) and lets
// an account clear it ten times a month. ClearQuota takes the Conf's
// access_token; ClearQuotaByAppSecret takes the AppSecret instead, for
// when the token quota is used up and no token is left.
func ExampleConf_Quota() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "secret", DailyQuota: 2000})
	defer wechat.Close()
	conf, err := core.New(core.Config{
		AppID:     "wx0123456789abcdef",
		AppSecret: core.NewSecret("secret"),
		TokenAPI:  core.ClassicToken,
		BaseURL:   wechat.URL,
		Now:       wechat.Now,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	q, err := conf.Quota(ctx, "/cgi-bin/token") // one token fetch first, for the call
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("limit %d, used %d, remain %d\n", q.DailyLimit, q.Used, q.Remain)

	if err := conf.ClearQuota(ctx); err != nil {
		log.Fatal(err)
	}
	q, _ = conf.Quota(ctx, "/cgi-bin/token")
	fmt.Printf("after clear_quota: used %d\n", q.Used)

	var apiErr *core.APIError
	_, err = conf.Quota(ctx, "/cgi-bin/no/such/api")
	fmt.Println(errors.As(err, &apiErr), apiErr.Code)

	// Output:
	// limit 2000, used 1, remain 1999
	// after clear_quota: used 0
	// true 76021
}
