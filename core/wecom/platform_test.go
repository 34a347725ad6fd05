package wecom_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecom"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Every event of a WeCom app (its access_token, its tickets, a retried
// call) carries platform "wecom": what tells its access_token from an
// Official Account's in logs and metrics.
func TestEventsCarryPlatform(t *testing.T) {
	s := newWeCom(t)
	var logs syncBuffer
	a := newApp(t, s, nil, agent1, secret1, func(c *wecom.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := t.Context()
	s.InjectFault(wxtest.PathWeComToken, wxtest.HTTPStatus(502), 1) // an EventRetry
	if _, err := a.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AgentTicket(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.AccessTokenCredential().Platform(); got != core.PlatformWeCom {
		t.Errorf("AccessTokenCredential().Platform() = %q, want %q", got, core.PlatformWeCom)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		msg, _ := r["msg"].(string)
		if !strings.HasPrefix(msg, "wechatconf.") {
			continue
		}
		seen[msg] = true
		if r["platform"] != string(core.PlatformWeCom) {
			t.Errorf("%s (credential %v): platform %v, want %q", msg, r["credential"], r["platform"], core.PlatformWeCom)
		}
	}
	if !seen[core.EventFetched] || !seen[core.EventRetry] {
		t.Errorf("events %v, want %s and %s", seen, core.EventFetched, core.EventRetry)
	}
}
