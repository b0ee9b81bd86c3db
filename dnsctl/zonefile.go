package dnsctl

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/miekg/dns"
	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// ImportZoneFile reads an RFC 1035 zone file for origin and applies it as the
// whole zone (see ApplyZone), returning the new serial. $INCLUDE is refused.
// Record types outside those a RecordSet supports are an error, naming the line.
func (s *Server) ImportZoneFile(ctx context.Context, origin string, r io.Reader) (uint32, error) {
	z, err := ParseZoneFile(origin, r)
	if err != nil {
		return 0, err
	}
	return s.ApplyZone(ctx, z)
}

// ExportZoneFile writes the zone as an RFC 1035 zone file: what a zone transfer
// carries, so record sets with centers appear with the targets a client outside
// every view gets.
func (s *Server) ExportZoneFile(origin string, w io.Writer) error {
	origin = dns.CanonicalName(origin)
	z := s.snap.Load().zones[origin]
	if z == nil {
		return fmt.Errorf("%w: %s", ErrZoneNotFound, origin)
	}
	return writeZoneFile(w, z)
}

// WriteZoneFile writes z, which need not be served, as ExportZoneFile would
// once z is applied: a record set with centers appears with the targets its
// active center (or, active in every center, this server's center) answers.
// The file therefore holds no per-center alternatives, and importing it back
// replaces them with the targets written.
func (s *Server) WriteZoneFile(w io.Writer, z Zone) error {
	if err := z.Validate(); err != nil {
		return err
	}
	zs, err := s.newZoneState(z.normalize(), false)
	if err != nil {
		return err
	}
	return writeZoneFile(w, zs.snap)
}

func writeZoneFile(w io.Writer, z *zoneSnap) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "$ORIGIN %s\n", z.origin)
	for _, rr := range z.flatten() {
		bw.WriteString(rr.String())
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dnsctl: export zone %s: %w", z.origin, err)
	}
	return nil
}

// ParseZoneFile reads an RFC 1035 zone file for origin into a Zone, one record
// set per name and type, as ImportZoneFile does, without applying it. $INCLUDE
// is refused; errors wrap ErrZoneFile and name the line.
func ParseZoneFile(origin string, r io.Reader) (Zone, error) {
	if _, ok := dns.IsDomainName(origin); !ok {
		return Zone{}, validate.One(ErrInvalid, "origin", "must be a domain name")
	}
	origin = dns.CanonicalName(origin)
	z := Zone{Origin: origin}
	zp := dns.NewZoneParser(r, origin, "")
	zp.SetDefaultTTL(defaultZoneTTL)
	index := map[setKey]int{}
	soaSeen := false
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		if !dns.IsSubDomain(origin, name) {
			return Zone{}, fmt.Errorf("%w: %s: %s is outside the zone", ErrZoneFile, origin, strings.TrimSuffix(h.String(), "\t"))
		}
		if soa, isSOA := rr.(*dns.SOA); isSOA {
			if name != origin || soaSeen {
				return Zone{}, fmt.Errorf("%w: %s: SOA must be once, at the apex", ErrZoneFile, origin)
			}
			soaSeen = true
			z.TTL = h.Ttl
			z.SOA = SOA{NS: soa.Ns, Mbox: soa.Mbox, Serial: soa.Serial, Refresh: soa.Refresh,
				Retry: soa.Retry, Expire: soa.Expire, MinTTL: soa.Minttl}
			continue
		}
		typ := dns.TypeToString[h.Rrtype]
		k := setKey{name, h.Rrtype}
		i, seen := index[k]
		if !seen {
			i = len(z.RecordSets)
			index[k] = i
			z.RecordSets = append(z.RecordSets, RecordSet{Name: name, Type: typ, TTL: h.Ttl})
		}
		rs := &z.RecordSets[i]
		rs.TTL = min(rs.TTL, h.Ttl)
		rs.Data = append(rs.Data, strings.TrimPrefix(rr.String(), h.String()))
	}
	if err := zp.Err(); err != nil {
		return Zone{}, fmt.Errorf("%w: %s: %w", ErrZoneFile, origin, err)
	}
	if err := z.Validate(); err != nil {
		return Zone{}, fmt.Errorf("%w: %s: %w", ErrZoneFile, origin, err)
	}
	return z, nil
}
