package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// probeScript is an app that tries what a hostile team would: read the server's data
// directory, its database and key files, and the server's environment through /proc, then
// writes what it got, with its own environment, to its directory.
const probeScript = `#!/bin/sh
for f in "$DATA_DIR/refserver.db" "$DATA_DIR/gateway-secrets.key" "$DATA_DIR/deploy/state.json" "/proc/$PPID/environ"; do
	if cat "$f" >/dev/null 2>&1; then echo "READ $f"; else echo "DENIED $f"; fi
done >probe.tmp
if ls "$DATA_DIR" >/dev/null 2>&1; then echo "READ $DATA_DIR" >>probe.tmp; fi
echo "uid $(id -u)" >>probe.tmp
env >env.txt
mv probe.tmp probe.txt
exec sleep 600
`

// A team's app on a local node runs, when the server runs as root, as the node's own
// unprivileged user, with a clean environment: it can read nothing of the server's data
// directory (the database with other teams' secrets, the gateway's master key, the deploy
// state) nor the server's environment, and the node's status says how it is isolated.
func TestLocalNodeAppCannotReachTheServer(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root (it runs as root in CI): the isolation of local nodes is only had as root")
		}
		t.Skip("needs root: the isolation of local nodes is only had as root")
	}
	marker := "SHUANGHUO_TEST_MARKER"
	t.Setenv(marker, "server-environment-must-not-leak")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	admin := "shk_e2elocalnode0123456789abcdef"
	c, done := openCenter(t, ctx, dir, admin, 1<<20)
	defer func() { cancel(); require.NoError(t, <-done) }()
	root := rest{t: t, base: c.URL(), token: admin}

	var team, project struct{ ID string }
	var tok struct{ Secret string }
	root.ok(201, "POST", "/api/v1/teams", map[string]string{"name": "hostile"}, &team)
	root.ok(201, "POST", "/api/v1/projects", map[string]string{"team_id": team.ID, "name": "probe"}, &project)
	root.ok(201, "POST", "/api/v1/tokens", map[string]string{"team_id": team.ID, "name": "ci"}, &tok)
	api := rest{t: t, base: c.URL(), token: tok.Secret}
	var node struct{ ID string }
	root.ok(201, "POST", "/api/v1/deploy/nodes", map[string]any{"team_id": team.ID, "spec": map[string]any{"name": "n1", "driver": "local", "host": "127.0.0.1"}}, &node)
	root.ok(200, "POST", "/api/v1/deploy/nodes/"+node.ID+"/push", nil, nil)

	var app struct{ ID string }
	api.ok(201, "POST", "/api/v1/deploy/apps", map[string]any{"project_id": project.ID, "spec": map[string]any{
		"name": "probe", "kind": "executable", "env": map[string]string{"DATA_DIR": dir}}}, &app)
	api.ok(200, "POST", "/api/v1/deploy/apps/"+app.ID+"/push", nil, nil)
	sum := sha256.Sum256([]byte(probeScript))
	status, raw := api.put("/api/v1/deploy/apps/"+app.ID+"/versions/v1", "sha256:"+hex.EncodeToString(sum[:]), strings.NewReader(probeScript), int64(len(probeScript)))
	require.Equal(t, 201, status, "%s", raw)
	var d deployment
	api.ok(202, "POST", "/api/v1/deploy/apps/"+app.ID+"/deployments", map[string]any{"version": "v1", "nodes": []string{"n1"}}, &d)
	d = api.waitDeployment(d.ID)
	require.Equal(t, "succeeded", d.State, d.Error)

	var insts struct {
		Items []struct {
			Status struct{ Dir string }
		}
	}
	api.ok(200, "GET", "/api/v1/deploy/apps/"+app.ID+"/instances", nil, &insts)
	require.Len(t, insts.Items, 1)
	instDir := insts.Items[0].Status.Dir
	var probe []byte
	require.Eventually(t, func() bool {
		var err error
		probe, err = os.ReadFile(filepath.Join(instDir, "probe.txt"))
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "the probe app wrote nothing in %s", instDir)
	t.Logf("the probe app got:\n%s", probe)
	for _, line := range strings.Split(strings.TrimSpace(string(probe)), "\n") {
		require.False(t, strings.HasPrefix(line, "READ "), "an app on a local node reached the server's files: %s\n%s", line, probe)
	}
	require.NotContains(t, string(probe), "uid 0\n", "the app runs as root")

	env, err := os.ReadFile(filepath.Join(instDir, "env.txt"))
	require.NoError(t, err)
	require.NotContains(t, string(env), marker, "the app inherited the server's environment")
	got := map[string]bool{}
	for _, line := range strings.Split(string(env), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok {
			got[k] = true
		}
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "HOME", "PWD", "SHLVL", "_", "OLDPWD":
			continue
		}
		require.False(t, got[k], "the app inherited the server's %s", k)
	}

	var st struct{ Isolation string }
	root.ok(200, "GET", "/api/v1/deploy/nodes/"+node.ID+"/status", nil, &st)
	require.True(t, strings.HasPrefix(st.Isolation, "user "), "the node's status says how its apps are isolated: %q", st.Isolation)
}
