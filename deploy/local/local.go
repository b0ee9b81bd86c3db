// Package local is the deploy node driver for processes on this host.
//
// Each node has a root directory (deploy.NodeConfig.Dir):
//
//	<dir>/versions/<project>/<app>/<version>-<digest>/   installed versions
//	<dir>/instances/<instance>/                          an instance's directory
//	<dir>/logs/<instance>/stdout.log, stderr.log         its output (rotated: .1, .2, …)
//
// Every instance runs under a supervisor goroutine: in its own directory and
// process group, restarted with exponential backoff when it exits, given up
// on (deploy.StateCrashLoop) when it exits more than MaxRestarts times within
// the restart window. Stop sends SIGTERM to the whole process group and
// SIGKILL to what remains after the grace period, so no child outlives its
// instance; Close stops every instance. On Linux the instance's first process
// also gets SIGKILL if the driver's process dies.
//
// Several nodes may share this host: give each its own directory. Ports given
// as 0 are chosen among the free loopback ports.
//
// An instance's environment is what its app sets, PORT and PORT_<NAME>, a
// minimal PATH and HOME (its directory): nothing of the driver's own.
//
// # Isolation
//
// With Options.User (which needs root), instances run as that user, with no
// supplementary groups, in a session of their own: they cannot read the
// driver's files, its environment (/proc/<pid>/environ) or another user's
// instances. Their directories are the user's; the node's directory becomes
// root:<gid> 0750, so other nodes' users do not enter it, and versions and
// logs stay root's, readable but not writable by the instances. Every
// directory above the node's must let the user pass (search permission).
// Without User, instances run as the driver's user and reach all it can: a
// node for development.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shuanghuo/shuanghuo/deploy"
)

// Options configures a Driver. Only Dir is required.
type Options struct {
	// Dir is the node's root directory; it is created.
	Dir string
	// Name names the node in errors. Default: Dir.
	Name string
	// LogMaxSize is the size at which an instance's stdout.log or
	// stderr.log is rotated. Default: 10 MiB.
	LogMaxSize int64
	// LogFiles is how many rotated files are kept besides the current one.
	// Default: 3.
	LogFiles int
	// Logger logs restarts and crash loops. Default: discard.
	Logger *slog.Logger
	// User runs the instances as this user: a name (its uid and primary
	// group) or "uid:gid", which need no entry in /etc/passwd. It needs the
	// driver to run as root; see Isolation in the package's doc. Default: the
	// driver's own user, with no isolation.
	User string
}

// Driver runs a node's instances as supervised local processes.
type Driver struct {
	opts Options
	cred *syscall.Credential // nil: the driver's own user

	installMu sync.Mutex
	mu        sync.Mutex
	closed    bool
	insts     map[string]*instance
}

// Open is the deploy.DriverFunc of local nodes: a Driver in node.Dir.
func Open(_ context.Context, node deploy.NodeConfig) (deploy.NodeDriver, error) {
	return New(Options{Dir: node.Dir, Name: node.Name})
}

// New returns a Driver for the node in opts.Dir.
func New(opts Options) (*Driver, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("%w: local driver: Options.Dir is empty", deploy.ErrInvalid)
	}
	if opts.LogMaxSize < 0 || opts.LogFiles < 0 {
		return nil, fmt.Errorf("%w: local driver: LogMaxSize and LogFiles must not be negative", deploy.ErrInvalid)
	}
	if opts.LogMaxSize == 0 {
		opts.LogMaxSize = 10 << 20
	}
	if opts.LogFiles == 0 {
		opts.LogFiles = 3
	}
	if opts.Name == "" {
		opts.Name = opts.Dir
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("deploy: local node %s: %w", opts.Name, err)
	}
	opts.Dir = dir
	d := &Driver{opts: opts, insts: map[string]*instance{}}
	if opts.User != "" {
		if d.cred, err = credential(opts.User); err != nil {
			return nil, d.errorf("%w: %w", deploy.ErrInvalid, err)
		}
	}
	for _, sub := range []string{"versions", "instances", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, d.errorf("%w", err)
		}
	}
	if d.cred != nil {
		if err := d.isolate(); err != nil {
			return nil, d.errorf("user %s: %w", opts.User, err)
		}
	}
	return d, nil
}

func (d *Driver) errorf(format string, args ...any) error {
	return fmt.Errorf("deploy: local node %s: "+format, append([]any{d.opts.Name}, args...)...)
}

// versionDir returns where a version is installed.
func (d *Driver) versionDir(project, app, version string, digest deploy.Digest) string {
	return filepath.Join(d.opts.Dir, "versions", project, app, version+"-"+digest.Short())
}

// artifactPath returns the artifact's path in its version's directory.
func artifactPath(dir string, kind deploy.Kind) string {
	switch kind {
	case deploy.KindJar:
		return filepath.Join(dir, "app.jar")
	case deploy.KindExecutable:
		return filepath.Join(dir, "app")
	}
	return ""
}

const marker = ".installed"

// Install implements deploy.NodeDriver.
func (d *Driver) Install(ctx context.Context, a deploy.Artifact) error {
	dir := d.versionDir(a.Project, a.App, a.Version, a.Digest)
	d.installMu.Lock()
	defer d.installMu.Unlock()
	if b, err := os.ReadFile(filepath.Join(dir, marker)); err == nil && string(b) == string(a.Digest) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return d.errorf("install version %s of %s/%s: %w: %w", a.Version, a.Project, a.App, deploy.ErrDriver, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".install-*")
	if err != nil {
		return d.errorf("install version %s of %s/%s: %w: %w", a.Version, a.Project, a.App, deploy.ErrDriver, err)
	}
	defer os.RemoveAll(tmp)
	if err := d.fetch(ctx, a, tmp); err != nil {
		return d.errorf("install version %s of %s/%s: %w", a.Version, a.Project, a.App, err)
	}
	if d.cred != nil {
		if err := shareWithGroup(tmp, int(d.cred.Gid)); err != nil {
			return d.errorf("install version %s of %s/%s: %w: %w", a.Version, a.Project, a.App, deploy.ErrDriver, err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, marker), []byte(a.Digest), 0o644); err != nil {
		return d.errorf("install version %s of %s/%s: %w: %w", a.Version, a.Project, a.App, deploy.ErrDriver, err)
	}
	// A directory without a marker is a leftover of a crash: replace it.
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return d.errorf("install version %s of %s/%s: %w: %w", a.Version, a.Project, a.App, deploy.ErrDriver, err)
	}
	return nil
}

// fetch copies the artifact into dir, hashing what it writes, and unpacks a
// tarball.
func (d *Driver) fetch(ctx context.Context, a deploy.Artifact, dir string) error {
	rc, err := a.Open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	name := artifactPath(dir, a.Kind)
	if name == "" {
		name = filepath.Join(dir, ".artifact.tar.gz")
	}
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return fmt.Errorf("%w: %w", deploy.ErrDriver, err)
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), contextReader{ctx, rc})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != string(a.Digest) {
		return fmt.Errorf("%w: wrote %s, want %s", deploy.ErrChecksum, got, a.Digest)
	}
	if a.Kind != deploy.KindTarball {
		return nil
	}
	tf, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("%w: %w", deploy.ErrDriver, err)
	}
	defer tf.Close()
	if err := deploy.ExtractTarball(tf, dir); err != nil {
		return err
	}
	_ = tf.Close()
	return os.Remove(name)
}

// contextReader ends a copy when its context ends.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Start implements deploy.NodeDriver.
func (d *Driver) Start(ctx context.Context, spec deploy.InstanceSpec) (deploy.InstanceStatus, error) {
	if !safeID(spec.ID) {
		return deploy.InstanceStatus{}, d.errorf("instance %q: %w", spec.ID, deploy.ErrUnsafePath)
	}
	vdir := d.versionDir(spec.Project, spec.App.Name, spec.Version, spec.Digest)
	if b, err := os.ReadFile(filepath.Join(vdir, marker)); err != nil || string(b) != string(spec.Digest) {
		return deploy.InstanceStatus{}, d.errorf("start instance %s: %w: version %s is not installed", spec.ID, deploy.ErrState, spec.Version)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return deploy.InstanceStatus{}, d.errorf("start instance %s: %w", spec.ID, deploy.ErrClosed)
	}
	old := d.insts[spec.ID]
	d.mu.Unlock()
	if old != nil {
		if err := old.stopAndWait(ctx, spec.App.StopGrace.Or(10*time.Second)); err != nil {
			return deploy.InstanceStatus{}, d.errorf("start instance %s: stop what it ran: %w", spec.ID, err)
		}
	}
	ports := map[string]int{}
	for _, p := range spec.App.Ports {
		ports[p.Name] = spec.Ports[p.Name]
		if ports[p.Name] == 0 {
			port, err := freePort()
			if err != nil {
				return deploy.InstanceStatus{}, d.errorf("start instance %s: choose port %s: %w: %w", spec.ID, p.Name, deploy.ErrDriver, err)
			}
			ports[p.Name] = port
		}
	}
	dir := filepath.Join(d.opts.Dir, "instances", spec.ID)
	proc, err := spec.Resolve(dir, vdir, artifactPath(vdir, spec.App.Kind), ports)
	if err != nil {
		return deploy.InstanceStatus{}, d.errorf("start instance %s: %w", spec.ID, err)
	}
	if err := os.MkdirAll(d.logDir(spec.ID), 0o755); err != nil {
		return deploy.InstanceStatus{}, d.errorf("start instance %s: %w: %w", spec.ID, deploy.ErrDriver, err)
	}
	if err := writeFiles(dir, proc.Files, d.cred); err != nil {
		return deploy.InstanceStatus{}, d.errorf("start instance %s: %w", spec.ID, err)
	}
	inst := &instance{
		d: d, id: spec.ID, dir: dir, spec: spec, proc: proc, ports: ports,
		policy: spec.App.Restart.Resolved(), stop: make(chan time.Duration, 1), done: make(chan struct{}),
	}
	if err := inst.start(); err != nil {
		return deploy.InstanceStatus{}, d.errorf("start instance %s: %w: %w", spec.ID, deploy.ErrDriver, err)
	}
	d.mu.Lock()
	d.insts[spec.ID] = inst
	d.mu.Unlock()
	go inst.supervise()
	return inst.status(), nil
}

// logDir is where an instance's output goes: outside its directory, so that
// an instance run as another user cannot point its log files elsewhere.
func (d *Driver) logDir(id string) string { return filepath.Join(d.opts.Dir, "logs", id) }

// writeFiles makes the instance's directory (cred's, when set) and writes the
// rendered config files into it, refusing paths that leave it (symbolic links
// included) through os.Root. The directory may hold what a former run of the
// instance left, so a file is replaced, never written through.
func writeFiles(dir string, files []deploy.File, cred *syscall.Credential) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %w", deploy.ErrDriver, err)
	}
	if cred != nil {
		// The parent is the driver's, so dir cannot have been swapped for a link.
		if err := os.Lchown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("%w: %w", deploy.ErrDriver, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("%w: %w", deploy.ErrDriver, err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", deploy.ErrDriver, err)
	}
	defer root.Close()
	for _, f := range files {
		name := filepath.FromSlash(f.Path)
		if err := mkdirAllOwned(root, filepath.Dir(name), cred); err != nil {
			return fmt.Errorf("%w: config file %s: %w", deploy.ErrUnsafePath, f.Path, err)
		}
		if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: config file %s: %w", deploy.ErrUnsafePath, f.Path, err)
		}
		w, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(f.Mode))
		if err != nil {
			return fmt.Errorf("%w: config file %s: %w", deploy.ErrUnsafePath, f.Path, err)
		}
		if cred != nil {
			// Through the descriptor: the name may already point elsewhere.
			err = w.Chown(int(cred.Uid), int(cred.Gid))
		}
		if err == nil {
			_, err = w.Write(f.Data)
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%w: config file %s: %w", deploy.ErrDriver, f.Path, err)
		}
	}
	return nil
}

// mkdirAllOwned makes dir inside root and, with cred, gives each of its
// directories to cred's user, through their descriptors.
func mkdirAllOwned(root *os.Root, dir string, cred *syscall.Credential) error {
	if err := root.MkdirAll(dir, 0o755); err != nil || cred == nil || dir == "." {
		return err
	}
	for p := dir; p != "."; p = filepath.Dir(p) {
		f, err := root.Open(p)
		if err != nil {
			return err
		}
		err = f.Chown(int(cred.Uid), int(cred.Gid))
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func safeID(id string) bool {
	return id != "" && !strings.ContainsAny(id, "/\\\x00") && id != "." && id != ".."
}

// Stop implements deploy.NodeDriver.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	d.mu.Lock()
	inst := d.insts[id]
	d.mu.Unlock()
	if inst == nil {
		return nil
	}
	if err := inst.stopAndWait(ctx, grace); err != nil {
		return d.errorf("stop instance %s: %w", id, err)
	}
	return nil
}

// Status implements deploy.NodeDriver.
func (d *Driver) Status(_ context.Context, id string) (deploy.InstanceStatus, error) {
	d.mu.Lock()
	inst := d.insts[id]
	d.mu.Unlock()
	if inst != nil {
		return inst.status(), nil
	}
	dir := filepath.Join(d.opts.Dir, "instances", id)
	if st, err := os.Stat(dir); err == nil && st.IsDir() && safeID(id) {
		return deploy.InstanceStatus{ID: id, State: deploy.StateStopped, Dir: dir}, nil
	}
	return deploy.InstanceStatus{}, d.errorf("instance %s: %w", id, deploy.ErrNotFound)
}

// Remove implements deploy.NodeDriver.
func (d *Driver) Remove(ctx context.Context, id string, grace time.Duration) error {
	if !safeID(id) {
		return d.errorf("instance %q: %w", id, deploy.ErrUnsafePath)
	}
	if err := d.Stop(ctx, id, grace); err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.insts, id)
	d.mu.Unlock()
	for _, dir := range []string{filepath.Join(d.opts.Dir, "instances", id), d.logDir(id)} {
		if err := os.RemoveAll(dir); err != nil {
			return d.errorf("remove instance %s: %w: %w", id, deploy.ErrDriver, err)
		}
	}
	return nil
}

// Close implements deploy.NodeDriver: it stops every instance, each with its
// app's grace period, and returns when their process groups are gone.
func (d *Driver) Close() error {
	d.mu.Lock()
	d.closed = true
	insts := make([]*instance, 0, len(d.insts))
	for _, i := range d.insts {
		insts = append(insts, i)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(insts))
	for k, i := range insts {
		wg.Go(func() {
			errs[k] = i.stopAndWait(context.Background(), i.spec.App.StopGrace.Or(10*time.Second))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// instance is one supervised instance.
type instance struct {
	d      *Driver
	id     string
	dir    string
	spec   deploy.InstanceSpec
	proc   deploy.Process
	ports  map[string]int
	policy deploy.RestartPolicy
	stop   chan time.Duration // receives the grace period once
	once   sync.Once
	done   chan struct{} // closed when the supervisor ended and no process is left

	mu       sync.Mutex
	state    deploy.InstanceState
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd exited
	pid      int
	restarts int
	lastExit string
	started  time.Time
}

func (i *instance) status() deploy.InstanceStatus {
	i.mu.Lock()
	defer i.mu.Unlock()
	ports := make(map[string]int, len(i.ports))
	for k, v := range i.ports {
		ports[k] = v
	}
	return deploy.InstanceStatus{
		ID: i.id, State: i.state, Version: i.spec.Version, PID: i.pid, Ports: ports,
		Restarts: i.restarts, LastExit: i.lastExit, Started: i.started, Dir: i.dir,
	}
}

// startRetryingBusy starts cmd, retrying for a moment while exec says "text file busy": the
// executable was just written, and a child forked meanwhile by another goroutine may still
// hold its write descriptor until that child execs (golang.org/issue/22315).
// A Cmd cannot be started twice, so newCmd makes each attempt's.
func startRetryingBusy(newCmd func() *exec.Cmd) (*exec.Cmd, error) {
	for attempt := 0; ; attempt++ {
		cmd := newCmd()
		err := cmd.Start()
		if !errors.Is(err, syscall.ETXTBSY) || attempt == 20 {
			return cmd, err
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
}

// start starts the process once.
func (i *instance) start() error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	cmd, err := startRetryingBusy(func() *exec.Cmd {
		cmd := exec.Command(i.proc.Argv[0], i.proc.Argv[1:]...)
		cmd.Dir = i.dir
		cmd.Env = append(baseEnv(i.dir), i.proc.Env...)
		cmd.SysProcAttr = sysProcAttr(i.d.cred)
		cmd.Stdout, cmd.Stderr = outW, errW
		return cmd
	})
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return err
	}
	// The copiers end when every process holding the pipes has exited.
	go i.copyLog(outR, "stdout.log")
	go i.copyLog(errR, "stderr.log")
	exited := make(chan struct{})
	i.mu.Lock()
	i.cmd, i.exited, i.pid, i.started, i.state = cmd, exited, cmd.Process.Pid, time.Now(), deploy.StateRunning
	i.mu.Unlock()
	go func() {
		err := cmd.Wait()
		i.mu.Lock()
		if err != nil {
			i.lastExit = err.Error()
		} else {
			i.lastExit = "exit status 0"
		}
		i.mu.Unlock()
		close(exited)
	}()
	return nil
}

func (i *instance) copyLog(r *os.File, name string) {
	defer r.Close()
	w := &rotator{path: filepath.Join(i.d.logDir(i.id), name), max: i.d.opts.LogMaxSize, keep: i.d.opts.LogFiles}
	defer w.Close()
	_, _ = io.Copy(w, r)
}

// supervise waits for the process, restarts it with backoff, gives up in a
// crash loop, and stops it when asked.
func (i *instance) supervise() {
	defer close(i.done)
	backoff := time.Duration(i.policy.BackoffMin)
	window := time.Duration(i.policy.Window)
	var exits []time.Time
	for {
		i.mu.Lock()
		exited, pid, started := i.exited, i.pid, i.started
		i.mu.Unlock()
		select {
		case grace := <-i.stop:
			i.terminate(pid, exited, grace)
			i.setState(deploy.StateStopped)
			return
		case <-exited:
		}
		// Whatever the process left in its group goes with it.
		reapGroup(pid)
		now := time.Now()
		if now.Sub(started) >= window {
			backoff = time.Duration(i.policy.BackoffMin)
			exits = exits[:0]
		}
		exits = append(exits, now)
		for len(exits) > 0 && now.Sub(exits[0]) > window {
			exits = exits[1:]
		}
		i.mu.Lock()
		last := i.lastExit
		i.mu.Unlock()
		if len(exits) > i.policy.MaxRestarts {
			i.d.opts.Logger.Warn("deploy: instance in a crash loop; not restarting it", "node", i.d.opts.Name, "instance", i.id, "exits", len(exits), "last_exit", last)
			i.setState(deploy.StateCrashLoop)
			<-i.stop
			return
		}
		i.setState(deploy.StateBackoff)
		i.d.opts.Logger.Info("deploy: instance exited; restarting it", "node", i.d.opts.Name, "instance", i.id, "last_exit", last, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-i.stop:
			t.Stop()
			i.setState(deploy.StateStopped)
			return
		case <-t.C:
		}
		backoff = min(2*backoff, time.Duration(i.policy.BackoffMax))
		i.mu.Lock()
		i.restarts++
		i.mu.Unlock()
		if err := i.start(); err != nil {
			i.mu.Lock()
			i.lastExit = "start: " + err.Error()
			i.mu.Unlock()
			// Count it as an exit at once.
			ch := make(chan struct{})
			close(ch)
			i.mu.Lock()
			i.exited, i.started = ch, time.Now()
			i.mu.Unlock()
		}
	}
}

func (i *instance) setState(s deploy.InstanceState) {
	i.mu.Lock()
	i.state = s
	i.mu.Unlock()
}

// terminate sends SIGTERM to the process group, SIGKILL after grace, and
// SIGKILL again once the first process exited, for children left behind.
func (i *instance) terminate(pid int, exited chan struct{}, grace time.Duration) {
	killGroup(pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		killGroup(pid, syscall.SIGKILL)
		<-exited
	}
	reapGroup(pid)
}

// reapGroup kills what is left of the process group and waits, briefly,
// until none of it is alive: signals are delivered asynchronously.
func reapGroup(pgid int) {
	killGroup(pgid, syscall.SIGKILL)
	for deadline := time.Now().Add(2 * time.Second); groupAlive(pgid) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

// stopAndWait asks the supervisor to stop the instance and waits until its
// processes are gone, or ctx ends.
func (i *instance) stopAndWait(ctx context.Context, grace time.Duration) error {
	i.once.Do(func() { i.stop <- grace })
	select {
	case <-i.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// baseEnv is an instance's environment before its app's: a minimal PATH, and
// its directory as HOME. Nothing of the driver's own environment, which may
// hold its secrets.
func baseEnv(dir string) []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir}
}

var _ deploy.NodeDriver = (*Driver)(nil)
