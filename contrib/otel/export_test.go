package wechatconfotel

import (
	"time"
	"weak"

	"github.com/wechatconf/wechatconf/core"
)

// ObservedLen returns how many credentials h holds for the gauge once the
// collected ones are dropped (as a collection of the gauge drops them).
func ObservedLen(h *Handler) int {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.sweepLocked(nil)
	return len(h.s.observed)
}

// IsObserved reports whether h observes c.
func IsObserved(h *Handler, c *core.Credential) bool {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	_, ok := h.s.observed[weak.Make(c)]
	return ok
}

// SetClock sets the clock the quota gauges read today's Beijing day from.
func SetClock(h *Handler, now func() time.Time) { h.s.now = now }
