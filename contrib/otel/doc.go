// Package wechatconfotel turns the events of wechatconf credentials (a
// core.Conf, a wecom.App, an Open Platform authorizer, a kind of one's own)
// into OpenTelemetry metrics and spans.
//
// core stays on the standard library: its documented slog events (the
// core.Event* constants) are the hook. [NewHandler] wraps the slog.Handler
// the credentials log to; it records each event and passes the record on:
//
//	h := wechatconfotel.NewHandler(slog.Default().Handler()) // or nil: metrics without logs
//	conf, err := core.New(core.Config{AppID: id, AppSecret: secret, Store: store, Logger: slog.New(h)})
//	h.Observe(conf.AccessTokenCredential()) // the wechatconf.token.remaining gauge
//
// [Handler.Observe] holds the credentials it is given weakly: it keeps none
// alive. A service can observe every Open Platform authorizer it serves
// (authorizer.AccessTokenCredential()); one the Component's registry evicts
// (openplatform.Config.MaxAuthorizers) leaves the gauge and the handler's
// memory once it is collected, so observation stays bounded by the
// authorizers alive however many come and go, and adding one is O(1)
// (BenchmarkObserveEvictedAuthorizers: 100,000 authorizers observed then
// evicted leave about 0 bytes behind each). [Handler.Forget] removes a
// credential that is still alive.
//
// The handler is Enabled for every record of level Debug and above, even
// when the next handler is not (records the next handler does not want are
// not passed to it), so the metrics are kept with logging off or at any
// level: core.EventRecorded, which the quota gauges read, is a Debug event,
// and core logs an event only when its logger is Enabled for the level.
// Give the handler, as slog.New(h), to the credentials' Logger (or put it
// first in the chain): a level filter in front of it (a slog.HandlerOptions
// Level of Info, a core.DefaultLogger) would hide the Debug events from it.
// An application that logs through the same logger has its own Debug
// records built and handed to the handler, which drops them (a prefix
// comparison of the message) unless next wants them; give the handler to
// the credentials alone if that matters. The hot path of a credential (a
// valid token in memory) logs nothing, so the handler adds nothing to it
// (BenchmarkAccessTokenHotWithHandler).
//
// By default the global providers (otel.GetMeterProvider,
// otel.GetTracerProvider) are used; [WithMeterProvider] and
// [WithTracerProvider] choose others.
//
// # Metrics
//
// Every metric carries "wechatconf.credential", the credential's kind
// (CredentialConfig.Name: "access_token", "jsapi_ticket",
// "authorizer_access_token", …), and "wechatconf.platform", the kind of
// account (core.Platform, the events' "platform"): "official_account",
// "mini_program", "wecom", "open_platform_component",
// "open_platform_authorizer", or "custom" (a credential of one's own that
// does not set CredentialConfig.Platform). The platform is what tells an
// Official Account's access_token from a WeCom app's, both
// "access_token". A Conf cannot tell by itself whether its AppID is an
// Official Account's or a Mini Program's: set core.Config.Platform to
// core.PlatformMiniProgram for a Mini Program (the default is
// "official_account"); wecom.App and package openplatform set theirs. The
// store key ("wechatconf.credential.key")
// is added only with [WithKeyAttribute]: a platform with 10,000 authorizers
// has 10,000 keys, one time series each per metric. No attribute ever holds
// a token, a ticket or a secret.
//
//	wechatconf.fetches              counter {fetch}        outcome ("ok", "error"), reason ("expiry", "rejected", "forced"), forced (bool), errcode (failed fetches of an API error)
//	wechatconf.fetch.duration       histogram s            the same attributes: the token call, retries included
//	wechatconf.lock.wait            histogram s            event ("fetched", "fetch_failed", "adopted"): the wait for the store's lock
//	wechatconf.adoptions            counter {adoption}     a credential another instance wrote, taken without a token call
//	wechatconf.rejections           counter {rejection}    errcode: WeChat rejected a credential (a compare-and-refresh follows)
//	wechatconf.forced_refreshes     counter {refresh}      why ("requested", "rejected token handed back")
//	wechatconf.limited              counter {call}         limit (the Config field): a token call held back by a limit
//	wechatconf.store.errors         counter {error}        store.op ("get", "set", "refresh", "decode", "write_back", "ledger")
//	wechatconf.store.outages        counter {refresh}      store.op, fetched (core.EventStoreOutage)
//	wechatconf.lock.lost            counter {event}        a refresh lost the store's lock to another holder
//	wechatconf.written_back         counter {write}        a fetched token whose write did not land, written afterwards (core.EventWrittenBack)
//	wechatconf.background_refresh.failures counter {failure} a refresh ahead of expiry failed
//	wechatconf.token.remaining      gauge s                the life left of each credential given to [Handler.Observe]
//	wechatconf.outside_fetches      counter {fetch}        forced (bool: on stable_token, a force_refresh elsewhere): a token killed by a fetch outside the fleet (core.EventOutsideFetch)
//	wechatconf.quota.crossed        counter {crossing}     limit ("fetches", "forced"), percent (50, 80): the fleet's fetches of a Beijing day reached that share of WeChat's daily limit (core.EventQuota)
//	wechatconf.quota.used           gauge {fetch}          limit ("fetches", "forced"): the fleet's fetches of the credential today, Beijing day (core.EventRecorded)
//	wechatconf.quota.limit          gauge {fetch}          limit: WeChat's daily limit on them (2,000 classic token calls; 20 forced refreshes), when core knows it
//
// The attribute names are those above prefixed with "wechatconf."
// ("wechatconf.outcome", "wechatconf.reason", "wechatconf.forced",
// "wechatconf.errcode", "wechatconf.event", "wechatconf.why",
// "wechatconf.limit", "wechatconf.store.op", "wechatconf.percent").
// Without [WithKeyAttribute], the token.remaining gauge has one point per
// kind and platform: the least life left among the observed credentials of
// that kind and platform, the one to alert on.
//
// # Quota
//
// The quota metrics count the fleet, not the process: core's fetch ledger
// (core.Ledger, in the store the fleet shares) counts every instance's
// fetches per Beijing day, and each instance logs the fleet's counts when
// its own records land (core.EventRecorded). So wechatconf.quota.used is
// the fleet's count as of this instance's last fetch: across instances,
// the greatest value is the freshest (max by credential in PromQL), and
// wechatconf.quota.used / wechatconf.quota.limit is the share of the day's
// quota spent. A credential with no fetch recorded today (in this
// process) has no point: the count of a past day is dropped at
// collection. Without [WithKeyAttribute] each kind, platform and limit has
// one point, that of the credential nearest its limit (the greatest
// used/limit, then the greatest count). wechatconf.quota.crossed and
// wechatconf.outside_fetches are counted once fleet-wide, by the instance
// whose ledger write found them: sum them across instances. A fleet with
// core.Config.NoLedger has none of these.
//
// # Spans
//
// Spans are reconstructed from the events, after the fact: each token call
// of a refresh (core.EventFetched, core.EventFetchFailed) becomes a span
// "wechatconf.refresh <kind>" ending at the record's time and starting
// lock_wait + latency earlier, with two children: "wechatconf.store.lock_wait"
// (the wait for the store's lock) and then "wechatconf.fetch" (the token
// call). A failed fetch sets status Error on both the fetch and the refresh.
// A refresh that makes two calls (stable_token handing a rejected token
// back, then force_refresh) gives two such spans, the second covering the
// first.
// core logs with context.Background(), so these spans are roots of their own
// traces unless a future core passes the caller's context; their timing is
// that of the events (to the precision of the record's clock). Spans carry
// the platform and the store key (a span is not aggregated, so it costs no
// cardinality).
//
// # Prometheus
//
// With go.opentelemetry.io/otel/exporters/prometheus (not a dependency of
// this module), the metrics are served on /metrics as
// wechatconf_fetches_total, wechatconf_fetch_duration_seconds and so on:
//
//	exporter, err := prometheus.New()
//	if err != nil { … }
//	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
//	h := wechatconfotel.NewHandler(nil, wechatconfotel.WithMeterProvider(mp))
//	http.Handle("/metrics", promhttp.Handler())
package wechatconfotel
