// Package clitest holds what the wechatconf command's tests share: the
// in-process driver (CLI) that checks no secret reaches the output, and
// Flow, the whole life of a credential through the command against the
// store a URL names — used by package cli's tests (file store) and by the
// test-only module cmd/containertest (real Redis, PostgreSQL, etcd). It
// imports only the standard library, core and the command.
package clitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/wechatconf/wechatconf/cmd/internal/cli"
)

// The credentials the tests give the command and the simulator.
const (
	AppID     = "wx0123456789abcdef"
	AppSecret = "app-secret-0123456789abcdef"
)

// SyncBuffer is a bytes.Buffer safe for a running command and the test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Result is one run of the command.
type Result struct {
	// Code is the exit code (cli.ExitOK …).
	Code int
	// Stdout and Stderr are what the run printed.
	Stdout, Stderr string
}

// Views decodes get's, inspect's, watch's, refresh's and force's --json
// output, one object per line.
func (r Result) Views(t *testing.T) []cli.View {
	t.Helper()
	return decode[cli.View](t, r.Stdout)
}

// Entries decodes ls --json output, one object per line.
func (r Result) Entries(t *testing.T) []cli.Entry {
	t.Helper()
	return decode[cli.Entry](t, r.Stdout)
}

func decode[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	for line := range strings.Lines(out) {
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		vs = append(vs, v)
	}
	return vs
}

// RunFunc runs a command line, as cli.Run.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int

// CLI runs the command in-process with Environ, and checks that the
// AppSecret and, without --reveal, no value in Secrets reach its output.
type CLI struct {
	// T is the test the runs belong to.
	T *testing.T
	// Environ is the command's environment.
	Environ map[string]string
	// Secrets returns the token values that must not be printed without
	// --reveal (nil: none).
	Secrets func() []string
	// Run runs the command (nil: cli.Run).
	Run RunFunc

	mu     sync.Mutex
	masked []Result // outputs without --reveal, for Recheck
}

// Getenv reads Environ.
func (c *CLI) Getenv(k string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Environ[k]
}

// Setenv sets (v != "") or unsets a variable of Environ.
func (c *CLI) Setenv(k, v string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Environ == nil {
		c.Environ = map[string]string{}
	}
	if v == "" {
		delete(c.Environ, k)
		return
	}
	c.Environ[k] = v
}

// Recheck checks every output without --reveal against every token value
// known now (a value enters Secrets only after the run that printed it).
func (c *CLI) Recheck() {
	c.T.Helper()
	c.mu.Lock()
	masked := append([]Result(nil), c.masked...)
	c.mu.Unlock()
	for _, r := range masked {
		for _, s := range c.secretValues(false) {
			if strings.Contains(r.Stdout+r.Stderr, s) {
				c.T.Errorf("a token (%q) was printed without --reveal:\nstdout: %s\nstderr: %s", s, r.Stdout, r.Stderr)
			}
		}
	}
}

// Exec runs the command line args and checks its output for secrets.
func (c *CLI) Exec(ctx context.Context, args ...string) Result {
	c.T.Helper()
	run := c.Run
	if run == nil {
		run = cli.Run
	}
	var out, errOut SyncBuffer
	code := run(ctx, args, c.Getenv, &out, &errOut)
	r := Result{code, out.String(), errOut.String()}
	reveal := false
	for _, a := range args {
		reveal = reveal || a == "--reveal"
	}
	if !reveal {
		c.mu.Lock()
		c.masked = append(c.masked, r)
		c.mu.Unlock()
	}
	for _, s := range append([]string{AppSecret}, c.secretValues(reveal)...) {
		if s != "" && (strings.Contains(r.Stdout, s) || strings.Contains(r.Stderr, s)) {
			c.T.Errorf("wechatconf %q printed a secret or token:\nstdout: %s\nstderr: %s", args, r.Stdout, r.Stderr)
		}
	}
	return r
}

func (c *CLI) secretValues(reveal bool) []string {
	if reveal || c.Secrets == nil {
		return nil
	}
	return c.Secrets()
}

// Want fails the test unless r exited with code.
func (c *CLI) Want(r Result, code int) {
	c.T.Helper()
	if r.Code != code {
		c.T.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.Code, code, r.Stdout, r.Stderr)
	}
}
