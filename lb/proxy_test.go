package lb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawBackend serves each connection with handle, for answers net/http
// would not give.
func rawBackend(t testing.TB, handle func(c net.Conn, br *bufio.Reader)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// readRawHead reads one request head from br.
func readRawHead(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return b.String(), err
		}
		b.WriteString(line)
		if line == "\r\n" {
			return b.String(), nil
		}
	}
}

func TestRequestSmugglingIsRefused(t *testing.T) {
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	b := newBalancer(t, Options{})
	cfg := config(t, be.server(Working))
	cfg.Listeners[0].MaxHeaderBytes = 1024
	cfg.Listeners[0].MaxBodyBytes = 100
	apply(t, b, cfg)

	tests := []struct {
		name, req, status string
	}{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", "400"},
		{"differing CLs", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "400"},
		{"CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", "400"},
		{"CL with sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", "400"},
		{"CL hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello", "400"},
		{"TE not chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
		{"TE list", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "501"},
		{"TE twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "501"},
		{"TE lookalike", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", "501"},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "501"},
		{"space before colon", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", "400"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", "400"},
		{"obs-fold of TE", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", "400"},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", "400"},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", "400"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", "400"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"},
		{"bad request line", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"HTTP/2.0 line", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", "505"},
		{"CONNECT", "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", "405"},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", "400"},
		{"negative chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", "400"},
		{"overflowing chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n", "400"},
		{"chunk size with LF only", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", "400"},
		{"chunk without CRLF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", "400"},
		{"header too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000) + "\r\n\r\n", "431"},
		{"body too large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + strings.Repeat("a", 101), "413"},
		{"chunked body too large", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n" + strings.Repeat("a", 101) + "\r\n0\r\n\r\n", "413"},
		{"unknown Expect", "GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", "417"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rawExchange(t, addr(cfg, 0), tt.req)
			if !strings.HasPrefix(got, "HTTP/1.1 "+tt.status+" ") {
				t.Fatalf("got %q, want status %s", got, tt.status)
			}
			if strings.Count(got, "HTTP/1.1 ") != 1 {
				t.Fatalf("more than one answer (smuggled request?): %q", got)
			}
		})
	}
	if n := be.hits.Load(); n > 3 {
		// Only the streamed chunked bodies (bad chunk cases) reach the server,
		// and never as a complete request.
		t.Errorf("backend served %d requests", n)
	}
}

func TestConnectionCannotDropFraming(t *testing.T) {
	var paths []string
	var mu sync.Mutex
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
	})
	b := newBalancer(t, Options{})
	cfg := config(t, be.server(Working))
	apply(t, b, cfg)
	smuggled := "GET /s HTTP/1.1\r\nHost: x\r\n\r\n"
	resp := rawExchange(t, addr(cfg, 0), "POST /p HTTP/1.1\r\nHost: x\r\nConnection: Content-Length, Host, close\r\n"+
		"Content-Length: "+strconv.Itoa(len(smuggled))+"\r\n\r\n"+smuggled)
	if !strings.HasPrefix(resp, "HTTP/1.1 200 ") {
		t.Fatalf("got %q", resp)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/p" {
		t.Errorf("server saw %v, want only /p", paths)
	}
}

func TestBodiesAndFraming(t *testing.T) {
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/stream" {
			// No Content-Length: net/http answers chunked.
			for i := 0; i < 3; i++ {
				io.WriteString(w, "part ")
				w.(http.Flusher).Flush()
			}
			return
		}
		w.Write(bytes.ToUpper(body))
	})
	b := newBalancer(t, Options{})
	cfg := config(t, be.server(Working))
	apply(t, b, cfg)

	c := &http.Client{}
	resp, err := c.Post(url(cfg, 0, "/echo"), "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "HELLO" {
		t.Errorf("Content-Length body: got %q", got)
	}
	// A chunked request body (unknown length) and a chunked response.
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("chunk one "))
		pw.Write([]byte("chunk two"))
		pw.Close()
	}()
	resp, err = c.Post(url(cfg, 0, "/echo"), "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "CHUNK ONE CHUNK TWO" {
		t.Errorf("chunked body: got %q", got)
	}
	_, body, err := get(c, url(cfg, 0, "/stream"))
	if err != nil || body != "part part part " {
		t.Errorf("chunked response: %q, %v", body, err)
	}
	// HTTP/1.0 client of a chunked response: plain body, then close.
	raw := rawExchange(t, addr(cfg, 0), "GET /stream HTTP/1.0\r\n\r\n")
	if !strings.HasSuffix(raw, "\r\n\r\npart part part ") || strings.Contains(raw, "chunked") {
		t.Errorf("HTTP/1.0 answer: %q", raw)
	}
	// Expect: 100-continue is answered by the balancer.
	raw = rawExchange(t, addr(cfg, 0), "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab")
	if !strings.HasPrefix(raw, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n") || !strings.HasSuffix(raw, "AB") {
		t.Errorf("Expect: 100-continue: %q", raw)
	}
	// Pipelined requests on one connection are answered in order.
	raw = rawExchange(t, addr(cfg, 0), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\naPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nb")
	if strings.Count(raw, "200 OK") != 2 || strings.Index(raw, "\r\n\r\nA") > strings.Index(raw, "\r\n\r\nB") {
		t.Errorf("pipelined: %q", raw)
	}
}

func TestHopByHopHeaders(t *testing.T) {
	got := make(chan string, 1)
	port := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		h, _ := readRawHead(br)
		got <- h
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\n\r\nok")
	})
	b := newBalancer(t, Options{})
	cfg := config(t, Server{Address: "127.0.0.1", Port: port, Weight: 1})
	apply(t, b, cfg)
	resp := rawExchange(t, addr(cfg, 0), "GET /x?q=1 HTTP/1.1\r\nHost: example.com\r\n"+
		"Connection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nProxy-Authorization: basic x\r\n"+
		"TE: trailers\r\nUpgrade: foo\r\nX-Forwarded-For: 10.1.1.1\r\nX-Forwarded-Proto: https\r\nX-Other: kept\r\n\r\n")
	up := <-got
	for _, h := range []string{"X-Secret", "Keep-Alive", "Proxy-Authorization", "Te:", "Upgrade", "Connection"} {
		if strings.Contains(up, h) {
			t.Errorf("%s reached the server:\n%s", h, up)
		}
	}
	for _, h := range []string{"GET /x?q=1 HTTP/1.1\r\n", "Host: example.com\r\n", "X-Other: kept\r\n",
		"X-Forwarded-For: 10.1.1.1, 127.0.0.1\r\n", "X-Forwarded-Proto: http\r\n"} {
		if !strings.Contains(up, h) {
			t.Errorf("server did not get %q:\n%s", h, up)
		}
	}
	if strings.Contains(resp, "X-Internal") || strings.Contains(resp, "Keep-Alive") || !strings.Contains(resp, "X-Kept: yes") {
		t.Errorf("response hop-by-hop headers not handled:\n%s", resp)
	}
}

func TestTimeoutsBoundSlowPeers(t *testing.T) {
	silent := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		readRawHead(br)
		time.Sleep(5 * time.Second) // accepts, reads, never answers
	})
	b := newBalancer(t, Options{})
	cfg := config(t, Server{Address: "127.0.0.1", Port: silent, Weight: 1})
	cfg.Listeners[0].ReadTimeout = Duration(300 * time.Millisecond)
	cfg.Listeners[0].IdleTimeout = Duration(300 * time.Millisecond)
	cfg.Groups[0].ResponseTimeout = Duration(300 * time.Millisecond)
	apply(t, b, cfg)

	t.Run("server never answers", func(t *testing.T) {
		start := time.Now()
		resp := rawExchange(t, addr(cfg, 0), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if !strings.HasPrefix(resp, "HTTP/1.1 504 ") {
			t.Errorf("got %q, want 504", resp)
		}
		// Three attempts on the one server, each bounded.
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %s", d)
		}
	})
	t.Run("slowloris", func(t *testing.T) {
		c, err := net.Dial("tcp", addr(cfg, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		io.WriteString(c, "GET / HTTP/1.1\r\n")
		closed := make(chan string)
		go func() {
			b, _ := io.ReadAll(c)
			closed <- string(b)
		}()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case resp := <-closed:
				if !strings.HasPrefix(resp, "HTTP/1.1 408 ") {
					t.Errorf("got %q, want 408", resp)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("slow client held the connection %s", d)
				}
				return
			case <-tick.C:
				io.WriteString(c, "X")
			}
		}
	})
	t.Run("idle connection", func(t *testing.T) {
		c, err := net.Dial("tcp", addr(cfg, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		start := time.Now()
		n, err := c.Read(make([]byte, 1))
		if n != 0 || err == nil || time.Since(start) > time.Second {
			t.Errorf("idle connection: read %d, %v after %s", n, err, time.Since(start))
		}
	})
}

func TestPanicInRequestIsContained(t *testing.T) {
	be := newBackend(t, "be", nil)
	b := newBalancer(t, Options{})
	b.testHook = func(r *request) {
		if string(r.path) == "/panic" {
			panic("boom")
		}
	}
	cfg := config(t, be.server(Working))
	apply(t, b, cfg)
	c := &http.Client{}
	if _, _, err := get(c, url(cfg, 0, "/panic")); err == nil {
		t.Error("the panicking request got an answer")
	}
	if code, body, err := get(c, url(cfg, 0, "/fine")); err != nil || code != 200 || body != "be" {
		t.Errorf("after a panic: %d %q %v", code, body, err)
	}
}

func TestUpgradeIsTunnelled(t *testing.T) {
	port := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		h, _ := readRawHead(br)
		if !strings.Contains(h, "Upgrade: websocket") || !strings.Contains(h, "Connection: Upgrade") {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, br) // echo
	})
	b := newBalancer(t, Options{})
	cfg := config(t, Server{Address: "127.0.0.1", Port: port, Weight: 1})
	apply(t, b, cfg)
	c, err := net.Dial("tcp", addr(cfg, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	h, err := readRawHead(br)
	if err != nil || !strings.HasPrefix(h, "HTTP/1.1 101 ") {
		t.Fatalf("upgrade answer %q, %v", h, err)
	}
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through the tunnel: %q, %v", buf, err)
	}
}

func TestRetryOnlyIdempotent(t *testing.T) {
	var posts atomic.Int64
	// A server that takes requests and drops the connection without answering.
	dropper := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		h, _ := readRawHead(br)
		if strings.HasPrefix(h, "POST") {
			posts.Add(1)
		}
	})
	good := newBackend(t, "good", nil)
	b := newBalancer(t, Options{})
	cfg := config(t, Server{Name: "dropper", Address: "127.0.0.1", Port: dropper, Weight: 1}, good.server(Working))
	cfg.Groups[0].PassiveFall = 1000
	apply(t, b, cfg)
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 4; i++ {
		if code, body, err := get(c, url(cfg, 0, "/")); err != nil || code != 200 || body != "good" {
			t.Fatalf("GET %d: %d %q %v", i, code, body, err)
		}
	}
	fails := 0
	for i := 0; i < 4; i++ {
		resp, err := c.Post(url(cfg, 0, "/"), "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 502 {
			fails++
		}
	}
	if fails != 2 || posts.Load() != 2 {
		t.Errorf("POSTs: %d failed, dropper saw %d; want 2 and 2 (no retry of a non-idempotent request)", fails, posts.Load())
	}
	// Marked idempotent: retried.
	for i := 0; i < 4; i++ {
		req, _ := http.NewRequestWithContext(context.Background(), "POST", url(cfg, 0, "/"), strings.NewReader("x"))
		req.Header.Set("Idempotency-Key", "k")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("POST with Idempotency-Key: %d", resp.StatusCode)
		}
	}
}

func TestMalformedServerAnswersAre502(t *testing.T) {
	tests := []struct{ name, answer string }{
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{"bad status line", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n"},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n"},
		{"101 without upgrade", "HTTP/1.1 101 Switching Protocols\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
				readRawHead(br)
				io.WriteString(c, tt.answer)
			})
			b := newBalancer(t, Options{})
			cfg := config(t, Server{Address: "127.0.0.1", Port: port, Weight: 1})
			apply(t, b, cfg)
			if got := rawExchange(t, addr(cfg, 0), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 502 ") {
				t.Errorf("got %q, want 502", got)
			}
		})
	}
}

func TestAbsoluteFormTarget(t *testing.T) {
	got := make(chan string, 1)
	port := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		h, _ := readRawHead(br)
		got <- h
		io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
	})
	b := newBalancer(t, Options{})
	cfg := config(t, Server{Address: "127.0.0.1", Port: port, Weight: 1})
	apply(t, b, cfg)
	resp := rawExchange(t, addr(cfg, 0), "GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 204 ") {
		t.Fatalf("got %q", resp)
	}
	if h := <-got; !strings.HasPrefix(h, "GET /a/b?c=d HTTP/1.1\r\n") {
		t.Errorf("server got %q, want origin-form", h)
	}
}

// TestRequestsArrivingAnyHow: requests are served whole or in pieces, with
// bodies that arrive later, after blank lines, and pipelined while the
// server is still answering the one before (serveInPoller must not miss
// bytes that came while it served).
func TestRequestsArrivingAnyHow(t *testing.T) {
	port := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			h, err := readRawHead(br)
			if err != nil {
				return
			}
			var body []byte
			if i := strings.Index(h, "Content-Length: "); i >= 0 {
				n, _ := strconv.Atoi(h[i+16 : i+16+strings.Index(h[i+16:], "\r")])
				body = make([]byte, n)
				if _, err := io.ReadFull(br, body); err != nil {
					return
				}
			}
			if strings.HasPrefix(h, "GET /slow ") {
				time.Sleep(100 * time.Millisecond)
			}
			path := strings.Fields(h)[1]
			answer := path + ":" + string(body)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(answer), answer)
		}
	})
	b := newBalancer(t, Options{})
	cfg := config(t, Server{Address: "127.0.0.1", Port: port, Weight: 1})
	apply(t, b, cfg)

	// exchange sends the pieces with a pause between them and reads until
	// want answers came or a second passed, far below the idle timeout.
	exchange := func(pieces []string, answers int) string {
		t.Helper()
		c, err := net.Dial("tcp", addr(cfg, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, p := range pieces {
			if _, err := io.WriteString(c, p); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		var got []byte
		buf := make([]byte, 4096)
		for strings.Count(string(got), "200 OK") < answers {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		return string(got)
	}
	for _, tc := range []struct {
		name   string
		pieces []string
		want   []string // answer bodies, in order
	}{
		{"whole", []string{"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"}, []string{"/a:"}},
		{"head in pieces", []string{"GET /a HT", "TP/1.1\r\nHo", "st: x\r\n", "\r\n"}, []string{"/a:"}},
		{"body later", []string{"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", "he", "llo"}, []string{"/p:hello"}},
		{"blank lines first", []string{"\r\n\r\n", "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"}, []string{"/b:"}},
		{"one after another", []string{"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n", "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
			"POST /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz"}, []string{"/1:", "/2:", "/3:z"}},
		{"pipelined in one write", []string{"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"}, []string{"/1:", "/2:"}},
		{"pipelined while answering", []string{"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", "GET /after HTTP/1.1\r\nHost: x\r\n\r\n"},
			[]string{"/slow:", "/after:"}},
		{"second half while answering", []string{"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /aft", "er HTTP/1.1\r\nHost: x\r\n\r\n"},
			[]string{"/slow:", "/after:"}},
	} {
		got := exchange(tc.pieces, len(tc.want))
		at := 0
		for _, w := range tc.want {
			i := strings.Index(got[at:], "\r\n\r\n"+w)
			if i < 0 {
				t.Errorf("%s: no answer %q in order in %q", tc.name, w, got)
				break
			}
			at += i + 4
		}
	}
}

// TestHalfCloseIsSeen: a client that sends a request and half-closes gets
// its answer and then the end of the connection, soon, not after the idle
// timeout, even when the half-close arrives together with the request.
func TestHalfCloseIsSeen(t *testing.T) {
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	b := newBalancer(t, Options{})
	cfg := config(t, be.server(Working))
	apply(t, b, cfg)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr(cfg, 0))
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil || !strings.HasPrefix(string(got), "HTTP/1.1 200 OK\r\n") {
				t.Errorf("got %q, %v", got, err)
			}
		}()
	}
	wg.Wait()
}
