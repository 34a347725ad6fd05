package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// TestOutsideText tests the advice of an OUTSIDE FETCH line: on the
// classic token, stable_token or the token server; on stable_token (the
// token was killed by a force_refresh elsewhere), finding who forces.
func TestOutsideText(t *testing.T) {
	o := &core.OutsideFetch{Rejected: "0123456789ab", FetchedBy: "web-1/7", FetchedAt: time.Date(2026, 12, 5, 1, 2, 3, 0, time.UTC), Age: 1500 * time.Millisecond}
	got := outsideText(o)
	for _, want := range []string{"token 0123456789ab", "fetched by web-1/7 at 2026-12-05T01:02:03Z", "rejected 2s later", "Use stable_token", "token server"} {
		if !strings.Contains(got, want) {
			t.Errorf("outsideText(classic) = %q, want %q in it", got, want)
		}
	}
	o.Forced, o.Age, o.Code = true, 250*time.Microsecond, 40001
	got = outsideText(o)
	for _, want := range []string{"rejected 0s later (errcode 40001)", "force_refresh", "Find who calls"} {
		if !strings.Contains(got, want) {
			t.Errorf("outsideText(forced elsewhere) = %q, want %q in it", got, want)
		}
	}
	if strings.Contains(got, "Use stable_token") {
		t.Errorf("outsideText(forced elsewhere) = %q advises stable_token, which the fleet uses already", got)
	}
	if s := share(1000, 2000); s != "50.0% of 2000" {
		t.Errorf("share(1000, 2000) = %q", s)
	}
	if s := share(3, 0); s != "-" {
		t.Errorf("share(3, 0) = %q, want - (no limit known)", s)
	}
}
