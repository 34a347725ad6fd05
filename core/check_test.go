package core_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Check reports at start-up what New accepts but a request would fail on.
func TestCheck(t *testing.T) {
	empty, err := core.New(core.Config{})
	if err != nil {
		t.Fatalf("New(Config{}) = %v; every field stays optional", err)
	}
	if err := empty.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "Config.AppID is required") {
		t.Errorf("Check of an empty Config = %v, want it to name Config.AppID", err)
	}
	s := newServer(t)
	noSecret := newConf(t, s, func(c *core.Config) { c.AppSecret = core.NewSecret("") })
	if err := noSecret.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "Config.AppSecret is required") {
		t.Errorf("Check without an AppSecret = %v, want it to name Config.AppSecret", err)
	}
	wrong := newConf(t, s, func(c *core.Config) { c.AppSecret = core.NewSecret("wrong") })
	if err := wrong.Check(t.Context()); !core.IsConfigError(err) {
		t.Errorf("Check with a wrong AppSecret = %v, want a config error", err)
	}
	if err := newConf(t, s, nil).Check(t.Context()); err != nil {
		t.Errorf("Check of a good Config = %v", err)
	}
}

// Every error starts with "wechatconf: " once, however deep its chain.
func TestOnePrefixPerErrorChain(t *testing.T) {
	s := newServer(t)
	ctx := t.Context()
	var errs []error
	add := func(err error) { errs = append(errs, err) }

	noToken := newConf(t, s, nil)
	_, err := noToken.ReadMessage(url.Values{}, strings.NewReader("<xml/>"))
	add(err)
	_, err = noToken.VerifyURL(url.Values{})
	add(err)

	wrong := newConf(t, s, func(c *core.Config) { c.AppSecret = core.NewSecret("wrong") })
	_, err = wrong.JSSDKConfig(ctx, "https://example.com/page")
	add(err)
	_, err = wrong.CardTicket(ctx)
	add(err)
	add(wrong.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, nil))
	_, err = core.New(core.Config{}) // no error: but AccessToken without an AppID is one
	if err != nil {
		t.Fatal(err)
	}
	noApp, _ := core.New(core.Config{})
	_, err = noApp.AccessToken(ctx)
	add(err)

	storm := newConf(t, s, classic)
	if _, err := storm.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	s.InjectFault(wxtest.PathAPI, wxtest.Errcode(40001, "invalid credential rid: 1"), 10)
	add(storm.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, nil))
	add(storm.Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, nil)) // a *LimitError through the store

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = newConf(t, s, nil).AccessToken(cancelled)
	add(err)

	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		if n := strings.Count(err.Error(), "wechatconf:"); n != 1 || !strings.HasPrefix(err.Error(), "wechatconf: ") {
			t.Errorf("case %d: %q has %d \"wechatconf:\" prefixes, want one at the start", i, err, n)
		}
	}
}
