package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

// recorder is an HTTP server that counts the requests it gets and keeps the last
// Authorization header.
type recorder struct {
	*httptest.Server
	hits atomic.Int32
	auth atomic.Value
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		r.auth.Store(req.Header.Get("Authorization"))
		io.WriteString(w, `{"id":"x","name":"核心经办"}`)
	}))
	t.Cleanup(r.Close)
	return r
}

// pushBinding creates a project binding of B's project to source and pushes it, answering
// the push's status and body.
func pushBinding(t *testing.T, bAPI rest, bProj string, source map[string]any) (int, string) {
	var res struct{ ID string }
	status, raw := bAPI.do("POST", "/api/v1/appsync/bindings", map[string]any{"spec": map[string]any{
		"name": "hxjb", "kind": "project", "target": bProj, "source": source}})
	if status != 201 {
		return status, string(raw)
	}
	require.NoError(t, json.Unmarshal(raw, &res))
	status, raw = bAPI.do("POST", "/api/v1/appsync/bindings/"+res.ID+"/push", nil)
	bAPI.ok(204, "DELETE", "/api/v1/appsync/bindings/"+res.ID, nil, nil)
	return status, string(raw)
}

// A team cannot make the server fetch a URL of its choosing: a loopback port of the
// team's choice is never asked, and a binding names one of the peers the admin configured.
func TestBindingCannotFetchArbitraryURL(t *testing.T) {
	peer := newRecorder(t)
	b := startSyncCenter(t, "b", newSyncKey(t), 1<<20, config.Peer{Name: "a", URL: peer.URL})
	_, bProj, bAPI := b.tenant("医保开发团队", "核心经办")
	target := newRecorder(t)
	status, body := pushBinding(t, bAPI, bProj, map[string]any{"url": target.URL, "id": "pj_x", "token": "shk_secret"})
	require.Zero(t, target.hits.Load(), "the server fetched the team's URL")
	require.Equal(t, 400, status, body)
	status, body = pushBinding(t, bAPI, bProj, map[string]any{"peer": "elsewhere", "id": "pj_x", "token": "shk_secret"})
	require.Equal(t, 400, status, body)
	require.Contains(t, body, `"spec.source.peer":"must be one of the configured peers: a"`)
	require.Zero(t, target.hits.Load()+peer.hits.Load())
	status, body = pushBinding(t, bAPI, bProj, map[string]any{"peer": "a", "id": "pj_x", "token": "shk_secret"})
	require.Equal(t, 200, status, body)
	require.Equal(t, int32(1), peer.hits.Load())
	require.Equal(t, "Bearer shk_secret", peer.auth.Load())
}

// A peer that redirects elsewhere is not followed, with or without the token; the team is
// told the status.
func TestBindingDoesNotFollowRedirects(t *testing.T) {
	elsewhere := newRecorder(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}))
	defer redirector.Close()
	b := startSyncCenter(t, "b", newSyncKey(t), 1<<20, config.Peer{Name: "a", URL: redirector.URL})
	_, bProj, bAPI := b.tenant("医保开发团队", "核心经办")
	status, body := pushBinding(t, bAPI, bProj, map[string]any{"peer": "a", "id": "pj_x", "token": "shk_secret"})
	require.Zero(t, elsewhere.hits.Load(), "the redirect was followed, Authorization %q", elsewhere.auth.Load())
	require.Equal(t, 400, status, body)
	require.Contains(t, body, `"spec.source":"peer a: answered 302"`)
}

// A closed port and an open port that speaks no HTTP look the same to the team.
func TestBindingErrorsDoNotTellPortsApart(t *testing.T) {
	closed := "127.0.0.1:" + strconv.Itoa(freeTCP(t, "127.0.0.1"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n")
			c.Close()
		}
	}()
	b := startSyncCenter(t, "b", newSyncKey(t), 1<<20,
		config.Peer{Name: "closed", URL: "http://" + closed}, config.Peer{Name: "ssh", URL: "http://" + ln.Addr().String()})
	_, bProj, bAPI := b.tenant("医保开发团队", "核心经办")
	requestID := regexp.MustCompile(`"request_id":"[0-9a-f]+"`)
	answer := func(peer string) (int, string) {
		status, body := pushBinding(t, bAPI, bProj, map[string]any{"peer": peer, "id": "pj_x", "token": "shk_secret"})
		return status, strings.ReplaceAll(requestID.ReplaceAllString(body, ""), peer, "PEER")
	}
	statusClosed, closedBody := answer("closed")
	statusOpen, openBody := answer("ssh")
	require.Equal(t, 400, statusClosed, closedBody)
	require.Equal(t, statusClosed, statusOpen)
	require.Equal(t, closedBody, openBody)
	require.Contains(t, closedBody, `"spec.source":"peer PEER: unreachable"`)
}

// Two teams may both name a DR group "orders"; whatever B is told, it names nothing of A's.
func TestDRGroupNamesAcrossTeams(t *testing.T) {
	c := startSyncCenter(t, "a", newSyncKey(t), 1<<20)
	_, _, aAPI := c.tenant("医保开发团队", "核心经办")
	_, _, bAPI := c.tenant("other-team", "公共服务")
	group := map[string]any{"name": "orders", "kind": "redis", "a": map[string]any{"addr": "127.0.0.1:1"}, "b": map[string]any{"addr": "127.0.0.1:2"}}
	var ga, gb struct{ ID string }
	aAPI.ok(201, "POST", "/api/v1/dr/groups", map[string]any{"spec": group}, &ga)
	aAPI.ok(200, "POST", "/api/v1/dr/groups/"+ga.ID+"/push", nil, nil)
	bAPI.ok(201, "POST", "/api/v1/dr/groups", map[string]any{"spec": group}, &gb)
	status, raw := bAPI.do("POST", "/api/v1/dr/groups/"+gb.ID+"/push", nil)
	require.NotContains(t, string(raw), ga.ID, "B is told A's group's ID")
	require.Equal(t, 200, status, "DR group names are per team: %s", raw)

	// B's plan naming "orders" acts on B's group (refused, as it is not paired).
	var plan struct{ ID string }
	bAPI.ok(201, "POST", "/api/v1/dr/plans", map[string]any{"spec": map[string]any{"name": "drill", "groups": []string{"orders"},
		"steps": []any{map[string]any{"kind": "precheck"}}}}, &plan)
	raw = bAPI.ok(409, "POST", "/api/v1/dr/plans/"+plan.ID+"/drill", nil, nil)
	require.Contains(t, string(raw), gb.ID)
	require.NotContains(t, string(raw), ga.ID)
}

// A source bound by one team's binding is refused to another's without naming the first,
// and only to a team whose token the peer accepts for it.
func TestBindingConflictAcrossTeams(t *testing.T) {
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer shk_secret" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"id":"pj_x","name":"核心经办"}`)
	}))
	defer peer.Close()
	b := startSyncCenter(t, "b", newSyncKey(t), 1<<20, config.Peer{Name: "a", URL: peer.URL})
	_, proj1, api1 := b.tenant("医保开发团队", "核心经办")
	_, proj2, api2 := b.tenant("other-team", "公共服务")
	source := map[string]any{"peer": "a", "id": "pj_x", "token": "shk_secret"}
	var first struct{ ID string }
	api1.ok(201, "POST", "/api/v1/appsync/bindings", map[string]any{"spec": map[string]any{
		"name": "hxjb", "kind": "project", "target": proj1, "source": source}}, &first)
	api1.ok(200, "POST", "/api/v1/appsync/bindings/"+first.ID+"/push", nil, nil)
	status, body := pushBinding(t, api2, proj2, source)
	require.Equal(t, 400, status, body)
	require.Contains(t, body, `"spec.source.id":"is bound already"`)
	require.NotContains(t, body, first.ID, "team 2 is told team 1's binding")
	status, body = pushBinding(t, api2, proj2, map[string]any{"peer": "a", "id": "pj_x", "token": "shk_guess"})
	require.Equal(t, 400, status, body)
	require.Contains(t, body, `"spec.source":"peer a has no projects/pj_x that the token may see"`, "a team without authority over the source learns nothing of its bindings")
}

// A binding whose peer the admin removed reaches nothing, and says why.
func TestBindingPeerRemoved(t *testing.T) {
	peer := newRecorder(t)
	b := startSyncCenter(t, "b", newSyncKey(t), 1<<20, config.Peer{Name: "a", URL: peer.URL})
	_, bProj, bAPI := b.tenant("医保开发团队", "核心经办")
	var bnd struct{ ID string }
	bAPI.ok(201, "POST", "/api/v1/appsync/bindings", map[string]any{"spec": map[string]any{
		"name": "hxjb", "kind": "project", "target": bProj, "source": map[string]any{"peer": "a", "id": "pj_x", "token": "shk_secret"}}}, &bnd)
	bAPI.ok(200, "POST", "/api/v1/appsync/bindings/"+bnd.ID+"/push", nil, nil)
	b.stop()
	b.peers = nil
	b.start()
	hits := peer.hits.Load()
	var st struct {
		SourceError string `json:"source_error"`
	}
	bAPI.ok(200, "GET", "/api/v1/appsync/bindings/"+bnd.ID+"/status", nil, &st)
	require.Equal(t, `peer "a": no peer center is configured here: the admin lists the other centers under peers in the server's configuration`, st.SourceError)
	var task struct{ ID string }
	bAPI.ok(201, "POST", "/api/v1/appsync/tasks", map[string]any{"spec": map[string]any{"name": "config", "binding": bnd.ID, "kind": "config"}}, &task)
	raw := bAPI.ok(400, "POST", "/api/v1/appsync/tasks/"+task.ID+"/push", nil, nil)
	require.Contains(t, string(raw), `"spec.binding":"peer \"a\": no peer center is configured here`)
	require.Equal(t, hits, peer.hits.Load())
}

// A task whose peer stops answering says so in its status, not how the connection failed.
func TestTaskErrorsDoNotTellHowThePeerFailed(t *testing.T) {
	peer := newRecorder(t)
	b := startSyncCenter(t, "b", newSyncKey(t), 1<<20, config.Peer{Name: "a", URL: peer.URL})
	_, bProj, bAPI := b.tenant("医保开发团队", "核心经办")
	var bnd, task struct{ ID string }
	bAPI.ok(201, "POST", "/api/v1/appsync/bindings", map[string]any{"spec": map[string]any{
		"name": "hxjb", "kind": "project", "target": bProj, "source": map[string]any{"peer": "a", "id": "pj_x", "token": "shk_secret"}}}, &bnd)
	bAPI.ok(200, "POST", "/api/v1/appsync/bindings/"+bnd.ID+"/push", nil, nil)
	peer.Close()
	bAPI.ok(201, "POST", "/api/v1/appsync/tasks", map[string]any{"spec": map[string]any{
		"name": "config", "binding": bnd.ID, "kind": "config", "wait": "1s", "retry_min": "50ms", "retry_max": "200ms"}}, &task)
	bAPI.ok(200, "POST", "/api/v1/appsync/tasks/"+task.ID+"/push", nil, nil)
	var st syncStatus
	require.Eventually(t, func() bool {
		st = taskStatus(bAPI, task.ID)
		return st.LastError != ""
	}, 10*time.Second, 20*time.Millisecond)
	require.NotContains(t, st.LastError, "refused")
	require.Contains(t, st.LastError, "peer a: unreachable")
}
