package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
	"github.com/wechatconf/wechatconf/cmd/internal/cli/clitest"
	"github.com/wechatconf/wechatconf/core"
)

// lsFixture is a listing store holding a credential of every platform
// under the prefix wechatconf, and one under fleet2.
func lsFixture(t *testing.T) (*listing, []string) {
	t.Helper()
	ctx := context.Background()
	st := newListing()
	valid := time.Now().Add(time.Hour).Truncate(time.Second)
	var values []string
	for i, kt := range []struct {
		key     string
		expires time.Time
	}{
		{"wechatconf/wx0123456789abcdef/access_token", valid},
		{"wechatconf/wx0123456789abcdef/jsapi_ticket", time.Now().Add(-time.Minute)},
		{"wechatconf/wecom/ww0123456789/1000002/access_token", valid},
		{"wechatconf/wecom/ww0123456789/1000002/agent_config_ticket", valid},
		{"wechatconf/wecom/ww0123456789/jsapi_ticket", valid},
		{"wechatconf/open/wxcomponent0000001/component_access_token", valid},
		{"wechatconf/open/wxcomponent0000001/component_verify_ticket", valid},
		{"wechatconf/open/wxcomponent0000001/wxauthorizer000001/authorizer_refresh_token", time.Time{}},
		{"wechatconf/open/wxcomponent0000001/wxauthorizer000001/jsapi_ticket", valid},
		{"wechatconf/payments/signing_key", valid},
		{"fleet2/wx0123456789abcdef/access_token", valid},
	} {
		v := "secret-value-" + strings.Repeat("x", i) + "-0123456789abcdef"
		values = append(values, v)
		if err := st.Set(ctx, kt.key, core.Token{Value: v, ExpiresAt: kt.expires}); err != nil {
			t.Fatal(err)
		}
	}
	// The access_token's fetch ledger, as a fleet writes it (see history).
	ledger := `{"v":1,"entries":[{"at":"2026-12-05T21:45:28Z","instance":"web-7f9c/4242","seq":1,"reason":"expiry","token":"59f7fc6781a2","latency_ns":1000000}],"days":[{"day":"2026-12-06","fetches":1}]}`
	if err := st.Set(ctx, core.LedgerKey("wechatconf/wx0123456789abcdef/access_token"), core.Token{Value: ledger}); err != nil {
		t.Fatal(err)
	}
	return st, values
}

// TestLs tests ls: every key under the prefix by its human key (platform,
// account, kind, parsed from README's layouts), its status and expiry as
// get shows them, as JSON and as a table, never a value; --all-prefixes,
// the ACCOUNT filter; and, when nothing is listed, exit 3 with where it
// looked and the key prefixes the store holds.
func TestLs(t *testing.T) {
	ctx := context.Background()
	st, values := lsFixture(t)
	dir := t.TempDir()
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": "file://" + dir},
		Secrets: func() []string { return values }, Run: cli.RunWithStore(st)}

	r := c.Exec(ctx, "ls", "--json")
	c.Want(r, cli.ExitOK)
	type want struct{ platform, appid, corp, agent, component, kind, status string }
	wants := map[string]want{
		"wechatconf/open/wxcomponent0000001/component_access_token":                      {cli.PlatformOpenComponent, "", "", "", "wxcomponent0000001", "component_access_token", cli.StatusValid},
		"wechatconf/open/wxcomponent0000001/component_verify_ticket":                     {cli.PlatformOpenComponent, "", "", "", "wxcomponent0000001", "component_verify_ticket", cli.StatusValid},
		"wechatconf/open/wxcomponent0000001/wxauthorizer000001/authorizer_refresh_token": {cli.PlatformOpenAuthorizer, "wxauthorizer000001", "", "", "wxcomponent0000001", "authorizer_refresh_token", cli.StatusAuthorized},
		"wechatconf/open/wxcomponent0000001/wxauthorizer000001/jsapi_ticket":             {cli.PlatformOpenAuthorizer, "wxauthorizer000001", "", "", "wxcomponent0000001", "jsapi_ticket", cli.StatusValid},
		"wechatconf/payments/signing_key":                                                {cli.PlatformOther, "", "", "", "", "payments/signing_key", cli.StatusValid},
		"wechatconf/wecom/ww0123456789/1000002/access_token":                             {cli.PlatformWeCom, "", "ww0123456789", "1000002", "", "access_token", cli.StatusValid},
		"wechatconf/wecom/ww0123456789/1000002/agent_config_ticket":                      {cli.PlatformWeCom, "", "ww0123456789", "1000002", "", "agent_config_ticket", cli.StatusValid},
		"wechatconf/wecom/ww0123456789/jsapi_ticket":                                     {cli.PlatformWeCom, "", "ww0123456789", "", "", "jsapi_ticket", cli.StatusValid},
		"wechatconf/wx0123456789abcdef/access_token":                                     {cli.PlatformOfficialAccount, testAppID, "", "", "", "access_token", cli.StatusValid},
		"wechatconf/wx0123456789abcdef/jsapi_ticket":                                     {cli.PlatformOfficialAccount, testAppID, "", "", "", "jsapi_ticket", cli.StatusExpired},
		"wechatconf/wx0123456789abcdef/access_token/fetch_ledger":                        {cli.PlatformOfficialAccount, testAppID, "", "", "", "access_token/fetch_ledger", cli.StatusLedger},
	}
	es := r.Entries(t)
	if len(es) != len(wants) {
		t.Errorf("ls --json: %d entries, want %d (not fleet2's):\n%s", len(es), len(wants), r.Stdout)
	}
	for _, e := range es {
		w, ok := wants[e.Key]
		got := want{e.Platform, e.AppID, e.CorpID, e.AgentID, e.ComponentAppID, e.Kind, e.Status}
		if !ok || got != w || e.Prefix != "wechatconf" {
			t.Errorf("ls --json: %s: %+v, prefix %q; want %+v, prefix wechatconf", e.Key, got, e.Prefix, w)
		}
		if e.Status == cli.StatusValid && (e.ExpiresAt == nil || e.ExpiresIn == nil || *e.ExpiresIn <= 0) {
			t.Errorf("ls --json: %s is valid with no expiry: %+v", e.Key, e)
		}
		if e.Status == cli.StatusLedger && (e.ExpiresAt != nil || e.ExpiresIn != nil) {
			t.Errorf("ls --json: the ledger %s shows an expiry: %+v", e.Key, e)
		}
		if e.Lock != nil || e.RedisKey != "" {
			t.Errorf("ls --json: %s shows a lock or a Redis key on a store that has none: %+v", e.Key, e)
		}
	}
	for line := range strings.Lines(r.Stdout) {
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"value", "fingerprint", "length"} {
			if _, ok := fields[f]; ok {
				t.Errorf("ls --json shows %s: %s", f, line)
			}
		}
	}

	r = c.Exec(ctx, "ls")
	c.Want(r, cli.ExitOK)
	lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
	if len(lines) != len(wants)+1 || strings.Fields(lines[0])[0] != "PLATFORM" || strings.Contains(lines[0], "PREFIX") || strings.Contains(lines[0], "REDIS_KEY") {
		t.Errorf("ls: want a header (no PREFIX, no REDIS_KEY column) and %d rows:\n%s", len(wants), r.Stdout)
	}
	for _, row := range []string{
		"official_account  wx0123456789abcdef  access_token  valid",
		"official_account  wx0123456789abcdef  jsapi_ticket  expired",
		"official_account  wx0123456789abcdef  access_token/fetch_ledger  ledger  -  -  -",
		"wecom  ww0123456789/1000002  agent_config_ticket  valid",
		"wecom  ww0123456789  jsapi_ticket  valid",
		"open_platform_authorizer  wxcomponent0000001/wxauthorizer000001  authorizer_refresh_token  authorized  -  -  -",
		"other  -  payments/signing_key  valid",
	} {
		found := false
		for _, l := range lines {
			found = found || strings.Join(strings.Fields(l), "  ") == row || strings.HasPrefix(strings.Join(strings.Fields(l), "  "), row+"  ")
		}
		if !found {
			t.Errorf("ls: no row %q:\n%s", row, r.Stdout)
		}
	}

	r = c.Exec(ctx, "ls", "--all-prefixes")
	c.Want(r, cli.ExitOK)
	if !strings.HasPrefix(r.Stdout, "PREFIX") || !strings.Contains(r.Stdout, "\nfleet2 ") || strings.Count(r.Stdout, "\n") != len(wants)+2 {
		t.Errorf("ls --all-prefixes: want a PREFIX column and fleet2's key too:\n%s", r.Stdout)
	}
	r = c.Exec(ctx, "ls", testAppID, "--json")
	c.Want(r, cli.ExitOK)
	if es := r.Entries(t); len(es) != 3 || es[0].AppID != testAppID || es[1].AppID != testAppID || es[2].AppID != testAppID {
		t.Errorf("ls %s: %s", testAppID, r.Stdout)
	}

	// Nothing under the prefix: 3, where it looked, the prefixes there are.
	r = c.Exec(ctx, "--prefix", "nothing", "ls")
	c.Want(r, cli.ExitNotFound)
	for _, want := range []string{
		`ls: no credential under key prefix "nothing" in file://` + dir, "looked in: store file://" + dir,
		`nearby: 1 key(s) under key prefix "fleet2": try --prefix fleet2`,
		`nearby: 10 key(s) under key prefix "wechatconf": try --prefix wechatconf`,
		"nearby: 1 key(s) of no known layout (ls --all-prefixes)",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("ls under an empty prefix: stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	if r.Stdout != "" {
		t.Errorf("ls of nothing printed %q", r.Stdout)
	}
}

// TestLsCannotList tests ls on a store that cannot list its keys, and on
// one whose listing fails: exit 2, saying so.
func TestLsCannotList(t *testing.T) {
	ctx := context.Background()
	st, _ := lsFixture(t)
	for _, tc := range []struct {
		st   core.TokenStore
		want string
	}{
		{unlisted{st}, "cannot list its keys (its TokenStore, cli_test.unlisted, does not implement core.KeyLister)"},
		{failingLister{st}, "ls: listing the keys of file://"},
	} {
		c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": "file://" + t.TempDir()}, Run: cli.RunWithStore(tc.st)}
		r := c.Exec(ctx, "ls")
		if r.Code != cli.ExitError || !strings.Contains(r.Stderr, tc.want) || r.Stdout != "" {
			t.Errorf("ls on a %T: exit %d, stdout %q, stderr %q; want %d and %q", tc.st, r.Code, r.Stdout, r.Stderr, cli.ExitError, tc.want)
		}
	}
}

// TestParseKey tests the reading of every key layout of README's
// "Credential kinds" table, a prefix holding "/", and keys of no layout.
func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want cli.KeyInfo
	}{
		{"wechatconf/wx1/access_token", cli.KeyInfo{Prefix: "wechatconf", Platform: cli.PlatformOfficialAccount, AppID: "wx1", Kind: "access_token"}},
		{"a/b/wx1/wx_card_ticket", cli.KeyInfo{Prefix: "a/b", Platform: cli.PlatformOfficialAccount, AppID: "wx1", Kind: "wx_card_ticket"}},
		{"p/wecom/corp/7/access_token", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformWeCom, CorpID: "corp", AgentID: "7", Kind: "access_token"}},
		{"p/wecom/corp/7/agent_config_ticket", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformWeCom, CorpID: "corp", AgentID: "7", Kind: "agent_config_ticket"}},
		{"p/wecom/corp/jsapi_ticket", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformWeCom, CorpID: "corp", Kind: "jsapi_ticket"}},
		{"p/open/c/component_access_token", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformOpenComponent, ComponentAppID: "c", Kind: "component_access_token"}},
		{"p/open/c/component_verify_ticket", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformOpenComponent, ComponentAppID: "c", Kind: "component_verify_ticket"}},
		{"p/open/c/wxa/authorizer_refresh_token", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformOpenAuthorizer, ComponentAppID: "c", AppID: "wxa", Kind: "authorizer_refresh_token"}},
		{"p/open/c/wxa/jsapi_ticket", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformOpenAuthorizer, ComponentAppID: "c", AppID: "wxa", Kind: "jsapi_ticket"}},
		{"wechatconf/wx1/access_token/fetch_ledger", cli.KeyInfo{Prefix: "wechatconf", Platform: cli.PlatformOfficialAccount, AppID: "wx1", Kind: "access_token/fetch_ledger"}},
		{"p/wecom/corp/7/access_token/fetch_ledger", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformWeCom, CorpID: "corp", AgentID: "7", Kind: "access_token/fetch_ledger"}},
		{"p/open/c/wxa/jsapi_ticket/fetch_ledger", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformOpenAuthorizer, ComponentAppID: "c", AppID: "wxa", Kind: "jsapi_ticket/fetch_ledger"}},
		{"p/svc/signing_key/fetch_ledger", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/svc/signing_key/fetch_ledger"}},
		{"p/wecomvendor/ww1/suite_ticket", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformWeComSuite, SuiteID: "ww1", Kind: "suite_ticket"}},
		{"a/b/wecomvendor/dk1/suite_access_token", cli.KeyInfo{Prefix: "a/b", Platform: cli.PlatformWeComSuite, SuiteID: "dk1", Kind: "suite_access_token"}},
		{"p/wecomvendor/ww1/corp/permanent_code", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformWeComAuthCorp, SuiteID: "ww1", CorpID: "corp", Kind: "permanent_code"}},
		{"p/wecomvendor/provider/corp/provider_access_token", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformWeComProvider, CorpID: "corp", Kind: "provider_access_token"}},
		{"p/wecomvendor/ww1/suite_access_token/fetch_ledger", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformWeComSuite, SuiteID: "ww1", Kind: "suite_access_token/fetch_ledger"}},
		{"p/wecomvendor/ww1/corp/permanent_code/fetch_ledger", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformWeComAuthCorp, SuiteID: "ww1", CorpID: "corp", Kind: "permanent_code/fetch_ledger"}},
		{"p/wecomvendor/provider/corp/provider_access_token/fetch_ledger", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformWeComProvider, CorpID: "corp", Kind: "provider_access_token/fetch_ledger"}},
		// A vendor corp's tickets keep WeCom's layout, the suite id as the app.
		{"p/wecom/corp/ww1/agent_config_ticket", cli.KeyInfo{Prefix: "p", Platform: cli.PlatformWeCom, CorpID: "corp", AgentID: "ww1", Kind: "agent_config_ticket"}},
		// Near misses: no credential, or a layout not quite.
		{"p/wecomvendor/ww1/authorization_code/0123abcd", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/wecomvendor/ww1/authorization_code/0123abcd"}},
		{"p/open/c/authorization_code/0123abcd", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/open/c/authorization_code/0123abcd"}},
		{"wecomvendor/ww1/suite_ticket", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "wecomvendor/ww1/suite_ticket"}},
		{"p/wecomvendor/provider/suite_ticket", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/wecomvendor/provider/suite_ticket"}},
		{"p/wecomvendor/provider/corp/permanent_code", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/wecomvendor/provider/corp/permanent_code"}},
		{"p/wecomvendor/ww1/provider_access_token", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/wecomvendor/ww1/provider_access_token"}},
		{"p/wecomvendor/ww1/corp/provider_access_token", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/wecomvendor/ww1/corp/provider_access_token"}},
		{"p/wecomvendor/ww1/permanent_code", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/wecomvendor/ww1/permanent_code"}},
		{"p/wecomvendor/ww1/corp/suite_ticket", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/wecomvendor/ww1/corp/suite_ticket"}},
		{"p/wecomvendor//corp/permanent_code", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/wecomvendor//corp/permanent_code"}},
		{"p/wecom/ww1/suite_ticket", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/wecom/ww1/suite_ticket"}},
		{"p/wecomvendor/ww1/suite_ticket/fetch_ledger/fetch_ledger", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/wecomvendor/ww1/suite_ticket/fetch_ledger/fetch_ledger"}},
		{"wx1/access_token", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "wx1/access_token"}},
		{"p//access_token", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p//access_token"}},
		{"p/svc/signing_key", cli.KeyInfo{Platform: cli.PlatformOther, Kind: "p/svc/signing_key"}},
	} {
		tc.want.Key = tc.key
		if got := cli.ParseKey(tc.key); got != tc.want {
			t.Errorf("ParseKey(%q) = %+v, want %+v", tc.key, got, tc.want)
		}
	}
}

// TestLsQuotesOddKeys: a key may hold a newline, a tab or an escape
// sequence; the table shows it quoted on its one row, so that it can
// neither break the table nor forge a row.
func TestLsQuotesOddKeys(t *testing.T) {
	ctx := context.Background()
	st := newListing()
	for _, k := range []string{"wechatconf/wxodd\nwechatconf/wxforged/access_token", "wechatconf/wx\x1b[31mred/access_token", "wechatconf/wx\ttab/access_token"} {
		if err := st.Set(ctx, k, core.Token{Value: "v", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": "file://" + t.TempDir()}, Run: cli.RunWithStore(st)}
	r := c.Exec(ctx, "ls", "--all-prefixes")
	if r.Code != cli.ExitOK {
		t.Fatalf("ls: exit %d, stderr %s", r.Code, r.Stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	if len(lines) != 4 || strings.Contains(r.Stdout, "\x1b") || strings.Contains(r.Stdout, "\t") {
		t.Errorf("ls printed %d lines (want a header and 3 rows), raw control characters: %q", len(lines), r.Stdout)
	}
}
