package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// A burst of concurrent creates through the API: every one is created (no 500 from a busy
// database), and the descriptors on the database do not outlive the burst.
func TestConcurrentProjectCreates(t *testing.T) {
	sc := startSyncCenter(t, "a", newSyncKey(t), 1<<20)
	var tm struct{ ID string }
	sc.root.ok(201, "POST", "/api/v1/teams", map[string]string{"name": "ybj"}, &tm)
	const n = 500
	statuses := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			status, raw := sc.root.do("POST", "/api/v1/projects", map[string]string{"team_id": tm.ID, "name": fmt.Sprintf("p%d", i)})
			if status != 201 {
				statuses <- fmt.Sprintf("%d %s", status, raw)
			}
		})
	}
	wg.Wait()
	close(statuses)
	var failed []string
	for s := range statuses {
		failed = append(failed, s)
	}
	require.Empty(t, failed, "%d of %d creates failed", len(failed), n)
	require.LessOrEqual(t, dbFDs(t, sc.dir), store.SQLiteConns, "descriptors on the database after the burst")
}

// dbFDs counts this process's open descriptors on the database file of dir.
func dbFDs(t *testing.T, dir string) int {
	t.Helper()
	want := filepath.Join(dir, "refserver.db")
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == want {
			n++
		}
	}
	return n
}

// rawStore reads the database file and its WAL, and deploy's state file, as they are on disk.
func rawStore(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	for _, name := range []string{"refserver.db", "refserver.db-wal", filepath.Join("deploy", "state.json")} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if !os.IsNotExist(err) {
			require.NoError(t, err)
		}
		all = append(all, b...)
	}
	return all
}

// Secrets are sealed at rest: DR group passwords, SSH node passwords and binding tokens
// never reach the database file or its WAL in plain text, the audit log shows "(hidden)",
// a GET-then-PUT keeps the stored secret, and the database is its owner's only.
func TestSecretsAreSealedAtRest(t *testing.T) {
	// The binding's source is this center itself, configured as its own peer.
	sc := newSyncCenter(t, "a", newSyncKey(t), 1<<20)
	sc.peers = []config.Peer{sc.peer()}
	sc.start()
	t.Cleanup(sc.stop)
	team, proj, api := sc.tenant("ybj", "hxjb")
	var src struct{ ID string }
	sc.root.ok(201, "POST", "/api/v1/projects", map[string]string{"team_id": team, "name": "ggfw"}, &src)
	secrets := []string{"dr-pass-Alpha-1", "dr-pass-Bravo-1", "dr-pass-Alpha-2", "ssh-pass-Charlie-1", "ssh-pass-Charlie-2", api.token}

	group := func(pa string) map[string]any {
		return map[string]any{"name": "ybj-cache", "kind": "redis",
			"a": map[string]any{"addr": "127.0.0.1:1", "password": pa},
			"b": map[string]any{"addr": "127.0.0.1:2", "password": "dr-pass-Bravo-1"}}
	}
	var g struct{ ID string }
	raw := api.ok(201, "POST", "/api/v1/dr/groups", map[string]any{"spec": group("dr-pass-Alpha-1")}, &g)
	require.NotContains(t, string(raw), "dr-pass")
	api.ok(200, "PUT", "/api/v1/dr/groups/"+g.ID, map[string]any{"spec": group("dr-pass-Alpha-2")}, nil)

	node := func(pw string) map[string]any {
		return map[string]any{"name": "n1", "driver": "ssh", "host": "127.0.0.1",
			"ssh": map[string]any{"addr": "127.0.0.1:1", "user": "u", "password": pw, "known_hosts": "/nonexistent"}}
	}
	var n struct{ ID string }
	sc.root.ok(201, "POST", "/api/v1/deploy/nodes", map[string]any{"team_id": team, "spec": node("ssh-pass-Charlie-1")}, &n)
	sc.root.ok(200, "PUT", "/api/v1/deploy/nodes/"+n.ID, map[string]any{"spec": node("ssh-pass-Charlie-2")}, nil)
	sc.root.ok(200, "POST", "/api/v1/deploy/nodes/"+n.ID+"/push", nil, nil)
	state, err := os.ReadFile(filepath.Join(sc.dir, "deploy", "state.json"))
	require.NoError(t, err)
	require.Contains(t, string(state), `"n1"`, "the pushed node is in deploy's state file")

	var b struct{ ID string }
	api.ok(201, "POST", "/api/v1/appsync/bindings", map[string]any{"spec": map[string]any{
		"name": "hxjb", "kind": "project", "target": proj,
		"source": map[string]any{"peer": "a", "id": src.ID, "token": api.token}}}, &b)
	raw = api.ok(200, "POST", "/api/v1/appsync/bindings/"+b.ID+"/push", nil, nil)
	require.NotContains(t, string(raw), api.token)

	// A sync task of the binding is deleted while it runs: its state doc goes in the
	// delete's own transaction (the one writer would otherwise wait for itself).
	var task struct{ ID string }
	api.ok(201, "POST", "/api/v1/appsync/tasks", map[string]any{"spec": map[string]any{"name": "config", "kind": "config", "binding": b.ID,
		"wait": "2s", "retry_min": "50ms", "retry_max": "500ms", "config": map[string]any{"source_ranges": []string{"10.1.0.0/16"}}}}, &task)
	api.ok(200, "POST", "/api/v1/appsync/tasks/"+task.ID+"/push", nil, nil)
	api.ok(204, "DELETE", "/api/v1/appsync/tasks/"+task.ID, nil, nil)

	// A GET-then-PUT sends "(hidden)" back: the stored secrets stay.
	var got struct{ Spec json.RawMessage }
	api.ok(200, "GET", "/api/v1/dr/groups/"+g.ID, nil, &got)
	require.Contains(t, string(got.Spec), `"password":"(hidden)"`)
	api.ok(200, "PUT", "/api/v1/dr/groups/"+g.ID, map[string]any{"spec": got.Spec}, nil)
	api.ok(200, "GET", "/api/v1/appsync/bindings/"+b.ID, nil, &got)
	api.ok(200, "PUT", "/api/v1/appsync/bindings/"+b.ID, map[string]any{"spec": got.Spec}, nil)
	sc.root.ok(200, "GET", "/api/v1/deploy/nodes/"+n.ID, nil, &got)
	sc.root.ok(200, "PUT", "/api/v1/deploy/nodes/"+n.ID, map[string]any{"spec": got.Spec}, nil)
	stored := func(kind, id string) string {
		var res store.Resource
		require.NoError(t, sc.c.Store().View(context.Background(), func(r store.Reader) (err error) {
			res, err = r.Resource(context.Background(), kind, id)
			return err
		}))
		return string(res.Spec)
	}
	require.Contains(t, stored("drgroup", g.ID), `"password":"dr-pass-Alpha-2"`)
	require.Contains(t, stored("drgroup", g.ID), `"password":"dr-pass-Bravo-1"`)
	require.Contains(t, stored("deploynode", n.ID), `"password":"ssh-pass-Charlie-2"`)
	require.Contains(t, stored("syncbinding", b.ID), `"token":"`+api.token+`"`)

	// A create cannot use the placeholder.
	status, raw := api.do("POST", "/api/v1/dr/groups", map[string]any{"spec": func() map[string]any {
		s := group("(hidden)")
		s["name"] = "other"
		return s
	}()})
	require.Equal(t, 400, status, "%s", raw)
	require.Contains(t, string(raw), `"spec.a.password"`)

	audit := sc.root.ok(200, "GET", "/api/v1/audit?limit=1000", nil, nil)
	require.Contains(t, string(audit), "(hidden)")
	for _, s := range secrets {
		require.NotContains(t, string(audit), s, "the audit API shows no secret")
		require.False(t, bytes.Contains(rawStore(t, sc.dir), []byte(s)), "%s is in the database or its WAL", s)
	}
	for _, name := range []string{"refserver.db", "refserver.db-wal", "refserver.db-shm"} {
		fi, err := os.Stat(filepath.Join(sc.dir, name))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
	}
	sc.stop()
	for _, s := range secrets {
		require.False(t, bytes.Contains(rawStore(t, sc.dir), []byte(s)), "%s is in the database after the stop", s)
	}
}
