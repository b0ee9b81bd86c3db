package lb

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http/httputil"
	"testing"
)

// FuzzParseRequest feeds untrusted bytes to the request parser. Whatever it
// accepts must come out of writeRequestHead as a head that parses again
// with the same method, target and framing: the server must read the same
// request boundaries as the balancer.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET http://h/p HTTP/1.1\r\nHost: x\r\nConnection: X-A, close\r\nX-A: 1\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"\r\nGET / HTTP/1.1\nHost: x\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		var r request
		raw, err := readHead(br, nil, 4096, errHeaderTooLarge)
		if err != nil {
			return
		}
		r.raw = raw
		if r.parse() != nil {
			return
		}
		cc := &clientConn{ip: []byte("192.0.2.1"), req: r}
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		cc.writeRequestHead(w, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80})
		w.Flush()
		var again request
		again.raw, err = readHead(bufio.NewReader(&out), nil, 1<<20, errHeaderTooLarge)
		if err != nil {
			t.Fatalf("forwarded head unreadable: %v\n%q", err, out.String())
		}
		if err := again.parse(); err != nil {
			t.Fatalf("forwarded head does not parse: %v\n%q", err, out.String())
		}
		if !bytes.Equal(again.method, r.method) || !bytes.Equal(again.target, r.target) ||
			again.contentLength != r.contentLength || again.chunked != r.chunked {
			t.Fatalf("forwarded head frames differently:\nin  %q\nout %q", raw, out.String())
		}
		for _, f := range again.fields {
			if r.hopByHop(f.name) && !equalFold(f.name, "transfer-encoding") && !equalFold(f.name, "host") {
				t.Fatalf("hop-by-hop %q forwarded", f.name)
			}
		}
	})
}

// FuzzChunked feeds untrusted bytes to the chunked body parser. What it
// accepts, re-chunked, must decode (by net/http's decoder) to the bytes it
// passes on de-chunked.
func FuzzChunked(f *testing.F) {
	for _, s := range []string{
		"3\r\nabc\r\n0\r\n\r\n",
		"a;ext=1\r\n0123456789\r\n0\r\nX-Trailer: v\r\n\r\n",
		"0\r\n\r\n",
		"ffffffffffffffff\r\n",
		"3\nabc\n0\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var plain, rechunked bytes.Buffer
		pw, rw := bufio.NewWriter(&plain), bufio.NewWriter(&rechunked)
		errPlain := copyChunked(pw, bufio.NewReader(bytes.NewReader(data)), false, 1<<20, errBodyTooLarge)
		errRe := copyChunked(rw, bufio.NewReader(bytes.NewReader(data)), true, 1<<20, errBodyTooLarge)
		pw.Flush()
		rw.Flush()
		if (errPlain == nil) != (errRe == nil) {
			t.Fatalf("plain and re-chunked copies disagree: %v, %v", errPlain, errRe)
		}
		if errRe != nil {
			return
		}
		decoded, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(rechunked.Bytes())))
		if err != nil {
			t.Fatalf("re-chunked body does not decode: %v\n%q", err, rechunked.Bytes())
		}
		if !bytes.Equal(decoded, plain.Bytes()) {
			t.Fatalf("decoded %q, passed on %q", decoded, plain.Bytes())
		}
	})
}
