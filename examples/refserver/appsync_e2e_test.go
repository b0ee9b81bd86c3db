package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/center"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

// syncCenter is one center of a two-center test: its server, restartable on the same
// address and directory, and its admin.
type syncCenter struct {
	t            *testing.T
	name, dir    string
	admin, addr  string
	key          string
	cancel       context.CancelFunc
	done         chan error
	c            *center.Center
	root         rest
	maxArtifacts int64
	// with changes the configuration at each start.
	with func(*config.Config)
	// peers are the other centers bindings may name.
	peers []config.Peer
}

func startSyncCenter(t *testing.T, name, key string, maxArtifacts int64, peers ...config.Peer) *syncCenter {
	sc := newSyncCenter(t, name, key, maxArtifacts, peers...)
	sc.start()
	t.Cleanup(sc.stop)
	return sc
}

// newSyncCenter is a center not started yet, its address chosen.
func newSyncCenter(t *testing.T, name, key string, maxArtifacts int64, peers ...config.Peer) *syncCenter {
	return &syncCenter{t: t, name: name, dir: t.TempDir(), admin: "shk_e2esync" + name + "0123456789abcdef", key: key,
		addr: fmt.Sprintf("127.0.0.1:%d", freeTCP(t, "127.0.0.1")), maxArtifacts: maxArtifacts, peers: peers}
}

func (sc *syncCenter) start() {
	ctx, cancel := context.WithCancel(context.Background())
	// A start that fails ends the test here (FailNow); cancel is recorded only once the
	// center serves, so that the cleanup's stop does not wait for a center that never ran.
	defer func() {
		if sc.done == nil {
			cancel()
		}
	}()
	sc.done = nil
	sc.c, sc.done = openCenter(sc.t, ctx, sc.dir, sc.admin, sc.maxArtifacts, func(cfg *config.Config) {
		cfg.Center.Name, cfg.Listen, cfg.SyncKey, cfg.Peers = sc.name, sc.addr, sc.key, sc.peers
		if sc.with != nil {
			sc.with(cfg)
		}
	})
	sc.cancel = cancel
	sc.root = rest{t: sc.t, base: sc.c.URL(), token: sc.admin}
}

// peer is the center as another's configuration names it.
func (sc *syncCenter) peer() config.Peer { return config.Peer{Name: sc.name, URL: "http://" + sc.addr} }

func (sc *syncCenter) stop() {
	if sc.cancel == nil {
		return
	}
	sc.cancel()
	require.NoError(sc.t, <-sc.done)
	sc.cancel = nil
}

// tenant makes a team with a project and a token, and returns them with the token's client.
func (sc *syncCenter) tenant(name, project string) (team, proj string, api rest) {
	var tm, pj struct{ ID string }
	var tok struct{ Secret string }
	sc.root.ok(201, "POST", "/api/v1/teams", map[string]string{"name": name}, &tm)
	sc.root.ok(201, "POST", "/api/v1/projects", map[string]string{"team_id": tm.ID, "name": project}, &pj)
	sc.root.ok(201, "POST", "/api/v1/tokens", map[string]string{"team_id": tm.ID, "name": "sync"}, &tok)
	return tm.ID, pj.ID, rest{t: sc.t, base: sc.c.URL(), token: tok.Secret}
}

func newSyncKey(t *testing.T) string {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// appSpec reads the spec of the app resource named name in a project, nil if there is none.
func appSpec(api rest, project, name string) (id string, spec map[string]any, pushed bool) {
	var list struct {
		Items []struct {
			ID, Name       string
			Spec           map[string]any
			Revision       int64
			PushedRevision int64 `json:"pushed_revision"`
		}
	}
	api.ok(200, "GET", "/api/v1/deploy/apps?project_id="+project, nil, &list)
	for _, it := range list.Items {
		if it.Name == name {
			return it.ID, it.Spec, it.PushedRevision == it.Revision
		}
	}
	return "", nil, false
}

type syncStatus struct {
	State     string
	LastError string `json:"last_error"`
	Cursor    int64
	Head      int64
	LagEvents int64 `json:"lag_events"`
	Applied   int64
	Skipped   int64
	Rejected  int64
	Conflicts []struct {
		ID, Reason, App string
		Diff            []struct {
			Path           string
			Source, Target any
		}
		Flagged []struct{ Path, Value string }
	}
	LastRejection *struct {
		Seq   int64
		Error string
	} `json:"last_rejection"`
}

func taskStatus(api rest, id string) syncStatus {
	var st syncStatus
	api.ok(200, "GET", "/api/v1/appsync/tasks/"+id+"/status", nil, &st)
	return st
}

// The seed's application DR relationship, end to end between two reference servers: B's
// 核心经办 bound to A's, a config task and a version task. A's app appears in B (its
// center-own keys left out, its ${center.…} values resolved by B), releases in A are
// released in B, config changes in A arrive identical, a hand change in B is a conflict
// with a diff until resolved, an address of A's network is flagged, and the bindings
// refuse what the caller has no authority over.
func TestAppSyncTwoCenters(t *testing.T) {
	key := newSyncKey(t)
	v1, v2 := newArtifact(t, ""), newArtifact(t, demoAppTrailer)
	a := startSyncCenter(t, "a", key, v2.size+1024)
	b := startSyncCenter(t, "b", key, v2.size+1024, a.peer())
	aTeam, aProj, aAPI := a.tenant("医保开发团队", "核心经办")
	_, aOtherProj, aOther := a.tenant("other-team", "公共服务")
	bTeam, bProj, bAPI := b.tenant("医保开发团队", "核心经办")
	_, bOtherProj, _ := b.tenant("other-team", "公共服务")

	// Each center resolves ${center.redis} itself.
	a.root.ok(200, "PUT", "/api/v1/deploy/variables", map[string]any{"variables": map[string]string{"redis": "redis.a.yb.internal:6379"}}, nil)
	b.root.ok(200, "PUT", "/api/v1/deploy/variables", map[string]any{"variables": map[string]string{"redis": "redis.b.yb.internal:6379"}}, nil)

	// B's three nodes, on other addresses than A's; the app's port is free on all six.
	bHosts := []string{"127.0.0.31", "127.0.0.32", "127.0.0.33"}
	for i, h := range bHosts {
		var n struct{ ID string }
		b.root.ok(201, "POST", "/api/v1/deploy/nodes", map[string]any{"team_id": bTeam, "spec": map[string]any{"name": fmt.Sprintf("n%d", i+1), "driver": "local", "host": h}}, &n)
		b.root.ok(200, "POST", "/api/v1/deploy/nodes/"+n.ID+"/push", nil, nil)
	}
	op := newOutpatient(t, a.root, aAPI, aTeam, aProj)
	port := int(op.spec["ports"].([]any)[0].(map[string]any)["port"].(int))
	for _, h := range bHosts {
		ln, err := net.Listen("tcp", net.JoinHostPort(h, fmt.Sprint(port)))
		require.NoError(t, err, "the app's port is free on B's nodes too")
		ln.Close()
	}

	// Bindings: the other center's side is checked with its token.
	bind := func(name, target, sourceID, token string) (int, []byte, string) {
		var res struct{ ID string }
		bAPI.ok(201, "POST", "/api/v1/appsync/bindings", map[string]any{"spec": map[string]any{
			"name": name, "kind": "project", "target": target,
			"source": map[string]any{"peer": "a", "id": sourceID, "token": token}}}, &res)
		status, raw := bAPI.do("POST", "/api/v1/appsync/bindings/"+res.ID+"/push", nil)
		return status, raw, res.ID
	}
	status, raw, _ := bind("wrong-token", bProj, aProj, aOther.token)
	require.Equal(t, 400, status, "%s", raw)
	require.Contains(t, string(raw), `"spec.source":"peer a has no projects/`+aProj+` that the token may see"`)
	status, raw, _ = bind("not-mine", bOtherProj, aOtherProj, aOther.token)
	require.Equal(t, 400, status, "%s", raw)
	require.Contains(t, string(raw), `"spec.target":"no such project in the binding's team"`)
	status, raw, bindingID := bind("hxjb", bProj, aProj, aAPI.token)
	require.Equal(t, 200, status, "%s", raw)
	require.NotContains(t, string(raw), aAPI.token, "the other center's token is hidden")
	status, raw, _ = bind("again", bProj, aProj, aAPI.token)
	require.Equal(t, 400, status, "%s", raw)
	require.Contains(t, string(raw), "is bound already")

	// The feeds are the team's own: another team of A reads nothing of them.
	aOther.ok(404, "GET", "/api/v1/appsync/feeds/projects/"+aProj+"/config/", nil, nil)

	newTask := func(spec map[string]any) string {
		var res struct{ ID string }
		spec["binding"] = bindingID
		bAPI.ok(201, "POST", "/api/v1/appsync/tasks", map[string]any{"spec": spec}, &res)
		bAPI.ok(200, "POST", "/api/v1/appsync/tasks/"+res.ID+"/push", nil, nil)
		return res.ID
	}
	cfgTask := newTask(map[string]any{"name": "config", "kind": "config", "wait": "2s", "retry_min": "50ms", "retry_max": "500ms",
		"config": map[string]any{"source_ranges": []string{"10.1.0.0/16"}}})
	verTask := newTask(map[string]any{"name": "versions", "kind": "version", "wait": "2s", "retry_min": "50ms", "retry_max": "500ms",
		"version": map[string]any{"mode": "release", "nodes": map[string]string{"n1": "n1", "n2": "n2", "n3": "n3"}}})

	// A's app, pushed: it appears in B, pushed, without A's balancer, with B's redis.
	spec := op.spec
	spec["env"] = map[string]any{"REDIS": "${center.redis}", "FEE_RULES": "2026"}
	aAPI.ok(200, "PUT", "/api/v1/deploy/apps/"+op.app, map[string]any{"spec": spec}, nil)
	aAPI.ok(200, "POST", "/api/v1/deploy/apps/"+op.app+"/push", nil, nil)
	var bApp string
	var bSpec map[string]any
	require.Eventually(t, func() bool {
		var pushed bool
		bApp, bSpec, pushed = appSpec(bAPI, bProj, "outpatient")
		return pushed
	}, 10*time.Second, 20*time.Millisecond, "A's app appears in B: %+v", taskStatus(bAPI, cfgTask))
	require.NotContains(t, bSpec, "balancer", "A's balancer is A's own")
	require.Equal(t, map[string]any{"REDIS": "${center.redis}", "FEE_RULES": "2026"}, bSpec["env"])
	var bStatus struct {
		Current string
		Env     map[string]string
		Busy    string
	}
	bAPI.ok(200, "GET", "/api/v1/deploy/apps/"+bApp+"/status", nil, &bStatus)
	require.Equal(t, "redis.b.yb.internal:6379", bStatus.Env["REDIS"], "B runs the app with its own redis")

	// v1 and v2 uploaded in A and released there in turn: each is released in B.
	for _, v := range []struct {
		name string
		a    artifact
	}{{"v1", v1}, {"v2", v2}} {
		status, raw := aAPI.put("/api/v1/deploy/apps/"+op.app+"/versions/"+v.name, v.a.digest, v.a.reader(t, false), v.a.size)
		require.Equal(t, 201, status, "%s", raw)
	}
	var d deployment
	aAPI.ok(202, "POST", "/api/v1/deploy/apps/"+op.app+"/deployments", map[string]any{"version": "v1", "nodes": []string{"n1", "n2", "n3"}, "strategy": map[string]any{"type": "all-at-once"}}, &d)
	require.Equal(t, "succeeded", aAPI.waitDeployment(d.ID).State)
	released := func(v string) {
		t.Helper()
		require.Eventually(t, func() bool {
			bStatus.Current, bStatus.Busy = "", ""
			bAPI.ok(200, "GET", "/api/v1/deploy/apps/"+bApp+"/status", nil, &bStatus)
			return bStatus.Current == v && bStatus.Busy == ""
		}, 30*time.Second, 50*time.Millisecond, "%s released in B: %+v", v, taskStatus(bAPI, verTask))
		for _, h := range bHosts {
			got, err := get(http.DefaultClient, fmt.Sprintf("http://%s:%d/", h, port))
			require.NoError(t, err)
			require.Equal(t, v, got.Version, "B's instance on %s", h)
		}
	}
	released("v1")
	aAPI.ok(202, "POST", "/api/v1/deploy/apps/"+op.app+"/deployments", map[string]any{"version": "v2", "strategy": map[string]any{"type": "rolling", "batch_size": 2}}, &d)
	require.Equal(t, "succeeded", aAPI.waitDeployment(d.ID).State)
	released("v2")
	var versions struct {
		Items []struct{ Name, Digest string }
	}
	bAPI.ok(200, "GET", "/api/v1/deploy/apps/"+bApp+"/versions", nil, &versions)
	require.Len(t, versions.Items, 2)
	require.Equal(t, v2.digest, versions.Items[1].Digest, "the artifact arrived as it left")

	// A config change in A arrives identical in B.
	setEnv := func(env map[string]any) {
		spec["env"] = env
		aAPI.ok(200, "PUT", "/api/v1/deploy/apps/"+op.app, map[string]any{"spec": spec}, nil)
		aAPI.ok(200, "POST", "/api/v1/deploy/apps/"+op.app+"/push", nil, nil)
	}
	envIn := func(want map[string]any) {
		t.Helper()
		require.Eventually(t, func() bool {
			_, bSpec, _ = appSpec(bAPI, bProj, "outpatient")
			return fmt.Sprint(bSpec["env"]) == fmt.Sprint(want)
		}, 10*time.Second, 20*time.Millisecond, "env %v in B: %+v", want, taskStatus(bAPI, cfgTask))
	}
	setEnv(map[string]any{"REDIS": "${center.redis}", "FEE_RULES": "2027"})
	envIn(map[string]any{"REDIS": "${center.redis}", "FEE_RULES": "2027"})
	_, aSpec, _ := appSpec(aAPI, aProj, "outpatient")
	delete(aSpec, "balancer")
	delete(aSpec, "group")
	require.Equal(t, aSpec, bSpec, "B's app is A's, but for A's own balancer")

	// Drift: B changed by hand, then A changes: a conflict with a diff, B left as it is.
	handSpec := map[string]any{}
	for k, v := range bSpec {
		handSpec[k] = v
	}
	handSpec["env"] = map[string]any{"REDIS": "${center.redis}", "FEE_RULES": "hand"}
	bAPI.ok(200, "PUT", "/api/v1/deploy/apps/"+bApp, map[string]any{"spec": handSpec}, nil)
	setEnv(map[string]any{"REDIS": "${center.redis}", "FEE_RULES": "2028"})
	var st syncStatus
	require.Eventually(t, func() bool {
		st = taskStatus(bAPI, cfgTask)
		return st.State == "conflict"
	}, 10*time.Second, 20*time.Millisecond)
	require.Len(t, st.Conflicts, 1)
	// Lag counts the one change held, though A's audit IDs moved on by two (the save and
	// the push).
	require.EqualValues(t, 1, st.LagEvents, "lag while held at the conflict: %+v", st)
	require.Greater(t, st.Head-st.Cursor, int64(1))
	require.Equal(t, "drift", st.Conflicts[0].Reason)
	require.Equal(t, "env.FEE_RULES", st.Conflicts[0].Diff[0].Path)
	require.Equal(t, "2028", st.Conflicts[0].Diff[0].Source)
	require.Equal(t, "hand", st.Conflicts[0].Diff[0].Target)
	_, bSpec, _ = appSpec(bAPI, bProj, "outpatient")
	require.Equal(t, "hand", bSpec["env"].(map[string]any)["FEE_RULES"], "not overwritten")
	bAPI.ok(200, "POST", "/api/v1/appsync/tasks/"+cfgTask+"/resolve", map[string]any{"conflict": st.Conflicts[0].ID, "resolution": "source-wins"}, nil)
	envIn(map[string]any{"REDIS": "${center.redis}", "FEE_RULES": "2028"})

	// An address of A's network in A's config is flagged, not copied.
	setEnv(map[string]any{"REDIS": "${center.redis}", "FEE_RULES": "2028", "DB": "jdbc:postgresql://10.1.40.88:5432/yb"})
	require.Eventually(t, func() bool {
		st = taskStatus(bAPI, cfgTask)
		return st.State == "conflict"
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "center-specific", st.Conflicts[0].Reason)
	require.Equal(t, "env.DB", st.Conflicts[0].Flagged[0].Path)
	bAPI.ok(200, "POST", "/api/v1/appsync/tasks/"+cfgTask+"/resolve", map[string]any{"conflict": st.Conflicts[0].ID, "resolution": "keep-target"}, nil)
	setEnv(map[string]any{"REDIS": "${center.redis}", "FEE_RULES": "2029"})
	envIn(map[string]any{"REDIS": "${center.redis}", "FEE_RULES": "2029"})
	require.Eventually(t, func() bool {
		st = taskStatus(bAPI, cfgTask)
		return st.State == "running" && st.LagEvents == 0 && st.Cursor == st.Head
	}, 5*time.Second, 20*time.Millisecond, "caught up")
	t.Logf("config task: %+v", st)
	t.Logf("version task: %+v", taskStatus(bAPI, verTask))

	// Every change a task made in B is audited as the task's.
	audit := string(b.root.ok(200, "GET", "/api/v1/audit?kind=deployapp&resource_id="+bApp, nil, nil))
	for _, action := range []string{`"action":"sync-upload"`, `"action":"sync-deploy"`, `"actor_id":"appsync"`} {
		require.Contains(t, audit, action)
	}
}
