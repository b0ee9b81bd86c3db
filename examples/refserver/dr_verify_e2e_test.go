package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A DR plan's verify step makes the server fetch the URLs a team writes, so a team may probe
// only its own services: an address and port its grants let it listen on, or a name inside
// one of its own pushed zones on such a port. Checked at save, for the team and for the admin
// saving the team's plan, and again when a run starts, as a grant may have been narrowed.
func TestDRVerifyURLsAreTheTeamsOwn(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin := "shk_drverify0123456789abcdef"
	root, _ := openDNSCenter(t, ctx, admin)
	team, other := newTenant(t, root, "team-a"), newTenant(t, root, "team-b")
	port := freeTCP(t, "127.0.0.1")
	grant := map[string]any{"listen": []string{"127.0.0.5"}, "ports": []any{map[string]int{"from": port, "to": port}}}
	root.ok(200, "PUT", "/api/v1/teams/"+team.id+"/grants", grant, nil)

	zone := func(origin string) map[string]any {
		return map[string]any{"origin": origin, "record_sets": []any{map[string]any{"name": "app", "type": "A", "data": []string{"127.0.0.5"}}}}
	}
	var own, theirs struct{ ID string }
	team.api.ok(201, "POST", "/api/v1/zones", map[string]any{"spec": zone("a.internal.")}, &own)
	team.api.ok(200, "POST", "/api/v1/zones/"+own.ID+"/push", nil, nil)
	other.api.ok(201, "POST", "/api/v1/zones", map[string]any{"spec": zone("b.internal.")}, &theirs)
	other.api.ok(200, "POST", "/api/v1/zones/"+theirs.ID+"/push", nil, nil)
	var saved struct{ ID string }
	team.api.ok(201, "POST", "/api/v1/zones", map[string]any{"spec": zone("unpushed.internal.")}, &saved)

	plan := func(urls ...string) map[string]any {
		return map[string]any{"spec": map[string]any{"name": "verify", "steps": []any{map[string]any{"kind": "verify", "urls": urls}}}}
	}
	ok := fmt.Sprintf("http://127.0.0.5:%d/healthz", port)
	for _, u := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/", freeTCP(t, "127.0.0.1")), // a loopback port of the host
		fmt.Sprintf("http://127.0.0.5:%d/", port+1),                  // a port not granted
		"http://127.0.0.5/",                       // port 80, not granted
		fmt.Sprintf("http://127.0.0.6:%d/", port), // an address not granted
		fmt.Sprintf("http://[::1]:%d/", port),
		fmt.Sprintf("http://localhost:%d/", port),
		fmt.Sprintf("http://127.1:%d/", port), // 127.0.0.1 to some resolvers
		fmt.Sprintf("http://2130706433:%d/", port),
		fmt.Sprintf("http://169.254.169.254:%d/", port),
		fmt.Sprintf("http://app.b.internal:%d/", port),        // another team's zone
		fmt.Sprintf("http://app.unpushed.internal:%d/", port), // a zone not pushed
		fmt.Sprintf("http://app.a.internal.evil:%d/", port),   // not inside
		fmt.Sprintf("http://user:pw@127.0.0.5:%d/", port),     // credentials
	} {
		refused(t, team.api, "spec.steps[0].urls[1]", "POST", "/api/v1/dr/plans", plan(ok, u), theirs.ID)
		refused(t, root, "spec.steps[0].urls[1]", "POST", "/api/v1/dr/plans", map[string]any{"team_id": team.id, "spec": plan(ok, u)["spec"]})
	}

	// Its own: a granted address and port, or a name in its own pushed zone on a granted port.
	var p struct{ ID string }
	team.api.ok(201, "POST", "/api/v1/dr/plans", plan(ok, fmt.Sprintf("https://APP.a.internal.:%d/healthz", port)), &p)
	team.api.ok(200, "POST", "/api/v1/dr/plans/"+p.ID+"/drill", nil, nil)

	// Narrowed after the save: the run does not start, and the field is named.
	grant["ports"] = []any{map[string]int{"from": port + 1, "to": port + 1}}
	root.ok(200, "PUT", "/api/v1/teams/"+team.id+"/grants", grant, nil)
	refused(t, team.api, "spec.steps[0].urls[0]", "POST", "/api/v1/dr/plans/"+p.ID+"/switchover", nil)
	refused(t, team.api, "spec.steps[0].urls[1]", "POST", "/api/v1/dr/plans/"+p.ID+"/drill", nil)
	var runs struct{ Items []struct{ ID string } }
	team.api.ok(200, "GET", "/api/v1/dr/runs", nil, &runs)
	if len(runs.Items) != 1 {
		t.Fatalf("runs: %+v; want the drill only", runs.Items)
	}
}

// A name in the team's zone resolves through this center's DNS when probed, and reaches only
// an address and port the team may listen on: a record of the team's pointing at the host's
// loopback (or anywhere else) reaches nothing there.
func TestDRVerifyNameReachesOnlyGrantedAddresses(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin := "shk_drverifydns0123456789abcdef"
	root, _ := openDNSCenter(t, ctx, admin)
	team := newTenant(t, root, "team-a")
	service := startBackend(t, "service", "127.0.0.5:0")
	port := atoi(service.port())
	var hostHits atomic.Int32
	host := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hostHits.Add(1) })}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err)
	go host.Serve(ln)
	t.Cleanup(func() { host.Close() })
	root.ok(200, "PUT", "/api/v1/teams/"+team.id+"/grants", map[string]any{
		"listen": []string{"127.0.0.5"}, "ports": []any{map[string]int{"from": port, "to": port}}}, nil)
	var z struct{ ID string }
	team.api.ok(201, "POST", "/api/v1/zones", map[string]any{"spec": map[string]any{"origin": "a.internal.", "record_sets": []any{
		map[string]any{"name": "app", "type": "A", "data": []string{"127.0.0.5"}},
		map[string]any{"name": "evil", "type": "A", "data": []string{"127.0.0.1"}}}}}, &z)
	team.api.ok(200, "POST", "/api/v1/zones/"+z.ID+"/push", nil, nil)

	switchover := func(name, url string) (state, errText string) {
		var p, run struct{ ID string }
		team.api.ok(201, "POST", "/api/v1/dr/plans", map[string]any{"spec": map[string]any{"name": name, "steps": []any{
			map[string]any{"kind": "verify", "urls": []string{url}, "timeout": "500ms"}}}}, &p)
		team.api.ok(200, "POST", "/api/v1/dr/plans/"+p.ID+"/switchover", nil, &run)
		var got struct {
			State string
			Steps []struct{ Error string }
		}
		require.Eventually(t, func() bool {
			team.api.ok(200, "GET", "/api/v1/dr/runs/"+run.ID, nil, &got)
			return got.State != "running"
		}, 10*time.Second, 20*time.Millisecond)
		return got.State, got.Steps[0].Error
	}
	state, _ := switchover("own", fmt.Sprintf("http://app.a.internal:%d/", port))
	require.Equal(t, "succeeded", state, "the team's own service, by its name in the team's zone")
	state, errText := switchover("evil", fmt.Sprintf("http://evil.a.internal:%d/", port))
	require.Equal(t, "failed", state)
	require.Contains(t, errText, "unreachable")
	require.Zero(t, hostHits.Load(), "the probe reached the host's loopback through the team's record")
}
