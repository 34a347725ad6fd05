package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
	"github.com/wechatconf/wechatconf/cmd/internal/cli/clitest"
	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// quotaEnv is a simulated WeChat with a daily token quota, a file store,
// and the command pointed at both.
type quotaEnv struct {
	t      *testing.T
	wechat *wxtest.Server
	st     core.TokenStore
	c      *clitest.CLI
	args   []string // the global flags
}

func newQuotaEnv(t *testing.T, dailyQuota int, classic bool) *quotaEnv {
	t.Helper()
	ctx := context.Background()
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, DailyQuota: dailyQuota, Now: time.Now})
	t.Cleanup(wechat.Close)
	dir := t.TempDir()
	st, closeStore, err := storeurl.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeStore() })
	q := &quotaEnv{t: t, wechat: wechat, st: st, args: []string{"--base-url", wechat.URL}}
	if classic {
		q.args = append(q.args, "--classic")
	}
	q.c = &clitest.CLI{T: t, Environ: map[string]string{"WECHAT_APPSECRET": testAppSecret, "WECHATCONF_STORE": "file://" + dir},
		Secrets: func() []string {
			if tok, err := st.Get(ctx, "wechatconf/"+testAppID+"/access_token"); err == nil {
				return []string{tok.Value}
			}
			return nil
		}}
	return q
}

// run runs the command with the global flags and args.
func (q *quotaEnv) run(args ...string) clitest.Result {
	q.t.Helper()
	return q.c.Exec(context.Background(), append(append([]string{}, q.args...), args...)...)
}

// wechatCalls is every request the simulated WeChat received.
func (q *quotaEnv) wechatCalls() int {
	n := 0
	for _, p := range []string{wxtest.PathToken, wxtest.PathStableToken, wxtest.PathQuotaGet, wxtest.PathClearQuota, wxtest.PathClearQuotaV2} {
		n += q.wechat.Calls(p)
	}
	return n
}

func (q *quotaEnv) tokenCalls() int {
	return q.wechat.Calls(wxtest.PathToken) + q.wechat.Calls(wxtest.PathStableToken)
}

// quotaOf runs quota --json and decodes its one line.
func (q *quotaEnv) quotaOf(more ...string) cli.QuotaView {
	q.t.Helper()
	r := q.run(append([]string{"quota", testAppID, "--json"}, more...)...)
	q.c.Want(r, cli.ExitOK)
	var v cli.QuotaView
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil || strings.Count(r.Stdout, "\n") != 1 {
		q.t.Fatalf("quota --json printed %q: %v; want one JSON line", r.Stdout, err)
	}
	return v
}

// fetchElsewhere fetches a classic token straight from WeChat, as a
// process outside the fleet would, and returns the errcode.
func (q *quotaEnv) fetchElsewhere() int {
	q.t.Helper()
	u := q.wechat.URL + wxtest.PathToken + "?" + url.Values{"grant_type": {"client_credential"}, "appid": {testAppID}, "secret": {testAppSecret}}.Encode()
	resp, err := q.wechat.Client().Get(u)
	if err != nil {
		q.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Errcode int `json:"errcode"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &r) != nil {
		q.t.Fatalf("GET %s: HTTP %d", wxtest.PathToken, resp.StatusCode)
	}
	return r.Errcode
}

// TestQuotaShowsTheFetches tests that quota prints WeChat's count of the
// token fetches the fleet made (used = fetches), asks with the stored
// token (no fetch of its own), prints text and --json, and checks --path.
func TestQuotaShowsTheFetches(t *testing.T) {
	q := newQuotaEnv(t, 0, true)
	q.c.Want(q.run("refresh", testAppID), cli.ExitOK)
	q.c.Want(q.run("force", testAppID, "--yes"), cli.ExitOK)
	if n := q.tokenCalls(); n != 2 {
		t.Fatalf("refresh and force: %d token calls, want 2", n)
	}
	v := q.quotaOf()
	want := cli.QuotaView{AppID: testAppID, CGIPath: wxtest.PathToken, DailyLimit: wxtest.DefaultDailyLimit, Used: 2, Remain: wxtest.DefaultDailyLimit - 2}
	if v != want {
		t.Errorf("quota --json = %+v, want %+v", v, want)
	}
	if n := q.tokenCalls(); n != 2 {
		t.Errorf("quota made %d token calls; want none: the stored token is valid", n-2)
	}
	r := q.run("quota", testAppID)
	q.c.Want(r, cli.ExitOK)
	if line := testAppID + "  /cgi-bin/token  limit=2000 used=2 remaining=1998\n"; r.Stdout != line {
		t.Errorf("quota printed %q, want %q", r.Stdout, line)
	}
	if v := q.quotaOf("--path", wxtest.PathStableToken); v.CGIPath != wxtest.PathStableToken || v.Used != 2 {
		t.Errorf("quota --path %s = %+v, want used 2 (the simulation counts both token calls together)", wxtest.PathStableToken, v)
	}

	before := q.wechatCalls()
	r = q.run("quota", testAppID, "--path", "cgi-bin/token")
	q.c.Want(r, cli.ExitError)
	if n := q.wechatCalls() - before; n != 0 || !strings.Contains(r.Stderr, "leading /") {
		t.Errorf("quota --path without its /: %d calls to WeChat, stderr %q; want none, saying why", n, r.Stderr)
	}
	r = q.run("quota", testAppID, "--path", "/cgi-bin/no/such/api")
	q.c.Want(r, cli.ExitError)
	if !strings.Contains(r.Stderr, "76021") || strings.Contains(r.Stderr, ": wechatconf: ") {
		t.Errorf("quota of an unknown API: stderr %q, want WeChat's 76021 (and the command's name once)", r.Stderr)
	}
}

// TestQuotaResetWantsYes tests that quota reset without --yes makes no
// call to WeChat, exits 2 and says what it would spend.
func TestQuotaResetWantsYes(t *testing.T) {
	q := newQuotaEnv(t, 0, false)
	r := q.run("quota", "reset", testAppID)
	q.c.Want(r, cli.ExitError)
	if n := q.wechatCalls(); n != 0 {
		t.Errorf("quota reset without --yes: %d calls to WeChat, want 0", n)
	}
	for _, s := range []string{"WeChat allows clear_quota 10 times a month per account", "no call to WeChat", "--yes"} {
		if !strings.Contains(r.Stderr, s) {
			t.Errorf("quota reset without --yes: stderr %q, want it to say %q", r.Stderr, s)
		}
	}
}

// TestQuotaResetClearsTheFleetsQuota tests that quota reset --yes clears,
// with the stored token and one clear_quota call, a token quota the fleet
// used up, so that the fleet fetches again.
func TestQuotaResetClearsTheFleetsQuota(t *testing.T) {
	q := newQuotaEnv(t, 2, true)
	q.c.Want(q.run("refresh", testAppID), cli.ExitOK)
	q.c.Want(q.run("force", testAppID, "--yes"), cli.ExitOK)
	r := q.run("force", testAppID, "--yes")
	q.c.Want(r, cli.ExitLimited)
	if !strings.Contains(r.Stderr, "45009") {
		t.Fatalf("a third fetch: stderr %q, want 45009", r.Stderr)
	}
	if v := q.quotaOf(); v.Used != 2 || v.Remain != 0 {
		t.Fatalf("quota = %+v, want used 2 remain 0", v)
	}

	r = q.run("quota", "reset", testAppID, "--yes")
	q.c.Want(r, cli.ExitOK)
	if r.Stdout != testAppID+"  cleared  via=/cgi-bin/clear_quota\n" || !strings.Contains(r.Stderr, "10 times a month") {
		t.Errorf("quota reset --yes: stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
	if n, v2 := q.wechat.Calls(wxtest.PathClearQuota), q.wechat.Calls(wxtest.PathClearQuotaV2); n != 1 || v2 != 0 {
		t.Errorf("quota reset --yes: %d clear_quota and %d clear_quota/v2 calls, want 1 and 0", n, v2)
	}
	if v := q.quotaOf(); v.Used != 0 {
		t.Errorf("quota after reset = %+v, want used 0", v)
	}
	q.c.Want(q.run("force", testAppID, "--yes"), cli.ExitOK) // the fleet fetches again
}

// TestQuotaResetWithoutAToken tests that when the token quota is used up
// and no valid token is stored, quota says it cannot ask and points to
// quota reset, and quota reset clears with clear_quota/v2 (no token, one
// chance spent, no clear_quota call).
func TestQuotaResetWithoutAToken(t *testing.T) {
	q := newQuotaEnv(t, 1, true)
	if code := q.fetchElsewhere(); code != 0 {
		t.Fatalf("the first fetch: errcode %d", code)
	}
	r := q.run("quota", testAppID)
	q.c.Want(r, cli.ExitLimited)
	if !strings.Contains(r.Stderr, "45009") || !strings.Contains(r.Stderr, "quota reset "+testAppID+" --yes") {
		t.Errorf("quota with the token quota used up: stderr %q, want 45009 and the way out", r.Stderr)
	}

	r = q.run("quota", "reset", testAppID, "--yes")
	q.c.Want(r, cli.ExitOK)
	if r.Stdout != testAppID+"  cleared  via=/cgi-bin/clear_quota/v2\n" || !strings.Contains(r.Stderr, "clear_quota/v2") {
		t.Errorf("quota reset --yes without a token: stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
	if n, v2 := q.wechat.Calls(wxtest.PathClearQuota), q.wechat.Calls(wxtest.PathClearQuotaV2); n != 0 || v2 != 1 {
		t.Errorf("quota reset --yes without a token: %d clear_quota and %d clear_quota/v2 calls, want 0 and 1", n, v2)
	}
	if body := string(q.wechat.LastBody(wxtest.PathClearQuotaV2)); !strings.Contains(body, `"appid":"`+testAppID+`"`) {
		t.Errorf("clear_quota/v2 body %q, want the appid (and the AppSecret) in it", body)
	}
	if code := q.fetchElsewhere(); code != 0 {
		t.Errorf("a fetch after quota reset: errcode %d, want the quota cleared", code)
	}
}

// TestQuotaResetPastTheMonthlyLimit tests that the clear past WeChat's 10
// a month exits 4 (a limit) with WeChat's 48006 and what it means.
func TestQuotaResetPastTheMonthlyLimit(t *testing.T) {
	q := newQuotaEnv(t, 0, false)
	for i := 1; i <= wxtest.ClearQuotaMonthlyLimit; i++ {
		q.c.Want(q.run("quota", "reset", testAppID, "--yes"), cli.ExitOK)
	}
	r := q.run("quota", "reset", testAppID, "--yes", "--json")
	q.c.Want(r, cli.ExitLimited)
	if r.Stdout != "" || !strings.Contains(r.Stderr, "errcode 48006") || !strings.Contains(r.Stderr, "10 chances this month are used up") ||
		strings.Contains(r.Stderr, ": wechatconf: ") {
		t.Errorf("clear %d of the month: stdout %q, stderr %q; want nothing printed, 48006 explained", wxtest.ClearQuotaMonthlyLimit+1, r.Stdout, r.Stderr)
	}
	if n := q.wechat.Calls(wxtest.PathClearQuota); n != wxtest.ClearQuotaMonthlyLimit+1 {
		t.Errorf("%d clear_quota calls, want %d: one per run", n, wxtest.ClearQuotaMonthlyLimit+1)
	}
}
