package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/shuanghuo/shuanghuo/internal/validate"
	"github.com/shuanghuo/shuanghuo/lb"
)

// ServiceConfig is a gateway instance (服务网关) whole: the balancer it runs in (the service
// address, listeners, and the server groups the APIs' upstreams name) and what the gateway
// enforces. Field errors of both are reported side by side, by their own paths
// ("listeners[0].port", "apis[1].upstream.group"): the two configs share no field name.
type ServiceConfig struct {
	Balancer lb.BalancerConfig `json:"balancer"`
	Gateway  Config            `json:"gateway"`
}

// Validate checks both configs and what links them: every API's upstream group is a group of
// the balancer, and a listener speaks HTTP. The error is a *ValidationError listing every
// problem, wrapping ErrInvalidConfig.
func (c ServiceConfig) Validate() error {
	v := &ValidationError{Cause: ErrInvalidConfig}
	for _, err := range []error{c.Balancer.Validate(), c.Gateway.Validate()} {
		var fields *validate.List
		if errors.As(err, &fields) {
			v.Errors = append(v.Errors, fields.Errors...)
		} else if err != nil {
			return err
		}
	}
	for i, a := range c.Gateway.APIs {
		if a.Upstream.Group != "" && !slices.ContainsFunc(c.Balancer.Groups, func(g lb.ServerGroup) bool { return g.Name == a.Upstream.Group }) {
			v.Add(fmt.Sprintf("apis[%d].upstream.group", i), fmt.Sprintf("no server group %q in groups", a.Upstream.Group))
		}
	}
	if len(c.Balancer.Listeners) > 0 && !slices.ContainsFunc(c.Balancer.Listeners, func(l lb.Listener) bool { return l.Protocol != lb.ProtocolTCP }) {
		v.Add("listeners", "a gateway needs an http or https listener")
	}
	return v.Err()
}

// Service runs a gateway in its own balancer, and applies the two configs together: all or
// nothing. Construct it with NewService, give it a ServiceConfig with Apply, stop it with
// Close. Its methods are safe for concurrent use.
type Service struct {
	gw   *Gateway
	opts lb.Options

	mu sync.Mutex // serialises Apply and Close
	b  *lb.Balancer
	// bver is the balancer's version that goes with the gateway's config, for a rollback.
	bver uint64
}

// NewService returns a service that serves nothing until the first Apply. gw configures its
// gateway (New); b its balancer (lb.New), whose Hook is the gateway.
func NewService(gw Options, b lb.Options) (*Service, error) {
	g, err := New(gw)
	if err != nil {
		return nil, err
	}
	b.Hook = g
	return &Service{gw: g, opts: b}, nil
}

// Gateway is the service's gateway: its statistics, a config of its own changed alone (a
// consumer's new secret), RestoreStats before the first Apply.
func (s *Service) Gateway() *Gateway { return s.gw }

// Balancer is the service's balancer, nil before the first Apply succeeded: its status,
// events, drains.
func (s *Service) Balancer() *lb.Balancer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b
}

// Apply validates cfg whole, then applies it: the first time the gateway's config, then the
// balancer, which opens its listeners; later the balancer (so that new groups exist), then the
// gateway, rolling the balancer back if the gateway refuses. A refused config (a
// *ValidationError, or lb.ErrListen) leaves what runs as it was; a refused first Apply leaves
// nothing listening, and Apply may be called again.
func (s *Service) Apply(ctx context.Context, cfg ServiceConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b == nil {
		if _, err := s.gw.Apply(ctx, cfg.Gateway); err != nil {
			return err
		}
		b, err := lb.New(s.opts)
		if err != nil {
			return fmt.Errorf("gateway: start the balancer: %w", err)
		}
		ver, err := b.Apply(ctx, cfg.Balancer)
		if err != nil {
			return errors.Join(err, b.Close(ctx))
		}
		s.b, s.bver = b, ver
		return nil
	}
	ver, err := s.b.Apply(ctx, cfg.Balancer)
	if err != nil {
		return err
	}
	if _, err := s.gw.Apply(ctx, cfg.Gateway); err != nil {
		if _, rerr := s.b.Rollback(ctx, s.bver); rerr != nil {
			return errors.Join(err, fmt.Errorf("gateway: roll the balancer back to version %d: %w", s.bver, rerr))
		}
		return err
	}
	s.bver = ver
	return nil
}

// Close stops the balancer, letting requests in flight finish until ctx ends, then the
// gateway.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.b != nil {
		err = s.b.Close(ctx)
	}
	return errors.Join(err, s.gw.Close(ctx))
}
