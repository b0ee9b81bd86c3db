package deploy

import (
	"errors"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Sentinel errors. Errors returned by the package and its drivers wrap one of
// these and name the app, version, node, instance or deployment, so callers
// test with errors.Is and still read which thing failed.
var (
	// ErrInvalid is wrapped by every *ValidationError and by bad options.
	ErrInvalid = errors.New("deploy: invalid configuration")
	// ErrNotFound: no app, version, node, instance or deployment has that
	// name or ID.
	ErrNotFound = errors.New("deploy: not found")
	// ErrExists: the name is taken. Versions are immutable: a version name
	// is never reused within its app.
	ErrExists = errors.New("deploy: already exists")
	// ErrChecksum: an artifact's content does not match its sha256 digest,
	// on upload or on any later transfer.
	ErrChecksum = errors.New("deploy: artifact checksum mismatch")
	// ErrTooLarge: an artifact exceeds the size limit.
	ErrTooLarge = errors.New("deploy: artifact too large")
	// ErrUnsafePath: a tarball entry or config file would land outside its
	// directory, or is a kind of file that is not installed (device, link
	// leaving the tree).
	ErrUnsafePath = errors.New("deploy: unsafe path")
	// ErrBusy: the app has a deployment that has not finished.
	ErrBusy = errors.New("deploy: app busy with a deployment")
	// ErrState: the operation is not allowed in the current state, such as
	// a rollback without a previous good version.
	ErrState = errors.New("deploy: not allowed in this state")
	// ErrHealth: an instance did not pass its health check in time.
	ErrHealth = errors.New("deploy: health check failed")
	// ErrCrashLoop: an instance kept exiting and its supervisor gave up.
	ErrCrashLoop = errors.New("deploy: instance in a crash loop")
	// ErrAborted: the deployment was aborted, by a failed health gate or by
	// Manager.Abort.
	ErrAborted = errors.New("deploy: deployment aborted")
	// ErrInterrupted: the deployment was running when its manager stopped;
	// its instances may run either version (see Deployment.Instances).
	ErrInterrupted = errors.New("deploy: deployment interrupted")
	// ErrDriver: a node driver failed to carry out an operation.
	ErrDriver = errors.New("deploy: node driver failed")
	// ErrHostKey: an SSH host's key is unknown or does not match known_hosts.
	ErrHostKey = errors.New("deploy: SSH host key not verified")
	// ErrUnsupported: the node's driver cannot do what was asked.
	ErrUnsupported = errors.New("deploy: not supported by the node driver")
	// ErrClosed: the manager or driver was closed.
	ErrClosed = errors.New("deploy: closed")
)

// ValidationError lists every field error of a rejected configuration, each by its JSON path
// (such as "steps[2].timeout"), so that an API can report them all at once with Fields(). It
// wraps ErrInvalid. It is the one validation error of every shuanghuo package.
type ValidationError = validate.List
