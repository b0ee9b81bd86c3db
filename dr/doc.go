// Package dr keeps the middleware of center A and center B in sync and moves
// production from one center to the other: DR groups (灾备组) with forward
// and reverse sync, promotion and fencing, and DR plans (容灾计划) that run as
// a switchover (切换) or a drill (演练) and report what they cost, as RTO and
// RPO.
//
// # DR groups
//
// A DR group pairs one instance in center A with one in center B, of one
// kind of middleware (Redis now; Kafka and FastDFS through the same Driver
// interface later). GroupConfig names the two instances. Each instance has
// two addresses: Addr, where the Manager reaches it, and ReplicationAddr,
// where the other instance reaches it over the link between the centers.
//
//	{"name": "orders", "kind": "redis",
//	 "a": {"addr": "10.1.0.5:6379", "replication_addr": "redis-a.dc1:6379", "password": "…"},
//	 "b": {"addr": "10.2.0.5:6379", "replication_addr": "redis-b.dc2:6379", "password": "…"}}
//
// A group has a direction: forward sync (A→B) keeps B a replica of A; after a
// switchover, reverse sync (B→A) keeps A a replica of B. Its state moves
//
//	unpaired → syncing → in-sync → promoted → reverse-syncing → in-sync
//
// and every transition is recorded with its time and reason in the Store.
// Manager.Pair starts sync ("run forward sync now"), Manager.Reverse starts
// reverse sync once A is back, Manager.Status reads the link and the lag, and
// Manager.Monitor does so in the background, moving a group whose link went
// down back to syncing and keeping the last contact with each primary.
//
// # DR plans, switchovers and drills
//
// A PlanConfig lists steps that run in order: precheck, fence, catch-up,
// promote, switch-dns, switch-traffic, start-apps, verify (see StepKind for
// what each does in a switchover, in a drill and on rollback). Each step has
// a timeout, retries, an optional manual gate (Manager.Confirm) and a
// rollback. A plan for a planned switchover:
//
//	{"name": "planned", "groups": ["orders"], "steps": [
//	  {"kind": "precheck", "max_lag_bytes": 1048576},
//	  {"kind": "fence"}, {"kind": "catch-up"}, {"kind": "promote"},
//	  {"kind": "switch-dns"}, {"kind": "switch-traffic"}, {"kind": "start-apps"},
//	  {"kind": "verify", "urls": ["https://yb.example/healthz"]}]}
//
// A plan for losing center A drops the precheck and sets "force" on fence
// (a primary that does not answer counts as lost) and on promote (promote
// although the replica may lack writes).
//
// Fencing comes before promotion, always: a plan is rejected if promote has
// no fence step before it, and drivers refuse to promote while the primary
// answers and takes writes. So there is never a moment with two writable
// primaries, unless a forced plan runs while A is cut off from the manager
// but not from its clients; that is what "force" accepts.
//
// Manager.Start runs a plan in the background as ModeSwitchover or
// ModeDrill. A drill changes nothing: it runs the prechecks, checks that the
// primaries answer, measures the lag, compares sampled keys of primary and
// replica instead of promoting, skips the switches, and estimates the RTO
// from the steps it ran and the plan's last switchover.
//
// Every run is recorded in the Store with per-step start, end, output,
// errors and events. Manager.Follow streams the events, Manager.Run returns
// a snapshot. The Report holds the RTO (from the start of the run to a
// verified service in the target center) and the RPO of each group: what the
// replica lacked when it was promoted, in bytes, keys and time. When the
// primary was lost, the RPO counts from its last contact, so run Monitor.
// A failed step stops the run; Manager.Rollback then undoes the steps done,
// last first.
//
// A verify step probes its URLs with Options.HTTPClient and follows no
// redirect: a 3xx is a failed probe ("answered 302"), as the service would
// otherwise be vouched for by wherever it points. Each request is bounded by
// ProbeTimeout (unless the client has a Timeout) and the step's timeout. A
// probe that got no HTTP answer says "unreachable", whatever the cause
// (refused, reset, timed out, not HTTP), which the error wraps and the Logger
// has at debug: the run is read by the plan's author, and the cause would
// tell which ports of a host are open. A service that answered says only its
// status code ("answered 503"). Who may probe what is the control plane's
// to decide: ProbePlan tells the client's Transport which plan a request is
// for, so its dialer can check the address a name resolved to. The
// reference server lets a team probe only its own services.
//
// DNS, traffic and applications are switched through DNSSwitcher,
// TrafficSwitcher and AppStarter, which the reference server implements
// with dnsctl, lb and deploy.
//
// # Lifecycle
//
// New(Options) builds a Manager without side effects; AddGroup opens a
// group's driver and restores its state from the Store; Monitor runs until
// its context ends; Close cancels runs in progress and closes the drivers.
// Several managers can live in one process. Start and Rollback return at
// once: their context bounds only the call, not the run.
//
// # Errors
//
// Configurations are checked by GroupConfig.Validate, PlanConfig.Validate and
// Manager.Start, which return a *ValidationError listing every field error by JSON
// path (Fields() maps each to its message). Other errors wrap a sentinel of errors.go (ErrBusy,
// ErrState, ErrLagUnknown, ErrFence, …) and name the group, run and step.
//
// # Testing code that uses dr
//
// Package drtest has an in-memory Fake driver with faults to inject (lose an
// instance, cut the link, refuse fencing), a Recorder for the DNS, traffic
// and application switches, and the conformance suite TestDriver that every
// driver runs. The Redis driver is dr/redis; its integration tests run real
// Redis instances in two Docker networks (internal/mwtest):
//
//	TESTCONTAINERS_RYUK_DISABLED=true go test -tags integration -race ./dr/...
package dr
