package openplatform_test

import (
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/core"
)

// The redirect of a code whose push was applied with its record's write
// held, delivered after WeChat withdrew the authorization: it found no
// record of the code, exchanged it again (WeChat still exchanges a code
// within its life) and dated the grant by this process's clock — after
// the withdrawal — so the store said "authorized" with a refresh token
// WeChat had voided. The redirect is now dated no later than the code's
// push (the code index keeps its time), and an authorization WeChat made
// before a withdrawal it made is ignored. It happened on a loaded machine
// in TestRedteam2Permutations when A2's write ran out of its 30 ms.
func TestRedirectOfAHeldAuthorizationAfterTheWithdrawal(t *testing.T) {
	for _, strict := range []bool{false, true} {
		pc := permCase{order: []permEvent{evA2, evW2, evA1, evR2, evW}, lazy: true, win: [2]int{0, 1}, withW2: true, strict: strict}
		if why := runPerm(t, pc); why != "" {
			t.Errorf("%s: %s", pc.name(), why)
		}
	}
}

// The code index's entry keeps the form an earlier version reads
// ("<tenant>\n<secret>", then "<tenant>\n"): the push's time, which dates
// a later delivery of the code, is under a key of its own ("…/at"), so a
// process of the earlier version in a rolling upgrade never takes
// "<secret>\n<time>" for a secret (red team).
func TestCodeIndexEntryKeepsTheEarlierForm(t *testing.T) {
	ch := newChain(t)
	c := ch.component(t)
	ch.pushTicket(t, c)
	ch.authorize(t, c, merchant)
	keys, err := ch.store.(core.KeyLister).ListKeys(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	entries, times := 0, 0
	for _, k := range keys {
		if !strings.Contains(k, "/authorization_code/") {
			continue
		}
		v, err := ch.store.Get(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(k, "/at"):
			times++
		case v.Value != merchant+"\n":
			t.Errorf("code index entry %s = %q, want %q (the earlier form)", k, v.Value, merchant+"\n")
		default:
			entries++
		}
	}
	if entries != 1 || times != 1 {
		t.Errorf("%d entries and %d times in the code index, want 1 and 1", entries, times)
	}
}
