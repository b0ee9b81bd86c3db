package lb

import (
	"bufio"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ServerState is what the monitor shows for a server.
type ServerState string

// Server states.
const (
	StateUp       ServerState = "up"
	StateDown     ServerState = "down"
	StateDraining ServerState = "draining"
)

// server is the runtime of one backend. It outlives config versions: a push
// that keeps a server (same group, name, address and port) keeps its health,
// its drain, its counters and its idle connections.
type server struct {
	b     *Balancer
	group string
	id    string // its name; never changes
	addr  string // host:port

	// usable is read on every pick: up, not draining, not retired.
	usable atomic.Bool
	// fails counts consecutive passive failures.
	fails atomic.Int32
	// upSince is when the server last came up (unix nanos), for slow start.
	upSince atomic.Int64

	active   atomic.Int64
	requests atomic.Uint64
	errors   atomic.Uint64
	latency  histogram

	mu         sync.Mutex
	up         bool
	draining   bool
	retired    bool
	since      time.Time
	lastErr    string
	rises      int // consecutive passed active checks while down
	checkFalls int // consecutive failed active checks while up
	zone       string
	role       Role
	checker    *checker
	downTimer  *time.Timer

	pool connPool
}

func newServer(b *Balancer, group, id, addr string) *server {
	s := &server{b: b, group: group, id: id, addr: addr, up: true, since: time.Now()}
	s.usable.Store(true)
	s.pool.srv = s
	return s
}

func (s *server) refreshUsable() {
	s.usable.Store(s.up && !s.draining && !s.retired)
}

func (s *server) setDraining(on bool) {
	s.mu.Lock()
	changed := s.draining != on
	s.draining = on
	s.since = time.Now()
	s.refreshUsable()
	zone, role := s.zone, s.role
	s.mu.Unlock()
	if !changed {
		return
	}
	kind := EventServerUndrained
	if on {
		kind = EventServerDraining
		s.pool.closeIdle()
	}
	s.b.emit(Event{Kind: kind, Group: s.group, Server: s.id, Zone: zone, Role: role})
}

// retire is called when a push removes the server: it stops checks and
// drops idle connections; requests in flight finish.
func (s *server) retire() {
	s.mu.Lock()
	s.retired = true
	s.refreshUsable()
	c := s.checker
	s.checker = nil
	if s.downTimer != nil {
		s.downTimer.Stop()
	}
	s.mu.Unlock()
	if c != nil {
		c.stop()
	}
	s.pool.close()
}

func (s *server) status(weight int) ServerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := StateUp
	switch {
	case s.draining:
		st = StateDraining
	case !s.up:
		st = StateDown
	}
	return ServerStatus{
		Name: s.id, Address: s.addr, Weight: weight, Role: s.role, Zone: s.zone,
		State: st, Since: s.since, LastError: s.lastErr,
		Active: s.active.Load(), Requests: s.requests.Load(), Errors: s.errors.Load(),
	}
}

// upConn is a keep-alive connection to a server.
type upConn struct {
	conn     *deadlineConn // nil while an event loop owns the socket (lu)
	br       *bufio.Reader
	bw       *bufio.Writer
	idleFrom time.Time

	// lu is the socket while an event loop owns it (loop_linux.go); br then
	// reads through rd. lu changes only under the pool's lock.
	lu *loopUp
	rd connReader

	// raw and waitStep let flushAndWait use the poller directly; waitStep
	// is a method value made once so that waiting does not allocate.
	raw       syscall.RawConn
	waitStep  func(uintptr) bool
	waitFirst bool
	flushErr  error
}

func (c *upConn) Close() error {
	if c.lu != nil {
		return c.lu.close()
	}
	return c.conn.Close()
}

// cut ends a connection that may be in use: an event loop's socket is shut
// down rather than closed, so that its number is not reused under the loop.
func (c *upConn) cut() {
	if c.lu != nil {
		c.lu.cut()
		return
	}
	c.conn.Close()
}

// flushAndWait sends the buffered request and waits until the server's
// answer can be read. Reading at once, as a plain Read does, would first
// find nothing (the server has not answered yet) and cost a system call;
// waiting on the poller armed before the request leaves misses nothing,
// since no answer can arrive before the request does.
func (c *upConn) flushAndWait() (flushErr, waitErr error) {
	if c.raw == nil || c.br.Buffered() > 0 {
		return c.bw.Flush(), nil
	}
	c.conn.refreshRead(c.conn.readTimeout)
	c.waitFirst, c.flushErr = true, nil
	err := c.raw.Read(c.waitStep)
	if c.flushErr != nil {
		return c.flushErr, nil
	}
	return nil, err
}

// step is the RawConn.Read callback of flushAndWait: the first call sends
// the request and asks to wait, the next one (readable) ends the wait.
func (c *upConn) step(uintptr) bool {
	if c.waitFirst {
		c.waitFirst = false
		c.flushErr = c.bw.Flush()
		return c.flushErr != nil
	}
	return true
}

// idleTimeout is how long an idle upstream connection is kept; servers
// commonly close idle connections after a minute or more, so this is short
// enough to rarely meet a connection the server has closed.
const idleTimeout = 30 * time.Second

// connPool keeps idle connections to one server, last in first out so the
// warmest connection is reused and the rest can age out. It also knows the
// connections that carry requests, so a drain deadline can cut them.
type connPool struct {
	srv      *server
	mu       sync.Mutex
	idle     []*upConn
	loopIdle [][]*upConn // the idle sockets each event loop owns, by loop
	busy     map[io.Closer]struct{}
	closed   bool
}

// get takes an idle connection, or returns nil; now is the time.
func (p *connPool) get(now time.Time) *upConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.popLocked(&p.idle, now)
}

// getLoop takes an idle socket that event loop i owns, or returns nil.
func (p *connPool) getLoop(i int, now time.Time) *upConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= len(p.loopIdle) {
		return nil
	}
	return p.popLocked(&p.loopIdle[i], now)
}

func (p *connPool) popLocked(idle *[]*upConn, now time.Time) *upConn {
	for n := len(*idle); n > 0; n = len(*idle) {
		c := (*idle)[n-1]
		(*idle)[n-1] = nil
		*idle = (*idle)[:n-1]
		if now.Sub(c.idleFrom) < idleTimeout {
			p.trackLocked(c)
			return c
		}
		c.Close()
	}
	return nil
}

// setLoop makes lu (nil: none) the event loop socket of c, a busy
// connection of the pool.
func (p *connPool) setLoop(c *upConn, lu *loopUp) {
	p.mu.Lock()
	c.lu = lu
	p.mu.Unlock()
}

// track records a new busy connection.
func (p *connPool) track(c io.Closer) {
	p.mu.Lock()
	p.trackLocked(c)
	p.mu.Unlock()
}

func (p *connPool) trackLocked(c io.Closer) {
	if p.busy == nil {
		p.busy = make(map[io.Closer]struct{})
	}
	p.busy[c] = struct{}{}
}

// put returns a busy connection for reuse, or closes it when the pool is
// full or the server may not take requests; now is the time.
func (p *connPool) put(c *upConn, max int, now time.Time) {
	c.idleFrom = now
	p.mu.Lock()
	delete(p.busy, c)
	n := len(p.idle)
	for _, idle := range p.loopIdle {
		n += len(idle)
	}
	if p.closed || n >= max || !p.srv.usable.Load() {
		p.mu.Unlock()
		c.Close()
		return
	}
	if c.lu == nil {
		p.idle = append(p.idle, c)
	} else {
		i := c.lu.lp.idx
		for len(p.loopIdle) <= i {
			p.loopIdle = append(p.loopIdle, nil)
		}
		p.loopIdle[i] = append(p.loopIdle[i], c)
	}
	p.mu.Unlock()
}

// drop closes a busy connection.
func (p *connPool) drop(c io.Closer) {
	p.mu.Lock()
	delete(p.busy, c)
	p.mu.Unlock()
	c.Close()
}

// cutBusy closes the connections that carry requests and says how many.
func (p *connPool) cutBusy() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.busy {
		if uc, ok := c.(*upConn); ok {
			uc.cut()
		} else {
			c.Close()
		}
	}
	return len(p.busy)
}

func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	for i, l := range p.loopIdle {
		idle = append(idle, l...)
		p.loopIdle[i] = nil
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

func (p *connPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.closeIdle()
}

// histogram is a lock-free latency histogram exported as a Prometheus
// histogram; cheaper on the request path than a labelled HistogramVec.
type histogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64
	sumNs  atomic.Int64
}

var latencyBuckets = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func (h *histogram) observe(d time.Duration) {
	sec := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && sec > latencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
}
