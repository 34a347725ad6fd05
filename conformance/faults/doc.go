// Package faults is the fault-injection proof that no older token ever wins:
// under network faults between a fleet of processes and the shared store,
// the token stored under a key only ever moves forward, from one WeChat
// issued to a newer one, and every read returns the token stored at some
// instant of the read. It is a test-only module (issue 18).
//
// # What runs
//
// TestFaults has one subtest per store (Redis, PostgreSQL, etcd; they run in
// parallel), each of which:
//
//   - starts the server in Docker (conformance/containers) and a toxiproxy
//     proxy in front of it, run in the test process through toxiproxy's Go
//     API (github.com/Shopify/toxiproxy/v2);
//   - starts one simulated WeChat API (core/wxtest) in classic mode, where
//     every /cgi-bin/token call mints a new token and
//     wxtest.Server.TokenSeq gives its issue order;
//   - starts 8 worker processes (the test binary run again) that reach the
//     store only through the proxy, with a short lease (1s; etcd 2s, its
//     minimum), and repeat a refresh cycle every 20–60ms: Get the token,
//     then Refresh(ctx, key, stale = what Get returned, fetch), where fetch
//     calls /cgi-bin/token;
//   - meanwhile injects, through the proxy, one fault after another for 3s
//     each with 1s of calm in between: latency with jitter, a bandwidth
//     limit, connection resets (reset_peer), swallowed replies with the
//     connection closed later (timeout: writes land, callers never learn
//     it), a partition (the proxy disabled, every connection cut, then
//     re-enabled), and a "lease squeeze" (WeChat answering in 90% of the
//     lease while requests reach the store late, so that writes race the
//     lease and the fence has to refuse them with core.ErrLockLost);
//   - merges the workers' histories and checks them with porcupine
//     (github.com/anishathalye/porcupine), then counts the fetches.
//
// # The history and the model
//
// Every worker records each store call with its call and return times
// (time.Now().UnixNano(): one host, so comparable across processes). A Get
// that succeeds reads the stored token (NotFound reads "none", 0); a
// Refresh that returns a token it did not fetch reads it; a Refresh whose
// fetch ran and that returned nil wrote the fetched token; one whose fetch
// ran and that returned an error (core.ErrLockLost, a network error) is a
// write whose outcome is unknown, given the end of the history as its
// return time: it may have taken effect at any moment after its call, even
// after the caller gave up (a request delayed in the network), or never.
// Failed Gets and Refreshes that fetched nothing observed and wrote
// nothing, and are dropped.
//
// Tokens are compared by issue order, so the model (Model) is a register
// whose value only moves forward: a read must return the current value; a
// write of v is legal only if v is newer than the current value (a write of
// an older token is exactly "an older token won"); a write of unknown
// outcome takes effect if it is newer and is refused otherwise. The
// history must be linearizable for that model: porcupine must answer Ok. On
// a violation the porcupine visualization is written to a temporary file
// named in the failure. Why this model: WeChat's classic token endpoint
// invalidates the previous token with every fetch, so a store that let a
// slow holder write the token it fetched before a newer one (a lease that
// ran out, a write delayed in the network) would hand out a dead token; and
// a store whose reads went backwards would do the same to its readers.
// What the model does not see: tokens minted but never stored. A holder
// whose write was refused leaves WeChat's newest token out of the store,
// which then holds a token WeChat superseded; that is allowed here (core
// replaces a rejected token with one compare-and-refresh), and is what the
// extra fetches below count.
//
// The fetches are counted per refresh cycle, that is per stale value: one
// fetch per stale value is ideal. An extra fetch is explained when the
// holder before it, for the same stale value, did not write: its write was
// refused with core.ErrLockLost, its fetch and write outlasted the lease,
// or its write was lost to a fault and its lock released or run out. An
// extra fetch after a holder that wrote its token fails the test. The
// summary line of each store gives the operations checked, the violations,
// the cycles, fetches and ideal fetches, the explained extras by cause, the
// faults injected and the caller errors (store errors during faults are
// expected, and only counted).
//
// TestCheckLegal and TestCheckIllegal check the checker on synthetic
// histories, including a plain Set of an older token, which must be a
// violation; TestHistory and TestCountFetches check the translation of the
// records and the fetch count. WECHATCONF_FAULTS_SABOTAGE=1 checks the
// whole pipeline end to end: worker 0 then writes an older token with a
// plain Set now and then, as a store without a fence would let a late
// holder do, and each store's run passes only if porcupine finds the
// violation.
//
// # Running it
//
// It needs Docker (see conformance/containers):
//
//	export TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
//	cd conformance/faults && go test -race -v -count=1 .
//
// A run injects 24s of faults per store (each of the six kinds once), the
// stores in parallel: about a minute and a half in all, most of it starting
// the containers. WECHATCONF_SOAK=10m (any time.ParseDuration value) runs
// the fault schedule that long instead; -short skips the proof, keeping the
// checker's tests.
package faults
