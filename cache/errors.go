package cache

import (
	"errors"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Sentinel errors. Errors returned by the package wrap one of these, or the
// Redis client's error, and name the instance by its address, never by its
// password.
var (
	// ErrInvalid is wrapped by every *ValidationError and by bad options.
	ErrInvalid = errors.New("cache: invalid configuration")
	// ErrNotFound: the key does not exist (or expired).
	ErrNotFound = errors.New("cache: key not found")
	// ErrReplica: a write was asked of a replica.
	ErrReplica = errors.New("cache: instance is a replica")
	// ErrNotReplica: the instance given to run a scan on is not a replica of
	// this one.
	ErrNotReplica = errors.New("cache: not a replica of this instance")
	// ErrNoLFU: hot keys need an LFU maxmemory-policy; the error names the
	// instance's policy.
	ErrNoLFU = errors.New("cache: maxmemory-policy is not an LFU policy")
)

// ValidationError lists every field error of a rejected configuration, each
// by its JSON path, so that an API can report them all at once with Fields().
// It wraps ErrInvalid. It is the one validation error of every shuanghuo
// package.
type ValidationError = validate.List
