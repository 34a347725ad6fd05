package main

import (
	"math"
	"math/bits"
	"time"
)

// clock is the accelerated clock every process of a run shares: simulated
// time start at the real instant startReal, running speed times faster.
// The parent and the workers build it from the same three numbers, so they
// agree on the simulated time to within their wall clocks' agreement (one
// machine: exactly). Before startReal it stands still at start.
type clock struct {
	start     time.Time // simulated time at startReal
	startReal time.Time // wall clock only (no monotonic reading), shared as Unix nanoseconds
	speed     float64   // simulated seconds per real second
}

// newClock builds the clock from the values passed to the workers.
func newClock(startNanos, startRealNanos int64, speed float64) clock {
	return clock{start: time.Unix(0, startNanos), startReal: time.Unix(0, startRealNanos), speed: speed}
}

// now is the simulated time; it is core.Config.Now in the workers and
// wxtest.Options.Now in the parent.
func (c clock) now() time.Time {
	d := time.Since(c.startReal) // wall clock: startReal has no monotonic reading
	if d < 0 {
		d = 0
	}
	return c.start.Add(time.Duration(float64(d) * c.speed))
}

// realAt is the real instant at which simulated time start+sim is reached.
func (c clock) realAt(sim time.Duration) time.Time {
	return c.startReal.Add(time.Duration(float64(sim) / c.speed))
}

// hist is a log-linear latency histogram in nanoseconds: values below 64 ns
// have a bucket each, larger ones 32 buckets per power of two, so a bucket
// is at most 1/32 (3%) of its value wide. Workers send their buckets to
// the parent, which merges them: percentiles over every sample of every
// process without shipping the samples.
type hist struct {
	counts [histBuckets]int64
	n      int64
}

const (
	histExact   = 64                           // values below are their own bucket
	histSub     = 32                           // buckets per power of two above
	histBuckets = histExact + (64-7+1)*histSub // enough for any int64
)

// bucket returns the index of the bucket of v nanoseconds.
func bucket(v int64) int {
	if v < histExact {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) // >= 7
	sub := int(v>>(e-6)) - histSub
	return histExact + (e-7)*histSub + sub
}

// bucketValue returns the middle of bucket i, the value a percentile that
// falls in it is reported as.
func bucketValue(i int) int64 {
	if i < histExact {
		return int64(i)
	}
	e := (i-histExact)/histSub + 7
	sub := (i - histExact) % histSub
	lo := int64(histSub+sub) << (e - 6)
	return lo + int64(1)<<(e-6)/2
}

func (h *hist) add(d time.Duration) {
	h.counts[bucket(int64(d))]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the q-th quantile (0 < q <= 1) in nanoseconds, 0 for an
// empty histogram.
func (h *hist) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen int64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return bucketValue(i)
		}
	}
	return 0 // not reached
}

// sparse returns the non-empty buckets as [index, count] pairs, the form
// workers send.
func (h *hist) sparse() [][2]int64 {
	var out [][2]int64
	for i, c := range h.counts {
		if c != 0 {
			out = append(out, [2]int64{int64(i), c})
		}
	}
	return out
}

// addSparse merges buckets received from a worker, ignoring indexes out of
// range.
func (h *hist) addSparse(pairs [][2]int64) {
	for _, p := range pairs {
		if p[0] >= 0 && p[0] < histBuckets && p[1] > 0 {
			h.counts[p[0]] += p[1]
			h.n += p[1]
		}
	}
}
