package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Pairing a DR group whose Redis does not answer is the middleware's failure, not the
// server's: 502 bad_gateway with the cause, and no password in it.
func TestDRPairWithRedisDownIsABadGateway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin := "shk_e2edrdown0123456789abcdef"
	c, done := openCenter(t, ctx, t.TempDir(), admin, 1<<20)
	defer func() { cancel(); require.NoError(t, <-done) }()
	root := rest{t: t, base: c.URL(), token: admin}
	var team struct{ ID string }
	root.ok(201, "POST", "/api/v1/teams", map[string]string{"name": "dr"}, &team)

	down := func() string { return fmt.Sprintf("127.0.0.1:%d", freeTCP(t, "127.0.0.1")) }
	password := "pair-password-never-shown"
	group := map[string]any{"name": "ybj-cache", "kind": "redis",
		"a": map[string]any{"addr": down(), "password": password}, "b": map[string]any{"addr": down(), "password": password}}
	var g struct{ ID string }
	root.ok(201, "POST", "/api/v1/dr/groups", map[string]any{"team_id": team.ID, "spec": group}, &g)
	root.ok(200, "POST", "/api/v1/dr/groups/"+g.ID+"/push", nil, nil)
	status, raw := root.do("POST", "/api/v1/dr/groups/"+g.ID+"/pair", nil)
	t.Logf("%s", raw)
	require.Equal(t, 502, status, "%s", raw)
	require.Contains(t, string(raw), `"code":"bad_gateway"`)
	require.Contains(t, string(raw), "unreachable")
	require.False(t, strings.Contains(string(raw), password), "the answer shows the password: %s", raw)
}

// A DR group of a kind this server has no driver for (kafka, fastdfs) is refused at save,
// with the kinds it has drivers for, not accepted and then refused at push.
func TestDRGroupKindWithoutDriverIsRefusedAtSave(t *testing.T) {
	root := startGrantsCenter(t)
	team := newTenant(t, root, "dr")
	for _, kind := range []string{"kafka", "fastdfs"} {
		group := map[string]any{"name": "ybj-" + kind, "kind": kind,
			"a": map[string]any{"addr": "127.0.0.1:1"}, "b": map[string]any{"addr": "127.0.0.1:2"}}
		status, raw := team.api.do("POST", "/api/v1/dr/groups", map[string]any{"spec": group})
		require.Equal(t, 400, status, "%s", raw)
		require.Contains(t, string(raw), `"spec.kind":"no driver for kind `+kind+` in this server (it has: redis)"`)
	}
	group := map[string]any{"name": "ybj-cache", "kind": "redis",
		"a": map[string]any{"addr": "127.0.0.1:1"}, "b": map[string]any{"addr": "127.0.0.1:2"}}
	var g struct{ ID string }
	team.api.ok(201, "POST", "/api/v1/dr/groups", map[string]any{"spec": group}, &g)
	group["kind"] = "kafka"
	refused(t, team.api, "spec.kind", "PUT", "/api/v1/dr/groups/"+g.ID, map[string]any{"spec": group})
}
