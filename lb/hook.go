package lb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// A Hook sees each HTTP request of a balancer before it is routed: an API
// gateway's seam into the balancer's proxy core. For every request of every
// http and https listener, once its head is parsed (and the listener's
// header and body limits are checked), the balancer calls HandleRequest.
// HandleRequest may read the request (method, path, query, headers, client
// IP, body up to a limit) and then either
//
//   - answer it itself with [Request.Respond],
//   - send it to a server group of the listener's config ([Request.ForwardGroup])
//     or to an address outside the config ([Request.ForwardTo]), optionally
//     with extra headers ([Request.SetHeader]) and its own response timeout
//     ([Request.SetTimeout]), or
//   - do neither, and the listener's forwarding rules route it as usual.
//
// Forwarding is the balancer's own: pooled connections, retries of
// idempotent requests, passive health, the same limits and timeouts.
//
// HandleRequest returns a function to be told how the request ended, or nil.
// The balancer calls it once, after the answer was written, or — when no
// server answered (no server up, connect errors, timeouts) — before the
// balancer writes its own plain-text answer; in that case the function may
// call [Request.Respond] to answer instead (e.g. with a JSON error).
//
// HandleRequest and the functions it returns are called concurrently, from
// one goroutine per client connection. A Request is valid only until the
// done function returns (or HandleRequest returns, when it gives none); it
// must not be kept.
type Hook interface {
	HandleRequest(r *Request) (done func(Outcome))
}

// HookFunc adapts a function to a Hook.
type HookFunc func(r *Request) func(Outcome)

// HandleRequest calls f(r).
func (f HookFunc) HandleRequest(r *Request) func(Outcome) { return f(r) }

// Outcome is how a request that a Hook saw ended.
type Outcome struct {
	// Status is the status the client got: a server's, the balancer's own
	// (502, 503, 504 ...), or the hook's when it answered. Zero when the
	// client went away before any answer.
	Status int
	// Answered says a server's answer was forwarded to the client.
	Answered bool
	// Err is the last failure talking to a server, if any.
	Err error
}

// Request is the view a Hook has of one request, and the means to decide
// what happens to it. Its methods must be called only from HandleRequest
// (or, for Respond, from the done function as the Hook documents).
type Request struct {
	cc   *clientConn
	snap *listenerSnap

	done      func(Outcome)
	respondOK bool // Respond may be called
	answered  bool
	status    int
	header    http.Header
	body      []byte
	target    *group
	timeout   time.Duration
	extra     []extraField // headers set for the server
	extraBuf  []byte       // holds the names and values of extra, reused
	bodyRead  bool
	addLength bool // a chunked body was read: send it with Content-Length
	broken    bool // the connection cannot carry another request
	tooLarge  bool // the body is over the hook's limit
}

// ErrBodyTooLarge is returned by Request.Body for a body over its limit.
var ErrBodyTooLarge = errors.New("lb: request body too large")

// ErrUnknownGroup is returned by Request.ForwardGroup for a group that the
// listener's config does not have.
var ErrUnknownGroup = errors.New("lb: unknown server group")

// Listener is the name of the listener that received the request.
func (r *Request) Listener() string { return r.snap.name }

// Method is the request method, e.g. "POST".
func (r *Request) Method() string {
	m := r.cc.req.method
	// The common methods as constants: no allocation.
	switch string(m) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "HEAD":
		return "HEAD"
	case "PATCH":
		return "PATCH"
	case "OPTIONS":
		return "OPTIONS"
	}
	return string(m)
}

// Target is the request target in origin form ("/path?query"), as sent.
func (r *Request) Target() string { return string(r.cc.req.target) }

// Path is the target without its query, as sent (still percent-encoded).
func (r *Request) Path() string { return string(r.cc.req.path) }

// PathBytes is Path without a copy: the slice is the request's own, valid
// as long as the Request, and must not be modified.
func (r *Request) PathBytes() []byte { return r.cc.req.path }

// RawQuery is the target's query without '?', as sent; empty without one.
func (r *Request) RawQuery() string { return string(r.RawQueryBytes()) }

// RawQueryBytes is RawQuery without a copy, like PathBytes; nil without a
// query.
func (r *Request) RawQueryBytes() []byte {
	t, p := r.cc.req.target, r.cc.req.path
	if len(t) > len(p) {
		return t[len(p)+1:]
	}
	return nil
}

// Host is the request's host without its port.
func (r *Request) Host() string { return string(r.cc.req.host) }

// Header returns the value of the first header field called name (case
// insensitively), or "".
func (r *Request) Header(name string) string { return string(r.HeaderBytes(name)) }

// HeaderBytes is Header without a copy, like PathBytes; nil when no field
// is called name, empty but not nil for a field with an empty value.
func (r *Request) HeaderBytes(name string) []byte {
	for _, f := range r.cc.req.fields {
		if equalFoldBytes(f.name, name) {
			return f.value
		}
	}
	return nil
}

// AppendValues appends the values of every header field called name (case
// insensitively) to dst, in order and separated by sep, and returns the
// extended slice and how many fields there were.
func (r *Request) AppendValues(dst []byte, name string, sep byte) ([]byte, int) {
	n := 0
	for _, f := range r.cc.req.fields {
		if equalFoldBytes(f.name, name) {
			if n > 0 {
				dst = append(dst, sep)
			}
			dst = append(dst, f.value...)
			n++
		}
	}
	return dst, n
}

// Values returns the values of every header field called name (case
// insensitively), in order.
func (r *Request) Values(name string) []string {
	var vs []string
	for _, f := range r.cc.req.fields {
		if equalFoldBytes(f.name, name) {
			vs = append(vs, string(f.value))
		}
	}
	return vs
}

// ClientIP is the address of the connection's peer.
func (r *Request) ClientIP() netip.Addr {
	cc := r.cc
	if !cc.ipParsed {
		cc.ipAddr, _ = netip.ParseAddr(string(cc.ip))
		cc.ipAddr = cc.ipAddr.Unmap()
		cc.ipParsed = true
	}
	return cc.ipAddr
}

// ContentLength is the body's declared length: 0 without a body, -1 for a
// chunked body not read yet.
func (r *Request) ContentLength() int64 {
	q := &r.cc.req
	switch {
	case q.chunked:
		return -1
	case q.contentLength < 0:
		return 0
	}
	return q.contentLength
}

// Body reads the whole request body (answering "Expect: 100-continue"
// first) and returns it; the body is then sent to the server from memory,
// and an idempotent request may be retried on another server. A body over
// limit bytes (limit > 0) is not read: Body returns ErrBodyTooLarge, and the
// connection closes after the answer. The slice is valid as long as the
// Request.
func (r *Request) Body(limit int64) ([]byte, error) {
	cc := r.cc
	q := &cc.req
	if r.bodyRead {
		return cc.body, nil
	}
	if !q.chunked && q.contentLength <= 0 {
		r.bodyRead = true
		cc.body = cc.body[:0]
		return cc.body, nil
	}
	if limit > 0 && q.contentLength > limit {
		r.broken, r.tooLarge = true, true
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBodyTooLarge, q.contentLength, limit)
	}
	cc.continue100()
	if q.chunked || q.contentLength > int64(cc.br.Buffered()) {
		cc.conn.refreshRead(r.snap.readTimeout)
	}
	if !q.chunked {
		cc.body = append(cc.body[:0], make([]byte, q.contentLength)...)
		if _, err := io.ReadFull(cc.br, cc.body); err != nil {
			r.broken = true
			return nil, fmt.Errorf("lb: read request body: %w", err)
		}
	} else {
		cc.body = cc.body[:0]
		w := bufio.NewWriterSize(appender{&cc.body}, 4096)
		if limit <= 0 {
			limit = math.MaxInt64
		}
		err := copyChunked(w, cc.br, false, limit, ErrBodyTooLarge)
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			r.broken = true
			if errors.Is(err, ErrBodyTooLarge) {
				r.tooLarge = true
				return nil, fmt.Errorf("%w: limit %d", ErrBodyTooLarge, limit)
			}
			return nil, fmt.Errorf("lb: read request body: %w", err)
		}
		q.chunked = false
		r.addLength = true
	}
	q.contentLength = int64(len(cc.body))
	r.bodyRead = true
	return cc.body, nil
}

// extraField is a header field set by SetHeader; lower is its name in
// lower case. The three slices point into Request.extraBuf.
type extraField struct {
	field
	lower []byte
}

type appender struct{ b *[]byte }

func (a appender) Write(p []byte) (int, error) {
	*a.b = append(*a.b, p...)
	return len(p), nil
}

// Respond answers the request with status, header and body, instead of a
// server. Content-Length is set by the balancer; Connection and framing
// fields in header are ignored.
func (r *Request) Respond(status int, header http.Header, body []byte) {
	if !r.respondOK {
		panic("lb: Request.Respond called outside HandleRequest or its done function")
	}
	r.answered, r.status, r.header, r.body = true, status, header, body
}

// ForwardGroup sends the request to the named server group of the
// listener's config, instead of the one its rules choose.
func (r *Request) ForwardGroup(name string) error {
	g := r.snap.groups[name]
	if g == nil {
		return fmt.Errorf("%w: %q (listener %q)", ErrUnknownGroup, name, r.snap.name)
	}
	r.target = g
	return nil
}

// ForwardTo sends the request to addr ("host:port", plain HTTP/1.1), which
// need not be in the config. Such an address is a group of its own with the
// default settings, except that it has no health checks, is never taken
// down by passive failures (the hook decides when to stop sending to it)
// and is tried once. Its connections are pooled across requests and
// configs until the balancer closes.
func (r *Request) ForwardTo(addr string) error {
	g, err := r.cc.l.b.addrGroup(addr)
	if err != nil {
		return err
	}
	r.target = g
	return nil
}

// SetTimeout bounds waiting for the server's answer (the response head, and
// each read of its body) for this request, instead of the group's
// ResponseTimeout. Zero keeps the group's.
func (r *Request) SetTimeout(d time.Duration) { r.timeout = d }

// SetHeader sets a header field of the request as the server gets it,
// replacing any fields of that name. It refuses (returns false) the fields
// that frame or route the request: Host, Content-Length, Transfer-Encoding,
// Connection and other hop-by-hop fields, and names or values that are not
// valid in a header.
func (r *Request) SetHeader(name, value string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isToken(name[i]) {
			return false
		}
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	// Name, lower-case name and value go to extraBuf, which is reused, so
	// that setting a header does not allocate. A slice into an older array
	// stays valid when append moves the buffer.
	start := len(r.extraBuf)
	r.extraBuf = append(r.extraBuf, name...)
	r.extraBuf = append(r.extraBuf, name...)
	r.extraBuf = append(r.extraBuf, value...)
	b := r.extraBuf
	n := len(name)
	nameB := b[start : start+n : start+n]
	lower := b[start+n : start+2*n : start+2*n]
	valueB := b[start+2*n : start+2*n+len(value) : start+2*n+len(value)]
	for i, c := range lower {
		if 'A' <= c && c <= 'Z' {
			lower[i] = c + 'a' - 'A'
		}
	}
	if equalFold(lower, "host") || equalFold(lower, "content-length") || (&head{}).hopByHop(lower) {
		r.extraBuf = r.extraBuf[:start]
		return false
	}
	for i := range r.extra {
		if string(r.extra[i].lower) == string(lower) {
			r.extra[i].value = valueB
			return true
		}
	}
	r.extra = append(r.extra, extraField{field{nameB, valueB}, lower})
	return true
}

// overridden says whether SetHeader replaced the field called name.
func (r *Request) overridden(name []byte) bool {
	for i := range r.extra {
		if len(name) == len(r.extra[i].lower) && bytes.EqualFold(name, r.extra[i].lower) {
			return true
		}
	}
	return false
}

// finish calls the hook's done function once; Respond may be called in it
// when it reports a request no server answered.
func (r *Request) finish(o Outcome, respondable bool) {
	d := r.done
	if d == nil {
		return
	}
	r.done = nil
	r.respondOK = respondable
	d(o)
	r.respondOK = false
}

// serveHooked runs the hook for the parsed request and carries out its
// decision; it says whether the connection may carry another request.
func (cc *clientConn) serveHooked(snap *listenerSnap, h Hook) bool {
	r := &cc.hr
	*r = Request{cc: cc, snap: snap, extra: r.extra[:0], extraBuf: r.extraBuf[:0]}
	cc.lastStatus, cc.lastErr, cc.lastAnswered = 0, nil, false
	q := &cc.req
	hadBody := q.chunked || q.contentLength > 0
	r.respondOK = true
	r.done = h.HandleRequest(r)
	r.respondOK = false
	defer func() {
		r.finish(Outcome{Status: cc.lastStatus, Answered: cc.lastAnswered, Err: cc.lastErr}, false)
		*r = Request{extra: r.extra[:0], extraBuf: r.extraBuf[:0]}
	}()
	if r.answered {
		keep := (!hadBody || r.bodyRead) && !r.broken && !q.connClose && q.minor >= 1
		keep = cc.writeAnswer(keep)
		cc.linger = hadBody && !r.bodyRead
		cc.lastStatus = r.status
		return keep
	}
	if r.broken {
		// The hook could not read the body and did not answer.
		st := 400
		if r.tooLarge {
			st = 413
		}
		cc.writeError(st, false)
		cc.lastStatus = st
		return false
	}
	g := r.target
	if g == nil {
		g = snap.route(q.host, q.path, &cc.scratch)
	}
	if g == nil {
		keep := q.contentLength <= 0 && !q.chunked && !q.connClose
		cc.fail(404, keep, nil)
		return keep && !r.broken
	}
	return cc.forward(snap, g)
}

// fail answers a request that no server answered: with the hook's answer
// when its done function gives one, else with the balancer's own.
func (cc *clientConn) fail(status int, keep bool, err error) {
	cc.lastStatus, cc.lastErr = status, err
	if r := &cc.hr; r.done != nil {
		r.finish(Outcome{Status: status, Err: err}, true)
		if r.answered {
			cc.writeAnswer(keep)
			cc.lastStatus = r.status
			return
		}
	}
	cc.writeError(status, keep)
}

// writeAnswer writes the hook's answer and says whether the connection stays.
func (cc *clientConn) writeAnswer(keep bool) bool {
	r := &cc.hr
	keep = keep && !cc.l.closing.Load()
	w := cc.bw
	status := r.status
	if status < 100 || status > 999 {
		status = 500
	}
	w.WriteString("HTTP/1.1 ")
	w.WriteString(strconv.Itoa(status))
	w.WriteByte(' ')
	w.WriteString(http.StatusText(status))
	w.WriteString("\r\n")
	for name, vs := range r.header {
		if len(name) == 0 || equalFoldBytes([]byte(name), "content-length") || (&head{}).hopByHop([]byte(name)) {
			continue
		}
		for _, v := range vs {
			w.WriteString(name)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	w.WriteString("Content-Length: ")
	w.WriteString(strconv.Itoa(len(r.body)))
	if !keep {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	if string(cc.req.method) != "HEAD" {
		w.Write(r.body)
	}
	if err := w.Flush(); err != nil {
		return false
	}
	return keep
}

// responseTimeout is how long an attempt waits for g's server.
func (cc *clientConn) responseTimeout(g *group) time.Duration {
	if cc.hr.timeout > 0 {
		return cc.hr.timeout
	}
	return g.responseTimeout
}

// addrGroup returns the one-server group of a ForwardTo address, made on
// first use.
func (b *Balancer) addrGroup(addr string) (*group, error) {
	if g, ok := b.addrGroups.Load(addr); ok {
		return g.(*group), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("lb: forward to %q: want host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("lb: forward to %q: bad port", addr)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if g, ok := b.addrGroups.Load(addr); ok {
		return g.(*group), nil
	}
	g := newGroup(&ServerGroup{Name: "addr:" + addr, MaxAttempts: 1})
	g.passiveFall = math.MaxInt32
	g.members = []*member{{srv: newServer(b, g.name, addr, addr), weight: 1}}
	b.addrGroups.Store(addr, g)
	return g, nil
}

var _ io.Writer = appender{}

// Lingering close bounds: how long and how much of an unread request body
// is drained after a hook's answer before the connection closes.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 8 << 20
)

// lingerClose half-closes c after an answer that left the request body
// unread and discards what the client still sends, so that it sees the
// answer rather than a connection reset; the caller closes c.
func lingerClose(c net.Conn, br *bufio.Reader) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(lingerTime))
	br.Reset(c)
	io.CopyN(io.Discard, br, lingerBytes)
}
