package deploy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shuanghuo/shuanghuo/deploy"
	"github.com/shuanghuo/shuanghuo/deploy/deploytest"
)

type fixture struct {
	t       *testing.T
	m       *deploy.Manager
	drivers *deploytest.Drivers
	traffic *deploytest.Traffic
	store   *deploy.MemoryStore
	reg     *prometheus.Registry
}

func newFixture(t *testing.T, store *deploy.MemoryStore, artifactDir ...string) *fixture {
	t.Helper()
	dir := t.TempDir()
	if len(artifactDir) > 0 {
		dir = artifactDir[0]
	}
	arts, err := deploy.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if store == nil {
		store = &deploy.MemoryStore{}
	}
	f := &fixture{t: t, drivers: &deploytest.Drivers{}, traffic: &deploytest.Traffic{}, store: store, reg: prometheus.NewRegistry()}
	f.m, err = deploy.New(deploy.Options{
		Store: store, Artifacts: arts, Traffic: f.traffic, Registerer: f.reg, MaxArtifactSize: 1 << 20,
		Drivers: map[string]deploy.DriverFunc{"fake": f.drivers.Open},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.m.Close() })
	return f
}

func (f *fixture) setup(versions ...string) {
	ctx := f.t.Context()
	for _, n := range []string{"n1", "n2", "n3"} {
		if _, err := f.m.PutNode(ctx, deploy.NodeConfig{Name: n, Driver: "fake"}); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := f.m.PutApp(ctx, deploy.AppConfig{Project: "yb", Name: "settle", Kind: deploy.KindExecutable, Ports: []deploy.Port{{Name: "http"}}}); err != nil {
		f.t.Fatal(err)
	}
	for _, v := range versions {
		if _, err := f.m.AddVersion(ctx, "yb", "settle", deploy.VersionConfig{Name: v}, strings.NewReader("binary "+v)); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) run(d deploy.Deployment, err error) deploy.Deployment {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(f.t.Context(), 10*time.Second)
	defer cancel()
	d, err = f.m.Wait(ctx, d.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) versions() string {
	insts, err := f.m.Instances(f.t.Context(), "yb", "settle")
	if err != nil {
		f.t.Fatal(err)
	}
	var s []string
	for _, i := range insts {
		s = append(s, i.Node+"="+i.Version)
	}
	return strings.Join(s, " ")
}

var all3 = []string{"n1", "n2", "n3"}

func TestValidationListsEveryField(t *testing.T) {
	cfg := deploy.AppConfig{
		Project: "Bad Name", Kind: "war",
		Ports:       []deploy.Port{{Name: "http", Port: 70000}, {Name: "http"}},
		ConfigFiles: []deploy.ConfigFile{{Path: "../etc/passwd", Template: "{{"}},
		Health:      deploy.HealthCheck{Type: "http", Path: "healthz", Port: "admin"},
	}
	err := cfg.Validate()
	var ve *deploy.ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, deploy.ErrInvalid) {
		t.Fatalf("Validate: %v, want a *ValidationError", err)
	}
	for _, path := range []string{"project", "name", "kind", "ports[0].port", "ports[1].name", "config_files[0].path", "config_files[0].template", "health.path", "health.port"} {
		if ve.Fields()[path] == "" {
			t.Errorf("no error for %s; got %v", path, ve.Fields())
		}
	}
	n := deploy.NodeConfig{Name: "n1", Driver: "ssh", SSH: &deploy.SSHConfig{Addr: "host", User: "u"}}
	if err := n.Validate(); !errors.As(err, &ve) || ve.Fields()["ssh.addr"] == "" || ve.Fields()["ssh.known_hosts"] == "" || ve.Fields()["ssh.key_file"] == "" {
		t.Errorf("ssh node: %v", err)
	}
}

func TestVersionsAreImmutableAndVerified(t *testing.T) {
	f := newFixture(t, nil)
	f.setup("v1")
	ctx := t.Context()
	if _, err := f.m.AddVersion(ctx, "yb", "settle", deploy.VersionConfig{Name: "v1"}, strings.NewReader("other")); !errors.Is(err, deploy.ErrExists) {
		t.Errorf("reused version name: %v, want ErrExists", err)
	}
	sum := sha256.Sum256([]byte("expected"))
	_, err := f.m.AddVersion(ctx, "yb", "settle", deploy.VersionConfig{Name: "v2", Digest: hex.EncodeToString(sum[:])}, strings.NewReader("corrupted"))
	if !errors.Is(err, deploy.ErrChecksum) {
		t.Errorf("corrupted upload: %v, want ErrChecksum", err)
	}
	if _, err := f.m.Version(ctx, "yb", "settle", "v2"); !errors.Is(err, deploy.ErrNotFound) {
		t.Errorf("refused upload left a version: %v", err)
	}
	_, err = f.m.AddVersion(ctx, "yb", "settle", deploy.VersionConfig{Name: "big"}, bytes.NewReader(make([]byte, 2<<20)))
	if !errors.Is(err, deploy.ErrTooLarge) {
		t.Errorf("oversized upload: %v, want ErrTooLarge", err)
	}
	v, err := f.m.AddVersion(ctx, "yb", "settle", deploy.VersionConfig{Name: "v2", Digest: "sha256:" + hex.EncodeToString(sum[:])}, strings.NewReader("expected"))
	if err != nil || v.Size != 8 || v.Digest.Hex() != hex.EncodeToString(sum[:]) {
		t.Errorf("upload with its digest: %+v, %v", v, err)
	}
	if got := metric(t, f.reg, "deploy_artifact_upload_bytes_total"); got <= 1<<20 {
		t.Errorf("upload bytes %v", got)
	}
}

func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func tarball(t *testing.T, entries map[string]string, links map[string]string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for name, body := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(body))
	}
	for name, target := range links {
		_ = tw.WriteHeader(&tar.Header{Name: name, Linkname: target, Typeflag: tar.TypeSymlink})
	}
	_ = tw.Close()
	_ = zw.Close()
	return b.Bytes()
}

func TestTarballPathTraversalRefused(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	if _, err := f.m.PutApp(ctx, deploy.AppConfig{Project: "yb", Name: "web", Kind: deploy.KindTarball, Command: []string{"bin/run"}}); err != nil {
		t.Fatal(err)
	}
	for name, tb := range map[string][]byte{
		"dotdot":   tarball(t, map[string]string{"bin/run": "x", "../../evil": "x"}, nil),
		"absolute": tarball(t, map[string]string{"/etc/evil": "x"}, nil),
		"symlink":  tarball(t, map[string]string{"bin/run": "x"}, map[string]string{"bin/up": "../../.."}),
	} {
		if _, err := f.m.AddVersion(ctx, "yb", "web", deploy.VersionConfig{Name: name}, bytes.NewReader(tb)); !errors.Is(err, deploy.ErrUnsafePath) {
			t.Errorf("%s: %v, want ErrUnsafePath", name, err)
		}
	}
	if vs, _ := f.m.Versions(ctx, "yb", "web"); len(vs) != 0 {
		t.Errorf("refused tarballs left versions: %+v", vs)
	}
	good := tarball(t, map[string]string{"bin/run": "#!/bin/sh\n", "conf/a": "x"}, map[string]string{"bin/conf": "../conf"})
	if _, err := f.m.AddVersion(ctx, "yb", "web", deploy.VersionConfig{Name: "1"}, bytes.NewReader(good)); err != nil {
		t.Errorf("good tarball: %v", err)
	}
	dir := t.TempDir()
	if err := deploy.ExtractTarball(bytes.NewReader(good), dir); err != nil {
		t.Fatal(err)
	}
	if err := deploy.ExtractTarball(bytes.NewReader(tarball(t, map[string]string{"../x": ""}, nil)), dir); !errors.Is(err, deploy.ErrUnsafePath) {
		t.Errorf("extract ../x: %v", err)
	}
	if _, err := filepath.Glob(filepath.Join(filepath.Dir(dir), "x")); err != nil {
		t.Fatal(err)
	}
}

func TestDeployUpgradeRollbackWithFakes(t *testing.T) {
	f := newFixture(t, nil)
	f.setup("v1", "v2", "v3")
	ctx := t.Context()

	d := f.run(f.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "settle", Version: "v1", Nodes: all3}))
	if d.State != deploy.DeploymentSucceeded || len(d.Batches) != 3 {
		t.Fatalf("v1: %+v", d)
	}
	d = f.run(f.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "settle", Version: "v2", Strategy: deploy.Strategy{BatchSize: 2}}))
	if d.State != deploy.DeploymentSucceeded || f.versions() != "n1=v2 n2=v2 n3=v2" {
		t.Fatalf("v2: %s %s, %s", d.State, d.Error, f.versions())
	}
	ops := strings.Join(f.traffic.Ops(), ",")
	if !strings.Contains(ops, "drain yb.settle.n1,") || strings.Count(ops, "undrain") != 6 {
		t.Errorf("traffic ops %s", ops)
	}

	// v3 crashes: without rollback the deployment stops at its first batch.
	f.drivers.Get("n1").Lock()
	f.drivers.Get("n1").CrashVersions["v3"] = true
	f.drivers.Get("n1").Unlock()
	d = f.run(f.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "settle", Version: "v3"}))
	if d.State != deploy.DeploymentFailed || !strings.Contains(d.Error, "crash loop") || f.versions() != "n1=v3 n2=v2 n3=v2" {
		t.Fatalf("v3 without rollback: %s %q, %s", d.State, d.Error, f.versions())
	}
	// Rollback after a failed deployment returns to the current version.
	d = f.run(f.m.Rollback(ctx, "yb", "settle", deploy.Strategy{}))
	if d.State != deploy.DeploymentSucceeded || d.Version != "v2" || f.versions() != "n1=v2 n2=v2 n3=v2" {
		t.Fatalf("rollback of the failed v3: %s %s %s, %s", d.State, d.Error, d.Version, f.versions())
	}
	if keep := countSteps(d, "keep"); keep != 2 {
		t.Errorf("rollback kept %d instances, want 2: %+v", keep, d.Steps)
	}
	// With rollback, v3 is put back by itself.
	d = f.run(f.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "settle", Version: "v3", Strategy: deploy.Strategy{Rollback: true}}))
	if d.State != deploy.DeploymentRolledBack || f.versions() != "n1=v2 n2=v2 n3=v2" {
		t.Fatalf("v3 with rollback: %s %q, %s", d.State, d.Error, f.versions())
	}
	// One-step rollback to the previous good version.
	d = f.run(f.m.Rollback(ctx, "yb", "settle", deploy.Strategy{Type: deploy.AllAtOnce}))
	if d.State != deploy.DeploymentSucceeded || f.versions() != "n1=v1 n2=v1 n3=v1" {
		t.Fatalf("rollback to v1: %s %q, %s", d.State, d.Error, f.versions())
	}
	a, _ := f.m.App(ctx, "yb", "settle")
	if a.Current() != "v1" || a.Previous() != "" {
		t.Errorf("released %v after rolling back v2", a.Released)
	}
	if _, err := f.m.Rollback(ctx, "yb", "settle", deploy.Strategy{}); !errors.Is(err, deploy.ErrState) {
		t.Errorf("rollback without a previous version: %v, want ErrState", err)
	}

	// Scale in to n1, then out to n1 and n3.
	d = f.run(f.m.Scale(ctx, "yb", "settle", []string{"n1"}, deploy.Strategy{}))
	if d.State != deploy.DeploymentSucceeded || f.versions() != "n1=v1" {
		t.Fatalf("scale in: %s %q, %s", d.State, d.Error, f.versions())
	}
	d = f.run(f.m.Scale(ctx, "yb", "settle", []string{"n1", "n3"}, deploy.Strategy{}))
	if d.State != deploy.DeploymentSucceeded || f.versions() != "n1=v1 n3=v1" {
		t.Fatalf("scale out: %s %q, %s", d.State, d.Error, f.versions())
	}

	hist, _ := f.m.History(ctx, "yb", "settle")
	var types []string
	for _, h := range hist {
		types = append(types, string(h.Type)+":"+h.Version+":"+string(h.State))
	}
	want := "deploy:v1:succeeded deploy:v2:succeeded deploy:v3:failed rollback:v2:succeeded deploy:v3:rolled-back rollback:v1:succeeded scale::succeeded scale:v1:succeeded"
	if strings.Join(types, " ") != want {
		t.Errorf("history\n%s\nwant\n%s", strings.Join(types, " "), want)
	}
}

func countSteps(d deploy.Deployment, action string) int {
	n := 0
	for _, s := range d.Steps {
		if s.Action == action {
			n++
		}
	}
	return n
}

func TestBusyAndAbort(t *testing.T) {
	f := newFixture(t, nil)
	f.setup("v1", "v2")
	ctx := t.Context()
	f.run(f.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "settle", Version: "v1", Nodes: all3}))
	d, err := f.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "settle", Version: "v2", Strategy: deploy.Strategy{Pause: deploy.Duration(time.Hour), Rollback: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "settle", Version: "v2"}); !errors.Is(err, deploy.ErrBusy) {
		t.Errorf("second deployment: %v, want ErrBusy", err)
	}
	if err := f.m.StopInstance(ctx, "yb.settle.n1"); !errors.Is(err, deploy.ErrBusy) {
		t.Errorf("stop during a deployment: %v, want ErrBusy", err)
	}
	for {
		cur, _ := f.m.Deployment(ctx, d.ID)
		if len(cur.Steps) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := f.m.Abort(ctx, d.ID, false); err != nil {
		t.Fatal(err)
	}
	d = f.run(d, nil)
	if d.State != deploy.DeploymentRolledBack || !d.Aborted || !errors.Is(deploy.ErrAborted, deploy.ErrAborted) || !strings.Contains(d.Error, "aborted") {
		t.Fatalf("aborted: %s %q", d.State, d.Error)
	}
	if f.versions() != "n1=v1 n2=v1 n3=v1" {
		t.Errorf("after abort: %s", f.versions())
	}
}

// TestEventFeedAcrossStoreRestarts publishes releases, reopens the file
// store in a new manager, and reads on from the cursor.
func TestEventFeedAcrossStoreRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deploy.json")
	store, err := deploy.OpenFileStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	arts := t.TempDir()
	f := newFixture(t, store, arts)
	f.setup("v1", "v2", "v3")
	ctx := t.Context()
	f.run(f.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "settle", Version: "v1", Nodes: all3}))
	f.run(f.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "settle", Version: "v2"}))
	evs, err := f.m.Events(ctx, 0, 1)
	if err != nil || len(evs) != 1 || evs[0].Seq != 1 || evs[0].Version != "v1" || strings.Join(evs[0].Nodes, ",") != "n1,n2,n3" {
		t.Fatalf("first event: %+v, %v", evs, err)
	}
	cursor := evs[0].Seq
	if err := f.m.Close(); err != nil {
		t.Fatal(err)
	}

	store2, err := deploy.OpenFileStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	f2 := newFixture(t, store2, arts)
	evs, _ = f2.m.Events(ctx, cursor, 0)
	if len(evs) != 1 || evs[0].Seq != 2 || evs[0].Version != "v2" {
		t.Fatalf("after reopening, events after %d: %+v", cursor, evs)
	}
	cursor = evs[0].Seq
	got := make(chan []deploy.Event, 1)
	go func() {
		evs, _ := f2.m.WaitEvents(ctx, cursor, 0)
		got <- evs
	}()
	// The drivers of the new manager know nothing: v3 starts every instance.
	d3 := f2.run(f2.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "settle", Version: "v3"}))
	if d3.State != deploy.DeploymentSucceeded {
		t.Fatalf("v3: %s %s", d3.State, d3.Error)
	}
	select {
	case evs := <-got:
		if len(evs) != 1 || evs[0].Seq != 3 || evs[0].Version != "v3" || evs[0].Deployment == "" || evs[0].Digest == "" {
			t.Fatalf("waited events: %+v", evs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitEvents did not return")
	}
	hist, _ := f2.m.History(ctx, "yb", "settle")
	if len(hist) != 3 || hist[2].ID != d3.ID || hist[0].Version != "v1" {
		t.Errorf("history across restarts: %+v", hist)
	}
}

func TestInterruptedDeploymentMarked(t *testing.T) {
	store := &deploy.MemoryStore{}
	_ = store.PutDeployment(t.Context(), deploy.Deployment{ID: "d7", Project: "yb", App: "settle", State: deploy.DeploymentRunning, Started: time.Now()})
	f := newFixture(t, store)
	d, err := f.m.Deployment(t.Context(), "d7")
	if err != nil || d.State != deploy.DeploymentInterrupted {
		t.Fatalf("%+v, %v", d, err)
	}
	f.setup("v1")
	d = f.run(f.m.Deploy(t.Context(), deploy.DeployRequest{Project: "yb", App: "settle", Version: "v1", Nodes: []string{"n1"}}))
	if hist, err := f.m.History(t.Context(), "yb", "settle"); err != nil || len(hist) != 2 || hist[0].ID != "d7" || hist[1].ID != d.ID {
		t.Errorf("history %+v, %v: want d7, then the new deployment %s", hist, err, d.ID)
	}
}

func TestResolveTemplates(t *testing.T) {
	spec := deploy.InstanceSpec{
		ID: "yb.core.n1", Project: "yb", Node: "n1", Version: "2.0", Host: "10.0.0.5",
		App: deploy.AppConfig{
			Project: "yb", Name: "core", Kind: deploy.KindJar, JVMOptions: []string{"-Xmx512m", "-Dnode={{.Node}}"},
			Args:        []string{"--server.port={{.Port}}", "--admin={{index .Ports \"admin\"}}"},
			Env:         map[string]string{"DIR": "{{.Dir}}"},
			Ports:       []deploy.Port{{Name: "http"}, {Name: "admin"}},
			ConfigFiles: []deploy.ConfigFile{{Path: "conf/app.yml", Template: "version: {{.Version}}\n"}},
		},
	}
	p, err := spec.Resolve("/i", "/v", "/v/app.jar", map[string]int{"http": 8080, "admin": 8081})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Argv, " "); got != "java -Xmx512m -Dnode=n1 -jar /v/app.jar --server.port=8080 --admin=8081" {
		t.Errorf("argv %q", got)
	}
	env := strings.Join(p.Env, " ")
	for _, want := range []string{"DIR=/i", "PORT=8080", "PORT_ADMIN=8081", "APP_VERSION=2.0", "INSTANCE_ID=yb.core.n1"} {
		if !strings.Contains(env, want) {
			t.Errorf("env %q lacks %s", env, want)
		}
	}
	if len(p.Files) != 1 || string(p.Files[0].Data) != "version: 2.0\n" || p.Files[0].Mode != 0o644 {
		t.Errorf("files %+v", p.Files)
	}
	spec.App.Args = []string{"{{.Nope}}"}
	if _, err := spec.Resolve("/i", "/v", "/v/app.jar", nil); err == nil {
		t.Error("unknown template field accepted")
	}
}

func TestTwoManagersOneProcess(t *testing.T) {
	reg := prometheus.NewRegistry()
	arts, _ := deploy.NewDirStore(t.TempDir())
	opts := deploy.Options{Artifacts: arts, Drivers: map[string]deploy.DriverFunc{"fake": (&deploytest.Drivers{}).Open}, Registerer: reg}
	m1, err := deploy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	if _, err := deploy.New(opts); err == nil || !strings.Contains(err.Error(), "another manager") {
		t.Errorf("second manager on one registerer: %v", err)
	}
	opts.Registerer = nil
	m2, err := deploy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	m2.Close()
	if _, err := deploy.New(deploy.Options{}); !errors.Is(err, deploy.ErrInvalid) {
		t.Errorf("empty options: %v", err)
	}
}

func TestFakeDriverConformance(t *testing.T) {
	deploytest.TestDriver(t, func(t *testing.T) deploy.NodeDriver { return deploytest.NewDriver("n1") }, []byte("fake executable"))
}

// Deployment IDs tell nothing of other deployments (every team's share one sequence):
// random, unique, and the history stays in the order the deployments started.
func TestDeploymentIDsAreOpaque(t *testing.T) {
	f := newFixture(t, nil)
	f.setup("v1", "v2", "v3")
	ctx := t.Context()
	var ids []string
	for _, v := range []string{"v1", "v2", "v3", "v1"} {
		d := f.run(f.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "settle", Version: v, Nodes: []string{"n1"}}))
		ids = append(ids, d.ID)
	}
	opaque := regexp.MustCompile(`^d_[a-z2-7]{13}$`)
	seen := map[string]bool{}
	for i, id := range ids {
		if !opaque.MatchString(id) || seen[id] {
			t.Fatalf("deployment %d has ID %q: want a unique random d_ and 13 base32 letters (all: %v)", i, id, ids)
		}
		seen[id] = true
	}
	hist, err := f.m.History(ctx, "yb", "settle")
	if err != nil || len(hist) != len(ids) {
		t.Fatalf("history: %+v, %v", hist, err)
	}
	for i, d := range hist {
		if d.ID != ids[i] {
			t.Fatalf("history %d is %s, want %s, in the order started", i, d.ID, ids[i])
		}
	}
}
