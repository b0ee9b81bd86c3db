package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// NodeDriver runs instances on one node: local processes (deploy/local), an
// SSH host (deploy/ssh), later Kubernetes. The Manager opens one driver per
// node (see DriverFunc) and tells it what to run with self-contained specs,
// so a driver keeps no state the Manager needs across restarts: what runs
// where is in the Store.
//
// Methods are safe for concurrent use; the Manager never runs two of them on
// one instance at once. Errors wrap ErrDriver (or a more precise sentinel:
// ErrChecksum, ErrUnsafePath, ErrUnsupported, ErrHostKey, ErrNotFound) and
// name the node and instance. Package deploytest holds the conformance suite
// every driver runs.
type NodeDriver interface {
	// Install makes a version's artifact ready on the node, under a
	// directory of its own, verifying its sha256 on the way; a tarball is
	// unpacked. Installing an installed version does nothing. A failed
	// Install leaves nothing half-installed.
	Install(ctx context.Context, a Artifact) error

	// Start starts the instance described by spec under the node's
	// supervisor, replacing whatever the instance ran before (which must be
	// stopped), and returns once its process has started, without waiting
	// for its health check. The version must be installed. Ports given as
	// 0 are chosen by the driver and reported in the status.
	Start(ctx context.Context, spec InstanceSpec) (InstanceStatus, error)

	// Stop stops the instance: SIGTERM (or the platform's equivalent) to
	// all its processes, SIGKILL to what remains after grace. Stopping a
	// stopped instance does nothing. The instance's directory stays.
	Stop(ctx context.Context, id string, grace time.Duration) error

	// Status reports the instance; an instance never started is reported
	// with an error wrapping ErrNotFound.
	Status(ctx context.Context, id string) (InstanceStatus, error)

	// Remove stops the instance like Stop and deletes its directory.
	Remove(ctx context.Context, id string, grace time.Duration) error

	// Close releases the driver. A driver whose instances are its own
	// processes (local) stops them, leaving no process behind; a driver of
	// a remote supervisor (ssh) leaves them running.
	Close() error
}

// DriverFunc opens the driver of a node. Options.Drivers maps a driver name
// ("local", "ssh") to one.
type DriverFunc func(ctx context.Context, node NodeConfig) (NodeDriver, error)

// Artifact is a version's artifact for NodeDriver.Install.
type Artifact struct {
	Project string
	App     string
	Version string
	Kind    Kind
	Digest  Digest
	Size    int64
	// Open returns the artifact's content. The reader fails with an error
	// wrapping ErrChecksum at its end if the content read does not match
	// Digest; a driver must also verify what arrived on the node (and may
	// then read past this check: Unverified).
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// InstanceSpec is everything a driver needs to start an instance.
type InstanceSpec struct {
	ID      string
	Project string
	App     AppConfig
	Node    string
	Version string
	Digest  Digest
	// Ports by name; 0 where the driver chooses.
	Ports map[string]int
	// Host is where the instance is reached (NodeConfig.Host).
	Host string
}

// InstanceStatus is an instance as its driver sees it.
type InstanceStatus struct {
	ID      string        `json:"id"`
	State   InstanceState `json:"state"`
	Version string        `json:"version,omitempty"`
	PID     int           `json:"pid,omitempty"`
	// Ports as chosen for the instance.
	Ports map[string]int `json:"ports,omitempty"`
	// Restarts counts restarts by the supervisor since the last Start.
	Restarts int `json:"restarts"`
	// LastExit describes the last exit of the process ("exit status 1",
	// "signal: killed"); "" when it has not exited.
	LastExit string    `json:"last_exit,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	// Dir is the instance's directory on the node; its logs are in
	// Dir/logs.
	Dir string `json:"dir,omitempty"`
}

// TemplateData is what templates in an app's Args, JVMOptions, Env,
// Command and ConfigFiles see.
type TemplateData struct {
	Project  string
	App      string
	Version  string
	Node     string
	Instance string
	// Host is where the instance is reached.
	Host string
	// Dir is the instance's directory; VersionDir the version's.
	Dir        string
	VersionDir string
	// Ports by name, and Port, the first one (0 without ports).
	Ports map[string]int
	Port  int
}

// Process is an instance's process as a driver runs it: the result of
// InstanceSpec.Resolve.
type Process struct {
	// Argv[0] is the program.
	Argv []string
	// Env holds KEY=value entries for the app, to add to the driver's base
	// environment.
	Env []string
	// Files to write, relative to the instance's directory, before start.
	Files []File
}

// File is a rendered config file.
type File struct {
	Path string
	Data []byte
	Mode uint32
}

// Resolve renders the spec for a driver: dir is the instance's directory,
// versionDir the installed version's (holding the artifact, or a tarball's
// content), artifact the artifact's path (jar and executable), and ports the
// instance's final ports. A tarball's relative command is joined to
// versionDir with '/' when versionDir is absolute in slash form (remote
// hosts), with the local separator otherwise.
func (s *InstanceSpec) Resolve(dir, versionDir, artifact string, ports map[string]int) (Process, error) {
	data := TemplateData{
		Project: s.Project, App: s.App.Name, Version: s.Version, Node: s.Node, Instance: s.ID,
		Host: s.Host, Dir: dir, VersionDir: versionDir, Ports: maps.Clone(ports),
	}
	if len(s.App.Ports) > 0 {
		data.Port = ports[s.App.Ports[0].Name]
	}
	var p Process
	render := func(what, text string) (string, error) {
		out, err := renderTemplate(what, text, &data)
		if err != nil {
			return "", fmt.Errorf("deploy: app %s/%s: %w", s.Project, s.App.Name, err)
		}
		return out, nil
	}
	renderAll := func(what string, in []string) ([]string, error) {
		out := make([]string, 0, len(in))
		for i, t := range in {
			v, err := render(fmt.Sprintf("%s[%d]", what, i), t)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	args, err := renderAll("args", s.App.Args)
	if err != nil {
		return Process{}, err
	}
	switch s.App.Kind {
	case KindJar:
		java := s.App.Java
		if java == "" {
			java = "java"
		}
		opts, err := renderAll("jvm_options", s.App.JVMOptions)
		if err != nil {
			return Process{}, err
		}
		p.Argv = append(append(append([]string{java}, opts...), "-jar", artifact), args...)
	case KindExecutable:
		p.Argv = append([]string{artifact}, args...)
	case KindTarball:
		cmd, err := renderAll("command", s.App.Command)
		if err != nil {
			return Process{}, err
		}
		if len(cmd) == 0 {
			return Process{}, fmt.Errorf("%w: app %s/%s: a tarball needs a command", ErrInvalid, s.Project, s.App.Name)
		}
		if !isAbs(cmd[0]) {
			cmd[0] = joinPath(versionDir, cmd[0])
		}
		p.Argv = append(cmd, args...)
	default:
		return Process{}, fmt.Errorf("%w: app %s/%s: unknown kind %q", ErrInvalid, s.Project, s.App.Name, s.App.Kind)
	}
	for _, k := range slices.Sorted(maps.Keys(s.App.Env)) {
		v, err := render("env."+k, s.App.Env[k])
		if err != nil {
			return Process{}, err
		}
		p.Env = append(p.Env, k+"="+v)
	}
	if len(s.App.Ports) > 0 {
		p.Env = append(p.Env, "PORT="+strconv.Itoa(data.Port))
	}
	for _, port := range s.App.Ports {
		p.Env = append(p.Env, "PORT_"+envName(port.Name)+"="+strconv.Itoa(ports[port.Name]))
	}
	p.Env = append(p.Env, "APP_VERSION="+s.Version, "INSTANCE_ID="+s.ID, "INSTANCE_DIR="+dir)
	for i, f := range s.App.ConfigFiles {
		v, err := render(fmt.Sprintf("config_files[%d].template", i), f.Template)
		if err != nil {
			return Process{}, err
		}
		if !safeRelPath(f.Path) {
			return Process{}, fmt.Errorf("%w: app %s/%s: config file %q leaves the instance's directory", ErrUnsafePath, s.Project, s.App.Name, f.Path)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		p.Files = append(p.Files, File{Path: f.Path, Data: []byte(v), Mode: mode})
	}
	return p, nil
}

func renderTemplate(what, text string, data *TemplateData) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	t, err := template.New(what).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("template %s: %w", what, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("template %s: %w", what, err)
	}
	return b.String(), nil
}

// envName turns a port name into the suffix of its PORT_ variable.
func envName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		default:
			return '_'
		}
	}, s)
}

// safeRelPath reports whether p is a relative slash-separated path that stays
// inside its directory.
func safeRelPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.ContainsRune(p, 0) {
		return false
	}
	c := path.Clean(p)
	return c != "." && c != ".." && !strings.HasPrefix(c, "../")
}

func isAbs(p string) bool { return strings.HasPrefix(p, "/") || filepath.IsAbs(p) }

func joinPath(dir, rel string) string {
	if strings.HasPrefix(dir, "/") {
		return path.Join(dir, rel)
	}
	return filepath.Join(dir, filepath.FromSlash(rel))
}
