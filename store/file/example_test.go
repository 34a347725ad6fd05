package filestore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

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

// Claims de-duplicate work among the processes of the machine: the first
// Claim of a key wins, the others get the winner's value back until the
// claim expires or its holder releases it. core.Dedup does this for
// WeChat's pushes; this is the store call underneath.
func ExampleStore_Claim() {
	tmp, err := os.MkdirTemp("", "filestore-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	web, err := filestore.New(tmp) // one process…
	if err != nil {
		log.Fatal(err)
	}
	cron, err := filestore.New(tmp) // …and another, on the same directory
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	const key, ttl = "push/msg-1234567890", time.Minute

	held, _ := web.Claim(ctx, key, "web-1", ttl)
	fmt.Println("web holds it:", held == "web-1")
	held, _ = cron.Claim(ctx, key, "cron-7", ttl)
	fmt.Println("cron sees:", held)

	released, _ := web.CompareAndSwapClaim(ctx, key, "web-1", "", 0) // release
	held, _ = cron.Claim(ctx, key, "cron-7", ttl)
	fmt.Println("released:", released, "cron holds it:", held == "cron-7")
	// Output:
	// web holds it: true
	// cron sees: web-1
	// released: true cron holds it: true
}
