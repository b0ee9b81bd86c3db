package dr

import (
	"errors"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Sentinel errors. Errors returned by the package and its drivers wrap one of
// these and name the DR group, run or step, so callers test with errors.Is and
// still read which thing failed.
var (
	// ErrInvalid is wrapped by every *ValidationError.
	ErrInvalid = errors.New("dr: invalid configuration")
	// ErrGroupNotFound: no DR group has that name.
	ErrGroupNotFound = errors.New("dr: DR group not found")
	// ErrGroupExists: AddGroup was given a name already in use.
	ErrGroupExists = errors.New("dr: DR group already exists")
	// ErrState: the DR group's state does not allow the operation, such as
	// reverse sync of a group that was not promoted.
	ErrState = errors.New("dr: not allowed in the DR group's state")
	// ErrBusy: the DR group takes part in a run that has not finished.
	ErrBusy = errors.New("dr: DR group is busy with a run")
	// ErrUnreachable: an instance did not answer.
	ErrUnreachable = errors.New("dr: instance unreachable")
	// ErrFence: a reachable primary could not be fenced.
	ErrFence = errors.New("dr: fencing failed")
	// ErrNotFenced: promotion was refused because the primary is reachable
	// and still takes writes; fence it first.
	ErrNotFenced = errors.New("dr: primary reachable and not fenced")
	// ErrLagUnknown: promotion was refused because the primary cannot be
	// reached, so what the replica lacks is unknown; force it to accept the
	// estimate from the last contact.
	ErrLagUnknown = errors.New("dr: replication lag unknown")
	// ErrLagNotZero: promotion was refused because the replica lacks writes
	// of the fenced primary; force it to accept the loss.
	ErrLagNotZero = errors.New("dr: replica lags behind its primary")
	// ErrNotCaughtUp: the replica did not catch up with its primary in time.
	ErrNotCaughtUp = errors.New("dr: replica did not catch up")
	// ErrPrecheck: a DR group is not ready to switch over.
	ErrPrecheck = errors.New("dr: precheck failed")
	// ErrInconsistent: sampled keys differ between primary and replica.
	ErrInconsistent = errors.New("dr: primary and replica differ")
	// ErrVerify: a probe of the service did not succeed in time.
	ErrVerify = errors.New("dr: verification failed")
	// ErrRunNotFound: no run has that ID.
	ErrRunNotFound = errors.New("dr: run not found")
	// ErrRunState: the run's state does not allow the operation, such as
	// confirming a step that is not waiting at its gate.
	ErrRunState = errors.New("dr: not allowed in the run's state")
	// ErrClosed: the manager was closed.
	ErrClosed = errors.New("dr: manager closed")
)

// ValidationError lists every field error of a rejected configuration, each by its JSON path
// (such as "steps[2].timeout"), so that an API can report them all at once with Fields(). It
// wraps ErrInvalid. It is the one validation error of every shuanghuo package.
type ValidationError = validate.List
