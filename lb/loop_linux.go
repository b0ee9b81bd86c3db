package lb

import (
	"bufio"
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// This file is the fast path on Linux: a few event loops, one per core,
// each with its own epoll instance, serve plain-HTTP connections and their
// connections to servers as state machines. One wakeup of a loop serves
// every socket that became ready, where a goroutine per connection costs a
// handoff between threads for each of them, and on a busy machine the wait
// for a thread to run dominates a keep-alive exchange.
//
// A loop serves the common case: requests and answers whose heads and
// bodies (with Content-Length) fit their buffers. It runs the goroutine
// path's own code (parsing, routing, picking, retries, passive failures,
// pooling, headers) on sockets that never block, and waits only between
// those steps. Anything else goes back to the goroutine path, which
// continues where the loop stopped: chunked, large or expected bodies,
// upgrades and answers that are not whole in the buffer. Connections of
// https listeners, balancers with a Hook, and balancers given their own
// Dial (tests that inject failures) never come to a loop.
//
// A loop owns its sockets: it takes a duplicate of an accepted or dialled
// connection's descriptor and closes the connection, so the runtime's
// poller no longer watches it, and only the loop closes the duplicate.
// Others end a loop's socket with shutdown(2), which never frees the
// descriptor's number while the loop may still use it.

// loopSet is a balancer's event loops, started with its first connection
// that one may serve.
type loopSet struct {
	mu      sync.Mutex
	loops   []*loop
	next    int
	started bool
	stopped bool
}

// pick returns the loop for a new connection, starting the loops first;
// nil when they cannot run.
func (s *loopSet) pick(b *Balancer) *loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	if !s.started {
		s.started = true
		for i := range runtime.GOMAXPROCS(0) {
			lp, err := newLoop(b, i)
			if err != nil {
				b.log.Warn("lb: no event loop, serving with goroutines", "err", err)
				for _, lp := range s.loops {
					lp.shut()
				}
				s.loops = nil
				break
			}
			s.loops = append(s.loops, lp)
		}
	}
	if len(s.loops) == 0 {
		return nil
	}
	s.next = (s.next + 1) % len(s.loops)
	return s.loops[s.next]
}

// wake makes every loop check its idle connections: a listener closes.
func (s *loopSet) wake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, lp := range s.loops {
		lp.rescan.Store(true)
		lp.wake()
	}
}

// stop ends the loops; the balancer's connections are all closed.
func (s *loopSet) stop() {
	s.mu.Lock()
	loops := s.loops
	s.loops, s.stopped = nil, true
	s.mu.Unlock()
	for _, lp := range loops {
		lp.shut()
	}
}

// loop is one event loop. Its fields are its goroutine's, except those
// documented otherwise.
type loop struct {
	b        *Balancer
	idx      int // in the loopSet, and in connPool.loopIdle
	epfd     int
	ep       *os.File // epfd, as the runtime's poller watches it
	epRaw    syscall.RawConn
	pollStep func(uintptr) bool // lp.poll, bound once
	events   []syscall.EpollEvent
	armed    int64 // the nextScan ep's deadline is set to
	wakeR    int   // a pipe whose readability wakes the loop
	wakeW    int

	mu     sync.Mutex // guards inbox and ups
	inbox  []func()   // work for the loop from other goroutines
	ups    map[uint64]*loopUp
	woken  atomic.Bool // a byte is in the pipe
	rescan atomic.Bool // check every connection, not only the due ones
	stopAt atomic.Bool
	done   chan struct{}

	conns    map[uint64]*loopConn
	nextID   atomic.Uint64
	nextScan int64 // monoNow of the earliest deadline; 0: none
}

// errNotSocket is a server connection a loop cannot take over.
var errNotSocket = errors.New("lb: server connection is not a TCP socket")

// Event tokens: a client connection's id times two, a server socket's id
// times two plus one; 0 is the wake pipe.
const wakeToken = 0

// sockEvents is what a loop waits for on a socket: edge-triggered, so a
// socket reports each change once and is read until it has nothing left.
const sockEvents = syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | syscall.EPOLLET&0xffffffff

func newLoop(b *Balancer, idx int) (*loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile gives it to the runtime's poller.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	lp := &loop{b: b, idx: idx, epfd: epfd, ep: os.NewFile(uintptr(epfd), "epoll"), done: make(chan struct{}),
		events: make([]syscall.EpollEvent, 256), ups: make(map[uint64]*loopUp), conns: make(map[uint64]*loopConn)}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		lp.ep.Close()
		return nil, os.NewSyscallError("pipe2", err)
	}
	lp.wakeR, lp.wakeW = p[0], p[1]
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, lp.wakeR, &ev); err != nil {
		lp.closeFDs()
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	if lp.epRaw, err = lp.ep.SyscallConn(); err != nil {
		lp.closeFDs()
		return nil, err
	}
	lp.pollStep = lp.poll
	go lp.run()
	return lp, nil
}

func (lp *loop) closeFDs() {
	lp.ep.Close()
	syscall.Close(lp.wakeR)
	syscall.Close(lp.wakeW)
}

// shut stops the loop and waits for it to end.
func (lp *loop) shut() {
	lp.stopAt.Store(true)
	syscall.Write(lp.wakeW, []byte{0})
	<-lp.done
	lp.closeFDs()
}

// wake interrupts the loop's wait; safe from any goroutine.
func (lp *loop) wake() {
	if lp.woken.CompareAndSwap(false, true) {
		syscall.Write(lp.wakeW, []byte{0})
	}
}

// post runs f on the loop; safe from any goroutine.
func (lp *loop) post(f func()) {
	lp.mu.Lock()
	lp.inbox = append(lp.inbox, f)
	lp.mu.Unlock()
	lp.wake()
}

func (lp *loop) newID() uint64 { return lp.nextID.Add(1) }

// register adds fd to the loop's epoll instance under token.
func (lp *loop) register(fd int, token uint64) error {
	ev := syscall.EpollEvent{Events: sockEvents, Fd: int32(uint32(token)), Pad: int32(uint32(token >> 32))}
	return os.NewSyscallError("epoll_ctl", syscall.EpollCtl(lp.epfd, syscall.EPOLL_CTL_ADD, fd, &ev))
}

// unregister removes fd, which is about to be handed over, from the epoll
// instance; closing a descriptor that has no duplicate removes it anyway.
func (lp *loop) unregister(fd int) {
	syscall.EpollCtl(lp.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
}

// run serves the loop's sockets until shut. The loop waits on the runtime's
// poller, which watches the epoll instance, rather than in epoll_wait: a
// goroutine blocked in a system call keeps its P, which the runtime's
// monitor thread takes back, and a blocking call wakes that thread, which
// then runs every 20µs for a while; on a busy machine those wakeups cost
// more than the loop saves. Waiting on the poller parks the loop like any
// goroutine, and one wakeup serves every socket ready by then. A deadline
// on the epoll instance bounds the wait by the next connection's deadline.
func (lp *loop) run() {
	defer close(lp.done)
	for !lp.stopAt.Load() {
		if lp.armed != lp.nextScan {
			lp.armed = lp.nextScan
			var t time.Time
			if lp.armed != 0 {
				t = monoTime(lp.armed)
			}
			lp.ep.SetReadDeadline(t)
		}
		if err := lp.epRaw.Read(lp.pollStep); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			lp.b.log.Error("lb: event loop failed", "err", err)
			return
		}
		if now := monoNow(); lp.rescan.Swap(false) || lp.nextScan != 0 && now >= lp.nextScan {
			lp.scan(now)
		}
	}
}

// poll is run's RawConn.Read callback: it serves what epoll reports ready
// and returns false to wait, true when run has to act first. Its epoll_wait
// never blocks, so it makes the system call without notice to the
// scheduler.
func (lp *loop) poll(epfd uintptr) bool {
	for {
		r, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, epfd, uintptr(unsafe.Pointer(&lp.events[0])),
			uintptr(len(lp.events)), 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		n := int(r)
		if errno != 0 || n == 0 {
			break
		}
		lp.dispatch(lp.events[:n])
		if n < len(lp.events) {
			break
		}
	}
	return lp.stopAt.Load() || lp.rescan.Load() || lp.armed != lp.nextScan ||
		lp.nextScan != 0 && monoNow() >= lp.nextScan
}

// dispatch hands the reported events to their connections.
func (lp *loop) dispatch(events []syscall.EpollEvent) {
	woken := false
	for i := range events {
		ev := &events[i]
		token := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
		switch {
		case token == wakeToken:
			woken = true
		case token&1 == 0:
			if lc := lp.conns[token>>1]; lc != nil {
				lc.event(ev.Events)
			}
		default:
			lp.mu.Lock()
			lu := lp.ups[token>>1]
			lp.mu.Unlock()
			if lu != nil {
				lu.event(ev.Events)
			}
		}
	}
	if !woken {
		return
	}
	// Empty the pipe before clearing woken: a wake that finds woken set
	// writes nothing, so the inbox it filled must be taken after the clear.
	var buf [64]byte
	for {
		if n, _ := syscall.Read(lp.wakeR, buf[:]); n <= 0 {
			break
		}
	}
	lp.woken.Store(false)
	lp.mu.Lock()
	inbox := lp.inbox
	lp.inbox = nil
	lp.mu.Unlock()
	for _, f := range inbox {
		lp.runGuarded(f)
	}
}

// runGuarded runs f, logging a panic instead of ending the process.
func (lp *loop) runGuarded(f func()) {
	defer func() {
		if p := recover(); p != nil {
			lp.b.log.Error("lb: panic in event loop", "panic", p)
		}
	}()
	f()
}

// scan ends the connections whose deadline passed, and the idle ones of
// closing listeners, and finds the next deadline.
func (lp *loop) scan(now int64) {
	lp.nextScan = 0
	next := int64(0)
	for _, lc := range lp.conns {
		switch {
		case lc.state == stRead && lc.cc.br.Buffered() == 0 && lc.l.closing.Load():
			lc.close()
		case lc.deadline != 0 && now >= lc.deadline:
			lc.expire()
		case lc.deadline != 0 && (next == 0 || lc.deadline < next):
			next = lc.deadline
		}
	}
	if next != 0 && (lp.nextScan == 0 || next < lp.nextScan) {
		lp.nextScan = next
	}
}

// serveInLoop gives an accepted connection, tracked by l, to an event loop
// if one may serve it, and says whether one took it.
func (b *Balancer) serveInLoop(l *listener, tc *trackedConn) bool {
	c, ok := tc.Conn.(*net.TCPConn)
	if !ok || b.noLoops || b.hook != nil || !b.plainDial || l.snap.Load().protocol != ProtocolHTTP {
		return false
	}
	lp := b.loops.pick(b)
	if lp == nil {
		return false
	}
	ip := remoteIP(c)
	fd, err := takeSocket(c)
	if err != nil {
		return false
	}
	lc := &loopConn{lp: lp, id: lp.newID(), fd: fd, l: l, tc: tc}
	lc.w.fd = fd
	l.mu.Lock()
	tc.sock = lc
	l.mu.Unlock()
	lp.post(func() { lc.start(ip) })
	return true
}

// takeSocket returns a duplicate of c's socket, non-blocking, and closes c.
func takeSocket(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) {
		fd, err = dupCloexec(int(s))
	})
	if cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, os.NewSyscallError("fcntl", err)
	}
	c.Close()
	return fd, nil
}

func dupCloexec(fd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, os.NewSyscallError("fcntl", errno)
	}
	return int(r), nil
}

// giveSocket makes a connection of the runtime's poller from a loop's
// socket, which it closes.
func giveSocket(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	c, err := net.FileConn(f)
	f.Close()
	return c, err
}

// fdWriter writes to a non-blocking socket; what the socket does not take
// at once waits in pending, so a writer never blocks and never fails for
// lack of room.
type fdWriter struct {
	fd      int
	pending []byte
}

func (w *fdWriter) Write(p []byte) (int, error) {
	if len(w.pending) > 0 {
		w.pending = append(w.pending, p...)
		return len(p), nil
	}
	for n := 0; n < len(p); {
		m, err := writeFD(w.fd, p[n:])
		switch {
		case err == syscall.EAGAIN:
			w.pending = append(w.pending, p[n:]...)
			return len(p), nil
		case err != nil:
			return n, os.NewSyscallError("write", err)
		}
		n += m
	}
	return len(p), nil
}

// flush writes what is pending and says whether all of it left.
func (w *fdWriter) flush() (bool, error) {
	for len(w.pending) > 0 {
		m, err := writeFD(w.fd, w.pending)
		switch {
		case err == syscall.EAGAIN:
			return false, nil
		case err != nil:
			return false, os.NewSyscallError("write", err)
		}
		w.pending = append(w.pending[:0], w.pending[m:]...)
	}
	return true, nil
}

// fill reads what rd's socket holds into br, until the socket has nothing
// left or br is full. It says whether the socket may hold more (br is
// full, or an end or error is to be seen) and returns that end or error.
func fill(br *bufio.Reader, rd *connReader) (more bool, err error) {
	for br.Buffered() < br.Size() {
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			if err == errWouldBlock {
				return false, nil
			}
			return true, err
		}
		if !rd.more {
			return false, nil
		}
	}
	return true, nil
}

// fillEnded is fill for a socket whose peer's end may have been reported
// (ended): it then reads on until it sees the end, which a read that empties
// the socket does not show and no later event reports.
func fillEnded(br *bufio.Reader, rd *connReader, ended bool) (more bool, err error) {
	for {
		before := br.Buffered()
		more, err = fill(br, rd)
		if err != nil || !ended || br.Buffered() == br.Size() || br.Buffered() == before {
			return more, err
		}
	}
}

// loopState is where a loop's client connection is.
type loopState int

const (
	stRead      loopState = iota // reading the next request head
	stBody                       // the head is parsed; reading the rest of the body
	stDial                       // waiting for a connection to the server
	stAwait                      // the request is sent; waiting for the answer's head
	stAwaitBody                  // the answer's head is read; waiting for the rest of its body
	stFlush                      // the answer waits for the client to take it
	stGone                       // closed or handed over
)

// loopConn is a client connection an event loop serves. Only the loop
// touches it, except mu and closed, which let cut shut its socket down.
type loopConn struct {
	lp *loop
	id uint64
	fd int
	l  *listener
	tc *trackedConn
	cc *clientConn
	w  fdWriter

	state      loopState
	snap       *listenerSnap // of the request in progress
	deadline   int64         // monoNow when the state times out; 0: never
	headStart  bool          // deadline bounds the head's arrival
	readable   bool          // the socket may hold something not read yet
	ended      bool          // the client's end, reported: always readable
	closeAfter bool          // close once the answer has left
	uc         *upConn       // the connection of the attempt in progress
	upTimeout  time.Duration

	mu     sync.Mutex
	closed bool
}

// start begins serving the connection, on the loop.
func (lc *loopConn) start(ip []byte) {
	defer lc.recoverPanic()
	l := lc.l
	cc := clientConnPool.Get().(*clientConn)
	cc.l, cc.https, cc.ip = l, false, ip
	cc.ipParsed = false
	cc.conn, cc.tc, cc.raw = nil, lc.tc, nil
	cc.rd = connReader{fd: lc.fd}
	if size := l.snap.Load().maxHeaderBytes; cc.br.Size() < size {
		cc.br = bufio.NewReaderSize(&cc.rd, size)
	}
	cc.br.Reset(&cc.rd)
	cc.bw.Reset(&lc.w)
	lc.cc = cc
	lc.lp.conns[lc.id] = lc
	if err := lc.lp.register(lc.fd, lc.id<<1); err != nil {
		lc.l.b.log.Error("lb: event loop cannot watch a connection", "err", err)
		lc.close()
		return
	}
	lc.readable = true
	lc.run()
}

// event takes what epoll reported for the client socket.
func (lc *loopConn) event(ev uint32) {
	defer lc.recoverPanic()
	if ev&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		lc.readable = true
	}
	if ev&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		// A read that empties the socket before the end does not show it.
		lc.ended = true
	}
	lc.run()
}

// recoverPanic contains a panic serving the connection: it ends the
// attempt in progress and the connection.
func (lc *loopConn) recoverPanic() {
	p := recover()
	if p == nil {
		return
	}
	lc.l.b.log.Error("lb: panic serving request", "listener", lc.l.addr, "client", string(lc.cc.ip), "panic", p)
	if lc.state == stGone {
		return
	}
	if uc := lc.uc; uc != nil {
		lc.uc = nil
		uc.lu.lc = nil
		lc.cc.fw.srv.pool.drop(uc)
	}
	lc.cc.abandonAttempt()
	lc.close()
}

// run moves the connection on as far as it can without waiting.
func (lc *loopConn) run() {
	for {
		var progress bool
		switch lc.state {
		case stRead:
			progress = lc.readHead()
		case stBody:
			progress = lc.readBody()
		case stFlush:
			progress = lc.flush()
		}
		if !progress {
			return
		}
	}
}

// setDeadline makes the state time out after d.
func (lc *loopConn) setDeadline(d time.Duration) {
	lc.deadline = monoNow() + int64(d)
	if lc.lp.nextScan == 0 || lc.deadline < lc.lp.nextScan {
		lc.lp.nextScan = lc.deadline
	}
}

// fill reads what the client sent.
func (lc *loopConn) fill() error {
	more, err := fillEnded(lc.cc.br, &lc.cc.rd, lc.ended)
	lc.readable = more || lc.ended
	return err
}

// readHead reads and parses the next request head; it says whether the
// connection moved on.
func (lc *loopConn) readHead() bool {
	cc := lc.cc
	snap := lc.l.snap.Load()
	// A head is read once it is whole, or refused once it is too large.
	limit := min(cc.br.Size(), snap.maxHeaderBytes)
	if !cc.headBuffered() && cc.br.Buffered() < limit {
		if !lc.readable {
			lc.waitHead()
			return false
		}
		if err := lc.fill(); err != nil && !cc.headBuffered() {
			// The client left or failed; an unfinished head gets no
			// answer, as on the goroutine path.
			lc.close()
			return false
		}
		if !cc.headBuffered() && cc.br.Buffered() < limit {
			lc.waitHead()
			return false
		}
	}
	if err := cc.readRequest(snap); err != nil {
		if err == errWouldBlock { // blank lines before the head
			return true
		}
		cc.refuseHead(err)
		return lc.finish(false)
	}
	r := &cc.req
	if r.chunked || r.connUpgrade || r.contentLength > int64(cc.br.Size()) ||
		r.expect100 && r.contentLength > int64(cc.br.Buffered()) ||
		snap.maxBodyBytes > 0 && r.contentLength > snap.maxBodyBytes {
		lc.handOver(snap, nil)
		return false
	}
	lc.snap, lc.state = snap, stBody
	switch {
	case r.contentLength <= int64(cc.br.Buffered()):
		lc.deadline = 0
	case !lc.headStart:
		// The read timeout counts from the request's first byte.
		lc.setDeadline(snap.readTimeout)
	}
	lc.headStart = false
	return true
}

// waitHead bounds the wait for a request head: by the idle timeout before
// its first byte, then by the read timeout (slow clients).
func (lc *loopConn) waitHead() {
	snap := lc.l.snap.Load()
	switch {
	case lc.cc.br.Buffered() == 0:
		if lc.l.closing.Load() {
			lc.close()
			return
		}
		lc.headStart = false
		lc.setDeadline(snap.idleTimeout)
	case !lc.headStart:
		lc.headStart = true
		lc.setDeadline(snap.readTimeout)
	}
}

// readBody waits until the request body is buffered, then forwards the
// request.
func (lc *loopConn) readBody() bool {
	cc := lc.cc
	need := cc.req.contentLength
	if int64(cc.br.Buffered()) < need {
		if !lc.readable {
			return false
		}
		if err := lc.fill(); err != nil && int64(cc.br.Buffered()) < need {
			lc.close() // the client left: no answer, as on the goroutine path
			return false
		}
		if int64(cc.br.Buffered()) < need {
			return false
		}
	}
	lc.deadline = 0
	return lc.serveRequest()
}

// serveRequest routes the request, which is whole in the buffer, and starts
// forwarding it.
func (lc *loopConn) serveRequest() bool {
	cc, snap := lc.cc, lc.snap
	r := &cc.req
	if hook := lc.l.b.testHook; hook != nil {
		hook(r)
	}
	g := snap.route(r.host, r.path, &cc.scratch)
	if g == nil {
		keep := r.contentLength <= 0 && !r.chunked && !r.connClose
		cc.writeError(404, keep)
		return lc.finish(keep)
	}
	if !cc.startForward(snap, g) {
		lc.close()
		return false
	}
	return lc.nextAttempt()
}

// nextAttempt starts the next attempt, or answers when none is left.
func (lc *loopConn) nextAttempt() bool {
	cc := lc.cc
	f := &cc.fw
	srv := f.next()
	if srv == nil {
		return lc.finish(cc.giveUp())
	}
	cc.beginAttempt(srv)
	uc := lc.lp.idleConn(srv, f.start)
	if uc != nil {
		f.reused = true
		if uc.lu.ended || !f.replayable && !peekAlive(uintptr(uc.lu.fd)) {
			// The server closed this idle connection; a request that
			// cannot be sent twice must not be the one to find out.
			srv.pool.drop(uc)
			uc, f.reused = nil, false
		}
	}
	if uc == nil {
		lc.dial(srv, notSent)
		return false
	}
	return lc.send(uc)
}

// dial connects to srv without blocking the loop; oc is the outcome of a
// failed connect.
func (lc *loopConn) dial(srv *server, oc outcome) {
	lc.state = stDial
	lp, g := lc.lp, lc.cc.fw.g
	go func() {
		uc, err := lp.b.dialServer(srv, g.connectTimeout)
		lp.post(func() { lc.dialed(srv, uc, err, oc) })
	}()
}

// dialed continues the attempt whose connect ended.
func (lc *loopConn) dialed(srv *server, uc *upConn, err error, oc outcome) {
	defer lc.recoverPanic()
	if err == nil {
		if err = lc.lp.adopt(srv, uc); err != nil {
			srv.pool.drop(uc)
		}
	}
	var progress bool
	if err != nil {
		progress = lc.settle(lc.cc.dialFailed(err, oc))
	} else {
		progress = lc.send(uc)
	}
	if progress {
		lc.run()
	}
}

// send writes the request to uc.
func (lc *loopConn) send(uc *upConn) bool {
	cc := lc.cc
	f, r := &cc.fw, &cc.req
	lu := uc.lu
	lc.uc, lu.lc = uc, lc
	cc.writeRequestHead(uc.bw, lu.raddr)
	switch {
	case f.replayable && r.contentLength > 0:
		uc.bw.Write(cc.body[:r.contentLength])
	case r.contentLength > 0:
		cc.continue100()
		if err := copyN(uc.bw, cc.br, r.contentLength); err != nil {
			return lc.endAttempt(requestBodyFailure(err))
		}
	}
	if err := uc.bw.Flush(); err != nil {
		return lc.upFailed(502, err)
	}
	lc.state = stAwait
	lc.upTimeout = cc.responseTimeout(f.g)
	lc.setDeadline(lc.upTimeout)
	if lu.seen || uc.br.Buffered() > 0 {
		// The socket reported something while idle: an end, most likely.
		lu.seen = false
		return lc.upReady()
	}
	return false
}

// upReady reads the server's answer; once it is whole, forwards it.
func (lc *loopConn) upReady() bool {
	cc, uc := lc.cc, lc.uc
	lu := uc.lu
	if _, err := lu.w.flush(); err != nil {
		return lc.upFailed(502, err)
	}
	before := uc.br.Buffered()
	_, rerr := fillEnded(uc.br, &uc.rd, lu.ended)
	if uc.br.Buffered() != before {
		lc.setDeadline(lc.upTimeout)
	}
	p := &cc.resp
	for lc.state == stAwait {
		buf, _ := uc.br.Peek(uc.br.Buffered())
		if headEnd(buf, 0) == 0 {
			switch {
			case uc.br.Buffered() >= uc.br.Size():
				return lc.upFailed(502, errBadResponse)
			case rerr != nil:
				return lc.upFailed(502, rerr)
			}
			return false
		}
		var err error
		p.raw, err = readHead(uc.br, p.raw, uc.br.Size(), errBadResponse)
		if err == errWouldBlock { // blank lines before the head
			continue
		}
		if err == nil {
			err = p.parse()
		}
		if err != nil {
			return lc.upFailed(502, err)
		}
		// 1xx other than 101 are interim; Expect was answered here already.
		if p.status >= 200 || p.status == 101 {
			lc.state = stAwaitBody
		}
	}
	r := &cc.req
	noBody := string(r.method) == "HEAD" || p.status == 204 || p.status == 304 || p.status < 200
	whole := noBody || !p.chunked && p.contentLength >= 0 && p.contentLength <= int64(uc.br.Buffered())
	if !whole {
		if !p.chunked && p.contentLength >= 0 && p.contentLength <= int64(uc.br.Size()) && rerr == nil {
			return false
		}
		lc.handOver(nil, uc)
		return false
	}
	res := cc.writeResponse(uc)
	if rerr != nil || lu.ended {
		res.upKeep = false
	}
	return lc.endAttempt(res)
}

// upFailed ends the attempt, which got no answer, with status and err.
func (lc *loopConn) upFailed(status int, err error) bool {
	cc := lc.cc
	res := result{oc: cc.unanswered(cc.fw.replayable), status: status, err: err, serverFault: true}
	if cc.redial(res) {
		// A reused connection that fails before any answer was most likely
		// closed by the server while idle: try a fresh one before blaming it.
		uc := lc.uc
		lc.uc, uc.lu.lc = nil, nil
		cc.fw.srv.pool.drop(uc)
		lc.dial(cc.fw.srv, retry)
		return false
	}
	return lc.endAttempt(res)
}

// endAttempt ends the attempt over lc.uc with res.
func (lc *loopConn) endAttempt(res result) bool {
	uc := lc.uc
	lc.uc, uc.lu.lc = nil, nil
	lc.deadline = 0
	return lc.settle(lc.cc.endAttempt(uc, res))
}

// settle goes on after an attempt: with the next one, or the next request.
func (lc *loopConn) settle(res result) bool {
	finished, keep := lc.cc.settle(res)
	if !finished {
		return lc.nextAttempt()
	}
	return lc.finish(keep)
}

// finish ends a request; keep says the connection may carry another.
func (lc *loopConn) finish(keep bool) bool {
	lc.deadline = 0
	lc.closeAfter = !keep || lc.l.closing.Load()
	lc.state = stFlush
	if len(lc.w.pending) > 0 {
		lc.setDeadline(lc.l.snap.Load().writeTimeout)
	}
	return true
}

// flush waits until the answer has left, then reads the next request.
func (lc *loopConn) flush() bool {
	done, err := lc.w.flush()
	if err != nil {
		lc.close()
		return false
	}
	if !done {
		return false
	}
	if lc.closeAfter {
		lc.close()
		return false
	}
	lc.deadline = 0
	lc.state = stRead
	return true
}

// expire handles a passed deadline.
func (lc *loopConn) expire() {
	defer lc.recoverPanic()
	lc.deadline = 0
	var progress bool
	switch lc.state {
	case stRead:
		if lc.cc.br.Buffered() == 0 {
			lc.close()
			return
		}
		lc.cc.writeError(408, false)
		progress = lc.finish(false)
	case stBody:
		lc.cc.writeError(408, false)
		progress = lc.finish(false)
	case stAwait, stAwaitBody:
		progress = lc.upFailed(504, os.ErrDeadlineExceeded)
	case stFlush:
		lc.close()
		return
	}
	if progress {
		lc.run()
	}
}

// handOver gives the connection to the goroutine path, which serves the
// request parsed under snap, or forwards the answer whose head was read
// from uc.
func (lc *loopConn) handOver(snap *listenerSnap, uc *upConn) {
	cc, l := lc.cc, lc.l
	lc.state = stGone
	delete(lc.lp.conns, lc.id)
	lc.lp.unregister(lc.fd)
	lc.mu.Lock()
	lc.closed = true
	c, err := giveSocket(lc.fd)
	lc.mu.Unlock()
	var upPending []byte
	if err == nil && uc != nil {
		lc.uc = nil
		upPending, err = lc.lp.release(cc.fw.srv, uc, lc.upTimeout)
	}
	// What the sockets did not take yet is written by the goroutine: the
	// loop must not wait for a slow peer.
	pending := lc.w.pending
	lc.w.pending = nil
	if err != nil {
		l.b.log.Warn("lb: event loop cannot hand a connection over", "listener", l.addr, "err", err)
		if uc != nil {
			cc.fw.srv.pool.drop(uc)
			cc.abandonAttempt()
		}
		if c != nil {
			c.Close()
		}
		cc.release()
		l.mu.Lock()
		lc.tc.sock = nil
		l.mu.Unlock()
		l.forget(lc.tc)
		return
	}
	cc.conn = &deadlineConn{Conn: c, writeTimeout: l.snap.Load().writeTimeout}
	cc.rd = connReader{conn: cc.conn, fd: -1}
	cc.bw.Reset(cc.conn)
	tc := lc.tc
	l.mu.Lock()
	tc.Conn, tc.sock = c, nil
	l.mu.Unlock()
	go func() {
		defer l.forget(tc)
		if len(upPending) > 0 {
			if _, err := uc.conn.Write(upPending); err != nil {
				uc.conn.Close() // the answer's read fails: a failed attempt
			}
		}
		if len(pending) > 0 {
			if _, err := cc.conn.Write(pending); err != nil {
				c.Close() // a partly written answer: nothing may follow it
			}
		}
		cc.serve(snap, uc)
	}()
}

// close closes the connection and releases what serves it.
func (lc *loopConn) close() {
	if lc.state == stGone {
		return
	}
	lc.state = stGone
	delete(lc.lp.conns, lc.id)
	lc.mu.Lock()
	lc.closed = true
	syscall.Close(lc.fd)
	lc.mu.Unlock()
	lc.w.pending = lc.w.pending[:0]
	l, tc := lc.l, lc.tc
	lc.cc.release()
	l.mu.Lock()
	tc.sock = nil
	l.mu.Unlock()
	l.forget(tc)
}

// cut shuts the connection down; the loop sees it end and closes it. Safe
// from any goroutine.
func (lc *loopConn) cut() {
	lc.mu.Lock()
	if !lc.closed {
		syscall.Shutdown(lc.fd, syscall.SHUT_RDWR)
	}
	lc.mu.Unlock()
}

// loopUp is a server connection's socket owned by an event loop. The
// loop's goroutine alone uses lc and seen; close and cut may come from
// any goroutine.
type loopUp struct {
	lp    *loop
	id    uint64
	fd    int
	raddr net.Addr
	w     fdWriter
	lc    *loopConn // whose attempt uses the socket
	seen  bool      // the socket reported something while idle
	ended bool      // the server's end, reported

	mu     sync.Mutex
	closed bool
}

// event takes what epoll reported for the socket.
func (lu *loopUp) event(ev uint32) {
	if ev&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		lu.ended = true
	}
	lc := lu.lc
	if lc == nil {
		if ev&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
			lu.seen = true
		}
		return
	}
	defer lc.recoverPanic()
	if lc.upReady() {
		lc.run()
	}
}

func (lu *loopUp) close() error {
	lu.lp.mu.Lock()
	delete(lu.lp.ups, lu.id)
	lu.lp.mu.Unlock()
	lu.mu.Lock()
	defer lu.mu.Unlock()
	if lu.closed {
		return nil
	}
	lu.closed = true
	return syscall.Close(lu.fd)
}

func (lu *loopUp) cut() {
	lu.mu.Lock()
	if !lu.closed {
		syscall.Shutdown(lu.fd, syscall.SHUT_RDWR)
	}
	lu.mu.Unlock()
}

// idleConn takes an idle connection to srv for the loop: one it owns, or
// one of the goroutine path's, which it takes over.
func (lp *loop) idleConn(srv *server, now time.Time) *upConn {
	if uc := srv.pool.getLoop(lp.idx, now); uc != nil {
		return uc
	}
	uc := srv.pool.get(now)
	if uc == nil {
		return nil
	}
	if uc.br.Buffered() > 0 || lp.adopt(srv, uc) != nil {
		// Bytes no request asked for: the connection is not to be trusted.
		srv.pool.drop(uc)
		return nil
	}
	return uc
}

// adopt makes uc, a busy connection of srv's pool, a socket of the loop.
func (lp *loop) adopt(srv *server, uc *upConn) error {
	c, ok := uc.conn.Conn.(*net.TCPConn)
	if !ok {
		return errNotSocket
	}
	raddr := c.RemoteAddr()
	fd, err := takeSocket(c)
	if err != nil {
		return err
	}
	lu := &loopUp{lp: lp, id: lp.newID(), fd: fd, raddr: raddr}
	lu.w.fd = fd
	lp.mu.Lock()
	lp.ups[lu.id] = lu
	lp.mu.Unlock()
	uc.rd = connReader{fd: fd}
	uc.br.Reset(&uc.rd)
	uc.bw.Reset(&lu.w)
	uc.raw, uc.waitStep = nil, nil
	srv.pool.setLoop(uc, lu)
	uc.conn = nil
	if err := lp.register(fd, lu.id<<1|1); err != nil {
		return err // uc.Close closes lu
	}
	return nil
}

// release gives uc, a socket of the loop with an attempt in progress, to the
// goroutine path; timeout bounds its reads and writes. It returns what the
// socket did not take yet of the request, for the goroutine to write.
func (lp *loop) release(srv *server, uc *upConn, timeout time.Duration) ([]byte, error) {
	lu := uc.lu
	lu.lc = nil
	lp.unregister(lu.fd)
	lp.mu.Lock()
	delete(lp.ups, lu.id)
	lp.mu.Unlock()
	lu.mu.Lock()
	lu.closed = true
	c, err := giveSocket(lu.fd)
	lu.mu.Unlock()
	if err != nil {
		return nil, err
	}
	dc := &deadlineConn{Conn: c, readTimeout: timeout, writeTimeout: timeout}
	uc.conn = dc
	uc.rd = connReader{conn: dc, fd: -1}
	uc.bw.Reset(dc)
	if sc, err := c.(syscall.Conn).SyscallConn(); err == nil {
		uc.raw, uc.waitStep = sc, uc.step
	}
	srv.pool.setLoop(uc, nil)
	return lu.w.pending, nil
}
