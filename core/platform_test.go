package core_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// events returns every wechatconf event the log holds.
func (l *jsonLog) events(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if msg, _ := r["msg"].(string); strings.HasPrefix(msg, "wechatconf.") {
			out = append(out, r)
		}
	}
	return out
}

// checkPlatform reports every event of the log that does not carry
// platform want, and fails if there are fewer than min events.
func checkPlatform(t *testing.T, l *jsonLog, want core.Platform, min int) {
	t.Helper()
	evs := l.events(t)
	if len(evs) < min {
		t.Fatalf("%d events logged, want at least %d", len(evs), min)
	}
	for _, r := range evs {
		if r["platform"] != string(want) {
			t.Errorf("%v (credential %v): platform = %v, want %q", r["msg"], r["credential"], r["platform"], want)
		}
	}
}

// Every event of a Conf's credentials and its API carries "platform":
// official_account by default, mini_program when Config.Platform says
// so, for the access_token, a ticket and a retried call alike.
func TestConfEventsCarryPlatform(t *testing.T) {
	for _, tc := range []struct {
		set, want core.Platform
	}{
		{"", core.PlatformOfficialAccount},
		{core.PlatformOfficialAccount, core.PlatformOfficialAccount},
		{core.PlatformMiniProgram, core.PlatformMiniProgram},
	} {
		t.Run(string(tc.want)+"/"+string(tc.set), func(t *testing.T) {
			s := newServer(t)
			var l jsonLog
			c := newConf(t, s, func(c *core.Config) { c.Platform = tc.set; c.Logger = l.logger(slog.LevelDebug) })
			ctx := t.Context()
			s.InjectFault(wxtest.PathStableToken, wxtest.Busy(), 1) // an EventRetry
			if _, err := c.AccessToken(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.JSAPITicket(ctx); err != nil {
				t.Fatal(err)
			}
			if got := c.AccessTokenCredential().Platform(); got != tc.want {
				t.Errorf("AccessTokenCredential().Platform() = %q, want %q", got, tc.want)
			}
			if n := len(l.records(t, core.EventRetry)); n != 1 {
				t.Errorf("%d %s events, want 1", n, core.EventRetry)
			}
			kinds := map[any]bool{}
			for _, r := range l.records(t, core.EventFetched) {
				kinds[r["credential"]] = true
			}
			if !kinds["access_token"] || !kinds["jsapi_ticket"] {
				t.Errorf("fetched events of %v, want access_token and jsapi_ticket", kinds)
			}
			checkPlatform(t, &l, tc.want, 3)
		})
	}
}

// A Config.Platform that is not a Platform constant is refused by New.
func TestConfigPlatformUnknown(t *testing.T) {
	_, err := core.New(core.Config{AppID: appID, AppSecret: core.NewSecret(appSecret), Platform: "miniprogram"})
	if err == nil || !strings.Contains(err.Error(), "Platform") {
		t.Fatalf("New with Platform %q = %v, want an error naming Config.Platform", "miniprogram", err)
	}
}

// A credential of one's own is "custom" unless its config says; a Conf
// built on it (NewWithAccessToken) gives its tickets the credential's
// platform unless Config.Platform says otherwise.
func TestCredentialPlatform(t *testing.T) {
	s := newServer(t)
	ctx := t.Context()
	var l jsonLog
	fetch := func(ctx context.Context, _ core.FetchRequest) (core.Token, error) {
		return core.Token{Value: "own-token", ExpiresAt: time.Now().Add(time.Hour)}, nil
	}
	cr, err := core.NewCredential(core.CredentialConfig{Name: "own_token", Key: "t/own", Fetch: fetch, Logger: l.logger(slog.LevelDebug)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cr.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if cr.Platform() != core.PlatformCustom {
		t.Errorf("Platform() = %q, want %q", cr.Platform(), core.PlatformCustom)
	}
	checkPlatform(t, &l, core.PlatformCustom, 1)

	// An access_token kept by a credential that says its platform: the
	// tickets follow it.
	var la jsonLog
	issuer := newConf(t, s, nil) // fetches the token the credential keeps
	access, err := core.NewCredential(core.CredentialConfig{
		Name: "access_token", Platform: core.PlatformOpenPlatformAuthorizer, Key: "t/" + appID + "/access_token",
		Fetch: func(ctx context.Context, _ core.FetchRequest) (core.Token, error) {
			return issuer.AccessToken(ctx)
		},
		Logger: la.logger(slog.LevelDebug), Now: s.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := core.NewWithAccessToken(core.Config{AppID: appID, BaseURL: s.URL, HTTPClient: s.Client(), Now: s.Now, Logger: la.logger(slog.LevelDebug)}, access)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.JSAPITicket(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(la.records(t, core.EventFetched)); n != 2 {
		t.Fatalf("%d fetched events, want 2 (access_token, jsapi_ticket)", n)
	}
	checkPlatform(t, &la, core.PlatformOpenPlatformAuthorizer, 2)
}
