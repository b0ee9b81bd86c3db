package dr

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// PlanConfig is a DR plan (容灾计划): the ordered steps that move production
// from the primary center of its DR groups to the other. The same plan runs as
// a switchover or as a drill (see Mode). It is what a control plane stores;
// Manager.Start validates it.
type PlanConfig struct {
	// Name identifies the plan in runs and metrics.
	Name string `json:"name" validate:"required,max=64,printascii"`
	// Groups names the DR groups the plan switches over. They must all sync
	// in the same direction when a run starts. Required when a step acts on
	// groups (precheck, fence, catch-up, promote).
	Groups []string `json:"groups,omitempty" validate:"dive,required"`
	// Steps run in order; a failed step stops the run.
	Steps []StepConfig `json:"steps" validate:"required,min=1,dive"`
}

// StepKind is what a step does. See the constants for each kind's action in
// a switchover, in a drill, and on rollback.
type StepKind string

// The kinds of step. "Primary" and "replica" are the roles of the plan's DR
// groups when the run starts; the target center is the replicas' side.
const (
	// StepPrecheck checks that every group is in sync, its replica answers
	// and its lag is under the step's thresholds. The same in a drill;
	// nothing to roll back.
	StepPrecheck StepKind = "precheck"
	// StepFence fences every primary (Driver.Fence). A primary that does not
	// answer fails the step, unless Force: then it counts as lost. A drill
	// only checks that the primaries answer. Rollback unfences them.
	StepFence StepKind = "fence"
	// StepCatchUp waits until every replica has applied what its fenced
	// primary wrote; a lost primary has nothing more to send. A drill
	// reports the current lag instead. Nothing to roll back.
	StepCatchUp StepKind = "catch-up"
	// StepPromote promotes every replica (Driver.Promote, forced when Force)
	// and records the RPO. A drill compares Sample keys of primary and
	// replica instead (Driver.Compare). Rollback pairs the groups again in
	// their old direction, discarding what the promoted replicas took.
	StepPromote StepKind = "promote"
	// StepSwitchDNS points DNS at the target center (DNSSwitcher). Skipped
	// in a drill. Rollback points it back.
	StepSwitchDNS StepKind = "switch-dns"
	// StepSwitchTraffic points load balancers and gateway upstreams at the
	// target center (TrafficSwitcher). Skipped in a drill. Rollback points
	// them back.
	StepSwitchTraffic StepKind = "switch-traffic"
	// StepStartApps starts the applications in the target center
	// (AppStarter). Skipped in a drill. Rollback stops them.
	StepStartApps StepKind = "start-apps"
	// StepVerify probes URLs until each answers 2xx: the service is back,
	// and the run's RTO ends here. Skipped in a drill. Nothing to roll back.
	StepVerify StepKind = "verify"
)

// StepConfig is one step of a DR plan.
type StepConfig struct {
	// Name identifies the step in the run and in Manager.Confirm; unique in
	// the plan. Default: the kind.
	Name string `json:"name,omitempty" validate:"max=64"`
	// Kind is what the step does.
	Kind StepKind `json:"kind" validate:"required"`
	// Timeout bounds each attempt. Default: 1m. From 1ms to 24h.
	Timeout Duration `json:"timeout,omitempty" validate:"omitempty,duration=1ms:24h"`
	// Retries is how many more attempts a failed step gets. Default: 0.
	Retries int `json:"retries,omitempty" validate:"min=0,max=10"`
	// RetryDelay is the pause between attempts. Default: 1s. From 1ms to 1h.
	RetryDelay Duration `json:"retry_delay,omitempty" validate:"omitempty,duration=1ms:1h"`
	// Confirm makes the run wait before the step until someone confirms it
	// (Manager.Confirm): a manual gate. Default: no gate.
	Confirm bool `json:"confirm,omitempty"`
	// SkipRollback leaves the step's effect in place when the run is rolled
	// back. Default: rolled back.
	SkipRollback bool `json:"skip_rollback,omitempty"`
	// Force, for fence: treat a primary that does not answer as lost and go
	// on; for promote: promote although the replica lacks writes or may lack
	// them. A plan for losing center A sets both. Default: false.
	Force bool `json:"force,omitempty"`
	// MaxLagBytes and MaxLag, for precheck: the most a replica may lag, in
	// bytes and in time. Default: no limit beyond being in sync.
	MaxLagBytes int64    `json:"max_lag_bytes,omitempty" validate:"min=0"`
	MaxLag      Duration `json:"max_lag,omitempty" validate:"omitempty,duration=1ms:24h"`
	// Sample, for promote in a drill: how many keys to compare between
	// primary and replica. Default: 100.
	Sample int `json:"sample,omitempty" validate:"min=0,max=100000"`
	// URLs, for verify: the HTTP(S) URLs to probe, each until it answers 2xx
	// itself (redirects are not followed). Required for verify.
	URLs []string `json:"urls,omitempty" validate:"dive,http_url"`
}

func (s *StepConfig) name() string {
	if s.Name != "" {
		return s.Name
	}
	return string(s.Kind)
}

// Defaults of StepConfig.
const (
	defaultStepTimeout = time.Minute
	defaultRetryDelay  = time.Second
	defaultSample      = 100
)

// Validate checks the plan on its own: struct tags, then the rules across
// fields (unique step names, promote and catch-up after a fence, the
// parameters each kind takes). Manager.Start also checks that the groups
// exist and that the switchers the steps need are configured. The error is a
// *ValidationError listing every problem found.
func (p *PlanConfig) Validate() error {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(p)
	if hasGroupStep(p.Steps) && len(p.Groups) == 0 {
		v.Add("groups", "is required: steps act on DR groups")
	}
	seenGroup := make(map[string]bool)
	for i, g := range p.Groups {
		if seenGroup[g] {
			v.Add(fmt.Sprintf("groups[%d]", i), fmt.Sprintf("DR group %q is listed twice", g))
		}
		seenGroup[g] = true
	}
	names := make(map[string]bool)
	fenced := false
	for i := range p.Steps {
		s := &p.Steps[i]
		path := fmt.Sprintf("steps[%d]", i)
		if names[s.name()] {
			v.Add(path+".name", fmt.Sprintf("step name %q is used twice; name the steps", s.name()))
		}
		names[s.name()] = true
		k := kindOf(s.Kind)
		if k.do == nil {
			if s.Kind != "" { // else "is required"
				v.Add(path+".kind", fmt.Sprintf("must be one of %s, got %q", takers(""), s.Kind))
			}
			continue
		}
		if k.afterFence && !fenced {
			v.Add(path+".kind", fmt.Sprintf("%s must come after a fence step, so that the primary takes no writes meanwhile", s.Kind))
		}
		fenced = fenced || s.Kind == StepFence
		for param, set := range map[string]bool{
			"force": s.Force, "max_lag": s.MaxLagBytes != 0 || s.MaxLag != 0, "sample": s.Sample != 0, "urls": len(s.URLs) > 0,
		} {
			if set && !slices.Contains(k.params, param) {
				v.Add(path+"."+param, fmt.Sprintf("applies to %s steps only", takers(param)))
			}
		}
		if s.Kind == StepVerify && len(s.URLs) == 0 {
			v.Add(path+".urls", "is required for verify")
		}
	}
	return v.Err()
}

func hasGroupStep(steps []StepConfig) bool {
	return slices.ContainsFunc(steps, func(s StepConfig) bool { return kindOf(s.Kind).groups })
}

// takers names the kinds of step that take param, or with "" every kind.
func takers(param string) string {
	var kinds []string
	for _, k := range stepKinds {
		if param == "" || slices.Contains(k.params, param) {
			kinds = append(kinds, string(k.kind))
		}
	}
	if param == "" {
		return strings.Join(kinds, ", ")
	}
	return strings.Join(kinds, " and ")
}

// DNSSwitcher points the internal DNS names of the services at a center.
// The reference server implements it with dnsctl. SwitchDNS must be
// idempotent: a retried step calls it again.
type DNSSwitcher interface {
	SwitchDNS(ctx context.Context, to Side) error
}

// TrafficSwitcher points load balancers and gateway upstreams at a center.
// The reference server implements it with lb and gateway. SwitchTraffic must
// be idempotent.
type TrafficSwitcher interface {
	SwitchTraffic(ctx context.Context, to Side) error
}

// AppStarter starts and stops the applications of a center. The reference
// server implements it with deploy. Both calls must be idempotent.
type AppStarter interface {
	StartApps(ctx context.Context, in Side) error
	StopApps(ctx context.Context, in Side) error
}
