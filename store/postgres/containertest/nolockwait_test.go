package containertest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	pgstore "github.com/wechatconf/wechatconf/store/postgres"
)

// Settings of the Confs in TestNoLockHeldWhileWaitingForAnother: a lease
// short enough that a Refresh stuck behind the pool fails quickly, and a
// RefreshTimeout well past it, so that what fails is the lease.
const (
	noWaitLease          = 5 * time.Second
	noWaitRefreshTimeout = 20 * time.Second
	noWaitLatency        = 50 * time.Millisecond
)

// credentialCall is one of the three Conf methods a caller may ask for.
type credentialCall struct {
	name string
	call func(*core.Conf, context.Context) (core.Token, error)
}

var (
	callJSAPITicket = credentialCall{"JSAPITicket", (*core.Conf).JSAPITicket}
	callCardTicket  = credentialCall{"CardTicket", (*core.Conf).CardTicket}
	callAccessToken = credentialCall{"AccessToken", (*core.Conf).AccessToken}
)

// noWaitConf returns a Conf of appID over store, calling server.
func noWaitConf(t *testing.T, server *wxtest.Server, store core.TokenStore, prefix, appID string) *core.Conf {
	t.Helper()
	c, err := core.New(core.Config{
		AppID: appID, AppSecret: core.NewSecret("not-a-real-secret"),
		Store: store, KeyPrefix: prefix,
		BaseURL: server.URL, HTTPClient: server.Client(), Now: server.Now,
		RefreshTimeout: noWaitRefreshTimeout,
		RetryBackoff:   time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// coldCalls makes every call at once, released together, and returns their
// errors (nil for a success) in order; a successful call's token must be
// valid on server.
func coldCalls(t *testing.T, server *wxtest.Server, confs []*core.Conf, calls []credentialCall) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*noWaitRefreshTimeout)
	defer cancel()
	errs := make([]error, len(calls))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range calls {
		conf := confs[i%len(confs)]
		wg.Go(func() {
			<-start
			tok, err := c.call(conf, ctx)
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("%s of %s: %w", c.name, conf.AppID(), err)
			case c.name == callAccessToken.name && !server.TokenValid(tok.Value),
				c.name != callAccessToken.name && !server.TicketValid(tok.Value):
				errs[i] = fmt.Errorf("%s of %s returned a credential the server does not accept", c.name, conf.AppID())
			}
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// ticketGate wraps a store so that the ticket refreshes of a cold start
// meet at the worst moment for a Conf that would fetch the access token
// under a ticket's lock: a ticket's Refresh waits, before it reaches the
// store, until Refresh has been called for `tickets` ticket keys, and its
// fetch, which runs under the store's lock, waits until the fetches of
// `held` ticket keys have started. It delays nothing else (Get, and every
// call for the access token, go straight through), and nothing once those
// two meetings have happened.
type ticketGate struct {
	core.TokenStore
	tickets, held int

	mu                sync.Mutex
	arrived, fetching map[string]bool
	allIn, enoughHeld chan struct{}
}

func newTicketGate(s core.TokenStore, tickets, held int) *ticketGate {
	return &ticketGate{
		TokenStore: s, tickets: tickets, held: held,
		arrived: map[string]bool{}, fetching: map[string]bool{},
		allIn: make(chan struct{}), enoughHeld: make(chan struct{}),
	}
}

func isTicketKey(key string) bool {
	return strings.HasSuffix(key, "/jsapi_ticket") || strings.HasSuffix(key, "/wx_card_ticket")
}

// mark records key in seen and closes done when seen reaches n keys.
func (g *ticketGate) mark(seen map[string]bool, n int, done chan struct{}, key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !seen[key] {
		seen[key] = true
		if len(seen) == n {
			close(done)
		}
	}
}

func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *ticketGate) Refresh(ctx context.Context, key, stale string, fetch core.FetchFunc) (core.Token, error) {
	if !isTicketKey(key) {
		return g.TokenStore.Refresh(ctx, key, stale, fetch)
	}
	g.mark(g.arrived, g.tickets, g.allIn, key)
	if err := wait(ctx, g.allIn); err != nil {
		return core.Token{}, err
	}
	return g.TokenStore.Refresh(ctx, key, stale, func(fctx context.Context) (core.Token, error) {
		g.mark(g.fetching, g.held, g.enoughHeld, key)
		if err := wait(fctx, g.enoughHeld); err != nil {
			return core.Token{}, err
		}
		return fetch(fctx)
	})
}

// TestNoLockHeldWhileWaitingForAnother tests that a Conf never holds a
// store's refresh lock, and so a pooled connection of pgstore, while it
// waits for another refresh: a ticket's refresh needs the access token,
// and a ticket Refresh that fetched it inside the store's lock would hold
// its transaction's connection while the access token's Refresh waits for
// one. On a cold start with as many tickets to refresh as the pool has
// connections, every call must succeed: none may fail at the lease.
func TestNoLockHeldWhileWaitingForAnother(t *testing.T) {
	needServer(t)

	t.Run("FourAppIDs", func(t *testing.T) {
		// Four Confs of different AppIDs over one store with a pool of 4,
		// each asking for both tickets at once: 8 ticket refreshes, each
		// needing its AppID's access token. The gate lets the 8 ticket
		// Refreshes reach the store together and their fetches go on once
		// 4 of them hold a lock (and a connection): the moment a Conf that
		// fetched the access token under a ticket's lock could not get out
		// of until the lease ends.
		server := wxtest.New(wxtest.Options{Latency: noWaitLatency})
		t.Cleanup(server.Close)
		pool := newPool(t, testDSN, func(c *pgxpool.Config) { c.MaxConns = 4 })
		store := newTicketGate(newStoreOn(t, pool, pgstore.WithLease(noWaitLease)), 8, 4)
		prefix := uniqueKey(t)
		var confs []*core.Conf
		var calls []credentialCall
		for i := range 4 {
			confs = append(confs, noWaitConf(t, server, store, prefix, fmt.Sprintf("wxnowait%02d", i)))
		}
		for range 4 {
			calls = append(calls, callJSAPITicket)
		}
		for range 4 {
			calls = append(calls, callCardTicket)
		}
		failed := 0
		for _, err := range coldCalls(t, server, confs, calls) {
			if err != nil {
				failed++
				t.Errorf("cold start of 4 AppIDs × 2 tickets over a pool of 4 connections (lease %v): %v; want every call to succeed (no store lock, no pooled connection, held while waiting for the access token)", noWaitLease, err)
			}
		}
		if failed == 0 {
			if n := server.TokensIssued(); n != 4 {
				t.Errorf("access tokens issued: %d, want 4 (one per AppID)", n)
			}
			if n := server.TicketsIssued(); n != 8 {
				t.Errorf("tickets issued: %d, want 8 (two per AppID)", n)
			}
		}
	})

	t.Run("HerdOnOneAppID", func(t *testing.T) {
		// One Conf over a pool of 2: a herd asking for both tickets and the
		// access token at once, cold, in whatever order the scheduler
		// gives.
		server := wxtest.New(wxtest.Options{Latency: noWaitLatency})
		t.Cleanup(server.Close)
		pool := newPool(t, testDSN, func(c *pgxpool.Config) { c.MaxConns = 2 })
		store := newStoreOn(t, pool, pgstore.WithLease(noWaitLease))
		conf := noWaitConf(t, server, store, uniqueKey(t), "wxnowaitherd")
		var calls []credentialCall
		for i := range 21 {
			calls = append(calls, []credentialCall{callJSAPITicket, callCardTicket, callAccessToken}[i%3])
		}
		failed := 0
		for _, err := range coldCalls(t, server, []*core.Conf{conf}, calls) {
			if err != nil {
				failed++
				t.Errorf("cold herd of %d calls on one AppID over a pool of 2 connections (lease %v): %v; want every call to succeed", len(calls), noWaitLease, err)
			}
		}
		if n := server.TokensIssued(); n != 1 {
			t.Errorf("access tokens issued: %d, want 1 (a herd fetches once)", n)
		}
		if n := server.TicketsIssued(); failed == 0 && n != 2 {
			t.Errorf("tickets issued: %d, want 2 (one jsapi_ticket, one wx_card ticket)", n)
		}
	})
}
