package lb

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// listenerSnap is a listener as one config version sees it. A request loads
// it once and keeps it to the end, so a push never changes a request midway.
type listenerSnap struct {
	name           string
	protocol       Protocol
	tls            *tls.Config
	def            *group
	groups         map[string]*group      // by name, for Request.ForwardGroup
	hosts          map[string]*routeTable // exact host, lower case
	wildcards      []wildcardRoute        // longest suffix first
	anyHost        *routeTable
	idleTimeout    time.Duration
	readTimeout    time.Duration
	writeTimeout   time.Duration
	maxHeaderBytes int
	maxBodyBytes   int64
}

type wildcardRoute struct {
	suffix string // ".example.com"
	table  *routeTable
}

type routeTable struct {
	exact    map[string]*group
	prefixes []prefixRoute // longest first
}

type prefixRoute struct {
	prefix string
	g      *group
}

func (t *routeTable) match(path []byte) *group {
	if t == nil {
		return nil
	}
	if g, ok := t.exact[string(path)]; ok {
		return g
	}
	for _, p := range t.prefixes {
		if len(path) >= len(p.prefix) && string(path[:len(p.prefix)]) == p.prefix {
			return p.g
		}
	}
	return nil
}

func newListenerSnap(lc *Listener, groups map[string]*group, tc *tls.Config) *listenerSnap {
	s := &listenerSnap{
		name:           lc.Name,
		protocol:       lc.Protocol,
		tls:            tc,
		def:            groups[lc.DefaultGroup],
		groups:         groups,
		hosts:          make(map[string]*routeTable),
		idleTimeout:    lc.IdleTimeout.Or(defaultIdleTimeout),
		readTimeout:    lc.ReadTimeout.Or(defaultReadTimeout),
		writeTimeout:   lc.WriteTimeout.Or(defaultWriteTimeout),
		maxHeaderBytes: cmp.Or(lc.MaxHeaderBytes, defaultMaxHeaderBytes),
		maxBodyBytes:   lc.MaxBodyBytes,
	}
	wild := make(map[string]*routeTable)
	for _, r := range lc.Rules {
		host := strings.ToLower(r.Host)
		var t *routeTable
		switch {
		case host == "":
			if s.anyHost == nil {
				s.anyHost = &routeTable{exact: make(map[string]*group)}
			}
			t = s.anyHost
		case strings.HasPrefix(host, "*."):
			if t = wild[host[1:]]; t == nil {
				t = &routeTable{exact: make(map[string]*group)}
				wild[host[1:]] = t
				s.wildcards = append(s.wildcards, wildcardRoute{host[1:], t})
			}
		default:
			if t = s.hosts[host]; t == nil {
				t = &routeTable{exact: make(map[string]*group)}
				s.hosts[host] = t
			}
		}
		g := groups[r.Group]
		switch {
		case r.Path != "":
			t.exact[r.Path] = g
		case r.PathPrefix != "":
			t.prefixes = append(t.prefixes, prefixRoute{r.PathPrefix, g})
		default:
			t.prefixes = append(t.prefixes, prefixRoute{"", g})
		}
	}
	sort.Slice(s.wildcards, func(i, j int) bool { return len(s.wildcards[i].suffix) > len(s.wildcards[j].suffix) })
	for _, t := range s.allTables() {
		sort.SliceStable(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].prefix) > len(t.prefixes[j].prefix) })
	}
	return s
}

func (s *listenerSnap) allTables() []*routeTable {
	var ts []*routeTable
	for _, t := range s.hosts {
		ts = append(ts, t)
	}
	for _, w := range s.wildcards {
		ts = append(ts, w.table)
	}
	if s.anyHost != nil {
		ts = append(ts, s.anyHost)
	}
	return ts
}

// route finds the group for a request: the rules of its exact host, then of
// matching wildcards, then host-less rules, then the default group.
// scratch holds the lower-cased host without allocating per request.
func (s *listenerSnap) route(host, path []byte, scratch *[]byte) *group {
	if len(host) > 0 && len(s.hosts)+len(s.wildcards) > 0 {
		h := append((*scratch)[:0], host...)
		for i, c := range h {
			if 'A' <= c && c <= 'Z' {
				h[i] = c + 'a' - 'A'
			}
		}
		*scratch = h
		if g := s.hosts[string(h)].match(path); g != nil {
			return g
		}
		for _, w := range s.wildcards {
			if len(h) > len(w.suffix) && string(h[len(h)-len(w.suffix):]) == w.suffix {
				if g := w.table.match(path); g != nil {
					return g
				}
			}
		}
	}
	if g := s.anyHost.match(path); g != nil {
		return g
	}
	return s.def
}

// listener is the runtime of one bound port. It outlives config versions
// that keep the port: a push swaps its snapshot, so its socket and its
// connections are not disturbed.
type listener struct {
	b       *Balancer
	key     string // in Balancer.listeners
	addr    string // bound
	ln      net.Listener
	snap    atomic.Pointer[listenerSnap]
	closing atomic.Bool

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	wg    sync.WaitGroup
}

// trackedConn is an accepted connection; idle is set while an HTTP
// connection waits for its next request, so shutdown can end it at once.
type trackedConn struct {
	net.Conn
	idle atomic.Bool
	// sock is set while an event loop serves the connection; Conn is then
	// closed, the loop owning a duplicate of its socket. Both change under
	// the listener's lock.
	sock *loopConn
}

func (l *listener) idle(c *trackedConn, on bool) { c.idle.Store(on) }

func (l *listener) serve() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.closing.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || !errors.Is(err, net.ErrClosed) {
				// Out of file descriptors and the like: wait rather than spin.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				l.b.log.Warn("lb: accept failed", "listener", l.addr, "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return
		}
		backoff = 0
		tc := &trackedConn{Conn: c}
		l.mu.Lock()
		if l.closing.Load() {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[tc] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		if !l.b.serveInLoop(l, tc) {
			go l.handle(tc)
		}
	}
}

// forget ends the tracking of a connection that is closed.
func (l *listener) forget(c *trackedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	l.wg.Done()
}

func (l *listener) handle(c *trackedConn) {
	defer l.forget(c)
	ip := remoteIP(c.Conn)
	snap := l.snap.Load()
	switch snap.protocol {
	case ProtocolTCP:
		l.serveTCP(c, ip, snap)
	case ProtocolHTTPS:
		tc := tls.Server(c, snap.tls)
		tc.SetDeadline(time.Now().Add(snap.readTimeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return
		}
		tc.SetDeadline(time.Time{})
		l.serveHTTP(tc, c, true, ip)
	default:
		l.serveHTTP(c, c, false, ip)
	}
}

func remoteIP(c net.Conn) []byte {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return []byte(a.IP.String())
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return []byte(c.RemoteAddr().String())
	}
	return []byte(host)
}

// shutdown stops accepting, ends idle connections, lets requests in flight
// finish, and cuts whatever is left when ctx ends.
func (l *listener) shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closing.Store(true)
	l.mu.Unlock()
	l.ln.Close()
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		l.mu.Lock()
		for c := range l.conns {
			if c.sock == nil && c.idle.Load() {
				// Wake the reader; it sees closing and ends the connection.
				c.SetReadDeadline(time.Unix(1, 0))
			}
		}
		l.mu.Unlock()
		// Event loops end their idle connections themselves once woken.
		l.b.loops.wake()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			l.mu.Lock()
			for c := range l.conns {
				if c.sock != nil {
					c.sock.cut()
				} else {
					c.Close()
				}
			}
			l.mu.Unlock()
			<-done
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (l *listener) connCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}
