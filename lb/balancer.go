package lb

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options are the balancer's dependencies and process-level settings; what
// it serves comes with Apply.
type Options struct {
	// Logger receives accept errors, recovered panics and state changes.
	// Default: discard.
	Logger *slog.Logger
	// Registerer receives the balancer's Prometheus metrics, labelled with
	// the config's name: balancers sharing a registerer need distinct names.
	// The series appear with the first applied config and end at Close.
	// Default nil: no metrics. Nothing is registered globally.
	Registerer prometheus.Registerer
	// KeepVersions is how many applied configs are kept for Rollback.
	// Default 10.
	KeepVersions int
	// Listen opens a listener's socket. Default net.ListenConfig.Listen.
	Listen func(ctx context.Context, network, address string) (net.Listener, error)
	// Dial connects to a server, for requests and health checks. Default
	// net.Dialer.DialContext.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Hook, when set, sees every request of every http and https listener
	// before it is routed, and may answer it or choose where it goes (see
	// Hook). Default nil: requests are routed by the listeners' rules alone.
	Hook Hook
}

// Balancer is a running load balancer. Its methods are safe for concurrent
// use. Construct it with New, give it a config with Apply, stop it with Close.
type Balancer struct {
	log    *slog.Logger
	listen func(ctx context.Context, network, address string) (net.Listener, error)
	dial   func(ctx context.Context, network, address string) (net.Conn, error)
	// plainDial says dial is net.Dialer's, whose connections are plain
	// sockets an event loop may take over.
	plainDial bool
	keep      int
	ctx       context.Context // ends at Close; parent of checks and dials
	cancel    context.CancelFunc

	// mu serialises changes: Apply, Rollback, Drain's lookup, Close.
	mu        sync.Mutex
	closed    bool
	current   *applied
	listeners map[string]*listener // by listenerKey
	servers   map[string]*server   // by group, name and address
	versions  []VersionInfo
	lastVer   uint64
	bg        sync.WaitGroup // listeners shutting down after a push removed them

	events   hub
	metrics  *collector
	rejected [600]atomic.Uint64 // answers the balancer gave itself, by status

	hook       Hook
	addrGroups sync.Map // ForwardTo address -> *group

	// loops serve plain-HTTP connections without a goroutine each, where
	// the platform allows (loop_linux.go).
	loops loopSet

	// testHook, when set by a test, runs on every parsed request.
	testHook func(*request)
	// noLoops, set by a test, serves every connection on the goroutine path.
	noLoops bool
}

// applied is the running config version.
type applied struct {
	version uint64
	cfg     *BalancerConfig
	groups  map[string]*group
	order   []string // group names in config order
}

// VersionInfo is one kept config version.
type VersionInfo struct {
	Version   uint64          `json:"version"`
	AppliedAt time.Time       `json:"applied_at"`
	Config    *BalancerConfig `json:"config"`
	// Note says where the version came from, e.g. "rollback to 3".
	Note string `json:"note,omitempty"`
}

// New returns a balancer that serves nothing until the first Apply.
func New(opts Options) (*Balancer, error) {
	if opts.KeepVersions < 0 {
		return nil, fmt.Errorf("%w: KeepVersions %d is negative", ErrInvalidConfig, opts.KeepVersions)
	}
	b := &Balancer{
		log:       opts.Logger,
		listen:    opts.Listen,
		dial:      opts.Dial,
		hook:      opts.Hook,
		keep:      cmp.Or(opts.KeepVersions, defaultKeepVersions),
		listeners: make(map[string]*listener),
		servers:   make(map[string]*server),
	}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if b.listen == nil {
		var lc net.ListenConfig
		b.listen = lc.Listen
	}
	if b.dial == nil {
		var d net.Dialer
		b.dial = d.DialContext
		b.plainDial = true
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if opts.Registerer != nil {
		b.metrics = &collector{}
		b.metrics.b.Store(b)
		if err := opts.Registerer.Register(b.metrics); err != nil {
			return nil, fmt.Errorf("lb: register metrics: %w", err)
		}
	}
	return b, nil
}

// Apply validates cfg, gives it the next version and swaps it in: requests
// in flight finish on the config they started with, new ones use cfg.
// Listeners whose port stays keep their socket and connections; new ports
// are opened before anything changes, so a port that cannot be opened
// rejects the push. A rejected config (a *ValidationError wrapping
// ErrInvalidConfig, or a listen error) leaves the running one untouched.
func (b *Balancer) Apply(ctx context.Context, cfg BalancerConfig) (uint64, error) {
	return b.apply(ctx, cfg, "")
}

func (b *Balancer) apply(ctx context.Context, cfg BalancerConfig, note string) (uint64, error) {
	// A caller that keeps changing its value must not change a kept version.
	c := new(cfg.Clone())
	tlsConfigs, err := compileTLS(c)
	if err != nil {
		b.countApply(false)
		b.emit(Event{Kind: EventConfigRejected, Reason: err.Error()})
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("lb: apply: %w", err)
	}

	// Build: groups over existing or new servers, and the sockets of new ports.
	next := &applied{cfg: c, groups: make(map[string]*group, len(c.Groups))}
	servers := make(map[string]*server)
	specs := make(map[*server]*checkSpec)
	fresh := make(map[string]*server)
	for i := range c.Groups {
		gc := &c.Groups[i]
		g := newGroup(gc)
		for j := range gc.Servers {
			sc := &gc.Servers[j]
			// A renamed server is a new server: its name is part of its identity.
			key := gc.Name + "\x00" + sc.id() + "\x00" + sc.hostPort()
			srv := b.servers[key]
			if srv == nil {
				srv = newServer(b, gc.Name, sc.id(), sc.hostPort())
				fresh[key] = srv
			}
			servers[key] = srv
			g.members = append(g.members, &member{srv: srv, weight: cmp.Or(sc.Weight, 1), standby: sc.role() == Standby})
			if gc.HealthCheck != nil {
				spec := newCheckSpec(gc.HealthCheck, sc)
				specs[srv] = &spec
			}
		}
		if g.algo == Hash {
			g.ring = buildRing(g.members)
		}
		next.groups[gc.Name] = g
		next.order = append(next.order, gc.Name)
	}
	snaps := make(map[string]*listenerSnap, len(c.Listeners))
	var opened []*listener
	for i := range c.Listeners {
		lc := &c.Listeners[i]
		key := listenerKey(c.Address, lc)
		snaps[key] = newListenerSnap(lc, next.groups, tlsConfigs[lc.Name])
		if _, ok := b.listeners[key]; ok {
			continue
		}
		addr := joinHostPort(c.Address, lc.Port)
		ln, err := b.listen(ctx, "tcp", addr)
		if err != nil {
			for _, l := range opened {
				l.ln.Close()
			}
			b.countApply(false)
			err = fmt.Errorf("%w: listener %q (listeners[%d]) on %s: %w", ErrListen, lc.Name, i, addr, err)
			b.emit(Event{Kind: EventConfigRejected, Reason: err.Error()})
			return 0, err
		}
		opened = append(opened, &listener{b: b, key: key, addr: ln.Addr().String(), ln: ln, conns: make(map[*trackedConn]struct{})})
	}

	// Commit: nothing below fails.
	for key, srv := range fresh {
		b.servers[key] = srv
	}
	for i := range c.Groups {
		for j := range c.Groups[i].Servers {
			sc := &c.Groups[i].Servers[j]
			srv := servers[c.Groups[i].Name+"\x00"+sc.id()+"\x00"+sc.hostPort()]
			srv.mu.Lock()
			srv.zone, srv.role = sc.Zone, sc.role()
			srv.mu.Unlock()
			srv.setCheck(specs[srv])
		}
	}
	for key, l := range b.listeners {
		if s, ok := snaps[key]; ok {
			l.snap.Store(s)
			continue
		}
		delete(b.listeners, key)
		b.bg.Add(1)
		go func() {
			defer b.bg.Done()
			ctx, cancel := context.WithTimeout(b.ctx, removedListenerGrace)
			defer cancel()
			l.shutdown(ctx)
		}()
	}
	for _, l := range opened {
		l.snap.Store(snaps[l.key])
		b.listeners[l.key] = l
		l.wg.Add(1)
		go l.serve()
	}
	for key, srv := range b.servers {
		if _, ok := servers[key]; !ok {
			delete(b.servers, key)
			srv.retire()
		}
	}
	b.lastVer++
	next.version = b.lastVer
	b.current = next
	b.versions = append(b.versions, VersionInfo{Version: next.version, AppliedAt: time.Now(), Config: c, Note: note})
	if len(b.versions) > b.keep {
		b.versions = append(b.versions[:0:0], b.versions[len(b.versions)-b.keep:]...)
	}
	b.countApply(true)
	b.emit(Event{Kind: EventConfigApplied, Version: next.version, Reason: note})
	return next.version, nil
}

// listenerKey is how a push finds the open listener it keeps: by address and port or, for
// port 0 (a new free port at each open), by address and name.
func listenerKey(address string, l *Listener) string {
	if l.Port == 0 {
		return joinHostPort(address, 0) + "/" + l.Name
	}
	return joinHostPort(address, l.Port)
}

// removedListenerGrace bounds how long a listener removed by a push may
// finish its requests in flight.
const removedListenerGrace = 30 * time.Second

func newGroup(gc *ServerGroup) *group {
	g := &group{
		name:            gc.Name,
		algo:            gc.algorithm(),
		slowStart:       time.Duration(gc.SlowStart),
		passiveFall:     cmp.Or(gc.PassiveFall, defaultPassiveFall),
		passiveDownTime: gc.PassiveDownTime.Or(defaultPassiveDownTime),
		connectTimeout:  gc.ConnectTimeout.Or(defaultConnectTimeout),
		responseTimeout: gc.ResponseTimeout.Or(defaultResponseTimeout),
		maxAttempts:     cmp.Or(gc.MaxAttempts, defaultMaxAttempts),
		maxIdle:         cmp.Or(gc.MaxIdleConns, defaultMaxIdleConns),
	}
	if gc.HashKey != nil {
		g.hashKey = *gc.HashKey
	}
	return g
}

// Rollback applies the config of a kept version again, as a new version.
func (b *Balancer) Rollback(ctx context.Context, version uint64) (uint64, error) {
	b.mu.Lock()
	var cfg *BalancerConfig
	for _, v := range b.versions {
		if v.Version == version {
			cfg = v.Config
		}
	}
	b.mu.Unlock()
	if cfg == nil {
		return 0, fmt.Errorf("%w: %d", ErrUnknownVersion, version)
	}
	return b.apply(ctx, *cfg, fmt.Sprintf("rollback to %d", version))
}

// Versions returns the kept config versions, oldest first, each config a copy of its own.
func (b *Balancer) Versions() []VersionInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]VersionInfo, len(b.versions))
	for i, v := range b.versions {
		out[i] = v
		out[i].Config = new(v.Config.Clone())
	}
	return out
}

// Config returns a copy of the config the balancer runs, false before the first Apply.
func (b *Balancer) Config() (BalancerConfig, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.versions) == 0 {
		return BalancerConfig{}, false
	}
	return b.versions[len(b.versions)-1].Config.Clone(), true
}

// ServerAt names the server of group at hostPort ("10.0.0.5:8085") in the running config, as
// Drain, WaitUp and events know it; false if the group has none there (or nothing runs).
func (b *Balancer) ServerAt(group, hostPort string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.versions) == 0 {
		return "", false
	}
	for _, g := range b.versions[len(b.versions)-1].Config.Groups {
		if g.Name != group {
			continue
		}
		for _, s := range g.Servers {
			if s.hostPort() == hostPort {
				return s.id(), true
			}
		}
	}
	return "", false
}

// Addr returns the address the named listener of the running config is bound to (for
// port 0, with the port it got), or false when no listener has that name.
func (b *Balancer) Addr(listener string) (net.Addr, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.listeners {
		if l.snap.Load().name == listener {
			return l.ln.Addr(), true
		}
	}
	return nil, false
}

// Status is a snapshot of the running balancer, as a monitor shows it.
type Status struct {
	Name      string           `json:"name"`
	Version   uint64           `json:"version"`
	Listeners []ListenerStatus `json:"listeners"`
	Groups    []GroupStatus    `json:"groups"`
	// Rejected counts the answers the balancer gave itself (no route, no
	// healthy server, malformed request ...), by HTTP status.
	Rejected map[int]uint64 `json:"rejected,omitempty"`
}

// ListenerStatus describes one listener.
type ListenerStatus struct {
	Name     string   `json:"name"`
	Address  string   `json:"address"` // the bound address
	Protocol Protocol `json:"protocol"`
	Conns    int      `json:"conns"` // open client connections
}

// GroupStatus describes one server group.
type GroupStatus struct {
	Name      string         `json:"name"`
	Algorithm Algorithm      `json:"algorithm"`
	Servers   []ServerStatus `json:"servers"`
}

// ServerStatus describes one server.
type ServerStatus struct {
	Name    string      `json:"name"`
	Address string      `json:"address"`
	Weight  int         `json:"weight"`
	Role    Role        `json:"role"`
	Zone    string      `json:"zone,omitempty"`
	State   ServerState `json:"state"`
	// Since is when State last changed.
	Since time.Time `json:"since"`
	// LastError is the last failed check or passive failure.
	LastError string `json:"last_error,omitempty"`
	// Active counts requests (tcp: connections) in flight.
	Active int64 `json:"active"`
	// Requests counts requests sent to the server, retries included.
	Requests uint64 `json:"requests"`
	// Errors counts failed requests: connect errors, resets, timeouts, 5xx.
	Errors uint64 `json:"errors"`
}

// Status returns the current state; before the first Apply it is empty.
func (b *Balancer) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	var st Status
	if b.current == nil {
		return st
	}
	st.Name, st.Version = b.current.cfg.Name, b.current.version
	for _, l := range b.listeners {
		s := l.snap.Load()
		st.Listeners = append(st.Listeners, ListenerStatus{Name: s.name, Address: l.ln.Addr().String(), Protocol: s.protocol, Conns: l.connCount()})
	}
	sort.Slice(st.Listeners, func(i, j int) bool { return st.Listeners[i].Name < st.Listeners[j].Name })
	for _, name := range b.current.order {
		g := b.current.groups[name]
		gs := GroupStatus{Name: name, Algorithm: g.algo}
		for _, m := range g.members {
			gs.Servers = append(gs.Servers, m.srv.status(m.weight))
		}
		st.Groups = append(st.Groups, gs)
	}
	for code := range b.rejected {
		if n := b.rejected[code].Load(); n > 0 {
			if st.Rejected == nil {
				st.Rejected = make(map[int]uint64)
			}
			st.Rejected[code] = n
		}
	}
	return st
}

func (b *Balancer) countRejected(status int) {
	if status > 0 && status < len(b.rejected) {
		b.rejected[status].Add(1)
	}
}

func (b *Balancer) lookup(group, name string) (*server, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if b.current == nil {
		return nil, ErrNoConfig
	}
	if g := b.current.groups[group]; g != nil {
		for _, m := range g.members {
			if m.srv.id == name {
				return m.srv, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: group %q server %q", ErrUnknownServer, group, name)
}

// Drain takes a server out gracefully: it gets no new requests, and Drain
// waits for those in flight to finish. At deadline it cuts the ones left and
// returns ErrDrainDeadline; if ctx ends first it returns ctx's error. Either
// way the server stays drained (across pushes too) until Undrain.
func (b *Balancer) Drain(ctx context.Context, group, server string, deadline time.Time) error {
	srv, err := b.lookup(group, server)
	if err != nil {
		return err
	}
	srv.setDraining(true)
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for srv.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("lb: drain %s/%s: %w", group, server, ctx.Err())
		case <-timer.C:
			n := srv.pool.cutBusy()
			return fmt.Errorf("%w: %s/%s: cut %d connections", ErrDrainDeadline, group, server, n)
		case <-tick.C:
		}
	}
	return nil
}

// Undrain lets a drained server take requests again.
func (b *Balancer) Undrain(group, server string) error {
	srv, err := b.lookup(group, server)
	if err != nil {
		return err
	}
	srv.setDraining(false)
	return nil
}

// WaitUp waits until the server takes requests again — its health checks passed and it is
// not draining — or ctx ends. A rolling upgrade calls it after Undrain, so that it does not
// take the next servers out while the new one is not yet back in: otherwise a fast rollout
// outruns the checks' rise and leaves the group with no server up.
func (b *Balancer) WaitUp(ctx context.Context, group, server string) error {
	srv, err := b.lookup(group, server)
	if err != nil {
		return err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		srv.mu.Lock()
		up := srv.up && !srv.draining
		srv.mu.Unlock()
		if up {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lb: wait for %s/%s to be up: %w", group, server, ctx.Err())
		case <-tick.C:
		}
	}
}

// Close stops the balancer: listeners stop accepting, idle connections
// close, requests in flight finish until ctx ends and are cut then (Close
// then returns ctx's error). Health checks stop, subscriptions close and
// the balancer's series end. Close is safe to call more than once.
func (b *Balancer) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	listeners := b.listeners
	b.listeners = map[string]*listener{}
	b.mu.Unlock()

	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, l := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.shutdown(ctx); err != nil {
				emu.Lock()
				errs = append(errs, fmt.Errorf("lb: close listener %s: %w", l.addr, err))
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.cancel() // ends checks, dials and listeners removed by pushes
	b.bg.Wait()
	b.mu.Lock()
	for _, srv := range b.servers {
		srv.retire()
	}
	b.addrGroups.Range(func(_, g any) bool {
		g.(*group).members[0].srv.retire()
		return true
	})
	b.mu.Unlock()
	b.loops.stop()
	b.events.close()
	if b.metrics != nil {
		b.metrics.b.Store(nil)
	}
	return errors.Join(errs...)
}

// cookieValue finds cookie name in a Cookie header value.
func cookieValue(h []byte, name string) ([]byte, bool) {
	for len(h) > 0 {
		var part []byte
		if i := bytes.IndexByte(h, ';'); i >= 0 {
			part, h = h[:i], h[i+1:]
		} else {
			part, h = h, nil
		}
		part = trimOWS(part)
		if len(part) > len(name) && part[len(name)] == '=' && string(part[:len(name)]) == name {
			return part[len(name)+1:], true
		}
	}
	return nil, false
}

// equalFoldBytes compares b and s ignoring ASCII case.
func equalFoldBytes(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
