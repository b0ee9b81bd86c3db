package dnsctl

import (
	"errors"
	"strings"
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

// FieldError is one problem with one field. Path uses the JSON names, e.g.
// "zones[0].record_sets[2].data[0]", relative to the value that was validated.
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ValidationError lists every field error found in a Config, Zone, Change or
// Scope, so an API can report them all at once. It wraps ErrInvalid.
type ValidationError struct {
	Fields []FieldError `json:"fields"`
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalid.Error())
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Path)
		b.WriteString(": ")
		b.WriteString(f.Message)
	}
	return b.String()
}

func (e *ValidationError) Unwrap() error { return ErrInvalid }

// fieldErrors collects FieldErrors under a path prefix.
type fieldErrors struct {
	list []FieldError
}

func (fe *fieldErrors) add(path, format string, args ...any) {
	fe.list = append(fe.list, FieldError{Path: path, Message: sprintf(format, args...)})
}

func (fe *fieldErrors) err() error {
	if len(fe.list) == 0 {
		return nil
	}
	return &ValidationError{Fields: fe.list}
}
