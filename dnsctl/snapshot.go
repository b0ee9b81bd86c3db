package dnsctl

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// snapshot is everything the answer path reads. It is immutable once published
// through Server.snap: writers build a new one and swap the pointer, so a query
// that loaded a snapshot sees one consistent state from start to finish, and a
// Switch over many record sets or zones is one pointer store.
type snapshot struct {
	zones map[string]*zoneSnap // by canonical origin
	views []parsedView
}

// zoneSnap is one zone ready for answering.
type zoneSnap struct {
	origin    string
	soa       *dns.SOA
	neg       []dns.RR // the SOA with the negative TTL, for NXDOMAIN and NODATA
	nodes     map[string]*node
	secondary bool
}

// node is one owner name; an empty node is an empty non-terminal (it exists
// because names below it do, so queries for it get NODATA, not NXDOMAIN).
type node struct {
	sets []*rrset // sorted by type
}

func (n *node) get(t uint16) *rrset {
	for _, s := range n.sets {
		if s.rtype == t {
			return s
		}
	}
	return nil
}

// rrset is a record set ready for answering: static records, or records per
// center of which one is chosen per query.
type rrset struct {
	rtype   uint16
	static  []dns.RR
	centers []centerRRs // sorted by name
	active  int         // index into centers; -1 means AllCenters
	home    int         // center for clients outside every view when active is -1
	check   *HealthCheck
}

type centerRRs struct {
	name   string
	rrs    []dns.RR
	probes []probe // parallel to rrs when the set has a health check
}

// parsedSet is a RecordSet's data parsed once; snapshots are rebuilt from these
// on every change without parsing again, which keeps Switch cheap.
type parsedSet struct {
	static  []dns.RR
	centers []centerRRs
}

// parseSet parses rs (normalized, valid) for zone origin.
func parseSet(rs RecordSet, origin string) (parsedSet, error) {
	parse := func(data []string) ([]dns.RR, error) {
		out := make([]dns.RR, 0, len(data))
		for _, d := range data {
			rr, err := parseRR(rs.Name, rs.Type, rs.TTL, d, origin)
			if err != nil {
				return nil, err
			}
			if !slices.ContainsFunc(out, func(o dns.RR) bool { return dns.IsDuplicate(o, rr) }) {
				out = append(out, rr)
			}
		}
		return out, nil
	}
	var ps parsedSet
	var err error
	if len(rs.Centers) == 0 {
		ps.static, err = parse(rs.Data)
		return ps, err
	}
	for _, name := range sortedKeys(rs.Centers) {
		rrs, err := parse(rs.Centers[name])
		if err != nil {
			return ps, err
		}
		c := centerRRs{name: name, rrs: rrs}
		if hc := rs.HealthCheck; hc != nil {
			for _, rr := range rrs {
				c.probes = append(c.probes, newProbe(*hc, rr))
			}
		}
		ps.centers = append(ps.centers, c)
	}
	return ps, nil
}

// buildZone indexes a zone for answering. spec is normalized; parsed is parallel
// to spec.RecordSets; center is Config.Center.
func buildZone(spec Zone, parsed []parsedSet, secondary bool, center string) *zoneSnap {
	soa := soaRR(spec)
	neg := dns.Copy(soa).(*dns.SOA)
	neg.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	z := &zoneSnap{
		origin:    spec.Origin,
		soa:       soa,
		neg:       []dns.RR{neg},
		nodes:     make(map[string]*node, len(spec.RecordSets)+1),
		secondary: secondary,
	}
	nodeFor := func(name string) *node {
		n := z.nodes[name]
		if n == nil {
			n = &node{}
			z.nodes[name] = n
			// Empty non-terminals between the name and the apex.
			for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
				parent := name[off:]
				if _, ok := z.nodes[parent]; ok || !dns.IsSubDomain(spec.Origin, parent) {
					break
				}
				z.nodes[parent] = &node{}
			}
		}
		return n
	}
	apex := nodeFor(spec.Origin)
	apex.sets = append(apex.sets, &rrset{rtype: dns.TypeSOA, static: []dns.RR{soa}})
	for i, rs := range spec.RecordSets {
		p := parsed[i]
		set := &rrset{rtype: dns.StringToType[rs.Type], static: p.static, centers: p.centers, active: -1, check: rs.HealthCheck}
		for j, c := range p.centers {
			if c.name == rs.Active {
				set.active = j
			}
			if c.name == center {
				set.home = j
			}
		}
		n := nodeFor(rs.Name)
		n.sets = append(n.sets, set)
	}
	if apex.get(dns.TypeNS) == nil {
		ns := &dns.NS{Hdr: dns.RR_Header{Name: spec.Origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: spec.TTL}, Ns: spec.SOA.NS}
		apex.sets = append(apex.sets, &rrset{rtype: dns.TypeNS, static: []dns.RR{ns}})
	}
	for _, n := range z.nodes {
		slices.SortFunc(n.sets, func(a, b *rrset) int { return int(a.rtype) - int(b.rtype) })
	}
	return z
}

func soaRR(spec Zone) *dns.SOA {
	s := spec.SOA
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: spec.Origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: spec.TTL},
		Ns:      s.NS,
		Mbox:    s.Mbox,
		Serial:  s.Serial,
		Refresh: s.Refresh,
		Retry:   s.Retry,
		Expire:  s.Expire,
		Minttl:  s.MinTTL,
	}
}

// flatten lists the zone's records as a client outside every view sees them
// with every target healthy, SOA first: what a zone transfer and a zone file
// carry. Per-center alternatives are not expressible in a standard zone.
func (z *zoneSnap) flatten() []dns.RR {
	names := make([]string, 0, len(z.nodes))
	for name := range z.nodes {
		names = append(names, name)
	}
	slices.SortFunc(names, compareNames)
	out := []dns.RR{z.soa}
	for _, name := range names {
		for _, s := range z.nodes[name].sets {
			if s.rtype != dns.TypeSOA {
				out = append(out, s.pick(nil, nil)...)
			}
		}
	}
	return out
}

// compareNames orders names so that a zone file lists the apex first and
// children after their parents.
func compareNames(a, b string) int {
	la, lb := dns.SplitDomainName(a), dns.SplitDomainName(b)
	slices.Reverse(la)
	slices.Reverse(lb)
	return slices.Compare(la, lb)
}

// findZone returns the zone holding name (canonical), the longest match.
func (s *snapshot) findZone(name string) *zoneSnap {
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		if z, ok := s.zones[name[off:]]; ok {
			return z
		}
	}
	return nil
}

// client is who asked; its center is looked up at most once per query and only
// when an answer depends on it.
type client struct {
	addr    netip.Addr
	views   []parsedView
	center  string
	matched bool
}

func (c *client) centerName() string {
	if c == nil {
		return ""
	}
	if !c.matched {
		c.matched = true
		for _, v := range c.views {
			for _, n := range v.nets {
				if n.Contains(c.addr) {
					c.center = v.center
					return c.center
				}
			}
		}
	}
	return c.center
}

// pick chooses the records a client gets from s. A nil client is the view-less
// answer used for transfers; a nil down map means every target is healthy.
func (s *rrset) pick(c *client, down map[probe]struct{}) []dns.RR {
	if s.centers == nil {
		return s.static
	}
	idx := s.active
	if idx < 0 {
		idx = s.home
		if name := c.centerName(); name != "" {
			for i := range s.centers {
				if s.centers[i].name == name {
					idx = i
					break
				}
			}
		}
	}
	if s.check == nil || len(down) == 0 {
		return s.centers[idx].rrs
	}
	for i := range s.centers {
		cr := &s.centers[(idx+i)%len(s.centers)]
		if healthy := cr.healthy(down); len(healthy) > 0 {
			return healthy
		}
	}
	// Nothing passes: the chosen center's full list is the least bad answer.
	return s.centers[idx].rrs
}

// healthy returns the records whose targets pass their check.
func (c *centerRRs) healthy(down map[probe]struct{}) []dns.RR {
	n := 0
	for _, p := range c.probes {
		if _, bad := down[p]; !bad {
			n++
		}
	}
	if n == len(c.rrs) {
		return c.rrs
	}
	out := make([]dns.RR, 0, n)
	for i, p := range c.probes {
		if _, bad := down[p]; !bad {
			out = append(out, c.rrs[i])
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// lower returns name in lower case without allocating when it already is.
func lower(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(name)
		}
	}
	return name
}
