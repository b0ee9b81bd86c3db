package center

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Listeners, forwarding rules and server groups are edited one at a time; each edit is a new
// revision of the balancer, validated whole.
func TestBalancerPartsCRUD(t *testing.T) {
	token := "shk_0123456789abcdef0123"
	c, err := Open(context.Background(), testConfig(t), Options{AdminToken: token})
	require.NoError(t, err)
	stop, done := serve(t, c)
	defer func() { stop(); require.NoError(t, <-done) }()
	api := client{t: t, base: c.URL(), token: token}

	status, team := api.call("POST", "/api/v1/teams", map[string]any{"name": "t"})
	require.Equal(t, 201, status)
	status, project := api.call("POST", "/api/v1/projects", map[string]any{"team_id": team["id"], "name": "核心经办"})
	require.Equal(t, 201, status)
	api.grantLoopback(team["id"].(string))
	spec := map[string]any{"name": "outpatient", "address": "127.0.0.1",
		"listeners": []any{map[string]any{"name": "biz", "port": 20004, "protocol": "http", "default_group": "app"}},
		"groups":    []any{map[string]any{"name": "app", "servers": []any{map[string]any{"address": "127.0.0.1", "port": 8085, "weight": 1}}}}}
	status, b := api.call("POST", "/api/v1/balancers", map[string]any{"project_id": project["id"], "spec": spec})
	require.Equal(t, 201, status, b)
	base := "/api/v1/balancers/" + b["id"].(string)

	status, out := api.call("POST", base+"/groups", map[string]any{"name": "settle", "servers": []any{
		map[string]any{"address": "127.0.0.1", "port": 8086, "weight": 1, "role": "working", "zone": "zone-1"},
		map[string]any{"address": "127.0.0.1", "port": 8087, "weight": 1, "role": "standby", "zone": "zone-2"}}})
	require.Equal(t, 201, status, out)
	require.Equal(t, "settle", out["name"], "the answer is the item")
	require.Len(t, out["servers"], 2)

	status, out = api.call("PUT", base+"/listeners/biz/rules", map[string]any{"items": []any{
		map[string]any{"path": "/pms/biz/outpatient/bizc2201", "group": "settle"}}})
	require.Equal(t, 200, status, out)
	require.Len(t, out["items"], 1, "the answer is the list")
	status, out = api.call("GET", base+"/listeners/biz/rules", nil)
	require.Equal(t, 200, status)
	require.Len(t, out["items"], 1)

	// A rule pointing at a group that does not exist is refused, and nothing changes.
	status, out = api.call("PUT", base+"/listeners/biz/rules", map[string]any{"items": []any{
		map[string]any{"path": "/x", "group": "nowhere"}}})
	require.Equal(t, 400, status, out)
	require.Contains(t, out["error"].(map[string]any)["fields"], "items[0].group")
	// Nor can a group still in use be deleted.
	status, _ = api.call("DELETE", base+"/groups/settle", nil)
	require.Equal(t, 400, status)

	status, out = api.call("PUT", base+"/listeners/biz", map[string]any{"name": "other", "port": 20004, "protocol": "http"})
	require.Equal(t, 400, status, "the name in the body must match the path")
	require.Contains(t, out["error"].(map[string]any)["fields"], "name")
	status, out = api.call("PUT", base+"/listeners/biz", map[string]any{"port": 20005, "protocol": "http", "default_group": "app",
		"rules": []any{map[string]any{"path": "/pms/biz/outpatient/bizc2201", "group": "settle"}}})
	require.Equal(t, 200, status, out)
	require.EqualValues(t, 20005, out["port"], "the answer is the item")
	status, out = api.call("GET", base+"/listeners/biz", nil)
	require.Equal(t, 200, status)
	require.EqualValues(t, 20005, out["port"])

	status, _ = api.call("POST", base+"/listeners", map[string]any{"name": "biz", "port": 20006, "protocol": "http"})
	require.Equal(t, 409, status, "names are unique")
	status, _ = api.call("GET", base+"/groups/missing", nil)
	require.Equal(t, 404, status)

	status, out = api.call("GET", base, nil)
	require.Equal(t, 200, status)
	require.EqualValues(t, 4, out["revision"], "one revision per accepted edit")
	require.Equal(t, project["id"], out["project_id"])
}
