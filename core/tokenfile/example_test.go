package tokenfile_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/tokenfile"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// ExampleAgent keeps an access_token in a file until SIGTERM, as
// `wechatconf agent` does; here against the simulated WeChat API, for one
// write.
func ExampleAgent() {
	wechat := wxtest.New(wxtest.Options{Now: time.Now})
	defer wechat.Close()
	conf, err := core.New(core.Config{AppID: "wx0123456789abcdef", AppSecret: core.NewSecret("secret"),
		BaseURL: wechat.URL}) // and Store: the fleet's store
	if err != nil {
		log.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	agent := &tokenfile.Agent{Path: filepath.Join(dir, "access_token.json"),
		Kind: "access_token", AppID: conf.AppID(), Token: conf.AccessToken,
		OnWrite: func(r tokenfile.Record) { fmt.Println("wrote", r.Kind, r.ExpiresIn > 7000); stop() }}
	if err := agent.Run(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: wrote access_token true
}

// ExampleRead is what a Go reader of the file does; the PHP, Python and
// Node readers of examples/agent/readers do the same.
func ExampleRead() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "access_token.json")
	agent := &tokenfile.Agent{Path: path, Kind: "access_token", AppID: "wx0123456789abcdef"}
	agent.Write(core.Token{Value: "ACCESS_TOKEN", ExpiresAt: time.Now().Add(2 * time.Hour)})

	rec, err := tokenfile.Read(path, tokenfile.DefaultMargin, time.Now())
	if err != nil { // fs.ErrNotExist, ErrInvalid, ErrExpired: fall back, or fail
		log.Fatal(err)
	}
	fmt.Println(rec.Kind, rec.AppID, rec.Value)
	// Output: access_token wx0123456789abcdef ACCESS_TOKEN
}
