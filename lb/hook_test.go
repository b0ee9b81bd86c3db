package lb

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookRecorder is a Hook driven by a test function, recording outcomes.
type hookRecorder struct {
	decide func(r *Request)
	onDone func(r *Request, o Outcome)

	mu       sync.Mutex
	outcomes []Outcome
}

// set replaces the hook's functions between requests.
func (h *hookRecorder) set(decide func(*Request), onDone func(*Request, Outcome)) {
	h.mu.Lock()
	h.decide, h.onDone = decide, onDone
	h.mu.Unlock()
}

func (h *hookRecorder) HandleRequest(r *Request) func(Outcome) {
	h.mu.Lock()
	decide, onDone := h.decide, h.onDone
	h.mu.Unlock()
	if decide != nil {
		decide(r)
	}
	return func(o Outcome) {
		if onDone != nil {
			onDone(r, o)
		}
		h.mu.Lock()
		h.outcomes = append(h.outcomes, o)
		h.mu.Unlock()
	}
}

func (h *hookRecorder) last(t *testing.T) Outcome {
	t.Helper()
	var o Outcome
	waitFor(t, time.Second, "an outcome", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.outcomes) == 0 {
			return false
		}
		o = h.outcomes[len(h.outcomes)-1]
		return true
	})
	return o
}

// echoBackend answers with what it got: method, path, selected headers and body.
func echoBackend(t *testing.T, name string) *backend {
	return newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, name+" "+r.Method+" "+r.URL.RequestURI()+" x-consumer="+r.Header.Get("X-Consumer")+
			" cl="+strconv.FormatInt(r.ContentLength, 10)+" body="+string(body))
	})
}

func TestHook(t *testing.T) {
	a := echoBackend(t, "a")
	other := echoBackend(t, "other")
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "late")
	})
	h := &hookRecorder{}
	b := newBalancer(t, Options{Hook: h})
	cfg := config(t, a.server(Working))
	cfg.Groups = append(cfg.Groups, ServerGroup{Name: "other", Servers: []Server{other.server(Working)}})
	apply(t, b, cfg)
	client := &http.Client{Timeout: 5 * time.Second}
	post := func(path, body string) (int, string, http.Header) {
		t.Helper()
		resp, err := client.Post(url(cfg, 0, path), "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(got), resp.Header
	}

	t.Run("pass", func(t *testing.T) {
		var seen string
		h.set(func(r *Request) {
			seen = r.Listener() + " " + r.Method() + " " + r.Path() + " " + r.RawQuery() + " " + r.Header("content-type") + " " + r.ClientIP().String()
		}, nil)
		st, body, _ := post("/p?x=1", "hi")
		if st != 200 || body != "a POST /p?x=1 x-consumer= cl=2 body=hi" {
			t.Fatalf("got %d %q", st, body)
		}
		if seen != "web POST /p x=1 text/plain 127.0.0.1" {
			t.Fatalf("hook saw %q", seen)
		}
		if o := h.last(t); o.Status != 200 || !o.Answered || o.Err != nil {
			t.Fatalf("outcome %+v", o)
		}
	})
	t.Run("respond", func(t *testing.T) {
		h.set(func(r *Request) {
			r.Respond(403, http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r1"}}, []byte(`{"error":"no"}`))
		}, nil)
		for i := 0; i < 3; i++ { // the connection stays usable
			st, body, hdr := post("/p", "unread body")
			if st != 403 || body != `{"error":"no"}` || hdr.Get("X-Request-Id") != "r1" {
				t.Fatalf("got %d %q %v", st, body, hdr)
			}
		}
		if o := h.last(t); o.Status != 403 || o.Answered {
			t.Fatalf("outcome %+v", o)
		}
		// A large unread body: the client, still sending, gets the answer
		// (lingering close), not a reset.
		for i := 0; i < 5; i++ {
			if st, _, _ := post("/p", strings.Repeat("x", 4<<20)); st != 403 {
				t.Fatalf("got %d", st)
			}
		}
	})
	t.Run("forward group and headers, body read", func(t *testing.T) {
		h.set(func(r *Request) {
			body, err := r.Body(100)
			if err != nil || string(body) != "payload" {
				t.Errorf("body %q %v", body, err)
			}
			if !r.SetHeader("X-Consumer", "h1") || r.SetHeader("Host", "x") || r.SetHeader("Transfer-Encoding", "x") {
				t.Error("SetHeader")
			}
			if err := r.ForwardGroup("nope"); !errors.Is(err, ErrUnknownGroup) {
				t.Errorf("ForwardGroup(nope) = %v", err)
			}
			if err := r.ForwardGroup("other"); err != nil {
				t.Error(err)
			}
		}, nil)
		st, body, _ := post("/p", "payload")
		if st != 200 || body != "other POST /p x-consumer=h1 cl=7 body=payload" {
			t.Fatalf("got %d %q", st, body)
		}
	})
	t.Run("chunked body read and sent with length", func(t *testing.T) {
		h.set(func(r *Request) {
			if r.ContentLength() != -1 {
				t.Errorf("ContentLength %d", r.ContentLength())
			}
			body, err := r.Body(0)
			if err != nil || string(body) != "hello world" {
				t.Errorf("body %q %v", body, err)
			}
		}, nil)
		got := rawExchange(t, addr(cfg, 0), "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
		if !strings.Contains(got, "a POST /c x-consumer= cl=11 body=hello world") {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("body too large", func(t *testing.T) {
		h.set(func(r *Request) {
			if _, err := r.Body(4); !errors.Is(err, ErrBodyTooLarge) {
				t.Errorf("Body = %v", err)
			}
			r.Respond(413, nil, []byte("too large"))
		}, nil)
		got := rawExchange(t, addr(cfg, 0), "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
		if !strings.HasPrefix(got, "HTTP/1.1 413 ") || !strings.Contains(got, "Connection: close") {
			t.Fatalf("got %q", got)
		}
		h.set(func(r *Request) {
			_, err := r.Body(8)
			if !errors.Is(err, ErrBodyTooLarge) {
				t.Errorf("Body = %v", err)
			}
		}, nil)
		got = rawExchange(t, addr(cfg, 0), "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 413 ") {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("forward to address, timeout, answer on failure", func(t *testing.T) {
		target := "127.0.0.1:" + strconv.Itoa(slow.port)
		onDone := func(r *Request, o Outcome) {
			if !o.Answered {
				r.Respond(o.Status, http.Header{"Content-Type": {"application/json"}}, []byte(`{"code":`+strconv.Itoa(o.Status)+`}`))
			}
		}
		h.set(func(r *Request) {
			if err := r.ForwardTo(target); err != nil {
				t.Error(err)
			}
			r.SetTimeout(50 * time.Millisecond)
		}, onDone)
		st, body, _ := post("/slow", "")
		if st != 504 || body != `{"code":504}` {
			t.Fatalf("got %d %q", st, body)
		}
		if o := h.last(t); o.Status != 504 || o.Answered || o.Err == nil {
			t.Fatalf("outcome %+v", o)
		}
		h.set(func(r *Request) { r.ForwardTo(target) }, onDone)
		st, body, _ = post("/slow", "")
		if st != 200 || body != "late" {
			t.Fatalf("got %d %q", st, body)
		}
		dead := freePort(t)
		h.set(func(r *Request) { r.ForwardTo("127.0.0.1:" + strconv.Itoa(dead)) }, onDone)
		for i := 0; i < 5; i++ { // never taken down: each request tries again
			st, body, _ = post("/dead", "")
			if st != 502 || body != `{"code":502}` {
				t.Fatalf("got %d %q", st, body)
			}
		}
		h.set(func(r *Request) {
			if err := r.ForwardTo("no-port"); err == nil {
				t.Error("ForwardTo(no-port) accepted")
			}
		}, nil)
		if st, _, _ = post("/x", ""); st != 200 {
			t.Fatalf("got %d", st)
		}
	})
	t.Run("no route answered by hook", func(t *testing.T) {
		cfg2 := cfg
		cfg2.Listeners = []Listener{{Name: "web", Port: cfg.Listeners[0].Port, Protocol: ProtocolHTTP}}
		apply(t, b, cfg2)
		h.set(nil, func(r *Request, o Outcome) { r.Respond(o.Status, nil, []byte("none")) })
		st, body, _ := post("/x", "")
		if st != 404 || body != "none" {
			t.Fatalf("got %d %q", st, body)
		}
	})
}

// TestHookKeepAlive runs many requests on one connection through a hook
// that reads bodies and answers some itself.
func TestHookKeepAlive(t *testing.T) {
	a := echoBackend(t, "a")
	h := &hookRecorder{decide: func(r *Request) {
		body, _ := r.Body(0)
		if string(body) == "stop" {
			r.Respond(429, nil, []byte("stopped"))
		}
	}}
	b := newBalancer(t, Options{Hook: h})
	cfg := config(t, a.server(Working))
	apply(t, b, cfg)
	c, err := net.Dial("tcp", addr(cfg, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 0; i < 20; i++ {
		body := "go" + strconv.Itoa(i)
		if i%3 == 0 {
			body = "stop"
		}
		io.WriteString(c, "POST /k HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "a POST /k x-consumer= cl=" + strconv.Itoa(len(body)) + " body=" + body
		if body == "stop" {
			want = "stopped"
		}
		if string(got) != want {
			t.Fatalf("%d: got %d %q, want %q", i, resp.StatusCode, got, want)
		}
	}
}

// TestHookViewsAndSetHeader: the in-place views agree with the copying
// accessors, and headers set by a hook replace the client's, however many
// are set and in whatever case.
func TestHookViewsAndSetHeader(t *testing.T) {
	got := make(chan string, 1)
	port := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			h, err := readRawHead(br)
			if err != nil {
				return
			}
			got <- h
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	h := &hookRecorder{}
	b := newBalancer(t, Options{Hook: h})
	cfg := config(t, Server{Address: "127.0.0.1", Port: port, Weight: 1})
	apply(t, b, cfg)

	var seen []string
	h.set(func(r *Request) {
		vals, n := r.AppendValues([]byte("v="), "x-multi", ',')
		seen = []string{
			r.Method(), string(r.PathBytes()), string(r.RawQueryBytes()), r.RawQuery(),
			string(r.HeaderBytes("X-MULTI")), r.Header("x-multi"), string(vals), strconv.Itoa(n),
			strconv.FormatBool(r.HeaderBytes("x-empty") != nil), strconv.Itoa(len(r.HeaderBytes("x-empty"))),
			strconv.FormatBool(r.HeaderBytes("x-missing") == nil),
		}
		for i := 0; i < 20; i++ { // enough to move the buffer the fields are kept in
			r.SetHeader("X-Set-"+strconv.Itoa(i), strings.Repeat("v", i))
		}
		if !r.SetHeader("X-Replaced", "first") || !r.SetHeader("x-replaced", "second") || !r.SetHeader("X-Multi", "one") {
			t.Error("SetHeader refused a field")
		}
		if r.SetHeader("Content-Length", "1") || r.SetHeader("keep-alive", "x") || r.SetHeader("X-Bad", "a\nb") || r.SetHeader("Bad Name", "x") {
			t.Error("SetHeader took a field it must refuse")
		}
	}, nil)
	raw := rawExchange(t, addr(cfg, 0), "PROPFIND /a/b?q=1&r HTTP/1.1\r\nHost: x\r\nX-Multi: 1\r\nx-multi: 2\r\nX-Empty:\r\nX-Replaced: client\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 200 OK\r\n") {
		t.Fatalf("answer %q", raw)
	}
	want := []string{"PROPFIND", "/a/b", "q=1&r", "q=1&r", "1", "1", "v=1,2", "2", "true", "0", "true"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("hook saw %q, want %q", seen, want)
	}
	up := <-got
	for _, s := range []string{"X-Multi: one\r\n", "X-Replaced: second\r\n", "X-Set-0: \r\n", "X-Set-19: " + strings.Repeat("v", 19) + "\r\n"} {
		if !strings.Contains(up, s) {
			t.Errorf("server did not get %q:\n%s", s, up)
		}
	}
	for _, s := range []string{"X-Multi: 1", "x-multi: 2", "client", "first", "Keep-Alive", "X-Bad", "Content-Length"} {
		if strings.Contains(up, s) {
			t.Errorf("server got %q:\n%s", s, up)
		}
	}
}
