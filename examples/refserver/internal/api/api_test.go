package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// fixture is an API over a fresh store with two teams, each with a project and a token.
type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	store  store.Store
	admin  string
	teams  [2]store.Team
	proj   [2]store.Project
	tokens [2]store.Token
	secret [2]string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, t.TempDir(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, store: st, admin: NewTokenSecret()}
	require.NoError(t, st.Change(ctx, store.Actor{TokenID: "test"}, func(tx store.Tx) error {
		if _, err := tx.PutToken(ctx, store.Token{ID: "tk_admin", Name: "admin", Hash: HashToken(f.admin)}); err != nil {
			return err
		}
		for i, name := range []string{"医保开发一组", "医保开发二组"} {
			var err error
			if f.teams[i], err = tx.PutTeam(ctx, store.Team{ID: NewID("tm"), Name: name}); err != nil {
				return err
			}
			if f.proj[i], err = tx.PutProject(ctx, store.Project{ID: NewID("pj"), TeamID: f.teams[i].ID, Name: "核心经办"}); err != nil {
				return err
			}
			f.secret[i] = NewTokenSecret()
			if f.tokens[i], err = tx.PutToken(ctx, store.Token{ID: NewID("tk"), TeamID: f.teams[i].ID, Name: "ci", Hash: HashToken(f.secret[i])}); err != nil {
				return err
			}
		}
		return nil
	}))
	s := New(Options{Center: Center{Name: "a", Role: "primary"}, Store: st, MaxBodyBytes: 4096})
	s.SetReady(true)
	f.srv = httptest.NewServer(s)
	t.Cleanup(f.srv.Close)
	return f
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (f *fixture) do(method, path, token, body string) reply {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	require.NoError(f.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(bytes.TrimSpace(raw)) > 0 {
		require.NoError(f.t, json.Unmarshal(raw, &r.body), "every answer is JSON: %s", raw)
	}
	return r
}

func (r reply) errorCode() string {
	e, _ := r.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func (r reply) fields() map[string]any {
	e, _ := r.body["error"].(map[string]any)
	f, _ := e["fields"].(map[string]any)
	return f
}

func (r reply) ids() []string {
	items, _ := r.body["items"].([]any)
	var out []string
	for _, it := range items {
		m := it.(map[string]any)
		if id, ok := m["id"].(string); ok {
			out = append(out, id)
		}
		if id, ok := m["resource_id"].(string); ok {
			out = append(out, id)
		}
	}
	return out
}

// snapshot is everything team i can see, to prove another team changed none of it.
func (f *fixture) snapshot(i int) string {
	var b strings.Builder
	for _, p := range []string{"/api/v1/teams", "/api/v1/projects", "/api/v1/tokens", "/api/v1/audit"} {
		r := f.do("GET", p, f.secret[i], "")
		require.Equal(f.t, 200, r.status, r.raw)
		b.WriteString(r.raw)
	}
	return b.String()
}

func TestTenancyAcrossEveryEndpointFamily(t *testing.T) {
	f := newFixture(t)
	mine, other := f.secret[0], 1
	before := f.snapshot(other)

	// Lists show only the caller's own team.
	require.Equal(t, []string{f.teams[0].ID}, f.do("GET", "/api/v1/teams", mine, "").ids())
	require.Equal(t, []string{f.proj[0].ID}, f.do("GET", "/api/v1/projects", mine, "").ids())
	require.Equal(t, []string{f.tokens[0].ID}, f.do("GET", "/api/v1/tokens", mine, "").ids())
	for _, id := range f.do("GET", "/api/v1/audit?team_id="+f.teams[other].ID, mine, "").ids() {
		require.NotContains(t, []string{f.teams[other].ID, f.proj[other].ID, f.tokens[other].ID}, id, "audit leaks the other team")
	}

	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"get other team", "GET", "/api/v1/teams/" + f.teams[other].ID, "", 404, codeNotFound},
		{"rename other team", "PATCH", "/api/v1/teams/" + f.teams[other].ID, `{"name":"mine now"}`, 404, codeNotFound},
		{"delete other team", "DELETE", "/api/v1/teams/" + f.teams[other].ID, "", 403, codeForbidden},
		{"create a team", "POST", "/api/v1/teams", `{"name":"rogue"}`, 403, codeForbidden},
		{"get other project", "GET", "/api/v1/projects/" + f.proj[other].ID, "", 404, codeNotFound},
		{"change other project", "PATCH", "/api/v1/projects/" + f.proj[other].ID, `{"description":"x"}`, 404, codeNotFound},
		{"delete other project", "DELETE", "/api/v1/projects/" + f.proj[other].ID, "", 404, codeNotFound},
		{"create project in other team", "POST", "/api/v1/projects", `{"team_id":"` + f.teams[other].ID + `","name":"x"}`, 400, codeValidation},
		{"get other token", "GET", "/api/v1/tokens/" + f.tokens[other].ID, "", 404, codeNotFound},
		{"delete other token", "DELETE", "/api/v1/tokens/" + f.tokens[other].ID, "", 404, codeNotFound},
		{"mint token for other team", "POST", "/api/v1/tokens", `{"team_id":"` + f.teams[other].ID + `","name":"x"}`, 400, codeValidation},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.do(c.method, c.path, mine, c.body)
			require.Equal(t, c.status, r.status, r.raw)
			require.Equal(t, c.code, r.errorCode(), r.raw)
		})
	}
	// A missing resource answers exactly like another team's: existence does not leak.
	require.Equal(t, 404, f.do("GET", "/api/v1/projects/pj_doesnotexist", mine, "").status)

	require.Equal(t, before, f.snapshot(other), "the other team's resources changed")
}

func TestTeamManagesItsOwnResources(t *testing.T) {
	f := newFixture(t)
	mine := f.secret[0]
	r := f.do("POST", "/api/v1/projects", mine, `{"name":"公共服务","description":"portal"}`)
	require.Equal(t, 201, r.status, r.raw)
	require.Equal(t, f.teams[0].ID, r.body["team_id"], "a team token's project lands in its own team")
	id := r.body["id"].(string)

	r = f.do("PATCH", "/api/v1/projects/"+id, mine, `{"description":"public service"}`)
	require.Equal(t, 200, r.status, r.raw)
	require.Equal(t, "public service", r.body["description"])
	require.Equal(t, "公共服务", r.body["name"])

	r = f.do("POST", "/api/v1/projects", mine, `{"name":"公共服务"}`)
	require.Equal(t, 409, r.status, r.raw)
	require.Equal(t, codeConflict, r.errorCode())

	r = f.do("POST", "/api/v1/tokens", mine, `{"name":"deployer"}`)
	require.Equal(t, 201, r.status, r.raw)
	secret := r.body["secret"].(string)
	require.True(t, strings.HasPrefix(secret, TokenPrefix))
	require.Equal(t, f.teams[0].ID, r.body["token"].(map[string]any)["team_id"])
	require.NotContains(t, f.do("GET", "/api/v1/tokens", mine, "").raw, secret, "a secret is shown once only")
	require.Equal(t, 200, f.do("GET", "/api/v1/projects/"+id, secret, "").status, "the new token works")

	require.Equal(t, 204, f.do("DELETE", "/api/v1/projects/"+id, mine, "").status)
	require.Equal(t, 404, f.do("GET", "/api/v1/projects/"+id, mine, "").status)

	audit := f.do("GET", "/api/v1/audit?kind=project&resource_id="+id, mine, "")
	require.Equal(t, 200, audit.status, audit.raw)
	items := audit.body["items"].([]any)
	require.Len(t, items, 3)
	actions := []string{}
	for _, it := range items {
		m := it.(map[string]any)
		actions = append(actions, m["action"].(string))
		require.Equal(t, f.tokens[0].ID, m["actor_id"], "audit names who")
	}
	require.Equal(t, []string{"delete", "update", "create"}, actions)
	upd := items[1].(map[string]any)
	require.Equal(t, "portal", upd["before"].(map[string]any)["description"])
	require.Equal(t, "public service", upd["after"].(map[string]any)["description"])
}

func TestAdminSeesEverythingAndManagesTeams(t *testing.T) {
	f := newFixture(t)
	require.Len(t, f.do("GET", "/api/v1/teams", f.admin, "").ids(), 2)
	require.Len(t, f.do("GET", "/api/v1/projects", f.admin, "").ids(), 2)

	r := f.do("POST", "/api/v1/teams", f.admin, `{"name":"银行接口组"}`)
	require.Equal(t, 201, r.status, r.raw)
	team := r.body["id"].(string)
	r = f.do("POST", "/api/v1/projects", f.admin, `{"name":"x"}`)
	require.Equal(t, 400, r.status, r.raw)
	require.Equal(t, "is required", r.fields()["team_id"], "the admin must say which team")
	r = f.do("POST", "/api/v1/projects", f.admin, `{"team_id":"tm_missing","name":"x"}`)
	require.Equal(t, "no such team", r.fields()["team_id"])
	r = f.do("POST", "/api/v1/projects", f.admin, `{"team_id":"`+team+`","name":"x"}`)
	require.Equal(t, 201, r.status, r.raw)

	r = f.do("DELETE", "/api/v1/teams/"+team, f.admin, "")
	require.Equal(t, 409, r.status, "a team with projects is not deleted: %s", r.raw)

	r = f.do("GET", "/api/v1/audit?team_id="+f.teams[1].ID, f.admin, "")
	require.Equal(t, 200, r.status)
	require.Contains(t, r.ids(), f.proj[1].ID)
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t)
	for _, auth := range []string{"", "Bearer ", "Bearer shk_nottoken", "Basic abc", f.secret[0]} {
		req, _ := http.NewRequest("GET", f.srv.URL+"/api/v1/projects", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 401, resp.StatusCode, "Authorization %q", auth)
		require.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))
	}
	require.Equal(t, 200, f.do("GET", "/healthz", "", "").status, "health needs no token")
}

func TestBadInputIsRejectedAndChangesNothing(t *testing.T) {
	f := newFixture(t)
	tok := f.secret[0]
	proj := "/api/v1/projects/" + f.proj[0].ID
	big := `{"name":"x","description":"` + strings.Repeat("长", 3000) + `"}`
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
		fields                          map[string]string
	}{
		{"malformed json", "POST", "/api/v1/projects", "", `{"name":`, 400, codeMalformedJSON, nil},
		{"syntax error", "POST", "/api/v1/projects", "", `{"name" "x"}`, 400, codeMalformedJSON, nil},
		{"empty body", "POST", "/api/v1/projects", "", ``, 400, codeMalformedJSON, nil},
		{"not an object", "POST", "/api/v1/projects", "", `["x"]`, 400, codeMalformedJSON, nil},
		{"two objects", "POST", "/api/v1/projects", "", `{"name":"a"}{"name":"b"}`, 400, codeMalformedJSON, nil},
		{"unknown field", "POST", "/api/v1/projects", "", `{"name":"a","owner":"me"}`, 400, codeValidation, map[string]string{"owner": "unknown field"}},
		{"missing name", "POST", "/api/v1/projects", "", `{"description":"a"}`, 400, codeValidation, map[string]string{"name": "is required"}},
		{"wrong type", "POST", "/api/v1/projects", "", `{"name":"a","description":7}`, 400, codeValidation, map[string]string{"description": "must be a string, got number"}},
		{"name too long", "POST", "/api/v1/projects", "", `{"name":"` + strings.Repeat("核", 65) + `"}`, 400, codeValidation, map[string]string{"name": "must have at most 64 characters or items"}},
		{"control character", "POST", "/api/v1/projects", "", `{"name":"a\u0007b"}`, 400, codeValidation, map[string]string{"name": "must not start or end with spaces or hold control characters"}},
		{"padded name", "PATCH", proj, "", `{"name":" 核心经办"}`, 400, codeValidation, map[string]string{"name": "must not start or end with spaces or hold control characters"}},
		{"patch unknown field", "PATCH", proj, "", `{"team_id":"tm_x"}`, 400, codeValidation, map[string]string{"team_id": "unknown field"}},
		{"oversized body", "POST", "/api/v1/projects", "", big, 413, codeBodyTooLarge, nil},
		{"form body", "POST", "/api/v1/projects", "application/x-www-form-urlencoded", `name=x`, 415, codeUnsupportedMedia, nil},
		{"token without name", "POST", "/api/v1/tokens", "", `{}`, 400, codeValidation, map[string]string{"name": "is required"}},
		{"bad audit query", "GET", "/api/v1/audit?since=yesterday&limit=0&color=red", "", "", 400, codeValidation,
			map[string]string{"since": `must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got "yesterday"`, "limit": `must be an integer from 1 to 1000, got "0"`, "color": "unknown query parameter"}},
		{"wrong method", "PUT", "/api/v1/projects", "", `{}`, 405, codeMethod, nil},
		{"no such endpoint", "GET", "/api/v1/nothing", "", "", 404, codeNotFound, nil},
	}
	before := f.snapshot(0)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rd io.Reader
			if c.body != "" {
				rd = strings.NewReader(c.body)
			}
			req, _ := http.NewRequest(c.method, f.srv.URL+c.path, rd)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("X-Request-Id", "test-"+strings.ReplaceAll(c.name, " ", "-"))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var body struct {
				Error struct {
					Code      string            `json:"code"`
					Message   string            `json:"message"`
					Fields    map[string]string `json:"fields"`
					RequestID string            `json:"request_id"`
				} `json:"error"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			require.Equal(t, c.status, resp.StatusCode, body.Error.Message)
			require.Equal(t, c.code, body.Error.Code)
			require.NotEmpty(t, body.Error.Message)
			require.Equal(t, "test-"+strings.ReplaceAll(c.name, " ", "-"), body.Error.RequestID)
			if c.fields != nil {
				require.Equal(t, c.fields, body.Error.Fields)
			}
			if c.status == 405 {
				require.Equal(t, "GET, POST", resp.Header.Get("Allow"))
			}
		})
	}
	require.Equal(t, before, f.snapshot(0), "a rejected request changed the store")
}

func TestPanicBecomesA500AndTheServerLives(t *testing.T) {
	s := New(Options{Store: nil})
	h := s.withRequestID(s.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/x", nil))
	require.Equal(t, 500, rec.Code)
	require.Contains(t, rec.Body.String(), `"code":"internal"`)
	require.NotContains(t, rec.Body.String(), "boom", "internals stay in the log")
}

func TestMetricsCountRequestsByRoute(t *testing.T) {
	f := newFixture(t)
	f.do("GET", "/api/v1/projects/"+f.proj[0].ID, f.secret[0], "")
	f.do("GET", "/api/v1/projects/"+f.proj[1].ID, f.secret[0], "")
	r, err := http.Get(f.srv.URL + "/metrics")
	require.NoError(t, err)
	defer r.Body.Close()
	text, _ := io.ReadAll(r.Body)
	require.Contains(t, string(text), `shuanghuo_refserver_http_requests_total{code="200",method="GET",route="GET /api/v1/projects/{id}"} 1`)
	require.Contains(t, string(text), `shuanghuo_refserver_http_requests_total{code="404",method="GET",route="GET /api/v1/projects/{id}"} 1`)
}

func TestReadiness(t *testing.T) {
	f := newFixture(t)
	require.Equal(t, 200, f.do("GET", "/readyz", "", "").status)
	s := New(Options{Store: f.store})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	require.Equal(t, 503, rec.Code, "not ready until the center says so")
}
