package planes

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/dr"
	"github.com/shuanghuo/shuanghuo/dr/drtest"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// A DR group pushed when the manager knew groups by name keeps its history (its direction
// after a switchover) under its resource ID; two teams' groups of one name are apart.
func TestDRGroupsKeyedByResource(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, t.TempDir(), store.Options{})
	require.NoError(t, err)
	defer st.Close()
	spec := json.RawMessage(`{"name":"orders","kind":"redis","a":{"addr":"127.0.0.1:1"},"b":{"addr":"127.0.0.1:2"}}`)
	groups := []store.Resource{
		{Kind: "drgroup", ID: "dg_1", TeamID: "tm_1", Name: "orders", Spec: spec},
		{Kind: "drgroup", ID: "dg_2", TeamID: "tm_2", Name: "orders", Spec: spec},
	}
	require.NoError(t, st.Change(ctx, store.Actor{}, func(tx store.Tx) error {
		for _, tm := range []string{"tm_1", "tm_2"} {
			if _, err := tx.PutTeam(ctx, store.Team{ID: tm, Name: tm}); err != nil {
				return err
			}
		}
		if _, err := tx.PutResource(ctx, groups[0]); err != nil {
			return err
		}
		return tx.MarkPushed(ctx, "drgroup", "dg_1", 1)
	}))
	reversed := dr.Transition{From: dr.StatePromoted, To: dr.StateSyncing, Direction: dr.Reverse, Reason: "reverse"}
	for _, tr := range []dr.Transition{{From: dr.StateUnpaired, To: dr.StateSyncing, Direction: dr.Forward, Reason: "pair"}, reversed} {
		require.NoError(t, drStore{st}.AddTransition(ctx, "orders", tr))
	}

	p, err := NewDR(ctx, DROptions{Store: st, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer p.Close(ctx)
	old, err := st.Docs(ctx, transitionDoc, "orders/")
	require.NoError(t, err)
	require.Empty(t, old, "moved")
	for _, g := range groups {
		g.Spec = spec
		require.NoError(t, groupPlane{p}.Push(ctx, g))
	}
	one, err := p.status(ctx, "dg_1")
	require.NoError(t, err)
	require.Equal(t, "orders", one.Name)
	require.Len(t, one.Transitions, 2)
	require.Equal(t, reversed.Direction, one.Direction, "the history came along")
	two, err := p.status(ctx, "dg_2")
	require.NoError(t, err)
	require.Empty(t, two.Transitions, "team 2's orders is another group")
	id, ok := p.groupID("tm_2", "orders")
	require.True(t, ok)
	require.Equal(t, "dg_2", id)
	_, ok = p.groupID("tm_3", "orders")
	require.False(t, ok)

	// Reopened, nothing moves twice.
	require.NoError(t, moveTransitions(ctx, st))
	ts, err := drStore{st}.Transitions(ctx, "dg_1")
	require.NoError(t, err)
	require.Len(t, ts, 2)
}

// A group's status shows the last status read once: last_contact (the last status in which
// the primary answered) appears only when the last read is not it, as after losing the
// primary, when it tells the RPO a promotion would count from.
func TestDRStatusShowsEachStatusOnce(t *testing.T) {
	ctx := context.Background()
	fakes := &drtest.Fakes{}
	saved := drDrivers
	drDrivers = map[dr.Kind]dr.DriverFunc{dr.KindRedis: fakes.Open}
	t.Cleanup(func() { drDrivers = saved })
	st, err := store.OpenSQLite(ctx, t.TempDir(), store.Options{})
	require.NoError(t, err)
	defer st.Close()
	p, err := NewDR(ctx, DROptions{Store: st, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer p.Close(ctx)
	spec := json.RawMessage(`{"name":"orders","kind":"redis","a":{"addr":"127.0.0.1:1"},"b":{"addr":"127.0.0.1:2"}}`)
	require.NoError(t, groupPlane{p}.Push(ctx, store.Resource{Kind: "drgroup", ID: "dg_1", TeamID: "tm_1", Name: "orders", Spec: spec}))

	answer := func() map[string]string {
		t.Helper()
		s, err := groupPlane{p}.Status(ctx, store.Resource{ID: "dg_1"})
		require.NoError(t, err)
		raw, err := json.Marshal(s)
		require.NoError(t, err)
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(raw, &fields))
		out := map[string]string{}
		for k, v := range fields {
			out[k] = string(v)
		}
		return out
	}
	got := answer()
	require.Contains(t, got, "status")
	require.NotContains(t, got, "last_contact", "the primary answered the last read: last_contact repeats status")

	fakes.Get("dg_1").SetDown(dr.SideA, true)
	got = answer()
	require.Contains(t, got, "last_contact", "the primary is lost: its last contact is another read")
	require.NotEqual(t, got["status"], got["last_contact"])
	var lc dr.Status
	require.NoError(t, json.Unmarshal([]byte(got["last_contact"]), &lc))
	require.True(t, lc.Primary.Reachable)
}
