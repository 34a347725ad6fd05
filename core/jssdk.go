package core

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// JSSDKConfig is what a web page passes to wx.config to use the JS-SDK
// (with debug and jsApiList added by the page). It marshals to JSON with
// the field names wx.config takes.
type JSSDKConfig struct {
	AppID     string `json:"appId"`     // Config.AppID
	Timestamp int64  `json:"timestamp"` // Unix seconds, from the Conf's clock
	NonceStr  string `json:"nonceStr"`  // 16 random characters
	Signature string `json:"signature"` // JSSDKSignature of the above and the page URL
}

// JSSDKConfig returns the wx.config parameters for the page at pageURL:
// the AppID, a fresh timestamp and nonceStr, and their signature made with
// the jsapi_ticket that c keeps valid (see JSAPITicket). pageURL is the
// page's full URL as the browser has it (location.href), an absolute http
// or https URL (anything else is an error); its #fragment, if any, is
// removed, and nothing else is changed. Config.AppID is required,
// and whatever JSAPITicket needs.
func (c *Conf) JSSDKConfig(ctx context.Context, pageURL string) (JSSDKConfig, error) {
	if err := checkPageURL(pageURL); err != nil {
		return JSSDKConfig{}, wrapErr(err, "JSSDKConfig")
	}
	if c.appID == "" {
		return JSSDKConfig{}, errMissing("AppID", "sign JS-SDK configurations")
	}
	ticket, err := c.JSAPITicket(ctx)
	if err != nil {
		return JSSDKConfig{}, wrapErr(err, "JSSDKConfig")
	}
	return SignJSSDK(c.appID, ticket.Value, pageURL, c.now())
}

// SignJSSDK returns the parameters of a JS-SDK config call for the page at
// pageURL — wx.config (Conf.JSSDKConfig, WeCom's corp ticket) or WeCom's
// wx.agentConfig, which are signed the same way: appID (the AppID, or the
// CorpID), a fresh 16-character nonceStr, the timestamp now (Unix
// seconds), and their JSSDKSignature with ticket. pageURL must be an
// absolute http(s) URL (the page's location.href); its #fragment is
// removed, nothing else is changed; anything else is an error.
func SignJSSDK(appID, ticket, pageURL string, now time.Time) (JSSDKConfig, error) {
	if err := checkPageURL(pageURL); err != nil {
		return JSSDKConfig{}, wrapErr(err, "SignJSSDK")
	}
	nonce := rand.Text()[:16]
	ts := now.Unix()
	return JSSDKConfig{
		AppID:     appID,
		Timestamp: ts,
		NonceStr:  nonce,
		Signature: JSSDKSignature(ticket, nonce, ts, pageURL),
	}, nil
}

// checkPageURL says why pageURL cannot be signed, if it cannot.
func checkPageURL(pageURL string) error {
	pageURL = stripFragment(pageURL)
	if u, err := url.Parse(pageURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("the page URL %q is not an absolute http(s) URL (pass the page's location.href)", pageURL)
	}
	return nil
}

// JSSDKSignature returns the JS-SDK signature of a page:
// hex(sha1("jsapi_ticket=T&noncestr=N&timestamp=TS&url=U")), with the
// #fragment removed from pageURL. Conf.JSSDKConfig calls it with a valid
// ticket; use it directly to check a signature or with a ticket kept
// elsewhere.
func JSSDKSignature(ticket, nonceStr string, timestamp int64, pageURL string) string {
	h := sha1.New()
	for _, s := range [...]string{
		"jsapi_ticket=", ticket,
		"&noncestr=", nonceStr,
		"&timestamp=", strconv.FormatInt(timestamp, 10),
		"&url=", stripFragment(pageURL),
	} {
		io.WriteString(h, s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func stripFragment(u string) string {
	if i := strings.IndexByte(u, '#'); i >= 0 {
		return u[:i]
	}
	return u
}
