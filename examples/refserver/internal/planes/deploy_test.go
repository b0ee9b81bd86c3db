package planes

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// Not run as root, the server cannot keep local nodes' apps from its files and environment:
// it says so at start, with a WARN, and in each local node's status; as root, the status
// names the node's own user.
func TestLocalNodeIsolationIsReported(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, t.TempDir(), store.Options{})
	require.NoError(t, err)
	defer st.Close()
	status := func(t *testing.T, euid int) (string, string) {
		real := geteuid
		geteuid = func() int { return euid }
		defer func() { geteuid = real }()
		var log bytes.Buffer
		dir := t.TempDir()
		require.NoError(t, os.Chmod(filepath.Dir(dir), 0o711))
		p, err := NewDeploy(DeployOptions{Store: st, Dir: dir, Logger: slog.New(slog.NewTextHandler(&log, nil))})
		require.NoError(t, err)
		defer p.Close(ctx)
		spec := json.RawMessage(`{"name": "n1", "driver": "local", "host": "127.0.0.1"}`)
		res := store.Resource{ID: "dn_1", TeamID: "tm_1", Spec: spec, PushedSpec: spec, PushedRevision: 1}
		require.NoError(t, nodePlane{p}.Push(ctx, res))
		out, err := nodePlane{p}.Status(ctx, res)
		require.NoError(t, err)
		return out.(nodeStatus).Isolation, log.String()
	}
	isolation, log := status(t, 1000)
	require.True(t, strings.HasPrefix(isolation, "none: the server does not run as root"), isolation)
	require.Contains(t, log, "level=WARN")
	require.Contains(t, log, "local nodes are for development only")
	if os.Geteuid() == 0 {
		isolation, log = status(t, 0)
		require.True(t, strings.HasPrefix(isolation, "user 60100:60100"), isolation)
		require.NotContains(t, log, "level=WARN")
	}
}
