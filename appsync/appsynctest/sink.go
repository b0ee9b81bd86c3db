package appsynctest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/shuanghuo/shuanghuo/appsync"
)

// Operations of a Sink, as SetFault and Calls name them.
const (
	OpVersion      = "version"
	OpAddVersion   = "add-version"
	OpCurrent      = "current"
	OpRelease      = "release"
	OpAppConfig    = "app-config"
	OpPutAppConfig = "put-app-config"
	OpDeleteApp    = "delete-app"
)

// Sink is an in-memory target center. It counts every call, keeps a log of
// the writes, and is safe for concurrent use. Unlike a real platform it
// lets AddVersion and Release act on an app that has no configuration. Use
// NewSink.
//
// AddVersion checks an artifact by its piece sums when the change has them,
// and then not by its whole digest, so that a test sees which was checked.
type Sink struct {
	mu     sync.Mutex
	apps   map[string]*app
	calls  map[string]int
	writes []Write
	fault  func(op string) error
	lost   func(op string) error
}

type app struct {
	config   json.RawMessage
	versions map[string]Version
	current  string
	nodes    []string
}

// Version is a version stored by a Sink.
type Version struct {
	Digest string
	Size   int64
	// PieceSize and Pieces are the piece sums the artifact was checked
	// against; 0 and "" when it was checked by its whole Digest.
	PieceSize int64
	Pieces    string
	Notes     string
	Content   []byte
}

// Write is one write a Sink took: Op is OpAddVersion, OpRelease,
// OpPutAppConfig or OpDeleteApp.
type Write struct {
	Op      string
	Project string
	App     string
	// Version of OpAddVersion and OpRelease; Nodes of OpRelease; Config of
	// OpPutAppConfig.
	Version string
	Nodes   []string
	Config  json.RawMessage
}

// NewSink returns an empty Sink.
func NewSink() *Sink {
	return &Sink{apps: make(map[string]*app), calls: make(map[string]int)}
}

// SetFault makes every operation call f first with its Op name, and fail
// with its error (counted, changing nothing) if it returns one. nil removes
// it.
func (s *Sink) SetFault(f func(op string) error) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// SetLostAck makes every write (OpAddVersion, OpRelease, OpPutAppConfig,
// OpDeleteApp) call f after it is done, and return its error if it returns
// one: the write stays, as when a reply is lost on its way back. nil removes
// it.
func (s *Sink) SetLostAck(f func(op string) error) {
	s.mu.Lock()
	s.lost = f
	s.mu.Unlock()
}

// Calls returns how many times op was called, failed calls included.
func (s *Sink) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Writes returns the writes taken, in order; failed calls are not in it.
func (s *Sink) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}

// SetConfig sets an app's configuration by hand, as an operator of the
// target center would (a drift); it is not counted. cfg is encoded as JSON.
func (s *Sink) SetConfig(project, name string, cfg any) {
	b, err := json.Marshal(cfg)
	if err != nil {
		panic(fmt.Sprintf("appsynctest: encode config: %v", err))
	}
	s.mu.Lock()
	s.app(project, name).config = b
	s.mu.Unlock()
}

// Config returns an app's configuration, uncounted.
func (s *Sink) Config(project, name string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[project+"/"+name]
	if !ok || a.config == nil {
		return nil, false
	}
	return slices.Clone(a.config), true
}

// Versions returns an app's versions by name, uncounted.
func (s *Sink) Versions(project, name string) map[string]Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.apps[project+"/"+name]; ok {
		return maps.Clone(a.versions)
	}
	return nil
}

// Released returns an app's current version and nodes, uncounted.
func (s *Sink) Released(project, name string) (version string, nodes []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.apps[project+"/"+name]; ok {
		return a.current, slices.Clone(a.nodes)
	}
	return "", nil
}

// SetNodes sets the nodes an app runs on, uncounted: a release without
// nodes keeps them.
func (s *Sink) SetNodes(project, name string, nodes ...string) {
	s.mu.Lock()
	s.app(project, name).nodes = nodes
	s.mu.Unlock()
}

// app returns the app, created empty if missing; s.mu is held.
func (s *Sink) app(project, name string) *app {
	k := project + "/" + name
	a, ok := s.apps[k]
	if !ok {
		a = &app{versions: make(map[string]Version)}
		s.apps[k] = a
	}
	return a
}

func (s *Sink) begin(op string) error {
	s.mu.Lock()
	s.calls[op]++
	f := s.fault
	s.mu.Unlock()
	if f != nil {
		if err := f(op); err != nil {
			return fmt.Errorf("appsynctest: %s: %w", op, err)
		}
	}
	return nil
}

// done ends a write: it returns the error of the SetLostAck hook, if any.
func (s *Sink) done(op string) error {
	s.mu.Lock()
	f := s.lost
	s.mu.Unlock()
	if f != nil {
		if err := f(op); err != nil {
			return fmt.Errorf("appsynctest: %s (done, reply lost): %w", op, err)
		}
	}
	return nil
}

// Version returns a version's digest.
func (s *Sink) Version(_ context.Context, project, name, version string) (string, bool, error) {
	if err := s.begin(OpVersion); err != nil {
		return "", false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.apps[project+"/"+name]; ok {
		if v, ok := a.versions[version]; ok {
			return v.Digest, true, nil
		}
	}
	return "", false, nil
}

// AddVersion reads r to the end and stores the version if it has exactly
// art.Size bytes and each piece has its sum in art.Pieces or, without piece
// sums, the whole artifact has art.Digest; otherwise it keeps nothing. An
// existing version is an error.
func (s *Sink) AddVersion(_ context.Context, project, name, version, notes string, art appsync.Artifact, r io.Reader) error {
	if err := s.begin(OpAddVersion); err != nil {
		return err
	}
	content, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("appsynctest: add version %s: read the artifact: %w", version, err)
	}
	if err := check(content, art); err != nil {
		return fmt.Errorf("appsynctest: add version %s: %w", version, err)
	}
	s.mu.Lock()
	a := s.app(project, name)
	if _, ok := a.versions[version]; ok {
		s.mu.Unlock()
		return fmt.Errorf("appsynctest: add version %s of %s/%s: exists", version, project, name)
	}
	a.versions[version] = Version{Digest: art.Digest, Size: art.Size, PieceSize: art.PieceSize, Pieces: art.Pieces, Notes: notes, Content: content}
	s.writes = append(s.writes, Write{Op: OpAddVersion, Project: project, App: name, Version: version})
	s.mu.Unlock()
	return s.done(OpAddVersion)
}

// check checks content against art: by its piece sums when it has them,
// else by its whole digest.
func check(content []byte, art appsync.Artifact) error {
	if art.Pieces == "" {
		sum := sha256.Sum256(content)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != art.Digest || int64(len(content)) != art.Size {
			return fmt.Errorf("artifact has %d bytes with %s, want %d with %s", len(content), got, art.Size, art.Digest)
		}
		return nil
	}
	if int64(len(content)) != art.Size || art.PieceSize <= 0 {
		return fmt.Errorf("artifact has %d bytes, want %d in pieces of %d", len(content), art.Size, art.PieceSize)
	}
	got := PieceSums(content, art.PieceSize)
	if len(got) != len(art.Pieces) {
		return fmt.Errorf("artifact has %d pieces of %d bytes, the change %d sums", len(got)/64, art.PieceSize, len(art.Pieces)/64)
	}
	for i := 0; i < len(got); i += 64 {
		if got[i:i+64] != art.Pieces[i:i+64] {
			return fmt.Errorf("piece %d of %d bytes has sha256 %s, want %s", i/64, art.PieceSize, got[i:i+64], art.Pieces[i:i+64])
		}
	}
	return nil
}

// Current returns the released version.
func (s *Sink) Current(_ context.Context, project, name string) (string, error) {
	if err := s.begin(OpCurrent); err != nil {
		return "", err
	}
	v, _ := s.Released(project, name)
	return v, nil
}

// Release releases a stored version on nodes (nil: the app's nodes).
func (s *Sink) Release(_ context.Context, project, name, version string, nodes []string) error {
	if err := s.begin(OpRelease); err != nil {
		return err
	}
	s.mu.Lock()
	a := s.app(project, name)
	if _, ok := a.versions[version]; !ok {
		s.mu.Unlock()
		return fmt.Errorf("appsynctest: release %s of %s/%s: no such version", version, project, name)
	}
	a.current = version
	if nodes != nil {
		a.nodes = slices.Clone(nodes)
	}
	s.writes = append(s.writes, Write{Op: OpRelease, Project: project, App: name, Version: version, Nodes: slices.Clone(nodes)})
	s.mu.Unlock()
	return s.done(OpRelease)
}

// AppConfig returns an app's configuration.
func (s *Sink) AppConfig(_ context.Context, project, name string) (json.RawMessage, bool, error) {
	if err := s.begin(OpAppConfig); err != nil {
		return nil, false, err
	}
	cfg, ok := s.Config(project, name)
	return cfg, ok, nil
}

// PutAppConfig sets an app's configuration, a JSON object.
func (s *Sink) PutAppConfig(_ context.Context, project, name string, cfg json.RawMessage) error {
	if err := s.begin(OpPutAppConfig); err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil || m == nil {
		return fmt.Errorf("appsynctest: put config of %s/%s: not a JSON object", project, name)
	}
	s.mu.Lock()
	s.app(project, name).config = slices.Clone(cfg)
	s.writes = append(s.writes, Write{Op: OpPutAppConfig, Project: project, App: name, Config: slices.Clone(cfg)})
	s.mu.Unlock()
	return s.done(OpPutAppConfig)
}

// DeleteApp deletes an app, its versions included.
func (s *Sink) DeleteApp(_ context.Context, project, name string) error {
	if err := s.begin(OpDeleteApp); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.apps, project+"/"+name)
	s.writes = append(s.writes, Write{Op: OpDeleteApp, Project: project, App: name})
	s.mu.Unlock()
	return s.done(OpDeleteApp)
}

var _ appsync.Sink = (*Sink)(nil)
