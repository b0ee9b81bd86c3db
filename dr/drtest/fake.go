// Package drtest helps test code that uses package dr, and drivers of dr:
//
//   - Fake is an in-memory DR group (two instances and the link between
//     them) that implements dr.Driver, with faults to inject: lose an
//     instance, cut the link, refuse fencing. Fakes opens one per DR group
//     for a dr.Manager.
//   - Recorder implements dr.DNSSwitcher, dr.TrafficSwitcher and
//     dr.AppStarter by recording the calls, and fails them on demand.
//   - TestDriver is the conformance suite that every driver runs.
package drtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/shuanghuo/shuanghuo/dr"
)

// Errors of the fake instances, in the words of Redis.
var (
	// ErrReadOnly: a write to a replica.
	ErrReadOnly = errors.New("drtest: READONLY replica")
	// ErrFenced: a write to a fenced primary.
	ErrFenced = errors.New("drtest: NOREPLICAS fenced")
)

// Fake is an in-memory DR group that implements dr.Driver: two instances,
// A and B, each a primary until paired, and the link between them. While the
// link is up and both instances run, a replica applies its primary's writes
// as they are made; when the link comes back it catches up. It is safe for
// concurrent use.
type Fake struct {
	mu        sync.Mutex
	inst      map[dr.Side]*fakeInstance
	linkUp    bool
	fenceErr  error
	lastHeard map[dr.Side]time.Time // when a replica last heard from its primary
}

type fakeInstance struct {
	data       map[string]string
	offset     int64
	primary    bool
	fenced     bool
	down       bool
	replicates bool // from the other side
}

// NewFake returns a DR group of two empty, writable primaries with the link
// up.
func NewFake() *Fake {
	return &Fake{
		inst: map[dr.Side]*fakeInstance{
			dr.SideA: {data: map[string]string{}, primary: true},
			dr.SideB: {data: map[string]string{}, primary: true},
		},
		linkUp:    true,
		lastHeard: make(map[dr.Side]time.Time),
	}
}

// Write sets key on side s as a client would: it fails when the instance is
// down (dr.ErrUnreachable), a replica (ErrReadOnly) or fenced (ErrFenced).
func (f *Fake) Write(s dr.Side, key, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.inst[s]
	switch {
	case in.down:
		return fmt.Errorf("drtest: write to %s: %w", s, dr.ErrUnreachable)
	case !in.primary:
		return fmt.Errorf("drtest: write to %s: %w", s, ErrReadOnly)
	case in.fenced:
		return fmt.Errorf("drtest: write to %s: %w", s, ErrFenced)
	}
	in.data[key] = value
	in.offset += int64(len(key) + len(value))
	f.replicateLocked()
	return nil
}

// Read returns key on side s.
func (f *Fake) Read(s dr.Side, key string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.inst[s]
	if in.down {
		return "", false, fmt.Errorf("drtest: read from %s: %w", s, dr.ErrUnreachable)
	}
	v, ok := in.data[key]
	return v, ok, nil
}

// SetDown loses side s (true) or brings it back (false). It comes back as
// it was, like an instance that was paused or cut off.
func (f *Fake) SetDown(s dr.Side, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inst[s].down = down
	f.replicateLocked()
}

// SetLink cuts the link between the instances (false) or restores it.
func (f *Fake) SetLink(up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.linkUp = up
	f.replicateLocked()
}

// FailFence makes Fence fail with err (wrapped with dr.ErrFence) while err
// is not nil, as a primary that answers but refuses would.
func (f *Fake) FailFence(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fenceErr = err
}

// Writable returns the sides that take writes now.
func (f *Fake) Writable() []dr.Side {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dr.Side
	for _, s := range []dr.Side{dr.SideA, dr.SideB} {
		if in := f.inst[s]; !in.down && in.primary && !in.fenced {
			out = append(out, s)
		}
	}
	return out
}

// replicateLocked lets each replica that can reach its primary catch up.
func (f *Fake) replicateLocked() {
	for _, s := range []dr.Side{dr.SideA, dr.SideB} {
		r, p := f.inst[s], f.inst[s.Other()]
		if !r.replicates || r.down || p.down || !f.linkUp {
			continue
		}
		if r.offset != p.offset {
			r.data = maps.Clone(p.data)
			r.offset = p.offset
		}
		f.lastHeard[s] = time.Now()
	}
}

func (f *Fake) reachable(s dr.Side) error {
	if f.inst[s].down {
		return fmt.Errorf("drtest: %s: %w", s, dr.ErrUnreachable)
	}
	return nil
}

// Pair implements dr.Driver.
func (f *Fake) Pair(_ context.Context, d dr.Direction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := errors.Join(f.reachable(d.Primary()), f.reachable(d.Replica())); err != nil {
		return err
	}
	if !f.linkUp {
		return fmt.Errorf("drtest: pair: the link is down: %w", dr.ErrUnreachable)
	}
	r := f.inst[d.Replica()]
	r.primary, r.fenced, r.replicates = false, false, true
	r.offset = -1 // a full sync
	f.inst[d.Primary()].replicates = false
	f.replicateLocked()
	return nil
}

// Status implements dr.Driver.
func (f *Fake) Status(_ context.Context, d dr.Direction) (dr.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusLocked(d), nil
}

func (f *Fake) statusLocked(d dr.Direction) dr.Status {
	now := time.Now()
	st := dr.Status{Direction: d, At: now, Lag: dr.Lag{Bytes: -1, Keys: -1}}
	p, r := f.inst[d.Primary()], f.inst[d.Replica()]
	st.Primary, st.Replica = instStatus(p), instStatus(r)
	if r.down || !r.replicates {
		return st
	}
	st.LinkUp = f.linkUp && !p.down
	st.LastContact = f.lastHeard[d.Replica()]
	if !p.down {
		st.Lag = dr.Lag{Known: true, Bytes: max(0, p.offset-r.offset), Keys: int64(max(0, len(p.data)-len(r.data)))}
	}
	if (!st.Lag.Known || st.Lag.Bytes > 0) && !st.LastContact.IsZero() {
		st.Lag.Time = dr.Duration(now.Sub(st.LastContact))
	}
	return st
}

func instStatus(in *fakeInstance) dr.InstanceStatus {
	if in.down {
		return dr.InstanceStatus{Error: "down"}
	}
	return dr.InstanceStatus{Reachable: true, Primary: in.primary, Fenced: in.primary && in.fenced, Offset: in.offset, Keys: int64(len(in.data))}
}

// Fence implements dr.Driver.
func (f *Fake) Fence(_ context.Context, d dr.Direction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reachable(d.Primary()); err != nil {
		return err
	}
	if f.fenceErr != nil {
		return fmt.Errorf("drtest: fence %s: %w: %w", d.Primary(), f.fenceErr, dr.ErrFence)
	}
	f.inst[d.Primary()].fenced = true
	return nil
}

// Unfence implements dr.Driver.
func (f *Fake) Unfence(_ context.Context, d dr.Direction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reachable(d.Primary()); err != nil {
		return err
	}
	f.inst[d.Primary()].fenced = false
	return nil
}

// Promote implements dr.Driver, with the refusals the interface requires.
func (f *Fake) Promote(_ context.Context, d dr.Direction, opts dr.PromoteOptions) (dr.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.statusLocked(d)
	switch {
	case !st.Replica.Reachable:
		return st, fmt.Errorf("drtest: promote %s: %w", d.Replica(), dr.ErrUnreachable)
	case st.Primary.Writable():
		return st, fmt.Errorf("drtest: promote %s: %w", d.Replica(), dr.ErrNotFenced)
	case st.Primary.Reachable && st.Lag.Bytes > 0 && !opts.Force:
		return st, fmt.Errorf("drtest: promote %s: %w", d.Replica(), dr.ErrLagNotZero)
	case !st.Primary.Reachable && !opts.Force:
		return st, fmt.Errorf("drtest: promote %s: %w", d.Replica(), dr.ErrLagUnknown)
	}
	r := f.inst[d.Replica()]
	r.primary, r.fenced, r.replicates = true, false, false
	return st, nil
}

// Unpair implements dr.Driver.
func (f *Fake) Unpair(_ context.Context, d dr.Direction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reachable(d.Replica()); err != nil {
		return err
	}
	r := f.inst[d.Replica()]
	r.primary, r.fenced, r.replicates = true, true, false
	return nil
}

// Compare implements dr.Driver: it compares the first n keys in order.
func (f *Fake) Compare(_ context.Context, d dr.Direction, n int) (dr.Comparison, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := errors.Join(f.reachable(d.Primary()), f.reachable(d.Replica())); err != nil {
		return dr.Comparison{}, err
	}
	p, r := f.inst[d.Primary()], f.inst[d.Replica()]
	keys := slices.Sorted(maps.Keys(p.data))
	keys = keys[:min(n, len(keys))]
	c := dr.Comparison{Sampled: len(keys)}
	for _, k := range keys {
		v, ok := r.data[k]
		switch {
		case !ok:
			c.Missing++
		case v != p.data[k]:
			c.Different++
		default:
			continue
		}
		if len(c.Examples) < 10 {
			c.Examples = append(c.Examples, k)
		}
	}
	return c, nil
}

// Close implements dr.Driver; it does nothing.
func (f *Fake) Close() error { return nil }

var _ dr.Driver = (*Fake)(nil)

// Fakes opens a Fake for each DR group a dr.Manager adds: pass its Open as
// the dr.DriverFunc of a kind. The zero value is ready to use.
type Fakes struct {
	mu sync.Mutex
	m  map[string]*Fake
}

// Open returns the Fake of the group named in cfg, new on first use.
func (f *Fakes) Open(cfg dr.GroupConfig) (dr.Driver, error) {
	return f.Get(cfg.Name), nil
}

// Get returns the Fake of the named group, new on first use.
func (f *Fakes) Get(name string) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[string]*Fake)
	}
	if f.m[name] == nil {
		f.m[name] = NewFake()
	}
	return f.m[name]
}
