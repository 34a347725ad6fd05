package wechatconfotel

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/wechatconf/wechatconf/core"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meter and tracer.
const ScopeName = "github.com/wechatconf/wechatconf/contrib/otel"

// The attribute keys.
const (
	AttrCredential = attribute.Key("wechatconf.credential")     // the credential's kind
	AttrPlatform   = attribute.Key("wechatconf.platform")       // the kind of account, a core.Platform ("official_account", "wecom", …)
	AttrKey        = attribute.Key("wechatconf.credential.key") // its store key (WithKeyAttribute; always on spans)
	AttrOutcome    = attribute.Key("wechatconf.outcome")        // "ok" or "error"
	AttrReason     = attribute.Key("wechatconf.reason")         // "expiry", "rejected" or "forced"
	AttrForced     = attribute.Key("wechatconf.forced")         // bool: stable_token with force_refresh
	AttrErrcode    = attribute.Key("wechatconf.errcode")        // WeChat's errcode
	AttrEvent      = attribute.Key("wechatconf.event")          // "fetched", "fetch_failed" or "adopted"
	AttrWhy        = attribute.Key("wechatconf.why")            // of a forced refresh
	AttrLimit      = attribute.Key("wechatconf.limit")          // the Config field of a limit
	AttrStoreOp    = attribute.Key("wechatconf.store.op")       // "get", "set", "refresh", "decode", "write_back", "ledger"
	// AttrQuota names the daily limit of the quota metrics: "fetches" (the
	// token calls WeChat answered) or "forced" (stable_token's
	// force_refresh calls).
	AttrQuota = attribute.Key("wechatconf.limit")
	// AttrPercent is the threshold wechatconf.quota.crossed counts: 50
	// or 80 (percent of the daily limit).
	AttrPercent = attribute.Key("wechatconf.percent")
)

// Option configures NewHandler.
type Option func(*config)

type config struct {
	mp      metric.MeterProvider
	tp      trace.TracerProvider
	withKey bool
}

// WithMeterProvider sets the MeterProvider; the default is
// otel.GetMeterProvider().
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// WithTracerProvider sets the TracerProvider; the default is
// otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// WithKeyAttribute adds the store key ("wechatconf.credential.key") to
// every metric: one time series per credential rather than per kind. Off by
// default: an Open Platform with 10,000 authorizers has 10,000 keys.
func WithKeyAttribute() Option { return func(c *config) { c.withKey = true } }

// Handler is an slog.Handler that records wechatconf events as metrics and
// spans and passes every record on to the next handler. It is safe for
// concurrent use; the handlers WithAttrs and WithGroup return share its
// instruments and observed credentials.
type Handler struct {
	next slog.Handler
	s    *state
}

// state is what a Handler and those derived from it share.
type state struct {
	withKey bool
	tracer  trace.Tracer

	fetches, adoptions, rejections, forced, limited, storeErrors, storeOutages, lockLost, bgFailures, writtenBack metric.Int64Counter
	outsideFetches, quotaCrossed                                                                                  metric.Int64Counter
	fetchDuration, lockWait                                                                                       metric.Float64Histogram
	gauge                                                                                                         metric.Float64ObservableGauge
	quotaUsed, quotaLimit                                                                                         metric.Int64ObservableGauge

	reg, quotaReg metric.Registration
	now           func() time.Time // the quota gauges' clock (tests set it)

	// quota holds, per credential key, the fleet's counts of the day the
	// last core.EventRecorded reported, for the quota gauges; an entry
	// of another Beijing day than today's is dropped at collection, so it
	// holds the credentials that fetched today at most.
	quotaMu sync.Mutex
	quota   map[string]quotaEntry

	mu sync.Mutex
	// observed are the credentials given to Observe, held weakly: one
	// collected (an evicted authorizer's) reads nil and is dropped by the
	// next sweep. sweepAt is the size at which Observe sweeps before
	// adding: twice the live count of the last sweep, so that a sweep
	// (O(n)) comes after n/2 additions at least and adding stays O(1)
	// amortised, and the map never holds more than twice the credentials
	// alive at the last sweep (or minSweep).
	observed map[weak.Pointer[core.Credential]]struct{}
	sweepAt  int
}

// minSweep is the least sweepAt.
const minSweep = 64

// durationBuckets are the histograms' bucket boundaries, in seconds (those
// of the HTTP semantic conventions, up to a slow token call with retries).
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30}

// NewHandler returns a Handler that records the wechatconf events of the
// records it handles and passes every record on to next, those next is
// Enabled for; a nil next drops them. Give slog.New(h) to a credential as
// its Logger (core.Config.Logger, CredentialConfig.Logger, …).
//
// Instruments the MeterProvider fails to create are replaced by no-op ones
// (the error goes to otel.Handle).
func NewHandler(next slog.Handler, opts ...Option) *Handler {
	cfg := config{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	m := cfg.mp.Meter(ScopeName)
	s := &state{withKey: cfg.withKey, tracer: cfg.tp.Tracer(ScopeName),
		observed: make(map[weak.Pointer[core.Credential]]struct{}), sweepAt: minSweep,
		now: time.Now, quota: make(map[string]quotaEntry)}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil {
			otel.Handle(err)
		}
		return c
	}
	histogram := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(durationBuckets...))
		if err != nil {
			otel.Handle(err)
		}
		return h
	}
	s.fetches = counter("wechatconf.fetches", "{fetch}", "Token calls made to WeChat (credential fetches).")
	s.adoptions = counter("wechatconf.adoptions", "{adoption}", "Credentials taken from the store that another instance fetched.")
	s.rejections = counter("wechatconf.rejections", "{rejection}", "Credentials WeChat rejected (40001, 40014, 42001).")
	s.forced = counter("wechatconf.forced_refreshes", "{refresh}", "Forced refreshes (stable_token force_refresh) about to be made.")
	s.limited = counter("wechatconf.limited", "{call}", "Token calls held back by a limit.")
	s.storeErrors = counter("wechatconf.store.errors", "{error}", "Failed token store operations.")
	s.storeOutages = counter("wechatconf.store.outages", "{refresh}", "Refreshes the token store failed; wechatconf.fetched says whether a fetch was made without the store (core.Policy.FetchWithoutStore).")
	s.lockLost = counter("wechatconf.lock.lost", "{event}", "Refreshes that lost the store's lock to another holder.")
	s.writtenBack = counter("wechatconf.written_back", "{write}", "Tokens a fetch brought whose first write did not land, written to the store afterwards.")
	s.bgFailures = counter("wechatconf.background_refresh.failures", "{failure}", "Failed refreshes ahead of expiry.")
	s.outsideFetches = counter("wechatconf.outside_fetches", "{fetch}", "Tokens killed by a fetch outside the fleet, named from the fetch ledger (core.EventOutsideFetch).")
	s.quotaCrossed = counter("wechatconf.quota.crossed", "{crossing}", "The fleet's fetches of a day reaching 50 % or 80 % of WeChat's daily limit (core.EventQuota).")
	s.fetchDuration = histogram("wechatconf.fetch.duration", "Duration of token calls, retries included.")
	s.lockWait = histogram("wechatconf.lock.wait", "Wait for the token store's lock before a fetch or an adoption.")

	var err error
	s.gauge, err = m.Float64ObservableGauge("wechatconf.token.remaining", metric.WithUnit("s"),
		metric.WithDescription("Life left of the credentials held in memory (ExpiresAt - now)."))
	if err != nil {
		otel.Handle(err)
	} else if s.reg, err = m.RegisterCallback(s.observe, s.gauge); err != nil {
		otel.Handle(err)
	}
	if s.quotaUsed, err = m.Int64ObservableGauge("wechatconf.quota.used", metric.WithUnit("{fetch}"),
		metric.WithDescription("The fleet's fetches of the credential today (Beijing day), from the fetch ledger (core.EventRecorded).")); err != nil {
		otel.Handle(err)
	}
	if s.quotaLimit, err = m.Int64ObservableGauge("wechatconf.quota.limit", metric.WithUnit("{fetch}"),
		metric.WithDescription("WeChat's daily limit on the fetches wechatconf.quota.used counts.")); err != nil {
		otel.Handle(err)
	}
	if s.quotaUsed != nil && s.quotaLimit != nil {
		if s.quotaReg, err = m.RegisterCallback(s.observeQuota, s.quotaUsed, s.quotaLimit); err != nil {
			otel.Handle(err)
		}
	}
	return &Handler{next: next, s: s}
}

// Observe adds credentials to the wechatconf.token.remaining gauge
// (conf.AccessTokenCredential(), app.AccessTokenCredential(),
// authorizer.AccessTokenCredential(), …). A credential holding no token in
// memory has no point. Safe for concurrent use; a credential given twice
// is observed once; nil is ignored.
//
// The handler holds the credentials weakly: it keeps none alive, and one
// that nothing else references any more — an Open Platform authorizer
// evicted from its Component's registry (openplatform.Config.MaxAuthorizers)
// and not held by the caller — leaves the gauge, and the handler's memory,
// once the garbage collector has reclaimed it. Observing every authorizer
// a Component hands out is thus bounded by the authorizers alive, however
// many come and go. Adding a credential costs O(1) (amortised: the
// collected ones are swept out when the set has doubled since the last
// sweep, and at each collection of the gauge). Forget stops observing a
// credential that is still alive.
func (h *Handler) Observe(creds ...*core.Credential) {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range creds {
		if c == nil {
			continue
		}
		wp := weak.Make(c)
		if _, ok := s.observed[wp]; ok {
			continue
		}
		if len(s.observed) >= s.sweepAt {
			s.sweepLocked(nil)
		}
		s.observed[wp] = struct{}{}
	}
}

// Forget removes credentials from the wechatconf.token.remaining gauge:
// those Observe was given that are still alive but no longer to be
// reported (an authorizer whose grant was withdrawn, a Conf being
// retired). A credential not observed is ignored. Safe for concurrent use.
func (h *Handler) Forget(creds ...*core.Credential) {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range creds {
		if c != nil {
			delete(s.observed, weak.Make(c))
		}
	}
}

// sweepLocked drops the collected credentials from s.observed, calling
// live, if not nil, with each live one, and sets the next sweepAt. A map
// from which any was dropped is rebuilt: a Go map does not give back the
// room of deleted entries, and the set must shrink after a burst of
// authorizers. s.mu is held.
func (s *state) sweepLocked(live func(*core.Credential)) {
	n := 0
	for wp := range s.observed {
		if c := wp.Value(); c != nil {
			n++
			if live != nil {
				live(c)
			}
		}
	}
	if n < len(s.observed) {
		m := make(map[weak.Pointer[core.Credential]]struct{}, n)
		for wp := range s.observed {
			if wp.Value() != nil {
				m[wp] = struct{}{}
			}
		}
		s.observed = m
	}
	s.sweepAt = max(2*len(s.observed), minSweep)
}

// Close unregisters the gauges' callbacks. The counters stay usable.
func (h *Handler) Close() error {
	var errs []error
	for _, r := range []metric.Registration{h.s.reg, h.s.quotaReg} {
		if r != nil {
			if err := r.Unregister(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// quotaEntry is a credential's counts of one day, from its last
// core.EventRecorded.
type quotaEntry struct {
	kind, platform, key, day     string
	fetches, forced              int64
	dailyLimit, forcedDailyLimit int64
}

// beijing is the time zone of WeChat's days (core's ledger counts them).
var beijing = time.FixedZone("CST", 8*60*60)

// quotaSeries is a point of the quota gauges without the key attribute.
type quotaSeries struct {
	kind, platform, limit string
}

// quotaPoint is a point of the quota gauges: used of limit (0: none known).
type quotaPoint struct {
	used, limit int64
}

// fuller reports whether p is nearer its limit than q: by the share used,
// then (no limit known) by the count.
func (p quotaPoint) fuller(q quotaPoint) bool {
	ps, qs := share(p), share(q)
	if ps != qs {
		return ps > qs
	}
	return p.used > q.used
}

func share(p quotaPoint) float64 {
	if p.limit <= 0 {
		return 0
	}
	return float64(p.used) / float64(p.limit)
}

// observeQuota is the quota gauges' callback: today's counts of the
// credentials that recorded fetches today; an entry of another day is
// dropped. Without the key attribute, each kind, platform and limit has
// the point of the credential nearest its limit.
func (s *state) observeQuota(_ context.Context, o metric.Observer) error {
	today := s.now().In(beijing).Format(time.DateOnly)
	points := make(map[quotaSeries]quotaPoint)
	type keyedPoint struct {
		e     quotaEntry
		limit string
		p     quotaPoint
	}
	var keyed []keyedPoint
	s.quotaMu.Lock()
	for k, e := range s.quota {
		if e.day != today {
			delete(s.quota, k)
			continue
		}
		for _, c := range []struct {
			limit string
			p     quotaPoint
		}{{"fetches", quotaPoint{e.fetches, e.dailyLimit}}, {"forced", quotaPoint{e.forced, e.forcedDailyLimit}}} {
			if c.limit == "forced" && c.p.limit <= 0 && c.p.used == 0 {
				continue // not a credential with forced fetches
			}
			if s.withKey {
				keyed = append(keyed, keyedPoint{e, c.limit, c.p})
				continue
			}
			sk := quotaSeries{e.kind, e.platform, c.limit}
			if q, ok := points[sk]; !ok || c.p.fuller(q) {
				points[sk] = c.p
			}
		}
	}
	s.quotaMu.Unlock()
	observe := func(p quotaPoint, attrs ...attribute.KeyValue) {
		o.ObserveInt64(s.quotaUsed, p.used, metric.WithAttributes(attrs...))
		if p.limit > 0 {
			o.ObserveInt64(s.quotaLimit, p.limit, metric.WithAttributes(attrs...))
		}
	}
	for _, k := range keyed {
		observe(k.p, AttrCredential.String(k.e.kind), AttrPlatform.String(k.e.platform), AttrKey.String(k.e.key), AttrQuota.String(k.limit))
	}
	for sk, p := range points {
		observe(p, AttrCredential.String(sk.kind), AttrPlatform.String(sk.platform), AttrQuota.String(sk.limit))
	}
	return nil
}

// series is a point of the gauge without the key attribute.
type series struct {
	kind     string
	platform core.Platform
}

// observe is the gauge's callback; it sweeps the collected credentials out.
func (s *state) observe(_ context.Context, o metric.Observer) error {
	s.mu.Lock()
	creds := make([]*core.Credential, 0, len(s.observed))
	s.sweepLocked(func(c *core.Credential) { creds = append(creds, c) })
	s.mu.Unlock()
	now := time.Now()
	var least map[series]float64 // without the key attribute
	for _, c := range creds {
		exp, ok := c.Expiry()
		if !ok {
			continue
		}
		left := exp.Sub(now).Seconds()
		if s.withKey {
			o.ObserveFloat64(s.gauge, left, metric.WithAttributes(AttrCredential.String(c.Name()),
				AttrPlatform.String(string(c.Platform())), AttrKey.String(c.Key())))
			continue
		}
		if least == nil {
			least = make(map[series]float64)
		}
		k := series{c.Name(), c.Platform()}
		if v, ok := least[k]; !ok || left < v {
			least[k] = left
		}
	}
	for k, left := range least {
		o.ObserveFloat64(s.gauge, left, metric.WithAttributes(AttrCredential.String(k.kind), AttrPlatform.String(string(k.platform))))
	}
	return nil
}

// Enabled reports true for every level from Debug up (wechatconf's events
// are recorded whatever next wants: core.EventRecorded, which the quota
// gauges read, is a Debug event), and otherwise what next reports.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelDebug || (h.next != nil && h.next.Enabled(ctx, l))
}

// Handle records r if it is a wechatconf event, then passes it to next if
// next is Enabled for its level.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "wechatconf.") {
		h.s.record(ctx, r)
	}
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// WithAttrs returns a Handler passing records to next.WithAttrs(attrs),
// sharing h's instruments.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if h.next == nil {
		return h
	}
	return &Handler{next: h.next.WithAttrs(attrs), s: h.s}
}

// WithGroup returns a Handler passing records to next.WithGroup(name),
// sharing h's instruments.
func (h *Handler) WithGroup(name string) slog.Handler {
	if h.next == nil {
		return h
	}
	return &Handler{next: h.next.WithGroup(name), s: h.s}
}

// event is what record reads from a record's attributes.
type event struct {
	kind, platform, key, reason, why, limit, op, errText, day string
	forced, fetched, hasWait, hasErrcode, forcedElsewhere     bool
	errcode, percent                                          int64
	nFetches, nForced, dailyLimit, forcedDailyLimit           int64 // core.EventRecorded's counts
	latency, lockWait                                         time.Duration
}

// record records the event r.
func (s *state) record(ctx context.Context, r slog.Record) {
	var e event
	r.Attrs(func(a slog.Attr) bool {
		v := a.Value.Resolve()
		switch a.Key {
		case "credential":
			e.kind = v.String()
		case "platform":
			e.platform = v.String()
		case "key":
			e.key = v.String()
		case "reason":
			e.reason = v.String()
		case "why":
			e.why = v.String()
		case "limit":
			e.limit = v.String()
		case "op":
			e.op = v.String()
		case "error":
			e.errText = v.String()
		case "forced":
			switch v.Kind() {
			case slog.KindBool: // EventFetched's: a forced fetch
				e.forced = v.Bool()
			case slog.KindInt64: // EventRecorded's: the day's forced fetches
				e.nForced = v.Int64()
			}
		case "forced_elsewhere":
			e.forcedElsewhere = v.Kind() == slog.KindBool && v.Bool()
		case "day":
			e.day = v.String()
		case "fetches":
			e.nFetches = intValue(v)
		case "daily_limit":
			e.dailyLimit = intValue(v)
		case "forced_daily_limit":
			e.forcedDailyLimit = intValue(v)
		case "percent":
			e.percent = intValue(v)
		case "fetched":
			e.fetched = v.Kind() == slog.KindBool && v.Bool()
		case "errcode":
			if v.Kind() == slog.KindInt64 {
				e.errcode, e.hasErrcode = v.Int64(), true
			}
		case "latency":
			if v.Kind() == slog.KindDuration {
				e.latency = v.Duration()
			}
		case "lock_wait":
			if v.Kind() == slog.KindDuration {
				e.lockWait, e.hasWait = v.Duration(), true
			}
		}
		return true
	})
	if e.kind == "" {
		return // not a credential's event
	}
	base := make([]attribute.KeyValue, 0, 8)
	base = append(base, AttrCredential.String(e.kind))
	if e.platform != "" { // every event of core has one
		base = append(base, AttrPlatform.String(e.platform))
	}
	if s.withKey {
		base = append(base, AttrKey.String(e.key))
	}
	with := func(kv ...attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributes(append(base, kv...)...)
	}
	switch r.Message {
	case core.EventFetched, core.EventFetchFailed:
		ok := r.Message == core.EventFetched
		outcome := "ok"
		if !ok {
			outcome = "error"
		}
		kv := []attribute.KeyValue{AttrOutcome.String(outcome), AttrReason.String(e.reason), AttrForced.Bool(e.forced)}
		if !ok && e.hasErrcode {
			kv = append(kv, AttrErrcode.Int64(e.errcode))
		}
		attrs := with(kv...)
		s.fetches.Add(ctx, 1, attrs)
		s.fetchDuration.Record(ctx, e.latency.Seconds(), attrs)
		if e.hasWait {
			s.lockWait.Record(ctx, e.lockWait.Seconds(), with(AttrEvent.String(strings.TrimPrefix(r.Message, "wechatconf."))))
		}
		s.spans(ctx, r, &e, ok)
	case core.EventAdopted:
		s.adoptions.Add(ctx, 1, with())
		if e.hasWait {
			s.lockWait.Record(ctx, e.lockWait.Seconds(), with(AttrEvent.String("adopted")))
		}
	case core.EventRejected:
		if e.hasErrcode {
			s.rejections.Add(ctx, 1, with(AttrErrcode.Int64(e.errcode)))
		} else {
			s.rejections.Add(ctx, 1, with())
		}
	case core.EventForced:
		s.forced.Add(ctx, 1, with(AttrWhy.String(e.why)))
	case core.EventLimited:
		s.limited.Add(ctx, 1, with(AttrLimit.String(e.limit)))
	case core.EventStoreError:
		s.storeErrors.Add(ctx, 1, with(AttrStoreOp.String(e.op)))
	case core.EventStoreOutage:
		s.storeOutages.Add(ctx, 1, with(AttrStoreOp.String(e.op), attribute.Bool("wechatconf.fetched", e.fetched)))
	case core.EventLockLost:
		s.lockLost.Add(ctx, 1, with())
	case core.EventWrittenBack:
		s.writtenBack.Add(ctx, 1, with())
	case core.EventBackgroundRefreshFailed:
		s.bgFailures.Add(ctx, 1, with())
	case core.EventOutsideFetch:
		s.outsideFetches.Add(ctx, 1, with(AttrForced.Bool(e.forcedElsewhere)))
	case core.EventQuota:
		s.quotaCrossed.Add(ctx, 1, with(AttrQuota.String(e.limit), AttrPercent.Int64(e.percent)))
	case core.EventRecorded:
		if e.key == "" || e.day == "" {
			return
		}
		s.quotaMu.Lock()
		next := quotaEntry{kind: e.kind, platform: e.platform, key: e.key, day: e.day,
			fetches: e.nFetches, forced: e.nForced, dailyLimit: e.dailyLimit, forcedDailyLimit: e.forcedDailyLimit}
		switch cur, ok := s.quota[e.key]; {
		case !ok || cur.day < e.day:
			s.quota[e.key] = next
		case cur.day == e.day: // the fleet's counts only grow within a day; two Confs of one key report in any order
			next.fetches, next.forced = max(cur.fetches, next.fetches), max(cur.forced, next.forced)
			s.quota[e.key] = next
		} // a late report of an earlier day does not hide today's
		s.quotaMu.Unlock()
	}
}

// intValue is v as an int64, 0 for another kind.
func intValue(v slog.Value) int64 {
	if v.Kind() == slog.KindInt64 {
		return v.Int64()
	}
	return 0
}

// spans reconstructs the spans of a refresh that made a token call from its
// event: it ended at the record's time and started lock_wait + latency
// before.
func (s *state) spans(ctx context.Context, r slog.Record, e *event, ok bool) {
	end := r.Time
	if end.IsZero() {
		end = time.Now()
	}
	fetchStart := end.Add(-e.latency)
	start := fetchStart.Add(-e.lockWait)
	attrs := []attribute.KeyValue{AttrCredential.String(e.kind), AttrPlatform.String(e.platform), AttrKey.String(e.key), AttrReason.String(e.reason), AttrForced.Bool(e.forced)}
	ctx, refresh := s.tracer.Start(ctx, "wechatconf.refresh "+e.kind, trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	if !refresh.IsRecording() {
		refresh.End(trace.WithTimestamp(end))
		return
	}
	_, wait := s.tracer.Start(ctx, "wechatconf.store.lock_wait", trace.WithTimestamp(start))
	wait.End(trace.WithTimestamp(fetchStart))
	_, fetch := s.tracer.Start(ctx, "wechatconf.fetch", trace.WithTimestamp(fetchStart), trace.WithSpanKind(trace.SpanKindClient))
	if !ok {
		if e.hasErrcode {
			fetch.SetAttributes(AttrErrcode.Int64(e.errcode))
		}
		// core redacts "error" at the source: it holds no credential.
		fetch.SetStatus(codes.Error, e.errText)
		refresh.SetStatus(codes.Error, "fetch failed")
	}
	fetch.End(trace.WithTimestamp(end))
	refresh.End(trace.WithTimestamp(end))
}
