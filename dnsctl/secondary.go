package dnsctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// handleNotify accepts a NOTIFY for a zone we hold as a secondary from our
// primary (by address, or signed with the primary's key) and triggers a
// transfer.
func (s *Server) handleNotify(w dns.ResponseWriter, r *dns.Msg, start time.Time) {
	m := new(dns.Msg)
	m.SetReply(r)
	origin := lower(r.Question[0].Name)
	kick, ok := s.notifyCh[origin]
	if !ok || !s.fromPrimary(w, r) {
		m.Rcode = dns.RcodeRefused
		s.write(w, r, m, start, "")
		return
	}
	m.Authoritative = true
	s.write(w, r, m, start, "auth")
	select {
	case kick <- struct{}{}:
	default: // a transfer is already due
	}
}

func (s *Server) fromPrimary(w dns.ResponseWriter, r *dns.Msg) bool {
	p := s.cfg.Primary
	if t := r.IsTsig(); t != nil {
		return w.TsigStatus() == nil && p.Key != "" && dns.CanonicalName(p.Key) == dns.CanonicalName(t.Hdr.Name)
	}
	return p.Key == "" && hostIP(p.Addr) == remoteIP(w.RemoteAddr())
}

// warnAfter is how many failures in a row are logged at Info before the next are at Warn: a
// few are usual (a secondary started before its primary has the zone, a primary restarting);
// more are an outage.
const warnAfter = 3

func failureLevel(inARow int) slog.Level {
	if inARow <= warnAfter {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// followPrimary keeps a secondary zone current: a transfer at start, then on
// every NOTIFY and every Refresh, retrying sooner after a failure. When the
// primary is gone the last copy keeps being served (SOA expire is deliberately
// not honoured: answering is the point of a copy in the other center).
func (s *Server) followPrimary(ctx context.Context, origin string, kick <-chan struct{}) {
	refresh := time.Duration(s.cfg.Primary.Refresh)
	failures := 0
	for {
		wait := refresh
		if err := s.transferIn(ctx, origin); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			s.cfg.Logger.Log(ctx, failureLevel(failures), "dnsctl: zone transfer in", "zone", origin, "primary", s.cfg.Primary.Addr, "failures", failures, "err", err)
			wait = min(refresh, waitStep)
		} else {
			failures = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// transferIn fetches origin from the primary: IXFR from the serial we hold, AXFR
// when we hold nothing; the primary may answer an IXFR with the whole zone.
func (s *Server) transferIn(ctx context.Context, origin string) (err error) {
	p := s.cfg.Primary
	defer func() {
		if s.metrics != nil {
			result := "ok"
			if err != nil {
				result = "error"
			}
			s.metrics.transfer("in", result)
		}
	}()
	s.mu.Lock()
	cur := s.zones[origin]
	s.mu.Unlock()

	q := new(dns.Msg)
	if cur != nil {
		soa := cur.snap.soa
		q.SetIxfr(origin, soa.Serial, soa.Ns, soa.Mbox)
	} else {
		q.SetAxfr(origin)
	}
	if p.Key != "" {
		key := dns.CanonicalName(p.Key)
		q.SetTsig(key, s.tsigAlg[key], 300, time.Now().Unix())
	}
	timeout := time.Duration(p.Timeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := net.Dialer{LocalAddr: s.transferSource()}
	conn, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return fmt.Errorf("%w: %s from %s: %w", ErrTransfer, origin, p.Addr, err)
	}
	// The transfer API has no context; closing the connection ends it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	tr := &dns.Transfer{Conn: &dns.Conn{Conn: conn}, ReadTimeout: timeout, WriteTimeout: timeout}
	if len(s.tsig) > 0 {
		tr.TsigSecret = s.tsig
	}
	envs, err := tr.In(q, p.Addr)
	if err != nil {
		conn.Close()
		return fmt.Errorf("%w: %s from %s: %w", ErrTransfer, origin, p.Addr, err)
	}
	var rrs []dns.RR
	var errs []error
	for env := range envs {
		if env.Error != nil {
			errs = append(errs, env.Error)
			continue
		}
		rrs = append(rrs, env.RR...)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %s from %s: %w", ErrTransfer, origin, p.Addr, err)
	}
	records, soa, err := applyTransfer(cur, rrs)
	if err != nil {
		return fmt.Errorf("%w: %s from %s: %w", ErrTransfer, origin, p.Addr, err)
	}
	if records == nil {
		return nil // already current
	}
	zs := secondaryZone(origin, soa, records, s.cfg.Center)
	s.mu.Lock()
	s.publish(map[string]*zoneState{origin: zs})
	s.mu.Unlock()
	s.stats.transfersIn.Add(1)
	s.cfg.Logger.Info("dnsctl: zone transferred", "zone", origin, "serial", soa.Serial, "records", len(records))
	return nil
}

// transferSource is the address our transfer requests and NOTIFYs come from: the IP we
// listen on, so that the other side can recognise us by address; nil when we listen on
// every address.
func (s *Server) transferSource() net.Addr {
	ip := hostIP(s.cfg.UDPAddr)
	if !ip.IsValid() || ip.IsUnspecified() {
		return nil
	}
	return &net.TCPAddr{IP: ip.AsSlice()}
}

// applyTransfer turns a transfer answer into the zone's new records and SOA.
// records is nil when the answer says we are current.
func applyTransfer(cur *zoneState, rrs []dns.RR) (records []dns.RR, soa *dns.SOA, err error) {
	if len(rrs) == 0 {
		return nil, nil, errors.New("empty answer")
	}
	soa, ok := rrs[0].(*dns.SOA)
	if !ok {
		return nil, nil, errors.New("answer does not start with the SOA")
	}
	if len(rrs) == 1 {
		if cur == nil || serialLess(cur.snap.soa.Serial, soa.Serial) {
			return nil, nil, fmt.Errorf("answer is only the SOA (serial %d) but we are behind", soa.Serial)
		}
		return nil, soa, nil
	}
	last, ok := rrs[len(rrs)-1].(*dns.SOA)
	if !ok || last.Serial != soa.Serial {
		return nil, nil, errors.New("answer does not end with the SOA")
	}
	body := rrs[1 : len(rrs)-1]
	if _, incremental := rrs[1].(*dns.SOA); !incremental || cur == nil {
		// AXFR, or an IXFR answered with the whole zone.
		return body, soa, nil
	}
	have := map[string]dns.RR{}
	for _, rr := range cur.snap.flatten()[1:] {
		have[rr.String()] = rr
	}
	// body is a sequence of (old SOA, deletions, new SOA, additions).
	for len(body) > 0 {
		if _, ok := body[0].(*dns.SOA); !ok {
			return nil, nil, errors.New("malformed incremental transfer")
		}
		body = body[1:]
		for len(body) > 0 {
			if _, isSOA := body[0].(*dns.SOA); isSOA {
				break
			}
			delete(have, body[0].String())
			body = body[1:]
		}
		if len(body) == 0 {
			return nil, nil, errors.New("incremental transfer ends inside a deletion")
		}
		body = body[1:] // the version's new SOA
		for len(body) > 0 {
			if _, isSOA := body[0].(*dns.SOA); isSOA {
				break
			}
			have[body[0].String()] = body[0]
			body = body[1:]
		}
	}
	records = make([]dns.RR, 0, len(have))
	for _, rr := range have {
		records = append(records, rr)
	}
	return records, soa, nil
}

// secondaryZone builds a read-only zone from transferred records.
func secondaryZone(origin string, soa *dns.SOA, records []dns.RR, center string) *zoneState {
	spec := Zone{
		Origin: origin,
		TTL:    soa.Hdr.Ttl,
		SOA: SOA{NS: soa.Ns, Mbox: soa.Mbox, Serial: soa.Serial, Refresh: soa.Refresh,
			Retry: soa.Retry, Expire: soa.Expire, MinTTL: soa.Minttl},
	}
	index := map[setKey]int{}
	var parsed []parsedSet
	for _, rr := range records {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		if h.Rrtype == dns.TypeSOA || !dns.IsSubDomain(origin, name) {
			continue
		}
		h.Name = name
		k := setKey{name, h.Rrtype}
		i, ok := index[k]
		if !ok {
			i = len(spec.RecordSets)
			index[k] = i
			spec.RecordSets = append(spec.RecordSets, RecordSet{Name: name, Type: dns.TypeToString[h.Rrtype], TTL: h.Ttl})
			parsed = append(parsed, parsedSet{})
		}
		rs := &spec.RecordSets[i]
		rs.TTL = min(rs.TTL, h.Ttl)
		rs.Data = append(rs.Data, strings.TrimPrefix(rr.String(), h.String()))
		parsed[i].static = append(parsed[i].static, rr)
	}
	zs := &zoneState{spec: spec, parsed: parsed, secondary: true}
	zs.snap = buildZone(spec, parsed, true, center)
	return zs
}
