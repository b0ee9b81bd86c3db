package lb

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// killable is a backend that can be killed (listener and connections closed
// at once, like a crashed process) and brought back on the same port.
type killable struct {
	t    testing.TB
	name string
	port int
	hits atomic.Int64
	mu   sync.Mutex
	srv  *http.Server
}

func newKillable(t testing.TB, name string) *killable {
	k := &killable{t: t, name: name, port: freePort(t)}
	k.start()
	t.Cleanup(k.kill)
	return k
}

func (k *killable) start() {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", k.port))
	if err != nil {
		k.t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			k.hits.Add(1)
		}
		io.WriteString(w, k.name)
	})}
	k.mu.Lock()
	k.srv = srv
	k.mu.Unlock()
	go srv.Serve(ln)
}

func (k *killable) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.srv != nil {
		k.srv.Close()
		k.srv = nil
	}
}

func (k *killable) server(role Role) Server {
	return Server{Name: k.name, Address: "127.0.0.1", Port: k.port, Weight: 1, Role: role}
}

// load sends GETs from n clients until stop is closed and counts failures.
type load struct {
	ok, failed atomic.Int64
	lastErr    atomic.Value
	wg         sync.WaitGroup
	stop       chan struct{}
}

func startLoad(u string, n int) *load {
	l := &load{stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				code, _, err := get(c, u)
				if err != nil || code != 200 {
					l.failed.Add(1)
					l.lastErr.Store(fmt.Sprintf("status %d err %v", code, err))
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *load) finish(t testing.TB) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed; last: %v", n, n+l.ok.Load(), l.lastErr.Load())
	}
	if l.ok.Load() == 0 {
		t.Error("no request succeeded")
	}
}

// TestFailoverToStandbyAndBack is the seed scenario: a working and a standby
// server in two zones, steady traffic, the working server killed and
// brought back.
func TestFailoverToStandbyAndBack(t *testing.T) {
	w, s := newKillable(t, "working"), newKillable(t, "standby")
	ws, ss := w.server(Working), s.server(Standby)
	ws.Zone, ss.Zone = "zone-a", "zone-b"
	cfg := config(t, ws, ss)
	cfg.Groups[0].HealthCheck = &HealthCheck{Type: CheckHTTP, Path: "/health",
		Interval: Duration(100 * time.Millisecond), Timeout: Duration(80 * time.Millisecond), Rise: 2, Fall: 2}
	b := newBalancer(t, Options{})
	events := b.Subscribe(t.Context())
	apply(t, b, cfg)

	l := startLoad(url(cfg, 0, "/pms/biz/outpatient/bizc2201"), 4)
	waitFor(t, 5*time.Second, "traffic on the working server", func() bool { return w.hits.Load() > 50 })
	if s.hits.Load() != 0 {
		t.Fatalf("standby served %d requests while the working server was up", s.hits.Load())
	}

	killed := time.Now()
	w.kill()
	waitFor(t, 5*time.Second, "the monitor to show the working server down", func() bool {
		return serverState(b, "g", "working") == StateDown
	})
	t.Logf("down after %s", time.Since(killed))
	before := s.hits.Load()
	waitFor(t, 5*time.Second, "the standby to take traffic", func() bool { return s.hits.Load() > before+50 })

	w.start()
	waitFor(t, 5*time.Second, "the working server back up", func() bool { return serverState(b, "g", "working") == StateUp })
	time.Sleep(50 * time.Millisecond)
	sBack, wBack := s.hits.Load(), w.hits.Load()
	waitFor(t, 5*time.Second, "traffic back on the working server", func() bool { return w.hits.Load() > wBack+50 })
	if d := s.hits.Load() - sBack; d > 8 {
		t.Errorf("standby still got %d requests after the working server returned", d)
	}
	l.finish(t)
	// The Go client retries some failures itself; the balancer's own count
	// shows it never answered with an error.
	if r := b.Status().Rejected; len(r) != 0 {
		t.Errorf("the balancer answered errors itself: %v", r)
	}

	var kinds []string
	for len(events) > 0 {
		e := <-events
		kinds = append(kinds, string(e.Kind)+":"+e.Server)
		if e.Kind == EventServerDown && e.Zone != "zone-a" {
			t.Errorf("down event without its zone: %+v", e)
		}
	}
	want := []string{"config_applied:", "server_down:working", "server_up:working"}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Errorf("events %v, want %v", kinds, want)
	}
}

func TestPushUnderLoadLosesNothing(t *testing.T) {
	a, c := newBackend(t, "a", nil), newBackend(t, "c", nil)
	cfg := config(t, a.server(Working), c.server(Working))
	b := newBalancer(t, Options{KeepVersions: 3})
	apply(t, b, cfg)
	l := startLoad(url(cfg, 0, "/"), 4)
	for i := 0; i < 30; i++ {
		next := cfg
		next.Groups = []ServerGroup{cfg.Groups[0]}
		next.Groups[0].Servers = append([]Server(nil), cfg.Groups[0].Servers...)
		next.Groups[0].Servers[i%2].Weight = 1 + i%5
		next.Groups[0].Algorithm = []Algorithm{RoundRobin, LeastConn}[i%2]
		apply(t, b, next)
		time.Sleep(10 * time.Millisecond)
	}
	l.finish(t)
	if r := b.Status().Rejected; len(r) != 0 {
		t.Errorf("the balancer answered errors itself: %v", r)
	}
	if v := b.Versions(); len(v) != 3 || v[2].Version != 31 {
		t.Errorf("kept versions %+v, want the last 3 ending at 31", v)
	}
}

func TestApplyRejectsAndRollsBack(t *testing.T) {
	a, c := newBackend(t, "a", nil), newBackend(t, "c", nil)
	b := newBalancer(t, Options{})
	client := &http.Client{}
	if _, err := b.Rollback(t.Context(), 1); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("rollback before any apply: %v", err)
	}
	v1cfg := config(t, a.server(Working))
	v1 := apply(t, b, v1cfg)
	v2cfg := v1cfg
	v2cfg.Groups = []ServerGroup{{Name: "g", Servers: []Server{c.server(Working)}}}
	v2 := apply(t, b, v2cfg)
	if _, body, _ := get(client, url(v1cfg, 0, "/")); body != "c" || v2 != v1+1 {
		t.Fatalf("after v2: %q (versions %d, %d)", body, v1, v2)
	}

	bad := v2cfg
	bad.Groups = []ServerGroup{{Name: "g", Servers: []Server{{Address: "127.0.0.1", Port: 0, Weight: -1}}}}
	_, err := b.Apply(t.Context(), bad)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 2 {
		t.Fatalf("bad config: %v", err)
	}
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	taken := v2cfg
	taken.Listeners = append([]Listener{}, v2cfg.Listeners...)
	taken.Listeners = append(taken.Listeners, Listener{Name: "taken", Port: busy.Addr().(*net.TCPAddr).Port, Protocol: ProtocolHTTP, DefaultGroup: "g"})
	if _, err := b.Apply(t.Context(), taken); !errors.Is(err, ErrListen) || !strings.Contains(err.Error(), `listener "taken"`) {
		t.Fatalf("port in use: %v", err)
	}
	if st := b.Status(); st.Version != v2 || len(st.Listeners) != 1 {
		t.Fatalf("a rejected push changed the balancer: %+v", st)
	}
	if _, body, _ := get(client, url(v1cfg, 0, "/")); body != "c" {
		t.Fatalf("after rejected pushes: %q", body)
	}

	v3, err := b.Rollback(t.Context(), v1)
	if err != nil {
		t.Fatal(err)
	}
	if _, body, _ := get(client, url(v1cfg, 0, "/")); body != "a" {
		t.Fatalf("after rollback: %q", body)
	}
	vs := b.Versions()
	if len(vs) != 3 || vs[2].Version != v3 || vs[2].Note != fmt.Sprintf("rollback to %d", v1) {
		t.Errorf("versions after rollback: %+v", vs)
	}
}

func TestListenersAddedAndRemovedAlone(t *testing.T) {
	be := newBackend(t, "be", nil)
	cfg := config(t, be.server(Working))
	cfg.Listeners = append(cfg.Listeners, Listener{Name: "two", Protocol: ProtocolHTTP, DefaultGroup: "g"})
	b := newBalancer(t, Options{})
	apply(t, b, cfg)
	two := listenerAddr(t, b, "two")

	// A keep-alive connection on the first listener, open across the push.
	conn, err := net.Dial("tcp", addr(cfg, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	ask := func() string {
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(body)
	}
	if got := ask(); got != "be" {
		t.Fatalf("before push: %q", got)
	}
	next := cfg
	next.Listeners = []Listener{cfg.Listeners[0], {Name: "three", Protocol: ProtocolHTTP, DefaultGroup: "g"}}
	apply(t, b, next)
	if got := ask(); got != "be" {
		t.Fatalf("kept listener's connection after push: %q", got)
	}
	c := &http.Client{}
	if _, body, err := get(c, "http://"+listenerAddr(t, b, "three")+"/"); err != nil || body != "be" {
		t.Errorf("new listener: %q %v", body, err)
	}
	waitFor(t, 2*time.Second, "the removed listener to close", func() bool {
		_, _, err := get(c, "http://"+two+"/")
		return err != nil
	})
}

func TestRouting(t *testing.T) {
	names := []string{"exact", "short", "long", "host", "wild", "def"}
	groups := make([]ServerGroup, len(names))
	for i, n := range names {
		groups[i] = ServerGroup{Name: n, Servers: []Server{newBackend(t, n, nil).server(Working)}}
	}
	cfg := BalancerConfig{Name: "r", Address: "127.0.0.1", Groups: groups, Listeners: []Listener{{
		Name: "web", Port: freePort(t), Protocol: ProtocolHTTP, DefaultGroup: "def",
		Rules: []Rule{
			{PathPrefix: "/pms", Group: "short"},
			{PathPrefix: "/pms/biz/outpatient", Group: "long"},
			{Path: "/pms/biz/outpatient/bizc2201", Group: "exact"},
			{Host: "API.example.com", PathPrefix: "/", Group: "host"},
			{Host: "*.example.com", PathPrefix: "/pms", Group: "wild"},
		},
	}}}
	b := newBalancer(t, Options{})
	apply(t, b, cfg)
	tests := []struct{ host, path, want string }{
		{"x", "/pms/biz/outpatient/bizc2201", "exact"},
		{"x", "/pms/biz/outpatient/bizc2201/more", "long"},
		{"x", "/pms/biz/outpatient", "long"},
		{"x", "/pms/other", "short"},
		{"x", "/other", "def"},
		{"api.example.com:8080", "/pms/biz/outpatient/bizc2201", "host"},
		{"www.EXAMPLE.com", "/pms/x", "wild"},
		{"www.example.com", "/other", "def"},
	}
	for _, tt := range tests {
		resp := rawExchange(t, addr(cfg, 0), "GET "+tt.path+"?q=1 HTTP/1.1\r\nHost: "+tt.host+"\r\nConnection: close\r\n\r\n")
		if !strings.HasSuffix(resp, "\r\n\r\n"+tt.want) {
			t.Errorf("%s%s went to %q, want %s", tt.host, tt.path, resp[max(0, len(resp)-10):], tt.want)
		}
	}
}

func TestDrain(t *testing.T) {
	release := make(chan struct{})
	var slowHits atomic.Int64
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		slowHits.Add(1)
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "slow")
	})
	other := newBackend(t, "other", nil)
	cfg := config(t, slow.server(Working), other.server(Working))
	b := newBalancer(t, Options{})
	events := b.Subscribe(t.Context())
	apply(t, b, cfg)
	c := &http.Client{}

	inflight := make(chan string)
	go func() {
		_, body, err := get(c, url(cfg, 0, "/slow"))
		inflight <- fmt.Sprint(body, err)
	}()
	waitFor(t, 2*time.Second, "the slow request in flight", func() bool { return slowHits.Load() == 1 })
	drained := make(chan error)
	go func() { drained <- b.Drain(t.Context(), "g", "slow", time.Now().Add(5*time.Second)) }()
	waitFor(t, 2*time.Second, "draining state", func() bool { return serverState(b, "g", "slow") == StateDraining })
	for i := 0; i < 10; i++ {
		if _, body, _ := get(c, url(cfg, 0, "/")); body != "other" {
			t.Fatalf("a draining server got a new request")
		}
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if got := <-inflight; got != "slow<nil>" {
		t.Errorf("in-flight request: %q", got)
	}
	if err := <-drained; err != nil {
		t.Errorf("Drain: %v", err)
	}
	if err := b.Undrain("g", "slow"); err != nil {
		t.Fatal(err)
	}
	if serverState(b, "g", "slow") != StateUp {
		t.Error("not up after Undrain")
	}
	if err := b.Drain(t.Context(), "g", "nope", time.Now()); !errors.Is(err, ErrUnknownServer) {
		t.Errorf("unknown server: %v", err)
	}
	var kinds []EventKind
	for len(events) > 0 {
		kinds = append(kinds, (<-events).Kind)
	}
	if fmt.Sprint(kinds) != fmt.Sprint([]EventKind{EventConfigApplied, EventServerDraining, EventServerUndrained}) {
		t.Errorf("events: %v", kinds)
	}
}

func TestDrainDeadlineCutsRequests(t *testing.T) {
	stuck := newBackend(t, "stuck", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	cfg := config(t, stuck.server(Working))
	b := newBalancer(t, Options{})
	apply(t, b, cfg)
	done := make(chan error)
	go func() {
		_, _, err := get(&http.Client{}, url(cfg, 0, "/"))
		done <- err
	}()
	waitFor(t, 2*time.Second, "request in flight", func() bool { return stuck.hits.Load() == 1 })
	err := b.Drain(t.Context(), "g", "stuck", time.Now().Add(100*time.Millisecond))
	if !errors.Is(err, ErrDrainDeadline) {
		t.Fatalf("Drain: %v", err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("the cut request did not end")
	}
}

func TestTCPListener(t *testing.T) {
	echo := rawBackend(t, func(c net.Conn, br *bufio.Reader) { io.Copy(c, br) })
	dead := freePort(t) // nothing listens: connects are refused
	cfg := BalancerConfig{Name: "l4", Address: "127.0.0.1",
		Listeners: []Listener{{Name: "redis", Port: freePort(t), Protocol: ProtocolTCP, DefaultGroup: "g"}},
		Groups: []ServerGroup{{Name: "g", PassiveFall: 100, Servers: []Server{
			{Name: "dead", Address: "127.0.0.1", Port: dead, Weight: 1},
			{Name: "echo", Address: "127.0.0.1", Port: echo, Weight: 1},
		}}}}
	b := newBalancer(t, Options{})
	apply(t, b, cfg)
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", addr(cfg, 0))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "ping %d", i)
		c.(*net.TCPConn).CloseWrite()
		got, _ := io.ReadAll(c)
		c.Close()
		if string(got) != fmt.Sprintf("ping %d", i) {
			t.Errorf("connection %d: %q", i, got)
		}
	}
}

func TestHTTPSListener(t *testing.T) {
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto"))
	})
	certPEM, keyPEM, pool := selfSigned(t)
	cfg := config(t, be.server(Working))
	cfg.Listeners[0].Protocol = ProtocolHTTPS
	cfg.Listeners[0].TLS = &TLSConfig{Certificates: []Certificate{{CertPEM: certPEM, KeyPEM: keyPEM}}}
	b := newBalancer(t, Options{})
	apply(t, b, cfg)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "lb.test"}}}
	code, body, err := get(c, fmt.Sprintf("https://127.0.0.1:%d/", cfg.Listeners[0].Port))
	if err != nil || code != 200 || body != "https" {
		t.Fatalf("https: %d %q %v", code, body, err)
	}
}

func selfSigned(t testing.TB) (certPEM, keyPEM string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lb.test"}, DNSNames: []string{"lb.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})), pool
}

func TestMetricsTwoBalancersOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	be := newBackend(t, "be", nil)
	for _, name := range []string{"one", "two"} {
		b := newBalancer(t, Options{Registerer: reg})
		cfg := config(t, be.server(Working))
		cfg.Name = name
		apply(t, b, cfg)
		get(&http.Client{}, url(cfg, 0, "/"))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, mf := range mfs {
		found[mf.GetName()] += len(mf.GetMetric())
	}
	for _, name := range []string{"lb_server_up", "lb_server_requests_total", "lb_server_request_duration_seconds", "lb_config_version"} {
		if found[name] != 2 {
			t.Errorf("%s: %d series, want one per balancer (all: %v)", name, found[name], found)
		}
	}
}

// A balancer has series only while it runs a config: none for one whose first config was
// refused (they would carry balancer=""), none once it is closed. The registry keeps an
// unchecked collector after Unregister, so the series must end with the balancer itself.
func TestMetricsOnlyWhileRunning(t *testing.T) {
	reg := prometheus.NewRegistry()
	series := func() []string {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				out = append(out, mf.GetName()+fmt.Sprint(m.GetLabel()))
			}
		}
		return out
	}
	be := newBackend(t, "be", nil)
	refused := newBalancer(t, Options{Registerer: reg})
	bad := config(t, be.server(Working))
	bad.Listeners[0].DefaultGroup = "missing"
	if _, err := refused.Apply(t.Context(), bad); err == nil {
		t.Fatal("a config with a missing group applied")
	}
	if s := series(); len(s) > 0 {
		t.Errorf("a balancer whose first config was refused has series: %v", s)
	}
	if err := refused.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := newBalancer(t, Options{Registerer: reg})
	apply(t, b, config(t, be.server(Working)))
	if len(series()) == 0 {
		t.Fatal("a running balancer has no series")
	}
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := series(); len(s) > 0 {
		t.Errorf("a closed balancer has series: %v", s)
	}
}

func TestCloseIsGraceful(t *testing.T) {
	release := make(chan struct{})
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	})
	cfg := config(t, be.server(Working))
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, b, cfg)
	got := make(chan string)
	go func() {
		_, body, err := get(&http.Client{}, url(cfg, 0, "/"))
		got <- fmt.Sprint(body, err)
	}()
	waitFor(t, 2*time.Second, "request in flight", func() bool { return be.hits.Load() == 1 })
	closed := make(chan error)
	go func() { closed <- b.Close(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if r := <-got; r != "done<nil>" {
		t.Errorf("in-flight request during Close: %q", r)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := b.Apply(t.Context(), cfg); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close: %v", err)
	}
}

// WaitUp returns once a server that went down is back up, and not before its checks passed.
func TestWaitUp(t *testing.T) {
	up := atomic.Bool{}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer backend.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(backend.URL, "http://"))
	p, _ := strconv.Atoi(port)
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if _, err := b.Apply(context.Background(), BalancerConfig{Name: "w", Address: "127.0.0.1",
		Listeners: []Listener{{Name: "web", Port: freePort(t), Protocol: ProtocolHTTP, DefaultGroup: "g"}},
		Groups: []ServerGroup{{Name: "g", Servers: []Server{{Name: "s", Address: host, Port: p, Weight: 1}},
			HealthCheck: &HealthCheck{Type: CheckHTTP, Path: "/", Interval: Duration(20 * time.Millisecond), Rise: 2, Fall: 1}}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the failing server down", func() bool { return serverState(b, "g", "s") == StateDown })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := b.WaitUp(ctx, "g", "s"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a server failing its checks: %v", err)
	}
	up.Store(true)
	if err := b.WaitUp(context.Background(), "g", "s"); err != nil {
		t.Fatal(err)
	}
	if serverState(b, "g", "s") != StateUp {
		t.Fatal("WaitUp returned before the server was up")
	}
	if err := b.WaitUp(context.Background(), "g", "nope"); err == nil {
		t.Fatal("an unknown server")
	}
}

// Config and ServerAt say what runs; neither they nor Versions hand out the balancer's own
// copy, so a caller that changes what it got changes nothing that runs or is kept.
func TestConfigAndServerAt(t *testing.T) {
	b := newBalancer(t, Options{})
	if _, ok := b.Config(); ok {
		t.Fatal("a config before the first Apply")
	}
	if _, ok := b.ServerAt("g", "127.0.0.1:1"); ok {
		t.Fatal("a server before the first Apply")
	}
	named := newBackend(t, "named", nil).server(Working)
	unnamed := newBackend(t, "", nil).server(Working)
	unnamed.Name = ""
	cfg := config(t, named, unnamed)
	apply(t, b, cfg)

	got, ok := b.Config()
	if !ok || !reflect.DeepEqual(cfg, got) {
		t.Fatalf("Config() = %+v, %v; want what was applied", got, ok)
	}
	hp := net.JoinHostPort(unnamed.Address, strconv.Itoa(unnamed.Port))
	for _, tt := range []struct{ group, hostPort, want string }{
		{"g", net.JoinHostPort(named.Address, strconv.Itoa(named.Port)), "named"},
		{"g", hp, hp}, // a server without a name is known by address:port
		{"other", hp, ""},
		{"g", "127.0.0.1:1", ""},
	} {
		if name, ok := b.ServerAt(tt.group, tt.hostPort); name != tt.want || ok != (tt.want != "") {
			t.Errorf("ServerAt(%s, %s) = %q, %v; want %q", tt.group, tt.hostPort, name, ok, tt.want)
		}
	}

	got.Groups[0].Servers[0].Name = "changed"
	b.Versions()[0].Config.Groups[0].Servers[0].Name = "changed"
	if again, _ := b.Config(); !reflect.DeepEqual(cfg, again) {
		t.Fatalf("changing a copy changed the running config: %+v", again)
	}
	if kept := *b.Versions()[0].Config; !reflect.DeepEqual(cfg, kept) {
		t.Fatalf("changing a copy changed the kept version: %+v", kept)
	}
}

// listenerAddr is the bound address of the named listener, as Addr and Status report it.
func listenerAddr(t *testing.T, b *Balancer, name string) string {
	t.Helper()
	var status string
	for _, l := range b.Status().Listeners {
		if l.Name == name {
			status = l.Address
		}
	}
	a, ok := b.Addr(name)
	if !ok {
		if status != "" {
			t.Fatalf("Status has listener %s on %s, Addr has none", name, status)
		}
		return ""
	}
	if a.String() != status {
		t.Fatalf("listener %s: Addr says %s, Status %s", name, a, status)
	}
	return status
}

// Port 0 is any free port, bound when the listener opens: each port-0 listener gets its
// own, Status and Addr report it, and a push that keeps the listener (by name) keeps it.
func TestListenerOnPortZero(t *testing.T) {
	be := newBackend(t, "be", nil)
	cfg := config(t, be.server(Working))
	cfg.Listeners = []Listener{
		{Name: "one", Protocol: ProtocolHTTP, DefaultGroup: "g"},
		{Name: "two", Protocol: ProtocolHTTP, DefaultGroup: "g"},
	}
	b := newBalancer(t, Options{})
	apply(t, b, cfg)
	one, two := listenerAddr(t, b, "one"), listenerAddr(t, b, "two")
	if one == two || strings.HasSuffix(one, ":0") || strings.HasSuffix(two, ":0") {
		t.Fatalf("bound addresses: %q and %q", one, two)
	}
	c := &http.Client{}
	for _, a := range []string{one, two} {
		if _, body, err := get(c, "http://"+a+"/"); err != nil || body != "be" {
			t.Fatalf("through %s: %q %v", a, body, err)
		}
	}
	// Pushed again with "two" renamed: "one" keeps its socket, "three" gets a new one.
	next := cfg
	next.Listeners = []Listener{cfg.Listeners[0], {Name: "three", Protocol: ProtocolHTTP, DefaultGroup: "g"}}
	apply(t, b, next)
	if got := listenerAddr(t, b, "one"); got != one {
		t.Errorf("kept listener moved from %s to %s", one, got)
	}
	three := listenerAddr(t, b, "three")
	if three == "" || three == one || strings.HasSuffix(three, ":0") {
		t.Errorf("new listener's address: %q", three)
	}
	if got := listenerAddr(t, b, "two"); got != "" {
		t.Errorf("removed listener still reported on %s", got)
	}
}

// A balancer is built step by step: first with nothing (it listens nowhere), then with a
// listener and a group whose server has no weight, which is then 1.
func TestEmptyConfigAndDefaultWeight(t *testing.T) {
	b := newBalancer(t, Options{})
	if v := apply(t, b, BalancerConfig{Name: "draft"}); v != 1 {
		t.Fatalf("version %d, want 1", v)
	}
	if st := b.Status(); st.Name != "draft" || len(st.Listeners) != 0 || len(st.Groups) != 0 {
		t.Fatalf("status of an empty balancer: %+v", st)
	}
	be := newBackend(t, "be", nil)
	srv := be.server(Working)
	srv.Weight = 0
	cfg := config(t, srv)
	apply(t, b, cfg)
	if st := b.Status(); len(st.Groups) != 1 || st.Groups[0].Servers[0].Weight != 1 {
		t.Fatalf("a server without a weight: %+v, want weight 1", st.Groups)
	}
	if code, body, err := get(http.DefaultClient, url(cfg, 0, "/")); err != nil || code != 200 || body != "be" {
		t.Fatalf("through the balancer: %d %q %v", code, body, err)
	}
}
