package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// The Pushes scenario's Dedup: a short lease, so that a retry outlives a
// killed holder's claim within the run (Wait is six leases: etcd rounds a
// lease up to whole seconds and expires it on a 500ms tick); a Remember
// longer than any run; and calls bounded by the hang mode's wait in that
// mode, by pushCallTimeout in the others.
const (
	pushLease       = 500 * time.Millisecond
	pushWait        = 6 * pushLease
	pushRemember    = 5 * time.Minute
	pushCallTimeout = 5 * time.Second
	// sweepPushAccount is the Official Account the scenario's pushes are
	// sent to (their ToUserName).
	sweepPushAccount = "gh_sweepaccount"
)

// pushSpec is one push of the Pushes scenario.
type pushSpec struct {
	name string
	key  string // core.PushKey
	// claim is the push's claim key in the store: the Dedup's KeyPrefix,
	// "/", key (short enough never to be hashed).
	claim string
	// failOnce: the first run of its handler fails (the process that runs
	// it answers 500, and WeChat re-sends the push).
	failOnce bool
}

// pushConfig returns the Dedup configuration of the run's processes.
func (r *run) pushConfig() pushConfig {
	// The run's prefix ends with its random part; a harness prefix long
	// enough to push the whole past DedupConfig's 64 bytes loses its head.
	prefix := r.cfg.Prefix + "/push"
	if len(prefix) > 64 {
		prefix = prefix[len(prefix)-64:]
	}
	c := pushConfig{KeyPrefix: prefix, Lease: pushLease, Remember: pushRemember, Wait: pushWait, CallTimeout: pushCallTimeout}
	if r.cfg.RefreshTimeout > 0 { // the hang mode
		c.CallTimeout = r.cfg.RefreshTimeout
	}
	return c
}

// newPush registers a push of the scenario: msgID for a message, or an
// event's sender, name and plaintext, made now.
func (r *run) newPush(name, msgID, from, event, plaintext string, failOnce bool) pushSpec {
	key := core.PushKey(sweepPushAccount, msgID, from, r.wechat.Now().Unix(), event, []byte(plaintext))
	p := pushSpec{name: name, key: key, claim: r.cfg.Push.KeyPrefix + "/" + key, failOnce: failOnce}
	if err := core.ValidateKey(p.claim); err != nil {
		panic("conformance: sweep: the claim key of push " + name + ": " + err.Error())
	}
	r.mu.Lock()
	r.pushes = append(r.pushes, p)
	r.mu.Unlock()
	return p
}

// eventXML is the plaintext of an event push from user at the run's now.
func (r *run) eventXML(from, event, eventKey string) string {
	return fmt.Sprintf("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"+
		"<CreateTime>%d</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[%s]]></Event>"+
		"<EventKey><![CDATA[%s]]></EventKey></xml>", sweepPushAccount, from, r.wechat.Now().Unix(), event, eventKey)
}

// playPushes is the Pushes scenario: a message whose handler fails once,
// an event, two different events of one user in one second, then the
// event again (WeChat lost the answer to it).
func playPushes(r *run) {
	msg := r.newPush("message", "24500000000000001", "", "", "", true)
	sub := r.newPush("subscribe", "", "oSweepUser1", "subscribe", r.eventXML("oSweepUser1", "subscribe", ""), false)
	r.advance(time.Second)
	c1 := r.newPush("click 1", "", "oSweepUser2", "CLICK", r.eventXML("oSweepUser2", "CLICK", "MENU_1"), false)
	c2 := r.newPush("click 2", "", "oSweepUser2", "CLICK", r.eventXML("oSweepUser2", "CLICK", "MENU_2"), false)
	if c1.key == c2.key {
		panic("conformance: sweep: two different events of one user in one second have one push key")
	}
	r.deliverPush(msg, "A", core.PushFailed, core.PushHandled)
	r.deliverPush(sub, "A", core.PushHandled)
	r.deliverPush(c1, "A", core.PushHandled)
	r.deliverPush(c2, "A", core.PushHandled)
	r.advance(5 * time.Second)
	r.deliverPush(sub, "B", core.PushDuplicate) // the answer to it was lost: WeChat re-sends it, here to B
}

// deliverPush delivers p as WeChat does: to process first, then, while
// the delivery is not answered with status 200, again (pushDeliveries in
// all), to the other process and back (a killed process A restarted). The
// baseline's deliveries must have the outcomes want, in order. The driver
// waits on each outcome: nothing here waits on a timer.
func (r *run) deliverPush(p pushSpec, first string, want ...core.PushOutcome) {
	other := map[string]string{"A": "B", "B": "A"}[first]
	r.stepDo("push "+p.name+" to "+first, func() {
		var last error
		for i := 1; i <= pushDeliveries; i++ {
			role := first
			if i%2 == 0 {
				role = other
			}
			v := r.vendor(role)
			fail := p.failOnce && !r.pushFailed(p)
			r.plan.record(histEvent{Kind: "deliver", Proc: v.name(), Key: p.claim})
			ctx, cancel := context.WithTimeout(r.ctx, callTimeout) // WeChat's hang-up does not end the handler
			out, err := v.pushDo(ctx, p.key, fail)
			cancel()
			if errors.Is(err, errKilled) {
				last = err
				r.restart("A", v)
				continue
			}
			r.plan.record(histEvent{Kind: "outcome", Proc: v.name(), Key: p.claim, Value: out.String()})
			if r.baseline() && (i > len(want) || out != want[i-1]) {
				w := "no delivery"
				if i <= len(want) {
					w = want[i-1].String()
				}
				r.violate("baseline", "push "+p.name, "push %s, delivery %d to %s: %v (%v), want %s", p.name, i, v.name(), out, err, w)
			}
			if out.HTTPStatus() == 200 {
				return
			}
			last = fmt.Errorf("%v, status %d: %w", out, out.HTTPStatus(), err)
			if r.ctx.Err() != nil {
				break
			}
		}
		r.violate("rest", "push "+p.name, "push %s not answered 200 in %d deliveries (WeChat gives up after 3 re-sends); the last: %v", p.name, pushDeliveries, last)
	})
}

// pushFailed reports whether a handler of p failed already.
func (r *run) pushFailed(p pushSpec) bool {
	for _, e := range r.plan.history() {
		if e.Kind == "fail" && e.Key == p.claim {
			return true
		}
	}
	return false
}

// handlerRun is one run of a push's handler in the history: the indices
// of its start and of its finish or failure (-1 while it runs).
type handlerRun struct {
	proc       string
	start, end int
	finished   bool
}

// runsOf returns the runs of the handler of the push whose claim key is
// key, in the order they started.
func runsOf(hist []histEvent, key string) []handlerRun {
	var runs []handlerRun
	open := map[string]int{}
	for i, e := range hist {
		if e.Key != key {
			continue
		}
		switch e.Kind {
		case "start":
			open[e.Proc] = len(runs)
			runs = append(runs, handlerRun{proc: e.Proc, start: i, end: -1})
		case "finish", "fail":
			if j, ok := open[e.Proc]; ok {
				runs[j].end, runs[j].finished = i, e.Kind == "finish"
				delete(open, e.Proc)
			}
		}
	}
	return runs
}

// recorded reports whether e is a write that records the push whose claim
// key is key as handled (a Dedup's done value, "d/…").
func recorded(e histEvent, key string) bool {
	return e.Kind == "write" && e.Key == key && strings.HasPrefix(e.Value, "d/")
}

// pushOutcome is what checkPushes found of a run.
type pushOutcome struct {
	dupAllowed bool // the fault point is one the Dedup names as a possible duplicate
	dupSeen    bool // a push was handled twice
}

// dupAllowed says whether the run's fault (the call at index hit of the
// history) is one core.Dedup documents as a possible duplicate of the
// push whose first finished run is r1 (next: where its next run starts, or
// the history's end): a kill of r1's process after r1 finished and before
// the push was recorded as handled, or (other modes) a fault of one of
// r1's process's calls of the push after r1 finished, the record of which
// never landed before the next run.
func dupAllowed(hist []histEvent, hit int, mode faultMode, key string, r1 handlerRun, next int) (bool, string) {
	if hit < 0 || r1.end < 0 || hit <= r1.end {
		return false, ""
	}
	e := hist[hit]
	if e.Key != key || e.Proc != r1.proc {
		return false, ""
	}
	for _, x := range hist[r1.end+1 : hit] {
		if recorded(x, key) {
			return false, ""
		}
	}
	if mode == faultKill {
		return true, fmt.Sprintf("%s was killed after its handler finished and before the push was recorded as handled", r1.proc)
	}
	for _, x := range hist[hit:next] {
		if recorded(x, key) {
			return false, ""
		}
	}
	return true, fmt.Sprintf("%s's record of the push never landed", r1.proc)
}

// checkPushes checks the Pushes scenario's invariants on the history:
//
//  6. every push handled (a handler finished) at least once;
//  7. no push handled twice, but when the fault is one the Dedup
//     documents (dupAllowed), and never by two handlers at once or
//     three times;
//  8. every delivery's outcome agrees with the runs: handled (or
//     unguarded) after its own handler finished, failed after its own
//     handler failed, duplicate after some handler of the push finished
//     and without a run of its own, in progress or refused without one.
func (r *run) checkPushes() pushOutcome {
	hist := r.plan.history()
	_, _, hitCall := r.plan.snapshot()
	hit := -1
	for i, e := range hist {
		switch {
		case e.Kind != "call":
		case r.mode == faultKill && e.Child && e.Seq == r.k:
			hit = i
		case r.mode != faultKill && hitCall != nil && !e.Child && e.Seq == hitCall.Seq:
			hit = i
		}
	}
	r.mu.Lock()
	pushes := append([]pushSpec(nil), r.pushes...)
	r.mu.Unlock()
	var res pushOutcome
	for _, p := range pushes {
		runs := runsOf(hist, p.claim)
		var done []handlerRun
		for _, x := range runs {
			if x.finished {
				done = append(done, x)
			}
		}
		if len(done) == 0 {
			r.violate("6", p.name, "push %s: no handler finished (%d runs)", p.name, len(runs))
			continue
		}
		r1 := done[0]
		next := len(hist)
		for _, x := range runs {
			if x.start > r1.start {
				next = x.start
				break
			}
		}
		allowed, why := dupAllowed(hist, hit, r.mode, p.claim, r1, next)
		res.dupAllowed = res.dupAllowed || allowed
		for i, x := range runs {
			for _, y := range runs[i+1:] {
				if x.end < 0 || y.start < x.end {
					r.violate("7", p.name+" at once", "push %s: the handlers of %s and %s ran at once", p.name, x.proc, y.proc)
				}
			}
		}
		if len(done) < 2 {
			continue
		}
		res.dupSeen = true
		switch {
		case len(done) > 2:
			r.violate("7", p.name, "push %s handled %d times (by %s)", p.name, len(done), procsOf(done))
		case !allowed:
			r.violate("7", p.name, "push %s handled twice (by %s, then %s), and the fault is none the Dedup documents as a possible duplicate", p.name, done[0].proc, done[1].proc)
		default:
			r.notef("push %s handled twice (by %s, then %s), allowed: %s", p.name, done[0].proc, done[1].proc, why)
		}
	}
	r.checkOutcomes(hist, pushes)
	return res
}

func procsOf(runs []handlerRun) string {
	s := make([]string, len(runs))
	for i, x := range runs {
		s[i] = x.proc
	}
	return strings.Join(s, ", ")
}

// checkOutcomes checks invariant 8 on every delivery of the history that
// was answered (a delivery to a killed process has no outcome).
func (r *run) checkOutcomes(hist []histEvent, pushes []pushSpec) {
	for d, e := range hist {
		if e.Kind != "deliver" {
			continue
		}
		o := -1
		for i := d + 1; i < len(hist); i++ {
			if hist[i].Kind == "deliver" {
				break
			}
			if hist[i].Kind == "outcome" && hist[i].Proc == e.Proc && hist[i].Key == e.Key {
				o = i
				break
			}
		}
		if o < 0 {
			continue
		}
		var own []string
		finishedBefore := false
		for i, x := range hist[:o] {
			if x.Key != e.Key {
				continue
			}
			if x.Kind == "finish" {
				finishedBefore = true
			}
			if i > d && x.Proc == e.Proc && (x.Kind == "start" || x.Kind == "finish" || x.Kind == "fail") {
				own = append(own, x.Kind)
			}
		}
		runs := strings.Join(own, ",")
		out := hist[o].Value
		bad := ""
		switch out {
		case core.PushHandled.String(), core.PushUnguarded.String():
			if runs != "start,finish" {
				bad = "want its own handler started and finished"
			}
			if out == core.PushUnguarded.String() {
				r.notef("%s ran the handler of %s unguarded (the store failed twice)", e.Proc, e.Key)
			}
		case core.PushFailed.String():
			if runs != "start,fail" {
				bad = "want its own handler started and failed"
			}
		case core.PushDuplicate.String():
			switch {
			case runs != "":
				bad = "want no handler run by the delivery"
			case !finishedBefore:
				bad = "no handler of the push had finished"
			}
		default:
			if runs != "" {
				bad = "want no handler run by the delivery"
			}
		}
		if bad != "" {
			name := e.Key
			for _, p := range pushes {
				if p.claim == e.Key {
					name = p.name
				}
			}
			r.violate("8", name+" "+out, "push %s delivered to %s: outcome %s after the runs [%s]: %s", name, e.Proc, out, runs, bad)
		}
	}
}
