package center

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

type client struct {
	t     *testing.T
	base  string
	token string
}

// grantLoopback lets team listen on loopback addresses, on every port, and forward to
// loopback backends, as the tests' balancers do.
func (c client) grantLoopback(team string) {
	c.t.Helper()
	status, out := c.call("PUT", "/api/v1/teams/"+team+"/grants", map[string]any{
		"listen": []string{"127.0.0.0/8"}, "ports": []any{map[string]int{"from": 1, "to": 65535}}, "local_backends": true})
	require.Equal(c.t, 200, status, out)
}

func (c client) call(method, path string, in any) (int, map[string]any) {
	c.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, body)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func freePort(t *testing.T, network string) int {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func askA(t *testing.T, server, source, name string) string {
	c := &dns.Client{Timeout: time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(source)}}}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	in, _, err := c.Exchange(m, server)
	if err != nil || len(in.Answer) == 0 {
		return ""
	}
	return in.Answer[0].(*dns.A).A.String()
}

// What was pushed runs again after a restart: the balancer, the zone (with its switch) and
// the DNS views, from the store alone.
func TestRestartRestoresTheDataPlane(t *testing.T) {
	cfg := testConfig(t)
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
	cfg.DNS.Listen = dnsAddr
	token := "shk_0123456789abcdef0123"
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") })}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go backend.Serve(bl)
	defer backend.Close()
	lbPort := freePort(t, "tcp")

	start := func() (client, func()) {
		c, err := Open(context.Background(), cfg, Options{AdminToken: token})
		require.NoError(t, err)
		stop, done := serve(t, c)
		return client{t: t, base: c.URL(), token: token}, func() { stop(); require.NoError(t, <-done) }
	}
	api, stop := start()
	status, team := api.call("POST", "/api/v1/teams", map[string]any{"name": "t"})
	require.Equal(t, 201, status)
	teamID := team["id"].(string)
	api.grantLoopback(teamID)

	zone := map[string]any{"origin": "ybj.internal", "record_sets": []any{map[string]any{
		"name": "api", "type": "A", "active": "*", "centers": map[string][]string{"a": {"10.1.0.1"}, "b": {"10.2.0.1"}}}}}
	status, z := api.call("POST", "/api/v1/zones", map[string]any{"team_id": teamID, "spec": zone})
	require.Equal(t, 201, status, z)
	status, _ = api.call("POST", "/api/v1/zones/"+z["id"].(string)+"/push", nil)
	require.Equal(t, 200, status)

	status, out := api.call("PUT", "/api/v1/dns/views", map[string]any{"views": []any{map[string]any{"name": "b-clients", "center": "b", "networks": []string{"127.0.0.2/32"}}}})
	require.Equal(t, 200, status, out)
	status, out = api.call("PUT", "/api/v1/dns/views", map[string]any{"views": []any{map[string]any{"name": "bad", "center": "b", "networks": []string{"nowhere"}}}})
	require.Equal(t, 400, status)
	require.Contains(t, out["error"].(map[string]any)["fields"], "views[0].networks[0]")
	require.Equal(t, "10.2.0.1", askA(t, dnsAddr, "127.0.0.2", "api.ybj.internal."), "the refused views changed nothing")
	require.Equal(t, "10.1.0.1", askA(t, dnsAddr, "127.0.0.1", "api.ybj.internal."))

	_, bport, _ := net.SplitHostPort(bl.Addr().String())
	var port int
	fmt.Sscan(bport, &port)
	balancer := map[string]any{"name": "app", "address": "127.0.0.1",
		"listeners": []any{map[string]any{"name": "web", "port": lbPort, "protocol": "http", "default_group": "app"}},
		"groups":    []any{map[string]any{"name": "app", "servers": []any{map[string]any{"address": "127.0.0.1", "port": port, "weight": 1}}}}}
	status, b := api.call("POST", "/api/v1/balancers", map[string]any{"team_id": teamID, "spec": balancer})
	require.Equal(t, 201, status, b)
	status, _ = api.call("POST", "/api/v1/balancers/"+b["id"].(string)+"/push", nil)
	require.Equal(t, 200, status)
	// An unpushed edit must not be what comes back after the restart.
	balancer["listeners"].([]any)[0].(map[string]any)["port"] = freePort(t, "tcp")
	status, _ = api.call("PUT", "/api/v1/balancers/"+b["id"].(string), map[string]any{"spec": balancer})
	require.Equal(t, 200, status)
	stop()

	_, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/", lbPort))
	require.Error(t, err, "the balancer stopped with the server")

	_, stop = start()
	defer stop()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", lbPort))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "app", string(body), "the last pushed balancer serves again")
	require.Equal(t, "10.2.0.1", askA(t, dnsAddr, "127.0.0.2", "api.ybj.internal."), "views and zone are back")
	require.Equal(t, "10.1.0.1", askA(t, dnsAddr, "127.0.0.1", "api.ybj.internal."))
}
