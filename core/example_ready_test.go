package core_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Ready behind a readiness endpoint: a fresh Conf becomes ready by the
// fetch its first caller would make; one whose AppSecret WeChat refuses is
// not ready, and says why.
func ExampleConf_Ready() {
	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "secret"})
	defer wechat.Close()
	ctx := context.Background()

	conf, err := core.New(core.Config{AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("secret"), BaseURL: wechat.URL, Now: wechat.Now})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready:", conf.Ready(ctx), "fetches:", wechat.Calls(wxtest.PathStableToken))

	wrong, err := core.New(core.Config{AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("not-the-secret"), BaseURL: wechat.URL, Now: wechat.Now})
	if err != nil {
		log.Fatal(err)
	}
	var nr *core.NotReadyError
	if err := wrong.Ready(ctx); errors.As(err, &nr) {
		fmt.Println("not ready:", nr.Reason, "errcode 40125:", core.IsConfigError(err))
	}

	// A readiness probe: 200, or 503 with the reason.
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := conf.Ready(r.Context()); err != nil {
			var nr *core.NotReadyError
			errors.As(err, &nr)
			http.Error(w, string(nr.Reason), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	// Output:
	// ready: <nil> fetches: 1
	// not ready: configuration errcode 40125: true
}
