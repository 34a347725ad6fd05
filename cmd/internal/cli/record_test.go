package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
	"github.com/wechatconf/wechatconf/cmd/internal/cli/clitest"
	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	testComponent       = "wxcomponent0000001"
	testComponentSecret = "component-secret-0123456789abcdef"
	testMerchant        = "wxmerchant00000001"
)

// simulatedPrefix starts every refresh token core/wxtest mints: the
// simulator's constant, not a secret, so runs of it are not checked.
const simulatedPrefix = "refreshtoken@@@"

// runs returns every 6-character run of the secrets, but for those inside
// the simulator's constant prefix.
func runs(secrets ...string) []string {
	var out []string
	for _, s := range secrets {
		for i := 0; i+6 <= len(s); i++ {
			if w := s[i : i+6]; !strings.Contains(simulatedPrefix, w) {
				out = append(out, w)
			}
		}
	}
	return out
}

// TestInspectAuthorizationRecord tests how inspect and get show an
// authorizer's record (the one value under …/authorizer_refresh_token that
// holds the authorization state, the refresh token and the access token):
//
//   - authorized: status authorized with since, the fingerprint and length
//     of the refresh token alone (unchanged by an access-token refresh,
//     which changes the record), and the access token's expires_at; exit 0;
//   - --reveal reveals the refresh token, never the access token nor the
//     record;
//   - withdrawn: status withdrawn with since, no fingerprint; inspect and
//     get exit 3 (nothing usable), though the tickets may be present;
//   - a value that does not parse: status corrupt, no value, fingerprint or
//     length even with --reveal; exit 2;
//   - a bare refresh token an earlier version stored: authorized, its
//     fingerprint, no expiry.
//
// Without --reveal no output holds the refresh token, the access token,
// the record, or any 6-character run of the tokens.
func TestInspectAuthorizationRecord(t *testing.T) {
	ctx := context.Background()
	wx := wxtest.New(wxtest.Options{Components: []wxtest.Component{{AppID: testComponent, AppSecret: testComponentSecret}}})
	t.Cleanup(wx.Close)
	dir := t.TempDir()
	st, closeStore, err := storeurl.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeStore() })
	comp, err := openplatform.New(openplatform.Config{
		AppID: testComponent, AppSecret: core.NewSecret(testComponentSecret),
		Store: st, BaseURL: wx.URL, Now: wx.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := comp.SetVerifyTicket(ctx, wx.VerifyTicket(testComponent), wx.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := comp.Authorize(ctx, wx.Authorize(testComponent, testMerchant)); err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	key := comp.AuthorizationKey(testMerchant)
	if want := "wechatconf/open/" + testComponent + "/" + testMerchant + cli.RecordSuffix; key != want {
		t.Fatalf("AuthorizationKey = %q, want %q (the key inspect reads)", key, want)
	}
	ticketKey := "wechatconf/open/" + testComponent + "/" + testMerchant + "/jsapi_ticket"
	ticket := core.Token{Value: "jsapi-ticket-value-0123456789", ExpiresAt: time.Now().Add(time.Hour)}
	if err := st.Set(ctx, ticketKey, ticket); err != nil {
		t.Fatal(err)
	}

	var secrets []string // every value seen so far that must not be printed without --reveal
	record := func() (core.Token, openplatform.AuthorizationRecord) {
		t.Helper()
		stored, err := st.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		rec, err := openplatform.ParseAuthorizationRecord(stored)
		if err != nil {
			t.Fatalf("ParseAuthorizationRecord(%q): %v", key, err)
		}
		refresh, access := rec.RefreshToken.Reveal(), rec.AccessToken.Reveal()
		for _, s := range append([]string{stored.Value, refresh, access}, runs(refresh, access)...) {
			if s != "" {
				secrets = append(secrets, s)
			}
		}
		return stored, rec
	}
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": "file://" + dir}, Secrets: func() []string { return secrets }}
	inspect := func(code int) (clitest.Result, cli.View) {
		t.Helper()
		r := c.Exec(ctx, "inspect", "--component", testComponent, testMerchant, "--json")
		c.Want(r, code)
		vs := r.Views(t)
		if len(vs) != 3 || vs[2].Key != key {
			t.Fatalf("inspect: %d views, want 3, the last of %s:\n%s", len(vs), key, r.Stdout)
		}
		return r, vs[2]
	}

	// Authorized, with an access token.
	stored, rec := record()
	refresh := rec.RefreshToken.Reveal()
	if refresh == "" || rec.AccessToken.IsZero() || rec.ExpiresAt.IsZero() || rec.Since.IsZero() || rec.Withdrawn {
		t.Fatalf("precondition: the record after Authorize is %+v, want authorized with both tokens and since", rec)
	}
	_, v := inspect(cli.ExitOK)
	if v.Status != cli.StatusAuthorized || v.Since == nil || !v.Since.Equal(rec.Since) ||
		v.Fingerprint != cli.Fingerprint(refresh) || v.Length != len(refresh) || v.Value != "" ||
		v.ExpiresAt == nil || !v.ExpiresAt.Equal(rec.ExpiresAt) || v.ExpiresIn == nil || *v.ExpiresIn <= 0 {
		t.Errorf("inspect --json of an authorized record: %+v; want status authorized, since %v, fingerprint %s and length %d (the refresh token's), expires_at %v, no value",
			v, rec.Since, cli.Fingerprint(refresh), len(refresh), rec.ExpiresAt)
	}
	if v.Fingerprint == cli.Fingerprint(stored.Value) || v.Length == len(stored.Value) {
		t.Errorf("inspect shows the fingerprint or length of the whole record: %+v", v)
	}
	r := c.Exec(ctx, "inspect", "--component", testComponent, testMerchant)
	c.Want(r, cli.ExitOK)
	if !strings.Contains(r.Stdout, key+"  authorized since="+rec.Since.UTC().Format(time.RFC3339)) ||
		!strings.Contains(r.Stdout, "refresh_token:  fingerprint="+cli.Fingerprint(refresh)) ||
		!strings.Contains(r.Stdout, "access_token:  expires_at="+rec.ExpiresAt.UTC().Format(time.RFC3339)) {
		t.Errorf("inspect (text) of an authorized record:\n%s", r.Stdout)
	}

	// An access-token refresh rewrites the record; the refresh token's
	// fingerprint, what a backup is compared with, stays.
	if _, err := comp.Authorizer(testMerchant).RefreshAccessToken(ctx, rec.AccessToken.Reveal()); err != nil {
		t.Fatalf("RefreshAccessToken: %v", err)
	}
	stored2, rec2 := record()
	if stored2.Value == stored.Value || rec2.RefreshToken.Reveal() != refresh {
		t.Fatalf("precondition: the refresh changed the record %t and kept the refresh token %t; want both", stored2.Value != stored.Value, rec2.RefreshToken.Reveal() == refresh)
	}
	if _, v2 := inspect(cli.ExitOK); v2.Fingerprint != v.Fingerprint || !v2.ExpiresAt.Equal(rec2.ExpiresAt) {
		t.Errorf("inspect after an access-token refresh: fingerprint %s, expires_at %v; want %s (unchanged) and %v", v2.Fingerprint, v2.ExpiresAt, v.Fingerprint, rec2.ExpiresAt)
	}

	// --reveal: the refresh token, never the access token or the record.
	for _, args := range [][]string{{"get", "--key", key, "--reveal"}, {"get", "--key", key, "--reveal", "--json"}} {
		r := c.Exec(ctx, args...)
		c.Want(r, cli.ExitOK)
		if !strings.Contains(r.Stdout, refresh) {
			t.Errorf("wechatconf %q: the refresh token is not revealed:\n%s", args, r.Stdout)
		}
		for _, s := range append([]string{stored2.Value, rec2.AccessToken.Reveal(), "wechatconf.authorizer/"}, runs(rec2.AccessToken.Reveal())...) {
			if strings.Contains(r.Stdout+r.Stderr, s) {
				t.Errorf("wechatconf %q reveals more than the refresh token (%q):\n%s", args, s, r.Stdout)
				break
			}
		}
	}

	// Withdrawn: nothing usable, whatever tickets remain.
	wx.Advance(time.Second) // the simulated clock is WeChat's: the withdrawal comes after the authorization
	if err := comp.Unauthorize(ctx, testMerchant); err != nil {
		t.Fatal(err)
	}
	_, rec3 := record()
	r, v = inspect(cli.ExitNotFound)
	if v.Status != cli.StatusWithdrawn || v.Since == nil || !v.Since.Equal(rec3.Since) || v.Fingerprint != "" || v.Length != 0 || v.ExpiresAt != nil {
		t.Errorf("inspect --json of a withdrawn record: %+v; want status withdrawn, since %v, no token", v, rec3.Since)
	}
	if vs := r.Views(t); vs[0].Status != "valid" || !strings.Contains(r.Stderr, "withdrew") {
		t.Errorf("inspect of a withdrawn authorizer with a ticket stored: %s\nstderr: %s; want the ticket valid and the exit explained", r.Stdout, r.Stderr)
	}
	r = c.Exec(ctx, "get", "--key", key)
	c.Want(r, cli.ExitNotFound)
	if !strings.Contains(r.Stdout, key+"  withdrawn since=") {
		t.Errorf("get of a withdrawn record: %s", r.Stdout)
	}

	// A value that does not parse: corrupt, shown by no value at all.
	corrupt := core.Token{Value: "corrupt-record{" + refresh}
	secrets = append(secrets, corrupt.Value)
	if err := st.Set(ctx, key, corrupt); err != nil {
		t.Fatal(err)
	}
	_, v = inspect(cli.ExitError)
	if v.Status != cli.StatusCorrupt || v.Value != "" || v.Fingerprint != "" || v.Length != 0 || v.Error == "" {
		t.Errorf("inspect --json of a corrupt record: %+v; want status corrupt, an error, no value, fingerprint or length", v)
	}
	r = c.Exec(ctx, "get", "--key", key, "--reveal", "--json")
	c.Want(r, cli.ExitError)
	if v := r.Views(t)[0]; v.Status != cli.StatusCorrupt || strings.Contains(r.Stdout+r.Stderr, corrupt.Value) || strings.Contains(r.Stdout+r.Stderr, refresh) {
		t.Errorf("get --reveal of a corrupt record shows a value: %s\nstderr: %s", r.Stdout, r.Stderr)
	}

	// A bare refresh token, as an earlier version stored it.
	bare := core.Token{Value: "bare-refresh-token-Zq7Xk2Pw9Lm4"}
	secrets = append(secrets, bare.Value)
	secrets = append(secrets, runs(bare.Value)...)
	if err := st.Set(ctx, key, bare); err != nil {
		t.Fatal(err)
	}
	if _, v = inspect(cli.ExitOK); v.Status != cli.StatusAuthorized || v.Since != nil || v.Fingerprint != cli.Fingerprint(bare.Value) || v.ExpiresAt != nil {
		t.Errorf("inspect --json of a bare refresh token: %+v; want authorized, no since, fingerprint %s, no expiry", v, cli.Fingerprint(bare.Value))
	}
	c.Recheck()
}
