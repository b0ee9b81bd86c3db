// Package ssh is the deploy node driver for Linux hosts reached over SSH
// (golang.org/x/crypto/ssh).
//
// The host's key is verified against the node's known_hosts file; an unknown
// or changed key fails Open with deploy.ErrHostKey, never silently. On the
// host, under the node's directory (default ~/shuanghuo):
//
//	bin/supervise.sh                           the supervisor, uploaded by the driver
//	versions/<project>/<app>/<version>-<digest>/  installed versions
//	instances/<instance>/                      run.sh, config files, state, logs/
//
// Install streams the artifact through one SSH session into a temporary
// directory and verifies what landed on the host against the version's
// digest, hashing the file there with the fastest sha256 command the host
// has (openssl dgst, else sha256sum, else busybox's; probed once per
// connection). It refuses a stream longer than the artifact
// (deploy.ErrTooLarge) and a tarball with an entry that would leave its
// directory (deploy.ErrUnsafePath, found before tar runs), unpacks a
// tarball, and renames the directory into place only then, so a failed
// install leaves nothing half-installed. Start writes the instance's config
// files and run.sh and starts supervise.sh under setsid: it restarts the
// process with backoff, detects crash loops, appends stdout and stderr to
// logs/ (rotated at each start past 10 MiB), and on Stop sends SIGTERM to
// the instance's process group, SIGKILL after the grace period; a Stop that
// comes while the supervisor is still starting ends it too. Instances keep
// running when the driver closes. Ports must be fixed (a port of 0 is
// refused), and the host needs a POSIX shell with cat, mkdir, mv, rm, chmod,
// stat, sha256sum, tar, setsid, kill and sleep (coreutils or busybox);
// installs are faster with the openssl command.
//
// Its integration tests (build tag integration) run against OpenSSH servers
// in containers (internal/mwtest's StartSSHD; scripts/images builds the
// image).
package ssh

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/shuanghuo/shuanghuo/deploy"
)

//go:embed supervise.sh
var superviseScript []byte

// Driver runs a node's instances on an SSH host.
type Driver struct {
	node   string
	client *ssh.Client
	root   string // absolute

	mu        sync.Mutex
	installed bool   // supervise.sh is up to date
	hasher    string // the host's sha256 command, once probed (hashTool)
}

// Open is the deploy.DriverFunc of ssh nodes: it connects to node.SSH.Addr,
// verifying the host key against node.SSH.KnownHosts.
func Open(ctx context.Context, node deploy.NodeConfig) (deploy.NodeDriver, error) {
	if err := node.Validate(); err != nil {
		return nil, err
	}
	c := node.SSH
	if c == nil {
		return nil, fmt.Errorf("%w: ssh node %s has no ssh settings", deploy.ErrInvalid, node.Name)
	}
	hostKeys, err := knownhosts.New(c.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("deploy: ssh node %s: read known_hosts: %w: %w", node.Name, deploy.ErrHostKey, err)
	}
	var auth []ssh.AuthMethod
	if c.KeyFile != "" {
		pem, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("deploy: ssh node %s: key file: %w", node.Name, err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return nil, fmt.Errorf("deploy: ssh node %s: key file: %w", node.Name, err)
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if c.Password != "" {
		auth = append(auth, ssh.Password(c.Password))
	}
	timeout := c.Timeout.Or(10 * time.Second)
	cfg := &ssh.ClientConfig{
		User: c.User, Auth: auth, Timeout: timeout,
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			if err := hostKeys(host, remote, key); err != nil {
				var ke *knownhosts.KeyError
				if errors.As(err, &ke) && len(ke.Want) > 0 {
					return fmt.Errorf("%w: host %s offered a %s key that does not match %s (possible man-in-the-middle): %w", deploy.ErrHostKey, host, key.Type(), c.KnownHosts, err)
				}
				return fmt.Errorf("%w: host %s is not in %s: %w", deploy.ErrHostKey, host, c.KnownHosts, err)
			}
			return nil
		},
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("deploy: ssh node %s: %w: %w", node.Name, deploy.ErrDriver, err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	sc, chans, reqs, err := ssh.NewClientConn(conn, c.Addr, cfg)
	if err != nil {
		_ = conn.Close()
		if errors.Is(err, deploy.ErrHostKey) {
			return nil, fmt.Errorf("deploy: ssh node %s: %w", node.Name, err)
		}
		return nil, fmt.Errorf("deploy: ssh node %s: %w: %w", node.Name, deploy.ErrDriver, err)
	}
	_ = conn.SetDeadline(time.Time{})
	drv := &Driver{node: node.Name, client: ssh.NewClient(sc, chans, reqs)}
	root := node.Dir
	if root == "" {
		root = "shuanghuo"
	}
	if !strings.HasPrefix(root, "/") {
		home, err := drv.run(ctx, "pwd", nil)
		if err != nil {
			_ = drv.client.Close()
			return nil, err
		}
		root = path.Join(strings.TrimSpace(string(home)), root)
	}
	drv.root = root
	return drv, nil
}

func (d *Driver) errorf(format string, args ...any) error {
	return fmt.Errorf("deploy: ssh node %s: "+format, append([]any{d.node}, args...)...)
}

// q quotes s for the remote shell.
func q(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// run runs cmd on the host with stdin, returning its stdout; a non-zero exit
// is an error holding stderr.
func (d *Driver) run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	s, err := d.client.NewSession()
	if err != nil {
		return nil, d.errorf("%w: open a session: %w", deploy.ErrDriver, err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	var w io.WriteCloser
	if stdin != nil {
		if w, err = s.StdinPipe(); err != nil {
			return nil, d.errorf("%w: %w", deploy.ErrDriver, err)
		}
	}
	if err := s.Start(cmd); err != nil {
		return nil, d.errorf("%w: start %q: %w", deploy.ErrDriver, firstWord(cmd), err)
	}
	copyErr := make(chan error, 1)
	if stdin != nil {
		go func() {
			_, err := io.Copy(w, stdin)
			if err != nil {
				// Stop the remote command from taking a truncated stream.
				_ = s.Signal(ssh.SIGKILL)
				_ = s.Close()
			}
			_ = w.Close()
			copyErr <- err
		}()
	} else {
		copyErr <- nil
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGKILL)
		_ = s.Close()
		return nil, ctx.Err()
	}
	if cerr := <-copyErr; cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return out.Bytes(), d.errorf("%w: %s: %w: %s", deploy.ErrDriver, firstWord(cmd), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func firstWord(cmd string) string {
	if i := strings.IndexAny(cmd, " \n"); i > 0 {
		return cmd[:i]
	}
	return cmd
}

func (d *Driver) versionDir(project, app, version string, digest deploy.Digest) string {
	return path.Join(d.root, "versions", project, app, version+"-"+digest.Short())
}

func artifactName(kind deploy.Kind) string {
	switch kind {
	case deploy.KindJar:
		return "app.jar"
	case deploy.KindExecutable:
		return "app"
	}
	return ""
}

// Install implements deploy.NodeDriver.
func (d *Driver) Install(ctx context.Context, a deploy.Artifact) error {
	vdir := d.versionDir(a.Project, a.App, a.Version, a.Digest)
	if out, err := d.run(ctx, "cat "+q(vdir+"/.installed")+" 2>/dev/null || true", nil); err == nil && string(out) == string(a.Digest) {
		return nil
	}
	rc, err := a.Open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp := path.Join(path.Dir(vdir), ".install-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	fail := func(err error) error {
		_, _ = d.run(context.WithoutCancel(ctx), "rm -rf "+q(tmp), nil)
		return d.errorf("install version %s of %s/%s: %w", a.Version, a.Project, a.App, err)
	}
	// upload hashes the host's file against the digest: the store's
	// content is checked by that too.
	var body io.Reader = &sizeLimit{r: deploy.Unverified(rc), size: a.Size}
	var check func(uploadErr error) error
	if a.Kind == deploy.KindTarball {
		// The tarball is checked as it goes by, and one with an entry that
		// would leave its directory stops the upload before tar sees it.
		pr, pw := io.Pipe()
		body = io.TeeReader(body, pw)
		checked := make(chan error, 1)
		go func() {
			err := deploy.CheckTarball(pr)
			if err == nil {
				_, err = io.Copy(io.Discard, pr)
			}
			_ = pr.CloseWithError(err)
			checked <- err
		}()
		check = func(uploadErr error) error {
			_ = pw.CloseWithError(uploadErr) // nil: the checker reads EOF
			return <-checked
		}
	}
	size, err := d.upload(ctx, tmp+"/.upload", body, a.Digest)
	if check != nil {
		// An unsafe entry is why the upload stopped, if it did.
		if cerr := check(err); cerr != nil && (err == nil || errors.Is(cerr, deploy.ErrUnsafePath)) {
			return fail(cerr)
		}
	}
	if err != nil {
		return fail(err)
	}
	var place string
	if name := artifactName(a.Kind); name != "" {
		place = "mv .upload " + q(name) + " && chmod 755 " + q(name)
	} else {
		place = "tar -xzf .upload --no-same-owner && rm -f .upload"
	}
	// The size guards against a file changed behind the upload's back.
	place = "[ \"$(stat -c %s .upload)\" -eq " + strconv.FormatInt(size, 10) + " ] && " + place
	script := "cd " + q(tmp) + " && " + place + " && printf %s " + q(string(a.Digest)) + " > .installed && cd / && rm -rf " + q(vdir) + " && mv " + q(tmp) + " " + q(vdir)
	if _, err := d.run(ctx, script, nil); err != nil {
		return fail(err)
	}
	return nil
}

// hashTools are the commands a host may hash stdin with (sha256), fastest
// first: the openssl command uses the CPU's SHA extensions and hashes three
// to five times as fast as coreutils' sha256sum built without OpenSSL (as
// Debian builds it), which is half as fast again as busybox's.
var hashTools = []string{"openssl dgst -sha256", "sha256sum", "busybox sha256sum"}

// probeScript has each of hashTools hash "abc", its output after a line
// naming its index.
var probeScript = func() string {
	var b strings.Builder
	for i, t := range hashTools {
		fmt.Fprintf(&b, "echo '%s%d'; printf abc | %s 2>/dev/null; echo; ", probeMark, i, t)
	}
	return b.String()
}()

const probeMark = "--- hash tool "

// abcSum is the sha256 of "abc".
const abcSum = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

// hashTool returns the host's fastest working sha256 command, probed once
// per connection.
func (d *Driver) hashTool(ctx context.Context) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hasher != "" {
		return d.hasher, nil
	}
	out, err := d.run(ctx, probeScript, nil)
	if err != nil {
		return "", err
	}
	t, err := pickHashTool(string(out))
	if err != nil {
		return "", d.errorf("%w", err)
	}
	d.hasher = t
	return t, nil
}

// pickHashTool reads probeScript's output and returns the first of
// hashTools that hashed "abc" right.
func pickHashTool(out string) (string, error) {
	outputs := make([]strings.Builder, len(hashTools))
	i := -1
	for _, line := range strings.Split(out, "\n") {
		if n, ok := strings.CutPrefix(line, probeMark); ok {
			i, _ = strconv.Atoi(n)
			continue
		}
		if i >= 0 && i < len(hashTools) {
			outputs[i].WriteString(line + "\n")
		}
	}
	for i, t := range hashTools {
		if sum, ok := parseSum(outputs[i].String()); ok && sum == abcSum {
			return t, nil
		}
	}
	return "", fmt.Errorf("%w: the host has no working sha256 command (tried %s)", deploy.ErrUnsupported, strings.Join(hashTools, ", "))
}

// parseSum returns the one sha256 (64 hex digits) in a hash command's
// output, whichever way the command prints it: "<hex>  -" (sha256sum),
// "SHA2-256(stdin)= <hex>" (OpenSSL 3), "(stdin)= <hex>" (OpenSSL 1.1),
// "<hex> *stdin" (openssl -r). It is false when there is none or more than
// one.
func parseSum(out string) (string, bool) {
	var sum string
	for _, f := range strings.FieldsFunc(out, func(r rune) bool {
		return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F')
	}) {
		if len(f) != 64 {
			continue
		}
		if sum != "" {
			return "", false
		}
		sum = strings.ToLower(f)
	}
	return sum, sum != ""
}

// upload writes body to the file dst on the host (its directory is
// created) and verifies what landed there: once the upload has ended, the
// same session hashes the file with the host's fastest sha256 command
// (hashTool), and the sum must be digest. The check is end to end, of the
// host's bytes against the version's digest, so nothing is hashed here. With openssl the hash adds
// about 0.2 s per 200 MiB; with sha256sum alone about a second. Hashing the
// file on the host while it grew took a third more CPU on the nodes than
// hashing it once at the end (bench/deploy, three nodes on two cores). It
// returns the size written.
func (d *Driver) upload(ctx context.Context, dst string, body io.Reader, digest deploy.Digest) (int64, error) {
	tool, err := d.hashTool(ctx)
	if err != nil {
		return 0, err
	}
	// The file is read from stdin so that its path, which may hold hex
	// digits, is not in the output.
	sent := &sizeLimit{r: body}
	out, err := d.run(ctx, "mkdir -p "+q(path.Dir(dst))+" && cat > "+q(dst)+" && "+tool+" < "+q(dst), sent)
	if err != nil {
		return 0, err
	}
	sum, ok := parseSum(string(out))
	if !ok {
		return 0, d.errorf("%w: %s printed no sha256: %q", deploy.ErrDriver, tool, out)
	}
	if got := deploy.Digest("sha256:" + sum); got != digest {
		return 0, fmt.Errorf("%w: the host's file hashes to %s, want %s", deploy.ErrChecksum, got, digest)
	}
	return sent.n, nil
}

// sizeLimit fails a read past size bytes (size <= 0: no limit), so that a
// stream longer than its artifact fills no disk on the host.
type sizeLimit struct {
	r    io.Reader
	size int64
	n    int64
}

func (l *sizeLimit) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.size > 0 && l.n > l.size {
		return n, fmt.Errorf("%w: more than the artifact's %d bytes", deploy.ErrTooLarge, l.size)
	}
	return n, err
}

// ensureSupervisor uploads supervise.sh once per connection.
func (d *Driver) ensureSupervisor(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.installed {
		return nil
	}
	sup := d.supervisor()
	if _, err := d.run(ctx, "mkdir -p "+q(path.Dir(sup))+" && cat > "+q(sup+".tmp")+" && mv "+q(sup+".tmp")+" "+q(sup), bytes.NewReader(superviseScript)); err != nil {
		return err
	}
	d.installed = true
	return nil
}

func seconds(v time.Duration) int { return max(1, int(math.Ceil(v.Seconds()))) }

func (d *Driver) instDir(id string) string { return path.Join(d.root, "instances", id) }

// Start implements deploy.NodeDriver.
func (d *Driver) Start(ctx context.Context, spec deploy.InstanceSpec) (deploy.InstanceStatus, error) {
	if strings.ContainsAny(spec.ID, "/ \x00") || spec.ID == "" {
		return deploy.InstanceStatus{}, d.errorf("instance %q: %w", spec.ID, deploy.ErrUnsafePath)
	}
	ports := map[string]int{}
	for _, p := range spec.App.Ports {
		ports[p.Name] = spec.Ports[p.Name]
		if ports[p.Name] == 0 {
			return deploy.InstanceStatus{}, d.errorf("start instance %s: %w: port %s is 0; give SSH nodes' apps fixed ports", spec.ID, deploy.ErrUnsupported, p.Name)
		}
	}
	if err := d.ensureSupervisor(ctx); err != nil {
		return deploy.InstanceStatus{}, err
	}
	vdir := d.versionDir(spec.Project, spec.App.Name, spec.Version, spec.Digest)
	if out, err := d.run(ctx, "cat "+q(vdir+"/.installed")+" 2>/dev/null || true", nil); err != nil || string(out) != string(spec.Digest) {
		return deploy.InstanceStatus{}, d.errorf("start instance %s: %w: version %s is not installed", spec.ID, deploy.ErrState, spec.Version)
	}
	if err := d.Stop(ctx, spec.ID, spec.App.StopGrace.Or(10*time.Second)); err != nil {
		return deploy.InstanceStatus{}, err
	}
	dir := d.instDir(spec.ID)
	art := ""
	if name := artifactName(spec.App.Kind); name != "" {
		art = path.Join(vdir, name)
	}
	proc, err := spec.Resolve(dir, vdir, art, ports)
	if err != nil {
		return deploy.InstanceStatus{}, d.errorf("start instance %s: %w", spec.ID, err)
	}
	var run strings.Builder
	run.WriteString("#!/bin/sh\n")
	for _, kv := range proc.Env {
		k, v, _ := strings.Cut(kv, "=")
		run.WriteString("export " + k + "=" + q(v) + "\n")
	}
	run.WriteString("exec")
	for _, a := range proc.Argv {
		run.WriteString(" " + q(a))
	}
	run.WriteString("\n")
	var portLines strings.Builder
	for name, port := range ports {
		fmt.Fprintf(&portLines, "%s=%d\n", name, port)
	}
	files := append([]deploy.File{
		{Path: "run.sh", Data: []byte(run.String()), Mode: 0o755},
		{Path: "version", Data: []byte(spec.Version), Mode: 0o644},
		{Path: "ports", Data: []byte(portLines.String()), Mode: 0o644},
	}, proc.Files...)
	for _, f := range files {
		p := path.Join(dir, f.Path)
		cmd := "mkdir -p " + q(path.Dir(p)) + " && cat > " + q(p) + " && chmod " + strconv.FormatUint(uint64(f.Mode), 8) + " " + q(p)
		if _, err := d.run(ctx, cmd, bytes.NewReader(f.Data)); err != nil {
			return deploy.InstanceStatus{}, d.errorf("start instance %s: write %s: %w", spec.ID, f.Path, err)
		}
	}
	if _, err := d.run(ctx, d.launchCommand(dir, spec.App.Restart.Resolved()), nil); err != nil {
		return deploy.InstanceStatus{}, d.errorf("start instance %s: %w", spec.ID, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := d.Status(ctx, spec.ID)
		if err == nil && st.State != deploy.StateStopped && st.State != "" {
			return st, nil
		}
		if time.Now().After(deadline) {
			return deploy.InstanceStatus{}, d.errorf("start instance %s: %w: the supervisor did not start", spec.ID, deploy.ErrDriver)
		}
		select {
		case <-ctx.Done():
			return deploy.InstanceStatus{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// launchCommand starts the supervisor of the instance in dir in the
// background and records its PID in sup.pid before it returns, so that a
// stop coming at any time after finds it (see supervise.sh). Only setsid
// goes to the background, with no descriptor of the session, or the session
// would wait for it; it is never a process group leader there, so it runs
// setsid(2) itself, without forking, and $! is the supervisor's PID.
func (d *Driver) launchCommand(dir string, r deploy.RestartPolicy) string {
	return fmt.Sprintf("cd %s || exit 1; rm -f state last_exit stopping sup.pid; setsid sh %s run %s %d %d %d %d %d </dev/null >/dev/null 2>&1 & echo $! >sup.pid.new && mv -f sup.pid.new sup.pid",
		q(dir), q(d.supervisor()), q(dir),
		seconds(time.Duration(r.BackoffMin)), seconds(time.Duration(r.BackoffMax)), r.MaxRestarts, seconds(time.Duration(r.Window)), 10<<20)
}

// stopCommand stops the instance in dir, waiting grace before SIGKILL.
func (d *Driver) stopCommand(dir string, grace time.Duration) string {
	return "[ -d " + q(dir) + " ] || exit 0; sh " + q(d.supervisor()) + " stop " + q(dir) + " " + strconv.Itoa(seconds(grace))
}

func (d *Driver) supervisor() string { return path.Join(d.root, "bin", "supervise.sh") }

// Status implements deploy.NodeDriver.
func (d *Driver) Status(ctx context.Context, id string) (deploy.InstanceStatus, error) {
	dir := d.instDir(id)
	// Whether the supervisor is alive is asked before its state is read:
	// one that has ended wrote its last state before it went.
	script := "cd " + q(dir) + " 2>/dev/null || exit 0; echo exists=1; " +
		"if [ -f sup.pid ] && kill -0 \"$(cat sup.pid)\" 2>/dev/null; then echo alive=1; fi; " +
		"for f in state pid restarts last_exit version; do printf '%s=' $f; head -c 300 $f 2>/dev/null | tr -d '\\n'; echo; done; " +
		"sed 's/^/port./' ports 2>/dev/null"
	out, err := d.run(ctx, script, nil)
	if err != nil {
		return deploy.InstanceStatus{}, err
	}
	kv := map[string]string{}
	st := deploy.InstanceStatus{ID: id, Dir: dir, Ports: map[string]int{}}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		if name, ok := strings.CutPrefix(k, "port."); ok {
			st.Ports[name], _ = strconv.Atoi(v)
			continue
		}
		kv[k] = v
	}
	if kv["exists"] != "1" || kv["state"] == "" && kv["version"] == "" {
		return deploy.InstanceStatus{}, d.errorf("instance %s: %w", id, deploy.ErrNotFound)
	}
	st.State = deploy.InstanceState(kv["state"])
	st.Version = kv["version"]
	st.PID, _ = strconv.Atoi(kv["pid"])
	st.Restarts, _ = strconv.Atoi(kv["restarts"])
	st.LastExit = kv["last_exit"]
	switch {
	case st.State == "":
		st.State = deploy.StateStopped
	case (st.State == deploy.StateRunning || st.State == deploy.StateBackoff) && kv["alive"] != "1":
		st.State = deploy.StateStopped
		st.LastExit = "the supervisor is gone (host restarted?); last: " + st.LastExit
	}
	return st, nil
}

// Stop implements deploy.NodeDriver.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	if err := d.ensureSupervisor(ctx); err != nil {
		return err
	}
	if _, err := d.run(ctx, d.stopCommand(d.instDir(id), grace), nil); err != nil {
		return d.errorf("stop instance %s: %w", id, err)
	}
	return nil
}

// Remove implements deploy.NodeDriver.
func (d *Driver) Remove(ctx context.Context, id string, grace time.Duration) error {
	if strings.ContainsAny(id, "/ \x00") || id == "" || id == "." || id == ".." {
		return d.errorf("instance %q: %w", id, deploy.ErrUnsafePath)
	}
	if err := d.Stop(ctx, id, grace); err != nil {
		return err
	}
	if _, err := d.run(ctx, "rm -rf "+q(d.instDir(id)), nil); err != nil {
		return d.errorf("remove instance %s: %w", id, err)
	}
	return nil
}

// Close implements deploy.NodeDriver: it closes the connection and leaves
// the instances running under their supervisors.
func (d *Driver) Close() error { return d.client.Close() }

var _ deploy.NodeDriver = (*Driver)(nil)
