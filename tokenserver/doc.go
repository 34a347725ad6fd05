// Package tokenserver is the seed's 中控服务器 (central token server) as a
// library: Handler serves the access_token, the jsapi_ticket and the
// wx_card api_ticket of one core.Conf over HTTP to workers in any language
// (the seed's 业务逻辑服务器), which never hold the AppSecret, and
// NewWorkerStore is the store of a Go worker of such a server. It depends on
// core and the standard library only.
//
// The command cmd/wechatconf-tokenserver serves Handler over a store chosen
// by URL (file, Redis, PostgreSQL, etcd or memory), so two or more servers
// over one shared store make it highly available; examples/tokenserver is
// a small main to try it against the simulated WeChat API.
//
// # When to use it
//
// Go services do not need it: give every instance a core.Conf over one
// shared store (a file, Redis, PostgreSQL or etcd store) and each instance
// is a worker, with no master to run. The token server is for fleets with
// PHP, Python, Java or Node services that cannot link the library: they ask
// it, and it (with its peers over the same store) is the only process that
// calls WeChat's token endpoints.
//
// # Endpoints
//
// Every endpoint except /healthz and /readyz requires "Authorization: Bearer <secret>";
// anything else is 401 with a WWW-Authenticate: Bearer header, and reveals
// no credential.
//
//	GET  /access_token             the current access_token
//	POST /access_token/refresh     {"stale":"…"}: compare-and-refresh
//	GET  /jsapi_ticket             the current jsapi_ticket
//	POST /jsapi_ticket/refresh     {"stale":"…"}: the current jsapi_ticket (see Tickets)
//	GET  /wx_card_ticket           the current wx_card api_ticket
//	POST /wx_card_ticket/refresh   {"stale":"…"}: the current api_ticket (see Tickets)
//	GET  /healthz                  {"status":"ok"}: no secret needed, no WeChat call
//	GET  /readyz                   200 ready or 503 not ready, and why (see Readiness)
//
// A success is 200 with
//
//	{"value":"…","expires_at":"2026-01-02T15:04:05Z","expires_at_unix":1767366245}
//
// (expires_at in UTC truncated to the second; expires_at_unix is the same
// instant, like the seed's access_token_expires_at). An error is
// {"error":"…"} with status 401 (no or wrong secret), 400 (the body is not
// one {"stale":"…"} object), 413 (body over 4 KiB), 404 (no such
// endpoint), 405 (wrong method; Allow names the right one), 502 (WeChat
// refused or could not be reached; the message says why and never holds
// the AppSecret), 503 (the request was cancelled), 504 (no answer within
// the timeout, see WithTimeout: the refresh goes on, and the next request
// gets its result). Every reply carries Cache-Control: no-store.
//
//	curl -H "Authorization: Bearer $TOKENSERVER_SECRET" http://127.0.0.1:8080/access_token
//	curl -H "Authorization: Bearer $TOKENSERVER_SECRET" -H "Content-Type: application/json" \
//		-d '{"stale":"THE_TOKEN_WECHAT_REJECTED"}' http://127.0.0.1:8080/access_token/refresh
//
// # Readiness
//
// GET /healthz is liveness: the process answers, nothing else is checked
// (a server whose store is down is alive, and serves what it holds).
// GET /readyz is readiness: core.Conf.Ready, so 200 when the server holds
// an access_token valid for at least the Conf's Config.ReadyHorizon
// (default 2 minutes) or can have one from the store or WeChat, 503
// otherwise:
//
//	{"status":"ready","credentials":[{"credential":"access_token","ready":true,"expires_in_seconds":7080}]}
//	{"status":"not_ready","credentials":[{"credential":"access_token","ready":false,"expires_in_seconds":90,
//		"reason":"store_unavailable","horizon_seconds":120,"error":"…"}]}
//
// reason is a core.ReadyReason (no_token, expiring, store_unavailable,
// configuration, limited, revoked); expires_in_seconds the held token's
// time to expiry (omitted when none is held); error, the
// core.NotReadyError's text, only for a caller that sends the bearer
// secret (it may name the store's host). A fresh server becomes ready by
// the fetch its first request would make, through the store's lock; a
// probe never forces a refresh nor makes a call a request would not make.
// The tickets do not count (see core.Conf.Ready): they are fetched on
// first use with a ready access_token. The wait is bounded by WithTimeout
// and by the probe's own timeout; a fetch it started goes on, and the next
// probe sees its result. docs/kubernetes.md has a probe configuration.
//
// # Compare-and-refresh
//
// A worker uses the token it got until WeChat rejects it (errcode 40001,
// 40014 or 42001) or expires_at draws near, and then POSTs the token it
// holds as "stale". If the server's token still equals stale, the server
// fetches a new one, once however many workers ask at the same moment (and
// once between all servers sharing a store); if it already holds another,
// it returns that one without calling WeChat. "stale":"" means "I have
// none" and returns the current token. So a fleet that sees one token
// rejected causes one fetch. Workers must not refresh on a timer or without
// a stale value: GET is what they call otherwise.
//
// # Tickets
//
// core has a compare-and-refresh for the access_token only
// (Conf.RefreshAccessToken). A ticket's refresh endpoint answers with the
// current valid ticket, as GET does, whatever stale is; when stale equals
// it, the same ticket comes back (compare to tell). This loses nothing:
// WeChat never rejects a ticket in an API call (a ticket only goes into a
// JS-SDK signature the browser checks), so the only reason to replace one
// is its expiry, and the server's Conf handles that itself: it refreshes a
// ticket 5 minutes before expiry while serving the valid one, and never
// serves one within a minute of expiry. The endpoints exist so that workers
// treat the three credentials alike, and so that a ticket
// compare-and-refresh can be added to core later without changing any
// client.
//
// # Store and high availability
//
// Handler serves whatever store conf has. On the memory store the server
// is the single master, and a restart costs one fetch (stable_token, the
// default, hands back the same token while it is valid). For high
// availability run two or more behind a load balancer with one shared
// store — a file store on one machine, or Redis, PostgreSQL or etcd — whose
// lock makes them fetch once between them.
//
// # Security
//
// The bearer secret is compared in constant time (SHA-256 of both sides,
// then crypto/subtle, so not even its length leaks). The log (WithLogger)
// has one line per request (method, path, status, duration) and the
// errors; never a token, the bearer secret or the AppSecret. Plain HTTP
// carries the secret and the tokens in clear: serve it on a private
// network, or behind a TLS-terminating proxy.
package tokenserver
