package core_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// jsonLog is a slog JSON logger into a buffer, and the records it holds.
type jsonLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *jsonLog) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(lockedWriter{&l.mu, &l.buf}, &slog.HandlerOptions{Level: level}))
}

// records returns the records whose message is event.
func (l *jsonLog) records(t *testing.T, event string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == event {
			out = append(out, r)
		}
	}
	return out
}

// Two instances sharing a store: one logs the fetch, the other the
// adoption, so logs count WeChat calls.
func TestEventsCountFetches(t *testing.T) {
	s := newServer(t)
	store := core.NewMemoryStore()
	var la, lb jsonLog
	a := newConf(t, s, func(c *core.Config) { c.Store = store; c.Logger = la.logger(slog.LevelDebug) })
	b := newConf(t, s, func(c *core.Config) { c.Store = store; c.Logger = lb.logger(slog.LevelDebug) })
	ctx := t.Context()
	if _, err := a.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	fetched := append(la.records(t, core.EventFetched), lb.records(t, core.EventFetched)...)
	if len(fetched) != 1 || tokenCalls(s) != 1 {
		t.Fatalf("%d %s events for %d token calls, want 1 and 1", len(fetched), core.EventFetched, tokenCalls(s))
	}
	f := fetched[0]
	if f["credential"] != "access_token" || f["reason"] != "expiry" || f["forced"] != false || f["latency"] == nil || f["lock_wait"] == nil || f["expires_at"] == nil {
		t.Errorf("%s attributes = %v", core.EventFetched, f)
	}
	if n := len(lb.records(t, core.EventAdopted)); n != 1 {
		t.Errorf("b logged %d %s events, want 1", n, core.EventAdopted)
	}

	// A rejection, a forced refresh, a limit: each its own event.
	bad, _ := a.AccessToken(ctx)
	s.Reject(bad.Value)
	if err := callAPI(ctx, a); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{core.EventRejected, core.EventForced} {
		if n := len(la.records(t, ev)); n != 1 {
			t.Errorf("%d %s events, want 1", n, ev)
		}
	}
	if _, err := a.ForceRefreshAccessToken(ctx, ""); err == nil {
		t.Fatal("a second forced refresh inside the interval was made")
	}
	if r := la.records(t, core.EventLimited); len(r) != 1 || r[0]["limit"] != "ForceRefreshInterval" {
		t.Errorf("%s events = %v, want one for ForceRefreshInterval", core.EventLimited, r)
	}
}

// Without a Logger, failures reach slog.Default() and the chatter does not.
func TestNilLoggerShowsFailures(t *testing.T) {
	var l jsonLog
	old := slog.Default()
	slog.SetDefault(l.logger(slog.LevelDebug))
	t.Cleanup(func() { slog.SetDefault(old) })

	s := newServer(t)
	c := newConf(t, s, nil)
	if _, err := c.AccessToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.InjectFault(wxtest.PathTicket, wxtest.Errcode(45009, "reach max api daily quota limit rid: 1"), 1)
	if _, err := c.JSAPITicket(t.Context()); !core.IsQuotaExceeded(err) {
		t.Fatalf("JSAPITicket = %v, want 45009", err)
	}
	if n := len(l.records(t, core.EventFetchFailed)); n != 1 {
		t.Errorf("%d %s events reached slog.Default(), want 1", n, core.EventFetchFailed)
	}
	if n := len(l.records(t, core.EventFetched)); n != 0 {
		t.Errorf("%d Info events reached slog.Default(), want 0", n)
	}
}
