package planes

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/deploy"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/lb"
)

func TestCheckAppAndNode(t *testing.T) {
	name, err := checkApp(json.RawMessage(`{"name":"outpatient","kind":"executable","ports":[{"name":"http","port":8086}],"balancer":"lb_x","group":"g"}`))
	require.NoError(t, err)
	require.Equal(t, "outpatient", name)

	_, err = checkApp(json.RawMessage(`{"project":"p","name":"Bad","kind":"war","balancer":"lb_x"}`))
	var inv api.InvalidSpec
	require.ErrorAs(t, err, &inv)
	require.Contains(t, inv, "project")
	require.Contains(t, inv, "name")
	require.Contains(t, inv, "kind")
	require.Contains(t, inv, "group")

	_, err = checkApp(json.RawMessage(`{"name":"a","kind":"jar","surprise":1}`))
	require.ErrorAs(t, err, &inv)

	name, err = checkNode(json.RawMessage(`{"name":"n1","driver":"local","host":"127.0.0.21"}`))
	require.NoError(t, err)
	require.Equal(t, "n1", name)
	_, err = checkNode(json.RawMessage(`{"name":"n1","driver":"local","dir":"/etc"}`))
	require.ErrorAs(t, err, &inv)
	require.Contains(t, inv, "dir")
	_, err = checkNode(json.RawMessage(`{"name":"n1","driver":"k8s"}`))
	require.ErrorAs(t, err, &inv)
	require.Contains(t, inv, "driver")
	_, err = checkNode(json.RawMessage(`{"name":"n1","driver":"ssh","ssh":{"addr":"h:22","user":"u","password":"pw","known_hosts":"/k"}}`))
	require.NoError(t, err)

	red := string(store.Redact(json.RawMessage(`{"name":"n1","driver":"ssh","ssh":{"addr":"h:22","user":"u","password":"pw","known_hosts":"/k"}}`), (&Deploy{}).Nodes().Secrets))
	require.NotContains(t, red, `"pw"`)
	require.Contains(t, red, `(hidden)`)
}

// The traffic hook drains and undrains the balancer server at the instance's address, in
// the group the app names; other instances are left alone.
func TestDeployTrafficDrainsTheServer(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, t.TempDir(), store.Options{})
	require.NoError(t, err)
	defer st.Close()
	bal := NewBalancers(slog.New(slog.DiscardHandler), nil, st, nil)
	defer bal.Close(ctx)
	p, err := NewDeploy(DeployOptions{Store: st, Dir: t.TempDir(), Balancers: bal})
	require.NoError(t, err)
	defer p.Close(ctx)

	cfg := lb.BalancerConfig{Name: "outpatient", Address: "127.0.0.1",
		Listeners: []lb.Listener{{Name: "biz", Port: freePort(t), Protocol: lb.ProtocolHTTP, DefaultGroup: "app"}},
		Groups: []lb.ServerGroup{{Name: "app", Servers: []lb.Server{
			{Name: "s1", Address: "127.0.0.21", Port: 9001, Weight: 1},
			{Address: "127.0.0.22", Port: 9001, Weight: 1}}}}}
	spec, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, bal.Push(ctx, store.Resource{ID: "lb_1", Spec: spec}))
	p.apps[appKey("pj_1", "outpatient")] = deployApp{id: "da_1", team: "tm_1", balancer: "lb_1", group: "app"}

	state := func(name string) lb.ServerState {
		for _, s := range bal.running["lb_1"].Status().Groups[0].Servers {
			if s.Name == name {
				return s.State
			}
		}
		return ""
	}
	tr := deployTraffic{p}
	inst := deploy.Instance{ID: "pj_1.outpatient.n1", Project: "pj_1", App: "outpatient", Node: "n1", Addr: "127.0.0.21:9001"}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, tr.Drain(dctx, inst))
	require.Equal(t, lb.StateDraining, state("s1"))
	require.NoError(t, tr.Undrain(ctx, inst))
	require.NotEqual(t, lb.StateDraining, state("s1"))

	inst.Addr = "127.0.0.22:9001" // a server without a name is named by its address
	require.NoError(t, tr.Drain(dctx, inst))
	require.Equal(t, lb.StateDraining, state("127.0.0.22:9001"))

	inst.Addr = "127.0.0.23:9001" // not in the group: nothing to do
	require.NoError(t, tr.Drain(dctx, inst))
	inst.App = "other"
	require.NoError(t, tr.Drain(dctx, inst))
}
