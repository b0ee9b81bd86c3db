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

// ValidationError lists every field error of a rejected TaskConfig or
// Binding, so an API can report them all at once as
// {"error":{"fields":{...}}}. It wraps ErrInvalid.
type ValidationError struct {
	// Fields maps each field's JSON path, such as "config.source_ranges[1]"
	// or "retry_max", to what is wrong with it.
	Fields map[string]string `json:"fields"`
}

func (e *ValidationError) Error() string { return validate.Describe(ErrInvalid.Error(), e.Fields) }

func (e *ValidationError) Unwrap() error { return ErrInvalid }

// add records msg for path, after any message already there.
func (e *ValidationError) add(path, msg string) { validate.Add(&e.Fields, path, msg) }

// err returns e, or nil when it holds no field error.
func (e *ValidationError) err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}
