// Package lb is the platform's load balancer: listeners, forwarding rules,
// server groups of weighted working and standby servers across zones,
// active and passive health checks, retries, atomic versioned config push,
// drain, status, events and metrics. Its HTTP/1.1 forwarding path is
// written for speed (pooled keep-alive connections to servers, requests
// parsed in place, no allocation per request, one read and one write per
// request on each side of a keep-alive exchange) and strictness (anything
// two HTTP parsers could read differently is refused). On Linux, the
// connections of plain-HTTP listeners are served by one event loop per
// core, each watching its sockets with its own epoll instance, as long as
// requests and answers fit their buffers; the rest (TLS, upgrades, chunked
// or large bodies, balancers with a Hook or their own Dial) is served by a
// goroutine per connection, with the same rules.
//
// # Configuration
//
// A [BalancerConfig] is plain data, meant to be stored as JSON and pushed:
//
//	{
//	  "name": "outpatient",
//	  "address": "172.18.40.88",
//	  "listeners": [{
//	    "name": "web", "port": 20004, "protocol": "http",
//	    "rules": [{"path_prefix": "/pms/biz/outpatient/bizc2201", "group": "outpatient"}]
//	  }],
//	  "groups": [{
//	    "name": "outpatient",
//	    "health_check": {"type": "http", "path": "/health", "interval": "1s", "fall": 2},
//	    "servers": [
//	      {"address": "10.0.1.5", "port": 8085, "weight": 1, "zone": "a1"},
//	      {"address": "10.0.2.5", "port": 8085, "weight": 1, "zone": "a2", "role": "standby"}
//	    ]
//	  }]
//	}
//
// Each field's comment documents it and its default; zero means the default
// (a server's weight 0 is weight 1). A config without listeners or groups is
// valid and listens nowhere, so a control plane can build one step by step.
// Listeners speak http, https (certificates inline or as files) or tcp
// (bytes forwarded to the default group). Forwarding rules match a host and
// an exact path or a path prefix; an exact path beats a prefix, the longest
// prefix wins, a rule with a host beats one without, and the listener's
// default group takes the rest.
//
// A group spreads requests by smooth weighted round robin (the sequence
// nginx gives), least connections, or a consistent hash of the client IP, a
// header or a cookie. Standby servers take requests only while no working
// server of their group is up; traffic returns to a working server as soon
// as it passes its checks again. A server that comes back can be ramped up
// over SlowStart.
//
// # Health and retries
//
// Active checks (an HTTP GET that must answer an expected status, or a TCP
// connect) run every Interval; Rise passed checks bring a server up, Fall
// failed ones take it down. A server new to the config starts up, so a push
// never waits for checks; requests that find it dead are retried elsewhere. Requests that fail (connect errors, resets,
// timeouts, 5xx answers) count as passive failures, and PassiveFall of them
// in a row take the server down at once. A request that failed before any
// byte of the answer reached the client is sent to another server when it is
// idempotent (GET, HEAD, OPTIONS, or marked with an Idempotency-Key header)
// and its body could be kept (up to 64 KiB); a failed connect is always tried
// elsewhere. So a killed server costs its clients no error.
//
// # Lifecycle
//
// [New] takes the dependencies ([Options]: logger, Prometheus registerer,
// listen and dial functions) and serves nothing. [Balancer.Apply] validates
// a config, opens new ports, and swaps it in atomically: requests in flight
// finish on the config they started with, ports that stay keep their
// sockets and connections, removed ports stop accepting and finish their
// requests. Port 0 is any free port: [Balancer.Addr] says which, and a push
// keeps a port-0 listener's socket while a listener of that name stays on
// port 0 at the same address. Each applied config gets a version; [Balancer.Versions] lists the
// kept ones and [Balancer.Rollback] applies one again. [Balancer.Drain] takes
// a server out gracefully; [Balancer.Status] is the monitor's view;
// [Balancer.Subscribe] streams server and config events. [Balancer.Close]
// stops everything, letting requests in flight finish until its context ends.
//
// # Errors
//
// Errors wrap the sentinels in errors.go and name the thing that failed. A
// rejected config is a [*ValidationError] (wrapping [ErrInvalidConfig]) that
// lists every wrong field by its JSON path, e.g. "listeners[0].port": "must be
// at most 65535"; [ValidationError.Fields] is ready for a REST API's error
// body. [BalancerConfig.Validate] runs the same checks without applying. A
// port that cannot be opened rejects the push with an error wrapping
// [ErrListen] that names the listener.
// Requests the balancer refuses itself get a plain-text answer: 400 for
// malformed or ambiguous requests, 404 when no rule matches, 408 for slow
// clients, 413 and 431 past the listener's limits, 502 when servers fail,
// 503 when no server may take the request, 504 when servers time out.
//
// # Testing code that uses lb
//
// Everything runs in-process on loopback: start httptest servers as the
// group's servers, apply a config on 127.0.0.1 port 0, ask [Balancer.Addr]
// where it listens, and send requests (see the package example). Options.Dial
// lets a test inject failures on the way to servers. The package's own tests kill servers under
// load, push configs under load, and fuzz the HTTP parser.
package lb
