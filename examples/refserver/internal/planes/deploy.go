package planes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shuanghuo/shuanghuo/deploy"
	"github.com/shuanghuo/shuanghuo/deploy/local"
	"github.com/shuanghuo/shuanghuo/deploy/ssh"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/lb"
)

// Deploy runs this center's deploy.Manager (分布式服务).
//
// Apps and nodes are team-owned resources, saved then pushed:
//
//	/api/v1/deploy/apps    an app of one of the team's projects (project_id is required);
//	                       pushing it puts it in the manager, in the deploy project named by
//	                       the refserver project ID. The spec is a deploy.AppConfig without
//	                       "project", plus optional "balancer" (a balancer resource ID of the
//	                       same team) and "group" (its server group): a rolling upgrade then
//	                       drains each instance from that group (matched by address:port)
//	                       before stopping it, and undrains it once healthy (going on once the
//	                       balancer sends it requests again).
//	/api/v1/deploy/nodes   a node: "local" (processes on this host, in a directory the server
//	                       chooses under NodesDir, run as the node's own user when the server
//	                       runs as root) or "ssh" (a Linux host).
//
// What happens to them is served by Routes: versions (streamed upload, listed, downloaded),
// deployments (start, follow, abort, rollback, scale, history), instances (status, start,
// stop, restart) and the release event feed with a cursor. A team sees the deployments,
// instances and events of its own projects only.
//
// The manager's state lives in a JSON file and its artifacts in a content-addressed directory,
// both under Dir, so both survive a restart; Resume then starts again the instances that
// should run but do not (a local node's processes end with the server).
type Deploy struct {
	m   *deploy.Manager
	st  store.Store
	lb  *Balancers
	dir string
	max int64
	log *slog.Logger
	// The least rate of an upload: minBytes in every rateWindow.
	minBytes   int64
	rateWindow time.Duration

	vars centerVars

	// Local nodes: where, and whether each runs as a user of its own (the server is root).
	nodesDir string
	firstUID int
	isolate  bool
	usersMu  sync.Mutex
	users    map[string]string // local node name → its "uid:gid"

	mu    sync.Mutex
	apps  map[string]deployApp  // deploy project/app → the resource that defines it
	nodes map[string]deployNode // node name → the resource that defines it
}

type deployApp struct {
	id, team        string
	balancer, group string
}

type deployNode struct{ id, team string }

// DeployOptions are what the deploy plane needs from the rest of the center.
type DeployOptions struct {
	Store store.Store
	// Sealer seals the nodes' SSH passwords in the manager's state file; nil leaves them plain.
	Sealer *store.Sealer
	// Dir holds the manager's state (state.json) and the artifacts (artifacts/). It is created.
	Dir string
	// NodesDir holds the local nodes' directories (<name>/), outside the data directory that
	// their apps must not reach; it is created. Default: Dir/nodes.
	NodesDir string
	// FirstUID is the uid and gid of the first local node's apps when the server runs as
	// root; each next node gets the next one, up to FirstUID+999. Default 60100.
	FirstUID int
	// MaxArtifactSize bounds an uploaded artifact. Default: 1 GiB.
	MaxArtifactSize int64
	// UploadMinBytes must arrive in every UploadRateWindow of an upload, or it is cut (408).
	// Default: 64 KiB in 30s.
	UploadMinBytes   int64
	UploadRateWindow time.Duration
	// Balancers backs the traffic hook; nil: deployments drain nothing.
	Balancers  *Balancers
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// secrets is s as deploy's Secrets, nil without one (a nil *Sealer in the interface would not
// be nil).
func secrets(s *store.Sealer) deploy.Secrets {
	if s == nil {
		return nil
	}
	return s
}

// NewDeploy opens the manager on its state under o.Dir. Deployments that were running when
// the server stopped are marked interrupted; they can be rolled back.
func NewDeploy(o DeployOptions) (*Deploy, error) {
	if o.MaxArtifactSize <= 0 {
		o.MaxArtifactSize = 1 << 30
	}
	if o.UploadMinBytes <= 0 || o.UploadRateWindow <= 0 {
		o.UploadMinBytes, o.UploadRateWindow = 64<<10, 30*time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NodesDir == "" {
		o.NodesDir = filepath.Join(o.Dir, "nodes")
	}
	if o.FirstUID == 0 {
		o.FirstUID = 60100
	}
	isolate := geteuid() == 0
	if err := os.MkdirAll(o.NodesDir, 0o711); err != nil {
		return nil, fmt.Errorf("planes: deploy: %w", err)
	}
	if isolate {
		// The nodes' users pass through to their own directories, and list none.
		if err := os.Chmod(o.NodesDir, 0o711); err != nil {
			return nil, fmt.Errorf("planes: deploy: %w", err)
		}
	}
	fs, err := deploy.OpenFileStore(filepath.Join(o.Dir, "state.json"), secrets(o.Sealer))
	if err != nil {
		return nil, fmt.Errorf("planes: deploy: %w", err)
	}
	arts, err := deploy.NewDirStore(filepath.Join(o.Dir, "artifacts"))
	if err != nil {
		return nil, fmt.Errorf("planes: deploy: %w", err)
	}
	p := &Deploy{st: o.Store, lb: o.Balancers, dir: o.Dir, max: o.MaxArtifactSize, log: o.Logger.With("component", "deploy"),
		minBytes: o.UploadMinBytes, rateWindow: o.UploadRateWindow,
		nodesDir: o.NodesDir, firstUID: o.FirstUID, isolate: isolate, users: map[string]string{},
		apps: map[string]deployApp{}, nodes: map[string]deployNode{}}
	if !isolate {
		p.log.Warn("local nodes are for development only: the server does not run as root, so the apps of local nodes run as its own user and can read its data directory (other teams' secrets) and its environment")
	}
	opts := deploy.Options{
		Store: fs, Artifacts: arts, MaxArtifactSize: o.MaxArtifactSize, Registerer: o.Registerer, Logger: p.log,
		Drivers: map[string]deploy.DriverFunc{"local": p.openLocal, "ssh": ssh.Open},
	}
	if o.Balancers != nil {
		opts.Traffic = deployTraffic{p}
	}
	if p.m, err = deploy.New(opts); err != nil {
		return nil, fmt.Errorf("planes: deploy: %w", err)
	}
	return p, nil
}

// geteuid is os.Geteuid, for tests of a server not run as root.
var geteuid = os.Geteuid

// maxLocalNodes is how many uids local nodes take from FirstUID.
const maxLocalNodes = 1000

func (p *Deploy) openLocal(_ context.Context, node deploy.NodeConfig) (deploy.NodeDriver, error) {
	opts := local.Options{Dir: node.Dir, Name: node.Name, Logger: p.log.With("node", node.Name)}
	if !p.isolate {
		return local.New(opts)
	}
	// Held until the driver gave the directory its group: that records the uid as taken.
	p.usersMu.Lock()
	defer p.usersMu.Unlock()
	uid, err := p.nodeUID(node.Dir)
	if err != nil {
		return nil, fmt.Errorf("planes: local node %s: %w", node.Name, err)
	}
	opts.User = fmt.Sprintf("%d:%d", uid, uid)
	d, err := local.New(opts)
	if err != nil {
		return nil, err
	}
	p.users[node.Name] = opts.User
	return d, nil
}

// nodeUID is the uid of a local node's apps: the group of its directory, which the local
// driver sets, or else one past the highest of the other nodes' directories. No state is
// kept besides the directories, so a node keeps its uid across restarts.
func (p *Deploy) nodeUID(dir string) (int, error) {
	taken := func(path string) (int, bool) {
		st, err := os.Lstat(path)
		if err != nil || !st.IsDir() {
			return 0, false
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok || int(sys.Gid) < p.firstUID || int(sys.Gid) >= p.firstUID+maxLocalNodes {
			return 0, false
		}
		return int(sys.Gid), true
	}
	if gid, ok := taken(dir); ok {
		return gid, nil
	}
	ents, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		return 0, err
	}
	next := p.firstUID
	for _, e := range ents {
		if gid, ok := taken(filepath.Join(filepath.Dir(dir), e.Name())); ok && gid >= next {
			next = gid + 1
		}
	}
	if next >= p.firstUID+maxLocalNodes {
		return 0, fmt.Errorf("no uid left for another local node: uids %d to %d are taken (local_nodes.first_uid)", p.firstUID, p.firstUID+maxLocalNodes-1)
	}
	return next, nil
}

// assignUser gives a local node its uid at once, so that its status names it before the
// node runs anything: its directory, made now, gets the uid as its group.
func (p *Deploy) assignUser(name, dir string) error {
	if !p.isolate {
		return nil
	}
	p.usersMu.Lock()
	defer p.usersMu.Unlock()
	uid, err := p.nodeUID(dir)
	if err == nil {
		err = os.MkdirAll(dir, 0o750)
	}
	if err == nil {
		err = os.Lchown(dir, 0, uid)
	}
	if err != nil {
		return fmt.Errorf("planes: local node %s: %w", name, err)
	}
	p.users[name] = fmt.Sprintf("%d:%d", uid, uid)
	return nil
}

// isolation says how a local node's apps are kept from the server, for its status.
func (p *Deploy) isolation(node string) string {
	if !p.isolate {
		return "none: the server does not run as root; the apps run as its user and can read its data directory and environment (for development only)"
	}
	p.usersMu.Lock()
	defer p.usersMu.Unlock()
	return "user " + p.users[node] + ": the apps run as the node's own user, with no access to the server's data directory or environment"
}

// Close interrupts deployments in progress and stops the local nodes' instances.
func (p *Deploy) Close(context.Context) error { return p.m.Close() }

// Resume starts again, in the background of a restart, every instance that should run but
// does not (a local node's processes end with the server). Failures are logged.
func (p *Deploy) Resume(ctx context.Context) {
	insts, err := p.m.Instances(ctx, "", "")
	if err != nil {
		p.log.Error("resume instances", "err", err)
		return
	}
	for _, inst := range insts {
		if inst.Stopped {
			continue
		}
		st, err := p.m.InstanceStatus(ctx, inst.ID)
		if err == nil && st.State != deploy.StateStopped {
			continue
		}
		if err != nil && !errors.Is(err, deploy.ErrNotFound) {
			p.log.Warn("resume instance: status", "instance", inst.ID, "err", err)
			continue
		}
		if err := p.m.StartInstance(ctx, inst.ID); err != nil {
			p.log.Warn("resume instance", "instance", inst.ID, "err", err)
			continue
		}
		p.log.Info("resumed instance", "instance", inst.ID, "version", inst.Version)
	}
}

// Apps is the app capability.
func (p *Deploy) Apps() api.Capability {
	return api.Capability{Kind: "deployapp", Path: "deploy/apps", IDPrefix: "da", Check: checkApp, Plane: appPlane{p}}
}

// Nodes is the node capability, the admin's; an ssh node's password is a secret (sealed at
// rest, hidden in answers).
func (p *Deploy) Nodes() api.Capability {
	return api.Capability{Kind: "deploynode", Path: "deploy/nodes", IDPrefix: "dn", Check: checkNode, Plane: nodePlane{p}, Secrets: []string{"ssh.password"},
		// A node runs uploaded code on a host the server reaches with its own files and
		// keys (a local node: the server's own host), so the platform admin registers nodes
		// for teams, and teams deploy onto theirs.
		AdminOnly: true}
}

// appSpec is an app resource's spec: deploy's app without its project (the resource's
// project_id is it), and where its instances take traffic.
type appSpec struct {
	deploy.AppConfig
	// Balancer is a balancer resource ID of the app's team; with Group, deployments drain
	// and undrain the instances in that server group, matched by address:port.
	Balancer string `json:"balancer,omitempty"`
	Group    string `json:"group,omitempty"`
}

func decodeApp(spec json.RawMessage) (appSpec, error) {
	var s appSpec
	err := decodeStrict(spec, &s)
	return s, err
}

func checkApp(spec json.RawMessage) (string, error) {
	s, err := decodeApp(spec)
	if err != nil {
		return "", err
	}
	inv := api.InvalidSpec{}
	if s.Project != "" {
		inv["project"] = "is the app resource's project_id; leave it out of the spec"
	}
	s.Project = "p"
	if err := mergeFields(inv, s.Validate()); err != nil {
		return "", err
	}
	if (s.Balancer == "") != (s.Group == "") {
		inv["group"] = "balancer and group go together: the server group of the balancer the instances serve in"
	}
	if len(inv) > 0 {
		return "", inv
	}
	return s.Name, nil
}

func checkNode(spec json.RawMessage) (string, error) {
	var cfg deploy.NodeConfig
	if err := decodeStrict(spec, &cfg); err != nil {
		return "", err
	}
	inv := api.InvalidSpec{}
	switch cfg.Driver {
	case "local":
		if cfg.Dir != "" {
			inv["dir"] = "is chosen by the server for a local node (under its data directory); leave it out"
		}
		cfg.Dir = "/"
	case "ssh", "":
	default:
		inv["driver"] = "must be local or ssh"
	}
	if err := mergeFields(inv, cfg.Validate()); err != nil {
		return "", err
	}
	if len(inv) > 0 {
		return "", inv
	}
	return cfg.Name, nil
}

// deployError maps deploy's errors to the API's: 404, 409, field errors. Its validation
// errors are answered as they are: the spec's from a push, the request's from a Route.
func deployError(err error) error {
	var verr *deploy.ValidationError
	switch {
	case err == nil, errors.As(err, &verr):
		return err
	case errors.Is(err, deploy.ErrNotFound):
		return fmt.Errorf("%s: %w", strings.TrimSuffix(err.Error(), ": "+deploy.ErrNotFound.Error()), store.ErrNotFound)
	case errors.Is(err, deploy.ErrExists), errors.Is(err, deploy.ErrBusy), errors.Is(err, deploy.ErrState), errors.Is(err, deploy.ErrClosed):
		return api.Conflict(err.Error())
	case errors.Is(err, deploy.ErrChecksum):
		return api.Invalid(map[string]string{"digest": err.Error()})
	case errors.Is(err, deploy.ErrUnsafePath):
		return api.Invalid(map[string]string{"body": err.Error()})
	case errors.Is(err, deploy.ErrInvalid):
		return api.Invalid(map[string]string{"request": err.Error()})
	}
	return err
}

func appKey(project, app string) string { return project + "/" + app }

// appPlane puts pushed apps in the manager.
type appPlane struct{ p *Deploy }

func (a appPlane) Push(ctx context.Context, r store.Resource) error {
	p := a.p
	spec, err := p.vars.expand(r.Spec)
	if err != nil {
		return err
	}
	s, err := decodeApp(spec)
	if err != nil {
		return err
	}
	if r.ProjectID == "" {
		return api.Invalid(map[string]string{"project_id": "is required for an app: create the app in one of the team's projects"})
	}
	if r.PushedSpec != nil {
		if old, err := decodeApp(r.PushedSpec); err == nil && old.Name != s.Name {
			return api.InvalidSpec{"name": fmt.Sprintf("cannot change once pushed (it is %q); create another app", old.Name)}
		}
	}
	if s.Balancer != "" {
		if err := p.checkBalancer(ctx, r.TeamID, s.Balancer, s.Group); err != nil {
			return err
		}
	}
	cfg := s.AppConfig
	cfg.Project = r.ProjectID
	if _, err := p.m.PutApp(ctx, cfg); err != nil {
		return deployError(err)
	}
	p.mu.Lock()
	p.apps[appKey(cfg.Project, cfg.Name)] = deployApp{id: r.ID, team: r.TeamID, balancer: s.Balancer, group: s.Group}
	p.mu.Unlock()
	return nil
}

// checkBalancer makes sure the balancer is the team's and has the group.
func (p *Deploy) checkBalancer(ctx context.Context, team, id, group string) error {
	var res store.Resource
	err := p.st.View(ctx, func(tx store.Reader) (err error) { res, err = tx.Resource(ctx, "balancer", id); return err })
	if errors.Is(err, store.ErrNotFound) || err == nil && res.TeamID != team {
		return api.InvalidSpec{"balancer": "no such balancer in the app's team"}
	}
	if err != nil {
		return err
	}
	var cfg lb.BalancerConfig
	if err := json.Unmarshal(res.Spec, &cfg); err != nil {
		return fmt.Errorf("planes: balancer %s: %w", id, err)
	}
	if !slices.ContainsFunc(cfg.Groups, func(g lb.ServerGroup) bool { return g.Name == group }) {
		return api.InvalidSpec{"group": fmt.Sprintf("balancer %s has no server group %q", id, group)}
	}
	return nil
}

func (a appPlane) Remove(ctx context.Context, r store.Resource) error {
	s, err := decodeApp(r.PushedSpec)
	if err != nil {
		return nil
	}
	if err := a.p.m.DeleteApp(ctx, r.ProjectID, s.Name); err != nil && !errors.Is(err, deploy.ErrNotFound) {
		return deployError(err)
	}
	a.p.mu.Lock()
	delete(a.p.apps, appKey(r.ProjectID, s.Name))
	a.p.mu.Unlock()
	return nil
}

// appStatus is an app as the manager has it: released versions, versions, instances.
type appStatus struct {
	deploy.App
	Current   string             `json:"current"`
	Previous  string             `json:"previous,omitempty"`
	Versions  []deploy.Version   `json:"versions"`
	Instances []instanceStatus   `json:"instances"`
	Running   *deploy.Deployment `json:"running,omitempty"`
	// Busy says what holds the app, such as the start of an instance after a restart;
	// deployments and instance actions are refused (409) until it ends.
	Busy string `json:"busy,omitempty"`
}

// instanceStatus is an instance as stored, with what its node reports.
type instanceStatus struct {
	deploy.Instance
	Status *deploy.InstanceStatus `json:"status,omitempty"`
	Error  string                 `json:"status_error,omitempty"`
}

func (a appPlane) Status(ctx context.Context, r store.Resource) (any, error) {
	s, err := decodeApp(r.PushedSpec)
	if r.PushedRevision == 0 || err != nil {
		return nil, fmt.Errorf("app %s (not pushed yet): %w", r.ID, store.ErrNotFound)
	}
	return a.p.appStatus(ctx, r.ProjectID, s.Name)
}

func (p *Deploy) appStatus(ctx context.Context, project, name string) (appStatus, error) {
	app, err := p.m.App(ctx, project, name)
	if err != nil {
		return appStatus{}, deployError(err)
	}
	out := appStatus{App: app, Current: app.Current(), Previous: app.Previous(), Versions: []deploy.Version{}, Busy: p.m.Busy(project, name)}
	if out.Versions, err = p.m.Versions(ctx, project, name); err != nil {
		return appStatus{}, err
	}
	if out.Instances, err = p.instances(ctx, project, name, ""); err != nil {
		return appStatus{}, err
	}
	deps, err := p.m.History(ctx, project, name)
	if err != nil {
		return appStatus{}, err
	}
	if n := len(deps); n > 0 && !deps[n-1].Done() {
		d, err := p.m.Deployment(ctx, deps[n-1].ID)
		if err == nil {
			out.Running = &d
		}
	}
	return out, nil
}

// instances lists an app's instances (project and name set) or a node's (node set), each
// with its node's report.
func (p *Deploy) instances(ctx context.Context, project, name, node string) ([]instanceStatus, error) {
	insts, err := p.m.Instances(ctx, project, name)
	if err != nil {
		return nil, err
	}
	out := []instanceStatus{}
	for _, inst := range insts {
		if node != "" && inst.Node != node {
			continue
		}
		is := instanceStatus{Instance: inst}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := p.m.InstanceStatus(sctx, inst.ID)
		cancel()
		if err != nil {
			is.Error = err.Error()
		} else {
			is.Status = &st
		}
		out = append(out, is)
	}
	return out, nil
}

// nodePlane registers pushed nodes in the manager.
type nodePlane struct{ p *Deploy }

func (n nodePlane) Push(ctx context.Context, r store.Resource) error {
	p := n.p
	var cfg deploy.NodeConfig
	if err := decodeStrict(r.Spec, &cfg); err != nil {
		return err
	}
	if r.PushedSpec != nil {
		var old deploy.NodeConfig
		if json.Unmarshal(r.PushedSpec, &old) == nil && old.Name != cfg.Name {
			return api.InvalidSpec{"name": fmt.Sprintf("cannot change once pushed (it is %q); register another node", old.Name)}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if owner, ok := p.nodes[cfg.Name]; ok && owner.id != r.ID {
		return api.InvalidSpec{"name": fmt.Sprintf("node %q is already registered", cfg.Name)}
	}
	if cfg.Driver == "local" {
		cfg.Dir = filepath.Join(p.nodesDir, cfg.Name)
		if err := p.assignUser(cfg.Name, cfg.Dir); err != nil {
			return err
		}
	}
	// Registering a node again opens its driver again; a local driver stops its processes
	// then, so an unchanged node is left alone and a changed one refused while it runs any.
	old, err := p.m.Node(ctx, cfg.Name)
	switch {
	case err == nil && reflect.DeepEqual(old.NodeConfig, cfg):
	case err == nil && cfg.Driver == "local" || err == nil && old.Driver == "local":
		insts, err := p.m.Instances(ctx, "", "")
		if err != nil {
			return err
		}
		for _, i := range insts {
			if i.Node == cfg.Name {
				return api.Conflict(fmt.Sprintf("local node %s runs instance %s: a changed node would stop it; scale its apps off the node first", cfg.Name, i.ID))
			}
		}
		fallthrough
	default:
		if _, err := p.m.PutNode(ctx, cfg); err != nil {
			return deployError(err)
		}
	}
	p.nodes[cfg.Name] = deployNode{id: r.ID, team: r.TeamID}
	return nil
}

func (n nodePlane) Remove(ctx context.Context, r store.Resource) error {
	var cfg deploy.NodeConfig
	if json.Unmarshal(r.PushedSpec, &cfg) != nil {
		return nil
	}
	if err := n.p.m.DeleteNode(ctx, cfg.Name); err != nil && !errors.Is(err, deploy.ErrNotFound) {
		return deployError(err)
	}
	n.p.mu.Lock()
	delete(n.p.nodes, cfg.Name)
	n.p.mu.Unlock()
	return nil
}

// nodeStatus is a node as registered, with the instances on it and, for a local node, how its
// apps are isolated from the server.
type nodeStatus struct {
	deploy.Node
	Isolation string           `json:"isolation,omitempty"`
	Instances []instanceStatus `json:"instances"`
}

func (n nodePlane) Status(ctx context.Context, r store.Resource) (any, error) {
	var cfg deploy.NodeConfig
	if r.PushedRevision == 0 || json.Unmarshal(r.PushedSpec, &cfg) != nil {
		return nil, fmt.Errorf("node %s (not pushed yet): %w", r.ID, store.ErrNotFound)
	}
	node, err := n.p.m.Node(ctx, cfg.Name)
	if err != nil {
		return nil, deployError(err)
	}
	if node.SSH != nil && node.SSH.Password != "" {
		node.SSH.Password = store.Hidden
	}
	insts, err := n.p.instances(ctx, "", "", cfg.Name)
	if err != nil {
		return nil, err
	}
	out := nodeStatus{Node: node, Instances: insts}
	if node.Driver == "local" {
		out.Isolation = n.p.isolation(node.Name)
	}
	return out, nil
}

// deployTraffic drains and undrains instances in the server group their app names.
type deployTraffic struct{ p *Deploy }

// drainGrace bounds how long a drain waits for requests in flight.
const drainGrace = 10 * time.Second

func (t deployTraffic) Drain(ctx context.Context, inst deploy.Instance) error {
	b, group, server, ok := t.p.lbServer(inst)
	if !ok {
		return nil
	}
	return b.Drain(ctx, group, server, time.Now().Add(drainGrace))
}

// undrainWait bounds how long a rollout waits for the balancer to see an undrained instance
// up (its own checks' rise); past it the step fails rather than go on with fewer servers.
const undrainWait = 30 * time.Second

func (t deployTraffic) Undrain(ctx context.Context, inst deploy.Instance) error {
	b, group, server, ok := t.p.lbServer(inst)
	if !ok {
		return nil
	}
	if err := b.Undrain(group, server); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, undrainWait)
	defer cancel()
	return b.WaitUp(ctx, group, server)
}

// lbServer finds the balancer server of an instance: in the server group its app names, the
// server at the instance's address and port. An instance the balancer does not list (or a
// balancer not running) has none.
func (p *Deploy) lbServer(inst deploy.Instance) (*lb.Balancer, string, string, bool) {
	if inst.Addr == "" || p.lb == nil {
		return nil, "", "", false
	}
	p.mu.Lock()
	app, ok := p.apps[appKey(inst.Project, inst.App)]
	p.mu.Unlock()
	if !ok || app.balancer == "" {
		return nil, "", "", false
	}
	b, ok := p.lb.runningBalancer(app.balancer)
	if !ok {
		p.log.Warn("the app's balancer is not running; the instance is not drained", "instance", inst.ID, "balancer", app.balancer)
		return nil, "", "", false
	}
	server, ok := b.ServerAt(app.group, inst.Addr)
	if !ok {
		p.log.Warn("no server of the app's group is at the instance's address; the instance is not drained", "instance", inst.ID, "addr", inst.Addr, "balancer", app.balancer, "group", app.group)
		return nil, "", "", false
	}
	return b, app.group, server, true
}

// Routes are the endpoints beside the app and node resources.
func (p *Deploy) Routes() []api.Route {
	return []api.Route{
		{Pattern: "PUT /api/v1/deploy/apps/{id}/versions/{name}", Handle: p.upload},
		{Pattern: "GET /api/v1/deploy/apps/{id}/versions", Handle: p.listVersions},
		{Pattern: "GET /api/v1/deploy/apps/{id}/versions/{name}", Handle: p.getVersion},
		{Pattern: "GET /api/v1/deploy/apps/{id}/versions/{name}/artifact", Handle: p.download},
		{Pattern: "POST /api/v1/deploy/apps/{id}/deployments", Handle: p.deploy},
		{Pattern: "GET /api/v1/deploy/apps/{id}/deployments", Handle: p.history},
		{Pattern: "POST /api/v1/deploy/apps/{id}/rollback", Handle: p.rollback},
		{Pattern: "POST /api/v1/deploy/apps/{id}/scale", Handle: p.scale},
		{Pattern: "GET /api/v1/deploy/apps/{id}/instances", Handle: p.listInstances},
		{Pattern: "POST /api/v1/deploy/apps/{id}/instances/{node}/start", Handle: p.instanceAction("start", (*deploy.Manager).StartInstance)},
		{Pattern: "POST /api/v1/deploy/apps/{id}/instances/{node}/stop", Handle: p.instanceAction("stop", (*deploy.Manager).StopInstance)},
		{Pattern: "POST /api/v1/deploy/apps/{id}/instances/{node}/restart", Handle: p.instanceAction("restart", (*deploy.Manager).RestartInstance)},
		{Pattern: "GET /api/v1/deploy/deployments", Handle: p.listDeployments},
		{Pattern: "GET /api/v1/deploy/deployments/{id}", Handle: p.getDeployment},
		{Pattern: "GET /api/v1/deploy/deployments/{id}/follow", Handle: p.follow},
		{Pattern: "POST /api/v1/deploy/deployments/{id}/abort", Handle: p.abort},
		{Pattern: "GET /api/v1/deploy/events", Handle: p.events},
	}
}

// pushedApp is an app resource the caller may see, as pushed.
type pushedApp struct {
	res     store.Resource
	project string
	name    string
}

func (p *Deploy) app(c *api.Call) (pushedApp, error) {
	res, err := c.Resource("deployapp", c.R.PathValue("id"))
	if err != nil {
		return pushedApp{}, err
	}
	if res.PushedRevision == 0 {
		return pushedApp{}, api.Conflict("the app is not pushed yet; push it first")
	}
	s, err := decodeApp(res.PushedSpec)
	if err != nil {
		return pushedApp{}, err
	}
	return pushedApp{res: res, project: res.ProjectID, name: s.Name}, nil
}

// tooLarge answers 413 in the API's envelope.
func (p *Deploy) tooLarge(c *api.Call) error {
	c.W.Header().Set("Connection", "close")
	c.JSON(http.StatusRequestEntityTooLarge, map[string]any{"error": map[string]any{
		"code": "body_too_large", "message": fmt.Sprintf("the artifact is larger than %d bytes", p.max),
		"request_id": c.W.Header().Get("X-Request-Id")}})
	return nil
}

// uploadDeadline is how long an upload may take.
const uploadDeadline = time.Hour

// uploadBody is an upload's body: it counts what arrived, for the least rate, and keeps the
// first read error, which is the client's doing (it went away, or cut the body short).
type uploadBody struct {
	r       io.Reader
	n       atomic.Int64
	read    atomic.Bool // the whole body arrived
	tooSlow atomic.Bool
	mu      sync.Mutex
	err     error
}

func (b *uploadBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	if errors.Is(err, io.EOF) {
		b.read.Store(true)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *uploadBody) readErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// watch calls cut, once, when fewer than least bytes arrived in a window before the whole
// body did; stop ends the watch and returns once it has ended.
func (b *uploadBody) watch(least int64, window time.Duration, cut func()) (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(window)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			n := b.n.Load()
			if b.read.Load() {
				return
			}
			if n-last < least {
				b.tooSlow.Store(true)
				cut()
				return
			}
			last = n
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}

// upload stores the request's body, streamed, as a new version of the app. The sha256 the
// uploader expects is required, in the X-Checksum-Sha256 header or the digest parameter; the
// body is hashed on its way to the artifact store and refused, with nothing kept, when it
// does not match or is too large. The API's JSON body limit does not apply.
func (p *Deploy) upload(c *api.Call) error {
	a, err := p.app(c)
	if err != nil {
		return err
	}
	q := c.R.URL.Query()
	cfg := deploy.VersionConfig{Name: c.R.PathValue("name"), Notes: q.Get("notes"), Digest: c.R.Header.Get("X-Checksum-Sha256")}
	if cfg.Digest == "" {
		cfg.Digest = q.Get("digest")
	}
	fields := map[string]string{}
	if cfg.Digest == "" {
		fields["digest"] = "is required: the artifact's sha256 (sha256:<64 hex digits>), in the X-Checksum-Sha256 header or the digest parameter"
	}
	if err := mergeFields(fields, cfg.Validate()); err != nil {
		return err
	}
	if len(fields) > 0 {
		return api.Invalid(fields)
	}
	if c.R.ContentLength > p.max {
		return p.tooLarge(c)
	}
	// The server's read timeout is for JSON requests; an artifact may take longer, as long
	// as it arrives at the least rate: a read deadline of now ends the read waiting for more.
	rc := http.NewResponseController(c.W)
	_ = rc.SetReadDeadline(time.Now().Add(uploadDeadline))
	body := &uploadBody{r: c.R.Body}
	stop := body.watch(p.minBytes, p.rateWindow, func() { _ = rc.SetReadDeadline(time.Now()) })
	v, err := p.m.AddVersion(c.R.Context(), a.project, a.name, cfg, body)
	stop()
	switch {
	case errors.Is(err, deploy.ErrTooLarge):
		return p.tooLarge(c)
	case err != nil && body.tooSlow.Load():
		p.log.Info("upload too slow; cut", "app", a.name, "version", cfg.Name, "received", body.n.Load(), "least_bytes", p.minBytes, "window", p.rateWindow)
		c.W.Header().Set("Connection", "close")
		return api.RequestTimeout(fmt.Sprintf("the upload sent fewer than %d bytes in %v; it was cut and nothing was kept", p.minBytes, p.rateWindow))
	case err != nil && (body.readErr() != nil || c.R.Context().Err() != nil):
		// The client went away or cut its body short: nothing is wrong with the server.
		p.log.Info("upload cut short by the client", "app", a.name, "version", cfg.Name, "received", body.n.Load(), "err", err)
		return api.Invalid(map[string]string{"body": "the upload was cut short; nothing was kept"})
	case err != nil:
		return deployError(err)
	}
	if err := c.Audit("upload", "deployapp", a.res.ID, a.res.TeamID, v); err != nil {
		return err
	}
	c.JSON(http.StatusCreated, v)
	return nil
}

func (p *Deploy) listVersions(c *api.Call) error {
	a, err := p.app(c)
	if err != nil {
		return err
	}
	vs, err := p.m.Versions(c.R.Context(), a.project, a.name)
	if err != nil {
		return deployError(err)
	}
	if vs == nil {
		vs = []deploy.Version{}
	}
	c.JSON(http.StatusOK, map[string]any{"items": vs})
	return nil
}

func (p *Deploy) getVersion(c *api.Call) error {
	a, err := p.app(c)
	if err != nil {
		return err
	}
	v, err := p.m.Version(c.R.Context(), a.project, a.name, c.R.PathValue("name"))
	if err != nil {
		return deployError(err)
	}
	c.JSON(http.StatusOK, v)
	return nil
}

// download streams a version's artifact, verified as it is read, for the other center.
func (p *Deploy) download(c *api.Call) error {
	a, err := p.app(c)
	if err != nil {
		return err
	}
	rc, v, err := p.m.OpenArtifact(c.R.Context(), a.project, a.name, c.R.PathValue("name"))
	if err != nil {
		return deployError(err)
	}
	defer rc.Close()
	_ = http.NewResponseController(c.W).SetWriteDeadline(time.Now().Add(uploadDeadline))
	h := c.W.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(v.Size, 10))
	h.Set("X-Checksum-Sha256", string(v.Digest))
	c.W.WriteHeader(http.StatusOK)
	// A mismatch shows at the end of the copy; the client sees a body that does not match
	// the header, so it is cut short instead.
	if _, err := io.Copy(c.W, rc); err != nil {
		p.log.Error("artifact download failed", "app", a.name, "version", v.Name, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

type deployInput struct {
	// Version to deploy.
	Version string `json:"version" validate:"required,max=64"`
	// Nodes to run it on; default: the nodes of the app's instances (an upgrade).
	Nodes    []string        `json:"nodes" validate:"max=1000"`
	Strategy deploy.Strategy `json:"strategy"`
}

type strategyInput struct {
	Strategy deploy.Strategy `json:"strategy"`
}

type scaleInput struct {
	Nodes    []string        `json:"nodes" validate:"max=1000"`
	Strategy deploy.Strategy `json:"strategy"`
}

// decodeOptional decodes a body that may be left out.
func decodeOptional(c *api.Call, v any) error {
	if c.R.ContentLength == 0 {
		return nil
	}
	return c.Decode(v)
}

// checkNodes makes sure the app's team owns every node named.
func (p *Deploy) checkNodes(team string, nodes []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	fields := map[string]string{}
	for i, n := range nodes {
		if owner, ok := p.nodes[n]; !ok || owner.team != team {
			fields[fmt.Sprintf("nodes[%d]", i)] = fmt.Sprintf("no pushed node %q in the app's team", n)
		}
	}
	if len(fields) > 0 {
		return api.Invalid(fields)
	}
	return nil
}

func (p *Deploy) started(c *api.Call, a pushedApp, action string, d deploy.Deployment, err error) error {
	if err != nil {
		return deployError(err)
	}
	if err := c.Audit(action, "deployapp", a.res.ID, a.res.TeamID, map[string]any{
		"deployment": d.ID, "type": d.Type, "version": d.Version, "nodes": d.Nodes, "strategy": d.Strategy}); err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, d)
	return nil
}

// deploy starts a deployment of a version; it answers 202 with the deployment's record at
// once: follow it at /api/v1/deploy/deployments/{id}/follow.
func (p *Deploy) deploy(c *api.Call) error {
	a, err := p.app(c)
	if err != nil {
		return err
	}
	var in deployInput
	if err := c.Decode(&in); err != nil {
		return err
	}
	if err := p.checkNodes(a.res.TeamID, in.Nodes); err != nil {
		return err
	}
	d, err := p.m.Deploy(context.WithoutCancel(c.R.Context()), deploy.DeployRequest{
		Project: a.project, App: a.name, Version: in.Version, Nodes: in.Nodes, Strategy: in.Strategy})
	if errors.Is(err, deploy.ErrNotFound) {
		if _, verr := p.m.Version(c.R.Context(), a.project, a.name, in.Version); errors.Is(verr, deploy.ErrNotFound) {
			return api.Invalid(map[string]string{"version": fmt.Sprintf("app %s has no version %q", a.name, in.Version)})
		}
	}
	return p.started(c, a, "deploy", d, err)
}

func (p *Deploy) rollback(c *api.Call) error {
	a, err := p.app(c)
	if err != nil {
		return err
	}
	var in strategyInput
	if err := decodeOptional(c, &in); err != nil {
		return err
	}
	d, err := p.m.Rollback(context.WithoutCancel(c.R.Context()), a.project, a.name, in.Strategy)
	return p.started(c, a, "rollback", d, err)
}

func (p *Deploy) scale(c *api.Call) error {
	a, err := p.app(c)
	if err != nil {
		return err
	}
	var in scaleInput
	if err := c.Decode(&in); err != nil {
		return err
	}
	if err := p.checkNodes(a.res.TeamID, in.Nodes); err != nil {
		return err
	}
	d, err := p.m.Scale(context.WithoutCancel(c.R.Context()), a.project, a.name, in.Nodes, in.Strategy)
	return p.started(c, a, "scale", d, err)
}

func (p *Deploy) history(c *api.Call) error {
	a, err := p.app(c)
	if err != nil {
		return err
	}
	deps, err := p.m.History(c.R.Context(), a.project, a.name)
	if err != nil {
		return err
	}
	if deps == nil {
		deps = []deploy.Deployment{}
	}
	c.JSON(http.StatusOK, map[string]any{"items": deps})
	return nil
}

func (p *Deploy) listInstances(c *api.Call) error {
	a, err := p.app(c)
	if err != nil {
		return err
	}
	out, err := p.instances(c.R.Context(), a.project, a.name, "")
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, map[string]any{"items": out})
	return nil
}

// instanceAction starts, stops or restarts the app's instance on a node and answers its
// status.
func (p *Deploy) instanceAction(action string, op func(*deploy.Manager, context.Context, string) error) func(*api.Call) error {
	return func(c *api.Call) error {
		a, err := p.app(c)
		if err != nil {
			return err
		}
		node := c.R.PathValue("node")
		id := deploy.InstanceID(a.project, a.name, node)
		if err := op(p.m, c.R.Context(), id); err != nil {
			return deployError(err)
		}
		if err := c.Audit(action, "deployapp", a.res.ID, a.res.TeamID, map[string]string{"instance": id, "node": node}); err != nil {
			return err
		}
		out, err := p.instances(c.R.Context(), a.project, a.name, node)
		if err != nil {
			return err
		}
		if len(out) == 0 {
			return fmt.Errorf("instance %s: %w", id, store.ErrNotFound)
		}
		c.JSON(http.StatusOK, out[0])
		return nil
	}
}

// projectTeams resolves deploy projects (refserver project IDs) to their teams, once each.
type projectTeams struct {
	p     *Deploy
	c     *api.Call
	teams map[string]string
}

func (p *Deploy) projectTeams(c *api.Call) *projectTeams {
	return &projectTeams{p: p, c: c, teams: map[string]string{}}
}

// sees reports whether the caller may see what happens in the project.
func (pt *projectTeams) sees(project string) bool {
	if pt.c.TeamID() == "" {
		return true
	}
	team, ok := pt.teams[project]
	if !ok {
		ctx := pt.c.R.Context()
		_ = pt.p.st.View(ctx, func(tx store.Reader) error {
			pr, err := tx.Project(ctx, project)
			team = pr.TeamID
			return err
		})
		pt.teams[project] = team
	}
	return team != "" && pt.c.Sees(team)
}

func (p *Deploy) listDeployments(c *api.Call) error {
	deps, err := p.m.History(c.R.Context(), "", "")
	if err != nil {
		return err
	}
	pt := p.projectTeams(c)
	out := []deploy.Deployment{}
	for _, d := range deps {
		if pt.sees(d.Project) {
			out = append(out, d)
		}
	}
	c.JSON(http.StatusOK, map[string]any{"items": out})
	return nil
}

// deployment reads a deployment of the caller's projects.
func (p *Deploy) deployment(c *api.Call) (deploy.Deployment, error) {
	id := c.R.PathValue("id")
	d, err := p.m.Deployment(c.R.Context(), id)
	if err == nil && !p.projectTeams(c).sees(d.Project) {
		err = deploy.ErrNotFound
	}
	if errors.Is(err, deploy.ErrNotFound) {
		return d, fmt.Errorf("deployment %s: %w", id, store.ErrNotFound)
	}
	return d, err
}

func (p *Deploy) getDeployment(c *api.Call) error {
	d, err := p.deployment(c)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, d)
	return nil
}

// followInterval is how often follow looks at a running deployment.
const followInterval = 100 * time.Millisecond

// follow streams the deployment as JSON lines: its record now, then each time it changes
// (a step ends, its state changes), until it has ended.
func (p *Deploy) follow(c *api.Call) error {
	d, err := p.deployment(c)
	if err != nil {
		return err
	}
	ctx := c.R.Context()
	ch := make(chan deploy.Deployment)
	go func() {
		defer close(ch)
		last := ""
		t := time.NewTicker(followInterval)
		defer t.Stop()
		for {
			b, _ := json.Marshal(d)
			if string(b) != last {
				last = string(b)
				select {
				case ch <- d:
				case <-ctx.Done():
					return
				}
			}
			if d.Done() {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			next, err := p.m.Deployment(ctx, d.ID)
			if err != nil {
				return
			}
			d = next
		}
	}()
	return api.StreamJSON(c, ch)
}

type abortInput struct {
	// Rollback puts back what the deployment changed.
	Rollback bool `json:"rollback"`
}

func (p *Deploy) abort(c *api.Call) error {
	d, err := p.deployment(c)
	if err != nil {
		return err
	}
	var in abortInput
	if err := decodeOptional(c, &in); err != nil {
		return err
	}
	if err := p.m.Abort(c.R.Context(), d.ID, in.Rollback); err != nil {
		return deployError(err)
	}
	p.mu.Lock()
	app := p.apps[appKey(d.Project, d.App)]
	p.mu.Unlock()
	if err := c.Audit("abort", "deployapp", app.id, app.team, map[string]any{"deployment": d.ID, "rollback": in.Rollback}); err != nil {
		return err
	}
	if d, err = p.m.Deployment(c.R.Context(), d.ID); err != nil {
		return err
	}
	c.JSON(http.StatusOK, d)
	return nil
}

// eventPage is a page of the release feed: the events the caller may see after the cursor,
// and the cursor to read on from (past events of other teams too).
type eventPage struct {
	Items []deploy.Event `json:"items"`
	Next  int64          `json:"next"`
}

// Event feed limits.
const (
	eventsDefault = 100
	eventsMax     = 1000
	maxEventWait  = 60 * time.Second
)

// events reads the release feed from a cursor: ?after=N (default 0) &limit=M (default 100)
// &wait=30s to wait for an event when none follows the cursor.
func (p *Deploy) events(c *api.Call) error {
	q := c.R.URL.Query()
	fields := map[string]string{}
	var after int64
	limit := eventsDefault
	var wait time.Duration
	var err error
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseInt(s, 10, 64); err != nil || after < 0 {
			fields["after"] = "must be a sequence number, 0 or more"
		}
	}
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > eventsMax {
			fields["limit"] = fmt.Sprintf("must be 1 to %d", eventsMax)
		}
	}
	if s := q.Get("wait"); s != "" {
		if wait, err = time.ParseDuration(s); err != nil || wait < 0 || wait > maxEventWait {
			fields["wait"] = fmt.Sprintf("must be a duration such as 30s, at most %v", maxEventWait)
		}
	}
	if len(fields) > 0 {
		return api.Invalid(fields)
	}
	pt := p.projectTeams(c)
	page := eventPage{Items: []deploy.Event{}, Next: after}
	ctx := c.R.Context()
	var cancel context.CancelFunc = func() {}
	if wait > 0 {
		ctx, cancel = context.WithTimeout(ctx, wait)
	}
	defer cancel()
	for {
		var evs []deploy.Event
		if wait > 0 {
			evs, err = p.m.WaitEvents(ctx, page.Next, limit)
			if errors.Is(err, context.DeadlineExceeded) && c.R.Context().Err() == nil {
				break
			}
		} else {
			evs, err = p.m.Events(ctx, page.Next, limit)
		}
		if err != nil {
			return err
		}
		for _, e := range evs {
			page.Next = e.Seq
			if pt.sees(e.Project) {
				page.Items = append(page.Items, e)
			}
		}
		// Without waiting, one read is the answer; waiting, read on past other teams' events.
		if wait == 0 || len(page.Items) > 0 || len(evs) == 0 {
			break
		}
	}
	c.JSON(http.StatusOK, page)
	return nil
}
