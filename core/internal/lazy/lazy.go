// Package lazy holds a value made on first use and shared after, for the
// credentials a handle may never need (a Conf's tickets, a WeCom app's):
// thousands of vendor tenants that only ask for their access token then
// never pay for them.
package lazy

import (
	"sync"
	"sync/atomic"
)

// Value is a *T made by the first Get and returned by every Get after it.
// The zero Value is empty and ready; it must not be copied after first
// use.
type Value[T any] struct {
	p  atomic.Pointer[T]
	mu sync.Mutex
}

// Get returns the value, calling make to make it if there is none yet
// (once, whichever goroutines ask at once).
func (v *Value[T]) Get(make func() *T) *T {
	if p := v.p.Load(); p != nil {
		return p
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if p := v.p.Load(); p != nil {
		return p
	}
	p := make()
	v.p.Store(p)
	return p
}

// Load returns the value if it was made, nil otherwise.
func (v *Value[T]) Load() *T { return v.p.Load() }
