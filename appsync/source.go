package appsync

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Page is one read of a feed.
type Page struct {
	// Changes after the cursor, in seq order, at most the limit asked for.
	Changes []Change `json:"changes"`
	// Head is the seq of the feed's last change (0 for an empty feed), so
	// that a reader knows how far behind it is.
	Head int64 `json:"head"`
	// Pending, when the Source counts it, is how many changes follow the
	// cursor read after, those in Changes included: the lag in events. Nil:
	// the lag is estimated as Head minus the cursor, which over-counts where
	// seqs are shared with changes outside the feed.
	Pending *int64 `json:"pending,omitempty"`
	// Rejected lists changes a Source refused on receipt (HTTPSource: a bad
	// MAC) instead of returning them; the Engine counts and reports them
	// and reads on past them. It is not part of the wire format.
	Rejected []Rejection `json:"-"`
}

// Rejection records a change that was refused and not applied: forged,
// malformed, or of a project outside the binding.
type Rejection struct {
	Seq     int64      `json:"seq"`
	Kind    ChangeKind `json:"kind,omitempty"`
	Project string     `json:"project,omitempty"`
	App     string     `json:"app,omitempty"`
	// Error says why; the error it comes from wraps ErrForged, ErrMalformed
	// or ErrOutsideBinding.
	Error string    `json:"error"`
	Time  time.Time `json:"time"`
}

// Source is the source center's side of a sync task: its signed change feed
// and the artifacts of its versions. A Source must be safe for concurrent
// use; an Engine calls it from one goroutine per task.
type Source interface {
	// Changes returns the changes with a seq above after, at most limit of
	// them, in order, each signed (Sign). When there is none it waits up to
	// wait for one, and then returns an empty page; it returns early when
	// ctx ends.
	Changes(ctx context.Context, after int64, limit int, wait time.Duration) (Page, error)
	// Artifact opens the artifact of a version. The caller closes it. The
	// Sink checks it against the change's digest or piece sums; the Source
	// need not.
	Artifact(ctx context.Context, project, app, version string) (io.ReadCloser, error)
}

// Feed is what a source center serves through FeedHandler: the Source's
// operations, before signing. A Feed must be safe for concurrent use.
type Feed interface {
	// Changes is Source.Changes, with unsigned changes.
	Changes(ctx context.Context, after int64, limit int, wait time.Duration) (Page, error)
	// Artifact opens the artifact of a version and gives its digest
	// ("sha256:<hex>") and size (-1 if unknown). The error wraps
	// ErrNotFound for an unknown version.
	Artifact(ctx context.Context, project, app, version string) (rc io.ReadCloser, digest string, size int64, err error)
}

// Sink is the target center. Its operations are idempotent and name what
// they act on, so that a change applied twice changes nothing the second
// time. A Sink must be safe for concurrent use: tasks call it from their
// goroutines. Projects given to it are the target's (mapped).
type Sink interface {
	// Version returns the digest of a version of the app, and ok false when
	// the app has no such version.
	Version(ctx context.Context, project, app, version string) (digest string, ok bool, err error)
	// AddVersion stores a new version of the app, reading its artifact from
	// r to the end. The sink keeps nothing unless it read exactly a.Size
	// bytes with a.Digest. Where a has piece sums it may check each piece
	// against them instead, in parallel, since the source computed them
	// with the digest and they are signed with it; a sink that cannot use
	// pieces of a.PieceSize checks the whole digest.
	AddVersion(ctx context.Context, project, app, version, notes string, a Artifact, r io.Reader) error
	// Current returns the app's released version, "" before its first
	// release.
	Current(ctx context.Context, project, app string) (version string, err error)
	// Release releases a stored version of the app on nodes (nil: the
	// app's current nodes) and returns when the release has ended, with an
	// error if it failed.
	Release(ctx context.Context, project, app, version string, nodes []string) error
	// AppConfig returns the app's whole configuration, a JSON object, and
	// ok false when there is no such app.
	AppConfig(ctx context.Context, project, app string) (cfg json.RawMessage, ok bool, err error)
	// PutAppConfig creates the app or replaces its configuration.
	PutAppConfig(ctx context.Context, project, app string, cfg json.RawMessage) error
	// DeleteApp deletes the app; deleting a missing app is not an error.
	DeleteApp(ctx context.Context, project, app string) error
}

// Artifact is what a release change says of a version's artifact.
type Artifact struct {
	// Digest is the sha256 of the whole artifact, "sha256:<hex>".
	Digest string
	// Size is its length in bytes.
	Size int64
	// PieceSize and Pieces are its piece sums, as Change has them: the
	// sha256 of each PieceSize-byte piece, 64 hex digits a piece. 0 and
	// "": the change has none.
	PieceSize int64
	Pieces    string
}

// ProjectMap maps a project of the source center to its counterpart in the
// target center. For a project the binding does not cover it returns an
// error wrapping ErrOutsideBinding; other errors are retried. It must be
// safe for concurrent use.
type ProjectMap func(ctx context.Context, sourceProject string) (targetProject string, err error)

// BindProject returns the ProjectMap of a project binding: source maps to
// target, every other project is outside the binding. A team binding's map
// is the control plane's, as it knows the teams' projects.
func BindProject(source, target string) ProjectMap {
	return func(_ context.Context, p string) (string, error) {
		if p != source {
			return "", fmt.Errorf("%w: project %q is not %q", ErrOutsideBinding, p, source)
		}
		return target, nil
	}
}
