package wecomvendor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/storetest"
	"github.com/wechatconf/wechatconf/core/wecomvendor"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Red team 27: findings against core/internal/tenant and core/wecomvendor,
// each a test that fails on the code it was written against.

// gateStore is a TokenStore that, once armed, holds the next Set of a key
// containing match until released: a process paused between two of its
// store calls.
type gateStore struct {
	core.TokenStore
	mu      sync.Mutex
	match   string
	arrived chan struct{}
	release chan struct{}
}

// arm holds the next Set of a key containing match; it returns a channel
// closed when that Set arrives, and the function that lets it through.
func (g *gateStore) arm(match string) (arrived <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.match, g.arrived, g.release = match, make(chan struct{}), make(chan struct{})
	rel := g.release
	var once sync.Once
	return g.arrived, func() { once.Do(func() { close(rel) }) }
}

func (g *gateStore) Set(ctx context.Context, key string, t core.Token) error {
	g.mu.Lock()
	var arrived, release chan struct{}
	if g.match != "" && strings.Contains(key, g.match) {
		arrived, release = g.arrived, g.release
		g.match = ""
	}
	g.mu.Unlock()
	if arrived != nil {
		close(arrived)
		<-release
	}
	return g.TokenStore.Set(ctx, key, t)
}

// Two reset_permanent_code pushes of one custom-developed app (the vendor
// clicked "reset secret" twice) reach two processes at once. Each code is
// exchanged (WeCom keeps the permanent code of the LAST exchange and
// retires the one before), but neither push names the corp, so neither
// process can read the corp's record before its exchange: the record each
// writes is decided by what the store holds after it — and the exchange
// that wins the store is not the one WeCom honours. The corp is left with
// a retired permanent code (gettoken 40001: the app is dead for the corp
// until the vendor resets again).
func TestRedteam27ConcurrentResetsLeaveARetiredPermanentCode(t *testing.T) {
	ch := newChain(t)
	gs := &gateStore{TokenStore: ch.store}
	ch.store = gs
	a, b := ch.suite(t, customID), ch.suite(t, customID) // two processes
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

	// A applies the newer push: it exchanges c2 and is paused at its next
	// store call (the code index), before it reads the record.
	arrived, release := gs.arm("/authorization_code/")
	done := make(chan error, 1)
	go func() {
		_, err := a.HandleEvent(context.Background(), q2, bytes.NewReader(body2))
		done <- err
	}()
	<-arrived
	// B applies the older push meanwhile: its exchange comes after A's,
	// so WeCom now holds B's permanent code valid.
	if ev := deliver(t, b, q1, body1, nil); ev.Applied != wecomvendor.AppliedAuthorized {
		t.Fatalf("reset_permanent_code (older) on B: %+v", ev)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("reset_permanent_code (newer) on A: %v", err)
	}
	// The store cannot tell which exchange WeCom made last: the record
	// keeps both codes, and the corp's next token fetch keeps the one WeCom
	// takes. The live code must not be lost.
	ch.s.Advance(3 * time.Hour) // past the token B's install fetched
	if err := ch.callAPI(t.Context(), ch.suite(t, customID), corpA); err != nil {
		t.Fatalf("a call as the corp after the crossed resets: %v", err)
	}
	if stored := mustCode(t, b, corpA); !ch.s.PermanentCodeValid(customID, corpA, stored) {
		t.Fatal("the stored permanent_code is one WeCom retired: the exchange written last is not the one WeCom honours")
	}
}

// rendered returns the renderings of v a log line or an error may carry.
func rendered(t *testing.T, v any) map[string]string {
	t.Helper()
	out := map[string]string{
		"%v": fmt.Sprintf("%v", v), "%+v": fmt.Sprintf("%+v", v), "%#v": fmt.Sprintf("%#v", v), "%s": fmt.Sprintf("%s", v),
	}
	if b, err := json.Marshal(v); err == nil {
		out["json"] = string(b)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("event", "event", v)
	out["slog text"] = buf.String()
	return out
}

// carries reports whether rendering r holds secret: as text, as the
// decimal bytes %v prints of a []byte, or inside a base64 []byte of JSON.
func carries(r, secret string) bool {
	if strings.Contains(r, secret) {
		return true
	}
	dec := strings.Trim(fmt.Sprint([]byte(secret)), "[]")
	if strings.Contains(r, dec) {
		return true
	}
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(r), &m) == nil {
		for _, raw := range m {
			var b []byte
			if json.Unmarshal(raw, &b) == nil && bytes.Contains(b, []byte(secret)) {
				return true
			}
		}
	}
	return false
}

// Event's doc says its credentials are core.Secret values "which no
// rendering shows", but Event.XML is the decrypted push, holding the
// AuthCode (and a suite_ticket push's SuiteTicket) in clear: %s prints it,
// %v its bytes, JSON and slog's JSON handler its base64. An application
// that logs the Event it got from HandleEvent logs the auth code.
func TestRedteam27EventRenderingsCarryTheAuthCodeAndTicket(t *testing.T) {
	ch := newChain(t)
	s := ch.suite(t, suiteID)
	q, body, ticket, err := ch.s.SuiteTicketPush(suiteID, pushToken, pushKey)
	tev := deliver(t, s, q, body, err)
	code := ch.s.Install(suiteID, corpA)
	q, body, err = ch.s.CreateAuthPush(suiteID, code, pushToken, pushKey)
	cev := deliver(t, s, q, body, err)
	for _, c := range []struct {
		name, secret string
		ev           *wecomvendor.Event
	}{{"suite_ticket", ticket, tev}, {"auth code", code, cev}} {
		for how, r := range rendered(t, c.ev) {
			if carries(r, c.secret) {
				t.Errorf("the %s shows in the %s rendering of its Event", c.name, how)
			}
		}
	}
}

// A get_permanent_code reply that is not what the harness expects (a
// field of another type) is a *core.ReplyError keeping the reply's body —
// with the permanent_code in it: "permanent_code" is not among the
// parameters core redacts. HandleEvent's error (logged by the push
// handler, returned to the caller) then carries the corp's durable secret.
func TestRedteam27MalformedPermanentCodeReplyShowsThePermanentCode(t *testing.T) {
	ch := newChain(t)
	s := ch.suite(t, suiteID)
	ch.pushTicket(t, s)
	const pc = "PC-durable-secret-0123456789"
	ch.s.InjectFault(wxtest.PathPermanentCode, wxtest.Fault{Body: `{"errcode":0,"errmsg":"ok","permanent_code":"` + pc + `","auth_corp_info":{"corpid":12345,"corp_name":"x"}}`}, 1)
	code := ch.s.Install(suiteID, corpA)
	q, body, err := ch.s.CreateAuthPush(suiteID, code, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.HandleEvent(t.Context(), q, bytes.NewReader(body))
	var re *core.ReplyError
	if !errors.As(err, &re) {
		t.Fatalf("a malformed get_permanent_code reply = %v, want a *core.ReplyError", err)
	}
	for how, r := range rendered(t, err) {
		if strings.Contains(r, pc[3:15]) {
			t.Errorf("the permanent_code shows in the %s rendering of the error: %s", how, r)
		}
	}
}

// The same for the provider_access_token: a reply of get_provider_token
// whose expires_in is not a number keeps the body, and
// "provider_access_token" is not redacted ("access_token" is, but not
// inside another name).
func TestRedteam27MalformedProviderTokenReplyShowsTheToken(t *testing.T) {
	ch := newChain(t)
	ch.s.SetProviderSecret(providerCorp, "pr0vider-s3cret")
	var logs bytes.Buffer
	p, err := wecomvendor.NewProvider(wecomvendor.ProviderConfig{CorpID: providerCorp, ProviderSecret: core.NewSecret("pr0vider-s3cret"),
		Store: ch.store, BaseURL: ch.s.URL, Now: ch.s.Now, NoLedger: true, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	const tok = "PTOK-abcdefghijklmnopqrstuvwxyz"
	ch.s.InjectFault(wxtest.PathProviderToken, wxtest.Fault{Body: `{"errcode":0,"errmsg":"ok","provider_access_token":"` + tok + `","expires_in":"7200"}`}, 1)
	_, err = p.ProviderAccessToken(t.Context())
	if err == nil {
		t.Fatal("a malformed get_provider_token reply was taken")
	}
	if strings.Contains(err.Error(), tok[5:20]) {
		t.Errorf("the provider_access_token shows in the error: %v", err)
	}
	if strings.Contains(logs.String(), tok[5:20]) {
		t.Errorf("the provider_access_token shows in the log: %s", logs.String())
	}
}

// detachingTransport sends each request whatever becomes of its context
// (the request reached WeCom, which processes it), and returns the
// context's error if it ended meanwhile: the reply is lost because the
// caller gave up — as when WeCom's push connection (5 s) is closed while
// the exchange it triggered is in flight.
type detachingTransport struct{ base http.RoundTripper }

func (d detachingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.base.RoundTrip(r.WithContext(context.WithoutCancel(r.Context())))
	if err == nil && r.Context().Err() != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, r.Context().Err()
	}
	return resp, err
}

// HandleEvent exchanges the auth code with the caller's context — the
// push request's (ParseEvent uses r.Context()). When WeCom gives up on the
// push (its 5 s timeout: a slow store or suite token fetch before the
// exchange is enough) the exchange's reply is dropped although WeCom made
// it: the code is spent, the corp's previous permanent code (if any)
// retired, and the new one is in no store. WeCom's retry of the push then
// gets 40078 and fails; the corp is left without a working permanent code
// and must install again. An exchange (a single-use code spent at WeCom)
// should not be bound to the pusher's connection.
func TestRedteam27ExchangeReplyDroppedWhenThePusherGivesUp(t *testing.T) {
	ch := newChain(t)
	s := ch.suite(t, suiteID, func(c *wecomvendor.Config) {
		c.HTTPClient = &http.Client{Transport: detachingTransport{http.DefaultTransport}}
	})
	ch.pushTicket(t, s)
	if _, err := s.SuiteAccessToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	code := ch.s.Install(suiteID, corpA)
	q, body, err := ch.s.CreateAuthPush(suiteID, code, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	gate := ch.s.Block(wxtest.PathPermanentCode)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := s.HandleEvent(ctx, q, bytes.NewReader(body))
		done <- err
	}()
	<-gate.Arrived()
	cancel() // WeCom closes the push connection
	gate.Release()
	<-done
	// WeCom re-sends the push.
	ev, err := s.HandleEvent(t.Context(), q, bytes.NewReader(body))
	t.Logf("the re-sent push: %+v, %v", ev, err)
	pc, err := s.PermanentCode(t.Context(), corpA)
	if err != nil || !ch.s.PermanentCodeValid(suiteID, corpA, pc.Value) {
		t.Fatalf("after the push's connection closed mid-exchange and its retry: PermanentCode = %v; WeCom holds a permanent code no store has", err)
	}
}

// A record write that lands but reports failure is retried; the retry
// finds the record written by this very call and reports AppliedAlready,
// so the Event of the first (and only) application of an install says
// "already applied" instead of "authorized".
func TestRedteam27LandedInstallReportedAsAlreadyApplied(t *testing.T) {
	ch := newChain(t)
	faulty := storetest.NewFaulty()
	ch.store = faulty
	s := ch.suite(t, suiteID)
	ch.pushTicket(t, s)
	code := ch.s.Install(suiteID, corpA)
	q, body, err := ch.s.CreateAuthPush(suiteID, code, pushToken, pushKey)
	if err != nil {
		t.Fatal(err)
	}
	hit := faulty.Arm(func(op, key string) bool { return op == "refresh" && strings.HasSuffix(key, "/permanent_code") }, storetest.Lands)
	ev := deliver(t, s, q, body, nil)
	<-hit
	if ev.Applied != wecomvendor.AppliedAuthorized {
		t.Errorf("the install's first application: Applied = %q, want %q", ev.Applied, wecomvendor.AppliedAuthorized)
	}
}

// A corp whose permanent_code WeCom refused (40084: it cancelled and the
// cancel_auth push is not applied yet, or lost) installs again; the
// create_auth is applied in this process (its handle told). Its
// AccessToken is still refused for Policy.ErrorBackoff (1 minute): the
// back-off of the refused OLD code holds back the fetch with the NEW one,
// and the new record holds no access token to serve (v2
// get_permanent_code gives none, unlike Open Platform's api_query_auth).
func TestRedteam27ReinstallHeldBackByTheOldCodesBackoff(t *testing.T) {
	ch := newChain(t)
	s := ch.suite(t, suiteID)
	ctx := t.Context()
	ch.pushTicket(t, s)
	ch.install(t, s, corpA)
	if _, err := s.Corp(corpA).AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	ch.s.Advance(time.Second)
	ch.s.Uninstall(suiteID, corpA) // its cancel_auth push is lost
	ch.s.Advance(3 * time.Hour)    // the corp token expired
	ch.pushTicket(t, s)
	var re *wecomvendor.ReauthorizeError
	if _, err := s.Corp(corpA).AccessToken(ctx); !errors.As(err, &re) {
		t.Fatalf("AccessToken with a refused permanent_code = %v, want a *ReauthorizeError", err)
	}
	ch.s.Advance(time.Second)
	ch.install(t, s, corpA)
	if _, err := s.Corp(corpA).AccessToken(ctx); err != nil {
		t.Fatalf("AccessToken after the corp installed again (applied by this process) = %v", err)
	}
}

// WeCom refuses the stored suite_ticket (40085: newer tickets were issued
// and their pushes lost, or WeCom re-issued them). The suite_access_token
// fetch fails with ErrNoSuiteTicket wrapping a configuration errcode, which
// starts Policy.ErrorBackoff (1 minute): when the next suite_ticket push
// arrives and is stored, the suite_access_token — and with it every
// create_auth exchange and corp token of the process — is still refused
// until the back-off ends. WeCom's retries of a create_auth push in that
// minute (5 s apart, three of them) all fail, and the install is lost.
func TestRedteam27NewSuiteTicketHeldBackByTheRefusedTicketsBackoff(t *testing.T) {
	ch := newChain(t)
	s := ch.suite(t, suiteID)
	ctx := t.Context()
	ch.pushTicket(t, s)
	ch.s.Advance(25 * time.Minute)
	ch.s.SuiteTicketSchedule(suiteID) // two newer tickets whose pushes were lost
	if _, err := s.SuiteAccessToken(ctx); !errors.Is(err, wecomvendor.ErrNoSuiteTicket) {
		t.Fatalf("SuiteAccessToken with a refused ticket = %v, want ErrNoSuiteTicket", err)
	}
	ch.pushTicket(t, s) // the next push arrives
	if _, err := s.SuiteAccessToken(ctx); err != nil {
		t.Fatalf("SuiteAccessToken after a new suite_ticket was stored = %v", err)
	}
}
