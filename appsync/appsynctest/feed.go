// Package appsynctest has in-memory fakes of both ends of a sync task, for
// tests of appsync and of code that uses it: Feed, a source center's change
// feed with its artifacts (an appsync.Feed, and an appsync.Source through
// Feed.Source), and Sink, a target center (an appsync.Sink) that counts the
// calls it gets. Both take faults to inject.
package appsynctest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shuanghuo/shuanghuo/appsync"
)

// Feed is an in-memory change feed of a source center with the artifacts of
// its versions. It is safe for concurrent use. The zero value is not ready:
// use NewFeed.
type Feed struct {
	mu        sync.Mutex
	changes   []appsync.Change
	head      int64
	artifacts map[string]artifact
	// grew is closed, and replaced, when a change is appended.
	grew  chan struct{}
	fault func(op string) error
	now   func() time.Time
	calls map[string]int
	// pieceSize is the piece size of the piece sums of releases, 0 for none.
	pieceSize int64
}

// NewFeed returns an empty feed.
func NewFeed() *Feed {
	return &Feed{artifacts: make(map[string]artifact), grew: make(chan struct{}), now: time.Now, calls: make(map[string]int)}
}

// SetFault makes every operation call f first, with "changes" or
// "artifact", and fail with its error if it returns one. nil removes it.
func (f *Feed) SetFault(fault func(op string) error) {
	f.mu.Lock()
	f.fault = fault
	f.mu.Unlock()
}

// SetNow sets the clock of the changes' times. Default: time.Now.
func (f *Feed) SetNow(now func() time.Time) {
	f.mu.Lock()
	f.now = now
	f.mu.Unlock()
}

// SetPieceSize makes the releases appended after it carry the piece sums
// (PieceSums) of their artifacts, in pieces of n bytes; an empty artifact
// has none. 0 (the default) gives releases without piece sums.
func (f *Feed) SetPieceSize(n int64) {
	f.mu.Lock()
	f.pieceSize = n
	f.mu.Unlock()
}

// Calls returns how many times op ("changes", "artifact") was called.
func (f *Feed) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Append adds c to the feed as it is, after giving it the next seq (above
// the greatest so far) when its Seq is 0 and the current time when its Time is zero, and returns it.
// A change with a MAC keeps it (Source signs only unsigned changes), so
// tests append forged changes this way.
func (f *Feed) Append(c appsync.Change) appsync.Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Seq == 0 {
		c.Seq = f.headLocked() + 1
	}
	if c.Time.IsZero() {
		c.Time = f.now()
	}
	f.changes = append(f.changes, c)
	f.head = max(f.head, c.Seq)
	close(f.grew)
	f.grew = make(chan struct{})
	return c
}

// Release stores content as the artifact of version of app and appends its
// release to nodes, with piece sums after SetPieceSize.
func (f *Feed) Release(project, app, version string, content []byte, nodes ...string) appsync.Change {
	f.SetArtifact(project, app, version, content)
	sum := sha256.Sum256(content)
	c := appsync.Change{
		Kind: appsync.KindRelease, Project: project, App: app, Version: version,
		Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(content)),
		Notes: "release " + version, Nodes: nodes,
	}
	f.mu.Lock()
	if n := f.pieceSize; n > 0 && len(content) > 0 {
		c.PieceSize, c.Pieces = n, PieceSums(content, n)
	}
	f.mu.Unlock()
	return f.Append(c)
}

// PieceSums returns the piece sums of content as a release change carries
// them (appsync.Change.Pieces): the sha256 of each pieceSize-byte piece, the
// last one maybe shorter, in lower-case hex, concatenated; "" for empty
// content. pieceSize must be above 0.
func PieceSums(content []byte, pieceSize int64) string {
	var b strings.Builder
	for p := range slices.Chunk(content, int(pieceSize)) {
		sum := sha256.Sum256(p)
		b.WriteString(hex.EncodeToString(sum[:]))
	}
	return b.String()
}

// Config appends a config change of app: cfg, encoded as JSON, is its
// whole configuration.
func (f *Feed) Config(project, app string, cfg any) appsync.Change {
	b, err := json.Marshal(cfg)
	if err != nil {
		panic(fmt.Sprintf("appsynctest: encode config: %v", err))
	}
	return f.Append(appsync.Change{Kind: appsync.KindConfig, Project: project, App: app, Config: b})
}

// Delete appends the deletion of app.
func (f *Feed) Delete(project, app string) appsync.Change {
	return f.Append(appsync.Change{Kind: appsync.KindConfig, Project: project, App: app, Deleted: true})
}

// SetArtifact sets the bytes served as a version's artifact, such as other
// bytes than its release's digest, to corrupt it.
func (f *Feed) SetArtifact(project, app, version string, b []byte) {
	sum := sha256.Sum256(b)
	f.mu.Lock()
	f.artifacts[project+"/"+app+"/"+version] = artifact{content: slices.Clone(b), digest: "sha256:" + hex.EncodeToString(sum[:])}
	f.mu.Unlock()
}

// artifact is a version's artifact with its digest, computed once.
type artifact struct {
	content []byte
	digest  string
}

// Head returns the greatest seq of the feed.
func (f *Feed) Head() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.headLocked()
}

func (f *Feed) headLocked() int64 { return f.head }

func (f *Feed) begin(op string) error {
	f.mu.Lock()
	f.calls[op]++
	fault := f.fault
	f.mu.Unlock()
	if fault != nil {
		return fault(op)
	}
	return nil
}

// Changes returns the changes after the cursor as they were appended
// (unsigned, unless appended with a MAC), waiting up to wait for one.
func (f *Feed) Changes(ctx context.Context, after int64, limit int, wait time.Duration) (appsync.Page, error) {
	if err := f.begin("changes"); err != nil {
		return appsync.Page{}, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		f.mu.Lock()
		// Changes appended out of order are returned as they are, after
		// the first one above the cursor.
		i := slices.IndexFunc(f.changes, func(c appsync.Change) bool { return c.Seq > after })
		if i < 0 {
			i = len(f.changes)
		}
		out := slices.Clone(f.changes[i:min(len(f.changes), i+limit)])
		for j := range out {
			out[j].Nodes = slices.Clone(out[j].Nodes)
			out[j].Config = slices.Clone(out[j].Config)
		}
		page := appsync.Page{Changes: out, Head: f.headLocked()}
		grew := f.grew
		f.mu.Unlock()
		if len(out) > 0 || wait <= 0 {
			return page, nil
		}
		select {
		case <-grew:
		case <-timer.C:
			return page, nil
		case <-ctx.Done():
			return appsync.Page{}, ctx.Err()
		}
	}
}

// Artifact opens a version's artifact and gives its digest and size.
func (f *Feed) Artifact(_ context.Context, project, app, version string) (io.ReadCloser, string, int64, error) {
	if err := f.begin("artifact"); err != nil {
		return nil, "", 0, err
	}
	f.mu.Lock()
	a, ok := f.artifacts[project+"/"+app+"/"+version]
	f.mu.Unlock()
	if !ok {
		return nil, "", 0, fmt.Errorf("%w: version %s of %s/%s", appsync.ErrNotFound, version, project, app)
	}
	return io.NopCloser(bytes.NewReader(a.content)), a.digest, int64(len(a.content)), nil
}

// Source returns an appsync.Source that reads f and signs each change
// without a MAC with key.
func (f *Feed) Source(key []byte) *Source { return &Source{feed: f, key: slices.Clone(key)} }

// Source is an appsync.Source over a Feed, in memory.
type Source struct {
	feed *Feed
	key  []byte
}

// Changes reads the feed and signs the changes that have no MAC.
func (s *Source) Changes(ctx context.Context, after int64, limit int, wait time.Duration) (appsync.Page, error) {
	p, err := s.feed.Changes(ctx, after, limit, wait)
	for i := range p.Changes {
		if p.Changes[i].MAC == "" {
			appsync.Sign(s.key, &p.Changes[i])
		}
	}
	return p, err
}

// Artifact opens a version's artifact.
func (s *Source) Artifact(ctx context.Context, project, app, version string) (io.ReadCloser, error) {
	rc, _, _, err := s.feed.Artifact(ctx, project, app, version)
	return rc, err
}

// Interface guards.
var (
	_ appsync.Feed   = (*Feed)(nil)
	_ appsync.Source = (*Source)(nil)
)
