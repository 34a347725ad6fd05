package silenceper_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/officialaccount"
	"github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wechatconf/wechatconf/contrib/silenceper"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	testAppID     = "wxsilenceper"
	testAppSecret = "silenceper-secret"
)

// setup starts a simulated WeChat API in classic-token mode, points
// silenceper's HTTP client and a new Conf (BaseURL left at
// https://api.weixin.qq.com) at it, and returns both.
func setup(t *testing.T) (*wxtest.Server, *core.Conf) {
	t.Helper()
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret})
	t.Cleanup(wechat.Close)
	client := &http.Client{Transport: newToServer(t, wechat.URL)}
	setSilenceperClient(t, client)
	conf, err := core.New(core.Config{
		AppID:      testAppID,
		AppSecret:  core.NewSecret(testAppSecret),
		TokenAPI:   core.ClassicToken,
		HTTPClient: client,
		Now:        wechat.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return wechat, conf
}

func TestHandleServesTheConfsCredentials(t *testing.T) {
	wechat, conf := setup(t)
	h := silenceper.New(conf)
	ctx := context.Background()
	tok, err := h.GetAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	want, err := conf.AccessToken(ctx)
	if err != nil || tok != want.Value {
		t.Fatalf("GetAccessToken = %q, Conf has %q (%v)", tok, want.Value, err)
	}
	if tok2, err := h.GetAccessTokenContext(ctx); err != nil || tok2 != tok {
		t.Fatalf("GetAccessTokenContext = %q, %v; want %q", tok2, err, tok)
	}
	ticket, err := h.GetTicket("ignored")
	if err != nil {
		t.Fatal(err)
	}
	wantTicket, err := conf.JSAPITicket(ctx)
	if err != nil || ticket != wantTicket.Value || !wechat.TicketValid(ticket) {
		t.Fatalf("GetTicket = %q, Conf has %q (%v), valid at WeChat: %v", ticket, wantTicket.Value, err, wechat.TicketValid(ticket))
	}
	if n := wechat.TokensIssued(); n != 1 {
		t.Fatalf("%d token fetches, want 1", n)
	}
	if h.Conf() != conf {
		t.Fatal("Conf() is not the Conf given to New")
	}
}

func TestHandleErrorsAreTheConfs(t *testing.T) {
	wechat, conf := setup(t)
	wechat.InjectFault(wxtest.PathToken, wxtest.Errcode(40164, "invalid ip"), 1)
	_, err := silenceper.New(conf).GetAccessToken()
	var apiErr *core.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 40164 {
		t.Fatalf("GetAccessToken error = %v, want the Conf's *core.APIError 40164", err)
	}
}

// TestOfficialAccountSurvivesARevokedToken revokes the token between two
// calls: with the adapter the second call succeeds after one more fetch;
// silenceper alone hands the caller 40001.
func TestOfficialAccountSurvivesARevokedToken(t *testing.T) {
	wechat, conf := setup(t)
	t.Cleanup(func() { silenceper.Uninstall() })
	oa := silenceper.OfficialAccount(conf, nil)
	ips, err := oa.GetBasic().GetCallbackIP()
	if err != nil || len(ips) == 0 {
		t.Fatalf("GetCallbackIP = %v, %v", ips, err)
	}
	tok, _ := oa.GetAccessToken()
	wechat.Revoke(tok)
	if ips, err = oa.GetBasic().GetCallbackIP(); err != nil || len(ips) == 0 {
		t.Fatalf("after a revoke, GetCallbackIP = %v, %v; want the IPs", ips, err)
	}
	if n := wechat.TokensIssued(); n != 2 {
		t.Fatalf("%d token fetches, want 2", n)
	}

	// The same without the adapter: silenceper's own handle and client.
	if err := silenceper.Uninstall(); err != nil {
		t.Fatal(err)
	}
	plain := officialaccount.NewOfficialAccount(&config.Config{AppID: testAppID, AppSecret: testAppSecret, Cache: cache.NewMemory()})
	if _, err := plain.GetBasic().GetCallbackIP(); err != nil {
		t.Fatal(err)
	}
	tok, _ = plain.GetAccessToken()
	wechat.Revoke(tok)
	if _, err := plain.GetBasic().GetCallbackIP(); err == nil || !strings.Contains(err.Error(), "errcode=40001") {
		t.Fatalf("without the adapter, GetCallbackIP after a revoke = %v; want errcode=40001", err)
	}
}

// TestStaleHandedOutTokenIsReplaced sends a request built with a token the
// handle handed out before it was rejected and replaced (what a goroutine
// does that took the token just before another one saw it rejected): the
// transport sends the Conf's current token instead.
func TestStaleHandedOutTokenIsReplaced(t *testing.T) {
	wechat, conf := setup(t)
	t.Cleanup(func() { silenceper.Uninstall() })
	oa := silenceper.OfficialAccount(conf, &config.Config{})
	old, err := oa.GetAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	wechat.Revoke(old)
	if _, err := conf.RefreshAccessToken(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	body, err := util.HTTPGet("https://" + weChatHost + wxtest.PathAPI + "?access_token=" + old)
	if err != nil || !strings.Contains(string(body), "ip_list") {
		t.Fatalf("GET with the replaced token: %s, %v; want the IP list", body, err)
	}
	if n := wechat.TokensIssued(); n != 2 {
		t.Fatalf("%d token fetches, want 2", n)
	}
}

// recorder is a base transport that records the URLs it is given.
type recorder struct {
	mu   sync.Mutex
	urls []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.urls = append(r.urls, req.URL.String())
	r.mu.Unlock()
	return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: req}, nil
}

// TestOtherRequestsPassUntouched checks that a token no handle handed out
// (a user's OAuth token) and a handed-out token sent to a host the Conf does
// not serve reach the base transport as they were.
func TestOtherRequestsPassUntouched(t *testing.T) {
	_, conf := setup(t)
	rec := &recorder{}
	setSilenceperClient(t, &http.Client{Transport: rec})
	h := silenceper.New(conf)
	silenceper.Install(h)
	t.Cleanup(func() { silenceper.Uninstall() })
	tok, err := h.GetAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	urls := []string{
		"https://" + weChatHost + "/sns/userinfo?access_token=user-oauth-token&openid=o1",
		"https://example.com/x?access_token=" + tok,
		"https://example.com/y",
	}
	for _, u := range urls {
		if _, err := util.HTTPGet(u); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(rec.urls, "\n") != strings.Join(urls, "\n") {
		t.Fatalf("base transport got\n%s\nwant\n%s", strings.Join(rec.urls, "\n"), strings.Join(urls, "\n"))
	}
	if err := silenceper.Uninstall(); err != nil {
		t.Fatal(err)
	}
	if util.DefaultHTTPClient.Transport != rec {
		t.Fatal("Uninstall did not put the previous client's transport back")
	}
	if err := silenceper.Uninstall(); !errors.Is(err, silenceper.ErrNotInstalled) {
		t.Fatalf("second Uninstall = %v, want ErrNotInstalled", err)
	}
}

// TestTwoAppsInOneProcess installs two Confs of two AppIDs: each request
// goes through the Conf whose token it carries.
func TestTwoAppsInOneProcess(t *testing.T) {
	wechat := wxtest.New(wxtest.Options{}) // any appid, each with its own tokens
	t.Cleanup(wechat.Close)
	client := &http.Client{Transport: newToServer(t, wechat.URL)}
	setSilenceperClient(t, client)
	t.Cleanup(func() { silenceper.Uninstall() })
	var oas []*officialaccount.OfficialAccount
	for _, id := range []string{"wxappa", "wxappb"} {
		conf, err := core.New(core.Config{AppID: id, AppSecret: core.NewSecret(testAppSecret), TokenAPI: core.ClassicToken,
			HTTPClient: client, Now: wechat.Now})
		if err != nil {
			t.Fatal(err)
		}
		oas = append(oas, silenceper.OfficialAccount(conf, nil))
	}
	for _, oa := range oas {
		tok, err := oa.GetAccessToken()
		if err != nil {
			t.Fatal(err)
		}
		wechat.Revoke(tok)
	}
	for i, oa := range oas {
		if _, err := oa.GetBasic().GetCallbackIP(); err != nil {
			t.Fatalf("app %d after a revoke: %v", i, err)
		}
	}
	if n := wechat.TokensIssued(); n != 4 {
		t.Fatalf("%d token fetches, want 4 (2 per app)", n)
	}
}
