package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A balancer or gateway whose first push was refused (its port is taken) leaves no series
// in /metrics, and one deleted leaves none either: a series of a balancer that runs no
// config carried balancer="" and stayed for as long as the server ran.
func TestMetricsOfRefusedAndDeletedBalancers(t *testing.T) {
	root := startGrantsCenter(t)
	team := newTenant(t, root, "医保开发团队")
	grantLoopback(t, root, team.id)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	// metrics are the lines of /metrics that hold any of subs.
	metrics := func(subs ...string) []string {
		t.Helper()
		resp, err := http.Get(root.base + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var out []string
		for line := range strings.Lines(string(body)) {
			for _, s := range subs {
				if strings.Contains(line, s) {
					out = append(out, strings.TrimSpace(line))
					break
				}
			}
		}
		return out
	}
	spec := func(name string, port int) map[string]any {
		return map[string]any{"name": name, "address": "127.0.0.1",
			"listeners": []any{map[string]any{"name": "web", "port": port, "protocol": "http", "default_group": "g"}},
			"groups":    []any{map[string]any{"name": "g", "servers": []any{map[string]any{"name": "s1", "address": "127.0.0.1", "port": 8085, "weight": 1}}}}}
	}
	var lb, gw struct{ ID string }
	team.api.ok(201, "POST", "/api/v1/balancers", map[string]any{"spec": spec("outpatient", port)}, &lb)
	refused(t, team.api, "spec.listeners", "POST", "/api/v1/balancers/"+lb.ID+"/push", nil)
	gwSpec := spec("ybj-gateway", port)
	delete(gwSpec["listeners"].([]any)[0].(map[string]any), "default_group")
	team.api.ok(201, "POST", "/api/v1/gateways", map[string]any{"spec": gwSpec}, &gw)
	refused(t, team.api, "spec.listeners", "POST", "/api/v1/gateways/"+gw.ID+"/push", nil)
	require.Empty(t, metrics(`balancer=""`, lb.ID, gw.ID), "series of refused pushes")

	// Pushed, then deleted: the series come and go.
	free := freeTCP(t, "127.0.0.1")
	team.api.ok(200, "PUT", "/api/v1/balancers/"+lb.ID, map[string]any{"spec": spec("outpatient", free)}, nil)
	team.api.ok(200, "POST", "/api/v1/balancers/"+lb.ID+"/push", nil, nil)
	require.Contains(t, metrics(lb.ID), `lb_config_version{balancer="outpatient",resource="`+lb.ID+`"} 1`)
	team.api.ok(204, "DELETE", "/api/v1/balancers/"+lb.ID, nil, nil)
	require.Empty(t, metrics(lb.ID, `balancer="outpatient"`), "series of a deleted balancer")
}
