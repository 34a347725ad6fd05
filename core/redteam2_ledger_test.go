package core_test

// Red team 2 (issue 25 §2): the ledger's outside-fetch detection beyond
// clock skew.

import (
	"log/slog"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// On stable_token a rejected token that the normal call hands back is
// WeChat's own doing (a leaked or revoked token: normal mode returns the
// current token, and an outside force_refresh would have made a new one
// current): the fleet forces a refresh, and no outside fetch is named.
// Before, the forced fetch carried the rejection's suspicion and named
// "someone outside the fleet forced a new token" — the very fetch the
// fleet had just made itself.
func TestRedteam2StableHandedBackRejectionIsNoOutsideFetch(t *testing.T) {
	s := newServer(t)
	var lg jsonLog
	a := newConf(t, s, func(c *core.Config) { c.Instance = "web-a/1"; c.Logger = lg.logger(slog.LevelInfo) })
	ctx := t.Context()
	t1, err := a.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Minute)
	s.Reject(t1.Value) // APIs answer 40001; the normal stable_token call hands it back
	if err := callAPI(ctx, a); err != nil {
		t.Fatal(err)
	}
	if n := s.Calls(wxtest.PathStableToken); n != 3 {
		t.Fatalf("stable_token calls = %d; want 3 (first, handed back, forced)", n)
	}
	flush(t, a)
	l, err := a.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range l.Entries {
		if e.Outside != nil {
			t.Errorf("record %+v names an outside fetch (evidence %+v); the normal call handed the rejected token back", e, *e.Outside)
		}
	}
	if ev := lg.records(t, core.EventOutsideFetch); len(ev) != 0 {
		t.Errorf("%d %s events, want none: %v", len(ev), core.EventOutsideFetch, ev)
	}
}
