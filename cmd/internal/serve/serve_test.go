package serve_test

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/serve"
	"github.com/wechatconf/wechatconf/cmd/internal/serve/servetest"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	testAppID     = servetest.AppID
	testAppSecret = servetest.AppSecret
	testSecret    = servetest.BearerSecret
)

// TestTwoServersOneFileStore is the high-availability set-up on one
// machine: two servers over one file:// store.
func TestTwoServersOneFileStore(t *testing.T) {
	servetest.TwoServersOneStore(t, "file://"+filepath.Join(t.TempDir(), "tokens"))
}

// TestRunRefuses tests that the command refuses to start without the
// credentials or the bearer secret, with a short secret, a bad store URL, a
// password in -store, or bad flags, and prints no secret doing so.
func TestRunRefuses(t *testing.T) {
	const storePassword = "store-pa55word-xyz"
	good := map[string]string{"WECHAT_APPID": testAppID, "WECHAT_APPSECRET": testAppSecret, "TOKENSERVER_SECRET": testSecret}
	with := func(kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range good {
			env[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no secret", with("TOKENSERVER_SECRET", ""), nil, "TOKENSERVER_SECRET is not set"},
		{"short secret", with("TOKENSERVER_SECRET", "short"), nil, "at least 16"},
		{"no AppID", with("WECHAT_APPID", ""), nil, "WECHAT_APPID"},
		{"no AppSecret", with("WECHAT_APPSECRET", ""), nil, "WECHAT_APPSECRET"},
		{"AppSecret and its file", with("WECHAT_APPSECRET_FILE", "/run/secrets/appsecret"), nil, "not both"},
		{"bad store env", with("WECHATCONF_STORE", "mysql://host/db"), nil, "unknown scheme"},
		{"bad store flag", good, []string{"-store", "file:relative"}, "absolute"},
		{"password in -store", good, []string{"-store", "redis://u:" + storePassword + "@127.0.0.1:1/0"}, "WECHATCONF_STORE"},
		{"unreachable store", with("WECHATCONF_STORE", "redis://u:"+storePassword+"@127.0.0.1:1/0"), nil, "xxxxx"},
		{"unreachable postgres, password in the query", with("WECHATCONF_STORE", "postgres://u@127.0.0.1:1/db?sslmode=disable&password="+storePassword), nil, "xxxxx"},
		{"unreachable postgres, keyword DSN", with("WECHATCONF_STORE", "host=127.0.0.1 port=1 dbname=db user=u sslmode=disable password='"+storePassword+" x'"), nil, "xxxxx"},
		{"bad timeout", good, []string{"-timeout", "0s"}, "-timeout"},
		{"stray argument", good, []string{"serve"}, "unexpected"},
	} {
		var out, logs bytes.Buffer
		args := append([]string{"-addr", "127.0.0.1:0"}, c.args...)
		err := serve.Run(t.Context(), args, func(k string) string { return c.env[k] }, &out, &logs)
		switch {
		case err == nil:
			t.Errorf("%s: run returned nil, want an error", c.name)
			continue
		case !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: %v, want it to mention %q", c.name, err, c.want)
		}
		for _, s := range []string{testAppSecret, testSecret, storePassword} {
			if strings.Contains(out.String()+logs.String()+err.Error(), s) {
				t.Errorf("%s: a secret was printed: %v", c.name, err)
			}
		}
		if strings.Contains(out.String(), "serving") {
			t.Errorf("%s: the server started:\n%s", c.name, out.String())
		}
	}
}

// TestRunRefusesPasswordInFlag tests that -store refuses a URL with a
// password in every form the store URLs accept, before it opens anything,
// and that its refusal shows no part of the password.
func TestRunRefusesPasswordInFlag(t *testing.T) {
	const pw = "flag-pa55word"
	env := map[string]string{"WECHAT_APPID": testAppID, "WECHAT_APPSECRET": testAppSecret, "TOKENSERVER_SECRET": testSecret}
	for _, store := range []string{
		"redis://:" + pw + "@127.0.0.1:1/0",
		"rediss://user:" + pw + "@127.0.0.1:1/0",
		"redis://127.0.0.1:1/0?master_name=m&password=" + pw,
		"redis://sentinel:" + pw + "@127.0.0.1:1,127.0.0.2:1/0?master_name=m",
		"redis://:" + pw + "@127.0.0.1:1,127.0.0.2:1",
		"redis://:" + pw + "@127.0.0.1:1?cluster=true",
		"postgres://u:" + pw + "@127.0.0.1:1/db",
		"postgres://u@127.0.0.1:1/db?password=" + pw,
		"postgres://u@127.0.0.1:1/db?password=" + url.QueryEscape(pw+" x/y"),
		"postgresql://u@127.0.0.1:1/db?sslmode=disable&sslpassword=" + pw,
		"host=127.0.0.1 port=1 dbname=db user=u password=" + pw,
		"host=127.0.0.1 port=1 dbname=db user=u password='" + pw + " with spaces'",
		"host=127.0.0.1 dbname=db sslpassword=" + pw,
		"etcd://root:" + pw + "@127.0.0.1:1,127.0.0.2:1",
	} {
		var out, logs bytes.Buffer
		err := serve.Run(t.Context(), []string{"-addr", "127.0.0.1:0", "-store", store}, func(k string) string { return env[k] }, &out, &logs)
		switch {
		case err == nil:
			t.Errorf("-store %q: run returned nil, want a refusal", store)
			continue
		case !strings.Contains(err.Error(), "holds a password"):
			t.Errorf("-store %q: %v; want the password refusal", store, err)
		}
		if text := out.String() + logs.String() + err.Error(); strings.Contains(text, pw) || strings.Contains(text, "spaces") {
			t.Errorf("-store %q: the password was printed: %s", store, text)
		}
	}
}

// TestRedisLogsInTheServersLog tests that go-redis's own log lines (its
// pool's "failed to dial", which go-redis writes to the process's stderr
// by default) reach the server's log, as its records, with the store
// URL's password redacted.
func TestRedisLogsInTheServersLog(t *testing.T) {
	const storePassword = "store-pa55word-routed"
	env := map[string]string{
		"WECHAT_APPID": testAppID, "WECHAT_APPSECRET": testAppSecret, "TOKENSERVER_SECRET": testSecret,
		"WECHATCONF_STORE": "redis://u:" + storePassword + "@127.0.0.1:1/0",
	}
	var out, logs bytes.Buffer
	if err := serve.Run(t.Context(), []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, &out, &logs); err == nil {
		t.Fatal("Run over an unreachable Redis returned nil")
	}
	if !strings.Contains(logs.String(), "redis client") || !strings.Contains(logs.String(), "dial") {
		t.Errorf("go-redis's dial failures are not in the server's log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), storePassword) {
		t.Errorf("the server's log holds the store's password:\n%s", logs.String())
	}
}

// TestAppSecretFromAFile tests WECHAT_APPSECRET_FILE: the server reads the
// AppSecret from a mounted file (core.FileSecret, read again when WeChat
// refuses it: core's tests rotate it).
func TestAppSecretFromAFile(t *testing.T) {
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now})
	t.Cleanup(wechat.Close)
	path := filepath.Join(t.TempDir(), "appsecret")
	if err := os.WriteFile(path, []byte(testAppSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := servetest.StartServer(t, map[string]string{
		"WECHAT_APPID": testAppID, "WECHAT_APPSECRET_FILE": path, "WECHAT_BASE_URL": wechat.URL,
		"TOKENSERVER_SECRET": testSecret, "WECHATCONF_STORE": "memory:",
	})
	get := func(path string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/access_token"); code != http.StatusOK {
		t.Fatalf("GET /access_token with the secret from its file: %d", code)
	}
	if n := wechat.Calls(wxtest.PathStableToken); n != 1 {
		t.Errorf("%d token calls, want 1 with the AppSecret read from its file", n)
	}
}
