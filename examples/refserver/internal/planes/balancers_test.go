package planes

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/dr"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/lb"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A DR plan's switch-traffic step: the servers of the target center's zones become working,
// the other center's standby, and the store remembers it.
func TestSwitchTrafficMovesRolesAndIsKept(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, t.TempDir(), store.Options{})
	require.NoError(t, err)
	defer st.Close()
	p := NewBalancers(slog.New(slog.DiscardHandler), nil, st, map[string][]string{"a": {"zone-a1"}, "b": {"zone-b1"}})
	defer p.Close(ctx)

	cfg := lb.BalancerConfig{Name: "outpatient", Address: "127.0.0.1",
		Listeners: []lb.Listener{{Name: "biz", Port: freePort(t), Protocol: lb.ProtocolHTTP, DefaultGroup: "app"}},
		Groups: []lb.ServerGroup{
			{Name: "app", Servers: []lb.Server{
				{Name: "a1", Address: "127.0.0.1", Port: 9001, Weight: 1, Zone: "zone-a1"},
				{Name: "b1", Address: "127.0.0.1", Port: 9002, Weight: 1, Zone: "zone-b1", Role: lb.Standby},
				{Name: "x", Address: "127.0.0.1", Port: 9003, Weight: 1, Zone: "elsewhere", Role: lb.Standby}}},
			{Name: "a-only", Servers: []lb.Server{{Name: "a2", Address: "127.0.0.1", Port: 9004, Weight: 1, Zone: "zone-a1"}}},
		}}
	spec, _ := json.Marshal(cfg)
	res := store.Resource{Kind: "balancer", ID: "lb_1", TeamID: "tm_1", Name: "outpatient", Spec: spec}
	require.NoError(t, st.Change(ctx, store.Actor{}, func(tx store.Tx) error {
		if _, err := tx.PutTeam(ctx, store.Team{ID: "tm_1", Name: "t"}); err != nil {
			return err
		}
		_, err := tx.PutResource(ctx, res)
		if err != nil {
			return err
		}
		return tx.MarkPushed(ctx, "balancer", "lb_1", 1)
	}))
	require.NoError(t, p.Push(ctx, res))

	require.NoError(t, p.SwitchTraffic(ctx, dr.SideB))
	roles := map[string]lb.Role{}
	for _, g := range p.running["lb_1"].Status().Groups {
		for _, s := range g.Servers {
			roles[s.Name] = s.Role
		}
	}
	require.Equal(t, map[string]lb.Role{"a1": lb.Standby, "b1": lb.Working, "x": lb.Standby, "a2": lb.Working}, roles,
		"a group with no server in B keeps serving; a zone of no center keeps its role")

	var saved store.Resource
	require.NoError(t, st.View(ctx, func(r store.Reader) (err error) { saved, err = r.Resource(ctx, "balancer", "lb_1"); return err }))
	require.Equal(t, saved.Revision, saved.PushedRevision)
	var kept lb.BalancerConfig
	require.NoError(t, json.Unmarshal(saved.PushedSpec, &kept))
	require.Equal(t, lb.Working, kept.Groups[0].Servers[1].Role, "a restart pushes the switched roles")
	recs, err := st.Audit(ctx, store.AuditFilter{Kind: "balancer"})
	require.NoError(t, err)
	require.Equal(t, "switch-traffic", recs[0].Action)

	require.NoError(t, p.SwitchTraffic(ctx, dr.SideA))
	for _, g := range p.running["lb_1"].Status().Groups {
		for _, s := range g.Servers {
			roles[s.Name] = s.Role
		}
	}
	require.Equal(t, lb.Working, roles["a1"])
	require.Equal(t, lb.Standby, roles["b1"])
}
