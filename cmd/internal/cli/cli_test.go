package cli_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
	"github.com/wechatconf/wechatconf/cmd/internal/cli/clitest"
	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	testAppID     = clitest.AppID
	testAppSecret = clitest.AppSecret
)

// The whole flow on the file store; cmd/containertest runs it on Redis,
// PostgreSQL and etcd.

func TestFileStore(t *testing.T) {
	clitest.Flow(t, "file://"+t.TempDir(), false)
}

func TestFileStoreFromEnvironment(t *testing.T) {
	clitest.Flow(t, "file://"+t.TempDir(), true)
}

// TestUsage tests the usage errors (2, saying what is wrong) and the
// not-found exits (3) of the command line.
func TestUsage(t *testing.T) {
	ctx := context.Background()
	dir := "file://" + t.TempDir()
	c := &clitest.CLI{T: t, Environ: map[string]string{}}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, cli.ExitError, "no command"},
		{[]string{"frobnicate"}, cli.ExitError, `unknown command "frobnicate"`},
		{[]string{"inspet", testAppID}, cli.ExitError, "did you mean inspect?"},
		{[]string{"get", testAppID}, cli.ExitError, "no store"},
		{[]string{"--store", "memory:", "get", testAppID}, cli.ExitError, "memory:"},
		{[]string{"--store", "redis://user:hunter2secret@127.0.0.1:1/0", "get", testAppID}, cli.ExitError, "holds a password"},
		{[]string{"--store", "ftp://x", "get", testAppID}, cli.ExitError, "unknown scheme"},
		{[]string{"--store", dir, "get", testAppID, "nonsense"}, cli.ExitError, "unknown kind"},
		{[]string{"--store", dir, "get", testAppID, "access_token", "extra"}, cli.ExitError, "too many arguments"},
		{[]string{"--store", dir, "get", "--key", "k", testAppID}, cli.ExitError, "--key"},
		{[]string{"--store", dir, "get"}, cli.ExitError, "APPID"},
		{[]string{"--store", dir, "get", "--bogus"}, cli.ExitError, "unknown flag: --bogus"},
		{[]string{"--store", dir, "get", "-reveal", testAppID}, cli.ExitError, "unknown shorthand flag"},
		{[]string{"--store", dir, "--timeout", "0s", "get", testAppID}, cli.ExitError, "--timeout"},
		{[]string{"--store", dir, "refresh"}, cli.ExitError, "exactly one APPID"},
		{[]string{"--store", dir, "refresh", "wecom/ww0123/1000002"}, cli.ExitError, "is not an AppID"},
		{[]string{"--store", dir, "force", "wx01\n23", "--yes"}, cli.ExitError, "is not an AppID"},
		{[]string{"--store", dir, "force", testAppID}, cli.ExitError, "--yes"},
		{[]string{"--store", dir, "ls", "a", "b"}, cli.ExitError, "too many arguments"},
		{[]string{"--store", dir, "inspect", "--wecom", "corp"}, cli.ExitError, "CORPID/AGENTID"},
		{[]string{"--store", dir, "inspect", "--wecom", "corp/1", "--component", "c"}, cli.ExitError, "not two"},
		{[]string{"--store", dir, "inspect", "--suite", "ww1", "--provider", "wwp"}, cli.ExitError, "not two"},
		{[]string{"--store", dir, "inspect", "--suite", "ww1/corp"}, cli.ExitError, "--suite SUITE_ID [CORPID]"},
		{[]string{"--store", dir, "inspect", "--suite", "ww1", "corp/x"}, cli.ExitError, "--suite SUITE_ID [CORPID]"},
		{[]string{"--store", dir, "inspect", "--provider", "wwp", "corp"}, cli.ExitError, "--provider CORPID"},
		{[]string{"--store", dir, "watch", testAppID, "--interval", "0s"}, cli.ExitError, "interval"},
		{[]string{"--store", dir, "get", "--key", "raw/key"}, cli.ExitNotFound, "raw/key: not found"},
		{[]string{"--store", dir, "inspect", "--wecom", "corp/1000002"}, cli.ExitNotFound, "none of the 3 keys"},
		{[]string{"--store", dir, "inspect", "--component", "wxcomp", testAppID}, cli.ExitNotFound, "none of the 3 keys"},
		{[]string{"--store", dir, "inspect", "--suite", "ww1"}, cli.ExitNotFound, "none of the 2 keys"},
		{[]string{"--store", dir, "inspect", "--suite", "ww1", "wwcorp"}, cli.ExitNotFound, "none of the 3 keys"},
		{[]string{"--store", dir, "inspect", "--provider", "wwp"}, cli.ExitNotFound, "wechatconf/wecomvendor/provider/wwp/provider_access_token"},
	} {
		r := c.Exec(ctx, tc.args...)
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.msg) {
			t.Errorf("wechatconf %q: exit %d, stderr %q; want %d and %q", tc.args, r.Code, r.Stderr, tc.code, tc.msg)
		}
		if strings.Contains(r.Stderr, "hunter2secret") {
			t.Errorf("wechatconf %q printed the URL's password: %s", tc.args, r.Stderr)
		}
	}
	// An unknown flag of the command itself: its name once, not twice.
	if r := c.Exec(ctx, "--bogus"); r.Code != cli.ExitError || !strings.HasPrefix(r.Stderr, "wechatconf: unknown flag: --bogus\n") {
		t.Errorf("wechatconf --bogus: exit %d, stderr %q; want 2 and %q", r.Code, r.Stderr, "wechatconf: unknown flag: --bogus")
	}
	if r := c.Exec(ctx, "--version"); r.Code != cli.ExitOK || !strings.HasPrefix(r.Stdout, "wechatconf version ") {
		t.Errorf("wechatconf --version: exit %d, stdout %q, stderr %q; want 0 and the version", r.Code, r.Stdout, r.Stderr)
	}
}

// TestHelp tests that help, for the command and each subcommand, goes to
// stdout with exit 0 and names the exit codes.
func TestHelp(t *testing.T) {
	ctx := context.Background()
	c := &clitest.CLI{T: t, Environ: map[string]string{}}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"get", "-h"}, {"help", "refresh"}, {"ls", "--help"}, {"force", "--help"}} {
		r := c.Exec(ctx, args...)
		if r.Code != cli.ExitOK || !strings.Contains(r.Stdout, "exit codes") || r.Stderr != "" {
			t.Errorf("wechatconf %q: exit %d, stdout %q, stderr %q; want 0 and the help with the exit codes", args, r.Code, r.Stdout, r.Stderr)
		}
	}
	r := c.Exec(ctx, "help")
	for _, cmd := range []string{"get", "ls", "inspect", "watch", "refresh", "force", "history", "completion"} {
		if !strings.Contains(r.Stdout, "\n  "+cmd+" ") {
			t.Errorf("wechatconf help does not list %s:\n%s", cmd, r.Stdout)
		}
	}
	if r := c.Exec(ctx, "refresh", "--help"); !strings.Contains(r.Stdout, "--yes") || !strings.Contains(r.Stdout, "force_refresh") {
		t.Errorf("refresh --help does not say what --yes costs:\n%s", r.Stdout)
	}
}

// TestCompletion tests the shell completion scripts and the completion of
// get's kind.
func TestCompletion(t *testing.T) {
	ctx := context.Background()
	c := &clitest.CLI{T: t, Environ: map[string]string{}}
	for shell, want := range map[string]string{"bash": "__start_wechatconf", "zsh": "#compdef wechatconf", "fish": "complete -c wechatconf"} {
		r := c.Exec(ctx, "completion", shell)
		if r.Code != cli.ExitOK || !strings.Contains(r.Stdout, want) {
			t.Errorf("wechatconf completion %s: exit %d, stdout holds %q: %t; stderr %q", shell, r.Code, want, strings.Contains(r.Stdout, want), r.Stderr)
		}
	}
	r := c.Exec(ctx, "__complete", "get", testAppID, "")
	for _, kind := range []string{"access_token", "jsapi_ticket", "wx_card_ticket"} {
		if r.Code != cli.ExitOK || !strings.Contains(r.Stdout, kind+"\n") {
			t.Errorf("completing get %s: exit %d, %q; want %s among the kinds", testAppID, r.Code, r.Stdout, kind)
		}
	}
}

// TestWatchStopsOnContext: watch ends with 0 when its context ends (SIGINT).
func TestWatchStopsOnContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c := &clitest.CLI{T: t, Environ: map[string]string{}}
	start := time.Now()
	r := c.Exec(ctx, "--store", "file://"+t.TempDir(), "watch", testAppID, "--interval", "20ms")
	c.Want(r, cli.ExitOK)
	if !strings.Contains(r.Stdout, "absent") || time.Since(start) > 5*time.Second {
		t.Fatalf("watch: %q after %v", r.Stdout, time.Since(start))
	}
}

// TestInspectWeComKeys checks the WeCom and Open Platform key layouts.
func TestInspectWeComKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, _, err := storeurl.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	tok := core.Token{Value: "wecom-token-0123456789abcdef", ExpiresAt: time.Now().Add(time.Hour)}
	if err := st.Set(ctx, "wechatconf/wecom/corp/1000002/access_token", tok); err != nil {
		t.Fatal(err)
	}
	if err := st.Set(ctx, "wechatconf/open/wxcomp/component_verify_ticket", tok); err != nil {
		t.Fatal(err)
	}
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHATCONF_STORE": "file://" + dir}, Secrets: func() []string { return []string{tok.Value} }}
	r := c.Exec(ctx, "inspect", "--wecom", "corp/1000002", "--json")
	c.Want(r, cli.ExitOK)
	vs := r.Views(t)
	if len(vs) != 3 || vs[0].Status != cli.StatusValid || vs[1].Key != "wechatconf/wecom/corp/1000002/agent_config_ticket" || vs[2].Key != "wechatconf/wecom/corp/jsapi_ticket" {
		t.Fatalf("inspect --wecom: %s", r.Stdout)
	}
	r = c.Exec(ctx, "inspect", "--component", "wxcomp")
	c.Want(r, cli.ExitOK)
	if !strings.Contains(r.Stdout, "wechatconf/open/wxcomp/component_access_token  absent") ||
		!strings.Contains(r.Stdout, "wechatconf/open/wxcomp/component_verify_ticket  valid") {
		t.Fatalf("inspect --component: %s", r.Stdout)
	}
}

// TestHeldBackByALimit tests exit code 4: WeChat's quota refusing a token
// call (45009, here the daily quota of token mints used up by the first
// refresh) says "retry later", apart from other failures (2); and WeChat's
// minute quota (45011) still refused after core's retries too.
func TestHeldBackByALimit(t *testing.T) {
	ctx := context.Background()
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now, DailyQuota: 1})
	t.Cleanup(wechat.Close)
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHAT_APPSECRET": testAppSecret, "WECHATCONF_STORE": "file://" + t.TempDir()}}
	global := []string{"--base-url", wechat.URL}
	c.Want(c.Exec(ctx, append(global, "refresh", testAppID)...), cli.ExitOK)
	r := c.Exec(ctx, append(global, "force", testAppID, "--yes")...)
	c.Want(r, cli.ExitLimited)
	if !strings.Contains(r.Stderr, "45009") || strings.Contains(r.Stderr, "wechatconf: wechatconf:") {
		t.Errorf("force over a used-up quota: stderr %q, want WeChat's 45009 named, the command's name once", r.Stderr)
	}
	if n := wechat.Calls(wxtest.PathStableToken); n != 2 {
		t.Errorf("%d stable_token calls, want 2 (the refresh, the refused force)", n)
	}

	wechat.InjectFault(wxtest.PathStableToken, wxtest.Errcode(45011, "api minute-quota reach limit"), 10)
	if r := c.Exec(ctx, append(global, "refresh", testAppID, "--yes")...); r.Code != cli.ExitLimited || !strings.Contains(r.Stderr, "45011") {
		t.Errorf("refresh --yes refused with 45011: exit %d, stderr %q; want %d naming 45011", r.Code, r.Stderr, cli.ExitLimited)
	}
}

// TestMistypedFileStore: a file store URL naming a directory that does not
// exist is an error (2) for every command, and nothing is created or
// fetched: filestore.New would create it, so that get said "not found" and
// refresh fetched a token the fleet never sees.
func TestMistypedFileStore(t *testing.T) {
	ctx := context.Background()
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Now: time.Now})
	t.Cleanup(wechat.Close)
	dir := filepath.Join(t.TempDir(), "typo")
	c := &clitest.CLI{T: t, Environ: map[string]string{"WECHAT_APPSECRET": testAppSecret, "WECHATCONF_STORE": "file://" + dir}}
	for _, args := range [][]string{{"get", testAppID}, {"inspect", testAppID}, {"refresh", testAppID}, {"force", testAppID, "--yes"}, {"ls"}} {
		r := c.Exec(ctx, append([]string{"--base-url", wechat.URL}, args...)...)
		if r.Code != cli.ExitError || !strings.Contains(r.Stderr, "no such directory") {
			t.Errorf("wechatconf %q on a missing directory: exit %d, stderr %q; want %d saying no such directory", args, r.Code, r.Stderr, cli.ExitError)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing directory after the commands: %v, want it still missing", err)
	}
	if n := wechat.Calls(wxtest.PathStableToken) + wechat.Calls(wxtest.PathToken); n != 0 {
		t.Errorf("%d token calls against a mistyped store, want 0", n)
	}
}
