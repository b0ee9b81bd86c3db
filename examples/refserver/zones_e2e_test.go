package main

import (
	"context"
	"io"
	"net/http"
	"strings"
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
	root, dnsAddr := openDNSCenter(t, ctx, admin)
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

// text sends body as a zone file (text/dns) and returns the status, the answer's
// Content-Type and the answer.
func (c rest) text(method, path, body string) (int, string, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != "" {
		req.Header.Set("Content-Type", "text/dns")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(raw)
}

// A zone goes out and comes back in as an RFC 1035 zone file: exported from its saved spec,
// saved as a new revision from a file (with the checks of a spec's save: another team's zone
// stays out of reach), created from one; a file that does not parse names its line.
func TestZoneFileImportExport(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin := "shk_zonefile0123456789abcdef"
	root, dnsAddr := openDNSCenter(t, ctx, admin)
	a, b := newTenant(t, root, "team-a"), newTenant(t, root, "team-b")

	var za struct{ ID string }
	a.api.ok(201, "POST", "/api/v1/zones", map[string]any{"spec": map[string]any{"origin": "za.internal.",
		"record_sets": []any{map[string]any{"name": "db", "type": "A", "data": []string{"10.0.0.1"}}}}}, &za)
	status, ct, file := a.api.text("GET", "/api/v1/zones/"+za.ID+"/zonefile", "")
	require.Equal(t, 200, status, file)
	require.Equal(t, "text/dns; charset=utf-8", ct)
	require.Contains(t, file, "$ORIGIN za.internal.\n")
	require.Regexp(t, `(?m)^db\.za\.internal\.\s+\d+\s+IN\s+A\s+10\.0\.0\.1$`, file)

	// Edited and put back: a new revision, pushed as any other.
	edited := strings.Replace(file, "10.0.0.1", "10.0.0.9", 1) + "www 300 IN CNAME db\n"
	status, _, saved := a.api.text("PUT", "/api/v1/zones/"+za.ID+"/zonefile", edited)
	require.Equal(t, 200, status, saved)
	require.Contains(t, saved, `"revision":2`)
	a.api.ok(200, "POST", "/api/v1/zones/"+za.ID+"/push", nil, nil)
	require.Equal(t, "10.0.0.9", lookup(t, dnsAddr, "db.za.internal."))
	require.Equal(t, "10.0.0.9", lookup(t, dnsAddr, "www.za.internal."))

	// Created from a file, its origin from $ORIGIN or ?origin=.
	status, _, created := b.api.text("POST", "/api/v1/zones/zonefile", "$ORIGIN zb.internal.\napi 60 IN A 10.0.1.1\n")
	require.Equal(t, 201, status, created)
	require.Contains(t, created, `"name":"zb.internal."`)
	status, _, created = b.api.text("POST", "/api/v1/zones/zonefile?origin=zc.internal", "api 60 IN A 10.0.1.2\n")
	require.Equal(t, 201, status, created)
	status, _, created = b.api.text("POST", "/api/v1/zones/zonefile", "api 60 IN A 10.0.1.2\n")
	require.Equal(t, 400, status, created)
	require.Contains(t, created, `"origin":`)

	// B may neither create a zone inside A's from a file nor read or replace A's.
	status, _, refusal := b.api.text("POST", "/api/v1/zones/zonefile", "$ORIGIN sub.za.internal.\napi 60 IN A 10.0.1.1\n")
	require.Equal(t, 400, status, refusal)
	require.Contains(t, refusal, `"spec.origin":`)
	require.NotContains(t, refusal, za.ID)
	status, _, refusal = b.api.text("GET", "/api/v1/zones/"+za.ID+"/zonefile", "")
	require.Equal(t, 404, status, refusal)
	status, _, refusal = b.api.text("PUT", "/api/v1/zones/"+za.ID+"/zonefile", edited)
	require.Equal(t, 404, status, refusal)

	// A file that does not parse, or holds a record outside the zone, is refused with the line.
	for _, bad := range []string{"db 60 IN A 10.0.0.300\n", "$ORIGIN za.internal.\nother.internal. 60 IN A 10.0.0.1\n"} {
		status, _, refusal = a.api.text("PUT", "/api/v1/zones/"+za.ID+"/zonefile", bad)
		require.Equal(t, 400, status, refusal)
		require.Contains(t, refusal, `"zonefile":`)
	}
	require.Equal(t, "10.0.0.9", lookup(t, dnsAddr, "db.za.internal."), "a refused file changes nothing")
}

// Without dns.listen, the zones' endpoints say that DNS is off and how to turn it on.
func TestZonesWithoutDNSSayHowToTurnItOn(t *testing.T) {
	root := startGrantsCenter(t)
	for _, path := range []string{"/api/v1/zones", "/api/v1/zones/zn_x/zonefile", "/api/v1/dns/views"} {
		status, raw := root.do("GET", path, nil)
		require.Equal(t, 404, status, "%s", raw)
		require.Contains(t, string(raw), "DNS is off in this center")
		require.Contains(t, string(raw), "dns.listen")
		require.Contains(t, string(raw), "-dns-listen")
	}
}

// openDNSCenter opens a center whose DNS server listens on a free loopback port, and returns
// the admin's client and the DNS address.
func openDNSCenter(t *testing.T, ctx context.Context, admin string) (rest, string) {
	dnsAddr := freeDNS(t, "127.0.0.1")
	c, _ := openCenter(t, ctx, t.TempDir(), admin, config.Default().MaxArtifactBytes, func(cfg *config.Config) { cfg.DNS.Listen = dnsAddr })
	return rest{t, c.URL(), admin}, dnsAddr
}
