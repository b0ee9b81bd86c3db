package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/center"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

// backend is one application server of the seed's outpatient app (port 8085 in the seed).
type backend struct {
	name string
	addr string
	srv  *http.Server
}

func startBackend(t *testing.T, name, addr string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	b := &backend{name: name, addr: ln.Addr().String()}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	})}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *backend) port() string { _, p, _ := net.SplitHostPort(b.addr); return p }

// The seed's load-balancer scenario, end to end through the reference server's API: a
// balancer with a listener and a forwarding rule for /pms/biz/outpatient/bizc2201, a server
// group with working servers in two zones and a standby; the configuration is saved, then
// pushed; under steady traffic the working servers are stopped one by one, the monitor shows
// them down, the standby takes over, and a working server that comes back takes the traffic
// again — with no failed request.
func TestSeedBalancerScenario(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := config.Default()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", t.TempDir()
	admin := "shk_e2e0123456789abcdef"
	c, err := center.Open(ctx, cfg, center.Options{AdminToken: admin})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx) }()
	api := apiClient{base: c.URL(), token: admin}

	w1 := startBackend(t, "working-zone1", "127.0.0.21:0")
	w2 := startBackend(t, "working-zone2", "127.0.0.22:0")
	sb := startBackend(t, "standby", "127.0.0.23:0")
	lbPort := freeTCP(t, "127.0.0.1")

	var team struct{ ID string }
	require.NoError(t, api.call(ctx, "POST", "/api/v1/teams", map[string]string{"name": "医保开发团队"}, &team))
	grantLoopback(t, rest{t, c.URL(), admin}, team.ID)
	server := func(name string, b *backend, role, zone string) map[string]any {
		return map[string]any{"name": name, "address": strings.Split(b.addr, ":")[0], "port": atoi(b.port()), "weight": 1, "role": role, "zone": zone}
	}
	spec := map[string]any{
		"name": "outpatient", "address": "127.0.0.1",
		"listeners": []any{map[string]any{
			"name": "biz", "port": lbPort, "protocol": "http",
			"rules": []any{map[string]any{"path": "/pms/biz/outpatient/bizc2201", "group": "outpatient"}},
		}},
		"groups": []any{map[string]any{
			"name": "outpatient",
			"servers": []any{
				server("w1", w1, "working", "zone-1"), server("w2", w2, "working", "zone-2"), server("s1", sb, "standby", "zone-2"),
			},
			"health_check": map[string]any{"type": "http", "path": "/", "interval": "200ms", "timeout": "100ms", "rise": 2, "fall": 2},
		}},
	}
	var res struct {
		ID             string
		Revision       int64
		PushedRevision int64 `json:"pushed_revision"`
	}
	require.NoError(t, api.call(ctx, "POST", "/api/v1/balancers", map[string]any{"team_id": team.ID, "spec": spec}, &res))
	url := fmt.Sprintf("http://127.0.0.1:%d/pms/biz/outpatient/bizc2201", lbPort)
	_, err = http.Get(url)
	require.Error(t, err, "saved, not pushed: nothing listens yet")
	require.NoError(t, api.call(ctx, "POST", "/api/v1/balancers/"+res.ID+"/push", nil, &res))
	require.Equal(t, int64(1), res.PushedRevision)

	// Steady traffic, counting who answered and every failure.
	var (
		mu       sync.Mutex
		servedBy = map[string]int{}
		failed   atomic.Int64
		sent     atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				resp, err := client.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				mu.Lock()
				servedBy[string(body)]++
				mu.Unlock()
			}
		}()
	}
	served := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range servedBy {
			out[k] = v
		}
		clear(servedBy)
		return out
	}
	// settled is who answers once requests sent before a change have finished.
	settled := func() []string {
		served()
		time.Sleep(100 * time.Millisecond)
		served()
		time.Sleep(200 * time.Millisecond)
		return keys(served())
	}
	state := func(name string) string {
		var st struct {
			Groups []struct {
				Servers []struct{ Name, State string }
			}
		}
		require.NoError(t, api.call(ctx, "GET", "/api/v1/balancers/"+res.ID+"/status", nil, &st))
		for _, s := range st.Groups[0].Servers {
			if s.Name == name {
				return s.State
			}
		}
		return ""
	}
	time.Sleep(300 * time.Millisecond)
	first := served()
	require.Positive(t, first["working-zone1"])
	require.Positive(t, first["working-zone2"])
	require.Zero(t, first["standby"], "the standby serves nothing while a working server is up")

	// A monitor follows the balancer's events.
	evReq, _ := http.NewRequestWithContext(ctx, "GET", c.URL()+"/api/v1/balancers/"+res.ID+"/events", nil)
	evReq.Header.Set("Authorization", "Bearer "+admin)
	evResp, err := http.DefaultClient.Do(evReq)
	require.NoError(t, err)
	defer evResp.Body.Close()
	require.Equal(t, 200, evResp.StatusCode)
	events := make(chan map[string]any, 64)
	go func() {
		dec := json.NewDecoder(evResp.Body)
		for {
			var e map[string]any
			if dec.Decode(&e) != nil {
				close(events)
				return
			}
			events <- e
		}
	}()

	w1.srv.Close()
	require.Eventually(t, func() bool { return state("w1") == "down" }, 3*time.Second, 20*time.Millisecond, "the monitor shows w1 down")
	select {
	case e := <-events:
		require.Equal(t, "server_down", e["kind"])
		require.Equal(t, "w1", e["server"])
		require.Equal(t, "zone-1", e["zone"])
	case <-time.After(3 * time.Second):
		t.Fatal("no server_down event")
	}
	require.Equal(t, []string{"working-zone2"}, settled())

	w2.srv.Close()
	require.Eventually(t, func() bool { return state("w2") == "down" }, 3*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{"standby"}, settled(), "no working server is up: the standby takes over")

	startBackend(t, "working-zone1", w1.addr)
	require.Eventually(t, func() bool { return state("w1") == "up" }, 3*time.Second, 20*time.Millisecond, "w1 passes its checks again")
	require.Equal(t, []string{"working-zone1"}, settled(), "traffic returns to the working server")

	close(stop)
	wg.Wait()
	require.Zero(t, failed.Load(), "failed requests out of %d", sent.Load())
	t.Logf("%d requests, 0 failed", sent.Load())

	cancel()
	require.NoError(t, <-done)
	_, err = http.Get(url)
	require.Error(t, err, "the balancer stops with the server")
}

func keys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

func freeTCP(t *testing.T, host string) int {
	ln, err := net.Listen("tcp", host+":0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// A duration given as a bare number was read as nanoseconds: `"interval": 5` pushed by any
// team made the server spin checking health every 5ns. A number is now a field error, and a
// duration string outside the documented bounds is refused too; nothing is saved.
func TestBalancerDurationsAreBoundedStrings(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin := "shk_e2e0123456789abcdef"
	c, _ := openCenter(t, ctx, t.TempDir(), admin, config.Default().MaxArtifactBytes)
	api := apiClient{base: c.URL(), token: admin}
	var team struct{ ID string }
	require.NoError(t, api.call(ctx, "POST", "/api/v1/teams", map[string]string{"name": "t"}, &team))
	grantLoopback(t, rest{t, c.URL(), admin}, team.ID)
	spec := func(interval any) map[string]any {
		return map[string]any{
			"name": "outpatient", "address": "127.0.0.1",
			"listeners": []any{map[string]any{"name": "biz", "port": freeTCP(t, "127.0.0.1"), "protocol": "http", "default_group": "g"}},
			"groups": []any{map[string]any{
				"name":         "g",
				"servers":      []any{map[string]any{"name": "s1", "address": "127.0.0.21", "port": 8085, "weight": 1}},
				"health_check": map[string]any{"type": "tcp", "interval": interval},
			}},
		}
	}
	for interval, want := range map[any]string{
		5:     `"spec.groups[0].health_check.interval":"must be a duration string such as \"5s\", got number 5"`,
		"5ns": `"spec.groups[0].health_check.interval":"must be from 10ms to 1h, got 5ns"`,
		"2h":  `"spec.groups[0].health_check.interval":"must be from 10ms to 1h, got 2h0m0s"`,
	} {
		err := api.call(ctx, "POST", "/api/v1/balancers", map[string]any{"team_id": team.ID, "spec": spec(interval)}, nil)
		require.ErrorContains(t, err, "400 Bad Request", interval)
		require.ErrorContains(t, err, want, interval)
	}
	var list struct{ Items []any }
	require.NoError(t, api.call(ctx, "GET", "/api/v1/balancers", nil, &list))
	require.Empty(t, list.Items, "nothing saved")
	require.NoError(t, api.call(ctx, "POST", "/api/v1/balancers", map[string]any{"team_id": team.ID, "spec": spec("1s")}, nil))
	require.NoError(t, api.call(ctx, "GET", "/api/v1/balancers", nil, &list))
	require.Len(t, list.Items, 1)
}
