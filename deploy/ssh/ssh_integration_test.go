//go:build integration

package ssh_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/shuanghuo/shuanghuo/deploy"
	"github.com/shuanghuo/shuanghuo/deploy/deploytest"
	deployssh "github.com/shuanghuo/shuanghuo/deploy/ssh"
	"github.com/shuanghuo/shuanghuo/internal/mwtest"
	"github.com/shuanghuo/shuanghuo/lb"
)

// sshNode is one of the SSH nodes the package's tests share: an OpenSSH
// server in a container (internal/mwtest), reached at its address on the
// center's network.
type sshNode struct {
	svc     *mwtest.Service
	ip      string
	hostKey *mwtest.SSHKey
}

// The rig's three SSH nodes, the client's key file and a known_hosts file
// listing the nodes, set up once by TestMain. Tests keep apart by giving
// their nodes directories of their own (testRoot) and their apps ports of
// their own (nextPort).
var (
	nodes      []*sshNode
	clientKey  string
	knownHosts string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deploy-ssh-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := mwtest.Main(m, mwtest.Config{}, func(ctx context.Context, r *mwtest.Rig) error {
		return setup(ctx, r, dir)
	})
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func setup(ctx context.Context, r *mwtest.Rig, dir string) error {
	client, err := mwtest.NewSSHKey()
	if err != nil {
		return err
	}
	clientKey = filepath.Join(dir, "client_key")
	if err := os.WriteFile(clientKey, client.PEM, 0o600); err != nil {
		return err
	}
	var known strings.Builder
	for range 3 {
		hk, err := mwtest.NewSSHKey()
		if err != nil {
			return err
		}
		svc, err := r.StartSSHD(ctx, mwtest.CenterA, mwtest.SSHDOptions{HostKey: hk.PEM, AuthorizedKeys: client.AuthorizedKey})
		if err != nil {
			return err
		}
		ip, err := svc.IP(ctx)
		if err != nil {
			return err
		}
		n := &sshNode{svc: svc, ip: ip.String(), hostKey: hk}
		nodes = append(nodes, n)
		known.WriteString(knownhosts.Line([]string{n.addr()}, hk.Signer.PublicKey()) + "\n")
	}
	knownHosts = filepath.Join(dir, "known_hosts")
	return os.WriteFile(knownHosts, []byte(known.String()), 0o600)
}

func (n *sshNode) addr() string { return netip.AddrPortFrom(netip.MustParseAddr(n.ip), 22).String() }

// roots holds each test's directory on the nodes, by *testing.T.
var (
	roots   sync.Map
	rootSeq atomic.Int32
)

// testRoot is the test's own directory on the nodes, new for each run of
// the test (go test -count runs it again on the same nodes).
func testRoot(t *testing.T) string {
	r, _ := roots.LoadOrStore(t, fmt.Sprintf("/root/%s-%d", regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"), rootSeq.Add(1)))
	return r.(string)
}

// port is the last app port handed out; each test's apps get their own.
var port atomic.Int32

func init() { port.Store(8100) }

func nextPort() int { return int(port.Add(1)) }

// nodeConfig returns node i of the rig as a deploy node named name, whose
// host key is checked against known.
func nodeConfig(t *testing.T, i int, name, known string) deploy.NodeConfig {
	return deploy.NodeConfig{
		Name: name, Driver: "ssh", Host: nodes[i].ip, Dir: testRoot(t),
		SSH: &deploy.SSHConfig{Addr: nodes[i].addr(), User: "root", KeyFile: clientKey, KnownHosts: known},
	}
}

// open connects a driver to node i.
func open(t *testing.T, i int) *deployssh.Driver {
	t.Helper()
	d, err := deployssh.Open(t.Context(), nodeConfig(t, i, fmt.Sprintf("s%d", i+1), knownHosts))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d.(*deployssh.Driver)
}

// The test app's versions; BuildApp builds each once.
func app(t *testing.T, version string, broken bool) []byte {
	t.Helper()
	b, err := os.ReadFile(deploytest.BuildApp(t, version, broken))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHostKeyVerified(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Node 1's address with node 2's key: what a man in the middle shows.
	other := write("other", knownhosts.Line([]string{nodes[0].addr()}, nodes[1].hostKey.Signer.PublicKey())+"\n")
	if _, err := deployssh.Open(ctx, nodeConfig(t, 0, "s1", other)); !errors.Is(err, deploy.ErrHostKey) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("host key mismatch: %v, want ErrHostKey", err)
	}
	empty := write("empty", "")
	if _, err := deployssh.Open(ctx, nodeConfig(t, 0, "s1", empty)); !errors.Is(err, deploy.ErrHostKey) || !strings.Contains(err.Error(), "not in") {
		t.Fatalf("unknown host: %v, want ErrHostKey", err)
	}
	if _, err := deployssh.Open(ctx, nodeConfig(t, 0, "s1", filepath.Join(dir, "missing"))); !errors.Is(err, deploy.ErrHostKey) {
		t.Fatalf("no known_hosts file: %v, want ErrHostKey", err)
	}
	d, err := deployssh.Open(ctx, nodeConfig(t, 0, "s1", knownHosts))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
}

func TestConformance(t *testing.T) {
	mwtest.Require(t)
	exe := app(t, "v1", false)
	deploytest.TestDriver(t, func(t *testing.T) deploy.NodeDriver { return open(t, 0) }, exe)
}

// lbTraffic drains and undrains instances in one server group of an lb
// balancer, whose servers are the instances' addresses.
type lbTraffic struct {
	b     *lb.Balancer
	group string
}

func (l lbTraffic) Drain(ctx context.Context, inst deploy.Instance) error {
	return l.b.Drain(ctx, l.group, inst.Addr, time.Now().Add(5*time.Second))
}

func (l lbTraffic) Undrain(ctx context.Context, inst deploy.Instance) error {
	if err := l.b.Undrain(l.group, inst.Addr); err != nil {
		return err
	}
	return l.b.WaitUp(ctx, l.group, inst.Addr)
}

// load sends GET / through the balancer from two clients until stopped,
// counting what fails.
type load struct {
	url  string
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	requests int
	failed   []string
	seen     map[string]int // answers by version
}

func startLoad(t *testing.T, url string) *load {
	l := &load{url: url, stop: make(chan struct{}), seen: map[string]int{}}
	for range 2 {
		l.wg.Add(1)
		go l.run()
	}
	t.Cleanup(l.end)
	return l
}

func (l *load) run() {
	defer l.wg.Done()
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case <-l.stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
		resp, err := client.Get(l.url)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
			}
		}
		l.mu.Lock()
		l.requests++
		if err != nil {
			l.failed = append(l.failed, err.Error())
		} else {
			l.seen[strings.TrimSpace(string(body))]++
		}
		l.mu.Unlock()
	}
}

func (l *load) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// phase returns the counts since the last call and resets them.
func (l *load) phase() (requests int, failed []string, seen map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	requests, failed, seen = l.requests, l.failed, l.seen
	l.requests, l.failed, l.seen = 0, nil, map[string]int{}
	return requests, failed, seen
}

// checkPhase wants requests served throughout the phase and none failed.
func (l *load) checkPhase(t *testing.T, phase string) {
	t.Helper()
	n, failed, seen := l.phase()
	t.Logf("%s: %d requests through lb, %d failed, answers %v", phase, n, len(failed), seen)
	if n == 0 {
		t.Errorf("%s: no request went through", phase)
	}
	if len(failed) > 0 {
		t.Errorf("%s: %d of %d requests failed; first: %q", phase, len(failed), n, failed[:min(3, len(failed))])
	}
}

// outpatient is the test app as an SSH node app on port, listening on its
// node's address so that lb and the health checks reach it.
func outpatient(port int) deploy.AppConfig {
	return deploy.AppConfig{
		Project: "yb", Name: "outpatient", Kind: deploy.KindExecutable,
		Args:  []string{"-host={{.Host}}"},
		Ports: []deploy.Port{{Name: "http", Port: port}},
		ConfigFiles: []deploy.ConfigFile{{
			Path: "config/application.properties", Template: "server.port={{.Port}}\nversion={{.Version}}\n",
		}},
		Health: deploy.HealthCheck{
			Type: "http", Path: "/healthz", Interval: deploy.Duration(100 * time.Millisecond),
			StartTimeout: deploy.Duration(15 * time.Second),
		},
		StopGrace: deploy.Duration(3 * time.Second),
		Restart:   deploy.RestartPolicy{BackoffMin: deploy.Duration(time.Second), BackoffMax: deploy.Duration(2 * time.Second), MaxRestarts: 2, Window: deploy.Duration(30 * time.Second)},
	}
}

// newManager returns a Manager of SSH nodes s1..s<n> (the rig's nodes) with
// app and the test app's v1, v2 and a v3 whose health check fails.
func newManager(t *testing.T, opts deploy.Options, n int, a deploy.AppConfig) (*deploy.Manager, []string) {
	t.Helper()
	ctx := t.Context()
	store, err := deploy.NewDirStore(filepath.Join(t.TempDir(), "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	opts.Artifacts = store
	opts.Drivers = map[string]deploy.DriverFunc{"ssh": deployssh.Open}
	m, err := deploy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	var names []string
	for i := range n {
		name := fmt.Sprintf("s%d", i+1)
		if _, err := m.PutNode(ctx, nodeConfig(t, i, name, knownHosts)); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if _, err := m.PutApp(ctx, a); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		name   string
		broken bool
	}{{"v1", false}, {"v2", false}, {"v3", true}} {
		if _, err := m.AddVersion(ctx, a.Project, a.Name, deploy.VersionConfig{Name: v.name}, bytes.NewReader(app(t, v.name, v.broken))); err != nil {
			t.Fatal(err)
		}
	}
	return m, names
}

// waiter returns a function that waits for the end of the deployment that
// m's Deploy or Rollback returned.
func waiter(t *testing.T, m *deploy.Manager) func(deploy.Deployment, error) deploy.Deployment {
	return func(d deploy.Deployment, err error) deploy.Deployment {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // generous: CI runs other suites beside it
		defer cancel()
		if d, err = m.Wait(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		return d
	}
}

// versions returns what each instance answers on GET /, by node, asked
// directly (not through lb).
func versions(t *testing.T, m *deploy.Manager) map[string]string {
	t.Helper()
	insts, err := m.Instances(t.Context(), "yb", "outpatient")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, i := range insts {
		resp, err := client.Get("http://" + i.Addr + "/")
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

func all(v string) string { return fmt.Sprint(map[string]string{"s1": v, "s2": v, "s3": v}) }

// TestRollingUpgradeUnderTraffic deploys v1 on three SSH nodes behind an lb
// balancer and, under steady traffic through it that must never fail, rolls
// to v2, rolls back to v1, sees the broken v3 abort and roll back by
// itself, and stops and starts one instance.
func TestRollingUpgradeUnderTraffic(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	port := nextPort()

	bal, err := lb.New(lb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bal.Close(context.Background()) })
	group := lb.ServerGroup{
		Name:        "outpatient",
		HealthCheck: &lb.HealthCheck{Type: lb.CheckHTTP, Path: "/healthz", Interval: lb.Duration(500 * time.Millisecond)},
	}
	for _, n := range nodes {
		group.Servers = append(group.Servers, lb.Server{Address: n.ip, Port: port, Weight: 1})
	}
	lbPort := freePort(t)
	if _, err := bal.Apply(ctx, lb.BalancerConfig{
		Name: "outpatient", Address: "127.0.0.1",
		Listeners: []lb.Listener{{Name: "web", Port: lbPort, Protocol: lb.ProtocolHTTP, DefaultGroup: "outpatient"}},
		Groups:    []lb.ServerGroup{group},
	}); err != nil {
		t.Fatal(err)
	}

	m, names := newManager(t, deploy.Options{Traffic: lbTraffic{bal, "outpatient"}}, 3, outpatient(port))
	wait := waiter(t, m)
	d := wait(m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "outpatient", Version: "v1", Nodes: names, Strategy: deploy.Strategy{Type: deploy.AllAtOnce}}))
	if d.State != deploy.DeploymentSucceeded {
		t.Fatalf("deploy v1: %s %s", d.State, d.Error)
	}
	if got := fmt.Sprint(versions(t, m)); got != all("v1") {
		t.Fatalf("after v1: %s", got)
	}
	drv := open(t, 1)
	cfg, err := drv.Run(ctx, "cat "+testRoot(t)+"/instances/"+deploy.InstanceID("yb", "outpatient", "s2")+"/config/application.properties")
	if err != nil || !strings.Contains(string(cfg), fmt.Sprintf("server.port=%d", port)) {
		t.Errorf("config file on s2: %q, %v", cfg, err)
	}

	load := startLoad(t, fmt.Sprintf("http://127.0.0.1:%d/", lbPort))
	waitRequests(t, load)
	load.checkPhase(t, "before the upgrade")

	d = wait(m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "outpatient", Version: "v2", Strategy: deploy.Strategy{BatchSize: 1}}))
	if d.State != deploy.DeploymentSucceeded || len(d.Batches) != 3 {
		t.Fatalf("rolling upgrade to v2: %s %s, batches %v", d.State, d.Error, d.Batches)
	}
	if got := fmt.Sprint(versions(t, m)); got != all("v2") {
		t.Fatalf("after v2: %s", got)
	}
	load.checkPhase(t, "rolling upgrade to v2")

	d = wait(m.Rollback(ctx, "yb", "outpatient", deploy.Strategy{BatchSize: 1}))
	if d.State != deploy.DeploymentSucceeded || d.Version != "v1" {
		t.Fatalf("rollback: %s %s to %s", d.State, d.Error, d.Version)
	}
	if got := fmt.Sprint(versions(t, m)); got != all("v1") {
		t.Fatalf("after the rollback: %s", got)
	}
	load.checkPhase(t, "rollback to v1")

	d = wait(m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "outpatient", Version: "v3", Strategy: deploy.Strategy{BatchSize: 1, Rollback: true}}))
	if d.State != deploy.DeploymentRolledBack || !strings.Contains(d.Error, "health check failed") {
		t.Fatalf("broken v3: %s %q; want rolled-back after a failed health gate", d.State, d.Error)
	}
	if got := fmt.Sprint(versions(t, m)); got != all("v1") {
		t.Fatalf("after v3 rolled back: %s", got)
	}
	load.checkPhase(t, "broken v3, aborted and rolled back")

	id := deploy.InstanceID("yb", "outpatient", "s2")
	if err := m.StopInstance(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st, err := m.InstanceStatus(ctx, id); err != nil || st.State != deploy.StateStopped {
		t.Fatalf("after stop: %+v %v", st, err)
	}
	if got := versions(t, m); got["s2"] != "down" || got["s1"] != "v1" || got["s3"] != "v1" {
		t.Fatalf("after stopping s2: %v", got)
	}
	if err := m.StartInstance(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(versions(t, m)); got != all("v1") {
		t.Fatalf("after starting s2 again: %s", got)
	}
	load.checkPhase(t, "stop and start of s2")
	load.end()

	evs, err := m.Events(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%d %s %s", e.Seq, e.Version, strings.Join(e.Nodes, ",")))
	}
	if want := []string{"1 v1 s1,s2,s3", "2 v2 s1,s2,s3", "3 v1 s1,s2,s3"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events %q, want %q", got, want)
	}
	for _, name := range names {
		if err := m.StopInstance(ctx, deploy.InstanceID("yb", "outpatient", name)); err != nil {
			t.Error(err)
		}
	}
}

// waitRequests waits until the load has gone through once.
func waitRequests(t *testing.T, l *load) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		l.mu.Lock()
		n := l.requests
		l.mu.Unlock()
		if n > 0 {
			return
		}
	}
	t.Fatal("no request went through lb within 10s")
}

func TestCrashLoopDetected(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	a := outpatient(nextPort())
	a.Args = append(a.Args, "-crash")
	m, _ := newManager(t, deploy.Options{}, 1, a)
	wait := waiter(t, m)
	d := wait(m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "outpatient", Version: "v1", Nodes: []string{"s1"}}))
	if d.State != deploy.DeploymentFailed || !strings.Contains(d.Error, "crash loop") {
		t.Fatalf("deployment of a crashing app: %s %q; want failed with a crash loop", d.State, d.Error)
	}
	st, err := m.InstanceStatus(ctx, deploy.InstanceID("yb", "outpatient", "s1"))
	if err != nil {
		t.Fatal(err)
	}
	if st.State != deploy.StateCrashLoop || st.Restarts != 2 {
		t.Fatalf("status %+v; want crash-loop after 2 restarts", st)
	}
	b, err := open(t, 0).Run(ctx, "cat "+st.Dir+"/logs/stderr.log")
	if n := strings.Count(string(b), "crashing on purpose"); err != nil || n != 3 {
		t.Errorf("stderr.log has %d crashes, want 3 (%v):\n%s", n, err, b)
	}
}

// installed lists what the test's versions directory on the node holds,
// temporary directories of installs included.
func installed(t *testing.T, d *deployssh.Driver) []string {
	t.Helper()
	out, err := d.Run(t.Context(), "cd "+d.Root()+"/versions 2>/dev/null && find . -mindepth 3 -maxdepth 3 | sort")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))
}

func tarball(t *testing.T, entries ...*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte(h.Name))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func artifact(kind deploy.Kind, version string, content []byte) deploy.Artifact {
	sum := sha256.Sum256(content)
	return deploy.Artifact{
		Project: "yb", App: "outpatient", Version: version, Kind: kind,
		Digest: deploy.Digest("sha256:" + hex.EncodeToString(sum[:])), Size: int64(len(content)),
		Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil },
	}
}

// TestRefusedUploadsLeaveNothing has the driver refuse a corrupted upload,
// an oversized one and tarballs with entries leaving their directory, each
// leaving nothing on the node; and the Manager refuse them before they
// reach a node.
func TestRefusedUploadsLeaveNothing(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	d := open(t, 0)
	exe := app(t, "v1", false)

	corrupt := artifact(deploy.KindExecutable, "corrupt", exe)
	bad := bytes.Clone(exe)
	bad[len(bad)/2] ^= 0xff
	corrupt.Open = func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(bad)), nil }

	oversized := artifact(deploy.KindExecutable, "oversized", exe[:len(exe)/2])
	oversized.Open = func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(exe)), nil }

	for _, c := range []struct {
		name string
		a    deploy.Artifact
		want error
	}{
		{"corrupted", corrupt, deploy.ErrChecksum},
		{"oversized", oversized, deploy.ErrTooLarge},
		{"dot-dot entry", artifact(deploy.KindTarball, "dotdot", tarball(t,
			&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
			&tar.Header{Name: "../../../../../../tmp/escaped", Typeflag: tar.TypeReg, Mode: 0o644})), deploy.ErrUnsafePath},
		{"absolute entry", artifact(deploy.KindTarball, "abs", tarball(t,
			&tar.Header{Name: "/tmp/escaped", Typeflag: tar.TypeReg, Mode: 0o644})), deploy.ErrUnsafePath},
		{"link out", artifact(deploy.KindTarball, "link", tarball(t,
			&tar.Header{Name: "etc", Typeflag: tar.TypeSymlink, Linkname: "../../../../../etc"},
			&tar.Header{Name: "etc/escaped", Typeflag: tar.TypeReg, Mode: 0o644})), deploy.ErrUnsafePath},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := d.Install(ctx, c.a); !errors.Is(err, c.want) {
				t.Fatalf("install: %v, want %v", err, c.want)
			}
			if got := installed(t, d); len(got) > 0 {
				t.Errorf("the node holds %q after a refused install; want nothing", got)
			}
			if out, _ := d.Run(ctx, "ls /tmp/escaped /etc/escaped 2>/dev/null || true"); len(out) > 0 {
				t.Errorf("a tarball entry escaped: %s", out)
			}
		})
	}
	good := artifact(deploy.KindTarball, "good", tarball(t,
		&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "bin/start", Typeflag: tar.TypeReg, Mode: 0o755},
		&tar.Header{Name: "start", Typeflag: tar.TypeSymlink, Linkname: "bin/start"}))
	if err := d.Install(ctx, good); err != nil {
		t.Fatalf("install of a sound tarball: %v", err)
	}
	if got := installed(t, d); len(got) != 1 || !strings.HasPrefix(got[0], "./yb/outpatient/good-") {
		t.Errorf("the node holds %q; want the sound tarball only", got)
	}

	// Through the Manager, such uploads stop at the store and the node sees
	// none of them.
	store, err := deploy.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := deploy.New(deploy.Options{Artifacts: store, MaxArtifactSize: int64(len(exe) / 2), Drivers: map[string]deploy.DriverFunc{"ssh": deployssh.Open}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.PutNode(ctx, nodeConfig(t, 0, "s1", knownHosts)); err != nil {
		t.Fatal(err)
	}
	exeApp := outpatient(nextPort())
	tarApp := exeApp
	tarApp.Name, tarApp.Kind, tarApp.Command = "tarred", deploy.KindTarball, []string{"start"}
	for _, a := range []deploy.AppConfig{exeApp, tarApp} {
		if _, err := m.PutApp(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.AddVersion(ctx, "yb", "outpatient", deploy.VersionConfig{Name: "big"}, bytes.NewReader(exe)); !errors.Is(err, deploy.ErrTooLarge) {
		t.Errorf("upload past MaxArtifactSize: %v, want ErrTooLarge", err)
	}
	wrong := "sha256:" + strings.Repeat("0", 64)
	if _, err := m.AddVersion(ctx, "yb", "outpatient", deploy.VersionConfig{Name: "wrong", Digest: wrong}, bytes.NewReader(exe[:100])); !errors.Is(err, deploy.ErrChecksum) {
		t.Errorf("upload with a wrong digest: %v, want ErrChecksum", err)
	}
	evil := tarball(t, &tar.Header{Name: "../escaped", Typeflag: tar.TypeReg, Mode: 0o644})
	if _, err := m.AddVersion(ctx, "yb", "tarred", deploy.VersionConfig{Name: "evil"}, bytes.NewReader(evil)); !errors.Is(err, deploy.ErrUnsafePath) {
		t.Errorf("path-traversal tarball: %v, want ErrUnsafePath", err)
	}
	if vs, err := m.Versions(ctx, "yb", "outpatient"); err != nil || len(vs) != 0 {
		t.Errorf("versions after refused uploads: %v, %v; want none", vs, err)
	}
}

// TestHostBytesVerified corrupts the artifact on the host once the driver
// has sent it all, before the upload ends: the driver sent the right bytes
// (the artifact's reader verifies them), so only a check of what landed on
// the host finds it.
func TestHostBytesVerified(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	d := open(t, 0)
	if tool, err := d.HashTool(ctx); err != nil || tool != "openssl dgst -sha256" {
		t.Errorf("the node's hash tool: %q, %v; want openssl's, the fastest the image has (an image built before scripts/images added openssl?)", tool, err)
	}
	content := bytes.Repeat([]byte("shuanghuo"), 3<<20/9+1000)
	a := artifact(deploy.KindExecutable, "tampered", content)
	a.Open = func(ctx context.Context) (io.ReadCloser, error) {
		return deploy.VerifyReader(&tamperAtEnd{ctx: ctx, d: d, r: bytes.NewReader(content), size: len(content)}, a.Digest, a.Size), nil
	}
	if err := d.Install(ctx, a); !errors.Is(err, deploy.ErrChecksum) {
		t.Fatalf("install of an artifact corrupted on the host: %v, want ErrChecksum", err)
	}
	if got := installed(t, d); len(got) > 0 {
		t.Errorf("the node holds %q after a refused install; want nothing", got)
	}
	a = artifact(deploy.KindExecutable, "sound", content)
	if err := d.Install(ctx, a); err != nil {
		t.Fatalf("install of the same artifact left alone: %v", err)
	}
}

// tamperAtEnd reads r and, before it reports its end, waits for the file
// being uploaded on the driver's node to hold size bytes and changes its
// last byte there.
type tamperAtEnd struct {
	ctx  context.Context
	d    *deployssh.Driver
	r    io.Reader
	size int
}

func (a *tamperAtEnd) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != io.EOF {
		return n, err
	}
	script := fmt.Sprintf(`f=$(find %s/versions -path '*/.install-*/.upload')
for i in $(seq 200); do [ "$(stat -c %%s "$f")" -ge %d ] && break; sleep 0.05; done
[ "$(stat -c %%s "$f")" -eq %d ] || { echo "the upload holds $(stat -c %%s "$f") bytes" >&2; exit 1; }
printf X | dd of="$f" bs=1 seek=%d conv=notrunc 2>/dev/null`, a.d.Root(), a.size, a.size, a.size-1)
	if _, err := a.d.Run(a.ctx, script); err != nil {
		return n, fmt.Errorf("tamper with the upload: %w", err)
	}
	return n, io.EOF
}

// processes lists the node's processes whose command line holds s.
func processes(t *testing.T, d *deployssh.Driver, s string) []string {
	t.Helper()
	out, err := d.Run(t.Context(), "ps -o pid,args")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, s) {
			found = append(found, strings.TrimSpace(line))
		}
	}
	return found
}

// TestStopRightAfterStart stops instances at once after their start, and
// also in the same command as their supervisor's launch, before it has run
// a line: no supervisor and no app may be left.
func TestStopRightAfterStart(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	d := open(t, 0)
	a := artifact(deploy.KindExecutable, "v1", app(t, "v1", false))
	if err := d.Install(ctx, a); err != nil {
		t.Fatal(err)
	}
	spec := deploy.InstanceSpec{
		ID: deploy.InstanceID("yb", "outpatient", "s1"), Project: "yb", Node: "s1", Version: "v1", Digest: a.Digest,
		App:   deploy.AppConfig{Project: "yb", Name: "outpatient", Kind: deploy.KindExecutable, Ports: []deploy.Port{{Name: "http"}}},
		Ports: map[string]int{"http": nextPort()}, Host: nodes[0].ip,
	}
	leftovers := func(when string) {
		t.Helper()
		if ps := processes(t, d, d.Root()); len(ps) > 0 {
			t.Fatalf("%s: processes left on the node:\n%s", when, strings.Join(ps, "\n"))
		}
	}
	for i := range 5 {
		if _, err := d.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
		if err := d.Stop(ctx, spec.ID, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		leftovers(fmt.Sprintf("stop right after start %d", i+1))
	}
	for i := range 10 {
		if _, err := d.Run(ctx, d.LaunchAndStopCommand(spec.ID, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		leftovers(fmt.Sprintf("stop in the launch's command %d", i+1))
		if st, err := d.Status(ctx, spec.ID); err != nil || st.State != deploy.StateStopped {
			t.Fatalf("status after the stop: %+v, %v", st, err)
		}
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
