package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// The demo's application DR relationship (应用同步): center B's 核心经办 bound to A's, with a
// config task (A's app configuration copied to B, so B has the outpatient app without anyone
// creating it there) and a version task (a version released in A is released in B on B's own
// three local nodes).

// demoAppSync is what seedAppSync made, for the printout.
type demoAppSync struct {
	configTask, versionTask string
	bApp                    string
}

// projectID finds the demo team's project of that name in a center.
func projectID(ctx context.Context, dc *demoCenter, name string) (string, error) {
	admin := apiClient{base: dc.url, token: dc.adminToken}
	var projects struct{ Items []struct{ ID, Name string } }
	if err := admin.call(ctx, "GET", "/api/v1/projects?team_id="+url.QueryEscape(dc.teamID), nil, &projects); err != nil {
		return "", err
	}
	for _, p := range projects.Items {
		if p.Name == name {
			return p.ID, nil
		}
	}
	return "", errors.New("no project " + name)
}

// seedAppSync registers B's nodes on hosts, binds B's 核心经办 to A's with A's team token,
// starts the two tasks, and waits until A's released version runs in B too.
func seedAppSync(ctx context.Context, ca, cb *demoCenter, hosts []string) (demoAppSync, error) {
	var out demoAppSync
	aProj, err := projectID(ctx, ca, demoProjects[0].name)
	if err != nil {
		return out, err
	}
	bProj, err := projectID(ctx, cb, demoProjects[0].name)
	if err != nil {
		return out, err
	}
	admin := apiClient{base: cb.url, token: cb.adminToken}
	team := apiClient{base: cb.url, token: cb.teamToken}
	nodeMap := map[string]string{}
	for i, h := range hosts {
		name := fmt.Sprintf("app-%d", i+1)
		var n struct{ ID string }
		if err := admin.call(ctx, "POST", "/api/v1/deploy/nodes", map[string]any{"team_id": cb.teamID,
			"spec": map[string]any{"name": name, "driver": "local", "host": strings.TrimSpace(h), "labels": map[string]string{"center": cb.name}}}, &n); err != nil {
			return out, err
		}
		if err := admin.call(ctx, "POST", "/api/v1/deploy/nodes/"+n.ID+"/push", nil, nil); err != nil {
			return out, err
		}
		nodeMap[name] = name // A's app-N runs in B on B's app-N
	}
	var binding struct{ ID string }
	if err := team.call(ctx, "POST", "/api/v1/appsync/bindings", map[string]any{"spec": map[string]any{
		"name": "核心经办 A→B", "kind": "project", "target": bProj,
		"source": map[string]any{"peer": ca.name, "id": aProj, "token": ca.teamToken}}}, &binding); err != nil {
		return out, err
	}
	if err := team.call(ctx, "POST", "/api/v1/appsync/bindings/"+binding.ID+"/push", nil, nil); err != nil {
		return out, err
	}
	for _, t := range []struct {
		id   *string
		spec map[string]any
	}{
		{&out.configTask, map[string]any{"name": "项目信息同步", "kind": "config"}},
		{&out.versionTask, map[string]any{"name": "应用版本同步", "kind": "version", "version": map[string]any{"mode": "release", "nodes": nodeMap}}},
	} {
		t.spec["binding"] = binding.ID
		var res struct{ ID string }
		if err := team.call(ctx, "POST", "/api/v1/appsync/tasks", map[string]any{"spec": t.spec}, &res); err != nil {
			return out, err
		}
		if err := team.call(ctx, "POST", "/api/v1/appsync/tasks/"+res.ID+"/push", nil, nil); err != nil {
			return out, err
		}
		*t.id = res.ID
	}
	// B follows A: its copy of the app, then A's released version running there.
	deadline := time.Now().Add(90 * time.Second)
	for {
		var apps struct{ Items []struct{ ID, Name string } }
		if err := team.call(ctx, "GET", "/api/v1/deploy/apps?project_id="+url.QueryEscape(bProj), nil, &apps); err != nil {
			return out, err
		}
		if len(apps.Items) > 0 {
			out.bApp = apps.Items[0].ID
			var st struct{ Current string }
			if err := team.call(ctx, "GET", "/api/v1/deploy/apps/"+out.bApp+"/status", nil, &st); err == nil && st.Current != "" {
				return out, nil
			}
		}
		if time.Now().After(deadline) {
			var ver struct {
				State     string
				LastError string `json:"last_error"`
			}
			_ = team.call(ctx, "GET", "/api/v1/appsync/tasks/"+out.versionTask+"/status", nil, &ver)
			return out, fmt.Errorf("center B has not released A's version after 90s: version task %s %s", ver.State, ver.LastError)
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// printAppSync shows how to see B follow A.
func printAppSync(w io.Writer, ca, cb *demoCenter, s demoAppSync) {
	fmt.Fprintf(w, `
appsync (应用同步: B's 核心经办 bound to A's; B's outpatient app and its v1 came from A):
  curl -H 'Authorization: Bearer %[1]s' %[2]s/api/v1/deploy/apps/%[3]s/status      # B: current v1, on B's nodes
  curl -X POST -H 'Authorization: Bearer %[4]s' -H 'Content-Type: application/json' \
       -d '{"version":"v2","strategy":{"type":"rolling","batch_size":1}}' %[5]s/api/v1/deploy/apps/%[6]s/deployments
  curl -H 'Authorization: Bearer %[1]s' %[2]s/api/v1/deploy/apps/%[3]s/status      # seconds later: B runs v2 too
  curl -H 'Authorization: Bearer %[1]s' %[2]s/api/v1/appsync/tasks/%[7]s/status   # version sync: cursor, lag, last applied
  curl -H 'Authorization: Bearer %[1]s' %[2]s/api/v1/appsync/tasks/%[8]s/status   # config sync: conflicts, if any
`, cb.teamToken, cb.url, s.bApp, ca.teamToken, ca.url, ca.deploy.appID, s.versionTask, s.configTask)
}
