package appsync

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// State is what a task persists after each change, so that a task started
// again (by a new process) resumes exactly where it was. It is written as
// JSON by MemoryStateStore; other stores may do the same.
type State struct {
	// Cursor is the seq of the last change the task is done with: applied,
	// skipped or rejected.
	Cursor int64 `json:"cursor"`
	// Paused is set by Pause and by a Stop resolution, cleared by Resume.
	Paused bool `json:"paused,omitempty"`
	// Applied, Skipped and Rejected count the task's changes since it was
	// created: applied changed the target, skipped needed no change (already
	// there, superseded, or an app outside the policy), rejected were
	// refused. Changes of the other task kind are not counted.
	Applied  int64 `json:"applied"`
	Skipped  int64 `json:"skipped"`
	Rejected int64 `json:"rejected"`
	// LastApplied is the last change that changed the target.
	LastApplied *Applied `json:"last_applied,omitempty"`
	// LastRejection is the last change refused.
	LastRejection *Rejection `json:"last_rejection,omitempty"`
	// Conflicts holds the conflict the task stopped at, until resolved.
	Conflicts []Conflict `json:"conflicts,omitempty"`
	// Resolved is the operator's resolution of the conflict at its seq,
	// kept until the task has acted on it.
	Resolved *Resolved `json:"resolved,omitempty"`
	// Baselines maps each target app ("project/app") of a config task to
	// the sha256 of the configuration (excluded keys left out) the task last
	// wrote or accepted; drift is a target that differs from it.
	Baselines map[string]string `json:"baselines,omitempty"`
	// Latest maps "kind/project/app" of the source to the seq of the last
	// such change seen beyond the cursor: an earlier change of the same app
	// is superseded, so a full resync does not walk the target through old
	// configurations and releases.
	Latest map[string]int64 `json:"latest,omitempty"`
	// Scan is set by Resync: the task reads the whole feed to fill Latest
	// before applying anything.
	Scan bool `json:"scan,omitempty"`
}

// Resolved is an operator's resolution of the conflict at Seq.
type Resolved struct {
	Seq        int64      `json:"seq"`
	Resolution Resolution `json:"resolution"`
}

// StateStore persists the state of tasks. It must be safe for concurrent
// use; an Engine saves each task's state from that task's goroutine and from
// the calls that change it (Pause, Resolve…), never two at once for one
// task.
type StateStore interface {
	// Load returns the state saved for the task, and ok false when none
	// was.
	Load(ctx context.Context, taskID string) (s State, ok bool, err error)
	// Save replaces the task's state. When it returns nil the state must
	// survive a restart of the process (for a durable store).
	Save(ctx context.Context, taskID string, s State) error
}

// MemoryStateStore is a StateStore in memory, for tests and examples: the
// state survives a new Engine on the same store, not a new process. The zero
// value is ready to use.
type MemoryStateStore struct {
	mu     sync.Mutex
	states map[string][]byte
}

// Load returns a copy of the task's state.
func (m *MemoryStateStore) Load(_ context.Context, taskID string) (State, bool, error) {
	m.mu.Lock()
	b, ok := m.states[taskID]
	m.mu.Unlock()
	if !ok {
		return State{}, false, nil
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, false, fmt.Errorf("appsync: load state of task %s: %w", taskID, err)
	}
	return s, true, nil
}

// Save stores a copy of the task's state, encoded as JSON as a durable
// store would, so that what does not survive encoding shows in tests.
func (m *MemoryStateStore) Save(_ context.Context, taskID string, s State) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("appsync: save state of task %s: %w", taskID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.states == nil {
		m.states = make(map[string][]byte)
	}
	m.states[taskID] = b
	return nil
}

// TaskState is what a task is doing.
type TaskState string

// The states of a task.
const (
	// StateRunning: the task reads the feed and applies changes, or waits
	// for new ones.
	StateRunning TaskState = "running"
	// StatePaused: paused by Pause or a Stop resolution; Resume continues.
	StatePaused TaskState = "paused"
	// StateConflict: stopped at a conflict until Resolve.
	StateConflict TaskState = "conflict"
	// StateRetrying: the last attempt failed (see Status.LastError); the
	// task tries again after a backoff.
	StateRetrying TaskState = "retrying"
)

// Status is a snapshot of a task.
type Status struct {
	Task   string    `json:"task"`
	Kind   TaskKind  `json:"kind"`
	State  TaskState `json:"state"`
	Cursor int64     `json:"cursor"`
	// Head is the seq of the feed's last change, as last read.
	Head int64 `json:"head"`
	// LagEvents is how many changes of the feed are after the cursor.
	LagEvents int64 `json:"lag_events"`
	// LagSeconds is how long ago the oldest change not yet done happened in
	// the source center; 0 when caught up.
	LagSeconds float64 `json:"lag_seconds"`
	// Applied, Skipped and Rejected are State's counters.
	Applied       int64      `json:"applied"`
	Skipped       int64      `json:"skipped"`
	Rejected      int64      `json:"rejected"`
	LastApplied   *Applied   `json:"last_applied,omitempty"`
	LastRejection *Rejection `json:"last_rejection,omitempty"`
	// LastError is the error of the last failed attempt, "" once an attempt
	// succeeded; Retries counts the failed attempts in a row.
	LastError string `json:"last_error,omitempty"`
	Retries   int    `json:"retries,omitempty"`
	// Conflicts holds the conflict the task stopped at.
	Conflicts []Conflict `json:"conflicts,omitempty"`
}

// Applied records a change that changed the target.
type Applied struct {
	Seq  int64      `json:"seq"`
	Kind ChangeKind `json:"kind"`
	// Project is the target's project.
	Project string `json:"project"`
	App     string `json:"app"`
	// Version is the version released or copied (release changes).
	Version string `json:"version,omitempty"`
	// Time is when the change was applied.
	Time time.Time `json:"time"`
}

// ConflictReason says why a task stopped at a change.
type ConflictReason string

// The reasons of conflicts.
const (
	// ReasonDrift: the target's configuration was changed outside the task
	// (it differs from what the task last wrote, or the task never wrote
	// it) and differs from the source's.
	ReasonDrift ConflictReason = "drift"
	// ReasonCenterSpecific: the source's configuration holds addresses of
	// the source center's networks (ConfigPolicy.SourceRanges).
	ReasonCenterSpecific ConflictReason = "center-specific"
	// ReasonDigest: the target has the version with another digest.
	// Versions are immutable: SourceWins cannot overwrite it; delete it on
	// the target first, or keep the target's.
	ReasonDigest ConflictReason = "digest"
)

// Conflict is a change a task stopped at rather than overwrite the target.
type Conflict struct {
	// ID names the conflict for Resolve: "<task>-<seq>".
	ID     string         `json:"id"`
	Seq    int64          `json:"seq"`
	Kind   ChangeKind     `json:"kind"`
	Reason ConflictReason `json:"reason"`
	// Project is the target's project.
	Project string `json:"project"`
	App     string `json:"app"`
	// Version is the version of a release change.
	Version string `json:"version,omitempty"`
	// Diff lists the fields where the target differs from the source
	// (excluded keys left out): for a drift, a digest, or a deleted app.
	Diff []FieldDiff `json:"diff,omitempty"`
	// Flagged lists the source's center-specific values.
	Flagged  []Flag    `json:"flagged,omitempty"`
	Detected time.Time `json:"detected"`
}

// FieldDiff is one field that differs between source and target.
type FieldDiff struct {
	// Path is the field's path in the configuration, such as
	// "datasource.url" or "hosts[2]".
	Path string `json:"path"`
	// Source and Target are the field's JSON values; absent on the side
	// that lacks the field.
	Source json.RawMessage `json:"source,omitempty"`
	Target json.RawMessage `json:"target,omitempty"`
}

// Flag is a center-specific value of the source's configuration.
type Flag struct {
	Path  string `json:"path"`
	Value string `json:"value"`
}

// Resolution is an operator's answer to a conflict.
type Resolution string

// The resolutions of a conflict.
const (
	// SourceWins applies the change as it is and continues. (For a
	// ReasonDigest conflict the task checks again: the target's version is
	// never overwritten.)
	SourceWins Resolution = "source-wins"
	// KeepTarget skips the change, takes the target's configuration as the
	// task's new baseline, and continues.
	KeepTarget Resolution = "keep-target"
	// Stop pauses the task and drops the conflict; Resume checks the change
	// again.
	Stop Resolution = "stop"
)
