package local_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/deploy"
	"github.com/shuanghuo/shuanghuo/deploy/deploytest"
	"github.com/shuanghuo/shuanghuo/deploy/local"
)

// The test app in three versions, built once for the package's tests.
var (
	buildOnce    sync.Once
	appV1, appV2 []byte
	appV3Broken  []byte
	buildErr     error
)

func apps(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		read := func(p string) []byte {
			b, err := os.ReadFile(p)
			if err != nil {
				buildErr = err
			}
			return b
		}
		appV1 = read(deploytest.BuildApp(t, "v1", false))
		appV2 = read(deploytest.BuildApp(t, "v2", false))
		appV3Broken = read(deploytest.BuildApp(t, "v3", true))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

func TestConformance(t *testing.T) {
	apps(t)
	deploytest.TestDriver(t, func(t *testing.T) deploy.NodeDriver {
		d, err := local.New(local.Options{Dir: t.TempDir(), Name: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}, appV1)
}

// The conformance suite again, its instances run as another user (as root only).
func TestConformanceAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	apps(t)
	deploytest.TestDriver(t, func(t *testing.T) deploy.NodeDriver {
		dir := t.TempDir()
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			t.Fatal(err)
		}
		d, err := local.New(local.Options{Dir: dir, Name: "n1", User: "60201:60201"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}, appV1)
}

// rig is a Manager with three local nodes and the test app's versions.
type rig struct {
	t         *testing.T
	m         *deploy.Manager
	traffic   *deploytest.Traffic
	store     *deploy.DirStore
	artifacts string
	nodes     []string
}

func newRig(t *testing.T, app deploy.AppConfig) *rig {
	apps(t)
	dir := t.TempDir()
	store, err := deploy.NewDirStore(filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	traffic := &deploytest.Traffic{}
	m, err := deploy.New(deploy.Options{
		Artifacts: store,
		Drivers:   map[string]deploy.DriverFunc{"local": local.Open},
		Traffic:   traffic,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	ctx := t.Context()
	r := &rig{t: t, m: m, traffic: traffic, store: store, artifacts: filepath.Join(dir, "artifacts")}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("n%d", i)
		if _, err := m.PutNode(ctx, deploy.NodeConfig{Name: name, Driver: "local", Dir: filepath.Join(dir, name)}); err != nil {
			t.Fatal(err)
		}
		r.nodes = append(r.nodes, name)
	}
	if _, err := m.PutApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		name string
		b    []byte
	}{{"v1", appV1}, {"v2", appV2}, {"v3", appV3Broken}} {
		if _, err := m.AddVersion(ctx, app.Project, app.Name, deploy.VersionConfig{Name: v.name}, strings.NewReader(string(v.b))); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// logPath is where an instance's log file is: <node>/logs/<instance>/.
func logPath(st deploy.InstanceStatus, name string) string {
	return filepath.Join(filepath.Dir(filepath.Dir(st.Dir)), "logs", st.ID, name)
}

func outpatient() deploy.AppConfig {
	return deploy.AppConfig{
		Project: "yb", Name: "outpatient", Kind: deploy.KindExecutable,
		Ports: []deploy.Port{{Name: "http"}},
		Env:   map[string]string{"GREETING": "hello {{.Node}}"},
		ConfigFiles: []deploy.ConfigFile{{
			Path: "config/application.properties", Template: "server.port={{.Port}}\nversion={{.Version}}\n",
		}},
		Health: deploy.HealthCheck{
			Type: "http", Path: "/healthz", Interval: deploy.Duration(50 * time.Millisecond),
			StartTimeout: deploy.Duration(3 * time.Second),
		},
		StopGrace: deploy.Duration(3 * time.Second),
		Restart:   deploy.RestartPolicy{BackoffMin: deploy.Duration(20 * time.Millisecond), BackoffMax: deploy.Duration(100 * time.Millisecond), MaxRestarts: 3, Window: deploy.Duration(10 * time.Second)},
	}
}

func (r *rig) run(d deploy.Deployment, err error) deploy.Deployment {
	t := r.t
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	d, err = r.m.Wait(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// versions returns what each instance serves over HTTP, by node.
func (r *rig) versions(t *testing.T) map[string]string {
	t.Helper()
	insts, err := r.m.Instances(t.Context(), "yb", "outpatient")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, i := range insts {
		resp, err := http.Get("http://" + i.Addr + "/")
		if err != nil {
			out[i.Node] = "down"
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out[i.Node] = strings.TrimSpace(string(b))
	}
	return out
}

func want3(v string) map[string]string { return map[string]string{"n1": v, "n2": v, "n3": v} }

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRollingUpgradeAndRollback deploys v1 on three local nodes, rolls to v2
// batch by batch behind a health gate, sees broken v3 abort and roll back by
// itself, then rolls back to v1 on request.
func TestRollingUpgradeAndRollback(t *testing.T) {
	r := newRig(t, outpatient())
	ctx := t.Context()

	d := r.run(r.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "outpatient", Version: "v1", Nodes: r.nodes, Strategy: deploy.Strategy{Type: deploy.AllAtOnce}}))
	if d.State != deploy.DeploymentSucceeded {
		t.Fatalf("deploy v1: %s %s", d.State, d.Error)
	}
	if got := r.versions(t); !equal(got, want3("v1")) {
		t.Fatalf("after v1: %v", got)
	}
	insts, _ := r.m.Instances(ctx, "yb", "outpatient")
	ports := map[string]string{}
	for _, i := range insts {
		ports[i.Node] = i.Addr
		st, err := r.m.InstanceStatus(ctx, i.ID)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := os.ReadFile(filepath.Join(st.Dir, "config", "application.properties"))
		if err != nil || !strings.Contains(string(cfg), "server.port="+strconv.Itoa(i.Ports["http"])) {
			t.Errorf("config file of %s: %q, %v", i.ID, cfg, err)
		}
		if _, err := os.Stat(logPath(st, "stdout.log")); err != nil {
			t.Errorf("stdout log of %s: %v", i.ID, err)
		}
	}

	d = r.run(r.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "outpatient", Version: "v2", Strategy: deploy.Strategy{BatchSize: 2, Pause: deploy.Duration(50 * time.Millisecond)}}))
	if d.State != deploy.DeploymentSucceeded || len(d.Batches) != 2 {
		t.Fatalf("upgrade to v2: %s %s, batches %v", d.State, d.Error, d.Batches)
	}
	if got := r.versions(t); !equal(got, want3("v2")) {
		t.Fatalf("after v2: %v", got)
	}
	insts, _ = r.m.Instances(ctx, "yb", "outpatient")
	for _, i := range insts {
		if ports[i.Node] != i.Addr {
			t.Errorf("instance %s moved from %s to %s; ports stay with the instance", i.ID, ports[i.Node], i.Addr)
		}
		if r.traffic.Drained(i.ID) {
			t.Errorf("instance %s left drained", i.ID)
		}
	}

	start := time.Now()
	d = r.run(r.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "outpatient", Version: "v3", Strategy: deploy.Strategy{BatchSize: 1, Rollback: true}}))
	if d.State != deploy.DeploymentRolledBack || !strings.Contains(d.Error, "health check failed") {
		t.Fatalf("broken v3: %s %q; want rolled-back after a failed health gate", d.State, d.Error)
	}
	t.Logf("broken v3 aborted and rolled back in %v; steps %+v", time.Since(start).Round(time.Millisecond), d.Steps)
	if got := r.versions(t); !equal(got, want3("v2")) {
		t.Fatalf("after v3's rollback: %v", got)
	}
	if len(d.Batches) != 3 || countAction(d, "replace") != 1 {
		t.Errorf("v3 should have stopped after its first batch: %+v", d.Steps)
	}

	a, _ := r.m.App(ctx, "yb", "outpatient")
	if a.Current() != "v2" || a.Previous() != "v1" {
		t.Fatalf("released %v; want current v2 and previous v1", a.Released)
	}
	d = r.run(r.m.Rollback(ctx, "yb", "outpatient", deploy.Strategy{Type: deploy.AllAtOnce}))
	if d.State != deploy.DeploymentSucceeded || d.Version != "v1" {
		t.Fatalf("rollback: %s %s to %s", d.State, d.Error, d.Version)
	}
	if got := r.versions(t); !equal(got, want3("v1")) {
		t.Fatalf("after rollback: %v", got)
	}

	// Stop and start one instance.
	id := deploy.InstanceID("yb", "outpatient", "n2")
	if err := r.m.StopInstance(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := r.versions(t); got["n2"] != "down" || got["n1"] != "v1" {
		t.Fatalf("after stopping n2: %v", got)
	}
	if err := r.m.StartInstance(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := r.versions(t); !equal(got, want3("v1")) {
		t.Fatalf("after starting n2: %v", got)
	}

	evs, err := r.m.Events(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%d %s %s", e.Seq, e.Version, strings.Join(e.Nodes, ",")))
	}
	if want := []string{"1 v1 n1,n2,n3", "2 v2 n1,n2,n3", "3 v1 n1,n2,n3"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events %q, want %q", got, want)
	}
	hist, _ := r.m.History(ctx, "yb", "outpatient")
	if len(hist) != 4 {
		t.Errorf("history has %d deployments, want 4", len(hist))
	}
}

func countAction(d deploy.Deployment, action string) int {
	n := 0
	for _, s := range d.Steps {
		if s.Action == action {
			n++
		}
	}
	return n
}

func TestCrashLoopDetected(t *testing.T) {
	app := outpatient()
	app.Args = []string{"-crash"}
	r := newRig(t, app)
	d := r.run(r.m.Deploy(t.Context(), deploy.DeployRequest{Project: "yb", App: "outpatient", Version: "v1", Nodes: []string{"n1"}}))
	if d.State != deploy.DeploymentFailed || !strings.Contains(d.Error, "crash loop") {
		t.Fatalf("deployment of a crashing app: %s %q; want failed with a crash loop", d.State, d.Error)
	}
	st, err := r.m.InstanceStatus(t.Context(), deploy.InstanceID("yb", "outpatient", "n1"))
	if err != nil {
		t.Fatal(err)
	}
	if st.State != deploy.StateCrashLoop || st.Restarts != 3 {
		t.Fatalf("status %+v; want crash-loop after 3 restarts", st)
	}
	b, _ := os.ReadFile(logPath(st, "stderr.log"))
	if n := strings.Count(string(b), "crashing on purpose"); n != 4 {
		t.Errorf("stderr.log has %d crashes, want 4:\n%s", n, b)
	}
}

// startOne runs the test app with args on a local driver, returning the
// driver, the instance's status and its directory.
func startOne(t *testing.T, args []string, grace time.Duration) (*local.Driver, deploy.InstanceStatus) {
	apps(t)
	d, err := local.New(local.Options{Dir: t.TempDir(), Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	a := deploytest.ExecutableArtifact("p", "a", "v1", appV1)
	if err := d.Install(ctx, a); err != nil {
		t.Fatal(err)
	}
	spec := deploy.InstanceSpec{
		ID: "p.a.n1", Project: "p", Node: "n1", Version: "v1", Digest: a.Digest, Host: "127.0.0.1",
		App: deploy.AppConfig{Project: "p", Name: "a", Kind: deploy.KindExecutable, Args: args,
			Ports: []deploy.Port{{Name: "http"}}, StopGrace: deploy.Duration(grace)},
		Ports: map[string]int{"http": 0},
	}
	st, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(st.Dir, "app.pid"))
	return d, st
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pidIn(t *testing.T, p string) int {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// groupGone reports whether no process of the process group is alive: none
// exists, or only zombies that init has yet to reap.
func groupGone(pgid int) bool {
	if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		return true
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			return false
		}
	}
	return true
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	d, st := startOne(t, []string{"-ignore-term"}, 300*time.Millisecond)
	defer d.Close()
	start := time.Now()
	if err := d.Stop(t.Context(), st.ID, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < 300*time.Millisecond {
		t.Errorf("an app ignoring SIGTERM stopped after %v, before its grace period", took)
	}
	if !groupGone(st.PID) {
		t.Fatalf("process group %d still has processes", st.PID)
	}
	after, _ := d.Status(t.Context(), st.ID)
	if after.State != deploy.StateStopped || !strings.Contains(after.LastExit, "killed") {
		t.Errorf("status %+v; want stopped by SIGKILL", after)
	}

	// An app that honours SIGTERM stops well before its grace period.
	d2, st2 := startOne(t, nil, 10*time.Second)
	defer d2.Close()
	start = time.Now()
	if err := d2.Stop(t.Context(), st2.ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("SIGTERM stop took %v", took)
	}
	after, _ = d2.Status(t.Context(), st2.ID)
	if after.LastExit != "exit status 0" {
		t.Errorf("last exit %q, want a clean exit on SIGTERM", after.LastExit)
	}
}

func TestNoOrphansAfterClose(t *testing.T) {
	d, st := startOne(t, []string{"-spawn"}, 2*time.Second)
	waitFile(t, filepath.Join(st.Dir, "child.pid"))
	child := pidIn(t, filepath.Join(st.Dir, "child.pid"))
	if pgid, err := syscall.Getpgid(child); err != nil || pgid != st.PID {
		t.Fatalf("child %d in group %d (%v), want %d", child, pgid, err, st.PID)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !groupGone(st.PID) {
		t.Fatalf("process group %d still has processes after Close", st.PID)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child)); err == nil && !strings.Contains(string(b), ") Z ") {
		t.Fatalf("child %d still alive after Close: %s", child, b)
	}
}

func TestChecksumMismatchRefused(t *testing.T) {
	r := newRig(t, outpatient())
	ctx := t.Context()
	v, err := r.m.Version(ctx, "yb", "outpatient", "v2")
	if err != nil {
		t.Fatal(err)
	}
	// Corrupt the stored artifact behind the store's back.
	path := filepath.Join(r.artifacts, "sha256", v.Digest.Hex())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x55
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d := r.run(r.m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "outpatient", Version: "v2", Nodes: []string{"n1"}}))
	if d.State != deploy.DeploymentFailed || !strings.Contains(d.Error, deploy.ErrChecksum.Error()) {
		t.Fatalf("deployment of a corrupted artifact: %s %q; want failed on the checksum", d.State, d.Error)
	}
	if _, err := r.m.InstanceStatus(ctx, deploy.InstanceID("yb", "outpatient", "n1")); !errors.Is(err, deploy.ErrNotFound) {
		t.Errorf("an instance exists after a refused install: %v", err)
	}
}

// As root, with User, an instance runs as that user with no supplementary groups and a clean
// environment: it reads none of the driver's files (a 0700 directory beside the node's), nor
// the driver's environment through /proc, and its config files are its own.
func TestUserIsolatesInstances(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root (it runs as root in CI)")
		}
		t.Skip("needs root")
	}
	t.Setenv("LOCAL_TEST_MARKER", "driver-environment")
	top := t.TempDir()
	if err := os.Chmod(filepath.Dir(top), 0o711); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(top, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(private, "key"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := local.New(local.Options{Dir: filepath.Join(top, "node"), Name: "n1", User: "60200:60200"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	script := "#!/bin/sh\n{ id -u; id -G; cat " + filepath.Join(private, "key") + " 2>&1; cat /proc/$PPID/environ 2>&1 | tr '\\0' '\\n'; cat conf/app.conf; env; } >out.tmp 2>&1\nmv out.tmp out.txt\nexec sleep 600\n"
	app := deploy.AppConfig{Project: "p", Name: "probe", Kind: deploy.KindExecutable,
		ConfigFiles: []deploy.ConfigFile{{Path: "conf/app.conf", Template: "conf-ok", Mode: 0o600}}}
	sum := sha256.Sum256([]byte(script))
	digest := deploy.Digest("sha256:" + hex.EncodeToString(sum[:]))
	ctx := t.Context()
	if err := d.Install(ctx, deploy.Artifact{Project: "p", App: "probe", Version: "v1", Kind: app.Kind, Digest: digest,
		Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(script)), nil }}); err != nil {
		t.Fatal(err)
	}
	st, err := d.Start(ctx, deploy.InstanceSpec{ID: "i1", Project: "p", Node: "n1", App: app, Version: "v1", Digest: digest})
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if out, err = os.ReadFile(filepath.Join(st.Dir, "out.txt")); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("the instance wrote nothing: %v", err)
	}
	lines := strings.Split(string(out), "\n")
	if lines[0] != "60200" || lines[1] != "60200" {
		t.Errorf("uid and groups: got %q %q, want 60200 and 60200 alone", lines[0], lines[1])
	}
	for _, leak := range []string{"secret", "LOCAL_TEST_MARKER"} {
		if strings.Contains(string(out), leak) {
			t.Errorf("the instance got %q:\n%s", leak, out)
		}
	}
	if !strings.Contains(string(out), "conf-ok") {
		t.Errorf("the instance cannot read its config file:\n%s", out)
	}
	if fi, err := os.Stat(st.Dir); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 60200 {
		t.Errorf("the instance's directory is not its user's: %v", err)
	}
}
