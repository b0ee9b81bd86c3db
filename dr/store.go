package dr

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Store persists what the Manager must not forget: every transition of a DR
// group's state, and every run. A control plane backs it with its database;
// MemoryStore keeps it in memory.
//
// The Manager calls a Store from several goroutines at once; implementations
// must be safe for concurrent use. Values passed in are not changed later, and
// values returned are not changed by the Manager.
type Store interface {
	// AddTransition appends t to the transitions of group.
	AddTransition(ctx context.Context, group string, t Transition) error
	// Transitions returns the transitions of group, oldest first; none for
	// a group never seen.
	Transitions(ctx context.Context, group string) ([]Transition, error)
	// SaveRun stores r, replacing the run with the same ID. The Manager
	// saves a run each time it changes.
	SaveRun(ctx context.Context, r Run) error
	// Run returns the run with the ID, or an error wrapping ErrRunNotFound.
	Run(ctx context.Context, id string) (Run, error)
	// Runs returns every run, the most recently started first.
	Runs(ctx context.Context) ([]Run, error)
}

// MemoryStore is a Store in memory, for tests and for a manager whose history
// may be lost with its process. The zero value is ready to use.
type MemoryStore struct {
	mu          sync.Mutex
	transitions map[string][]Transition
	runs        map[string]Run
}

// AddTransition implements Store.
func (s *MemoryStore) AddTransition(_ context.Context, group string, t Transition) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transitions == nil {
		s.transitions = make(map[string][]Transition)
	}
	s.transitions[group] = append(s.transitions[group], t)
	return nil
}

// Transitions implements Store.
func (s *MemoryStore) Transitions(_ context.Context, group string) ([]Transition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.transitions[group]), nil
}

// SaveRun implements Store.
func (s *MemoryStore) SaveRun(_ context.Context, r Run) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs == nil {
		s.runs = make(map[string]Run)
	}
	s.runs[r.ID] = r
	return nil
}

// Run implements Store.
func (s *MemoryStore) Run(_ context.Context, id string) (Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.runs[id]
	if !ok {
		return Run{}, fmt.Errorf("dr: run %q: %w", id, ErrRunNotFound)
	}
	return r, nil
}

// Runs implements Store.
func (s *MemoryStore) Runs(_ context.Context) ([]Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Run, 0, len(s.runs))
	for _, r := range s.runs {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Run) int { return b.Started.Compare(a.Started) })
	return out, nil
}

var _ Store = (*MemoryStore)(nil)
