package core

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Defaults of DedupConfig.
const (
	// DefaultPushLease is the default DedupConfig.Lease: how long a
	// handler's claim lives without being renewed. A running handler
	// renews it every third of it; a handler whose process dies frees the
	// push within it, so that WeChat's next retry (5 s apart) is handled.
	DefaultPushLease = 3 * time.Second
	// DefaultPushRemember is the default DedupConfig.Remember: how long a
	// push whose handler finished is remembered as handled — WeChat's
	// retries come within about 20 s, and the push's signature stays
	// acceptable for DefaultTimestampWindow (5 minutes), which this
	// covers.
	DefaultPushRemember = 5 * time.Minute
	// DefaultPushWait is the default DedupConfig.Wait: just under
	// WeChat's own 5 s timeout, so that the answer of a delivery that
	// waited in vain (503) reaches WeChat before it hangs up.
	DefaultPushWait = 4500 * time.Millisecond
	// DefaultPushCallTimeout is the default DedupConfig.CallTimeout: a
	// delivery's claim gets half of it, then the rest for a second try.
	DefaultPushCallTimeout = 2 * time.Second
	// DefaultPushKeyPrefix is the default DedupConfig.KeyPrefix.
	DefaultPushKeyPrefix = "wechatconf/push"
)

// ErrClaimLost is the cause (context.Cause) of a handler's context ended
// because its claim on the push may no longer be held: the claim's lease
// ran out without a renewal, or another instance holds it. Another
// instance may then handle the push too; a handler that stops when its
// context ends avoids doing the work twice.
var ErrClaimLost = errors.New("the claim on the push was lost")

// ErrPushInProgress is returned by Dedup.Do, with PushInProgress, when
// another handler still held the push at the end of DedupConfig.Wait.
var ErrPushInProgress = errors.New("another instance is still handling the push")

// DedupConfig configures a Dedup (NewDedup).
type DedupConfig struct {
	// Store keeps the claims; the fleet's TokenStore, shared by every
	// instance that receives pushes. A store that implements ClaimStore
	// (every store in this project) keeps them natively; another gets
	// ClaimsOver's emulation, and a warning is logged once. Required.
	Store TokenStore
	// KeyPrefix starts every claim key: "<KeyPrefix>/<push key>" (see
	// PushKey). Default DefaultPushKeyPrefix. Every instance that may
	// receive a push must use the same KeyPrefix (and Store): Dedups with
	// different prefixes do not see each other's claims, and each handles
	// the push.
	KeyPrefix string
	// Lease is how long a claim lives without being renewed; a running
	// handler renews it every Lease/3. Default DefaultPushLease; at least
	// 300 ms.
	Lease time.Duration
	// Remember is how long a handled push is remembered, so that a retry
	// or a replay within it is not handled again. Default
	// DefaultPushRemember; at least Lease.
	Remember time.Duration
	// Wait is how long a delivery that finds another handler running
	// waits for it to finish (then it answers as a duplicate) or to fail
	// or die (then it handles the push itself), before giving up with
	// PushInProgress; the delivery's ctx ends it sooner. Default
	// DefaultPushWait; negative means not at all.
	Wait time.Duration
	// CallTimeout bounds the claim of a delivery (its first store call,
	// given half of it, then tried again in the rest when it fails or
	// hangs) and every later store call, so that a hung store costs a delivery at most this
	// much before the fail-open or fail-closed choice applies. Default
	// DefaultPushCallTimeout.
	CallTimeout time.Duration
	// FailClosed chooses what a delivery does when the store fails or
	// does not answer: false (the default, fail open) handles the push
	// anyway (PushUnguarded), so nothing is lost but a retry reaching
	// another instance may handle it again; true refuses it
	// (PushRefused, answered with 503), so WeChat retries — a push whose
	// every delivery (about 20 s) meets a failed store is then lost. It
	// also decides what a running handler's context does when the store
	// stops answering its renewals for a whole Lease: fail open lets the
	// handler finish (its push may be handled again elsewhere, as any
	// push is while the store is down); fail closed ends it (cause
	// ErrClaimLost), since another instance may claim the push once the
	// store is back. A claim taken by another instance ends it either
	// way.
	FailClosed bool
	// Logger receives the events (EventPushFailed, EventPushSkipped,
	// EventPushUnguarded, EventPushClaimLost). Default: warnings to
	// slog.Default.
	Logger *slog.Logger
}

// Dedup makes "handled once" a property of the fleet: each push is
// claimed in the shared store before its handler runs, so that WeChat's
// retries, whichever instance they reach, start no second handler, and a
// handler that fails or dies frees the push for the next retry. Build it
// with NewDedup and give it to Config.Dedup (core), wecom.CallbackConfig
// and openplatform.Config, or call Do yourself.
//
// The guarantee, for every push whose deliveries all reach instances
// sharing the store while it answers:
//
//   - every push is handled at least once, as long as one delivery comes
//     after a failed handler's claim ended (a handler that returns an
//     error releases it at once; one whose process dies, within Lease);
//   - a push whose handler finished (returned nil) is not handled again
//     within Remember;
//   - a delivery that arrives while another handler runs starts no
//     handler: it waits for that handler (Wait), then answers "success"
//     if it finished, handles the push if it failed or died, or answers
//     503 if it is still running, so that WeChat tries again and nothing
//     is lost should that handler die later.
//
// Its limits: a push is handled twice when the process dies after the
// handler returned and before the push was recorded as handled (a store
// call), when the claim is lost while the handler runs (its context then
// ends with ErrClaimLost), and under fail open while the store is down. A
// push is lost when WeChat stops retrying before a failed handler's claim
// ended (a process killed in the last seconds of WeChat's last retry), and
// under fail closed when the store is down for all its deliveries. Two
// byte-identical events in one second are one push (PushKey). A handler
// is not bounded: one that never returns keeps its claim renewed, and
// every delivery of its push answers 503 — bound the work with a timeout
// of your own.
//
// Every instance of the fleet must use the same store and KeyPrefix:
// Dedups with different ones do not see each other's claims.
//
// A Dedup is safe for concurrent use and may be shared by several Confs
// and callbacks on one store.
type Dedup struct {
	cfg    DedupConfig
	claims ClaimStore
	native bool
	owner  string // this Dedup's part of every claim value
	seq    atomic.Uint64
	warned atomic.Bool
	logger *slog.Logger
}

// NewDedup checks cfg and returns its Dedup. It fails when Store is nil or
// a duration is out of range.
func NewDedup(cfg DedupConfig) (*Dedup, error) {
	if cfg.Store == nil {
		return nil, errors.New("wechatconf: NewDedup: DedupConfig.Store is required (the fleet's shared store)")
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultPushKeyPrefix
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultPushLease
	}
	if cfg.Remember == 0 {
		cfg.Remember = DefaultPushRemember
	}
	if cfg.Wait == 0 {
		cfg.Wait = DefaultPushWait
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultPushCallTimeout
	}
	switch {
	case cfg.Lease < 300*time.Millisecond:
		return nil, fmt.Errorf("wechatconf: NewDedup: DedupConfig.Lease %v is shorter than 300ms", cfg.Lease)
	case cfg.Remember < cfg.Lease:
		return nil, fmt.Errorf("wechatconf: NewDedup: DedupConfig.Remember %v is shorter than the Lease %v", cfg.Remember, cfg.Lease)
	case cfg.CallTimeout < 0:
		return nil, fmt.Errorf("wechatconf: NewDedup: DedupConfig.CallTimeout %v is negative", cfg.CallTimeout)
	case len(cfg.KeyPrefix) > 64:
		return nil, fmt.Errorf("wechatconf: NewDedup: DedupConfig.KeyPrefix is %d bytes, longer than 64", len(cfg.KeyPrefix))
	}
	if cfg.Logger == nil {
		cfg.Logger = defaultLogger
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	d := &Dedup{cfg: cfg, owner: hex.EncodeToString(id[:]), logger: cfg.Logger}
	d.claims, d.native = ClaimStoreFor(cfg.Store)
	return d, nil
}

// String describes d without its store (whose client may hold a
// password): its key prefix, lease and failure mode.
func (d *Dedup) String() string {
	if d == nil {
		return "core.Dedup(nil)"
	}
	return fmt.Sprintf("core.Dedup{KeyPrefix: %q, Lease: %v, Remember: %v, Wait: %v, FailClosed: %t, NativeClaims: %t}",
		d.cfg.KeyPrefix, d.cfg.Lease, d.cfg.Remember, d.cfg.Wait, d.cfg.FailClosed, d.native)
}

// GoString is String.
func (d *Dedup) GoString() string { return d.String() }

// PushOutcome is what Dedup.Do did with one delivery of a push.
type PushOutcome int

// The outcomes of a delivery.
const (
	// PushHandled: the handler ran and returned nil; the push is recorded
	// as handled. Answer with the handler's reply.
	PushHandled PushOutcome = iota + 1
	// PushFailed: the handler ran and returned an error (Do returns it);
	// its claim is released, so WeChat's next retry is handled. Answer
	// with an error status (500), so that WeChat retries.
	PushFailed
	// PushDuplicate: the push was handled already (or, while this delivery
	// waited, by the handler it waited for); the handler was not run.
	// Answer "success".
	PushDuplicate
	// PushInProgress: another handler still held the push when Wait ran
	// out; the handler was not run and Do returns ErrPushInProgress.
	// Answer 503 (or nothing), so that WeChat retries: a "success" now
	// would lose the push should that handler die.
	PushInProgress
	// PushUnguarded: the store failed and DedupConfig.FailClosed is false:
	// the handler ran (and returned nil) without a claim, so another
	// delivery may run it too.
	PushUnguarded
	// PushRefused: the store failed and DedupConfig.FailClosed is true,
	// or ctx ended before the push could be claimed: the handler was not
	// run; Do returns a *DedupError wrapping the cause. Answer 503.
	PushRefused
)

var pushOutcomeNames = [...]string{"", "handled", "failed", "duplicate", "in_progress", "unguarded", "refused"}

// String returns the outcome's name: "handled", "failed", "duplicate",
// "in_progress", "unguarded" or "refused".
func (o PushOutcome) String() string {
	if o > 0 && int(o) < len(pushOutcomeNames) {
		return pushOutcomeNames[o]
	}
	return "PushOutcome(" + strconv.Itoa(int(o)) + ")"
}

// HTTPStatus is the status an HTTP endpoint answers WeChat with for the
// outcome: 200 for PushHandled, PushDuplicate and PushUnguarded (with the
// reply, or "success"), 500 for PushFailed, 503 for PushInProgress and
// PushRefused (WeChat retries on anything but 200).
func (o PushOutcome) HTTPStatus() int {
	switch o {
	case PushHandled, PushDuplicate, PushUnguarded:
		return http.StatusOK
	case PushInProgress, PushRefused:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Claim values: "c/<owner>/<seq>" while a handler runs, "d/<owner>/<seq>"
// once it finished.
const (
	claimRunning = "c/"
	claimDone    = "d/"
)

// Do runs handle for the push that key names (PushKey), once across the
// fleet: it claims the push in the store, runs handle with a context that
// ends with ctx or when the claim is lost (cause ErrClaimLost), renews the
// claim while handle runs, and records the push as handled when handle
// returns nil, or releases it when handle returns an error or panics (the
// panic goes on). A push handled already is PushDuplicate; one another
// handler holds is waited for (DedupConfig.Wait). See PushOutcome for what
// to answer WeChat; the error is handle's (PushFailed), ErrPushInProgress,
// or the store's (PushRefused, a *DedupError).
//
// An HTTP handler passes a ctx that WeChat's disconnect does not end
// (context.WithoutCancel(r.Context())): WeChat hangs up after 5 s, and
// the handler should go on, answering late through the customer-service
// API if it has to (see the package documentation, "Pushes, once").
func (d *Dedup) Do(ctx context.Context, key string, handle func(ctx context.Context) error) (PushOutcome, error) {
	full := d.claimKey(key)
	mine := claimRunning + d.owner + "/" + strconv.FormatUint(d.seq.Add(1), 36)
	d.warnEmulated()

	// since is when the claim's life may have begun at the earliest: the
	// first attempt's send (a retry may find the claim that attempt made).
	since := time.Now()
	held, err := d.firstClaim(ctx, full, mine)
	if err != nil && ctx.Err() != nil {
		return PushRefused, &DedupError{Op: "claim", Key: full, Err: err}
	}
	if err != nil {
		return d.unguarded(ctx, full, mine, "claim", err, handle)
	}
	if held != mine {
		var done bool
		held, done, since, err = d.wait(ctx, full, mine, held)
		switch {
		case done:
			d.logger.LogAttrs(ctx, slog.LevelDebug, EventPushSkipped, slog.String("key", full), slog.String("outcome", "duplicate"))
			return PushDuplicate, nil
		case err != nil && d.cfg.FailClosed:
			return d.unguarded(ctx, full, mine, "claim", err, handle)
		case err != nil || held != mine:
			// The store failed while another handler held the push: it is
			// probably still running, so a second one is not started.
			d.logger.LogAttrs(ctx, slog.LevelDebug, EventPushSkipped, slog.String("key", full), slog.String("outcome", "in_progress"))
			return PushInProgress, ErrPushInProgress
		}
	}
	return d.run(ctx, full, mine, since, handle)
}

// claimKey is the store key of a push key, hashed when the whole would be
// longer than MaxKeyLen.
func (d *Dedup) claimKey(key string) string {
	full := d.cfg.KeyPrefix + "/" + key
	if ValidateKey(full) == nil {
		return full
	}
	sum := sha256.Sum256([]byte(key))
	return d.cfg.KeyPrefix + "/sha256/" + hex.EncodeToString(sum[:])
}

func (d *Dedup) warnEmulated() {
	if !d.native && d.warned.CompareAndSwap(false, true) {
		d.logger.LogAttrs(context.Background(), slog.LevelWarn, EventPushUnguarded,
			slog.String("op", "store"), slog.Bool("fail_closed", d.cfg.FailClosed),
			slog.String("error", fmt.Sprintf("the store (%T) does not implement core.ClaimStore: claims are emulated with its Refresh lock (core.ClaimsOver), which never deletes them", d.cfg.Store)))
	}
}

// firstClaim is a delivery's claim: one Claim within half the
// CallTimeout and, if it fails, once more with the same value in what is
// left of it — a claim that landed but whose reply was lost comes back as
// mine, and one hung or failed call passes — so that a hung store costs
// one CallTimeout in all.
func (d *Dedup) firstClaim(ctx context.Context, key, mine string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	first, cancelFirst := context.WithTimeout(cctx, d.cfg.CallTimeout/2)
	held, err := d.claims.Claim(first, key, mine, d.cfg.Lease)
	cancelFirst()
	if err != nil && cctx.Err() == nil {
		held, err = d.claims.Claim(cctx, key, mine, d.cfg.Lease)
	}
	return held, err
}

// claim is one Claim, bounded by CallTimeout.
func (d *Dedup) claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	return d.claims.Claim(cctx, key, value, ttl)
}

// swap is one CompareAndSwapClaim, bounded by CallTimeout.
func (d *Dedup) swap(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	return d.claims.CompareAndSwapClaim(cctx, key, old, value, ttl)
}

// wait polls the claim another handler holds until it is done (done), this
// caller holds it (held == mine: the other released it or died; since is
// when the Claim that made it was sent), Wait ran out or ctx ended (held
// is the other's), or the store failed (err).
func (d *Dedup) wait(ctx context.Context, key, mine, held string) (_ string, done bool, since time.Time, err error) {
	if isDone(held) {
		return held, true, since, nil
	}
	if d.cfg.Wait < 0 {
		return held, false, since, nil
	}
	deadline := time.NewTimer(d.cfg.Wait)
	defer deadline.Stop()
	pause := 20 * time.Millisecond
	for {
		t := time.NewTimer(pause + mrand.N(pause))
		select {
		case <-ctx.Done():
			t.Stop()
			return held, false, since, nil
		case <-deadline.C:
			t.Stop()
			return held, false, since, nil
		case <-t.C:
		}
		since = time.Now()
		h, err := d.claim(ctx, key, mine, d.cfg.Lease)
		switch {
		case err != nil && ctx.Err() != nil:
			return held, false, since, nil
		case err != nil:
			return held, false, since, err
		case isDone(h):
			return h, true, since, nil
		case h == mine:
			return h, false, since, nil
		}
		held = h
		pause = min(2*pause, 200*time.Millisecond)
	}
}

func isDone(v string) bool { return len(v) >= len(claimDone) && v[:len(claimDone)] == claimDone }

// unguarded is the store's failure: fail open runs handle without a
// claim, fail closed refuses. After an unguarded run the claim mine may
// have landed (a write whose reply was lost): it is recorded as done, or
// released, by one best-effort call, which fails harmlessly when it had
// not.
func (d *Dedup) unguarded(ctx context.Context, key, mine, op string, err error, handle func(context.Context) error) (PushOutcome, error) {
	err = &DedupError{Op: op, Key: key, Err: err}
	d.logger.LogAttrs(ctx, slog.LevelWarn, EventPushUnguarded, slog.String("key", key), slog.String("op", op),
		slog.Bool("fail_closed", d.cfg.FailClosed), slog.String("error", err.Error()))
	if d.cfg.FailClosed {
		return PushRefused, err
	}
	herr := handle(ctx)
	after := context.WithoutCancel(ctx)
	if herr != nil {
		_, _ = d.swap(after, key, mine, "", 0)
		d.failed(ctx, key, herr)
		return PushFailed, herr
	}
	_, _ = d.swap(after, key, mine, claimDone+mine[len(claimRunning):], d.cfg.Remember)
	return PushUnguarded, nil
}

// failed logs a handler's error.
func (d *Dedup) failed(ctx context.Context, key string, err error) {
	d.logger.LogAttrs(ctx, slog.LevelWarn, EventPushFailed, slog.String("key", key), slog.String("error", err.Error()))
}

// run runs handle under the claim mine, made by a Claim sent at since,
// renewing it, and records the outcome.
func (d *Dedup) run(ctx context.Context, key, mine string, since time.Time, handle func(context.Context) error) (outcome PushOutcome, err error) {
	hctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	taken := make(chan bool, 1) // whether another holds the claim, for sure
	go d.renew(hctx, key, mine, since, cancel, stop, taken)
	finished := false
	defer func() {
		close(stop)
		lost := <-taken
		cancel(nil)
		switch {
		case !finished: // handle panicked: free the push for a retry, and go on panicking
			d.release(context.WithoutCancel(ctx), key, mine)
		case err != nil:
			d.failed(ctx, key, err)
			d.release(context.WithoutCancel(ctx), key, mine)
		case lost: // logged by renew
		default:
			d.markDone(context.WithoutCancel(ctx), key, mine)
		}
	}()
	herr := handle(hctx)
	finished = true
	if herr != nil {
		return PushFailed, herr
	}
	return PushHandled, nil
}

// renew renews the claim every Lease/3 until stop closes. A claim taken
// by another or gone (a renewal's definite false) ends the handler's
// context (cause ErrClaimLost) and is logged (EventPushClaimLost
// "handling"). So is, under FailClosed, a claim that may be lost: no
// renewal confirmed before its lease may have run out — counted from when
// the last confirmed Claim or renewal was sent (the store started the
// lease after that), less claimLostMargin, and kept by a timer, so that a
// hung renewal is cut short and the handler learns of the loss before
// another instance can take the push over, not when the hung call gives
// up. Under fail open that moment is logged, once per lapse, and the
// handler goes on: the store is failing, and fail open handles pushes
// anyway. It sends whether the claim was lost for sure; otherwise the
// record of the push (a compare-and-swap) finds out.
func (d *Dedup) renew(ctx context.Context, key, mine string, since time.Time, cancel context.CancelCauseFunc, stop <-chan struct{}, taken chan<- bool) {
	every := d.cfg.Lease / 3
	lifetime := d.cfg.Lease - d.cfg.Lease/claimLostMargin
	deadline := since.Add(lifetime)
	t := time.NewTicker(every)
	defer t.Stop()
	lose := time.NewTimer(time.Until(deadline))
	defer lose.Stop()
	warned := false
	lost := func(definite bool, err error) {
		attrs := []slog.Attr{slog.String("key", key), slog.String("stage", "handling")}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		d.logger.LogAttrs(ctx, slog.LevelWarn, EventPushClaimLost, attrs...)
		cancel(ErrClaimLost)
		<-stop
		taken <- definite
	}
	for {
		select {
		case <-stop:
			taken <- false
			return
		case <-lose.C:
			if d.cfg.FailClosed {
				lost(false, errNoRenewal)
				return
			}
			if !warned {
				warned = true
				d.logger.LogAttrs(ctx, slog.LevelWarn, EventPushClaimLost, slog.String("key", key), slog.String("stage", "handling"),
					slog.String("error", errNoRenewal.Error()+"; fail open: the handler goes on"))
			}
			continue
		case <-t.C:
		}
		sent := time.Now()
		sctx, scancel := context.WithoutCancel(ctx), context.CancelFunc(func() {})
		if d.cfg.FailClosed {
			sctx, scancel = context.WithDeadline(sctx, deadline)
		}
		ok, err := d.swap(sctx, key, mine, mine, d.cfg.Lease)
		scancel()
		switch {
		case err == nil && ok:
			deadline = sent.Add(lifetime)
			lose.Reset(time.Until(deadline))
			warned = false
		case err == nil:
			lost(true, nil)
			return
		}
		// A renewal that failed is tried again at the next tick; the
		// timer decides when the claim may be lost.
	}
}

// errNoRenewal is the error of EventPushClaimLost when no renewal was
// confirmed before the claim's lease may have run out.
var errNoRenewal = errors.New("no renewal confirmed before the claim's lease may have run out")

// claimLostMargin: a handler's context ends Lease/claimLostMargin before
// its claim's lease may run out, for the time the cancellation takes to
// reach the handler.
const claimLostMargin = 10

// release frees the push for a retry: one attempt, the lease frees it
// anyway if the attempt fails.
func (d *Dedup) release(ctx context.Context, key, mine string) {
	if _, err := d.swap(ctx, key, mine, "", 0); err != nil {
		d.logger.LogAttrs(ctx, slog.LevelWarn, EventPushClaimLost, slog.String("key", key), slog.String("stage", "releasing"),
			slog.String("error", err.Error()))
	}
}

// markDone records the push as handled, trying again for a Lease and
// three CallTimeouts: a
// write that failed, or landed but reported failure (then a Claim returns
// the done value), is told apart from a claim lost to another.
func (d *Dedup) markDone(ctx context.Context, key, mine string) {
	done := claimDone + mine[len(claimRunning):]
	deadline := time.Now().Add(d.cfg.Lease + 3*d.cfg.CallTimeout)
	var lastErr error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		ok, err := d.swap(ctx, key, mine, done, d.cfg.Remember)
		if err == nil && ok {
			return
		}
		if err == nil {
			// Not held as mine: it may be done already (a retried write
			// that had landed), or gone, or another's.
			h, cerr := d.claim(ctx, key, mine, d.cfg.Lease)
			switch {
			case cerr == nil && h == done:
				return
			case cerr == nil && h == mine:
				continue // it had expired and is mine again: record it now
			case cerr == nil:
				d.logger.LogAttrs(ctx, slog.LevelWarn, EventPushClaimLost, slog.String("key", key), slog.String("stage", "recording"))
				return
			}
			err = cerr
		}
		lastErr = err
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	d.logger.LogAttrs(ctx, slog.LevelWarn, EventPushClaimLost, slog.String("key", key), slog.String("stage", "recording"),
		slog.String("error", fmt.Sprint(lastErr)))
}

// DedupError is the error of a Dedup whose store failed: Op is the store
// call ("claim"), Key the claim key, Err the store's error.
type DedupError struct {
	Op  string
	Key string
	Err error
}

// Error reads "wechatconf: dedup: <op> <key>: <err>".
func (e *DedupError) Error() string {
	return "wechatconf: dedup: " + e.Op + " " + strconv.Quote(e.Key) + ": " + e.Err.Error()
}

// Unwrap returns the store's error.
func (e *DedupError) Unwrap() error { return e.Err }

// PushKey returns the key a push is de-duplicated by, as WeChat asks
// (接收普通消息, 接收事件推送: "消息排重"): account (the receiving account:
// ToUserName, with a WeCom app's AgentID) then, for a message, its MsgId
// ("<account>/m/<MsgId>"); for an event, which has none, a SHA-256 of its
// FromUserName and CreateTime — WeChat's own event key — with the
// event's name and its whole plaintext ("<account>/e/<32 hex digits>"),
// so that two different events from one user in one second are never
// taken for one, and no sender's OpenID is written to the store or a
// log. WeChat's retries of a push carry the same plaintext. Keys longer
// than the store allows are hashed by Dedup.
func PushKey(account, msgID, from string, createTime int64, event string, plaintext []byte) string {
	if msgID != "" {
		return account + "/m/" + msgID
	}
	h := sha256.New()
	for _, part := range []string{from, strconv.FormatInt(createTime, 10), event} {
		h.Write([]byte(strconv.Itoa(len(part))))
		h.Write([]byte{':'})
		h.Write([]byte(part))
	}
	h.Write(plaintext)
	return account + "/e/" + hex.EncodeToString(h.Sum(nil)[:16])
}
