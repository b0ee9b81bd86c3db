// Package gateway is the platform's API gateway (服务网关): the door through
// which hospitals, pharmacies and banks call the medical-insurance system.
// Every party has its own account (a consumer) and signs its requests; the
// gateway authenticates them, checks grants and IP black and white lists,
// applies rate limits, breaks circuits of failing upstreams, and counts
// every call of every API by every consumer ("how many outpatient
// settlements did this hospital send today?").
//
// The gateway is not a second proxy: it is an [lb.Hook]. A balancer built
// with lb.Options{Hook: gw} hands the gateway every request of its http and
// https listeners; the gateway answers refusals itself and lets accepted
// requests go to the API's upstream (a server group of that balancer, or a
// URL) through lb's own forwarding: pooled connections, retries of
// idempotent requests, health checks.
//
// A gateway instance whole is a [Service]: the gateway in a balancer of its
// own, configured by a [ServiceConfig] (the balancer's listeners and server
// groups, and the gateway's config) that is validated with the links
// between the two (every API's upstream group exists) and applied all or
// nothing: a gateway that refuses its config rolls the balancer back.
//
// # Signing requests
//
// A signed request carries one header:
//
//	Authorization: SH-HMAC-SHA256 AppKey=<key>, Timestamp=<unix seconds>, Nonce=<nonce>, SignedHeaders=<h1;h2>, Signature=<hex>
//
// The signature is the lower-case hex HMAC-SHA256, keyed with one of the
// consumer's AppSecrets (its bytes as written), of the string to sign: nine
// or more lines joined by "\n", without a final newline —
//
//	SH-HMAC-SHA256
//	<method, upper case>
//	<path as sent on the request line, percent-encoded, without the query; "/" if empty>
//	<canonical query>
//	<timestamp, as in the header>
//	<nonce>
//	<lower-case hex SHA-256 of the body as sent; of the empty string without a body>
//	<signed header names: lower case, sorted, joined by ";">
//	<name>:<value>   one line per signed header, in that order
//
// The canonical query: split the raw query at '&' and drop empty parts;
// split each part at its first '=' (no '=' means an empty value);
// percent-decode name and value ('+' is a space); re-encode both per RFC
// 3986 (all but A-Z a-z 0-9 - . _ ~ as %XX with upper-case hex); sort by
// name, then value; join as name=value with '&'. A header value is the
// field's values joined by "," and trimmed of spaces and tabs. The Host
// header may be signed (the Signer signs it and Content-Type by default).
// Nonces are 8 to 64 letters, digits, '-' or '_', unique per AppKey.
//
// Worked example. AppSecret 2b6f0c8e4a1d7b3f9e5c0a2d4f6b8e1c, timestamp
// 1767225600 (2026-01-01T00:00:00Z), nonce 3f9a1c2b7d4e8f60, and
//
//	POST /api/outpatient/settle?psn_no=1001&insuplc=320100&fee=35.50 HTTP/1.1
//	Host: gw.ybj.example:8443
//	Content-Type: application/json
//
//	{"psn_no":"1001","amount":"35.50"}
//
// give the string to sign
//
//	SH-HMAC-SHA256
//	POST
//	/api/outpatient/settle
//	fee=35.50&insuplc=320100&psn_no=1001
//	1767225600
//	3f9a1c2b7d4e8f60
//	aba7628f2a676de613c6cc9ea7540181c2ad487dcb3dc61c591134c479222855
//	content-type;host
//	content-type:application/json
//	host:gw.ybj.example:8443
//
// and the signature 3a4bcffa02e102f0f1c0816e13758f7eeffff96370c5f22b50e56b72577e270a
// (check: printf '%s' "$sts" | openssl dgst -sha256 -hmac 2b6f0c8e4a1d7b3f9e5c0a2d4f6b8e1c).
//
// The gateway refuses a request whose signature no active secret of the
// consumer produces (signature_invalid), whose timestamp is more than
// Auth.ClockSkew (default 5 min) from its clock either way
// (timestamp_expired), or whose nonce the AppKey used before within twice
// that skew (nonce_replayed). Go clients need not do any of this by hand:
// [Signer.Sign] signs one request and [Signer.Transport] an http.Client's
// every request; [Canonical] and [Sign] are the pieces for other languages'
// test vectors.
//
// A consumer has one or two active secrets. To rotate: add the new secret
// as the second, let the client switch, remove the old one.
//
// # Configuration
//
// A [Config] is plain data, stored as JSON and pushed: consumers (id, name,
// kind hospital|pharmacy|bank|other, organisation code, enabled, AppKey,
// secrets), APIs (name such as 门诊结算, method, exact or "/*" prefix path,
// upstream group or URL, timeout, body limit, public or signed, breaker),
// grants (consumer × API) and policies. A policy has a scope — global, one
// API, one consumer, or one consumer on one API — and holds IP allow and
// deny lists (CIDR prefixes or addresses, IPv4 and IPv6; deny beats allow;
// every list in scope must admit the client) and a rate limit (a token
// bucket: rate per second, burst). Each field's comment documents it and its
// default; zero means the default.
//
// A request goes through, in order: global IP lists; API match (no_such_api);
// the API's IP lists; the body (body_too_large past the API's limit);
// for non-public APIs the signature, timestamp and nonce, the consumer
// being enabled, its IP lists, its grant (not_authorized) and the consumer ×
// API lists; the rate limits of global, API, consumer and consumer × API
// scope (rate_limited, with Retry-After; a refused request uses up none of
// them); the API's circuit breaker (circuit_open). The upstream gets the
// request with X-Request-Id, X-Consumer-Id, X-Consumer-Kind and
// X-Consumer-Org set (emptied for public APIs, so a client cannot spoof
// them).
//
// Circuit breaking is per API (sony/gobreaker): 5xx answers and upstreams
// that do not answer are failures; the breaker opens on N consecutive
// failures or a failure ratio over a rolling window, refuses at once while
// open, lets probes through after OpenTimeout, and closes when they pass.
//
// # Lifecycle
//
// [New] takes the dependencies ([Options]: logger, Prometheus registerer,
// nonce store, rate counter, clock) and serves nothing. [Gateway.Apply]
// validates a whole config and swaps it in atomically: requests in flight
// finish under the config they started with; rate-limit buckets and
// breakers whose scope and settings stay keep their state. Pass the gateway
// as lb.Options.Hook. [Gateway.Close] refuses later requests and
// unregisters metrics; close the balancer first to let requests finish.
//
// One instance keeps nonces and rate-limit buckets in memory. Several
// instances behind one VIP share them in Redis: Options.Nonces =
// redisgw.NewNonceStore(client, prefix), Options.RateCounter =
// redisgw.NewRateCounter(client, prefix).
//
// # Statistics and metrics
//
// Every request is counted exactly, per API × consumer, in per-minute and
// per-day buckets: calls, successes (upstream status < 400), errors by code
// (the refusal codes, http_4xx, http_5xx, client_closed) and a latency
// histogram, whose rows carry its bucket bounds ([Latency].LeMs, in ms).
// [Gateway.Stats] queries a time range by minute, day or in
// total, filtered by API or consumer and grouped by either (the first rows
// of a total grouped by consumer are the top consumers).
// [Gateway.RestoreStats] loads rows a control plane persisted, so counts
// survive a restart. Prometheus metrics (Options.Registerer) are labelled by
// API and code only — bounded by the config — never by consumer.
//
// # Errors
//
// Refusals are JSON with a stable code and the request id (also in the
// X-Request-Id header):
//
//	{"error":{"code":"nonce_replayed","message":"nonce \"3f9a1c2b7d4e8f60\" was used before","request_id":"5f1c0e2a9b3d-42"}}
//
// The codes and their statuses are listed with [Code]. A rejected config
// is a [*ValidationError] (wrapping [ErrInvalidConfig]) listing every wrong
// field by its JSON path, e.g. "consumers[0].app_key": "duplicate app key
// (also consumers[3])"; [ValidationError.Fields] is ready for a REST API's
// {"error":{"fields":{...}}}. Other errors wrap the sentinels in errors.go
// and start with "gateway:".
//
// # Testing code that uses the gateway
//
// Everything runs in process on loopback: httptest servers as upstreams, a
// balancer with the gateway as its hook on a free port, clients signing
// with [Signer] (see the package example). Options.Now moves the gateway's
// clock. The package's own tests go end to end through real connections
// (every refusal code, replay, rotation, breaker trip and recovery, exact
// statistics under concurrency, reload under load), fuzz the header parser
// and the canonical query, and — with the build tag integration — run two
// gateways against one real Redis (internal/mwtest).
package gateway
