package dr

import (
	"context"
	"time"
)

// Driver operates the two instances of one DR group for its kind of
// middleware. A driver is opened per group with its GroupConfig (see
// DriverFunc) and keeps no state that matters across restarts, but for what
// Unfence restores; the Manager tracks the group's state and direction and
// passes the direction to every call.
//
// Every method takes the direction of sync the group has when the call
// starts: its primary is d.Primary() and its replica d.Replica(). Methods are
// safe for concurrent use, but the Manager never runs two changing calls on
// one group at once. They return errors wrapping ErrUnreachable when an
// instance they need does not answer. Package drtest holds the conformance
// suite every driver runs.
type Driver interface {
	// Pair makes the replica replicate the primary and waits until the
	// initial sync has completed and the replica has caught up with the
	// primary's offset as of that moment. It discards what the replica held
	// and lifts a fence on it. Pair in Forward is forward sync; after a
	// switchover, Pair in the new direction is reverse sync: the old
	// primary becomes the replica.
	Pair(ctx context.Context, d Direction) error

	// Status reports both instances and the link between them. An
	// unreachable instance is reported in the Status, not as an error; the
	// error is for a call that could not be made at all.
	Status(ctx context.Context, d Direction) (Status, error)

	// Fence stops the primary taking writes, so that promoting the replica
	// never leaves two writable primaries. Replication to the replica goes
	// on, so it can catch up. It fails (wrapping ErrUnreachable, or ErrFence
	// when the primary answered but refused) when the fence is not in place.
	Fence(ctx context.Context, d Direction) error

	// Unfence lets a fenced primary take writes again, as it was before
	// Fence. It does nothing to a primary that is not fenced.
	Unfence(ctx context.Context, d Direction) error

	// Promote makes the replica a writable primary, replicating nothing. It
	// refuses (ErrNotFenced) while the primary answers and is not fenced;
	// unless opts.Force it also refuses when the replica lacks writes
	// (ErrLagNotZero) or when that cannot be known because the primary does
	// not answer (ErrLagUnknown). It returns the status just before the
	// promotion, refused or not: what the replica lacked.
	Promote(ctx context.Context, d Direction, opts PromoteOptions) (Status, error)

	// Unpair stops replication: the replica keeps its data but stays fenced,
	// so that a group never has two writable primaries. Pair starts over.
	Unpair(ctx context.Context, d Direction) error

	// Compare samples up to n keys of the primary and compares them with the
	// replica, without writing to either: drills use it.
	Compare(ctx context.Context, d Direction, n int) (Comparison, error)

	// Close releases the driver's connections.
	Close() error
}

// DriverFunc opens the driver of a DR group. Manager calls it in AddGroup;
// cfg has been validated.
type DriverFunc func(cfg GroupConfig) (Driver, error)

// PromoteOptions tunes Driver.Promote.
type PromoteOptions struct {
	// Force promotes although the replica lacks writes, or may lack them
	// because its primary does not answer. The caller accepts the loss that
	// the returned Status (or an earlier one) estimates.
	Force bool
}

// Status is what a driver knows of a DR group at one moment.
type Status struct {
	// Direction is the direction of sync the status was read for.
	Direction Direction `json:"direction"`
	// At is when the status was read.
	At time.Time `json:"at"`
	// Primary and Replica are the two instances, by role in Direction.
	Primary InstanceStatus `json:"primary"`
	Replica InstanceStatus `json:"replica"`
	// LinkUp: the replica replicates from the primary and its initial sync
	// is complete.
	LinkUp bool `json:"link_up"`
	// Syncing: an initial (full) sync is in progress.
	Syncing bool `json:"syncing"`
	// LastContact is when the replica last heard from its primary; zero
	// when it never did or does not replicate.
	LastContact time.Time `json:"last_contact,omitzero"`
	// Lag is how far the replica is behind its primary.
	Lag Lag `json:"lag"`
}

// InSync reports whether the replica replicates its primary with its initial
// sync done. Lag may still be above zero: writes are in flight.
func (s Status) InSync() bool { return s.LinkUp && !s.Syncing && s.Replica.Reachable }

// InstanceStatus is one instance of a Status.
type InstanceStatus struct {
	// Reachable: the instance answered. When false, Error says why and the
	// other fields are zero.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Primary: the instance is a primary (not replicating anything).
	Primary bool `json:"primary"`
	// Fenced: the instance is a primary that refuses writes.
	Fenced bool `json:"fenced"`
	// Offset is the instance's replication offset: of its writes for a
	// primary, of what it applied for a replica.
	Offset int64 `json:"offset"`
	// Keys is how many keys (or records) the instance holds; -1 when the
	// kind cannot count them.
	Keys int64 `json:"keys"`
}

// Writable reports whether the instance takes writes.
func (s InstanceStatus) Writable() bool { return s.Reachable && s.Primary && !s.Fenced }

// Lag is how far a replica is behind its primary: for Status, now; for a
// report's RPO, at the moment its primary was fenced or lost.
type Lag struct {
	// Known is false when the primary did not answer, so its figures are
	// those of its last contact: the replica lacks at least this much.
	Known bool `json:"known"`
	// Bytes of the primary's replication stream the replica has not
	// applied; -1 when unknown.
	Bytes int64 `json:"bytes"`
	// Keys the primary holds beyond those of the replica: new keys not
	// replicated (changes to existing keys do not count); -1 when unknown or
	// the kind cannot count keys.
	Keys int64 `json:"keys"`
	// Time is how long the replica had not heard from its primary when it
	// lacked writes; zero when it lacked none.
	Time Duration `json:"time"`
}

// Comparison is the result of Driver.Compare.
type Comparison struct {
	// Sampled is how many distinct keys were compared.
	Sampled int `json:"sampled"`
	// Missing counts sampled keys the replica lacks; Different those whose
	// values differ.
	Missing   int `json:"missing"`
	Different int `json:"different"`
	// Examples names up to ten keys that are missing or differ.
	Examples []string `json:"examples,omitempty"`
}

// Consistent reports whether every sampled key was equal.
func (c Comparison) Consistent() bool { return c.Missing == 0 && c.Different == 0 }
