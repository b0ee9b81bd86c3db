package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/center"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

// The demo is the seed's two-center platform on loopback: center A (生产中心, primary) and
// center B (灾备中心, standby), each a reference server with its own store, seeded through
// the REST API as an operator would.

// demoTeam and demoProjects are the seed's: one development team (a tenant) with the
// medical-insurance projects 核心经办 (core handling) and 公共服务 (public service).
const (
	demoTeam = "医保开发团队"
	demoZone = "ybj.internal."
)

var demoProjects = []struct{ name, description string }{
	{"核心经办", "core handling: settlement, enrollment, fund accounts"},
	{"公共服务", "public service: the citizens' and hospitals' portal"},
}

type demoCenter struct {
	name, role, seedName string
	cfg                  config.Config
	adminToken           string
	teamToken            string
	url                  string
	balancerURL          string
	drGroup, drPlan      string
	teamID               string
	gateway              demoGateway
	deploy               demoDeploy
	appSync              demoAppSync
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("refserver demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	a := fs.String("a", "127.0.0.11:8080", "center A's (生产中心, primary) API `address`")
	b := fs.String("b", "127.0.0.12:8080", "center B's (灾备中心, standby) API `address`")
	aDNS := fs.String("a-dns", "127.0.0.11:1053", "center A's DNS server `address`")
	bDNS := fs.String("b-dns", "127.0.0.12:1053", "center B's DNS server `address` (a secondary of A's)")
	apps := fs.String("apps", "127.0.0.21:8085,127.0.0.22:8085,127.0.0.23:8085", "the demo outpatient app's three `servers`: working in zone-1, working in zone-2, standby")
	lbPort := fs.Int("lb-port", 20004, "the balancers' listener `port` on each center's address")
	gwPort := fs.Int("gw-port", 20005, "the gateways' listener `port` on each center's address")
	deployApps := fs.String("deploy-apps", "127.0.0.21:8086,127.0.0.22:8086,127.0.0.23:8086", "`addresses` of the outpatient app's instances that center A deploys on its three local nodes")
	deployLBPort := fs.Int("deploy-lb-port", 20006, "the `port` of center A's balancer in front of the deployed app")
	syncHosts := fs.String("b-deploy-hosts", "127.0.0.31,127.0.0.32,127.0.0.33", "`hosts` of center B's three local nodes, where B releases what A releases (on the same port)")
	redisBin := fs.String("redis", defaultRedis(), "Redis server `binary` for the DR group's pair (Debian: redis-tools); empty: no DR group")
	redisPort := fs.Int("redis-port", 6379, "the demo Redis `port` on each center's address")
	dir := fs.String("data-dir", "", "`directory` for both centers' stores; default a fresh temporary one, removed on exit")
	logLevel := fs.String("log-level", "warn", "log `level`: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: refserver demo [flags]\n\nStarts center A and center B in one process, each with its own store, seeded with a demo team,\nthe seed's projects and an internal DNS zone, and prints where to look.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "shuanghuo-demo-")
		if err != nil {
			return fmt.Errorf("demo: make data dir: %w", err)
		}
		defer os.RemoveAll(tmp)
		// The local nodes' users (the demo run as root) pass it to their directories.
		if err := os.Chmod(tmp, 0o711); err != nil {
			return fmt.Errorf("demo: data dir: %w", err)
		}
		*dir = tmp
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("demo: sync key: %w", err)
	}
	syncKey := hex.EncodeToString(key)
	centers := []*demoCenter{
		{name: "a", role: "primary", seedName: "生产中心"},
		{name: "b", role: "standby", seedName: "灾备中心"},
	}
	for i, dc := range centers {
		cfg := config.Default()
		cfg.Center = config.Center{Name: dc.name, Role: dc.role}
		cfg.Listen = []string{*a, *b}[i]
		cfg.DataDir = filepath.Join(*dir, dc.name)
		cfg.LogLevel = *logLevel
		cfg.DNS.Listen = []string{*aDNS, *bDNS}[i]
		// Both centers sign and check appsync's feeds with one key.
		cfg.SyncKey = syncKey
		dc.cfg = cfg
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	backends, err := startDemoApp(ctx, strings.Split(*apps, ","))
	if err != nil {
		return err
	}
	// One Redis per center, the pair of the demo's DR group, if the machine has Redis.
	var redisAddrs []string
	if *redisBin != "" {
		for i, api := range []string{*a, *b} {
			host, _, _ := net.SplitHostPort(api)
			addr := net.JoinHostPort(host, strconv.Itoa(*redisPort))
			if err := startDemoRedis(ctx, *redisBin, addr, filepath.Join(*dir, centers[i].name+"-redis")); err != nil {
				return err
			}
			redisAddrs = append(redisAddrs, addr)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) error {
		cancel()
		wg.Wait()
		return errors.Join(append(errs, err)...)
	}
	// Both centers serve before either is seeded, so that A's NOTIFY of the zone it is seeded
	// with finds B's DNS listening (B's first transfers, before A has the zone, are logged at
	// Info).
	for i, dc := range centers {
		// B's DNS is a secondary of A's: it transfers the zone A serves and follows its
		// NOTIFYs, and keeps answering if A is lost.
		// Each center is the other's peer, which bindings name: B's binds A's project.
		if i == 0 {
			dc.cfg.DNS.Secondaries = []string{centers[1].cfg.DNS.Listen}
			dc.cfg.Peers = []config.Peer{{Name: centers[1].name, URL: "http://" + *b}}
		} else {
			dc.cfg.DNS.Primary = centers[0].cfg.DNS.Listen
			dc.cfg.DNS.PrimaryZones = []string{demoZone}
			dc.cfg.Peers = []config.Peer{{Name: centers[0].name, URL: centers[0].url}}
		}
		dc.adminToken = api.NewTokenSecret()
		c, err := center.Open(ctx, dc.cfg, center.Options{Logger: newLogger(stderr, dc.cfg), AdminToken: dc.adminToken})
		if err != nil {
			return fail(fmt.Errorf("demo: center %s: %w", dc.name, err))
		}
		dc.url = c.URL()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Serve(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel()
			}
		}()
	}
	for i, dc := range centers {
		if err := seedDemo(ctx, dc, i == 0, backends, *lbPort, []int{*gwPort, *deployLBPort}, redisAddrs); err != nil {
			return fail(fmt.Errorf("demo: seed center %s: %w", dc.name, err))
		}
		// Both centers' gateways hold the same consumers with the same secrets: A makes them,
		// B imports A's.
		if err := seedGateway(ctx, dc, backends, *gwPort, centers[0].gateway.secrets); err != nil {
			return fail(fmt.Errorf("demo: seed center %s's gateway: %w", dc.name, err))
		}
		// Center A deploys the outpatient app itself (v1, with v2 ready to roll out); center B
		// follows it through appsync.
		if i == 0 {
			if dc.deploy, err = seedDeploy(ctx, dc, strings.Split(*deployApps, ","), *deployLBPort); err != nil {
				return fail(fmt.Errorf("demo: seed center %s's deployed app: %w", dc.name, err))
			}
		} else if dc.appSync, err = seedAppSync(ctx, centers[0], dc, strings.Split(*syncHosts, ",")); err != nil {
			return fail(fmt.Errorf("demo: seed center %s's app sync: %w", dc.name, err))
		}
	}
	fmt.Fprintln(stdout, "shuanghuo demo: two centers on loopback (Ctrl-C stops both)")
	for _, dc := range centers {
		fmt.Fprintf(stdout, "\ncenter %s — %s (%s)\n  API:         %s/api/v1\n  DNS:         %s\n  balancer:    %s\n  gateway:     %s\n  admin token: %s\n  team token:  %s (team %s)\n",
			dc.name, dc.seedName, dc.role, dc.url, dc.cfg.DNS.Listen, dc.balancerURL, dc.gateway.url, dc.adminToken, dc.teamToken, demoTeam)
	}
	ca, cb := centers[0], centers[1]
	host, port := splitHostPort(ca.cfg.DNS.Listen)
	bhost, bport := splitHostPort(cb.cfg.DNS.Listen)
	fmt.Fprintf(stdout, `
try:
  curl %[9]s   # through center A's balancer
  curl -H 'Authorization: Bearer %[1]s' %[2]s/api/v1/projects
  dig @%[3]s -p %[4]s +short api.%[5]s          # center A's address
  curl -X POST -H 'Authorization: Bearer %[6]s' -H 'Content-Type: application/json' \
       -d '{"to":"b"}' %[2]s/api/v1/zones/switch     # switch every name to center B
  dig @%[7]s -p %[8]s +short api.%[5]s          # B's copy follows A within a second
  curl %[2]s/metrics
`, ca.teamToken, ca.url, host, port, demoZone, ca.adminToken, bhost, bport, ca.balancerURL)
	printGateway(stdout, ca)
	printDeploy(stdout, ca)
	printAppSync(stdout, ca, cb, cb.appSync)
	if ca.drGroup != "" {
		fmt.Fprintf(stdout, `
DR (灾备组 ybj-redis: Redis %[3]s in A, forward sync to %[4]s in B):
  curl -H 'Authorization: Bearer %[1]s' %[2]s/api/v1/dr/groups/%[5]s/status      # state, link, lag
  curl -X POST -H 'Authorization: Bearer %[1]s' %[2]s/api/v1/dr/plans/%[6]s/drill        # what a switchover would cost
  curl -X POST -H 'Authorization: Bearer %[1]s' %[2]s/api/v1/dr/plans/%[6]s/switchover   # switch production to B
  curl -H 'Authorization: Bearer %[1]s' %[2]s/api/v1/dr/runs                     # runs with RTO and RPO
`, ca.adminToken, ca.url, redisAddrs[0], redisAddrs[1], ca.drGroup, ca.drPlan)
	} else {
		fmt.Fprintln(stdout, "\nDR: no Redis server found (apt-get install redis-tools), so the demo has no DR group.")
	}
	wg.Wait()
	return errors.Join(errs...)
}

// seedDemo creates, through the API, the demo team, its projects, its grants and a team token; the
// seed's balancer in front of the outpatient app, pushed; and on the primary the internal DNS
// zone whose names answer per center.
func seedDemo(ctx context.Context, dc *demoCenter, primary bool, backends []string, lbPort int, otherPorts []int, redisAddrs []string) error {
	admin := apiClient{base: dc.url, token: dc.adminToken}
	var team struct{ ID string }
	if err := admin.call(ctx, "POST", "/api/v1/teams", map[string]string{"name": demoTeam, "description": "demo tenant: one vendor's development team"}, &team); err != nil {
		return err
	}
	for _, p := range demoProjects {
		if err := admin.call(ctx, "POST", "/api/v1/projects", map[string]string{"team_id": team.ID, "name": p.name, "description": p.description}, nil); err != nil {
			return err
		}
	}
	var tok struct{ Secret string }
	if err := admin.call(ctx, "POST", "/api/v1/tokens", map[string]string{"team_id": team.ID, "name": "demo team token"}, &tok); err != nil {
		return err
	}
	dc.teamToken = tok.Secret
	dc.teamID = team.ID
	host, _, _ := net.SplitHostPort(dc.cfg.Listen)
	// The team's balancers and gateways listen on the center's address, on the demo's ports,
	// and forward to the demo app on loopback: the admin grants exactly that.
	ports := []any{}
	for _, p := range append([]int{lbPort}, otherPorts...) {
		ports = append(ports, map[string]int{"from": p, "to": p})
	}
	grants := map[string]any{"listen": []string{host}, "ports": ports, "local_backends": true}
	if err := admin.call(ctx, "PUT", "/api/v1/teams/"+team.ID+"/grants", grants, nil); err != nil {
		return err
	}
	var servers []any
	for i, b := range backends {
		h, p, _ := net.SplitHostPort(b)
		port, _ := strconv.Atoi(p)
		role, zone := "working", fmt.Sprintf("zone-%d", i+1)
		if i == len(backends)-1 {
			role, zone = "standby", fmt.Sprintf("zone-%d", i)
		}
		servers = append(servers, map[string]any{"name": fmt.Sprintf("app%d", i+1), "address": h, "port": port, "weight": 1, "role": role, "zone": zone})
	}
	balancer := map[string]any{
		"name": "outpatient", "address": host,
		"listeners": []any{map[string]any{"name": "biz", "port": lbPort, "protocol": "http",
			"rules": []any{map[string]any{"path_prefix": "/pms/biz/outpatient", "group": "outpatient"}}}},
		"groups": []any{map[string]any{"name": "outpatient", "servers": servers,
			"health_check": map[string]any{"type": "http", "path": "/healthz", "interval": "1s", "fall": 2, "rise": 2}}},
	}
	var lbRes struct{ ID string }
	if err := admin.call(ctx, "POST", "/api/v1/balancers", map[string]any{"team_id": team.ID, "spec": balancer}, &lbRes); err != nil {
		return err
	}
	if err := admin.call(ctx, "POST", "/api/v1/balancers/"+lbRes.ID+"/push", nil, nil); err != nil {
		return err
	}
	dc.balancerURL = fmt.Sprintf("http://%s/pms/biz/outpatient/bizc2201", net.JoinHostPort(host, strconv.Itoa(lbPort)))
	if !primary {
		return nil
	}
	perCenter := func(name string) map[string]any {
		return map[string]any{"name": name, "type": "A", "active": "a",
			"centers": map[string][]string{"a": {"127.0.0.11"}, "b": {"127.0.0.12"}}}
	}
	zone := map[string]any{"origin": demoZone, "ttl": 5, "record_sets": []any{
		perCenter("api"), perCenter("console"),
		map[string]any{"name": "redis", "type": "CNAME", "data": []string{"api"}},
	}}
	var z struct{ ID string }
	if err := admin.call(ctx, "POST", "/api/v1/zones", map[string]any{"team_id": team.ID, "spec": zone}, &z); err != nil {
		return err
	}
	if err := admin.call(ctx, "POST", "/api/v1/zones/"+z.ID+"/push", nil, nil); err != nil {
		return err
	}
	if len(redisAddrs) == 0 {
		return nil
	}
	// The seed's 灾备组: A's Redis and B's, with forward sync run at once; and a DR plan that
	// switches production to B.
	group := map[string]any{"name": "ybj-redis", "kind": "redis",
		"a": map[string]any{"addr": redisAddrs[0], "replication_addr": redisAddrs[0]},
		"b": map[string]any{"addr": redisAddrs[1], "replication_addr": redisAddrs[1]}}
	var g struct{ ID string }
	if err := admin.call(ctx, "POST", "/api/v1/dr/groups", map[string]any{"team_id": team.ID, "spec": group}, &g); err != nil {
		return err
	}
	if err := admin.call(ctx, "POST", "/api/v1/dr/groups/"+g.ID+"/push", nil, nil); err != nil {
		return err
	}
	if err := admin.call(ctx, "POST", "/api/v1/dr/groups/"+g.ID+"/pair", nil, nil); err != nil {
		return err
	}
	dc.drGroup = g.ID
	plan := map[string]any{"name": "switch to B", "groups": []string{"ybj-redis"}, "steps": []any{
		map[string]any{"kind": "precheck"}, map[string]any{"kind": "fence"}, map[string]any{"kind": "catch-up"},
		map[string]any{"kind": "promote"}, map[string]any{"kind": "switch-dns"}}}
	var p struct{ ID string }
	if err := admin.call(ctx, "POST", "/api/v1/dr/plans", map[string]any{"team_id": team.ID, "spec": plan}, &p); err != nil {
		return err
	}
	dc.drPlan = p.ID
	return nil
}

// defaultRedis finds a Redis server binary: redis-server on the PATH, or the one Debian's
// redis-tools installs as redis-check-rdb (the binary picks its mode from its name).
func defaultRedis() string {
	for _, name := range []string{"redis-server", "/usr/bin/redis-check-rdb"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// startDemoRedis runs a Redis server on addr until ctx ends.
func startDemoRedis(ctx context.Context, bin, addr, dir string) error {
	host, port, _ := net.SplitHostPort(addr)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("demo: redis dir: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, "--bind", host, "--port", port, "--dir", dir, "--save", "",
		"--appendonly", "no", "--protected-mode", "no", "--repl-diskless-sync-delay", "0", "--daemonize", "no")
	cmd.Args[0] = "redis-server"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("demo: start redis on %s: %w", addr, err)
	}
	go cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: redis on %s did not start: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startDemoApp serves the demo's outpatient app on each address: a settlement endpoint that
// says which server answered, and /healthz for the balancers' checks.
func startDemoApp(ctx context.Context, addrs []string) ([]string, error) {
	var bound []string
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", strings.TrimSpace(addr))
		if err != nil {
			return nil, fmt.Errorf("demo: outpatient app on %s: %w", addr, err)
		}
		name := ln.Addr().String()
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				io.WriteString(w, "ok\n")
				return
			}
			fmt.Fprintf(w, "{\"server\":%q,\"path\":%q,\"result\":\"settled\"}\n", name, r.URL.Path)
		})}
		go srv.Serve(ln)
		context.AfterFunc(ctx, func() { srv.Close() })
		bound = append(bound, name)
	}
	return bound, nil
}

// apiClient calls a center's REST API as an operator's script would.
type apiClient struct {
	base, token string
}

func (c apiClient) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func splitHostPort(addr string) (string, string) {
	host, port, _ := net.SplitHostPort(addr)
	return host, port
}
