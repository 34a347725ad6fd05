package tenant

import (
	"hash/maphash"
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

	shards    [registryShards]shard[T] // id → *entry[T], split by the id's hash
	count     atomic.Int64             // entries whose handle is held strongly
	evictMu   sync.Mutex
	evictions atomic.Int64
}

// registryShards is how many maps a Registry's entries are split over, so
// that lookups on several cores rarely share a lock's cache line.
const registryShards = 64

// shard is one of a Registry's maps, padded to its own cache lines. A plain
// map under a read lock: at 100,000 tenants its lookup touches fewer
// cache lines than a sync.Map's trie, which is what the hot path pays for.
type shard[T any] struct {
	mu sync.RWMutex
	m  map[string]*entry[T]
	_  [64 - 32]byte
}

// registrySeed hashes ids to shards.
var registrySeed = maphash.MakeSeed()

func (r *Registry[T]) shard(id string) *shard[T] {
	return &r.shards[maphash.String(registrySeed, id)%registryShards]
}

// load returns id's entry, nil if none.
func (r *Registry[T]) load(id string) *entry[T] {
	s := r.shard(id)
	s.mu.RLock()
	e := s.m[id]
	s.mu.RUnlock()
	return e
}

// each calls f for every entry until f returns false, on a copy of each
// shard's entries taken under its read lock (f may call Get).
func (r *Registry[T]) each(f func(id string, e *entry[T]) bool) {
	type kv struct {
		id string
		e  *entry[T]
	}
	var buf []kv
	for i := range r.shards {
		s := &r.shards[i]
		buf = buf[:0]
		s.mu.RLock()
		for id, e := range s.m {
			buf = append(buf, kv{id, e})
		}
		s.mu.RUnlock()
		for _, x := range buf {
			if !f(x.id, x.e) {
				return
			}
		}
	}
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
	if e := r.load(id); e != nil {
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
	if e := r.load(id); e != nil {
		return e.live()
	}
	return nil
}

// Each calls f for every handle alive, until f returns false.
func (r *Registry[T]) Each(f func(id string, h *T) bool) {
	r.each(func(id string, e *entry[T]) bool {
		if a := e.live(); a != nil {
			return f(id, a)
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
	s := r.shard(id)
	for {
		s.mu.Lock()
		old := s.m[id]
		if old == nil {
			if s.m == nil {
				s.m = make(map[string]*entry[T])
			}
			s.m[id] = e
			s.mu.Unlock()
			break
		}
		if b := old.live(); b == nil { // its handle was collected
			s.m[id] = e
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
		if b := old.live(); b != nil && (old.strong.Load() == b || r.pin(old, b)) {
			return b // another goroutine made it, or a caller kept it
		}
	}
	// Once no caller and no registry slot holds the handle, its entry goes.
	runtime.AddCleanup(a, func(id string) {
		s.mu.Lock()
		if s.m[id] == e {
			delete(s.m, id)
		}
		s.mu.Unlock()
	}, id)
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
		r.each(func(_ string, e *entry[T]) bool {
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
