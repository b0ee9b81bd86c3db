package planes

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/dnsctl"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

func startZones(t *testing.T) *Zones {
	t.Helper()
	srv, err := dnsctl.New(dnsctl.Config{UDPAddr: "127.0.0.1:0", Center: "a"})
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() { srv.Close(context.Background()) })
	return NewZones(srv, nil)
}

func zoneResource(id, spec string) store.Resource {
	return store.Resource{Kind: "zone", ID: id, Spec: json.RawMessage(spec)}
}

const perCenterZone = `{"origin":"ybj.internal","record_sets":[{"name":"api","type":"A","active":"a","centers":{"a":["10.0.0.1"],"b":["10.1.0.1"]}}]}`

func TestZoneOriginBelongsToOneResource(t *testing.T) {
	p := startZones(t)
	ctx := context.Background()
	require.NoError(t, p.Push(ctx, zoneResource("zn_1", perCenterZone)))
	err := p.Push(ctx, zoneResource("zn_2", `{"origin":"YBJ.internal."}`))
	var inv api.InvalidSpec
	require.ErrorAs(t, err, &inv)
	require.Contains(t, inv["origin"], "ybj.internal. is taken")
	require.NotContains(t, inv["origin"], "zn_1", "the zone that serves it may be another team's")

	// Renaming a resource's origin stops serving the old one.
	require.NoError(t, p.Push(ctx, zoneResource("zn_1", `{"origin":"other.internal"}`)))
	require.NoError(t, p.Push(ctx, zoneResource("zn_2", `{"origin":"ybj.internal"}`)))
	require.Len(t, p.srv.Zones(), 2)
	require.NoError(t, p.Remove(ctx, zoneResource("zn_1", "")))
	require.Len(t, p.srv.Zones(), 1)
}

func TestZoneCheckReportsSpecFields(t *testing.T) {
	name, err := checkZone(json.RawMessage(perCenterZone))
	require.NoError(t, err)
	require.Equal(t, "ybj.internal.", name)

	_, err = checkZone(json.RawMessage(`{"origin":"x.internal","record_sets":[{"name":"api","type":"BOGUS"}]}`))
	require.Contains(t, specFields(t, err), "record_sets[0].type")

	_, err = checkZone(json.RawMessage(`{"origin":"x.internal","colour":"red"}`))
	require.Contains(t, specFields(t, err), "colour")
}

func TestSwitchReturnsTheZoneAsServed(t *testing.T) {
	p := startZones(t)
	ctx := context.Background()
	res := zoneResource("zn_1", perCenterZone)
	require.NoError(t, p.Push(ctx, res))
	changed, result, err := p.switchCenter(ctx, []store.Resource{res}, &SwitchInput{To: "b"})
	require.NoError(t, err)
	require.Equal(t, 1, result.(SwitchResult).RecordSets)
	var z dnsctl.Zone
	require.NoError(t, json.Unmarshal(changed["zn_1"], &z))
	require.Equal(t, "b", z.RecordSets[0].Active, "the stored spec must carry the switch, or a restart would undo it")

	_, _, err = p.switchCenter(ctx, []store.Resource{res}, &SwitchInput{To: "c"})
	require.ErrorContains(t, err, "invalid fields", "a center with no targets is refused")
	var inv api.InvalidSpec
	require.False(t, errors.As(err, &inv), "as the input's field (to), not the spec's")
}

func TestChangesApplyAsOneBatch(t *testing.T) {
	p := startZones(t)
	ctx := context.Background()
	res := zoneResource("zn_1", perCenterZone)
	require.NoError(t, p.Push(ctx, res))
	in := &ChangesInput{Changes: []dnsctl.Change{
		{Op: dnsctl.OpAdd, Set: dnsctl.RecordSet{Name: "mq", Type: "A", Data: []string{"10.0.0.9"}}},
		{Op: dnsctl.OpDelete, Set: dnsctl.RecordSet{Name: "nothere", Type: "A"}},
	}}
	_, _, err := p.applyChanges(ctx, []store.Resource{res}, in)
	require.Error(t, err, "deleting a missing record set fails the batch")
	rs, err := p.srv.Records("ybj.internal.")
	require.NoError(t, err)
	require.Len(t, rs, 1, "nothing of a failed batch is applied")

	in.Changes = in.Changes[:1]
	changed, result, err := p.applyChanges(ctx, []store.Resource{res}, in)
	require.NoError(t, err)
	require.NotZero(t, result.(ChangesResult).Serial)
	var z dnsctl.Zone
	require.NoError(t, json.Unmarshal(changed["zn_1"], &z))
	require.Len(t, z.RecordSets, 2)
}

func TestDRGroupPasswordsAreHidden(t *testing.T) {
	out := store.Redact(json.RawMessage(`{"name":"g","a":{"addr":"x:1","password":"s3cret"},"b":{"addr":"y:1"}}`), (&DR{}).Groups().Secrets)
	require.NotContains(t, string(out), "s3cret")
	require.Contains(t, string(out), `"password":"(hidden)"`)
	require.Contains(t, string(out), `"addr":"y:1"`)
}
