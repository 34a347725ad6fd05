package openplatform_test

import "testing"

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
