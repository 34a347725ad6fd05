package core_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// TestJSSDKSignaturePublishedExample tests the published JS-SDK example,
// and that a #fragment does not change the signature.
func TestJSSDKSignaturePublishedExample(t *testing.T) {
	const (
		ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
		want   = "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
	)
	for _, u := range []string{"http://mp.weixin.qq.com?params=value", "http://mp.weixin.qq.com?params=value#/page?x=1"} {
		if got := core.JSSDKSignature(ticket, "Wm3WZYTPz0wzccnW", 1414587457, u); got != want {
			t.Errorf("JSSDKSignature(url %q) = %s, want %s", u, got, want)
		}
	}
}

// TestJSSDKConfig tests that JSSDKConfig signs with the maintained
// jsapi_ticket, the Conf's clock and a fresh nonce, strips the fragment,
// and fetches the ticket once.
func TestJSSDKConfig(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	ctx := t.Context()
	const page = "https://example.com/shop?item=1&lang=zh_CN"
	cfg, err := c.JSSDKConfig(ctx, page+"#/cart")
	if err != nil {
		t.Fatal(err)
	}
	ticket, err := c.JSAPITicket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !s.TicketValid(ticket.Value) {
		t.Errorf("the ticket is not one the server issued")
	}
	if cfg.AppID != appID || cfg.Timestamp != s.Now().Unix() || len(cfg.NonceStr) != 16 {
		t.Errorf("JSSDKConfig = %+v; want AppID %s, timestamp %d, a 16-character nonce", cfg, appID, s.Now().Unix())
	}
	if want := core.JSSDKSignature(ticket.Value, cfg.NonceStr, cfg.Timestamp, page); cfg.Signature != want {
		t.Errorf("Signature = %s, want %s (signed without the fragment)", cfg.Signature, want)
	}
	again, err := c.JSSDKConfig(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	if again.NonceStr == cfg.NonceStr {
		t.Errorf("two configurations share the nonce %s", cfg.NonceStr)
	}
	if n := s.Calls(wxtest.PathTicket); n != 1 {
		t.Errorf("ticket fetched %d times, want 1", n)
	}
	js, _ := json.Marshal(cfg)
	for _, k := range []string{`"appId"`, `"timestamp"`, `"nonceStr"`, `"signature"`} {
		if !strings.Contains(string(js), k) {
			t.Errorf("JSON %s lacks %s", js, k)
		}
	}
}

// TestJSSDKConfigErrors tests that a URL that is not absolute http(s) and a missing AppID are
// errors that say so, and that a ticket failure is passed on.
func TestJSSDKConfigErrors(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	for _, bad := range []string{"", "#only-a-fragment", "/relative/page", "mp.weixin.qq.com/page", "ftp://example.com/page", "javascript:alert(1)"} {
		if _, err := c.JSSDKConfig(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "not an absolute http(s) URL") {
			t.Errorf("JSSDKConfig(%q): %v, want an error naming an absolute http(s) URL", bad, err)
		}
	}
	noApp := newConf(t, s, func(cfg *core.Config) { cfg.AppID = "" })
	if _, err := noApp.JSSDKConfig(t.Context(), "https://example.com/"); err == nil || !strings.Contains(err.Error(), "Config.AppID is required") {
		t.Errorf("JSSDKConfig without an AppID: %v", err)
	}
	s.InjectFault(wxtest.PathTicket, wxtest.Errcode(45009, "reach max api daily quota limit"), 1)
	if _, err := c.JSSDKConfig(t.Context(), "https://example.com/"); !core.IsQuotaExceeded(err) {
		t.Errorf("JSSDKConfig with the ticket quota used up: %v, want the 45009 APIError", err)
	}
}
