package logsvc

import (
	"errors"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Sentinel errors. Errors returned by this package wrap one of these, so callers
// test with errors.Is.
var (
	// ErrInvalid is wrapped by every *ValidationError.
	ErrInvalid = errors.New("logsvc: invalid configuration")
	// ErrCheckpoint: the checkpoint file could not be read or written.
	ErrCheckpoint = errors.New("logsvc: checkpoint")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("logsvc: collector already started")
	// ErrClosed: the collector was closed; a closed collector cannot be restarted.
	ErrClosed = errors.New("logsvc: collector closed")
	// ErrQuery: a query does not parse, or is over a limit. Errors wrapping it are *QueryError.
	ErrQuery = errors.New("logsvc: invalid query")
)

// ValidationError lists every field error of a rejected configuration, each by its JSON path
// (such as "sources[0].multiline.start"), so that an API can report them all at once with
// Fields(). It wraps ErrInvalid. It is the one validation error of every shuanghuo package.
type ValidationError = validate.List
