package core

import (
	"context"
	"errors"
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
