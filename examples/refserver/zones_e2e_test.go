package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

// Team B may not create or push a zone inside team A's zone, nor one above it, nor A's
// origin itself; the admin delegates: it may create such a zone for B, and B may push it
// once the admin's grant for B names it; a narrowed grant refuses B's next push. Refusals
// never name A's zone. Origins with hidden characters are refused.
func TestZonesAcrossTeams(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin := "shk_zones0123456789abcdef"
	dnsAddr := freeDNS(t, "127.0.0.1")
	c, _ := openCenter(t, ctx, t.TempDir(), admin, config.Default().MaxArtifactBytes, func(cfg *config.Config) { cfg.DNS.Listen = dnsAddr })
	root := rest{t, c.URL(), admin}
	a, b := newTenant(t, root, "team-a"), newTenant(t, root, "team-b")

	zone := func(origin, addr string) map[string]any {
		return map[string]any{"origin": origin, "record_sets": []any{map[string]any{"name": "db", "type": "A", "data": []string{addr}}}}
	}
	var za struct{ ID string }
	a.api.ok(201, "POST", "/api/v1/zones", map[string]any{"spec": zone("za.internal.", "10.0.0.1")}, &za)
	a.api.ok(200, "POST", "/api/v1/zones/"+za.ID+"/push", nil, nil)
	require.Equal(t, "10.0.0.1", lookup(t, dnsAddr, "db.za.internal."))

	// Inside, above and the same origin, in any spelling: refused at create, without A's ID.
	for _, origin := range []string{"sub.za.internal.", "SUB.ZA.internal", "internal.", "za.internal."} {
		refused(t, b.api, "spec.origin", "POST", "/api/v1/zones", map[string]any{"spec": zone(origin, "10.0.0.2")}, za.ID)
	}
	// Nor by changing the origin of a zone of B's own.
	var zb struct{ ID string }
	b.api.ok(201, "POST", "/api/v1/zones", map[string]any{"spec": zone("zb.internal.", "10.0.0.2")}, &zb)
	refused(t, b.api, "spec.origin", "PUT", "/api/v1/zones/"+zb.ID, map[string]any{"spec": zone("sub.za.internal.", "10.0.0.2")}, za.ID)
	require.Empty(t, lookup(t, dnsAddr, "db.sub.za.internal."), "B answers nothing below A's zone")

	// The admin delegates: it may create the sub-zone for B; B's push is refused until the
	// admin's grant for B names it.
	var sub struct{ ID string }
	root.ok(201, "POST", "/api/v1/zones", map[string]any{"team_id": b.id, "spec": zone("sub.za.internal.", "10.0.0.2")}, &sub)
	refused(t, b.api, "spec.origin", "POST", "/api/v1/zones/"+sub.ID+"/push", nil, za.ID)
	root.ok(200, "PUT", "/api/v1/teams/"+b.id+"/grants", map[string]any{"zones": []string{"sub.za.internal"}}, nil)
	b.api.ok(200, "POST", "/api/v1/zones/"+sub.ID+"/push", nil, nil)
	require.Equal(t, "10.0.0.2", lookup(t, dnsAddr, "db.sub.za.internal."))
	// A still changes its own zone above the delegation.
	a.api.ok(200, "PUT", "/api/v1/zones/"+za.ID, map[string]any{"spec": zone("za.internal.", "10.0.0.3")}, nil)
	a.api.ok(200, "POST", "/api/v1/zones/"+za.ID+"/push", nil, nil)
	// The delegation withdrawn: B's next push is refused, and what runs stays.
	var none map[string]any
	root.ok(200, "PUT", "/api/v1/teams/"+b.id+"/grants", map[string]any{}, &none)
	require.Equal(t, map[string]any{"listen": []any{}, "ports": []any{}, "local_backends": false, "zones": []any{}}, none)
	refused(t, b.api, "spec.origin", "POST", "/api/v1/zones/"+sub.ID+"/push", nil, za.ID)

	// The admin's own push of a second zone of A's origin is refused by the data plane,
	// without naming A's zone.
	var dup struct{ ID string }
	root.ok(201, "POST", "/api/v1/zones", map[string]any{"team_id": b.id, "spec": zone("za.internal.", "10.0.0.2")}, &dup)
	refused(t, root, "spec.origin", "POST", "/api/v1/zones/"+dup.ID+"/push", nil, za.ID)
	require.Equal(t, "10.0.0.3", lookup(t, dnsAddr, "db.za.internal."))

	// Hidden characters in an origin.
	for _, origin := range []string{"zc\x00.internal.", "zc\u202e.internal.", "zc\u2067.internal.", "zc\u200f.internal.", "zc\t.internal."} {
		refused(t, b.api, "spec.origin", "POST", "/api/v1/zones", map[string]any{"spec": zone(origin, "10.0.0.2")})
	}
}
