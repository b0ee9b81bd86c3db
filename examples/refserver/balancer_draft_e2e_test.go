package main

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// balancerStatus is what GET /api/v1/balancers/{id}/status answers, as far as these tests look.
type balancerStatus struct {
	Version   uint64
	Listeners []struct{ Name, Address string }
	Groups    []struct {
		Name    string
		Servers []struct {
			Name, State string
			Weight      int
		}
	}
}

// through sends a GET to the balancer's listener at addr and returns who answered.
func through(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, 200, resp.StatusCode, "%s", body)
	return string(body)
}

// A console builds a balancer step by step: it saves an empty one (a draft), adds a group
// whose server has no weight (the default 1) and a listener through the part endpoints, and
// pushes; the empty draft may be pushed too, and then listens nowhere.
func TestBalancerBuiltStepByStep(t *testing.T) {
	root := startGrantsCenter(t)
	team := newTenant(t, root, "team-a")
	grantLoopback(t, root, team.id)
	backend := startBackend(t, "app", "127.0.0.1:0")

	var res struct{ ID string }
	team.api.ok(201, "POST", "/api/v1/balancers", map[string]any{"spec": map[string]any{"name": "draft", "address": "127.0.0.1"}}, &res)
	team.api.ok(200, "POST", "/api/v1/balancers/"+res.ID+"/push", nil, nil)
	var st balancerStatus
	team.api.ok(200, "GET", "/api/v1/balancers/"+res.ID+"/status", nil, &st)
	require.Empty(t, st.Listeners)

	status, raw := team.api.do("POST", "/api/v1/balancers/"+res.ID+"/groups", map[string]any{"name": "app",
		"servers": []any{map[string]any{"name": "s1", "address": "127.0.0.1", "port": atoi(backend.port())}}})
	require.Less(t, status, 300, "%s", raw)
	status, raw = team.api.do("POST", "/api/v1/balancers/"+res.ID+"/listeners", map[string]any{"name": "biz", "port": freeTCP(t, "127.0.0.1"), "protocol": "http", "default_group": "app"})
	require.Less(t, status, 300, "%s", raw)
	team.api.ok(200, "POST", "/api/v1/balancers/"+res.ID+"/push", nil, nil)

	team.api.ok(200, "GET", "/api/v1/balancers/"+res.ID+"/status", nil, &st)
	require.Len(t, st.Listeners, 1)
	require.Equal(t, 1, st.Groups[0].Servers[0].Weight, "a server without a weight has the default 1")
	require.Equal(t, "app", through(t, st.Listeners[0].Address))
}
