package planes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/gateway"
)

// Consumer secrets are bound to their gateway and consumer, and to the key.
func TestGatewaySecretsAreBound(t *testing.T) {
	p := newGatewayPlane(t, nil, t.TempDir())
	sealed, err := p.sealSecret("gw_1", "hosp-1", "the secret")
	require.NoError(t, err)
	require.NotContains(t, sealed, "the secret")
	got, err := p.openSecret("gw_1", "hosp-1", sealed)
	require.NoError(t, err)
	require.Equal(t, "the secret", got)
	_, err = p.openSecret("gw_1", "hosp-2", sealed)
	require.ErrorIs(t, err, store.ErrSealed)
	_, err = newGatewayPlane(t, nil, t.TempDir()).openSecret("gw_1", "hosp-1", sealed)
	require.ErrorContains(t, err, "does not open")
}

// gatewaySpec is a valid spec with one API in front of upstream and the given consumers.
func gatewaySpec(port int, upstream string, consumers ...string) map[string]any {
	host, p, _ := net.SplitHostPort(upstream)
	var up int
	fmt.Sscan(p, &up)
	var cs []any
	for _, c := range consumers {
		cs = append(cs, map[string]any{"id": c, "name": c, "kind": "hospital", "enabled": true, "app_key": "ak-" + c})
	}
	return map[string]any{
		"name": "gw", "address": "127.0.0.1",
		"listeners": []any{map[string]any{"name": "api", "port": port, "protocol": "http"}},
		"groups":    []any{map[string]any{"name": "app", "servers": []any{map[string]any{"name": "s1", "address": host, "port": up, "weight": 1}}}},
		"consumers": cs,
		"apis":      []any{map[string]any{"name": "门诊结算", "path": "/pms/biz/outpatient/*", "upstream": map[string]any{"group": "app"}}},
		"grants":    []any{map[string]any{"api": "门诊结算", "consumers": consumers}},
	}
}

func raw(t *testing.T, v any) json.RawMessage {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestGatewayCheckReportsSpecFields(t *testing.T) {
	spec := gatewaySpec(20005, "127.0.0.1:8085", "hosp-1")
	name, err := checkGateway(raw(t, spec))
	require.NoError(t, err)
	require.Equal(t, "gw", name)

	cases := []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
		{"secrets in the spec", func(m map[string]any) {
			m["consumers"].([]any)[0].(map[string]any)["secrets"] = []string{strings.Repeat("x", 32)}
		}, "consumers[0].secrets"},
		{"unknown upstream group", func(m map[string]any) {
			m["apis"].([]any)[0].(map[string]any)["upstream"] = map[string]any{"group": "nope"}
		}, "apis[0].upstream.group"},
		{"tcp listener only", func(m map[string]any) {
			m["listeners"] = []any{map[string]any{"name": "api", "port": 20005, "protocol": "tcp", "default_group": "app"}}
		}, "listeners"},
		{"grant of an unknown consumer", func(m map[string]any) {
			m["grants"] = []any{map[string]any{"api": "门诊结算", "consumers": []string{"hosp-1", "ghost"}}}
		}, "grants[0].consumers[1]"},
		{"grant of an unknown API", func(m map[string]any) {
			m["grants"] = []any{map[string]any{"api": "挂号", "consumers": []string{"hosp-1"}}}
		}, "grants[0].api"},
		{"the same API granted twice", func(m map[string]any) {
			m["grants"] = append(m["grants"].([]any), map[string]any{"api": "门诊结算"})
		}, "grants[1].api"},
		{"a gateway field", func(m map[string]any) {
			m["consumers"].([]any)[0].(map[string]any)["kind"] = "insurer"
		}, "consumers[0].kind"},
		{"a balancer field", func(m map[string]any) {
			m["listeners"].([]any)[0].(map[string]any)["port"] = 70000
		}, "listeners[0].port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := gatewaySpec(20005, "127.0.0.1:8085", "hosp-1")
			tc.edit(m)
			_, err := checkGateway(raw(t, m))
			fields := specFields(t, err)
			require.Contains(t, fields, tc.field, "%v", fields)
		})
	}
}

func TestGatewayStatsQuery(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.Local)
	q, limit, err := parseStatsQuery(url.Values{}, now)
	require.NoError(t, err)
	require.Equal(t, gateway.StatsQuery{From: now.Add(-time.Hour), To: now, Granularity: gateway.Minute}, q)
	require.Zero(t, limit)

	q, _, err = parseStatsQuery(url.Values{"granularity": {"day"}}, now)
	require.NoError(t, err)
	require.Equal(t, time.Date(2025, 12, 27, 0, 0, 0, 0, time.Local), q.From)

	q, limit, err = parseStatsQuery(url.Values{"from": {"2026-01-01"}, "to": {"2026-01-02T00:00:00+08:00"},
		"granularity": {"total"}, "group_by": {"consumer"}, "limit": {"10"}, "api": {"门诊结算"}}, now)
	require.NoError(t, err)
	require.Equal(t, 10, limit)
	require.Equal(t, gateway.Total, q.Granularity)
	require.Equal(t, "门诊结算", q.API)

	_, _, err = parseStatsQuery(url.Values{"from": {"noon"}, "granularity": {"week"}, "group_by": {"team"}, "limit": {"-1"}, "colour": {"red"}}, now)
	require.Error(t, err)
	envelope, _ := json.Marshal(err) // the API's error, as it answers it
	for _, f := range []string{"from", "granularity", "group_by", "limit", "colour"} {
		require.Contains(t, string(envelope), `"`+f+`":`)
	}
	_, _, err = parseStatsQuery(url.Values{"from": {"2026-01-02T16:00:00+08:00"}, "to": {"2026-01-02T15:00:00+08:00"}}, now)
	require.Error(t, err)
}

func newGatewayPlane(t *testing.T, st store.Store, dir string) *Gateways {
	t.Helper()
	key, err := store.LoadKey("", filepath.Join(dir, "key"))
	require.NoError(t, err)
	sealer, err := store.NewSealer(key)
	require.NoError(t, err)
	p, err := NewGateways(GatewayOptions{Store: st, Sealer: sealer, SaveEvery: time.Hour})
	require.NoError(t, err)
	return p
}

func setSecret(t *testing.T, p *Gateways, gw, consumer, secret string) {
	t.Helper()
	sealed, err := p.sealSecret(gw, consumer, secret)
	require.NoError(t, err)
	require.NoError(t, p.putSecretDoc(context.Background(), secretDoc{Gateway: gw, Consumer: consumer,
		Secrets: []sealedSecret{{Sealed: sealed, CreatedAt: time.Now()}}}))
}

func freeGatewayPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func signedPost(t *testing.T, port int, key, secret string) int {
	t.Helper()
	req, err := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/pms/biz/outpatient/bizc2201", port), strings.NewReader("{}"))
	require.NoError(t, err)
	require.NoError(t, (&gateway.Signer{AppKey: key, Secret: secret}).Sign(req))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A push is whole: a consumer without a secret, or a port the balancer cannot open, leaves
// the running gateway as it was; statistics saved at Close come back in a new plane.
func TestGatewayPushIsWholeAndStatsSurvive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.OpenSQLite(ctx, dir, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go app.Serve(ln)
	defer app.Close()

	p := newGatewayPlane(t, st, dir)
	port := freeGatewayPort(t)
	res := store.Resource{Kind: "gateway", ID: "gw_1", TeamID: "tm_1", Spec: raw(t, gatewaySpec(port, ln.Addr().String(), "hosp-1"))}
	var inv api.InvalidSpec
	require.ErrorAs(t, p.Push(ctx, res), &inv)
	require.Contains(t, inv["consumers[0]"], "no secret yet")
	_, err = p.Status(ctx, res)
	require.ErrorIs(t, err, store.ErrNotFound, "a refused first push starts nothing")

	secret := strings.Repeat("5e", 16)
	setSecret(t, p, "gw_1", "hosp-1", secret)
	require.NoError(t, p.Push(ctx, res))
	for range 3 {
		require.Equal(t, 200, signedPost(t, port, "ak-hosp-1", secret))
	}

	// A second consumer without a secret: refused, the running config stays.
	res.Spec = raw(t, gatewaySpec(port, ln.Addr().String(), "hosp-1", "hosp-2"))
	require.ErrorAs(t, p.Push(ctx, res), &inv)
	// A port that is taken: refused by the balancer, nothing changes.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	spec := gatewaySpec(port, ln.Addr().String(), "hosp-1")
	spec["listeners"] = append(spec["listeners"].([]any), map[string]any{"name": "more", "port": taken.Addr().(*net.TCPAddr).Port, "protocol": "http"})
	spec["consumers"].([]any)[0].(map[string]any)["enabled"] = false
	res.Spec = raw(t, spec)
	require.ErrorAs(t, p.Push(ctx, res), &inv)
	require.Contains(t, inv, "listeners")
	sv, err := p.Status(ctx, res)
	require.NoError(t, err)
	require.Equal(t, uint64(1), sv.(GatewayStatus).Gateway.Version)
	require.Equal(t, 200, signedPost(t, port, "ak-hosp-1", secret), "the consumer is still enabled")

	require.NoError(t, p.Close(ctx))
	// The closed balancer closed the client's idle connections: do not pick a dead one.
	http.DefaultClient.CloseIdleConnections()

	// A new plane (a restart) on the same store: the same secret, the same counts.
	p2 := newGatewayPlane(t, st, dir)
	defer p2.Close(ctx)
	res.Spec = raw(t, gatewaySpec(port, ln.Addr().String(), "hosp-1"))
	require.NoError(t, p2.Push(ctx, res))
	require.Equal(t, 200, signedPost(t, port, "ak-hosp-1", secret))
	inst, ok := p2.instance("gw_1")
	require.True(t, ok)
	require.Eventually(t, func() bool {
		rows, err := inst.svc.Gateway().Stats(gateway.StatsQuery{Granularity: gateway.Total, Consumer: "hosp-1"})
		return err == nil && len(rows) == 1 && rows[0].Calls == 5 && rows[0].Successes == 5
	}, 5*time.Second, 20*time.Millisecond)
	require.NoError(t, p2.Remove(ctx, res))
	_, err = p2.Status(ctx, res)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// The gateway's log lines name it once: the plane's logger and the gateway package each
// added gateway=ID.
func TestGatewayLogNamesTheGatewayOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.OpenSQLite(ctx, dir, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	key, err := store.LoadKey("", filepath.Join(dir, "key"))
	require.NoError(t, err)
	sealer, err := store.NewSealer(key)
	require.NoError(t, err)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := NewGateways(GatewayOptions{Store: st, Sealer: sealer, SaveEvery: time.Hour, Logger: log})
	require.NoError(t, err)
	defer p.Close(ctx)

	res := store.Resource{Kind: "gateway", ID: "gw_1", TeamID: "tm_1", Spec: raw(t, gatewaySpec(0, "127.0.0.1:1", "hosp-1"))}
	setSecret(t, p, "gw_1", "hosp-1", strings.Repeat("5e", 16))
	require.NoError(t, p.Push(ctx, res))
	require.Contains(t, logs.String(), "gateway=gw_1")
	for line := range strings.Lines(logs.String()) {
		require.LessOrEqual(t, strings.Count(line, "gateway="), 1, line)
	}
}
