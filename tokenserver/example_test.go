package tokenserver_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	"github.com/wechatconf/wechatconf/tokenserver"
)

// A token server in front of WeChat (here the simulator) and a Go worker
// that holds no AppSecret: the worker's token is the server's.
func Example() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx_example", AppSecret: "app-secret", Now: time.Now})
	defer wechat.Close()

	// The server: a Conf with the AppSecret (its Store decides HA: the
	// memory store here, a shared one for two or more servers).
	master, err := core.New(core.Config{AppID: "wx_example", AppSecret: core.NewSecret("app-secret"), BaseURL: wechat.URL})
	if err != nil {
		panic(err)
	}
	secret := core.NewSecret("bearer-secret-0123456789") // from the environment in real life
	srv := httptest.NewServer(tokenserver.Handler(master, secret, tokenserver.WithTimeout(5*time.Second)))
	defer srv.Close()

	// A worker: a Conf with the AppID and the worker store, no AppSecret.
	store, err := tokenserver.NewWorkerStore(srv.URL, secret, nil)
	if err != nil {
		panic(err)
	}
	worker, err := core.New(core.Config{AppID: "wx_example", Store: store, BaseURL: wechat.URL})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	got, err := worker.AccessToken(ctx)
	if err != nil {
		panic(err)
	}
	want, _ := master.AccessToken(ctx)
	fmt.Println("same token:", got.Value == want.Value)
	fmt.Println("WeChat token fetches:", wechat.Calls(wxtest.PathStableToken))
	// Output:
	// same token: true
	// WeChat token fetches: 1
}

// The health endpoint needs no secret and makes no WeChat call: point a
// load balancer's health check at it.
func ExampleHandler_healthz() {
	conf, err := core.New(core.Config{AppID: "wx_example", AppSecret: core.NewSecret("app-secret")})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(tokenserver.Handler(conf, core.NewSecret("bearer-secret-0123456789")))
	defer srv.Close()
	for _, path := range []string{"/healthz", "/access_token"} {
		resp, err := http.Get(srv.URL + path) // no Authorization header
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	// Output:
	// /healthz 200
	// /access_token 401
}
