package wechatconfotel_test

import (
	"log/slog"
	"testing"
	"time"

	wechatconfotel "github.com/wechatconf/wechatconf/contrib/otel"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecom"
	"github.com/wechatconf/wechatconf/core/wxtest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// An Official Account's, a Mini Program's and a WeCom app's access_token
// share a kind ("access_token"); wechatconf.platform splits them, on the
// counters, the histograms, the gauge (one point per kind and platform)
// and the spans.
func TestPlatformSplitsAccessTokens(t *testing.T) {
	hs := newHarness(t)
	const corpID, agent, corpSecret = "ww0123456789abcdef", 1000002, "wecom-secret-of-the-app-xyz"
	s := wxtest.New(wxtest.Options{AppID: appID, AppSecret: appSecret, Now: time.Now,
		WeComApps: []wxtest.WeComApp{{CorpID: corpID, AgentID: agent, Secret: corpSecret}}})
	t.Cleanup(s.Close)
	logger := slog.New(hs.h)
	oa := newConf(t, s, logger)
	mini, err := core.New(core.Config{
		AppID: appID, AppSecret: core.NewSecret(appSecret), Platform: core.PlatformMiniProgram,
		KeyPrefix: "mini", BaseURL: s.URL, HTTPClient: s.Client(), Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	app, err := wecom.New(wecom.Config{CorpID: corpID, AgentID: agent, Secret: core.NewSecret(corpSecret), BaseURL: s.URL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, get := range []func() (core.Token, error){
		func() (core.Token, error) { return oa.AccessToken(ctx) },
		func() (core.Token, error) { return mini.AccessToken(ctx) },
		func() (core.Token, error) { return app.AccessToken(ctx) },
	} {
		if _, err := get(); err != nil {
			t.Fatal(err)
		}
	}
	hs.h.Observe(oa.AccessTokenCredential(), mini.AccessTokenCredential(), app.AccessTokenCredential())

	platforms := []core.Platform{core.PlatformOfficialAccount, core.PlatformMiniProgram, core.PlatformWeCom}
	ms := hs.collect(t)
	for _, p := range platforms {
		pl := wechatconfotel.AttrPlatform.String(string(p))
		for _, name := range []string{"wechatconf.fetches", "wechatconf.fetch.duration", "wechatconf.lock.wait"} {
			if n := count(t, ms, name, cred, pl); n != 1 {
				t.Errorf("%s{access_token, %s} = %d, want 1", name, p, n)
			}
		}
	}
	if n := count(t, ms, "wechatconf.fetches", cred); n != 3 {
		t.Errorf("wechatconf.fetches{access_token} = %d, want 3", n)
	}
	g := ms["wechatconf.token.remaining"].Data.(metricdata.Gauge[float64])
	seen := map[string]bool{}
	for _, pt := range g.DataPoints {
		v, _ := pt.Attributes.Value(wechatconfotel.AttrPlatform)
		seen[v.AsString()] = true
		if !matches(pt.Attributes, []attribute.KeyValue{cred}) {
			t.Errorf("gauge point %v: want kind access_token", pt.Attributes)
		}
	}
	if len(g.DataPoints) != 3 || !seen["official_account"] || !seen["mini_program"] || !seen["wecom"] {
		t.Errorf("wechatconf.token.remaining has points of platforms %v, want one each of official_account, mini_program, wecom", seen)
	}
	spans := map[string]bool{}
	for _, sp := range hs.spans.Ended() {
		for _, kv := range sp.Attributes() {
			if kv.Key == wechatconfotel.AttrPlatform {
				spans[sp.Name()+" "+kv.Value.AsString()] = true
			}
		}
	}
	for _, p := range platforms {
		if !spans["wechatconf.refresh access_token "+string(p)] {
			t.Errorf("no span wechatconf.refresh access_token with platform %s among %v", p, spans)
		}
	}
}
