package tokenfile_test

// Red team 2 (issue 25 §5): the agent's file replaced behind its back.

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/tokenfile"
)

// polledAgent runs an Agent whose Token blocks until the test hands it a
// token: each value sent on the returned channel is one poll, and a send
// returns only once the previous poll has finished (written or not).
func polledAgent(t *testing.T, path string) chan<- core.Token {
	t.Helper()
	tokens := make(chan core.Token)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	a := &tokenfile.Agent{Path: path, Kind: "access_token", AppID: testAppID, Interval: time.Millisecond, Now: fixedClock(epoch),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Token: func(ctx context.Context) (core.Token, error) {
			select {
			case tok := <-tokens:
				return tok, nil
			case <-ctx.Done():
				return core.Token{}, ctx.Err()
			}
		}}
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return tokens
}

// The agent's file replaced by a symbolic link (to a file like
// /etc/passwd) or by another file is put back at the next poll, as a
// removed one is: readers follow the link, and would read the other file
// until the token changed. The write replaces the link itself (rename),
// never the file it points to.
func TestAgentFileReplacedIsWrittenAgain(t *testing.T) {
	for _, how := range []string{"symlink", "other file"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "access_token.json")
			target := filepath.Join(dir, "passwd")
			const passwd = "root:x:0:0:root:/root:/bin/bash\n"
			if err := os.WriteFile(target, []byte(passwd), 0o644); err != nil {
				t.Fatal(err)
			}
			tok := core.Token{Value: "TOKEN-1", ExpiresAt: epoch.Add(2 * time.Hour)}
			polls := polledAgent(t, path)
			polls <- tok // written
			polls <- tok // unchanged: the first poll has finished
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			var err error
			if how == "symlink" {
				err = os.Symlink(target, path)
			} else {
				err = os.WriteFile(path, []byte("{}"), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			polls <- tok // the same token: the file must be put back
			polls <- tok // that poll has finished
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s is %v after the poll, want the agent's 0600 file", path, fi.Mode())
			}
			r, err := tokenfile.Read(path, tokenfile.DefaultMargin, epoch)
			if err != nil || r.Value != tok.Value {
				t.Errorf("Read after the poll = %v, %v; want the token", r, err)
			}
			if b, _ := os.ReadFile(target); string(b) != passwd {
				t.Error("the write went through the link into its target")
			}
		})
	}
}
