package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/wechatconf/wechatconf/core/wxtest"
)

// newToxiproxy returns a toxiproxy server run in this process, through its
// Go API (no HTTP listener): proxies are added to its collection.
func newToxiproxy() *toxiproxy.ApiServer {
	// The toxics log through zerolog's global logger (a trace line per
	// interrupted packet): silence it, this process uses zerolog for
	// nothing else.
	zerolog.SetGlobalLevel(zerolog.Disabled)
	return toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
}

// startProxy starts a proxy named name on a loopback port to upstream and
// returns it; Listen is its address. It is stopped at the end of the test.
func startProxy(t *testing.T, srv *toxiproxy.ApiServer, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := srv.Collection.Add(p, true); err != nil {
		t.Fatalf("toxiproxy: starting proxy %s to %s: %v", name, upstream, err)
	}
	t.Cleanup(func() { srv.Collection.Remove(name) })
	return p
}

// fault is one kind of fault the schedule injects: apply starts it, heal
// ends it.
type fault struct {
	name  string
	apply func() error
	heal  func() error
}

// toxic returns a fault that adds a toxic of typ with attrs on the stream
// ("upstream": client to store, "downstream": store to client) of p.
func toxic(p *toxiproxy.Proxy, name, typ, stream string, attrs map[string]any) fault {
	return fault{
		name: name,
		apply: func() error {
			b, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs})
			if err != nil {
				return err
			}
			_, err = p.Toxics.AddToxicJson(bytes.NewReader(b))
			return err
		},
		heal: func() error { return p.Toxics.RemoveToxic(context.Background(), name) },
	}
}

// faultKinds are the faults the schedule cycles through, for a store
// behind p whose lease is lease, the workers fetching from wechat:
//
//   - latency: 150ms ± 150ms on the replies (jitter reorders nothing on one
//     connection but spreads the calls of different ones);
//   - bandwidth: replies at 2 KB/s, so that a reply takes tens to hundreds
//     of milliseconds;
//   - reset_peer: every connection is reset (RST) as soon as data flows,
//     new ones included;
//   - timeout: replies are swallowed and the connection closed after
//     500ms: requests reach the store (writes land) but their callers
//     never learn the outcome;
//   - partition: the proxy is disabled (its listener closed and every
//     connection through it cut, new ones refused), then re-enabled;
//   - lease squeeze: WeChat answers in 90% of the lease while requests
//     reach the store 150ms ± 150ms late, so that holders finish their
//     fetch near the end of their lease and their writes arrive around
//     the moment it runs out: the fence (core.ErrLockLost) is exercised.
func faultKinds(p *toxiproxy.Proxy, lease time.Duration, wechat *wxtest.Server, latency time.Duration) []fault {
	squeeze := toxic(p, "squeeze", "latency", "upstream", map[string]any{"latency": 150, "jitter": 150})
	return []fault{
		toxic(p, "latency", "latency", "downstream", map[string]any{"latency": 150, "jitter": 150}),
		toxic(p, "bandwidth", "bandwidth", "downstream", map[string]any{"rate": 2}),
		toxic(p, "reset_peer", "reset_peer", "downstream", map[string]any{"timeout": 0}),
		toxic(p, "timeout", "timeout", "downstream", map[string]any{"timeout": 500}),
		{
			name:  "partition",
			apply: func() error { p.Stop(); return nil },
			heal:  p.Start,
		},
		{
			name: "lease squeeze",
			apply: func() error {
				wechat.SetLatency(lease * 9 / 10)
				return squeeze.apply()
			},
			heal: func() error {
				wechat.SetLatency(latency)
				return squeeze.heal()
			},
		},
	}
}

// Durations of the fault schedule: each fault lasts faultOn, followed by
// faultOff without one.
const (
	faultOn  = 3 * time.Second
	faultOff = 1 * time.Second
)

// window is when one fault was in force (UnixNano).
type window struct {
	name       string
	start, end int64
}

// runFaults injects kinds one after the other, cycling, until end (or ctx
// ends), and heals the last one. It returns the windows of the faults it
// injected.
func runFaults(ctx context.Context, t *testing.T, name string, kinds []fault, end time.Time) []window {
	var ws []window
	wait := func(d time.Duration) bool {
		if rest := time.Until(end); rest < d {
			d = rest
		}
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
			return time.Now().Before(end)
		case <-ctx.Done():
			return false
		}
	}
	for i := 0; ; i++ {
		if !wait(faultOff) {
			return ws
		}
		f := kinds[i%len(kinds)]
		w := window{name: f.name, start: time.Now().UnixNano()}
		if err := f.apply(); err != nil {
			t.Errorf("%s: injecting %s: %v", name, f.name, err)
			return ws
		}
		wait(faultOn)
		err := f.heal()
		w.end = time.Now().UnixNano()
		ws = append(ws, w)
		if err != nil {
			t.Errorf("%s: healing %s: %v", name, f.name, err)
			return ws
		}
	}
}

// byFault tells, for each fault kind and for the calm between faults, how
// many calls started and how many of them failed.
func byFault(records []Record, ws []window) string {
	type count struct{ calls, errs int }
	counts := map[string]*count{}
	var names []string
	for _, r := range records {
		name := "calm"
		for _, w := range ws {
			if r.Call >= w.start && r.Call < w.end {
				name = w.name
				break
			}
		}
		c := counts[name]
		if c == nil {
			c = &count{}
			counts[name] = c
			names = append(names, name)
		}
		c.calls++
		if r.Err != "" && !r.NotFound {
			c.errs++
		}
	}
	slices.Sort(names)
	var out []string
	for _, n := range names {
		out = append(out, fmt.Sprintf("%s %d calls/%d errors", n, counts[n].calls, counts[n].errs))
	}
	return strings.Join(out, ", ")
}

// String names a fault (for the log).
func (f fault) String() string { return fmt.Sprintf("fault %s", f.name) }
