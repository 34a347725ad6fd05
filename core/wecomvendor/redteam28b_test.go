package wecomvendor_test

import (
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core/wecomvendor"
)

// Red-team test (issue 27) of Authorize's "an authorization WeChat made
// before a withdrawal it made is ignored": the record's withdrawal is not
// always WeChat's — Suite.Cancel (the operator's) dates it by this
// process's clock. A process whose clock runs 5 minutes ahead of WeCom's
// cancels a corp; the corp uninstalls and installs again within those 5
// minutes (WeCom's times): the re-install's create_auth, dated by WeCom
// before the operator's "now", is ignored after its exchange — the
// permanent_code WeCom gave once is dropped, and the corp, installed at
// WeCom, is told to install again. Before the change the exchange made
// after the withdrawal was read replaced it, whatever the clocks said.
func TestRedteam28bReinstallAfterAnOperatorCancelFromAClockAhead(t *testing.T) {
	ch := newChain(t)
	a := ch.suite(t, suiteID)
	ahead := ch.suite(t, suiteID, func(c *wecomvendor.Config) {
		c.Now = func() time.Time { return ch.s.Now().Add(5 * time.Minute) }
	})
	ch.pushTicket(t, a)
	ch.install(t, a, corpA)
	ch.s.Advance(time.Second)
	if err := ahead.Cancel(t.Context(), corpA); err != nil {
		t.Fatal(err)
	}
	ch.s.Advance(time.Second)
	ch.s.Uninstall(suiteID, corpA)
	q, body, err := ch.s.CancelAuthPush(suiteID, corpA, pushToken, pushKey)
	deliver(t, a, q, body, err)
	ch.s.Advance(time.Minute)
	code := ch.s.Install(suiteID, corpA)
	q, body, err = ch.s.CreateAuthPush(suiteID, code, pushToken, pushKey)
	ev := deliver(t, a, q, body, err)
	if ev.Applied != wecomvendor.AppliedAuthorized {
		t.Errorf("the re-install's create_auth: %q, want %q", ev.Applied, wecomvendor.AppliedAuthorized)
	}
	pc, err := a.PermanentCode(t.Context(), corpA)
	if err != nil || !ch.s.PermanentCodeValid(suiteID, corpA, pc.Value) {
		t.Fatalf("after the re-install: permanent_code valid at WeCom %v, %v; want the one WeCom gave (a corp that installed again is told to install again)", err == nil && ch.s.PermanentCodeValid(suiteID, corpA, pc.Value), err)
	}
	if err := ch.callAPI(t.Context(), a, corpA); err != nil {
		t.Fatal(err)
	}
}
