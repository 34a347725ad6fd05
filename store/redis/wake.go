package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Backoff of a subscription whose connection failed, before it reconnects.
const (
	minReconnectPause = 50 * time.Millisecond
	maxReconnectPause = time.Second
)

// hub holds a Store's Pub/Sub subscriptions to wake channels: one per key
// that callers of the Store are waiting on, shared by those callers, opened
// when the first starts waiting and closed when the last stops. A Store
// that nobody waits on holds no subscription and no goroutine.
type hub struct {
	client redis.UniversalClient

	mu   sync.Mutex
	subs map[string]*subscription // by channel
}

// subscription is one Pub/Sub connection subscribed to one wake channel,
// run by its own goroutine.
type subscription struct {
	h       *hub
	channel string
	// ready is closed once the server confirmed the subscription: a
	// release after that is announced to it.
	ready chan struct{}
	// stop is closed when the last waiter leaves.
	stop chan struct{}

	// Guarded by h.mu.
	refs    int
	wake    chan struct{} // closed and replaced at every message
	ps      *redis.PubSub // set by run once created
	stopped bool
}

// join returns the subscription to channel, opening it if no caller of the
// Store waits on it yet. The caller must call leave when it stops waiting.
func (h *hub) join(channel string) *subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = make(map[string]*subscription)
	}
	s := h.subs[channel]
	if s == nil {
		s = &subscription{
			h: h, channel: channel,
			ready: make(chan struct{}), stop: make(chan struct{}), wake: make(chan struct{}),
		}
		h.subs[channel] = s
		go s.run()
	}
	s.refs++
	return s
}

// wakeChan returns the channel closed at the next message.
func (s *subscription) wakeChan() <-chan struct{} {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.wake
}

// leave ends one caller's use of the subscription; the last one closes it.
func (s *subscription) leave() {
	h := s.h
	h.mu.Lock()
	s.refs--
	if s.refs > 0 {
		h.mu.Unlock()
		return
	}
	delete(h.subs, s.channel)
	s.stopped = true
	close(s.stop)
	ps := s.ps
	h.mu.Unlock()
	if ps != nil {
		_ = ps.Close() // makes run's Receive return
	}
}

// run subscribes and turns messages into wake-ups until the subscription is
// stopped. Connection errors are retried with a backoff (go-redis
// reconnects and subscribes again); messages published meanwhile are lost,
// which the waiters' retry timer covers.
func (s *subscription) run() {
	// Subscribe dials and sends SUBSCRIBE; an error shows in Receive.
	ps := s.h.client.Subscribe(context.Background(), s.channel)
	s.h.mu.Lock()
	if s.stopped {
		s.h.mu.Unlock()
		_ = ps.Close()
		return
	}
	s.ps = ps
	s.h.mu.Unlock()

	pause := minReconnectPause
	confirmed := false
	for {
		msg, err := ps.Receive(context.Background())
		if err != nil {
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
			if m.Kind == "subscribe" && !confirmed {
				confirmed = true
				close(s.ready)
			}
		case *redis.Message:
			s.h.mu.Lock()
			close(s.wake)
			s.wake = make(chan struct{})
			s.h.mu.Unlock()
		}
	}
}
