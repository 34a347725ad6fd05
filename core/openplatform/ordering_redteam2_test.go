package openplatform_test

// Red-team tests (round 2) of the ordering of an authorizer's durable
// record: permutations of authorization events with a failing store, held
// writes landing late, refresh rotation racing an event, Flush/Held under
// concurrency. A failing test is a finding.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/storetest"
	"github.com/wechatconf/wechatconf/core/openplatform"
)

// rt2Component is a Component of ch ("another process") whose durable
// store is durable (Config.Store stays ch.store, shared), with a short
// RefreshTimeout.
func (ch *chain) rt2Component(t *testing.T, durable core.TokenStore, timeout time.Duration) *openplatform.Component {
	t.Helper()
	return ch.rt2ComponentLog(t, durable, timeout, nil)
}

func (ch *chain) rt2ComponentLog(t *testing.T, durable core.TokenStore, timeout time.Duration, logger *slog.Logger) *openplatform.Component {
	t.Helper()
	return newComponent(t, ch.store, func(cfg *openplatform.Config) {
		cfg.Logger = logger
		cfg.AppSecret = core.NewSecret(componentSecret)
		cfg.Token, cfg.EncodingAESKey = core.NewSecret(pushToken), core.NewSecret(pushKey)
		cfg.BaseURL, cfg.Now, cfg.RetryBackoff = ch.s.URL, ch.s.Now, time.Millisecond
		cfg.DurableStore = durable
		cfg.Policy.RefreshTimeout = timeout
	})
}

func isRecordKey(key string) bool {
	return strings.HasSuffix(key, merchant+"/authorizer_refresh_token")
}

// atRest checks the invariant: the store's refresh token is the one WeChat
// honours when the merchant is authorized at WeChat; ErrRevoked when it
// withdrew. It returns "" when it holds.
func atRest(ch *chain, c *openplatform.Component, authorized bool) string {
	rt, err := c.RefreshToken(context.Background(), merchant)
	switch {
	case authorized && err != nil:
		return fmt.Sprintf("authorized at WeChat, store says: %v", err)
	case authorized && !ch.s.RefreshTokenValid(componentAppID, merchant, rt.Value):
		return "authorized at WeChat, the stored refresh token is refused by WeChat"
	case !authorized && !errors.Is(err, core.ErrRevoked):
		return fmt.Sprintf("withdrawn at WeChat, store says: refresh token stored (valid at WeChat: %v), err %v",
			ch.s.RefreshTokenValid(componentAppID, merchant, rt.Value), err)
	}
	return ""
}

func flush(t *testing.T, cs ...*openplatform.Component) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a failure bound, not a pace
	defer cancel()
	for _, c := range cs {
		if err := c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if n := c.Held(); n != 0 {
			t.Errorf("Held() = %d after Flush returned nil", n)
		}
	}
}

// ---------------------------------------------------------------------
// Attack 2: held writes landing late.

// An operator's Unauthorize that the store does not take is held; the
// merchant then authorizes again (applied by another process); the held
// withdrawal lands afterwards and withdraws the newer authorization. The
// doc: "the authorizer's record becomes a withdrawal … unless the store
// holds an authorization made after now".
func TestRedteam2HeldUnauthorizeLandsOverNewerAuthorization(t *testing.T) {
	ch := newChain(t)
	mem := core.NewMemoryStore()
	faulty := &storetest.Faulty{TokenStore: mem}
	p1 := ch.rt2Component(t, faulty, 50*time.Millisecond)
	p2 := ch.rt2Component(t, mem, 50*time.Millisecond)
	ch.pushTicket(t, p2)
	ch.authorize(t, p2, merchant) // T0
	mp := mustPush(t)

	ch.s.Advance(10 * time.Second)
	ch.s.Unauthorize(componentAppID, merchant) // the merchant withdraws at T0+10 …
	faulty.ArmEvery(func(op, key string) bool { return op == "refresh" && isRecordKey(key) }, storetest.Fail)
	if err := p1.Unauthorize(t.Context(), merchant); err == nil { // … and the operator mirrors it: held
		t.Fatal("Unauthorize succeeded while the store fails writes")
	}
	ch.s.Advance(10 * time.Second)
	code2 := ch.s.Authorize(componentAppID, merchant) // T0+20: authorizes again
	a2 := mp(ch.s.AuthorizedPush(code2, pushToken, pushKey))
	if ev, err := deliver(t, p2, a2.q, a2.body); err != nil || ev.Applied != openplatform.AppliedAuthorized {
		t.Fatalf("A2: %+v, %v", ev, err)
	}
	faulty.Arm(func(string, string) bool { return false }, storetest.Fail) // the store recovers
	flush(t, p1)
	if why := atRest(ch, p2, true); why != "" {
		t.Errorf("the held Unauthorize (made at T0+10) landed over the authorization of T0+20: %s", why)
		ev, err := deliver(t, p2, a2.q, a2.body) // WeChat re-sends A2: does it mend it?
		if why := atRest(ch, p2, true); why != "" {
			t.Errorf("…and A2 re-sent does not mend it (Applied %q, %v): %s", ev.Applied, err, why)
		}
	}
}

// The same for ImportRefreshToken: a restore of the then-valid refresh
// token, held, lands after a re-authorization and puts back a refresh
// token WeChat voided.
func TestRedteam2HeldImportLandsOverNewerAuthorization(t *testing.T) {
	ch := newChain(t)
	mem := core.NewMemoryStore()
	faulty := &storetest.Faulty{TokenStore: mem}
	p1 := ch.rt2Component(t, faulty, 50*time.Millisecond)
	p2 := ch.rt2Component(t, mem, 50*time.Millisecond)
	ch.pushTicket(t, p2)
	ch.authorize(t, p2, merchant) // T0
	mp := mustPush(t)
	rt1, err := p2.RefreshToken(t.Context(), merchant)
	if err != nil {
		t.Fatal(err)
	}
	ch.s.Advance(5 * time.Second)
	faulty.ArmEvery(func(op, key string) bool { return op == "refresh" && isRecordKey(key) }, storetest.Fail)
	if err := p1.ImportRefreshToken(t.Context(), merchant, rt1.Value); err == nil { // a restore at T0+5: held
		t.Fatal("ImportRefreshToken succeeded while the store fails writes")
	}
	ch.s.Advance(15 * time.Second)
	code2 := ch.s.Authorize(componentAppID, merchant) // T0+20: re-authorization voids rt1
	a2 := mp(ch.s.AuthorizedPush(code2, pushToken, pushKey))
	if ev, err := deliver(t, p2, a2.q, a2.body); err != nil || ev.Applied != openplatform.AppliedAuthorized {
		t.Fatalf("A2: %+v, %v", ev, err)
	}
	faulty.Arm(func(string, string) bool { return false }, storetest.Fail)
	flush(t, p1)
	if why := atRest(ch, p2, true); why != "" {
		t.Errorf("the held import (made at T0+5) landed over the authorization of T0+20: %s", why)
		ev, err := deliver(t, p2, a2.q, a2.body)
		if why := atRest(ch, p2, true); why != "" {
			t.Errorf("…and A2 re-sent does not mend it (Applied %q, %v): %s", ev.Applied, err, why)
		}
	}
}

// beforeGetStore calls hook once, before the first Get of a key match
// accepts.
type beforeGetStore struct {
	core.TokenStore
	match func(key string) bool
	hook  func()
	once  sync.Once
}

func (s *beforeGetStore) Get(ctx context.Context, key string) (core.Token, error) {
	if s.match(key) {
		s.once.Do(s.hook)
	}
	return s.TokenStore.Get(ctx, key)
}

// ---------------------------------------------------------------------
// Attack 3: refresh with rotation concurrent with an authorization event.

// partStore cuts one process off the store's record key: armed, the next
// Refresh of the key runs its fetch (WeChat rotates the refresh token) and
// fails without writing; then every Refresh of the key fails until healed.
type partStore struct {
	core.TokenStore
	state atomic.Int32 // 0 pass, 1 fetch-then-fail once, 2 fail
	hit   chan struct{}
}

func (s *partStore) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if isRecordKey(key) {
		switch s.state.Load() {
		case 1:
			if s.state.CompareAndSwap(1, 2) {
				_, err := fetch(ctx)
				close(s.hit)
				if err != nil {
					return core.Token{}, err
				}
				return core.Token{}, storetest.ErrInjected
			}
			return core.Token{}, storetest.ErrInjected
		case 2:
			return core.Token{}, storetest.ErrInjected
		}
	}
	return s.TokenStore.Refresh(ctx, key, stale, fetch)
}

// ---------------------------------------------------------------------
// Attack 1: permutations.

type permEvent int

const (
	evA1 permEvent = iota // authorized, code1, T0
	evW                   // unauthorized, T0+10
	evA2                  // authorized, code2, T0+20
	evR2                  // the redirect of code2
	evW2                  // unauthorized again, T0+30 (only in the withdrawn table)
)

func (e permEvent) String() string { return [...]string{"A1", "W", "A2", "R2", "W2"}[e] }

type permCase struct {
	order   []permEvent
	lazy    bool   // WeChat acts just before each event's first delivery (else all at once, first)
	dup     string // "", "next" (each also to p2 right after), "end" (all again to p2 after)
	win     [2]int // p1's durable writes fail during first-round deliveries [win[0], win[1])
	strict  bool   // single-use codes
	withW2  bool
	failsP2 bool // p2's writes fail in the window too
}

func (pc permCase) name() string {
	var b strings.Builder
	for _, e := range pc.order {
		b.WriteString(e.String())
	}
	fmt.Fprintf(&b, "/lazy=%v/dup=%q/win=%v/strict=%v/p2fails=%v", pc.lazy, pc.dup, pc.win, pc.strict, pc.failsP2)
	return b.String()
}

func permutations(xs []permEvent) [][]permEvent {
	if len(xs) <= 1 {
		return [][]permEvent{append([]permEvent(nil), xs...)}
	}
	var out [][]permEvent
	for i := range xs {
		rest := append(append([]permEvent(nil), xs[:i]...), xs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]permEvent{xs[i]}, p...))
		}
	}
	return out
}

var permHeld atomic.Int64 // cases in which a write was held

// runPerm plays one case and returns the violation, "" if none.
func runPerm(t *testing.T, pc permCase) string {
	ch := newChain(t)
	ch.s.SingleUseAuthorizationCodes(pc.strict)
	mem := core.NewMemoryStore()
	f1 := &storetest.Faulty{TokenStore: mem}
	f2 := &storetest.Faulty{TokenStore: mem}
	quiet := slog.New(slog.DiscardHandler)
	p1 := ch.rt2ComponentLog(t, f1, 30*time.Millisecond, quiet)
	p2 := ch.rt2ComponentLog(t, f2, 30*time.Millisecond, quiet)
	ctx := context.Background()
	if _, err := p1.SetVerifyTicket(ctx, ch.s.VerifyTicket(componentAppID), ch.s.Now()); err != nil {
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err = p1.Flush(fctx) // a busy machine: the held ticket lands
		cancel()
		if err != nil {
			return "verify ticket: " + err.Error()
		}
	}
	// The component token, fetched once with time to spare (the short
	// RefreshTimeout is for the durable writes), is read from the shared
	// store by p1 and p2.
	p0 := ch.rt2ComponentLog(t, mem, 20*time.Second, quiet)
	if _, err := p0.ComponentAccessToken(ctx); err != nil {
		return "component token: " + err.Error()
	}
	for _, c := range []*openplatform.Component{p1, p2} {
		var err error
		for range 20 {
			if _, err = c.ComponentAccessToken(ctx); err == nil {
				break
			}
		}
		if err != nil {
			return "component token: " + err.Error()
		}
	}
	var pushes [5]*push
	var code1, code2 string
	acted := 0 // WeChat actions done: 1 auth1, 2 withdraw, 3 auth2, 4 withdraw again
	act := func(n int) error {
		for acted < n {
			ch.s.Advance(10 * time.Second)
			var q push
			var err error
			switch acted {
			case 0:
				code1 = ch.s.Authorize(componentAppID, merchant)
				q.q, q.body, err = ch.s.AuthorizedPush(code1, pushToken, pushKey)
				pushes[evA1] = &q
			case 1:
				ch.s.Unauthorize(componentAppID, merchant)
				q.q, q.body, err = ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey)
				pushes[evW] = &q
			case 2:
				code2 = ch.s.Authorize(componentAppID, merchant)
				q.q, q.body, err = ch.s.AuthorizedPush(code2, pushToken, pushKey)
				pushes[evA2] = &q
			case 3:
				ch.s.Unauthorize(componentAppID, merchant)
				q.q, q.body, err = ch.s.UnauthorizedPush(componentAppID, merchant, pushToken, pushKey)
				pushes[evW2] = &q
			}
			if err != nil {
				return err
			}
			acted++
		}
		return nil
	}
	last := 3
	if pc.withW2 {
		last = 4
	}
	if !pc.lazy {
		if err := act(last); err != nil {
			return err.Error()
		}
	}
	need := map[permEvent]int{evA1: 1, evW: 2, evA2: 3, evR2: 3, evW2: 4}
	acked := map[permEvent]bool{}
	deliverTo := func(c *openplatform.Component, e permEvent) {
		ch.s.Advance(time.Second)
		var err error
		if e == evR2 {
			_, err = c.Authorize(ctx, code2)
		} else {
			_, err = c.HandleEvent(ctx, pushes[e].q, strings.NewReader(string(pushes[e].body)))
		}
		if err == nil {
			acked[e] = true
		}
	}
	fail := func(f *storetest.Faulty, on bool) {
		if on {
			f.ArmEvery(func(op, key string) bool { return op == "refresh" && isRecordKey(key) }, storetest.Fail)
		} else {
			f.Arm(func(string, string) bool { return false }, storetest.Fail)
		}
	}
	for i, e := range pc.order {
		if err := act(need[e]); err != nil {
			return err.Error()
		}
		failing := i >= pc.win[0] && i < pc.win[1]
		fail(f1, failing)
		fail(f2, failing && pc.failsP2)
		deliverTo(p1, e)
		if pc.dup == "next" {
			deliverTo(p2, e)
		}
	}
	if p1.Held()+p2.Held() > 0 {
		permHeld.Add(1)
	}
	fail(f1, false)
	fail(f2, false)
	if pc.dup == "end" {
		for _, e := range pc.order {
			deliverTo(p2, e)
		}
	}
	if err := act(last); err != nil {
		return err.Error()
	}
	// At rest: held writes land; WeChat re-sends each push not answered
	// "success" (3 times at most).
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, c := range []*openplatform.Component{p1, p2} {
		if err := c.Flush(fctx); err != nil {
			return err.Error()
		}
	}
	for range 3 {
		for _, e := range []permEvent{evA1, evW, evA2, evW2} {
			if pushes[e] != nil && !acked[e] {
				deliverTo(p2, e)
			}
		}
	}
	for _, c := range []*openplatform.Component{p1, p2} {
		if err := c.Flush(fctx); err != nil {
			return err.Error()
		}
		if n := c.Held(); n != 0 {
			return fmt.Sprintf("Held() = %d after Flush", n)
		}
	}
	return atRest(ch, p2, !pc.withW2)
}

func TestRedteam2Permutations(t *testing.T) {
	var cases []permCase
	windows := [][2]int{{0, 0}, {0, 1}, {1, 2}, {2, 3}, {3, 4}, {0, 2}, {2, 4}, {0, 4}}
	for _, order := range permutations([]permEvent{evA1, evW, evA2, evR2}) {
		for _, lazy := range []bool{false, true} {
			for _, strict := range []bool{false, true} {
				for _, win := range windows {
					cases = append(cases, permCase{order: order, lazy: lazy, win: win, strict: strict})
					if win[1] > win[0] {
						for _, dup := range []string{"next", "end"} {
							cases = append(cases, permCase{order: order, lazy: lazy, dup: dup, win: win, strict: strict})
						}
						cases = append(cases, permCase{order: order, lazy: lazy, dup: "next", win: win, strict: strict, failsP2: true})
					}
				}
			}
		}
	}
	// The merchant withdraws again at the end (T0+30): ErrRevoked at rest.
	for _, order := range permutations([]permEvent{evA1, evW, evA2, evR2, evW2}) {
		for _, lazy := range []bool{false, true} {
			for _, win := range [][2]int{{0, 0}, {0, 2}, {2, 5}} {
				cases = append(cases, permCase{order: order, lazy: lazy, win: win, withW2: true})
			}
		}
	}
	// Every third case by default (the test suite runs with -race: ~15 s);
	// WECHATCONF_PERMUTATIONS=all runs all 3,504.
	if os.Getenv("WECHATCONF_PERMUTATIONS") != "all" {
		var some []permCase
		for i := 0; i < len(cases); i += 3 {
			some = append(some, cases[i])
		}
		cases = some
	}
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
		next   atomic.Int64
	)
	start := time.Now()
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(cases) {
					return
				}
				if why := runPerm(t, cases[i]); why != "" {
					mu.Lock()
					failed = append(failed, cases[i].name()+": "+why)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d cases in %v (%d with a write held), %d violations", len(cases), time.Since(start).Round(time.Millisecond), permHeld.Load(), len(failed))
	for i, f := range failed {
		if i == 20 {
			t.Errorf("… and %d more", len(failed)-20)
			break
		}
		t.Error(f)
	}
}

// ---------------------------------------------------------------------
// Attack 4: Flush and Held under concurrency.

func TestRedteam2FlushHeldConcurrent(t *testing.T) {
	ch := newChain(t)
	mem := core.NewMemoryStore()
	faulty := &storetest.Faulty{TokenStore: mem}
	c := ch.rt2ComponentLog(t, faulty, 5*time.Millisecond, slog.New(slog.DiscardHandler))
	ctx := t.Context()
	faulty.ArmEvery(func(op, key string) bool { return op == "refresh" }, storetest.Fail)
	base := ch.s.Now()
	const n = 40
	writers := func(from, to int) *sync.WaitGroup {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			wg.Go(func() {
				_, _ = c.SetVerifyTicket(ctx, fmt.Sprintf("ticket-%03d", i), base.Add(time.Duration(i)*time.Second))
			})
			wg.Go(func() { _ = c.Unauthorize(ctx, fmt.Sprintf("wxauthorizer%03d", i%7)) })
			wg.Go(func() { _ = c.Held() })
		}
		return &wg
	}
	writers(0, n/2).Wait()
	if h := c.Held(); h == 0 {
		t.Fatal("nothing held while the store fails every write")
	}
	flushed := make(chan error, 4)
	for range 4 {
		go func() {
			fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a failure bound
			defer cancel()
			flushed <- c.Flush(fctx)
		}()
	}
	writers(n/2, n).Wait() // more writes held while Flush waits
	faulty.Arm(func(string, string) bool { return false }, storetest.Fail)
	for range 4 {
		if err := <-flushed; err != nil {
			t.Fatal(err)
		}
	}
	if h := c.Held(); h != 0 {
		t.Errorf("every Flush returned nil with %d writes held", h)
	}
	tk, err := c.VerifyTicket(ctx)
	if err != nil || tk.Value != fmt.Sprintf("ticket-%03d", n-1) {
		t.Errorf("verify ticket after the held writes = %q, %v; want the newest, ticket-%03d", tk.Value, err, n-1)
	}
	for i := range 7 {
		if _, err := c.RefreshToken(ctx, fmt.Sprintf("wxauthorizer%03d", i)); !errors.Is(err, core.ErrRevoked) {
			t.Errorf("authorizer %d: %v, want ErrRevoked", i, err)
		}
	}
}
