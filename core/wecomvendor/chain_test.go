package wecomvendor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/storetest"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
	"github.com/wechatconf/wechatconf/core/wecomvendor"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

const (
	suiteID      = "wwsuite000000001"
	customID     = "dkcustom00000001"
	suiteSecret  = "su1te-s3cret-7c6b5a"
	pushToken    = "cmdTokenQ7"
	pushKey      = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	corpA        = "wwcorp0000000001"
	providerCorp = "wwprovider000001"
)

// chain is a simulated WeCom vendor platform with suites on it, and a
// store the "processes" (Suites) share.
type chain struct {
	s     *wxtest.Server
	store core.TokenStore
}

func newChain(t *testing.T) *chain {
	t.Helper()
	s := wxtest.New(wxtest.Options{})
	t.Cleanup(s.Close)
	s.SetSuiteSecret(suiteID, suiteSecret)
	s.SetSuiteSecret(customID, suiteSecret)
	return &chain{s: s, store: core.NewMemoryStore()}
}

// suite returns a Suite of the chain (another "process" each call).
func (ch *chain) suite(t *testing.T, id string, opts ...func(*wecomvendor.Config)) *wecomvendor.Suite {
	t.Helper()
	cfg := wecomvendor.Config{
		SuiteID: id, SuiteSecret: core.NewSecret(suiteSecret),
		Token: core.NewSecret(pushToken), EncodingAESKey: core.NewSecret(pushKey), ProviderCorpID: providerCorp,
		Store: ch.store, BaseURL: ch.s.URL, Now: ch.s.Now, RetryBackoff: time.Millisecond, NoLedger: true,
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := wecomvendor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deliver hands a push to s.
func deliver(t *testing.T, s *wecomvendor.Suite, q url.Values, body []byte, err error) *wecomvendor.Event {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.HandleEvent(t.Context(), q, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("HandleEvent: %v", err)
	}
	return ev
}

func (ch *chain) pushTicket(t *testing.T, s *wecomvendor.Suite) {
	t.Helper()
	q, body, _, err := ch.s.SuiteTicketPush(s.SuiteID(), pushToken, pushKey)
	if ev := deliver(t, s, q, body, err); ev.InfoType != wecomvendor.InfoSuiteTicket || ev.Applied != "stored" {
		t.Fatalf("suite_ticket push: %+v", ev)
	}
}

// install has corp install s's app and delivers create_auth.
func (ch *chain) install(t *testing.T, s *wecomvendor.Suite, corp string) (query url.Values, body []byte) {
	t.Helper()
	code := ch.s.Install(s.SuiteID(), corp)
	q, body, err := ch.s.CreateAuthPush(s.SuiteID(), code, pushToken, pushKey)
	if ev := deliver(t, s, q, body, err); ev.Applied != wecomvendor.AppliedAuthorized || ev.CorpID != corp {
		t.Fatalf("create_auth push: %+v", ev)
	}
	return q, body
}

// callAPI calls the WeCom API as the corp (agent/get of the suite's app in
// it), with the corp's token.
func (ch *chain) callAPI(ctx context.Context, s *wecomvendor.Suite, corp string) error {
	var out map[string]any
	q := url.Values{"agentid": {fmt.Sprint(ch.s.AgentID(s.SuiteID(), corp))}}
	return s.Corp(corp).Do(ctx, http.MethodGet, wxtest.PathWeComAPI, q, nil, &out)
}

func TestThirdPartyChain(t *testing.T) {
	ch := newChain(t)
	a, b := ch.suite(t, suiteID), ch.suite(t, suiteID) // two processes
	ctx := t.Context()
	if _, err := a.SuiteAccessToken(ctx); !errors.Is(err, wecomvendor.ErrNoSuiteTicket) {
		t.Fatalf("SuiteAccessToken before any ticket = %v, want ErrNoSuiteTicket", err)
	}
	ch.pushTicket(t, a)
	st, err := b.SuiteAccessToken(ctx)
	if err != nil || !ch.s.SuiteTokenValid(st.Value) {
		t.Fatalf("SuiteAccessToken = %v, %v", st, err)
	}
	q, body := ch.install(t, a, corpA)
	if !ch.s.PermanentCodeValid(suiteID, corpA, mustCode(t, b, corpA)) {
		t.Fatal("the stored permanent_code is not the one WeCom holds valid")
	}
	// The re-sent push (WeCom's retry, or another instance) changes nothing.
	if ev := deliver(t, b, q, body, nil); ev.Applied != wecomvendor.AppliedAlready || ev.CorpID != corpA {
		t.Fatalf("create_auth delivered again: %+v", ev)
	}
	for _, s := range []*wecomvendor.Suite{a, b} {
		if err := ch.callAPI(ctx, s, corpA); err != nil {
			t.Fatalf("a call as the corp: %v", err)
		}
	}
	if n := ch.s.CorpTokensIssued(corpA); n != 1 {
		t.Errorf("corp tokens issued = %d, want 1 for the fleet", n)
	}
	if _, err := b.Corp(corpA).JSAPITicket(ctx); err != nil {
		t.Errorf("the corp's jsapi_ticket: %v", err)
	}
	if _, err := b.Corp(corpA).AgentTicket(ctx); err != nil {
		t.Errorf("the app's agent_config ticket: %v", err)
	}

	// The corp cancels: the push reaches one process; the other's handle
	// learns it from the store when WeCom rejects its token.
	ch.s.Advance(time.Second) // in the same second an install wins (see the package doc)
	ch.s.Uninstall(suiteID, corpA)
	q2, body2, err := ch.s.CancelAuthPush(suiteID, corpA, pushToken, pushKey)
	if ev := deliver(t, a, q2, body2, err); ev.Applied != wecomvendor.AppliedUnauthorized {
		t.Fatalf("cancel_auth: %+v", ev)
	}
	for _, s := range []*wecomvendor.Suite{a, b} {
		_, err := s.Corp(corpA).AccessToken(ctx)
		if err == nil {
			err = ch.callAPI(ctx, s, corpA)
		}
		var re *wecomvendor.ReauthorizeError
		if !errors.As(err, &re) || !errors.Is(err, core.ErrRevoked) || re.CorpID != corpA {
			t.Fatalf("after cancel_auth: %v, want a *ReauthorizeError matching core.ErrRevoked", err)
		}
	}
	// The old create_auth, delivered late, is older than the cancellation.
	if ev := deliver(t, b, q, body, nil); ev.Applied != wecomvendor.AppliedOlderIgnored {
		t.Fatalf("create_auth delivered after cancel_auth: %+v, want %q", ev, wecomvendor.AppliedOlderIgnored)
	}
	if _, err := a.PermanentCode(ctx, corpA); !errors.Is(err, core.ErrRevoked) {
		t.Fatalf("PermanentCode after the cancellation = %v, want withdrawn", err)
	}

	// A re-install later is a new install.
	ch.s.Advance(2 * time.Second)
	ch.install(t, b, corpA)
	if err := ch.callAPI(ctx, a, corpA); err != nil {
		t.Fatalf("a call as the corp after the re-install: %v", err)
	}
}

func mustCode(t *testing.T, s *wecomvendor.Suite, corp string) string {
	t.Helper()
	c, err := s.PermanentCode(t.Context(), corp)
	if err != nil {
		t.Fatal(err)
	}
	return c.Value
}

func TestCustomAppChain(t *testing.T) {
	ch := newChain(t)
	s := ch.suite(t, customID)
	if !s.CustomApp() {
		t.Fatal("a dk… suite is not a custom-developed app template")
	}
	ctx := t.Context()
	ch.pushTicket(t, s)
	ch.install(t, s, corpA)
	if err := ch.callAPI(ctx, s, corpA); err != nil {
		t.Fatalf("a call as the corp: %v", err)
	}
	old := mustCode(t, s, corpA)

	// The vendor resets the app's secret: the push brings the new code.
	ch.s.Advance(time.Second)
	code := ch.s.ResetPermanentCode(customID, corpA)
	q, body, err := ch.s.ResetPermanentCodePush(customID, code, pushToken, pushKey)
	if ev := deliver(t, s, q, body, err); ev.Applied != wecomvendor.AppliedAuthorized || ev.CorpID != corpA {
		t.Fatalf("reset_permanent_code: %+v", ev)
	}
	now := mustCode(t, s, corpA)
	if now == old || !ch.s.PermanentCodeValid(customID, corpA, now) || ch.s.PermanentCodeValid(customID, corpA, old) {
		t.Fatal("the stored permanent_code is not the reset one")
	}
	// A fresh process fetches its corp token with the new code.
	ch.s.Advance(3 * time.Hour)
	if err := ch.callAPI(ctx, ch.suite(t, customID), corpA); err != nil {
		t.Fatalf("a call as the corp after the reset: %v", err)
	}
}

func TestTicketsOrderedByTimeStamp(t *testing.T) {
	ch := newChain(t)
	s := ch.suite(t, suiteID)
	ctx := t.Context()
	at := ch.s.Now()
	newer, older := "ticket-newer", "ticket-older"
	if stored, err := s.SetSuiteTicket(ctx, newer, at); err != nil || !stored {
		t.Fatal(stored, err)
	}
	if stored, err := s.SetSuiteTicket(ctx, older, at.Add(-time.Minute)); err != nil || stored {
		t.Fatalf("an older ticket: stored %v, %v", stored, err)
	}
	got, err := s.SuiteTicket(ctx)
	if err != nil || got.Value != newer {
		t.Fatalf("SuiteTicket = %v, %v", got.Value, err)
	}
	ch.s.Advance(wecomvendor.SuiteTicketLifetime)
	if _, err := s.SuiteTicket(ctx); !errors.Is(err, wecomvendor.ErrNoSuiteTicket) {
		t.Fatalf("a ticket past its 30 minutes = %v, want ErrNoSuiteTicket", err)
	}
}

func TestPushesThatDoNotVerifyAreRefused(t *testing.T) {
	ch := newChain(t)
	s := ch.suite(t, suiteID)
	ch.s.SetSuiteSecret("wwothersuite0001", suiteSecret)
	q, body, _, err := ch.s.SuiteTicketPush("wwothersuite0001", pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.HandleEvent(t.Context(), q, bytes.NewReader(body)); !errors.Is(err, msgcrypt.ErrAppID) {
		t.Fatalf("another suite's ticket push = %v, want ErrAppID", err)
	}
	q, body, _, _ = ch.s.SuiteTicketPush(suiteID, pushToken, pushKey)
	q.Set("msg_signature", strings.Repeat("0", 40))
	if _, err := s.HandleEvent(t.Context(), q, bytes.NewReader(body)); !errors.Is(err, msgcrypt.ErrSignature) {
		t.Fatalf("a push with a bad signature = %v, want ErrSignature", err)
	}
	if _, err := s.SuiteTicket(t.Context()); !errors.Is(err, wecomvendor.ErrNoSuiteTicket) {
		t.Fatal("a refused push stored a ticket")
	}
}

func TestEventHandlerVerifiesTheURLForTheSuiteOrTheProvider(t *testing.T) {
	ch := newChain(t)
	s := ch.suite(t, suiteID)
	srv := httptest.NewServer(s.EventHandler())
	defer srv.Close()
	for _, rid := range []string{suiteID, providerCorp} {
		c, err := msgcrypt.New(pushToken, pushKey, rid)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := c.Encrypt([]byte("echo-" + rid))
		if err != nil {
			t.Fatal(err)
		}
		ts, nonce := fmt.Sprint(ch.s.Now().Unix()), "nonce1"
		q := url.Values{"msg_signature": {msgcrypt.MsgSignature(pushToken, ts, nonce, enc)}, "timestamp": {ts}, "nonce": {nonce}, "echostr": {enc}}
		resp, err := http.Get(srv.URL + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || b.String() != "echo-"+rid {
			t.Errorf("URL verification for %s: %d %q", rid, resp.StatusCode, b.String())
		}
	}
	q, body, _, _ := ch.s.SuiteTicketPush(suiteID, pushToken, pushKey)
	resp, err := http.Post(srv.URL+"?"+q.Encode(), "text/xml", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || b.String() != "success" {
		t.Fatalf("ticket push over HTTP: %d %q", resp.StatusCode, b.String())
	}
}

// A create_auth whose record the store does not take is held, and lands
// once the store is back: the permanent_code WeCom gave once is not lost.
func TestInstallHeldWhenTheStoreFails(t *testing.T) {
	ch := newChain(t)
	faulty := storetest.NewFaulty()
	ch.store = faulty
	s := ch.suite(t, suiteID, func(c *wecomvendor.Config) { c.Policy.RefreshTimeout = 200 * time.Millisecond })
	ch.pushTicket(t, s)
	code := ch.s.Install(suiteID, corpA)
	q, body, err := ch.s.CreateAuthPush(suiteID, code, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	record := func(op, key string) bool { return op == "refresh" && strings.HasSuffix(key, "/permanent_code") }
	faulty.ArmEvery(record, storetest.Fail)
	if _, err := s.HandleEvent(t.Context(), q, bytes.NewReader(body)); !errors.Is(err, storetest.ErrInjected) {
		t.Fatalf("create_auth on a store that fails = %v, want its error", err)
	}
	if ch.s.Calls(wxtest.PathPermanentCode) != 1 || s.Held() != 1 {
		t.Fatalf("exchanges %d, held %d: want 1 and 1", ch.s.Calls(wxtest.PathPermanentCode), s.Held())
	}
	faulty.Arm(func(string, string) bool { return false }, storetest.Fail) // the store is back
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !ch.s.PermanentCodeValid(suiteID, corpA, mustCode(t, s, corpA)) {
		t.Fatal("the held permanent_code did not land")
	}
	// WeCom's retry of the push finds it applied.
	if ev := deliver(t, s, q, body, nil); ev.Applied != wecomvendor.AppliedAlready {
		t.Fatalf("create_auth delivered again: %+v", ev)
	}
}

func TestProviderToken(t *testing.T) {
	ch := newChain(t)
	ch.s.SetProviderSecret(providerCorp, "pr0vider-s3cret")
	p, err := wecomvendor.NewProvider(wecomvendor.ProviderConfig{CorpID: providerCorp, ProviderSecret: core.NewSecret("pr0vider-s3cret"),
		Store: ch.store, BaseURL: ch.s.URL, Now: ch.s.Now, NoLedger: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.ProviderAccessToken(t.Context())
	if err != nil || !ch.s.ProviderTokenValid(tok.Value) {
		t.Fatalf("ProviderAccessToken = %v, %v", tok, err)
	}
	if s := fmt.Sprintf("%v %+v %#v", p, p, p); strings.Contains(s, "pr0vider-s3cret") {
		t.Fatal("the provider secret shows in a rendering")
	}
}

// Two resets pushed in one order and applied in the other: the older push
// is exchanged last, so WeCom honours its code, although its push is
// older than the record the newer one wrote first. Its exchange came after
// that write, so it is the newest authorization (dated after it), and the
// code it replaces is kept beside it until the corp's next token fetch: no
// permanent_code WeCom holds valid is lost.
func TestResetsAppliedOutOfOrderKeepTheLiveCode(t *testing.T) {
	ch := newChain(t)
	a, b := ch.suite(t, customID), ch.suite(t, customID)
	ch.pushTicket(t, a)
	ch.install(t, a, corpA)
	ch.s.Advance(time.Second)
	c1 := ch.s.ResetPermanentCode(customID, corpA)
	q1, body1, err := ch.s.ResetPermanentCodePush(customID, c1, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	ch.s.Advance(time.Second)
	c2 := ch.s.ResetPermanentCode(customID, corpA)
	q2, body2, err := ch.s.ResetPermanentCodePush(customID, c2, pushToken, pushKey)
	if ev := deliver(t, a, q2, body2, err); ev.Applied != wecomvendor.AppliedAuthorized {
		t.Fatalf("the newer reset: %+v", ev)
	}
	if ev := deliver(t, b, q1, body1, nil); ev.Applied != wecomvendor.AppliedAuthorized {
		t.Fatalf("the older reset, exchanged last: %+v, want %q", ev, wecomvendor.AppliedAuthorized)
	}
	if stored := mustCode(t, b, corpA); !ch.s.PermanentCodeValid(customID, corpA, stored) {
		t.Fatal("the stored permanent_code is not the one WeCom holds valid")
	}
	ch.s.Advance(3 * time.Hour)
	if err := ch.callAPI(t.Context(), ch.suite(t, customID), corpA); err != nil {
		t.Fatalf("a call as the corp: %v", err)
	}
	if stored := mustCode(t, b, corpA); !ch.s.PermanentCodeValid(customID, corpA, stored) {
		t.Fatal("the stored permanent_code is not the one WeCom holds valid")
	}
}

// refreshGate holds the next Refresh of a key containing match until
// released.
type refreshGate struct {
	core.TokenStore
	mu               sync.Mutex
	match            string
	arrived, release chan struct{}
}

func (g *refreshGate) arm(match string) (arrived <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.match, g.arrived, g.release = match, make(chan struct{}), make(chan struct{})
	rel := g.release
	var once sync.Once
	return g.arrived, func() { once.Do(func() { close(rel) }) }
}

func (g *refreshGate) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	g.mu.Lock()
	var arrived, release chan struct{}
	if g.match != "" && strings.Contains(key, g.match) {
		arrived, release, g.match = g.arrived, g.release, ""
	}
	g.mu.Unlock()
	if arrived != nil {
		close(arrived)
		<-release
	}
	return g.TokenStore.Refresh(ctx, key, stale, fetch)
}

// The mirror of TestRedteam27ConcurrentResetsLeaveARetiredPermanentCode:
// the newer reset is exchanged first, the older one last (WeCom honours
// its code), and the newer one's record lands between the older one's read
// and its write, so the older push finds a newer record and is ignored.
// Its code is kept beside that record, and the corp's next token fetch
// keeps it: the live permanent_code is not lost.
func TestCrossedResetsKeepTheCodeOfTheIgnoredPush(t *testing.T) {
	ch := newChain(t)
	gs := &gateStore{TokenStore: ch.store}
	rg := &refreshGate{TokenStore: gs}
	ch.store = rg
	a, b := ch.suite(t, customID), ch.suite(t, customID)
	ch.pushTicket(t, a)
	ch.install(t, a, corpA)
	ch.s.Advance(time.Second)
	c1 := ch.s.ResetPermanentCode(customID, corpA)
	q1, body1, err := ch.s.ResetPermanentCodePush(customID, c1, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	ch.s.Advance(time.Second)
	c2 := ch.s.ResetPermanentCode(customID, corpA)
	q2, body2, err := ch.s.ResetPermanentCodePush(customID, c2, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	// A exchanges the newer code and stops before it reads the record.
	aAt, aGo := gs.arm("/authorization_code/")
	aDone := make(chan error, 1)
	go func() {
		_, err := a.HandleEvent(context.Background(), q2, bytes.NewReader(body2))
		aDone <- err
	}()
	<-aAt
	// B exchanges the older code (last: WeCom now honours it), reads the
	// record and stops at its write.
	bAt, bGo := rg.arm("/permanent_code")
	type result struct {
		ev  *wecomvendor.Event
		err error
	}
	bDone := make(chan result, 1)
	go func() {
		ev, err := b.HandleEvent(context.Background(), q1, bytes.NewReader(body1))
		bDone <- result{ev, err}
	}()
	<-bAt
	aGo()
	if err := <-aDone; err != nil {
		t.Fatalf("the newer reset on A: %v", err)
	}
	bGo()
	r := <-bDone
	if r.err != nil || r.ev.Applied != wecomvendor.AppliedOlderIgnored {
		t.Fatalf("the older reset on B: %+v, %v; want %q", r.ev, r.err, wecomvendor.AppliedOlderIgnored)
	}
	ch.s.Advance(3 * time.Hour)
	if err := ch.callAPI(t.Context(), ch.suite(t, customID), corpA); err != nil {
		t.Fatalf("a call as the corp after the crossed resets: %v", err)
	}
	if stored := mustCode(t, b, corpA); !ch.s.PermanentCodeValid(customID, corpA, stored) {
		t.Fatal("the stored permanent_code is not the one WeCom holds valid")
	}
}

// A vendor's corp signs wx.agentConfig with its app's agentid, read once
// from get_auth_info, for third-party and custom-developed suites alike.
func TestCorpAgentConfig(t *testing.T) {
	for _, id := range []string{suiteID, customID} {
		t.Run(id, func(t *testing.T) {
			ch := newChain(t)
			s := ch.suite(t, id)
			ch.pushTicket(t, s)
			ch.install(t, s, corpA)
			corp := s.Corp(corpA)
			got, err := corp.AgentID(t.Context())
			if err != nil || got != ch.s.AgentID(id, corpA) {
				t.Fatalf("AgentID = %d, %v; want %d", got, err, ch.s.AgentID(id, corpA))
			}
			before := ch.s.Calls(wecomvendor.PathAuthInfo)
			cfg, err := corp.AgentConfig(t.Context(), "https://vendor.example/page?x=1#frag")
			if err != nil {
				t.Fatal(err)
			}
			if cfg.AgentID != fmt.Sprint(got) || cfg.CorpID != corpA || len(cfg.Signature) != 40 {
				t.Fatalf("AgentConfig = %+v", cfg)
			}
			if n := ch.s.Calls(wecomvendor.PathAuthInfo) - before; n != 0 {
				t.Errorf("get_auth_info called %d more times: the agentid is kept by the handle", n)
			}
		})
	}
}

// A process that dies right after its first store call following the
// exchange of an install's code loses nothing: the permanent_code WeCom
// gives once was written ahead (with the code index), and WeCom's re-send
// of the push, whose code it now refuses as used, writes the corp's record
// from there (found by the fault sweep, conformance.Sweep's WeComInstall
// in the kill mode: the code index was written there without the code,
// and the record's write reads before it writes).
func TestInstallSurvivesACrashRightAfterTheExchange(t *testing.T) {
	ch := newChain(t)
	faulty := storetest.NewFaulty()
	ch.store = faulty.TokenStore // the live processes' view
	alive := ch.suite(t, suiteID)
	ch.pushTicket(t, alive)
	ch.store = faulty // the view of the process that dies
	dead := ch.suite(t, suiteID, func(c *wecomvendor.Config) { c.Policy.RefreshTimeout = 100 * time.Millisecond })
	code := ch.s.Install(suiteID, corpA)
	q, body, err := ch.s.CreateAuthPush(suiteID, code, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	faulty.ArmEvery(func(op, key string) bool {
		if ch.s.Calls(wxtest.PathPermanentCode) == 0 {
			return false
		}
		calls++
		return calls > 1 // dead from its second store call after the exchange on
	}, storetest.Fail)
	if _, err := dead.HandleEvent(t.Context(), q, bytes.NewReader(body)); err == nil {
		t.Fatal("create_auth applied by a process whose store calls fail")
	}
	// WeCom re-sends the push; another process takes it.
	if ev := deliver(t, alive, q, body, nil); ev.Applied != wecomvendor.AppliedAuthorized || ev.CorpID != corpA {
		t.Fatalf("create_auth re-sent after the crash: %+v, want %q for %s", ev, wecomvendor.AppliedAuthorized, corpA)
	}
	if !ch.s.PermanentCodeValid(suiteID, corpA, mustCode(t, alive, corpA)) {
		t.Fatal("the stored permanent_code is not the one WeCom holds valid")
	}
	if err := ch.callAPI(t.Context(), alive, corpA); err != nil {
		t.Fatalf("a call as the corp: %v", err)
	}
}

// A re-sent create_auth whose code WeCom refuses as used, and whose corp
// the code index cannot tell (its write failed), is acknowledged
// (AppliedCodeSpent): its install is in the store, and answering an error
// would only have WeCom re-send it in vain (found by the fault sweep,
// conformance.Sweep's WeComInstall, hang mode).
func TestCreateAuthAgainWithoutItsCodeIndex(t *testing.T) {
	ch := newChain(t)
	faulty := storetest.NewFaulty()
	ch.store = faulty
	s := ch.suite(t, suiteID)
	ch.pushTicket(t, s)
	faulty.ArmEvery(func(op, key string) bool { return op == "set" && strings.Contains(key, "/authorization_code/") }, storetest.Fail)
	q, body := ch.install(t, s, corpA)
	ev, err := s.HandleEvent(t.Context(), q, bytes.NewReader(body))
	if err != nil || ev.Applied != wecomvendor.AppliedCodeSpent || ev.CorpID != "" {
		t.Fatalf("create_auth delivered again, its code index lost = %+v, %v; want %q and no error", ev, err, wecomvendor.AppliedCodeSpent)
	}
	if !ch.s.PermanentCodeValid(suiteID, corpA, mustCode(t, s, corpA)) {
		t.Fatal("the stored permanent_code is not the one WeCom holds valid")
	}
	// The redirect of the same code cannot name the corp: its caller gets
	// WeCom's refusal.
	if _, err := s.Authorize(t.Context(), "unknown-code"); err == nil {
		t.Fatal("Authorize of a code WeCom does not know succeeded")
	}
}

// cutTransport has the caller give up (cancel) right after WeCom answered
// a call to path, as an HTTP client does when the ctx ends while the reply
// is on its way.
type cutTransport struct {
	base   http.RoundTripper
	path   string
	cancel context.CancelFunc
}

func (t cutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err == nil && r.URL.Path == t.path {
		t.cancel()
		if cerr := r.Context().Err(); cerr != nil {
			resp.Body.Close()
			return nil, cerr
		}
	}
	return resp, err
}

// A create_auth whose caller gives up while get_permanent_code's reply is
// on its way (WeCom's request timing out, a deadline spent by a slow
// store) loses nothing: the code is spent at WeCom, so its reply is read
// and the corp's record written (found by the fault sweep,
// conformance.Sweep's WeComInstall in the hang mode: a store call that
// hung until the deadline left the exchange no time to read its reply).
func TestInstallWhoseCallerGivesUpDuringTheExchange(t *testing.T) {
	ch := newChain(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := ch.suite(t, suiteID, func(c *wecomvendor.Config) {
		c.HTTPClient = &http.Client{Transport: cutTransport{base: http.DefaultTransport, path: wxtest.PathPermanentCode, cancel: cancel}}
		c.Policy.RefreshTimeout = 200 * time.Millisecond
	})
	ch.pushTicket(t, s)
	code := ch.s.Install(suiteID, corpA)
	q, body, err := ch.s.CreateAuthPush(suiteID, code, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	s.HandleEvent(ctx, q, bytes.NewReader(body)) // its answer is WeCom's concern: it re-sends
	fctx, fcancel := context.WithTimeout(t.Context(), time.Minute)
	defer fcancel()
	if err := s.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if !ch.s.PermanentCodeValid(suiteID, corpA, mustCode(t, s, corpA)) {
		t.Fatal("the stored permanent_code is not the one WeCom holds valid")
	}
}
