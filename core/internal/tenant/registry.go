package tenant

import (
	"runtime"
	"sync"
	"sync/atomic"
	"weak"
)

// Registry holds the in-memory handles of a platform's tenants (Open
// Platform authorizers, WeCom corps), at most Max of them strongly: beyond
// it the least recently used are dropped (a CLOCK sweep with a second
// chance) and rebuilt by New when asked for again. A handle a caller still
// holds after its eviction is found again through a weak pointer, so there
// is one handle per tenant while any is referenced, and Each reaches it. A
// Registry holds no goroutine or timer; its lookup allocates nothing. The
// zero value is not usable: set New and Max.
type Registry[T any] struct {
	// New makes the handle of tenant id (no I/O). It may be called for an
	// id twice at once; one result is kept.
	New func(id string) *T
	// Max is how many handles are kept strongly (> 0).
	Max int

	handles   sync.Map     // id → *entry[T]
	count     atomic.Int64 // entries whose handle is held strongly
	evictMu   sync.Mutex
	evictions atomic.Int64
}

// entry is the registry's slot of one tenant: the handle, held strongly
// while it is among the Max kept, and weakly always, so that a handle a
// caller kept after its eviction is found again. The entry is deleted
// once the handle is collected.
type entry[T any] struct {
	weak   weak.Pointer[T]
	strong atomic.Pointer[T] // nil once evicted
	used   atomic.Bool       // asked for since the last eviction sweep
}

// live returns the entry's handle if it still exists, nil if collected.
func (e *entry[T]) live() *T {
	if a := e.strong.Load(); a != nil {
		return a
	}
	return e.weak.Value()
}

// Get returns id's handle, making it with New on first use.
func (r *Registry[T]) Get(id string) *T {
	if v, ok := r.handles.Load(id); ok {
		e := v.(*entry[T])
		if a := e.strong.Load(); a != nil {
			if !e.used.Load() {
				e.used.Store(true)
			}
			return a
		}
		if a := e.weak.Value(); a != nil && r.pin(e, a) {
			return a
		}
	}
	return r.make(id)
}

// Lookup returns id's handle if this process holds one (in the registry,
// or kept by a caller after its eviction), nil otherwise; it makes none.
func (r *Registry[T]) Lookup(id string) *T {
	if v, ok := r.handles.Load(id); ok {
		return v.(*entry[T]).live()
	}
	return nil
}

// Each calls f for every handle alive, until f returns false.
func (r *Registry[T]) Each(f func(id string, h *T) bool) {
	r.handles.Range(func(k, v any) bool {
		if a := v.(*entry[T]).live(); a != nil {
			return f(k.(string), a)
		}
		return true
	})
}

// Stats reports the handles held strongly and those dropped so far.
func (r *Registry[T]) Stats() (held, evicted int64) { return r.count.Load(), r.evictions.Load() }

// pin puts a, found through e's weak pointer, back among the handles kept,
// and reports whether it did (false: another goroutine pinned another).
func (r *Registry[T]) pin(e *entry[T], a *T) bool {
	if !e.strong.CompareAndSwap(nil, a) {
		return e.strong.Load() == a
	}
	e.used.Store(true)
	if r.count.Add(1) > int64(r.Max) {
		r.evict()
	}
	return true
}

func (r *Registry[T]) make(id string) *T {
	// A new handle starts unreferenced: the next sweep drops it unless it
	// is asked for again (CLOCK with second chance), so a burst of
	// one-off lookups does not push out the tenants in steady use.
	a := r.New(id)
	e := &entry[T]{weak: weak.Make(a)}
	e.strong.Store(a)
	for {
		v, loaded := r.handles.LoadOrStore(id, e)
		if !loaded {
			break
		}
		old := v.(*entry[T])
		if b := old.live(); b != nil {
			if old.strong.Load() == b || r.pin(old, b) {
				return b // another goroutine made it, or a caller kept it
			}
			continue
		}
		if r.handles.CompareAndSwap(id, old, e) { // its handle was collected
			break
		}
	}
	// Once no caller and no registry slot holds the handle, its entry goes.
	runtime.AddCleanup(a, func(id string) { r.handles.CompareAndDelete(id, e) }, id)
	if r.count.Add(1) > int64(r.Max) {
		r.evict()
	}
	return a
}

// evict drops handles not asked for since the last sweep (a CLOCK sweep)
// until a tenth of Max is free. Only the registry's hold is dropped: a
// handle a caller keeps stays reachable (see entry), and what the store
// holds stays there.
func (r *Registry[T]) evict() {
	if !r.evictMu.TryLock() {
		return // another sweep is running
	}
	defer r.evictMu.Unlock()
	target := int64(r.Max) - int64(r.Max)/10
	for pass := 0; pass < 2 && r.count.Load() > target; pass++ {
		r.handles.Range(func(_, v any) bool {
			e := v.(*entry[T])
			a := e.strong.Load()
			switch {
			case a == nil:
				return true
			case e.used.Load():
				e.used.Store(false)
				return true
			}
			if e.strong.CompareAndSwap(a, nil) {
				r.count.Add(-1)
				r.evictions.Add(1)
			}
			return r.count.Load() > target
		})
	}
}
