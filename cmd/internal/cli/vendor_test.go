package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
	"github.com/wechatconf/wechatconf/cmd/internal/cli/clitest"
	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecomvendor"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	// testSuite is a custom-developed app template (代开发, "dk…"): an
	// installed corp's access_token comes from gettoken with the corp's
	// permanent_code as its secret, which core/wxtest simulates.
	testSuite     = "dkvendorsuite0001"
	testCorp      = "wwinstalledcorp01"
	testCancelled = "wwcancelledcorp01"
	testProvider  = "wwprovidercorp001"
	// testPermanentCode is the installed corp's permanent_code, random
	// enough that no 6-character run of it is in any output by chance.
	testPermanentCode = "Pq7Zx2Kw9Lm4Hv8Tn3RbQ5yWjF6dGs"
)

// vendorFixture is a file store filled through package wecomvendor: a
// suite's ticket (pushed 5 minutes ago) and token, an installed corp (its
// record holding its permanent_code and an access token fetched from
// core/wxtest, its jsapi_ticket and agent_config_ticket, the token's fetch
// ledger), a corp that cancelled, the provider's token and a code index.
// It returns the store's directory, the suite and every secret value that
// must never be printed.
type vendorFixture struct {
	dir      string
	st       core.TokenStore
	suite    *wecomvendor.Suite
	provider string // the provider_access_token's key
	secrets  []string
}

func newVendorFixture(t *testing.T) *vendorFixture {
	t.Helper()
	ctx := context.Background()
	wx := wxtest.New(wxtest.Options{WeComApps: []wxtest.WeComApp{{CorpID: testCorp, Secret: testPermanentCode}}})
	t.Cleanup(wx.Close)
	f := &vendorFixture{dir: t.TempDir()}
	st, closeStore, err := storeurl.Open(ctx, "file://"+f.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeStore() })
	f.st = st
	f.suite, err = wecomvendor.New(wecomvendor.Config{SuiteID: testSuite, Store: st, BaseURL: wx.URL})
	if err != nil {
		t.Fatal(err)
	}
	if !f.suite.CustomApp() {
		t.Fatalf("precondition: suite %s is not a custom-developed app template", testSuite)
	}
	ticket := "suite-ticket-Hs8Wq3Lz6Vb1Nc5Xk9Tj2Rm"
	if stored, err := f.suite.SetSuiteTicket(ctx, ticket, time.Now().Add(-5*time.Minute)); err != nil || !stored {
		t.Fatalf("SetSuiteTicket: stored %t, %v", stored, err)
	}
	// No simulated get_suite_token: the suite's token is stored as a
	// fleet would have stored it.
	suiteToken := core.Token{Value: "suite-access-token-Yd4Gf7Kp1Qs8Zv3Bn6", ExpiresAt: time.Now().Add(time.Hour)}
	if err := st.Set(ctx, "wechatconf/wecomvendor/"+testSuite+"/suite_access_token", suiteToken); err != nil {
		t.Fatal(err)
	}
	if err := f.suite.ImportPermanentCode(ctx, testCorp, testPermanentCode); err != nil {
		t.Fatalf("ImportPermanentCode: %v", err)
	}
	corp := f.suite.Corp(testCorp)
	access, err := corp.AccessToken(ctx)
	if err != nil {
		t.Fatalf("the corp's AccessToken: %v", err)
	}
	jsapi, err := corp.JSAPITicket(ctx)
	if err != nil {
		t.Fatalf("the corp's JSAPITicket: %v", err)
	}
	agent, err := corp.AgentTicket(ctx)
	if err != nil {
		t.Fatalf("the corp's AgentTicket: %v", err)
	}
	if err := f.suite.ImportPermanentCode(ctx, testCancelled, "cancelled-code-Jt5Rw8Ym2Xa7Pe4Uh"); err != nil {
		t.Fatal(err)
	}
	if err := f.suite.Cancel(ctx, testCancelled); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if err := f.suite.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	prov, err := wecomvendor.NewProvider(wecomvendor.ProviderConfig{CorpID: testProvider, Store: st, BaseURL: wx.URL})
	if err != nil {
		t.Fatal(err)
	}
	f.provider = prov.Key()
	provToken := core.Token{Value: "provider-access-token-Mc9Ld2Wf6Hq1Ks4", ExpiresAt: time.Now().Add(time.Hour)}
	if err := st.Set(ctx, f.provider, provToken); err != nil {
		t.Fatal(err)
	}
	// The code index is no credential (a corp id under a code's hash).
	if err := st.Set(ctx, "wechatconf/wecomvendor/"+testSuite+"/authorization_code/0123456789abcdef", core.Token{Value: testCorp, ExpiresAt: time.Now().Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}

	stored, err := st.Get(ctx, f.suite.AuthorizationKey(testCorp))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := wecomvendor.ParseAuthorizationRecord(stored)
	if err != nil || rec.Withdrawn || rec.PermanentCode.Reveal() != testPermanentCode || rec.AccessToken.Reveal() != access.Value {
		t.Fatalf("precondition: the corp's record: %v, withdrawn %t, the permanent_code imported %t, the access token fetched %t",
			err, rec.Withdrawn, rec.PermanentCode.Reveal() == testPermanentCode, rec.AccessToken.Reveal() == access.Value)
	}
	f.secrets = append([]string{stored.Value, testPermanentCode, access.Value, jsapi.Value, agent.Value, ticket, suiteToken.Value, provToken.Value},
		runs(testPermanentCode, access.Value)...)
	return f
}

// record reads the installed corp's record.
func (f *vendorFixture) record(t *testing.T) wecomvendor.AuthorizationRecord {
	t.Helper()
	stored, err := f.st.Get(context.Background(), f.suite.AuthorizationKey(testCorp))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := wecomvendor.ParseAuthorizationRecord(stored)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestLsWeComVendor tests ls over the keys package wecomvendor writes: the
// suite's (wecom_suite, account SUITE), each corp's record
// (wecom_auth_corp, SUITE/CORPID, status installed or cancelled, the
// access token's expiry) and its fetch ledger beside it, the corp's
// tickets in WeCom's layout (wecom, CORPID/SUITE), the provider's token
// (wecom_provider, CORPID), and the code index as a key of no known
// layout; the ACCOUNT filter by suite id and by corp id; never a value.
func TestLsWeComVendor(t *testing.T) {
	ctx := context.Background()
	f := newVendorFixture(t)
	rec := f.record(t)
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": "file://" + f.dir}, Secrets: func() []string { return f.secrets }}

	r := c.Exec(ctx, "ls", "--json")
	c.Want(r, cli.ExitOK)
	type want struct{ platform, account, suite, corp, agent, kind, status string }
	p := "wechatconf/wecomvendor/" + testSuite
	wants := map[string]want{
		p + "/suite_ticket":                                                                    {cli.PlatformWeComSuite, testSuite, testSuite, "", "", "suite_ticket", cli.StatusValid},
		p + "/suite_access_token":                                                              {cli.PlatformWeComSuite, testSuite, testSuite, "", "", "suite_access_token", cli.StatusValid},
		p + "/" + testCorp + "/permanent_code":                                                 {cli.PlatformWeComAuthCorp, testSuite + "/" + testCorp, testSuite, testCorp, "", "permanent_code", cli.StatusInstalled},
		p + "/" + testCorp + "/permanent_code/fetch_ledger":                                    {cli.PlatformWeComAuthCorp, testSuite + "/" + testCorp, testSuite, testCorp, "", "permanent_code/fetch_ledger", cli.StatusLedger},
		p + "/" + testCancelled + "/permanent_code":                                            {cli.PlatformWeComAuthCorp, testSuite + "/" + testCancelled, testSuite, testCancelled, "", "permanent_code", cli.StatusCancelled},
		p + "/authorization_code/0123456789abcdef":                                             {cli.PlatformOther, "-", "", "", "", "wecomvendor/" + testSuite + "/authorization_code/0123456789abcdef", cli.StatusValid},
		"wechatconf/wecom/" + testCorp + "/jsapi_ticket":                                       {cli.PlatformWeCom, testCorp, "", testCorp, "", "jsapi_ticket", cli.StatusValid},
		"wechatconf/wecom/" + testCorp + "/jsapi_ticket/fetch_ledger":                          {cli.PlatformWeCom, testCorp, "", testCorp, "", "jsapi_ticket/fetch_ledger", cli.StatusLedger},
		"wechatconf/wecom/" + testCorp + "/" + testSuite + "/agent_config_ticket":              {cli.PlatformWeCom, testCorp + "/" + testSuite, "", testCorp, testSuite, "agent_config_ticket", cli.StatusValid},
		"wechatconf/wecom/" + testCorp + "/" + testSuite + "/agent_config_ticket/fetch_ledger": {cli.PlatformWeCom, testCorp + "/" + testSuite, "", testCorp, testSuite, "agent_config_ticket/fetch_ledger", cli.StatusLedger},
		"wechatconf/wecomvendor/provider/" + testProvider + "/provider_access_token":           {cli.PlatformWeComProvider, testProvider, "", testProvider, "", "provider_access_token", cli.StatusValid},
	}
	es := r.Entries(t)
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Key] = true
		w, ok := wants[e.Key]
		if !ok {
			// A ledger this test does not name (a fleet's own choice of
			// what it records) is allowed; nothing else is.
			if !e.IsLedger() {
				t.Errorf("ls --json lists %s, which the fixture did not write: %+v", e.Key, e)
			}
			continue
		}
		got := want{e.Platform, e.Account(), e.SuiteID, e.CorpID, e.AgentID, e.Kind, e.Status}
		if got != w || e.Prefix != "wechatconf" {
			t.Errorf("ls --json: %s: %+v, prefix %q; want %+v, prefix wechatconf", e.Key, got, e.Prefix, w)
		}
	}
	for k := range wants {
		if !seen[k] {
			t.Errorf("ls --json does not list %s:\n%s", k, r.Stdout)
		}
	}
	for _, e := range es {
		if e.Key != f.suite.AuthorizationKey(testCorp) {
			continue
		}
		if e.Since == nil || !e.Since.Equal(rec.Since) || e.ExpiresAt == nil || !e.ExpiresAt.Equal(rec.ExpiresAt) {
			t.Errorf("ls --json: the installed corp's record: since %v, expires_at %v; want %v and %v (its access token's)", e.Since, e.ExpiresAt, rec.Since, rec.ExpiresAt)
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
	for _, row := range []string{
		"wecom_suite  " + testSuite + "  suite_ticket  valid",
		"wecom_suite  " + testSuite + "  suite_access_token  valid",
		"wecom_auth_corp  " + testSuite + "/" + testCorp + "  permanent_code  installed  " + rec.ExpiresAt.UTC().Format(time.RFC3339),
		"wecom_auth_corp  " + testSuite + "/" + testCorp + "  permanent_code/fetch_ledger  ledger  -  -  -",
		"wecom_auth_corp  " + testSuite + "/" + testCancelled + "  permanent_code  cancelled  -  -  -",
		"wecom  " + testCorp + "/" + testSuite + "  agent_config_ticket  valid",
		"wecom_provider  " + testProvider + "  provider_access_token  valid",
		"other  -  wecomvendor/" + testSuite + "/authorization_code/0123456789abcdef  valid",
	} {
		found := false
		for l := range strings.Lines(r.Stdout) {
			l = strings.Join(strings.Fields(l), "  ")
			found = found || l == row || strings.HasPrefix(l, row+"  ")
		}
		if !found {
			t.Errorf("ls: no row %q:\n%s", row, r.Stdout)
		}
	}

	// ACCOUNT: a suite id keeps the suite's keys, its corps' records and
	// its agent_config_tickets; a corp id the corp's keys of every kind.
	for _, tc := range []struct {
		account string
		want    []string
	}{
		{testSuite, []string{p + "/suite_ticket", p + "/" + testCorp + "/permanent_code", p + "/" + testCancelled + "/permanent_code",
			"wechatconf/wecom/" + testCorp + "/" + testSuite + "/agent_config_ticket"}},
		{testCorp, []string{p + "/" + testCorp + "/permanent_code", "wechatconf/wecom/" + testCorp + "/jsapi_ticket",
			"wechatconf/wecom/" + testCorp + "/" + testSuite + "/agent_config_ticket"}},
		{testProvider, []string{f.provider}},
	} {
		r := c.Exec(ctx, "ls", tc.account, "--json")
		c.Want(r, cli.ExitOK)
		keys := map[string]bool{}
		for _, e := range r.Entries(t) {
			keys[e.Key] = true
			if !strings.Contains(e.Key, "/"+tc.account+"/") {
				t.Errorf("ls %s lists %s", tc.account, e.Key)
			}
		}
		for _, k := range tc.want {
			if !keys[k] {
				t.Errorf("ls %s does not list %s:\n%s", tc.account, k, r.Stdout)
			}
		}
	}
	if r := c.Exec(ctx, "ls", testProvider, "--json"); len(r.Entries(t)) != 1 {
		t.Errorf("ls %s: want the provider's token alone:\n%s", testProvider, r.Stdout)
	}
	c.Recheck()
}

// TestInspectWeComVendor tests inspect --suite and --provider, and get of
// a corp's record:
//
//   - --suite SUITE: the suite_access_token and the suite_ticket, whose age
//     is reckoned from its 30 minutes (pushed 5 minutes ago: about 5
//     minutes old, not the 1h30 a 2-hour lifetime would say);
//   - --suite SUITE CORPID: the corp's jsapi_ticket, the app's
//     agent_config_ticket, and its record: installed with since, that a
//     permanent_code is held (its fingerprint and length), the access
//     token's expires_at; exit 0;
//   - a cancelled corp: status cancelled with since, no fingerprint; exit 3
//     saying the corp cancelled;
//   - --provider CORPID: the provider_access_token;
//   - get --key of the record with --reveal reveals nothing: neither the
//     permanent_code nor the access token nor the record;
//   - a value that does not parse: corrupt, exit 2, no value.
//
// No output holds the permanent_code, the access token, the record, or a
// 6-character run of either secret.
func TestInspectWeComVendor(t *testing.T) {
	ctx := context.Background()
	f := newVendorFixture(t)
	rec := f.record(t)
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": "file://" + f.dir}, Secrets: func() []string { return f.secrets }}
	key := f.suite.AuthorizationKey(testCorp)
	if want := "wechatconf/wecomvendor/" + testSuite + "/" + testCorp + "/permanent_code"; key != want {
		t.Fatalf("AuthorizationKey = %q, want %q (the key inspect reads)", key, want)
	}

	// The suite.
	r := c.Exec(ctx, "inspect", "--suite", testSuite, "--json")
	c.Want(r, cli.ExitOK)
	vs := r.Views(t)
	if len(vs) != 2 || !strings.HasSuffix(vs[0].Key, "/suite_access_token") || vs[0].Status != cli.StatusValid ||
		!strings.HasSuffix(vs[1].Key, "/suite_ticket") || vs[1].Status != cli.StatusValid {
		t.Fatalf("inspect --suite: want the suite_access_token and the suite_ticket, valid:\n%s", r.Stdout)
	}
	if a := vs[1].Age; a == nil || *a < (5*time.Minute).Seconds() || *a >= (30*time.Minute).Seconds() {
		t.Errorf("inspect --suite: the suite_ticket pushed 5 minutes ago shows age %s; want about 300 s (its lifetime is 30 minutes)", r.Stdout)
	}
	// Under another key prefix: exit 3, the suite's keys nearby.
	r = c.Exec(ctx, "--prefix", "fleet2", "inspect", "--suite", testSuite)
	c.Want(r, cli.ExitNotFound)
	for _, want := range []string{"of suite " + testSuite + ":", "wechatconf/wecomvendor/" + testSuite + "/suite_ticket", "try: --prefix wechatconf"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("inspect --suite under another prefix: stderr lacks %q:\n%s", want, r.Stderr)
		}
	}

	// The installed corp.
	r = c.Exec(ctx, "inspect", "--suite", testSuite, testCorp, "--json")
	c.Want(r, cli.ExitOK)
	vs = r.Views(t)
	if len(vs) != 3 || vs[0].Key != "wechatconf/wecom/"+testCorp+"/jsapi_ticket" || vs[0].Status != cli.StatusValid ||
		vs[1].Key != "wechatconf/wecom/"+testCorp+"/"+testSuite+"/agent_config_ticket" || vs[1].Status != cli.StatusValid || vs[2].Key != key {
		t.Fatalf("inspect --suite %s %s: want the corp's jsapi_ticket, the app's agent_config_ticket (valid) and its record:\n%s", testSuite, testCorp, r.Stdout)
	}
	v := vs[2]
	if v.Status != cli.StatusInstalled || v.Since == nil || !v.Since.Equal(rec.Since) ||
		v.Fingerprint != cli.Fingerprint(testPermanentCode) || v.Length != len(testPermanentCode) || v.Value != "" ||
		v.ExpiresAt == nil || !v.ExpiresAt.Equal(rec.ExpiresAt) || v.ExpiresIn == nil || *v.ExpiresIn <= 0 || v.Ledger == nil || v.Ledger.Fetches < 1 {
		t.Errorf("inspect --json of an installed corp's record: %+v; want installed, since %v, the permanent_code's fingerprint %s and length %d, expires_at %v, no value, the fetch ledger",
			v, rec.Since, cli.Fingerprint(testPermanentCode), len(testPermanentCode), rec.ExpiresAt)
	}
	r = c.Exec(ctx, "inspect", "--suite", testSuite, testCorp)
	c.Want(r, cli.ExitOK)
	if !strings.Contains(r.Stdout, key+"  installed since="+rec.Since.UTC().Format(time.RFC3339)) ||
		!strings.Contains(r.Stdout, "permanent_code: held  fingerprint="+cli.Fingerprint(testPermanentCode)) ||
		!strings.Contains(r.Stdout, "access_token:  expires_at="+rec.ExpiresAt.UTC().Format(time.RFC3339)) {
		t.Errorf("inspect (text) of an installed corp:\n%s", r.Stdout)
	}

	// get --reveal: the permanent_code is never printed, nor the token.
	for _, args := range [][]string{{"get", "--key", key, "--reveal"}, {"get", "--key", key, "--reveal", "--json"}} {
		r := c.Exec(ctx, args...)
		c.Want(r, cli.ExitOK)
		for _, s := range f.secrets {
			if strings.Contains(r.Stdout+r.Stderr, s) {
				t.Errorf("wechatconf %q prints a secret of the record (%q):\n%s%s", args, s, r.Stdout, r.Stderr)
				break
			}
		}
		if !strings.Contains(r.Stdout, cli.Fingerprint(testPermanentCode)) {
			t.Errorf("wechatconf %q does not show the permanent_code's fingerprint:\n%s", args, r.Stdout)
		}
	}

	// The cancelled corp: nothing usable.
	cancelled := f.suite.AuthorizationKey(testCancelled)
	r = c.Exec(ctx, "inspect", "--suite", testSuite, testCancelled, "--json")
	c.Want(r, cli.ExitNotFound)
	if vs := r.Views(t); len(vs) != 3 || vs[2].Key != cancelled || vs[2].Status != cli.StatusCancelled || vs[2].Since == nil ||
		vs[2].Fingerprint != "" || vs[2].Length != 0 || vs[2].ExpiresAt != nil {
		t.Errorf("inspect --json of a cancelled corp: %s; want its record cancelled with since, no token", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "cancelled the install") {
		t.Errorf("inspect of a cancelled corp: stderr %q; want it to say the corp cancelled", r.Stderr)
	}
	r = c.Exec(ctx, "get", "--key", cancelled)
	c.Want(r, cli.ExitNotFound)
	if !strings.Contains(r.Stdout, cancelled+"  cancelled since=") {
		t.Errorf("get of a cancelled corp's record: %s", r.Stdout)
	}

	// The provider.
	r = c.Exec(ctx, "inspect", "--provider", testProvider, "--json")
	c.Want(r, cli.ExitOK)
	if vs := r.Views(t); len(vs) != 1 || vs[0].Key != f.provider || vs[0].Status != cli.StatusValid {
		t.Errorf("inspect --provider %s:\n%s", testProvider, r.Stdout)
	}

	// A value that does not parse: corrupt, and no value even with
	// --reveal (wecomvendor never stored a bare code).
	corrupt := core.Token{Value: "corrupt-" + testPermanentCode}
	f.secrets = append(f.secrets, corrupt.Value)
	if err := f.st.Set(ctx, key, corrupt); err != nil {
		t.Fatal(err)
	}
	r = c.Exec(ctx, "inspect", "--suite", testSuite, testCorp, "--json")
	c.Want(r, cli.ExitError)
	if v := r.Views(t)[2]; v.Status != cli.StatusCorrupt || v.Fingerprint != "" || v.Length != 0 || v.Error == "" {
		t.Errorf("inspect --json of a corrupt corp record: %+v; want corrupt with an error, no fingerprint or length", v)
	}
	r = c.Exec(ctx, "get", "--key", key, "--reveal")
	c.Want(r, cli.ExitError)
	if strings.Contains(r.Stdout+r.Stderr, testPermanentCode) {
		t.Errorf("get --reveal of a corrupt corp record shows its value:\n%s%s", r.Stdout, r.Stderr)
	}
	c.Recheck()
}

// history of a corp's record: "stored now" fingerprints the access token
// the record holds, the one the ledger's TOKEN column names, not the
// record (new-user trial of issue 27: they never matched).
func TestHistoryOfACorpRecordShowsItsToken(t *testing.T) {
	ctx := context.Background()
	f := newVendorFixture(t)
	rec := f.record(t)
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": "file://" + f.dir}, Secrets: func() []string { return f.secrets }}
	r := c.Exec(ctx, "history", "--key", f.suite.AuthorizationKey(testCorp))
	c.Want(r, cli.ExitOK)
	if want := "stored now: token " + core.Fingerprint(rec.AccessToken.Reveal()); !strings.Contains(r.Stdout, want) {
		t.Fatalf("history of the corp's record: want %q in\n%s", want, r.Stdout)
	}
	if n := strings.Count(r.Stdout, core.Fingerprint(rec.AccessToken.Reveal())); n < 2 {
		t.Fatalf("the stored token's fingerprint shows %d times, want it in the TOKEN column too:\n%s", n, r.Stdout)
	}
}
