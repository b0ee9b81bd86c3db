// Package appsync keeps the applications of center B identical to those of
// center A: version sync (应用版本同步: a version released in the source
// center is copied, and released, in the target center) and config sync
// (项目信息同步: each app's configuration is copied), over sync bindings
// (同步关系绑定) of projects or teams, losing nothing and applying nothing
// twice.
//
// # Model
//
// The source center publishes an ordered change feed: each Change has a
// seq, strictly increasing, and is a release (version V of app X in project
// P, with the artifact's digest and size, maybe its piece sums, and the
// source nodes) or a config change (the app's whole configuration after the
// change, or its deletion).
// Each change carries an HMAC-SHA256 (Sign, Verify) under a key the two
// centers share, over a canonical encoding of all its fields.
//
// A sync task (TaskConfig) of kind version or config reads the feed
// through a Source from its persisted cursor and applies each change of its
// kind to the target center, a Sink. Its binding is a ProjectMap: the source
// project's counterpart in the target center, or ErrOutsideBinding.
// BindProject makes the map of a project binding; a team binding's map is
// the control plane's (the reference server maps by project name within the
// bound teams), and it is how one team's binding never touches another
// team's projects.
//
// For every change a task: verifies its MAC (ErrForged), validates it
// (Change.Validate, ErrMalformed; a seq that does not follow the one before
// is malformed too), maps its project (ErrOutsideBinding), applies it, and
// saves its state with the cursor moved past it (StateStore). Malformed
// changes and changes outside the binding are counted and reported in
// Status (Rejected, LastRejection), never applied, and the task reads on
// past them: the source signed them, so reading them again would give the
// same. A forged change is never applied either, but the task holds at it,
// retrying as after any error (Status: retrying, LastError): the source
// signs every change, so a bad MAC means the centers' keys differ or
// something between them altered the feed, and reading on would lose the
// real change. A Source that returns nothing after the cursor but changes
// at or before it is retried as an error.
//
// # Applying a change
//
// A release: when the target has the version with the same digest, nothing
// is copied; with another digest the task stops at a conflict
// (ReasonDigest), since versions are immutable. Otherwise the artifact is
// streamed from Source.Artifact into Sink.AddVersion, which checks its size
// and content on arrival and keeps nothing on a mismatch (the task
// retries). When the change carries piece sums (Change.Pieces: the sha256
// of each PieceSize-byte piece) the Sink may check the pieces in parallel,
// on every core, where the whole digest is one sequential stream that one
// core bounds (about 1 GB/s); otherwise it checks the whole digest. That
// is as strong: the source computed the sums and the digest from the same
// bytes in one pass, and the MAC covers both, so pieces that match are the
// content the digest names, as far as the source is trusted, which it is
// already to sign the change.
//
// With VersionPolicy mode release (the default), a version that is not the
// target's current one is then released on the counterparts of the
// source's nodes (VersionPolicy.Nodes) or, without a node map, on the
// target app's current nodes.
//
// A config change: apps outside ConfigPolicy.Apps are skipped; top-level
// keys of ConfigPolicy.Exclude (such as "balancer") are neither compared
// nor copied, and the target keeps its own. A target that equals the source
// already is skipped. Otherwise the configuration is written, the target's
// excluded keys kept, or the app deleted.
//
// # Guarantees
//
// The feed is read at least once: a task saves its cursor after each
// change, so a crash, a restart of either center or an unreachable one
// makes it read again from the last change saved, never skip one. Each
// apply is idempotent: it compares the target with the change first
// (version by name and digest, current version, configuration), so a change
// applied again, after a crash between applying it and saving the cursor,
// changes nothing. At-least-once delivery with idempotent apply is
// effectively once. Errors of the Source, the Sink, the ProjectMap or the
// StateStore are retried forever with exponential backoff between
// TaskConfig.RetryMin and RetryMax, and reported in Status (state
// retrying, LastError, Retries).
//
// # Drift and center-specific values
//
// A config task keeps, per target app, a hash of the configuration it last
// wrote (its baseline). When the target's configuration differs from both
// the baseline and the new source configuration, someone changed it by hand
// (or the task never wrote it): that is a drift. The task does not
// overwrite it: it stops at the change with a Conflict listing the fields
// that differ (FieldDiff: path, source value, target value), and waits.
//
// Config sync must not copy center A's addresses into center B: values
// should name DNS names (dnsctl) or per-center variables such as
// ${center.redis} that each center resolves itself. A string anywhere in
// the configuration that holds an IP address inside ConfigPolicy.SourceRanges
// (bare, host:port, in a URL) is flagged: the task stops at a conflict of
// reason center-specific listing the paths and values.
//
// The operator answers a conflict with Engine.Resolve: SourceWins applies
// the change as it is and continues; KeepTarget skips it, takes the
// target's configuration as the new baseline and continues; Stop pauses the
// task. Resync (a full resync: the cursor back to 0, every change applied
// again) drops the conflict.
//
// # Engine and lifecycle
//
// New(Options) makes an Engine for one target center: its Sink,
// StateStore, shared key, logger and metrics. Engine.Start runs a task in
// the background with its Source and ProjectMap (TaskOptions), from the
// state saved in the StateStore: after a process restart, Start every task
// again and each resumes exactly where it was, paused or at its conflict if
// it was. Pause, Resume, Resync and Resolve save what they change before
// returning. Stop ends one task, Close all of them; a change being applied
// is interrupted and will be applied again, idempotently. Status and
// Statuses report the state, cursor, feed head, lag in events and seconds,
// counters, last applied change, last error and conflicts. The lag in events
// is what the Source counts as pending (Page.Pending) less what was done
// since; a Source that does not count leaves it to be estimated from the
// head and the cursor.
//
// Metrics (Options.Registerer): appsync_changes_total{task,kind,outcome},
// appsync_conflicts_total{task,reason}, appsync_errors_total{task},
// appsync_lag_events{task}, appsync_lag_seconds{task}, appsync_cursor{task}.
//
// # Transport
//
// FeedHandler serves a Feed (the source center's feed, unsigned) over HTTP
// and signs each change; HTTPSource is the Source that reads it, with a
// bearer token, bounded waits and sizes, strict decoding, and the MAC of
// each change verified on receipt. Authentication beyond the token is the
// server's: the reference server wraps the handler with its own. Integrators
// with another platform implement Source, Feed and Sink themselves.
//
// # How the reference server uses it
//
// Center A serves its feed (deploy's release events and the apps'
// configuration changes, from its store) through FeedHandler behind its
// authentication. Center B stores bindings and tasks (REST), builds one
// Engine with a Sink over its deploy manager and a durable StateStore, and
// starts each task with an HTTPSource pointed at A and the binding's
// ProjectMap; its API exposes Status, Pause, Resume, Resync and Resolve.
//
// # Errors
//
// TaskConfig.Validate and Binding.Validate return a *ValidationError listing
// every field error by JSON path; its Fields() maps each path to its message. Other errors wrap a sentinel of
// errors.go (ErrForged, ErrMalformed, ErrOutsideBinding, ErrNotFound,
// ErrState, ErrProtocol, …) and name the task, change, project, app or
// version.
//
// # Testing code that uses appsync
//
// Package appsynctest has an in-memory Feed (also a Source) and Sink, with
// faults to inject and the Sink's calls counted, so that tests check that
// nothing is lost and nothing applied twice:
//
//	go test -race ./appsync/...
//	go test -run '^$' -fuzz FuzzDecodePage ./appsync/
package appsync
