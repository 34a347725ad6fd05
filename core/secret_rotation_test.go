package core_test

// Red team 2 (issue 25 §5): a SecretSource that blocks, panics, or keeps
// the old secret.

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/storetest"
)

// A Get waiting for another Get's slow source read honours its own ctx:
// before, it waited on a mutex for as long as the other read took (the
// first caller's ctx, up to RefreshTimeout), whatever its own deadline.
func TestRotatingSecretGetHonoursCtxWhileAnotherReads(t *testing.T) {
	inSource, release := make(chan struct{}), make(chan struct{})
	rs, err := core.NewRotatingSecret(core.RotatingSecretConfig{Source: func(ctx context.Context) (core.Secret, error) {
		close(inSource)
		select {
		case <-release:
			return core.NewSecret(appSecret), nil
		case <-ctx.Done():
			return core.Secret{}, ctx.Err()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { _, err := rs.Get(context.Background()); first <- err }()
	<-inSource
	var released atomic.Bool
	// Failsafe so that the old code ends: the source is released after a
	// minute, and the second Get must have returned before.
	failsafe := time.AfterFunc(time.Minute, func() { released.Store(true); close(release) })
	defer func() {
		if failsafe.Stop() {
			close(release)
		}
		<-first
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = rs.Get(ctx)
	if released.Load() {
		t.Fatal("a Get with an ended ctx waited for another Get's source read to finish")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with an ended ctx = %v; want context.Canceled", err)
	}
}

// A source that panics gives the fetch an error, not a crash of the
// process: the source runs in the credential's background refresh, where
// no caller could recover it. The panic's value (which may be the secret)
// is not in the error.
func TestPanickingSecretSourceIsAnError(t *testing.T) {
	s := newServer(t)
	var calls atomic.Int32
	c := newConf(t, s, func(cfg *core.Config) {
		cfg.AppSecret = core.Secret{}
		cfg.AppSecretSource = func(context.Context) (core.Secret, error) {
			calls.Add(1)
			panic("vault client: " + appSecret)
		}
	})
	_, err := c.AccessToken(t.Context())
	var se *core.SecretSourceError
	if !errors.As(err, &se) {
		t.Fatalf("AccessToken with a panicking source = %v; want a *SecretSourceError", err)
	}
	if strings.Contains(err.Error(), "vault client") {
		t.Errorf("the error holds the panic's value: %q", err)
	}
	// The source's lock was released: the next read (after the back-off)
	// is not stuck.
	rs, _ := core.NewRotatingSecret(core.RotatingSecretConfig{Source: func(context.Context) (core.Secret, error) { panic("x") }})
	for range 2 {
		if _, err := rs.Get(t.Context()); err == nil {
			t.Fatal("Get of a panicking source = nil error")
		}
	}
}

// The AppSecret reset while the store is down (stable_token,
// Policy.FetchWithoutStore): the fetch without the store is refused with
// ErrSecretRefused, the source is read again at the first fetch after
// ErrorBackoff, and that fetch — still without the store — succeeds. The
// source is read once per refusal, never per caller.
func TestRotationDuringStoreOutage(t *testing.T) {
	s := newServer(t)
	store := storetest.NewDown()
	src := &countingSource{value: appSecret}
	c := newConf(t, s, func(cfg *core.Config) {
		cfg.AppSecret, cfg.AppSecretSource, cfg.Store = core.Secret{}, src.read, store
	})
	ctx := t.Context()
	if _, err := c.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	store.Failing.Store(true)
	s.SetAppSecret(appID, newAppSecret)
	s.Advance(7200 * time.Second) // the held token expires
	for range 20 {
		_, err := c.AccessToken(ctx)
		if err == nil {
			t.Fatal("a token with the old secret and the store down")
		}
		noSecretsIn(t, "the error", err.Error())
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("source read %d times, want 1 (the first fetch)", n)
	}
	src.set(newAppSecret, nil)
	s.Advance(core.DefaultErrorBackoff + time.Second)
	// One caller at a time: a caller arriving while a flight is under way
	// with the store known to be down is not made to wait for it (it gets
	// the store's error at once: see Credential.refresh).
	for range 10 {
		if _, err := c.AccessToken(ctx); err != nil {
			t.Fatalf("AccessToken after the rotation with the store down: %v", err)
		}
	}
	if n := src.calls.Load(); n != 2 {
		t.Errorf("source read %d times, want 2", n)
	}
}

// A Mini Program that only logs users in (Code2Session, no token call)
// recovers from an AppSecret reset through its AppSecretSource: the
// refusal (40125) marks the secret refused, and the next login reads the
// source again. Before, only a token call's refusal did, so a login-only
// service failed every login until it was restarted.
func TestCode2SessionRereadsARefusedSecret(t *testing.T) {
	s := newServer(t)
	src := &countingSource{value: appSecret}
	c := newConf(t, s, func(cfg *core.Config) { cfg.AppSecret, cfg.AppSecretSource = core.Secret{}, src.read })
	ctx := t.Context()
	if _, err := c.Code2Session(ctx, s.IssueLoginCode("oUser1")); err != nil {
		t.Fatal(err)
	}
	s.SetAppSecret(appID, newAppSecret)
	_, err := c.Code2Session(ctx, s.IssueLoginCode("oUser1"))
	if !errors.Is(err, core.ErrSecretRefused) {
		t.Fatalf("Code2Session with the old secret = %v; want ErrSecretRefused", err)
	}
	noSecretsIn(t, "the refusal", err.Error())
	src.set(newAppSecret, nil)
	if _, err := c.Code2Session(ctx, s.IssueLoginCode("oUser1")); err != nil {
		t.Fatalf("Code2Session once the source holds the new secret = %v", err)
	}
	if n := src.calls.Load(); n != 2 {
		t.Errorf("source read %d times, want 2", n)
	}
}
