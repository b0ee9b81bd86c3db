//go:build integration

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/center"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
	"github.com/shuanghuo/shuanghuo/internal/mwtest"
)

// The seed's DR scenario through the reference server's API, against real Redis in center A
// and center B: a DR group is defined and forward sync run "now"; a write in A appears in B;
// a DR plan switches production to B (fence, catch-up, promote, switch DNS, verify) and its
// run is followed step by step and reported with RTO and RPO; the DNS answers B's address.
func TestDRSwitchoverThroughTheAPI(t *testing.T) {
	rig := mwtest.NewTestRig(t, mwtest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	redisA, err := rig.StartRedis(ctx, mwtest.CenterA, mwtest.RedisOptions{Name: "ybj"})
	require.NoError(t, err)
	redisB, err := rig.StartRedis(ctx, mwtest.CenterB, mwtest.RedisOptions{Name: "ybj"})
	require.NoError(t, err)

	cfg := config.Default()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", t.TempDir()
	cfg.DNS.Listen = freeDNS(t, "127.0.0.1")
	cfg.Zones = map[string][]string{"a": {"zone-a"}, "b": {"zone-b"}}
	admin := "shk_dr0123456789abcdef0"
	serveCtx, stop := context.WithCancel(context.Background())
	c, err := center.Open(serveCtx, cfg, center.Options{AdminToken: admin})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Serve(serveCtx) }()
	defer func() { stop(); require.NoError(t, <-done) }()
	api := apiClient{base: c.URL(), token: admin}

	var team, other struct{ ID string }
	require.NoError(t, api.call(ctx, "POST", "/api/v1/teams", map[string]string{"name": "医保开发团队"}, &team))
	grantLoopback(t, rest{t, c.URL(), admin}, team.ID)
	require.NoError(t, api.call(ctx, "POST", "/api/v1/teams", map[string]string{"name": "another vendor"}, &other))
	var otherTok struct{ Secret string }
	require.NoError(t, api.call(ctx, "POST", "/api/v1/tokens", map[string]string{"team_id": other.ID, "name": "t"}, &otherTok))

	zone := map[string]any{"origin": "ybj.internal", "record_sets": []any{map[string]any{"name": "redis", "type": "A", "active": "a",
		"centers": map[string][]string{"a": {"10.1.0.5"}, "b": {"10.2.0.5"}}}}}
	var z struct{ ID string }
	require.NoError(t, api.call(ctx, "POST", "/api/v1/zones", map[string]any{"team_id": team.ID, "spec": zone}, &z))
	require.NoError(t, api.call(ctx, "POST", "/api/v1/zones/"+z.ID+"/push", nil, nil))

	balancer := map[string]any{"name": "outpatient", "address": "127.0.0.1",
		"listeners": []any{map[string]any{"name": "biz", "port": freeTCP(t, "127.0.0.1"), "protocol": "http", "default_group": "app"}},
		"groups": []any{map[string]any{"name": "app", "servers": []any{
			map[string]any{"name": "app-a", "address": "127.0.0.1", "port": 9001, "weight": 1, "zone": "zone-a"},
			map[string]any{"name": "app-b", "address": "127.0.0.1", "port": 9002, "weight": 1, "zone": "zone-b", "role": "standby"}}}}}
	var lbRes struct{ ID string }
	require.NoError(t, api.call(ctx, "POST", "/api/v1/balancers", map[string]any{"team_id": team.ID, "spec": balancer}, &lbRes))
	require.NoError(t, api.call(ctx, "POST", "/api/v1/balancers/"+lbRes.ID+"/push", nil, nil))

	group := map[string]any{"name": "ybj-cache", "kind": "redis",
		"a": map[string]any{"addr": redisA.HostAddr, "replication_addr": redisA.LinkAddr, "password": ""},
		"b": map[string]any{"addr": redisB.HostAddr, "replication_addr": redisB.LinkAddr}}
	var g struct{ ID string }
	require.NoError(t, api.call(ctx, "POST", "/api/v1/dr/groups", map[string]any{"team_id": team.ID, "spec": group}, &g))
	require.NoError(t, api.call(ctx, "POST", "/api/v1/dr/groups/"+g.ID+"/push", nil, nil))
	var st struct {
		State  string
		Status *struct{ Link string }
	}
	require.NoError(t, api.call(ctx, "POST", "/api/v1/dr/groups/"+g.ID+"/pair", nil, &st), "run forward sync now")
	require.Equal(t, "in-sync", st.State)

	a := goredis.NewClient(&goredis.Options{Addr: redisA.HostAddr})
	b := goredis.NewClient(&goredis.Options{Addr: redisB.HostAddr})
	defer a.Close()
	defer b.Close()
	require.NoError(t, a.Set(ctx, "settlement:2201", "paid", 0).Err())
	require.Eventually(t, func() bool { v, _ := b.Get(ctx, "settlement:2201").Result(); return v == "paid" }, 10*time.Second, 20*time.Millisecond,
		"a write in A appears in B")

	plan := map[string]any{"name": "planned", "groups": []string{"ybj-cache"}, "steps": []any{
		map[string]any{"kind": "precheck"}, map[string]any{"kind": "fence"}, map[string]any{"kind": "catch-up"},
		map[string]any{"kind": "promote", "confirm": true}, map[string]any{"kind": "switch-dns"}, map[string]any{"kind": "switch-traffic"}}}
	var p struct{ ID string }
	require.NoError(t, api.call(ctx, "POST", "/api/v1/dr/plans", map[string]any{"team_id": team.ID, "spec": plan}, &p))
	otherAPI := apiClient{base: c.URL(), token: otherTok.Secret}
	require.Error(t, otherAPI.call(ctx, "POST", "/api/v1/dr/plans/"+p.ID+"/switchover", nil, nil), "another team cannot start the plan")

	var run struct{ ID, State string }
	require.NoError(t, api.call(ctx, "POST", "/api/v1/dr/plans/"+p.ID+"/switchover", nil, &run))
	require.Error(t, otherAPI.call(ctx, "GET", "/api/v1/dr/runs/"+run.ID, nil, nil), "nor see its run")

	// Follow the run step by step; confirm the manual gate before promotion when it is reached.
	req, _ := http.NewRequestWithContext(ctx, "GET", c.URL()+"/api/v1/dr/runs/"+run.ID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	var seen []string
	confirmed := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var e struct{ Step, State, Message string }
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		seen = append(seen, e.Step+":"+e.State)
		if e.Step == "promote" && e.State == "waiting" && !confirmed {
			confirmed = true
			require.NoError(t, api.call(ctx, "POST", "/api/v1/dr/runs/"+run.ID+"/confirm", map[string]string{"step": "promote"}, nil))
		}
	}
	require.True(t, confirmed, "the run waited at the gate: %v", seen)

	var final struct {
		State  string
		Report struct {
			RTO    string `json:"rto"`
			Groups []struct {
				Group string
				RPO   struct{ Keys int64 } `json:"rpo"`
			}
		}
		Steps []struct{ Name, State string }
	}
	require.NoError(t, api.call(ctx, "GET", "/api/v1/dr/runs/"+run.ID, nil, &final))
	require.Equal(t, "succeeded", final.State, "%+v", final)
	require.NotEmpty(t, final.Report.RTO)
	require.Len(t, final.Report.Groups, 1)
	require.Zero(t, final.Report.Groups[0].RPO.Keys, "a planned switchover loses nothing")
	t.Logf("RTO %s (manual gate included), events %v", final.Report.RTO, seen)

	role, err := b.Do(ctx, "ROLE").Slice()
	require.NoError(t, err)
	require.Equal(t, "master", role[0], "B is promoted")
	require.NoError(t, b.Set(ctx, "after", "switch", 0).Err(), "B takes writes")
	require.Equal(t, "10.2.0.5", lookup(t, cfg.DNS.Listen, "redis.ybj.internal."), "DNS answers B's address")
	var lbStatus struct {
		Groups []struct{ Servers []struct{ Name, Role string } }
	}
	require.NoError(t, api.call(ctx, "GET", "/api/v1/balancers/"+lbRes.ID+"/status", nil, &lbStatus))
	require.Equal(t, "standby", lbStatus.Groups[0].Servers[0].Role, "A's server stands by")
	require.Equal(t, "working", lbStatus.Groups[0].Servers[1].Role, "traffic moved to B's server")

	var runs struct{ Items []struct{ ID string } }
	require.NoError(t, api.call(ctx, "GET", "/api/v1/dr/runs", nil, &runs))
	require.Len(t, runs.Items, 1)
	require.NoError(t, otherAPI.call(ctx, "GET", "/api/v1/dr/runs", nil, &runs))
	require.Empty(t, runs.Items)

	var audit struct{ Items []struct{ Action string } }
	require.NoError(t, api.call(ctx, "GET", "/api/v1/audit?kind=drplan&resource_id="+p.ID, nil, &audit))
	require.Equal(t, "switchover", audit.Items[0].Action)
}
