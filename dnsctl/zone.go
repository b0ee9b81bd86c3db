package dnsctl

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/miekg/dns"
)

// Zone is an authoritative zone: its SOA parameters and its record sets.
type Zone struct {
	// Origin is the zone's apex, e.g. "ybj.internal." (the final dot is optional).
	Origin string `json:"origin" validate:"required"`
	// TTL applies to record sets without their own. Default 300 seconds.
	TTL uint32 `json:"ttl,omitempty"`
	// SOA holds the zone's SOA fields; the serial is managed by the server.
	SOA SOA `json:"soa"`
	// RecordSets are the zone's records, one entry per owner name and type.
	RecordSets []RecordSet `json:"record_sets,omitempty" validate:"dive"`
}

// SOA holds a zone's SOA fields. Times are in seconds.
type SOA struct {
	// NS is the primary name server. Default "ns1.<origin>".
	NS string `json:"ns,omitempty"`
	// Mbox is the administrator's mailbox as a domain name. Default "hostmaster.<origin>".
	Mbox string `json:"mbox,omitempty"`
	// Serial is bumped by every change. On ApplyZone it is a floor: the zone gets
	// the larger of Serial and its previous serial plus one.
	Serial uint32 `json:"serial,omitempty"`
	// Refresh tells secondaries how often to check for changes. Default 60.
	Refresh uint32 `json:"refresh,omitempty"`
	// Retry tells secondaries how soon to retry a failed check. Default 10.
	Retry uint32 `json:"retry,omitempty"`
	// Expire is published for third-party secondaries. Default 1209600 (14 days).
	Expire uint32 `json:"expire,omitempty"`
	// MinTTL is the TTL of negative answers (RFC 2308). Default 30.
	MinTTL uint32 `json:"min_ttl,omitempty"`
}

// RecordSet is all records of one type at one owner name. It holds either Data,
// the same answer for everyone, or Centers, a target list per center of which
// Active picks the one served.
type RecordSet struct {
	// Name is the owner, relative to the origin ("api", "@" for the apex) or
	// absolute with a final dot. Stored absolute and lower case.
	Name string `json:"name" validate:"required"`
	// Type is one of A, AAAA, CNAME, SRV, TXT, MX, PTR, NS (NS at the apex only).
	Type string `json:"type" validate:"required,oneof=A AAAA CNAME SRV TXT MX PTR NS"`
	// TTL in seconds. Default: the zone's TTL.
	TTL uint32 `json:"ttl,omitempty"`
	// Data holds one RDATA per record in zone-file syntax, e.g. "10.0.0.1",
	// "10 mail", "0 5 8080 api" or "\"v=1 text\"". Relative names are below the origin.
	Data []string `json:"data,omitempty"`
	// Centers maps a center name to its RDATA list, for record sets that answer
	// per center.
	Centers map[string][]string `json:"centers,omitempty"`
	// Active is the center whose targets are served, or AllCenters to serve each
	// client its own center's targets (see Config.Views). Required with Centers;
	// changed by Switch.
	Active string `json:"active,omitempty"`
	// HealthCheck, when set on an A or AAAA record set with Centers, opts in to
	// failover: targets failing the check are left out, and when every target of
	// the chosen center fails, clients get the next center (by name) with a
	// healthy target.
	HealthCheck *HealthCheck `json:"health_check,omitempty"`
}

// HealthCheck probes every target address of a record set.
type HealthCheck struct {
	// Protocol is "tcp" (connect) or "http" (GET, any status below 500 passes). Default tcp.
	Protocol string `json:"protocol,omitempty" validate:"omitempty,oneof=tcp http"`
	// Port to probe on each target address.
	Port int `json:"port" validate:"required,min=1,max=65535"`
	// Path for http probes. Default "/".
	Path string `json:"path,omitempty"`
	// Interval between probes of one target. Default 2s. From 10ms to 1h.
	Interval Duration `json:"interval,omitempty" validate:"omitempty,duration=10ms:1h"`
	// Timeout of one probe. Default 1s. From 1ms to 1m.
	Timeout Duration `json:"timeout,omitempty" validate:"omitempty,duration=1ms:1m"`
}

// Op is what a Change does.
type Op string

// Change operations.
const (
	// OpAdd creates a record set; ErrRecordSetExists if its name and type exist.
	OpAdd Op = "add"
	// OpUpdate replaces a record set; ErrRecordSetNotFound if it does not exist.
	OpUpdate Op = "update"
	// OpDelete removes the record set with the Set's name and type.
	OpDelete Op = "delete"
)

// Change is one step of an atomic batch passed to ApplyChanges.
type Change struct {
	// Op is add, update or delete.
	Op Op `json:"op" validate:"required,oneof=add update delete"`
	// Set is the record set to add or the replacement; delete uses only its
	// name and type.
	Set RecordSet `json:"set"`
}

// Scope selects the record sets a Switch moves: everything (the zero Scope),
// one zone (Zone), or one record set (Zone, Name and Type).
type Scope struct {
	// Zone is the origin; empty means every zone.
	Zone string `json:"zone,omitempty"`
	// Name is the owner, as in RecordSet.Name; it needs Zone and Type.
	Name string `json:"name,omitempty"`
	// Type is the record type, as in RecordSet.Type.
	Type string `json:"type,omitempty"`
}

// Validate reports problems with s as a *ValidationError, or nil.
func (s Scope) Validate() error {
	var fe fieldErrors
	if s.Name != "" && s.Zone == "" {
		fe.add("zone", "is required with name")
	}
	if (s.Name == "") != (s.Type == "") {
		fe.add("type", "name and type go together")
	}
	return fe.err()
}

const (
	defaultZoneTTL = 300
	soaRefresh     = 60
	soaRetry       = 10
	soaExpire      = 1209600
	soaMinTTL      = 30
)

// Validate reports every problem in z as a *ValidationError, or nil.
func (z Zone) Validate() error {
	var fe fieldErrors
	z.check(&fe, "", true)
	return fe.err()
}

// check validates z; withTags runs the struct tags too (Config.Validate already
// ran them for nested zones).
func (z Zone) check(fe *fieldErrors, prefix string, withTags bool) {
	if withTags {
		checkStruct(fe, prefix, z)
	}
	if z.Origin == "" {
		return
	}
	if _, ok := dns.IsDomainName(z.Origin); !ok || z.Origin == "." {
		fe.add(joinPath(prefix, "origin"), "must be a domain name below the root")
		return
	}
	if msg := hiddenCharacters(z.Origin); msg != "" {
		fe.add(joinPath(prefix, "origin"), "%s", msg)
		return
	}
	origin := dns.CanonicalName(z.Origin)
	for _, f := range []struct{ name, v string }{{"soa.ns", z.SOA.NS}, {"soa.mbox", z.SOA.Mbox}} {
		if f.v != "" {
			if _, ok := dns.IsDomainName(f.v); !ok {
				fe.add(joinPath(prefix, f.name), "must be a domain name")
			}
		}
	}
	for i, rs := range z.RecordSets {
		rs.check(fe, joinPath(prefix, fmt.Sprintf("record_sets[%d]", i)), origin)
	}
	checkSets(fe, joinPath(prefix, "record_sets"), origin, z.RecordSets)
}

// hiddenCharacters says what in name would hide from, or mislead, whoever reads it in a log
// or a list: control characters (NUL among them), bidi marks and overrides, which reorder the
// text shown, and escapes (\DDD, \.), which put any byte into a label. It returns "" for a
// plain name.
func hiddenCharacters(name string) string {
	if !utf8.ValidString(name) {
		return "must be valid UTF-8"
	}
	for _, r := range name {
		switch {
		case unicode.IsControl(r):
			return fmt.Sprintf("must not contain control characters (%U)", r)
		case r == '\u200e' || r == '\u200f' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069'):
			return fmt.Sprintf("must not contain bidi marks or overrides (%U)", r)
		case r == '\\':
			return "must not contain escapes (\\)"
		}
	}
	return ""
}

// checkSets applies the rules that span record sets: one entry per name and
// type, and a CNAME owner has no other data.
func checkSets(fe *fieldErrors, p, origin string, sets []RecordSet) {
	seen := map[setKey]int{}
	types := map[string]map[uint16]bool{}
	for i, rs := range sets {
		name, ok := ownerName(rs.Name, origin)
		t := dns.StringToType[rs.Type]
		if !ok || t == 0 {
			continue
		}
		k := setKey{name, t}
		if j, dup := seen[k]; dup {
			fe.add(fmt.Sprintf("%s[%d]", p, i), "repeats %s[%d] (%s %s)", p, j, name, rs.Type)
		}
		seen[k] = i
		if types[name] == nil {
			types[name] = map[uint16]bool{}
		}
		types[name][t] = true
	}
	for _, name := range sortedKeys(types) {
		ts := types[name]
		if ts[dns.TypeCNAME] && len(ts) > 1 {
			fe.add(p, "%s has a CNAME and other types; a CNAME owner can have no other data", name)
		}
		if ts[dns.TypeCNAME] && name == origin {
			fe.add(p, "the apex %s cannot be a CNAME", name)
		}
	}
}

// check validates one record set of the zone origin (canonical).
func (rs RecordSet) check(fe *fieldErrors, p, origin string) {
	name, ok := ownerName(rs.Name, origin)
	if rs.Name != "" && !ok {
		fe.add(p+".name", "must be a domain name in zone %s", origin)
	}
	t := dns.StringToType[rs.Type]
	if t == 0 || !ok {
		return
	}
	if t == dns.TypeNS && name != origin {
		fe.add(p+".type", "NS records are served at the apex only (no delegation)")
	}
	switch {
	case len(rs.Data) > 0 && len(rs.Centers) > 0:
		fe.add(p, "data and centers are exclusive")
	case len(rs.Data) == 0 && len(rs.Centers) == 0:
		fe.add(p+".data", "is required (or centers)")
	}
	checkData := func(dp string, data []string) {
		if t == dns.TypeCNAME && len(data) > 1 {
			fe.add(dp, "a CNAME has exactly one target")
		}
		for j, d := range data {
			if _, err := parseRR(name, rs.Type, 1, d, origin); err != nil {
				fe.add(fmt.Sprintf("%s[%d]", dp, j), "%v", err)
			}
		}
	}
	checkData(p+".data", rs.Data)
	for _, c := range slices.Sorted(maps.Keys(rs.Centers)) {
		if c == "" || c == AllCenters {
			fe.add(p+".centers", "center name %q is reserved", c)
		}
		if len(rs.Centers[c]) == 0 {
			fe.add(p+".centers."+c, "is empty")
		}
		checkData(p+".centers."+c, rs.Centers[c])
	}
	if len(rs.Centers) > 0 {
		if _, ok := rs.Centers[rs.Active]; !ok && rs.Active != AllCenters {
			fe.add(p+".active", "must name one of the centers or be %q", AllCenters)
		}
	} else if rs.Active != "" {
		fe.add(p+".active", "is only for record sets with centers")
	}
	if rs.HealthCheck != nil {
		if len(rs.Centers) == 0 || (t != dns.TypeA && t != dns.TypeAAAA) {
			fe.add(p+".health_check", "is only for A and AAAA record sets with centers")
		}
	}
}

// setKey identifies a record set in a zone.
type setKey struct {
	name  string
	rtype uint16
}

// ownerName makes name absolute and canonical within origin, reporting whether
// the result lies in the zone.
func ownerName(name, origin string) (string, bool) {
	switch {
	case name == "@":
		return origin, true
	case name == "":
		return "", false
	case !dns.IsFqdn(name):
		name = name + "." + origin
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "", false
	}
	name = dns.CanonicalName(name)
	return name, dns.IsSubDomain(origin, name)
}

// parseRR parses one record of the set from its RDATA.
func parseRR(name, rtype string, ttl uint32, data, origin string) (dns.RR, error) {
	if strings.ContainsAny(data, "\n\r;()") && rtype != "TXT" {
		return nil, fmt.Errorf("%s data %q: a single record's data on one line", rtype, data)
	}
	zp := dns.NewZoneParser(strings.NewReader(fmt.Sprintf("%s %d IN %s %s\n", name, ttl, rtype, data)), origin, "")
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("%s data %q: %w", rtype, data, unwrapParseErr(err))
	}
	if !ok || rr == nil {
		return nil, fmt.Errorf("%s data %q: no record", rtype, data)
	}
	if _, more := zp.Next(); more {
		return nil, fmt.Errorf("%s data %q: more than one record", rtype, data)
	}
	return rr, nil
}

// unwrapParseErr drops the file/line decoration a single-line parse does not need.
func unwrapParseErr(err error) error {
	if pe, ok := err.(*dns.ParseError); ok {
		return fmt.Errorf("%s", strings.TrimPrefix(pe.Error(), "dns: "))
	}
	return err
}

// normalize returns a copy of z with defaults applied and names canonical. z
// must be valid.
func (z Zone) normalize() Zone {
	z.Origin = dns.CanonicalName(z.Origin)
	if z.TTL == 0 {
		z.TTL = defaultZoneTTL
	}
	s := &z.SOA
	if s.NS == "" {
		s.NS = "ns1." + z.Origin
	}
	s.NS = absName(s.NS, z.Origin)
	if s.Mbox == "" {
		s.Mbox = "hostmaster." + z.Origin
	}
	s.Mbox = absName(s.Mbox, z.Origin)
	if s.Refresh == 0 {
		s.Refresh = soaRefresh
	}
	if s.Retry == 0 {
		s.Retry = soaRetry
	}
	if s.Expire == 0 {
		s.Expire = soaExpire
	}
	if s.MinTTL == 0 {
		s.MinTTL = soaMinTTL
	}
	sets := make([]RecordSet, len(z.RecordSets))
	for i, rs := range z.RecordSets {
		sets[i] = rs.normalize(z.Origin, z.TTL)
	}
	z.RecordSets = sets
	return z
}

func (rs RecordSet) normalize(origin string, ttl uint32) RecordSet {
	rs = rs.clone()
	rs.Name, _ = ownerName(rs.Name, origin)
	if rs.TTL == 0 {
		rs.TTL = ttl
	}
	if rs.HealthCheck != nil {
		hc := *rs.HealthCheck
		if hc.Protocol == "" {
			hc.Protocol = "tcp"
		}
		if hc.Path == "" {
			hc.Path = "/"
		}
		if hc.Interval == 0 {
			hc.Interval = Duration(defaultCheckInterval)
		}
		if hc.Timeout == 0 {
			hc.Timeout = Duration(defaultCheckTimeout)
		}
		rs.HealthCheck = &hc
	}
	return rs
}

func absName(name, origin string) string {
	if !dns.IsFqdn(name) {
		name += "." + origin
	}
	return dns.CanonicalName(name)
}

// clone deep-copies rs so callers never share slices or maps with the server.
func (rs RecordSet) clone() RecordSet {
	rs.Data = slices.Clone(rs.Data)
	if rs.Centers != nil {
		c := make(map[string][]string, len(rs.Centers))
		for k, v := range rs.Centers {
			c[k] = slices.Clone(v)
		}
		rs.Centers = c
	}
	if rs.HealthCheck != nil {
		hc := *rs.HealthCheck
		rs.HealthCheck = &hc
	}
	return rs
}

func (z Zone) clone() Zone {
	sets := make([]RecordSet, len(z.RecordSets))
	for i, rs := range z.RecordSets {
		sets[i] = rs.clone()
	}
	z.RecordSets = sets
	return z
}
