package core

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestFetchUntil(t *testing.T) {
	boom := errors.New("boom")
	ctx := t.Context()
	if _, err := FetchUntil(ctx, time.Now().Add(time.Hour), func(context.Context) (Token, error) { return Token{}, boom }); !errors.Is(err, boom) || errors.Is(err, ErrLockLost) {
		t.Errorf("failing fetch within the lease: %v, want boom and not ErrLockLost", err)
	}
	_, err := FetchUntil(ctx, time.Now().Add(10*time.Millisecond), func(ctx context.Context) (Token, error) {
		<-ctx.Done()
		return Token{}, ctx.Err()
	})
	if !errors.Is(err, ErrLockLost) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("fetch cut by the lease: %v, want ErrLockLost and DeadlineExceeded", err)
	}
	if _, err := FetchUntil(ctx, time.Now().Add(time.Hour), func(context.Context) (Token, error) { return Token{}, nil }); err == nil {
		t.Error("FetchUntil accepted an empty token")
	}
	got, err := FetchUntil(ctx, time.Now().Add(time.Hour), func(context.Context) (Token, error) {
		return Token{Value: "v", ExpiresAt: time.Now().Add(time.Hour)}, nil
	})
	if err != nil || got.Value != "v" || got.ExpiresAt != got.ExpiresAt.Round(0) {
		t.Errorf("FetchUntil = %v, %v; want the token without a monotonic reading", got, err)
	}
}

func TestContextError(t *testing.T) {
	boom := errors.New("connection closed")
	if got := ContextError(t.Context(), boom); got != boom {
		t.Errorf("ContextError with a live ctx = %v, want the error unchanged", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got := ContextError(ctx, boom)
	if !errors.Is(got, context.Canceled) || !errors.Is(got, boom) {
		t.Errorf("ContextError with a done ctx = %v, want it to wrap context.Canceled and the error", got)
	}
	if already := fmt.Errorf("x: %w", context.Canceled); ContextError(ctx, already) != already {
		t.Error("ContextError wrapped an error that already matches ctx.Err()")
	}
	if ContextError(ctx, nil) != nil {
		t.Error("ContextError(ctx, nil) is not nil")
	}
}
