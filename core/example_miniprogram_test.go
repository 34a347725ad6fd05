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
// Program's AppID and AppSecret: the same stable_token keeps its
// access_token. An API that answers a file, such as the unlimited Mini
// Program code, is read into a *core.Media; its errors still come back as
// *core.APIError. (The login, GET /sns/jscode2session, is made with the
// AppSecret and no access_token, so it does not go through Do.)
func ExampleConf_Do_miniProgramCode() {
	wechat := wxtest.New(wxtest.Options{AppID: "wxa1b2c3d4e5f60718", AppSecret: "secret"})
	defer wechat.Close()
	conf, err := core.New(core.Config{
		AppID:     "wxa1b2c3d4e5f60718", // the Mini Program's
		AppSecret: core.NewSecret("secret"),
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
