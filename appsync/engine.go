package appsync

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures an Engine. Sink, StateStore and Key are required.
type Options struct {
	// Sink is the target center, where every task applies changes.
	Sink Sink
	// StateStore persists each task's cursor and state after every change.
	StateStore StateStore
	// Key is the key the two centers share to sign changes, at least
	// MinKeySize bytes. Every change is verified with it before anything
	// else.
	Key []byte
	// Logger logs what tasks do in the background: conflicts, rejections,
	// retries. Default: discard.
	Logger *slog.Logger
	// Registerer registers the engine's metrics (appsync_*). Default: none.
	Registerer prometheus.Registerer
	// Now is the clock of status times and lag. Default: time.Now.
	Now func() time.Time
}

// TaskOptions are what a task reads from, given to Engine.Start beside its
// TaskConfig: they are objects, not configuration.
type TaskOptions struct {
	// Source is the source center's feed, such as an HTTPSource.
	Source Source
	// ProjectMap is the task's binding: it maps the source's projects to
	// the target's and refuses the others, such as BindProject("hx",
	// "hx"). Required.
	ProjectMap ProjectMap
}

// Engine runs sync tasks from source centers into one target center (its
// Sink). Create it with New; it is safe for concurrent use, and several
// engines can live in one process (with their own Registerer).
type Engine struct {
	opts    Options
	metrics *metrics
	now     func() time.Time

	mu     sync.Mutex
	closed bool
	tasks  map[string]*task
}

// New returns an Engine without tasks. It starts nothing.
func New(opts Options) (*Engine, error) {
	if opts.Sink == nil {
		return nil, fmt.Errorf("%w: Options.Sink is required", ErrInvalid)
	}
	if opts.StateStore == nil {
		return nil, fmt.Errorf("%w: Options.StateStore is required", ErrInvalid)
	}
	if err := ValidateKey(opts.Key); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	opts.Key = slices.Clone(opts.Key)
	return &Engine{opts: opts, metrics: m, now: now, tasks: make(map[string]*task)}, nil
}

// Start validates cfg, loads the task's state from the StateStore and runs
// the task in the background from its cursor, paused or stopped at its
// conflict if it was. ctx bounds only the loading. Call it for every task
// after a process restart: each resumes where it was.
func (e *Engine) Start(ctx context.Context, cfg TaskConfig, with TaskOptions) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if with.Source == nil || with.ProjectMap == nil {
		return fmt.Errorf("%w: task %s: TaskOptions.Source and ProjectMap are required", ErrInvalid, cfg.ID)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if _, ok := e.tasks[cfg.ID]; ok {
		e.mu.Unlock()
		return fmt.Errorf("%w: task %s", ErrExists, cfg.ID)
	}
	// Reserve the ID while loading, so that two Starts do not both load.
	e.tasks[cfg.ID] = nil
	e.mu.Unlock()

	st, _, err := e.opts.StateStore.Load(ctx, cfg.ID)
	if err != nil {
		e.unreserve(cfg.ID)
		return fmt.Errorf("appsync: start task %s: load state: %w", cfg.ID, err)
	}
	t := newTask(e, cfg, with, st)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		delete(e.tasks, cfg.ID)
		return ErrClosed
	}
	e.tasks[cfg.ID] = t
	go t.run()
	return nil
}

func (e *Engine) unreserve(id string) {
	e.mu.Lock()
	delete(e.tasks, id)
	e.mu.Unlock()
}

// task returns the running task id.
func (e *Engine) task(id string) (*task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.tasks[id]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("%w: task %s", ErrNotFound, id)
}

// Stop stops the task and waits for it to end; its state stays in the
// StateStore, so Start resumes it. A change being applied is interrupted
// (its context canceled) and will be applied again, which is a no-op where
// it had completed.
func (e *Engine) Stop(id string) error {
	e.mu.Lock()
	t := e.tasks[id]
	if t != nil {
		delete(e.tasks, id)
	}
	e.mu.Unlock()
	if t == nil {
		return fmt.Errorf("%w: task %s", ErrNotFound, id)
	}
	t.stop()
	return nil
}

// Close stops every task and refuses new ones. It returns when all have
// ended.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	tasks := slices.Collect(maps.Values(e.tasks))
	e.tasks = map[string]*task{}
	e.mu.Unlock()
	for _, t := range tasks {
		if t != nil {
			t.stop()
		}
	}
	return nil
}

// Pause pauses the task after the change it is applying, and saves that it
// is paused: a task started again stays paused.
func (e *Engine) Pause(ctx context.Context, id string) error {
	t, err := e.task(id)
	if err != nil {
		return err
	}
	return t.control(ctx, "pause", func(s *State) error {
		s.Paused = true
		return nil
	})
}

// Resume continues a paused task. A task stopped at a conflict stays so
// until Resolve.
func (e *Engine) Resume(ctx context.Context, id string) error {
	t, err := e.task(id)
	if err != nil {
		return err
	}
	return t.control(ctx, "resume", func(s *State) error {
		s.Paused = false
		return nil
	})
}

// Resync starts a full resync of the task: its conflict is dropped, its
// cursor goes back to 0 and every change of the feed is applied again,
// idempotently (versions and configurations already on the target are
// skipped). Before applying, the task reads the whole feed once, so that
// only the last configuration of each app is written and only the last
// release of each app is released again. A paused task stays paused.
func (e *Engine) Resync(ctx context.Context, id string) error {
	t, err := e.task(id)
	if err != nil {
		return err
	}
	return t.control(ctx, "resync", func(s *State) error {
		s.Cursor = 0
		s.Conflicts = nil
		s.Resolved = nil
		s.Latest = nil
		s.Scan = true
		return nil
	})
}

// Resolve answers the task's conflict conflictID: SourceWins applies the
// change and continues, KeepTarget skips it and keeps the target's
// configuration as the baseline, Stop pauses the task (Resume checks the
// change again). A ReasonDigest conflict cannot be resolved with
// SourceWins (versions are immutable).
func (e *Engine) Resolve(ctx context.Context, id, conflictID string, r Resolution) error {
	t, err := e.task(id)
	if err != nil {
		return err
	}
	return t.control(ctx, "resolve", func(s *State) error {
		i := slices.IndexFunc(s.Conflicts, func(c Conflict) bool { return c.ID == conflictID })
		if i < 0 {
			return fmt.Errorf("%w: task %s has no conflict %s", ErrNotFound, id, conflictID)
		}
		c := s.Conflicts[i]
		switch r {
		case SourceWins, KeepTarget:
			if r == SourceWins && c.Reason == ReasonDigest {
				return fmt.Errorf("%w: conflict %s: version %s exists on the target with another digest and is never overwritten; delete it there and Resume, or keep the target's", ErrState, c.ID, c.Version)
			}
			s.Resolved = &Resolved{Seq: c.Seq, Resolution: r}
		case Stop:
			s.Paused = true
		default:
			return fmt.Errorf("%w: resolution must be %s, %s or %s, got %q", ErrInvalid, SourceWins, KeepTarget, Stop, r)
		}
		s.Conflicts = slices.Delete(s.Conflicts, i, i+1)
		return nil
	})
}

// Status returns a snapshot of the task.
func (e *Engine) Status(id string) (Status, error) {
	t, err := e.task(id)
	if err != nil {
		return Status{}, err
	}
	return t.status(), nil
}

// Statuses returns a snapshot of every running task, by ID.
func (e *Engine) Statuses() []Status {
	e.mu.Lock()
	tasks := make([]*task, 0, len(e.tasks))
	for _, t := range e.tasks {
		if t != nil {
			tasks = append(tasks, t)
		}
	}
	e.mu.Unlock()
	out := make([]Status, 0, len(tasks))
	for _, t := range tasks {
		out = append(out, t.status())
	}
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.Task, b.Task) })
	return out
}
