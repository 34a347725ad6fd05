package tokenfile_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/tokenfile"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	testAppID     = "wx0123456789abcdef"
	testAppSecret = "0123456789abcdef0123456789abcdef"
)

var epoch = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// TestWriteRecord tests that Write writes the documented JSON — kind,
// appid, value, expires_at truncated to the second in UTC, the same in
// Unix seconds, the seconds left — and nothing else, with a newline.
func TestWriteRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access_token.json")
	a := &tokenfile.Agent{Path: path, Kind: "access_token", AppID: testAppID, Now: fixedClock(epoch)}
	exp := epoch.Add(2*time.Hour + 500*time.Millisecond).In(time.FixedZone("CST", 8*3600))
	r, err := a.Write(core.Token{Value: "TOKEN-1", ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":1,"kind":"access_token","appid":"wx0123456789abcdef","value":"TOKEN-1",` +
		`"expires_at":"2026-12-06T02:00:00Z","expires_at_unix":1796522400,"expires_in":7200}` + "\n"
	if string(b) != want {
		t.Errorf("Write wrote\n%s\nwant\n%s", b, want)
	}
	if r.ExpiresAtUnix != 1796522400 || r.ExpiresIn != 7200 || r.Value != "TOKEN-1" {
		t.Errorf("Write returned %+v", r)
	}
	if s := r.String() + r.GoString(); strings.Contains(s, "TOKEN-1") {
		t.Errorf("Record.String prints the value: %s", s)
	}
}

// TestWriteRefusesExpired tests that a token expired, within Margin of its
// expiry, or without an expiry is not written (ErrExpired for the first
// two) and that the file keeps what it held.
func TestWriteRefusesExpired(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json")
	a := &tokenfile.Agent{Path: path, Kind: "access_token", AppID: testAppID, Now: fixedClock(epoch)}
	if _, err := a.Write(core.Token{Value: "GOOD", ExpiresAt: epoch.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	for _, tc := range []struct {
		name    string
		tok     core.Token
		expired bool
	}{
		{"expired", core.Token{Value: "BAD", ExpiresAt: epoch.Add(-time.Second)}, true},
		{"at the margin", core.Token{Value: "BAD", ExpiresAt: epoch.Add(tokenfile.DefaultMargin)}, true},
		{"inside the margin", core.Token{Value: "BAD", ExpiresAt: epoch.Add(30 * time.Second)}, true},
		{"no expiry", core.Token{Value: "BAD"}, false},
	} {
		_, err := a.Write(tc.tok)
		if err == nil || errors.Is(err, tokenfile.ErrExpired) != tc.expired {
			t.Errorf("Write(%s): %v, want an error (ErrExpired: %v)", tc.name, err, tc.expired)
		}
		if err != nil && strings.Contains(err.Error(), "BAD") {
			t.Errorf("Write(%s): the error holds the token: %v", tc.name, err)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Errorf("a refused write changed the file:\n%s\nwas\n%s", after, before)
	}
}

// TestRead tests Read's answers: a valid file, no file (fs.ErrNotExist),
// not a token file (ErrInvalid), a token inside the margin (ErrExpired),
// with no error holding the token.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.json")
	a := &tokenfile.Agent{Path: path, Kind: "jsapi_ticket", AppID: testAppID, Now: fixedClock(epoch)}
	if _, err := a.Write(core.Token{Value: "TICKET", ExpiresAt: epoch.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if r, err := tokenfile.Read(path, time.Minute, epoch); err != nil || r.Value != "TICKET" || r.Kind != "jsapi_ticket" {
		t.Errorf("Read of a valid file: %v, %v", r, err)
	}
	if _, err := tokenfile.Read(path, time.Minute, epoch.Add(59*time.Minute)); !errors.Is(err, tokenfile.ErrExpired) || strings.Contains(err.Error(), "TICKET") {
		t.Errorf("Read inside the margin: %v, want ErrExpired without the token", err)
	}
	if _, err := tokenfile.Read(filepath.Join(dir, "none"), time.Minute, epoch); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of no file: %v, want fs.ErrNotExist", err)
	}
	for _, bad := range []string{"", `{"value":"x"`, `{"value":"x"}`, `{"expires_at":"2026-12-06T02:00:00Z"}`, `[]`} {
		os.WriteFile(path, []byte(bad), 0o600)
		if _, err := tokenfile.Read(path, time.Minute, epoch); !errors.Is(err, tokenfile.ErrInvalid) {
			t.Errorf("Read of %q: %v, want ErrInvalid", bad, err)
		}
	}
}

// TestRunFirstWriteFailure tests that Run returns at once when it cannot
// write the file at all (a directory that does not exist), and when Path
// or Token is missing.
func TestRunFirstWriteFailure(t *testing.T) {
	tok := func(context.Context) (core.Token, error) {
		return core.Token{Value: "T", ExpiresAt: time.Now().Add(time.Hour)}, nil
	}
	a := &tokenfile.Agent{Path: filepath.Join(t.TempDir(), "missing", "t.json"), Token: tok, Logger: discard}
	if err := a.Run(t.Context()); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Run into a missing directory: %v, want an error wrapping fs.ErrNotExist", err)
	}
	if err := (&tokenfile.Agent{Token: tok}).Run(t.Context()); err == nil {
		t.Errorf("Run without a Path: no error")
	}
	if err := (&tokenfile.Agent{Path: filepath.Join(t.TempDir(), "t")}).Run(t.Context()); err == nil {
		t.Errorf("Run without a Token: no error")
	}
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// logBuffer is a *slog.Logger writing into a buffer safe for concurrent
// use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestRunLeavesTheFileWhenNoToken tests that when Token fails after a
// write, Run leaves the file as it is (not removed, not rewritten), writes
// it again if it was removed (the same token), logs
// the failure at Warn while the file's token is outside the margin and at
// Error once it is inside, and removes the temporary files a killed agent
// left. Each poll is driven by the test: Token blocks until the test lets
// it answer.
func TestRunLeavesTheFileWhenNoToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.json")
	leftover := filepath.Join(dir, ".t.json.tmp-123")
	if err := os.WriteFile(leftover, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := epoch
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	type answer struct {
		tok core.Token
		err error
	}
	answers := make(chan answer)
	var logs logBuffer
	a := &tokenfile.Agent{Path: path, Kind: "access_token", AppID: testAppID, Interval: time.Millisecond, Now: clock,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Token: func(ctx context.Context) (core.Token, error) {
			select {
			case a := <-answers:
				return a.tok, a.err
			case <-ctx.Done():
				return core.Token{}, ctx.Err()
			}
		}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	answers <- answer{tok: core.Token{Value: "VALUE-1", ExpiresAt: epoch.Add(time.Hour)}}
	failure := errors.New("store down")
	answers <- answer{err: failure} // the first write is done once Token is called again
	answers <- answer{err: failure} // and the first failure logged
	written, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Run left the temporary file a killed agent left: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	answers <- answer{tok: core.Token{Value: "VALUE-1", ExpiresAt: epoch.Add(time.Hour)}}
	answers <- answer{err: failure} // the file is written again once Token is called again
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, written) {
		t.Errorf("the file removed while its token is unchanged: %q, %v; want it written again", b, err)
	}
	mu.Lock()
	now = epoch.Add(59*time.Minute + 30*time.Second) // inside the file's margin
	mu.Unlock()
	answers <- answer{err: failure}
	answers <- answer{err: failure} // the previous poll is logged once this one is asked
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v when its context ended, want nil", err)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, written) {
		t.Errorf("the file after the failures: %q, %v; want it left as written", b, err)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN msg=tokenfile.no_token") || !strings.Contains(out, "level=ERROR msg=tokenfile.no_token") ||
		!strings.Contains(out, "readers refuse it") || !strings.Contains(out, "store down") {
		t.Errorf("the log does not show the failures at Warn, then at Error:\n%s", out)
	}
	if strings.Contains(out, "VALUE-1") {
		t.Errorf("the log holds the token:\n%s", out)
	}
}

// TestReadersAcrossRefreshes is the file's contract: readers reading the
// file without pause while an Agent keeps it through several refreshes of
// a Conf (on the simulated WeChat API, whose clock the Conf, the Agent and
// the readers share) never see a partial file, nor one whose token is
// within the margin of the expiry at the time of the read. The test moves
// the clock: each step goes to 3 minutes before the file's token expires,
// inside the Conf's refresh ahead (4m30s) and outside the readers' margin
// (1 minute); nothing else moves it, so the file's token is valid for more
// than the margin at every instant by construction, unless the agent
// writes a bad file. Each step waits for the agent's write and for every
// reader to have read the new token.
func TestReadersAcrossRefreshes(t *testing.T) {
	const readers, refreshes = 4, 5
	wechat := wxtest.New(wxtest.Options{AppID: testAppID, AppSecret: testAppSecret, Start: epoch})
	t.Cleanup(wechat.Close)
	conf, err := core.New(core.Config{AppID: testAppID, AppSecret: core.NewSecret(testAppSecret), BaseURL: wechat.URL,
		Now: wechat.Now, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "access_token.json")
	writes := make(chan tokenfile.Record, refreshes+2)
	agent := &tokenfile.Agent{Path: path, Kind: "access_token", AppID: testAppID, Token: conf.AccessToken,
		Interval: time.Millisecond, Now: wechat.Now, Logger: discard,
		OnWrite: func(r tokenfile.Record) { writes <- r }}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Run(ctx) }()

	watchdog := time.NewTimer(2 * time.Minute)
	defer watchdog.Stop()
	bad := make(chan struct{}) // closed when a reader fails
	var badOnce sync.Once
	nextWrite := func(what string) tokenfile.Record {
		t.Helper()
		select {
		case r := <-writes:
			return r
		case err := <-agentDone:
			t.Fatalf("%s: the agent returned %v", what, err)
		case <-bad:
			t.FailNow()
		case <-watchdog.C:
			t.Fatalf("%s: no write within 2 minutes", what)
		}
		panic("unreachable")
	}
	cur := nextWrite("the first write")

	type seen struct {
		reader int
		exp    int64
	}
	saw := make(chan seen, readers*(refreshes+1))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads [readers]int
	defer func() {
		close(stop)
		wg.Wait()
		var total int
		for _, n := range reads {
			total += n
		}
		t.Logf("%d reads by %d readers across %d refreshes", total, readers, refreshes)
	}()
	for i := range readers {
		wg.Go(func() {
			var last int64
			for {
				select {
				case <-stop:
					return
				default:
				}
				now := wechat.Now() // before the read: the clock only moves forward
				r, err := tokenfile.Read(path, tokenfile.DefaultMargin, now)
				reads[i]++
				if err != nil {
					t.Errorf("reader %d, read %d at %s: %v", i, reads[i], now.Format(time.RFC3339), err)
					badOnce.Do(func() { close(bad) })
					return
				}
				if r.Kind != "access_token" || r.AppID != testAppID || !wechat.TokenValid(r.Value) {
					t.Errorf("reader %d: read %v, not a token WeChat takes", i, r)
					badOnce.Do(func() { close(bad) })
					return
				}
				if r.ExpiresAtUnix != last {
					last = r.ExpiresAtUnix
					saw <- seen{i, last}
				}
			}
		})
	}
	waitReaders := func(exp int64) {
		t.Helper()
		pending := map[int]bool{}
		for i := range readers {
			pending[i] = true
		}
		for len(pending) > 0 {
			select {
			case s := <-saw:
				if s.exp == exp {
					delete(pending, s.reader)
				}
			case <-bad:
				t.FailNow()
			case <-watchdog.C:
				t.Fatalf("readers %v did not read the token expiring %d within 2 minutes", pending, exp)
			}
		}
	}
	waitReaders(cur.ExpiresAtUnix)
	for n := 1; n <= refreshes; n++ {
		wechat.Advance(cur.ExpiresAt.Add(-3 * time.Minute).Sub(wechat.Now()))
		next := nextWrite(fmt.Sprintf("refresh %d", n))
		if next.Value == cur.Value || !next.ExpiresAt.After(cur.ExpiresAt) {
			t.Fatalf("refresh %d wrote %v after %v: not a new token", n, next, cur)
		}
		waitReaders(next.ExpiresAtUnix)
		cur = next
	}
	cancel()
	if err := <-agentDone; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := wechat.TokensIssued(); n != refreshes+1 {
		t.Errorf("WeChat issued %d tokens for %d refreshes, want %d: the agent made token calls of its own", n, refreshes, refreshes+1)
	}
}

// checkMode fails the test unless path has mode 0600.
func checkMode(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, m)
	}
}
