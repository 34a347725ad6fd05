// Package core keeps WeChat credentials valid for one process or a whole
// fleet, through a TokenStore the team already runs: an Official Account's
// or a Mini Program's access_token, jsapi_ticket and wx_card api_ticket
// (Conf), and, on the same engine, WeCom's (package wecom) and kinds of
// your own (Credential).
//
//	conf, err := core.New(core.Config{
//		AppID:     os.Getenv("WECHAT_APPID"),
//		AppSecret: core.NewSecret(os.Getenv("WECHAT_APPSECRET")),
//		Store:     store, // nil: in-process memory; or a file, Redis, PostgreSQL or etcd store
//	})
//	tok, err := conf.AccessToken(ctx)   // value + expiry, as the seed's get_access_token()
//	err = conf.Do(ctx, "GET", "/cgi-bin/getcallbackip", nil, nil, &out)
//
// # The store decides the topology
//
// A TokenStore keeps tokens and serialises their refresh: whoever takes the
// store's lock first is the master for that one refresh, and everyone else
// gets the token it fetched. NewMemoryStore (the default) serves one
// process. The modules under store/ serve a machine (file) or a fleet
// (Redis, PostgreSQL, etcd). NewFuncStore adapts user functions: Get + Set
// for the seed's single-machine way 2, Get + Refresh for a worker whose
// master (a token server) does the refresh, the seed's way 3. The seed's
// way 1 — initial values passed in and read back — is Config.AccessToken and
// friends plus Conf.AccessToken.
//
// # One engine for every credential kind
//
// A Credential (NewCredential) keeps one credential valid: its store key,
// its Fetch (one call to WeChat), what rejection means (Codes, or
// CredentialConfig.Rejects) and its timing (Policy) are all a kind is; the
// hot path, refresh ahead, single flight, store reads, compare-and-refresh,
// forced escalation, limits and events below are the engine's, the same for
// every kind. A kind whose stored value holds more than the token it serves
// (an Open Platform authorizer's record: its access token and its durable
// refresh token, fenced together) says how to read it
// (CredentialConfig.Decode); the store compares and fences the whole
// record, the engine judges the token served. An API (NewAPI) calls one
// WeChat host with retries, typed errors (APIError with the platform's
// Codes, ReplyError) and redaction; API.WithCredential makes it add a
// Credential's token and replace a rejected one. Conf is three Credentials
// and an API; wecom.App is three more with WeCom's Codes;
// ExampleNewCredential builds a kind from scratch.
//
// # What Conf does on each call
//
// A valid in-process copy is served with no I/O (about 40 ns, no
// allocation). Within Config.RefreshAhead of expiry one background refresh
// starts while callers keep the valid copy. With no valid copy the store is
// read, and only if it holds nothing usable is Store.Refresh called with
// the stale value, one call in flight per credential per Conf. A token
// WeChat rejects (40001, 40014, 42001) is replaced by a compare-and-refresh
// (Conf.RefreshAccessToken), so a fleet that sees the same bad token
// fetches once. Deadlines are judged on the monotonic clock, so a wall-clock
// step does not expire or revive a token.
//
// # Time
//
// Three settings and one WeChat rule decide when a token is replaced:
//
//   - Config.RefreshAhead (default 5 minutes): from ExpiresAt - RefreshAhead,
//     one background refresh runs while callers keep the valid token.
//   - Config.ExpiryMargin (default 1 minute): from ExpiresAt - ExpiryMargin
//     the token is never served; callers wait for the refresh. RefreshAhead
//     must be at least ExpiryMargin, or a token would be served inside the
//     margin before any refresh started: New refuses it.
//   - WeChat's stable_token hand-over (StableTokenHandover, 5 minutes): a
//     normal stable_token call returns the same token until its last
//     5 minutes, then the next one. With StableToken, ExpiryMargin must be
//     shorter than that (New refuses it otherwise), and the access_token
//     is refreshed ahead at most 4m30s before expiry (a longer RefreshAhead
//     is cut to that), inside the hand-over with room for latency and
//     skew: earlier, WeChat would only hand the same token back.
//
// A credential whose whole lifetime is not longer than RefreshAhead (an
// expires_in of 20 s, say) cannot fit the margins: it is served until its
// real expiry and fetched again then, once per lifetime. expires_in is
// trusted for at most 24 hours, and deadlines are computed without
// overflow whatever ExpiresAt a store holds. A refresh ends at
// Config.RefreshTimeout whatever the store does.
//
// # Rejections, forced refreshes and limits
//
// A token WeChat rejects is replaced by a compare-and-refresh: the store
// fetches only while it still holds the rejected value, so a fleet fetches
// once. If the normal stable_token call hands back the very token that was
// rejected (it was revoked or leaked, or force-refreshed elsewhere and the
// normal call has not caught up), that same fetch escalates once, under the
// store's lock, to force_refresh, which invalidates the old token at
// WeChat. Conf.ForceRefreshAccessToken asks for that on purpose (rotating a
// leaked token). Forced calls keep to WeChat's limits,
// Config.ForceRefreshInterval (30 s) and Config.ForceRefreshDailyLimit (20
// per day, days ending at midnight Beijing time).
//
// Two more limits keep a misbehaving API or configuration from turning
// every call into a token call: a rejected token is replaced at most once
// per Config.RejectedRefreshInterval (30 s) — a loop on the same rejected
// value is stopped, while the rejection of a newer token is never held back
// — and a token call refused with a configuration or quota error, or
// answered 200 with something that is not a token, is not made again for
// Config.ErrorBackoff (1 minute). A limit answers with a *LimitError,
// without a request to WeChat, wrapping the error that started it. The
// limits are counted per Conf; a fleet shares the store's compare-and-
// refresh, so only the instance holding the lock for a stale value calls.
//
// # Secrets that rotate
//
// An AppSecret reset in the admin console dies at once: every token call
// made with the old one is refused (40001 from /cgi-bin/token, 40125 from
// /cgi-bin/stable_token). Such a refusal is an ErrSecretRefused wrapping
// the *APIError, and backs off like a configuration error (ErrorBackoff).
// A Conf given Config.AppSecretSource instead of Config.AppSecret — a
// SecretSource: FileSecret for a mounted Kubernetes or Docker secret, or a
// function of your own — reads it at the first fetch and again only at
// the first fetch after a refusal, so at most once per ErrorBackoff per
// process, and recovers without a restart as soon as the new secret is in
// place. A source that fails is a *SecretSourceError, and backs off the
// same way. wecom.Config.SecretSource and
// openplatform.Config.AppSecretSource do the same for a corpsecret and a
// component_appsecret, through the same RotatingSecret.
//
// A lock lost to another holder (ErrLockLost: the fetch outlived the
// store's lease) is not the caller's problem: the token the fetch returned
// is written back (below), or, if the new holder wrote a newer one, that
// one is returned. A ticket refresh gets a valid access_token before it
// takes the ticket's lock, so no store lock (for PostgreSQL, no pooled
// connection) is held while waiting for another.
//
// # A token WeChat issued is never wasted
//
// A fetch's token may already have invalidated the fleet's previous one
// (ClassicToken, the tickets) or carry a rotated refresh token (an Open
// Platform authorizer's record, CredentialConfig.Decode), so one whose
// fenced write the store did not confirm — the lock was lost, the write
// failed or landed but reported a failure, or RefreshTimeout ended the
// refresh while the write was in flight — is still served to the callers
// that waited for it, and written back:
//
//   - by a compare-and-refresh from exactly the stored value the fetch
//     replaced (Store.Refresh with that value as stale, whose fetch
//     returns the token), so that it lands only if nobody wrote since: if
//     the store then holds the token, it had landed; if it holds any
//     other value, that value wins — it is served if usable — and the
//     token is dropped, never written;
//   - at once (after a fetch without the store, only after the back-off),
//     then in a background goroutine with a back-off from 1 s doubling to
//     1 min, and at every refresh's read of the store, until it lands
//     (EventWrittenBack), is superseded, or expires (a stored form with a
//     zero ExpiresAt never does);
//   - each failure is an EventStoreError with op "write_back"; while one is
//     held, a fetch starts from it (FetchRequest.Stored): it is newer than
//     what the store holds.
//
// A fetch without the store (Policy.FetchWithoutStore, below) is held and
// written back the same way. Every write-back is a compare-and-refresh, so
// write-backs running at once (two processes, the background and a
// refresh) land at most once, and no older value replaces a newer one.
//
// # When the store is down
//
// A refresh that fails because the TokenStore failed (an error other than
// ErrNotFound, ErrCorrupt or ErrLockLost before any fetch, or no answer
// within RefreshTimeout) returns an error wrapping both ErrStoreUnavailable
// and the store's error; the hot path never touches the store, so a held
// token is served as usual. What happens then depends on the token call:
//
//   - stable_token (the default; also WeCom's gettoken): a normal call
//     invalidates nobody's token, so the Conf fetches without the store's
//     lock (Policy.FetchWithoutStore; a normal call, never force_refresh),
//     at most once per Config.StoreOutageInterval (30 s) per process,
//     serves the token from memory, logs EventStoreOutage (Warn), and
//     writes the token back once the store answers (see above: a
//     compare-and-refresh from the value it replaced, retried in the
//     background and at each refresh; any other value in the store wins).
//     Callers do not fail; the fleet makes at most one call per process
//     per interval.
//   - ClassicToken (and the tickets): every call would invalidate the
//     token the rest of the fleet holds, so nothing is fetched without the
//     lock: the held token is served until its ExpiryMargin, then the
//     ErrStoreUnavailable error is returned until the store answers.
//
// Either way a store known to be down is not waited for: once a refresh
// failed on it, one refresh at a time probes it again (its caller waits,
// at most RefreshTimeout), and every other caller gets at once what that
// refresh would give — the held token while usable, else the error — so
// that a store that hangs does not hold each call for RefreshTimeout. The
// first refresh the store answers ends the outage. Each failure is an
// EventStoreError and an EventStoreOutage (fetched=false unless a fetch
// without the store is made).
//
// # Ready or not
//
// Conf.Ready (and wecom.App.Ready, openplatform's Component.Ready and
// Authorizer.Ready, all Credential.Ready) is a readiness probe's logic: nil
// when a token valid for at least Config.ReadyHorizon (default 2 minutes,
// clamped to RefreshAhead) is held or can be had from the store or WeChat,
// else a *NotReadyError whose Reason says why — "configuration" (40125,
// 40013, 40164, an empty AppSecret: ErrMissingConfig), "store_unavailable"
// (with how long the held token lives yet), "limited" (a *LimitError with
// its Until), "revoked", "expiring", "no_token" — wrapping the cause. A
// token valid for the horizon costs no I/O; otherwise Ready goes through
// the path a caller would take, so a fresh process becomes ready by reading
// the store or fetching through its lock, and Ready never makes a call a
// caller would not make: no forced refresh, the limits and the store-outage
// rules above apply. The tickets do not count (they are fetched on first
// use). Liveness is another question: a process whose store is down is
// alive and serves what it holds. The token server's GET /readyz is
// Conf.Ready.
//
// # Events
//
// A Conf logs what it does as distinct events through Config.Logger (a
// *slog.Logger): the record's message is the event's name, its attributes
// are documented with each name, and both are an interface that changes
// only with a major version. Every event of a credential carries
// "credential" (its kind: "access_token", "jsapi_ticket", …), "platform"
// and "key". "platform" is the kind of account (a Platform): a Conf's is
// Config.Platform, "official_account" by default or "mini_program" — a
// Conf cannot tell a Mini Program's AppID from an Official Account's, so
// say it — while wecom.App's is "wecom" and the Open Platform's
// "open_platform_component" or "open_platform_authorizer"; it is what
// tells an Official Account's access_token from a WeCom app's.
//
//	event                               level  when
//	EventFetched (wechatconf.fetched)   Info   this Conf got a credential from WeChat ("reason", "forced", "latency", "expires_at")
//	EventFetchFailed                    Warn   a token call failed ("reason", "forced", "latency", "error", "errcode")
//	EventAdopted                        Info   a credential another instance wrote was taken from the store
//	EventForced                         Warn   a force_refresh is made ("why")
//	EventRejected                       Info   WeChat rejected a credential ("path", "errcode")
//	EventLimited                        Warn   a limit held a token call back ("limit", "until", "error")
//	EventStoreError                     Warn   the TokenStore failed ("op": get, set, refresh, write_back, decode; "error")
//	EventStoreOutage                    Warn   the store failed; fetched without it or not ("op", "error", "fetched")
//	EventLockLost                       Info   the store's lock went to another holder ("error")
//	EventWrittenBack                    Info   a fetched token whose write was not confirmed is now in the store ("expires_at")
//	EventBackgroundRefreshFailed        Warn   a refresh ahead of expiry failed ("expires_at", "error")
//	EventNoNewer                        Debug  a refresh ahead of expiry brought the same credential back
//	EventRetry                          Debug  a WeChat call is retried ("path", "attempt", "delay", "error")
//	EventOutsideFetch                   Warn   a token the fleet fetched was killed by a fetch outside it ("fetched_by", "token_age", "advice", …)
//	EventQuota                          Warn   the fleet's fetches today reached 50 % or 80 % of a daily limit ("limit", "used", "percent")
//	EventRecorded                       Debug  this instance's fetch records landed in the ledger (the day's fleet-wide counts)
//
// Across a fleet, EventFetched counts token calls: an instance that takes
// a token another one fetched logs EventAdopted instead. With a nil Logger
// the events of level Warn and above go to slog.Default() (failures are
// visible by default) and the rest are dropped. No attribute holds a
// credential.
//
// # The fetch ledger: why did my token die?
//
// Every fetch a fleet makes is recorded in the store it shares, beside the
// credential (LedgerKey: "<key>/fetch_ledger"): when, which instance
// (Config.Instance, by default "hostname/pid"), why ("expiry", "rejected",
// "forced", "outage", "operator"), which token it replaced (by
// Fingerprint, never the value), how long it took; the last LedgerEntries
// of them, and per-Beijing-day counts (the days WeChat's quotas count).
// Read it with Conf.Ledger (ReadLedger for any credential) or the
// wechatconf command's history. It is written after the token's own write,
// off the callers' path (the hot path is untouched): one Store.Get and one
// compare-and-refresh of the ledger's key per fetch, merged with what other
// instances recorded meanwhile, retried until the store takes it. A
// process killed between the two writes loses its record, not a token.
//
// From it the fleet tells two things no single process can:
//   - a fetch outside the fleet. When WeChat rejects (40001, 40014) the
//     very token the store holds, before its expiry, and the ledger shows
//     the fleet fetched it and nothing since, someone else fetched a token
//     for the AppID (another environment, an old deployment, a script) —
//     or, on stable_token, forced one. The instance that replaces the token
//     logs EventOutsideFetch once, with the evidence and what to do, and
//     the record keeps it (FetchRecord.Outside).
//   - the day's quota: when the fleet's count crosses 50 % and 80 % of
//     WeChat's daily limit (2,000 classic token calls; 20 forced
//     stable_token refreshes), one EventQuota, fleet-wide. Conf.Quota asks
//     WeChat itself.
//
// Config.NoLedger turns it off.
//
// # Decisions
//
//   - Conf is configured with a Config struct whose zero values are the
//     defaults (like pgxpool.Config); stores take functional options
//     (WithLease), because they have few knobs and New(client) alone is
//     complete.
//   - The default token call is stable_token (see StableToken): it does not
//     invalidate tokens other users of the AppID hold, has a larger quota,
//     and keeps the AppSecret out of URLs. ClassicToken is available.
//   - A refresh runs detached from the caller that started it (bounded by
//     Config.RefreshTimeout): one caller giving up does not fail the others
//     waiting for the same refresh; each waits with its own ctx.
//   - -1, 45011, HTTP 5xx and network errors are retried with capped
//     exponential backoff within ctx; configuration errors (40013, 40125,
//     40164, 41002, 41004, 89503) and 45009 never are, say what to fix, and
//     start Config.ErrorBackoff, as a 200 reply that is not a token does.
//   - No secret (the AppSecret, an access_token, a ticket) appears in an
//     error or a log line, whole or in part: what an error keeps of a reply
//     or a URL is redacted before it is cut short (the values of every
//     credential parameter, in query and JSON form, and every run of six
//     or more characters of the AppSecret or the request's token), and the
//     errors keep their types (*APIError, *ReplyError, *url.Error), so the
//     predicates and retries still work. Config and Conf print the
//     AppSecret as REDACTED.
//   - Every error starts with "wechatconf: " once, however deep its chain;
//     the sentinels (ErrNotFound, ErrLockLost, ErrCorrupt, ErrEmptyToken)
//     carry no prefix of their own, since stores wrap them.
//
// # Messages and JS-SDK
//
// The same Conf guards the endpoint WeChat pushes messages to: VerifyURL
// answers URL verification, ParseMessage and ReadMessage verify, decrypt
// (normal, compatible and safe mode, with key rotation through
// Config.PreviousEncodingAESKey) and replay-check a push, and Message.Reply
// encrypts the answer exactly when the push was encrypted. JSSDKConfig
// signs a page for wx.config with the jsapi_ticket the Conf keeps valid.
// Package msgcrypt has the cryptography alone.
//
// # Pushes, once
//
// WeChat re-sends a push it got no answer to within 5 s, three times,
// and behind a load balancer each delivery may reach another instance.
// A Dedup (NewDedup, over the fleet's store) makes "handled once" a
// property of the fleet: give it to Config.Dedup and serve the URL with
// MessageHandler (or call HandleMessage from any framework); WeCom's
// wecom.CallbackConfig.Dedup and Open Platform's openplatform.Config.Dedup
// take the same value.
//
// Each delivery claims the push (PushKey: the MsgId of a message; the
// sender, CreateTime, event and content of an event) in the store, with a
// lease (DedupConfig.Lease, 3 s) the running handler renews. A handler
// that returns nil records the push as handled for DedupConfig.Remember (5
// minutes): later deliveries answer "success" and run nothing. One that
// fails, panics or dies frees the push — at once, or when its lease runs
// out — so that WeChat's next delivery runs it again. A delivery that
// finds a handler running waits for it (DedupConfig.Wait, 4.5 s) and then
// answers "success" if it finished, runs the push if it failed, or
// answers 503 if it is still running — never "success" for a push that
// might yet be lost. A handler that takes longer than WeChat waits should
// answer nil and reply later through the customer-service API
// (客服消息); its context is not ended by WeChat hanging up.
//
// When the store fails, DedupConfig.FailClosed decides: false (the
// default) handles the push anyway, so nothing is lost but it may be
// handled twice, and lets a running handler finish; true answers 503, so
// that WeChat retries — a push is lost if the store is down for all its
// deliveries — and ends a running handler's context before its claim can
// run out. A handler's error is answered 500 and logged
// (EventPushFailed). The claims are the
// store's ClaimStore (every store in this project implements it); a
// custom store without it gets ClaimsOver's emulation over its Refresh
// lock. See Dedup for the guarantee's exact terms and limits.
//
// Package wxtest simulates the WeChat API for tests and demos.
package core
