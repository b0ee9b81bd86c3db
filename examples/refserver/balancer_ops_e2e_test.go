package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
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

// A rollback is what runs after a restart: it was saved as a new, pushed revision.
func TestBalancerRollbackSurvivesRestart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dir, admin := filepath.Join(t.TempDir(), "data"), "shk_rollback0123456789abcdef"
	c, done := openCenter(t, ctx, dir, admin, config.Default().MaxArtifactBytes)
	root := rest{t, c.URL(), admin}
	var team struct{ ID string }
	root.ok(201, "POST", "/api/v1/teams", map[string]string{"name": "team-a"}, &team)
	grantLoopback(t, root, team.ID)
	a, b := startBackend(t, "a", "127.0.0.1:0"), startBackend(t, "b", "127.0.0.1:0")
	port := freeTCP(t, "127.0.0.1")
	spec := func(be *backend) map[string]any {
		return map[string]any{"name": "outpatient", "address": "127.0.0.1",
			"listeners": []any{map[string]any{"name": "biz", "port": port, "protocol": "http", "default_group": "app"}},
			"groups":    []any{map[string]any{"name": "app", "servers": []any{map[string]any{"address": "127.0.0.1", "port": atoi(be.port())}}}}}
	}
	var res struct{ ID string }
	root.ok(201, "POST", "/api/v1/balancers", map[string]any{"team_id": team.ID, "spec": spec(a)}, &res)
	root.ok(200, "POST", "/api/v1/balancers/"+res.ID+"/push", nil, nil)
	root.ok(200, "PUT", "/api/v1/balancers/"+res.ID, map[string]any{"spec": spec(b)}, nil)
	root.ok(200, "POST", "/api/v1/balancers/"+res.ID+"/push", nil, nil)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	require.Equal(t, "b", through(t, addr))
	root.ok(200, "POST", "/api/v1/balancers/"+res.ID+"/rollback", map[string]any{"version": 1}, nil)
	require.Equal(t, "a", through(t, addr))

	cancel()
	require.NoError(t, <-done)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	c, _ = openCenter(t, ctx, dir, admin, config.Default().MaxArtifactBytes)
	root = rest{t, c.URL(), admin}
	require.Eventually(t, func() bool {
		status, _ := root.do("GET", "/api/v1/balancers/"+res.ID+"/status", nil)
		return status == 200
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, "a", through(t, addr), "the restarted server runs the rolled-back config")
}
