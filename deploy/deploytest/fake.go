package deploytest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/shuanghuo/shuanghuo/deploy"
)

// Driver is an in-memory deploy.NodeDriver: Install reads and verifies the
// artifact, Start records the spec and reports the instance running, unless
// the version is listed in CrashVersions. It runs no process. Set the fault
// fields before use or under Lock.
type Driver struct {
	// Node names the node in errors.
	Node string

	mu sync.Mutex
	// CrashVersions: instances started on these versions report
	// deploy.StateCrashLoop.
	CrashVersions map[string]bool
	// FailInstall makes Install fail with this error.
	FailInstall error
	// Installed holds the digests installed, by "project/app/version".
	Installed map[string]deploy.Digest
	insts     map[string]*deploy.InstanceStatus
	specs     map[string]deploy.InstanceSpec
	nextPort  int
	// Ops lists the calls made, such as "start p.a.n1 v2".
	Ops    []string
	closed bool
}

// NewDriver returns an empty fake driver for node.
func NewDriver(node string) *Driver {
	return &Driver{
		Node: node, CrashVersions: map[string]bool{}, Installed: map[string]deploy.Digest{},
		insts: map[string]*deploy.InstanceStatus{}, specs: map[string]deploy.InstanceSpec{}, nextPort: 20000,
	}
}

// Lock and Unlock guard the fault fields while the driver is in use.
func (d *Driver) Lock()   { d.mu.Lock() }
func (d *Driver) Unlock() { d.mu.Unlock() }

// Install implements deploy.NodeDriver.
func (d *Driver) Install(ctx context.Context, a deploy.Artifact) error {
	d.mu.Lock()
	fail := d.FailInstall
	d.Ops = append(d.Ops, "install "+a.Version)
	d.mu.Unlock()
	if fail != nil {
		return fmt.Errorf("deploy: fake node %s: install %s: %w", d.Node, a.Version, fail)
	}
	rc, err := a.Open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return fmt.Errorf("deploy: fake node %s: install %s: %w", d.Node, a.Version, err)
	}
	if got := deploy.Digest("sha256:" + hex.EncodeToString(h.Sum(nil))); got != a.Digest {
		return fmt.Errorf("deploy: fake node %s: install %s: %w", d.Node, a.Version, deploy.ErrChecksum)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Installed[a.Project+"/"+a.App+"/"+a.Version] = a.Digest
	return nil
}

// Start implements deploy.NodeDriver.
func (d *Driver) Start(_ context.Context, spec deploy.InstanceSpec) (deploy.InstanceStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return deploy.InstanceStatus{}, deploy.ErrClosed
	}
	if d.Installed[spec.Project+"/"+spec.App.Name+"/"+spec.Version] != spec.Digest {
		return deploy.InstanceStatus{}, fmt.Errorf("deploy: fake node %s: start %s: %w: version %s not installed", d.Node, spec.ID, deploy.ErrState, spec.Version)
	}
	d.Ops = append(d.Ops, "start "+spec.ID+" "+spec.Version)
	ports := maps.Clone(spec.Ports)
	for k, v := range ports {
		if v == 0 {
			d.nextPort++
			ports[k] = d.nextPort
		}
	}
	st := &deploy.InstanceStatus{ID: spec.ID, State: deploy.StateRunning, Version: spec.Version, Ports: ports, Started: time.Now(), PID: 1}
	if d.CrashVersions[spec.Version] {
		st.State, st.LastExit, st.Restarts = deploy.StateCrashLoop, "exit status 1", 5
	}
	d.insts[spec.ID] = st
	d.specs[spec.ID] = spec
	return *st, nil
}

// Spec returns the spec the instance was last started with.
func (d *Driver) Spec(id string) (deploy.InstanceSpec, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.specs[id]
	return s, ok
}

// Stop implements deploy.NodeDriver.
func (d *Driver) Stop(_ context.Context, id string, _ time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Ops = append(d.Ops, "stop "+id)
	if st, ok := d.insts[id]; ok {
		st.State, st.PID = deploy.StateStopped, 0
	}
	return nil
}

// Status implements deploy.NodeDriver.
func (d *Driver) Status(_ context.Context, id string) (deploy.InstanceStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.insts[id]
	if !ok {
		return deploy.InstanceStatus{}, fmt.Errorf("deploy: fake node %s: instance %s: %w", d.Node, id, deploy.ErrNotFound)
	}
	out := *st
	out.Ports = maps.Clone(st.Ports)
	return out, nil
}

// Remove implements deploy.NodeDriver.
func (d *Driver) Remove(_ context.Context, id string, _ time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Ops = append(d.Ops, "remove "+id)
	delete(d.insts, id)
	delete(d.specs, id)
	return nil
}

// Close implements deploy.NodeDriver.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

// Drivers hands out one fake Driver per node, for Options.Drivers.
type Drivers struct {
	mu    sync.Mutex
	nodes map[string]*Driver
}

// Open is a deploy.DriverFunc.
func (f *Drivers) Open(_ context.Context, n deploy.NodeConfig) (deploy.NodeDriver, error) {
	return f.Get(n.Name), nil
}

// Get returns the node's driver, creating it.
func (f *Drivers) Get(node string) *Driver {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nodes == nil {
		f.nodes = map[string]*Driver{}
	}
	d, ok := f.nodes[node]
	if !ok {
		d = NewDriver(node)
		f.nodes[node] = d
	}
	return d
}

// Traffic records Drain and Undrain calls, as "drain <id>" and
// "undrain <id>", and which instances are drained.
type Traffic struct {
	mu      sync.Mutex
	ops     []string
	drained map[string]bool
}

// Drain implements deploy.Traffic.
func (t *Traffic) Drain(_ context.Context, inst deploy.Instance) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.drained == nil {
		t.drained = map[string]bool{}
	}
	t.ops = append(t.ops, "drain "+inst.ID)
	t.drained[inst.ID] = true
	return nil
}

// Undrain implements deploy.Traffic.
func (t *Traffic) Undrain(_ context.Context, inst deploy.Instance) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.drained == nil {
		t.drained = map[string]bool{}
	}
	t.ops = append(t.ops, "undrain "+inst.ID)
	delete(t.drained, inst.ID)
	return nil
}

// Ops returns the calls so far.
func (t *Traffic) Ops() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.ops...)
}

// Drained reports whether the instance is drained now.
func (t *Traffic) Drained(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.drained[id]
}

var (
	_ deploy.NodeDriver = (*Driver)(nil)
	_ deploy.Traffic    = (*Traffic)(nil)
)
