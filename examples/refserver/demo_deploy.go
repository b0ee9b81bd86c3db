package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The demo's distributed service (分布式服务): the outpatient app (门诊结算) deployed by
// center A's deploy plane on three local nodes, behind a balancer of its own. The app is this
// very binary, run as "refserver demo-app", so the demo needs no toolchain; v2 is the same
// program with a trailer appended (a different artifact, hence a different sha256), and it
// says its version in every answer.

// demoDeploy is what seedDeploy made, for the printout.
type demoDeploy struct {
	appID       string
	balancerID  string
	balancerURL string
}

// demoAppTrailer makes v2's artifact differ from v1's; the program ignores it.
const demoAppTrailer = "\nshuanghuo demo app v2\n"

// runDemoApp is the demo's outpatient app: GET /healthz answers "ok <version>", every other
// path a settlement that names the server and the version. It stops on SIGTERM, letting
// requests in flight finish.
func runDemoApp(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("refserver demo-app", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "dev", "the `version` the app says it is")
	listen := fs.String("listen", "127.0.0.1:8086", "the `address` to serve on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			fmt.Fprintln(w, "ok", *version)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"server\":%q,\"version\":%q,\"path\":%q,\"result\":\"settled\"}\n", *listen, *version, r.URL.Path)
	})}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintln(stderr, "demo app", *version, "serving on", *listen)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// seedDeploy registers three local nodes whose instances serve on addrs, a balancer in front
// of them on lbPort, the outpatient app in 核心经办 with v1 and v2 uploaded, and deploys v1
// on the three nodes, waiting for it. The balancer is the seed's: the first instances are its
// working servers, the last its standby, so that stopping the working instances one by one
// (real processes, stopped through the API) shows the standby take over.
func seedDeploy(ctx context.Context, dc *demoCenter, addrs []string, lbPort int) (demoDeploy, error) {
	admin := apiClient{base: dc.url, token: dc.adminToken}
	var projects struct{ Items []struct{ ID, Name string } }
	if err := admin.call(ctx, "GET", "/api/v1/projects?team_id="+url.QueryEscape(dc.teamID), nil, &projects); err != nil {
		return demoDeploy{}, err
	}
	project := ""
	for _, p := range projects.Items {
		if p.Name == demoProjects[0].name {
			project = p.ID
		}
	}
	if project == "" {
		return demoDeploy{}, errors.New("no project " + demoProjects[0].name)
	}
	var nodes []string
	var servers []any
	port := 0
	for i, addr := range addrs {
		h, p, err := net.SplitHostPort(strings.TrimSpace(addr))
		if err != nil {
			return demoDeploy{}, fmt.Errorf("deploy app address %q: %w", addr, err)
		}
		if port, err = strconv.Atoi(p); err != nil || port == 0 {
			return demoDeploy{}, fmt.Errorf("deploy app address %q: want a port other than 0", addr)
		}
		name := fmt.Sprintf("app-%d", i+1)
		var n struct{ ID string }
		if err := admin.call(ctx, "POST", "/api/v1/deploy/nodes", map[string]any{"team_id": dc.teamID,
			"spec": map[string]any{"name": name, "driver": "local", "host": h, "labels": map[string]string{"center": dc.name, "zone": fmt.Sprintf("zone-%d", i+1)}}}, &n); err != nil {
			return demoDeploy{}, err
		}
		if err := admin.call(ctx, "POST", "/api/v1/deploy/nodes/"+n.ID+"/push", nil, nil); err != nil {
			return demoDeploy{}, err
		}
		nodes = append(nodes, name)
		role := "working"
		if i == len(addrs)-1 {
			role = "standby"
		}
		servers = append(servers, map[string]any{"name": name, "address": h, "port": port, "role": role, "zone": fmt.Sprintf("zone-%d", i+1)})
	}
	host, _, _ := net.SplitHostPort(dc.cfg.Listen)
	balancer := map[string]any{
		"name": "outpatient-deployed", "address": host,
		"listeners": []any{map[string]any{"name": "biz", "port": lbPort, "protocol": "http",
			"rules": []any{map[string]any{"path_prefix": "/pms/biz/outpatient", "group": "outpatient"}}}},
		"groups": []any{map[string]any{"name": "outpatient", "servers": servers,
			"health_check": map[string]any{"type": "http", "path": "/healthz", "interval": "500ms", "fall": 2, "rise": 2}}},
	}
	var lbRes struct{ ID string }
	if err := admin.call(ctx, "POST", "/api/v1/balancers", map[string]any{"team_id": dc.teamID, "spec": balancer}, &lbRes); err != nil {
		return demoDeploy{}, err
	}
	if err := admin.call(ctx, "POST", "/api/v1/balancers/"+lbRes.ID+"/push", nil, nil); err != nil {
		return demoDeploy{}, err
	}
	app := map[string]any{"name": "outpatient", "label": "门诊结算", "kind": "executable",
		"args":       []string{"demo-app", "-version", "{{.Version}}", "-listen", "{{.Host}}:{{.Port}}"},
		"ports":      []any{map[string]any{"name": "http", "port": port}},
		"health":     map[string]any{"type": "http", "path": "/healthz", "interval": "200ms", "start_timeout": "30s"},
		"stop_grace": "5s", "balancer": lbRes.ID, "group": "outpatient"}
	var a struct{ ID string }
	if err := admin.call(ctx, "POST", "/api/v1/deploy/apps", map[string]any{"project_id": project, "spec": app}, &a); err != nil {
		return demoDeploy{}, err
	}
	if err := admin.call(ctx, "POST", "/api/v1/deploy/apps/"+a.ID+"/push", nil, nil); err != nil {
		return demoDeploy{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return demoDeploy{}, fmt.Errorf("the demo app is this binary: %w", err)
	}
	for _, v := range []struct{ name, trailer, notes string }{
		{"v1", "", "门诊结算 first release"},
		{"v2", demoAppTrailer, "门诊结算 with the new fee rules"},
	} {
		if err := uploadFile(ctx, admin, "/api/v1/deploy/apps/"+a.ID+"/versions/"+v.name+"?notes="+url.QueryEscape(v.notes), exe, v.trailer); err != nil {
			return demoDeploy{}, err
		}
	}
	var d struct{ ID, State, Error string }
	if err := admin.call(ctx, "POST", "/api/v1/deploy/apps/"+a.ID+"/deployments",
		map[string]any{"version": "v1", "nodes": nodes, "strategy": map[string]any{"type": "all-at-once"}}, &d); err != nil {
		return demoDeploy{}, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for d.State == "running" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if err := admin.call(ctx, "GET", "/api/v1/deploy/deployments/"+d.ID, nil, &d); err != nil {
			return demoDeploy{}, err
		}
	}
	if d.State != "succeeded" {
		return demoDeploy{}, fmt.Errorf("deployment %s of v1: %s %s", d.ID, d.State, d.Error)
	}
	return demoDeploy{appID: a.ID, balancerID: lbRes.ID, balancerURL: fmt.Sprintf("http://%s/pms/biz/outpatient/bizc2201", net.JoinHostPort(host, strconv.Itoa(lbPort)))}, nil
}

// uploadFile streams the file, followed by trailer, to path with its sha256.
func uploadFile(ctx context.Context, c apiClient, path, file, trailer string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	io.WriteString(h, trailer)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "PUT", c.base+path, io.MultiReader(f, strings.NewReader(trailer)))
	if err != nil {
		return err
	}
	req.ContentLength = size + int64(len(trailer))
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Checksum-Sha256", "sha256:"+hex.EncodeToString(h.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("PUT %s: %s: %s", path, resp.Status, b)
	}
	return nil
}

// printDeploy shows the seed's key moment on the deployed app's balancer, and how to roll the
// app to v2 and back.
func printDeploy(w io.Writer, dc *demoCenter) {
	if dc.deploy.appID == "" {
		return
	}
	fmt.Fprintf(w, `
the seed's key moment (balancer in front of the deployed app: app-1, app-2 working, app-3 standby):
  curl %[1]s   # "server" names the instance that answered
  curl -N -H 'Authorization: Bearer %[2]s' %[3]s/api/v1/balancers/%[5]s/events   # the monitor, in another terminal
  curl -X POST -H 'Authorization: Bearer %[2]s' %[3]s/api/v1/deploy/apps/%[4]s/instances/app-1/stop   # app-2 answers
  curl -H 'Authorization: Bearer %[2]s' %[3]s/api/v1/balancers/%[5]s/status   # each server's state
  curl -X POST -H 'Authorization: Bearer %[2]s' %[3]s/api/v1/deploy/apps/%[4]s/instances/app-2/stop   # app-3, the standby, answers
  curl -X POST -H 'Authorization: Bearer %[2]s' %[3]s/api/v1/deploy/apps/%[4]s/instances/app-1/start  # app-1 takes the traffic back
`, dc.deploy.balancerURL, dc.teamToken, dc.url, dc.deploy.appID, dc.deploy.balancerID)
	fmt.Fprintf(w, `
deploy (分布式服务: 门诊结算 v1 on local nodes app-1..3 behind its own balancer; v2 uploaded too):
  curl %[1]s   # "version":"v1"
  curl -X POST -H 'Authorization: Bearer %[2]s' -H 'Content-Type: application/json' \
       -d '{"version":"v2","strategy":{"type":"rolling","batch_size":1}}' %[3]s/api/v1/deploy/apps/%[4]s/deployments
  curl -N -H 'Authorization: Bearer %[2]s' %[3]s/api/v1/deploy/deployments/<id from the answer>/follow
  curl -X POST -H 'Authorization: Bearer %[2]s' %[3]s/api/v1/deploy/apps/%[4]s/rollback   # back to v1
  curl -H 'Authorization: Bearer %[2]s' %[3]s/api/v1/deploy/apps/%[4]s/status          # versions, instances
  curl -H 'Authorization: Bearer %[2]s' '%[3]s/api/v1/deploy/events?after=0'            # the release feed
`, dc.deploy.balancerURL, dc.teamToken, dc.url, dc.deploy.appID)
}
