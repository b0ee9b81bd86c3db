package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Options configures a Manager. Artifacts and Drivers are required.
type Options struct {
	// Store persists apps, versions, nodes, instances, deployments and
	// events. Default: a new MemoryStore.
	Store Store
	// Artifacts stores the versions' artifacts, such as a DirStore.
	Artifacts ArtifactStore
	// Drivers opens the driver of each node by NodeConfig.Driver, such as
	// {"local": local.Open, "ssh": ssh.Open}.
	Drivers map[string]DriverFunc
	// Traffic drains instances before they stop and undrains them once
	// healthy. Default: none.
	Traffic Traffic
	// MaxArtifactSize bounds an artifact's size in bytes. Default: 1 GiB.
	MaxArtifactSize int64
	// HTTPClient runs HTTP health checks; each check is bounded by the
	// app's health timeout. Default: a client of its own without
	// keep-alives.
	HTTPClient *http.Client
	// Registerer registers the manager's metrics. Default: none.
	Registerer prometheus.Registerer
	// Logger logs what the manager does in the background. Default:
	// discard.
	Logger *slog.Logger
}

// Manager holds apps, versions and nodes, and runs deployments. Create it
// with New; it is safe for concurrent use, and several managers can live in
// one process (not on one Store at once).
type Manager struct {
	opts    Options
	metrics *metrics

	// ctx is canceled by Close; deployments derive their contexts from it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	drivers  map[string]NodeDriver // by node name, opened on first use
	opening  map[string]*sync.Mutex
	busy     map[string]string   // app key -> what holds it
	rollouts map[string]*rollout // running deployments by ID
	events   chan struct{}       // closed and replaced when an event is appended
}

// New returns a Manager. It opens no node driver (each is opened on first
// use) and starts nothing; deployments the Store holds as running, left by a
// manager that stopped, are marked interrupted.
func New(opts Options) (*Manager, error) {
	if opts.Artifacts == nil {
		return nil, fmt.Errorf("%w: Options.Artifacts is nil; give an ArtifactStore such as a DirStore", ErrInvalid)
	}
	if len(opts.Drivers) == 0 {
		return nil, fmt.Errorf("%w: Options.Drivers is empty; give the driver of each kind of node", ErrInvalid)
	}
	if opts.MaxArtifactSize < 0 {
		return nil, fmt.Errorf("%w: Options.MaxArtifactSize is %d; want zero (for 1 GiB) or more", ErrInvalid, opts.MaxArtifactSize)
	}
	if opts.MaxArtifactSize == 0 {
		opts.MaxArtifactSize = 1 << 30
	}
	if opts.Store == nil {
		opts.Store = &MemoryStore{}
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		opts: opts, metrics: met, ctx: ctx, cancel: cancel,
		drivers: map[string]NodeDriver{}, opening: map[string]*sync.Mutex{},
		busy: map[string]string{}, rollouts: map[string]*rollout{}, events: make(chan struct{}),
	}
	deps, err := opts.Store.Deployments(ctx, "", "")
	if err != nil {
		cancel()
		return nil, fmt.Errorf("deploy: read deployments: %w", err)
	}
	for _, d := range deps {
		if d.State == DeploymentRunning {
			d.State = DeploymentInterrupted
			d.Error = "the manager stopped while the deployment ran; its instances may run either version"
			d.Ended = time.Now()
			if err := opts.Store.PutDeployment(ctx, d); err != nil {
				cancel()
				return nil, fmt.Errorf("deploy: mark deployment %s interrupted: %w", d.ID, err)
			}
		}
	}
	return m, nil
}

// Close interrupts the deployments in progress (they end interrupted, and
// can be rolled back later), waits for them and closes the node drivers; a
// local driver stops its processes.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for name, d := range m.drivers {
		if err := d.Close(); err != nil {
			errs = append(errs, fmt.Errorf("deploy: close the driver of node %s: %w", name, err))
		}
	}
	clear(m.drivers)
	return errors.Join(errs...)
}

func appKey(project, app string) string { return project + "/" + app }

// hold marks the app busy with what; release frees it.
func (m *Manager) hold(project, app, what string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if by, ok := m.busy[appKey(project, app)]; ok {
		return fmt.Errorf("deploy: app %s/%s: %w (%s)", project, app, ErrBusy, by)
	}
	m.busy[appKey(project, app)] = what
	return nil
}

// Busy says what holds the app (a deployment, or an action on one of its
// instances, such as a restart's resumption), "" when nothing does: while
// it is busy, Deploy, Rollback, Scale and instance actions fail with
// ErrBusy.
func (m *Manager) Busy(project, app string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.busy[appKey(project, app)]
}

func (m *Manager) release(project, app string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.busy, appKey(project, app))
}

// PutApp validates cfg and creates the app or updates it. The new
// configuration applies to instances when they next start.
func (m *Manager) PutApp(ctx context.Context, cfg AppConfig) (App, error) {
	if err := cfg.Validate(); err != nil {
		return App{}, err
	}
	now := time.Now().UTC()
	a, err := m.opts.Store.App(ctx, cfg.Project, cfg.Name)
	switch {
	case errors.Is(err, ErrNotFound):
		a = App{Created: now}
	case err != nil:
		return App{}, err
	}
	a.AppConfig = cfg
	a.Updated = now
	if err := m.opts.Store.PutApp(ctx, a); err != nil {
		return App{}, fmt.Errorf("deploy: app %s/%s: %w", cfg.Project, cfg.Name, err)
	}
	return a, nil
}

// App returns the app.
func (m *Manager) App(ctx context.Context, project, name string) (App, error) {
	return m.opts.Store.App(ctx, project, name)
}

// Apps returns every app.
func (m *Manager) Apps(ctx context.Context) ([]App, error) { return m.opts.Store.Apps(ctx) }

// DeleteApp deletes an app without instances (scale it to no node first).
// Its versions, deployments and events stay in the Store as history.
func (m *Manager) DeleteApp(ctx context.Context, project, name string) error {
	if _, err := m.opts.Store.App(ctx, project, name); err != nil {
		return err
	}
	insts, err := m.opts.Store.Instances(ctx, project, name)
	if err != nil {
		return err
	}
	if len(insts) > 0 {
		return fmt.Errorf("deploy: delete app %s/%s: %w: it has %d instances; scale it to no node first", project, name, ErrState, len(insts))
	}
	return m.opts.Store.DeleteApp(ctx, project, name)
}

// AddVersion stores r as a new version of the app. The upload is hashed as
// it streams into the artifact store and refused, leaving nothing behind,
// when it exceeds Options.MaxArtifactSize (ErrTooLarge) or does not match
// cfg.Digest (ErrChecksum). A tarball is checked for unsafe paths
// (ErrUnsafePath). Versions are immutable: a name is never reused
// (ErrExists).
func (m *Manager) AddVersion(ctx context.Context, project, app string, cfg VersionConfig, r io.Reader) (Version, error) {
	return m.addVersion(ctx, project, app, cfg, "digest", func() (Digest, int64, error) {
		var want Digest
		if cfg.Digest != "" {
			want, _ = ParseDigest(cfg.Digest)
		}
		return m.opts.Artifacts.Put(ctx, r, want, m.opts.MaxArtifactSize)
	})
}

// AddVersionPieces is AddVersion for an artifact of size bytes, digest
// cfg.Digest (required) and the piece sums, from a store that computed the
// sums with the digest: another center, whose signed release change carries
// them. Where Options.Artifacts is a PieceStore, the pieces are checked on
// arrival, on every core, instead of the whole digest on one; elsewhere, or
// when sums is nil, it is AddVersion, checking the digest. Anything that
// does not match is refused with ErrChecksum and nothing is kept. Uploads
// of unknown origin go through AddVersion: sums that do not belong to the
// digest would store content under a digest it does not have.
func (m *Manager) AddVersionPieces(ctx context.Context, project, app string, cfg VersionConfig, size int64, sums PieceSums, r io.Reader) (Version, error) {
	ps, ok := m.opts.Artifacts.(PieceStore)
	if !ok || sums == nil {
		return m.AddVersion(ctx, project, app, cfg, r)
	}
	d, err := ParseDigest(cfg.Digest)
	if err != nil {
		return Version{}, validate.One(ErrInvalid, "digest", "required with piece sums: sha256:<64 hex digits>")
	}
	if err := sums.check(size); err != nil {
		return Version{}, err
	}
	return m.addVersion(ctx, project, app, cfg, "pieces", func() (Digest, int64, error) {
		if size > m.opts.MaxArtifactSize {
			return "", 0, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, size, m.opts.MaxArtifactSize)
		}
		n, err := ps.PutPieces(ctx, r, d, size, sums)
		return d, n, err
	})
}

// addVersion stores a version of the app whose artifact put stores, checked
// as check says (the label of deploy_artifact_uploads_total).
func (m *Manager) addVersion(ctx context.Context, project, app string, cfg VersionConfig, check string, put func() (Digest, int64, error)) (Version, error) {
	if err := cfg.Validate(); err != nil {
		return Version{}, err
	}
	a, err := m.opts.Store.App(ctx, project, app)
	if err != nil {
		return Version{}, err
	}
	if _, err := m.opts.Store.Version(ctx, project, app, cfg.Name); err == nil {
		return Version{}, fmt.Errorf("deploy: version %s of app %s/%s: %w", cfg.Name, project, app, ErrExists)
	}
	d, n, err := put()
	m.metrics.uploadBytes.Add(float64(n))
	result := "stored"
	if err != nil {
		result = "refused"
	}
	m.metrics.uploads.WithLabelValues(check, result).Inc()
	if err != nil {
		return Version{}, fmt.Errorf("deploy: upload version %s of app %s/%s: %w", cfg.Name, project, app, err)
	}
	v := Version{Project: project, App: app, Name: cfg.Name, Notes: cfg.Notes, Digest: d, Size: n, Created: time.Now().UTC()}
	if a.Kind == KindTarball {
		if err := m.checkTarball(ctx, d); err != nil {
			m.dropArtifact(ctx, d)
			return Version{}, fmt.Errorf("deploy: upload version %s of app %s/%s: %w", cfg.Name, project, app, err)
		}
	}
	if err := m.opts.Store.AddVersion(ctx, v); err != nil {
		m.dropArtifact(ctx, d)
		return Version{}, err
	}
	return v, nil
}

// checkTarball unpacks the artifact to nowhere, to refuse unsafe entries at
// upload rather than at install.
func (m *Manager) checkTarball(ctx context.Context, d Digest) error {
	rc, _, err := m.opts.Artifacts.Open(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	return CheckTarball(rc)
}

// dropArtifact deletes an artifact no version refers to.
func (m *Manager) dropArtifact(ctx context.Context, d Digest) {
	apps, err := m.opts.Store.Apps(ctx)
	if err != nil {
		return
	}
	for _, a := range apps {
		vs, err := m.opts.Store.Versions(ctx, a.Project, a.Name)
		if err != nil {
			return
		}
		for _, v := range vs {
			if v.Digest == d {
				return
			}
		}
	}
	_ = m.opts.Artifacts.Delete(ctx, d)
}

// Version returns a version of the app.
func (m *Manager) Version(ctx context.Context, project, app, name string) (Version, error) {
	return m.opts.Store.Version(ctx, project, app, name)
}

// Versions returns the app's versions, oldest first.
func (m *Manager) Versions(ctx context.Context, project, app string) ([]Version, error) {
	return m.opts.Store.Versions(ctx, project, app)
}

// OpenArtifact returns a version's artifact, verified as it is read.
func (m *Manager) OpenArtifact(ctx context.Context, project, app, version string) (io.ReadCloser, Version, error) {
	v, err := m.opts.Store.Version(ctx, project, app, version)
	if err != nil {
		return nil, Version{}, err
	}
	rc, _, err := m.opts.Artifacts.Open(ctx, v.Digest)
	if err != nil {
		return nil, Version{}, fmt.Errorf("deploy: version %s of app %s/%s: %w", version, project, app, err)
	}
	return rc, v, nil
}

// PieceSums returns the piece sums of the version's artifact, for another
// center to check its copy by (AddVersionPieces). The error wraps
// ErrNotFound when the artifact store keeps none for it: it is not a
// PieceStore, or the artifact was stored before it kept them.
func (m *Manager) PieceSums(ctx context.Context, v Version) (PieceSums, error) {
	ps, ok := m.opts.Artifacts.(PieceStore)
	if !ok {
		return nil, fmt.Errorf("deploy: piece sums of version %s of app %s/%s: %w: the artifact store keeps none", v.Name, v.Project, v.App, ErrNotFound)
	}
	sums, err := ps.PieceSums(ctx, v.Digest)
	if err != nil {
		return nil, fmt.Errorf("deploy: version %s of app %s/%s: %w", v.Name, v.Project, v.App, err)
	}
	return sums, nil
}

// PutNode validates cfg and registers the node, or updates it (its driver is
// opened again on next use).
func (m *Manager) PutNode(ctx context.Context, cfg NodeConfig) (Node, error) {
	if err := cfg.Validate(); err != nil {
		return Node{}, err
	}
	if _, ok := m.opts.Drivers[cfg.Driver]; !ok {
		return Node{}, validate.One(ErrInvalid, "driver", fmt.Sprintf("no driver %q in this manager", cfg.Driver))
	}
	n, err := m.opts.Store.Node(ctx, cfg.Name)
	switch {
	case errors.Is(err, ErrNotFound):
		n = Node{Created: time.Now().UTC()}
	case err != nil:
		return Node{}, err
	}
	n.NodeConfig = cfg
	if err := m.opts.Store.PutNode(ctx, n); err != nil {
		return Node{}, fmt.Errorf("deploy: node %s: %w", cfg.Name, err)
	}
	m.mu.Lock()
	old := m.drivers[cfg.Name]
	delete(m.drivers, cfg.Name)
	m.mu.Unlock()
	if old != nil {
		if err := old.Close(); err != nil {
			m.opts.Logger.Warn("deploy: close the old driver of node", "node", cfg.Name, "err", err)
		}
	}
	return n, nil
}

// Node returns the node.
func (m *Manager) Node(ctx context.Context, name string) (Node, error) {
	return m.opts.Store.Node(ctx, name)
}

// Nodes returns every node.
func (m *Manager) Nodes(ctx context.Context) ([]Node, error) { return m.opts.Store.Nodes(ctx) }

// DeleteNode forgets a node without instances and closes its driver.
func (m *Manager) DeleteNode(ctx context.Context, name string) error {
	if _, err := m.opts.Store.Node(ctx, name); err != nil {
		return err
	}
	insts, err := m.opts.Store.Instances(ctx, "", "")
	if err != nil {
		return err
	}
	for _, i := range insts {
		if i.Node == name {
			return fmt.Errorf("deploy: delete node %s: %w: instance %s runs there", name, ErrState, i.ID)
		}
	}
	if err := m.opts.Store.DeleteNode(ctx, name); err != nil {
		return err
	}
	m.mu.Lock()
	d := m.drivers[name]
	delete(m.drivers, name)
	m.mu.Unlock()
	if d != nil {
		return d.Close()
	}
	return nil
}

// driver returns the node's driver, opening it on first use.
func (m *Manager) driver(ctx context.Context, node string) (NodeDriver, Node, error) {
	n, err := m.opts.Store.Node(ctx, node)
	if err != nil {
		return nil, Node{}, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, Node{}, ErrClosed
	}
	if d, ok := m.drivers[node]; ok {
		m.mu.Unlock()
		return d, n, nil
	}
	lock, ok := m.opening[node]
	if !ok {
		lock = &sync.Mutex{}
		m.opening[node] = lock
	}
	m.mu.Unlock()

	lock.Lock()
	defer lock.Unlock()
	m.mu.Lock()
	if d, ok := m.drivers[node]; ok {
		m.mu.Unlock()
		return d, n, nil
	}
	m.mu.Unlock()
	open, ok := m.opts.Drivers[n.Driver]
	if !ok {
		return nil, Node{}, fmt.Errorf("deploy: node %s: %w: no driver %q", node, ErrInvalid, n.Driver)
	}
	d, err := open(ctx, n.NodeConfig)
	if err != nil {
		return nil, Node{}, fmt.Errorf("deploy: open the %s driver of node %s: %w", n.Driver, node, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, Node{}, errors.Join(ErrClosed, d.Close())
	}
	m.drivers[node] = d
	return d, n, nil
}

// nodeHost returns where the node's instances are reached.
func nodeHost(n *NodeConfig) string {
	if n.Host != "" {
		return n.Host
	}
	if n.SSH != nil {
		if h, _, err := net.SplitHostPort(n.SSH.Addr); err == nil {
			return h
		}
	}
	return "127.0.0.1"
}

// Instances returns the app's instances as stored.
func (m *Manager) Instances(ctx context.Context, project, app string) ([]Instance, error) {
	return m.opts.Store.Instances(ctx, project, app)
}

// instance returns the stored instance with the ID.
func (m *Manager) instance(ctx context.Context, id string) (Instance, error) {
	parts := strings.Split(id, ".")
	if len(parts) != 3 {
		return Instance{}, fmt.Errorf("deploy: instance %q: %w", id, ErrNotFound)
	}
	insts, err := m.opts.Store.Instances(ctx, parts[0], parts[1])
	if err != nil {
		return Instance{}, err
	}
	for _, i := range insts {
		if i.ID == id {
			return i, nil
		}
	}
	return Instance{}, fmt.Errorf("deploy: instance %s: %w", id, ErrNotFound)
}

// InstanceStatus asks the instance's node how the instance is.
func (m *Manager) InstanceStatus(ctx context.Context, id string) (InstanceStatus, error) {
	inst, err := m.instance(ctx, id)
	if err != nil {
		return InstanceStatus{}, err
	}
	drv, _, err := m.driver(ctx, inst.Node)
	if err != nil {
		return InstanceStatus{}, err
	}
	return drv.Status(ctx, id)
}

// StopInstance stops one instance (draining it first), which stays stopped
// until StartInstance. It is refused while the app has a deployment running.
func (m *Manager) StopInstance(ctx context.Context, id string) error {
	return m.instanceAction(ctx, id, "stop", func(a *App, inst *Instance, drv NodeDriver) error {
		m.drain(ctx, inst)
		if err := drv.Stop(ctx, inst.ID, a.StopGrace.Or(10*time.Second)); err != nil {
			return err
		}
		inst.Stopped = true
		return nil
	})
}

// StartInstance starts a stopped instance on the version it ran, waits for its
// health check and undrains it.
func (m *Manager) StartInstance(ctx context.Context, id string) error {
	return m.instanceAction(ctx, id, "start", func(a *App, inst *Instance, drv NodeDriver) error {
		return m.startInstance(ctx, a, inst, drv)
	})
}

// RestartInstance drains, stops and starts the instance on the version it
// runs, with the app's current configuration, and undrains it once healthy.
func (m *Manager) RestartInstance(ctx context.Context, id string) error {
	return m.instanceAction(ctx, id, "restart", func(a *App, inst *Instance, drv NodeDriver) error {
		m.drain(ctx, inst)
		if err := drv.Stop(ctx, inst.ID, a.StopGrace.Or(10*time.Second)); err != nil {
			return err
		}
		return m.startInstance(ctx, a, inst, drv)
	})
}

func (m *Manager) instanceAction(ctx context.Context, id, action string, f func(*App, *Instance, NodeDriver) error) (err error) {
	inst, err := m.instance(ctx, id)
	if err != nil {
		return err
	}
	if err := m.hold(inst.Project, inst.App, action+" of instance "+id); err != nil {
		return err
	}
	defer m.release(inst.Project, inst.App)
	defer func() { m.metrics.action(action, err) }()
	a, err := m.opts.Store.App(ctx, inst.Project, inst.App)
	if err != nil {
		return err
	}
	drv, _, err := m.driver(ctx, inst.Node)
	if err != nil {
		return err
	}
	if err := f(&a, &inst, drv); err != nil {
		return fmt.Errorf("deploy: %s instance %s: %w", action, id, err)
	}
	inst.Updated = time.Now().UTC()
	if err := m.opts.Store.PutInstance(ctx, inst); err != nil {
		return fmt.Errorf("deploy: %s instance %s: %w", action, id, err)
	}
	return nil
}

// startInstance installs the instance's version on its node, starts it,
// waits for its health check and undrains it. inst gets the chosen ports.
func (m *Manager) startInstance(ctx context.Context, a *App, inst *Instance, drv NodeDriver) error {
	v, err := m.opts.Store.Version(ctx, inst.Project, inst.App, inst.Version)
	if err != nil {
		return err
	}
	n, err := m.opts.Store.Node(ctx, inst.Node)
	if err != nil {
		return err
	}
	if err := drv.Install(ctx, m.artifact(a, &v)); err != nil {
		return err
	}
	ports := map[string]int{}
	for _, p := range a.Ports {
		ports[p.Name] = p.Port
		if p.Port == 0 {
			ports[p.Name] = inst.Ports[p.Name]
		}
	}
	host := nodeHost(&n.NodeConfig)
	st, err := drv.Start(ctx, InstanceSpec{
		ID: inst.ID, Project: inst.Project, App: a.AppConfig, Node: inst.Node,
		Version: v.Name, Digest: v.Digest, Ports: ports, Host: host,
	})
	if err != nil {
		return err
	}
	inst.Ports = st.Ports
	inst.Addr = ""
	if hp := healthPort(&a.AppConfig); hp != "" {
		inst.Addr = net.JoinHostPort(host, strconv.Itoa(st.Ports[hp]))
	}
	inst.Stopped = false
	// Save the chosen ports at once, so that a failure below keeps them.
	inst.Updated = time.Now().UTC()
	if err := m.opts.Store.PutInstance(ctx, *inst); err != nil {
		return err
	}
	if err := m.waitHealthy(ctx, &a.AppConfig, drv, inst); err != nil {
		return err
	}
	if m.opts.Traffic != nil {
		if err := m.opts.Traffic.Undrain(ctx, *inst); err != nil {
			return fmt.Errorf("undrain: %w", err)
		}
	}
	return nil
}

// drain takes inst out of the load balancer; a failure is logged, not
// fatal: the instance is about to stop anyway.
func (m *Manager) drain(ctx context.Context, inst *Instance) {
	if m.opts.Traffic == nil || inst.Addr == "" {
		return
	}
	if err := m.opts.Traffic.Drain(ctx, *inst); err != nil {
		m.opts.Logger.Warn("deploy: drain failed; stopping the instance anyway", "instance", inst.ID, "err", err)
	}
}

func (m *Manager) artifact(a *App, v *Version) Artifact {
	return Artifact{
		Project: v.Project, App: v.App, Version: v.Name, Kind: a.Kind, Digest: v.Digest, Size: v.Size,
		Open: func(ctx context.Context) (io.ReadCloser, error) {
			rc, _, err := m.opts.Artifacts.Open(ctx, v.Digest)
			return rc, err
		},
	}
}

// Deployment returns a deployment.
func (m *Manager) Deployment(ctx context.Context, id string) (Deployment, error) {
	m.mu.Lock()
	r, ok := m.rollouts[id]
	m.mu.Unlock()
	if ok {
		return r.snapshot(), nil
	}
	return m.opts.Store.Deployment(ctx, id)
}

// History returns the app's deployments, oldest first; project and app
// empty: every deployment.
func (m *Manager) History(ctx context.Context, project, app string) ([]Deployment, error) {
	deps, err := m.opts.Store.Deployments(ctx, project, app)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(deps, func(a, b Deployment) int { return cmp.Compare(a.Started.UnixNano(), b.Started.UnixNano()) })
	return deps, nil
}

// Events returns up to limit release events after the cursor (0: from the
// start), in order. Pass the last event's Seq as the next cursor.
func (m *Manager) Events(ctx context.Context, after int64, limit int) ([]Event, error) {
	return m.opts.Store.Events(ctx, after, limit)
}

// EventsChanged returns a channel closed at the next release event, for a
// reader that waits on several things at once; WaitEvents waits on it.
func (m *Manager) EventsChanged() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.events
}

// WaitEvents is Events, but when no event follows the cursor it waits for
// one, until ctx ends.
func (m *Manager) WaitEvents(ctx context.Context, after int64, limit int) ([]Event, error) {
	for {
		ch := m.EventsChanged()
		evs, err := m.opts.Store.Events(ctx, after, limit)
		if err != nil || len(evs) > 0 {
			return evs, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// publish appends a release event and wakes WaitEvents.
func (m *Manager) publish(ctx context.Context, e Event) error {
	e, err := m.opts.Store.AppendEvent(ctx, e)
	if err != nil {
		return fmt.Errorf("deploy: release event of version %s of app %s/%s: %w", e.Version, e.Project, e.App, err)
	}
	m.metrics.eventSeq.Set(float64(e.Seq))
	m.mu.Lock()
	close(m.events)
	m.events = make(chan struct{})
	m.mu.Unlock()
	return nil
}
