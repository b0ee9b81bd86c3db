package dr

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// runner executes one run, or the rollback of one, in its own goroutine.
type runner struct {
	m      *Manager
	groups []*group // in plan order
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	rec     Run
	changed chan struct{}   // closed and replaced at every change
	gate    chan struct{}   // non-nil while a step waits at its gate
	lost    map[string]bool // groups whose primary was counted as lost
}

// Start validates plan against the manager (its groups exist and do not
// take part in another run, they sync in one direction, the switchers its
// steps need are configured) and starts running it in mode, in the
// background: the run ends with its last step, a failure, Cancel or Close,
// not with the request that started it. It returns the run as it starts;
// Follow, Run and Wait tell how it goes.
func (m *Manager) Start(plan PlanConfig, mode Mode) (Run, error) {
	if mode != ModeSwitchover && mode != ModeDrill {
		return Run{}, fmt.Errorf("%w: mode %q; want %s or %s", ErrInvalid, mode, ModeSwitchover, ModeDrill)
	}
	plan = plan.clone() // the caller may change its copy while the plan runs
	if err := plan.Validate(); err != nil {
		return Run{}, err
	}
	v := &ValidationError{Cause: ErrInvalid}
	for i, s := range plan.Steps {
		if needs := kindOf(s.Kind).needs; needs != nil {
			if missing := needs(&m.opts); missing != "" {
				v.Add(fmt.Sprintf("steps[%d].kind", i), fmt.Sprintf("%s needs %s, and the manager has none", s.Kind, missing))
			}
		}
	}
	groups := make([]*group, 0, len(plan.Groups))
	for i, name := range plan.Groups {
		g, err := m.group(name)
		if errors.Is(err, ErrGroupNotFound) {
			v.Add(fmt.Sprintf("groups[%d]", i), fmt.Sprintf("no DR group named %q", name))
			continue
		}
		if err != nil {
			return Run{}, err
		}
		groups = append(groups, g)
	}
	if err := v.Err(); err != nil {
		return Run{}, err
	}

	id := newID()
	var dir Direction
	err := acquireAll(groups, id, func(g *group, s State, d Direction) error {
		if s != StateInSync && s != StateSyncing && s != StateReverseSyncing {
			return stateError(g.cfg.Name, string(mode)+" of", s)
		}
		if g != groups[0] && d != dir {
			return fmt.Errorf("dr: DR groups %q (%s) and %q (%s) sync in different directions: %w",
				groups[0].cfg.Name, dir, g.cfg.Name, d, ErrState)
		}
		dir = d
		return nil
	})
	if err != nil {
		return Run{}, fmt.Errorf("dr: start %s of plan %q: %w", mode, plan.Name, err)
	}
	if len(groups) == 0 {
		dir = Forward
	}
	r := m.newRunner(groups, Run{
		ID:        id,
		Plan:      plan.Name,
		Mode:      mode,
		Config:    plan,
		Direction: dir,
		Target:    dir.Replica(),
		State:     RunRunning,
		Started:   time.Now(),
		Steps:     make([]StepRun, len(plan.Steps)),
	})
	for i, s := range plan.Steps {
		r.rec.Steps[i] = StepRun{Name: s.name(), Kind: s.Kind, State: StepPending}
	}
	// The first event is in place before the run starts, so it comes first;
	// the run's first change stores the record.
	r.eventLocked("", string(RunRunning), fmt.Sprintf("%s of plan %q started: %s → %s", mode, plan.Name, dir.Primary(), dir.Replica()))
	snapshot := r.rec.clone()
	if err := m.launch(r, r.execute); err != nil {
		releaseAll(groups)
		return Run{}, err
	}
	return snapshot, nil
}

// acquireAll holds every group for holder, after check approves its state
// and direction. It holds none when it fails.
func acquireAll(groups []*group, holder string, check func(*group, State, Direction) error) error {
	for i, g := range groups {
		s, d, err := g.acquire(holder)
		if err == nil {
			if err = check(g, s, d); err != nil {
				g.release()
			}
		}
		if err != nil {
			releaseAll(groups[:i])
			return err
		}
	}
	return nil
}

func releaseAll(groups []*group) {
	for _, g := range groups {
		g.release()
	}
}

func (m *Manager) newRunner(groups []*group, rec Run) *runner {
	ctx, cancel := context.WithCancel(m.ctx)
	return &runner{
		m:       m,
		groups:  groups,
		ctx:     ctx,
		cancel:  cancel,
		rec:     rec,
		changed: make(chan struct{}),
		lost:    make(map[string]bool),
	}
}

// launch registers r and runs f in the background.
func (m *Manager) launch(r *runner, f func()) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if _, ok := m.runs[r.rec.ID]; ok {
		return fmt.Errorf("dr: run %s is %s: %w", r.rec.ID, r.rec.State, ErrRunState)
	}
	m.runs[r.rec.ID] = r
	m.wg.Go(f)
	return nil
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// update changes the run record under the runner's lock, stores it and
// wakes followers. A failing Store is logged, not fatal: the run matters more
// than its record.
func (r *runner) update(f func(rec *Run)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.rec)
	if err := r.m.opts.Store.SaveRun(context.WithoutCancel(r.ctx), r.rec.clone()); err != nil {
		r.m.opts.Logger.Error("dr: saving a run", "run", r.rec.ID, "err", err)
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// eventLocked appends an event; r.mu must be held once the runner runs.
func (r *runner) eventLocked(step, state, msg string) {
	r.rec.Events = append(r.rec.Events, Event{Seq: len(r.rec.Events) + 1, Time: time.Now(), Step: step, State: state, Message: msg})
}

// output adds a line to step i's output, and an event.
func (r *runner) output(i int, line string) {
	r.update(func(rec *Run) {
		s := &rec.Steps[i]
		s.Output = append(s.Output, line)
		r.eventLocked(s.Name, string(s.State), line)
	})
}

// setStep moves step i to state, with an event.
func (r *runner) setStep(i int, state StepState, msg string) {
	r.update(func(rec *Run) {
		s := &rec.Steps[i]
		s.State = state
		now := time.Now()
		switch state {
		case StepRunning:
			s.Started = now
		case StepSucceeded, StepFailed, StepSkipped:
			s.Ended = now
		}
		r.eventLocked(s.Name, string(state), msg)
	})
}

func (r *runner) snapshot() Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec.clone()
}

// execute runs the steps in order until one fails or the run is canceled.
func (r *runner) execute() {
	var err error
	for i := range r.rec.Config.Steps {
		if err = r.step(i); err != nil {
			break
		}
	}
	var last *Run
	if r.rec.Mode == ModeDrill {
		last = r.lastSwitchover()
	}
	r.finish(err, func(rec *Run) {
		switch {
		case err == nil:
			rec.State = RunSucceeded
		case r.ctx.Err() != nil:
			rec.State = RunCanceled
		default:
			rec.State = RunFailed
		}
		rec.Report = report(rec, last)
	})
}

// finish records the end of the run or rollback, releases the groups and
// forgets the runner. The final record is saved before the runner is
// forgotten, under the manager's lock, so that Wait and Rollback see either
// the runner or the final record.
func (r *runner) finish(err error, set func(rec *Run)) {
	releaseAll(r.groups)
	r.m.mu.Lock()
	r.update(func(rec *Run) {
		rec.Ended = time.Now()
		if err != nil {
			rec.Error = err.Error()
		}
		set(rec)
		r.eventLocked("", string(rec.State), finishMessage(rec))
	})
	delete(r.m.runs, r.rec.ID)
	r.m.mu.Unlock()
	rec := r.snapshot()
	r.m.metrics.runEnded(&rec)
	r.cancel()
}

func finishMessage(rec *Run) string {
	switch rec.State {
	case RunSucceeded:
		rep := rec.Report
		prefix := ""
		if rep.Estimated {
			prefix = "a switchover would cost "
		}
		return fmt.Sprintf("%sRTO %v, RPO %s", prefix, rep.RTO, formatLag(rep.RPO))
	case RunFailed, RunCanceled:
		if rec.Mode == ModeDrill {
			return rec.Error
		}
		return rec.Error + "; the steps done can be rolled back"
	case RunRolledBack:
		return "rolled back"
	default:
		return rec.Error
	}
}

// lastSwitchover returns the plan's last succeeded switchover, or nil.
func (r *runner) lastSwitchover() *Run {
	runs, err := r.m.opts.Store.Runs(r.ctx)
	if err != nil {
		r.m.opts.Logger.Warn("dr: reading past runs for a drill's estimate", "err", err)
		return nil
	}
	for i := range runs {
		if runs[i].Plan == r.rec.Plan && runs[i].Mode == ModeSwitchover && runs[i].State == RunSucceeded {
			return &runs[i]
		}
	}
	return nil
}

// step runs step i: its gate, then its attempts.
func (r *runner) step(i int) error {
	sc := &r.rec.Config.Steps[i]
	name := sc.name()
	if sc.Confirm {
		if err := r.waitGate(i); err != nil {
			r.setStep(i, StepFailed, err.Error())
			return fmt.Errorf("dr: run %s step %q: %w", r.rec.ID, name, err)
		}
	}
	if k := kindOf(sc.Kind); r.rec.Mode == ModeDrill && !k.groups {
		r.setStep(i, StepSkipped, "a drill changes nothing: "+k.wouldDo(r.rec.Target))
		return nil
	}
	r.setStep(i, StepRunning, "")
	timeout := sc.Timeout.Or(defaultStepTimeout)
	delay := sc.RetryDelay.Or(defaultRetryDelay)
	for attempt := 1; ; attempt++ {
		r.update(func(rec *Run) { rec.Steps[i].Attempts = attempt })
		ctx, cancel := context.WithTimeout(r.ctx, timeout)
		err := r.do(ctx, i)
		if err != nil && ctx.Err() == context.DeadlineExceeded && r.ctx.Err() == nil {
			err = fmt.Errorf("timed out after %v: %w", timeout, err)
		}
		cancel()
		if err == nil {
			r.setStep(i, StepSucceeded, "")
			return nil
		}
		if attempt > sc.Retries || r.ctx.Err() != nil {
			err = fmt.Errorf("dr: run %s step %q: %w", r.rec.ID, name, err)
			r.update(func(rec *Run) { rec.Steps[i].Error = err.Error() })
			r.setStep(i, StepFailed, err.Error())
			return err
		}
		r.output(i, fmt.Sprintf("attempt %d failed: %v; retrying in %v", attempt, err, delay))
		select {
		case <-r.ctx.Done():
		case <-time.After(delay):
		}
	}
}

// waitGate holds the run at step i's gate until Confirm or cancellation.
func (r *runner) waitGate(i int) error {
	gate := make(chan struct{})
	r.update(func(rec *Run) {
		r.gate = gate
		rec.State = RunWaiting
		rec.Steps[i].State = StepWaiting
		r.eventLocked(rec.Steps[i].Name, string(StepWaiting), "waiting for confirmation")
	})
	select {
	case <-gate:
		r.update(func(rec *Run) {
			rec.State = RunRunning
			r.eventLocked("", string(RunRunning), fmt.Sprintf("step %q confirmed", rec.Steps[i].Name))
		})
		return nil
	case <-r.ctx.Done():
		return fmt.Errorf("canceled at the gate: %w", r.ctx.Err())
	}
}

// Confirm lets a run waiting at the gate of the named step go on. It fails
// with ErrRunState when the run is not waiting there.
func (m *Manager) Confirm(runID, step string) error {
	r, err := m.active(runID)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.rec.Steps {
		if s.Name == step && s.State == StepWaiting && r.gate != nil {
			close(r.gate)
			r.gate = nil
			return nil
		}
	}
	return fmt.Errorf("dr: confirm step %q of run %s: the run does not wait there: %w", step, runID, ErrRunState)
}

// Cancel stops a run, or its rollback, in progress: its current step is
// interrupted and the run ends canceled, with the steps done ready to be
// rolled back.
func (m *Manager) Cancel(runID string) error {
	r, err := m.active(runID)
	if err != nil {
		return err
	}
	r.cancel()
	return nil
}

// active returns the runner of a run in progress.
func (m *Manager) active(runID string) (*runner, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.runs[runID]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("dr: run %s is not in progress: %w", runID, ErrRunState)
}

// Run returns a snapshot of a run: in progress or from the Store.
func (m *Manager) Run(ctx context.Context, runID string) (Run, error) {
	if r, err := m.active(runID); err == nil {
		return r.snapshot(), nil
	}
	return m.opts.Store.Run(ctx, runID)
}

// Runs returns every recorded run, the most recent first.
func (m *Manager) Runs(ctx context.Context) ([]Run, error) {
	return m.opts.Store.Runs(ctx)
}

// Wait waits until the run has stopped (see RunState.Done) and returns it.
func (m *Manager) Wait(ctx context.Context, runID string) (Run, error) {
	for {
		r, err := m.active(runID)
		if err != nil {
			return m.opts.Store.Run(ctx, runID)
		}
		r.mu.Lock()
		done, changed := r.rec.State.Done(), r.changed
		r.mu.Unlock()
		if done {
			return r.snapshot(), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Run{}, fmt.Errorf("dr: wait for run %s: %w", runID, ctx.Err())
		}
	}
}

// Follow streams the run's events: first those recorded, then each as it
// happens. The channel is closed once the run has stopped and its events are
// sent, or when ctx is done. A rollback started later is followed by calling
// Follow again.
func (m *Manager) Follow(ctx context.Context, runID string) (<-chan Event, error) {
	rec, err := m.Run(ctx, runID)
	if err != nil {
		return nil, err
	}
	ch := make(chan Event)
	go func() {
		defer close(ch)
		sent := 0
		for {
			var events []Event
			done := true
			var changed chan struct{}
			if r, err := m.active(runID); err == nil {
				r.mu.Lock()
				events, done, changed = r.rec.Events, r.rec.State.Done(), r.changed
				r.mu.Unlock()
			} else if rec, err = m.opts.Store.Run(ctx, runID); err == nil {
				events = rec.Events
			}
			for ; sent < len(events); sent++ {
				select {
				case ch <- events[sent]:
				case <-ctx.Done():
					return
				}
			}
			if done {
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}
