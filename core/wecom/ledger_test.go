package wecom_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecom"
)

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WeCom's gettoken hands every caller the same token until it expires: no
// one's fetch kills another's token, so a token WeCom revokes early (it
// does, on its own schedule) is recorded in the fetch ledger as a
// rejection and never named an outside fetch.
func TestRevocationIsNotAnOutsideFetch(t *testing.T) {
	s := newWeCom(t)
	store := core.NewMemoryStore()
	var logs lockedBuffer
	a := newApp(t, s, store, agent1, secret1, func(c *wecom.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Instance = "web-1/1"
	})
	ctx := t.Context()
	old, err := a.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Revoke(old.Value)
	if err := callAgent(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := a.AccessTokenCredential().FlushLedger(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := core.ReadLedger(ctx, store, a.AccessTokenCredential().Key())
	if err != nil {
		t.Fatal(err)
	}
	last, _ := l.Last()
	if len(l.Entries) != 2 || last.Reason != core.ReasonRejected || last.Outside != nil {
		t.Fatalf("ledger %+v: want the replacement recorded, naming nobody", l.Entries)
	}
	if strings.Contains(logs.String(), core.EventOutsideFetch) {
		t.Fatalf("a revocation was named an outside fetch:\n%s", logs.String())
	}
}
