package planes

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shuanghuo/shuanghuo/dr"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// admitPlan holds a DR plan's verify URLs, which the server fetches, to its team's own
// services, whoever saves it (see admitVerifyURLs).
func admitPlan(ctx context.Context, tx store.Reader, _ store.Token, res store.Resource) error {
	var cfg dr.PlanConfig
	if err := decodeStrict(res.Spec, &cfg); err != nil {
		return err
	}
	return admitVerifyURLs(ctx, tx, res.TeamID, cfg)
}

// admitVerifyURLs refuses the verify URLs of cfg that could reach anything but team's own
// services: the server would fetch them, and a team could probe the host's or the network's
// ports with them. A URL is http or https without credentials, on a port the team's grants
// let it listen on, and its host is an address they let it listen on or a name inside one
// of the team's pushed zones.
func admitVerifyURLs(ctx context.Context, tx store.Reader, team string, cfg dr.PlanConfig) error {
	var inv api.InvalidSpec
	var g Grants
	var zones []string
	for i, s := range cfg.Steps {
		for j, u := range s.URLs {
			if inv == nil { // read once, and only for a plan that probes
				var err error
				if g, err = teamGrants(ctx, tx, team); err != nil {
					return err
				}
				if zones, err = pushedZones(ctx, tx, team); err != nil {
					return err
				}
				inv = api.InvalidSpec{}
			}
			if why := g.mayProbe(zones, u); why != "" {
				inv[fmt.Sprintf("steps[%d].urls[%d]", i, j)] = why
			}
		}
	}
	if len(inv) > 0 {
		return inv
	}
	return nil
}

// pushedZones are the origins team's zones serve.
func pushedZones(ctx context.Context, tx store.Reader, team string) ([]string, error) {
	all, err := tx.Resources(ctx, "zone", team, "")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range all {
		var pushed struct {
			Origin string `json:"origin"`
		}
		// TeamID again: a team "" lists every team's.
		if r.TeamID != team || r.PushedRevision == 0 || json.Unmarshal(r.PushedSpec, &pushed) != nil || pushed.Origin == "" {
			continue
		}
		out = append(out, canonical(pushed.Origin))
	}
	return out, nil
}

// mayProbe says why the grants do not let the team probe raw, given the origins of its
// pushed zones; "" when they do.
func (g Grants) mayProbe(zones []string, raw string) string {
	const own = "the team may probe only its own services: "
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "must be an http or https URL"
	}
	if u.User != nil {
		return "must not hold a user name or password"
	}
	port := map[string]int{"http": 80, "https": 443}[u.Scheme]
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return "must have a port from 1 to 65535"
		}
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err == nil {
		if !g.mayListen(host) {
			return own + host + " is not an address its grants let it listen on (PUT /api/v1/teams/{id}/grants)"
		}
	} else {
		name := canonical(host)
		labels := strings.Split(strings.TrimSuffix(name, "."), ".")
		last := labels[len(labels)-1]
		// A name ending in a number is an IPv4 address to some resolvers (127.1, 2130706433).
		if strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x") {
			return "must be an IP address in the usual form or a DNS name"
		}
		if localBackend(host) || !insideAny(name, zones) {
			return own + host + " is not inside one of its pushed zones"
		}
	}
	if !g.mayUsePort(port) {
		return own + fmt.Sprintf("port %d is not one its grants let it listen on (PUT /api/v1/teams/{id}/grants)", port)
	}
	return ""
}

// insideAny reports whether name (canonical) is one of the origins or inside one.
func insideAny(name string, origins []string) bool {
	for _, o := range origins {
		if name == o || strings.HasSuffix(name, "."+o) {
			return true
		}
	}
	return false
}

// probeClient sends the verify steps' probes. Names resolve through resolver (this center's
// DNS server, where the teams' zones are) when set. Each connection is held, as dialed, to an
// address and port the probing plan's team may listen on: a record in the team's zone
// pointing at the host or elsewhere reaches nothing. No proxy, and no connection serves two
// probes.
func (p *DR) probeClient(resolver string) *http.Client {
	d := &net.Dialer{Timeout: probeDialTimeout, ControlContext: func(ctx context.Context, _, address string, _ syscall.RawConn) error {
		plan, _ := dr.ProbePlan(ctx)
		p.probesMu.Lock()
		g, ok := p.probes[plan]
		p.probesMu.Unlock()
		ap, err := netip.ParseAddrPort(address)
		if !ok || err != nil || !g.mayListen(ap.Addr().WithZone("").String()) || !g.mayUsePort(int(ap.Port())) {
			return fmt.Errorf("planes: dr: plan %q may not reach %s: not an address and port its team may listen on", plan, address)
		}
		return nil
	}}
	if resolver != "" {
		d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dns net.Dialer
			return dns.DialContext(ctx, network, resolver)
		}}
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:         d.DialContext,
		DisableKeepAlives:   true,
		TLSHandshakeTimeout: probeDialTimeout,
		ForceAttemptHTTP2:   true,
	}}
}

// probeDialTimeout bounds a probe's connection and TLS handshake.
const probeDialTimeout = 5 * time.Second
