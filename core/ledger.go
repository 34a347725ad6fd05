package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// The fetch ledger: every fetch a fleet makes of a credential, recorded in
// the store the fleet shares, under the credential's key plus
// LedgerKeySuffix ("wechatconf/wx…/access_token/fetch_ledger"). It answers
// "why did my token die?": which instance fetched, when, why, which token
// (by fingerprint) it replaced, how long it took; how many fetches the
// fleet made each Beijing day (the days WeChat's quotas count); and
// whether a token WeChat rejected was replaced by someone outside the
// fleet (EventOutsideFetch).
//
// How it is written. The token's own write is untouched: the ledger is a
// second value, written after the token's fenced write, never while the
// credential's lock is held (no store call under a lock). Each process
// queues its records per credential and a background writer merges them
// into the stored ledger by a compare-and-refresh (Store.Get, then
// Store.Refresh with the value read as stale), so that two processes
// recording at once both land: the loser of the compare reads the
// winner's ledger and merges again. A write the store did not take is
// retried with a back-off (1 s doubling to 1 min), each failure an
// EventStoreError with op "ledger"; Credential.FlushLedger waits for the
// queue. Merging is idempotent (a record already in the ledger, by time
// and instance, is not counted again), and a write that landed but
// reported failure is recognised at the next try by its name in the
// stored ledger (the last 32 writes are named): its records are not
// merged again — even those the 16 kept records no longer show — and what
// it found (outside fetches, quota thresholds) is logged then, once. A
// stored ledger is brought within bounds when read (records sorted and cut
// to 16, days to 8, no negative count, long fields clipped), and one of a
// newer format is left alone (this process's records are then not kept).
// The hot path never touches it.
//
// What it costs: nothing on the hot path; per fetch, one Store.Get and one
// Store.Refresh of the ledger key after the token's write, off the
// callers' path (BenchmarkLedgerWrite).
//
// What it cannot see: a record whose process died between the token's
// write and the ledger's is lost (the fetch is then missing from the
// counts, and no outside fetch is named for the token it issued: a
// rejection of a token the ledger does not hold is never called an
// outside fetch). A fleet member cut off from the store just after its
// fetch (its token and its record unwritten for longer than WeChat's
// 5-minute overlap) looks like an outside fetch to the others, and is
// named as one; its record, landing later, shows the fleet's own fetch in
// the ledger. A store that drops the ledger key loses the history, not a
// token.

// LedgerKeySuffix is appended to a credential's key to name its ledger.
const LedgerKeySuffix = "/fetch_ledger"

// LedgerKey returns the store key of the ledger of the credential stored
// under key.
func LedgerKey(key string) string { return key + LedgerKeySuffix }

// LedgerEntries is the most fetch records a ledger keeps (the newest); fewer
// are kept when they would not fit in MaxLedgerBytes.
const LedgerEntries = 16

// LedgerDays is the most Beijing days a ledger keeps counters for.
const LedgerDays = 8

// MaxLedgerBytes bounds the encoded ledger (the TokenStore contract's 4 KiB
// values): the oldest records are dropped until it fits.
const MaxLedgerBytes = 4000

// maxInstance bounds an instance name, in bytes.
const maxInstance = 64

// ledgerFormat is the "v" of the stored ledger.
const ledgerFormat = 1

// Fetch reasons, FetchRecord.Reason.
const (
	ReasonExpiry   = "expiry"   // the token was about to expire (or none was held)
	ReasonRejected = "rejected" // WeChat rejected the token (40001, 40014, 42001)
	ReasonForced   = "forced"   // ForceRefresh: a brand-new token was asked for
	ReasonOutage   = "outage"   // fetched without the store while it was down (Policy.FetchWithoutStore)
	ReasonOperator = "operator" // an operator's tool (LedgerConfig.Operator: the wechatconf command)
)

// Ledger is a credential's fetch ledger as stored (see LedgerKey): the last
// fetches of the fleet and per-day counters.
type Ledger struct {
	// Entries are the newest fetch records, oldest first: at most
	// LedgerEntries.
	Entries []FetchRecord `json:"entries"`
	// Days are the per-Beijing-day counters, newest first: at most
	// LedgerDays.
	Days []LedgerDay `json:"days"`
	// Lost counts records a process could not keep for the ledger (its
	// queue overflowed while the store was down).
	Lost int `json:"lost,omitempty"`
}

// FetchRecord is one fetch in a Ledger.
type FetchRecord struct {
	// At is when the fetch was made (the credential's clock, UTC).
	At time.Time `json:"at"`
	// Instance names the process that made it (LedgerConfig.Instance;
	// DefaultInstance: "hostname/pid").
	Instance string `json:"instance"`
	// Seq numbers the records of one process (from 1 at its start): with At
	// and Instance it tells two records apart.
	Seq uint64 `json:"seq"`
	// Reason is why: ReasonExpiry, ReasonRejected, ReasonForced,
	// ReasonOutage or ReasonOperator.
	Reason string `json:"reason"`
	// Forced says the fetch asked for a brand-new token (stable_token's
	// force_refresh), which WeChat limits to 20 a day.
	Forced bool `json:"forced,omitempty"`
	// Token is the Fingerprint of the token issued.
	Token string `json:"token"`
	// Replaced is the Fingerprint of the token it replaced; "" for none.
	Replaced string `json:"replaced,omitempty"`
	// Latency is how long WeChat took, retries included (ns in JSON).
	Latency time.Duration `json:"latency_ns"`
	// LockWait is how long the fetch waited for the store's lock (ns in
	// JSON).
	LockWait time.Duration `json:"lock_wait_ns,omitempty"`
	// Outside is set when the token this fetch replaced was rejected
	// although the fleet had fetched nothing since: someone outside the
	// fleet fetched (see EventOutsideFetch).
	Outside *OutsideFetch `json:"outside,omitempty"`

	// suspect: the token replaced was rejected while the store held it
	// (no fleet member had replaced it) and before its expiry; the merge
	// decides from the ledger whether it was an outside fetch.
	suspect *suspicion
}

// OutsideFetch is the evidence that a fetch outside the fleet killed a
// token: the fleet fetched the rejected token (FetchedAt, by FetchedBy),
// recorded no fetch after it, and WeChat rejected it Age later.
type OutsideFetch struct {
	// Rejected is the Fingerprint of the token WeChat rejected.
	Rejected string `json:"rejected"`
	// FetchedAt and FetchedBy are the fleet's fetch of that token.
	FetchedAt time.Time `json:"fetched_at"`
	FetchedBy string    `json:"fetched_by"`
	// Age is the token's age when it was rejected (ns in JSON).
	Age time.Duration `json:"age_ns"`
	// Path is the API that rejected it ("" when the caller did not say),
	// Code WeChat's errcode (0 when unknown).
	Path string `json:"path,omitempty"`
	Code int    `json:"errcode,omitempty"`
	// Forced says the fleet is on stable_token: only a forced refresh
	// (force_refresh) rotates its token, so someone else forced one.
	Forced bool `json:"forced_elsewhere,omitempty"`
}

// suspicion is what a rejection-triggered fetch knew of the token it
// replaced, for the merge to name an outside fetch.
type suspicion struct {
	rejected string // fingerprint
	path     string
	code     int
	forcible bool
}

// LedgerDay is a Ledger's counters for one Beijing day.
type LedgerDay struct {
	// Day is the date in Beijing time, "2006-01-02": WeChat's quotas reset
	// at midnight there.
	Day string `json:"day"`
	// Fetches counts the token calls WeChat answered with a token.
	Fetches int `json:"fetches"`
	// Forced counts those that forced a new token (stable_token's
	// force_refresh: 20 a day).
	Forced int `json:"forced,omitempty"`
	// Outside counts the outside fetches named that day.
	Outside int `json:"outside,omitempty"`
}

// Today returns the counters of t's Beijing day (zero if none).
func (l Ledger) Today(t time.Time) LedgerDay {
	day := beijingDay(t)
	for _, d := range l.Days {
		if d.Day == day {
			return d
		}
	}
	return LedgerDay{Day: day}
}

// Last returns the newest record and true, or false for an empty ledger.
func (l Ledger) Last() (FetchRecord, bool) {
	if len(l.Entries) == 0 {
		return FetchRecord{}, false
	}
	return l.Entries[len(l.Entries)-1], true
}

// Fingerprint names a token in the ledger and in events without revealing
// it: the first 12 hex digits of its SHA-256. Two tokens share one with
// probability 2⁻⁴⁸; nothing of the token can be learnt from it.
func Fingerprint(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}

// DefaultInstance is the instance name a ledger records when none is
// configured: the host name and the process id, "web-7f9c/4242".
func DefaultInstance() string { return defaultInstance() }

var defaultInstance = sync.OnceValue(func() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return clipInstance(host + "/" + strconv.Itoa(os.Getpid()))
})

// clipInstance keeps an instance name within maxInstance bytes of valid
// UTF-8.
func clipInstance(s string) string {
	if len(s) <= maxInstance {
		return s
	}
	s = s[:maxInstance]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// ErrLedgerCorrupt is wrapped by ReadLedger's error for a stored ledger it
// cannot decode. The writer replaces such a ledger with a fresh one.
var ErrLedgerCorrupt = errors.New("corrupt fetch ledger")

// ReadLedger reads the ledger of the credential stored under key (its
// CredentialConfig.Key, e.g. "wechatconf/wx…/access_token"). An absent
// ledger is an error wrapping ErrNotFound (no fetch recorded yet, or the
// ledger is off); one that cannot be decoded wraps ErrLedgerCorrupt. Other
// errors are the store's.
func ReadLedger(ctx context.Context, store TokenStore, key string) (Ledger, error) {
	t, err := store.Get(ctx, LedgerKey(key))
	if err != nil {
		return Ledger{}, fmt.Errorf("wechatconf: read the fetch ledger of %s: %w", key, err)
	}
	l, err := decodeLedger(t.Value)
	if err != nil {
		return Ledger{}, fmt.Errorf("wechatconf: read the fetch ledger of %s: %w", key, err)
	}
	return l, nil
}

type storedLedger struct {
	V int `json:"v"`
	// Writes names the last ledgerWrites writes that stored this value
	// and its predecessors, oldest first (8 hex digits each, from the
	// writer's instance and a number of its process): a writer whose
	// write reported failure finds it there if the write landed (see
	// ledgerWriter.unsure).
	Writes []string `json:"writes,omitempty"`
	Ledger
}

// errLedgerNewer is wrapped by decodeLedgerValue's error for a ledger of a
// format newer than this version's: it is left as it is (a rolling
// upgrade's newer instances own it), never replaced.
var errLedgerNewer = errors.New("the stored fetch ledger has a newer format")

func decodeLedger(v string) (Ledger, error) {
	s, err := decodeLedgerValue(v)
	return s.Ledger, err
}

// decodeLedgerValue decodes a stored ledger and brings what it holds
// within the ledger's bounds (normalizeLedger): a hand-edited or hostile
// value never makes the writer keep more than it would write itself.
func decodeLedgerValue(v string) (storedLedger, error) {
	var s storedLedger
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return storedLedger{}, fmt.Errorf("%w: %v", ErrLedgerCorrupt, err)
	}
	if s.V > ledgerFormat {
		return storedLedger{}, fmt.Errorf("%w: %w: format %d, want %d", ErrLedgerCorrupt, errLedgerNewer, s.V, ledgerFormat)
	}
	if s.V != ledgerFormat {
		return storedLedger{}, fmt.Errorf("%w: format %d, want %d", ErrLedgerCorrupt, s.V, ledgerFormat)
	}
	s.Ledger = normalizeLedger(s.Ledger)
	if n := len(s.Writes); n > ledgerWrites {
		s.Writes = s.Writes[n-ledgerWrites:]
	}
	for i, w := range s.Writes {
		s.Writes[i] = clipText(w, 8)
	}
	return s, nil
}

// ledgerWrites is how many write names a ledger keeps (storedLedger.Writes):
// a write that reported failure is known to have landed as long as fewer
// writes followed it before its writer's next try.
const ledgerWrites = 32

// maxLedgerField bounds a stored record's free-text fields (the API path
// of an outside fetch's evidence), in bytes.
const maxLedgerField = 128

// normalizeLedger returns l within the ledger's bounds: records in time
// order, the newest LedgerEntries, instance names and paths clipped; days
// that are dates, each once, newest first, the newest LedgerDays; no
// negative count.
func normalizeLedger(l Ledger) Ledger {
	l.Entries = slices.Clone(l.Entries)
	slices.SortStableFunc(l.Entries, func(a, b FetchRecord) int { return a.At.Compare(b.At) })
	if n := len(l.Entries); n > LedgerEntries {
		l.Entries = l.Entries[n-LedgerEntries:]
	}
	for i := range l.Entries {
		e := &l.Entries[i]
		e.Instance = clipInstance(e.Instance)
		e.Reason = clipText(e.Reason, maxLedgerField)
		e.Token, e.Replaced = clipText(e.Token, 12), clipText(e.Replaced, 12)
		if o := e.Outside; o != nil {
			c := *o
			c.Rejected, c.FetchedBy, c.Path = clipText(c.Rejected, 12), clipInstance(c.FetchedBy), clipText(c.Path, maxLedgerField)
			e.Outside = &c
		}
	}
	var days []LedgerDay
	for _, d := range l.Days {
		if _, err := time.Parse(time.DateOnly, d.Day); err != nil || slices.ContainsFunc(days, func(x LedgerDay) bool { return x.Day == d.Day }) {
			continue
		}
		d.Fetches, d.Forced, d.Outside = max(0, d.Fetches), max(0, d.Forced), max(0, d.Outside)
		days = append(days, d)
	}
	slices.SortFunc(days, func(a, b LedgerDay) int { return strings.Compare(b.Day, a.Day) })
	if len(days) > LedgerDays {
		days = days[:LedgerDays]
	}
	l.Days, l.Lost = days, max(0, l.Lost)
	return l
}

// clipText keeps s within n bytes of valid UTF-8.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// encodeLedger encodes l, dropping its oldest records (then its oldest
// days) until it fits in MaxLedgerBytes.
func encodeLedger(l Ledger) string { return encodeLedgerWrite(l, nil) }

// encodeLedgerWrite is encodeLedger with the names of the last writes
// (storedLedger.Writes).
func encodeLedgerWrite(l Ledger, writes []string) string {
	for {
		b, err := json.Marshal(storedLedger{V: ledgerFormat, Writes: writes, Ledger: l})
		if err != nil {
			panic(err) // plain data
		}
		switch {
		case len(b) <= MaxLedgerBytes:
			return string(b)
		case len(l.Entries) > 1:
			l.Entries = l.Entries[1:]
		case len(l.Days) > 1:
			l.Days = l.Days[:len(l.Days)-1]
		case len(l.Entries) > 0:
			l.Entries = nil
		default:
			l.Days = nil // a normalized ledger fits long before this
		}
	}
}

// LedgerConfig turns on a credential's fetch ledger (CredentialConfig.Ledger)
// and names its limits. Core's Conf, wecom.App and openplatform set it from
// their Config's Instance and NoLedger.
type LedgerConfig struct {
	// Instance names this process in the records; "" means
	// DefaultInstance(). At most 64 bytes are kept.
	Instance string
	// Operator records every fetch with ReasonOperator (the wechatconf
	// command's refresh and force).
	Operator bool
	// DailyLimit is WeChat's daily limit on the credential's fetches
	// (2,000 for the classic access_token), 0 for none known: the fleet's
	// count crossing 50 % and 80 % of it is an EventQuota.
	DailyLimit int
	// ForcedDailyLimit is the daily limit on forced fetches (stable_token's
	// force_refresh: 20), 0 for none.
	ForcedDailyLimit int
}

// NewLedgerConfig returns the LedgerConfig of a credential of a
// configuration with these Instance and NoLedger fields (core.Config's,
// wecom.Config's, openplatform.Config's): nil when noLedger, no limits
// known. Its Instance is filled in (DefaultInstance() for "", clipped to
// 64 bytes), so that the credentials given it share it as it is: a
// component's 10,000 authorizers hold one, not a copy each.
func NewLedgerConfig(instance string, noLedger bool) *LedgerConfig {
	if noLedger {
		return nil
	}
	if instance == "" {
		instance = DefaultInstance()
	}
	return &LedgerConfig{Instance: clipInstance(instance)}
}

// Quota thresholds, in percent of a daily limit: crossing one is an
// EventQuota.
var quotaThresholds = [...]int{50, 80}

// ledgerSeq numbers this process's records (FetchRecord.Seq).
var ledgerSeq atomic.Uint64

// ledgerQueueMax bounds a process's records waiting for the store, per
// credential; beyond it the oldest are dropped and counted in Ledger.Lost.
const ledgerQueueMax = 64

// ledgerWriter is a credential's queue of records for the ledger and its
// background writer, made at its first record (a credential that never
// fetches — most of 10,000 authorizers in a process — holds none).
type ledgerWriter struct {
	key      string // the ledger's store key
	mu       sync.Mutex
	queue    []FetchRecord
	dropped  int
	running  bool
	idle     chan struct{} // closed when the writer stops with an empty queue
	min, max time.Duration
	// unsure is the last write whose Refresh reported failure, which may
	// have landed all the same (only the writer's goroutine uses it).
	unsure *unsureWrite
}

// unsureWrite is a ledger write whose Refresh reported failure: the next
// write reads the stored ledger and, if this one landed (the ledger names
// it, or holds its newest surviving record), logs what its merge found and
// does not merge its records again — even those the ledger no longer
// keeps, so that a big batch is not counted twice.
type unsureWrite struct {
	id      string        // its name in storedLedger.Writes
	probe   *FetchRecord  // its newest record kept in the value, if any
	added   []FetchRecord // the records it merged
	dropped int
	found   mergeFound
}

// ledgerInstance returns cfg as a CredentialKind keeps it: nil when off,
// else with its Instance filled in and clipped (a copy only then: the
// credentials of a kind share it).
func ledgerInstance(cfg *LedgerConfig) *LedgerConfig {
	if cfg == nil || (cfg.Instance != "" && len(cfg.Instance) <= maxInstance) {
		return cfg
	}
	c := *cfg
	if c.Instance == "" {
		c.Instance = DefaultInstance()
	}
	c.Instance = clipInstance(c.Instance)
	return &c
}

// ledgerFor returns the kind's ledger settings cfg for the credential of
// key: nil when off, or when key is too long to have a ledger beside it
// (its key is key and an ASCII suffix, checked without building it).
func ledgerFor(cfg *LedgerConfig, key string) *LedgerConfig {
	if cfg == nil || ValidateKey(key) != nil || len(key)+len(LedgerKeySuffix) > MaxKeyLen {
		return nil
	}
	return cfg
}

// writer returns cr's ledger writer, making it at the first call.
func (cr *Credential) writer() *ledgerWriter {
	if w := cr.ledgerW.Load(); w != nil {
		return w
	}
	idle := make(chan struct{})
	close(idle)
	w := &ledgerWriter{key: LedgerKey(cr.key), idle: idle, min: writeBackMinBackoff, max: writeBackMaxBackoff}
	if cr.ledgerW.CompareAndSwap(nil, w) {
		return w
	}
	return cr.ledgerW.Load()
}

// newRecord starts the record of a fetch made now for why, replacing the
// token prev. rejected is set when prev was rejected while the store held
// it, unexpired: the merge then decides whether someone outside fetched.
func (cr *Credential) newRecord(why reason, outage bool, prev string, rejected *suspicion) *FetchRecord {
	if cr.ledger == nil {
		return nil
	}
	r := &FetchRecord{Instance: cr.ledger.Instance, Reason: why.String(), Replaced: Fingerprint(prev), suspect: rejected}
	switch {
	case cr.ledger.Operator:
		r.Reason = ReasonOperator
	case outage:
		r.Reason = ReasonOutage
	}
	return r
}

// suspect returns the suspicion for a fetch of flight f that replaces cur
// (the token served from the stored value), or nil. It takes WeChat's word
// for it: f is a rejection (an *APIError with 40001 or 40014, "invalid",
// not 42001 "expired") of the very token the store holds, before its
// expiry, from an issuer whose fetch kills the token it replaces (not
// WeCom's gettoken, Policy.HandoverAtExpiry). A Refresh whose caller did
// not say what WeChat answered names nobody.
func (cr *Credential) suspect(f *flight, cur Token) *suspicion {
	if cr.ledger == nil || f.why != reasonRejected || f.stale == "" || cur.Value != f.stale || !cr.clock().Before(cur.ExpiresAt) {
		return nil
	}
	if cr.policy.Handover < 0 {
		// The issuer hands every caller the same token until it expires
		// (WeCom's gettoken): no one's fetch kills another's token, so a
		// rejection is the issuer's doing (WeCom revokes early), never an
		// outside fetch.
		return nil
	}
	e := asAPIError(f.cause)
	if e == nil || (e.Code != 40001 && e.Code != 40014) {
		return nil
	}
	return &suspicion{rejected: Fingerprint(f.stale), forcible: cr.forcible, path: e.Path, code: e.Code}
}

// record queues r, completed with the fetch's outcome, for the ledger.
func (cr *Credential) record(r *FetchRecord, tok Token, forced bool, at time.Time, latency, wait time.Duration) {
	if r == nil {
		return
	}
	rec := *r
	rec.At, rec.Token, rec.Forced, rec.Latency, rec.LockWait = at.UTC(), Fingerprint(tok.Value), forced, latency, wait
	rec.Seq = ledgerSeq.Add(1)
	if rec.Token == rec.Replaced {
		rec.suspect = nil // handed back (stable_token): it replaced nothing
	}
	w := cr.writer()
	w.mu.Lock()
	if len(w.queue) == ledgerQueueMax {
		w.queue = w.queue[1:]
		w.dropped++
	}
	w.queue = append(w.queue, rec)
	start := !w.running
	if start {
		w.running, w.idle = true, make(chan struct{})
	}
	w.mu.Unlock()
	if start {
		go cr.ledgerLoop()
	}
}

// FlushLedger waits until this process's fetch records are in the store's
// ledger (see LedgerKey), or ctx ends (its error is returned). A nil error
// with the ledger off.
func (cr *Credential) FlushLedger(ctx context.Context) error {
	w := cr.ledgerW.Load()
	if w == nil {
		return nil
	}
	for {
		w.mu.Lock()
		idle, empty := w.idle, len(w.queue) == 0 && !w.running
		w.mu.Unlock()
		if empty {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Ledger reads the credential's fetch ledger from its store (ReadLedger).
func (cr *Credential) Ledger(ctx context.Context) (Ledger, error) {
	return ReadLedger(ctx, cr.store, cr.key)
}

// ledgerLoop writes the queued records until none is left, backing off
// while the store fails.
func (cr *Credential) ledgerLoop() {
	w := cr.ledgerW.Load()
	delay := w.min
	for {
		w.mu.Lock()
		batch, dropped := slices.Clone(w.queue), w.dropped
		if len(batch) == 0 && dropped == 0 {
			w.running = false
			close(w.idle)
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), cr.policy.RefreshTimeout)
		done, doneDropped, err := cr.writeLedger(ctx, batch, dropped)
		cancel()
		// What is in the stored ledger leaves the queue (by identity: a
		// write found to have landed takes its records, whatever else
		// failed).
		w.mu.Lock()
		w.queue = slices.DeleteFunc(w.queue, func(r FetchRecord) bool { return slices.ContainsFunc(done, r.same) })
		w.dropped = max(0, w.dropped-doneDropped)
		w.mu.Unlock()
		if err != nil {
			cr.storeError("ledger", err)
			t := time.NewTimer(delay)
			<-t.C
			delay = min(2*delay, w.max)
			continue
		}
		delay = w.min
	}
}

// ledgerExpiry is the ExpiresAt a ledger is stored with: LedgerDays after
// its newest record. Stores never judge by it, but one that keeps a key
// only while it may be read (Redis: a TTL of ExpiresAt plus a grace) drops
// the ledger of a credential that has not fetched for that long; and a
// ledger is not durable state (a zero ExpiresAt would say it is, and Redis
// would warn that a server persisting nothing loses it:
// wechatconf.durability_risk).
// It is counted from the system clock or the newest record, whichever is
// later, so that a credential on a clock of its own (a test's simulated
// day) never writes a ledger already expired.
func ledgerExpiry(l Ledger) time.Time {
	from := time.Now()
	if last, ok := l.Last(); ok && last.At.After(from) {
		from = last.At
	}
	return from.Add(LedgerDays * 24 * time.Hour)
}

// ledgerAttempts bounds the compare-and-refresh rounds of one write when
// other processes keep winning the compare.
const ledgerAttempts = 8

// writeLedger merges batch (and dropped, a count of records lost) into the
// stored ledger by compare-and-refresh, and logs what the merge found once
// it lands. It returns the records of batch (and the count of dropped) now
// known to be in the stored ledger: all of them when err is nil; else those
// of an earlier write found to have landed (see unsureWrite).
func (cr *Credential) writeLedger(ctx context.Context, batch []FetchRecord, dropped int) (done []FetchRecord, doneDropped int, err error) {
	all, allDropped := batch, dropped
	w := cr.ledgerW.Load()
	stored, gerr := cr.store.Get(ctx, w.key)
	switch {
	case gerr == nil:
	case errors.Is(gerr, ErrNotFound) || errors.Is(gerr, ErrCorrupt):
		stored = Token{}
	default:
		return nil, 0, gerr
	}
	for attempt := range ledgerAttempts {
		cur, err := decodeLedgerValue(stored.Value)
		switch {
		case errors.Is(err, errLedgerNewer):
			// A newer version's: left alone, this process's records
			// are not kept (logged once per write).
			cr.storeError("ledger", err)
			return all, allDropped, nil
		case stored.Value != "" && err != nil:
			cr.storeError("ledger", err) // replaced by a fresh ledger
		}
		if u := w.unsure; attempt == 0 && u != nil {
			w.unsure = nil
			if slices.Contains(cur.Writes, u.id) || (u.probe != nil && slices.ContainsFunc(cur.Entries, u.probe.same)) {
				// It landed: what it found is logged now, and its records
				// are not merged again.
				cr.ledgerLanded(u.found)
				done, doneDropped = u.added, min(dropped, u.dropped)
				batch = slices.DeleteFunc(slices.Clone(batch), func(r FetchRecord) bool {
					return slices.ContainsFunc(u.added, r.same)
				})
				dropped -= doneDropped
			}
		}
		next, found := mergeLedger(cur.Ledger, batch, dropped)
		if found.unchanged {
			return all, allDropped, nil // landed before (a write that reported failure)
		}
		id := Fingerprint(cr.ledger.Instance + "#" + strconv.FormatUint(ledgerSeq.Add(1), 10))[:8]
		writes := append(slices.Clone(cur.Writes), id)
		if n := len(writes); n > ledgerWrites {
			writes = writes[n-ledgerWrites:]
		}
		val := encodeLedgerWrite(next, writes)
		got, err := cr.store.Refresh(ctx, w.key, stored.Value, func(context.Context) (Token, error) {
			return Token{Value: val, ExpiresAt: ledgerExpiry(next)}, nil
		})
		if err != nil {
			u := &unsureWrite{id: id, added: found.added, dropped: dropped, found: found}
			if kept, err := decodeLedger(val); err == nil {
				for i := len(kept.Entries) - 1; i >= 0 && u.probe == nil; i-- {
					if slices.ContainsFunc(found.added, kept.Entries[i].same) {
						u.probe = &kept.Entries[i]
					}
				}
			}
			w.unsure = u
			return done, doneDropped, err
		}
		if got.Value == val {
			cr.ledgerLanded(found)
			return all, allDropped, nil
		}
		stored = got // another process wrote first: merge into its ledger
	}
	return done, doneDropped, errors.New("other processes kept writing the ledger first")
}

// mergeFound is what a merge learnt: the outside fetches it named and the
// quota thresholds the fleet's counts crossed.
type mergeFound struct {
	unchanged bool
	added     []FetchRecord // the records merged
	outside   []FetchRecord
	crossed   []crossing
	day       LedgerDay
}

type crossing struct {
	limit        string // "fetches" or "forced"
	day          string // the record's Beijing day
	before, used int    // the day's count before and after the record
}

// mergeLedger returns cur with batch's records that it does not hold (by
// At and Instance) added in time order, counted in their days, and
// suspicions decided: a record replacing a rejected token the ledger shows
// the fleet fetched last, with nothing after it, names an outside fetch.
func mergeLedger(cur Ledger, batch []FetchRecord, dropped int) (Ledger, mergeFound) {
	var found mergeFound
	next := Ledger{Entries: slices.Clone(cur.Entries), Days: slices.Clone(cur.Days), Lost: cur.Lost + dropped}
	added := 0
	var last time.Time // the newest record added
	for _, r := range batch {
		if slices.ContainsFunc(next.Entries, r.same) {
			continue
		}
		if s := r.suspect; s != nil {
			r.Outside = outsideFetch(next.Entries, r, s)
		}
		r.suspect = nil
		// After the records of the same time: the newest merged is the
		// last trimmed.
		i := sort.Search(len(next.Entries), func(j int) bool { return next.Entries[j].At.After(r.At) })
		next.Entries = slices.Insert(next.Entries, i, r)
		before := dayOf(next.Days, r.At)
		d := before
		d.Fetches++
		if r.Forced {
			d.Forced++
		}
		if r.Outside != nil {
			d.Outside++
			found.outside = append(found.outside, r)
		}
		next.Days = putDay(next.Days, d)
		found.added = append(found.added, r)
		found.crossed = append(found.crossed, crossings(before, d)...)
		if !r.At.Before(last) {
			last = r.At
		}
		added++
	}
	if added == 0 && dropped == 0 {
		found.unchanged = true
		return cur, found
	}
	if n := len(next.Entries); n > LedgerEntries {
		next.Entries = next.Entries[n-LedgerEntries:]
	}
	if added > 0 {
		found.day = dayOf(next.Days, last)
	}
	return next, found
}

// same reports whether e is r: the same instance, sequence and time.
func (r FetchRecord) same(e FetchRecord) bool {
	return e.Seq == r.Seq && e.Instance == r.Instance && e.At.Equal(r.At)
}

// outsideFetch returns the evidence that r's rejected token was killed by
// a fetch outside the fleet, or nil: entries (the fleet's records, in time
// order, before r is added) must hold the fetch that issued it and nothing
// after it up to r nor answered while it was in flight (from its At less
// its Latency), and no record already naming it (two fleet members
// that replaced the same rejected token — one cut off from the store, its
// record landing after the other's — name it once).
func outsideFetch(entries []FetchRecord, r FetchRecord, s *suspicion) *OutsideFetch {
	if slices.ContainsFunc(entries, func(e FetchRecord) bool { return e.Outside != nil && e.Outside.Rejected == s.rejected }) {
		return nil // named already
	}
	i := slices.IndexFunc(entries, func(e FetchRecord) bool { return e.Token == s.rejected })
	if i < 0 {
		return nil // not a token the ledger knows the fleet fetched
	}
	for _, e := range entries[i+1:] {
		if e.Token != s.rejected && (!e.At.After(r.At) || e.Replaced == s.rejected) {
			// The fleet fetched since (or replaced that very token, whatever
			// its clock says): its own doing.
			return nil
		}
	}
	// A fleet fetch answered while the rejected token's fetch was in
	// flight (a lease that ran out mid-fetch: two holders at WeChat at
	// once) may have been issued after it, though its record is older:
	// its own doing too.
	asked := entries[i].At.Add(-entries[i].Latency)
	for _, e := range entries[:i] {
		if e.Token != s.rejected && !e.At.Before(asked) {
			return nil
		}
	}
	e := entries[i]
	return &OutsideFetch{Rejected: s.rejected, FetchedAt: e.At, FetchedBy: e.Instance, Age: r.At.Sub(e.At), Path: s.path, Code: s.code, Forced: s.forcible}
}

// dayOf returns days' counters for t's Beijing day.
func dayOf(days []LedgerDay, t time.Time) LedgerDay {
	return Ledger{Days: days}.Today(t)
}

// putDay stores d in days, newest first, keeping LedgerDays.
func putDay(days []LedgerDay, d LedgerDay) []LedgerDay {
	if i := slices.IndexFunc(days, func(x LedgerDay) bool { return x.Day == d.Day }); i >= 0 {
		days[i] = d
		return days
	}
	days = append(days, d)
	slices.SortFunc(days, func(a, b LedgerDay) int { return strings.Compare(b.Day, a.Day) })
	if len(days) > LedgerDays {
		days = days[:LedgerDays]
	}
	return days
}

// crossings returns the counts a record moved, for ledgerLanded to compare
// with the limits.
func crossings(before, after LedgerDay) []crossing {
	return []crossing{{"fetches", after.Day, before.Fetches, after.Fetches}, {"forced", after.Day, before.Forced, after.Forced}}
}

// beijingDay is t's date in Beijing time.
func beijingDay(t time.Time) string { return t.In(beijing).Format(time.DateOnly) }

// ledgerLanded logs what a landed merge found: each outside fetch named
// (EventOutsideFetch), each quota threshold crossed (EventQuota), and the
// fleet's counts for the day (EventRecorded).
func (cr *Credential) ledgerLanded(found mergeFound) {
	for _, r := range found.outside {
		o := r.Outside
		advice := "another environment or script fetches this AppID's access_token: use stable_token (Config.TokenAPI), give it its own AppID, or make it a worker of the token server"
		if o.Forced {
			advice = "someone outside the fleet forced a new token (stable_token's force_refresh): find who calls it with this AppID and make it a worker of the token server"
		}
		cr.logEvent(slog.LevelWarn, EventOutsideFetch,
			slog.String("rejected", o.Rejected), slog.Time("fetched_at", o.FetchedAt), slog.String("fetched_by", o.FetchedBy),
			slog.Duration("token_age", o.Age), slog.String("path", o.Path), slog.Int("errcode", o.Code),
			slog.Bool("forced_elsewhere", o.Forced), slog.String("advice", advice))
	}
	limits := map[string]int{"fetches": cr.ledger.DailyLimit, "forced": cr.ledger.ForcedDailyLimit}
	for _, c := range found.crossed {
		daily := limits[c.limit]
		if daily <= 0 {
			continue
		}
		for _, p := range quotaThresholds {
			at := (daily*p + 99) / 100 // the count that reaches p %
			if c.before < at && c.used >= at {
				cr.logEvent(slog.LevelWarn, EventQuota, slog.String("limit", c.limit), slog.Int("used", c.used),
					slog.Int("daily_limit", daily), slog.Int("percent", p), slog.String("day", c.day))
			}
		}
	}
	if found.day.Day != "" {
		cr.logEvent(slog.LevelDebug, EventRecorded, slog.String("day", found.day.Day), slog.Int("fetches", found.day.Fetches),
			slog.Int("forced", found.day.Forced), slog.Int("outside", found.day.Outside),
			slog.Int("daily_limit", cr.ledger.DailyLimit), slog.Int("forced_daily_limit", cr.ledger.ForcedDailyLimit))
	}
}
