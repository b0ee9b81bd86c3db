package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A team drains a server of its balancer, undrains it, and rolls the balancer back to a kept
// version; the rollback is what runs after a restart (a new, pushed revision). Another team
// can do none of it.
func TestBalancerDrainUndrainRollback(t *testing.T) {
	root := startGrantsCenter(t)
	team, other := newTenant(t, root, "team-a"), newTenant(t, root, "team-b")
	grantLoopback(t, root, team.id)
	a, b := startBackend(t, "a", "127.0.0.1:0"), startBackend(t, "b", "127.0.0.1:0")
	server := func(name string, be *backend) map[string]any {
		return map[string]any{"name": name, "address": "127.0.0.1", "port": atoi(be.port())}
	}
	port := freeTCP(t, "127.0.0.1")
	spec := func(servers ...any) map[string]any {
		return map[string]any{"name": "outpatient", "address": "127.0.0.1",
			"listeners": []any{map[string]any{"name": "biz", "port": port, "protocol": "http", "default_group": "app"}},
			"groups":    []any{map[string]any{"name": "app", "servers": servers}}}
	}
	var res struct {
		ID             string
		Revision       int64
		PushedRevision int64 `json:"pushed_revision"`
	}
	team.api.ok(201, "POST", "/api/v1/balancers", map[string]any{"spec": spec(server("a", a), server("b", b))}, &res)
	base := "/api/v1/balancers/" + res.ID
	team.api.ok(409, "POST", base+"/groups/app/servers/a/drain", nil, nil)
	team.api.ok(200, "POST", base+"/push", nil, nil)
	var st balancerStatus
	team.api.ok(200, "GET", base+"/status", nil, &st)
	addr := st.Listeners[0].Address
	answers := func() map[string]bool {
		seen := map[string]bool{}
		for range 10 {
			seen[through(t, addr)] = true
		}
		return seen
	}
	require.Equal(t, map[string]bool{"a": true, "b": true}, answers())

	// Drain and undrain, by the team only.
	var drained struct {
		Server struct{ Name, State string }
	}
	other.api.ok(404, "POST", base+"/groups/app/servers/a/drain", nil, nil)
	team.api.ok(404, "POST", base+"/groups/app/servers/nosuch/drain", nil, nil)
	team.api.ok(404, "POST", base+"/groups/nosuch/servers/a/drain", nil, nil)
	team.api.ok(200, "POST", base+"/groups/app/servers/a/drain", map[string]any{"timeout": "5s"}, &drained)
	require.Equal(t, "draining", drained.Server.State)
	require.Equal(t, map[string]bool{"b": true}, answers(), "a drained server takes no request")
	other.api.ok(404, "POST", base+"/groups/app/servers/a/undrain", nil, nil)
	team.api.ok(200, "POST", base+"/groups/app/servers/a/undrain", nil, &drained)
	require.Equal(t, "up", drained.Server.State)
	require.Equal(t, map[string]bool{"a": true, "b": true}, answers())

	// Version 2 has b alone; rolling back to 1 brings a back, as a new pushed revision.
	team.api.ok(200, "PUT", base, map[string]any{"spec": spec(server("b", b))}, nil)
	team.api.ok(200, "POST", base+"/push", nil, nil)
	require.Equal(t, map[string]bool{"b": true}, answers())
	var versions struct {
		Items []struct {
			Version uint64
			Note    string
		}
	}
	other.api.ok(404, "GET", base+"/versions", nil, nil)
	team.api.ok(200, "GET", base+"/versions", nil, &versions)
	require.Len(t, versions.Items, 2)
	other.api.ok(404, "POST", base+"/rollback", map[string]any{"version": 1}, nil)
	refused(t, team.api, "version", "POST", base+"/rollback", map[string]any{"version": 99})
	var rolled struct{ Version uint64 }
	team.api.ok(200, "POST", base+"/rollback", map[string]any{"version": 1}, &rolled)
	require.Equal(t, uint64(3), rolled.Version)
	require.Equal(t, map[string]bool{"a": true, "b": true}, answers())
	team.api.ok(200, "GET", base, nil, &res)
	require.Equal(t, res.Revision, res.PushedRevision, "the rollback is saved as pushed")
	raw := team.api.ok(200, "GET", base, nil, nil)
	require.Contains(t, string(raw), `"name":"a"`, "the saved spec is the rolled-back one")
	team.api.ok(200, "GET", base+"/versions", nil, &versions)
	require.Equal(t, "rollback to 1", versions.Items[len(versions.Items)-1].Note)

	// The audit log names each operation.
	var audit struct{ Items []struct{ Action string } }
	team.api.ok(200, "GET", "/api/v1/audit?kind=balancer", nil, &audit)
	var actions []string
	for _, e := range audit.Items {
		actions = append(actions, e.Action)
	}
	joined := strings.Join(actions, ",")
	for _, want := range []string{"drain", "undrain", "rollback"} {
		require.Contains(t, joined, want)
	}
}
