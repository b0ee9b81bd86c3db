package planes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shuanghuo/shuanghuo/dr"
	drredis "github.com/shuanghuo/shuanghuo/dr/redis"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// DR runs this center's dr.Manager: DR groups are pushed resources (/api/v1/dr/groups), DR
// plans saved ones (/api/v1/dr/plans) that start switchovers and drills, and runs are
// followed at /api/v1/dr/runs. Transitions and runs are kept in the store.
//
// A DR group's name is its team's: two teams may both have an "orders". The manager knows
// each group by its resource ID instead, which is unique and survives a rename; plans name
// their team's groups, and runs and metrics show the IDs.
type DR struct {
	m      *dr.Manager
	st     store.Store
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	pushed map[string]pushedGroup // resource ID (the manager's name of the group) → the group

	// probes are the grants of each started plan's team (by plan ID) when it started: what
	// its verify steps may reach (see probeClient). Its own lock: a push holds mu while it
	// reaches the group's instances.
	probesMu sync.Mutex
	probes   map[string]Grants
}

// pushedGroup is a DR group in the manager, as its team knows it.
type pushedGroup struct{ team, name string }

// DROptions are what the DR plane needs from the rest of the center.
type DROptions struct {
	Store      store.Store
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// DNS switches names for switch-dns steps; nil rejects plans with such steps.
	DNS dr.DNSSwitcher
	// Traffic moves balancers' traffic for switch-traffic steps; nil rejects such plans.
	Traffic dr.TrafficSwitcher
	// Resolver is this center's DNS server (host:port), which serves the teams' zones: verify
	// steps resolve names through it. "": the host's resolver.
	Resolver string
}

// NewDR starts the manager and its monitor, which reads every group's link and lag each
// second and keeps the last contact with each primary for RPO.
func NewDR(ctx context.Context, o DROptions) (*DR, error) {
	if err := moveTransitions(ctx, o.Store); err != nil {
		return nil, fmt.Errorf("planes: dr: %w", err)
	}
	p := &DR{st: o.Store, done: make(chan struct{}), pushed: map[string]pushedGroup{}, probes: map[string]Grants{}}
	m, err := dr.New(dr.Options{
		Drivers:    drDrivers,
		Store:      drStore{o.Store},
		DNS:        o.DNS,
		Traffic:    o.Traffic,
		HTTPClient: p.probeClient(o.Resolver),
		Registerer: o.Registerer,
		Logger:     o.Logger.With("component", "dr"),
	})
	if err != nil {
		return nil, fmt.Errorf("planes: dr: %w", err)
	}
	monitor, cancel := context.WithCancel(context.Background())
	p.m, p.cancel = m, cancel
	go func() {
		defer close(p.done)
		m.Monitor(monitor)
	}()
	return p, nil
}

// moveTransitions keeps the history of the groups pushed when the manager knew them by
// their names, which were unique in the center then: each moves to the group's resource
// ID, unless two pushed groups have that name (then neither claims it). The history holds
// the group's direction after a switchover, which a restart must not forget.
func moveTransitions(ctx context.Context, st store.Store) error {
	var groups []store.Resource
	err := st.View(ctx, func(tx store.Reader) (err error) {
		groups, err = tx.Resources(ctx, "drgroup", "", "")
		return err
	})
	if err != nil {
		return err
	}
	byName := map[string][]string{}
	for _, g := range groups {
		var cfg dr.GroupConfig
		if g.PushedRevision == 0 || json.Unmarshal(g.PushedSpec, &cfg) != nil || cfg.Name == "" {
			continue
		}
		byName[cfg.Name] = append(byName[cfg.Name], g.ID)
	}
	for name, ids := range byName {
		if len(ids) != 1 {
			continue
		}
		old, err := st.Docs(ctx, transitionDoc, name+"/")
		if err != nil {
			return err
		}
		moved, err := st.Docs(ctx, transitionDoc, ids[0]+"/")
		if err != nil {
			return err
		}
		if len(old) == 0 || len(moved) > 0 {
			continue
		}
		for i, d := range old {
			if err := st.PutDoc(ctx, transitionDoc, transitionKey(ids[0], i+1), d); err != nil {
				return fmt.Errorf("move the transitions of DR group %q to %s: %w", name, ids[0], err)
			}
		}
		for i := range old {
			if err := st.DeleteDoc(ctx, transitionDoc, transitionKey(name, i+1)); err != nil {
				return fmt.Errorf("move the transitions of DR group %q to %s: %w", name, ids[0], err)
			}
		}
	}
	return nil
}

// Close stops the monitor, cancels runs in progress and closes the drivers.
func (p *DR) Close(context.Context) error {
	p.cancel()
	<-p.done
	return p.m.Close()
}

// Groups is the DR group capability: push adds the group to the manager; pair ("run forward
// sync now"), reverse and unpair are actions; status reads the link and the lag.
func (p *DR) Groups() api.Capability {
	empty := func() any { return &struct{}{} }
	return api.Capability{
		Kind: "drgroup", Path: "dr/groups", IDPrefix: "dg", Check: checkGroup, Plane: groupPlane{p},
		// The instances' passwords: sealed at rest, hidden in answers and the audit log.
		Secrets: []string{"a.password", "b.password"},
		Actions: map[string]api.Action{
			"pair":    {Input: empty, Do: p.groupOp((*dr.Manager).Pair)},
			"reverse": {Input: empty, Do: p.groupOp((*dr.Manager).Reverse)},
			"unpair":  {Input: empty, Do: p.groupOp((*dr.Manager).Unpair)},
		},
	}
}

// Plans is the DR plan capability: a plan is saved, not pushed, and started as a switchover
// or a drill on the DR groups of its own team; its verify steps probe only the team's own
// services (admitPlan).
func (p *DR) Plans() api.Capability {
	empty := func() any { return &struct{}{} }
	return api.Capability{
		Kind: "drplan", Path: "dr/plans", IDPrefix: "dp", Check: checkPlan, Admit: admitPlan,
		Actions: map[string]api.Action{
			"switchover": {Input: empty, Do: p.start(dr.ModeSwitchover)},
			"drill":      {Input: empty, Do: p.start(dr.ModeDrill)},
		},
	}
}

// drDrivers are the kinds of DR group this server runs; dr.GroupConfig allows more.
var drDrivers = map[dr.Kind]dr.DriverFunc{dr.KindRedis: drredis.Open}

func checkGroup(spec json.RawMessage) (string, error) {
	var cfg dr.GroupConfig
	if err := decodeStrict(spec, &cfg); err != nil {
		return "", err
	}
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	// Refused at save, as the manager would refuse it at every push.
	if _, ok := drDrivers[cfg.Kind]; !ok {
		kinds := slices.Sorted(maps.Keys(drDrivers))
		return "", api.InvalidSpec{"kind": fmt.Sprintf("no driver for kind %s in this server (it has: %s)", cfg.Kind, joinKinds(kinds))}
	}
	return cfg.Name, nil
}

func joinKinds(kinds []dr.Kind) string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

func checkPlan(spec json.RawMessage) (string, error) {
	var cfg dr.PlanConfig
	if err := decodeStrict(spec, &cfg); err != nil {
		return "", err
	}
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	return cfg.Name, nil
}

// groupPlane adds, replaces and removes DR groups in the manager.
type groupPlane struct{ p *DR }

// Push adds the group to the manager under its resource ID; the store keeps names unique
// in a team.
func (g groupPlane) Push(ctx context.Context, r store.Resource) error {
	var cfg dr.GroupConfig
	if err := decodeStrict(r.Spec, &cfg); err != nil {
		return err
	}
	p := g.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pushed[r.ID]; ok {
		// A new revision replaces the group: refused while a run or sync holds it.
		if err := p.m.RemoveGroup(r.ID); err != nil {
			return api.Conflict(err.Error())
		}
		delete(p.pushed, r.ID)
	}
	name := cfg.Name
	cfg.Name = r.ID
	if err := p.m.AddGroup(ctx, cfg); err != nil {
		return err
	}
	p.pushed[r.ID] = pushedGroup{team: r.TeamID, name: name}
	return nil
}

func (g groupPlane) Remove(_ context.Context, r store.Resource) error {
	p := g.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pushed[r.ID]; !ok {
		return nil
	}
	if err := p.m.RemoveGroup(r.ID); err != nil {
		return api.Conflict(err.Error())
	}
	delete(p.pushed, r.ID)
	return nil
}

// groupStatus is a DR group as the monitor sees it, with its transitions. Its last_contact
// is left out while it is the last status read (the primary answered it): it is shown when
// it differs, after the primary was lost, as what a promotion's RPO counts from.
type groupStatus struct {
	dr.Group
	Transitions []dr.Transition `json:"transitions"`
}

func (g groupPlane) Status(ctx context.Context, r store.Resource) (any, error) {
	if _, ok := g.p.group(r.ID); !ok {
		return nil, fmt.Errorf("DR group %s (not pushed yet): %w", r.ID, store.ErrNotFound)
	}
	return g.p.status(ctx, r.ID)
}

// status is the group's, named as its team knows it.
func (p *DR) status(ctx context.Context, id string) (groupStatus, error) {
	// A fresh read of the link and lag; the group snapshot then carries it.
	if _, err := p.m.Status(ctx, id); err != nil && !errors.Is(err, dr.ErrBusy) {
		return groupStatus{}, err
	}
	grp, err := p.m.Group(id)
	if err != nil {
		return groupStatus{}, err
	}
	ts, err := drStore{p.st}.Transitions(ctx, id)
	if err != nil {
		return groupStatus{}, err
	}
	if g, ok := p.group(id); ok {
		grp.Name = g.name
	}
	if grp.LastContact != nil && grp.Status != nil && grp.LastContact.At.Equal(grp.Status.At) {
		grp.LastContact = nil
	}
	return groupStatus{Group: grp, Transitions: ts}, nil
}

func (p *DR) group(resourceID string) (pushedGroup, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.pushed[resourceID]
	return g, ok
}

// groupOp runs a sync operation on the group a resource defines and returns its status.
func (p *DR) groupOp(op func(*dr.Manager, context.Context, string) error) func(context.Context, []store.Resource, any) (map[string]json.RawMessage, any, error) {
	return func(ctx context.Context, targets []store.Resource, _ any) (map[string]json.RawMessage, any, error) {
		id := targets[0].ID
		if _, ok := p.group(id); !ok {
			return nil, nil, api.Conflict("the DR group is not pushed yet; push it first")
		}
		if err := op(p.m, ctx, id); err != nil {
			return nil, nil, stateError(err)
		}
		st, err := p.status(ctx, id)
		return nil, st, err
	}
}

// stateError makes what the group's or run's state does not allow a 409, and a failure of
// the group's middleware (an instance that does not answer, refuses a fence or does not
// catch up) a 502 with its cause: the drivers' errors name the instance's address, never its
// password.
func stateError(err error) error {
	for _, target := range []error{dr.ErrBusy, dr.ErrState, dr.ErrLagUnknown} {
		if errors.Is(err, target) {
			return api.Conflict(err.Error())
		}
	}
	for _, target := range []error{dr.ErrUnreachable, dr.ErrFence, dr.ErrNotCaughtUp} {
		if errors.Is(err, target) {
			return api.BadGateway(err.Error())
		}
	}
	return err
}

// start runs a plan on its team's DR groups, which the plan names and the manager knows by
// their resource IDs. The manager knows the plan by its resource ID too, so a run leads
// back to the plan, and through it to the team that may see the run.
func (p *DR) start(mode dr.Mode) func(context.Context, []store.Resource, any) (map[string]json.RawMessage, any, error) {
	return func(ctx context.Context, targets []store.Resource, _ any) (map[string]json.RawMessage, any, error) {
		plan := targets[0]
		var cfg dr.PlanConfig
		if err := decodeStrict(plan.Spec, &cfg); err != nil {
			return nil, nil, err
		}
		// Again at each start: the team's grants may have been narrowed since the save.
		var grants Grants
		err := p.st.View(ctx, func(tx store.Reader) (err error) {
			if grants, err = teamGrants(ctx, tx, plan.TeamID); err != nil {
				return err
			}
			return admitVerifyURLs(ctx, tx, plan.TeamID, cfg)
		})
		if err != nil {
			return nil, nil, err
		}
		p.probesMu.Lock()
		p.probes[plan.ID] = grants
		p.probesMu.Unlock()
		for i, name := range cfg.Groups {
			id, ok := p.groupID(plan.TeamID, name)
			if !ok {
				return nil, nil, api.InvalidSpec{fmt.Sprintf("groups[%d]", i): fmt.Sprintf("no pushed DR group %q", name)}
			}
			cfg.Groups[i] = id
		}
		cfg.Name = plan.ID
		run, err := p.m.Start(cfg, mode)
		if err != nil {
			return nil, nil, stateError(err)
		}
		return nil, run, nil
	}
}

// groupID is the resource ID of the team's pushed DR group with the name.
func (p *DR) groupID(team, name string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, g := range p.pushed {
		if g.team == team && g.name == name {
			return id, true
		}
	}
	return "", false
}

// Routes are the runs' endpoints: list, read, follow step by step, confirm a manual gate,
// cancel, roll back.
func (p *DR) Routes() []api.Route {
	return []api.Route{
		{Pattern: "GET /api/v1/dr/runs", Handle: p.listRuns},
		{Pattern: "GET /api/v1/dr/runs/{id}", Handle: func(c *api.Call) error {
			run, err := p.run(c)
			if err != nil {
				return err
			}
			c.JSON(http.StatusOK, run)
			return nil
		}},
		{Pattern: "GET /api/v1/dr/runs/{id}/events", Handle: p.follow},
		{Pattern: "POST /api/v1/dr/runs/{id}/confirm", Handle: p.confirm},
		{Pattern: "POST /api/v1/dr/runs/{id}/cancel", Handle: p.runOp("cancel", func(ctx context.Context, id string) (dr.Run, error) {
			if err := p.m.Cancel(id); err != nil {
				return dr.Run{}, err
			}
			return p.m.Run(ctx, id)
		})},
		{Pattern: "POST /api/v1/dr/runs/{id}/rollback", Handle: p.runOp("rollback", p.m.Rollback)},
	}
}

// run reads a run the caller may see: its plan belongs to the caller's team.
func (p *DR) run(c *api.Call) (dr.Run, error) {
	id := c.R.PathValue("id")
	run, err := p.m.Run(c.R.Context(), id)
	if errors.Is(err, dr.ErrRunNotFound) {
		return run, fmt.Errorf("run %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return run, err
	}
	if _, err := c.Resource("drplan", run.Plan); err != nil {
		return dr.Run{}, fmt.Errorf("run %s: %w", id, store.ErrNotFound)
	}
	return run, nil
}

func (p *DR) listRuns(c *api.Call) error {
	runs, err := p.m.Runs(c.R.Context())
	if err != nil {
		return err
	}
	out := []dr.Run{}
	for _, run := range runs {
		if _, err := c.Resource("drplan", run.Plan); err == nil {
			out = append(out, run)
		}
	}
	c.JSON(http.StatusOK, map[string]any{"items": out})
	return nil
}

// follow streams the run's events as JSON lines, from the first, until the run stops or the
// client goes away.
func (p *DR) follow(c *api.Call) error {
	run, err := p.run(c)
	if err != nil {
		return err
	}
	events, err := p.m.Follow(c.R.Context(), run.ID)
	if err != nil {
		return err
	}
	return api.StreamJSON(c, events)
}

type confirmInput struct {
	Step string `json:"step" validate:"required,max=64"`
}

func (p *DR) confirm(c *api.Call) error {
	run, err := p.run(c)
	if err != nil {
		return err
	}
	var in confirmInput
	if err := c.Decode(&in); err != nil {
		return err
	}
	if err := p.m.Confirm(run.ID, in.Step); err != nil {
		return stateError(err)
	}
	if err := c.Audit("confirm", "drrun", run.ID, c.TeamID(), in); err != nil {
		return err
	}
	run, err = p.m.Run(c.R.Context(), run.ID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, run)
	return nil
}

func (p *DR) runOp(action string, op func(context.Context, string) (dr.Run, error)) func(*api.Call) error {
	return func(c *api.Call) error {
		run, err := p.run(c)
		if err != nil {
			return err
		}
		out, err := op(c.R.Context(), run.ID)
		if err != nil {
			return stateError(err)
		}
		if err := c.Audit(action, "drrun", run.ID, c.TeamID(), map[string]string{"state": string(out.State)}); err != nil {
			return err
		}
		c.JSON(http.StatusOK, out)
		return nil
	}
}

// drStore keeps the manager's transitions and runs as docs of the center's store, so the
// history survives a restart.
type drStore struct{ st store.Store }

const (
	transitionDoc = "dr.transition"
	runDoc        = "dr.run"
)

func (s drStore) AddTransition(ctx context.Context, group string, t dr.Transition) error {
	docs, err := s.st.Docs(ctx, transitionDoc, group+"/")
	if err != nil {
		return err
	}
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return s.st.PutDoc(ctx, transitionDoc, transitionKey(group, len(docs)+1), data)
}

// transitionKey is the doc ID of a group's nth transition, so that they sort in order.
func transitionKey(group string, n int) string { return fmt.Sprintf("%s/%010d", group, n) }

func (s drStore) Transitions(ctx context.Context, group string) ([]dr.Transition, error) {
	docs, err := s.st.Docs(ctx, transitionDoc, group+"/")
	if err != nil {
		return nil, err
	}
	return decodeDocs[dr.Transition](docs)
}

func (s drStore) SaveRun(ctx context.Context, r dr.Run) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.st.PutDoc(ctx, runDoc, r.ID, data)
}

func (s drStore) Run(ctx context.Context, id string) (dr.Run, error) {
	data, err := s.st.Doc(ctx, runDoc, id)
	if errors.Is(err, store.ErrNotFound) {
		return dr.Run{}, fmt.Errorf("run %s: %w", id, dr.ErrRunNotFound)
	}
	if err != nil {
		return dr.Run{}, err
	}
	var r dr.Run
	return r, json.Unmarshal(data, &r)
}

func (s drStore) Runs(ctx context.Context) ([]dr.Run, error) {
	docs, err := s.st.Docs(ctx, runDoc, "")
	if err != nil {
		return nil, err
	}
	runs, err := decodeDocs[dr.Run](docs)
	slices.SortFunc(runs, func(a, b dr.Run) int { return b.Started.Compare(a.Started) })
	return runs, err
}

func decodeDocs[T any](docs []json.RawMessage) ([]T, error) {
	out := make([]T, 0, len(docs))
	for _, d := range docs {
		var v T
		if err := json.Unmarshal(d, &v); err != nil {
			return nil, fmt.Errorf("planes: stored %T: %w", v, err)
		}
		out = append(out, v)
	}
	return out, nil
}

var _ dr.Store = drStore{}
