package containertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wechatconf/wechatconf/conformance/containers"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
)

// TestRefreshTimeoutHoldsWhateverTheStoreDoes tests that a Conf's refresh
// ends at Config.RefreshTimeout whatever its store does: over a Redis
// server that is paused (every process frozen: connections stay open, no
// reply comes) and a client with no timeouts of its own that ignores ctx,
// a store call never returns; a cold AccessToken with a context that never
// ends must still return by RefreshTimeout. With classic tokens it returns
// an error wrapping context.DeadlineExceeded and core.ErrStoreUnavailable,
// and no token call was made (one would invalidate the fleet's token);
// with stable tokens (core.Policy.FetchWithoutStore) it returns a valid
// token fetched without the store. Once the server is back, the next call
// succeeds.
func TestRefreshTimeoutHoldsWhateverTheStoreDoes(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses a container")
	}
	r := containers.StartRedis(t)
	for _, api := range []core.TokenAPI{core.ClassicToken, core.StableToken} {
		t.Run(api.String(), func(t *testing.T) { refreshTimeoutOverPausedRedis(t, r, api) })
	}
}

func refreshTimeoutOverPausedRedis(t *testing.T, r *containers.Redis, api core.TokenAPI) {
	const (
		refreshTimeout = time.Second
		// watchdog is how long the call may take before the test gives
		// up on it: far longer than RefreshTimeout, so that only a
		// refresh with no bound fails it.
		watchdog = 20 * time.Second
	)
	// A client that blocks for as long as the server does not answer: no
	// read or write timeout, and ctx not applied to the connection.
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, ReadTimeout: -1, WriteTimeout: -1, ContextTimeoutEnabled: false})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A connection in the pool, so that the store's first call goes out
	// on it and waits for a reply rather than dialling.
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}

	server := wxtest.New(wxtest.Options{})
	t.Cleanup(server.Close)
	conf, err := core.New(core.Config{
		AppID: "wxrefreshtimeout", AppSecret: core.NewSecret("not-a-real-secret"), TokenAPI: api,
		Store:     mustNew(t, rdb, redisstore.WithLease(testLease)),
		KeyPrefix: uniqueKey(t, "conf"),
		BaseURL:   server.URL, HTTPClient: server.Client(), Now: server.Now,
		RefreshTimeout: refreshTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}

	containers.Pause(t, r.Container)
	paused := true
	t.Cleanup(func() {
		if paused {
			containers.Unpause(t, r.Container)
		}
	})

	type result struct {
		tok core.Token
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		tok, err := conf.AccessToken(context.Background())
		done <- result{tok, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(watchdog):
		t.Fatalf("AccessToken(context.Background()) on a cold Conf over a paused Redis: no return after %v, with RefreshTimeout %v; want the refresh to end at RefreshTimeout whatever the store does", watchdog, refreshTimeout)
	}
	t.Logf("AccessToken over a paused Redis returned after %v: %v", time.Since(start).Round(time.Millisecond), res.err)
	switch api {
	case core.ClassicToken:
		if !errors.Is(res.err, context.DeadlineExceeded) || !errors.Is(res.err, core.ErrStoreUnavailable) {
			t.Errorf("classic AccessToken on a cold Conf over a paused Redis = %v; want an error wrapping context.DeadlineExceeded and core.ErrStoreUnavailable (RefreshTimeout %v)", res.err, refreshTimeout)
		}
		if n := server.Calls(wxtest.PathToken); n != 0 {
			t.Errorf("%d classic token calls while the store was paused, want 0: one would invalidate the fleet's token", n)
		}
	default:
		if res.err != nil || !server.TokenValid(res.tok.Value) {
			t.Errorf("stable AccessToken on a cold Conf over a paused Redis: %v (valid %v); want a valid token fetched without the store", res.err, server.TokenValid(res.tok.Value))
		}
	}

	containers.Unpause(t, r.Container)
	paused = false
	tok, err := conf.AccessToken(ctx)
	if err != nil || !server.TokenValid(tok.Value) {
		t.Errorf("AccessToken once Redis is back: valid %v, %v; want a valid token", server.TokenValid(tok.Value), err)
	}
}
