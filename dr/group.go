package dr

import (
	"fmt"
	"slices"
	"time"
)

// State is where a DR group is in its life:
//
//	unpaired → syncing → in-sync → promoted → reverse-syncing → in-sync → …
//
// The syncing states are named after the direction: syncing for forward sync,
// reverse-syncing for reverse sync (so switching back to A goes promoted →
// syncing → in-sync). A group in sync whose link goes down falls back to its
// syncing state until the replica replicates again; a promotion that is rolled
// back returns the group to the syncing state of its old direction; unpairing
// returns it to unpaired from any state.
type State string

// The states of a DR group.
const (
	StateUnpaired       State = "unpaired"
	StateSyncing        State = "syncing"
	StateInSync         State = "in-sync"
	StatePromoted       State = "promoted"
	StateReverseSyncing State = "reverse-syncing"
)

// transitions lists the states each state may move to.
var transitions = map[State][]State{
	StateUnpaired:       {StateSyncing, StateReverseSyncing},
	StateSyncing:        {StateInSync, StatePromoted, StateUnpaired},
	StateInSync:         {StateSyncing, StateReverseSyncing, StatePromoted, StateUnpaired},
	StatePromoted:       {StateReverseSyncing, StateSyncing, StateUnpaired},
	StateReverseSyncing: {StateInSync, StatePromoted, StateUnpaired},
}

// canMove reports whether a group may move from one state to another.
func canMove(from, to State) bool { return slices.Contains(transitions[from], to) }

// Transition is one recorded change of a DR group's state.
type Transition struct {
	Time time.Time `json:"time"`
	From State     `json:"from"`
	To   State     `json:"to"`
	// Direction is the group's direction of sync after the transition.
	Direction Direction `json:"direction"`
	// Reason says what caused the transition, such as "pair" or
	// "switchover run 3f2a…: promoted b".
	Reason string `json:"reason"`
}

// Group is a snapshot of a DR group as the Manager knows it.
type Group struct {
	Name      string    `json:"name"`
	Kind      Kind      `json:"kind"`
	State     State     `json:"state"`
	Direction Direction `json:"direction"`
	// HeldBy names what holds the group, so that nothing else starts on
	// it: the ID of a run (or of a run being rolled back), or "pair",
	// "reverse" or "unpair" while that operation runs; empty when free.
	HeldBy string `json:"held_by,omitempty"`
	// Status is the last status read, by Manager.Status or the monitor;
	// nil before the first.
	Status *Status `json:"status,omitempty"`
	// LastContact is the last status in which the primary answered: what
	// a promotion after losing the primary counts its RPO from. Nil before
	// the first.
	LastContact *Status `json:"last_contact,omitempty"`
	// Transitions are the group's recorded transitions, oldest first.
	Transitions []Transition `json:"transitions"`
}

// syncingState returns the state of a group whose replica syncs in d.
func syncingState(d Direction) State {
	if d == Reverse {
		return StateReverseSyncing
	}
	return StateSyncing
}

// restoreState returns a group's state and direction from its recorded
// transitions: unpaired and forward when there are none.
func restoreState(ts []Transition) (State, Direction) {
	if len(ts) == 0 {
		return StateUnpaired, Forward
	}
	last := ts[len(ts)-1]
	return last.To, last.Direction
}

// stateError says that op is not allowed for group in state.
func stateError(group, op string, state State) error {
	return fmt.Errorf("dr: %s DR group %q in state %s: %w", op, group, state, ErrState)
}
