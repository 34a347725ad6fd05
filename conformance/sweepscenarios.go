package conformance

import "time"

// scenario is one scenario of the sweep: a short story of WeChat and a
// vendor's processes, told through the steps of run.
type scenario struct {
	name string
	// procs are the vendor's processes, "A" (which receives every push
	// and redirect, and is the child of the kill mode) and maybe "B".
	procs []string
	// platform is the vendor platform the processes run on (the zero
	// value: Open Platform).
	platform platform
	// authorizers are the tenants: authorizers' appids, or corp ids.
	authorizers []string
	component   bool // the platform token (and ticket) is called at rest
	oa          bool // the Official Account's token is called at rest
	rotate      bool // WeChat answers a new refresh token on every refresh
	// pushes: the processes have a core.Dedup (vendorConfig.Push), and
	// invariants 6–8 are checked on the history of its pushes.
	pushes bool
	// want is how many tokens WeChat issues in the scenario and its rest
	// without a fault: one per refresh cycle.
	want fetchCounts
	// setup runs through the observer, before the processes start: no
	// fault touches it and its store calls are not counted.
	setup func(r *run)
	// play is the scenario proper: its store calls are the fault points.
	play func(r *run)
}

// sweepScenarios are the scenarios of Sweep, in order.
var sweepScenarios = []*scenario{
	{
		// A first authorization, delivered twice by the redirect (the
		// merchant's browser reloads it) and twice by the authorized push
		// (WeChat re-sends it, the first answer having been lost).
		name: "FirstAuthorization", procs: []string{"A"}, authorizers: []string{sweepAuth1}, component: true,
		want:  fetchCounts{component: 2, authorizer: map[string]int{sweepAuth1: 2}},
		setup: func(r *run) { r.setupPush(r.ticket()) },
		play: func(r *run) {
			code := r.authorizeAt(sweepAuth1)
			p := r.authorizedPush(sweepAuth1, code)
			r.redirect(sweepAuth1, code)
			r.advance(2 * time.Second)
			r.deliver(p)
			r.advance(2 * time.Second)
			r.redirect(sweepAuth1, code)
			r.deliver(p)
			r.access("A", sweepAuth1)
		},
	},
	{
		// An authorizer token refreshed once it expired, WeChat echoing
		// the refresh token.
		name: "Refresh", procs: []string{"A"}, authorizers: []string{sweepAuth1}, component: true,
		want:  fetchCounts{component: 2, authorizer: map[string]int{sweepAuth1: 2}},
		setup: setupAuthorized(sweepAuth1),
		play:  playRefresh,
	},
	{
		// The same, WeChat rotating the refresh token on every refresh:
		// the new one must be stored before the old one is lost.
		name: "RefreshRotated", procs: []string{"A"}, authorizers: []string{sweepAuth1}, component: true, rotate: true,
		want:  fetchCounts{component: 2, authorizer: map[string]int{sweepAuth1: 2}},
		setup: setupAuthorized(sweepAuth1),
		play:  playRefresh,
	},
	{
		// Verify-ticket pushes duplicated and out of order: the newest
		// by CreateTime stays.
		name: "VerifyTickets", procs: []string{"A"}, component: true,
		want: fetchCounts{component: 2},
		play: playTickets,
	},
	{
		// A withdrawal, then a re-authorization, each push delivered once
		// and in order.
		name: "Reauthorize", procs: []string{"A"}, authorizers: []string{sweepAuth1}, component: true,
		want:  fetchCounts{component: 1, authorizer: map[string]int{sweepAuth1: 2}},
		setup: setupAuthorized(sweepAuth1),
		play: func(r *run) {
			r.deliver(r.withdraw(sweepAuth1))
			r.access("A", sweepAuth1) // withdrawn
			r.advance(20 * time.Second)
			r.deliver(r.authorizedPush(sweepAuth1, r.authorizeAt(sweepAuth1)))
			r.access("A", sweepAuth1)
			r.api("A", sweepAuth1)
		},
	},
	{
		// A withdrawal, then a re-authorization, with the pushes late,
		// duplicated and reordered: authorizer 1 withdraws at T0,
		// authorizes again at T0+20s, and the T0 push comes again at
		// T0+30s; authorizer 2's withdrawal (T0+30s) and re-authorization
		// (T0+40s) arrive newest first, then it withdraws for good
		// (T0+50s) and the T0+40s push comes again.
		name: "WithdrawReauthorize", procs: []string{"A"}, authorizers: []string{sweepAuth1, sweepAuth2}, component: true,
		want:  fetchCounts{component: 1, authorizer: map[string]int{sweepAuth1: 2, sweepAuth2: 1}},
		setup: setupTenants,
		play:  playWithdrawReauthorize,
	},
	{
		// Two processes refreshing one authorizer at once, WeChat rotating
		// its refresh token: one fetch, both served.
		name: "TwoProcesses", procs: []string{"A", "B"}, authorizers: []string{sweepAuth1}, component: true, rotate: true,
		want:  fetchCounts{component: 2, authorizer: map[string]int{sweepAuth1: 2}},
		setup: setupAuthorized(sweepAuth1),
		play:  playTwoProcesses,
	},
	{
		// The Official Account's classic token refreshed by two processes
		// at once, the first one's lease running out during its fetch:
		// its caller gets the token that replaced it.
		name: "LostLease", procs: []string{"A", "B"}, oa: true,
		want: fetchCounts{oa: 4},
		play: func(r *run) {
			r.oa("A")
			r.advance(restAdvance)
			r.oaLostLease()
			r.oaAPI("A")
			r.oaAPI("B")
		},
	},
	{
		// Pushes delivered as WeChat does to two processes, each with a
		// core.Dedup on the store: a message whose handler fails once, an
		// event, two different events of one user in one second, and the
		// event again after its answer was lost. Each push is handled
		// once (invariants 6–8).
		name: "Pushes", procs: []string{"A", "B"}, pushes: true,
		play: playPushes,
	},

	// The WeCom vendor's scenarios: the same steps and invariants on a
	// wecomvendor.Suite, fewer of them (the mechanism is the one Open
	// Platform's scenarios sweep; these sweep what differs: a push
	// without the corp id, the suite_ticket's 30 minutes, get_corp_token
	// and the custom-developed app's gettoken and reset).
	{
		// A corp installs the third-party app: create_auth (which names
		// no corp), the redirect of the same code (an install started on
		// the vendor's site), create_auth again (WeCom's re-send), then
		// change_auth, which changes nothing.
		name: "WeComInstall", platform: wecomSuite, procs: []string{"A"}, authorizers: []string{sweepCorp1}, component: true,
		want:  fetchCounts{component: 2, authorizer: map[string]int{sweepCorp1: 2}},
		setup: func(r *run) { r.setupPush(r.ticket()) },
		play: func(r *run) {
			code := r.authorizeAt(sweepCorp1)
			p := r.authorizedPush(sweepCorp1, code)
			r.deliver(p)
			r.advance(2 * time.Second)
			r.redirect(sweepCorp1, code)
			r.deliver(p)
			r.deliver(r.changeAuth(sweepCorp1))
			r.api("A", sweepCorp1)
		},
	},
	{
		// WithdrawReauthorize on WeCom: cancel_auth and re-install with
		// the pushes late, duplicated and reordered; a late create_auth,
		// whose code WeCom refuses as used, is found through the code
		// index or ignored as older.
		name: "WeComCancelReinstall", platform: wecomSuite, procs: []string{"A"}, authorizers: []string{sweepCorp1, sweepCorp2}, component: true,
		want:  fetchCounts{component: 1, authorizer: map[string]int{sweepCorp1: 2, sweepCorp2: 1}},
		setup: setupTenants,
		play:  playWithdrawReauthorize,
	},
	{
		// A custom-developed app's permanent_code reset (the vendor's
		// "重新获取secret"): the reset_permanent_code push, delivered
		// twice, brings the new code, which voids the old at WeCom: the
		// new one must be stored and never lost.
		name: "WeComResetPermanentCode", platform: wecomCustom, procs: []string{"A"}, authorizers: []string{sweepCorp1}, component: true,
		want:  fetchCounts{component: 1, authorizer: map[string]int{sweepCorp1: 3}},
		setup: setupTenants,
		play: func(r *run) {
			r.api("A", sweepCorp1)
			r.advance(time.Second)
			p := r.resetSecret(sweepCorp1)
			r.deliver(p)
			r.deliver(p)
			r.advanceRest()
			r.api("A", sweepCorp1)
		},
	},
	{
		// suite_ticket pushes duplicated and out of order: the newest by
		// TimeStamp stays.
		name: "WeComSuiteTickets", platform: wecomSuite, procs: []string{"A"}, component: true,
		want: fetchCounts{component: 2},
		play: func(r *run) { playTicketsShort(r) },
	},
	{
		// Two processes refreshing one corp's token at once: one fetch,
		// both served.
		name: "WeComTwoProcesses", platform: wecomSuite, procs: []string{"A", "B"}, authorizers: []string{sweepCorp1}, component: true,
		want:  fetchCounts{component: 2, authorizer: map[string]int{sweepCorp1: 2}},
		setup: setupTenants,
		play:  playTwoProcesses,
	},
}

// playTickets: ticket pushes duplicated and out of order.
func playTickets(r *run) {
	p1 := playTicketsShort(r)
	r.advance(time.Minute)
	p3 := r.ticket()
	r.deliver(p1) // replayed again
	r.deliver(p3)
	r.deliver(p3)
}

// playTicketsShort: two ticket pushes, the newer first, the older late,
// the newer again, then the platform token; it returns the older push.
func playTicketsShort(r *run) push {
	p1 := r.ticket()
	r.advance(time.Minute)
	p2 := r.ticket()
	r.deliver(p2)
	r.deliver(p1) // older, late
	r.deliver(p2) // duplicated
	r.component("A")
	return p1
}

// playWithdrawReauthorize: a withdrawal, then a re-authorization, with
// the pushes late, duplicated and reordered, for the scenario's two
// tenants (see WithdrawReauthorize).
func playWithdrawReauthorize(r *run) {
	t1, t2 := r.sc.authorizers[0], r.sc.authorizers[1]
	u1 := r.withdraw(t1)
	r.deliver(u1)
	r.access("A", t1) // withdrawn
	r.advance(20 * time.Second)
	c2 := r.authorizeAt(t1)
	a2 := r.authorizedPush(t1, c2)
	r.redirect(t1, c2)
	r.deliver(a2) // the same authorization, second delivery
	r.access("A", t1)
	r.advance(10 * time.Second)
	r.deliver(u1) // the T0 push again, at T0+30s
	r.access("A", t1)

	u2 := r.withdraw(t2)
	r.advance(10 * time.Second)
	c3 := r.authorizeAt(t2)
	a3 := r.authorizedPush(t2, c3)
	r.deliver(a3) // the newer first
	r.deliver(u2) // then the older
	r.access("A", t2)
	r.advance(10 * time.Second)
	u3 := r.withdraw(t2)
	r.deliver(u3)
	r.deliver(a3) // an older authorization after the withdrawal
	r.deliver(u3)
	r.api("A", t2) // withdrawn
}

// playTwoProcesses: two processes refreshing the scenario's tenant at
// once, then both calling the API with the token.
func playTwoProcesses(r *run) {
	t1 := r.sc.authorizers[0]
	r.advanceRest()
	r.stepDo("A and B AccessToken of "+t1+" at once", func() {
		together(
			func() { r.callAuthorizer("A", t1, callerAttempts, false) },
			func() { r.callAuthorizer("B", t1, callerAttempts, false) },
		)
	})
	r.api("A", t1)
	r.api("B", t1)
}

// setupTenants stores a ticket and authorizes every tenant of the
// scenario, through the observer.
func setupTenants(r *run) {
	r.setupPush(r.ticket())
	for _, t := range r.sc.authorizers {
		r.setupAuthorize(t)
	}
}

// setupAuthorized stores a ticket and authorizes appid, through the
// observer.
func setupAuthorized(appid string) func(r *run) {
	return func(r *run) {
		r.setupPush(r.ticket())
		r.setupAuthorize(appid)
	}
}

// playRefresh moves the clock past the expiry of the authorizer's token
// (and the component token's), then asks for it and calls the API with it.
func playRefresh(r *run) {
	r.advanceRest()
	r.access("A", sweepAuth1)
	r.api("A", sweepAuth1)
}
