package deploy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Store persists the Manager's state: apps, versions, nodes, instances,
// deployments and the release event feed. A control plane backs it with its
// database; MemoryStore keeps it in memory and, opened with OpenFileStore,
// in a JSON file.
//
// The Manager calls a Store from several goroutines at once; implementations
// must be safe for concurrent use. Values passed in are not changed later,
// and values returned are not changed by the Manager. Lookups of what is not
// there return errors wrapping ErrNotFound.
type Store interface {
	PutApp(ctx context.Context, a App) error
	App(ctx context.Context, project, name string) (App, error)
	// Apps returns every app, by project and name.
	Apps(ctx context.Context) ([]App, error)
	DeleteApp(ctx context.Context, project, name string) error

	// AddVersion stores a new version; one with the same name in the app
	// is refused with ErrExists, since versions are immutable.
	AddVersion(ctx context.Context, v Version) error
	Version(ctx context.Context, project, app, name string) (Version, error)
	// Versions returns the app's versions, oldest first.
	Versions(ctx context.Context, project, app string) ([]Version, error)

	PutNode(ctx context.Context, n Node) error
	Node(ctx context.Context, name string) (Node, error)
	// Nodes returns every node, by name.
	Nodes(ctx context.Context) ([]Node, error)
	DeleteNode(ctx context.Context, name string) error

	PutInstance(ctx context.Context, i Instance) error
	// Instances returns the app's instances by node; project and app
	// empty: every instance.
	Instances(ctx context.Context, project, app string) ([]Instance, error)
	DeleteInstance(ctx context.Context, id string) error

	// PutDeployment stores d, replacing the one with the same ID. The
	// Manager saves a deployment each time it changes.
	PutDeployment(ctx context.Context, d Deployment) error
	Deployment(ctx context.Context, id string) (Deployment, error)
	// Deployments returns the app's deployments, oldest first; project and
	// app empty: every deployment.
	Deployments(ctx context.Context, project, app string) ([]Deployment, error)

	// AppendEvent gives e the next sequence number (one more than the last
	// event's; 1 for the first) and stores it.
	AppendEvent(ctx context.Context, e Event) (Event, error)
	// Events returns up to limit events with Seq > after, in order.
	Events(ctx context.Context, after int64, limit int) ([]Event, error)
}

// MemoryStore is a Store in memory, or in a JSON file when opened with
// OpenFileStore. The zero value is an empty store in memory.
type MemoryStore struct {
	mu      sync.Mutex
	path    string // "" in memory
	secrets Secrets
	s       storeData
}

// Secrets seals the secrets a file store writes — a node's SSH password — so that the file
// holds none in plain text, and opens them when it reads the file. Each value is bound to what
// it is the secret of (the parts given), so that a sealed value moved elsewhere does not open.
type Secrets interface {
	Seal(plain string, to ...string) (string, error)
	Open(sealed string, to ...string) (string, error)
}

type storeData struct {
	Apps        map[string]App        `json:"apps"`
	Versions    map[string][]Version  `json:"versions"`
	Nodes       map[string]Node       `json:"nodes"`
	Instances   map[string]Instance   `json:"instances"`
	Deployments map[string]Deployment `json:"deployments"`
	Events      []Event               `json:"events"`
}

// OpenFileStore returns a MemoryStore that loads its state from the JSON
// file at path, when it exists, and writes the file again (to a temporary
// file renamed over it) after each change. It suits a single process with
// modest history; a control plane uses its database. secrets, when not nil,
// seals the nodes' SSH passwords in the file; nil writes them as they are.
func OpenFileStore(path string, secrets Secrets) (*MemoryStore, error) {
	s := &MemoryStore{path: path, secrets: secrets}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("deploy: file store: %w", err)
	}
	if err := json.Unmarshal(b, &s.s); err != nil {
		return nil, fmt.Errorf("deploy: file store %s: %w", path, err)
	}
	for name, n := range s.s.Nodes {
		if s.s.Nodes[name], err = s.openNode(n); err != nil {
			return nil, fmt.Errorf("deploy: file store %s: %w", path, err)
		}
	}
	return s, nil
}

// sealedMark starts a sealed SSH password in the file, so that a file written before the
// store had Secrets (plain passwords) still reads, and is sealed at its next write.
const sealedMark = "sealed:"

// sealNode returns n with its SSH password sealed, for the file.
func (s *MemoryStore) sealNode(n Node) (Node, error) {
	if s.secrets == nil || n.SSH == nil || n.SSH.Password == "" {
		return n, nil
	}
	v, err := s.secrets.Seal(n.SSH.Password, nodeSecretOf(n.Name)...)
	if err != nil {
		return n, fmt.Errorf("deploy: file store: node %s: %w", n.Name, err)
	}
	ssh := *n.SSH
	ssh.Password = sealedMark + v
	n.SSH = &ssh
	return n, nil
}

// openNode returns n, read from the file, with its SSH password opened.
func (s *MemoryStore) openNode(n Node) (Node, error) {
	if n.SSH == nil || !strings.HasPrefix(n.SSH.Password, sealedMark) {
		return n, nil
	}
	if s.secrets == nil {
		return n, fmt.Errorf("node %s: its ssh password is sealed, and the store was opened without Secrets", n.Name)
	}
	v, err := s.secrets.Open(strings.TrimPrefix(n.SSH.Password, sealedMark), nodeSecretOf(n.Name)...)
	if err != nil {
		return n, fmt.Errorf("node %s: %w", n.Name, err)
	}
	ssh := *n.SSH
	ssh.Password = v
	n.SSH = &ssh
	return n, nil
}

func nodeSecretOf(name string) []string { return []string{"deploy node", name, "ssh.password"} }

func key(parts ...string) string {
	k := parts[0]
	for _, p := range parts[1:] {
		k += "/" + p
	}
	return k
}

// change runs f under the lock and saves the file when f succeeded.
func (s *MemoryStore) change(f func(d *storeData) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s.Apps == nil {
		s.s = storeData{
			Apps: map[string]App{}, Versions: map[string][]Version{}, Nodes: map[string]Node{},
			Instances: map[string]Instance{}, Deployments: map[string]Deployment{},
		}
	}
	if err := f(&s.s); err != nil {
		return err
	}
	if s.path == "" {
		return nil
	}
	data := s.s
	if s.secrets != nil {
		data.Nodes = make(map[string]Node, len(s.s.Nodes))
		for name, n := range s.s.Nodes {
			var err error
			if data.Nodes[name], err = s.sealNode(n); err != nil {
				return err
			}
		}
	}
	b, err := json.Marshal(&data)
	if err != nil {
		return fmt.Errorf("deploy: file store: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".deploy-store-*")
	if err != nil {
		return fmt.Errorf("deploy: file store: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("deploy: file store: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("deploy: file store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("deploy: file store: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("deploy: file store: %w", err)
	}
	return nil
}

func (s *MemoryStore) read(f func(d *storeData)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.s)
}

// PutApp implements Store.
func (s *MemoryStore) PutApp(_ context.Context, a App) error {
	return s.change(func(d *storeData) error { d.Apps[key(a.Project, a.Name)] = a; return nil })
}

// App implements Store.
func (s *MemoryStore) App(_ context.Context, project, name string) (App, error) {
	var a App
	var ok bool
	s.read(func(d *storeData) { a, ok = d.Apps[key(project, name)] })
	if !ok {
		return App{}, fmt.Errorf("deploy: app %s/%s: %w", project, name, ErrNotFound)
	}
	return a, nil
}

// Apps implements Store.
func (s *MemoryStore) Apps(_ context.Context) ([]App, error) {
	var out []App
	s.read(func(d *storeData) {
		for _, a := range d.Apps {
			out = append(out, a)
		}
	})
	slices.SortFunc(out, func(a, b App) int { return cmp.Or(cmp.Compare(a.Project, b.Project), cmp.Compare(a.Name, b.Name)) })
	return out, nil
}

// DeleteApp implements Store.
func (s *MemoryStore) DeleteApp(_ context.Context, project, name string) error {
	return s.change(func(d *storeData) error { delete(d.Apps, key(project, name)); return nil })
}

// AddVersion implements Store.
func (s *MemoryStore) AddVersion(_ context.Context, v Version) error {
	return s.change(func(d *storeData) error {
		k := key(v.Project, v.App)
		for _, old := range d.Versions[k] {
			if old.Name == v.Name {
				return fmt.Errorf("deploy: version %s of app %s/%s: %w", v.Name, v.Project, v.App, ErrExists)
			}
		}
		d.Versions[k] = append(d.Versions[k], v)
		return nil
	})
}

// Version implements Store.
func (s *MemoryStore) Version(_ context.Context, project, app, name string) (Version, error) {
	var v Version
	var ok bool
	s.read(func(d *storeData) {
		for _, x := range d.Versions[key(project, app)] {
			if x.Name == name {
				v, ok = x, true
			}
		}
	})
	if !ok {
		return Version{}, fmt.Errorf("deploy: version %s of app %s/%s: %w", name, project, app, ErrNotFound)
	}
	return v, nil
}

// Versions implements Store.
func (s *MemoryStore) Versions(_ context.Context, project, app string) ([]Version, error) {
	var out []Version
	s.read(func(d *storeData) { out = slices.Clone(d.Versions[key(project, app)]) })
	return out, nil
}

// PutNode implements Store.
func (s *MemoryStore) PutNode(_ context.Context, n Node) error {
	return s.change(func(d *storeData) error { d.Nodes[n.Name] = n; return nil })
}

// Node implements Store.
func (s *MemoryStore) Node(_ context.Context, name string) (Node, error) {
	var n Node
	var ok bool
	s.read(func(d *storeData) { n, ok = d.Nodes[name] })
	if !ok {
		return Node{}, fmt.Errorf("deploy: node %s: %w", name, ErrNotFound)
	}
	return n, nil
}

// Nodes implements Store.
func (s *MemoryStore) Nodes(_ context.Context) ([]Node, error) {
	var out []Node
	s.read(func(d *storeData) {
		for _, n := range d.Nodes {
			out = append(out, n)
		}
	})
	slices.SortFunc(out, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteNode implements Store.
func (s *MemoryStore) DeleteNode(_ context.Context, name string) error {
	return s.change(func(d *storeData) error { delete(d.Nodes, name); return nil })
}

// PutInstance implements Store.
func (s *MemoryStore) PutInstance(_ context.Context, i Instance) error {
	return s.change(func(d *storeData) error { d.Instances[i.ID] = i; return nil })
}

// Instances implements Store.
func (s *MemoryStore) Instances(_ context.Context, project, app string) ([]Instance, error) {
	var out []Instance
	s.read(func(d *storeData) {
		for _, i := range d.Instances {
			if project == "" && app == "" || i.Project == project && i.App == app {
				out = append(out, i)
			}
		}
	})
	slices.SortFunc(out, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteInstance implements Store.
func (s *MemoryStore) DeleteInstance(_ context.Context, id string) error {
	return s.change(func(d *storeData) error { delete(d.Instances, id); return nil })
}

// PutDeployment implements Store.
func (s *MemoryStore) PutDeployment(_ context.Context, dep Deployment) error {
	return s.change(func(d *storeData) error { d.Deployments[dep.ID] = dep; return nil })
}

// Deployment implements Store.
func (s *MemoryStore) Deployment(_ context.Context, id string) (Deployment, error) {
	var dep Deployment
	var ok bool
	s.read(func(d *storeData) { dep, ok = d.Deployments[id] })
	if !ok {
		return Deployment{}, fmt.Errorf("deploy: deployment %s: %w", id, ErrNotFound)
	}
	return dep, nil
}

// Deployments implements Store.
func (s *MemoryStore) Deployments(_ context.Context, project, app string) ([]Deployment, error) {
	var out []Deployment
	s.read(func(d *storeData) {
		for _, dep := range d.Deployments {
			if project == "" && app == "" || dep.Project == project && dep.App == app {
				out = append(out, dep)
			}
		}
	})
	slices.SortFunc(out, func(a, b Deployment) int { return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.ID, b.ID)) })
	return out, nil
}

// AppendEvent implements Store.
func (s *MemoryStore) AppendEvent(_ context.Context, e Event) (Event, error) {
	err := s.change(func(d *storeData) error {
		e.Seq = 1
		if n := len(d.Events); n > 0 {
			e.Seq = d.Events[n-1].Seq + 1
		}
		d.Events = append(d.Events, e)
		return nil
	})
	return e, err
}

// Events implements Store.
func (s *MemoryStore) Events(_ context.Context, after int64, limit int) ([]Event, error) {
	var out []Event
	s.read(func(d *storeData) {
		i, _ := slices.BinarySearchFunc(d.Events, after+1, func(e Event, seq int64) int { return cmp.Compare(e.Seq, seq) })
		for ; i < len(d.Events) && (limit <= 0 || len(out) < limit); i++ {
			out = append(out, d.Events[i])
		}
	})
	return out, nil
}

var _ Store = (*MemoryStore)(nil)
