package appsync

import (
	"errors"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Sentinel errors. Errors returned by the package wrap one of these and name
// the task, change (by seq), project, app or version, so callers test with
// errors.Is and still read which thing failed.
var (
	// ErrInvalid is wrapped by every *ValidationError and by bad options,
	// such as a key shorter than MinKeySize.
	ErrInvalid = errors.New("appsync: invalid configuration")
	// ErrForged: a change's MAC does not match its content under the shared
	// key. The change is never applied, and the task holds at it, retrying.
	ErrForged = errors.New("appsync: change forged or corrupted (bad MAC)")
	// ErrMalformed: a change breaks the rules of Change.Validate, or its seq
	// does not follow the cursor. The change is rejected and never applied.
	ErrMalformed = errors.New("appsync: malformed change")
	// ErrOutsideBinding: a ProjectMap does not cover the change's project.
	// The change is rejected and never applied.
	ErrOutsideBinding = errors.New("appsync: project outside the binding")
	// ErrNotFound: no task has that ID, no conflict has that ID, or (from a
	// Feed) no version has that name.
	ErrNotFound = errors.New("appsync: not found")
	// ErrExists: Start was given the ID of a task already running.
	ErrExists = errors.New("appsync: task already running")
	// ErrState: the task's state does not allow the operation, such as
	// resolving a conflict of a task that has none.
	ErrState = errors.New("appsync: not allowed in the task's state")
	// ErrDigest: a version exists on the target with another digest than
	// the source's. Versions are immutable: it is never overwritten.
	ErrDigest = errors.New("appsync: version exists with another digest")
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("appsync: engine closed")
	// ErrProtocol: a feed server answered something the feed protocol does
	// not allow (status, size, JSON).
	ErrProtocol = errors.New("appsync: feed protocol error")
)

// errHold explains why a task retries a forged change instead of reading past it.
var errHold = errors.New("the task holds at this change until the feed serves it signed with this center's key (are the two centers' sync keys the same?)")

// ValidationError lists every field error of a rejected configuration, each by its JSON path
// (such as "steps[2].timeout"), so that an API can report them all at once with Fields(). It
// wraps ErrInvalid. It is the one validation error of every shuanghuo package.
type ValidationError = validate.List
