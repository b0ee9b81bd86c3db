package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

// tenant is a team made by the admin, with a token of its own.
type tenant struct {
	id  string
	api rest
}

// newTenant has the admin create a team named name and a token for it.
func newTenant(t *testing.T, root rest, name string) tenant {
	t.Helper()
	var team struct{ ID string }
	root.ok(201, "POST", "/api/v1/teams", map[string]string{"name": name}, &team)
	var tok struct{ Secret string }
	root.ok(201, "POST", "/api/v1/tokens", map[string]string{"team_id": team.ID, "name": "t"}, &tok)
	return tenant{id: team.ID, api: rest{t, root.base, tok.Secret}}
}

// grantLoopback lets team listen on the loopback addresses (127.0.0.0/8) on every port and
// forward to loopback backends, as the tests' balancers and gateways do.
func grantLoopback(t *testing.T, root rest, team string) {
	t.Helper()
	root.ok(200, "PUT", "/api/v1/teams/"+team+"/grants", map[string]any{
		"listen": []string{"127.0.0.0/8"}, "ports": []any{map[string]int{"from": 1, "to": 65535}}, "local_backends": true,
	}, nil)
}

// refused requires a 400 whose fields hold field, and that the answer names none of hidden.
func refused(t *testing.T, c rest, field, method, path string, in any, hidden ...string) {
	t.Helper()
	status, raw := c.do(method, path, in)
	require.Equal(t, http.StatusBadRequest, status, "%s %s: %s", method, path, raw)
	var e struct {
		Error struct{ Fields map[string]string }
	}
	require.NoError(t, json.Unmarshal(raw, &e), "%s", raw)
	assert.Contains(t, e.Error.Fields, field, "%s %s: %s", method, path, raw)
	for _, h := range hidden {
		assert.NotContains(t, string(raw), h, "%s %s reveals another team's resource", method, path)
	}
}

// startGrantsCenter starts a center for the test and returns the admin's client.
func startGrantsCenter(t *testing.T) rest {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	admin := "shk_grants0123456789abcdef"
	c, _ := openCenter(t, ctx, t.TempDir(), admin, config.Default().MaxArtifactBytes)
	return rest{t, c.URL(), admin}
}

// Where a team's balancers and gateways listen, and which backends they reach on the
// server's own host, is the admin's grant: nothing without one, never every interface
// unless granted by name, loopback backends only when allowed; a narrowed grant refuses
// the next push.
func TestListenGrants(t *testing.T) {
	root := startGrantsCenter(t)
	team, other := newTenant(t, root, "team-a"), newTenant(t, root, "team-b")
	backend := startBackend(t, "app", "127.0.0.1:0")
	port := freeTCP(t, "127.0.0.1")
	spec := func(addr string, port int) map[string]any {
		return map[string]any{"name": "outpatient", "address": addr,
			"listeners": []any{map[string]any{"name": "biz", "port": port, "protocol": "http", "default_group": "app"}},
			"groups":    []any{map[string]any{"name": "app", "servers": []any{map[string]any{"address": "127.0.0.1", "port": atoi(backend.port()), "weight": 1}}}}}
	}

	// No grant: nowhere, for the team and for the admin creating it for the team.
	refused(t, team.api, "spec.address", "POST", "/api/v1/balancers", map[string]any{"spec": spec("0.0.0.0", port)})
	refused(t, team.api, "spec.address", "POST", "/api/v1/balancers", map[string]any{"spec": spec("", port)})
	refused(t, team.api, "spec.address", "POST", "/api/v1/balancers", map[string]any{"spec": spec("127.0.0.1", port)})
	refused(t, root, "spec.address", "POST", "/api/v1/balancers", map[string]any{"team_id": team.id, "spec": spec("127.0.0.1", port)})

	// A grant is the admin's; a team reads its own only.
	grant := map[string]any{"listen": []string{"127.0.0.1", "0.0.0.0/0", "::/0"}, "ports": []any{map[string]int{"from": port, "to": port}}}
	team.api.ok(403, "PUT", "/api/v1/teams/"+team.id+"/grants", grant, nil)
	root.ok(404, "PUT", "/api/v1/teams/tm_nosuchteam/grants", grant, nil)
	refused(t, root, "listen[0]", "PUT", "/api/v1/teams/"+team.id+"/grants", map[string]any{"listen": []string{"localhost"}})
	refused(t, root, "ports[0]", "PUT", "/api/v1/teams/"+team.id+"/grants", map[string]any{"ports": []any{map[string]int{"from": 9, "to": 8}}})
	root.ok(200, "PUT", "/api/v1/teams/"+team.id+"/grants", grant, nil)
	var got struct{ Listen []string }
	team.api.ok(200, "GET", "/api/v1/teams/"+team.id+"/grants", nil, &got)
	require.Equal(t, grant["listen"], got.Listen)
	other.api.ok(404, "GET", "/api/v1/teams/"+team.id+"/grants", nil, nil)

	// Every interface only by name (0.0.0.0/0 does not grant it); an ungranted port; a
	// loopback backend without local_backends.
	refused(t, team.api, "spec.address", "POST", "/api/v1/balancers", map[string]any{"spec": spec("0.0.0.0", port)})
	refused(t, team.api, "spec.address", "POST", "/api/v1/balancers", map[string]any{"spec": spec("", port)})
	refused(t, team.api, "spec.listeners[0].port", "POST", "/api/v1/balancers", map[string]any{"spec": spec("127.0.0.1", port+1)})
	refused(t, team.api, "spec.groups[0].servers[0].address", "POST", "/api/v1/balancers", map[string]any{"spec": spec("127.0.0.1", port)})
	for _, local := range []string{"127.0.0.2", "::1", "::ffff:127.0.0.1", "0.0.0.0", "169.254.169.254", "fe80::1", "localhost", "x.localhost"} {
		s := spec("127.0.0.1", port)
		s["groups"].([]any)[0].(map[string]any)["servers"].([]any)[0].(map[string]any)["address"] = local
		refused(t, team.api, "spec.groups[0].servers[0].address", "POST", "/api/v1/balancers", map[string]any{"spec": s})
	}

	grant["local_backends"] = true
	root.ok(200, "PUT", "/api/v1/teams/"+team.id+"/grants", grant, nil)
	var lb struct{ ID string }
	team.api.ok(201, "POST", "/api/v1/balancers", map[string]any{"spec": spec("127.0.0.1", port)}, &lb)
	team.api.ok(200, "POST", "/api/v1/balancers/"+lb.ID+"/push", nil, nil)
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "app", string(body))
	// A listener added on its own is held to the grant as the whole spec is.
	refused(t, team.api, "port", "POST", "/api/v1/balancers/"+lb.ID+"/listeners",
		map[string]any{"name": "more", "port": port + 1, "protocol": "http", "default_group": "app"})
	// Granted by name, every interface may be saved (not pushed here: tests stay on loopback).
	grant["listen"] = []string{"0.0.0.0", "::"}
	root.ok(200, "PUT", "/api/v1/teams/"+team.id+"/grants", grant, nil)
	var wide struct{ ID string }
	s := spec("", port)
	s["name"] = "wide"
	team.api.ok(201, "POST", "/api/v1/balancers", map[string]any{"spec": s}, &wide)

	// Narrowed: the next push of the saved balancer is refused, naming the listener.
	grant["listen"] = []string{"127.0.0.1"}
	grant["ports"] = []any{map[string]int{"from": port + 1, "to": port + 1}}
	root.ok(200, "PUT", "/api/v1/teams/"+team.id+"/grants", grant, nil)
	refused(t, team.api, "spec.listeners[0].port", "POST", "/api/v1/balancers/"+lb.ID+"/push", nil)
	refused(t, team.api, "spec.address", "POST", "/api/v1/balancers/"+wide.ID+"/push", nil)

	// Gateways are balancers too, and an API's upstream URL is a backend.
	gw := map[string]any{"name": "gw", "address": "127.0.0.1",
		"listeners": []any{map[string]any{"name": "api", "port": port + 1, "protocol": "http"}},
		"groups":    []any{map[string]any{"name": "g", "servers": []any{map[string]any{"address": "10.9.9.9", "port": 80, "weight": 1}}}},
		"apis":      []any{map[string]any{"name": "a", "method": "POST", "path": "/a", "upstream": map[string]any{"url": "http://127.0.0.1:9"}}}}
	refused(t, other.api, "spec.address", "POST", "/api/v1/gateways", map[string]any{"spec": gw})
	grant["local_backends"] = false
	root.ok(200, "PUT", "/api/v1/teams/"+team.id+"/grants", grant, nil)
	refused(t, team.api, "spec.apis[0].upstream.url", "POST", "/api/v1/gateways", map[string]any{"spec": gw})
	gw["apis"].([]any)[0].(map[string]any)["upstream"] = map[string]any{"url": "http://10.9.9.9:80"}
	team.api.ok(201, "POST", "/api/v1/gateways", map[string]any{"spec": gw}, nil)
}
