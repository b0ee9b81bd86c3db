package lb

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// backend is a real HTTP server on loopback that counts its requests.
type backend struct {
	*httptest.Server
	name string
	port int
	hits atomic.Int64
}

func newBackend(t testing.TB, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }
	}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			b.hits.Add(1)
		}
		h(w, r)
	}))
	b.port = b.Listener.Addr().(*net.TCPAddr).Port
	t.Cleanup(b.Close)
	return b
}

func (b *backend) server(role Role) Server {
	return Server{Name: b.name, Address: "127.0.0.1", Port: b.port, Weight: 1, Role: role}
}

// config is a one-listener, one-group config on a fresh port.
func config(t testing.TB, servers ...Server) BalancerConfig {
	return BalancerConfig{
		Name:      "test",
		Address:   "127.0.0.1",
		Listeners: []Listener{{Name: "web", Port: freePort(t), Protocol: ProtocolHTTP, DefaultGroup: "g"}},
		Groups:    []ServerGroup{{Name: "g", Servers: servers}},
	}
}

func newBalancer(t testing.TB, opts Options) *Balancer {
	t.Helper()
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Close(ctx)
	})
	return b
}

func apply(t testing.TB, b *Balancer, cfg BalancerConfig) uint64 {
	t.Helper()
	v, err := b.Apply(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func url(cfg BalancerConfig, i int, path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(cfg.Listeners[i].Port) + path
}

// get returns the status and body of a GET, or an error.
func get(c *http.Client, u string) (int, string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func serverState(b *Balancer, group, server string) ServerState {
	for _, g := range b.Status().Groups {
		if g.Name != group {
			continue
		}
		for _, s := range g.Servers {
			if s.Name == server {
				return s.State
			}
		}
	}
	return ""
}

// rawExchange sends raw bytes to addr and returns everything read until the
// server closes or a second passes without data.
func rawExchange(t testing.TB, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

func addr(cfg BalancerConfig, i int) string {
	return fmt.Sprintf("127.0.0.1:%d", cfg.Listeners[i].Port)
}
