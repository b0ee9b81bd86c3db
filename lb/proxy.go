package lb

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// This file is the HTTP/1.1 forwarding path. It does not use net/http: a
// request head is parsed in place (httpparse.go), routed, and written to a
// pooled keep-alive connection of the chosen server field by field; bodies
// are streamed between the two buffered connections. After warm-up a
// keep-alive request allocates nothing.

// deadlineConn bounds each Read and Write by its timeout, when set. Setting a
// deadline costs a timer update, so a deadline still at least half a timeout
// away is kept: each wait is bounded by between half and the whole timeout.
// Deadlines are kept as monotonic nanoseconds (monoNow), cheaper to read
// than the wall clock, which they need not follow.
type deadlineConn struct {
	net.Conn
	readTimeout, writeTimeout time.Duration
	readUntil, writeUntil     int64  // monoNow of the deadlines set
	writes                    uint64 // Write calls so far
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.readTimeout > 0 {
		c.refreshRead(c.readTimeout)
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.writes++
	if c.writeTimeout > 0 {
		now := monoNow()
		if left := c.writeUntil - now; left < int64(c.writeTimeout/2) || left > int64(c.writeTimeout) {
			c.writeUntil = now + int64(c.writeTimeout)
			c.Conn.SetWriteDeadline(monoTime(c.writeUntil))
		}
	}
	return c.Conn.Write(p)
}

// refreshRead makes the read deadline between t/2 and t from now.
func (c *deadlineConn) refreshRead(t time.Duration) {
	now := monoNow()
	if left := c.readUntil - now; left < int64(t/2) || left > int64(t) {
		c.readUntil = now + int64(t)
		c.Conn.SetReadDeadline(monoTime(c.readUntil))
	}
}

// monoBase is the origin of monoNow.
var monoBase = time.Now()

// monoNow is the time in nanoseconds since monoBase, read from the
// monotonic clock only.
func monoNow() int64 { return int64(time.Since(monoBase)) }

// monoTime is the time of a monoNow reading.
func monoTime(mono int64) time.Time { return monoBase.Add(time.Duration(mono)) }

// clearRead removes the read deadline.
func (c *deadlineConn) clearRead() {
	c.readUntil = 0
	c.Conn.SetReadDeadline(time.Time{})
}

// maxReplayBody is the largest request body kept in memory so that an
// idempotent request with a body can be sent to another server.
const maxReplayBody = 64 << 10

// clientConn is one accepted HTTP connection and its reusable buffers.
type clientConn struct {
	l       *listener
	conn    *deadlineConn
	rd      connReader // what br reads
	br      *bufio.Reader
	bw      *bufio.Writer
	https   bool
	ip      []byte // client IP, for X-Forwarded-For and hashing
	req     request
	resp    response
	body    []byte // replayable request body
	scratch []byte

	// For a Hook: the request's view, the client IP parsed on demand, and
	// the last answer's status and failure.
	hr           Request
	ipAddr       netip.Addr
	ipParsed     bool
	lastStatus   int
	lastErr      error
	lastAnswered bool
	// linger says a hook answered without reading the request body: the
	// connection is half-closed and drained before it closes, so that the
	// client, still sending, reads the answer instead of a reset.
	linger bool

	// For serveInPoller: the socket, its callback bound once, and what the
	// callback leaves for serveHTTP.
	raw      syscall.RawConn
	pollStep func(uintptr) bool
	tc       *trackedConn
	parsed   *listenerSnap // cc.req, parsed under this config, waits to be served
	ended    bool          // the connection is to be closed
	pollErr  error         // the read that ended the connection
	checking bool          // the wait is the one bounded by pollCheck

	fw forwarding // the request being forwarded
}

var clientConnPool = sync.Pool{New: func() any {
	cc := &clientConn{bw: bufio.NewWriterSize(nil, 8<<10)}
	cc.br = bufio.NewReaderSize(&cc.rd, defaultMaxHeaderBytes)
	cc.pollStep = cc.step
	return cc
}}

// connReader is the client connection as br reads it: through the
// connection, or straight from the socket (fd >= 0) inside step, where the
// connection's own Read would wait for the read lock that RawConn.Read
// holds. There a read that would block fails with errWouldBlock.
type connReader struct {
	conn *deadlineConn
	fd   int
	// more says the last read from fd may have left something to read:
	// it filled p, or found the end or an error, which stay to be seen.
	more bool
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.fd < 0 {
		return r.conn.Read(p)
	}
	n, err := readFD(r.fd, p)
	r.more = err != errWouldBlock && (err != nil || n == len(p))
	return n, err
}

// errWouldBlock is a read of connReader that found nothing to read.
var errWouldBlock = errors.New("lb: read would block")

// serveHTTP serves requests on c until the client or a timeout ends the
// connection, or the listener closes.
func (l *listener) serveHTTP(c net.Conn, tc *trackedConn, https bool, ip []byte) {
	cc := clientConnPool.Get().(*clientConn)
	cc.l, cc.https, cc.ip = l, https, ip
	cc.ipParsed = false
	cc.conn = &deadlineConn{Conn: c}
	cc.rd = connReader{conn: cc.conn, fd: -1}
	cc.br.Reset(&cc.rd)
	cc.bw.Reset(cc.conn)
	cc.tc = tc
	if size := l.snap.Load().maxHeaderBytes; cc.br.Size() < size {
		// The reader must hold a whole head.
		cc.br = bufio.NewReaderSize(&cc.rd, size)
	}
	cc.serve(nil, nil)
}

// serve serves cc's connection until it ends and then releases cc. An event
// loop that hands a connection over (loop_linux.go) passes the request it
// parsed under parsed, or the attempt whose answer's head is read from mid.
func (cc *clientConn) serve(parsed *listenerSnap, mid *upConn) {
	l, c, tc := cc.l, cc.conn.Conn, cc.tc
	cc.raw = nil
	if !cc.https {
		cc.raw = rawConn(tc.Conn)
	}
	defer func() {
		if p := recover(); p != nil {
			l.b.log.Error("lb: panic serving request", "listener", l.addr, "client", string(cc.ip), "panic", p)
			cc.abandonAttempt()
		}
		if cc.linger {
			cc.linger = false
			lingerClose(c, cc.br)
		}
		c.Close()
		cc.release()
	}()
	for {
		if mid != nil {
			uc := mid
			mid = nil
			if !cc.finishResponse(uc) || l.closing.Load() {
				return
			}
			continue
		}
		snap := l.snap.Load()
		cc.parsed = parsed
		parsed = nil
		if cc.parsed == nil && cc.br.Buffered() == 0 {
			cc.conn.refreshRead(snap.idleTimeout)
			l.idle(tc, true)
			var err error
			if cc.raw != nil {
				err = cc.serveInPoller()
				if cc.checking && errors.Is(err, os.ErrDeadlineExceeded) && !l.closing.Load() {
					// No request within pollCheck: wait the usual way,
					// whose first read sees a half-close.
					cc.conn.refreshRead(l.snap.Load().idleTimeout)
					_, err = cc.br.Peek(1)
				}
			} else {
				_, err = cc.br.Peek(1)
			}
			l.idle(tc, false)
			if err != nil || cc.ended {
				return
			}
			// A push may have come while the connection waited.
			snap = l.snap.Load()
		}
		if cc.parsed != nil {
			if !cc.serveParsed(cc.parsed) || l.closing.Load() {
				return
			}
			continue
		}
		if !cc.headBuffered() {
			// Bound the rest of the head by ReadTimeout (slow clients).
			cc.conn.refreshRead(snap.readTimeout)
		}
		cc.conn.writeTimeout = snap.writeTimeout
		if !cc.serveOne(snap) || l.closing.Load() {
			return
		}
	}
}

// release returns cc, whose connection is closed, to clientConnPool.
func (cc *clientConn) release() {
	cc.rd = connReader{fd: -1}
	cc.br.Reset(&cc.rd)
	cc.bw.Reset(nil)
	cc.l, cc.conn, cc.tc, cc.raw, cc.parsed, cc.pollErr = nil, nil, nil, nil, nil, nil
	cc.fw = forwarding{}
	clientConnPool.Put(cc)
}

// serveInPoller waits for requests and serves those that arrived whole
// (head and body) from within the poller's read callback: the next wait
// then starts without a read that would find nothing, which costs a system
// call per request. (RawConn.Read forgets a readiness reported before it
// is called, so the wait must begin in the same call as the last read.) It
// returns when a request needs reads that may wait (with cc.parsed when it
// is parsed already), with cc.ended when the connection is done, or with
// the error that ended the wait (a timeout, the listener closing).
//
// A wait that starts without a read misses a half-close (or a reset) that
// arrived with the request, as the poller reported it already: such a wait
// is bounded by pollCheck (cc.checking), after which serveHTTP reads.
func (cc *clientConn) serveInPoller() error {
	cc.ended, cc.checking = false, false
	err := cc.raw.Read(cc.pollStep)
	cc.rd.fd = -1
	if err == nil {
		err = cc.pollErr
	}
	return err
}

// step is serveInPoller's RawConn.Read callback, called first at once and
// then whenever the socket becomes readable; it returns false to wait.
func (cc *clientConn) step(fd uintptr) bool {
	l := cc.l
	cc.rd.fd = int(fd)
	cc.checking = false
	for {
		if _, err := cc.br.Peek(1); err != nil {
			if err == errWouldBlock {
				return false
			}
			cc.pollErr = err
			return true
		}
		l.idle(cc.tc, false)
		if !cc.headBuffered() {
			return true
		}
		snap := l.snap.Load()
		cc.conn.writeTimeout = snap.writeTimeout
		if err := cc.readRequest(snap); err != nil {
			if err != errWouldBlock { // else blank lines before the head, read the usual way
				cc.refuseHead(err)
				cc.ended = true
			}
			return true
		}
		r := &cc.req
		if r.chunked || r.contentLength > int64(cc.br.Buffered()) || r.connUpgrade {
			// The body must be waited for, or the connection becomes a tunnel.
			cc.parsed = snap
			return true
		}
		if !cc.serveParsed(snap) || l.closing.Load() {
			cc.ended = true
			return true
		}
		if cc.br.Buffered() == 0 {
			cc.conn.refreshRead(pollCheck)
			cc.checking = true
			l.idle(cc.tc, true)
			return false
		}
	}
}

// pollCheck bounds a wait for the next request that starts without a read
// (see serveInPoller): how late a client's half-close may be seen. Clients
// that keep a connection busy send their next request sooner.
const pollCheck = 100 * time.Millisecond

// headBuffered says whether the next request head is read completely.
func (cc *clientConn) headBuffered() bool {
	buf, _ := cc.br.Peek(cc.br.Buffered())
	return headEnd(buf, 0) > 0
}

// serveOne reads and forwards one request and says whether the connection
// may carry another.
func (cc *clientConn) serveOne(snap *listenerSnap) bool {
	if err := cc.readRequest(snap); err != nil {
		cc.refuseHead(err)
		return false
	}
	return cc.serveParsed(snap)
}

// readRequest reads and parses the next request head.
func (cc *clientConn) readRequest(snap *listenerSnap) error {
	r := &cc.req
	var err error
	r.raw, err = readHead(cc.br, r.raw, snap.maxHeaderBytes, errHeaderTooLarge)
	if err == nil {
		err = r.parse()
	}
	return err
}

// refuseHead answers a request whose head could not be read or parsed.
func (cc *clientConn) refuseHead(err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		cc.writeError(he.status, false)
	case errors.Is(err, os.ErrDeadlineExceeded):
		cc.writeError(408, false)
	}
}

// serveParsed forwards the parsed request and says whether the connection
// may carry another.
func (cc *clientConn) serveParsed(snap *listenerSnap) bool {
	r := &cc.req
	if hook := cc.l.b.testHook; hook != nil {
		hook(r)
	}
	if r.chunked || r.contentLength > int64(cc.br.Buffered()) {
		cc.conn.refreshRead(snap.readTimeout)
	}
	if snap.maxBodyBytes > 0 && r.contentLength > snap.maxBodyBytes {
		cc.writeError(413, false)
		return false
	}
	if h := cc.l.b.hook; h != nil {
		return cc.serveHooked(snap, h)
	}
	g := snap.route(r.host, r.path, &cc.scratch)
	if g == nil {
		keep := r.contentLength <= 0 && !r.chunked && !r.connClose
		cc.writeError(404, keep)
		return keep
	}
	return cc.forward(snap, g)
}

func (cc *clientConn) idempotent() bool {
	r := &cc.req
	switch string(r.method) {
	case "GET", "HEAD", "OPTIONS":
		return true
	}
	return r.idempotency
}

// outcome of one attempt, deciding what happens next.
type outcome int

const (
	done    outcome = iota // response forwarded
	notSent                // no server got the request: another may take it
	retry                  // a server may have got it: another may take it if idempotent
	failed                 // nothing reached the client: answer with result.status
	cut                    // part of the response reached the client, or the client left: close
)

// result of one attempt.
type result struct {
	oc     outcome
	keep   bool // the client connection may carry another request
	upKeep bool // the server connection may be reused
	status int  // the answer to give when no attempt succeeds
	err    error
	// serverFault says err counts against the server (a passive failure);
	// a client that sends garbage or goes away is not the server's fault.
	serverFault bool
}

// forwarding is a request's way through its group's servers: what was
// tried, and the attempt in progress.
type forwarding struct {
	snap       *listenerSnap
	g          *group
	key        []byte
	t          tried
	attempts   int
	status     int // the answer to give when no attempt succeeds
	lastErr    error
	hasBody    bool
	replayable bool // the body can be sent again (kept in cc.body, or none)
	retryable  bool

	srv    *server // of the attempt in progress
	start  time.Time
	reused bool // its connection came from the pool
}

func (cc *clientConn) forward(snap *listenerSnap, g *group) bool {
	if !cc.startForward(snap, g) {
		return false
	}
	return cc.forwardRest()
}

// startForward prepares cc.fw for forwarding the parsed request to g,
// keeping the body of an idempotent request so that it can be sent again.
// It returns false when the connection is to be closed.
func (cc *clientConn) startForward(snap *listenerSnap, g *group) bool {
	r := &cc.req
	f := &cc.fw
	*f = forwarding{snap: snap, g: g, status: 503}
	f.hasBody = r.chunked || r.contentLength > 0
	f.replayable = !f.hasBody || cc.hr.bodyRead
	if !f.replayable && cc.idempotent() && !r.chunked && r.contentLength <= maxReplayBody {
		cc.continue100()
		cc.body = append(cc.body[:0], make([]byte, r.contentLength)...)
		if _, err := io.ReadFull(cc.br, cc.body); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				cc.fail(408, false, err)
			}
			return false
		}
		f.replayable = true
	}
	f.retryable = f.replayable && cc.idempotent()
	f.key = cc.hashKey(g)
	return true
}

// forwardRest makes the attempts left and says whether the connection may
// carry another request.
func (cc *clientConn) forwardRest() bool {
	for srv := cc.fw.next(); srv != nil; srv = cc.fw.next() {
		if finished, keep := cc.settle(cc.attempt(srv)); finished {
			return keep
		}
	}
	return cc.giveUp()
}

// next picks the server of the next attempt, or nil when no attempt is left.
func (f *forwarding) next() *server {
	if f.attempts >= f.g.maxAttempts {
		return nil
	}
	m := f.g.pick(f.key, &f.t)
	if m == nil {
		return nil
	}
	f.t.add(m.srv)
	f.attempts++
	return m.srv
}

// settle takes the result of an attempt: finished says the request needs
// no other attempt, and then keep whether the connection may carry another.
func (cc *clientConn) settle(res result) (finished, keep bool) {
	f := &cc.fw
	f.status, f.lastErr = res.status, res.err
	switch res.oc {
	case done:
		cc.lastStatus, cc.lastAnswered = res.status, true
		return true, res.keep
	case cut:
		cc.lastStatus, cc.lastErr, cc.lastAnswered = res.status, res.err, res.status > 0
		return true, false
	case failed:
		if res.status != 0 {
			cc.fail(res.status, false, res.err)
		} else {
			cc.lastErr = res.err
		}
		return true, false
	case retry:
		if !f.retryable {
			return true, cc.giveUp()
		}
	}
	return false, false
}

// giveUp answers a request no attempt succeeded for.
func (cc *clientConn) giveUp() bool {
	r, f := &cc.req, &cc.fw
	keep := (!f.hasBody || f.replayable) && !r.connClose && r.minor >= 1
	cc.fail(f.status, keep, f.lastErr)
	return keep
}

// continue100 tells a client that waits for it to send the body; the
// balancer answers Expect itself and does not forward it.
func (cc *clientConn) continue100() {
	if cc.req.expect100 {
		cc.req.expect100 = false
		cc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		cc.bw.Flush()
	}
}

func (cc *clientConn) hashKey(g *group) []byte {
	if g.algo != Hash {
		return nil
	}
	switch g.hashKey.Source {
	case HashHeader:
		for _, f := range cc.req.fields {
			if equalFoldBytes(f.name, g.hashKey.Name) {
				return f.value
			}
		}
	case HashCookie:
		for _, f := range cc.req.fields {
			if equalFold(f.name, "cookie") {
				if v, ok := cookieValue(f.value, g.hashKey.Name); ok {
					return v
				}
			}
		}
	}
	return cc.ip
}

// attempt sends the request to srv, over an idle connection if one is kept.
func (cc *clientConn) attempt(srv *server) result {
	f := &cc.fw
	cc.beginAttempt(srv)
	uc := srv.pool.get(f.start)
	f.reused = uc != nil
	if f.reused && !f.replayable && !alive(uc.conn.Conn) {
		// The server closed this idle connection; a request that cannot be
		// sent twice must not be the one to find out.
		srv.pool.drop(uc)
		uc, f.reused = nil, false
	}
	if uc == nil {
		var err error
		if uc, err = cc.l.b.dialServer(srv, f.g.connectTimeout); err != nil {
			return cc.dialFailed(err, notSent)
		}
	}
	timeout := cc.responseTimeout(f.g)
	uc.conn.readTimeout, uc.conn.writeTimeout = timeout, timeout
	res := cc.exchange(f.snap, uc, f.replayable)
	if cc.redial(res) {
		// A reused connection that fails before any answer was most likely
		// closed by the server while idle: try a fresh one before blaming it.
		srv.pool.drop(uc)
		var err error
		if uc, err = cc.l.b.dialServer(srv, f.g.connectTimeout); err != nil {
			return cc.dialFailed(err, retry)
		}
		uc.conn.readTimeout, uc.conn.writeTimeout = timeout, timeout
		res = cc.exchange(f.snap, uc, f.replayable)
	}
	return cc.endAttempt(uc, res)
}

// abandonAttempt ends the count of an attempt a panic interrupted.
func (cc *clientConn) abandonAttempt() {
	if srv := cc.fw.srv; srv != nil {
		cc.fw.srv = nil
		srv.active.Add(-1)
	}
}

// finishResponse forwards the answer whose head cc.resp holds from uc, ends
// the attempt, and says whether the connection may carry another request.
func (cc *clientConn) finishResponse(uc *upConn) bool {
	res := cc.endAttempt(uc, cc.writeResponse(uc))
	if finished, keep := cc.settle(res); finished {
		return keep
	}
	return cc.forwardRest()
}

// beginAttempt counts an attempt on srv as started.
func (cc *clientConn) beginAttempt(srv *server) {
	f := &cc.fw
	f.srv, f.start, f.reused = srv, time.Now(), false
	srv.active.Add(1)
	srv.requests.Add(1)
}

// redial says whether res, the failure of a reused connection before any
// answer, is to be tried again on a fresh connection to the same server.
func (cc *clientConn) redial(res result) bool {
	if cc.fw.reused && res.oc == retry && res.status == 502 {
		cc.fw.reused = false
		return true
	}
	return false
}

// dialFailed ends the attempt in progress, whose connect failed.
func (cc *clientConn) dialFailed(err error, oc outcome) result {
	f := &cc.fw
	f.srv.passiveFailure(f.g, err)
	f.srv.active.Add(-1)
	f.srv = nil
	return result{oc: oc, status: 502}
}

// endAttempt ends the attempt in progress over uc with res: it counts the
// server's success or failure and keeps uc for reuse or closes it.
func (cc *clientConn) endAttempt(uc *upConn, res result) result {
	f := &cc.fw
	srv := f.srv
	f.srv = nil
	defer srv.active.Add(-1)
	srv.attemptEnded(f.g, res, cc.resp.status)
	if res.err == nil {
		end := time.Now()
		srv.latency.observe(end.Sub(f.start))
		if res.upKeep {
			srv.pool.put(uc, f.g.maxIdle, end)
			return res
		}
	}
	srv.pool.drop(uc)
	return res
}

// exchange writes the request to uc and the response to the client.
func (cc *clientConn) exchange(snap *listenerSnap, uc *upConn, replayable bool) result {
	r := &cc.req
	writes := uc.conn.writes
	cc.writeRequestHead(uc.bw, uc.conn.RemoteAddr())
	var err error
	switch {
	case replayable && r.contentLength > 0:
		uc.bw.Write(cc.body[:r.contentLength])
	case r.chunked:
		cc.continue100()
		err = copyChunked(uc.bw, cc.br, true, snap.maxBodyBytes, errBodyTooLarge)
	case r.contentLength > 0:
		cc.continue100()
		err = copyN(uc.bw, cc.br, r.contentLength)
	}
	if err != nil {
		return requestBodyFailure(err)
	}
	var waitErr error
	if uc.conn.writes != writes {
		// Part of a streamed body left before the poller could be armed, so
		// an early answer could be missed by flushAndWait.
		err = uc.bw.Flush()
	} else {
		err, waitErr = uc.flushAndWait()
	}
	if err != nil {
		return result{oc: cc.unanswered(replayable), status: 502, err: err, serverFault: true}
	}
	p := &cc.resp
	err = waitErr
	for err == nil {
		p.raw, err = readHead(uc.br, p.raw, uc.br.Size(), errBadResponse)
		if err == nil {
			err = p.parse()
		}
		// 1xx other than 101 are interim; Expect was answered here already.
		if err == nil && (p.status >= 200 || p.status == 101) {
			return cc.writeResponse(uc)
		}
	}
	st := 502
	if errors.Is(err, os.ErrDeadlineExceeded) {
		st = 504
	}
	return result{oc: cc.unanswered(replayable), status: st, err: err, serverFault: true}
}

// unanswered is the outcome of a request the server got and did not answer.
func (cc *clientConn) unanswered(replayable bool) outcome {
	if replayable {
		return retry
	}
	return failed
}

// requestBodyFailure maps an error while streaming the request body: bad
// framing or a slow or vanished client is the client's fault, a failed
// write the server's.
func requestBodyFailure(err error) result {
	var se *srcError
	if !errors.As(err, &se) {
		return result{oc: failed, status: 502, err: err, serverFault: true}
	}
	var he *httpError
	switch {
	case errors.As(err, &he):
		return result{oc: failed, status: he.status, err: err}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return result{oc: failed, status: 408, err: err}
	}
	return result{oc: failed, err: err} // the client is gone: no answer
}

// writeRequestHead writes the request head as it goes to a server: hop-by-hop
// fields dropped, X-Forwarded-For and X-Forwarded-Proto set, and a Host
// (the server's address) added to a request that had none.
func (cc *clientConn) writeRequestHead(w *bufio.Writer, server net.Addr) {
	r := &cc.req
	w.Write(r.method)
	w.WriteByte(' ')
	w.Write(r.target)
	w.WriteString(" HTTP/1.1\r\nX-Forwarded-For: ")
	for _, f := range r.fields {
		if equalFold(f.name, "x-forwarded-for") {
			w.Write(f.value)
			w.WriteString(", ")
		}
	}
	w.Write(cc.ip)
	if cc.https {
		w.WriteString("\r\nX-Forwarded-Proto: https\r\n")
	} else {
		w.WriteString("\r\nX-Forwarded-Proto: http\r\n")
	}
	if !r.hasHost {
		w.WriteString("Host: ")
		w.WriteString(server.String())
		w.WriteString("\r\n")
	}
	extra := cc.hr.extra
	for _, f := range r.fields {
		if r.hopByHop(f.name) || equalFold(f.name, "x-forwarded-for") || equalFold(f.name, "x-forwarded-proto") || equalFold(f.name, "expect") {
			continue
		}
		if len(extra) > 0 && cc.hr.overridden(f.name) {
			continue
		}
		w.Write(f.name)
		w.WriteString(": ")
		w.Write(f.value)
		w.WriteString("\r\n")
	}
	for _, f := range extra {
		w.Write(f.name)
		w.WriteString(": ")
		w.Write(f.value)
		w.WriteString("\r\n")
	}
	if cc.hr.addLength {
		// A chunked body read by a hook goes to the server with its length.
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(cc.scratch[:0], r.contentLength, 10))
		w.WriteString("\r\n")
	}
	if r.connUpgrade && len(r.upgrade) > 0 {
		w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		w.Write(r.upgrade)
		w.WriteString("\r\n")
	}
	if r.chunked {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	w.WriteString("\r\n")
}

// writeResponse forwards the parsed response head and its body.
func (cc *clientConn) writeResponse(uc *upConn) result {
	r, p := &cc.req, &cc.resp
	w := cc.bw
	upgraded := p.status == 101 && r.connUpgrade && len(r.upgrade) > 0
	if p.status == 101 && !upgraded {
		return result{oc: failed, status: 502, err: errBadResponse, serverFault: true}
	}
	noBody := string(r.method) == "HEAD" || p.status == 204 || p.status == 304 || p.status < 200
	closeDelimited := !noBody && !p.chunked && p.contentLength < 0
	res := result{oc: done, status: p.status}
	res.upKeep = !upgraded && !closeDelimited && !p.connClose && (p.minor >= 1 || p.connKeepAlive)
	res.keep = !upgraded && !closeDelimited && !r.connClose && (r.minor >= 1 || r.connKeepAlive) &&
		!(p.chunked && r.minor == 0) && !cc.l.closing.Load()

	w.WriteString("HTTP/1.1 ")
	w.WriteByte(byte('0' + p.status/100))
	w.WriteByte(byte('0' + p.status/10%10))
	w.WriteByte(byte('0' + p.status%10))
	w.WriteByte(' ')
	w.Write(p.reason)
	w.WriteString("\r\n")
	for _, f := range p.fields {
		if p.hopByHop(f.name) {
			continue
		}
		w.Write(f.name)
		w.WriteString(": ")
		w.Write(f.value)
		w.WriteString("\r\n")
	}
	switch {
	case upgraded:
		w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		w.Write(p.upgrade)
		w.WriteString("\r\n")
	case !res.keep:
		w.WriteString("Connection: close\r\n")
	case r.minor == 0:
		w.WriteString("Connection: keep-alive\r\n")
	}
	if p.chunked && r.minor >= 1 && !noBody {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	w.WriteString("\r\n")

	// From here on bytes may have reached the client: no retry.
	var err error
	switch {
	case upgraded:
		if err = w.Flush(); err != nil {
			return result{oc: cut}
		}
		cc.conn.clearRead()
		tunnel(cc.conn.Conn, cc.br, uc.conn.Conn, uc.br, cc.l.snap.Load().idleTimeout)
		return result{oc: cut, status: p.status}
	case noBody:
	case p.chunked:
		err = copyChunked(w, uc.br, r.minor >= 1, 0, errBadResponse)
	case p.contentLength >= 0:
		err = copyN(w, uc.br, p.contentLength)
	default:
		err = copyAll(w, uc.br)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		// A failed read is the server's fault; a failed write means the
		// client went away.
		var se *srcError
		return result{oc: cut, status: p.status, err: err, serverFault: errors.As(err, &se)}
	}
	return res
}

// srcError marks an error of the side being read from, so callers of the
// copy functions can tell who failed.
type srcError struct{ err error }

func (e *srcError) Error() string { return e.err.Error() }
func (e *srcError) Unwrap() error { return e.err }

func readFailed(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &srcError{err}
}

// copyN copies n bytes from src to dst without allocating; it flushes dst
// whenever src must wait, so streamed bodies are not held back.
func copyN(dst *bufio.Writer, src *bufio.Reader, n int64) error {
	for n > 0 {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return err
			}
			if _, err := src.Peek(1); err != nil {
				return readFailed(err)
			}
		}
		b, _ := src.Peek(int(min(int64(src.Buffered()), n)))
		if _, err := dst.Write(b); err != nil {
			return err
		}
		src.Discard(len(b))
		n -= int64(len(b))
	}
	return nil
}

// copyAll copies a body delimited by the server closing the connection.
func copyAll(dst *bufio.Writer, src *bufio.Reader) error {
	for {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return err
			}
			if _, err := src.Peek(1); err != nil {
				if err == io.EOF {
					return nil
				}
				return readFailed(err)
			}
		}
		b, _ := src.Peek(src.Buffered())
		if _, err := dst.Write(b); err != nil {
			return err
		}
		src.Discard(len(b))
	}
}

// copyChunked reads a chunked body from src, checking its syntax, and writes
// it to dst re-chunked (rechunk) or as plain bytes. limit > 0 bounds the
// body's size, refused with tooLarge.
func copyChunked(dst *bufio.Writer, src *bufio.Reader, rechunk bool, limit int64, tooLarge error) error {
	var total int64
	var sizeBuf [16]byte
	for {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return err
			}
		}
		n, err := readChunkSize(src)
		if err != nil {
			return readFailed(err)
		}
		if n == 0 {
			break
		}
		total += n
		if limit > 0 && total > limit {
			return &srcError{tooLarge}
		}
		if rechunk {
			dst.Write(strconv.AppendInt(sizeBuf[:0], n, 16))
			dst.WriteString("\r\n")
		}
		if err := copyN(dst, src, n); err != nil {
			return err
		}
		if err := expectCRLF(src); err != nil {
			return readFailed(err)
		}
		if rechunk {
			dst.WriteString("\r\n")
		}
	}
	if rechunk {
		dst.WriteString("0\r\n")
	}
	// Trailer fields, then the final empty line.
	var h head
	for i := 0; ; i++ {
		line, err := src.ReadSlice('\n')
		if err != nil || len(line) < 2 || line[len(line)-2] != '\r' || i > maxFields {
			return &srcError{errBadChunk}
		}
		if len(line) == 2 {
			break
		}
		h.reset()
		if err := h.parseFields(append(line[:len(line):len(line)], '\r', '\n')); err != nil || h.chunked || h.contentLength >= 0 {
			return &srcError{errBadChunk}
		}
		if rechunk {
			dst.Write(line)
		}
	}
	if rechunk {
		dst.WriteString("\r\n")
	}
	return nil
}

func expectCRLF(br *bufio.Reader) error {
	b, err := br.Peek(2)
	if err != nil {
		return err
	}
	if b[0] != '\r' || b[1] != '\n' {
		return errBadChunk
	}
	br.Discard(2)
	return nil
}

// cannedAnswers are the complete answers the balancer gives itself, with
// and without "Connection: close".
var cannedAnswers = func() map[int][2][]byte {
	m := make(map[int][2][]byte)
	for code, text := range map[int]string{
		400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
		413: "Content Too Large", 417: "Expectation Failed", 431: "Request Header Fields Too Large",
		501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
		505: "HTTP Version Not Supported",
	} {
		body := strconv.Itoa(code) + " " + text + "\n"
		start := "HTTP/1.1 " + strconv.Itoa(code) + " " + text +
			"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
		m[code] = [2][]byte{[]byte(start + "Connection: close\r\n\r\n" + body), []byte(start + "\r\n" + body)}
	}
	return m
}()

// writeError answers the client itself; keep says the connection stays open.
func (cc *clientConn) writeError(status int, keep bool) {
	a := cannedAnswers[status]
	if keep && !cc.l.closing.Load() {
		cc.bw.Write(a[1])
	} else {
		cc.bw.Write(a[0])
	}
	cc.bw.Flush()
	cc.l.b.countRejected(status)
}

// dialServer opens a connection to srv.
func (b *Balancer) dialServer(srv *server, timeout time.Duration) (*upConn, error) {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	c, err := b.dial(ctx, "tcp", srv.addr)
	if err != nil {
		return nil, err
	}
	dc := &deadlineConn{Conn: c}
	uc := &upConn{conn: dc, br: bufio.NewReaderSize(dc, 16<<10), bw: bufio.NewWriterSize(dc, 8<<10)}
	if sc, ok := c.(syscall.Conn); ok {
		if uc.raw, err = sc.SyscallConn(); err == nil {
			uc.waitStep = uc.step
		} else {
			uc.raw = nil
		}
	}
	srv.pool.track(uc)
	return uc, nil
}
