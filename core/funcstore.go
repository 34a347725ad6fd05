package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// StoreFuncs are the user functions a FuncStore is built from: the seed's
// access_token_getfunc, access_token_setfunc and access_token_refreshfunc.
// Get is required, and so is one of Set and Refresh:
//
//   - Get + Set (the seed's way 2, one machine): tokens live wherever the
//     functions put them; Refresh takes an in-process per-key lock around
//     Get → fetch → Set, so one process fetches once however many goroutines
//     ask. It does not coordinate several processes: use a shared store
//     (file, Redis, PostgreSQL, etcd) for that.
//   - Get + Refresh (the seed's way 3, a worker): Refresh is delegated to the
//     user's master (an HTTP call to a token server, say), which receives
//     stale so it can compare-and-refresh; the worker never calls WeChat.
//
// With both Set and Refresh, Refresh delegates and Set writes.
type StoreFuncs struct {
	// Get returns the token stored under key. Returning an error wrapping
	// ErrNotFound, or a zero Token and a nil error, both mean "nothing
	// stored".
	Get func(ctx context.Context, key string) (Token, error)
	// Set stores t under key.
	Set func(ctx context.Context, key string, t Token) error
	// Refresh asks the master for a token to replace stale ("" when the
	// worker had none) and returns it. The master fetches only if the
	// token it holds still equals stale.
	Refresh func(ctx context.Context, key, stale string) (Token, error)
}

// FuncStore is a TokenStore built from user functions; see StoreFuncs for
// its two forms. It is safe for concurrent use if the functions are.
//
// A FuncStore does not implement KeyLister: its functions get and set one
// key each and have no way to enumerate what they hold (and in the worker
// form the tokens live with the master), so the wechatconf command's ls
// and its not-found hint cannot list one. List the store behind the
// functions, or the master's, instead.
type FuncStore struct {
	f     StoreFuncs
	lease time.Duration
	locks keyLocks
}

// NewFuncStore builds a TokenStore from f. It is an error if f.Get is nil
// or if neither f.Set nor f.Refresh is given. WithLease bounds the fetch in
// the Set form; the Refresh form leaves timing to the master and to ctx.
func NewFuncStore(f StoreFuncs, opts ...StoreOption) (*FuncStore, error) {
	switch {
	case f.Get == nil:
		return nil, errors.New("wechatconf: NewFuncStore: StoreFuncs.Get is required")
	case f.Set == nil && f.Refresh == nil:
		return nil, errors.New("wechatconf: NewFuncStore: StoreFuncs needs Set (single machine) or Refresh (worker of a master)")
	}
	o := buildStoreOptions(opts)
	return &FuncStore{f: f, lease: o.lease}, nil
}

// Get implements TokenStore by calling StoreFuncs.Get.
func (s *FuncStore) Get(ctx context.Context, key string) (Token, error) {
	if err := CheckCall(ctx, key); err != nil {
		return Token{}, fmt.Errorf("funcstore: get: %w", err)
	}
	t, found, err := s.get(ctx, key)
	if err != nil {
		return Token{}, err
	}
	if !found {
		return Token{}, fmt.Errorf("funcstore: get %q: %w", key, ErrNotFound)
	}
	return t, nil
}

// Set implements TokenStore by calling StoreFuncs.Set. In the worker form
// (no Set function) it returns an error: the master owns the tokens.
func (s *FuncStore) Set(ctx context.Context, key string, t Token) error {
	if err := CheckSet(ctx, key, t); err != nil {
		return fmt.Errorf("funcstore: set %q: %w", key, err)
	}
	if s.f.Set == nil {
		return fmt.Errorf("funcstore: set %q: this store has no Set function (worker form: the master writes tokens)", key)
	}
	if err := s.f.Set(ctx, key, t); err != nil {
		return fmt.Errorf("funcstore: set %q: %w", key, err)
	}
	return nil
}

// Refresh implements TokenStore: it delegates to StoreFuncs.Refresh when
// given, and otherwise runs Get → fetch → Set under an in-process per-key
// lock with a lease.
func (s *FuncStore) Refresh(ctx context.Context, key, stale string, fetch FetchFunc) (Token, error) {
	if err := CheckCall(ctx, key); err != nil {
		return Token{}, fmt.Errorf("funcstore: refresh: %w", err)
	}
	if s.f.Refresh != nil {
		t, err := s.f.Refresh(ctx, key, stale)
		if err != nil {
			return Token{}, fmt.Errorf("funcstore: refresh %q via the master: %w", key, err)
		}
		if t.Value == "" {
			return Token{}, fmt.Errorf("funcstore: refresh %q: the master returned an empty token", key)
		}
		return t, nil
	}
	t, err := s.locks.refresh(ctx, key, stale, s.lease, fetch,
		func(ctx context.Context) (Token, bool, error) { return s.get(ctx, key) },
		func(ctx context.Context, t Token) error { return s.f.Set(ctx, key, t) })
	if err != nil {
		return Token{}, fmt.Errorf("funcstore: refresh %q: %w", key, err)
	}
	return t, nil
}

// get calls StoreFuncs.Get and folds its two "nothing stored" answers into
// found == false.
func (s *FuncStore) get(ctx context.Context, key string) (t Token, found bool, err error) {
	t, err = s.f.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return Token{}, false, nil
	case err != nil:
		return Token{}, false, fmt.Errorf("funcstore: get %q: %w", key, err)
	}
	return t, t.Value != "", nil
}
