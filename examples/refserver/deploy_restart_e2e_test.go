package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The reference server stopping in the middle of a rolling upgrade leaves a state it reports
// after the restart — the deployment interrupted, each instance on the version it runs, the
// released version unchanged — with the instances serving again, and from there the
// operator can resume (deploy the version again) or roll back (back to the released version).
func TestDeployRestartMidRollout(t *testing.T) {
	dir := t.TempDir()
	admin := "shk_e2erestart0123456789abcdef"
	v1, v2 := newArtifact(t, ""), newArtifact(t, demoAppTrailer)
	limit := v2.size + 1024

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, done := openCenter(t, ctx, dir, admin, limit)
	root := rest{t: t, base: c.URL(), token: admin}
	var team, project struct{ ID string }
	root.ok(201, "POST", "/api/v1/teams", map[string]string{"name": "医保开发团队"}, &team)
	root.ok(201, "POST", "/api/v1/projects", map[string]string{"team_id": team.ID, "name": "核心经办"}, &project)
	var tok struct{ Secret string }
	root.ok(201, "POST", "/api/v1/tokens", map[string]string{"team_id": team.ID, "name": "ci"}, &tok)
	api := rest{t: t, base: c.URL(), token: tok.Secret}
	op := newOutpatient(t, root, api, team.ID, project.ID)
	base := "/api/v1/deploy/apps/" + op.app
	api.ok(200, "POST", base+"/push", nil, nil)
	for _, v := range []struct {
		name string
		a    artifact
	}{{"v1", v1}, {"v2", v2}} {
		status, raw := api.put(base+"/versions/"+v.name, v.a.digest, v.a.reader(t, false), v.a.size)
		require.Equal(t, 201, status, "%s", raw)
	}
	var d deployment
	api.ok(202, "POST", base+"/deployments", map[string]any{"version": "v1", "nodes": []string{"n1", "n2", "n3"}, "strategy": map[string]any{"type": "all-at-once"}}, &d)
	require.Equal(t, "succeeded", api.waitDeployment(d.ID).State)

	type status struct {
		Current, Busy string
		Instances     []struct {
			Node, Version string
			Status        struct{ State string }
		}
	}
	// versions returns the released version and each node's, once the app is no longer busy
	// (after a restart the server starts the instances again in the background) and every
	// instance runs.
	versions := func() (string, map[string]string) {
		var st status
		require.Eventually(t, func() bool {
			st = status{} // "busy" is left out when empty
			api.ok(200, "GET", base+"/status", nil, &st)
			if st.Busy != "" {
				return false
			}
			for _, i := range st.Instances {
				if i.Status.State != "running" {
					return false
				}
			}
			return true
		}, 20*time.Second, 50*time.Millisecond, "instances running")
		out := map[string]string{}
		for _, i := range st.Instances {
			out[i.Node] = i.Version
		}
		return st.Current, out
	}

	// interrupt starts a rolling deployment of version (one instance per batch, a long pause
	// between batches), stops the server once the first batch is through, and starts it again.
	interrupt := func(version string) string {
		var d deployment
		api.ok(202, "POST", base+"/deployments", map[string]any{"version": version,
			"strategy": map[string]any{"type": "rolling", "batch_size": 1, "pause": "1m"}}, &d)
		require.Eventually(t, func() bool {
			api.ok(200, "GET", "/api/v1/deploy/deployments/"+d.ID, nil, &d)
			return len(d.Steps) == 1
		}, 30*time.Second, 20*time.Millisecond, "first batch of %s", version)
		require.Equal(t, "running", d.State, "the deployment waits between batches")
		cancel()
		require.NoError(t, <-done)
		ctx, cancel = context.WithCancel(context.Background())
		c, done = openCenter(t, ctx, dir, admin, limit)
		root.base, api.base = c.URL(), c.URL()
		return d.ID
	}

	// Interrupted on the way to v2, then resumed.
	id := interrupt("v2")
	api.ok(200, "GET", "/api/v1/deploy/deployments/"+id, nil, &d)
	require.Equal(t, "interrupted", d.State)
	require.NotEmpty(t, d.Error, "says why it stopped")
	current, on := versions()
	require.Equal(t, "v1", current, "an interrupted deployment releases nothing")
	require.Equal(t, map[string]string{"n1": "v2", "n2": "v1", "n3": "v1"}, on, "each instance reported on the version it runs")
	require.Eventually(t, func() bool {
		seen := map[string]bool{}
		for range 12 {
			a, err := get(http.DefaultClient, op.lbURL)
			if err != nil {
				return false
			}
			seen[a.Version] = true
		}
		return seen["v1"] && seen["v2"]
	}, 20*time.Second, 100*time.Millisecond, "the instances run again after the restart, as they were")
	api.ok(202, "POST", base+"/deployments", map[string]any{"version": "v2", "strategy": map[string]any{"type": "rolling", "batch_size": 2}}, &d)
	require.Equal(t, "succeeded", api.waitDeployment(d.ID).State, d.Error)
	current, on = versions()
	require.Equal(t, "v2", current)
	require.Equal(t, map[string]string{"n1": "v2", "n2": "v2", "n3": "v2"}, on)

	// Interrupted on the way back to v1, then rolled back to the released v2.
	id = interrupt("v1")
	api.ok(200, "GET", "/api/v1/deploy/deployments/"+id, nil, &d)
	require.Equal(t, "interrupted", d.State)
	_, on = versions()
	require.Equal(t, map[string]string{"n1": "v1", "n2": "v2", "n3": "v2"}, on)
	api.ok(202, "POST", base+"/rollback", nil, &d)
	d = api.waitDeployment(d.ID)
	require.Equal(t, "succeeded", d.State, d.Error)
	require.Equal(t, "v2", d.Version, "a rollback after an interrupted deployment returns to the released version")
	current, on = versions()
	require.Equal(t, "v2", current)
	require.Equal(t, map[string]string{"n1": "v2", "n2": "v2", "n3": "v2"}, on)
	require.Equal(t, map[string]bool{"v2": true}, versionsNow(t, op.lbURL))

	var hist struct{ Items []deployment }
	api.ok(200, "GET", base+"/deployments", nil, &hist)
	var states []string
	for _, h := range hist.Items {
		states = append(states, h.Type+":"+h.Version+":"+h.State)
	}
	require.Equal(t, []string{"deploy:v1:succeeded", "deploy:v2:interrupted", "deploy:v2:succeeded",
		"deploy:v1:interrupted", "rollback:v2:succeeded"}, states, "the history keeps every deployment")
	cancel()
	require.NoError(t, <-done)
}
