//go:build integration

package ssh_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/deploy"
	"github.com/shuanghuo/shuanghuo/deploy/deploytest"
	deployssh "github.com/shuanghuo/shuanghuo/deploy/ssh"
)

// sshd is an OpenSSH server run by the test on a loopback port, with a host
// key, a client key and a known_hosts file of its own.
type sshd struct {
	addr, clientKey, knownHosts, otherKnownHosts string
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s not found (install openssh-server); CI is set, so this fails rather than skips", name)
	}
	t.Skipf("skipping: %s not found (install openssh-server; with CI=true this fails)", name)
	return ""
}

func startSSHD(t *testing.T) *sshd {
	t.Helper()
	bin := "/usr/sbin/sshd"
	if _, err := os.Stat(bin); err != nil {
		bin = requireTool(t, "sshd")
	}
	keygen := requireTool(t, "ssh-keygen")
	dir := t.TempDir()
	gen := func(name string) {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, name)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	gen("host_key")
	gen("other_host_key")
	gen("client_key")
	pub, _ := os.ReadFile(filepath.Join(dir, "client_key.pub"))
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host_key
AuthorizedKeysFile %s/authorized_keys
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
`, port, dir, dir)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	cmd := exec.Command(bin, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})
	s := &sshd{addr: fmt.Sprintf("127.0.0.1:%d", port), clientKey: filepath.Join(dir, "client_key")}
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("sshd does not listen: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	known := func(name, key string) string {
		b, _ := os.ReadFile(filepath.Join(dir, key))
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", port, b)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s.knownHosts = known("known_hosts", "host_key.pub")
	s.otherKnownHosts = known("other_known_hosts", "other_host_key.pub")
	return s
}

func (s *sshd) node(t *testing.T, name, knownHosts string) deploy.NodeConfig {
	return deploy.NodeConfig{
		Name: name, Driver: "ssh", Dir: filepath.Join(t.TempDir(), name),
		SSH: &deploy.SSHConfig{Addr: s.addr, User: currentUser(t), KeyFile: s.clientKey, KnownHosts: knownHosts},
	}
}

func currentUser(t *testing.T) string {
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func TestHostKeyVerified(t *testing.T) {
	s := startSSHD(t)
	ctx := t.Context()
	if _, err := deployssh.Open(ctx, s.node(t, "n1", s.otherKnownHosts)); !errors.Is(err, deploy.ErrHostKey) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("host key mismatch: %v, want ErrHostKey", err)
	}
	empty := filepath.Join(t.TempDir(), "known_hosts")
	_ = os.WriteFile(empty, nil, 0o600)
	if _, err := deployssh.Open(ctx, s.node(t, "n1", empty)); !errors.Is(err, deploy.ErrHostKey) || !strings.Contains(err.Error(), "not in") {
		t.Fatalf("unknown host: %v, want ErrHostKey", err)
	}
	d, err := deployssh.Open(ctx, s.node(t, "n1", s.knownHosts))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
}

func TestConformance(t *testing.T) {
	s := startSSHD(t)
	exe, err := os.ReadFile(deploytest.BuildApp(t, "v1", false))
	if err != nil {
		t.Fatal(err)
	}
	deploytest.TestDriver(t, func(t *testing.T) deploy.NodeDriver {
		d, err := deployssh.Open(t.Context(), s.node(t, "n1", s.knownHosts))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}, exe)
}

// TestRollingUpgradeOverSSH deploys v1 and v2 of the test app on two SSH
// nodes (one sshd, two directories, two ports) and rolls back.
func TestRollingUpgradeOverSSH(t *testing.T) {
	s := startSSHD(t)
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute) // generous: CI runs other suites beside it
	defer cancel()
	arts, _ := deploy.NewDirStore(t.TempDir())
	m, err := deploy.New(deploy.Options{Artifacts: arts, Drivers: map[string]deploy.DriverFunc{"ssh": deployssh.Open}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var nodes []string
	for i, n := range []string{"s1", "s2"} {
		if _, err := m.PutNode(ctx, s.node(t, n, s.knownHosts)); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
		_ = i
	}
	port := 0
	{
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	// Both nodes are this host: give each app a port; one app per node.
	for i, n := range nodes {
		app := deploy.AppConfig{
			Project: "yb", Name: "app" + strconv.Itoa(i), Kind: deploy.KindExecutable,
			Ports:     []deploy.Port{{Name: "http", Port: port + i*0}},
			Health:    deploy.HealthCheck{Type: "http", Path: "/healthz", Interval: deploy.Duration(100 * time.Millisecond), StartTimeout: deploy.Duration(10 * time.Second)},
			StopGrace: deploy.Duration(2 * time.Second),
		}
		if i == 1 {
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			app.Ports[0].Port = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		if _, err := m.PutApp(ctx, app); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"v1", "v2"} {
			b, err := os.ReadFile(deploytest.BuildApp(t, v, false))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.AddVersion(ctx, "yb", app.Name, deploy.VersionConfig{Name: v}, strings.NewReader(string(b))); err != nil {
				t.Fatal(err)
			}
		}
		for _, v := range []string{"v1", "v2"} {
			d, err := m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: app.Name, Version: v, Nodes: []string{n}})
			if err != nil {
				t.Fatal(err)
			}
			if d, err = m.Wait(ctx, d.ID); err != nil || d.State != deploy.DeploymentSucceeded {
				t.Fatalf("%s %s on %s: %s %s (wait: %v)", app.Name, v, n, d.State, d.Error, err)
			}
			if got := get(t, fmt.Sprintf("127.0.0.1:%d", app.Ports[0].Port)); got != v {
				t.Fatalf("%s serves %q, want %s", app.Name, got, v)
			}
		}
		d, err := m.Rollback(ctx, "yb", app.Name, deploy.Strategy{})
		if err != nil {
			t.Fatal(err)
		}
		if d, err = m.Wait(ctx, d.ID); err != nil || d.State != deploy.DeploymentSucceeded || get(t, fmt.Sprintf("127.0.0.1:%d", app.Ports[0].Port)) != "v1" {
			t.Fatalf("rollback of %s: %s %s (wait: %v)", app.Name, d.State, d.Error, err)
		}
		id := deploy.InstanceID("yb", app.Name, n)
		if err := m.StopInstance(ctx, id); err != nil {
			t.Fatal(err)
		}
		if st, err := m.InstanceStatus(ctx, id); err != nil || st.State != deploy.StateStopped {
			t.Fatalf("after stop: %+v %v", st, err)
		}
	}
}

func get(t *testing.T, addr string) string {
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		return "down"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}
