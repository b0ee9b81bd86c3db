package dnsctl

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxChain bounds CNAME chasing inside our zones; a loop ends here too.
const maxChain = 8

// handler answers DNS messages for a Server.
type handler struct{ s *Server }

// packBufs recycles answer buffers: packing into a pooled buffer instead of
// WriteMsg's fresh one is the one allocation per query we can save cheaply.
var packBufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

func (h handler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s := h.s
	start := time.Now()
	if len(r.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		s.write(w, r, m, start, "")
		return
	}
	q := r.Question[0]
	switch {
	case r.Opcode == dns.OpcodeNotify:
		s.handleNotify(w, r, start)
		return
	case r.Opcode != dns.OpcodeQuery:
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNotImplemented)
		s.write(w, r, m, start, "")
		return
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		s.handleTransfer(w, r, start)
		return
	}

	m := new(dns.Msg)
	m.SetReply(r)
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		s.write(w, r, m, start, "")
		return
	}
	snap := s.snap.Load()
	name := lower(q.Name)
	z := snap.findZone(name)
	if z == nil {
		s.forward(w, r, m, start)
		return
	}
	c := client{addr: remoteIP(w.RemoteAddr()), views: snap.views}
	snap.answer(m, z, name, q.Qtype, &c, s.health.downSet())
	s.write(w, r, m, start, "auth")
}

// answer fills m with the authoritative answer for name (canonical) in z.
func (snap *snapshot) answer(m *dns.Msg, z *zoneSnap, name string, qtype uint16, c *client, down map[probe]struct{}) {
	m.Authoritative = true
	for range maxChain {
		n := z.nodes[name]
		if n == nil {
			// RFC 6604: the rcode describes the last name of a CNAME chain.
			m.Rcode = dns.RcodeNameError
			m.Ns = z.neg
			return
		}
		if qtype == dns.TypeANY {
			// RFC 8482: answer ANY with one record set rather than everything.
			if len(n.sets) == 0 {
				m.Ns = z.neg
				return
			}
			m.Answer = append(m.Answer, n.sets[0].pick(c, down)...)
			return
		}
		if qtype != dns.TypeCNAME {
			if cn := n.get(dns.TypeCNAME); cn != nil {
				rrs := cn.pick(c, down)
				m.Answer = append(m.Answer, rrs...)
				target := lower(rrs[0].(*dns.CNAME).Target)
				next := snap.findZone(target)
				if next == nil {
					return // out of our zones: the resolver follows it
				}
				z, name = next, target
				continue
			}
		}
		set := n.get(qtype)
		if set == nil {
			m.Ns = z.neg
			return
		}
		m.Answer = append(m.Answer, set.pick(c, down)...)
		return
	}
}

// write finishes m for the transport (EDNS0, truncation), sends it and records
// the query. kind is "auth", "forward" or "cache" for metrics; "" for errors.
func (s *Server) write(w dns.ResponseWriter, r, m *dns.Msg, start time.Time, kind string) {
	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		if opt.Version() != 0 {
			// RFC 6891: unknown version gets BADVERS and nothing else.
			m.Answer, m.Ns, m.Extra = nil, nil, nil
			m.Rcode = dns.RcodeBadVers
		}
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), s.cfg.UDPSize)
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(uint16(s.cfg.UDPSize))
		m.Extra = append(m.Extra, o)
	}
	if _, tcp := w.RemoteAddr().(*net.TCPAddr); tcp {
		size = dns.MaxMsgSize
	}
	if t := r.IsTsig(); t != nil {
		// Signed requests get signed answers; the writer signs.
		if w.TsigStatus() == nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
		}
		m.Truncate(size)
		_ = w.WriteMsg(m)
		s.observe(w, r, m, start, kind)
		return
	}
	bp := packBufs.Get().(*[]byte)
	out, err := m.PackBuffer(*bp)
	if err == nil && len(out) > size {
		// Compression is only worth its CPU when the answer would not fit.
		m.Compress = true
		m.Truncate(size)
		out, err = m.PackBuffer(*bp)
	}
	if err != nil {
		s.cfg.Logger.Warn("dnsctl: pack answer", "question", r.Question, "err", err)
		m = new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		out, _ = m.PackBuffer(*bp)
	}
	_, _ = w.Write(out)
	packBufs.Put(bp)
	s.observe(w, r, m, start, kind)
}

func (s *Server) observe(w dns.ResponseWriter, r, m *dns.Msg, start time.Time, kind string) {
	var qtype uint16
	if len(r.Question) == 1 {
		qtype = r.Question[0].Qtype
	}
	d := time.Since(start)
	s.stats.queries.Add(1)
	if s.metrics != nil {
		s.metrics.query(qtype, m.Rcode, kind, d)
	}
	if s.cfg.QueryLog {
		var name string
		if len(r.Question) == 1 {
			name = r.Question[0].Name
		}
		s.cfg.Logger.LogAttrs(context.Background(), slog.LevelInfo, "dns query",
			slog.String("client", w.RemoteAddr().String()),
			slog.String("name", name),
			slog.String("type", dns.TypeToString[qtype]),
			slog.String("rcode", dns.RcodeToString[m.Rcode]),
			slog.String("source", kind),
			slog.Duration("duration", d))
	}
}

func remoteIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
