package dnsctl

import (
	"errors"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Sentinel errors. Errors returned by this package wrap one of these, so callers
// test with errors.Is and a REST layer can map them to status codes.
var (
	// ErrInvalid is wrapped by every *ValidationError.
	ErrInvalid = errors.New("dnsctl: invalid configuration")
	// ErrZoneNotFound: the zone is not served by this server.
	ErrZoneNotFound = errors.New("dnsctl: zone not found")
	// ErrRecordSetNotFound: no record set matches the name and type (or the Switch scope).
	ErrRecordSetNotFound = errors.New("dnsctl: record set not found")
	// ErrRecordSetExists: an "add" change names a record set that already exists.
	ErrRecordSetExists = errors.New("dnsctl: record set already exists")
	// ErrCenterNotFound: a Switch names a center that a record set in scope has no targets for.
	ErrCenterNotFound = errors.New("dnsctl: center not found")
	// ErrReadOnlyZone: the zone is a copy transferred from the primary and only the primary changes it.
	ErrReadOnlyZone = errors.New("dnsctl: zone is a read-only secondary copy")
	// ErrNoUpstream: no forwarder answered a forwarded query.
	ErrNoUpstream = errors.New("dnsctl: no upstream answered")
	// ErrTransfer: a zone transfer from the primary failed.
	ErrTransfer = errors.New("dnsctl: zone transfer failed")
	// ErrZoneFile: a zone file could not be parsed.
	ErrZoneFile = errors.New("dnsctl: bad zone file")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("dnsctl: server already started")
	// ErrClosed: the server was closed; a closed server cannot be restarted.
	ErrClosed = errors.New("dnsctl: server closed")
)

// ValidationError lists every field error found in a Config, Zone, Change or Scope, each by
// its JSON path relative to the value that was validated (such as
// "zones[0].record_sets[2].data[0]"), so that an API can report them all at once with
// Fields(). It wraps ErrInvalid. It is the one validation error of every shuanghuo package.
type ValidationError = validate.List

// fieldErrors collects field errors; its format arguments save the callers a Sprintf each.
type fieldErrors struct {
	list []validate.FieldError
}

func (fe *fieldErrors) add(path, format string, args ...any) {
	fe.list = append(fe.list, validate.FieldError{Field: path, Message: sprintf(format, args...)})
}

func (fe *fieldErrors) err() error {
	if len(fe.list) == 0 {
		return nil
	}
	return &ValidationError{Errors: fe.list, Cause: ErrInvalid}
}
