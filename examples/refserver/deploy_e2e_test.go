package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/center"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

// TestMain lets the test binary be the demo's outpatient app, as the refserver binary is:
// the deploy tests and the demo deploy os.Executable() and run it as "demo-app".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "demo-app" {
		if err := runDemoApp(context.Background(), os.Args[2:], os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "demo-app:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// freeTCPOn returns a port free on every host a moment ago.
func freeTCPOn(t *testing.T, hosts ...string) int {
	for range 50 {
		port := freeTCP(t, hosts[0])
		ok := true
		for _, h := range hosts[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(h, fmt.Sprint(port)))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no port free on every host")
	return 0
}

// artifact is an upload: the test binary (the demo app) followed by a trailer.
type artifact struct {
	path    string
	trailer string
	size    int64
	digest  string
}

func newArtifact(t *testing.T, trailer string) artifact {
	exe, err := os.Executable()
	require.NoError(t, err)
	f, err := os.Open(exe)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	require.NoError(t, err)
	io.WriteString(h, trailer)
	return artifact{path: exe, trailer: trailer, size: n + int64(len(trailer)), digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}
}

// reader streams the artifact; chunked hides its length (Transfer-Encoding: chunked).
func (a artifact) reader(t *testing.T, chunked bool) io.Reader {
	f, err := os.Open(a.path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	r := io.MultiReader(f, strings.NewReader(a.trailer))
	if chunked {
		return struct{ io.Reader }{r}
	}
	return r
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// put uploads body to the API and returns the status and the answer.
func (c rest) put(path, digest string, body io.Reader, size int64) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest("PUT", c.base+path, body)
	require.NoError(c.t, err)
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	if digest != "" {
		req.Header.Set("X-Checksum-Sha256", digest)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The server may answer (413) and close before the client has sent everything.
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp.StatusCode, raw
}

type deployment struct {
	ID      string
	Type    string
	Version string
	State   string
	Error   string
	Nodes   []string
	Steps   []struct{ Node, Action, From, To string }
}

func (c rest) waitDeployment(id string) deployment {
	c.t.Helper()
	var d deployment
	require.Eventually(c.t, func() bool {
		c.ok(200, "GET", "/api/v1/deploy/deployments/"+id, nil, &d)
		return d.State != "running"
	}, 20*time.Second, 50*time.Millisecond, "deployment %s still running", id)
	return d
}

// answer is what the demo app answers through the balancer.
type answer struct{ Server, Version, Result string }

// traffic sends steady requests through the balancer until stopped, counting failures and
// the versions that answered.
type traffic struct {
	url      string
	stop     chan struct{}
	wg       sync.WaitGroup
	sent     atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	versions map[string]int
	errs     []string
}

func startTraffic(url string, clients int) *traffic {
	tr := &traffic{url: url, stop: make(chan struct{}), versions: map[string]int{}}
	client := &http.Client{Timeout: 5 * time.Second}
	for range clients {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			for {
				select {
				case <-tr.stop:
					return
				default:
				}
				tr.sent.Add(1)
				a, err := get(client, url)
				tr.mu.Lock()
				if err != nil {
					tr.failed.Add(1)
					tr.errs = append(tr.errs, err.Error())
				} else {
					tr.versions[a.Version]++
				}
				tr.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return tr
}

func (tr *traffic) end() {
	close(tr.stop)
	tr.wg.Wait()
}

func get(client *http.Client, url string) (answer, error) {
	resp, err := client.Get(url)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	if resp.StatusCode != 200 {
		return answer{}, fmt.Errorf("%s: %s", resp.Status, body)
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return answer{}, fmt.Errorf("%w: %s", err, body)
	}
	return a, nil
}

// versionsNow returns the versions that answer a few requests in a row.
func versionsNow(t *testing.T, url string) map[string]bool {
	out := map[string]bool{}
	for range 12 {
		a, err := get(http.DefaultClient, url)
		require.NoError(t, err)
		out[a.Version] = true
	}
	return out
}

// openCenter starts a center on dir; each of with changes its configuration first.
func openCenter(t *testing.T, ctx context.Context, dir, admin string, maxArtifact int64, with ...func(*config.Config)) (*center.Center, chan error) {
	// Local nodes are beside dir (dir-nodes); run as root, their apps' users must pass the
	// test's temporary directory, which is 0700.
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o711))
	cfg := config.Default()
	cfg.Listen, cfg.DataDir, cfg.LogLevel = "127.0.0.1:0", dir, "warn"
	cfg.MaxArtifactBytes = maxArtifact
	for _, f := range with {
		f(&cfg)
	}
	c, err := center.Open(ctx, cfg, center.Options{AdminToken: admin})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx) }()
	return c, done
}

// outpatient is the seed's outpatient app set up through the API, not yet pushed: three local
// nodes n1–n3 on the seed's three app servers' addresses, registered by the admin for the team,
// and a balancer in front of them whose server group the app's rolling upgrades drain.
type outpatient struct {
	app, balancer, lbURL string
	spec                 map[string]any
}

func newOutpatient(t *testing.T, root, api rest, team, project string) outpatient {
	hosts := []string{"127.0.0.21", "127.0.0.22", "127.0.0.23"}
	port := freeTCPOn(t, hosts...)
	var servers []any
	for i, h := range hosts {
		var n struct{ ID string }
		root.ok(201, "POST", "/api/v1/deploy/nodes", map[string]any{"team_id": team, "spec": map[string]any{"name": fmt.Sprintf("n%d", i+1), "driver": "local", "host": h}}, &n)
		root.ok(200, "POST", "/api/v1/deploy/nodes/"+n.ID+"/push", nil, nil)
		servers = append(servers, map[string]any{"name": fmt.Sprintf("s%d", i+1), "address": h, "port": port, "weight": 1})
	}
	lbPort := freeTCP(t, "127.0.0.1")
	grantLoopback(t, root, team)
	var lbRes struct{ ID string }
	api.ok(201, "POST", "/api/v1/balancers", map[string]any{"spec": map[string]any{
		"name": "outpatient", "address": "127.0.0.1",
		"listeners": []any{map[string]any{"name": "biz", "port": lbPort, "protocol": "http", "default_group": "outpatient"}},
		"groups": []any{map[string]any{"name": "outpatient", "servers": servers,
			"health_check": map[string]any{"type": "http", "path": "/healthz", "interval": "100ms", "timeout": "80ms", "rise": 2, "fall": 2}}},
	}}, &lbRes)
	api.ok(200, "POST", "/api/v1/balancers/"+lbRes.ID+"/push", nil, nil)
	spec := map[string]any{"name": "outpatient", "label": "门诊结算", "kind": "executable",
		"args":       []string{"demo-app", "-version", "{{.Version}}", "-listen", "{{.Host}}:{{.Port}}"},
		"ports":      []any{map[string]any{"name": "http", "port": port}},
		"health":     map[string]any{"type": "http", "path": "/healthz", "interval": "100ms", "start_timeout": "20s"},
		"stop_grace": "5s", "balancer": lbRes.ID, "group": "outpatient"}
	var app struct{ ID string }
	api.ok(201, "POST", "/api/v1/deploy/apps", map[string]any{"project_id": project, "spec": spec}, &app)
	return outpatient{app: app.ID, balancer: lbRes.ID, spec: spec,
		lbURL: fmt.Sprintf("http://127.0.0.1:%d/pms/biz/outpatient/bizc2201", lbPort)}
}

// The seed's distributed service, end to end through the reference server's API: three local
// nodes, the outpatient app in a team's project behind a balancer, v1 and v2 uploaded
// (streamed, checksum verified; a wrong checksum, a missing one and an oversized upload refused
// with nothing stored), v1 deployed, a rolling upgrade to v2 under steady traffic with no
// failed request, a rollback, one instance stopped and started, the history and the release
// feed with its cursor; another team sees none of it; bad input changes nothing; and after a
// restart the state is still there and the instances serve again.
func TestDeployOutpatientApp(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	admin := "shk_e2edeploy0123456789abcdef"
	v1, v2 := newArtifact(t, ""), newArtifact(t, demoAppTrailer)
	limit := v2.size + 1024
	c, done := openCenter(t, ctx, dir, admin, limit)
	root := rest{t: t, base: c.URL(), token: admin}

	// Two teams, each with a project and a token.
	type tenant struct {
		team, project string
		api           rest
	}
	newTenant := func(name string) tenant {
		var team, project struct{ ID string }
		var tok struct{ Secret string }
		root.ok(201, "POST", "/api/v1/teams", map[string]string{"name": name}, &team)
		root.ok(201, "POST", "/api/v1/projects", map[string]string{"team_id": team.ID, "name": name + "-核心经办"}, &project)
		root.ok(201, "POST", "/api/v1/tokens", map[string]string{"team_id": team.ID, "name": "ci"}, &tok)
		return tenant{team.ID, project.ID, rest{t: t, base: c.URL(), token: tok.Secret}}
	}
	yb, other := newTenant("医保开发团队"), newTenant("other-team")
	api := yb.api

	// A node runs code on a host the server reaches, so the admin registers it for the team;
	// the team cannot.
	api.ok(403, "POST", "/api/v1/deploy/nodes", map[string]any{"spec": map[string]any{"name": "mine", "driver": "local", "host": "127.0.0.21"}}, nil)
	op := newOutpatient(t, root, api, yb.team, yb.project)
	lbURL, appSpec := op.lbURL, op.spec
	lbRes := struct{ ID string }{op.balancer}
	app := struct{ ID string }{op.app}
	api.ok(409, "PUT", "/api/v1/deploy/apps/"+app.ID+"/versions/v1", nil, nil) // not pushed yet
	api.ok(200, "POST", "/api/v1/deploy/apps/"+app.ID+"/push", nil, nil)
	base := "/api/v1/deploy/apps/" + app.ID

	// Uploads: refused ones keep nothing.
	artifacts := func() []string {
		var names []string
		for _, sub := range []string{"sha256", "tmp"} {
			entries, err := os.ReadDir(filepath.Join(dir, "deploy", "artifacts", sub))
			require.NoError(t, err)
			for _, e := range entries {
				names = append(names, sub+"/"+e.Name())
			}
		}
		return names
	}
	status, raw := api.put(base+"/versions/v1", v2.digest, v1.reader(t, false), v1.size)
	require.Equal(t, 400, status, "%s", raw)
	require.Contains(t, string(raw), `"digest"`)
	require.Contains(t, string(raw), "checksum mismatch")
	status, raw = api.put(base+"/versions/v1", "", v1.reader(t, false), v1.size)
	require.Equal(t, 400, status, "%s", raw)
	require.Contains(t, string(raw), `"digest":"is required`)
	// Too large by its Content-Length: refused before a byte of the body is read.
	pr, pw := io.Pipe()
	status, raw = api.put(base+"/versions/big", "sha256:"+strings.Repeat("0", 64), pr, limit+1)
	pw.Close()
	require.Equal(t, 413, status, "%s", raw)
	require.Contains(t, string(raw), `"code":"body_too_large"`)
	// Too large as it streams: cut at the limit.
	status, raw = api.put(base+"/versions/big", "sha256:"+strings.Repeat("0", 64), io.LimitReader(zeros{}, limit+1), -1)
	require.True(t, status == 413 || status == 0, "a streamed upload past the limit is cut: %d %s", status, raw)
	require.Empty(t, artifacts(), "refused uploads leave nothing behind")
	var versions struct{ Items []any }
	api.ok(200, "GET", base+"/versions", nil, &versions)
	require.Empty(t, versions.Items)

	var ver struct {
		Name, Digest string
		Size         int64
	}
	status, raw = api.put(base+"/versions/v1?notes=first", v1.digest, v1.reader(t, true), -1)
	require.Equal(t, 201, status, "%s", raw)
	require.NoError(t, json.Unmarshal(raw, &ver))
	require.Equal(t, v1.digest, ver.Digest)
	require.Equal(t, v1.size, ver.Size)
	status, raw = api.put(base+"/versions/v2", v2.digest, v2.reader(t, false), v2.size)
	require.Equal(t, 201, status, "%s", raw)
	status, raw = api.put(base+"/versions/v2", v2.digest, v2.reader(t, false), v2.size)
	require.Equal(t, 409, status, "versions are immutable: %s", raw)
	api.ok(200, "GET", base+"/versions", nil, &versions)
	require.Len(t, versions.Items, 2)
	require.Len(t, artifacts(), 2)

	// v1 on the three nodes, at once.
	var d deployment
	api.ok(202, "POST", base+"/deployments", map[string]any{"version": "v1", "nodes": []string{"n1", "n2", "n3"}, "strategy": map[string]any{"type": "all-at-once"}}, &d)
	d = api.waitDeployment(d.ID)
	require.Equal(t, "succeeded", d.State, d.Error)
	require.Eventually(t, func() bool {
		a, err := get(http.DefaultClient, lbURL)
		return err == nil && a.Version == "v1"
	}, 5*time.Second, 50*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // every server passes the balancer's checks

	// Rolling upgrade to v2 under steady traffic, followed as JSON lines.
	tr := startTraffic(lbURL, 4)
	api.ok(202, "POST", base+"/deployments", map[string]any{"version": "v2", "strategy": map[string]any{"type": "rolling", "batch_size": 1}}, &d)
	req, _ := http.NewRequest("GET", c.URL()+"/api/v1/deploy/deployments/"+d.ID+"/follow", nil)
	req.Header.Set("Authorization", "Bearer "+api.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var states []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var snap deployment
		require.NoError(t, json.Unmarshal(sc.Bytes(), &snap))
		states = append(states, fmt.Sprintf("%s/%d", snap.State, len(snap.Steps)))
	}
	resp.Body.Close()
	require.GreaterOrEqual(t, len(states), 2, "follow shows the deployment as it goes: %v", states)
	require.Equal(t, "succeeded/3", states[len(states)-1])
	time.Sleep(300 * time.Millisecond)
	tr.end()
	require.Zero(t, tr.failed.Load(), "failed requests out of %d: %v", tr.sent.Load(), tr.errs)
	require.Positive(t, tr.versions["v1"])
	require.Positive(t, tr.versions["v2"])
	t.Logf("rolling upgrade v1→v2: %d requests through the balancer, 0 failed (%v)", tr.sent.Load(), tr.versions)
	require.Equal(t, map[string]bool{"v2": true}, versionsNow(t, lbURL))

	// Rollback to v1, in one step.
	api.ok(202, "POST", base+"/rollback", nil, &d)
	d = api.waitDeployment(d.ID)
	require.Equal(t, "succeeded", d.State, d.Error)
	require.Equal(t, "rollback", d.Type)
	require.Equal(t, "v1", d.Version)
	require.Eventually(t, func() bool { return versionsNow(t, lbURL)["v1"] && !versionsNow(t, lbURL)["v2"] }, 5*time.Second, 100*time.Millisecond)
	var st struct {
		Current, Previous string
		Instances         []struct {
			ID, Node, Version string
			Status            struct{ State string }
		}
	}
	api.ok(200, "GET", base+"/status", nil, &st)
	require.Equal(t, "v1", st.Current)
	require.Len(t, st.Instances, 3)

	// Stop one instance and start it again; the balancer keeps serving.
	tr = startTraffic(lbURL, 2)
	var inst struct {
		Node    string
		Stopped bool
		Status  struct{ State string }
	}
	api.ok(200, "POST", base+"/instances/n2/stop", nil, &inst)
	require.True(t, inst.Stopped)
	require.Equal(t, "stopped", inst.Status.State)
	time.Sleep(200 * time.Millisecond)
	inst.Stopped, inst.Status.State = false, "" // "stopped" is left out when false
	api.ok(200, "POST", base+"/instances/n2/start", nil, &inst)
	require.Equal(t, "running", inst.Status.State)
	api.ok(404, "POST", base+"/instances/nope/restart", nil, nil)
	time.Sleep(200 * time.Millisecond)
	tr.end()
	require.Zero(t, tr.failed.Load(), "failed requests while an instance stopped: %v", tr.errs)

	// History and the release feed, read with a cursor.
	var hist struct{ Items []deployment }
	api.ok(200, "GET", base+"/deployments", nil, &hist)
	require.Len(t, hist.Items, 3)
	require.Equal(t, []string{"v1", "v2", "v1"}, []string{hist.Items[0].Version, hist.Items[1].Version, hist.Items[2].Version})
	type event struct {
		Seq                   int64
		Project, App, Version string
		Nodes                 []string
		Type                  string
	}
	var page struct {
		Items []event
		Next  int64
	}
	api.ok(200, "GET", "/api/v1/deploy/events?after=0", nil, &page)
	require.Len(t, page.Items, 3)
	require.Equal(t, yb.project, page.Items[0].Project, "deploy's project is the refserver project")
	require.Equal(t, []string{"n1", "n2", "n3"}, page.Items[1].Nodes)
	require.Equal(t, "rollback", page.Items[2].Type)
	require.Equal(t, int64(3), page.Next)
	api.ok(200, "GET", "/api/v1/deploy/events?after=2&limit=5", nil, &page)
	require.Len(t, page.Items, 1)
	require.Equal(t, "v1", page.Items[0].Version)
	waitStart := time.Now()
	api.ok(200, "GET", "/api/v1/deploy/events?after=3&wait=200ms", nil, &page)
	require.Empty(t, page.Items)
	require.Equal(t, int64(3), page.Next)
	require.GreaterOrEqual(t, time.Since(waitStart), 200*time.Millisecond)

	// Another team sees nothing of it, and cannot use the first team's nodes or project.
	o := other.api
	var apps struct{ Items []any }
	o.ok(200, "GET", "/api/v1/deploy/apps", nil, &apps)
	require.Empty(t, apps.Items)
	o.ok(200, "GET", "/api/v1/deploy/nodes", nil, &apps)
	require.Empty(t, apps.Items)
	o.ok(404, "GET", base, nil, nil)
	o.ok(404, "GET", base+"/versions", nil, nil)
	o.ok(404, "GET", base+"/deployments", nil, nil)
	o.ok(404, "POST", base+"/instances/n1/stop", nil, nil)
	o.ok(404, "POST", base+"/rollback", nil, nil)
	o.ok(404, "GET", "/api/v1/deploy/deployments/"+d.ID, nil, nil)
	o.ok(404, "POST", "/api/v1/deploy/deployments/"+d.ID+"/abort", nil, nil)
	status, _ = o.put(base+"/versions/v9", v1.digest, strings.NewReader("x"), 1)
	require.Equal(t, 404, status)
	var deps struct{ Items []any }
	o.ok(200, "GET", "/api/v1/deploy/deployments", nil, &deps)
	require.Empty(t, deps.Items)
	o.ok(200, "GET", "/api/v1/deploy/events?after=0", nil, &page)
	require.Empty(t, page.Items)
	require.Equal(t, int64(3), page.Next, "the cursor moves past other teams' events")
	raw = o.ok(400, "POST", "/api/v1/deploy/apps", map[string]any{"project_id": yb.project, "spec": appSpec}, nil)
	require.Contains(t, string(raw), `"project_id":"no such project"`)
	spec2 := map[string]any{"name": "outpatient", "kind": "executable", "ports": []any{map[string]any{"name": "http", "port": 0}}}
	var app2 struct{ ID string }
	o.ok(201, "POST", "/api/v1/deploy/apps", map[string]any{"project_id": other.project, "spec": spec2}, &app2)
	o.ok(200, "POST", "/api/v1/deploy/apps/"+app2.ID+"/push", nil, nil)
	raw = o.ok(400, "POST", "/api/v1/deploy/apps/"+app2.ID+"/deployments", map[string]any{"version": "v1", "nodes": []string{"n1"}}, nil)
	require.Contains(t, string(raw), `"nodes[0]"`)
	spec2["balancer"], spec2["group"] = lbRes.ID, "outpatient"
	o.ok(200, "PUT", "/api/v1/deploy/apps/"+app2.ID, map[string]any{"spec": spec2}, nil)
	raw = o.ok(400, "POST", "/api/v1/deploy/apps/"+app2.ID+"/push", nil, nil)
	require.Contains(t, string(raw), `"spec.balancer":"no such balancer in the app's team"`)

	// Bad input: every field error at once, and nothing changes.
	var before struct{ Items []any }
	api.ok(200, "GET", "/api/v1/deploy/apps", nil, &before)
	raw = api.ok(400, "POST", "/api/v1/deploy/apps", map[string]any{"project_id": yb.project, "spec": map[string]any{
		"project": "x", "name": "Bad Name", "kind": "war", "ports": []any{map[string]any{"name": "http", "port": 70000}}, "balancer": lbRes.ID}}, nil)
	for _, f := range []string{"spec.project", "spec.name", "spec.kind", "spec.ports[0].port", "spec.group"} {
		require.Contains(t, string(raw), `"`+f+`"`, "%s", raw)
	}
	raw = root.ok(400, "POST", "/api/v1/deploy/nodes", map[string]any{"team_id": yb.team, "spec": map[string]any{"name": "n9", "driver": "local", "dir": "/etc"}}, nil)
	require.Contains(t, string(raw), `"spec.dir"`)
	raw = root.ok(400, "POST", "/api/v1/deploy/nodes", map[string]any{"team_id": yb.team, "spec": map[string]any{"name": "n9", "driver": "ssh", "ssh": map[string]any{"addr": "nope", "user": "u"}}}, nil)
	require.Contains(t, string(raw), `"spec.ssh.addr"`)
	require.Contains(t, string(raw), `"spec.ssh.known_hosts"`)
	raw = api.ok(400, "POST", base+"/deployments", map[string]any{"version": "v9", "strategy": map[string]any{"type": "sideways"}}, nil)
	require.Contains(t, string(raw), `"strategy.type"`)
	raw = api.ok(400, "POST", base+"/deployments", map[string]any{"version": "v9"}, nil)
	require.Contains(t, string(raw), `"version"`)
	raw = api.ok(400, "POST", base+"/deployments", map[string]any{"version": "v2", "nodes": []string{"n1", "ghost"}}, nil)
	require.Contains(t, string(raw), `"nodes[1]"`)
	raw = api.ok(400, "GET", "/api/v1/deploy/events?after=-1&limit=0&wait=forever", nil, nil)
	for _, f := range []string{"after", "limit", "wait"} {
		require.Contains(t, string(raw), `"`+f+`"`)
	}
	status, raw = api.put(base+"/versions/..bad", v1.digest, strings.NewReader("x"), 1)
	require.Equal(t, 400, status, "%s", raw)
	require.Contains(t, string(raw), `"name"`)
	var after struct{ Items []any }
	api.ok(200, "GET", "/api/v1/deploy/apps", nil, &after)
	require.Equal(t, len(before.Items), len(after.Items))
	api.ok(200, "GET", base+"/deployments", nil, &hist)
	require.Len(t, hist.Items, 3, "no deployment started by bad input")
	raw = api.ok(409, "DELETE", base, nil, nil)
	require.Contains(t, string(raw), "scale it to no node first")

	// The audit log has the uploads, deployments and instance actions.
	audit := string(root.ok(200, "GET", "/api/v1/audit?kind=deployapp", nil, nil))
	for _, action := range []string{`"action":"upload"`, `"action":"deploy"`, `"action":"rollback"`, `"action":"stop"`, `"action":"start"`} {
		require.Contains(t, audit, action)
	}

	// A restart keeps apps, versions, instances and history, and runs the instances again.
	cancel()
	require.NoError(t, <-done)
	_, err = get(http.DefaultClient, lbURL)
	require.Error(t, err, "the balancer and the instances stop with the server")
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	c2, done2 := openCenter(t, ctx2, dir, admin, limit)
	api.base = c2.URL()
	api.ok(200, "GET", base+"/status", nil, &st)
	require.Equal(t, "v1", st.Current)
	require.Eventually(t, func() bool {
		a, err := get(http.DefaultClient, lbURL)
		return err == nil && a.Version == "v1"
	}, 15*time.Second, 100*time.Millisecond, "instances resumed after the restart")
	api.ok(200, "GET", base+"/deployments", nil, &hist)
	require.Len(t, hist.Items, 3)
	api.ok(200, "GET", "/api/v1/deploy/events?after=0", nil, &page)
	require.Len(t, page.Items, 3)
	cancel2()
	require.NoError(t, <-done2)
	t.Logf("deploy e2e took %v", time.Since(start).Round(time.Millisecond))
}
