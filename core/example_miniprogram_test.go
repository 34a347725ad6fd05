package core_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	jpegimg "image/jpeg"
	"log"
	"net/http"
	"strings"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// A Mini Program is a Conf like an Official Account's, with the Mini
// Program's AppID and AppSecret, and Config.Platform saying it is one
// (for its events and metrics only): the same stable_token keeps its
// access_token. An API that answers a file, such as the unlimited Mini
// Program code, is read into a *core.Media; its errors still come back as
// *core.APIError. (The login, GET /sns/jscode2session, is made with the
// AppSecret and no access_token: it is Conf.Code2Session.)
func ExampleConf_Do_miniProgramCode() {
	wechat := wxtest.New(wxtest.Options{AppID: "wxa1b2c3d4e5f60718", AppSecret: "secret"})
	defer wechat.Close()
	conf, err := core.New(core.Config{
		AppID:     "wxa1b2c3d4e5f60718", // the Mini Program's
		AppSecret: core.NewSecret("secret"),
		Platform:  core.PlatformMiniProgram, // its events and metrics say "mini_program"
		BaseURL:   wechat.URL,
		Now:       wechat.Now,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	var media core.Media
	err = conf.Do(ctx, http.MethodPost, "/wxa/getwxacodeunlimit", nil, map[string]any{"scene": "a=1", "page": "pages/index/index", "width": 280}, &media)
	if err != nil {
		log.Fatal(err)
	}
	img, err := jpegimg.DecodeConfig(bytes.NewReader(media.Body))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %dx%d, %t\n", media.ContentType, img.Width, img.Height, len(media.Body) > 0)

	// A scene over 32 characters: errcode 40169, as JSON instead of an image.
	err = conf.Do(ctx, http.MethodPost, "/wxa/getwxacodeunlimit", nil, map[string]any{"scene": strings.Repeat("x", 33)}, &media)
	var apiErr *core.APIError
	fmt.Println(errors.As(err, &apiErr), apiErr.Code)

	// Output:
	// image/jpeg 280x280, true
	// true 40169
}

// The Mini Program login: wx.login gives the Mini Program a code, which it
// sends to its server; the server exchanges it with Code2Session for the
// user's openid and session_key. The session_key stays on the server: it
// prints as REDACTED and is read with Reveal. A code works once.
func ExampleConf_Code2Session() {
	wechat := wxtest.New(wxtest.Options{AppID: "wxa1b2c3d4e5f60718", AppSecret: "secret"})
	defer wechat.Close()
	conf, err := core.New(core.Config{
		AppID:     "wxa1b2c3d4e5f60718", // the Mini Program's
		AppSecret: core.NewSecret("secret"),
		Platform:  core.PlatformMiniProgram, // its events and metrics say "mini_program"
		BaseURL:   wechat.URL,
		Now:       wechat.Now,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	code := wechat.IssueLoginCode("oUser1") // what wx.login gives the phone

	session, err := conf.Code2Session(ctx, code)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", session)
	fmt.Println(len(session.SessionKey.Reveal()))

	// The same code again: errcode 40163, code been used.
	_, err = conf.Code2Session(ctx, code)
	var apiErr *core.APIError
	fmt.Println(errors.As(err, &apiErr), apiErr.Code)

	// Output:
	// {OpenID:oUser1 SessionKey:REDACTED UnionID:}
	// 24
	// true 40163
}
