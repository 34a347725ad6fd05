// Command quickstart keeps an access_token valid with wechatconf in a dozen
// lines. Run it from the repository root:
//
//	go run ./examples/quickstart
//
// With no credentials it starts the simulated WeChat API (core/wxtest)
// in-process, so it works on any machine with no network. With
// WECHAT_APPID and WECHAT_APPSECRET set it talks to the real API at
// api.weixin.qq.com instead (WECHAT_BASE_URL overrides the host). It prints
// the token only shortened: a token is a credential too.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

func main() {
	if err := run(context.Background(), os.Stdout, os.Getenv); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer, getenv func(string) string) error {
	cfg := core.Config{
		AppID:     getenv("WECHAT_APPID"),
		AppSecret: core.NewSecret(getenv("WECHAT_APPSECRET")),
		BaseURL:   getenv("WECHAT_BASE_URL"),
	}
	var sim *wxtest.Server
	if cfg.AppID == "" || cfg.AppSecret.IsZero() {
		sim = wxtest.New(wxtest.Options{AppID: "wx_quickstart", AppSecret: "quickstart-secret", Now: time.Now})
		defer sim.Close()
		cfg = core.Config{AppID: "wx_quickstart", AppSecret: core.NewSecret("quickstart-secret"), BaseURL: sim.URL}
		fmt.Fprintf(w, "no WECHAT_APPID/WECHAT_APPSECRET: using the simulated WeChat API at %s\n", sim.URL)
	} else {
		fmt.Fprintf(w, "using the WeChat API for AppID %s\n", cfg.AppID)
	}

	conf, err := core.New(cfg) // Store: nil = in-process memory store
	if err != nil {
		return err
	}

	start := time.Now()
	tok, err := conf.AccessToken(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "access_token %s (%d chars), expires at %s, fetched in %v\n",
		fingerprint(tok.Value), len(tok.Value), tok.ExpiresAt.Format(time.RFC3339), time.Since(start).Round(time.Microsecond))

	start = time.Now()
	again, err := conf.AccessToken(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "second call: same token: %v, served from memory in %v\n", again.Value == tok.Value, time.Since(start))
	if sim != nil {
		fmt.Fprintf(w, "token fetches made: %d\n", sim.Calls(wxtest.PathStableToken))
	}
	return nil
}

// fingerprint tells credentials apart without showing any part of one: the
// start of its SHA-256, as "sha256:1a2b3c4d".
func fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:4])
}
