package lb

import (
	"errors"
	"sort"
	"strings"
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
type FieldError struct {
	// Field is the JSON path of the field, e.g. "listeners[0].port".
	Field string `json:"field"`
	// Message says what is wrong, e.g. "must be at most 65535".
	Message string `json:"message"`
}

// ValidationError lists every field error of a rejected config. It wraps
// ErrInvalidConfig. A REST API can answer with Fields() as
// {"error":{"fields":{...}}}.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalidConfig.Error())
	for i, f := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field)
		b.WriteString(": ")
		b.WriteString(f.Message)
	}
	return b.String()
}

func (e *ValidationError) Unwrap() error { return ErrInvalidConfig }

// Fields maps each field path to its messages joined by "; ".
func (e *ValidationError) Fields() map[string]string {
	m := make(map[string]string, len(e.Errors))
	for _, f := range e.Errors {
		if prev, ok := m[f.Field]; ok {
			m[f.Field] = prev + "; " + f.Message
			continue
		}
		m[f.Field] = f.Message
	}
	return m
}

func (e *ValidationError) add(field, msg string) {
	e.Errors = append(e.Errors, FieldError{Field: field, Message: msg})
}

// err returns nil when nothing was added, so callers can `return v.err()`.
func (e *ValidationError) err() error {
	if len(e.Errors) == 0 {
		return nil
	}
	sort.SliceStable(e.Errors, func(i, j int) bool { return e.Errors[i].Field < e.Errors[j].Field })
	return e
}
