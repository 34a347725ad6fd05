package silenceper_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/silenceper/wechat/v2/miniprogram/message"
	"github.com/silenceper/wechat/v2/openplatform"
	opconfig "github.com/silenceper/wechat/v2/openplatform/config"
	"github.com/silenceper/wechat/v2/util"
	"github.com/silenceper/wechat/v2/work"
	workmessage "github.com/silenceper/wechat/v2/work/message"

	"github.com/wechatconf/wechatconf/contrib/silenceper"
	"github.com/wechatconf/wechatconf/core"
	coreopen "github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wecom"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	weComHost   = "qyapi.weixin.qq.com" // the host silenceper's work package calls
	testCorpID  = "wwsilenceper"
	testAgentID = 1000002
	testSecret  = "silenceper-work-secret"
)

// toSimulator is the test's network: requests to WeChat's API hosts and
// to WeCom's go to the simulated API at target; others go out unchanged.
type toSimulator struct{ wechat *toServer }

func (s toSimulator) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == weComHost {
		out := req.Clone(req.Context())
		u := *req.URL
		u.Scheme, u.Host = s.wechat.target.Scheme, s.wechat.target.Host
		out.URL, out.Host = &u, ""
		return http.DefaultTransport.RoundTrip(out)
	}
	return s.wechat.RoundTrip(req)
}

// sendText sends a WeCom application message through wk.
func sendText(wk *work.Work) error {
	_, err := wk.GetMessage().SendText(workmessage.SendTextRequest{
		SendRequestCommon: &workmessage.SendRequestCommon{ToUser: "@all", AgentID: fmt.Sprint(testAgentID)},
		Text:              workmessage.TextField{Content: "hello"},
	})
	return err
}

// TestWorkRetryWhateverTheBaseURL tests that a WeCom call silenceper makes
// (to https://qyapi.weixin.qq.com, hardcoded) is retried with a new token
// after WeCom revokes the old one (40014), whether the app fetches its
// tokens from WeCom's host or from elsewhere (the simulator's URL), and
// that the app's token is the one silenceper uses (no gettoken of its own:
// the silenceper config has no secret).
func TestWorkRetryWhateverTheBaseURL(t *testing.T) {
	for _, tc := range []struct {
		name    string
		baseURL func(sim string) string
	}{
		{"DefaultHost", func(string) string { return "" }},
		{"AppAtSimulator", func(sim string) string { return sim }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wechat := wxtest.New(wxtest.Options{WeComApps: []wxtest.WeComApp{{CorpID: testCorpID, AgentID: testAgentID, Secret: testSecret}}})
			t.Cleanup(wechat.Close)
			client := &http.Client{Transport: toSimulator{newToServer(t, wechat.URL)}}
			setSilenceperClient(t, client)
			app, err := wecom.New(wecom.Config{CorpID: testCorpID, AgentID: testAgentID, Secret: core.NewSecret(testSecret),
				BaseURL: tc.baseURL(wechat.URL), HTTPClient: client, Now: wechat.Now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { silenceper.Uninstall() })
			wk := silenceper.Work(app, nil)
			if err := sendText(wk); err != nil {
				t.Fatalf("SendText: %v", err)
			}
			tok, err := wk.GetContext().GetAccessToken()
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := app.AccessToken(context.Background()); tok != want.Value {
				t.Fatalf("silenceper's token %q is not the app's %q", tok, want.Value)
			}
			wechat.Revoke(tok)
			if err := sendText(wk); err != nil {
				t.Errorf("SendText after a revoke: %v; want success after one refresh and a retry", err)
			}
			if n := wechat.Calls(wxtest.PathWeComToken); n != 2 {
				t.Errorf("%d gettoken calls, want 2", n)
			}
		})
	}
}

// weComAnswers is the test's network: requests to WeCom's host get the
// errcode code; the others go to the simulator.
type weComAnswers struct {
	code int
	sim  http.RoundTripper
}

func (a weComAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != weComHost {
		return a.sim.RoundTrip(req)
	}
	body := fmt.Sprintf(`{"errcode":%d,"errmsg":"from the test"}`, a.code)
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

// TestWeComHostUsesWeComCodes tests that a WeCom app's token, on a request
// to WeCom's host, is replaced on WeCom's rejections (40014, 42001) and not
// on 40001, which in WeCom is a wrong secret, not a dead token — though an
// Official Account's token would be replaced on it.
func TestWeComHostUsesWeComCodes(t *testing.T) {
	for _, tc := range []struct {
		code     int
		gettoken int
	}{{40001, 1}, {40014, 2}, {42001, 2}} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			wechat := wxtest.New(wxtest.Options{})
			t.Cleanup(wechat.Close)
			setSilenceperClient(t, &http.Client{Transport: weComAnswers{tc.code, http.DefaultTransport}})
			app, err := wecom.New(wecom.Config{CorpID: testCorpID, AgentID: testAgentID, Secret: core.NewSecret(testSecret),
				BaseURL: wechat.URL, Now: wechat.Now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { silenceper.Uninstall() })
			wk := silenceper.Work(app, nil)
			var ce *util.CommonError
			if err := sendText(wk); !errors.As(err, &ce) || ce.ErrCode != int64(tc.code) {
				t.Errorf("SendText = %v, want WeCom's errcode %d", err, tc.code)
			}
			if n := wechat.Calls(wxtest.PathWeComToken); n != tc.gettoken {
				t.Errorf("WeCom answered %d: %d gettoken calls, want %d", tc.code, n, tc.gettoken)
			}
		})
	}
}

// TestPlatformsInOneProcess installs an Official Account, a Mini Program,
// a WeCom app and an Open Platform authorizer in one process: each
// request goes through the credentials whose token it carries, and a
// revoke of each token costs that one credential one fetch.
func TestPlatformsInOneProcess(t *testing.T) {
	wechat := wxtest.New(wxtest.Options{Components: []wxtest.Component{{AppID: "wxcomponent", AppSecret: "component-secret"}}})
	t.Cleanup(wechat.Close)
	client := &http.Client{Transport: toSimulator{newToServer(t, wechat.URL)}}
	setSilenceperClient(t, client)
	t.Cleanup(func() { silenceper.Uninstall() })
	newConf := func(id string) *core.Conf {
		conf, err := core.New(core.Config{AppID: id, AppSecret: core.NewSecret(testAppSecret), TokenAPI: core.ClassicToken,
			HTTPClient: client, Now: wechat.Now})
		if err != nil {
			t.Fatal(err)
		}
		return conf
	}
	oa := silenceper.OfficialAccount(newConf("wxaccount"), nil)
	mp := silenceper.MiniProgram(newConf("wxminiprogram"), nil)
	app, err := wecom.New(wecom.Config{CorpID: testCorpID, AgentID: testAgentID, Secret: core.NewSecret(testSecret),
		HTTPClient: client, Now: wechat.Now})
	if err != nil {
		t.Fatal(err)
	}
	wk := silenceper.Work(app, nil)
	component := newComponent(t, wechat, client, 0)
	merchant := silenceper.AuthorizerOfficialAccount(nil, component.Authorizer("wxmerchant"))

	calls := map[string]func() error{
		"OfficialAccount": func() error { _, err := oa.GetBasic().GetCallbackIP(); return err },
		"MiniProgram": func() error {
			return mp.GetCustomerMessage().Send(message.NewCustomerTextMessage("openid", "hello"))
		},
		"Work":                      func() error { return sendText(wk) },
		"AuthorizerOfficialAccount": func() error { _, err := merchant.GetBasic().GetCallbackIP(); return err },
	}
	tokens := map[string]func() (string, error){
		"OfficialAccount":           oa.GetAccessToken,
		"MiniProgram":               mp.GetContext().GetAccessToken,
		"Work":                      wk.GetContext().GetAccessToken,
		"AuthorizerOfficialAccount": merchant.GetAccessToken,
	}
	seen := map[string]string{}
	for name, call := range calls {
		if err := call(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		tok, err := tokens[name]()
		if err != nil {
			t.Fatal(err)
		}
		if other, ok := seen[tok]; ok {
			t.Fatalf("%s and %s hold one token", name, other)
		}
		seen[tok] = name
		wechat.Revoke(tok)
	}
	for name, call := range calls {
		if err := call(); err != nil {
			t.Errorf("%s after a revoke: %v; want success after one refresh and a retry", name, err)
		}
	}
	// Official Account 2, Mini Program 2, WeCom 2, the authorizer 2 (its
	// first token came with the authorization).
	if n := wechat.TokensIssued(); n != 8 {
		t.Errorf("%d token fetches, want 8 (2 per credential)", n)
	}
	if n := wechat.AuthorizerTokensIssued("wxmerchant"); n != 2 {
		t.Errorf("%d authorizer token fetches, want 2", n)
	}
}

// newComponent returns a Component whose merchant "wxmerchant" has
// authorized it, on a memory store (0 maxAuthorizers: the default).
func newComponent(t *testing.T, wechat *wxtest.Server, client *http.Client, maxAuthorizers int) *coreopen.Component {
	t.Helper()
	component, err := coreopen.New(coreopen.Config{AppID: "wxcomponent", AppSecret: core.NewSecret("component-secret"),
		BaseURL: wechat.URL, HTTPClient: client, Now: wechat.Now, MaxAuthorizers: maxAuthorizers})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := component.SetVerifyTicket(ctx, wechat.VerifyTicket("wxcomponent"), wechat.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := component.Authorize(ctx, wechat.Authorize("wxcomponent", "wxmerchant")); err != nil {
		t.Fatal(err)
	}
	return component
}

// TestAuthorizerOfficialAccountTakesAnyOpenPlatform tests that
// AuthorizerOfficialAccount works with no silenceper Open Platform client
// and with one whose config has no Cache (silenceper would panic), and
// leaves the caller's config as it was.
func TestAuthorizerOfficialAccountTakesAnyOpenPlatform(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func() *openplatform.OpenPlatform
	}{
		{"Nil", func() *openplatform.OpenPlatform { return nil }},
		{"NoCache", func() *openplatform.OpenPlatform {
			return openplatform.NewOpenPlatform(&opconfig.Config{AppID: "wxcomponent"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wechat := wxtest.New(wxtest.Options{Components: []wxtest.Component{{AppID: "wxcomponent", AppSecret: "component-secret"}}})
			t.Cleanup(wechat.Close)
			setSilenceperClient(t, &http.Client{Transport: newToServer(t, wechat.URL)})
			t.Cleanup(func() { silenceper.Uninstall() })
			op := tc.op()
			oa := silenceper.AuthorizerOfficialAccount(op, newComponent(t, wechat, nil, 0).Authorizer("wxmerchant"))
			if ips, err := oa.GetBasic().GetCallbackIP(); err != nil || len(ips) == 0 {
				t.Errorf("GetCallbackIP = %v, %v; want the IPs", ips, err)
			}
			if op != nil && op.Cache != nil {
				t.Errorf("the caller's Open Platform config got a Cache")
			}
		})
	}
}

// TestNewAuthorizerKeepsTheAuthorizer tests that a Handle keeps the
// openplatform.Authorizer it serves, so that the Component, after dropping
// it from its registry, hands out the same one again (and a withdrawal it
// applies reaches the Handle's credentials) instead of a second handle
// with a token of its own.
func TestNewAuthorizerKeepsTheAuthorizer(t *testing.T) {
	wechat := wxtest.New(wxtest.Options{Components: []wxtest.Component{{AppID: "wxcomponent", AppSecret: "component-secret"}}})
	t.Cleanup(wechat.Close)
	component := newComponent(t, wechat, nil, 2)
	h := silenceper.NewAuthorizer(component.Authorizer("wxmerchant"))
	for i := range 8 { // push it out of a registry of 2
		component.Authorizer(fmt.Sprintf("wxother%d", i))
	}
	if _, evicted := component.Stats(); evicted == 0 {
		t.Fatal("no handle was evicted; the test did not push the merchant out of the registry")
	}
	runtime.GC()
	runtime.GC()
	if got := component.Authorizer("wxmerchant").Conf; got != h.Conf() {
		t.Errorf("after eviction and GC the Component hands out another Conf for the merchant; the Handle did not keep its Authorizer")
	}
	runtime.KeepAlive(h)
}
