package planes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shuanghuo/shuanghuo/dr"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/internal/jsontime"
	"github.com/shuanghuo/shuanghuo/lb"
)

// Balancers runs one lb.Balancer per pushed balancer resource.
type Balancers struct {
	log *slog.Logger
	reg prometheus.Registerer
	st  store.Store
	// centerOf maps a zone (可用区) to its center, for SwitchTraffic.
	centerOf map[string]string

	mu      sync.Mutex
	running map[string]*lb.Balancer
}

// NewBalancers returns an empty balancer plane whose balancers log to log and register
// their metrics with reg (nil: none). zones names each center's zones, for SwitchTraffic; st
// keeps what SwitchTraffic changes.
func NewBalancers(log *slog.Logger, reg prometheus.Registerer, st store.Store, zones map[string][]string) *Balancers {
	centerOf := map[string]string{}
	for center, zs := range zones {
		for _, z := range zs {
			centerOf[z] = center
		}
	}
	return &Balancers{log: log, reg: reg, st: st, centerOf: centerOf, running: map[string]*lb.Balancer{}}
}

// SwitchTraffic implements dr.TrafficSwitcher for the switch-traffic step of DR plans: in
// every running balancer, each server group with servers in center to's zones makes those
// servers working and the other center's standby, so traffic moves to to and the other
// center's servers still stand by. Servers in zones of no center keep their role. The
// balancers as then run are saved, already pushed, so that a restart keeps the switch.
func (p *Balancers) SwitchTraffic(ctx context.Context, to dr.Side) error {
	p.mu.Lock()
	running := maps.Clone(p.running)
	p.mu.Unlock()
	specs := map[string]json.RawMessage{}
	for id, b := range running {
		cfg, ok := b.Config()
		if !ok || !cfg.SwitchRoles(p.centerOf, string(to)) {
			continue
		}
		if _, err := b.Apply(ctx, cfg); err != nil {
			return fmt.Errorf("planes: balancer %s: switch traffic to %s: %w", id, to, err)
		}
		spec, err := json.Marshal(cfg)
		if err != nil {
			return fmt.Errorf("planes: balancer %s: %w", id, err)
		}
		specs[id] = spec
	}
	return keepPushed(ctx, p.st, "balancer", specs, "switch-traffic", map[string]any{"to": to, "by": "dr plan"})
}

// runningBalancer returns the balancer that runs for resource id, if it runs.
func (p *Balancers) runningBalancer(id string) (*lb.Balancer, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.running[id]
	return b, ok
}

// Capability mounts balancers under /api/v1/balancers, with their listeners (and each
// listener's forwarding rules) and server groups (and each group's servers) editable one by
// one, and POST /api/v1/balancers/{id}/rollback, which runs a kept version again.
func (p *Balancers) Capability() api.Capability {
	return api.Capability{
		Kind: "balancer", Path: "balancers", IDPrefix: "lb", Check: checkBalancer, Plane: p, Admit: admitBalancerSpec,
		Secrets: []string{tlsKeys},
		Actions: map[string]api.Action{
			"rollback": {Input: func() any { return &RollbackInput{} }, Do: p.rollback},
		},
		Parts: []api.Part{
			{Name: "listeners", Key: "name", Children: []string{"rules"}},
			{Name: "groups", Key: "name", Children: []string{"servers"}},
		},
	}
}

// tlsKeys is where a balancer's (or a gateway's) spec holds private keys: secrets, sealed at
// rest and hidden in answers like passwords.
const tlsKeys = "listeners[].tls.certificates[].key_pem"

// RollbackInput is the body of POST /api/v1/balancers/{id}/rollback.
type RollbackInput struct {
	// Version is a kept version, as GET /api/v1/balancers/{id}/versions lists them.
	Version uint64 `json:"version" validate:"required"`
}

// RollbackResult answers a rollback.
type RollbackResult struct {
	// Version is the new version that runs the rolled-back config.
	Version      uint64 `json:"version"`
	RolledBackTo uint64 `json:"rolled_back_to"`
}

// rollback applies a kept version of the running balancer again, as a new version. The team's
// grants may have narrowed since that version ran, so it is admitted again first. What then
// runs is returned to be saved as a new, pushed revision: a restart runs the rollback.
func (p *Balancers) rollback(ctx context.Context, targets []store.Resource, input any) (map[string]json.RawMessage, any, error) {
	in, res := input.(*RollbackInput), targets[0]
	b, ok := p.runningBalancer(res.ID)
	if !ok {
		return nil, nil, api.Conflict("the balancer is not pushed yet: it has no versions")
	}
	var cfg *lb.BalancerConfig
	for _, v := range b.Versions() {
		if v.Version == in.Version {
			cfg = v.Config
		}
	}
	if cfg == nil {
		return nil, nil, api.Invalid(map[string]string{"version": fmt.Sprintf("no kept version %d: GET /api/v1/balancers/%s/versions lists them", in.Version, res.ID)})
	}
	if err := p.st.View(ctx, func(tx store.Reader) error { return admitBalancer(ctx, tx, res, *cfg, nil) }); err != nil {
		return nil, nil, err
	}
	version, err := b.Rollback(ctx, in.Version)
	if errors.Is(err, lb.ErrUnknownVersion) {
		// A push between the look-up and the rollback dropped the version.
		return nil, nil, api.Invalid(map[string]string{"version": fmt.Sprintf("version %d is no longer kept", in.Version)})
	}
	if err != nil {
		return nil, nil, listenError(err)
	}
	spec, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("planes: balancer %s: %w", res.ID, err)
	}
	return map[string]json.RawMessage{res.ID: spec}, RollbackResult{Version: version, RolledBackTo: in.Version}, nil
}

func checkBalancer(spec json.RawMessage) (string, error) {
	var cfg lb.BalancerConfig
	if err := decodeStrict(spec, &cfg); err != nil {
		return "", err
	}
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	return cfg.Name, nil
}

// admitBalancerSpec holds a balancer to its team's grants.
func admitBalancerSpec(ctx context.Context, tx store.Reader, _ store.Token, res store.Resource) error {
	var cfg lb.BalancerConfig
	if err := decodeStrict(res.Spec, &cfg); err != nil {
		return err
	}
	return admitBalancer(ctx, tx, res, cfg, nil)
}

// Push implements api.Plane: the first push starts the balancer, later ones Apply to it.
func (p *Balancers) Push(ctx context.Context, r store.Resource) error {
	var cfg lb.BalancerConfig
	if err := decodeStrict(r.Spec, &cfg); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.running[r.ID]
	if !ok {
		var err error
		// Two teams may name their balancers alike: the resource ID keeps their metrics apart.
		var reg prometheus.Registerer
		if p.reg != nil {
			reg = prometheus.WrapRegistererWith(prometheus.Labels{"resource": r.ID}, p.reg)
		}
		b, err = lb.New(lb.Options{Logger: p.log.With("balancer", r.ID), Registerer: reg})
		if err != nil {
			return fmt.Errorf("planes: start balancer %s: %w", r.ID, err)
		}
	}
	if _, err := b.Apply(ctx, cfg); err != nil {
		if !ok {
			_ = b.Close(ctx)
		}
		return listenError(err)
	}
	if !ok {
		p.running[r.ID] = b
		go p.follow(r.ID, b)
	}
	return nil
}

// follow logs the balancer's events (server up and down, configs applied) until it closes.
func (p *Balancers) follow(id string, b *lb.Balancer) {
	for e := range b.Subscribe(context.Background()) {
		p.log.Info("balancer event", "balancer", id, "event", e)
	}
}

// Remove implements api.Plane.
func (p *Balancers) Remove(ctx context.Context, r store.Resource) error {
	p.mu.Lock()
	b, ok := p.running[r.ID]
	delete(p.running, r.ID)
	p.mu.Unlock()
	if !ok {
		return nil
	}
	return b.Close(ctx)
}

// Status implements api.Plane.
func (p *Balancers) Status(_ context.Context, r store.Resource) (any, error) {
	p.mu.Lock()
	b, ok := p.running[r.ID]
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("balancer %s (not pushed yet): %w", r.ID, store.ErrNotFound)
	}
	return b.Status(), nil
}

// Routes serve each balancer's event stream — servers up and down, drained, configs applied
// or rejected — as JSON lines at GET /api/v1/balancers/{id}/events, for a monitor to follow;
// its kept versions; and the drain and undrain of one server. Drain state is the running
// balancer's only: it stays across pushes, not across a restart of the server.
func (p *Balancers) Routes() []api.Route {
	server := "/api/v1/balancers/{id}/groups/{group}/servers/{server}/"
	return []api.Route{
		{Pattern: "GET /api/v1/balancers/{id}/events", Handle: func(c *api.Call) error {
			_, b, err := p.callBalancer(c, "events")
			if err != nil {
				return err
			}
			return api.StreamJSON(c, b.Subscribe(c.R.Context()))
		}},
		{Pattern: "GET /api/v1/balancers/{id}/versions", Handle: func(c *api.Call) error {
			_, b, err := p.callBalancer(c, "versions")
			if err != nil {
				return err
			}
			out, err := json.Marshal(map[string]any{"items": b.Versions()})
			if err != nil {
				return fmt.Errorf("planes: balancer versions: %w", err)
			}
			c.JSON(http.StatusOK, store.Redact(out, []string{"items[].config." + tlsKeys}))
			return nil
		}},
		{Pattern: "POST " + server + "drain", Handle: p.drain},
		{Pattern: "POST " + server + "undrain", Handle: p.undrain},
	}
}

// callBalancer returns the caller's balancer in the path and what runs for it; what has no
// running balancer (not pushed yet) has no events, versions or servers to drain.
func (p *Balancers) callBalancer(c *api.Call, what string) (store.Resource, *lb.Balancer, error) {
	res, err := c.Resource("balancer", c.R.PathValue("id"))
	if err != nil {
		return res, nil, err
	}
	b, ok := p.runningBalancer(res.ID)
	if !ok {
		return res, nil, api.Conflict("the balancer is not pushed yet: it has no " + what)
	}
	return res, b, nil
}

// DrainInput is the optional body of a drain.
type DrainInput struct {
	// Timeout is how long the drain waits for the server's requests in flight to finish
	// before it cuts them. Default 30s. From 0s (cut at once) to 10m.
	Timeout jsontime.Duration `json:"timeout,omitempty" validate:"omitempty,duration=0s:10m"`
}

// DrainResult answers a drain or an undrain.
type DrainResult struct {
	Group  string          `json:"group"`
	Server lb.ServerStatus `json:"server"`
	// Cut, when the drain's timeout passed with requests in flight, says how many it cut;
	// empty when they all finished.
	Cut string `json:"cut,omitempty"`
}

func (p *Balancers) drain(c *api.Call) error {
	var in DrainInput
	if c.R.ContentLength != 0 {
		if err := c.Decode(&in); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(in.Timeout.Or(30 * time.Second))
	// The answer comes after the drain, which may outlast the server's write timeout.
	_ = http.NewResponseController(c.W).SetWriteDeadline(deadline.Add(10 * time.Second))
	return p.serverOp(c, "drain", in, func(ctx context.Context, b *lb.Balancer, group, server string) (string, error) {
		err := b.Drain(ctx, group, server, deadline)
		if errors.Is(err, lb.ErrDrainDeadline) {
			// The server is drained all the same; the caller learns what it cost.
			return err.Error(), nil
		}
		return "", err
	})
}

func (p *Balancers) undrain(c *api.Call) error {
	return p.serverOp(c, "undrain", nil, func(_ context.Context, b *lb.Balancer, group, server string) (string, error) {
		return "", b.Undrain(group, server)
	})
}

// serverOp runs a drain or an undrain on a server of the caller's running balancer, audits
// it, and answers the server's status.
func (p *Balancers) serverOp(c *api.Call, action string, input any, op func(context.Context, *lb.Balancer, string, string) (string, error)) error {
	res, b, err := p.callBalancer(c, "servers")
	if err != nil {
		return err
	}
	group, server := c.R.PathValue("group"), c.R.PathValue("server")
	cut, err := op(c.R.Context(), b, group, server)
	if errors.Is(err, lb.ErrUnknownServer) {
		return fmt.Errorf("server %q of group %q: %w", server, group, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("planes: %s %s/%s of balancer %s: %w", action, group, server, res.ID, err)
	}
	if err := c.Audit(action, "balancer", res.ID, res.TeamID, map[string]any{"group": group, "server": server, "input": input}); err != nil {
		return err
	}
	out := DrainResult{Group: group, Cut: cut}
	for _, g := range b.Status().Groups {
		for _, s := range g.Servers {
			if g.Name == group && s.Name == server {
				out.Server = s
			}
		}
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// Close stops every balancer, letting in-flight requests finish until ctx ends.
func (p *Balancers) Close(ctx context.Context) error {
	p.mu.Lock()
	running := p.running
	p.running = map[string]*lb.Balancer{}
	p.mu.Unlock()
	var errs []error
	for _, b := range running {
		errs = append(errs, b.Close(ctx))
	}
	return errors.Join(errs...)
}
