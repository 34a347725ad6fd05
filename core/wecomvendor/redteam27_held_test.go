package wecomvendor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/storetest"
	"github.com/wechatconf/wechatconf/core/wecomvendor"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// Red team 27: attacks that held, kept as guards.

// failingTransport fails the next n requests whose path is path with a
// network error (which http.Client reports with the request's URL, query
// included).
type failingTransport struct {
	base http.RoundTripper
	path string
	n    atomic.Int64
}

func (f *failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == f.path && f.n.Add(-1) >= 0 {
		return nil, errors.New("connection reset by peer")
	}
	return f.base.RoundTrip(r)
}

// No credential of the chain — the suite_secret, the callback Token and
// EncodingAESKey, suite tickets, auth codes, permanent codes, suite and
// corp tokens — shows, whole or in an 8-character part, in any error, log
// line or rendering, through installs, a reset, a cancellation, refused
// codes, network errors (whose URL carries corpsecret), malformed replies
// and store failures.
func TestRedteam27NoCredentialInErrorsLogsOrRenderings(t *testing.T) {
	ch := newChain(t)
	faulty := storetest.NewFaulty()
	ch.store = faulty
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ft := &failingTransport{base: http.DefaultTransport, path: "/cgi-bin/gettoken"}
	opts := func(c *wecomvendor.Config) {
		c.Logger = logger
		c.HTTPClient = &http.Client{Transport: ft}
		c.Policy.RefreshTimeout = 300 * time.Millisecond
		c.MaxRetries = 0
	}
	third, custom := ch.suite(t, suiteID, opts), ch.suite(t, customID, opts)
	ctx := t.Context()
	secrets := []string{suiteSecret, pushToken, pushKey}
	var texts []string
	note := func(err error) {
		if err != nil {
			texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
	}
	push := func(s *wecomvendor.Suite, q url.Values, body []byte, err error) *wecomvendor.Event {
		if err != nil {
			t.Fatal(err)
		}
		ev, err := s.HandleEvent(ctx, q, bytes.NewReader(body))
		note(err)
		if ev != nil {
			texts = append(texts, fmt.Sprintf("%v %+v %#v %s", ev, ev, ev, ev))
		}
		return ev
	}
	for _, s := range []*wecomvendor.Suite{third, custom} {
		q, body, ticket, err := ch.s.SuiteTicketPush(s.SuiteID(), pushToken, pushKey)
		secrets = append(secrets, ticket)
		push(s, q, body, err)
		st, err := s.SuiteAccessToken(ctx)
		note(err)
		secrets = append(secrets, st.Value)
		code := ch.s.Install(s.SuiteID(), corpA)
		secrets = append(secrets, code)
		q, body, err = ch.s.CreateAuthPush(s.SuiteID(), code, pushToken, pushKey)
		push(s, q, body, err)
		push(s, q, body, err) // re-sent
		pc, err := s.PermanentCode(ctx, corpA)
		note(err)
		secrets = append(secrets, pc.Value)
		tok, err := s.Corp(corpA).AccessToken(ctx)
		note(err)
		secrets = append(secrets, tok.Value)
		stored, _ := ch.store.Get(ctx, s.AuthorizationKey(corpA))
		rec, err := wecomvendor.ParseAuthorizationRecord(stored)
		note(err)
		texts = append(texts, fmt.Sprintf("%v %+v %#v", rec, rec, rec), fmt.Sprintf("%v %+v %#v %s", s, s, s, s))
	}
	// Network errors on gettoken (corpsecret = the permanent code in the
	// URL) and malformed replies.
	ch.s.Advance(3 * time.Hour)
	for _, s := range []*wecomvendor.Suite{third, custom} {
		q, body, ticket, err := ch.s.SuiteTicketPush(s.SuiteID(), pushToken, pushKey)
		secrets = append(secrets, ticket)
		push(s, q, body, err)
	}
	ft.n.Store(1)
	_, err := custom.Corp(corpA).AccessToken(ctx)
	note(err)
	ch.s.InjectFault(wxtest.PathCorpToken, wxtest.MalformedJSON(), 1)
	_, err = third.Corp(corpA).AccessToken(ctx)
	note(err)
	ch.s.Advance(3 * time.Hour)
	for _, s := range []*wecomvendor.Suite{third, custom} {
		q, body, ticket, err := ch.s.SuiteTicketPush(s.SuiteID(), pushToken, pushKey)
		secrets = append(secrets, ticket)
		push(s, q, body, err)
		tok, err := s.Corp(corpA).AccessToken(ctx)
		note(err)
		secrets = append(secrets, tok.Value)
	}
	// A reset with the record's write failing (held), then landing.
	ch.s.Advance(time.Second)
	code := ch.s.ResetPermanentCode(customID, corpA)
	secrets = append(secrets, code)
	q, body, err := ch.s.ResetPermanentCodePush(customID, code, pushToken, pushKey)
	faulty.ArmEvery(func(op, key string) bool { return op == "refresh" && strings.HasSuffix(key, "/permanent_code") }, storetest.Fail)
	push(custom, q, body, err)
	faulty.Arm(func(string, string) bool { return false }, storetest.Fail)
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	note(custom.Flush(fctx))
	cancel()
	pc, err := custom.PermanentCode(ctx, corpA)
	note(err)
	secrets = append(secrets, pc.Value)
	ch.s.Advance(3 * time.Hour)
	ch.s.SuiteTicketSchedule(customID)
	// The old permanent code refused; a cancellation.
	ch.s.Uninstall(suiteID, corpA)
	ch.s.Advance(3 * time.Hour)
	_, err = third.Corp(corpA).AccessToken(ctx)
	note(err)
	q, body, err = ch.s.CancelAuthPush(suiteID, corpA, pushToken, pushKey)
	push(third, q, body, err)
	_, err = third.Corp(corpA).AccessToken(ctx)
	note(err)
	var re *wecomvendor.ReauthorizeError
	if errors.As(err, &re) {
		texts = append(texts, fmt.Sprintf("%v %+v %#v", re, re, re))
	}
	_, err = third.PermanentCode(ctx, corpA)
	note(err)
	texts = append(texts, logs.String())

	all := strings.Join(texts, "\n")
	for _, sec := range secrets {
		if len(sec) < 8 {
			continue
		}
		for i := 0; i+8 <= len(sec); i++ {
			if strings.Contains(all, sec[i:i+8]) {
				t.Errorf("a credential shows (%q…) in an error, a log line or a rendering", sec[i : i+8][:3])
				break
			}
		}
	}
	if len(secrets) < 15 {
		t.Fatalf("only %d credentials were seen", len(secrets))
	}
}

// A reset_permanent_code applied while a corp-token refresh of the old
// code holds the record's lock — and outlives its lease, the store's lock
// lost mid-fetch while WeCom answers it — never puts the old permanent
// code back: the refresh's write is refused (fenced), its write-back is a
// compare-and-set from the value it replaced.
func TestRedteam27ResetDuringARefreshThatLosesItsLease(t *testing.T) {
	ch := newChain(t)
	ch.store = core.NewMemoryStore(core.WithLease(200 * time.Millisecond))
	s := ch.suite(t, customID, func(c *wecomvendor.Config) {
		c.HTTPClient = &http.Client{Transport: detachingTransport{http.DefaultTransport}}
	})
	r := ch.suite(t, customID)
	ch.pushTicket(t, s)
	ch.install(t, s, corpA)
	ctx := t.Context()
	if _, err := s.Corp(corpA).AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	ch.s.Advance(3 * time.Hour)
	ch.pushTicket(t, s)
	gate := ch.s.Block("/cgi-bin/gettoken")
	done := make(chan error, 1)
	go func() { _, err := s.Corp(corpA).AccessToken(ctx); done <- err }()
	<-gate.Arrived()
	// The vendor resets the secret; the push reaches another process,
	// whose write waits out the refresh's lease.
	ch.s.Advance(time.Second)
	code := ch.s.ResetPermanentCode(customID, corpA)
	q, body, err := ch.s.ResetPermanentCodePush(customID, code, pushToken, pushKey)
	if ev := deliver(t, r, q, body, err); ev.Applied != wecomvendor.AppliedAuthorized {
		t.Fatalf("reset_permanent_code: %+v", ev)
	}
	gate.Release() // WeCom answers the old code's gettoken (40001 now)
	<-done
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if pc := mustCode(t, r, corpA); !ch.s.PermanentCodeValid(customID, corpA, pc) {
		t.Fatal("the refresh put the old permanent_code back")
	}
	if _, err := r.Corp(corpA).AccessToken(ctx); err != nil {
		t.Fatalf("AccessToken after the reset: %v", err)
	}
}

// Every order of delivery of one corp's install, cancellation and
// re-install pushes (each event a second apart), each delivered twice and
// alternately to two processes, ends with the state WeCom holds: the
// re-install's permanent code, valid.
func TestRedteam27InstallCancelReinstallInEveryOrder(t *testing.T) {
	perms := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, p := range perms {
		t.Run(fmt.Sprint(p), func(t *testing.T) {
			ch := newChain(t)
			a, b := ch.suite(t, suiteID), ch.suite(t, suiteID)
			ch.pushTicket(t, a)
			type push struct {
				q    url.Values
				body []byte
			}
			var pushes [3]push
			c1 := ch.s.Install(suiteID, corpA)
			pushes[0].q, pushes[0].body, _ = ch.s.CreateAuthPush(suiteID, c1, pushToken, pushKey)
			// The install is exchanged at once (by the push or the
			// redirect): deliver it now to a third process and forget it.
			deliver(t, ch.suite(t, suiteID), pushes[0].q, pushes[0].body, nil)
			ch.s.Advance(time.Second)
			ch.s.Uninstall(suiteID, corpA)
			pushes[1].q, pushes[1].body, _ = ch.s.CancelAuthPush(suiteID, corpA, pushToken, pushKey)
			ch.s.Advance(time.Second)
			c3 := ch.s.Install(suiteID, corpA)
			pushes[2].q, pushes[2].body, _ = ch.s.CreateAuthPush(suiteID, c3, pushToken, pushKey)
			for i, k := range append(p, p...) {
				s := []*wecomvendor.Suite{a, b}[i%2]
				if _, err := s.HandleEvent(t.Context(), pushes[k].q, bytes.NewReader(pushes[k].body)); err != nil && k != 0 {
					t.Fatalf("push %d on process %d: %v", k, i%2, err)
				}
			}
			if pc := mustCode(t, a, corpA); !ch.s.PermanentCodeValid(suiteID, corpA, pc) {
				t.Fatal("the stored permanent_code is not the one WeCom holds valid")
			}
			if err := ch.callAPI(t.Context(), b, corpA); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Suite tickets: an older one, the same one twice, another suite's, and
// a push without a TimeStamp leave the newest stored.
func TestRedteam27SuiteTicketsOlderDuplicateForeignOrUndated(t *testing.T) {
	ch := newChain(t)
	s := ch.suite(t, suiteID)
	ch.s.SetSuiteSecret("wwothersuite0001", suiteSecret)
	now := ch.s.Now()
	q, body, newest, err := ch.s.SuiteTicketPush(suiteID, pushToken, pushKey)
	deliver(t, s, q, body, err)
	deliver(t, s, q, body, nil) // duplicate
	q, body, err = ch.s.VendorPushAt(now.Add(-time.Minute), suiteID, map[string]string{"InfoType": "suite_ticket", "SuiteTicket": "older-ticket"}, pushToken, pushKey)
	if ev := deliver(t, s, q, body, err); ev.Applied != "older ticket ignored" {
		t.Fatalf("an older ticket: %+v", ev)
	}
	q, body, _, _ = ch.s.SuiteTicketPush("wwothersuite0001", pushToken, pushKey)
	if _, err := s.HandleEvent(t.Context(), q, bytes.NewReader(body)); err == nil {
		t.Fatal("another suite's ticket was taken")
	}
	q, body, _ = ch.s.VendorPushAt(time.Unix(0, 0), suiteID, map[string]string{"InfoType": "suite_ticket", "SuiteTicket": "undated-ticket"}, pushToken, pushKey)
	s.HandleEvent(t.Context(), q, bytes.NewReader(body))
	if got, err := s.SuiteTicket(t.Context()); err != nil || got.Value != newest {
		t.Fatalf("SuiteTicket = %v, want the newest", err)
	}
}
