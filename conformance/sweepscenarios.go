package conformance

import "time"

// scenario is one scenario of the sweep: a short story of WeChat and a
// vendor's processes, told through the steps of run.
type scenario struct {
	name string
	// procs are the vendor's processes, "A" (which receives every push
	// and redirect, and is the child of the kill mode) and maybe "B".
	procs       []string
	authorizers []string
	component   bool // the third-party platform's credentials are called at rest
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
		play: func(r *run) {
			p1 := r.ticket()
			r.advance(time.Minute)
			p2 := r.ticket()
			r.deliver(p2)
			r.deliver(p1) // older, late
			r.deliver(p2) // duplicated
			r.component("A")
			r.advance(time.Minute)
			p3 := r.ticket()
			r.deliver(p1) // replayed again
			r.deliver(p3)
			r.deliver(p3)
		},
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
		want: fetchCounts{component: 1, authorizer: map[string]int{sweepAuth1: 2, sweepAuth2: 1}},
		setup: func(r *run) {
			r.setupPush(r.ticket())
			r.setupAuthorize(sweepAuth1)
			r.setupAuthorize(sweepAuth2)
		},
		play: func(r *run) {
			u1 := r.withdraw(sweepAuth1)
			r.deliver(u1)
			r.access("A", sweepAuth1) // withdrawn
			r.advance(20 * time.Second)
			c2 := r.authorizeAt(sweepAuth1)
			a2 := r.authorizedPush(sweepAuth1, c2)
			r.redirect(sweepAuth1, c2)
			r.deliver(a2) // the same authorization, second delivery
			r.access("A", sweepAuth1)
			r.advance(10 * time.Second)
			r.deliver(u1) // the T0 push again, at T0+30s
			r.access("A", sweepAuth1)

			u2 := r.withdraw(sweepAuth2)
			r.advance(10 * time.Second)
			c3 := r.authorizeAt(sweepAuth2)
			a3 := r.authorizedPush(sweepAuth2, c3)
			r.deliver(a3) // the newer first
			r.deliver(u2) // then the older
			r.access("A", sweepAuth2)
			r.advance(10 * time.Second)
			u3 := r.withdraw(sweepAuth2)
			r.deliver(u3)
			r.deliver(a3) // an older authorization after the withdrawal
			r.deliver(u3)
			r.api("A", sweepAuth2) // withdrawn
		},
	},
	{
		// Two processes refreshing one authorizer at once, WeChat rotating
		// its refresh token: one fetch, both served.
		name: "TwoProcesses", procs: []string{"A", "B"}, authorizers: []string{sweepAuth1}, component: true, rotate: true,
		want:  fetchCounts{component: 2, authorizer: map[string]int{sweepAuth1: 2}},
		setup: setupAuthorized(sweepAuth1),
		play: func(r *run) {
			r.advance(restAdvance)
			r.stepDo("A and B AccessToken of "+sweepAuth1+" at once", func() {
				together(
					func() { r.callAuthorizer("A", sweepAuth1, callerAttempts, false) },
					func() { r.callAuthorizer("B", sweepAuth1, callerAttempts, false) },
				)
			})
			r.api("A", sweepAuth1)
			r.api("B", sweepAuth1)
		},
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
}

// setupAuthorized stores a verify ticket and authorizes appid, through
// the observer.
func setupAuthorized(appid string) func(r *run) {
	return func(r *run) {
		r.setupPush(r.ticket())
		r.setupAuthorize(appid)
	}
}

// playRefresh moves the clock past the expiry of the authorizer's token
// (and the component token's), then asks for it and calls the API with it.
func playRefresh(r *run) {
	r.advance(restAdvance)
	r.access("A", sweepAuth1)
	r.api("A", sweepAuth1)
}
