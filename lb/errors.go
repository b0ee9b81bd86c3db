package lb

import (
	"errors"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Sentinel errors. Errors returned by the package wrap one of these, so
// callers can test with errors.Is and still read which thing failed.
var (
	// ErrInvalidConfig is wrapped by every *ValidationError.
	ErrInvalidConfig = errors.New("lb: invalid config")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("lb: balancer closed")
	// ErrNoConfig is returned by calls that need an applied config before the first Apply.
	ErrNoConfig = errors.New("lb: no config applied")
	// ErrUnknownVersion is returned by Rollback for a version that is not kept.
	ErrUnknownVersion = errors.New("lb: unknown config version")
	// ErrUnknownServer is returned by Drain and Undrain for a group or server
	// that the current config does not have.
	ErrUnknownServer = errors.New("lb: unknown server")
	// ErrDrainDeadline is returned by Drain when requests were still in flight
	// at the deadline; they were cut.
	ErrDrainDeadline = errors.New("lb: drain deadline exceeded")
	// ErrListen is wrapped by Apply's error when a listener's port cannot be
	// opened (in use, no permission); the push is rejected as a whole.
	ErrListen = errors.New("lb: cannot listen")
)

// FieldError is one rejected field of a config.
type FieldError = validate.FieldError

// ValidationError lists every field error of a rejected config, sorted by field. It wraps
// ErrInvalidConfig. A REST API can answer with Fields() as {"error":{"fields":{...}}}.
type ValidationError = validate.List
