package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

// pathsCenter starts a center with DNS on, and a team with a balancer (listener biz, group g)
// and a pushed zone; it returns the team's client and the balancer's and zone's paths.
func pathsCenter(t *testing.T) (api rest, lb, zone string) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	admin := "shk_paths0123456789abcdef"
	c, _ := openCenter(t, ctx, t.TempDir(), admin, config.Default().MaxArtifactBytes,
		func(cfg *config.Config) { cfg.DNS.Listen = freeDNS(t, "127.0.0.1") })
	root := rest{t, c.URL(), admin}
	team := newTenant(t, root, "paths")
	grantLoopback(t, root, team.id)
	var b, z struct{ ID string }
	team.api.ok(201, "POST", "/api/v1/balancers", map[string]any{"spec": map[string]any{
		"name": "outpatient", "address": "127.0.0.1",
		"listeners": []any{map[string]any{"name": "biz", "port": freeTCP(t, "127.0.0.1"), "protocol": "http", "default_group": "g"}},
		"groups":    []any{map[string]any{"name": "g", "servers": []any{map[string]any{"name": "s1", "address": "127.0.0.21", "port": 8085, "weight": 1}}}},
	}}, &b)
	team.api.ok(201, "POST", "/api/v1/zones", map[string]any{"spec": map[string]any{
		"origin": "paths.internal.", "record_sets": []any{map[string]any{"name": "db", "type": "A", "active": "a",
			"centers": map[string]any{"a": []string{"10.0.0.1"}, "b": []string{"10.0.0.2"}}}},
	}}, &z)
	team.api.ok(200, "POST", "/api/v1/zones/"+z.ID+"/push", nil, nil)
	return team.api, "/api/v1/balancers/" + b.ID, "/api/v1/zones/" + z.ID
}

// fields answers the field errors of a refused request.
func fields(t *testing.T, c rest, method, path string, in any) map[string]string {
	t.Helper()
	status, raw := c.do(method, path, in)
	require.Equal(t, http.StatusBadRequest, status, "%s %s: %s", method, path, raw)
	var e struct {
		Error struct{ Fields map[string]string }
	}
	require.NoError(t, json.Unmarshal(raw, &e), "%s", raw)
	return e.Error.Fields
}

// Every field error names the JSON path of the body that was sent, array indices included:
// the four cases of issue 16 item 5, and their kin.
func TestErrorFieldsAreTheBodysJSONPath(t *testing.T) {
	api, lb, zone := pathsCenter(t)
	listener := func(name string, port any) string {
		return `{"name":"` + name + `","port":` + mustJSON(t, port) + `,"protocol":"http","default_group":"g"}`
	}
	spec := func(listeners string) json.RawMessage {
		return json.RawMessage(`{"spec":{"name":"x","address":"127.0.0.1","listeners":[` + listeners + `],` +
			`"groups":[{"name":"g","servers":[{"name":"s1","address":"127.0.0.21","port":8085,"weight":1}]}]}}`)
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
		want               map[string]string
	}{
		{"unknown field in the spec", "POST", "/api/v1/balancers",
			spec(listener("a", 20001) + `,{"name":"b","port":20002,"protocol":"http","prot":1}`),
			map[string]string{"spec.listeners[1].prot": "unknown field"}},
		{"unknown field in the body", "POST", "/api/v1/balancers", json.RawMessage(`{"spce":{}}`),
			map[string]string{"spce": "unknown field"}},
		{"wrong type in the third listener", "POST", "/api/v1/balancers",
			spec(listener("a", 20001) + "," + listener("b", 20002) + "," + listener("c", "x")),
			map[string]string{"spec.listeners[2].port": "must be a number, got string"}},
		{"a duration given as a number", "POST", "/api/v1/balancers",
			json.RawMessage(`{"spec":{"name":"x","groups":[{"name":"g"},{"name":"h","health_check":{"interval":5}}]}}`),
			map[string]string{"spec.groups[1].health_check.interval": `must be a duration string such as "5s", got number 5`}},
		{"a body without a spec: an action's input", "POST", zone + "/switch", map[string]any{"to": "nowhere"},
			map[string]string{"to": ""}},
		{"an action's input of the wrong type", "POST", zone + "/changes",
			json.RawMessage(`{"changes":[{"op":"add","set":{"name":"a","type":"A","data":["10.0.0.2"]}},{"op":"add","set":{"name":"b","type":"A","ttl":"x"}}]}`),
			map[string]string{"changes[1].set.ttl": "must be a number, got string"}},
		{"a listener posted alone", "POST", lb + "/listeners", json.RawMessage(listener("more", 70000)),
			map[string]string{"port": "must be at most 65535"}},
		{"a listener posted alone, of the wrong type", "POST", lb + "/listeners", json.RawMessage(listener("more", "x")),
			map[string]string{"port": "must be a number, got string"}},
		{"a listener put alone with an unknown field", "PUT", lb + "/listeners/biz", json.RawMessage(`{"port":20003,"protocol":"http","tls":{"nope":1}}`),
			map[string]string{"tls.nope": "unknown field"}},
		{"rules put alone", "PUT", lb + "/listeners/biz/rules", json.RawMessage(`{"items":[{"path_prefix":"/a","group":"g"},{"path_prefix":"/b","group":"nope"}]}`),
			map[string]string{"items[1].group": `no server group named "nope"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fields(t, api, tc.method, tc.path, tc.body)
			require.Len(t, got, len(tc.want), "%v", got)
			for k, msg := range tc.want {
				require.Contains(t, got, k)
				if msg != "" {
					require.Equal(t, msg, got[k], k)
				}
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// A sub-resource follows one rule: POST to the collection creates (201), PUT to the item
// replaces it or creates it when absent (201 then, 200 when replaced), DELETE removes it
// (204), and every answer is the item, not the parent resource.
func TestPartsAnswerTheItem(t *testing.T) {
	api, lb, _ := pathsCenter(t)
	port := freeTCP(t, "127.0.0.1")
	var item map[string]any
	api.ok(201, "PUT", lb+"/listeners/new", map[string]any{"port": port, "protocol": "http", "default_group": "g"}, &item)
	require.Equal(t, map[string]any{"name": "new", "port": float64(port), "protocol": "http", "default_group": "g"}, item,
		"created by a PUT, its name filled in from the path")
	api.ok(200, "PUT", lb+"/listeners/new", map[string]any{"name": "new", "port": port, "protocol": "tcp", "default_group": "g"}, &item)
	require.Equal(t, "tcp", item["protocol"], "replaced")
	require.Equal(t, map[string]string{"name": `must be "new", the name in the path`},
		fields(t, api, "PUT", lb+"/listeners/new", map[string]any{"name": "other", "port": port, "protocol": "http", "default_group": "g"}))

	h := map[string]any{"name": "h", "servers": []any{map[string]any{"name": "s1", "address": "127.0.0.21", "port": 8085, "weight": 1}}}
	api.ok(201, "POST", lb+"/groups", h, &item)
	require.Equal(t, "h", item["name"])
	require.Len(t, item["servers"], 1)
	status, _ := api.do("POST", lb+"/groups", h)
	require.Equal(t, http.StatusConflict, status, "POST creates only")

	var servers struct{ Items []map[string]any }
	api.ok(200, "PUT", lb+"/groups/h/servers", map[string]any{"items": []any{map[string]any{"name": "s1", "address": "127.0.0.22", "port": 8085, "weight": 1}}}, &servers)
	require.Len(t, servers.Items, 1)
	require.Equal(t, "127.0.0.22", servers.Items[0]["address"])

	req, err := http.NewRequest("POST", api.base+lb+"/listeners",
		strings.NewReader(`{"name":"上海 1","port":`+mustJSON(t, freeTCP(t, "127.0.0.1"))+`,"protocol":"http","default_group":"g"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+api.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, lb+"/listeners/"+url.PathEscape("上海 1"), resp.Header.Get("Location"))
	api.ok(200, "GET", resp.Header.Get("Location"), nil, &item)
	require.Equal(t, "上海 1", item["name"])
	api.ok(204, "DELETE", resp.Header.Get("Location"), nil, nil)

	api.ok(204, "DELETE", lb+"/listeners/new", nil, nil)
	status, _ = api.do("GET", lb+"/listeners/new", nil)
	require.Equal(t, http.StatusNotFound, status)
	var res struct {
		Revision int64
		Spec     struct{ Listeners []map[string]any }
	}
	api.ok(200, "GET", lb, nil, &res)
	require.Len(t, res.Spec.Listeners, 1, "each edit saved the whole spec")
}
