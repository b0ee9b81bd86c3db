package lb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// This file parses HTTP/1.x heads strictly. Anything two parsers could read
// differently (the root of request smuggling) is refused rather than
// repaired: obs-fold, whitespace before a colon, bare CR, Content-Length
// together with Transfer-Encoding, differing Content-Lengths, codings other
// than chunked, malformed chunk sizes.

// httpError is a request the proxy refuses with status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return "lb: " + e.msg }

var (
	errBadRequest       = &httpError{400, "malformed request"}
	errObsFold          = &httpError{400, "obsolete header line folding"}
	errHeaderTooLarge   = &httpError{431, "request header too large"}
	errBadVersion       = &httpError{505, "unsupported HTTP version"}
	errBadContentLength = &httpError{400, "invalid Content-Length"}
	errCLAndTE          = &httpError{400, "both Content-Length and Transfer-Encoding"}
	errBadTE            = &httpError{501, "unsupported Transfer-Encoding"}
	errNoHost           = &httpError{400, "missing or repeated Host"}
	errBadExpect        = &httpError{417, "unsupported Expect"}
	errBodyTooLarge     = &httpError{413, "request body too large"}
	errBadChunk         = &httpError{400, "malformed chunked body"}
	errBadMethod        = &httpError{405, "method not supported"}

	// errBadResponse is a server answer the proxy cannot pass on safely.
	errBadResponse = errors.New("lb: malformed response from server")
)

// maxFields bounds the header fields of one head.
const maxFields = 200

type field struct {
	name, value []byte
}

// head is what requests and responses share: the raw head, copied out of the
// connection's reader so it stays valid while the body is read and the
// request retried, and the framing and connection facts found in it.
type head struct {
	raw    []byte
	fields []field
	minor  int // HTTP/1.minor

	contentLength int64 // -1 when absent
	chunked       bool
	connClose     bool
	connKeepAlive bool
	connUpgrade   bool
	upgrade       []byte
	connTokens    [][]byte // other names listed in Connection: hop-by-hop too
}

type request struct {
	head
	method      []byte
	target      []byte // origin-form, as sent upstream
	path        []byte // target without the query
	host        []byte // without port
	hasHost     bool
	expect100   bool
	idempotency bool // carries Idempotency-Key
}

type response struct {
	head
	status int
	reason []byte
}

func (h *head) reset() {
	h.fields = h.fields[:0]
	h.contentLength = -1
	h.chunked, h.connClose, h.connKeepAlive, h.connUpgrade = false, false, false, false
	h.upgrade = nil
	h.connTokens = h.connTokens[:0]
}

// readHead copies the next head (through its empty line) out of br into dst.
// A head longer than limit is refused with tooLarge.
func readHead(br *bufio.Reader, dst []byte, limit int, tooLarge error) ([]byte, error) {
	// Tolerate empty lines before a request line (RFC 9112 section 2.2).
	for i := 0; ; i++ {
		b, err := br.Peek(1)
		if err != nil {
			return nil, err
		}
		if (b[0] != '\r' && b[0] != '\n') || i >= 4 {
			break
		}
		br.Discard(1)
	}
	scanned := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		if end := headEnd(buf, scanned); end > 0 {
			if end > limit {
				return nil, tooLarge
			}
			dst = append(dst[:0], buf[:end]...)
			br.Discard(end)
			return dst, nil
		}
		if len(buf) >= limit || len(buf) >= br.Size() {
			return nil, tooLarge
		}
		scanned = len(buf)
		if _, err := br.Peek(len(buf) + 1); err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// headEnd returns the length of the head through its empty line, or 0.
func headEnd(buf []byte, from int) int {
	from = max(from-3, 0)
	for {
		i := bytes.IndexByte(buf[from:], '\n')
		if i < 0 {
			return 0
		}
		i += from
		switch {
		case i+1 < len(buf) && buf[i+1] == '\n':
			return i + 2
		case i+2 < len(buf) && buf[i+1] == '\r' && buf[i+2] == '\n':
			return i + 3
		}
		from = i + 1
	}
}

// nextLine splits the first line off b, without its CRLF or LF.
func nextLine(b []byte) (line, rest []byte, err error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, errBadRequest
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest, nil
}

// parseRequest parses r.raw.
func (r *request) parse() error {
	r.reset()
	r.expect100, r.idempotency = false, false
	r.host = nil
	line, rest, err := nextLine(r.raw)
	if err != nil {
		return err
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errBadRequest
	}
	r.method = line[:sp1]
	line = line[sp1+1:]
	sp2 := bytes.IndexByte(line, ' ')
	if sp2 <= 0 {
		return errBadRequest
	}
	r.target = line[:sp2]
	if r.minor, err = parseVersion(line[sp2+1:]); err != nil {
		return err
	}
	for _, c := range r.method {
		if !isToken(c) {
			return errBadRequest
		}
	}
	for _, c := range r.target {
		if c <= ' ' || c >= 0x7f {
			return errBadRequest
		}
	}
	if string(r.method) == "CONNECT" {
		return errBadMethod
	}
	if err := r.parseFields(rest); err != nil {
		return err
	}
	hosts := 0
	var host []byte
	for _, f := range r.fields {
		switch {
		case equalFold(f.name, "host"):
			hosts++
			host = f.value
		case equalFold(f.name, "expect"):
			if !equalFold(f.value, "100-continue") {
				return errBadExpect
			}
			r.expect100 = r.minor >= 1
		case equalFold(f.name, "idempotency-key"):
			r.idempotency = true
		}
	}
	if hosts > 1 || hosts == 0 && r.minor >= 1 {
		return errNoHost
	}
	r.hasHost = hosts == 1
	if r.chunked && r.minor == 0 {
		return errBadTE
	}
	switch {
	case len(r.target) > 0 && r.target[0] == '/':
	case string(r.target) == "*" && string(r.method) == "OPTIONS":
	default:
		// absolute-form: the authority replaces Host (RFC 9112 section 3.2.2).
		t := r.target
		switch {
		case len(t) > 7 && equalFold(t[:7], "http://"):
			t = t[7:]
		case len(t) > 8 && equalFold(t[:8], "https://"):
			t = t[8:]
		default:
			return errBadRequest
		}
		i := bytes.IndexAny(t, "/?")
		if i < 0 {
			host, r.target = t, slash
		} else {
			host, r.target = t[:i], t[i:]
			if r.target[0] == '?' {
				return errBadRequest
			}
		}
	}
	r.path = r.target
	if i := bytes.IndexByte(r.target, '?'); i >= 0 {
		r.path = r.target[:i]
	}
	r.host = stripPort(host)
	return nil
}

var slash = []byte("/")

func stripPort(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		if i := bytes.IndexByte(h, ']'); i > 0 {
			return h[:i+1]
		}
		return h
	}
	if i := bytes.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

func parseVersion(v []byte) (int, error) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return 0, errBadRequest
	}
	if v[5] != '1' {
		return 0, errBadVersion
	}
	return int(v[7] - '0'), nil
}

// parseResponse parses r.raw.
func (r *response) parse() error {
	r.reset()
	line, rest, err := nextLine(r.raw)
	if err != nil {
		return errBadResponse
	}
	// HTTP/1.1 200 OK; the reason may be empty and the space before it missing.
	if len(line) < 12 || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return errBadResponse
	}
	if r.minor, err = parseVersion(line[:8]); err != nil {
		return errBadResponse
	}
	s := line[9:12]
	if s[0] < '1' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' {
		return errBadResponse
	}
	r.status = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
	r.reason = nil
	if len(line) > 13 {
		r.reason = line[13:]
	}
	for _, c := range r.reason {
		if c < ' ' && c != '\t' || c == 0x7f {
			return errBadResponse
		}
	}
	if err := r.parseFields(rest); err != nil {
		return errBadResponse
	}
	return nil
}

// parseFields parses the header lines in b (everything after the start
// line) and the framing and connection headers among them.
func (h *head) parseFields(b []byte) error {
	var (
		line []byte
		err  error
	)
	for {
		if line, b, err = nextLine(b); err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errObsFold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errBadRequest
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range name {
			if !isToken(c) {
				return errBadRequest
			}
		}
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return errBadRequest
			}
		}
		if len(h.fields) == maxFields {
			return errHeaderTooLarge
		}
		h.fields = append(h.fields, field{name, value})
	}
	// Framing only once every line is known to be well-formed.
	for _, f := range h.fields {
		if err := h.framing(f.name, f.value); err != nil {
			return err
		}
	}
	if h.chunked && h.contentLength >= 0 {
		return errCLAndTE
	}
	return nil
}

func (h *head) framing(name, value []byte) error {
	switch {
	case equalFold(name, "content-length"):
		n, ok := parseContentLength(value)
		if !ok || h.contentLength >= 0 && h.contentLength != n {
			return errBadContentLength
		}
		h.contentLength = n
	case equalFold(name, "transfer-encoding"):
		// Only a single "chunked" is accepted: lists, other codings and
		// repeated headers are where parsers disagree.
		if h.chunked || !equalFold(value, "chunked") {
			return errBadTE
		}
		h.chunked = true
	case equalFold(name, "connection"):
		for len(value) > 0 {
			var tok []byte
			if i := bytes.IndexByte(value, ','); i >= 0 {
				tok, value = trimOWS(value[:i]), value[i+1:]
			} else {
				tok, value = trimOWS(value), nil
			}
			switch {
			case len(tok) == 0:
			case equalFold(tok, "close"):
				h.connClose = true
			case equalFold(tok, "keep-alive"):
				h.connKeepAlive = true
			case equalFold(tok, "upgrade"):
				h.connUpgrade = true
			default:
				h.connTokens = append(h.connTokens, tok)
			}
		}
	case equalFold(name, "upgrade"):
		h.upgrade = value
	}
	return nil
}

func parseContentLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hopByHop says whether a field must not be forwarded: the fixed
// hop-by-hop headers (RFC 9110 section 7.6.1, and those net/http/httputil
// drops) and every header named in Connection.
func (h *head) hopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		if equalFold(name, "te") {
			return true
		}
	case 7:
		if equalFold(name, "trailer") || equalFold(name, "upgrade") {
			return true
		}
	case 10:
		if equalFold(name, "connection") || equalFold(name, "keep-alive") {
			return true
		}
	case 16:
		if equalFold(name, "proxy-connection") {
			return true
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			return true
		}
	case 18:
		if equalFold(name, "proxy-authenticate") {
			return true
		}
	case 19:
		if equalFold(name, "proxy-authorization") {
			return true
		}
	}
	for _, t := range h.connTokens {
		// Connection may not remove the fields that frame or route the
		// message: dropping Content-Length would let the body be read as
		// the next request.
		if bytes.EqualFold(name, t) && !equalFold(name, "content-length") && !equalFold(name, "host") {
			return true
		}
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with lower, an ASCII lower-case string.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// isToken reports whether c may appear in a token (RFC 9110 section 5.6.2).
func isToken(c byte) bool {
	return c < 0x80 && tokenTable[c]
}

var tokenTable = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// readChunkSize reads a chunk-size line (with optional extensions) and
// returns the size. Line ends must be CRLF.
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull || err == io.EOF {
			return 0, errBadChunk
		}
		return 0, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, errBadChunk
	}
	line = line[:len(line)-2]
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, errBadChunk
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, errBadChunk
	}
	if i < len(line) {
		// chunk-ext: BWS ";" ...; its content is not interpreted, only checked
		// for characters that could end the line early elsewhere.
		rest := trimOWS(line[i:])
		if len(rest) == 0 || rest[0] != ';' {
			return 0, errBadChunk
		}
		for _, c := range rest {
			if c < ' ' && c != '\t' || c == 0x7f {
				return 0, errBadChunk
			}
		}
	}
	return n, nil
}
