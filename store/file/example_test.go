package filestore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	filestore "github.com/wechatconf/wechatconf/store/file"
)

// Every process of the machine that needs the token — a web server, a cron
// job, a CLI — builds its Conf over a Store on the same directory: one of
// them fetches, the others read what it wrote.
func ExampleNew() {
	srv := wxtest.New(wxtest.Options{}) // a simulated WeChat API; leave BaseURL empty for the real one
	defer srv.Close()
	tmp, err := os.MkdirTemp("", "filestore-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	store, err := filestore.New(filepath.Join(tmp, "wechat")) // e.g. /var/lib/myapp/wechat
	if err != nil {
		log.Fatal(err)
	}
	conf, err := core.New(core.Config{
		AppID:     "wx0123456789abcdef",
		AppSecret: core.NewSecret("the-app-secret"),
		BaseURL:   srv.URL,
		Store:     store,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	tok, err := conf.AccessToken(ctx)
	if err != nil {
		log.Fatal(err)
	}

	// What another process would find in the directory.
	other, err := filestore.New(filepath.Join(tmp, "wechat"))
	if err != nil {
		log.Fatal(err)
	}
	stored, err := other.Get(ctx, "wechatconf/wx0123456789abcdef/access_token")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(stored.Value == tok.Value, srv.TokenValid(stored.Value))
	// Output: true true
}
