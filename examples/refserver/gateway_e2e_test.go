package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/center"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
	"github.com/shuanghuo/shuanghuo/gateway"
)

// rest calls the API with a token and returns the status and the raw body.
type rest struct {
	t     *testing.T
	base  string
	token string
}

func (c rest) do(method, path string, in any) (int, []byte) {
	c.t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		require.NoError(c.t, err)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp.StatusCode, raw
}

// ok calls and requires the status, decoding the answer into out (if not nil).
func (c rest) ok(status int, method, path string, in, out any) []byte {
	c.t.Helper()
	got, raw := c.do(method, path, in)
	require.Equal(c.t, status, got, "%s %s: %s", method, path, raw)
	if out != nil {
		require.NoError(c.t, json.Unmarshal(raw, out), "%s", raw)
	}
	return raw
}

// gwCall sends one request through the gateway, signed with key and secret (unsigned when
// key is empty), and returns the status and the body.
func gwCall(t *testing.T, base, method, path, key, secret, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		require.NoError(t, (&gateway.Signer{AppKey: key, Secret: secret}).Sign(req))
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

// code is the refusal code of a gateway's JSON error.
func code(t *testing.T, body string) string {
	t.Helper()
	var e gateway.ErrorBody
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	return string(e.Error.Code)
}

type statsRow struct {
	API       string            `json:"api"`
	Consumer  string            `json:"consumer"`
	Calls     uint64            `json:"calls"`
	Successes uint64            `json:"successes"`
	Errors    map[string]uint64 `json:"errors"`
}

// The gateway scenario through the reference server's API, with a real loopback
// upstream: a team creates a gateway, adds two hospitals and a pharmacy, makes each a secret
// (shown once, never again in any answer or the audit log), grants, pushes; signed calls go
// through, a replay, a bad signature and an ungranted API each get their own code; the
// statistics count every call exactly; after a restart on the same data dir the gateway runs
// again with the same secrets and the statistics are still there; another team sees nothing.
func TestGatewayThroughTheAPI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := config.Default()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", t.TempDir()
	admin := "shk_gwe2e0123456789abcdef"
	start := func(ctx context.Context) (*center.Center, chan error) {
		c, err := center.Open(ctx, cfg, center.Options{AdminToken: admin})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- c.Serve(ctx) }()
		return c, done
	}
	ctx1, stop1 := context.WithCancel(ctx)
	c, done := start(ctx1)
	root := rest{t, c.URL(), admin}

	// The outpatient app: answers with the consumer the gateway vouches for.
	upstream, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "settled for %s (%s) at %s", r.Header.Get("X-Consumer-Id"), r.Header.Get("X-Consumer-Kind"), r.URL.Path)
	})}
	go app.Serve(upstream)
	defer app.Close()
	appPort := upstream.Addr().(*net.TCPAddr).Port

	teams := map[string]string{}
	tokens := map[string]string{}
	for _, name := range []string{"医保开发团队", "other"} {
		var team struct{ ID string }
		root.ok(201, "POST", "/api/v1/teams", map[string]string{"name": name}, &team)
		grantLoopback(t, root, team.ID)
		var tok struct{ Secret string }
		root.ok(201, "POST", "/api/v1/tokens", map[string]string{"team_id": team.ID, "name": "t"}, &tok)
		teams[name], tokens[name] = team.ID, tok.Secret
	}
	api := rest{t, c.URL(), tokens["医保开发团队"]}
	other := rest{t, c.URL(), tokens["other"]}

	gwPort := freeTCP(t, "127.0.0.1")
	spec := map[string]any{
		"name": "ybj-gateway", "address": "127.0.0.1",
		"listeners": []any{map[string]any{"name": "api", "port": gwPort, "protocol": "http"}},
		"groups": []any{map[string]any{"name": "outpatient",
			"servers": []any{map[string]any{"name": "app1", "address": "127.0.0.1", "port": appPort, "weight": 1}}}},
		"apis": []any{
			map[string]any{"name": "门诊结算", "method": "POST", "path": "/pms/biz/outpatient/*", "upstream": map[string]any{"group": "outpatient"}},
			map[string]any{"name": "住院结算", "method": "POST", "path": "/pms/biz/inpatient/*", "upstream": map[string]any{"group": "outpatient"}},
		},
	}
	var gw struct{ ID string }
	api.ok(201, "POST", "/api/v1/gateways", map[string]any{"team_id": teams["医保开发团队"], "spec": spec}, &gw)
	base := "/api/v1/gateways/" + gw.ID

	// A secret is not part of the spec.
	_, raw := api.do("POST", base+"/consumers", map[string]any{"id": "x", "name": "x", "kind": "other", "app_key": "ak-xxxxxxxx", "secrets": []string{strings.Repeat("s", 32)}})
	require.Contains(t, string(raw), `"secrets":"secrets are not part of the spec`)

	consumers := []map[string]any{
		{"id": "hosp-1", "name": "省人民医院", "kind": "hospital", "org_code": "H32010000001", "enabled": true, "app_key": "ak-hosp-0001"},
		{"id": "hosp-2", "name": "市第一医院", "kind": "hospital", "org_code": "H32010000002", "enabled": true, "app_key": "ak-hosp-0002"},
		{"id": "pharm-1", "name": "老百姓大药房", "kind": "pharmacy", "org_code": "P32010000001", "enabled": true, "app_key": "ak-pharm-0001"},
	}
	for _, cs := range consumers {
		api.ok(201, "POST", base+"/consumers", cs, nil)
	}
	// No push before every consumer has a secret.
	status, raw := api.do("POST", base+"/push", nil)
	require.Equal(t, 400, status, "%s", raw)
	require.Contains(t, string(raw), "has no secret yet")

	secrets := map[string]string{}
	for _, cs := range consumers {
		var s struct {
			Consumer, AppKey, Secret string
			ActiveSecrets            int `json:"active_secrets"`
		}
		api.ok(201, "POST", base+"/consumers/"+cs["id"].(string)+"/secret", nil, &s)
		require.Len(t, s.Secret, 64)
		require.Equal(t, 1, s.ActiveSecrets)
		secrets[cs["id"].(string)] = s.Secret
	}
	api.ok(201, "POST", base+"/grants", map[string]any{"api": "门诊结算", "consumers": []string{"hosp-1", "hosp-2", "pharm-1"}}, nil)
	api.ok(201, "POST", base+"/grants", map[string]any{"api": "住院结算", "consumers": []string{"hosp-1"}}, nil)
	// An unknown consumer in a grant is a field error.
	status, raw = api.do("PUT", base+"/grants/"+url.PathEscape("住院结算")+"/consumers", map[string]any{"items": []string{"hosp-1", "nobody"}})
	require.Equal(t, 400, status)
	require.Contains(t, string(raw), `"items[1]":`)
	// A policy is created by a PUT to its name, as by a POST to the list; the answer is the policy.
	var policy map[string]any
	api.ok(201, "PUT", base+"/policies/new", map[string]any{"api": "住院结算", "deny": []string{"192.0.2.0/24"}}, &policy)
	require.Equal(t, map[string]any{"name": "new", "api": "住院结算", "deny": []any{"192.0.2.0/24"}}, policy)
	api.ok(204, "DELETE", base+"/policies/new", nil, nil)
	api.ok(200, "POST", base+"/push", nil, nil)

	gwURL := fmt.Sprintf("http://127.0.0.1:%d", gwPort)
	body := `{"psn_no":"1001","amount":"35.50"}`
	for range 3 {
		st, out := gwCall(t, gwURL, "POST", "/pms/biz/outpatient/bizc2201", "ak-hosp-0001", secrets["hosp-1"], body)
		require.Equal(t, 200, st, out)
		require.Equal(t, "settled for hosp-1 (hospital) at /pms/biz/outpatient/bizc2201", out)
	}
	for range 2 {
		st, out := gwCall(t, gwURL, "POST", "/pms/biz/outpatient/bizc2201", "ak-hosp-0002", secrets["hosp-2"], body)
		require.Equal(t, 200, st, out)
	}
	// A replay: the same signed request again.
	req, _ := http.NewRequest("POST", gwURL+"/pms/biz/outpatient/bizc2201", strings.NewReader(body))
	require.NoError(t, (&gateway.Signer{AppKey: "ak-hosp-0001", Secret: secrets["hosp-1"]}).Sign(req))
	replay := req.Clone(context.Background())
	replay.Body, _ = req.GetBody()
	st, out := send(t, req)
	require.Equal(t, 200, st, out)
	st, out = send(t, replay)
	require.Equal(t, 401, st)
	require.Equal(t, "nonce_replayed", code(t, out))
	// A bad signature: another consumer's secret.
	st, out = gwCall(t, gwURL, "POST", "/pms/biz/outpatient/bizc2201", "ak-hosp-0001", secrets["hosp-2"], body)
	require.Equal(t, 401, st)
	require.Equal(t, "signature_invalid", code(t, out))
	// The pharmacy is not granted inpatient settlement.
	st, out = gwCall(t, gwURL, "POST", "/pms/biz/inpatient/bizc2401", "ak-pharm-0001", secrets["pharm-1"], body)
	require.Equal(t, 403, st)
	require.Equal(t, "not_authorized", code(t, out))

	// The statistics, exact: hosp-1 4 settlements, hosp-2 2; the replay and the bad signature
	// are refused before a consumer is known; the pharmacy's refusal is its own.
	want := map[string]statsRow{
		"门诊结算/hosp-1":  {API: "门诊结算", Consumer: "hosp-1", Calls: 4, Successes: 4},
		"门诊结算/hosp-2":  {API: "门诊结算", Consumer: "hosp-2", Calls: 2, Successes: 2},
		"门诊结算/":        {API: "门诊结算", Calls: 2, Errors: map[string]uint64{"nonce_replayed": 1, "signature_invalid": 1}},
		"住院结算/pharm-1": {API: "住院结算", Consumer: "pharm-1", Calls: 1, Errors: map[string]uint64{"not_authorized": 1}},
	}
	stats := func(c rest, query string) map[string]statsRow {
		var ans struct{ Items []statsRow }
		c.ok(200, "GET", base+"/stats?"+query, nil, &ans)
		out := map[string]statsRow{}
		for _, r := range ans.Items {
			out[r.API+"/"+r.Consumer] = r
		}
		return out
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, want, stats(api, "granularity=total"))
	}, 5*time.Second, 20*time.Millisecond)
	top := stats(api, "granularity=total&group_by=consumer&limit=1")
	require.Equal(t, map[string]statsRow{"/hosp-1": {Consumer: "hosp-1", Calls: 4, Successes: 4}}, top)
	perDay := stats(api, "granularity=day&api="+url.QueryEscape("门诊结算")+"&group_by=api")
	require.Len(t, perDay, 1)
	require.Equal(t, uint64(8), perDay["门诊结算/"].Calls)
	// Bad query values are field errors.
	status, raw = api.do("GET", base+"/stats?granularity=week&from=yesterday&group_by=team&limit=0", nil)
	require.Equal(t, 400, status)
	for _, f := range []string{"granularity", "from", "group_by", "limit"} {
		require.Contains(t, string(raw), `"`+f+`"`)
	}

	// A PUT of a consumer (no secrets in it) keeps its secrets.
	consumers[0]["name"] = "省人民医院（本部）"
	api.ok(200, "PUT", base+"/consumers/hosp-1", consumers[0], nil)
	api.ok(200, "POST", base+"/push", nil, nil)
	st, out = gwCall(t, gwURL, "POST", "/pms/biz/outpatient/bizc2201", "ak-hosp-0001", secrets["hosp-1"], body)
	require.Equal(t, 200, st, out)

	// The secrets were shown once: no answer and no audit record holds them.
	var info struct {
		ActiveSecrets int `json:"active_secrets"`
	}
	api.ok(200, "GET", base+"/consumers/hosp-1/secret", nil, &info)
	require.Equal(t, 1, info.ActiveSecrets)
	seen := ""
	for _, p := range []string{base, base + "/consumers", base + "/consumers/hosp-1", "/api/v1/gateways", base + "/status", "/api/v1/audit?limit=1000"} {
		seen += string(api.ok(200, "GET", p, nil, nil))
		seen += string(root.ok(200, "GET", p, nil, nil))
	}
	require.Contains(t, seen, "ak-hosp-0001")
	for id, s := range secrets {
		require.NotContains(t, seen, s, "the secret of %s", id)
	}

	// Another team sees none of it.
	var list struct{ Items []any }
	other.ok(200, "GET", "/api/v1/gateways", nil, &list)
	require.Empty(t, list.Items)
	for _, p := range []string{base, base + "/stats", base + "/consumers", base + "/consumers/hosp-1/secret"} {
		status, _ := other.do("GET", p, nil)
		require.Equal(t, 404, status, p)
	}
	status, _ = other.do("POST", base+"/consumers/hosp-1/secret", nil)
	require.Equal(t, 404, status)

	// Restart on the same data dir: the gateway runs again, with the same secrets and its
	// statistics.
	stop1()
	require.NoError(t, <-done)
	// The stopped gateway closed the client's idle connections: do not pick a dead one.
	http.DefaultClient.CloseIdleConnections()
	c, done = start(ctx)
	api.base, other.base = c.URL(), c.URL()
	want["门诊结算/hosp-1"] = statsRow{API: "门诊结算", Consumer: "hosp-1", Calls: 5, Successes: 5}
	assertStats := func() {
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.Equal(ct, want, stats(api, "granularity=total"))
		}, 5*time.Second, 20*time.Millisecond)
	}
	assertStats()
	st, out = gwCall(t, gwURL, "POST", "/pms/biz/outpatient/bizc2201", "ak-hosp-0001", secrets["hosp-1"], body)
	require.Equal(t, 200, st, out)
	want["门诊结算/hosp-1"] = statsRow{API: "门诊结算", Consumer: "hosp-1", Calls: 6, Successes: 6}
	assertStats()

	// Rotation without a refused request: a second secret works at once beside the first;
	// dropping the previous one ends the first.
	var rot struct {
		Secret        string
		ActiveSecrets int  `json:"active_secrets"`
		Applied       bool `json:"applied"`
	}
	api.ok(201, "POST", base+"/consumers/hosp-2/secret", nil, &rot)
	require.Equal(t, 2, rot.ActiveSecrets)
	require.True(t, rot.Applied)
	for _, s := range []string{secrets["hosp-2"], rot.Secret} {
		st, out := gwCall(t, gwURL, "POST", "/pms/biz/outpatient/bizc2201", "ak-hosp-0002", s, body)
		require.Equal(t, 200, st, out)
	}
	api.ok(200, "DELETE", base+"/consumers/hosp-2/secret/previous", nil, nil)
	st, out = gwCall(t, gwURL, "POST", "/pms/biz/outpatient/bizc2201", "ak-hosp-0002", secrets["hosp-2"], body)
	require.Equal(t, 401, st)
	require.Equal(t, "signature_invalid", code(t, out))
	st, out = gwCall(t, gwURL, "POST", "/pms/biz/outpatient/bizc2201", "ak-hosp-0002", rot.Secret, body)
	require.Equal(t, 200, st, out)
	require.NotContains(t, string(api.ok(200, "GET", "/api/v1/audit?limit=1000", nil, nil)), rot.Secret)

	// refserver sign, as the demo prints it.
	var signed bytes.Buffer
	require.NoError(t, run(ctx, []string{"sign", "-key", "ak-hosp-0001", "-secret", secrets["hosp-1"], "-d", body,
		gwURL + "/pms/biz/outpatient/bizc2201"}, &signed, io.Discard))
	require.Contains(t, signed.String(), "200 OK")
	require.Contains(t, signed.String(), "settled for hosp-1 (hospital)")

	cancel()
	require.NoError(t, <-done)
}
