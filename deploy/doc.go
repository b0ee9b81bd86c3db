// Package deploy is the platform's distributed service (分布式服务): apps
// (应用) of projects, immutable versions (版本) of their artifacts, nodes
// (节点) where instances (实例) run, deployments of a version onto many
// nodes with rolling upgrade and rollback, per-instance start and stop, and
// an ordered feed of releases for the other center to follow.
//
// # Apps, versions, nodes
//
// An AppConfig says what an app is and how it runs:
//
//	{"project": "yb", "name": "outpatient", "label": "门诊结算",
//	 "kind": "jar", "jvm_options": ["-Xmx1g"],
//	 "args": ["--server.port={{.Port}}", "--spring.config.location={{.Dir}}/config/"],
//	 "env": {"TZ": "Asia/Shanghai"},
//	 "config_files": [{"path": "config/application.yml", "template": "node: {{.Node}}\n"}],
//	 "ports": [{"name": "http", "port": 8085}],
//	 "health": {"type": "http", "path": "/actuator/health", "start_timeout": "90s"},
//	 "stop_grace": "20s",
//	 "restart": {"max_restarts": 5, "window": "1m"}}
//
// Kinds are jar (java <jvm_options> -jar <artifact> <args>), executable and
// tarball (unpacked, run with "command"). Args, JVM options, env values, the
// command and config files are text/templates over TemplateData. Each field's
// comment documents it and its default; zero means the default.
//
// Manager.AddVersion streams an upload into the ArtifactStore, hashing it on
// the way: the version's artifact is stored by its sha256 (DirStore keeps
// files under sha256/<hex>), refused beyond Options.MaxArtifactSize or when
// it does not match the digest the uploader gave, and a tarball with entries
// leaving its directory is refused too. Nothing is left behind by a refused
// upload. A version's name is never reused and its content never changes;
// every later transfer (store → driver → node) is verified again.
//
// A PieceStore (DirStore is one) also keeps the sha256 of each PieceSize
// piece of an artifact, computed with the digest from the same bytes.
// Another center copying the version checks its copy against them
// (Manager.AddVersionPieces, used by appsync): one sha256 stream runs on
// one core at about 1.1 GB/s, slower than the copy, while pieces are
// checked on every core. Piece sums are taken only from a store that
// computed them; an upload of unknown origin is checked by its digest. The
// metric deploy_artifact_uploads_total{check="digest"|"pieces",result}
// counts uploads by how they were checked.
//
// A NodeConfig names a node and its driver: "local" (deploy/local,
// processes on this host in their own directory) or "ssh" (deploy/ssh, a
// Linux host). The Kubernetes driver will implement the same NodeDriver.
//
// # Deployments
//
// Manager.Deploy puts a version on a set of nodes, one instance per node
// (create where none runs, replace where one does), in batches: all at once,
// or rolling with Strategy.BatchSize and a Pause between batches. For each
// instance: install the version on the node, drain it (Traffic), stop it
// (SIGTERM, SIGKILL after stop_grace), start the new version, wait for its
// health check (the health gate), undrain it. When a batch fails its gate
// the deployment stops; with Strategy.Rollback it then puts back what it
// changed. Manager.Abort stops a deployment the same way. A deployment that
// leaves every instance on its version releases it: App.Released records
// it, and Rollback goes back one good version in one step. Manager.Scale
// adds and removes nodes; StartInstance, StopInstance and RestartInstance
// act on one instance. Every deployment is saved with its batches and
// steps at each change, so History is complete; one running when its
// manager stopped is marked interrupted at the next New, and can be rolled
// back.
//
// # Release feed
//
// Each release is an Event (version V of app X in project P released to
// nodes N) with a sequence number. Events(after, limit) reads on from a
// cursor, WaitEvents blocks for the next; the Store keeps them, so a
// consumer (appsync) resumes across restarts of either side.
//
// # Lifecycle
//
// New(Options) validates the options and opens nothing: each node's driver
// is opened on first use. Deploy, Rollback and Scale return at once with
// the deployment's record; Wait waits for its end. Close interrupts running
// deployments and closes the drivers (the local driver stops its
// processes). Several managers can live in one process; give each its own
// Store and Registerer.
//
// # Errors
//
// Configurations are checked by AppConfig.Validate, NodeConfig.Validate,
// VersionConfig.Validate and Strategy.Validate, which return a
// *ValidationError listing every field error by JSON path (Fields() maps each to its message). Other errors
// wrap a sentinel of errors.go (ErrNotFound, ErrExists, ErrChecksum,
// ErrTooLarge, ErrUnsafePath, ErrBusy, ErrHealth, ErrCrashLoop, ErrHostKey,
// …) and name the app, version, node or instance.
//
// # Testing code that uses deploy
//
// Package deploytest has an in-memory node driver with faults to inject, a
// Traffic recorder, a small HTTP app (BuildApp) to deploy for real, and
// TestDriver, the conformance suite every driver runs:
//
//	go test -race ./deploy/...
//	eval "$(scripts/images)"                        # builds the SSH node image
//	go test -race -tags integration ./deploy/ssh/   # SSH nodes in containers
package deploy
