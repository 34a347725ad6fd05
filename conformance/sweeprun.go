package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecomvendor"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	// pushDeliveries is how many times a push is delivered at most: once,
	// and WeChat's three re-sends of a push not answered "success".
	pushDeliveries = 4
	// callerAttempts is how many times a caller makes a call that failed.
	callerAttempts = 3
	// restAdvance moves the simulated clock past the expiry of every token
	// (WeChat's 2 h, plus ten minutes), well within a verify ticket's 12 h.
	restAdvance = wxtest.DefaultExpiresIn + 10*time.Minute
	// callTimeout bounds each call of a run but those of the hang mode.
	callTimeout = 30 * time.Second
)

// sweepEpoch is where the simulated clock of every run starts: a whole
// second, as the pushes' CreateTime is in seconds.
var sweepEpoch = time.Date(2026, time.March, 2, 1, 0, 0, 0, time.UTC)

// fetchCounts is how many tokens a run had WeChat issue.
type fetchCounts struct {
	component  int
	authorizer map[string]int
	oa         int
}

// more reports whether c has any kind of token issued more often than b.
func (c fetchCounts) more(b fetchCounts) bool {
	if c.component > b.component || c.oa > b.oa {
		return true
	}
	for appid, n := range c.authorizer {
		if n > b.authorizer[appid] {
			return true
		}
	}
	return false
}

// violation is one broken invariant of a run.
type violation struct {
	inv string // "1"…"5", "rest" or "baseline"
	// what names the broken thing the same way in every run of a
	// scenario, so that a faulted run can tell what its fault broke from
	// what the baseline breaks too.
	what string
	msg  string
}

func (v violation) key() string { return v.inv + "\x00" + v.what }

var invNames = map[string]string{
	"baseline": "the scenario without a fault",
	"rest":     "the scenario reaches rest",
	"1":        "invariant 1, the refresh token WeChat honours is stored",
	"2":        "invariant 2, no older value replaces a newer one",
	"3":        "invariant 3, no withdrawn authorizer is served a token",
	"4":        "invariant 4, no caller error while a valid token is stored",
	"5":        "invariant 5, at most one fetch per cycle beyond the fault's own",
	"6":        "invariant 6, every push handled at least once",
	"7":        "invariant 7, no push handled twice but after a fault the Dedup documents",
	"8":        "invariant 8, every delivery's outcome agrees with the handlers' runs",
}

func (v violation) String() string { return invNames[v.inv] + ": " + v.msg }

// authEvent is one change of an authorization at WeChat.
type authEvent struct {
	at        time.Time
	withdrawn bool
}

// authzTrack is what a run knows of one authorizer: WeChat's side, and
// which of its events the vendor took (a push answered "success", a
// redirect that returned).
type authzTrack struct {
	authorized bool
	events     []authEvent
	codes      map[string]time.Time // authorization code → when the merchant authorized
	taken      []authEvent
	// revokedFor holds the processes that must answer its AccessToken
	// with core.ErrRevoked: those that took the newest withdrawal, or
	// started after it was taken.
	revokedFor map[string]bool
}

// newest returns the newest event the vendor took, by WeChat's time.
func (a *authzTrack) newest() (authEvent, bool) {
	var n authEvent
	ok := false
	for _, e := range a.taken {
		if !ok || !e.at.Before(n.at) {
			n, ok = e, true
		}
	}
	return n, ok
}

// latest returns the time of WeChat's latest event of the kind withdrawn.
func (a *authzTrack) latest(withdrawn bool) (time.Time, bool) {
	for _, e := range slices.Backward(a.events) {
		if e.withdrawn == withdrawn {
			return e.at, true
		}
	}
	return time.Time{}, false
}

// run is one run of a scenario: its simulated WeChat, its vendor
// processes over the store, the fault it injects (none for the baseline),
// and what it found.
type run struct {
	t        testing.TB
	h        Harness
	sc       *scenario
	mode     faultMode
	k        int
	runName  string // the test that called Sweep, for the kill mode's child
	ctx      context.Context
	timeout  time.Duration // each call's
	cfg      vendorConfig
	wechat   *wxtest.Server
	plan     *faultPlan
	obs      tenants // the observer: the platform over the store, no fault
	startCnt fetchCounts
	base     *fetchCounts // what the baseline had WeChat issue; nil in the baseline

	mu           sync.Mutex
	vendors      map[string]vendor
	child        *childVendor
	found        []violation
	step         string
	steps        int
	slowest      time.Duration
	authz        map[string]*authzTrack
	served       map[string]int
	ticketAt     time.Time // the newest ticket expiry the store showed
	newestTicket time.Time // the expiry of the newest ticket push taken
	rtSeen       map[string][]string
	rtEpoch      map[string]time.Time
	epoch        map[string]time.Time
	inconclusive bool
	notReached   bool
	killed       bool
	notes        []string
	pushes       []pushSpec // the Pushes scenario's
	pushRes      pushOutcome
}

// runResult is what a run reports to the sweep.
type runResult struct {
	found        []violation
	calls        []storeCall // the calls of the scenario (not of its rest)
	hit          *storeCall
	notReached   bool
	inconclusive bool
	slowest      time.Duration
	counts       fetchCounts
	notes        []string
	late         int // store calls no fault hit that ran out their ctx
	lockLost     int // Refresh calls that lost their lock to the lease
	push         pushOutcome
}

// slow says what, in a run that broke an invariant, a busy machine may
// explain instead of the fault: a call that ran out its ctx, a lock lost
// to the lease ("" when nothing did).
func (res *runResult) slow() string {
	var s []string
	if res.inconclusive {
		s = append(s, "a caller's RefreshTimeout ran out at rest")
	}
	if res.late > 0 {
		s = append(s, fmt.Sprintf("%d store calls ran out their ctx", res.late))
	}
	if res.lockLost > 0 {
		s = append(s, fmt.Sprintf("%d Refresh calls lost their lock to the lease", res.lockLost))
	}
	return strings.Join(s, ", ")
}

func (r *run) baseline() bool { return r.mode == faultNone }

// violate records a violation of inv; what names it (see violation).
func (r *run) violate(inv, what, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.step != "" {
		msg += " [step " + r.step + "]"
	}
	r.found = append(r.found, violation{inv: inv, what: what, msg: msg})
}

// callCtx returns the context of one call.
func (r *run) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.ctx, r.timeout)
}

// play runs the scenario and its rest, and returns what the run found.
func (r *run) play() *runResult {
	r.authz = map[string]*authzTrack{}
	for _, appid := range r.sc.authorizers {
		r.authz[appid] = &authzTrack{codes: map[string]time.Time{}, revokedFor: map[string]bool{}}
	}
	r.served, r.rtSeen, r.rtEpoch, r.epoch = map[string]int{}, map[string][]string{}, map[string]time.Time{}, map[string]time.Time{}
	r.wechat = wxtest.New(wxtest.Options{
		AppID: sweepOA, AppSecret: sweepOASecret, Start: sweepEpoch,
		Components: []wxtest.Component{{AppID: sweepComponent, AppSecret: sweepComponentSecret}},
	})
	defer r.wechat.Close()
	r.sc.platform.declare(r.wechat)
	r.cfg.URL, r.cfg.Platform = r.wechat.URL, r.sc.platform
	r.cfg.Prefix = fmt.Sprintf("%ssw%08x", r.h.KeyPrefix, rand.Uint32())
	if r.sc.pushes {
		r.cfg.Push = r.pushConfig()
	}

	obsStore := r.h.NewStore(r.t)
	var err error
	r.obs, err = newTenants(tenantsConfig{platform: r.sc.platform, store: obsStore, prefix: r.cfg.Prefix, url: r.wechat.URL, now: r.wechat.Now})
	if err != nil {
		r.violate("baseline", "new", "the observer's %v: %v", r.sc.platform, err)
		return r.result()
	}
	if r.sc.setup != nil {
		r.sc.setup(r)
	}
	if r.wechat.Now().Equal(sweepEpoch) {
		r.wechat.Advance(time.Second)
	}
	r.startCnt = r.counts()
	r.wechat.RotateRefreshTokens(r.sc.rotate)

	r.vendors = map[string]vendor{}
	for _, role := range r.sc.procs {
		if err := r.startVendor(role); err != nil {
			r.violate("baseline", "start", "starting process %s: %v", role, err)
			r.closeVendors()
			return r.result()
		}
	}
	defer r.closeVendors()
	r.plan.arm(true)
	r.sc.play(r)
	r.plan.arm(false)
	r.rest()
	return r.result()
}

func (r *run) result() *runResult {
	if r.child != nil {
		if msg := r.child.died.Load(); msg != nil {
			r.violate("rest", "child died", "%s", *msg)
		}
	}
	calls, _, hit := r.plan.snapshot()
	if r.mode == faultKill {
		r.plan.mu.Lock()
		for _, c := range r.plan.childCalls {
			if c.Seq == r.k {
				hit = &c
			}
		}
		r.plan.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if hit == nil && r.mode != faultNone && r.wechat != nil {
		r.notReached = true // the k-th call did not happen, or (lost) was no Refresh
	}
	r.plan.mu.Lock()
	late, lockLost := r.plan.late, r.plan.lockLost
	r.plan.mu.Unlock()
	res := &runResult{found: r.found, calls: calls, hit: hit, notReached: r.notReached, inconclusive: r.inconclusive, slowest: r.slowest, notes: r.notes,
		late: late, lockLost: lockLost, push: r.pushRes}
	if r.wechat != nil {
		now := r.counts()
		res.counts = fetchCounts{component: now.component - r.startCnt.component, oa: now.oa - r.startCnt.oa, authorizer: map[string]int{}}
		for appid, n := range now.authorizer {
			res.counts.authorizer[appid] = n - r.startCnt.authorizer[appid]
		}
	}
	return res
}

// startVendor starts the process playing role: in a child for the kill
// mode's process A, in this process otherwise.
func (r *run) startVendor(role string) error {
	if r.mode == faultKill && role == "A" {
		c, err := startChild(r.ctx, r.h, r.runName, role, r.cfg, r.k, r.plan, r.wechat.Now)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.vendors[role], r.child = c, c
		r.mu.Unlock()
		return nil
	}
	v, err := newLocalVendor(role, r.cfg, r.h.NewStore(r.t), r.plan, r.wechat.Now)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.vendors[role] = v
	r.mu.Unlock()
	return nil
}

func (r *run) vendor(role string) vendor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.vendors[role]
}

// restart replaces the killed process dead playing role by a new one in
// this process (named role+"'"), which holds nothing in memory.
func (r *run) restart(role string, dead vendor) vendor {
	r.mu.Lock()
	cur := r.vendors[role]
	r.mu.Unlock()
	if cur != dead {
		return cur
	}
	v, err := newLocalVendor(role+"'", r.cfg, r.h.NewStore(r.t), r.plan, r.wechat.Now)
	if err != nil {
		r.violate("rest", "restart", "restarting process %s after the kill: %v", role, err)
		return dead
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.vendors[role] = v
	r.killed = true
	for _, a := range r.authz {
		if n, ok := a.newest(); ok && n.withdrawn {
			a.revokedFor[v.name()] = true
		}
	}
	return v
}

func (r *run) closeVendors() {
	r.mu.Lock()
	vs := make([]vendor, 0, len(r.vendors)+1)
	for _, v := range r.vendors {
		vs = append(vs, v)
	}
	if r.child != nil && r.vendors["A"] != vendor(r.child) {
		vs = append(vs, r.child)
	}
	r.mu.Unlock()
	for _, v := range vs {
		v.close()
	}
}

// counts returns how many tokens WeChat issued so far.
func (r *run) counts() fetchCounts {
	c := fetchCounts{component: r.sc.platform.platformTokensIssued(r.wechat), authorizer: map[string]int{}}
	auth := 0
	for _, appid := range r.sc.authorizers {
		c.authorizer[appid] = r.sc.platform.tenantTokensIssued(r.wechat, appid)
		auth += c.authorizer[appid]
	}
	c.oa = r.wechat.TokensIssued() - auth
	return c
}

// step runs one step of the scenario, then samples the store.
func (r *run) stepDo(name string, fn func()) {
	r.mu.Lock()
	r.steps++
	r.step = fmt.Sprintf("%d, %s at +%v", r.steps, name, r.wechat.Now().Sub(sweepEpoch))
	r.mu.Unlock()
	start := time.Now()
	fn()
	if d := time.Since(start); r.baseline() {
		r.mu.Lock()
		r.slowest = max(r.slowest, d)
		r.mu.Unlock()
	}
	r.sample()
	r.mu.Lock()
	r.step = ""
	r.mu.Unlock()
}

// together runs fns at once and waits for them.
func together(fns ...func()) {
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Go(fn)
	}
	wg.Wait()
}

// ---- WeChat's side ----

func (r *run) advance(d time.Duration) { r.wechat.Advance(d) }

// advanceRest moves the clock past the expiry of every token (restAdvance).
// A ticket that lives less than that (a suite_ticket's 30 minutes) is
// pushed by WeChat meanwhile: the newest is handed to the store through
// the observer (no fault touches it), as the pushes of that time would
// have brought it.
func (r *run) advanceRest() {
	r.advance(restAdvance)
	if r.sc.component && r.sc.platform.ticketLifetime() <= restAdvance {
		r.setupPush(r.ticket())
	}
}

func (r *run) pushOf(name string, kind pushKind, appid string, at time.Time, q map[string][]string, body []byte, err error) push {
	if err != nil {
		panic("conformance: sweep: building the push " + name + ": " + err.Error())
	}
	return push{name: fmt.Sprintf("%s@+%v", name, at.Sub(sweepEpoch)), query: q, body: body, kind: kind, appid: appid, at: at}
}

// ticket has WeChat issue a ticket (component_verify_ticket,
// suite_ticket) now and returns its push.
func (r *run) ticket() push {
	now := r.wechat.Now()
	q, body, err := r.sc.platform.ticketPush(r.wechat)
	return r.pushOf(r.sc.platform.ticketName(), pushTicket, "", now, q, body, err)
}

// authorizeAt has the merchant appid confirm the authorization page (the
// corp install the app) now; it returns the authorization code.
func (r *run) authorizeAt(appid string) string {
	now := r.wechat.Now()
	code := r.sc.platform.grant(r.wechat, appid)
	r.grantCode(appid, code, now, true)
	return code
}

// grantCode records that WeChat issued code for appid at now: a grant
// (authorized: the tenant authorizes again) or a reset of its secret.
func (r *run) grantCode(appid, code string, now time.Time, authorized bool) {
	r.mu.Lock()
	a := r.authz[appid]
	a.authorized = a.authorized || authorized
	a.events = append(a.events, authEvent{at: now})
	a.codes[code] = now
	r.mu.Unlock()
}

// authorizedPush returns the push of code (authorized, create_auth), made
// now.
func (r *run) authorizedPush(appid, code string) push {
	now := r.wechat.Now()
	q, body, err := r.sc.platform.grantPush(r.wechat, code)
	return r.pushOf("authorized("+appid+")", pushGrant, appid, now, q, body, err)
}

// withdraw has the merchant appid withdraw (the corp cancel) now; it
// returns the push (unauthorized, cancel_auth).
func (r *run) withdraw(appid string) push {
	now := r.wechat.Now()
	q, body, err := r.sc.platform.withdraw(r.wechat, appid)
	r.mu.Lock()
	a := r.authz[appid]
	a.authorized = false
	a.events = append(a.events, authEvent{at: now, withdrawn: true})
	r.mu.Unlock()
	return r.pushOf("unauthorized("+appid+")", pushWithdraw, appid, now, q, body, err)
}

// resetSecret has WeCom reset corp's permanent_code of the
// custom-developed suite now (the vendor's "重新获取secret"); it returns
// the reset_permanent_code push, whose code's exchange brings the new
// one and voids the old.
func (r *run) resetSecret(corp string) push {
	now := r.wechat.Now()
	code := r.wechat.ResetPermanentCode(r.sc.platform.id(), corp)
	r.grantCode(corp, code, now, false)
	q, body, err := r.wechat.ResetPermanentCodePush(r.sc.platform.id(), code, sweepPushToken, sweepPushKey)
	return r.pushOf("reset_permanent_code("+corp+")", pushGrant, corp, now, q, body, err)
}

// changeAuth returns the change_auth push of corp, made now: WeCom's
// notice that the corp changed what it granted, which changes no state.
func (r *run) changeAuth(corp string) push {
	now := r.wechat.Now()
	q, body, err := r.wechat.ChangeAuthPush(r.sc.platform.id(), corp, sweepPushToken, sweepPushKey)
	return r.pushOf("change_auth("+corp+")", pushNoted, corp, now, q, body, err)
}

// setupPush applies p through the observer (the scenario's set-up, which
// no fault touches).
func (r *run) setupPush(p push) {
	ctx, cancel := context.WithTimeout(r.ctx, callTimeout)
	defer cancel()
	if _, err := r.obs.handle(ctx, p.query, p.body); err != nil {
		if !r.baseline() && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, core.ErrLockLost)) {
			r.mu.Lock()
			r.inconclusive = true // the machine, not the fault: no fault touches the set-up
			r.mu.Unlock()
		}
		r.violate("baseline", "setup", "set-up: push %s: %v", p.name, err)
		return
	}
	r.tookPush(p, "observer")
}

// setupAuthorize authorizes appid through its authorized push, applied by
// the observer.
func (r *run) setupAuthorize(appid string) {
	r.setupPush(r.authorizedPush(appid, r.authorizeAt(appid)))
}

// ---- the vendor's side ----

// took records that process proc took an authorization event of appid.
func (r *run) took(appid string, at time.Time, withdrawn bool, proc string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.authz[appid]
	a.taken = append(a.taken, authEvent{at: at, withdrawn: withdrawn})
	if n, _ := a.newest(); n.withdrawn {
		if withdrawn && n.at.Equal(at) {
			a.revokedFor[proc] = true
		}
	} else {
		clear(a.revokedFor)
	}
}

func (r *run) tookTicket(p push) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if exp := p.at.Add(r.sc.platform.ticketLifetime()); exp.After(r.newestTicket) {
		r.newestTicket = exp
	}
}

// tookPush records that process proc took p.
func (r *run) tookPush(p push, proc string) {
	switch p.kind {
	case pushTicket:
		r.tookTicket(p)
	case pushGrant, pushWithdraw:
		r.took(p.appid, p.at, p.kind == pushWithdraw, proc)
	}
}

// deliver delivers p to process A's authorization event URL until it is
// answered "success", as WeChat re-sends it (pushDeliveries in all).
func (r *run) deliver(p push) {
	r.stepDo("push "+p.name, func() {
		var last error
		for i := 1; i <= pushDeliveries; i++ {
			v := r.vendor("A")
			ctx, cancel := r.callCtx()
			applied, err := v.handle(ctx, p)
			cancel()
			if err == nil {
				if p.kind == pushNoted && applied != wecomvendor.AppliedNoted {
					r.violate("rest", "push "+p.name, "push %s delivered to %s: applied %q, want %q (nothing changes)", p.name, v.name(), applied, wecomvendor.AppliedNoted)
				}
				r.tookPush(p, v.name())
				return
			}
			last = err
			if r.baseline() && i == 1 {
				r.violate("baseline", "push "+p.name, "push %s delivered to %s: %v, want it answered success", p.name, v.name(), err)
			}
			if errors.Is(err, errKilled) {
				r.restart("A", v)
			}
			if r.ctx.Err() != nil {
				break
			}
		}
		r.violate("rest", "push "+p.name, "push %s not answered success in %d deliveries (WeChat gives up after 3 re-sends); the last: %v", p.name, pushDeliveries, last)
	})
}

// redirect exchanges code in process A, as the redirect after the
// merchant's authorization page does; a failed redirect is tried again
// (the merchant reloads the page).
func (r *run) redirect(appid, code string) {
	r.stepDo("redirect of "+appid, func() {
		r.mu.Lock()
		at := r.authz[appid].codes[code]
		r.mu.Unlock()
		var last error
		for i := 1; i <= callerAttempts; i++ {
			v := r.vendor("A")
			ctx, cancel := r.callCtx()
			got, err := v.authorize(ctx, code)
			cancel()
			if err == nil {
				if got != appid {
					r.violate("rest", "handle "+appid, "%s: Authorize(code of %s) returned the handle of %q", v.name(), appid, got)
				}
				r.took(appid, at, false, v.name())
				return
			}
			last = err
			if r.baseline() && i == 1 {
				r.violate("baseline", "redirect "+appid, "%s: Authorize(code of %s): %v, want the authorizer's handle", v.name(), appid, err)
			}
			if errors.Is(err, errKilled) {
				r.restart("A", v)
			}
			if r.ctx.Err() != nil {
				break
			}
		}
		r.notef("redirect of %s failed %d times; the last: %v", appid, callerAttempts, last)
	})
}

// notef records what a faulted run's driving could not do; the invariants
// at rest say whether it mattered. It is kept for the failure message.
func (r *run) notef(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.notes) < maxNotes && !slices.Contains(r.notes, msg) {
		r.notes = append(r.notes, msg)
	}
}

// maxNotes bounds the notes of a run (see notef).
const maxNotes = 4

// access is a caller of process role asking for appid's access token.
func (r *run) access(role, appid string) {
	r.stepDo(role+" AccessToken of "+appid, func() { r.callAuthorizer(role, appid, callerAttempts, false) })
}

// api is a caller of process role calling the API as appid.
func (r *run) api(role, appid string) {
	r.stepDo(role+" Do as "+appid, func() { r.callAuthorizer(role, appid, callerAttempts, true) })
}

// expectRevoked reports whether proc must answer for appid with
// core.ErrRevoked: the merchant is withdrawn at WeChat, and the newest
// event the vendor took is a withdrawal that proc took or started after.
func (r *run) expectRevoked(appid, proc string) (bool, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.authz[appid]
	n, ok := a.newest()
	return ok && n.withdrawn && a.revokedFor[proc] && !a.authorized, n.at
}

// callAuthorizer makes one caller's call for appid in process role
// (AccessToken, or Do with viaDo), trying a failed one again up to
// attempts times, and checks invariant 3 on each answer.
func (r *run) callAuthorizer(role, appid string, attempts int, viaDo bool) {
	what := "AccessToken"
	if viaDo {
		what = "Do"
	}
	for i := 1; i <= attempts; i++ {
		v := r.vendor(role)
		ctx, cancel := r.callCtx()
		var (
			tok core.Token
			err error
		)
		if viaDo {
			err = v.do(ctx, appid, r.sc.platform.agentID(r.wechat, appid))
		} else {
			tok, err = v.accessToken(ctx, appid)
		}
		cancel()
		revoked, since := r.expectRevoked(appid, v.name())
		switch {
		case revoked && err == nil:
			r.violate("3", v.name()+" "+what+" "+appid, "%s: %s of %s returned %s after the withdrawal at +%v it took, want %s",
				v.name(), what, appid, servedDesc(viaDo, tok), since.Sub(sweepEpoch), r.sc.platform.revokedWant())
			return
		case revoked && r.sc.platform.isRevoked(err):
			return
		case err == nil:
			if !viaDo {
				r.servedToken(v.name(), r.sc.platform.tenantToken()+" of "+appid, tok)
			}
			return
		}
		if r.baseline() && i == 1 {
			want := "a token"
			if revoked {
				want = r.sc.platform.revokedWant()
			}
			r.violate("baseline", v.name()+" "+what+" "+appid, "%s: %s of %s: %v, want %s", v.name(), what, appid, err, want)
		}
		if errors.Is(err, errKilled) {
			r.restart(role, v)
		}
		if r.ctx.Err() != nil || i == attempts {
			r.notef("%s: %s of %s failed %d times; the last: %v", v.name(), what, appid, i, err)
			return
		}
	}
}

func servedDesc(viaDo bool, tok core.Token) string {
	if viaDo {
		return "success (the API call went through)"
	}
	return fmt.Sprintf("a token (%d bytes)", len(tok.Value))
}

// component is a caller of process role asking for the platform token
// (component_access_token, suite_access_token).
func (r *run) component(role string) {
	r.stepDo(role+" "+r.sc.platform.platformToken(), func() { r.callComponent(role, callerAttempts) })
}

func (r *run) callComponent(role string, attempts int) {
	for i := 1; i <= attempts; i++ {
		v := r.vendor(role)
		ctx, cancel := r.callCtx()
		_, err := v.platformToken(ctx)
		cancel()
		if err == nil {
			return
		}
		if r.baseline() && i == 1 {
			r.violate("baseline", v.name()+" component", "%s: %s: %v, want a token", v.name(), r.sc.platform.platformToken(), err)
		}
		if errors.Is(err, errKilled) {
			r.restart(role, v)
		}
		if r.ctx.Err() != nil || i == attempts {
			r.notef("%s: %s failed %d times; the last: %v", v.name(), r.sc.platform.platformToken(), i, err)
			return
		}
	}
}

// oa is a caller of process role asking for the Official Account's token.
func (r *run) oa(role string) {
	r.stepDo(role+" Official Account AccessToken", func() { r.callOA(role, callerAttempts, false, nil, false) })
}

// oaAPI is a caller of process role calling the API as the Official
// Account.
func (r *run) oaAPI(role string) {
	r.stepDo(role+" Official Account Do", func() { r.callOA(role, callerAttempts, false, nil, true) })
}

func (r *run) callOA(role string, attempts int, lose bool, next func(), viaDo bool) {
	for i := 1; i <= attempts; i++ {
		v := r.vendor(role)
		ctx, cancel := r.callCtx()
		var (
			tok core.Token
			err error
		)
		if viaDo {
			err = v.oaDo(ctx)
		} else {
			tok, err = v.oaToken(ctx, lose && i == 1, next)
		}
		cancel()
		if err == nil {
			if !viaDo {
				r.servedToken(v.name(), "Official Account access_token", tok)
			}
			return
		}
		if r.baseline() && i == 1 {
			r.violate("baseline", v.name()+" oa", "%s: Official Account %s: %v, want %s", v.name(), map[bool]string{true: "Do", false: "AccessToken"}[viaDo], err,
				map[bool]string{true: "success", false: "a token"}[viaDo])
		}
		if errors.Is(err, errKilled) {
			r.restart(role, v)
		}
		if r.ctx.Err() != nil || i == attempts {
			r.notef("%s: Official Account call failed %d times; the last: %v", v.name(), i, err)
			return
		}
	}
}

// oaLostLease is the lost-lease step: processes A and B both refresh the
// expired Official Account token; A's fetch outlives its lease (its fenced
// write fails with core.ErrLockLost), and B takes the lock only after A's
// next store call (so A is first to find the lock free before B writes).
func (r *run) oaLostLease() {
	r.stepDo("A and B refresh the Official Account token; A's lease runs out in its fetch", func() {
		open := make(chan struct{})
		var once sync.Once
		release := func() { once.Do(func() { close(open) }) }
		r.vendor("B").gate(open)
		together(
			func() { r.callOA("A", callerAttempts, true, release, false); release() },
			func() { r.callOA("B", callerAttempts, false, nil, false) },
		)
	})
}

// servedToken checks that proc is never served a token older than one it
// was served before (tokens by WeChat's issue order, wxtest's TokenSeq).
func (r *run) servedToken(proc, cred string, tok core.Token) {
	seq := r.wechat.TokenSeq(tok.Value)
	if seq == 0 {
		return
	}
	key := proc + "\x00" + cred
	r.mu.Lock()
	last := r.served[key]
	if seq > last {
		r.served[key] = seq
	}
	r.mu.Unlock()
	if seq < last {
		r.violate("2", "served "+proc+" "+cred, "%s was served the %s issued #%d after being served #%d", proc, cred, seq, last)
	}
}

// sample reads, through the observer (which no fault touches), what the
// store says of the chain's durable state, and checks that it moved only
// forward: the verify ticket by CreateTime, each authorizer's state by the
// time of the event it follows, its refresh token never back to one it
// replaced.
func (r *run) sample() {
	ctx, cancel := context.WithTimeout(r.ctx, callTimeout)
	defer cancel()
	pl := r.sc.platform
	if r.sc.component {
		if t, err := r.obs.ticket(ctx); err == nil {
			r.mu.Lock()
			prev := r.ticketAt
			if t.ExpiresAt.After(prev) {
				r.ticketAt = t.ExpiresAt
			}
			r.mu.Unlock()
			if t.ExpiresAt.Before(prev) {
				r.violate("2", "ticket back", "the stored %s went back from the push made at +%v to the one made at +%v", pl.ticketName(),
					prev.Add(-pl.ticketLifetime()).Sub(sweepEpoch), t.ExpiresAt.Add(-pl.ticketLifetime()).Sub(sweepEpoch))
			}
		}
	}
	for _, appid := range r.sc.authorizers {
		tok, err := r.obs.secret(ctx, appid)
		var (
			at    time.Time
			known bool
			what  string
		)
		r.mu.Lock()
		a := r.authz[appid]
		switch {
		case err == nil:
			seen := r.rtSeen[appid]
			if i := slices.Index(seen, tok.Value); i >= 0 && i != len(seen)-1 {
				r.mu.Unlock()
				r.violate("2", "rt back "+appid, "the stored %s of %s went back to the one it held %d values before", pl.secretName(), appid, len(seen)-1-i)
				r.mu.Lock()
			}
			if len(seen) == 0 || seen[len(seen)-1] != tok.Value {
				r.rtSeen[appid] = append(seen, tok.Value)
			}
			if e, ok := r.rtEpoch[tok.Value]; ok {
				at, known = e, true
			} else if pl.secretValid(r.wechat, appid, tok.Value) {
				at, known = a.latest(false)
				r.rtEpoch[tok.Value] = at
			}
			what = "authorized"
		case pl.isRevoked(err):
			at, known = a.latest(true)
			what = "withdrawn"
		}
		prev, seen := r.epoch[appid]
		if known {
			r.epoch[appid] = at // a step back is reported once
		}
		r.mu.Unlock()
		if known && seen && at.Before(prev) {
			r.violate("2", "state back "+appid, "the stored authorization of %s went back from the event at +%v to the event at +%v (%s)",
				appid, prev.Sub(sweepEpoch), at.Sub(sweepEpoch), what)
		}
	}
}

// rest drives the run to rest — the clock past every expiry, then each
// process's callers asking for each credential, a failed call tried
// again — and checks the invariants.
func (r *run) rest() {
	if r.mode == faultKill {
		r.mu.Lock()
		alive := r.child != nil && r.child.alive() && r.vendors["A"] == vendor(r.child)
		r.mu.Unlock()
		if alive {
			r.mu.Lock()
			r.notReached = true
			r.mu.Unlock()
			return
		}
	}
	r.stepDo("rest: the clock moved past every expiry", r.advanceRest)
	roles := r.sc.procs
	r.stepDo("rest: the writes each process held have landed", func() {
		// Time passes (WeChat re-sends a push over some 15 s): a write a
		// process held when the store did not take it lands meanwhile.
		for _, role := range roles {
			v := r.vendor(role)
			ctx, cancel := r.callCtx()
			if err := v.flush(ctx); err != nil {
				r.notef("%s: Flush: %v", v.name(), err)
			}
			cancel()
		}
	})
	r.stepDo("rest: every process's callers, tried again while they fail", func() {
		for _, role := range roles {
			if r.sc.component {
				r.callComponent(role, callerAttempts)
			}
			for _, appid := range r.sc.authorizers {
				r.callAuthorizer(role, appid, callerAttempts, false)
			}
			if r.sc.oa {
				r.callOA(role, callerAttempts, false, nil, false)
			}
		}
	})
	r.mu.Lock()
	r.step = "at rest"
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.ctx, callTimeout)
	defer cancel()

	// Invariant 1, read through the observer.
	pl := r.sc.platform
	rtOK := map[string]bool{}
	for _, appid := range r.sc.authorizers {
		r.mu.Lock()
		authorized := r.authz[appid].authorized
		r.mu.Unlock()
		tok, err := r.obs.secret(ctx, appid)
		switch {
		case authorized && err != nil:
			r.violate("1", appid, "the store holds no %s of %s (%v), while WeChat honours one", pl.secretName(), appid, err)
		case authorized && !pl.secretValid(r.wechat, appid, tok.Value):
			r.violate("1", appid, "the store's %s of %s is not the one WeChat honours: its next refresh is refused", pl.secretName(), appid)
		case authorized:
			rtOK[appid] = true
		case !pl.isRevoked(err):
			r.violate("1", appid, "%s withdrew at WeChat, but the store does not say so (reading its %s: %v)", appid, pl.secretName(), errOr(err, "a value"))
		}
	}

	// Invariants 3 and 4, asked of every process.
	for _, role := range roles {
		v := r.vendor(role)
		if r.sc.component {
			if _, err := v.platformToken(ctx); err != nil {
				r.atRestError(v.name(), pl.platformToken(), err)
			}
		}
		for _, appid := range r.sc.authorizers {
			r.mu.Lock()
			authorized := r.authz[appid].authorized
			r.mu.Unlock()
			tok, err := v.accessToken(ctx, appid)
			derr := v.do(ctx, appid, pl.agentID(r.wechat, appid))
			switch {
			case !authorized:
				if !pl.isRevoked(err) {
					r.violate("3", "rest AccessToken "+appid, "%s: AccessToken of %s, withdrawn at WeChat: %s, want %s", v.name(), appid, errOr(err, "a token"), pl.revokedWant())
				}
				if !pl.isRevoked(derr) {
					r.violate("3", "rest Do "+appid, "%s: Do as %s, withdrawn at WeChat: %s, want %s", v.name(), appid, errOr(derr, "success"), pl.revokedWant())
				}
			case !rtOK[appid]:
				// Invariant 1 already says why no token can be had.
			case err != nil:
				r.atRestError(v.name(), "AccessToken of "+appid, err)
			case !r.wechat.TokenValid(tok.Value):
				r.violate("4", "invalid "+appid, "%s: AccessToken of %s at rest returned a token WeChat does not accept", v.name(), appid)
			case derr != nil:
				r.atRestError(v.name(), "Do as "+appid, derr)
			default:
				r.servedToken(v.name(), pl.tenantToken()+" of "+appid, tok)
			}
		}
		if r.sc.oa {
			tok, err := v.oaToken(ctx, false, nil)
			switch {
			case err != nil:
				r.atRestError(v.name(), "Official Account AccessToken", err)
			case !r.wechat.TokenValid(tok.Value):
				r.violate("4", "invalid oa", "%s: the Official Account's AccessToken at rest returned a token WeChat does not accept", v.name())
			default:
				r.servedToken(v.name(), "Official Account access_token", tok)
				if err := v.oaDo(ctx); err != nil {
					r.atRestError(v.name(), "Official Account Do", err)
				}
			}
		}
	}

	// Invariant 2: the stored verify ticket is the newest pushed.
	if r.sc.component {
		r.mu.Lock()
		newest := r.newestTicket
		r.mu.Unlock()
		if t, err := r.obs.ticket(ctx); !newest.IsZero() && (err != nil || !t.ExpiresAt.Equal(newest)) {
			r.violate("2", "ticket final", "the stored %s is not the newest one taken (pushed at +%v): %s", pl.ticketName(), newest.Add(-pl.ticketLifetime()).Sub(sweepEpoch),
				errOr(err, fmt.Sprintf("the one pushed at +%v", t.ExpiresAt.Add(-pl.ticketLifetime()).Sub(sweepEpoch))))
		}
	}
	r.checkWrites()
	r.checkCounts()
	if r.sc.pushes {
		pr := r.checkPushes()
		r.mu.Lock()
		r.pushRes = pr
		r.mu.Unlock()
	}
}

// atRestError records a caller's error at rest (invariant 4). In the hang
// mode, an error that says the store did not answer is the run's
// RefreshTimeout, short there, running out on a busy machine: the run is
// inconclusive and the sweep runs it again.
func (r *run) atRestError(proc, what string, err error) {
	if r.mode == faultHang && errors.Is(err, core.ErrStoreUnavailable) && !errors.Is(err, errInjected) {
		r.mu.Lock()
		r.inconclusive = true
		r.mu.Unlock()
	}
	r.violate("4", "rest "+what, "%s: %s at rest: %v", proc, what, err)
}

func errOr(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

// checkWrites checks invariant 2 on the history of every key: no value
// comes back once another replaced it. Values are compared without their
// ExpiresAt, which a key whose value never changes may see go back and
// forth (the same code index written by the redirect and by the push).
func (r *run) checkWrites() {
	_, writes, _ := r.plan.snapshot()
	hist := map[string][]string{}
	for _, w := range writes {
		if strings.Contains(w.Key, "/authorization_code/") {
			// The code index, an aid and not durable state (see
			// tenant.Platform): its entry holds an exchange's grant until
			// the record does, and each exchange of a code WeChat lets
			// exchange again (Open Platform) writes it anew.
			continue
		}
		h := hist[w.Key]
		v := w.Value
		if r.cfg.Push.KeyPrefix != "" && strings.HasPrefix(w.Key, r.cfg.Push.KeyPrefix+"/") &&
			!strings.HasPrefix(v, "c/") && !strings.HasPrefix(v, "d/") {
			continue // a claim released by ClaimsOver's emulation: gone, as a native one is deleted
		}
		if i := slices.Index(h, v); i >= 0 && i != len(h)-1 {
			r.violate("2", "key "+strings.TrimPrefix(w.Key, r.cfg.Prefix), "key %q went back to a value it held %d writes before (written again by %s)", w.Key, len(h)-1-i, w.Proc)
		}
		if len(h) == 0 || h[len(h)-1] != v {
			hist[w.Key] = append(h, v)
		}
	}
}

// checkCounts checks invariant 5: the run had WeChat issue at most one
// token of each kind more than the scenario did without a fault, which
// issued at most the scenario's want (one per refresh cycle).
func (r *run) checkCounts() {
	now := r.counts()
	check := func(what string, got, want, base int) {
		switch {
		case r.baseline() && got > want:
			r.violate("baseline", "count "+what, "WeChat issued %d %s, want at most %d (one per refresh cycle)", got, what, want)
		case !r.baseline() && got > min(base, want)+1:
			r.violate("5", what, "WeChat issued %d %s, want at most %d (%d without a fault)", got, what, min(base, want)+1, base)
		}
	}
	w, b := r.sc.want, r.sc.want
	if r.base != nil {
		b = *r.base
	}
	check(r.sc.platform.platformToken()+"s", now.component-r.startCnt.component, w.component, b.component)
	for _, appid := range r.sc.authorizers {
		check(r.sc.platform.tenantToken()+"s of "+appid, now.authorizer[appid]-r.startCnt.authorizer[appid], w.authorizer[appid], b.authorizer[appid])
	}
	check("Official Account access_tokens", now.oa-r.startCnt.oa, w.oa, b.oa)
}

// describe returns the lines that report a run's violations.
func describe(found []violation) string {
	var b strings.Builder
	for _, v := range found {
		b.WriteString("\n\t")
		b.WriteString(v.String())
	}
	return b.String()
}
