package core_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// A Conf reading its AppSecret from a mounted secret file survives a reset
// of the AppSecret in the admin console without a restart: the refused
// secret backs off for Config.ErrorBackoff, and the first fetch after it
// reads the file again. In production the path is where the Kubernetes
// Secret is mounted, and BaseURL, HTTPClient and Now are left unset.
func ExampleFileSecret() {
	dir, err := os.MkdirTemp("", "secret")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "appsecret")
	_ = os.WriteFile(path, []byte("old-secret\n"), 0o600)

	wechat := wxtest.New(wxtest.Options{AppID: "wx0123456789abcdef", AppSecret: "old-secret"})
	defer wechat.Close()
	conf, err := core.New(core.Config{
		AppID:           "wx0123456789abcdef",
		AppSecretSource: core.FileSecret(path),
		BaseURL:         wechat.URL, HTTPClient: wechat.Client(), Now: wechat.Now,
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	_, err = conf.AccessToken(ctx)
	fmt.Println("before the reset:", err)

	wechat.SetAppSecret("wx0123456789abcdef", "new-secret") // an admin resets it
	wechat.Advance(2 * time.Hour)                           // the token falls due
	_, err = conf.AccessToken(ctx)
	fmt.Println("refused:", errors.Is(err, core.ErrSecretRefused))

	_ = os.WriteFile(path, []byte("new-secret\n"), 0o600) // the new secret is mounted
	wechat.Advance(core.DefaultErrorBackoff)
	_, err = conf.AccessToken(ctx)
	fmt.Println("after the back-off:", err)
	// Output:
	// before the reset: <nil>
	// refused: true
	// after the back-off: <nil>
}
