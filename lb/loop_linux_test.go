package lb

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The event loops' tests: each checks that a loop served the requests
// (countLoopRequests, loopServed), so that a change that sends everything
// to the goroutine path fails them rather than passing on the slower path.

// countLoopRequests counts the requests of b that an event loop serves.
func countLoopRequests(b *Balancer) *atomic.Int64 {
	var n atomic.Int64
	b.testHook = func(*request) {
		pc := make([]uintptr, 8)
		frames := runtime.CallersFrames(pc[:runtime.Callers(2, pc)])
		for {
			f, more := frames.Next()
			if strings.Contains(f.Function, "(*loopConn).serveRequest") {
				n.Add(1)
				return
			}
			if !more {
				return
			}
		}
	}
	return &n
}

// loopServed counts the open client connections of b that a loop serves.
func loopServed(b *Balancer) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, l := range b.listeners {
		l.mu.Lock()
		for c := range l.conns {
			if c.sock != nil {
				n++
			}
		}
		l.mu.Unlock()
	}
	return n
}

// rawEchoBackend answers every request with the request as it arrived (head
// and body) as its body; some paths answer otherwise, to take the loop off
// its fast path: /routed/big (a body larger than the loop's buffer),
// /routed/chunked, /routed/slow-body (the body a moment after the head),
// /routed/204, /routed/500, /routed/close (Connection: close).
func rawEchoBackend(t testing.TB) int {
	return rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			h, err := readRawHead(br)
			if err != nil {
				return
			}
			var body []byte
			if i := strings.Index(strings.ToLower(h), "content-length: "); i >= 0 {
				n, _ := strconv.Atoi(strings.TrimSpace(h[i+16 : i+16+strings.IndexByte(h[i+16:], '\r')]))
				body = make([]byte, n)
				if _, err := io.ReadFull(br, body); err != nil {
					return
				}
			}
			echo := h + string(body)
			if strings.HasPrefix(h, "HEAD ") {
				echo = ""
			}
			path := strings.TrimPrefix(strings.Fields(h)[1], "/routed")
			var resp string
			switch path {
			case "/big":
				resp = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("b", 100000)
			case "/chunked":
				resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
			case "/204":
				resp = "HTTP/1.1 204 No Content\r\n\r\n"
			case "/500":
				resp = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"
			case "/close":
				resp = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(echo)) + "\r\n\r\n" + echo
			case "/slow-body":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(echo))+"\r\n\r\n")
				time.Sleep(50 * time.Millisecond)
				resp = echo
			default:
				resp = "HTTP/1.1 200 OK\r\nX-Hop: x\r\nConnection: X-Hop\r\nContent-Length: " + strconv.Itoa(len(echo)) + "\r\n\r\n" + echo
			}
			if _, err := io.WriteString(c, resp); err != nil || path == "/close" {
				return
			}
		}
	})
}

// exchangeAll writes req on a new connection to addr, in parts split at
// "|" a moment apart, half-closes once an answer came, and reads
// everything until the balancer closes.
func exchangeAll(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, part := range strings.Split(req, "|") {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := io.WriteString(c, part); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	first := make([]byte, 1)
	if _, err := io.ReadFull(c, first); err != nil {
		t.Fatalf("%.200q: no answer: %v", req, err)
	}
	c.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("%.200q: %v", req, err)
	}
	return string(first) + string(rest)
}

// TestLoopAnswersAsGoroutinePath sends the same requests through a balancer
// with event loops and one without, and wants the same bytes back: the
// loop runs the goroutine path's rules (framing, hop-by-hop fields,
// X-Forwarded-For, keep-alive, errors) or hands the connection over.
func TestLoopAnswersAsGoroutinePath(t *testing.T) {
	port := rawEchoBackend(t)
	srv := Server{Name: "echo", Address: "127.0.0.1", Port: port, Weight: 1}
	loopB := newBalancer(t, Options{})
	loopCfg := config(t, srv)
	loopCfg.Listeners[0].DefaultGroup = ""
	loopCfg.Listeners[0].Rules = []Rule{{PathPrefix: "/routed", Group: "g"}}
	loopCfg.Listeners[0].MaxBodyBytes = 1000
	loopCfg.Listeners[0].MaxHeaderBytes = 4096
	apply(t, loopB, loopCfg)
	inLoop := countLoopRequests(loopB)
	goB := newBalancer(t, Options{})
	goB.noLoops = true
	goCfg := loopCfg
	goCfg.Listeners = []Listener{loopCfg.Listeners[0]}
	goCfg.Listeners[0].Port = freePort(t)
	apply(t, goB, goCfg)

	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }
	tests := []struct {
		name, req string
		loop      bool // the loop serves it, at least up to its first answer
	}{
		{"get", get("/routed"), true},
		{"no route", get("/elsewhere"), true},
		{"head", "HEAD /routed HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"post", "POST /routed HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", true},
		{"post in two parts", "POST /routed HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel|lo", true},
		{"head in two parts", "GET /routed HTTP/1.1\r\nHo|st: x\r\n\r\n", true},
		{"hop-by-hop and forwarded fields", "GET /routed HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nX-Forwarded-For: 10.0.0.1\r\nKeep-Alive: 5\r\n\r\n", true},
		{"http/1.0", "GET /routed HTTP/1.0\r\nHost: x\r\n\r\n", true},
		{"expect", "POST /routed HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n|hello", false},
		{"expect with body", "PUT /routed HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", true},
		{"http/1.0 keep-alive", "GET /routed HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n" + get("/routed"), true},
		{"pipelined", get("/routed") + get("/routed?2") + "POST /routed HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab" + get("/routed?4"), true},
		{"connection close", "GET /routed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + get("/routed"), true},
		{"server closes", get("/routed/close") + get("/routed"), true},
		{"no content", get("/routed/204") + get("/routed"), true},
		{"server error", get("/routed/500") + get("/routed"), true},
		{"large answer handed over", get("/routed/big") + get("/routed"), true},
		{"chunked answer handed over", get("/routed/chunked") + get("/routed"), true},
		{"slow answer body", get("/routed/slow-body") + get("/routed"), true},
		{"chunked request handed over", "POST /routed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get("/routed"), false},
		{"body too large", "POST /routed HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", false},
		{"smuggling", "POST /routed HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"header too large", "GET /routed HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\n\r\n", false},
		{"blank lines first", "\r\n\r\n" + get("/routed"), true},
		{"bad content length", "POST /routed HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", false},
		{"obs-fold", "GET /routed HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", false},
		{"no host", "GET /routed HTTP/1.1\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := exchangeAll(t, addr(goCfg, 0), tt.req)
			before := inLoop.Load()
			got := exchangeAll(t, addr(loopCfg, 0), tt.req)
			if got != want {
				t.Errorf("loop answered\n%.400q\ngoroutine path answered\n%.400q", got, want)
			}
			if served := inLoop.Load() > before; served != tt.loop {
				t.Errorf("served by an event loop: %v, want %v", served, tt.loop)
			}
		})
	}
}

// TestLoopPipelining: many connections, each sending many requests in one
// write, get every answer, in order.
func TestLoopPipelining(t *testing.T) {
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.RawQuery) })
	b := newBalancer(t, Options{})
	cfg := config(t, be.server(Working))
	apply(t, b, cfg)
	const conns, reqs = 50, 20
	var wg sync.WaitGroup
	var served atomic.Int64
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr(cfg, 0))
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			var sb strings.Builder
			for j := range reqs {
				fmt.Fprintf(&sb, "GET /?%d-%d HTTP/1.1\r\nHost: x\r\n\r\n", i, j)
			}
			io.WriteString(c, sb.String())
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)
			for j := range reqs {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Errorf("conn %d answer %d: %v", i, j, err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				if want := fmt.Sprintf("%d-%d", i, j); resp.StatusCode != 200 || string(body) != want {
					t.Errorf("conn %d answer %d: %d %q, want %q", i, j, resp.StatusCode, body, want)
				}
				if j == 0 && loopServed(b) > 0 {
					served.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if served.Load() == 0 {
		t.Error("no connection was served by an event loop")
	}
}

// TestLoopServerKilledUnderLoad: a server killed while keep-alive
// connections carry requests to it through the loops costs no client an
// error: idempotent requests that got no answer go to the other server.
func TestLoopServerKilledUnderLoad(t *testing.T) {
	a := newBackend(t, "a", nil)
	c := newBackend(t, "c", nil)
	b := newBalancer(t, Options{})
	cfg := config(t, a.server(Working), c.server(Working))
	apply(t, b, cfg)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed, served atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _, err := get(client, url(cfg, 0, "/"))
				if err != nil || code != 200 {
					failed.Add(1)
					t.Errorf("%d %v", code, err)
					continue
				}
				ok.Add(1)
				if loopServed(b) > 0 {
					served.Add(1)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	a.CloseClientConnections()
	a.Listener.Close()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Errorf("%d requests answered, %d failed", ok.Load(), failed.Load())
	}
	if served.Load() == 0 {
		t.Error("no request was served by an event loop")
	}
	if st := serverState(b, "g", "a"); st != StateDown {
		t.Errorf("killed server is %s", st)
	}
}

// TestLoopTimeouts: on the loop, a server that does not answer gets 504, a
// head or body that does not arrive 408, an idle connection is closed, and
// a client that does not read its answers is cut off.
func TestLoopTimeouts(t *testing.T) {
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(time.Second)
		}
		w.Header().Set("Content-Length", "10000")
		io.WriteString(w, strings.Repeat("x", 10000))
	})
	b := newBalancer(t, Options{})
	cfg := config(t, be.server(Working))
	cfg.Listeners[0].IdleTimeout = Duration(300 * time.Millisecond)
	cfg.Listeners[0].ReadTimeout = Duration(300 * time.Millisecond)
	cfg.Listeners[0].WriteTimeout = Duration(300 * time.Millisecond)
	cfg.Groups[0].ResponseTimeout = Duration(200 * time.Millisecond)
	cfg.Groups[0].PassiveFall = 1000
	apply(t, b, cfg)

	// open returns a connection the loop serves.
	open := func(t *testing.T) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr(cfg, 0))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		br := bufio.NewReader(c)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if loopServed(b) == 0 {
			t.Fatal("not served by an event loop")
		}
		return c, br
	}
	status := func(t *testing.T, br *bufio.Reader) int {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	// Timeouts of 200 ms; the bound leaves room for a loaded machine, and
	// stays below the 3 s read deadline a hang would run into.
	within := func(t *testing.T, start time.Time, d time.Duration) {
		if took := time.Since(start); took > d {
			t.Errorf("took %s, want at most %s", took, d)
		}
	}

	t.Run("response", func(t *testing.T) {
		c, br := open(t)
		start := time.Now()
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		if st := status(t, br); st != 504 {
			t.Errorf("status %d, want 504", st)
		}
		within(t, start, 2*time.Second)
	})
	t.Run("head", func(t *testing.T) {
		c, br := open(t)
		start := time.Now()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost:")
		if st := status(t, br); st != 408 {
			t.Errorf("status %d, want 408", st)
		}
		within(t, start, 2*time.Second)
	})
	t.Run("body", func(t *testing.T) {
		c, br := open(t)
		start := time.Now()
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
		if st := status(t, br); st != 408 {
			t.Errorf("status %d, want 408", st)
		}
		within(t, start, 2*time.Second)
	})
	t.Run("idle", func(t *testing.T) {
		c, br := open(t)
		start := time.Now()
		if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Errorf("idle connection: read %d, %v", n, err)
		}
		within(t, start, 2*time.Second)
		c.Close()
	})
	t.Run("write", func(t *testing.T) {
		c, _ := open(t)
		c.(*net.TCPConn).SetReadBuffer(4096)
		// Many answers nobody reads: they fill the socket's buffers, and
		// the one that waits longer than WriteTimeout ends the connection.
		req := strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 2000)
		go io.WriteString(c, req)
		waitFor(t, 5*time.Second, "the connection to be cut", func() bool { return b.Status().Listeners[0].Conns == 0 })
	})
}

// TestLoopManyNewConnections: connections that arrive together are all
// handed to the loops and served.
func TestLoopManyNewConnections(t *testing.T) {
	be := newBackend(t, "be", nil)
	b := newBalancer(t, Options{})
	inLoop := countLoopRequests(b)
	cfg := config(t, be.server(Working))
	apply(t, b, cfg)
	for wave := range 5 {
		var wg sync.WaitGroup
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := rawExchange(t, addr(cfg, 0), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") {
					t.Errorf("wave %d: got %q", wave, got)
				}
			}()
		}
		wg.Wait()
	}
	if n := inLoop.Load(); n != 1000 {
		t.Errorf("%d of 1000 requests served by an event loop", n)
	}
}

// TestLoopPostIsNeverLost: work posted to a loop from many goroutines at
// once all runs; a wakeup lost between the loop and a poster would leave
// it, and every later post, waiting.
func TestLoopPostIsNeverLost(t *testing.T) {
	b := newBalancer(t, Options{})
	lp, err := newLoop(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lp.shut()
	const posters, posts = 8, 5000
	var ran atomic.Int64
	var wg sync.WaitGroup
	for range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range posts {
				lp.post(func() { ran.Add(1) })
			}
		}()
	}
	wg.Wait()
	waitFor(t, 5*time.Second, "every post to run", func() bool { return ran.Load() == posters*posts })
}
