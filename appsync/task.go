package appsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/shuanghuo/shuanghuo/internal/names"
)

// task is one sync task of an Engine: a goroutine that reads its Source's
// feed after the cursor and applies each change to the Sink.
type task struct {
	e      *Engine
	cfg    TaskConfig
	src    Source
	pm     ProjectMap
	kind   ChangeKind // the kind of change the task applies
	ranges []netip.Prefix
	log    *slog.Logger

	// ctx is canceled by Stop and Close; done is closed when run returns.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	st State
	// epoch counts resyncs: a change read before one is not committed after
	// it.
	epoch uint64
	// interrupt cancels the current read of the feed, backoff or idle wait,
	// so that the loop sees at once what a control call changed.
	interrupt context.CancelFunc
	head      int64
	// pending is the lag in events as the source last counted it, less what
	// was done since; negative when the source does not count.
	pending int64
	// next is the source time of the first change not done, when known.
	next    time.Time
	lastErr string
	retries int
}

func newTask(e *Engine, cfg TaskConfig, with TaskOptions, st State) *task {
	ctx, cancel := context.WithCancel(context.Background())
	kind := KindRelease
	if cfg.Kind == TaskKindConfig {
		kind = KindConfig
	}
	return &task{
		e: e, cfg: cfg, src: with.Source, pm: with.ProjectMap, kind: kind,
		ranges: parseRanges(cfg.Config.SourceRanges),
		log:    e.opts.Logger.With("task", cfg.ID),
		ctx:    ctx, cancel: cancel, done: make(chan struct{}),
		st: st, head: st.Cursor, pending: -1,
	}
}

func (t *task) stop() {
	t.cancel()
	<-t.done
	t.e.metrics.forget(t.cfg.ID)
}

// control changes the task's state with f and saves it; on error nothing
// changes. It wakes the loop, which acts on the new state after the change
// it is applying.
func (t *task) control(ctx context.Context, what string, f func(*State) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := cloneState(t.st)
	if err := f(&s); err != nil {
		return err
	}
	if err := t.e.opts.StateStore.Save(ctx, t.cfg.ID, cloneState(s)); err != nil {
		return fmt.Errorf("appsync: task %s: %s: save state: %w", t.cfg.ID, what, err)
	}
	if s.Cursor != t.st.Cursor || s.Scan {
		t.epoch++
		t.next = time.Time{}
	}
	t.st = s
	if t.interrupt != nil {
		t.interrupt()
	}
	t.log.Info("task "+what, "cursor", s.Cursor, "paused", s.Paused)
	return nil
}

func cloneState(s State) State {
	s.Conflicts = slices.Clone(s.Conflicts)
	s.Baselines = maps.Clone(s.Baselines)
	s.Latest = maps.Clone(s.Latest)
	return s
}

// run is the task's loop: read a page, apply its changes one by one, and on
// an error back off and read again from the cursor.
func (t *task) run() {
	defer close(t.done)
	for {
		t.mu.Lock()
		idle := t.st.Paused || len(t.st.Conflicts) > 0
		pctx, cancel := context.WithCancel(t.ctx)
		t.interrupt = cancel
		t.mu.Unlock()
		t.updateLag()
		if idle {
			<-pctx.Done()
			cancel()
			if t.ctx.Err() != nil {
				return
			}
			continue
		}
		err := t.step(pctx)
		switch {
		case t.ctx.Err() != nil:
			cancel()
			return
		case err == nil:
			t.succeeded()
		case pctx.Err() != nil:
			// A control call interrupted the read: not a failure.
		default:
			timer := time.NewTimer(t.failed(err))
			select {
			case <-pctx.Done():
			case <-timer.C:
			}
			timer.Stop()
		}
		cancel()
	}
}

// entry is one change of a page, or one the Source rejected.
type entry struct {
	seq int64
	c   *Change
	rej *Rejection
}

// step reads one page after the cursor and applies its changes. It returns
// early when a control call changed the state.
func (t *task) step(pctx context.Context) error {
	t.mu.Lock()
	scan, after, epoch := t.st.Scan, t.st.Cursor, t.epoch
	t.mu.Unlock()
	if scan {
		return t.scan(pctx, epoch)
	}
	page, err := t.src.Changes(pctx, after, t.cfg.batch(), t.cfg.wait())
	if err != nil {
		return fmt.Errorf("appsync: task %s: read the feed after %d: %w", t.cfg.ID, after, err)
	}
	entries := mergeEntries(page)
	t.mu.Lock()
	t.head = max(t.head, page.Head)
	t.pending = -1
	if page.Pending != nil {
		t.pending = max(*page.Pending, int64(len(entries)))
	}
	if len(entries) > 0 {
		t.head = max(t.head, entries[len(entries)-1].seq)
		t.next = t.timeOf(entries[0])
	}
	t.mu.Unlock()
	t.updateLag()

	last := after
	for i, en := range entries {
		t.mu.Lock()
		halt := t.epoch != epoch || t.st.Paused || len(t.st.Conflicts) > 0
		t.mu.Unlock()
		if halt || t.ctx.Err() != nil {
			return nil
		}
		r, err := t.process(en, last)
		if err != nil {
			return err
		}
		next := t.timeOf(en)
		if i+1 < len(entries) {
			next = t.timeOf(entries[i+1])
		}
		if err := t.commit(epoch, r, next); err != nil {
			return err
		}
		last = max(last, en.seq)
	}
	t.mu.Lock()
	stuck := len(entries) > 0 && t.st.Cursor == after && t.epoch == epoch && len(t.st.Conflicts) == 0 && !t.st.Paused
	t.mu.Unlock()
	if stuck {
		// Only changes at or before the cursor: reading again would get the
		// same page, so back off as from any error of the source.
		return fmt.Errorf("%w: task %s: the source returned no change after the cursor %d", ErrMalformed, t.cfg.ID, after)
	}
	return nil
}

// mergeEntries lists a page's changes in the order the Source gave them (so
// that one out of order is seen and rejected) with its rejections merged in
// by seq.
func mergeEntries(page Page) []entry {
	rej := slices.Clone(page.Rejected)
	slices.SortFunc(rej, func(a, b Rejection) int { return cmp.Compare(a.Seq, b.Seq) })
	out := make([]entry, 0, len(page.Changes)+len(rej))
	for i := range page.Changes {
		for len(rej) > 0 && rej[0].Seq < page.Changes[i].Seq {
			out = append(out, entry{seq: rej[0].Seq, rej: &rej[0]})
			rej = rej[1:]
		}
		out = append(out, entry{seq: page.Changes[i].Seq, c: &page.Changes[i]})
	}
	for i := range rej {
		out = append(out, entry{seq: rej[i].Seq, rej: &rej[i]})
	}
	return out
}

func (t *task) timeOf(en entry) time.Time {
	if en.c != nil {
		return en.c.Time
	}
	return time.Time{}
}

// scan reads the whole feed for a resync and records the last change of
// each app, before anything is applied.
func (t *task) scan(pctx context.Context, epoch uint64) error {
	latest := make(map[string]int64)
	var after int64
	for {
		page, err := t.src.Changes(pctx, after, MaxBatch, 0)
		if err != nil {
			return fmt.Errorf("appsync: task %s: resync: read the feed after %d: %w", t.cfg.ID, after, err)
		}
		top := after
		for i := range page.Changes {
			c := &page.Changes[i]
			top = max(top, c.Seq)
			if c.Seq > after && c.Kind == t.kind && Verify(t.e.opts.Key, c) == nil && c.Validate() == nil {
				latest[latestKey(c)] = max(latest[latestKey(c)], c.Seq)
			}
		}
		for _, r := range page.Rejected {
			top = max(top, r.Seq)
		}
		if top <= after || top >= page.Head {
			break
		}
		after = top
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.epoch != epoch {
		return nil
	}
	s := cloneState(t.st)
	s.Latest, s.Scan = latest, false
	if err := t.e.opts.StateStore.Save(t.ctx, t.cfg.ID, cloneState(s)); err != nil {
		return fmt.Errorf("appsync: task %s: save state: %w", t.cfg.ID, err)
	}
	t.st = s
	t.log.Info("resync: feed read", "apps", len(latest))
	return nil
}

func latestKey(c *Change) string { return string(c.Kind) + "/" + c.Project + "/" + c.App }

// outcome is what became of a change.
type outcome int

const (
	// ignored: a change of the other task kind; the cursor moves past it,
	// nothing is counted.
	ignored outcome = iota
	applied
	skipped
	rejected
	conflicted
)

func (o outcome) String() string {
	return [...]string{"ignored", "applied", "skipped", "rejected", "conflict"}[o]
}

// result is what processing a change did, for commit to record.
type result struct {
	seq      int64
	kind     ChangeKind
	outcome  outcome
	applied  *Applied
	rej      *Rejection
	conflict *Conflict
	// baseline, when set, is the new baseline of the target app key: a
	// hash, or "" to drop it (a deleted app).
	baseline    *string
	baselineKey string
}

// commit records r after its change and saves the state. A result of a
// change read before a resync is dropped.
func (t *task) commit(epoch uint64, r result, next time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.epoch != epoch {
		return nil
	}
	s := cloneState(t.st)
	switch r.outcome {
	case conflicted:
		s.Conflicts = []Conflict{*r.conflict}
	default:
		if r.seq > s.Cursor && t.pending > 0 {
			t.pending--
		}
		s.Cursor = max(s.Cursor, r.seq)
		if s.Resolved != nil && s.Resolved.Seq <= s.Cursor {
			s.Resolved = nil
		}
		maps.DeleteFunc(s.Latest, func(_ string, seq int64) bool { return seq <= s.Cursor })
	}
	switch r.outcome {
	case applied:
		s.Applied++
		s.LastApplied = r.applied
	case skipped:
		s.Skipped++
	case rejected:
		s.Rejected++
		s.LastRejection = r.rej
	}
	if r.baseline != nil {
		if *r.baseline == "" {
			delete(s.Baselines, r.baselineKey)
		} else {
			if s.Baselines == nil {
				s.Baselines = make(map[string]string)
			}
			s.Baselines[r.baselineKey] = *r.baseline
		}
	}
	if err := t.e.opts.StateStore.Save(t.ctx, t.cfg.ID, cloneState(s)); err != nil {
		return fmt.Errorf("appsync: task %s: save state after change %d: %w", t.cfg.ID, r.seq, err)
	}
	t.st = s
	if r.outcome != conflicted {
		t.next = next
	}
	m := t.e.metrics
	switch r.outcome {
	case ignored:
	case conflicted:
		m.conflicts.WithLabelValues(t.cfg.ID, string(r.conflict.Reason)).Inc()
		t.log.Warn("conflict: task stopped", "seq", r.seq, "id", r.conflict.ID, "reason", r.conflict.Reason,
			"project", r.conflict.Project, "app", r.conflict.App, "diffs", len(r.conflict.Diff), "flagged", len(r.conflict.Flagged))
	default:
		m.changes.WithLabelValues(t.cfg.ID, string(r.kind), r.outcome.String()).Inc()
		if r.outcome == rejected {
			t.log.Warn("change rejected", "seq", r.seq, "error", r.rej.Error)
		} else {
			t.log.Debug("change done", "seq", r.seq, "outcome", r.outcome.String())
		}
	}
	m.cursor.WithLabelValues(t.cfg.ID).Set(float64(s.Cursor))
	return nil
}

func (t *task) succeeded() {
	t.mu.Lock()
	t.lastErr, t.retries = "", 0
	t.mu.Unlock()
}

// warnAfter is how many retries in a row are logged at Info before the next are at Warn: a
// few are usual — a version whose app another task has not created yet, a source restarting —
// and more are an outage.
const warnAfter = 3

func retryLevel(inARow int) slog.Level {
	if inARow <= warnAfter {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// failed records err and returns how long to back off: exponential from
// RetryMin to RetryMax, with jitter so that tasks failing together do not
// retry together.
func (t *task) failed(err error) time.Duration {
	t.mu.Lock()
	t.lastErr = err.Error()
	t.retries++
	n := t.retries
	t.mu.Unlock()
	t.e.metrics.errors.WithLabelValues(t.cfg.ID).Inc()
	t.log.Log(context.Background(), retryLevel(n), "attempt failed; retrying", "error", err, "retries", n)
	lo, hi := t.cfg.retryMin(), t.cfg.retryMax()
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// status returns a snapshot of the task.
func (t *task) status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &t.st
	st := Status{
		Task: t.cfg.ID, Kind: t.cfg.Kind, State: StateRunning,
		Cursor: s.Cursor, Head: max(t.head, s.Cursor),
		Applied: s.Applied, Skipped: s.Skipped, Rejected: s.Rejected,
		LastApplied: s.LastApplied, LastRejection: s.LastRejection,
		LastError: t.lastErr, Retries: t.retries,
		Conflicts: slices.Clone(s.Conflicts),
	}
	switch {
	case s.Paused:
		st.State = StatePaused
	case len(s.Conflicts) > 0:
		st.State = StateConflict
	case t.lastErr != "":
		st.State = StateRetrying
	}
	st.LagEvents, st.LagSeconds = t.lagLocked()
	return st
}

// lagLocked returns the lag in events and seconds; t.mu is held.
func (t *task) lagLocked() (int64, float64) {
	events := max(t.head-t.st.Cursor, 0)
	if t.pending >= 0 {
		events = t.pending
	}
	if events == 0 || t.next.IsZero() {
		return events, 0
	}
	return events, max(t.e.now().Sub(t.next).Seconds(), 0)
}

func (t *task) updateLag() {
	t.mu.Lock()
	events, secs := t.lagLocked()
	t.mu.Unlock()
	t.e.metrics.lagEvents.WithLabelValues(t.cfg.ID).Set(float64(events))
	t.e.metrics.lagSecs.WithLabelValues(t.cfg.ID).Set(secs)
}

// reject returns the result of a refused change.
func (t *task) reject(c *Change, err error) result {
	r := &Rejection{Seq: c.Seq, Kind: c.Kind, Project: c.Project, App: c.App, Error: err.Error(), Time: t.e.now()}
	return result{seq: c.Seq, kind: c.Kind, outcome: rejected, rej: r}
}

// process checks one change and applies it. Errors are those worth
// retrying: of the Source, the Sink or the ProjectMap.
func (t *task) process(en entry, last int64) (result, error) {
	// A forged change holds the task instead of being read past: the source signs every
	// change, so a bad MAC means the centers' keys differ or something between them
	// altered the feed, and reading on would lose the real change.
	if en.rej != nil {
		return result{}, fmt.Errorf("appsync: task %s: %s: %w", t.cfg.ID, en.rej.Error, errHold)
	}
	c := en.c
	if c.Seq <= last {
		r := t.reject(c, fmt.Errorf("%w: change %d: seq does not follow %d", ErrMalformed, c.Seq, last))
		r.seq = 0 // the cursor does not go back
		return r, nil
	}
	if err := Verify(t.e.opts.Key, c); err != nil {
		return result{}, fmt.Errorf("appsync: task %s: %w: %w", t.cfg.ID, err, errHold)
	}
	if err := c.Validate(); err != nil {
		return t.reject(c, err), nil
	}
	if c.Kind != t.kind {
		return result{seq: c.Seq, kind: c.Kind, outcome: ignored}, nil
	}
	target, err := t.pm(t.ctx, c.Project)
	if errors.Is(err, ErrOutsideBinding) {
		return t.reject(c, err), nil
	}
	if err != nil {
		return result{}, fmt.Errorf("appsync: task %s: map project %s of change %d: %w", t.cfg.ID, c.Project, c.Seq, err)
	}
	if !names.Valid(target) {
		return result{}, fmt.Errorf("appsync: task %s: project %s of change %d maps to %q, not a project name", t.cfg.ID, c.Project, c.Seq, target)
	}
	t.mu.Lock()
	var res Resolution
	if t.st.Resolved != nil && t.st.Resolved.Seq == c.Seq {
		res = t.st.Resolved.Resolution
	}
	superseded := t.st.Latest[latestKey(c)] > c.Seq
	t.mu.Unlock()
	if c.Kind == KindRelease {
		return t.applyRelease(c, target, res, superseded)
	}
	return t.applyConfig(c, target, res, superseded)
}
