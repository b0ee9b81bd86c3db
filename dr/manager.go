package dr

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Options configures a Manager. Only Drivers is required.
type Options struct {
	// Drivers opens the driver of each kind of DR group, such as
	// {dr.KindRedis: redis.Open}. AddGroup rejects a group of another kind.
	Drivers map[Kind]DriverFunc
	// Store persists transitions and runs. Default: a new MemoryStore.
	Store Store
	// DNS, Traffic and Apps carry out the switch-dns, switch-traffic and
	// start-apps steps. Default: none, and plans with those steps are
	// rejected.
	DNS     DNSSwitcher
	Traffic TrafficSwitcher
	Apps    AppStarter
	// HTTPClient sends the probes of verify steps, through its Transport
	// (proxy, TLS, dialing). Whatever its own policy, a probe follows no
	// redirect (a 3xx is a failed probe) and, when its Timeout is zero, is
	// bounded by ProbeTimeout; each is also bounded by its step's timeout.
	// Default: a client of http.DefaultTransport.
	HTTPClient *http.Client
	// StatusInterval is how often Monitor reads the status of every DR
	// group. Default: 1s.
	StatusInterval time.Duration
	// Registerer registers the manager's metrics. Default: none.
	Registerer prometheus.Registerer
	// Logger logs what the manager does in the background (Monitor, runs)
	// and store failures, which do not stop a run. Default: discard.
	Logger *slog.Logger
}

// ProbeTimeout bounds one request of a verify step, unless Options.HTTPClient has a
// Timeout of its own: a service that accepts the connection and never answers is
// probed again, within the step's timeout.
const ProbeTimeout = 5 * time.Second

// Manager holds DR groups and runs DR plans on them. Create it with New; it
// is safe for concurrent use, and several managers can live in one process.
type Manager struct {
	opts    Options
	metrics *metrics
	// probeClient is Options.HTTPClient as verify steps use it.
	probeClient *http.Client

	// ctx is canceled by Close; runs derive their contexts from it, so that
	// they outlive the request that started them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	groups map[string]*group
	runs   map[string]*runner // runs that have not stopped
}

// group is one DR group of a Manager.
type group struct {
	cfg    GroupConfig
	driver Driver

	mu          sync.Mutex
	state       State
	dir         Direction
	transitions []Transition
	status      *Status
	lastContact *Status
	// busy names the run or operation that holds the group, "" when free.
	// A group held by one does not start another, and Monitor does not move
	// its state.
	busy string
}

// New returns a Manager. It starts nothing: call Monitor to watch the
// groups' status in the background.
func New(opts Options) (*Manager, error) {
	if len(opts.Drivers) == 0 {
		return nil, fmt.Errorf("%w: Options.Drivers is empty; give the driver of each kind of DR group", ErrInvalid)
	}
	if opts.StatusInterval < 0 {
		return nil, fmt.Errorf("%w: Options.StatusInterval is %v; want zero (for 1s) or more", ErrInvalid, opts.StatusInterval)
	}
	if opts.StatusInterval == 0 {
		opts.StatusInterval = time.Second
	}
	if opts.Store == nil {
		opts.Store = &MemoryStore{}
	}
	probe := &http.Client{}
	if opts.HTTPClient != nil {
		*probe = *opts.HTTPClient
	}
	// A redirect could point anywhere the plan's author could not name themselves.
	probe.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if probe.Timeout == 0 {
		probe.Timeout = ProbeTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		opts:        opts,
		metrics:     met,
		probeClient: probe,
		ctx:         ctx,
		cancel:      cancel,
		groups:      make(map[string]*group),
		runs:        make(map[string]*runner),
	}, nil
}

// Close cancels the runs in progress (they end canceled, and may be rolled
// back by another manager on the same Store), waits for them and closes the
// drivers. It leaves the instances as they are.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, g := range m.groups {
		if err := g.driver.Close(); err != nil {
			errs = append(errs, fmt.Errorf("dr: close the driver of DR group %q: %w", g.cfg.Name, err))
		}
	}
	return errors.Join(errs...)
}

// AddGroup validates cfg, opens its driver and adds the group, in the state
// its transitions in the Store say (unpaired and forward when there are
// none). It touches neither instance.
func (m *Manager) AddGroup(ctx context.Context, cfg GroupConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	open, ok := m.opts.Drivers[cfg.Kind]
	if !ok {
		return validate.One(ErrInvalid, "kind", fmt.Sprintf("no driver for kind %s in this manager", cfg.Kind))
	}
	if err := m.checkNew(cfg.Name); err != nil {
		return err
	}
	ts, err := m.opts.Store.Transitions(ctx, cfg.Name)
	if err != nil {
		return fmt.Errorf("dr: add DR group %q: read its transitions: %w", cfg.Name, err)
	}
	driver, err := open(cfg)
	if err != nil {
		return fmt.Errorf("dr: add DR group %q: open its %s driver: %w", cfg.Name, cfg.Kind, err)
	}
	state, dir := restoreState(ts)
	g := &group{cfg: cfg, driver: driver, state: state, dir: dir, transitions: ts}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkNewLocked(cfg.Name); err != nil {
		return errors.Join(err, driver.Close())
	}
	m.groups[cfg.Name] = g
	m.metrics.setState(cfg.Name, state)
	return nil
}

func (m *Manager) checkNew(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checkNewLocked(name)
}

func (m *Manager) checkNewLocked(name string) error {
	if m.closed {
		return ErrClosed
	}
	if _, ok := m.groups[name]; ok {
		return fmt.Errorf("dr: add DR group %q: %w", name, ErrGroupExists)
	}
	return nil
}

// RemoveGroup closes the group's driver and forgets the group, leaving its
// instances as they are and its transitions in the Store. To change a group's
// configuration, remove it and add it again.
func (m *Manager) RemoveGroup(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[name]
	if !ok {
		return fmt.Errorf("dr: remove DR group %q: %w", name, ErrGroupNotFound)
	}
	g.mu.Lock()
	busy := g.busy
	g.mu.Unlock()
	if busy != "" {
		return fmt.Errorf("dr: remove DR group %q: held by %s: %w", name, busy, ErrBusy)
	}
	delete(m.groups, name)
	m.metrics.forget(name)
	if err := g.driver.Close(); err != nil {
		return fmt.Errorf("dr: remove DR group %q: close its driver: %w", name, err)
	}
	return nil
}

// Group returns a snapshot of the named group.
func (m *Manager) Group(name string) (Group, error) {
	g, err := m.group(name)
	if err != nil {
		return Group{}, err
	}
	return g.snapshot(), nil
}

// Groups returns a snapshot of every group, by name.
func (m *Manager) Groups() []Group {
	m.mu.Lock()
	gs := make([]*group, 0, len(m.groups))
	for _, g := range m.groups {
		gs = append(gs, g)
	}
	m.mu.Unlock()
	out := make([]Group, len(gs))
	for i, g := range gs {
		out[i] = g.snapshot()
	}
	slices.SortFunc(out, func(a, b Group) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func (m *Manager) group(name string) (*group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	g, ok := m.groups[name]
	if !ok {
		return nil, fmt.Errorf("dr: DR group %q: %w", name, ErrGroupNotFound)
	}
	return g, nil
}

func (g *group) snapshot() Group {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := Group{
		Name:        g.cfg.Name,
		Kind:        g.cfg.Kind,
		State:       g.state,
		Direction:   g.dir,
		HeldBy:      g.busy,
		Transitions: slices.Clone(g.transitions),
	}
	if g.status != nil {
		st := *g.status
		out.Status = &st
	}
	if g.lastContact != nil {
		st := *g.lastContact
		out.LastContact = &st
	}
	return out
}

// acquire marks g held by holder and returns its state and direction, or
// fails with ErrBusy.
func (g *group) acquire(holder string) (State, Direction, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy != "" {
		return "", "", fmt.Errorf("dr: DR group %q is held by %s: %w", g.cfg.Name, g.busy, ErrBusy)
	}
	g.busy = holder
	return g.state, g.dir, nil
}

func (g *group) release() {
	g.mu.Lock()
	g.busy = ""
	g.mu.Unlock()
}

// move records a transition of g to state to with direction dir. The state
// changes in memory even when the Store fails: it is what the instances are
// in.
func (m *Manager) move(ctx context.Context, g *group, to State, dir Direction, reason string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return m.moveLocked(ctx, g, to, dir, reason)
}

func (m *Manager) moveLocked(ctx context.Context, g *group, to State, dir Direction, reason string) error {
	if g.state == to && g.dir == dir {
		return nil
	}
	if !canMove(g.state, to) {
		return fmt.Errorf("dr: DR group %q cannot move from %s to %s (%s): %w", g.cfg.Name, g.state, to, reason, ErrState)
	}
	t := Transition{Time: time.Now(), From: g.state, To: to, Direction: dir, Reason: reason}
	g.state, g.dir = to, dir
	g.transitions = append(g.transitions, t)
	m.metrics.setState(g.cfg.Name, to)
	if err := m.opts.Store.AddTransition(ctx, g.cfg.Name, t); err != nil {
		return fmt.Errorf("dr: DR group %q: record the transition %s → %s: %w", g.cfg.Name, t.From, t.To, err)
	}
	return nil
}

// Status reads the group's status now and records it, as Monitor does.
func (m *Manager) Status(ctx context.Context, name string) (Status, error) {
	g, err := m.group(name)
	if err != nil {
		return Status{}, err
	}
	g.mu.Lock()
	dir := g.dir
	g.mu.Unlock()
	return m.status(ctx, g, dir)
}

// status reads g's status in direction dir and records it. When no run or
// operation holds g, it also moves an in-sync group whose replica stopped
// replicating back to syncing, and a syncing one that caught up to in-sync.
func (m *Manager) status(ctx context.Context, g *group, dir Direction) (Status, error) {
	st, err := g.driver.Status(ctx, dir)
	if err != nil {
		return Status{}, fmt.Errorf("dr: status of DR group %q: %w", g.cfg.Name, err)
	}
	m.metrics.setStatus(g.cfg.Name, st)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status = &st
	if st.Primary.Reachable {
		g.lastContact = &st
	}
	if g.busy != "" || g.dir != dir {
		return st, nil
	}
	var err2 error
	switch {
	case g.state == StateInSync && !st.InSync():
		err2 = m.moveLocked(ctx, g, syncingState(dir), dir, "replica stopped replicating: "+linkReason(st))
	case g.state == syncingState(dir) && st.InSync():
		err2 = m.moveLocked(ctx, g, StateInSync, dir, "replica replicates again")
	}
	if err2 != nil {
		m.opts.Logger.Warn("dr: recording a transition", "group", g.cfg.Name, "err", err2)
	}
	return st, nil
}

// linkReason says why a replica is not in sync.
func linkReason(st Status) string {
	switch {
	case !st.Replica.Reachable:
		return "replica unreachable: " + st.Replica.Error
	case st.Syncing:
		return "initial sync in progress"
	default:
		return "link down"
	}
}

// Monitor reads the status of every DR group every Options.StatusInterval,
// as Status does, until ctx is done or the manager is closed. It keeps the
// last contact with each primary: a switchover after losing a primary counts
// its RPO from it.
func (m *Manager) Monitor(ctx context.Context) {
	t := time.NewTicker(m.opts.StatusInterval)
	defer t.Stop()
	for {
		m.mu.Lock()
		gs := make([]*group, 0, len(m.groups))
		for _, g := range m.groups {
			gs = append(gs, g)
		}
		m.mu.Unlock()
		var wg sync.WaitGroup
		for _, g := range gs {
			wg.Go(func() {
				sctx, cancel := context.WithTimeout(ctx, statusTimeout)
				defer cancel()
				g.mu.Lock()
				dir := g.dir
				g.mu.Unlock()
				if _, err := m.status(sctx, g, dir); err != nil && ctx.Err() == nil {
					m.opts.Logger.Warn("dr: monitor", "group", g.cfg.Name, "err", err)
				}
			})
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// statusTimeout bounds one status read of Monitor.
const statusTimeout = 10 * time.Second

// Pair starts sync in the group's direction and waits until the initial sync
// completes (GroupConfig.SyncTimeout at most): "run forward sync now". The
// group goes to syncing (reverse-syncing in reverse), then in-sync. It
// discards what the replica held. A promoted group needs Reverse instead.
func (m *Manager) Pair(ctx context.Context, name string) error {
	g, err := m.group(name)
	if err != nil {
		return err
	}
	prev, dir, err := g.acquire("pair")
	if err != nil {
		return err
	}
	defer g.release()
	if prev == StatePromoted {
		return fmt.Errorf("%w; reverse sync starts it again", stateError(name, "pair", prev))
	}
	if err := m.move(ctx, g, syncingState(dir), dir, "pair"); err != nil {
		return err
	}
	if err := m.pair(ctx, g, dir); err != nil {
		if prev == StateUnpaired {
			err = errors.Join(err, m.move(ctx, g, StateUnpaired, dir, "pair failed: "+err.Error()))
		}
		return err
	}
	return m.move(ctx, g, StateInSync, dir, "initial sync complete")
}

// Reverse starts reverse sync of a promoted group: its old primary becomes
// the replica of the promoted one, discarding what it held, and the call
// waits until it has caught up (GroupConfig.SyncTimeout at most). The group
// goes to reverse-syncing (syncing after switching back to A), then in-sync.
func (m *Manager) Reverse(ctx context.Context, name string) error {
	g, err := m.group(name)
	if err != nil {
		return err
	}
	prev, dir, err := g.acquire("reverse")
	if err != nil {
		return err
	}
	defer g.release()
	if prev != StatePromoted {
		return stateError(name, "reverse sync of", prev)
	}
	if err := m.move(ctx, g, syncingState(dir), dir, "reverse sync"); err != nil {
		return err
	}
	if err := m.pair(ctx, g, dir); err != nil {
		return errors.Join(err, m.move(ctx, g, StatePromoted, dir, "reverse sync failed: "+err.Error()))
	}
	return m.move(ctx, g, StateInSync, dir, "initial sync complete")
}

// pair runs the driver's Pair in dir, bounded by the group's SyncTimeout.
func (m *Manager) pair(ctx context.Context, g *group, dir Direction) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.SyncTimeout.Or(defaultSyncTimeout))
	defer cancel()
	if err := g.driver.Pair(ctx, dir); err != nil {
		return fmt.Errorf("dr: pair DR group %q (%s→%s): %w", g.cfg.Name, dir.Primary(), dir.Replica(), err)
	}
	return nil
}

// defaultSyncTimeout is the default of GroupConfig.SyncTimeout.
const defaultSyncTimeout = 10 * time.Minute

// Unpair stops sync: the replica keeps its data but stays fenced (see
// Driver.Unpair), and the group goes to unpaired.
func (m *Manager) Unpair(ctx context.Context, name string) error {
	g, err := m.group(name)
	if err != nil {
		return err
	}
	prev, dir, err := g.acquire("unpair")
	if err != nil {
		return err
	}
	defer g.release()
	if prev == StateUnpaired {
		return stateError(name, "unpair", prev)
	}
	if err := g.driver.Unpair(ctx, dir); err != nil {
		return fmt.Errorf("dr: unpair DR group %q: %w", name, err)
	}
	return m.move(ctx, g, StateUnpaired, dir, "unpair")
}
