package appsync

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/shuanghuo/shuanghuo/internal/jsontime"
	"github.com/shuanghuo/shuanghuo/internal/names"
)

// TaskKind says which changes a sync task (同步任务) applies.
type TaskKind string

// The kinds of sync task.
const (
	// TaskKindVersion: version sync (应用版本同步) applies release changes.
	TaskKindVersion TaskKind = "version"
	// TaskKindConfig: config sync (项目信息同步) applies config changes.
	TaskKindConfig TaskKind = "config"
)

// VersionMode says what version sync does with a released version.
type VersionMode string

// The modes of version sync.
const (
	// ModeCopy copies the version's artifact to the target, and releases
	// nothing.
	ModeCopy VersionMode = "copy"
	// ModeRelease copies the artifact and releases the version on the
	// target, as the source did.
	ModeRelease VersionMode = "release"
)

// Defaults and bounds of a TaskConfig.
const (
	DefaultBatch    = 100
	MaxBatch        = 1000
	DefaultWait     = 30 * time.Second
	MaxWait         = time.Minute
	DefaultRetryMin = 500 * time.Millisecond
	DefaultRetryMax = 30 * time.Second
)

// TaskConfig is the configuration of one sync task: what it applies from
// its source center's feed to the target center. It is what a control plane
// stores; Engine.Start validates it. Its Source and ProjectMap (the
// binding) are given to Start beside it.
type TaskConfig struct {
	// ID names the task in the StateStore, status, metrics and errors:
	// letters, digits, '.', '-', '_', at most 64.
	ID string `json:"id" validate:"required,max=64"`
	// Kind is version or config.
	Kind TaskKind `json:"kind" validate:"required,oneof=version config"`
	// Version is the policy of a version task; only for kind version.
	Version VersionPolicy `json:"version,omitzero"`
	// Config is the policy of a config task; only for kind config.
	Config ConfigPolicy `json:"config,omitzero"`
	// Batch is how many changes a task reads per page of the feed, at most
	// MaxBatch. Default: 100.
	Batch int `json:"batch,omitempty" validate:"min=0,max=1000"`
	// Wait is how long a read of the feed waits for a change when the task
	// has caught up. Default: 30s. From 10ms to 1m (MaxWait).
	Wait Duration `json:"wait,omitempty" validate:"omitempty,duration=10ms:1m"`
	// RetryMin and RetryMax bound the exponential backoff (with jitter)
	// between attempts after an error of the source or the target; the task
	// retries forever. Defaults: 500ms and 30s; RetryMin from 1ms to 1h, RetryMax from
	// 1ms to 24h.
	RetryMin Duration `json:"retry_min,omitempty" validate:"omitempty,duration=1ms:1h"`
	RetryMax Duration `json:"retry_max,omitempty" validate:"omitempty,duration=1ms:24h"`
}

// VersionPolicy is the policy of version sync.
type VersionPolicy struct {
	// Mode is copy (the artifact only) or release (copy and release).
	// Default: release.
	Mode VersionMode `json:"mode,omitempty" validate:"omitempty,oneof=copy release"`
	// Nodes maps source nodes to their counterparts in the target center.
	// A release goes to the counterparts of the source's nodes; source nodes
	// missing from the map are left out, and when none is left the version
	// is released on the target app's current nodes. Empty (default):
	// always release on the target app's current nodes.
	Nodes map[string]string `json:"nodes,omitempty"`
}

// ConfigPolicy is the policy of config sync.
type ConfigPolicy struct {
	// Apps lists the apps whose configuration is synced; changes of other
	// apps are skipped. Default: all apps.
	Apps []string `json:"apps,omitempty"`
	// Exclude lists top-level configuration keys that are never copied nor
	// compared, because each center has its own, such as "balancer". The
	// target keeps its values of these keys.
	Exclude []string `json:"exclude,omitempty"`
	// SourceRanges are the CIDR prefixes of the source center's networks. A
	// configuration value holding an address of these (bare, host:port or in
	// a URL) is center-specific: it is not copied until an operator
	// resolves the conflict it raises.
	SourceRanges []string `json:"source_ranges,omitempty"`
}

// Duration is a time.Duration written in JSON as a Go duration string ("1.5s"); a bare
// number is refused. It is the one Duration of every shuanghuo package (internal/jsontime);
// Or(def) gives the default for zero.
type Duration = jsontime.Duration

// Validate checks the configuration. The error is a *ValidationError listing
// every problem found.
func (c *TaskConfig) Validate() error {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(c)
	if c.ID != "" && !validTaskID(c.ID) {
		v.Add("id", "must hold only letters, digits, '.', '-' and '_'")
	}
	if c.Kind != TaskKindVersion && !c.Version.isZero() {
		v.Add("version", fmt.Sprintf("is the policy of version tasks, and kind is %q", c.Kind))
	}
	if c.Kind != TaskKindConfig && !c.Config.isZero() {
		v.Add("config", fmt.Sprintf("is the policy of config tasks, and kind is %q", c.Kind))
	}
	for src, dst := range c.Version.Nodes {
		if !names.Valid(src) || !names.Valid(dst) {
			v.Add("version.nodes", fmt.Sprintf("%q: %q is not a pair of node names", src, dst))
		}
	}
	for i, a := range c.Config.Apps {
		if !names.Valid(a) {
			v.Add(fmt.Sprintf("config.apps[%d]", i), fmt.Sprintf("%q is not an app name", a))
		}
	}
	for i, k := range c.Config.Exclude {
		if k == "" || len(k) > 256 {
			v.Add(fmt.Sprintf("config.exclude[%d]", i), "must be a key of 1 to 256 bytes")
		}
	}
	for i, r := range c.Config.SourceRanges {
		if _, err := netip.ParsePrefix(r); err != nil {
			v.Add(fmt.Sprintf("config.source_ranges[%d]", i), fmt.Sprintf("must be a CIDR prefix such as 10.1.0.0/16, got %q", r))
		}
	}
	if lo, hi := c.retryMin(), c.retryMax(); c.RetryMin >= 0 && c.RetryMax >= 0 && lo > hi {
		v.Add("retry_min", fmt.Sprintf("must not exceed retry_max: %s > %s", lo, hi))
	}
	return v.Err()
}

func (c *TaskConfig) batch() int {
	if c.Batch == 0 {
		return DefaultBatch
	}
	return c.Batch
}

func (c *TaskConfig) wait() time.Duration     { return c.Wait.Or(DefaultWait) }
func (c *TaskConfig) retryMin() time.Duration { return c.RetryMin.Or(DefaultRetryMin) }
func (c *TaskConfig) retryMax() time.Duration { return c.RetryMax.Or(DefaultRetryMax) }

func (c *TaskConfig) mode() VersionMode {
	if c.Version.Mode == "" {
		return ModeRelease
	}
	return c.Version.Mode
}

func (p *VersionPolicy) isZero() bool { return p.Mode == "" && len(p.Nodes) == 0 }

func (p *ConfigPolicy) isZero() bool {
	return len(p.Apps) == 0 && len(p.Exclude) == 0 && len(p.SourceRanges) == 0
}

// includes reports whether the policy syncs app.
func (p *ConfigPolicy) includes(app string) bool {
	return len(p.Apps) == 0 || slices.Contains(p.Apps, app)
}

func validTaskID(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '.' && r != '-' && r != '_'
	}) < 0
}

// BindingKind says what a Binding binds.
type BindingKind string

// The kinds of binding.
const (
	// BindingProject binds one project of each center.
	BindingProject BindingKind = "project"
	// BindingTeam binds one team (a tenant) of each center, and so every
	// project of the team.
	BindingTeam BindingKind = "team"
)

// Binding (同步关系绑定) relates a project or a team of the source center to
// its counterpart in the target center. Sync tasks of a binding apply only
// changes of the projects it covers: its ProjectMap refuses the others. That
// both sides exist, are not bound already and that the caller has authority
// over both is the control plane's to check.
type Binding struct {
	// ID names the binding.
	ID string `json:"id" validate:"required,max=64"`
	// Kind is project or team.
	Kind BindingKind `json:"kind" validate:"required,oneof=project team"`
	// Source is the id of the project or team in the source center.
	Source string `json:"source" validate:"required"`
	// Target is the id of the project or team in the target center.
	Target string `json:"target" validate:"required"`
}

// Validate checks the binding's fields. The error is a *ValidationError
// listing every problem found.
func (b *Binding) Validate() error {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(b)
	if b.ID != "" && !validTaskID(b.ID) {
		v.Add("id", "must hold only letters, digits, '.', '-' and '_'")
	}
	for path, s := range map[string]string{"source": b.Source, "target": b.Target} {
		if s != "" && !names.Valid(s) {
			v.Add(path, fmt.Sprintf("%q is not a name (lower-case letters, digits, '-', '_', at most 63)", s))
		}
	}
	return v.Err()
}
