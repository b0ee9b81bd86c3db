package dnsctl

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// delta is one change of a zone as IXFR (RFC 1995) sends it.
type delta struct {
	from, to *dns.SOA
	del, add []dns.RR
}

// newDelta compares what two versions of a zone transfer.
func newDelta(old, cur *zoneSnap) delta {
	before, after := old.flatten()[1:], cur.flatten()[1:]
	index := func(rrs []dns.RR) map[string]dns.RR {
		m := make(map[string]dns.RR, len(rrs))
		for _, rr := range rrs {
			m[rr.String()] = rr
		}
		return m
	}
	b, a := index(before), index(after)
	d := delta{from: old.soa, to: cur.soa}
	for _, rr := range before {
		if _, ok := a[rr.String()]; !ok {
			d.del = append(d.del, rr)
		}
	}
	for _, rr := range after {
		if _, ok := b[rr.String()]; !ok {
			d.add = append(d.add, rr)
		}
	}
	return d
}

// xfrChunk is how many records go in one transfer message; well below 64 KiB
// for any record we serve.
const xfrChunk = 100

// handleTransfer answers AXFR and IXFR requests from allowed secondaries.
func (s *Server) handleTransfer(w dns.ResponseWriter, r *dns.Msg, start time.Time) {
	q := r.Question[0]
	m := new(dns.Msg)
	m.SetReply(r)
	zs := s.snap.Load().zones[lower(q.Name)]
	if zs == nil || !s.transferAllowed(w, r) {
		m.Rcode = dns.RcodeRefused
		if zs == nil {
			m.Rcode = dns.RcodeNotAuth
		}
		s.write(w, r, m, start, "")
		return
	}
	var serial uint32
	ixfr := q.Qtype == dns.TypeIXFR && len(r.Ns) == 1
	if ixfr {
		soa, ok := r.Ns[0].(*dns.SOA)
		if !ok {
			m.Rcode = dns.RcodeFormatError
			s.write(w, r, m, start, "")
			return
		}
		serial = soa.Serial
	}
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	switch {
	case udp && q.Qtype == dns.TypeAXFR:
		m.Rcode = dns.RcodeRefused
		s.write(w, r, m, start, "")
		return
	case udp || (ixfr && !serialLess(serial, zs.soa.Serial)):
		// RFC 1995 §2: over UDP, or when the client is current, the SOA alone;
		// a UDP client that is behind retries over TCP.
		m.Authoritative = true
		m.Answer = []dns.RR{zs.soa}
		s.write(w, r, m, start, "auth")
		return
	}
	var rrs []dns.RR
	if ixfr {
		rrs = s.journalSince(zs.origin, serial)
	}
	if rrs == nil {
		rrs = append(zs.flatten(), zs.soa)
	}
	ch := make(chan *dns.Envelope)
	tr := new(dns.Transfer)
	done := make(chan error, 1)
	go func() { done <- tr.Out(w, r, ch) }()
	var err error
send:
	for len(rrs) > 0 {
		n := min(xfrChunk, len(rrs))
		select {
		case ch <- &dns.Envelope{RR: rrs[:n]}:
			rrs = rrs[n:]
		case err = <-done:
			// Out gave up (the client went away): stop feeding it.
			break send
		}
	}
	close(ch)
	if len(rrs) == 0 {
		err = <-done
	}
	s.stats.transfersOut.Add(1)
	result := "ok"
	if err != nil {
		result = "error"
		s.cfg.Logger.Warn("dnsctl: zone transfer out", "zone", zs.origin, "client", w.RemoteAddr().String(), "err", err)
	}
	if s.metrics != nil {
		s.metrics.transfer("out", result)
		s.metrics.query(q.Qtype, dns.RcodeSuccess, "auth", time.Since(start))
	}
}

// journalSince returns the IXFR answer that takes a secondary at serial to the
// current version, or nil when the journal does not reach back that far.
func (s *Server) journalSince(origin string, serial uint32) []dns.RR {
	s.mu.Lock()
	defer s.mu.Unlock()
	zs := s.zones[origin]
	if zs == nil {
		return nil
	}
	for i, d := range zs.journal {
		if d.from.Serial != serial {
			continue
		}
		out := []dns.RR{zs.snap.soa}
		for _, d := range zs.journal[i:] {
			out = append(out, d.from)
			out = append(out, d.del...)
			out = append(out, d.to)
			out = append(out, d.add...)
		}
		return append(out, zs.snap.soa)
	}
	return nil
}

// serialLess compares SOA serials in RFC 1982 arithmetic.
func serialLess(a, b uint32) bool {
	return a != b && (a < b && b-a < 1<<31 || a > b && a-b > 1<<31)
}

// transferAllowed: a request signed with a secondary's key, or an unsigned one
// from the host of a secondary configured without a key.
func (s *Server) transferAllowed(w dns.ResponseWriter, r *dns.Msg) bool {
	if t := r.IsTsig(); t != nil {
		if w.TsigStatus() != nil {
			return false
		}
		for _, sec := range s.cfg.Secondaries {
			if sec.Key != "" && dns.CanonicalName(sec.Key) == dns.CanonicalName(t.Hdr.Name) {
				return true
			}
		}
		return false
	}
	ip := remoteIP(w.RemoteAddr())
	for _, sec := range s.cfg.Secondaries {
		if sec.Key == "" && hostIP(sec.Addr) == ip {
			return true
		}
	}
	return false
}

func hostIP(hostport string) netip.Addr {
	host, _, _ := net.SplitHostPort(hostport)
	ip, _ := netip.ParseAddr(host)
	return ip.Unmap()
}

// notifyAttempts and notifyTimeout bound how hard we try to tell a secondary.
const (
	notifyAttempts = 3
	notifyTimeout  = 2 * time.Second
)

// notifySecondaries sends NOTIFY (RFC 1996) for soa's zone to every secondary
// in the background. Caller holds s.mu.
func (s *Server) notifySecondaries(soa *dns.SOA) {
	if !s.running.Load() {
		return // not serving yet, or closing: secondaries catch up on their refresh
	}
	ctx := s.bgCtx
	for _, sec := range s.cfg.Secondaries {
		s.bg.Go(func() {
			if err := s.notify(ctx, sec, soa); err != nil {
				s.cfg.Logger.Warn("dnsctl: notify", "zone", soa.Hdr.Name, "secondary", sec.Addr, "err", err)
				return
			}
			s.stats.notifiesSent.Add(1)
		})
	}
}

func (s *Server) notify(ctx context.Context, sec Secondary, soa *dns.SOA) error {
	m := new(dns.Msg)
	m.SetNotify(soa.Hdr.Name)
	m.Answer = []dns.RR{soa}
	// Sent from our own listen address, as BIND's notify-source: a secondary accepts a
	// NOTIFY only from the primary's address.
	c := &dns.Client{Net: "udp", TsigSecret: s.tsig}
	if src := s.transferSource(); src != nil {
		c.Dialer = &net.Dialer{LocalAddr: &net.UDPAddr{IP: src.(*net.TCPAddr).IP}}
	}
	var err error
	for attempt := range notifyAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		if sec.Key != "" {
			key := dns.CanonicalName(sec.Key)
			m.SetTsig(key, s.tsigAlg[key], 300, time.Now().Unix())
		}
		actx, cancel := context.WithTimeout(ctx, notifyTimeout)
		var resp *dns.Msg
		resp, _, err = c.ExchangeContext(actx, m, sec.Addr)
		cancel()
		if err == nil && resp.Rcode != dns.RcodeSuccess {
			err = &rcodeError{resp.Rcode}
		}
		if err == nil {
			return nil
		}
	}
	return err
}

type rcodeError struct{ rcode int }

func (e *rcodeError) Error() string { return "dnsctl: answer " + dns.RcodeToString[e.rcode] }
