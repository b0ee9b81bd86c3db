package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

// A team binding covers every project of its team, so it cannot be pushed beside a project
// binding of one of them, nor the reverse: two tasks would apply the same apps and each take
// the other's changes for a conflict. The refusal names the caller's own overlapping
// project and binding, never another team's.
func TestBindingTeamAndProjectOverlap(t *testing.T) {
	peer := newRecorder(t)
	b := startSyncCenter(t, "b", newSyncKey(t), 1<<20, config.Peer{Name: "a", URL: peer.URL})
	team, proj, bAPI := b.tenant("医保开发团队", "核心经办")
	var proj2 struct{ ID string }
	b.root.ok(201, "POST", "/api/v1/projects", map[string]string{"team_id": team, "name": "公共服务"}, &proj2)
	otherTeam, otherProj, otherAPI := b.tenant("other-team", "核心经办")

	save := func(c rest, name, kind, target, source string) string {
		var res struct{ ID string }
		c.ok(201, "POST", "/api/v1/appsync/bindings", map[string]any{"spec": map[string]any{
			"name": name, "kind": kind, "target": target,
			"source": map[string]any{"peer": "a", "id": source, "token": "shk_secret"}}}, &res)
		return res.ID
	}
	// Another team's project binding neither shows in this team's answers nor holds its
	// team binding back.
	theirs := save(otherAPI, "theirs", "project", otherProj, "pj_theirs")
	otherAPI.ok(200, "POST", "/api/v1/appsync/bindings/"+theirs+"/push", nil, nil)

	byProject := save(bAPI, "hxjb", "project", proj, "pj_a")
	bAPI.ok(200, "POST", "/api/v1/appsync/bindings/"+byProject+"/push", nil, nil)
	byTeam := save(bAPI, "team", "team", team, "tm_a")
	raw := bAPI.ok(400, "POST", "/api/v1/appsync/bindings/"+byTeam+"/push", nil, nil)
	require.Contains(t, string(raw), `"spec.target":"project `+proj+` is bound already, by project binding `+byProject+`: a team binding covers every project of the team; delete the project bindings first"`)
	require.NotContains(t, string(raw), otherProj)
	require.NotContains(t, string(raw), otherTeam)
	require.NotContains(t, string(raw), theirs)

	// The reverse: the team binding pushed first, a project binding of any project of the
	// team is refused.
	bAPI.ok(204, "DELETE", "/api/v1/appsync/bindings/"+byProject, nil, nil)
	bAPI.ok(200, "POST", "/api/v1/appsync/bindings/"+byTeam+"/push", nil, nil)
	byProject2 := save(bAPI, "ggfw", "project", proj2.ID, "pj_b")
	raw = bAPI.ok(400, "POST", "/api/v1/appsync/bindings/"+byProject2+"/push", nil, nil)
	require.Contains(t, string(raw), `"spec.target":"project `+proj2.ID+` is bound already, by team binding `+byTeam+`, which covers every project of the team"`)
	require.NotContains(t, string(raw), theirs)

	// Two project bindings make a plural.
	bAPI.ok(204, "DELETE", "/api/v1/appsync/bindings/"+byTeam, nil, nil)
	bAPI.ok(200, "POST", "/api/v1/appsync/bindings/"+byProject2+"/push", nil, nil)
	byProject = save(bAPI, "hxjb", "project", proj, "pj_a")
	bAPI.ok(200, "POST", "/api/v1/appsync/bindings/"+byProject+"/push", nil, nil)
	byTeam = save(bAPI, "team", "team", team, "tm_a")
	raw = bAPI.ok(400, "POST", "/api/v1/appsync/bindings/"+byTeam+"/push", nil, nil)
	require.Contains(t, string(raw), "projects ")
	require.Contains(t, string(raw), proj2.ID)
	require.Contains(t, string(raw), byProject2)
	require.NotContains(t, string(raw), theirs)
}
