package deploy

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// DeployRequest asks for a version of an app on a set of nodes.
type DeployRequest struct {
	Project string `json:"project" validate:"required"`
	App     string `json:"app" validate:"required"`
	Version string `json:"version" validate:"required"`
	// Nodes to run the version on, one instance each; instances are
	// created where the app has none. Default: the nodes of the app's
	// instances (an upgrade).
	Nodes    []string `json:"nodes,omitempty" validate:"max=1000"`
	Strategy Strategy `json:"strategy"`
}

// Deploy starts a deployment of the request's version and returns at once
// with its record; Wait waits for its end. Per batch of nodes, each node
// installs the version (verifying its checksum), then each instance is
// drained, stopped, started on the new version, health-checked and
// undrained. A batch that fails its health gate stops the deployment, and
// with Strategy.Rollback puts back what it changed. A deployment that
// leaves every instance of the app on the version releases it: the version
// becomes the app's current one and a release Event is published.
func (m *Manager) Deploy(ctx context.Context, req DeployRequest) (Deployment, error) {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(&req)
	if err := req.Strategy.Validate(); err != nil {
		var ve *ValidationError
		errors.As(err, &ve)
		for _, fe := range ve.Errors {
			v.Add("strategy."+fe.Field, fe.Message)
		}
	}
	if err := v.Err(); err != nil {
		return Deployment{}, err
	}
	a, err := m.opts.Store.App(ctx, req.Project, req.App)
	if err != nil {
		return Deployment{}, err
	}
	ver, err := m.opts.Store.Version(ctx, req.Project, req.App, req.Version)
	if err != nil {
		return Deployment{}, err
	}
	nodes := req.Nodes
	if len(nodes) == 0 {
		insts, err := m.opts.Store.Instances(ctx, req.Project, req.App)
		if err != nil {
			return Deployment{}, err
		}
		for _, i := range insts {
			nodes = append(nodes, i.Node)
		}
		if len(nodes) == 0 {
			return Deployment{}, validate.One(ErrInvalid, "nodes", fmt.Sprintf("is required: app %s/%s has no instance yet", req.Project, req.App))
		}
	}
	return m.begin(ctx, TypeDeploy, &a, &ver, nodes, nil, req.Strategy)
}

// Rollback returns the app to its previous good version, on every instance.
// When instances run something other than the current version (a deployment
// failed or was interrupted part way), it returns them to the current
// version instead. It fails with ErrState when there is nothing to return
// to.
func (m *Manager) Rollback(ctx context.Context, project, app string, s Strategy) (Deployment, error) {
	if err := s.Validate(); err != nil {
		return Deployment{}, err
	}
	a, err := m.opts.Store.App(ctx, project, app)
	if err != nil {
		return Deployment{}, err
	}
	insts, err := m.opts.Store.Instances(ctx, project, app)
	if err != nil {
		return Deployment{}, err
	}
	if len(insts) == 0 {
		return Deployment{}, fmt.Errorf("deploy: roll back app %s/%s: %w: it has no instance", project, app, ErrState)
	}
	target := a.Previous()
	var nodes []string
	for _, i := range insts {
		nodes = append(nodes, i.Node)
		if a.Current() != "" && i.Version != a.Current() {
			target = a.Current()
		}
	}
	if target == "" {
		return Deployment{}, fmt.Errorf("deploy: roll back app %s/%s: %w: no previous good version", project, app, ErrState)
	}
	ver, err := m.opts.Store.Version(ctx, project, app, target)
	if err != nil {
		return Deployment{}, err
	}
	return m.begin(ctx, TypeRollback, &a, &ver, nodes, nil, s)
}

// Scale makes the app run on exactly the given nodes: instances of the
// current version are created on new nodes, then instances on nodes not
// listed are drained and removed. An empty list removes every instance.
func (m *Manager) Scale(ctx context.Context, project, app string, nodes []string, s Strategy) (Deployment, error) {
	if err := s.Validate(); err != nil {
		return Deployment{}, err
	}
	a, err := m.opts.Store.App(ctx, project, app)
	if err != nil {
		return Deployment{}, err
	}
	insts, err := m.opts.Store.Instances(ctx, project, app)
	if err != nil {
		return Deployment{}, err
	}
	var add, remove []string
	have := map[string]bool{}
	for _, i := range insts {
		have[i.Node] = true
		if !slices.Contains(nodes, i.Node) {
			remove = append(remove, i.Node)
		}
	}
	for _, n := range nodes {
		if !have[n] && !slices.Contains(add, n) {
			add = append(add, n)
		}
	}
	var ver Version
	if len(add) > 0 {
		if a.Current() == "" {
			return Deployment{}, fmt.Errorf("deploy: scale app %s/%s: %w: no version released yet; deploy one", project, app, ErrState)
		}
		if ver, err = m.opts.Store.Version(ctx, project, app, a.Current()); err != nil {
			return Deployment{}, err
		}
	}
	return m.begin(ctx, TypeScale, &a, &ver, add, remove, s)
}

// Abort stops a running deployment: a batch in progress is interrupted
// (health gates stop waiting) and no other batch starts. With rollback, or
// when the deployment's strategy asks for it, what the deployment changed is
// put back. Abort returns at once; Wait for the end.
func (m *Manager) Abort(_ context.Context, id string, rollback bool) error {
	m.mu.Lock()
	r, ok := m.rollouts[id]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("deploy: abort deployment %s: %w: it is not running here", id, ErrState)
	}
	r.mu.Lock()
	r.d.Aborted = true
	if rollback {
		r.d.Strategy.Rollback = true
	}
	r.mu.Unlock()
	r.abort(fmt.Errorf("%w by request", ErrAborted))
	return nil
}

// Wait waits until the deployment has ended, or ctx ends, and returns its
// record.
func (m *Manager) Wait(ctx context.Context, id string) (Deployment, error) {
	m.mu.Lock()
	r, ok := m.rollouts[id]
	m.mu.Unlock()
	if ok {
		select {
		case <-r.done:
		case <-ctx.Done():
			return r.snapshot(), ctx.Err()
		}
	}
	return m.opts.Store.Deployment(ctx, id)
}

// rollout is a running deployment.
type rollout struct {
	m       *Manager
	app     App
	version Version
	remove  []string
	ctx     context.Context // ended by Abort or Close
	abort   context.CancelCauseFunc
	done    chan struct{}

	mu sync.Mutex
	d  Deployment
}

// change is what a deployment did to one instance, for rolling it back.
type change struct {
	node string
	from string // "" when the deployment created the instance
}

func (m *Manager) begin(ctx context.Context, typ DeploymentType, a *App, v *Version, nodes, remove []string, s Strategy) (Deployment, error) {
	for _, n := range append(slices.Clone(nodes), remove...) {
		if _, err := m.opts.Store.Node(ctx, n); err != nil {
			return Deployment{}, err
		}
	}
	if dup := firstDup(nodes); dup != "" {
		return Deployment{}, validate.One(ErrInvalid, "nodes", fmt.Sprintf("lists node %s twice", dup))
	}
	if s.Type == "" {
		s.Type = Rolling
	}
	size := s.BatchSize
	if s.Type == AllAtOnce || size <= 0 {
		size = 1
		if s.Type == AllAtOnce {
			size = max(len(nodes), 1)
		}
	}
	id := newDeploymentID()
	if err := m.hold(a.Project, a.Name, "deployment "+id); err != nil {
		return Deployment{}, err
	}
	d := Deployment{
		ID: id, Project: a.Project, App: a.Name, Type: typ, Version: v.Name, Strategy: s,
		Nodes: slices.Clone(nodes), State: DeploymentRunning, Started: time.Now().UTC(),
	}
	for i := 0; i < len(nodes); i += size {
		d.Batches = append(d.Batches, slices.Clone(nodes[i:min(i+size, len(nodes))]))
	}
	if len(remove) > 0 {
		d.Batches = append(d.Batches, slices.Clone(remove))
	}
	if err := m.opts.Store.PutDeployment(ctx, d); err != nil {
		m.release(a.Project, a.Name)
		return Deployment{}, fmt.Errorf("deploy: deployment %s of app %s/%s: %w", id, a.Project, a.Name, err)
	}
	rctx, abort := context.WithCancelCause(m.ctx)
	r := &rollout{m: m, app: *a, version: *v, remove: remove, ctx: rctx, abort: abort, done: make(chan struct{}), d: d}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		abort(nil)
		m.release(a.Project, a.Name)
		return Deployment{}, ErrClosed
	}
	m.rollouts[id] = r
	m.wg.Add(1)
	m.mu.Unlock()
	m.opts.Logger.Info("deploy: deployment started", "deployment", id, "app", a.Project+"/"+a.Name, "type", typ, "version", v.Name, "nodes", nodes, "remove", remove)
	go r.run()
	return d.clone(), nil
}

func firstDup(s []string) string {
	seen := map[string]bool{}
	for _, x := range s {
		if seen[x] {
			return x
		}
		seen[x] = true
	}
	return ""
}

func (d Deployment) clone() Deployment {
	d.Nodes = slices.Clone(d.Nodes)
	d.Steps = slices.Clone(d.Steps)
	b := make([][]string, len(d.Batches))
	for i := range d.Batches {
		b[i] = slices.Clone(d.Batches[i])
	}
	d.Batches = b
	return d
}

func (r *rollout) snapshot() Deployment {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.d.clone()
}

// update changes the record and saves it; a store failure is logged, so
// that a deployment in progress is not left half-done because of it.
func (r *rollout) update(f func(d *Deployment)) {
	r.mu.Lock()
	f(&r.d)
	d := r.d.clone()
	r.mu.Unlock()
	if err := r.m.opts.Store.PutDeployment(context.WithoutCancel(r.ctx), d); err != nil {
		r.m.opts.Logger.Error("deploy: save deployment", "deployment", d.ID, "err", err)
	}
}

func (r *rollout) addStep(s Step) {
	s.Ended = time.Now().UTC()
	r.update(func(d *Deployment) { d.Steps = append(d.Steps, s) })
}

func (r *rollout) run() {
	m := r.m
	defer m.wg.Done()
	defer close(r.done)
	defer r.abort(nil)
	defer func() {
		m.mu.Lock()
		delete(m.rollouts, r.d.ID)
		m.mu.Unlock()
		m.release(r.app.Project, r.app.Name)
	}()
	start := time.Now()
	var changes []change
	var failure error
	for bi, batch := range r.d.Batches {
		if bi > 0 && r.d.Strategy.Pause > 0 {
			t := time.NewTimer(time.Duration(r.d.Strategy.Pause))
			select {
			case <-t.C:
			case <-r.ctx.Done():
				t.Stop()
			}
		}
		if r.ctx.Err() != nil {
			failure = context.Cause(r.ctx)
			break
		}
		// Scale's removals are the last batch.
		removing := len(r.remove) > 0 && bi == len(r.d.Batches)-1
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		for _, node := range batch {
			wg.Go(func() {
				var ch *change
				var err error
				if removing {
					err = r.removeInstance(r.ctx, bi, node)
				} else {
					ch, err = r.replace(r.ctx, bi, node)
				}
				mu.Lock()
				defer mu.Unlock()
				if ch != nil {
					changes = append(changes, *ch)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("node %s: %w", node, err))
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			failure = fmt.Errorf("batch %d of %d: %w", bi+1, len(r.d.Batches), errors.Join(errs...))
			break
		}
	}
	state := DeploymentSucceeded
	msg := ""
	if failure != nil {
		state = DeploymentFailed
		msg = failure.Error()
		r.mu.Lock()
		rollback := r.d.Strategy.Rollback
		r.mu.Unlock()
		if m.ctx.Err() != nil {
			state = DeploymentInterrupted
			msg = "the manager closed while the deployment ran: " + msg
		} else if rollback && len(changes) > 0 {
			if err := r.rollback(changes); err != nil {
				msg += "; rollback failed: " + err.Error()
			} else {
				state = DeploymentRolledBack
			}
		}
	} else if err := r.released(); err != nil {
		state, msg = DeploymentFailed, err.Error()
	}
	r.update(func(d *Deployment) {
		d.State, d.Error, d.Ended = state, msg, time.Now().UTC()
	})
	d := r.snapshot()
	m.metrics.deploymentEnded(&d, time.Since(start))
	m.opts.Logger.Info("deploy: deployment ended", "deployment", d.ID, "app", d.Project+"/"+d.App, "state", state, "error", msg)
}

// replace puts the deployment's version on the app's instance on node,
// creating the instance if there is none.
func (r *rollout) replace(ctx context.Context, batch int, node string) (*change, error) {
	m := r.m
	step := Step{Node: node, Action: "create", To: r.version.Name, Batch: batch, Started: time.Now().UTC()}
	ch, err := func() (*change, error) {
		drv, _, err := m.driver(ctx, node)
		if err != nil {
			return nil, err
		}
		// Install before touching the instance: the old version serves
		// while the artifact travels.
		if err := drv.Install(ctx, m.artifact(&r.app, &r.version)); err != nil {
			return nil, err
		}
		id := InstanceID(r.app.Project, r.app.Name, node)
		inst, err := m.instance(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			inst = Instance{ID: id, Project: r.app.Project, App: r.app.Name, Node: node}
		case err != nil:
			return nil, err
		default:
			step.Action, step.From = "replace", inst.Version
			if inst.Version == r.version.Name && !inst.Stopped {
				if st, err := drv.Status(ctx, id); err == nil && st.State == StateRunning {
					step.Action = "keep"
					return nil, m.waitHealthy(ctx, &r.app.AppConfig, drv, &inst)
				}
			}
			m.drain(ctx, &inst)
			if err := drv.Stop(ctx, id, r.app.StopGrace.Or(10*time.Second)); err != nil {
				return nil, err
			}
		}
		ch := &change{node: node, from: step.From}
		inst.Version = r.version.Name
		return ch, m.startInstance(ctx, &r.app, &inst, drv)
	}()
	step.OK = err == nil
	if err != nil {
		step.Error = err.Error()
	}
	r.addStep(step)
	return ch, err
}

// removeInstance drains and removes the app's instance on node.
func (r *rollout) removeInstance(ctx context.Context, batch int, node string) error {
	m := r.m
	id := InstanceID(r.app.Project, r.app.Name, node)
	step := Step{Node: node, Action: "remove", Batch: batch, Started: time.Now().UTC()}
	err := func() error {
		inst, err := m.instance(ctx, id)
		if err != nil {
			return err
		}
		step.From = inst.Version
		drv, _, err := m.driver(ctx, node)
		if err != nil {
			return err
		}
		m.drain(ctx, &inst)
		if err := drv.Remove(ctx, id, r.app.StopGrace.Or(10*time.Second)); err != nil {
			return err
		}
		return m.opts.Store.DeleteInstance(ctx, id)
	}()
	step.OK = err == nil
	if err != nil {
		step.Error = err.Error()
	}
	r.addStep(step)
	return err
}

// rollback puts back what the deployment changed, all instances at once:
// the version each ran, or no instance where it created one.
func (r *rollout) rollback(changes []change) error {
	m := r.m
	ctx := m.ctx
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, c := range changes {
		wg.Go(func() {
			id := InstanceID(r.app.Project, r.app.Name, c.node)
			step := Step{Node: c.node, Action: "rollback", From: r.version.Name, To: c.from, Batch: -1, Started: time.Now().UTC()}
			err := func() error {
				inst, err := m.instance(ctx, id)
				if err != nil {
					return err
				}
				drv, _, err := m.driver(ctx, c.node)
				if err != nil {
					return err
				}
				m.drain(ctx, &inst)
				if c.from == "" {
					step.Action = "remove"
					if err := drv.Remove(ctx, id, r.app.StopGrace.Or(10*time.Second)); err != nil {
						return err
					}
					return m.opts.Store.DeleteInstance(ctx, id)
				}
				if err := drv.Stop(ctx, id, r.app.StopGrace.Or(10*time.Second)); err != nil {
					return err
				}
				inst.Version = c.from
				return m.startInstance(ctx, &r.app, &inst, drv)
			}()
			step.OK = err == nil
			if err != nil {
				step.Error = err.Error()
				mu.Lock()
				errs = append(errs, fmt.Errorf("node %s: %w", c.node, err))
				mu.Unlock()
			}
			r.addStep(step)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// released records a successful deployment on the app and publishes the
// release event.
func (r *rollout) released() error {
	m := r.m
	ctx := context.WithoutCancel(r.ctx)
	d := r.snapshot()
	if d.Type == TypeScale && len(d.Nodes) == 0 {
		return nil
	}
	a, err := m.opts.Store.App(ctx, d.Project, d.App)
	if err != nil {
		return err
	}
	insts, err := m.opts.Store.Instances(ctx, d.Project, d.App)
	if err != nil {
		return err
	}
	all := true
	for _, i := range insts {
		all = all && i.Version == d.Version
	}
	rel := slices.Clone(a.Released)
	switch {
	case d.Type == TypeRollback && a.Current() != d.Version:
		// The current version was bad: drop it, the previous is current.
		rel = rel[:len(rel)-1]
		if len(rel) == 0 || rel[len(rel)-1] != d.Version {
			rel = append(slices.DeleteFunc(rel, func(s string) bool { return s == d.Version }), d.Version)
		}
	case d.Type == TypeDeploy && all:
		rel = append(slices.DeleteFunc(rel, func(s string) bool { return s == d.Version }), d.Version)
	}
	if !slices.Equal(rel, a.Released) {
		a.Released = rel
		a.Updated = time.Now().UTC()
		if err := m.opts.Store.PutApp(ctx, a); err != nil {
			return fmt.Errorf("deploy: record the release of version %s of app %s/%s: %w", d.Version, d.Project, d.App, err)
		}
	}
	return m.publish(ctx, Event{
		Time: time.Now().UTC(), Project: d.Project, App: d.App, Version: d.Version, Digest: r.version.Digest,
		Nodes: slices.Clone(d.Nodes), Deployment: d.ID, Type: d.Type,
	})
}

// idEncoding writes deployment IDs in lower case, without padding.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newDeploymentID returns a random deployment ID such as "d_k3x9...": a control plane
// shows deployments to several tenants, and a sequence would tell each how many the others
// ran and which IDs to try. Order is by Started, never by ID.
func newDeploymentID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "d_" + idEncoding.EncodeToString(b[:])
}
