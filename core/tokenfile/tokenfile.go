// Package tokenfile keeps a credential in a file for the processes of one
// host that read a file more easily than they call a service — PHP-FPM,
// Python and Node workers, cron jobs. An Agent asks a core.Conf for the
// credential at a bounded interval and, each time it changes, rewrites the
// file atomically; Read is the Go reader (the repository's
// examples/agent/readers hold PHP, Python and Node ones). The command
// `wechatconf agent` runs an Agent.
//
//	conf, err := core.New(core.Config{AppID: appID, AppSecret: secret, Store: fleetStore})
//	…
//	agent := &tokenfile.Agent{Path: "/run/wechat/access_token.json",
//		Kind: "access_token", AppID: conf.AppID(), Token: conf.AccessToken}
//	err = agent.Run(ctx) // until ctx ends
//
// The Conf is a member of the fleet like any other: its refresh ahead of
// expiry goes through the store's lock and takes the token another member
// fetched, so an agent never causes a token call the fleet would not make.
//
// # The file
//
// One file holds one credential, a Record as one JSON object:
//
//	{"version":1,"kind":"access_token","appid":"wx0123456789abcdef","value":"…",
//	 "expires_at":"2026-12-06T02:18:32Z","expires_at_unix":1796523512,"expires_in":7199}
//
// expires_at is the expiry WeChat announced (RFC 3339, UTC, truncated to the
// second, as the token server's replies), expires_at_unix the same instant
// in Unix seconds, expires_in the seconds it had left when the file was
// written (informative: a reader judges by expires_at, since it does not
// know when the file was written). The AppSecret is never in it. A reader
// refuses a token whose expires_at is within its margin (DefaultMargin, one
// minute) of its own clock, and then falls back or fails.
//
// # Writing
//
// Each write creates a temporary file in the file's directory (named
// ".<name>.tmp-<random>"), sets its mode to 0600 with fchmod whatever the
// umask, writes the JSON, fsyncs it, renames it over Path and fsyncs the
// directory. A reader therefore opens either the previous file or the new
// one, whole, never a partial one, and a crash of the machine leaves one of
// the two. A token that is expired or within Agent.Margin of its expiry is
// never written (ErrExpired). A file removed while Run runs (a clean-up of
// its directory), or replaced by another file or a symbolic link (which
// readers would follow), is written again at the next poll; the rename
// replaces the link itself, never the file it points to. Temporary files a
// killed agent left behind are removed when Run starts.
//
// # Decisions
//
//   - One file per credential, one Agent per file: a reader reads one small
//     file and a single writer renames it (two agents on one path would
//     each see the other's file as a replacement and rewrite it at every
//     poll: whole files still, but churn). An AppID's access_token and its
//     jsapi_ticket are two agents writing two files, each a fleet member;
//     neither adds a token call.
//   - When no valid token can be had (the store and WeChat unreachable, a
//     wrong AppSecret), the file is left as it is, not removed: readers must
//     judge expires_at anyway (a killed agent removes nothing), the file says
//     what was last written, and the next write replaces it. Run logs each
//     failure, at Error level once the file's token is within Margin of its
//     expiry, when readers refuse it.
//   - Polling, not events: a Conf refreshes ahead of expiry when it is asked
//     for the token, so the poll is what starts the refresh, and between
//     refreshes it costs the Conf's hot path (tens of nanoseconds, no I/O).
//     With the default Interval (10 s) the file is rewritten at most two
//     intervals after the refresh ahead begins (4m30s before expiry with
//     stable_token), minutes before a reader's margin.
//   - The file is 0600: run the agent as the user the readers run as (the
//     PHP-FPM pool's user, say), in a directory only that user can write.
package tokenfile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// Version is the format version a Record carries ("version").
const Version = 1

// DefaultMargin is how long before its expiry an Agent stops writing a
// token, and the margin readers should give Read: core's default
// ExpiryMargin.
const DefaultMargin = time.Minute

// DefaultInterval is how often Agent.Run asks for the token by default.
const DefaultInterval = 10 * time.Second

// ErrExpired is returned when a token is expired or within the margin of
// its expiry: by Read for the file's token, by Agent.Write for the token
// it refuses to write.
var ErrExpired = errors.New("tokenfile: the token is expired or within the margin of its expiry")

// ErrInvalid is returned by Read when the file is not a token file: not
// JSON, or without a value or an expiry.
var ErrInvalid = errors.New("tokenfile: not a token file")

// Record is what a token file holds, one JSON object (see the package
// doc, "The file").
type Record struct {
	// Version is the format version, Version.
	Version int `json:"version"`
	// Kind is the credential's kind: "access_token", "jsapi_ticket", …
	Kind string `json:"kind"`
	// AppID is the account the credential belongs to.
	AppID string `json:"appid"`
	// Value is the credential itself.
	Value string `json:"value"`
	// ExpiresAt is WeChat's expiry, UTC, truncated to the second.
	ExpiresAt time.Time `json:"expires_at"`
	// ExpiresAtUnix is ExpiresAt in Unix seconds.
	ExpiresAtUnix int64 `json:"expires_at_unix"`
	// ExpiresIn is the whole seconds the token had left when the file was
	// written.
	ExpiresIn int64 `json:"expires_in"`
}

// String describes r without its value.
func (r Record) String() string {
	return fmt.Sprintf("%s of %s (%d characters), expires %s", r.Kind, r.AppID, len(r.Value), r.ExpiresAt.Format(time.RFC3339))
}

// GoString is String, so that %#v does not print the value either.
func (r Record) GoString() string { return r.String() }

// Read reads the token file at path and returns its Record, if its token
// is valid for more than margin after now. It returns an error wrapping
// fs.ErrNotExist when there is no file, ErrInvalid when the file is not a
// token file, and ErrExpired when the token expires within margin of now.
// No error holds the token.
func Read(path string, margin time.Duration, now time.Time) (Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Record{}, fmt.Errorf("tokenfile: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil || r.Value == "" || r.ExpiresAt.IsZero() {
		return Record{}, fmt.Errorf("%w: %s", ErrInvalid, path)
	}
	if !now.Add(margin).Before(r.ExpiresAt) {
		return r, fmt.Errorf("%w: %s: %s, now %s, margin %v", ErrExpired, path, r, now.UTC().Format(time.RFC3339), margin)
	}
	return r, nil
}

// Agent keeps the credential Token returns in the file Path (see the
// package doc). Set its fields before Run; an Agent is not for concurrent
// use, and one Agent owns one file.
type Agent struct {
	// Path is the token file; its directory must exist. Required.
	Path string
	// Kind and AppID go into the file ("kind", "appid"), for its readers
	// and operators.
	Kind, AppID string
	// Token returns the credential: a core.Conf's AccessToken,
	// JSAPITicket or CardTicket. Required by Run.
	Token func(ctx context.Context) (core.Token, error)
	// Interval is how often Run calls Token. Default DefaultInterval.
	Interval time.Duration
	// Margin: a token within Margin of its expiry is never written.
	// Default DefaultMargin.
	Margin time.Duration
	// Now is the clock expiry is judged by; nil means time.Now.
	Now func() time.Time
	// Logger receives what Run does ("tokenfile.wrote" at Info, failures
	// at Warn and Error), never a credential; nil means slog.Default().
	Logger *slog.Logger
	// OnWrite, if set, is called by Run after each write with what was
	// written.
	OnWrite func(Record)

	wrote os.FileInfo // the file the last Write made (same inode as Path while no one replaced it)
}

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Agent) margin() time.Duration {
	if a.Margin > 0 {
		return a.Margin
	}
	return DefaultMargin
}

func (a *Agent) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// Write writes tok to Path atomically (see the package doc, "Writing") and
// returns what it wrote. A token without an expiry, or expired or within
// Margin of it, is not written: Write returns ErrExpired (or, without an
// expiry, an error saying so) and leaves the file as it is. No error holds
// the token.
func (a *Agent) Write(tok core.Token) (Record, error) {
	if a.Path == "" {
		return Record{}, errors.New("tokenfile: no Path")
	}
	if tok.Value == "" || tok.ExpiresAt.IsZero() {
		return Record{}, fmt.Errorf("tokenfile: %s: refusing a token without a value or an expiry", a.Path)
	}
	now, margin := a.now(), a.margin()
	r := Record{Version: Version, Kind: a.Kind, AppID: a.AppID, Value: tok.Value,
		ExpiresAt: tok.ExpiresAt.UTC().Truncate(time.Second)}
	r.ExpiresAtUnix = r.ExpiresAt.Unix()
	r.ExpiresIn = int64(r.ExpiresAt.Sub(now) / time.Second)
	if !now.Add(margin).Before(r.ExpiresAt) {
		return Record{}, fmt.Errorf("%w: %s: not writing %s (now %s, margin %v)", ErrExpired, a.Path, r, now.UTC().Format(time.RFC3339), margin)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return Record{}, fmt.Errorf("tokenfile: %s: %w", a.Path, err)
	}
	fi, err := writeAtomic(a.Path, append(b, '\n'))
	if err != nil {
		return Record{}, err
	}
	a.wrote = fi
	return r, nil
}

// tempPrefix starts the name of path's temporary files.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// writeAtomic replaces path with a file holding b, mode 0600: a temporary
// file in the same directory, fchmod, write, fsync, rename, directory
// fsync. On failure the temporary file is removed and path is untouched.
// It returns the new file's FileInfo (for os.SameFile). The rename
// replaces whatever path is — a symbolic link included — and never writes
// through it.
func writeAtomic(path string, b []byte) (fi os.FileInfo, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return nil, fmt.Errorf("tokenfile: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("tokenfile: writing %s: %w", path, err)
		}
	}()
	// CreateTemp asks for 0600, which the umask may narrow (0400 under
	// umask 0277): set it exactly.
	if err := f.Chmod(0o600); err != nil {
		return nil, err
	}
	if _, err := f.Write(b); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	return fi, syncDir(dir)
}

// removeLeftovers removes the temporary files of path that a killed
// writer left behind.
func removeLeftovers(path string) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return
	}
	prefix := tempPrefix(path)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			os.Remove(filepath.Join(filepath.Dir(path), e.Name()))
		}
	}
}

// Run keeps the file fresh until ctx ends, then returns nil. It calls
// Token at once and then every Interval, and writes the token whenever its
// value or expiry differs from what it last wrote (the first one always),
// or the file is no longer the one it wrote (removed, or replaced by
// another file or a symbolic link).
// A Token error is logged and tried again at the next poll, the file left
// as it is (see the package doc, "Decisions"); so is a write that fails
// after a first one succeeded. A first write that fails for a reason other
// than ErrExpired (a missing directory, no permission) is returned: the
// agent is misconfigured. Run returns an error at once when Path or Token
// is missing.
func (a *Agent) Run(ctx context.Context) error {
	if a.Path == "" || a.Token == nil {
		return errors.New("tokenfile: Agent needs a Path and a Token")
	}
	interval := a.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	log := a.logger().With("path", a.Path, "kind", a.Kind, "appid", a.AppID)
	removeLeftovers(a.Path)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last core.Token
	written := false
	for {
		tok, err := a.Token(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			a.logFailure(log, "tokenfile.no_token", last, written, err)
		case !written || tok.Value != last.Value || !tok.ExpiresAt.Equal(last.ExpiresAt) || a.replaced():
			r, err := a.Write(tok)
			if err != nil {
				if !written && !errors.Is(err, ErrExpired) {
					return err
				}
				a.logFailure(log, "tokenfile.write_failed", last, written, err)
				break
			}
			last, written = tok, true
			log.Info("tokenfile.wrote", "expires_at", r.ExpiresAt, "expires_in", r.ExpiresIn)
			if a.OnWrite != nil {
				a.OnWrite(r)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// replaced reports whether Path is no longer the file the last Write made:
// removed (by hand, or by a clean-up of its directory), or replaced by
// another file or a symbolic link (which readers would follow). Run then
// writes it again.
func (a *Agent) replaced() bool {
	fi, err := os.Lstat(a.Path)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	// An inode freed by a removal may be reused at once by the file that
	// replaced it: its size, mode and modification time tell them apart.
	w := a.wrote
	return w == nil || !os.SameFile(fi, w) || fi.Size() != w.Size() || fi.Mode() != w.Mode() || !fi.ModTime().Equal(w.ModTime())
}

// logFailure logs err: at Warn while the file's token (last) is still
// outside the margin, at Error once readers refuse it.
func (a *Agent) logFailure(log *slog.Logger, msg string, last core.Token, written bool, err error) {
	if !written {
		log.Error(msg, "error", err, "file", "not written yet")
		return
	}
	if a.now().Add(a.margin()).Before(last.ExpiresAt) {
		log.Warn(msg, "error", err, "file_expires_at", last.ExpiresAt.UTC().Truncate(time.Second))
		return
	}
	log.Error(msg, "error", err, "file_expires_at", last.ExpiresAt.UTC().Truncate(time.Second),
		"file", "expired or within the margin: readers refuse it")
}
