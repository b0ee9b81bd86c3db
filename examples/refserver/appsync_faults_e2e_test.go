package main

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/appsync"
	"github.com/shuanghuo/shuanghuo/deploy"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

// bindProject binds B's project to A's and starts a task of kind with policy, answering
// the task's ID.
func bindProject(t *testing.T, bAPI rest, bProj, peer, aProj, aToken string, tasks ...map[string]any) []string {
	var bnd struct{ ID string }
	bAPI.ok(201, "POST", "/api/v1/appsync/bindings", map[string]any{"spec": map[string]any{
		"name": "hxjb", "kind": "project", "target": bProj,
		"source": map[string]any{"peer": peer, "id": aProj, "token": aToken}}}, &bnd)
	bAPI.ok(200, "POST", "/api/v1/appsync/bindings/"+bnd.ID+"/push", nil, nil)
	var ids []string
	for _, spec := range tasks {
		var res struct{ ID string }
		spec["binding"] = bnd.ID
		bAPI.ok(201, "POST", "/api/v1/appsync/tasks", map[string]any{"spec": spec}, &res)
		bAPI.ok(200, "POST", "/api/v1/appsync/tasks/"+res.ID+"/push", nil, nil)
		ids = append(ids, res.ID)
	}
	return ids
}

// B stopped while A makes 100 config changes: once B is back, all 100 are applied, in
// order, none twice — B's audit log has one push of the app per change, by the task.
func TestAppSyncTargetDownDuring100Changes(t *testing.T) {
	key := newSyncKey(t)
	a := startSyncCenter(t, "a", key, 1<<20)
	b := startSyncCenter(t, "b", key, 1<<20, a.peer())
	_, aProj, aAPI := a.tenant("医保开发团队", "核心经办")
	_, bProj, bAPI := b.tenant("医保开发团队", "核心经办")
	spec := map[string]any{"name": "outpatient", "kind": "executable", "args": []string{"demo-app"},
		"ports": []any{map[string]any{"name": "http", "port": 18085}}, "env": map[string]any{"SEQ": "0"}}
	var app struct{ ID string }
	aAPI.ok(201, "POST", "/api/v1/deploy/apps", map[string]any{"project_id": aProj, "spec": spec}, &app)
	aAPI.ok(200, "POST", "/api/v1/deploy/apps/"+app.ID+"/push", nil, nil)
	task := bindProject(t, bAPI, bProj, "a", aProj, aAPI.token,
		map[string]any{"name": "config", "kind": "config", "wait": "1s", "retry_min": "50ms", "retry_max": "500ms"})[0]
	seqIn := func(want string) string {
		var bApp string
		require.Eventually(t, func() bool {
			var spec map[string]any
			bApp, spec, _ = appSpec(bAPI, bProj, "outpatient")
			return spec != nil && spec["env"].(map[string]any)["SEQ"] == want
		}, 20*time.Second, 20*time.Millisecond, "SEQ=%s in B: %+v", want, taskStatus(bAPI, task))
		return bApp
	}
	seqIn("0")

	change := func(i int) {
		spec["env"] = map[string]any{"SEQ": strconv.Itoa(i)}
		aAPI.ok(200, "PUT", "/api/v1/deploy/apps/"+app.ID, map[string]any{"spec": spec}, nil)
		aAPI.ok(200, "POST", "/api/v1/deploy/apps/"+app.ID+"/push", nil, nil)
	}
	for i := 1; i <= 30; i++ {
		change(i)
	}
	b.stop()
	for i := 31; i <= 100; i++ {
		change(i)
	}
	b.start()
	bAPI.base = b.c.URL()
	bApp := seqIn("100")

	var audit struct {
		Items []struct {
			Action  string
			ActorID string `json:"actor_id"`
			After   struct {
				Spec struct{ Env map[string]string }
			}
		}
	}
	b.root.ok(200, "GET", "/api/v1/audit?kind=deployapp&resource_id="+bApp+"&limit=1000", nil, &audit)
	var seqs []string
	for i := len(audit.Items) - 1; i >= 0; i-- { // oldest first
		if r := audit.Items[i]; r.Action == "push" {
			require.Equal(t, "appsync", r.ActorID)
			seqs = append(seqs, r.After.Spec.Env["SEQ"])
		}
	}
	want := []string{}
	for i := 0; i <= 100; i++ {
		want = append(want, strconv.Itoa(i))
	}
	require.Equal(t, want, seqs, "every change pushed in B once, in A's order")
	// The task counts a change once done, just after B shows it. A change it was applying
	// when B stopped is read again after the restart and found applied already: skipped,
	// which the audit above shows (one push per change).
	var st syncStatus
	require.Eventually(t, func() bool {
		st = taskStatus(bAPI, task)
		return st.Applied+st.Skipped >= 101
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, int64(101), st.Applied+st.Skipped, "%+v", st)
	require.LessOrEqual(t, st.Skipped, int64(1), "%+v", st)
	require.Zero(t, st.Rejected)
}

// throttle is a TCP proxy to a center that, once armed, slows what the center sends, so
// that a test can restart the center in the middle of a transfer.
type throttle struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	sent   atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newThrottle(t *testing.T, target string) *throttle {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &throttle{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *throttle) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			up, err := net.DialTimeout("tcp", p.target, time.Second)
			if err != nil {
				return
			}
			defer up.Close()
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
			buf := make([]byte, 32<<10)
			for {
				n, err := up.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
					if p.armed.Load() {
						p.sent.Add(int64(n))
						time.Sleep(2 * time.Millisecond) // about 16 MB/s
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// A restarted in the middle of sending a large artifact to B: B keeps nothing of the cut
// transfer, fetches it again once A is back, and ends with the version once, intact.
func TestAppSyncSourceRestartMidArtifact(t *testing.T) {
	key := newSyncKey(t)
	v1 := newArtifact(t, "")
	big := newArtifact(t, strings.Repeat("医保", 8<<20)) // 48 MiB more
	a := startSyncCenter(t, "a", key, big.size+1024)
	a.with = func(cfg *config.Config) { cfg.ShutdownTimeout = 5 * time.Second }
	// B reads A through a proxy that slows the transfer down once armed.
	proxy := newThrottle(t, a.addr)
	b := startSyncCenter(t, "b", key, big.size+1024, config.Peer{Name: "a", URL: "http://" + proxy.ln.Addr().String()})
	aTeam, aProj, aAPI := a.tenant("医保开发团队", "核心经办")
	_, bProj, bAPI := b.tenant("医保开发团队", "核心经办")
	appID := outpatientOnOneNode(t, a, aTeam, aProj, aAPI)
	for _, v := range []struct {
		name string
		a    artifact
	}{{"v1", v1}, {"v2", big}} {
		status, raw := aAPI.put("/api/v1/deploy/apps/"+appID+"/versions/"+v.name, v.a.digest, v.a.reader(t, false), v.a.size)
		require.Equal(t, 201, status, "%s", raw)
	}

	tasks := bindProject(t, bAPI, bProj, "a", aProj, aAPI.token,
		map[string]any{"name": "config", "kind": "config", "wait": "1s", "retry_min": "50ms", "retry_max": "500ms"},
		map[string]any{"name": "versions", "kind": "version", "wait": "1s", "retry_min": "50ms", "retry_max": "1s", "version": map[string]any{"mode": "copy"}})
	var bApp string
	require.Eventually(t, func() bool {
		bApp, _, _ = appSpec(bAPI, bProj, "outpatient")
		return bApp != ""
	}, 10*time.Second, 20*time.Millisecond)
	versionsIn := func() []struct{ Name, Digest string } {
		var vs struct {
			Items []struct{ Name, Digest string }
		}
		bAPI.ok(200, "GET", "/api/v1/deploy/apps/"+bApp+"/versions", nil, &vs)
		return vs.Items
	}
	deployA := func(version string) {
		var d deployment
		aAPI.ok(202, "POST", "/api/v1/deploy/apps/"+appID+"/deployments", map[string]any{"version": version, "nodes": []string{"n1"}}, &d)
		require.Equal(t, "succeeded", aAPI.waitDeployment(d.ID).State)
	}
	deployA("v1")
	require.Eventually(t, func() bool { return len(versionsIn()) == 1 }, 20*time.Second, 20*time.Millisecond, "%+v", taskStatus(bAPI, tasks[1]))

	proxy.armed.Store(true)
	deployA("v2")
	// Once B has received some of v2, A restarts.
	require.Eventually(t, func() bool { return proxy.sent.Load() > 4<<20 }, 30*time.Second, 10*time.Millisecond)
	a.stop()
	sentBefore := proxy.sent.Load()
	require.Less(t, sentBefore, big.size, "A stopped in the middle of the transfer")
	require.Len(t, versionsIn(), 1, "nothing of the cut transfer is kept")
	proxy.armed.Store(false)
	a.start()
	aAPI.base = a.c.URL()
	require.Eventually(t, func() bool { return len(versionsIn()) == 2 }, 60*time.Second, 50*time.Millisecond, "%+v", taskStatus(bAPI, tasks[1]))
	vs := versionsIn()
	require.Equal(t, "v2", vs[1].Name)
	require.Equal(t, big.digest, vs[1].Digest)
	blobs, err := os.ReadDir(filepath.Join(b.dir, "deploy", "artifacts", "sha256"))
	require.NoError(t, err)
	require.Len(t, blobs, 2, "one artifact per version, no duplicate")
	tmp, err := os.ReadDir(filepath.Join(b.dir, "deploy", "artifacts", "tmp"))
	require.NoError(t, err)
	require.Empty(t, tmp, "no partial artifact left")
	st := taskStatus(bAPI, tasks[1])
	require.Equal(t, int64(2), st.Applied)
	// B checked both copies by the piece sums A's release changes carry, and keeps them
	// for its own copies, as A does.
	for _, v := range []artifact{v1, big} {
		h := strings.TrimPrefix(v.digest, "sha256:")
		aSums, err := os.ReadFile(filepath.Join(a.dir, "deploy", "artifacts", "pieces", h))
		require.NoError(t, err)
		bSums, err := os.ReadFile(filepath.Join(b.dir, "deploy", "artifacts", "pieces", h))
		require.NoError(t, err)
		require.Equal(t, aSums, bSums)
		require.Len(t, bSums, int((v.size+deploy.PieceSize-1)/deploy.PieceSize)*32)
	}
	require.Equal(t, 2.0, metricValue(t, b, `deploy_artifact_uploads_total{check="pieces",result="stored"}`))
	require.GreaterOrEqual(t, metricValue(t, b, `deploy_artifact_uploads_total{check="pieces",result="refused"}`), 1.0, "the cut copy")
	require.Zero(t, metricValue(t, b, `deploy_artifact_uploads_total{check="digest",result="stored"}`))
	t.Logf("cut after %d of %d bytes; version task: %+v", sentBefore, big.size, st)
}

// outpatientOnOneNode registers node n1 (local, 127.0.0.21) in the center for the team and
// creates and pushes the outpatient app (the demo app) in its project, and returns the app's ID.
func outpatientOnOneNode(t *testing.T, sc *syncCenter, team, project string, api rest) string {
	var node struct{ ID string }
	sc.root.ok(201, "POST", "/api/v1/deploy/nodes", map[string]any{"team_id": team, "spec": map[string]any{"name": "n1", "driver": "local", "host": "127.0.0.21"}}, &node)
	sc.root.ok(200, "POST", "/api/v1/deploy/nodes/"+node.ID+"/push", nil, nil)
	spec := map[string]any{"name": "outpatient", "kind": "executable",
		"args":   []string{"demo-app", "-version", "{{.Version}}", "-listen", "{{.Host}}:{{.Port}}"},
		"ports":  []any{map[string]any{"name": "http", "port": freeTCP(t, "127.0.0.21")}},
		"health": map[string]any{"type": "http", "path": "/healthz", "interval": "100ms", "start_timeout": "20s"}}
	var app struct{ ID string }
	api.ok(201, "POST", "/api/v1/deploy/apps", map[string]any{"project_id": project, "spec": spec}, &app)
	api.ok(200, "POST", "/api/v1/deploy/apps/"+app.ID+"/push", nil, nil)
	return app.ID
}

// metricValue reads a sample of the center's /metrics, 0 when it has none.
func metricValue(t *testing.T, sc *syncCenter, sample string) float64 {
	t.Helper()
	resp, err := http.Get(sc.c.URL() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(t, err)
			return f
		}
	}
	return 0
}

// A team binding to a source that misbehaves: B applies the changes of the bound team's
// projects only — one of another team's project is refused as outside the binding, and so
// is a malformed one — and holds at a forged one (a MAC of another key) without applying it
// or anything after it.
func TestAppSyncRejectsForeignMalformedAndForgedChanges(t *testing.T) {
	key := newSyncKey(t)
	keyBytes, err := hex.DecodeString(key)
	require.NoError(t, err)

	change := func(seq int64, project, app string, sign []byte) appsync.Change {
		c := appsync.Change{Seq: seq, Time: time.Now(), Kind: appsync.KindConfig, Project: project, App: app,
			Config: json.RawMessage(`{"name":"` + app + `","kind":"executable","args":["x"],"ports":[{"name":"http","port":18085}]}`)}
		appsync.Sign(sign, &c)
		return c
	}
	feed := []appsync.Change{
		change(1, "pj_ours", "outpatient", keyBytes),
		change(2, "pj_theirs", "evil", keyBytes),                        // another team's project
		change(3, "pj_ours", "Bad App", keyBytes),                       // malformed
		change(4, "pj_ours", "inpatient", keyBytes),                     // fine
		change(5, "pj_ours", "forged", []byte(strings.Repeat("k", 32))), // another key
		change(6, "pj_ours", "after-forged", keyBytes),
	}
	// The other center, as B sees it: team tm_a with project pj_ours (核心经办); pj_theirs
	// is another team's, which the binding's token cannot see.
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/teams/tm_a":
			io.WriteString(w, `{"id":"tm_a","name":"医保开发团队"}`)
		case "/api/v1/projects/pj_ours":
			io.WriteString(w, `{"id":"pj_ours","team_id":"tm_a","name":"核心经办"}`)
		case "/api/v1/appsync/feeds/teams/tm_a/config/":
			after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
			page := map[string]any{"changes": []appsync.Change{}, "head": 6}
			for _, c := range feed {
				if c.Seq > after {
					page["changes"] = append(page["changes"].([]appsync.Change), c)
				}
			}
			json.NewEncoder(w).Encode(page)
		default:
			http.NotFound(w, r)
		}
	}))
	defer src.Close()
	b := startSyncCenter(t, "b", key, 1<<20, config.Peer{Name: "a", URL: src.URL})
	bTeam, bProj, bAPI := b.tenant("医保开发团队", "核心经办")
	_, bOtherProj, _ := b.tenant("other-team", "核心经办")

	var bnd, task struct{ ID string }
	bAPI.ok(201, "POST", "/api/v1/appsync/bindings", map[string]any{"spec": map[string]any{
		"name": "team", "kind": "team", "target": bTeam, "source": map[string]any{"peer": "a", "id": "tm_a", "token": "shk_whatever"}}}, &bnd)
	bAPI.ok(200, "POST", "/api/v1/appsync/bindings/"+bnd.ID+"/push", nil, nil)
	bAPI.ok(201, "POST", "/api/v1/appsync/tasks", map[string]any{"spec": map[string]any{
		"name": "config", "binding": bnd.ID, "kind": "config", "wait": "1s", "retry_min": "50ms", "retry_max": "200ms"}}, &task)
	bAPI.ok(200, "POST", "/api/v1/appsync/tasks/"+task.ID+"/push", nil, nil)

	var st syncStatus
	require.Eventually(t, func() bool {
		st = taskStatus(bAPI, task.ID)
		return st.Cursor == 4 && st.State == "retrying"
	}, 10*time.Second, 20*time.Millisecond, "%+v", st)
	require.Equal(t, int64(2), st.Applied)
	require.Equal(t, int64(2), st.Rejected)
	require.Contains(t, st.LastError, "MAC")
	require.Contains(t, st.LastError, "holds")

	var apps struct {
		Items []struct {
			Name      string
			ProjectID string `json:"project_id"`
		}
	}
	b.root.ok(200, "GET", "/api/v1/deploy/apps", nil, &apps)
	var got []string
	for _, a := range apps.Items {
		require.Equal(t, bProj, a.ProjectID, "nothing lands in the other team's project %s", bOtherProj)
		got = append(got, a.Name)
	}
	require.ElementsMatch(t, []string{"outpatient", "inpatient"}, got)
}

// A's stored artifact changes on disk after it was released (bit rot, a bad disk): B checks
// its copy against the piece sums A's store computed at upload, refuses it and keeps
// nothing, and the task says which piece differs; without the sums, B checks the whole
// digest, which fails too; once A's file is whole again, B stores it.
func TestAppSyncSourceArtifactCorrupted(t *testing.T) {
	key := newSyncKey(t)
	v1 := newArtifact(t, strings.Repeat("医保", 2<<20)) // 12 MiB more: several pieces
	a := startSyncCenter(t, "a", key, v1.size+1024)
	b := startSyncCenter(t, "b", key, v1.size+1024, a.peer())
	aTeam, aProj, aAPI := a.tenant("医保开发团队", "核心经办")
	_, bProj, bAPI := b.tenant("医保开发团队", "核心经办")
	appID := outpatientOnOneNode(t, a, aTeam, aProj, aAPI)
	status, raw := aAPI.put("/api/v1/deploy/apps/"+appID+"/versions/v1", v1.digest, v1.reader(t, false), v1.size)
	require.Equal(t, 201, status, "%s", raw)
	var d deployment
	aAPI.ok(202, "POST", "/api/v1/deploy/apps/"+appID+"/deployments", map[string]any{"version": "v1", "nodes": []string{"n1"}}, &d)
	require.Equal(t, "succeeded", aAPI.waitDeployment(d.ID).State)

	// One byte of the third piece flips in A's store.
	blob := filepath.Join(a.dir, "deploy", "artifacts", "sha256", strings.TrimPrefix(v1.digest, "sha256:"))
	flip := func() {
		f, err := os.OpenFile(blob, os.O_RDWR, 0)
		require.NoError(t, err)
		defer f.Close()
		at := int64(2*deploy.PieceSize + 12345)
		var c [1]byte
		_, err = f.ReadAt(c[:], at)
		require.NoError(t, err)
		c[0] ^= 0x40
		_, err = f.WriteAt(c[:], at)
		require.NoError(t, err)
	}
	flip()

	tasks := bindProject(t, bAPI, bProj, "a", aProj, aAPI.token,
		map[string]any{"name": "config", "kind": "config", "wait": "1s", "retry_min": "50ms", "retry_max": "200ms"},
		map[string]any{"name": "versions", "kind": "version", "wait": "1s", "retry_min": "50ms", "retry_max": "200ms", "version": map[string]any{"mode": "copy"}})
	var st syncStatus
	require.Eventually(t, func() bool {
		st = taskStatus(bAPI, tasks[1])
		return strings.Contains(st.LastError, "piece 2 ")
	}, 20*time.Second, 20*time.Millisecond, "%+v", st)
	require.Equal(t, "retrying", st.State)
	require.Zero(t, st.Applied)
	bApp, _, _ := appSpec(bAPI, bProj, "outpatient")
	require.NotEmpty(t, bApp)
	var vs struct {
		Items []struct{ Name, Digest string }
	}
	bAPI.ok(200, "GET", "/api/v1/deploy/apps/"+bApp+"/versions", nil, &vs)
	require.Empty(t, vs.Items, "nothing of the corrupt copy is kept")
	require.GreaterOrEqual(t, metricValue(t, b, `deploy_artifact_uploads_total{check="pieces",result="refused"}`), 1.0)
	blobs, err := os.ReadDir(filepath.Join(b.dir, "deploy", "artifacts", "sha256"))
	require.NoError(t, err)
	require.Empty(t, blobs)

	// Without A's piece sums (an artifact stored before A kept them) B checks the whole
	// digest, which the flipped byte fails too.
	sums := filepath.Join(a.dir, "deploy", "artifacts", "pieces", strings.TrimPrefix(v1.digest, "sha256:"))
	require.NoError(t, os.Remove(sums))
	require.Eventually(t, func() bool {
		st = taskStatus(bAPI, tasks[1])
		return strings.Contains(st.LastError, "want "+v1.digest)
	}, 20*time.Second, 20*time.Millisecond, "%+v", st)

	flip() // A's file is whole again, as after a repair from backup
	require.Eventually(t, func() bool {
		bAPI.ok(200, "GET", "/api/v1/deploy/apps/"+bApp+"/versions", nil, &vs)
		return len(vs.Items) == 1
	}, 20*time.Second, 20*time.Millisecond, "%+v", taskStatus(bAPI, tasks[1]))
	require.Equal(t, v1.digest, vs.Items[0].Digest)
	require.Equal(t, 1.0, metricValue(t, b, `deploy_artifact_uploads_total{check="digest",result="stored"}`))
	require.Zero(t, metricValue(t, b, `deploy_artifact_uploads_total{check="pieces",result="stored"}`))
	// B computed the sums itself, so it can be the source of a later copy.
	bSums, err := os.ReadFile(filepath.Join(b.dir, "deploy", "artifacts", "pieces", strings.TrimPrefix(v1.digest, "sha256:")))
	require.NoError(t, err)
	require.Len(t, bSums, int((v1.size+deploy.PieceSize-1)/deploy.PieceSize)*32)
}
