package dr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Polling periods of the steps that wait. They bound how much a wait adds to
// the RTO.
const (
	catchUpPoll = 20 * time.Millisecond
	verifyPoll  = 100 * time.Millisecond
)

// stepKind is everything a kind of step is. Adding a kind of step is its constant in plan.go
// and one entry in stepKinds; nothing else lists or switches on kinds.
type stepKind struct {
	kind StepKind
	// groups: the step acts on every DR group of the plan, and a drill runs its read-only
	// form. Other steps act on the world around the groups, and a drill skips them.
	groups bool
	// afterFence: the step needs a fence step before it, so that the primary takes no
	// writes meanwhile.
	afterFence bool
	// params are the kind-specific fields of StepConfig the step takes (by JSON name).
	params []string
	// needs says what the Manager must have for the step, "" when it has it.
	needs func(o *Options) string
	// do makes one attempt in a switchover.
	do func(r *runner, ctx context.Context, i int) error
	// drill makes one attempt in a drill (groups steps only); nil runs do.
	drill func(r *runner, ctx context.Context, i int) error
	// wouldDo says what a drill that skips the step would have done in a switchover to a
	// center (steps that are not groups steps).
	wouldDo func(to Side) string
	// undo rolls the step back; nil when it has nothing to roll back.
	undo func(r *runner, ctx context.Context, i int) error
}

// stepKinds in the order a plan usually has them.
var stepKinds = []stepKind{{
	kind:   StepPrecheck,
	groups: true,
	params: []string{"max_lag"},
	do:     onGroups((*runner).precheck),
}, {
	kind:   StepFence,
	groups: true,
	params: []string{"force"},
	do:     onGroups((*runner).fence),
	drill:  onGroups((*runner).drillFence),
	undo:   onChanged((*runner).unfence),
}, {
	kind:       StepCatchUp,
	groups:     true,
	afterFence: true,
	do:         onGroups(func(r *runner, ctx context.Context, i int, g *group) error { return r.catchUp(ctx, i, g, false) }),
	drill:      onGroups(func(r *runner, ctx context.Context, i int, g *group) error { return r.catchUp(ctx, i, g, true) }),
}, {
	kind:       StepPromote,
	groups:     true,
	afterFence: true,
	params:     []string{"force", "sample"},
	do:         onGroups((*runner).promote),
	drill:      onGroups((*runner).compare),
	undo:       onChanged((*runner).unpromote),
}, {
	kind:    StepSwitchDNS,
	needs:   func(o *Options) string { return missing(o.DNS == nil, "a DNS switcher") },
	do:      (*runner).switchDNS,
	wouldDo: func(to Side) string { return "a switchover would point DNS at " + string(to) },
	undo:    (*runner).switchDNSBack,
}, {
	kind:  StepSwitchTraffic,
	needs: func(o *Options) string { return missing(o.Traffic == nil, "a traffic switcher") },
	do:    (*runner).switchTraffic,
	wouldDo: func(to Side) string {
		return "a switchover would point load balancers and gateway upstreams at " + string(to)
	},
	undo: (*runner).switchTrafficBack,
}, {
	kind:    StepStartApps,
	needs:   func(o *Options) string { return missing(o.Apps == nil, "an app starter") },
	do:      (*runner).startApps,
	wouldDo: func(to Side) string { return "a switchover would start the applications in " + string(to) },
	undo:    (*runner).stopApps,
}, {
	kind:    StepVerify,
	params:  []string{"urls"},
	do:      (*runner).verify,
	wouldDo: func(Side) string { return "a switchover would probe the service until it answers" },
}}

// kindOf is the definition of kind k; the zero stepKind if there is none, which Validate
// refuses.
func kindOf(k StepKind) stepKind {
	for _, d := range stepKinds {
		if d.kind == k {
			return d
		}
	}
	return stepKind{}
}

func missing(lacks bool, what string) string {
	if lacks {
		return what
	}
	return ""
}

// onGroups makes a step of f run on every group of the run at once.
func onGroups(f func(r *runner, ctx context.Context, i int, g *group) error) func(*runner, context.Context, int) error {
	return func(r *runner, ctx context.Context, i int) error {
		return r.eachGroup(ctx, r.groups, func(ctx context.Context, g *group) error { return f(r, ctx, i, g) })
	}
}

// onChanged makes an undo of f run on the groups step i changed, at once.
func onChanged(f func(r *runner, ctx context.Context, i int, g *group) error) func(*runner, context.Context, int) error {
	return func(r *runner, ctx context.Context, i int) error {
		changed := r.snapshot().Steps[i].Changed
		groups := slices.DeleteFunc(slices.Clone(r.groups), func(g *group) bool { return !slices.Contains(changed, g.cfg.Name) })
		return r.eachGroup(ctx, groups, func(ctx context.Context, g *group) error { return f(r, ctx, i, g) })
	}
}

// do makes one attempt at step i, in the run's mode; a drill skips steps that are not
// groups steps before it gets here.
func (r *runner) do(ctx context.Context, i int) error {
	k := kindOf(r.rec.Config.Steps[i].Kind)
	if r.rec.Mode == ModeDrill && k.drill != nil {
		return k.drill(r, ctx, i)
	}
	return k.do(r, ctx, i)
}

func (r *runner) switchDNS(ctx context.Context, i int) error {
	if err := r.m.opts.DNS.SwitchDNS(ctx, r.rec.Target); err != nil {
		return fmt.Errorf("switch DNS to %s: %w", r.rec.Target, err)
	}
	r.output(i, fmt.Sprintf("DNS points at %s", r.rec.Target))
	return nil
}

func (r *runner) switchTraffic(ctx context.Context, i int) error {
	if err := r.m.opts.Traffic.SwitchTraffic(ctx, r.rec.Target); err != nil {
		return fmt.Errorf("switch traffic to %s: %w", r.rec.Target, err)
	}
	r.output(i, fmt.Sprintf("traffic goes to %s", r.rec.Target))
	return nil
}

func (r *runner) startApps(ctx context.Context, i int) error {
	if err := r.m.opts.Apps.StartApps(ctx, r.rec.Target); err != nil {
		return fmt.Errorf("start the applications in %s: %w", r.rec.Target, err)
	}
	r.output(i, fmt.Sprintf("applications started in %s", r.rec.Target))
	return nil
}

// eachGroup runs f for every one of groups at once, and joins their
// errors, each naming its group.
func (r *runner) eachGroup(ctx context.Context, groups []*group, f func(context.Context, *group) error) error {
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for j, g := range groups {
		wg.Go(func() {
			if err := f(ctx, g); err != nil {
				errs[j] = fmt.Errorf("DR group %q: %w", g.cfg.Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *runner) status(ctx context.Context, g *group) (Status, error) {
	return r.m.status(ctx, g, r.rec.Direction)
}

func (r *runner) precheck(ctx context.Context, i int, g *group) error {
	sc := &r.rec.Config.Steps[i]
	st, err := r.status(ctx, g)
	if err != nil {
		return err
	}
	var problems []string
	if !st.InSync() {
		problems = append(problems, "not in sync: "+linkReason(st))
	}
	if sc.MaxLagBytes > 0 && (!st.Lag.Known || st.Lag.Bytes > sc.MaxLagBytes) {
		problems = append(problems, fmt.Sprintf("lag %s is over %d bytes", formatLag(st.Lag), sc.MaxLagBytes))
	}
	if sc.MaxLag > 0 && (!st.Lag.Known || st.Lag.Time > sc.MaxLag) {
		problems = append(problems, fmt.Sprintf("lag %s is over %v", formatLag(st.Lag), sc.MaxLag))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrPrecheck, strings.Join(problems, "; "))
	}
	r.output(i, fmt.Sprintf("%s: in sync, %s answers, lag %s", g.cfg.Name, st.Direction.Replica(), formatLag(st.Lag)))
	return nil
}

func (r *runner) fence(ctx context.Context, i int, g *group) error {
	name, primary := g.cfg.Name, r.rec.Direction.Primary()
	if r.didChange(i, name) {
		return nil
	}
	err := g.driver.Fence(ctx, r.rec.Direction)
	if errors.Is(err, ErrUnreachable) && r.rec.Config.Steps[i].Force {
		r.markLost(name)
		r.output(i, fmt.Sprintf("%s: %s does not answer: counted as lost, not fenced (%v)", name, primary, err))
		return nil
	}
	if err != nil {
		return err
	}
	r.markChanged(i, name)
	line := fmt.Sprintf("%s: fenced %s", name, primary)
	if st, err := r.status(ctx, g); err == nil {
		line += "; lag at fence " + formatLag(st.Lag)
	}
	r.output(i, line)
	return nil
}

func (r *runner) drillFence(ctx context.Context, i int, g *group) error {
	name, primary := g.cfg.Name, r.rec.Direction.Primary()
	st, err := r.status(ctx, g)
	if err != nil {
		return err
	}
	if !st.Primary.Reachable {
		if !r.rec.Config.Steps[i].Force {
			return fmt.Errorf("%s does not answer (%s), so a switchover could not fence it: %w", primary, st.Primary.Error, ErrUnreachable)
		}
		r.markLost(name)
		rpo := r.m.rpo(g, st)
		r.addRPO(GroupRPO{Group: name, Lost: true, RPO: rpo})
		r.output(i, fmt.Sprintf("%s: %s does not answer: a switchover would count it as lost, with RPO %s", name, primary, formatLag(rpo)))
		return nil
	}
	r.addRPO(GroupRPO{Group: name, RPO: st.Lag})
	r.output(i, fmt.Sprintf("%s: %s answers: a switchover would fence it now, with lag %s", name, primary, formatLag(st.Lag)))
	return nil
}

func (r *runner) catchUp(ctx context.Context, i int, g *group, drill bool) error {
	name, primary, replica := g.cfg.Name, r.rec.Direction.Primary(), r.rec.Direction.Replica()
	if r.isLost(name) {
		r.output(i, fmt.Sprintf("%s: %s is lost: nothing more to receive", name, primary))
		return nil
	}
	st, err := r.status(ctx, g)
	if err != nil {
		return err
	}
	if !st.Primary.Reachable {
		return fmt.Errorf("%s stopped answering (%s): %w", primary, st.Primary.Error, ErrUnreachable)
	}
	if drill {
		r.output(i, fmt.Sprintf("%s: lag now %s: a switchover would wait until %s applies it", name, formatLag(st.Lag), replica))
		return nil
	}
	// The primary is fenced: its offset moves only with heartbeats and
	// expirations, which need no waiting for.
	target, start := st.Primary.Offset, time.Now()
	for {
		if st.Replica.Reachable && st.Replica.Offset >= target {
			r.output(i, fmt.Sprintf("%s: %s caught up with %s (offset %d) in %v", name, replica, primary, target, time.Since(start).Round(time.Millisecond)))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s at offset %d of %d: %v", ErrNotCaughtUp, replica, st.Replica.Offset, target, ctx.Err())
		case <-time.After(catchUpPoll):
		}
		if st, err = r.status(ctx, g); err != nil {
			return err
		}
	}
}

func (r *runner) promote(ctx context.Context, i int, g *group) error {
	sc := &r.rec.Config.Steps[i]
	name, dir := g.cfg.Name, r.rec.Direction
	if r.didChange(i, name) {
		return nil
	}
	st, err := g.driver.Promote(ctx, dir, PromoteOptions{Force: sc.Force})
	if err != nil {
		if errors.Is(err, ErrLagUnknown) || errors.Is(err, ErrLagNotZero) {
			r.output(i, fmt.Sprintf("%s: promotion refused; %s would lose %s", name, dir.Replica(), formatLag(r.m.rpo(g, st))))
		}
		return err
	}
	r.markChanged(i, name)
	rpo := r.m.rpo(g, st)
	r.addRPO(GroupRPO{Group: name, Lost: !st.Primary.Reachable, RPO: rpo})
	reason := fmt.Sprintf("%s run %s: promoted %s", r.rec.Mode, r.rec.ID, dir.Replica())
	if err := r.m.move(ctx, g, StatePromoted, dir.Opposite(), reason); err != nil {
		r.m.opts.Logger.Error("dr: recording a promotion", "group", name, "err", err)
	}
	r.output(i, fmt.Sprintf("%s: promoted %s, RPO %s", name, dir.Replica(), formatLag(rpo)))
	return nil
}

func (r *runner) compare(ctx context.Context, i int, g *group) error {
	n := r.rec.Config.Steps[i].Sample
	if n == 0 {
		n = defaultSample
	}
	c, err := g.driver.Compare(ctx, r.rec.Direction, n)
	if err != nil {
		return err
	}
	if !c.Consistent() {
		return fmt.Errorf("%w: of %d sampled keys, %d missing and %d different in %s, such as %s",
			ErrInconsistent, c.Sampled, c.Missing, c.Different, r.rec.Direction.Replica(), strings.Join(c.Examples, ", "))
	}
	r.output(i, fmt.Sprintf("%s: %d sampled keys equal in %s and %s: %s could take over",
		g.cfg.Name, c.Sampled, r.rec.Direction.Primary(), r.rec.Direction.Replica(), r.rec.Direction.Replica()))
	return nil
}

// rpo returns what the replica lacked in st: the lag itself when the primary
// answered, else an estimate from the primary's last contact.
func (m *Manager) rpo(g *group, st Status) Lag {
	if st.Primary.Reachable {
		return st.Lag
	}
	g.mu.Lock()
	lc := g.lastContact
	g.mu.Unlock()
	l := Lag{Bytes: -1, Keys: -1, Time: st.Lag.Time}
	if lc != nil && lc.Direction == st.Direction && st.Replica.Reachable {
		l.Bytes = max(0, lc.Primary.Offset-st.Replica.Offset)
		if lc.Primary.Keys >= 0 && st.Replica.Keys >= 0 {
			l.Keys = max(0, lc.Primary.Keys-st.Replica.Keys)
		}
	}
	return l
}

func (r *runner) verify(ctx context.Context, i int) error {
	ctx = context.WithValue(ctx, probePlanKey{}, r.rec.Plan)
	urls := r.rec.Config.Steps[i].URLs
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for j, u := range urls {
		wg.Go(func() { errs[j] = r.probe(ctx, i, u) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

type probePlanKey struct{}

// ProbePlan returns the plan whose verify step makes a request with ctx, as the Transport of
// Options.HTTPClient sees it (its DialContext, say). A control plane can so hold each plan's
// probes to what the plan's owner may reach, by the address a name resolves to when dialed,
// which a check of the URL when the plan is saved cannot know.
func ProbePlan(ctx context.Context) (plan string, ok bool) {
	plan, ok = ctx.Value(probePlanKey{}).(string)
	return plan, ok
}

// probe gets url until it answers 2xx or ctx is done.
func (r *runner) probe(ctx context.Context, i int, url string) error {
	start := time.Now()
	var err error
	for {
		e := get(ctx, r.m.probeClient, url)
		if e == nil {
			r.output(i, fmt.Sprintf("%s answered after %v", url, time.Since(start).Round(time.Millisecond)))
			return nil
		}
		// An attempt the step's deadline cut short says nothing of the service: the run
		// reports the last one that ended by itself, if any did.
		if ctx.Err() == nil || err == nil {
			err = e
		}
		select {
		case <-ctx.Done():
			// The cause (refused, reset, not HTTP) stays out of the run, which the plan's
			// author reads: it would tell which ports of a host are open.
			var u unreachable
			if errors.As(err, &u) {
				r.m.opts.Logger.Debug("dr: verify probe failed", "run", r.rec.ID, "url", url, "err", u.cause)
			}
			return fmt.Errorf("%w: %s: %w", ErrVerify, url, err)
		case <-time.After(verifyPoll):
		}
	}
}

// unreachable is a probe that got no HTTP answer. Its text is the same whatever the cause, which
// it wraps.
type unreachable struct{ cause error }

func (unreachable) Error() string   { return "unreachable" }
func (e unreachable) Unwrap() error { return e.cause }

// get makes one probe of url. A redirect is an answer like any other that is not 2xx: c
// follows none (see Manager.probeClient).
func get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return unreachable{err}
	}
	resp, err := c.Do(req)
	if err != nil {
		return unreachable{err}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The code alone: the reason phrase is the service's text.
		return fmt.Errorf("answered %d", resp.StatusCode)
	}
	return nil
}

func (r *runner) markLost(group string) {
	r.mu.Lock()
	r.lost[group] = true
	r.mu.Unlock()
}

func (r *runner) isLost(group string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lost[group]
}

func (r *runner) markChanged(i int, group string) {
	r.update(func(rec *Run) { rec.Steps[i].Changed = append(rec.Steps[i].Changed, group) })
}

func (r *runner) didChange(i int, group string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.rec.Steps[i].Changed, group)
}

func (r *runner) addRPO(g GroupRPO) {
	r.update(func(rec *Run) { rec.Report.Groups = append(rec.Report.Groups, g) })
}

// formatLag writes a lag for people: "0 B, 0 keys, 0s", or for an estimate
// "at least 1200 B, 1000 keys, 7s (primary lost)".
func formatLag(l Lag) string {
	if !l.Known && l.Bytes < 0 && l.Keys < 0 {
		return "unknown (primary unreachable, and no earlier contact)"
	}
	bytes, keys := "unknown bytes", "unknown keys"
	if l.Bytes >= 0 {
		bytes = fmt.Sprintf("%d B", l.Bytes)
	}
	if l.Keys >= 0 {
		keys = fmt.Sprintf("%d keys", l.Keys)
	}
	s := fmt.Sprintf("%s, %s, %v", bytes, keys, l.Time)
	if !l.Known {
		s = "at least " + s + " (primary unreachable)"
	}
	return s
}

// Rollback undoes, last first, the steps a failed or canceled switchover did
// (or a rollback that failed left): it unfences the primaries, pairs promoted
// replicas again in the old direction (discarding what they took since),
// and points DNS, traffic and applications back. Steps with SkipRollback
// stay. It works from the run's record, so a manager that did not start the
// run can roll it back. Like Start, it returns once the rollback has started
// (ctx bounds reading the record); Follow and Wait tell how it goes.
func (m *Manager) Rollback(ctx context.Context, runID string) (Run, error) {
	rec, err := m.Run(ctx, runID)
	if err != nil {
		return Run{}, err
	}
	switch {
	case rec.Mode == ModeDrill:
		return Run{}, fmt.Errorf("dr: roll back run %s: a drill changes nothing: %w", runID, ErrRunState)
	case rec.State != RunFailed && rec.State != RunCanceled && rec.State != RunRollbackFailed:
		return Run{}, fmt.Errorf("dr: roll back run %s: it is %s: %w", runID, rec.State, ErrRunState)
	}
	groups := make([]*group, 0, len(rec.Config.Groups))
	for _, name := range rec.Config.Groups {
		g, err := m.group(name)
		if err != nil {
			return Run{}, fmt.Errorf("dr: roll back run %s: %w", runID, err)
		}
		groups = append(groups, g)
	}
	if err := acquireAll(groups, runID, func(*group, State, Direction) error { return nil }); err != nil {
		return Run{}, fmt.Errorf("dr: roll back run %s: %w", runID, err)
	}
	rec.State = RunRollingBack
	rec.Ended = time.Time{}
	r := m.newRunner(groups, rec)
	r.eventLocked("", string(RunRollingBack), "rollback started")
	snapshot := r.rec.clone()
	if err := m.launch(r, r.rollback); err != nil {
		releaseAll(groups)
		return Run{}, err
	}
	return snapshot, nil
}

// rollback undoes the run's steps, last first, and stops at the first that
// cannot be undone: undoing the earlier ones would leave the centers
// inconsistent (such as DNS on B with B demoted).
func (r *runner) rollback() {
	var err error
	for i := len(r.rec.Steps) - 1; i >= 0; i-- {
		sc := &r.rec.Config.Steps[i]
		st := r.snapshot().Steps[i].State
		if kindOf(sc.Kind).undo == nil || sc.SkipRollback || (st != StepSucceeded && st != StepFailed && st != StepRollbackFailed) {
			continue
		}
		r.update(func(rec *Run) { r.eventLocked(rec.Steps[i].Name, string(st), "rolling back") })
		ctx, cancel := r.ctx, context.CancelFunc(func() {})
		if sc.Kind != StepPromote { // pairing is bounded by the group's SyncTimeout
			ctx, cancel = context.WithTimeout(r.ctx, sc.Timeout.Or(defaultStepTimeout))
		}
		err = kindOf(sc.Kind).undo(r, ctx, i)
		cancel()
		if err != nil {
			err = fmt.Errorf("dr: roll back step %q of run %s: %w", sc.name(), r.rec.ID, err)
			r.update(func(rec *Run) {
				rec.Steps[i].State = StepRollbackFailed
				rec.Steps[i].Error = err.Error()
				r.eventLocked(rec.Steps[i].Name, string(StepRollbackFailed), err.Error())
			})
			break
		}
		r.update(func(rec *Run) {
			rec.Steps[i].State = StepRolledBack
			r.eventLocked(rec.Steps[i].Name, string(StepRolledBack), "")
		})
	}
	r.finish(err, func(rec *Run) {
		if err == nil {
			rec.State = RunRolledBack
		} else {
			rec.State = RunRollbackFailed
		}
	})
}

func (r *runner) unfence(ctx context.Context, i int, g *group) error {
	if err := g.driver.Unfence(ctx, r.rec.Direction); err != nil {
		return err
	}
	r.output(i, fmt.Sprintf("%s: unfenced %s", g.cfg.Name, r.rec.Direction.Primary()))
	return nil
}

// The undo of a step that needs a switcher runs from the run's record, perhaps in a manager
// that did not start the run and lacks it.
func (r *runner) switchDNSBack(ctx context.Context, i int) error {
	from := r.rec.Direction.Primary()
	if r.m.opts.DNS == nil {
		return errors.New("the manager has no DNS switcher")
	}
	if err := r.m.opts.DNS.SwitchDNS(ctx, from); err != nil {
		return fmt.Errorf("switch DNS back to %s: %w", from, err)
	}
	r.output(i, fmt.Sprintf("DNS points at %s again", from))
	return nil
}

func (r *runner) switchTrafficBack(ctx context.Context, i int) error {
	from := r.rec.Direction.Primary()
	if r.m.opts.Traffic == nil {
		return errors.New("the manager has no traffic switcher")
	}
	if err := r.m.opts.Traffic.SwitchTraffic(ctx, from); err != nil {
		return fmt.Errorf("switch traffic back to %s: %w", from, err)
	}
	r.output(i, fmt.Sprintf("traffic goes to %s again", from))
	return nil
}

func (r *runner) stopApps(ctx context.Context, i int) error {
	if r.m.opts.Apps == nil {
		return errors.New("the manager has no app starter")
	}
	if err := r.m.opts.Apps.StopApps(ctx, r.rec.Target); err != nil {
		return fmt.Errorf("stop the applications in %s: %w", r.rec.Target, err)
	}
	r.output(i, fmt.Sprintf("applications stopped in %s", r.rec.Target))
	return nil
}

// unpromote makes a promoted replica replicate its old primary again. A
// group already back in the run's direction was undone by an earlier
// rollback.
func (r *runner) unpromote(ctx context.Context, i int, g *group) error {
	dir := r.rec.Direction
	g.mu.Lock()
	state, gdir := g.state, g.dir
	g.mu.Unlock()
	if gdir == dir && state != StatePromoted {
		return nil
	}
	if state != StatePromoted {
		return stateError(g.cfg.Name, "undo the promotion of", state)
	}
	if err := r.m.pair(ctx, g, dir); err != nil {
		return err
	}
	reason := fmt.Sprintf("rollback of run %s", r.rec.ID)
	if err := r.m.move(ctx, g, syncingState(dir), dir, reason); err != nil {
		return err
	}
	if err := r.m.move(ctx, g, StateInSync, dir, reason+": initial sync complete"); err != nil {
		return err
	}
	r.output(i, fmt.Sprintf("%s: %s replicates %s again; what it took since its promotion is discarded", g.cfg.Name, dir.Replica(), dir.Primary()))
	return nil
}
