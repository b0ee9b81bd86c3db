package planes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shuanghuo/shuanghuo/dr"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
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
// listener's forwarding rules) and server groups (and each group's servers) editable one by one.
func (p *Balancers) Capability() api.Capability {
	return api.Capability{
		Kind: "balancer", Path: "balancers", IDPrefix: "lb", Check: checkBalancer, Plane: p, Admit: admitBalancerSpec,
		Parts: []api.Part{
			{Name: "listeners", Key: "name", Children: []string{"rules"}},
			{Name: "groups", Key: "name", Children: []string{"servers"}},
		},
	}
}

func checkBalancer(spec json.RawMessage) (string, error) {
	var cfg lb.BalancerConfig
	if err := decodeStrict(spec, &cfg); err != nil {
		return "", err
	}
	if err := cfg.Validate(); err != nil {
		return "", balancerError(err)
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

// balancerError turns lb's field errors into the API's; a port that cannot be opened (in use,
// say) is reported against the listeners.
func balancerError(err error) error {
	var verr *lb.ValidationError
	switch {
	case errors.As(err, &verr):
		return api.InvalidSpec(verr.Fields())
	case errors.Is(err, lb.ErrListen):
		return api.InvalidSpec{"listeners": err.Error()}
	default:
		return err
	}
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
		return balancerError(err)
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
// or rejected — as JSON lines at GET /api/v1/balancers/{id}/events, for a monitor to follow.
func (p *Balancers) Routes() []api.Route {
	return []api.Route{{Pattern: "GET /api/v1/balancers/{id}/events", Handle: func(c *api.Call) error {
		res, err := c.Resource("balancer", c.R.PathValue("id"))
		if err != nil {
			return err
		}
		p.mu.Lock()
		b, ok := p.running[res.ID]
		p.mu.Unlock()
		if !ok {
			return api.Conflict("the balancer is not pushed yet: it has no events")
		}
		return api.StreamJSON(c, b.Subscribe(c.R.Context()))
	}}}
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
