package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shuanghuo/shuanghuo/gateway"
	"github.com/shuanghuo/shuanghuo/lb"
)

// rig is a gateway in a balancer on loopback, in front of real upstreams.
type rig struct {
	t        testing.TB
	gw       *gateway.Gateway
	bal      *lb.Balancer
	base     string // http://127.0.0.1:port
	host     string // 127.0.0.1:port
	skew     atomic.Int64
	reg      *prometheus.Registry
	cfg      gateway.Config
	flaky    atomic.Bool // the flaky upstream fails while set
	upstream *httptest.Server
}

var secrets = map[string]string{
	"h1": "h1-secret-0123456789abcdef",
	"h2": "h2-secret-0123456789abcdef",
	"h3": "h3-secret-0123456789abcdef",
	"p1": "p1-secret-0123456789abcdef",
	"d1": "d1-secret-0123456789abcdef",
}

func appKey(id string) string { return "key-" + id + "-000" }

// echo answers with what the upstream got.
func echo(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"upstream": name, "path": r.URL.RequestURI(), "body": string(body),
			"consumer": r.Header.Get("X-Consumer-Id"), "kind": r.Header.Get("X-Consumer-Kind"),
			"org": r.Header.Get("X-Consumer-Org"), "request_id": r.Header.Get("X-Request-Id"),
		})
	}
}

func newRig(t testing.TB, opts gateway.Options) *rig {
	t.Helper()
	r := &rig{t: t, reg: prometheus.NewRegistry()}
	r.upstream = httptest.NewServer(echo("outpatient"))
	t.Cleanup(r.upstream.Close)
	pharmacy := httptest.NewServer(echo("pharmacy"))
	t.Cleanup(pharmacy.Close)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.flaky.Load() {
			http.Error(w, "down", 500)
			return
		}
		echo("flaky")(w, req)
	}))
	t.Cleanup(flaky.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		time.Sleep(400 * time.Millisecond)
		echo("slow")(w, req)
	}))
	t.Cleanup(slow.Close)

	if opts.Now == nil {
		opts.Now = func() time.Time { return time.Now().Add(time.Duration(r.skew.Load())) }
	}
	if opts.Registerer == nil {
		opts.Registerer = r.reg
	}
	gw, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.gw = gw
	consumer := func(id, name string, kind gateway.ConsumerKind) gateway.Consumer {
		return gateway.Consumer{ID: id, Name: name, Kind: kind, OrgCode: "H" + id, Enabled: true, AppKey: appKey(id), Secrets: []string{secrets[id]}}
	}
	r.cfg = gateway.Config{
		Consumers: []gateway.Consumer{
			consumer("h1", "省人民医院", gateway.KindHospital),
			consumer("h2", "市第一医院", gateway.KindHospital),
			consumer("h3", "被拒医院", gateway.KindHospital),
			consumer("p1", "大药房", gateway.KindPharmacy),
			consumer("d1", "停用账户", gateway.KindOther),
		},
		APIs: []gateway.API{
			{Name: "门诊结算", Method: "POST", Path: "/api/outpatient/settle", Upstream: gateway.Upstream{Group: "outpatient"}},
			{Name: "药店购药", Method: "POST", Path: "/api/pharmacy/*", Upstream: gateway.Upstream{URL: pharmacy.URL}},
			{Name: "ping", Method: "GET", Path: "/api/ping", Public: true, Upstream: gateway.Upstream{URL: r.upstream.URL}},
			{Name: "flaky", Path: "/api/flaky", Upstream: gateway.Upstream{URL: flaky.URL},
				Breaker: &gateway.Breaker{ConsecutiveFailures: 3, OpenTimeout: gateway.Duration(300 * time.Millisecond)}},
			{Name: "slow", Path: "/api/slow", Upstream: gateway.Upstream{URL: slow.URL}, Timeout: gateway.Duration(100 * time.Millisecond),
				Breaker: &gateway.Breaker{ConsecutiveFailures: 1000}},
		},
		Grants: []gateway.Grant{
			{Consumer: "h1", API: "门诊结算"}, {Consumer: "h2", API: "门诊结算"}, {Consumer: "h3", API: "门诊结算"},
			{Consumer: "d1", API: "门诊结算"}, {Consumer: "p1", API: "药店购药"},
			{Consumer: "h1", API: "flaky"}, {Consumer: "h1", API: "slow"},
		},
		Policies: []gateway.Policy{
			{Name: "h3-blocked", Consumer: "h3", Deny: []string{"127.0.0.0/8", "::1/128"}},
			{Name: "h2-settle", Consumer: "h2", API: "门诊结算", RateLimit: &gateway.RateLimit{Rate: 5, Burst: 5}},
		},
	}
	r.cfg.Consumers[4].Enabled = false
	r.apply(r.cfg)

	up := r.upstream.Listener.Addr().(*net.TCPAddr)
	bal, err := lb.New(lb.Options{Hook: gw})
	if err != nil {
		t.Fatal(err)
	}
	r.bal = bal
	port := freePort(t)
	if _, err := bal.Apply(context.Background(), lb.BalancerConfig{
		Name: "gw", Address: "127.0.0.1",
		Listeners: []lb.Listener{{Name: "api", Port: port, Protocol: lb.ProtocolHTTP}},
		Groups:    []lb.ServerGroup{{Name: "outpatient", Servers: []lb.Server{{Address: "127.0.0.1", Port: up.Port, Weight: 1}}}},
	}); err != nil {
		t.Fatal(err)
	}
	r.host = "127.0.0.1:" + strconv.Itoa(port)
	r.base = "http://" + r.host
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		bal.Close(ctx)
		gw.Close(ctx)
	})
	return r
}

func (r *rig) apply(cfg gateway.Config) {
	r.t.Helper()
	if _, err := r.gw.Apply(context.Background(), cfg); err != nil {
		r.t.Fatal(err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// client returns an HTTP client that signs as consumer id.
func (r *rig) client(id string) *http.Client {
	s := &gateway.Signer{AppKey: appKey(id), Secret: secrets[id]}
	return &http.Client{Transport: s.Transport(&http.Transport{MaxIdleConnsPerHost: 64}), Timeout: 10 * time.Second}
}

// answer is a response as tests look at it.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    gateway.ErrorDetail // for refusals
	echo   map[string]string   // for echoes
}

func (r *rig) do(c *http.Client, method, path, body string) answer {
	r.t.Helper()
	req, err := http.NewRequest(method, r.base+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return r.send(c, req)
}

func (r *rig) send(c *http.Client, req *http.Request) answer {
	r.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	a.body, _ = io.ReadAll(resp.Body)
	var eb gateway.ErrorBody
	if json.Unmarshal(a.body, &eb) == nil && eb.Error.Code != "" {
		a.err = eb.Error
	} else {
		json.Unmarshal(a.body, &a.echo)
	}
	return a
}

// expectCode fails unless a is a refusal with code (and its status).
func expectCode(t testing.TB, a answer, code gateway.Code) {
	t.Helper()
	if a.err.Code != code || a.status != code.Status() || a.err.RequestID == "" || a.header.Get("X-Request-Id") != a.err.RequestID {
		t.Fatalf("got %d %s, want %d with code %s", a.status, a.body, code.Status(), code)
	}
}

// metric returns the value of the series name with the given label pairs.
func (r *rig) metric(name string, labels ...string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
