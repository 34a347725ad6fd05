package main

import (
	"strings"
	"testing"
)

func TestQuickstartWithoutCredentials(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), &out, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"simulated WeChat API", "access_token sha256:", "(136 chars)", "second call: same token: true", "token fetches made: 1"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestQuickstartNeverPrintsTheSecret(t *testing.T) {
	const secret = "real-looking-app-secret-0123456789"
	env := map[string]string{"WECHAT_APPID": "wx1", "WECHAT_APPSECRET": secret, "WECHAT_BASE_URL": "http://127.0.0.1:1"}
	var out strings.Builder
	err := run(t.Context(), &out, func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("want an error from an unreachable API")
	}
	if strings.Contains(out.String()+err.Error(), secret) {
		t.Errorf("the AppSecret was printed: %s %v", out.String(), err)
	}
}
