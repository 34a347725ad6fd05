package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"net/http/httptest"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	"github.com/wechatconf/wechatconf/tokenserver"
)

// polyglot is one non-Go worker of workers/: the interpreter, the file, and
// a driver program that imports the file's credential function, calls it
// with $NAME and (if set) $STALE, and prints the reply as JSON.
type polyglot struct {
	interpreter, file string
	args              func(driver string) []string
	driver            string
}

var polyglots = []polyglot{
	{
		interpreter: "python3", file: "worker.py",
		args: func(d string) []string { return []string{"-c", d} },
		driver: `import json, os, sys
sys.path.insert(0, os.environ["WORKER_DIR"])
from worker import credential
print(json.dumps(credential(os.environ["NAME"], os.environ.get("STALE"))))`,
	},
	{
		interpreter: "node", file: "worker.mjs",
		args: func(d string) []string { return []string{"--input-type=module", "-e", d} },
		driver: `import { pathToFileURL } from "node:url";
const { credential } = await import(pathToFileURL(process.env.WORKER_DIR + "/worker.mjs").href);
console.log(JSON.stringify(await credential(process.env.NAME, process.env.STALE)));`,
	},
}

// TestPolyglotWorkers runs the Python and the Node worker of workers/ (the
// ones README.md shows) against a real token server in front of the
// simulated WeChat API: GET of the access_token and a ticket, a
// compare-and-refresh after WeChat revoked the token (one fetch, and a
// second worker with the same stale gets the new token without another),
// and a wrong secret failing. A missing interpreter skips, except under CI,
// where it fails.
func TestPolyglotWorkers(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("workers")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range polyglots {
		t.Run(p.interpreter, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, p.file))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(readme), strings.TrimSpace(string(src))) {
				t.Errorf("README.md does not show workers/%s as it is: keep the two in step", p.file)
			}
			bin, err := exec.LookPath(p.interpreter)
			if err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("%s is not installed, and CI is set: install it (%v)", p.interpreter, err)
				}
				t.Skipf("%s is not installed (set CI to make this a failure)", p.interpreter)
			}

			wechat := wxtest.New(wxtest.Options{AppID: demoAppID, AppSecret: demoAppSecret, Now: time.Now})
			t.Cleanup(wechat.Close)
			conf, err := core.New(core.Config{AppID: demoAppID, AppSecret: core.NewSecret(demoAppSecret), BaseURL: wechat.URL})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(tokenserver.Handler(conf, core.NewSecret(testSecret)))
			t.Cleanup(srv.Close)
			fetches := func() int { return wechat.Calls(wxtest.PathStableToken) + wechat.Calls(wxtest.PathToken) }

			// call runs the worker once; stale nil means a GET.
			call := func(secret, name string, stale *string) (tokenReply, error) {
				t.Helper()
				cmd := exec.CommandContext(t.Context(), bin, p.args(p.driver)...)
				cmd.Env = append(os.Environ(), "WORKER_DIR="+dir, "TOKENSERVER_URL="+srv.URL,
					"TOKENSERVER_SECRET="+secret, "NAME="+name)
				if stale != nil {
					cmd.Env = append(cmd.Env, "STALE="+*stale)
				}
				out, err := cmd.Output()
				if err != nil {
					if ee, ok := err.(*exec.ExitError); ok {
						return tokenReply{}, &workerError{err, string(ee.Stderr)}
					}
					return tokenReply{}, err
				}
				var tr tokenReply
				if err := json.Unmarshal(out, &tr); err != nil || tr.Value == "" || tr.ExpiresAtUnix == 0 {
					t.Fatalf("the worker printed %q, not a credential (%v)", out, err)
				}
				return tr, nil
			}

			first, err := call(testSecret, "access_token", nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := conf.AccessToken(t.Context())
			if err != nil || first.Value != want.Value || first.ExpiresAtUnix != want.ExpiresAt.Unix() {
				t.Errorf("the worker's token is not the server's (%v)", err)
			}
			if _, err := call(testSecret, "jsapi_ticket", nil); err != nil {
				t.Error(err)
			}

			wechat.Revoke(first.Value)
			second, err := call(testSecret, "access_token", &first.Value)
			if err != nil {
				t.Fatal(err)
			}
			if second.Value == first.Value {
				t.Error("refresh with the revoked token as stale returned it again")
			}
			again, err := call(testSecret, "access_token", &first.Value)
			if err != nil || again.Value != second.Value {
				t.Errorf("a second worker with the same stale did not get the new token (%v)", err)
			}
			if n := fetches(); n != 2 {
				t.Errorf("%d token fetches, want 2 (one, then one for the revoked token)", n)
			}

			_, err = call("wrong-secret-0123456789", "access_token", nil)
			if err == nil || !strings.Contains(err.Error(), "401") {
				t.Errorf("a wrong secret: %v, want a failure naming 401", err)
			}
		})
	}
}

// workerError is a worker that exited with an error, with what it printed.
type workerError struct {
	err    error
	stderr string
}

func (e *workerError) Error() string { return e.err.Error() + ": " + e.stderr }
