package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The steps every TokenStore takes the same way, for backends to call
// rather than rewrite (see also EncodeToken and DecodeToken).

// CheckCall is the check every TokenStore method starts with: an error
// wrapping ctx.Err() once ctx is done, then ValidateKey(key).
func CheckCall(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return ValidateKey(key)
}

// CheckSet is the check TokenStore.Set starts with: CheckCall, then an
// error wrapping ErrEmptyToken when t has no Value.
func CheckSet(ctx context.Context, key string, t Token) error {
	if err := CheckCall(ctx, key); err != nil {
		return err
	}
	if t.Value == "" {
		return ErrEmptyToken
	}
	return nil
}

// ContextError returns err as a store method returns it: once ctx is done,
// an error that wraps ctx.Err() as well as err, whatever the client library
// reported (a closed connection, "interrupted"), so that errors.Is(err,
// context.Canceled) or DeadlineExceeded holds as the contract asks; err
// unchanged otherwise.
func ContextError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); err != nil && cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// FetchUntil is rule 3's fetch: it calls fetch with a context that ends at
// deadline (the end of the caller's lock lease, counted from when the lock
// was taken) or when ctx ends, whichever comes first; if either has already
// passed, fetch is not called (ErrLockLost, or ctx's error). fetch's error comes back as is (errors.Is and errors.As still
// match it), wrapped together with ErrLockLost when the lease ran out first;
// an empty token is an error; the token's ExpiresAt comes back without a
// monotonic clock reading, as the wall-clock instant a store keeps. The
// fenced write that follows is the store's own.
func FetchUntil(ctx context.Context, deadline time.Time, fetch FetchFunc) (Token, error) {
	fctx, cancel := context.WithDeadline(ctx, deadline)
	if fctx.Err() != nil {
		// The lease ended (or ctx did) before fetch could start: a fetch now
		// would be a second one under what is already another's lock.
		cancel()
		if err := ctx.Err(); err != nil {
			return Token{}, err
		}
		return Token{}, fmt.Errorf("the lock's lease ended before fetch started: %w: %w", ErrLockLost, fctx.Err())
	}
	t, err := fetch(fctx)
	leaseOver := fctx.Err() != nil && ctx.Err() == nil
	cancel()
	switch {
	case err != nil && leaseOver:
		return Token{}, fmt.Errorf("fetch outlived the lock's lease: %w: %w", ErrLockLost, err)
	case err != nil:
		return Token{}, err
	case t.Value == "":
		return Token{}, errors.New("fetch returned an empty token")
	}
	t.ExpiresAt = t.ExpiresAt.Round(0)
	return t, nil
}
