package conformance

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Sizes of BenchmarkPushFleet.
const (
	pfBenchBatch   = 1024 // pushes per iteration of the benchmark loop
	pfBenchWorkers = 64   // WeChat's concurrent requests
)

// BenchmarkPushFleet measures the throughput of a fleet of procs processes
// (the test binary started again, as PushFleet's) serving the same three
// endpoints on one core.Dedup over a store from h, with handlers that
// return at once: WeChat (the parent) sends pushes from pfBenchWorkers
// (64) concurrent requests to random processes, in batches of 1024
// encrypted beforehand (outside the timer: the encryption is WeChat's
// work). It reports pushes/s, the pushes the fleet handled per second of
// the loop, and duplicates, the handlers started beyond one per push,
// which must be 0 (the benchmark fails otherwise); a delivery not answered
// 200 is sent again, and counted as retries.
//
// Call it from a benchmark of its own, e.g.
//
//	func BenchmarkPushFleet(b *testing.B) { conformance.BenchmarkPushFleet(b, harness(b), 8) }
//
// In the child process the same call plays one process of the fleet.
func BenchmarkPushFleet(b *testing.B, h Harness, procs int) {
	b.Helper()
	h = h.normalize(b)
	if raw, ok := os.LookupEnv(pushFleetEnv); ok {
		runPushFleetChild(b, h, raw)
		return
	}
	if h.SingleProcess != "" {
		b.Skipf("BenchmarkPushFleet needs a backend other processes can reach; Harness.SingleProcess says: %s", h.SingleProcess)
	}
	if procs < 1 {
		b.Fatalf("BenchmarkPushFleet: procs is %d, want at least 1", procs)
	}
	cfg := PushFleetConfig{Procs: max(procs, 2), Kills: -1}.normalize(b)
	cfg.Procs = procs
	f := newPushFleet(b, h, cfg, []string{"-test.run=^$", "-test.bench=" + runPattern(b.Name()), "-test.benchtime=1x"}, true)
	defer f.stopAll()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for range procs {
		wg.Go(func() {
			if p := f.spawn(ctx); p != nil {
				f.mu.Lock()
				f.live = append(f.live, p)
				f.mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(f.live) != procs {
		b.Fatalf("push fleet: %d of %d processes started: %v", len(f.live), procs, f.spawnErr)
	}
	urls := make([]string, procs)
	for i, p := range f.live {
		urls[i] = p.url
	}

	var (
		total   int
		retries atomic.Int64
		failed  atomic.Int64
	)
	createTime := time.Now().Unix()
	batch := make([]*pfPush, pfBenchBatch)
	for b.Loop() {
		b.StopTimer()
		for i := range batch {
			pl := pfPlan{endpoint: i % len(pfPaths), event: i%2 == 1, pair: -1, user: "user" + strconv.Itoa(total+i), msgID: uint64(total + i + 1)}
			pl.spec.push = total + i
			q := &pfPush{plan: pl}
			if err := f.build(q, createTime); err != nil {
				b.Fatal(err)
			}
			batch[i] = q
		}
		b.StartTimer()
		var next atomic.Int64
		var workers sync.WaitGroup
		for range pfBenchWorkers {
			workers.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(batch) {
						return
					}
					q := batch[i]
					ok := false
					for k := 0; k <= PushRetries && !ok; k++ {
						if k > 0 {
							retries.Add(1)
						}
						ok = benchDeliver(f.client, urls[rand.IntN(len(urls))], q, k)
					}
					if !ok {
						failed.Add(1)
					}
				}
			})
		}
		workers.Wait()
		total += len(batch)
	}
	elapsed := b.Elapsed()
	f.stopAll() // the children's start lines are all read once they exit

	f.mu.Lock()
	dups, handled := 0, 0
	for i := range total {
		n := 0
		if i < len(f.starts) {
			n = f.starts[i]
		}
		if n > 0 {
			handled++
		}
		dups += max(n-1, 0)
	}
	f.mu.Unlock()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "pushes/s")
	b.ReportMetric(float64(dups), "duplicates")
	b.ReportMetric(float64(retries.Load()), "retries")
	b.ReportMetric(0, "ns/op")
	ReportRow(b, "Push fleet throughput",
		Col{"store", fmt.Sprintf("%T", h.NewStore(b))}, Col{"processes", strconv.Itoa(procs)},
		Col{"pushes/s", strconv.Itoa(int(float64(total) / elapsed.Seconds()))}, Col{"pushes", strconv.Itoa(total)},
		Col{"duplicates", strconv.Itoa(dups)}, Col{"retries", strconv.FormatInt(retries.Load(), 10)})
	if dups != 0 || handled != total || failed.Load() != 0 {
		b.Errorf("BenchmarkPushFleet: %d pushes, %d handled, %d extra handlers (pushes handled more than once), %d never answered 200", total, handled, dups, failed.Load())
	}
}

// benchDeliver sends delivery k of q to url and reports whether it was
// answered 200.
func benchDeliver(client *http.Client, url string, q *pfPush, k int) bool {
	req, err := http.NewRequest(http.MethodPost, url+pfPaths[q.plan.endpoint]+"?"+q.query.Encode(), bytes.NewReader(q.body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set(pfPushHeader, strconv.Itoa(q.plan.spec.push))
	req.Header.Set(pfDeliveryHeader, strconv.Itoa(k))
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK
}
