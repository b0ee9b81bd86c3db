package planes

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shuanghuo/shuanghuo/appsync"
	"github.com/shuanghuo/shuanghuo/deploy"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// SyncKeyEnv names the environment variable that may hold the sync key (hex), the secret
// the two centers share to sign their change feeds; it overrides the configuration's.
const SyncKeyEnv = "SHUANGHUO_SYNC_KEY"

// AppSync is this center's application sync (应用同步, package appsync), in both roles:
//
//   - as a source it serves change feeds to the other center, one per project or team and
//     kind: GET /api/v1/appsync/feeds/{projects|teams}/{id}/{release|config}/ (the appsync
//     feed protocol, signed with the sync key; a team's token reads its own only). The
//     release feed is deploy's release events; the config feed is the audit log's pushes and
//     deletes of deploy apps — the configuration each app runs with.
//   - as a target it keeps bindings (/api/v1/appsync/bindings: this center's project or team
//     ↔ a peer center's, checked against the peer's API with a token of it) and
//     runs sync tasks (/api/v1/appsync/tasks: version or config sync of one binding) that read
//     the other center's feed and apply it here — versions uploaded and released, app specs
//     saved and pushed — through the same rules and audit as the API.
//
// Task state (cursor, conflicts, baselines) lives in the store's docs, so a restart resumes
// each task where it was.
type AppSync struct {
	st     store.Store
	deploy *Deploy
	key    []byte
	engine *appsync.Engine
	api    Resources
	log    *slog.Logger
	client *http.Client
	peers  map[string]string
	valid  *validator.Validate

	mu       sync.Mutex
	bindings map[string]*binding // binding resource ID → what tasks read from
}

// AppSyncOptions are what the appsync plane needs from the rest of the center.
type AppSyncOptions struct {
	Store  store.Store
	Deploy *Deploy
	// API is what tasks apply the app specs they receive through. The API is built from the
	// planes' capabilities, this one's among them, so a center passes a reference it fills
	// in once the API is built, before anything is served or restored: tasks run only from a
	// push or a restore.
	API Resources
	// Key is the sync key; without one (nil), feeds and tasks are refused with a message
	// saying so.
	Key []byte
	// Peers are the other centers' base URLs by name, as the admin configured them: the
	// only URLs a binding reaches.
	Peers      map[string]string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Resources is what the appsync plane applies received changes through: the API's own lookup,
// save-and-push and delete of a resource, under the same rules and audit as a team's
// requests. *api.Server implements it.
type Resources interface {
	Find(ctx context.Context, kind, projectID, name string) (store.Resource, bool, error)
	Publish(ctx context.Context, actor store.Actor, kind, projectID string, spec json.RawMessage) (store.Resource, error)
	Withdraw(ctx context.Context, actor store.Actor, kind, projectID, name string) error
}

// syncActor is the audit actor of changes tasks apply.
var syncActor = store.Actor{TokenID: "appsync"}

// stateKind is the docs kind of task states.
const stateKind = "appsync.task"

// Resource kinds.
const (
	bindingKind = "syncbinding"
	taskKind    = "synctask"
)

// NewAppSync builds the plane.
func NewAppSync(o AppSyncOptions) (*AppSync, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &AppSync{st: o.Store, deploy: o.Deploy, api: o.API, key: o.Key, log: o.Logger.With("component", "appsync"),
		valid: validate.New("json"), bindings: map[string]*binding{}, peers: o.Peers, client: appsync.NewClient()}
	if o.Key == nil {
		return s, nil
	}
	e, err := appsync.New(appsync.Options{Sink: syncSink{s}, StateStore: syncStates{o.Store}, Key: o.Key,
		Logger: s.log, Registerer: o.Registerer})
	if err != nil {
		return nil, fmt.Errorf("planes: appsync: %w", err)
	}
	s.engine = e
	return s, nil
}

// Close stops the tasks.
func (s *AppSync) Close(context.Context) error {
	if s.engine == nil {
		return nil
	}
	return s.engine.Close()
}

func (s *AppSync) needKey() error {
	if s.engine == nil {
		return api.Conflict("this center has no sync key: set sync_key in the configuration or " + SyncKeyEnv + ", the same in both centers")
	}
	return nil
}

// Routes serves the change feeds.
func (s *AppSync) Routes() []api.Route {
	return []api.Route{{Pattern: "GET /api/v1/appsync/feeds/{scope}/{id}/{kind}/{rest...}", Handle: s.feed}}
}

func (s *AppSync) feed(c *api.Call) error {
	if err := s.needKey(); err != nil {
		return err
	}
	scope, id, kind := c.R.PathValue("scope"), c.R.PathValue("id"), appsync.ChangeKind(c.R.PathValue("kind"))
	fields := map[string]string{}
	if scope != "projects" && scope != "teams" {
		fields["scope"] = "must be projects or teams"
	}
	if kind != appsync.KindRelease && kind != appsync.KindConfig {
		fields["kind"] = "must be release or config"
	}
	if len(fields) > 0 {
		return api.Invalid(fields)
	}
	f := &syncFeed{s: s, kind: kind, stopping: c.Stopping()}
	err := s.st.View(c.R.Context(), func(tx store.Reader) error {
		if scope == "teams" {
			if !c.Sees(id) {
				return fmt.Errorf("team %s: %w", id, store.ErrNotFound)
			}
			t, err := tx.Team(c.R.Context(), id)
			f.team = t.ID
			return err
		}
		p, err := tx.Project(c.R.Context(), id)
		if err == nil && !c.Sees(p.TeamID) {
			err = fmt.Errorf("project %s: %w", id, store.ErrNotFound)
		}
		f.project, f.team = p.ID, p.TeamID
		return err
	})
	if err != nil {
		return err
	}
	h, err := appsync.FeedHandler(f, s.key)
	if err != nil {
		return err
	}
	// A long poll and an artifact take longer than the server's write timeout.
	_ = http.NewResponseController(c.W).SetWriteDeadline(time.Now().Add(uploadDeadline))
	r := c.R.Clone(c.R.Context())
	r.URL.Path = "/" + c.R.PathValue("rest")
	h.ServeHTTP(c.W, r)
	return nil
}

// syncFeed is one scope's feed of one kind: a project's, or every project's of a team.
type syncFeed struct {
	s             *AppSync
	kind          appsync.ChangeKind
	project, team string
	stopping      <-chan struct{}
}

// feedPoll bounds how long a waiting read of the release feed goes without looking again;
// deploy wakes it at each release, so this only covers a missed wake-up.
const feedPoll = time.Second

func (f *syncFeed) Changes(ctx context.Context, after int64, limit int, wait time.Duration) (appsync.Page, error) {
	deadline := time.Now().Add(wait)
	for {
		var woke <-chan struct{}
		if f.kind == appsync.KindConfig {
			woke = f.s.st.Committed()
		} else {
			woke = f.s.deploy.m.EventsChanged()
		}
		page, err := f.read(ctx, after, limit)
		if err != nil || len(page.Changes) > 0 {
			return page, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return page, nil
		}
		t := time.NewTimer(min(left, feedPoll))
		select {
		case <-woke:
		case <-t.C:
		case <-f.stopping:
			t.Stop()
			return page, nil
		case <-ctx.Done():
			t.Stop()
			return page, ctx.Err()
		}
		t.Stop()
	}
}

func (f *syncFeed) read(ctx context.Context, after int64, limit int) (appsync.Page, error) {
	if f.kind == appsync.KindConfig {
		return f.readConfig(ctx, after, limit)
	}
	return f.readReleases(ctx, after, limit)
}

// readConfig reads the pushes and deletes of the scope's deploy apps from the audit log.
func (f *syncFeed) readConfig(ctx context.Context, after int64, limit int) (appsync.Page, error) {
	fp, err := f.s.st.Feed(ctx, store.FeedFilter{Kind: "deployapp", Actions: []string{"push", "delete"},
		TeamID: f.team, ProjectID: f.project, AfterID: after, Limit: limit})
	if err != nil {
		return appsync.Page{}, err
	}
	page := appsync.Page{Head: fp.Head, Pending: &fp.Pending, Changes: []appsync.Change{}}
	for _, rec := range fp.Records {
		var res store.Resource
		raw := rec.After
		if rec.Action == "delete" {
			raw = rec.Before
		}
		if err := json.Unmarshal(raw, &res); err != nil {
			return appsync.Page{}, fmt.Errorf("planes: appsync: audit record %d: %w", rec.ID, err)
		}
		c := appsync.Change{Seq: rec.ID, Time: rec.At, Kind: appsync.KindConfig, Project: res.ProjectID, App: res.Name}
		if rec.Action == "delete" {
			c.Deleted = true
		} else {
			c.Config = res.PushedSpec
		}
		page.Changes = append(page.Changes, c)
	}
	return page, nil
}

// readReleases reads the scope's releases from deploy's event feed, which holds every
// project's: the others are read past, and not counted as pending. The head is the
// scope's last release after the cursor, or the cursor itself when there is none (what
// lag needs, without reading the feed from its start).
func (f *syncFeed) readReleases(ctx context.Context, after int64, limit int) (appsync.Page, error) {
	var pending int64
	page := appsync.Page{Changes: []appsync.Change{}, Head: after, Pending: &pending}
	projects, err := f.projects(ctx)
	if err != nil {
		return page, err
	}
	full, pieceBytes := false, 0
	for cursor := after; ; {
		evs, err := f.s.deploy.m.Events(ctx, cursor, 1000)
		if err != nil {
			return page, err
		}
		if len(evs) == 0 {
			return page, nil
		}
		for _, e := range evs {
			cursor = e.Seq
			if !projects[e.Project] {
				continue
			}
			page.Head = e.Seq
			pending++
			if full = full || len(page.Changes) == limit; full {
				continue
			}
			c := appsync.Change{Seq: e.Seq, Time: e.Time, Kind: appsync.KindRelease, Project: e.Project, App: e.App,
				Version: e.Version, Digest: string(e.Digest), Nodes: e.Nodes}
			if v, err := f.s.deploy.m.Version(ctx, e.Project, e.App, e.Version); err == nil {
				c.Size, c.Notes = v.Size, v.Notes
				// With the piece sums the other center checks its copy on every core; an
				// artifact stored without them, or with more than a change may carry, is
				// checked by its whole digest.
				if sums, err := f.s.deploy.m.PieceSums(ctx, v); err == nil && sums.Count() > 0 && sums.Count() <= appsync.MaxPieces {
					c.PieceSize, c.Pieces = deploy.PieceSize, sums.String()
				}
			}
			page.Changes = append(page.Changes, c)
			// Sums make a change up to 4 MiB long: a page ends early rather than grow
			// past what the other center reads (appsync's MaxPageSize, 64 MiB by default).
			pieceBytes += len(c.Pieces)
			full = pieceBytes >= maxPagePieces
		}
	}
}

// maxPagePieces bounds the hex of the piece sums in a page of releases.
const maxPagePieces = 16 << 20

// projects are the scope's project IDs.
func (f *syncFeed) projects(ctx context.Context) (map[string]bool, error) {
	if f.project != "" {
		return map[string]bool{f.project: true}, nil
	}
	out := map[string]bool{}
	err := f.s.st.View(ctx, func(tx store.Reader) error {
		ps, err := tx.Projects(ctx, f.team)
		for _, p := range ps {
			out[p.ID] = true
		}
		return err
	})
	return out, err
}

func (f *syncFeed) Artifact(ctx context.Context, project, app, version string) (io.ReadCloser, string, int64, error) {
	ps, err := f.projects(ctx)
	if err != nil {
		return nil, "", 0, err
	}
	if !ps[project] {
		return nil, "", 0, fmt.Errorf("project %s in this feed: %w", project, appsync.ErrNotFound)
	}
	rc, v, err := f.s.deploy.m.OpenArtifact(ctx, project, app, version)
	if errors.Is(err, deploy.ErrNotFound) {
		return nil, "", 0, fmt.Errorf("%w: %w", appsync.ErrNotFound, err)
	}
	if err != nil {
		return nil, "", 0, err
	}
	// The other center's Sink checks what arrives, by its pieces or its digest, which
	// checks the store's bytes too: they go out unhashed, by sendfile.
	return stopReader{file: rc, r: deploy.Unverified(rc), stopping: f.stopping}, string(v.Digest), v.Size, nil
}

// stopReader ends an artifact's download when the server begins to shut down, instead of
// holding the shutdown for as long as the transfer takes: the reader sees a short body,
// keeps nothing, and fetches the artifact again.
type stopReader struct {
	file     io.Closer
	r        io.Reader
	stopping <-chan struct{}
}

var errStopping = errors.New("the server is shutting down")

func (r stopReader) Read(p []byte) (int, error) {
	select {
	case <-r.stopping:
		return 0, errStopping
	default:
		return r.r.Read(p)
	}
}

// stopStep is how much of an artifact goes out between looks at the shutdown.
const stopStep = 8 << 20

// WriteTo sends the artifact in steps, each of which a file reaches a connection with
// sendfile.
func (r stopReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		select {
		case <-r.stopping:
			return n, errStopping
		default:
		}
		k, err := io.CopyN(w, r.r, stopStep)
		n += k
		switch {
		case err == io.EOF:
			return n, nil
		case err != nil:
			return n, err
		}
	}
}

func (r stopReader) Close() error { return r.file.Close() }

// bindingSpec is a binding resource's spec (同步关系绑定), kept in the target center: Target
// is this center's project or team; Source is the other center's, reached with a token of
// the other center that has authority over it.
type bindingSpec struct {
	// Name names the binding in its team.
	Name string `json:"name" validate:"required,max=64"`
	// Kind is project or team; a team binding covers every project of the team, matched
	// by name.
	Kind appsync.BindingKind `json:"kind" validate:"required,oneof=project team"`
	// Target is this center's project ID (kind project) or team ID (kind team).
	Target string        `json:"target" validate:"required,max=64"`
	Source bindingSource `json:"source"`
}

type bindingSource struct {
	// Peer names the other center among the peers the admin configured: a team cannot make
	// the server fetch a URL of its choosing.
	Peer string `json:"peer" validate:"required,max=32"`
	// ID is the project ID (kind project) or team ID (kind team) there.
	ID string `json:"id" validate:"required,max=64"`
	// Token is an API token of the other center with authority over ID. Hidden in answers.
	Token string `json:"token" validate:"required,max=256"`
}

// binding is what a pushed binding gives its tasks.
type binding struct {
	id, team string
	spec     bindingSpec
}

func (s *AppSync) checkBinding(spec json.RawMessage) (string, error) {
	var b bindingSpec
	if err := decodeStrict(spec, &b); err != nil {
		return "", err
	}
	fields, err := validate.Fields(s.valid, &b)
	if err != nil {
		return "", err
	}
	if _, ok := s.peers[b.Source.Peer]; b.Source.Peer != "" && !ok {
		validate.Add(&fields, "source.peer", s.unknownPeer())
	}
	if len(fields) > 0 {
		return "", api.InvalidSpec(fields)
	}
	return b.Name, nil
}

// unknownPeer says which peers a binding may name.
func (s *AppSync) unknownPeer() string {
	if len(s.peers) == 0 {
		return "no peer center is configured here: the admin lists the other centers under peers in the server's configuration"
	}
	return "must be one of the configured peers: " + strings.Join(slices.Sorted(maps.Keys(s.peers)), ", ")
}

// peerURL is the base URL of the binding's peer, which the admin may have removed from the
// configuration since the binding was saved.
func (s *AppSync) peerURL(src bindingSource) (string, error) {
	u, ok := s.peers[src.Peer]
	if !ok {
		return "", fmt.Errorf("peer %q: %s", src.Peer, s.unknownPeer())
	}
	return strings.TrimSuffix(u, "/"), nil
}

func decodeBinding(spec json.RawMessage) (bindingSpec, error) {
	var b bindingSpec
	err := decodeStrict(spec, &b)
	return b, err
}

// Bindings is the binding capability: a team binds its project (or itself) to the other
// center's. Pushing it checks both sides; tasks use pushed bindings.
func (s *AppSync) Bindings() api.Capability {
	return api.Capability{Kind: bindingKind, Path: "appsync/bindings", IDPrefix: "sb", Check: s.checkBinding,
		Plane: bindingPlane{s}, Secrets: []string{"source.token"}}
}

type bindingPlane struct{ s *AppSync }

// Push checks the binding: this side is the binding's team's, the other side exists and
// its token has authority over it, and neither side is bound already. A source is bound
// once in this center, by any team; whether another team bound it is said only to a
// caller whose token the peer accepts for it, and never which binding did.
func (p bindingPlane) Push(ctx context.Context, r store.Resource) error {
	s := p.s
	b, err := decodeBinding(r.Spec)
	if err != nil {
		return err
	}
	inv := api.InvalidSpec{}
	var sourceBound string
	err = s.st.View(ctx, func(tx store.Reader) error {
		switch b.Kind {
		case appsync.BindingProject:
			proj, err := tx.Project(ctx, b.Target)
			if errors.Is(err, store.ErrNotFound) || (err == nil && proj.TeamID != r.TeamID) {
				inv["target"] = "no such project in the binding's team"
			} else if err != nil {
				return err
			}
		case appsync.BindingTeam:
			if b.Target != r.TeamID {
				inv["target"] = "a team binding's target is the binding's own team"
			}
		}
		others, err := tx.Resources(ctx, bindingKind, "", "")
		var covered []overlap
		for _, o := range others {
			ob, derr := decodeBinding(o.PushedSpec)
			if o.ID == r.ID || o.PushedRevision == 0 || derr != nil {
				continue
			}
			by := "is bound already"
			if o.TeamID == r.TeamID {
				by += ", by binding " + o.ID
			}
			if ob.Kind == b.Kind && ob.Target == b.Target {
				inv["target"] = by
			}
			if ob.Kind == b.Kind && ob.Source.ID == b.Source.ID && ob.Source.Peer == b.Source.Peer {
				sourceBound = by
			}
			// A team binding and a project binding of one of the team's projects would both
			// apply that project's changes, each task taking the other's for a conflict. Both
			// sides are the team's own (a binding's target is its team or one of its
			// projects), so only its own bindings can overlap, and naming them tells nothing.
			if ob.Kind != b.Kind && o.TeamID == r.TeamID {
				covered = append(covered, overlap{binding: o.ID, project: ob.Target})
			}
		}
		if err == nil && inv["target"] == "" && len(covered) > 0 {
			inv["target"] = overlapMessage(b, covered)
		}
		return err
	})
	if err != nil {
		return err
	}
	if len(inv) > 0 {
		return inv
	}
	path := "/api/v1/projects/" + url.PathEscape(b.Source.ID)
	if b.Kind == appsync.BindingTeam {
		path = "/api/v1/teams/" + url.PathEscape(b.Source.ID)
	}
	if _, err := s.remote(ctx, b.Source, path); err != nil {
		return api.InvalidSpec{"source": err.Error()}
	}
	if sourceBound != "" {
		return api.InvalidSpec{"source.id": sourceBound}
	}
	s.mu.Lock()
	s.bindings[r.ID] = &binding{id: r.ID, team: r.TeamID, spec: b}
	s.mu.Unlock()
	return nil
}

// overlap is a pushed binding of the other kind over the same projects: for a team binding
// being pushed, a project binding and its project; for a project binding, a team binding.
type overlap struct{ binding, project string }

// overlapMessage says which of the team's projects a binding of kind b.Kind would bind twice,
// and by which of its bindings.
func overlapMessage(b bindingSpec, covered []overlap) string {
	if b.Kind == appsync.BindingProject {
		return fmt.Sprintf("project %s is bound already, by team binding %s, which covers every project of the team", b.Target, covered[0].binding)
	}
	slices.SortFunc(covered, func(x, y overlap) int { return strings.Compare(x.project, y.project) })
	var projects, bindings []string
	for _, c := range covered {
		projects, bindings = append(projects, c.project), append(bindings, c.binding)
	}
	what := fmt.Sprintf("project %s is bound already, by project binding %s", projects[0], bindings[0])
	if len(covered) > 1 {
		what = fmt.Sprintf("projects %s are bound already, by project bindings %s", strings.Join(projects, ", "), strings.Join(bindings, ", "))
	}
	return what + ": a team binding covers every project of the team; delete the project bindings first"
}

// errRemoteNotFound: the other center has no such thing, or the token may not see it.
var errRemoteNotFound = errors.New("has no")

// remoteTimeout bounds a request of remote.
const remoteTimeout = 10 * time.Second

// remote GETs a path of the peer's API with the binding's token and decodes the answer's
// name. Anything but 200 says the side does not exist or the token has no authority over
// it, which the other center does not tell apart. What the team reads names the peer and
// the status it answered, never how a connection failed (refused, reset, not HTTP): that
// would map the peer's host for the team; it is logged instead.
func (s *AppSync) remote(ctx context.Context, src bindingSource, path string) (string, error) {
	base, err := s.peerURL(src)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return "", fmt.Errorf("peer %s: %w", src.Peer, err)
	}
	req.Header.Set("Authorization", "Bearer "+src.Token)
	unreachable := func(err error) error {
		s.log.Warn("peer unreachable", "peer", src.Peer, "path", path, "err", err)
		return unreachableError{peer: src.Peer, err: err}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", unreachable(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", unreachable(err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return "", fmt.Errorf("peer %s: answered 401: it refuses the token", src.Peer)
	case http.StatusNotFound:
		return "", fmt.Errorf("peer %s %w %s that the token may see", src.Peer, errRemoteNotFound, strings.TrimPrefix(path, "/api/v1/"))
	default:
		return "", fmt.Errorf("peer %s: answered %d", src.Peer, resp.StatusCode)
	}
	var named struct{ Name string }
	if err := json.Unmarshal(body, &named); err != nil {
		s.log.Warn("peer answered no API answer", "peer", src.Peer, "path", path, "err", err)
		return "", fmt.Errorf("peer %s: answered 200 with no API answer", src.Peer)
	}
	return named.Name, nil
}

// Remove forgets the binding; its tasks keep their copy until they are deleted.
func (p bindingPlane) Remove(_ context.Context, r store.Resource) error {
	p.s.mu.Lock()
	delete(p.s.bindings, r.ID)
	p.s.mu.Unlock()
	return nil
}

func (p bindingPlane) Status(ctx context.Context, r store.Resource) (any, error) {
	b, err := decodeBinding(r.PushedSpec)
	if r.PushedRevision == 0 || err != nil {
		return nil, fmt.Errorf("binding %s (not pushed yet): %w", r.ID, store.ErrNotFound)
	}
	path := "/api/v1/projects/" + url.PathEscape(b.Source.ID)
	if b.Kind == appsync.BindingTeam {
		path = "/api/v1/teams/" + url.PathEscape(b.Source.ID)
	}
	out := map[string]any{"kind": b.Kind, "target": b.Target, "source": map[string]string{"peer": b.Source.Peer, "id": b.Source.ID}}
	if name, err := p.s.remote(ctx, b.Source, path); err != nil {
		out["source_error"] = err.Error()
	} else {
		out["source_name"] = name
	}
	return out, nil
}

// projectMap maps the binding's source projects to this center's: the one project of a
// project binding, or a team binding's projects by name.
func (s *AppSync) projectMap(b *binding) appsync.ProjectMap {
	if b.spec.Kind == appsync.BindingProject {
		return appsync.BindProject(b.spec.Source.ID, b.spec.Target)
	}
	var mu sync.Mutex
	known := map[string]string{}
	return func(ctx context.Context, source string) (string, error) {
		mu.Lock()
		target, ok := known[source]
		mu.Unlock()
		if ok {
			return target, nil
		}
		name, err := s.remote(ctx, b.spec.Source, "/api/v1/projects/"+url.PathEscape(source))
		if err != nil {
			// The feed is the bound team's; a project its token cannot see is not the team's.
			if errors.Is(err, errRemoteNotFound) {
				return "", fmt.Errorf("%w: %v", appsync.ErrOutsideBinding, err)
			}
			return "", err
		}
		err = s.st.View(ctx, func(tx store.Reader) error {
			ps, err := tx.Projects(ctx, b.spec.Target)
			for _, p := range ps {
				if p.Name == name {
					target = p.ID
				}
			}
			return err
		})
		if err != nil {
			return "", err
		}
		if target == "" {
			return "", fmt.Errorf("team %s of this center has no project named %q (the other center's %s): create it", b.spec.Target, name, source)
		}
		mu.Lock()
		known[source] = target
		mu.Unlock()
		return target, nil
	}
}

// taskSpec is a sync task resource's spec: an appsync.TaskConfig (its id is the resource's)
// of one binding.
type taskSpec struct {
	appsync.TaskConfig
	// Name names the task in its team.
	Name string `json:"name" validate:"required,max=64"`
	// Binding is the binding resource the task syncs, of the same team.
	Binding string `json:"binding" validate:"required,max=64"`
}

// centerOwnKeys are app spec keys that name this center's own resources: config sync never
// copies them.
var centerOwnKeys = []string{"balancer", "group"}

func decodeTask(spec json.RawMessage) (taskSpec, error) {
	var t taskSpec
	err := decodeStrict(spec, &t)
	return t, err
}

func (s *AppSync) checkTask(spec json.RawMessage) (string, error) {
	t, err := decodeTask(spec)
	if err != nil {
		return "", err
	}
	fields, err := validate.Fields(s.valid, &struct {
		Name    string `json:"name" validate:"required,max=64"`
		Binding string `json:"binding" validate:"required,max=64"`
	}{t.Name, t.Binding})
	if err != nil {
		return "", err
	}
	if t.ID != "" {
		validate.Add(&fields, "id", "is the task resource's ID; leave it out of the spec")
	}
	t.ID = "task"
	if err := t.TaskConfig.Validate(); err != nil {
		var verr *appsync.ValidationError
		if !errors.As(err, &verr) {
			return "", err
		}
		for k, v := range verr.Fields() {
			validate.Add(&fields, k, v)
		}
	}
	if len(fields) > 0 {
		return "", api.InvalidSpec(fields)
	}
	return t.Name, nil
}

// Tasks is the sync task capability. Pushing a task starts it (or restarts it with the new
// spec, from its cursor); deleting it stops it and forgets its state. Actions: pause,
// resume, resync (from the start of the feed, applying nothing twice) and resolve (a
// conflict: source-wins, keep-target or stop).
func (s *AppSync) Tasks() api.Capability {
	return api.Capability{Kind: taskKind, Path: "appsync/tasks", IDPrefix: "st", Check: s.checkTask, Plane: taskPlane{s},
		Actions: map[string]api.Action{
			"pause":  s.taskAction(func(ctx context.Context, id string, _ any) error { return s.engine.Pause(ctx, id) }),
			"resume": s.taskAction(func(ctx context.Context, id string, _ any) error { return s.engine.Resume(ctx, id) }),
			"resync": s.taskAction(func(ctx context.Context, id string, _ any) error { return s.engine.Resync(ctx, id) }),
			"resolve": {
				Input: func() any { return &resolveInput{} },
				Do: func(ctx context.Context, targets []store.Resource, in any) (map[string]json.RawMessage, any, error) {
					r := in.(*resolveInput)
					return s.doTask(ctx, targets, func(ctx context.Context, id string) error {
						return s.engine.Resolve(ctx, id, r.Conflict, appsync.Resolution(r.Resolution))
					})
				},
			},
		}}
}

type resolveInput struct {
	// Conflict is the conflict's ID, as the task's status lists it.
	Conflict string `json:"conflict" validate:"required,max=128"`
	// Resolution is source-wins, keep-target or stop.
	Resolution string `json:"resolution" validate:"required,oneof=source-wins keep-target stop"`
}

func (s *AppSync) taskAction(f func(ctx context.Context, id string, in any) error) api.Action {
	return api.Action{
		Input: func() any { return &struct{}{} },
		Do: func(ctx context.Context, targets []store.Resource, in any) (map[string]json.RawMessage, any, error) {
			return s.doTask(ctx, targets, func(ctx context.Context, id string) error { return f(ctx, id, in) })
		},
	}
}

// doTask runs an action on one task and answers its status.
func (s *AppSync) doTask(ctx context.Context, targets []store.Resource, f func(context.Context, string) error) (map[string]json.RawMessage, any, error) {
	if err := s.needKey(); err != nil {
		return nil, nil, err
	}
	id := targets[0].ID
	if err := f(ctx, id); err != nil {
		return nil, nil, syncError(err)
	}
	st, err := s.engine.Status(id)
	return nil, st, syncError(err)
}

// syncError maps appsync's errors to the API's; its validation errors are answered as they are.
func syncError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, appsync.ErrNotFound):
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	case errors.Is(err, appsync.ErrState):
		return api.Conflict(err.Error())
	}
	return err
}

type taskPlane struct{ s *AppSync }

// Push starts the task with its spec, reading the binding's source feed.
func (p taskPlane) Push(ctx context.Context, r store.Resource) error {
	s := p.s
	if err := s.needKey(); err != nil {
		return err
	}
	t, err := decodeTask(r.Spec)
	if err != nil {
		return err
	}
	var b *binding
	err = s.st.View(ctx, func(tx store.Reader) error {
		res, err := tx.Resource(ctx, bindingKind, t.Binding)
		if errors.Is(err, store.ErrNotFound) || (err == nil && (res.TeamID != r.TeamID || res.PushedRevision == 0)) {
			return api.InvalidSpec{"binding": "no such pushed binding in the task's team"}
		}
		if err != nil {
			return err
		}
		spec, err := decodeBinding(res.PushedSpec)
		b = &binding{id: res.ID, team: res.TeamID, spec: spec}
		return err
	})
	if err != nil {
		return err
	}
	scope := "projects"
	if b.spec.Kind == appsync.BindingTeam {
		scope = "teams"
	}
	kind := appsync.KindRelease
	if t.Kind == appsync.TaskKindConfig {
		kind = appsync.KindConfig
		for _, k := range centerOwnKeys {
			if !slices.Contains(t.Config.Exclude, k) {
				t.Config.Exclude = append(t.Config.Exclude, k)
			}
		}
	}
	base, err := s.peerURL(b.spec.Source)
	if err != nil {
		return api.InvalidSpec{"binding": err.Error()}
	}
	src, err := appsync.NewHTTPSource(appsync.HTTPSourceOptions{
		URL:   fmt.Sprintf("%s/api/v1/appsync/feeds/%s/%s/%s/", base, scope, url.PathEscape(b.spec.Source.ID), kind),
		Token: b.spec.Source.Token, Key: s.key, Client: s.client,
	})
	if err != nil {
		return api.InvalidSpec{"binding": err.Error()}
	}
	cfg := t.TaskConfig
	cfg.ID = r.ID
	if err := s.engine.Stop(r.ID); err != nil && !errors.Is(err, appsync.ErrNotFound) {
		return err
	}
	return syncError(s.engine.Start(ctx, cfg, appsync.TaskOptions{Source: peerSource{src, b.spec.Source.Peer, s.log}, ProjectMap: s.projectMap(b)}))
}

// peerSource is a binding's feed, whose errors the team reads in its tasks' status: a
// connection to the peer that failed says only that, as the binding check does (refused,
// reset or timed out would map the peer's host); the cause is logged.
type peerSource struct {
	*appsync.HTTPSource
	peer string
	log  *slog.Logger
}

func (p peerSource) Changes(ctx context.Context, after int64, limit int, wait time.Duration) (appsync.Page, error) {
	page, err := p.HTTPSource.Changes(ctx, after, limit, wait)
	return page, p.hide(err)
}

func (p peerSource) Artifact(ctx context.Context, project, app, version string) (io.ReadCloser, error) {
	rc, err := p.HTTPSource.Artifact(ctx, project, app, version)
	if err != nil {
		return nil, p.hide(err)
	}
	return peerBody{rc, p}, nil
}

// hide gives a connection's failure the text "peer a: unreachable", still wrapping it for
// errors.Is; a canceled request (the task stopped) keeps its own. The cause is logged at
// debug: the task warns of each failed attempt, with this text.
func (p peerSource) hide(err error) error {
	var uerr *url.Error
	var nerr *net.OpError
	if err == nil || errors.Is(err, context.Canceled) || !(errors.As(err, &uerr) || errors.As(err, &nerr)) {
		return err
	}
	p.log.Debug("peer unreachable", "peer", p.peer, "err", err)
	return unreachableError{peer: p.peer, err: err}
}

type unreachableError struct {
	peer string
	err  error
}

func (e unreachableError) Error() string { return "peer " + e.peer + ": unreachable" }
func (e unreachableError) Unwrap() error { return e.err }

// peerBody is an artifact download, whose connection's failure is hidden the same way.
type peerBody struct {
	io.ReadCloser
	p peerSource
}

func (b peerBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	return n, b.p.hide(err)
}

// Remove stops the task and forgets its state.
func (p taskPlane) Remove(ctx context.Context, r store.Resource) error {
	if p.s.engine == nil {
		return nil
	}
	if err := p.s.engine.Stop(r.ID); err != nil && !errors.Is(err, appsync.ErrNotFound) {
		return err
	}
	return p.s.st.DeleteDoc(ctx, stateKind, r.ID)
}

func (p taskPlane) Status(_ context.Context, r store.Resource) (any, error) {
	if err := p.s.needKey(); err != nil {
		return nil, err
	}
	st, err := p.s.engine.Status(r.ID)
	if errors.Is(err, appsync.ErrNotFound) {
		return nil, fmt.Errorf("task %s (not pushed yet): %w", r.ID, store.ErrNotFound)
	}
	return st, err
}

// syncStates keeps task states in the store's docs.
type syncStates struct{ st store.Store }

func (s syncStates) Load(ctx context.Context, id string) (appsync.State, bool, error) {
	raw, err := s.st.Doc(ctx, stateKind, id)
	if errors.Is(err, store.ErrNotFound) {
		return appsync.State{}, false, nil
	}
	if err != nil {
		return appsync.State{}, false, err
	}
	var st appsync.State
	if err := json.Unmarshal(raw, &st); err != nil {
		return appsync.State{}, false, fmt.Errorf("planes: appsync: state of task %s: %w", id, err)
	}
	return st, true, nil
}

func (s syncStates) Save(ctx context.Context, id string, st appsync.State) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.st.PutDoc(ctx, stateKind, id, raw)
}

// syncSink applies changes to this center: deploy's versions and releases, and app specs
// saved and pushed through the API's rules.
type syncSink struct{ s *AppSync }

func (k syncSink) Version(ctx context.Context, project, app, version string) (string, bool, error) {
	v, err := k.s.deploy.m.Version(ctx, project, app, version)
	if errors.Is(err, deploy.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(v.Digest), true, nil
}

// AddVersion checks the artifact by its piece sums where the change carries them in
// deploy's piece size (the source signed them with the digest), else by its digest.
func (k syncSink) AddVersion(ctx context.Context, project, app, version, notes string, a appsync.Artifact, r io.Reader) error {
	cfg := deploy.VersionConfig{Name: version, Notes: notes, Digest: a.Digest}
	var sums deploy.PieceSums
	if a.PieceSize == deploy.PieceSize {
		var err error
		if sums, err = deploy.ParsePieceSums(a.Pieces, a.Size); err != nil {
			return err
		}
	}
	v, err := k.s.deploy.m.AddVersionPieces(ctx, project, app, cfg, a.Size, sums, r)
	if err != nil {
		return err
	}
	return k.record(ctx, project, app, "sync-upload", v)
}

// record audits what a task did to an app, under the app resource.
func (k syncSink) record(ctx context.Context, project, app, action string, detail any) error {
	res, found, err := k.s.api.Find(ctx, "deployapp", project, app)
	if err != nil || !found {
		return err
	}
	return k.s.st.Change(ctx, syncActor, func(tx store.Tx) error {
		return tx.Record(ctx, action, "deployapp", res.ID, res.TeamID, detail)
	})
}

func (k syncSink) Current(ctx context.Context, project, app string) (string, error) {
	a, err := k.s.deploy.m.App(ctx, project, app)
	if err != nil {
		return "", err
	}
	return a.Current(), nil
}

func (k syncSink) Release(ctx context.Context, project, app, version string, nodes []string) error {
	d, err := k.s.deploy.m.Deploy(ctx, deploy.DeployRequest{Project: project, App: app, Version: version, Nodes: nodes})
	if err != nil {
		return err
	}
	if err := k.record(ctx, project, app, "sync-deploy", d); err != nil {
		return err
	}
	d, err = k.s.deploy.m.Wait(ctx, d.ID)
	if err != nil {
		return err
	}
	if d.State != deploy.DeploymentSucceeded {
		return fmt.Errorf("deployment %s of %s/%s %s: %s", d.ID, project, app, d.State, d.Error)
	}
	return nil
}

func (k syncSink) AppConfig(ctx context.Context, project, app string) (json.RawMessage, bool, error) {
	res, found, err := k.s.api.Find(ctx, "deployapp", project, app)
	if err != nil || !found {
		return nil, false, err
	}
	return res.Spec, true, nil
}

func (k syncSink) PutAppConfig(ctx context.Context, project, _ string, cfg json.RawMessage) error {
	_, err := k.s.api.Publish(ctx, syncActor, "deployapp", project, cfg)
	return err
}

func (k syncSink) DeleteApp(ctx context.Context, project, app string) error {
	return k.s.api.Withdraw(ctx, syncActor, "deployapp", project, app)
}

// ParseSyncKey reads a sync key written in hex, as the configuration and SyncKeyEnv hold it.
func ParseSyncKey(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	key, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("the sync key must be hex, such as the output of openssl rand -hex 32")
	}
	if err := appsync.ValidateKey(key); err != nil {
		return nil, err
	}
	return key, nil
}
