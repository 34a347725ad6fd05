package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Backoff of the subscription whose connection failed, before it reconnects.
const (
	minReconnectPause = 50 * time.Millisecond
	maxReconnectPause = time.Second
)

// hub holds a Store's one Pub/Sub subscription, to the Store's wake
// channel (PREFIX + "wake"), on which every release is announced with the
// key's wake name as the message. It is opened when the first caller of the
// Store starts waiting, on any key, and closed when the last one stops; the
// callers waiting on one key share a wait, which a message naming the key
// wakes. Whatever the number of keys waited on, a Store holds at most one
// Pub/Sub connection, one subscribed channel and one goroutine, and one
// that nobody waits on holds none of them.
type hub struct {
	client  redis.UniversalClient
	channel string // the Store's wake channel

	mu    sync.Mutex
	sub   *subscription    // nil while nobody waits
	waits map[string]*wait // by key wake name (the message payload)
	n     int              // callers waiting, on all keys
}

// wait is the callers of the Store waiting on one key.
type wait struct {
	h    *hub
	name string // the key's wake name

	// Guarded by h.mu.
	refs int
	wake chan struct{} // closed and replaced at every message naming the key
}

// subscription is the hub's Pub/Sub connection, run by its own goroutine.
type subscription struct {
	h  *hub
	ps *redis.PubSub
	// stop is closed when the last waiter leaves.
	stop chan struct{}

	// Guarded by h.mu.
	ready chan struct{} // closed at the server's confirmation; replaced when the connection fails
}

// join returns the wait on the key whose wake name is name, subscribing
// the Store if nobody of it waits yet, and a channel closed once the server
// confirmed the subscription: a release after that is announced to the
// caller. The caller must call leave when it stops waiting.
func (h *hub) join(name string) (*wait, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sub == nil {
		// Subscribe sends SUBSCRIBE from run's first Receive: no I/O here.
		s := &subscription{
			h:     h,
			ps:    h.client.Subscribe(context.Background(), h.channel),
			stop:  make(chan struct{}),
			ready: make(chan struct{}),
		}
		h.sub = s
		go s.run()
	}
	if h.waits == nil {
		h.waits = make(map[string]*wait)
	}
	w := h.waits[name]
	if w == nil {
		w = &wait{h: h, name: name, wake: make(chan struct{})}
		h.waits[name] = w
	}
	w.refs++
	h.n++
	return w, h.sub.ready
}

// wakeChan returns the channel closed at the next message naming the key.
func (w *wait) wakeChan() <-chan struct{} {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	return w.wake
}

// leave ends one caller's wait; the last caller of the Store to leave, on
// any key, closes the subscription.
func (w *wait) leave() {
	h := w.h
	h.mu.Lock()
	w.refs--
	if w.refs == 0 {
		delete(h.waits, w.name)
	}
	h.n--
	if h.n > 0 {
		h.mu.Unlock()
		return
	}
	s := h.sub
	h.sub = nil
	close(s.stop)
	h.mu.Unlock()
	_ = s.ps.Close() // makes run's Receive return
}

// run receives the messages of the subscription and wakes the waits they
// name until the subscription is stopped. Connection errors are retried
// with a backoff (go-redis reconnects and subscribes again); messages
// published meanwhile are lost, which the waiters' retry timer covers.
func (s *subscription) run() {
	pause := minReconnectPause
	for {
		msg, err := s.ps.Receive(context.Background())
		if err != nil {
			s.h.mu.Lock()
			select {
			case <-s.ready:
				// Not subscribed until the server confirms again.
				s.ready = make(chan struct{})
			default:
			}
			s.h.mu.Unlock()
			timer := time.NewTimer(pause)
			select {
			case <-s.stop:
				timer.Stop()
				return
			case <-timer.C:
			}
			pause = min(2*pause, maxReconnectPause)
			continue
		}
		pause = minReconnectPause
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				s.h.mu.Lock()
				select {
				case <-s.ready:
				default:
					close(s.ready)
				}
				s.h.mu.Unlock()
			}
		case *redis.Message:
			s.h.mu.Lock()
			if w := s.h.waits[m.Payload]; w != nil && s.h.sub == s {
				close(w.wake)
				w.wake = make(chan struct{})
			}
			s.h.mu.Unlock()
		}
	}
}
