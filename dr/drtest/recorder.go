package drtest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/shuanghuo/shuanghuo/dr"
)

// Recorder implements dr.DNSSwitcher, dr.TrafficSwitcher and dr.AppStarter
// by recording each call as "switch-dns b", "switch-traffic b",
// "start-apps b" or "stop-apps b". It also keeps where DNS points (A at
// first). The zero value is ready to use and safe for concurrent use.
type Recorder struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]error
	dns   dr.Side
}

// Fail makes calls of the named kind ("switch-dns", "switch-traffic",
// "start-apps", "stop-apps") fail with err from now on; nil lets them
// succeed again. Failed calls are recorded too.
func (r *Recorder) Fail(call string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail == nil {
		r.fail = make(map[string]error)
	}
	r.fail[call] = err
}

// Calls returns the calls so far, in order.
func (r *Recorder) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// DNSSide returns the center DNS points at: A until a SwitchDNS succeeds.
func (r *Recorder) DNSSide() dr.Side {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dns == "" {
		return dr.SideA
	}
	return r.dns
}

func (r *Recorder) record(call string, s dr.Side) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call+" "+string(s))
	if err := r.fail[call]; err != nil {
		return fmt.Errorf("drtest: %s %s: %w", call, s, err)
	}
	if call == "switch-dns" {
		r.dns = s
	}
	return nil
}

// SwitchDNS implements dr.DNSSwitcher.
func (r *Recorder) SwitchDNS(_ context.Context, to dr.Side) error { return r.record("switch-dns", to) }

// SwitchTraffic implements dr.TrafficSwitcher.
func (r *Recorder) SwitchTraffic(_ context.Context, to dr.Side) error {
	return r.record("switch-traffic", to)
}

// StartApps implements dr.AppStarter.
func (r *Recorder) StartApps(_ context.Context, in dr.Side) error { return r.record("start-apps", in) }

// StopApps implements dr.AppStarter.
func (r *Recorder) StopApps(_ context.Context, in dr.Side) error { return r.record("stop-apps", in) }

var (
	_ dr.DNSSwitcher     = (*Recorder)(nil)
	_ dr.TrafficSwitcher = (*Recorder)(nil)
	_ dr.AppStarter      = (*Recorder)(nil)
)
