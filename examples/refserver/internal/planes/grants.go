package planes

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/shuanghuo/shuanghuo/dnsctl"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/lb"
)

// Grants are what the admin lets one team do on this center's host and in its DNS: where the
// team's balancers and gateways listen, whether they may forward to the host itself, and which
// zones the team serves inside another team's zone. Without a grant a team listens nowhere.
type Grants struct {
	// Listen are the addresses the team's balancers and gateways may listen on: IPs or CIDRs
	// (the seed's VIPs). Every interface — 0.0.0.0, :: or an empty address — only when named
	// exactly ("0.0.0.0", "::"; an empty address needs both): a CIDR such as 0.0.0.0/0 does
	// not grant it.
	Listen []string `json:"listen" validate:"max=256,dive,max=64"`
	// Ports are the port ranges their listeners may use.
	Ports []PortRange `json:"ports" validate:"max=256,dive"`
	// LocalBackends lets their servers and upstreams be on loopback, link-local or unspecified
	// addresses (localhost): services of the server's own host, refused by default.
	LocalBackends bool `json:"local_backends"`
	// Zones are origins the team may serve inside another team's zone: delegations.
	Zones []string `json:"zones" validate:"max=256,dive,max=253"`
}

// PortRange is the ports From to To, both included.
type PortRange struct {
	From int `json:"from" validate:"min=1,max=65535"`
	To   int `json:"to" validate:"min=1,max=65535"`
}

// grantsPath is where the grants are served: /api/v1/teams/{id}/grants.
const grantsPath = "grants"

// GrantsSetting serves each team's grants at /api/v1/teams/{id}/grants: the admin sets them,
// the team reads its own.
func GrantsSetting() api.Setting {
	return api.Setting{
		Path: grantsPath, Team: true,
		Input: func() any { return &Grants{Listen: []string{}, Ports: []PortRange{}, Zones: []string{}} },
		Apply: func(_ context.Context, v any) error { return v.(*Grants).check() },
	}
}

// check validates what the tags cannot, and makes zones canonical and absent lists empty.
func (g *Grants) check() error {
	g.Listen, g.Ports, g.Zones = nonNil(g.Listen), nonNil(g.Ports), nonNil(g.Zones)
	inv := api.InvalidSpec{}
	for i, a := range g.Listen {
		if _, err := parseListen(a); err != nil {
			inv[fmt.Sprintf("listen[%d]", i)] = err.Error()
		}
	}
	for i, r := range g.Ports {
		if r.To < r.From {
			inv[fmt.Sprintf("ports[%d]", i)] = fmt.Sprintf("to (%d) is below from (%d)", r.To, r.From)
		}
	}
	for i, z := range g.Zones {
		if err := (dnsctl.Zone{Origin: z}).Validate(); err != nil {
			inv[fmt.Sprintf("zones[%d]", i)] = "must be a zone origin such as sub.ybj.internal."
			continue
		}
		g.Zones[i] = canonical(z)
	}
	if len(inv) > 0 {
		return inv
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// parseListen reads a granted address as a prefix (a single IP is a /32 or /128).
func parseListen(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("must be an IP or a CIDR, got %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("must be an IP or a CIDR, got %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// teamGrants reads team's grants as the admin stored them; none grants nothing.
func teamGrants(ctx context.Context, tx store.Reader, team string) (Grants, error) {
	var g Grants
	err := api.TeamSetting(ctx, tx, grantsPath, team, &g)
	return g, err
}

// mayListen reports whether the grants let a balancer listen on addr ("" for every interface).
func (g Grants) mayListen(addr string) bool {
	if addr == "" {
		return g.mayListen("0.0.0.0") && g.mayListen("::")
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.WithZone("").Unmap()
	for _, s := range g.Listen {
		p, err := parseListen(s)
		if err != nil {
			continue
		}
		// Every interface is granted by name only.
		if a.IsUnspecified() && !(p.IsSingleIP() && p.Addr() == a) {
			continue
		}
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (g Grants) mayUsePort(port int) bool {
	return slices.ContainsFunc(g.Ports, func(r PortRange) bool { return r.From <= port && port <= r.To })
}

// localBackend reports whether host (an IP or a name) is the server's own host: loopback,
// link-local (where cloud metadata services answer), unspecified (which reaches the host),
// or a name that RFC 6761 reserves for loopback. Other names are not resolved here: the
// answer could differ at connect time.
func localBackend(host string) bool {
	a, err := netip.ParseAddr(host)
	if err != nil {
		h := strings.ToLower(strings.TrimSuffix(host, "."))
		return h == "localhost" || strings.HasSuffix(h, ".localhost")
	}
	a = a.WithZone("").Unmap()
	return a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified() ||
		(a.Is4() && a.As4()[0] == 0)
}

// admitBalancer checks a balancer's (or a gateway's) listeners and servers against the grants
// of the resource's team, whoever saves or pushes it: the admin creating it for a team grants
// nothing by doing so. upstreams are further backends by field path (a gateway's API URLs).
func admitBalancer(ctx context.Context, tx store.Reader, res store.Resource, cfg lb.BalancerConfig, upstreams map[string]string) error {
	g, err := teamGrants(ctx, tx, res.TeamID)
	if err != nil {
		return err
	}
	inv := api.InvalidSpec{}
	if !g.mayListen(cfg.Address) {
		where := cfg.Address
		if a, err := netip.ParseAddr(where); where == "" || err == nil && a.Unmap().IsUnspecified() {
			where = "every interface"
		}
		inv["address"] = fmt.Sprintf("the team may not listen on %s: the platform admin grants addresses (PUT /api/v1/teams/{id}/grants)", where)
	}
	for i, l := range cfg.Listeners {
		if !g.mayUsePort(l.Port) {
			inv[fmt.Sprintf("listeners[%d].port", i)] = fmt.Sprintf("the team may not listen on port %d: the platform admin grants ports (PUT /api/v1/teams/{id}/grants)", l.Port)
		}
	}
	if !g.LocalBackends {
		const why = "is on the server's own host (loopback, link-local or unspecified), which the team's grants do not allow"
		for gi, grp := range cfg.Groups {
			for si, s := range grp.Servers {
				if localBackend(s.Address) {
					inv[fmt.Sprintf("groups[%d].servers[%d].address", gi, si)] = why
				}
			}
		}
		for path, u := range upstreams {
			if pu, err := url.Parse(u); err == nil && localBackend(pu.Hostname()) {
				inv[path] = why
			}
		}
	}
	if len(inv) > 0 {
		return inv
	}
	return nil
}
