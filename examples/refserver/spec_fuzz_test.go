package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/center"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

// specKinds are every capability the reference server stores, by collection path, each with
// whom a new resource belongs to ("team_id" or "project_id") and a spec it accepts, the seed
// of its fuzzing.
var specKinds = []struct {
	path, owner, seed string
}{
	{"balancers", "team_id", `{"name":"outpatient","address":"127.0.0.1","listeners":[{"name":"biz","port":20004,"protocol":"http","default_group":"g"}],"groups":[{"name":"g","servers":[{"name":"s1","address":"127.0.0.21","port":8085,"weight":1,"zone":"zone-1"}],"health_check":{"type":"tcp","interval":"1s"}}]}`},
	{"gateways", "team_id", `{"name":"gw","address":"127.0.0.1","listeners":[{"name":"api","port":20005,"protocol":"http"}],"groups":[{"name":"g","servers":[{"address":"127.0.0.21","port":8085,"weight":1}]}],"consumers":[{"id":"h1","name":"省人民医院","kind":"hospital","enabled":true,"app_key":"key-h1-000"}],"apis":[{"name":"门诊结算","method":"POST","path":"/api/settle","upstream":{"group":"g"}}],"grants":[{"api":"门诊结算","consumers":["h1"]}]}`},
	{"zones", "team_id", `{"origin":"ybj.internal.","record_sets":[{"name":"api","type":"A","ttl":30,"centers":{"a":["127.0.0.21"],"b":["127.0.0.22"]},"active":"a"}]}`},
	{"dr/groups", "team_id", `{"name":"cache","kind":"redis","a":{"addr":"127.0.0.1:6379","password":"p"},"b":{"addr":"127.0.0.1:6380"},"sync_timeout":"1m"}`},
	{"dr/plans", "team_id", `{"name":"switch","groups":["cache"],"steps":[{"kind":"precheck"},{"kind":"fence","force":true},{"kind":"catch-up","timeout":"10s"},{"kind":"promote"}]}`},
	{"deploy/apps", "project_id", `{"name":"outpatient","kind":"executable","args":["-v"],"ports":[{"name":"http","port":8085}],"health":{"type":"http","port":"http","path":"/health","interval":"1s"},"restart":{"backoff_min":"100ms"}}`},
	{"deploy/nodes", "team_id", `{"name":"n1","driver":"ssh","host":"127.0.0.21","ssh":{"addr":"127.0.0.21:22","user":"deploy","password":"pw","known_hosts":"/nonexistent"}}`},
	{"appsync/bindings", "team_id", `{"name":"hxjb","kind":"project","target":"pj_x","source":{"peer":"a","id":"pj_y","token":"shk_0123456789abcdef"}}`},
	{"appsync/tasks", "team_id", `{"name":"versions","binding":"sb_x","kind":"version","version":{"mode":"copy"},"wait":"1s"}`},
}

// Every capability's spec is untrusted JSON from a team. Whatever it is, the server answers
// without a 5xx (a panic or an unchecked case would be one), and a refused spec leaves
// nothing behind. One fuzz target covers the decoding and validation of every kind through
// the very path a request takes.
func FuzzCapabilitySpecs(f *testing.F) {
	for i, k := range specKinds {
		f.Add(uint8(i), []byte(k.seed))
		f.Add(uint8(i), []byte(`{}`))
		f.Add(uint8(i), []byte(`{"name":"x","interval":5,"listeners":null,"groups":[{}]}`))
		f.Add(uint8(i), []byte(`[1,2,3]`))
		f.Add(uint8(i), []byte(`"\u0000\u202e"`))
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	cfg := config.Default()
	cfg.Listen, cfg.DataDir, cfg.LogLevel = "127.0.0.1:0", f.TempDir(), "error"
	cfg.SyncKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	cfg.Peers = []config.Peer{{Name: "a", URL: "http://127.0.0.1:1"}}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	cfg.DNS.Listen = udp.LocalAddr().String()
	udp.Close()
	admin := "shk_fuzz0123456789abcdef"
	c, err := center.Open(ctx, cfg, center.Options{AdminToken: admin})
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx) }()
	f.Cleanup(func() { cancel(); <-done })
	client := &http.Client{Timeout: 10 * time.Second}
	call := func(method, path string, body []byte) (int, []byte, error) {
		req, err := http.NewRequest(method, c.URL()+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		return resp.StatusCode, raw, err
	}
	var team, project struct{ ID string }
	for _, step := range []struct {
		path string
		body any
		out  any
	}{
		{"/api/v1/teams", map[string]string{"name": "fuzz"}, &team},
		{"/api/v1/projects", map[string]string{"team_id": "", "name": "fuzz"}, &project},
	} {
		if m, ok := step.body.(map[string]string); ok && m["team_id"] == "" && step.path == "/api/v1/projects" {
			m["team_id"] = team.ID
		}
		b, _ := json.Marshal(step.body)
		status, raw, err := call("POST", step.path, b)
		if err != nil || status != 201 {
			f.Fatalf("POST %s: %d %s %v", step.path, status, raw, err)
		}
		if err := json.Unmarshal(raw, step.out); err != nil {
			f.Fatal(err)
		}
	}
	grant, _ := json.Marshal(map[string]any{"listen": []string{"127.0.0.0/8"}, "ports": []any{map[string]int{"from": 1, "to": 65535}}, "local_backends": true})
	if status, raw, err := call("PUT", "/api/v1/teams/"+team.ID+"/grants", grant); err != nil || status != 200 {
		f.Fatalf("grant: %d %s %v", status, raw, err)
	}
	count := func(t *testing.T, path string) int {
		status, raw, err := call("GET", "/api/v1/"+path, nil)
		if err != nil || status != 200 {
			t.Fatalf("GET %s: %d %s %v", path, status, raw, err)
		}
		var list struct{ Items []json.RawMessage }
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}

	f.Fuzz(func(t *testing.T, kind uint8, spec []byte) {
		k := specKinds[int(kind)%len(specKinds)]
		owner := team.ID
		if k.owner == "project_id" {
			owner = project.ID
		}
		body := fmt.Appendf(nil, `{%q:%q,"spec":`, k.owner, owner)
		body = append(append(body, spec...), '}')
		before := count(t, k.path)
		status, raw, err := call("POST", "/api/v1/"+k.path, body)
		if err != nil {
			t.Fatalf("POST %s: %v", k.path, err)
		}
		if status >= 500 {
			t.Fatalf("POST %s with spec %q: %d %s", k.path, spec, status, raw)
		}
		after := count(t, k.path)
		if status == 201 {
			// Accepted: remove it, so that names stay free for the next input.
			var res struct{ ID string }
			if err := json.Unmarshal(raw, &res); err != nil || res.ID == "" {
				t.Fatalf("201 without an ID: %s", raw)
			}
			if s, raw, err := call("DELETE", "/api/v1/"+k.path+"/"+res.ID, nil); err != nil || s != 204 {
				t.Fatalf("DELETE %s/%s: %d %s %v", k.path, res.ID, s, raw, err)
			}
			return
		}
		if after != before {
			t.Fatalf("POST %s refused with %d (%s) yet the kind has %d resources, had %d", k.path, status, raw, after, before)
		}
	})
}
